package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flowbox/flowbox/store"
)

// The top-N rollups (top_h) are filled by the writer from the raw flows of
// each hour once it is over (rollupTop), not by a view at insert: a view
// would turn every flow into 13 rows (one a dimension) at the cost of more
// than half the insert rate, and keep every key.
const (
	// topGrace is how long after an hour ends its rollup waits for the
	// flows still on their way (later ones miss the rollup, not the raw
	// flows).
	topGrace = 5 * time.Minute
	// topHoursPerRound bounds the hours one round rolls up (a backfill
	// goes on at the next round).
	topHoursPerRound = 24
	// topEvery is how often the writer looks for hours to roll up.
	topEvery = time.Minute
)

// topDims are the dimensions of top_h, each with its key as the tuple
// (addr, peer, n, s) computed from a flow; the router's rows answer the
// direction too.
var topDims = []struct {
	dim store.Dimension
	key string
}{
	{store.DimLocalHost, "local, toIPv6('::'), toUInt64(0), ''"},
	{store.DimRemoteHost, "remote, toIPv6('::'), toUInt64(0), ''"},
	{store.DimRemoteAS, "toIPv6('::'), toIPv6('::'), toUInt64(remote_as), ''"},
	{store.DimApplication, "toIPv6('::'), toIPv6('::'), if(application = '', toUInt64(proto) * 65536 + service_port, toUInt64(0)), toString(application)"},
	{store.DimCountry, "toIPv6('::'), toIPv6('::'), toUInt64(0), toString(remote_country)"},
	{store.DimConversation, "local, remote, toUInt64(0), ''"},
	{store.DimSubscriber, "toIPv6('::'), toIPv6('::'), toUInt64(0), toString(subscriber)"},
	{store.DimProtocol, "toIPv6('::'), toIPv6('::'), toUInt64(proto), ''"},
	{store.DimDomain, "toIPv6('::'), toIPv6('::'), toUInt64(0), toString(domain)"},
	{store.DimRouter, "toIPv6('::'), toIPv6('::'), toUInt64(0), ''"},
	{store.DimInInterface, "toIPv6('::'), toIPv6('::'), toUInt64(in_if), ''"},
	{store.DimOutInterface, "toIPv6('::'), toIPv6('::'), toUInt64(out_if), ''"},
}

// topDoneUntil returns the end of the last hour rolled up (false: none).
func (r *Reader) topDoneUntil(ctx context.Context) (time.Time, bool, error) {
	out, err := r.c.Query(ctx, fmt.Sprintf("SELECT count(), toUnixTimestamp(max(t)) FROM %s.top_done WHERE site = %s FORMAT TabSeparated",
		r.c.cfg.Database, quote(r.site)))
	if err != nil {
		return time.Time{}, false, fmt.Errorf("cannot read the top-N rollups done: %w", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return time.Time{}, false, fmt.Errorf("cannot read the top-N rollups done: %q", out)
	}
	if f[0] == "0" {
		return time.Time{}, false, nil
	}
	s, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("cannot read the top-N rollups done: %w", err)
	}
	return time.Unix(s, 0).Add(time.Hour).UTC(), true, nil
}

// RollupTop rolls up the hours over topGrace before now that are not yet:
// from the one after the last done (or from the first flow's), oldest
// first, at most topHoursPerRound. It returns the hours rolled up.
func (r *Reader) RollupTop(ctx context.Context, now time.Time) (int, error) {
	next, ok, err := r.topDoneUntil(ctx)
	if err != nil {
		return 0, err
	}
	if !ok {
		out, err := r.c.Query(ctx, fmt.Sprintf("SELECT count(), toUnixTimestamp(toStartOfHour(min(t))) FROM %s.flows WHERE site = %s FORMAT TabSeparated",
			r.c.cfg.Database, quote(r.site)))
		if err != nil {
			return 0, fmt.Errorf("cannot find the first hour to roll up: %w", err)
		}
		f := strings.Fields(string(out))
		if len(f) != 2 || f[0] == "0" {
			return 0, nil // no flow yet
		}
		s, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cannot find the first hour to roll up: %w", err)
		}
		next = time.Unix(s, 0).UTC()
	}
	if oldest := now.Add(-r.c.cfg.RawTTL).Truncate(time.Hour); next.Before(oldest) {
		next = oldest // older raw flows are gone
	}
	n := 0
	for ; n < topHoursPerRound && !next.Add(time.Hour+topGrace).After(now); n++ {
		if err := r.rollupHour(ctx, next); err != nil {
			return n, err
		}
		next = next.Add(time.Hour)
	}
	return n, nil
}

// rollupHour fills top_h with hour h, one dimension a statement, and then
// records it in top_done. Each insert is named (its deduplication token):
// an hour rolled up again after a failure between the two is stored once.
func (r *Reader) rollupHour(ctx context.Context, h time.Time) error {
	db, site, k := r.c.cfg.Database, quote(r.site), r.c.cfg.TopK
	for _, d := range topDims {
		stmt := fmt.Sprintf(`INSERT INTO %[1]s.top_h (site, dim, t, src, dir, other, addr, peer, n, s, bytes, packets, flows)
SETTINGS insert_deduplication_token = 'top-%[2]s-%[3]d-%[4]d'
SELECT %[5]s, %[4]d, toDateTime(%[3]d), src, dir, o, if(o = 1, toIPv6('::'), addr), if(o = 1, toIPv6('::'), peer), if(o = 1, 0, n), if(o = 1, '', s),
    sum(b), sum(p), sum(f)
FROM (
    SELECT src, dir, addr, peer, n, s, b, p, f,
        toUInt8(row_number() OVER (PARTITION BY src, dir ORDER BY b DESC, addr, peer, n, s) > %[6]d) AS o
    FROM (
        SELECT src, dir, k.1 AS addr, k.2 AS peer, k.3 AS n, k.4 AS s,
            sum(bytes * if(sampling > 1, sampling, 1)) AS b, sum(packets * if(sampling > 1, sampling, 1)) AS p, count() AS f
        FROM %[1]s.flows ARRAY JOIN [tuple(%[7]s)] AS k
        WHERE site = %[5]s AND t >= fromUnixTimestamp64Milli(%[8]d) AND t < fromUnixTimestamp64Milli(%[9]d)
        GROUP BY src, dir, addr, peer, n, s
    )
)
GROUP BY src, dir, o, if(o = 1, toIPv6('::'), addr), if(o = 1, toIPv6('::'), peer), if(o = 1, 0, n), if(o = 1, '', s)`,
			db, r.site, h.Unix(), d.dim, site, k, d.key, h.UnixMilli(), h.Add(time.Hour).UnixMilli())
		if err := r.c.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("cannot roll up the %s of %s: %w", d.dim, h.Format(time.RFC3339), err)
		}
	}
	if err := r.c.Exec(ctx, fmt.Sprintf("INSERT INTO %s.top_done (site, t) SETTINGS insert_deduplication_token = 'topdone-%s-%d' VALUES (%s, toDateTime(%d))",
		db, r.site, h.Unix(), site, h.Unix())); err != nil {
		return fmt.Errorf("cannot record the rollup of %s: %w", h.Format(time.RFC3339), err)
	}
	return nil
}
