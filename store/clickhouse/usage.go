package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/flowbox/flowbox/store"
)

// usageSource returns the rows of the usage tables the span reads, with
// e, the end of each row's hour or day, as flowdb reads them: whole UTC
// days by day and the hours at both ends by hour.
func (r *Reader) usageSource(sp store.UsageSpan, where string) string {
	const cols = "src, sub, down_bytes, up_bytes, down_packets, up_packets, flows"
	db := r.c.cfg.Database
	if sp.Resolution == store.ResDay {
		return fmt.Sprintf("SELECT %s, toInt64(toUnixTimestamp(t)) + 86400 AS e FROM %s.usage_d WHERE t >= toDateTime(%d) AND t < toDateTime(%d)%s", cols, db, sp.From, sp.To, where)
	}
	if sp.D1 >= sp.D0 {
		return fmt.Sprintf("SELECT %s, toInt64(toUnixTimestamp(t)) + 3600 AS e FROM %s.usage_h WHERE t >= toDateTime(%d) AND t < toDateTime(%d)%s", cols, db, sp.From, sp.To, where)
	}
	return fmt.Sprintf("SELECT %s, toInt64(toUnixTimestamp(t)) + 3600 AS e FROM %s.usage_h WHERE ((t >= toDateTime(%d) AND t < toDateTime(%d)) OR (t >= toDateTime(%d) AND t < toDateTime(%d)))%s", cols, db, sp.From, sp.D1, sp.D0, sp.To, where) +
		fmt.Sprintf(" UNION ALL SELECT %s, toInt64(toUnixTimestamp(t)) + 86400 AS e FROM %s.usage_d WHERE t >= toDateTime(%d) AND t < toDateTime(%d)%s", cols, db, sp.D1, sp.D0, where)
}

// SubscriberUsage returns the traffic of each subscriber over the period,
// per source, sorted and paged, with the count and totals of every match,
// from the hourly and daily usage, as flowdb answers it.
func (r *Reader) SubscriberUsage(ctx context.Context, q store.UsageQuery) (*store.UsageResult, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	order := "d + u DESC, sub, src"
	switch q.Sort {
	case store.UsageByDownload:
		order = "d DESC, sub, src"
	case store.UsageByUpload:
		order = "u DESC, sub, src"
	case store.UsageByName:
		order = "lower(sub), sub, src" // ASCII case folding, as SQLite's NOCASE
	}
	sp := store.NewUsageSpan(q.From, q.To, r.now().Add(-r.c.cfg.UsageHourTTL))
	where := " AND site = " + quote(r.site) + inList("src", numbers(q.Sources))
	if q.Search != "" {
		where += " AND positionCaseInsensitive(sub, " + quote(q.Search) + ") > 0"
	}
	grouped := "SELECT src, sub, sum(down_bytes) AS d, sum(up_bytes) AS u, sum(down_packets) AS dp, sum(up_packets) AS up, sum(flows) AS fl, max(e) AS last FROM (" +
		r.usageSource(sp, where) + ") GROUP BY src, sub"
	out := &store.UsageResult{From: time.Unix(sp.From, 0).UTC(), To: time.Unix(sp.To, 0).UTC(), Resolution: sp.Resolution, Rows: []store.SubscriberUsage{}}
	tot, err := r.c.Query(ctx, "SELECT count(), sum(d), sum(u), sum(dp), sum(up), sum(fl) FROM ("+grouped+") FORMAT RowBinary")
	if err != nil {
		return nil, fmt.Errorf("cannot read subscriber usage from clickhouse: %w", err)
	}
	rr := &rowReader{b: tot}
	out.Count = int(rr.u64())
	out.Total = store.SubscriberUsage{DownloadBytes: rr.u64(), UploadBytes: rr.u64(), DownloadPackets: rr.u64(), UploadPackets: rr.u64(), Flows: rr.u64()}
	if rr.err != nil || len(rr.b) != 0 {
		return nil, fmt.Errorf("cannot read subscriber usage from clickhouse: %d bytes of totals", len(tot))
	}
	page, err := r.c.Query(ctx, fmt.Sprintf("SELECT src, sub, d, u, dp, up, fl, last FROM (%s) ORDER BY %s LIMIT %d OFFSET %d FORMAT RowBinary",
		grouped, order, q.Limit, q.Offset))
	if err != nil {
		return nil, fmt.Errorf("cannot read subscriber usage from clickhouse: %w", err)
	}
	rr = &rowReader{b: page}
	names := map[string]string{}
	for len(rr.b) > 0 && rr.err == nil {
		u := store.SubscriberUsage{Source: int64(rr.u64()), Subscriber: rr.str(names)}
		u.DownloadBytes, u.UploadBytes, u.DownloadPackets, u.UploadPackets, u.Flows = rr.u64(), rr.u64(), rr.u64(), rr.u64(), rr.u64()
		u.LastSeen = time.Unix(int64(rr.u64()), 0).UTC()
		out.Rows = append(out.Rows, u)
	}
	if rr.err != nil {
		return nil, fmt.Errorf("cannot read subscriber usage from clickhouse: %w", rr.err)
	}
	return out, nil
}

// SubscriberUsageSeries returns a subscriber's download and upload bytes
// per hour or per day over the period (steps without traffic are zero).
func (r *Reader) SubscriberUsageSeries(ctx context.Context, q store.UsageSeriesQuery) (*store.UsageSeries, error) {
	out, f, t, err := q.Check(r.now().Add(-r.c.cfg.UsageHourTTL), r.c.cfg.UsageHourTTL)
	if err != nil {
		return nil, err
	}
	table, span := "usage_d", int64(out.Step/time.Second)
	if out.Resolution == store.ResHour {
		table = "usage_h"
	}
	b, err := r.c.Query(ctx, fmt.Sprintf("SELECT toInt64(toUnixTimestamp(t)) AS at, sum(down_bytes), sum(up_bytes) FROM %s.%s"+
		" WHERE site = %s AND t >= toDateTime(%d) AND t < toDateTime(%d) AND sub = %s%s GROUP BY at FORMAT RowBinary",
		r.c.cfg.Database, table, quote(r.site), f, t, quote(q.Subscriber), inList("src", numbers(q.Sources))))
	if err != nil {
		return nil, fmt.Errorf("cannot read the usage of %q from clickhouse: %w", q.Subscriber, err)
	}
	rr := &rowReader{b: b}
	for len(rr.b) > 0 && rr.err == nil {
		at, d, u := int64(rr.u64()), rr.u64(), rr.u64()
		if i := (at - f) / span; rr.err == nil && i >= 0 && int(i) < len(out.Times) {
			out.DownloadBytes[i], out.UploadBytes[i] = d, u
		}
	}
	if rr.err != nil {
		return nil, fmt.Errorf("cannot read the usage of %q from clickhouse: %w", q.Subscriber, rr.err)
	}
	return out, nil
}

// SubscriberDomains returns one subscriber's top remote domains over the
// whole UTC days around [q.From, q.To), ranked as flowdb ranks them.
func (r *Reader) SubscriberDomains(ctx context.Context, q store.SubscriberDomainsQuery) (*store.SubscriberDomains, error) {
	f, t, err := q.Check()
	if err != nil {
		return nil, err
	}
	b, err := r.c.Query(ctx, fmt.Sprintf("SELECT dom, sum(down_bytes), sum(up_bytes), sum(flows) FROM %s.subdom_d"+
		" WHERE site = %s AND sub = %s AND t >= toDateTime(%d) AND t < toDateTime(%d)%s GROUP BY dom FORMAT RowBinary",
		r.c.cfg.Database, quote(r.site), quote(q.Subscriber), f, t, inList("src", numbers(q.Sources))))
	if err != nil {
		return nil, fmt.Errorf("cannot read the domains of %q from clickhouse: %w", q.Subscriber, err)
	}
	rr := &rowReader{b: b}
	names := map[string]string{}
	var all []store.DomainUsage
	for len(rr.b) > 0 && rr.err == nil {
		all = append(all, store.DomainUsage{Domain: rr.str(names), DownloadBytes: rr.u64(), UploadBytes: rr.u64(), Flows: rr.u64()})
	}
	if rr.err != nil {
		return nil, fmt.Errorf("cannot read the domains of %q from clickhouse: %w", q.Subscriber, rr.err)
	}
	return store.RankDomains(f, t, all, q.N), nil
}
