package flowdb

import (
	"cmp"
	"context"
	"database/sql"
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
	subDomainOther = "*"
)

// subDomSum is a subscriber's traffic with a domain in one day.
type subDomSum struct {
	down, up, flows uint64
}

// writeSubDomains adds the flush's subscriber-domain traffic to subdom_d.
func (a *aggregator) writeSubDomains(ctx context.Context, tx *sql.Tx) error {
	type key struct {
		t, src   int64
		sub, dom string
	}
	sums := map[key]*subDomSum{}
	for i := range a.subdom.entries {
		e := &a.subdom.entries[i]
		b := a.buckets[e.key.b]
		k := key{t: floorDiv(b.t, 86400) * 86400, src: b.src, sub: a.names.names[e.key.sub]}
		switch e.key.kind {
		case valName:
			k.dom = a.names.names[e.key.dom]
		case valOther:
			k.dom = subDomainOther
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
	st, err := tx.PrepareContext(ctx, "INSERT INTO subdom_d (src, sub, t, dom, down_bytes, up_bytes, flows) VALUES (?,?,?,?,?,?,?)"+
		" ON CONFLICT DO UPDATE SET down_bytes = down_bytes + excluded.down_bytes, up_bytes = up_bytes + excluded.up_bytes, flows = flows + excluded.flows")
	if err != nil {
		return err
	}
	defer st.Close()
	for k, s := range sums {
		if _, err := st.ExecContext(ctx, k.src, k.sub, k.t, k.dom, clampInt(s.down), clampInt(s.up), clampInt(s.flows)); err != nil {
			return err
		}
	}
	return nil
}

// subDomainsPrune keeps the subDomainsPerDay largest domains of every
// subscriber of day d (unix seconds) and sums the rest into
// subDomainOther.
func subDomainsPrune(d int64) []stmt {
	const ranked = `SELECT src, sub, dom, down_bytes, up_bytes, flows,
		row_number() OVER (PARTITION BY src, sub ORDER BY down_bytes + up_bytes DESC, dom) AS rn
		FROM subdom_d WHERE t = ?1 AND dom != '` + subDomainOther + `'`
	return []stmt{
		{`INSERT INTO subdom_d (src, sub, t, dom, down_bytes, up_bytes, flows)
			SELECT src, sub, ?1, '` + subDomainOther + `', sum(down_bytes), sum(up_bytes), sum(flows) FROM (` + ranked + `) WHERE rn > ?2 GROUP BY src, sub
			ON CONFLICT DO UPDATE SET down_bytes = down_bytes + excluded.down_bytes, up_bytes = up_bytes + excluded.up_bytes, flows = flows + excluded.flows`,
			[]any{d, subDomainsPerDay}},
		{`DELETE FROM subdom_d WHERE t = ?1 AND (src, sub, dom) IN (SELECT src, sub, dom FROM (` + ranked + `) WHERE rn > ?2)`,
			[]any{d, subDomainsPerDay}},
	}
}

// SubscriberDomains returns one subscriber's top remote domains over the
// whole UTC days around [q.From, q.To).
func (s *FlowDB) SubscriberDomains(ctx context.Context, q store.SubscriberDomainsQuery) (*store.SubscriberDomains, error) {
	if err := checkRange(q.From, q.To); err != nil {
		return nil, err
	}
	if q.Subscriber == "" {
		return nil, &store.QueryError{Field: "subscriber", Msg: "a subscriber is required"}
	}
	switch {
	case q.N == 0:
		q.N = 10
	case q.N < 0 || q.N > 100:
		return nil, &store.QueryError{Field: "limit", Msg: fmt.Sprintf("%d is not within 1..100", q.N)}
	}
	f := floorDiv(q.From.Unix(), 86400) * 86400
	t := -floorDiv(-q.To.Unix(), 86400) * 86400
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
	res := &store.SubscriberDomains{From: time.Unix(f, 0).UTC(), To: time.Unix(t, 0).UTC()}
	var all []store.DomainUsage
	for rows.Next() {
		var u store.DomainUsage
		var down, up, flows int64
		if err := rows.Scan(&u.Domain, &down, &up, &flows); err != nil {
			return nil, fmt.Errorf("cannot read subscriber domains: %w", err)
		}
		u.DownloadBytes, u.UploadBytes, u.Flows = uint64(down), uint64(up), uint64(flows)
		addUsage(&res.Total, &u)
		if u.Domain == subDomainOther {
			addUsage(&res.Other, &u)
			continue
		}
		all = append(all, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read subscriber domains: %w", err)
	}
	slices.SortFunc(all, func(x, y store.DomainUsage) int {
		if c := cmp.Compare(y.DownloadBytes+y.UploadBytes, x.DownloadBytes+x.UploadBytes); c != 0 {
			return c
		}
		return cmp.Compare(x.Domain, y.Domain)
	})
	for i := range all {
		if i >= q.N {
			addUsage(&res.Other, &all[i])
			continue
		}
		res.Rows = append(res.Rows, all[i])
	}
	if res.Rows == nil {
		res.Rows = []store.DomainUsage{}
	}
	return res, nil
}

func addUsage(dst, u *store.DomainUsage) {
	dst.DownloadBytes += u.DownloadBytes
	dst.UploadBytes += u.UploadBytes
	dst.Flows += u.Flows
}
