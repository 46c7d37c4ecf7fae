package flowdb

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Subscriber domains: each subscriber's traffic per remote domain, per
// router and UTC day (subdom_d, kept HourRetention), so that "which sites
// did Maria use this month" answers over any range. The rows come from the
// aggregator's subscriber-domain table at each rollup flush (download and
// upload flows of a known subscriber); once a day is over, its
// subDomainsPerDay largest domains per subscriber stay and the rest is
// summed in the domain subDomainOther.

const (
	// subDomainsPerDay is the domains kept per subscriber, router and day.
	subDomainsPerDay = 20
	// subDomainOther is the stored domain of the rest.
	subDomainOther = store.DomainRest
)

// subDomSum is a subscriber's traffic with a domain in one day.
type subDomSum struct {
	down, up, flows uint64
}

// subPairs is a table of each subscriber's traffic per value of another
// dimension, per router and UTC day: subdom_d (domains) and subapp_d
// (applications).
type subPairs struct {
	table, col string
	other      string // the stored value of the rest
	blob       bool   // col is a BLOB
	perDay     int    // values kept per subscriber, router and day
}

var (
	subDomPairs = subPairs{table: "subdom_d", col: "dom", other: subDomainOther, perDay: subDomainsPerDay}
	subAppPairs = subPairs{table: "subapp_d", col: "app", other: subDomainOther, blob: true}
)

// subAppsPerDay is the applications kept per subscriber, router and day.
const subAppsPerDay = store.MaxRateApps

// value returns v as stored in p's column.
func (p subPairs) value(v string) any {
	if p.blob {
		return []byte(v)
	}
	return v
}

// writeSubDomains adds the flush's subscriber-domain traffic to subdom_d.
func (a *aggregator) writeSubDomains(ctx context.Context, tx *sql.Tx) error {
	return a.writeSubPairs(ctx, tx, subDomPairs, a.subdom, func(k subDomKey) string { return a.names.names[k.dom] })
}

// writeSubApps adds the flush's subscriber-application traffic to
// subapp_d (the keys of the application rollups).
func (a *aggregator) writeSubApps(ctx context.Context, tx *sql.Tx) error {
	return a.writeSubPairs(ctx, tx, subAppPairs, a.subapp, func(k subDomKey) string {
		if k.kind == valBytes {
			return string(binary.BigEndian.AppendUint32(nil, k.dom))
		}
		return "A" + a.names.names[k.dom]
	})
}

// writeSubPairs adds the entries of tbl to p's table; value names an
// entry's second dimension (valName or valBytes keys; valOther rows are
// p.other).
func (a *aggregator) writeSubPairs(ctx context.Context, tx *sql.Tx, p subPairs, tbl *aggTable[subDomKey], value func(subDomKey) string) error {
	type key struct {
		t, src int64
		sub, v string
	}
	sums := map[key]*subDomSum{}
	for e := range tbl.all() {
		b := a.buckets[e.key.b]
		k := key{t: store.FloorDiv(b.t, 86400) * 86400, src: b.src, sub: a.names.names[e.key.sub]}
		switch e.key.kind {
		case valName, valBytes:
			k.v = value(e.key)
		case valOther:
			k.v = p.other
		}
		s := sums[k]
		if s == nil {
			s = &subDomSum{}
			sums[k] = s
		}
		if b.dir == store.DirDownload {
			s.down += e.c.bytes
		} else {
			s.up += e.c.bytes
		}
		s.flows += e.c.flows
	}
	if len(sums) == 0 {
		return nil
	}
	st, err := tx.PrepareContext(ctx, "INSERT INTO "+p.table+" (src, sub, t, "+p.col+", down_bytes, up_bytes, flows) VALUES (?,?,?,?,?,?,?)"+
		" ON CONFLICT DO UPDATE SET down_bytes = down_bytes + excluded.down_bytes, up_bytes = up_bytes + excluded.up_bytes, flows = flows + excluded.flows")
	if err != nil {
		return err
	}
	defer st.Close()
	for k, s := range sums {
		if _, err := st.ExecContext(ctx, k.src, k.sub, k.t, p.value(k.v), clampInt(s.down), clampInt(s.up), clampInt(s.flows)); err != nil {
			return err
		}
	}
	return nil
}

// subDomainsPrune keeps the subDomainsPerDay largest domains of every
// subscriber of day d (unix seconds) and sums the rest into
// subDomainOther.
func subDomainsPrune(d int64) []stmt { return subDomPairs.prune(d) }

// packSubApps packs the subapp_d rows of day d into one subapp_day row
// per subscriber (adding to a row already there: late flows): its
// subAppsPerDay largest applications and the rest as subDomainOther.
func (s *FlowDB) packSubApps(ctx context.Context, d int64) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.DescribeWriteError(err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, "SELECT src, sub, app, down_bytes + up_bytes FROM subapp_d WHERE t = ?", d)
	if err != nil {
		return err
	}
	type subKey struct {
		src int64
		sub string
	}
	days := map[subKey]map[string]uint64{}
	for rows.Next() {
		var k subKey
		var app []byte
		var n int64
		if err := rows.Scan(&k.src, &k.sub, &app, &n); err != nil {
			rows.Close()
			return err
		}
		m := days[k]
		if m == nil {
			m = map[string]uint64{}
			days[k] = m
		}
		m[string(app)] += uint64(n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(days) == 0 {
		return nil
	}
	get, err := tx.PrepareContext(ctx, "SELECT x FROM subapp_day WHERE t = ? AND src = ? AND sub = ?")
	if err != nil {
		return err
	}
	defer get.Close()
	put, err := tx.PrepareContext(ctx, "INSERT OR REPLACE INTO subapp_day (t, src, sub, x) VALUES (?,?,?,?)")
	if err != nil {
		return err
	}
	defer put.Close()
	for k, m := range days {
		var old []byte
		switch err := get.QueryRowContext(ctx, d, k.src, k.sub).Scan(&old); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		default:
			apps, derr := decodeApps(old)
			if derr != nil {
				s.logger.Warn("replacing damaged subscriber applications", "day", time.Unix(d, 0).UTC().Format(time.DateOnly), "subscriber", k.sub)
			}
			for _, a := range apps {
				m[a.App] += a.Bytes
			}
		}
		apps := make([]store.AppShare, 0, len(m))
		var rest uint64
		for a, n := range m {
			if a == subDomainOther {
				rest += n
				continue
			}
			apps = append(apps, store.AppShare{App: a, Bytes: n})
		}
		slices.SortFunc(apps, func(x, y store.AppShare) int {
			return cmp.Or(cmp.Compare(y.Bytes, x.Bytes), strings.Compare(x.App, y.App))
		})
		if len(apps) > subAppsPerDay {
			for _, a := range apps[subAppsPerDay:] {
				rest += a.Bytes
			}
			apps = apps[:subAppsPerDay]
		}
		if rest > 0 {
			apps = append(apps, store.AppShare{App: subDomainOther, Bytes: rest})
		}
		if _, err := put.ExecContext(ctx, d, k.src, k.sub, encodeApps(apps)); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM subapp_d WHERE t = ?", d); err != nil {
		return err
	}
	return tx.Commit()
}

// prune keeps the p.perDay largest values of every subscriber of day d
// and sums the rest into p.other.
func (p subPairs) prune(d int64) []stmt {
	ranked := `SELECT src, sub, ` + p.col + `, down_bytes, up_bytes, flows,
		row_number() OVER (PARTITION BY src, sub ORDER BY down_bytes + up_bytes DESC, ` + p.col + `) AS rn
		FROM ` + p.table + ` WHERE t = ?1 AND ` + p.col + ` != ?3`
	other := p.value(p.other)
	return []stmt{
		{`INSERT INTO ` + p.table + ` (src, sub, t, ` + p.col + `, down_bytes, up_bytes, flows)
			SELECT src, sub, ?1, ?3, sum(down_bytes), sum(up_bytes), sum(flows) FROM (` + ranked + `) WHERE rn > ?2 GROUP BY src, sub
			ON CONFLICT DO UPDATE SET down_bytes = down_bytes + excluded.down_bytes, up_bytes = up_bytes + excluded.up_bytes, flows = flows + excluded.flows`,
			[]any{d, p.perDay, other}},
		{`DELETE FROM ` + p.table + ` WHERE t = ?1 AND (src, sub, ` + p.col + `) IN (SELECT src, sub, ` + p.col + ` FROM (` + ranked + `) WHERE rn > ?2)`,
			[]any{d, p.perDay, other}},
	}
}

// SubscriberDomains returns one subscriber's top remote domains over the
// whole UTC days around [q.From, q.To).
func (s *FlowDB) SubscriberDomains(ctx context.Context, q store.SubscriberDomainsQuery) (*store.SubscriberDomains, error) {
	f, t, err := q.Check()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("SELECT dom, sum(down_bytes), sum(up_bytes), sum(flows) FROM subdom_d WHERE sub = ? AND t >= ? AND t < ?")
	args := []any{q.Subscriber, f, t}
	if len(q.Sources) > 0 {
		b.WriteString(" AND src IN (?" + strings.Repeat(",?", len(q.Sources)-1) + ")")
		for _, src := range q.Sources {
			args = append(args, src)
		}
	}
	b.WriteString(" GROUP BY dom")
	rows, err := s.r.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("cannot read subscriber domains: %w", err)
	}
	defer rows.Close()
	var all []store.DomainUsage
	for rows.Next() {
		var u store.DomainUsage
		var down, up, flows int64
		if err := rows.Scan(&u.Domain, &down, &up, &flows); err != nil {
			return nil, fmt.Errorf("cannot read subscriber domains: %w", err)
		}
		u.DownloadBytes, u.UploadBytes, u.Flows = uint64(down), uint64(up), uint64(flows)
		all = append(all, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read subscriber domains: %w", err)
	}
	return store.RankDomains(f, t, all, q.N), nil
}

// subscriberAppList is one subscriber's largest applications on one
// router.
type subscriberAppList struct {
	Source     int64
	Subscriber string
	Apps       []store.AppShare
}

// queryer is a *sql.DB or a *sql.Conn.
type queryer interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// subscriberApps sums subapp_day (the days packed) and subapp_d (the days
// still open) over whole UTC days and returns each subscriber's n
// largest, in (source, subscriber) order.
func subscriberApps(ctx context.Context, db queryer, from, to time.Time, sources []int64, n int) ([]subscriberAppList, error) {
	f := store.FloorDiv(from.Unix(), 86400) * 86400
	t := -store.FloorDiv(-to.Unix(), 86400) * 86400
	type subKey struct {
		src int64
		sub string
	}
	subs := map[subKey]map[string]uint64{}
	var lastKey subKey
	var last map[string]uint64
	add := func(src int64, sub []byte, app string, n uint64) {
		if app == subDomainOther || (len(sources) > 0 && !slices.Contains(sources, src)) {
			return
		}
		if last == nil || src != lastKey.src || string(sub) != lastKey.sub {
			lastKey = subKey{src, string(sub)}
			if last = subs[lastKey]; last == nil {
				last = map[string]uint64{}
				subs[lastKey] = last
			}
		}
		last[app] += n
	}
	rows, err := db.QueryContext(ctx, "SELECT src, sub, x FROM subapp_day WHERE t >= ? AND t < ?", f, t)
	if err != nil {
		return nil, fmt.Errorf("cannot read subscriber applications: %w", err)
	}
	defer rows.Close()
	var sub, x sql.RawBytes
	for rows.Next() {
		var src int64
		if err := rows.Scan(&src, &sub, &x); err != nil {
			return nil, fmt.Errorf("cannot read subscriber applications: %w", err)
		}
		apps, err := decodeApps(x)
		if err != nil {
			return nil, fmt.Errorf("cannot read the applications of %s: %w", sub, err)
		}
		for _, a := range apps {
			add(src, sub, a.App, a.Bytes)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read subscriber applications: %w", err)
	}
	rows.Close()
	if rows, err = db.QueryContext(ctx, "SELECT src, sub, app, down_bytes + up_bytes FROM subapp_d WHERE t >= ? AND t < ?", f, t); err != nil {
		return nil, fmt.Errorf("cannot read subscriber applications: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var src, n int64
		if err := rows.Scan(&src, &sub, &x, &n); err != nil {
			return nil, fmt.Errorf("cannot read subscriber applications: %w", err)
		}
		add(src, sub, string(x), uint64(n))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read subscriber applications: %w", err)
	}
	out := make([]subscriberAppList, 0, len(subs))
	for k, apps := range subs {
		r := subscriberAppList{Source: k.src, Subscriber: k.sub}
		for a, b := range apps {
			r.Apps = append(r.Apps, store.AppShare{App: a, Bytes: b})
		}
		slices.SortFunc(r.Apps, func(x, y store.AppShare) int {
			return cmp.Or(cmp.Compare(y.Bytes, x.Bytes), strings.Compare(x.App, y.App))
		})
		r.Apps = r.Apps[:min(n, len(r.Apps))]
		for i := range r.Apps {
			r.Apps[i].App = appLabel(r.Apps[i].App)
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(x, y subscriberAppList) int {
		return cmp.Or(cmp.Compare(x.Source, y.Source), strings.Compare(x.Subscriber, y.Subscriber))
	})
	return out, nil
}
