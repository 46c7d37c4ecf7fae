package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flowbox/flowbox/store"
)

// The top-N rollups (top_h by hour, top_m by minute) are filled by the
// writer from the raw flows of each hour and minute once it is over
// (RollupTop), not by a view at insert: a view would turn every flow into
// 12 rows (one a dimension) at the cost of more than half the insert rate,
// and keep every key.
// topGrain is one granularity of the top-N rollups.
type topGrain struct {
	table, done string        // the rollups and the steps done
	step        time.Duration // a day, an hour or a minute
	// res is the resolution of a list that reads the grain; cached is
	// the grain's place in the reader's doneCache.
	res    store.Resolution
	cached int
	// grace is how long after a step ends its rollup waits for the flows
	// still on their way (later ones miss the rollup, not the raw flows).
	grace time.Duration
	// perRound bounds the steps one round rolls up (a backfill goes on at
	// the next round).
	perRound int
	// back bounds how far before now a first round starts (0: from the
	// first flow kept).
	back time.Duration
}

var (
	topHours   = topGrain{table: "top_h", done: "top_done", step: time.Hour, res: store.ResHour, cached: 1, grace: 5 * time.Minute, perRound: 24}
	topMinutes = topGrain{table: "top_m", done: "top_m_done", step: time.Minute, res: store.ResMinute, cached: 2, grace: 45 * time.Second, perRound: 120, back: 2 * time.Hour}
	// topDays are made from the hours (rollupDays), not from raw flows.
	topDays = topGrain{table: "top_d", done: "top_d_done", step: 24 * time.Hour, res: store.ResDay, cached: 0, perRound: 31}
	// topGrains are the grains, coarsest first, in their cached order.
	topGrains = []topGrain{topDays, topHours, topMinutes}
)

// topEvery is how often the writer looks for hours and minutes to roll up:
// a top-N list reads the raw flows of what is not rolled up yet, the
// minute's grace and up to this more.
const topEvery = 20 * time.Second

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

// topDone returns the steps of g rolled up: from the start of the first
// to the end of the last (false: none).
func (r *Reader) topDone(ctx context.Context, g topGrain) (from, to time.Time, ok bool, err error) {
	out, err := r.c.Query(ctx, fmt.Sprintf("SELECT count(), toUnixTimestamp(min(t)), toUnixTimestamp(max(t)) FROM %s.%s WHERE site = %s FORMAT TabSeparated",
		r.c.cfg.Database, g.done, quote(r.site)))
	if err != nil {
		return from, to, false, fmt.Errorf("cannot read the top-N rollups done: %w", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		return from, to, false, fmt.Errorf("cannot read the top-N rollups done: %q", out)
	}
	if f[0] == "0" {
		return from, to, false, nil
	}
	lo, err1 := strconv.ParseInt(f[1], 10, 64)
	hi, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return from, to, false, fmt.Errorf("cannot read the top-N rollups done: %q", out)
	}
	return time.Unix(lo, 0).UTC(), time.Unix(hi, 0).Add(g.step).UTC(), true, nil
}

// doneTTL is how long a reader trusts the steps done it read: every top-N
// list asks, and the writer adds steps once a minute.
const doneTTL = 10 * time.Second

// doneCache holds the steps done of the three grains.
type doneCache struct {
	mu    sync.Mutex
	read  time.Time    // when (the reader's clock); zero: not read
	steps [3]doneSteps // days, hours, minutes
}

// doneSteps are the steps of a grain done: [from, to), when ok.
type doneSteps struct {
	from, to time.Time
	ok       bool
}

// topDoneAll returns the steps done of each grain (by topGrain.cached:
// days, hours, minutes), read at most every doneTTL.
func (r *Reader) topDoneAll(ctx context.Context) ([3]doneSteps, error) {
	r.done.mu.Lock()
	defer r.done.mu.Unlock()
	now := r.now()
	if r.done.read.IsZero() || now.Sub(r.done.read) >= doneTTL || now.Before(r.done.read) {
		for _, g := range topGrains {
			from, to, ok, err := r.topDone(ctx, g)
			if err != nil {
				return r.done.steps, err
			}
			r.done.steps[g.cached] = doneSteps{from, to, ok}
		}
		r.done.read = now
	}
	return r.done.steps, nil
}

// forgetDone makes the next list read the steps done again (after a
// rollup).
func (r *Reader) forgetDone() {
	r.done.mu.Lock()
	r.done.read = time.Time{}
	r.done.mu.Unlock()
}

// RollupTop rolls up the hours and the minutes over before now that are
// not yet (each a grace after its end, and none with flows the writer
// still holds: Ingest.Backlog): from the one after the last done (or
// from the first flow's; minutes from 2 hours ago at most), oldest first,
// at most a day of hours and 2 hours of minutes a round; then the UTC
// days whose hours are all done, a month of them at most (rollupDays).
// It returns the hours and days rolled up.
func (r *Reader) RollupTop(ctx context.Context, now time.Time) (int, error) {
	defer r.forgetDone()
	n, err := r.rollupGrain(ctx, topHours, now)
	if err != nil {
		return n, err
	}
	if _, err = r.rollupGrain(ctx, topMinutes, now); err != nil {
		return n, err
	}
	d, err := r.rollupDays(ctx)
	return n + d, err
}

// rollupDays makes the UTC days whose hours are all rolled up (top_h)
// and that are not yet, oldest first, from the day after the last done
// (or the first whole day of the hours), at most topDays.perRound.
func (r *Reader) rollupDays(ctx context.Context) (int, error) {
	hf, ht, hok, err := r.topDone(ctx, topHours)
	if err != nil || !hok {
		return 0, err
	}
	_, next, ok, err := r.topDone(ctx, topDays)
	if err != nil {
		return 0, err
	}
	if !ok {
		next = hf.Truncate(topDays.step) // a UTC midnight: so is the zero time
		if next.Before(hf) {
			next = next.Add(topDays.step)
		}
	}
	n := 0
	for ; n < topDays.perRound && !next.Add(topDays.step).After(ht); n++ {
		if err := r.rollupDay(ctx, next); err != nil {
			return n, err
		}
		next = next.Add(topDays.step)
	}
	return n, nil
}

// rollupDay fills top_d with the day at t from its hours, every
// dimension in one statement: each day, dimension, source and direction
// keeps its top-k keys by bytes, and the rest (the hours' other rows and
// the keys past k) becomes one other row. Then it records the day as
// done. Both inserts are named: a day made again after a failure between
// them is stored once.
func (r *Reader) rollupDay(ctx context.Context, t time.Time) error {
	db, site := r.c.cfg.Database, quote(r.site)
	stmt := fmt.Sprintf(`INSERT INTO %[1]s.top_d (site, dim, t, src, dir, other, addr, peer, n, s, bytes, packets, flows)
SETTINGS insert_deduplication_token = 'top_d-%[2]s-%[3]d'
SELECT %[4]s, dim, toDateTime(%[3]d), src, dir, o, if(o = 1, toIPv6('::'), addr), if(o = 1, toIPv6('::'), peer), if(o = 1, 0, n), if(o = 1, '', s),
    sum(b), sum(p), sum(f)
FROM (
    SELECT dim, src, dir, addr, peer, n, s, b, p, f,
        toUInt8(other = 1 OR row_number() OVER (PARTITION BY dim, src, dir, other ORDER BY b DESC, addr, peer, n, s) > %[5]d) AS o
    FROM (
        SELECT dim, src, dir, other, addr, peer, n, s, sum(bytes) AS b, sum(packets) AS p, sum(flows) AS f
        FROM %[1]s.top_h
        WHERE site = %[4]s AND t >= toDateTime(%[3]d) AND t < toDateTime(%[6]d)
        GROUP BY dim, src, dir, other, addr, peer, n, s
    )
)
GROUP BY dim, src, dir, o, if(o = 1, toIPv6('::'), addr), if(o = 1, toIPv6('::'), peer), if(o = 1, 0, n), if(o = 1, '', s)`,
		db, r.site, t.Unix(), site, r.c.cfg.TopK, t.Add(topDays.step).Unix())
	if err := r.c.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("cannot roll up the top-N lists of %s: %w", t.Format(time.DateOnly), err)
	}
	if err := r.c.Exec(ctx, fmt.Sprintf("INSERT INTO %s.top_d_done (site, t) SETTINGS insert_deduplication_token = 'top_d_done-%s-%d' VALUES (%s, toDateTime(%d))",
		db, r.site, t.Unix(), site, t.Unix())); err != nil {
		return fmt.Errorf("cannot record the rollup of %s: %w", t.Format(time.DateOnly), err)
	}
	return nil
}

func (r *Reader) rollupGrain(ctx context.Context, g topGrain, now time.Time) (int, error) {
	_, next, ok, err := r.topDone(ctx, g)
	if err != nil {
		return 0, err
	}
	if !ok {
		out, err := r.c.Query(ctx, fmt.Sprintf("SELECT count(), toUnixTimestamp(min(t)) FROM %s.flows WHERE site = %s FORMAT TabSeparated",
			r.c.cfg.Database, quote(r.site)))
		if err != nil {
			return 0, fmt.Errorf("cannot find the first flow to roll up: %w", err)
		}
		f := strings.Fields(string(out))
		if len(f) != 2 || f[0] == "0" {
			return 0, nil // no flow yet
		}
		s, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cannot find the first flow to roll up: %w", err)
		}
		next = time.Unix(s, 0).UTC().Truncate(g.step)
		if g.back > 0 && next.Before(now.Add(-g.back)) {
			next = now.Add(-g.back).Truncate(g.step)
		}
	}
	if oldest := now.Add(-r.c.cfg.RawTTL).Truncate(g.step); next.Before(oldest) {
		next = oldest // older raw flows are gone
	}
	// The flows the writer still holds (ClickHouse down or slow): the
	// steps they are in wait for them.
	until := now.Add(-g.grace)
	if r.backlog != nil {
		if t, ok := r.backlog(); ok && t.Before(until) {
			until = t
		}
	}
	n := 0
	for ; n < g.perRound && !next.Add(g.step).After(until); n++ {
		if err := r.rollupStep(ctx, g, next); err != nil {
			return n, err
		}
		next = next.Add(g.step)
	}
	return n, nil
}

// rollupStep fills g's table with the step at t, one dimension a
// statement, and then records it as done. Each insert is named (its
// deduplication token): a step rolled up again after a failure between
// the two is stored once.
func (r *Reader) rollupStep(ctx context.Context, g topGrain, t time.Time) error {
	db, site, k := r.c.cfg.Database, quote(r.site), r.c.cfg.TopK
	out, err := r.c.Query(ctx, fmt.Sprintf("SELECT count() FROM %s.flows WHERE site = %s AND t >= fromUnixTimestamp64Milli(%d) AND t < fromUnixTimestamp64Milli(%d) FORMAT TabSeparated",
		db, site, t.UnixMilli(), t.Add(g.step).UnixMilli()))
	if err != nil {
		return fmt.Errorf("cannot roll up %s: %w", t.Format(time.RFC3339), err)
	}
	dims := topDims
	if strings.TrimSpace(string(out)) == "0" {
		dims = nil // a step without flows: only recorded
	}
	for _, d := range dims {
		stmt := fmt.Sprintf(`INSERT INTO %[1]s.%[10]s (site, dim, t, src, dir, other, addr, peer, n, s, bytes, packets, flows)
SETTINGS insert_deduplication_token = '%[10]s-%[2]s-%[3]d-%[4]d'
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
			db, r.site, t.Unix(), d.dim, site, k, d.key, t.UnixMilli(), t.Add(g.step).UnixMilli(), g.table)
		if err := r.c.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("cannot roll up the %s of %s: %w", d.dim, t.Format(time.RFC3339), err)
		}
	}
	if err := r.c.Exec(ctx, fmt.Sprintf("INSERT INTO %s.%s (site, t) SETTINGS insert_deduplication_token = '%s-%s-%d' VALUES (%s, toDateTime(%d))",
		db, g.done, g.done, r.site, t.Unix(), site, t.Unix())); err != nil {
		return fmt.Errorf("cannot record the rollup of %s: %w", t.Format(time.RFC3339), err)
	}
	return nil
}
