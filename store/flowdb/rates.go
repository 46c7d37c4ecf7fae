package flowdb

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowbox/flowbox/store"
)

// 5-minute rates, for the percentiles and peaks of reports (issue 16):
// WISPs pay transit on the 95th percentile of 5-minute rates and plan
// towers from peaks, so every router, interface and subscriber keeps one
// sample per 5 minutes for as long as the hour rollups (a year by
// default). The samples come from the aggregator at each rollup flush
// (rate5, additive, a few thousand upserts a minute for a thousand
// subscribers); once a UTC day is over they are packed into one row per
// entity and day (rate5_d, about 1.5 KB for a busy subscriber). A month of
// a thousand subscribers reads about 30 000 such rows; the summaries of
// closed calendar months are kept (rate_sum), so that a 12-month report
// reads twelve rows per entity.

// Entity kinds of the rate tables (kind column).
const (
	rateRouter     = 1
	rateInterface  = 2
	rateSubscriber = 3
	rateFleet      = 4 // rate_sum only: every router summed, src 0
)

const (
	rateSlot    = 300              // seconds per sample
	slotsPerDay = 86400 / rateSlot // 288
	rateBlobV1  = 1                // version byte of rate5_d.x
	rateGrace   = 10 * time.Minute // after a UTC day ends, before it is packed
	rateSettle  = time.Hour        // after a period ends, before its summary is kept
)

// rateKindOf maps a report kind to the kind column.
func rateKindOf(kind string) (int, error) {
	switch kind {
	case store.ReportByRouter:
		return rateRouter, nil
	case store.ReportByInterface:
		return rateInterface, nil
	case store.ReportBySubscriber, "":
		return rateSubscriber, nil
	case store.ReportByFleet:
		return rateFleet, nil
	}
	return 0, &store.QueryError{Field: "by", Msg: fmt.Sprintf("%q is not subscriber, router, interface or fleet", kind)}
}

// rateKey is one entity of the rate tables.
type rateKey struct {
	kind int
	src  int64
	k    string
}

// rateAB is a sample: download (in) and upload (out) bytes.
type rateAB struct{ a, b uint64 }

// writeRates adds the flush's 5-minute samples to rate5.
func (a *aggregator) writeRates(ctx context.Context, tx *sql.Tx) error {
	type key struct {
		kind int
		src  int64
		k    string
		t    int64
	}
	sums := map[key]*rateAB{}
	add := func(k key, down bool, n uint64) {
		s := sums[k]
		if s == nil {
			s = &rateAB{}
			sums[k] = s
		}
		if down {
			s.a += n
		} else {
			s.b += n
		}
	}
	slot := func(t int64) int64 { return store.FloorDiv(t, rateSlot) * rateSlot }
	for id, b := range a.buckets {
		if b.dir == store.DirDownload || b.dir == store.DirUpload {
			add(key{rateRouter, b.src, "", slot(b.t)}, b.dir == store.DirDownload, a.tot[id].bytes)
		}
	}
	for e := range a.ifs.all() {
		k, c := e.key, &e.c
		if k.ifx == 0 || k.ifx == otherIf {
			continue // the router itself, or interfaces beyond the bound
		}
		ts := a.ts[k.ts]
		add(key{rateInterface, ts.src, strconv.FormatUint(uint64(k.ifx), 10), slot(ts.t)}, k.side == 0, c.bytes)
	}
	for e := range a.sub.all() {
		if e.key.kind != valName {
			continue
		}
		b := a.buckets[e.key.b]
		if b.dir != store.DirDownload && b.dir != store.DirUpload {
			continue
		}
		add(key{rateSubscriber, b.src, a.names.names[e.key.v], slot(b.t)}, b.dir == store.DirDownload, e.c.bytes)
	}
	if len(sums) == 0 {
		return nil
	}
	st, err := tx.PrepareContext(ctx, "INSERT INTO rate5 (kind, src, k, t, a, b) VALUES (?,?,?,?,?,?)"+
		" ON CONFLICT DO UPDATE SET a = a + excluded.a, b = b + excluded.b")
	if err != nil {
		return err
	}
	defer st.Close()
	for k, s := range sums {
		if _, err := st.ExecContext(ctx, k.kind, k.src, k.k, k.t, clampInt(s.a), clampInt(s.b)); err != nil {
			return err
		}
	}
	return nil
}

// encodeRateDay packs a day's samples (rate5_d.x).
func encodeRateDay(dst []byte, day *[slotsPerDay]rateAB) []byte {
	dst = append(dst, rateBlobV1)
	for i := range day {
		dst = binary.AppendUvarint(dst, day[i].a)
		dst = binary.AppendUvarint(dst, day[i].b)
	}
	return dst
}

// errRateBlob is a damaged rate5_d row.
var errRateBlob = errors.New("damaged 5-minute samples")

// decodeRateDay calls fn(slot, a, b) for each non-zero sample of x.
func decodeRateDay(x []byte, fn func(i int, a, b uint64)) error {
	if len(x) == 0 || x[0] != rateBlobV1 {
		return errRateBlob
	}
	x = x[1:]
	for i := 0; i < slotsPerDay; i++ {
		a, n := binary.Uvarint(x)
		if n <= 0 {
			return errRateBlob
		}
		b, m := binary.Uvarint(x[n:])
		if m <= 0 {
			return errRateBlob
		}
		x = x[n+m:]
		if a|b != 0 {
			fn(i, a, b)
		}
	}
	if len(x) != 0 {
		return errRateBlob
	}
	return nil
}

// packRates moves the samples of every UTC day that ended over rateGrace
// ago from rate5 into rate5_d (adding to a row already there: late flows),
// at most a few days per call, and drops the kept summaries of periods
// that overlap a packed day (they may have changed).
func (s *FlowDB) packRates(ctx context.Context, now time.Time) error {
	cut := store.FloorDiv(now.Add(-rateGrace).Unix(), 86400) * 86400 // start of the day still open
	for range 3 {
		var minT sql.NullInt64
		if err := s.w.QueryRowContext(ctx, "SELECT min(t) FROM rate5").Scan(&minT); err != nil {
			return fmt.Errorf("cannot pack 5-minute samples: %w", err)
		}
		if !minT.Valid || minT.Int64 >= cut {
			return nil
		}
		if err := s.packRateDay(ctx, store.FloorDiv(minT.Int64, 86400)*86400); err != nil {
			return fmt.Errorf("cannot pack 5-minute samples: %w", store.DescribeWriteError(err))
		}
	}
	return nil
}

func (s *FlowDB) packRateDay(ctx context.Context, d int64) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, "SELECT kind, src, k, t, a, b FROM rate5 WHERE t >= ? AND t < ?", d, d+86400)
	if err != nil {
		return err
	}
	days := map[rateKey]*[slotsPerDay]rateAB{}
	for rows.Next() {
		var k rateKey
		var t, a, b int64
		if err := rows.Scan(&k.kind, &k.src, &k.k, &t, &a, &b); err != nil {
			rows.Close()
			return err
		}
		day := days[k]
		if day == nil {
			day = new([slotsPerDay]rateAB)
			days[k] = day
		}
		i := (t - d) / rateSlot
		day[i].a += uint64(a)
		day[i].b += uint64(b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	get, err := tx.PrepareContext(ctx, "SELECT x FROM rate5_d WHERE kind = ? AND src = ? AND k = ? AND d = ?")
	if err != nil {
		return err
	}
	defer get.Close()
	put, err := tx.PrepareContext(ctx, "INSERT OR REPLACE INTO rate5_d (kind, src, k, d, x) VALUES (?,?,?,?,?)")
	if err != nil {
		return err
	}
	defer put.Close()
	key, err := tx.PrepareContext(ctx, "INSERT INTO rate5_keys (kind, src, k, first, last) VALUES (?1,?2,?3,?4,?4)"+
		" ON CONFLICT DO UPDATE SET first = min(first, excluded.first), last = max(last, excluded.last)")
	if err != nil {
		return err
	}
	defer key.Close()
	var buf []byte
	for k, day := range days {
		var old []byte
		switch err := get.QueryRowContext(ctx, k.kind, k.src, k.k, d).Scan(&old); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		default:
			if derr := decodeRateDay(old, func(i int, a, b uint64) { day[i].a += a; day[i].b += b }); derr != nil {
				s.logger.Warn("replacing damaged 5-minute samples", "day", time.Unix(d, 0).UTC().Format(time.DateOnly), "key", k.k)
			}
		}
		buf = encodeRateDay(buf[:0], day)
		if _, err := put.ExecContext(ctx, k.kind, k.src, k.k, d, buf); err != nil {
			return err
		}
		if _, err := key.ExecContext(ctx, k.kind, k.src, k.k, d); err != nil {
			return err
		}
	}
	for _, q := range []string{
		"DELETE FROM rate5 WHERE t >= ?1 AND t < ?1 + 86400",
		"DELETE FROM rate_sum WHERE f < ?1 + 86400 AND t > ?1",
		"DELETE FROM rate_done WHERE f < ?1 + 86400 AND t > ?1",
	} {
		if _, err := tx.ExecContext(ctx, q, d); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.rateGen.Add(1)
	return nil
}

// RateSummaries returns the totals, peaks and percentiles of the 5-minute
// samples of every router, interface or subscriber (or of the fleet) over
// a period. Samples count from each source's first stored 5 minutes (the
// fleet's: the first of any source) to the last finished 5 minutes;
// before, flowbox did not see the source, and zeros would lower its
// percentile. A kept summary answers a closed period asked before.
func (s *FlowDB) RateSummaries(ctx context.Context, q store.RateQuery) ([]store.RateSummary, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	kind, err := rateKindOf(q.Kind)
	if err != nil {
		return nil, err
	}
	f, t := q.From.Unix(), q.To.Unix()
	now := s.now()
	// A read-only store (flowbox report beside serve) reads kept
	// summaries but keeps none: it has no writer.
	keep := q.Keep && !q.To.After(now.Add(-rateSettle))
	keeping := keep && !s.readOnly
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot read 5-minute samples: %w", err)
	}
	defer conn.Close()
	if keep {
		out, ok, err := keptRates(ctx, conn, kind, f, t, q.Percentile, q.Sources)
		if err != nil || ok {
			return trimApps(out, q.Apps), err
		}
	}
	gen := s.rateGen.Load()
	rr, err := newRateReader(ctx, conn, f, t, store.FloorDiv(now.Unix(), rateSlot)*rateSlot)
	if err != nil {
		return nil, err
	}
	defer rr.close()
	sources := q.Sources
	if keeping {
		sources = nil // keep every entity; filter below
	}
	var out []store.RateSummary
	if kind == rateFleet {
		sum, err := rr.fleet(ctx, sources, q.Percentile)
		if err != nil {
			return nil, err
		}
		out = []store.RateSummary{sum}
	} else if out, err = rr.each(ctx, kind, sources, q.Percentile); err != nil {
		return nil, err
	}
	if kind == rateSubscriber && (keeping || q.Apps > 0) {
		n := q.Apps
		if keeping {
			n = subAppsPerDay
		}
		apps, err := subscriberApps(ctx, conn, q.From, q.To, sources, n)
		if err != nil {
			return nil, err
		}
		by := make(map[rateKey][]store.AppShare, len(apps))
		for _, a := range apps {
			by[rateKey{src: a.Source, k: a.Subscriber}] = a.Apps
		}
		for i := range out {
			out[i].Apps = by[rateKey{src: out[i].Source, k: out[i].Key}]
		}
	}
	if keeping {
		if err := s.keepRates(ctx, gen, kind, f, t, q.Percentile, out); err != nil {
			s.logger.Warn("cannot keep a report summary", "err", err)
		}
		out = filterSources(out, q.Sources)
	}
	return trimApps(out, q.Apps), nil
}

// trimApps keeps the n largest applications of each summary.
func trimApps(out []store.RateSummary, n int) []store.RateSummary {
	for i := range out {
		if len(out[i].Apps) > n {
			out[i].Apps = out[i].Apps[:n:n]
		}
		if n == 0 {
			out[i].Apps = nil
		}
	}
	return out
}

// encodeApps packs applications for rate_sum.apps: for each, its name's
// length and name, and its bytes, as uvarints.
func encodeApps(apps []store.AppShare) []byte {
	out := []byte{}
	for _, a := range apps {
		out = binary.AppendUvarint(out, uint64(len(a.App)))
		out = append(out, a.App...)
		out = binary.AppendUvarint(out, a.Bytes)
	}
	return out
}

// decodeApps is the inverse of encodeApps.
func decodeApps(x []byte) ([]store.AppShare, error) {
	var out []store.AppShare
	for len(x) > 0 {
		l, n := binary.Uvarint(x)
		if n <= 0 || uint64(len(x)-n) < l {
			return nil, errors.New("damaged kept applications")
		}
		name := string(x[n : n+int(l)])
		x = x[n+int(l):]
		b, m := binary.Uvarint(x)
		if m <= 0 {
			return nil, errors.New("damaged kept applications")
		}
		x = x[m:]
		out = append(out, store.AppShare{App: name, Bytes: b})
	}
	return out, nil
}

// filterSources keeps the summaries of sources (all when empty).
func filterSources(out []store.RateSummary, sources []int64) []store.RateSummary {
	if len(sources) == 0 {
		return out
	}
	return slices.DeleteFunc(out, func(r store.RateSummary) bool { return !slices.Contains(sources, r.Source) })
}

// keptRates returns the kept summaries of a period, ok false when there
// are none.
func keptRates(ctx context.Context, conn *sql.Conn, kind int, f, t int64, pct float64, sources []int64) ([]store.RateSummary, bool, error) {
	var made int64
	switch err := conn.QueryRowContext(ctx, "SELECT made FROM rate_done WHERE kind = ? AND f = ? AND t = ? AND pct = ?", kind, f, t, pct).Scan(&made); {
	case errors.Is(err, sql.ErrNoRows):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("cannot read kept report summaries: %w", err)
	}
	rows, err := conn.QueryContext(ctx, `SELECT src, k, a, b, peak_a, peak_a_t, peak_b, peak_b_t, pct_a, pct_b, samples, apps
		FROM rate_sum WHERE kind = ? AND f = ? AND t = ? AND pct = ? ORDER BY src, k`, kind, f, t, pct)
	if err != nil {
		return nil, false, fmt.Errorf("cannot read kept report summaries: %w", err)
	}
	defer rows.Close()
	var out []store.RateSummary
	for rows.Next() {
		var r store.RateSummary
		var a, b, pa, pat, pb, pbt, qa, qb int64
		var apps []byte
		if err := rows.Scan(&r.Source, &r.Key, &a, &b, &pa, &pat, &pb, &pbt, &qa, &qb, &r.Samples, &apps); err != nil {
			return nil, false, fmt.Errorf("cannot read kept report summaries: %w", err)
		}
		if r.Apps, err = decodeApps(apps); err != nil {
			return nil, false, fmt.Errorf("cannot read kept report summaries: %w", err)
		}
		r.A, r.B = uint64(a), uint64(b)
		r.PeakA, r.PeakB = slotRate(uint64(pa), pat), slotRate(uint64(pb), pbt)
		r.PctA, r.PctB = slotBPS(uint64(qa)), slotBPS(uint64(qb))
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("cannot read kept report summaries: %w", err)
	}
	return filterSources(out, sources), true, nil
}

// keepRates stores the summaries of a closed period, unless samples were
// packed since they were read (gen changed: a late day may have changed
// them).
func (s *FlowDB) keepRates(ctx context.Context, gen uint64, kind int, f, t int64, pct float64, out []store.RateSummary) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.DescribeWriteError(err)
	}
	defer tx.Rollback()
	if s.rateGen.Load() != gen {
		return nil
	}
	st, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO rate_sum (kind, f, t, pct, src, k, a, b,
		peak_a, peak_a_t, peak_b, peak_b_t, pct_a, pct_b, samples, apps) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return store.DescribeWriteError(err)
	}
	defer st.Close()
	at := func(r store.Rate) int64 {
		if r.At.IsZero() {
			return 0
		}
		return r.At.Unix()
	}
	for _, r := range out {
		if _, err := st.ExecContext(ctx, kind, f, t, pct, r.Source, r.Key, clampInt(r.A), clampInt(r.B),
			clampInt(bpsSlot(r.PeakA.BPS)), at(r.PeakA), clampInt(bpsSlot(r.PeakB.BPS)), at(r.PeakB),
			clampInt(bpsSlot(r.PctA)), clampInt(bpsSlot(r.PctB)), r.Samples, encodeApps(r.Apps)); err != nil {
			return store.DescribeWriteError(err)
		}
	}
	if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO rate_done (kind, f, t, pct, made) VALUES (?,?,?,?,?)",
		kind, f, t, pct, s.now().Unix()); err != nil {
		return store.DescribeWriteError(err)
	}
	return store.DescribeWriteError(tx.Commit())
}

// slotBPS converts the bytes of one 5-minute sample to bits per second.
func slotBPS(bytes uint64) float64 { return store.SlotBPS(bytes) }

// bpsSlot is the inverse of slotBPS (exact for values slotBPS made).
func bpsSlot(bps float64) uint64 { return uint64(math.Round(bps * rateSlot / 8)) }

// slotRate is store.SlotRate.
func slotRate(bytes uint64, t int64) store.Rate { return store.SlotRate(bytes, t) }

// rateReader reads the samples of entities over one period [f, t).
type rateReader struct {
	f, t, end int64 // period; end: the end of the last finished sample
	days, cur *sql.Stmt
	packed    *sql.Stmt // the entities of rate5_d with days in the period
	nextSrc   *sql.Stmt // loose index scan of rate5: the next source
	nextKey   *sql.Stmt // and the next entity of a source
	firstSlot *sql.Stmt // a source's first router sample
	firstCur  *sql.Stmt
	a, b, tmp []uint64 // by sample of the period
	starts    map[int64]int64
	stmts     []*sql.Stmt
}

func newRateReader(ctx context.Context, conn *sql.Conn, f, t, end int64) (*rateReader, error) {
	rr := &rateReader{f: f, t: t, end: end, starts: map[int64]int64{}}
	n := int((t - f) / rateSlot)
	rr.a, rr.b, rr.tmp = make([]uint64, n), make([]uint64, n), make([]uint64, 0, n)
	prep := func(dst **sql.Stmt, q string) error {
		st, err := conn.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("cannot read 5-minute samples: %w", err)
		}
		*dst = st
		rr.stmts = append(rr.stmts, st)
		return nil
	}
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&rr.days, "SELECT d, x FROM rate5_d WHERE kind = ? AND src = ? AND k = ? AND d >= ? AND d < ?"},
		{&rr.cur, "SELECT t, a, b FROM rate5 WHERE kind = ? AND src = ? AND k = ? AND t >= ? AND t < ?"},
		{&rr.packed, "SELECT src, k FROM rate5_keys WHERE kind = ? AND last >= ? AND first < ?"},
		{&rr.nextSrc, "SELECT src, k FROM rate5 WHERE kind = ?1 AND src > ?2 ORDER BY src, k LIMIT 1"},
		{&rr.nextKey, "SELECT src, k FROM rate5 WHERE kind = ?1 AND src = ?2 AND k > ?3 ORDER BY k LIMIT 1"},
		{&rr.firstSlot, "SELECT d, x FROM rate5_d WHERE kind = 1 AND src = ? AND k = '' ORDER BY d LIMIT 1"},
		{&rr.firstCur, "SELECT min(t) FROM rate5 WHERE kind = 1 AND src = ? AND k = ''"},
	} {
		if err := prep(p.dst, p.q); err != nil {
			rr.close()
			return nil, err
		}
	}
	return rr, nil
}

func (rr *rateReader) close() {
	for _, st := range rr.stmts {
		st.Close()
	}
}

// keys returns the entities of a kind with samples in the period (of
// sources, or all), in order: those of rate5_d from rate5_keys, those of
// rate5 (a day or two) by a loose index scan, two seeks per entity.
func (rr *rateReader) keys(ctx context.Context, kind int, sources []int64) ([]rateKey, error) {
	var out []rateKey
	keep := func(src int64) bool { return len(sources) == 0 || slices.Contains(sources, src) }
	rows, err := rr.packed.QueryContext(ctx, kind, store.FloorDiv(rr.f, 86400)*86400, rr.t)
	if err != nil {
		return nil, fmt.Errorf("cannot list report entities: %w", err)
	}
	for rows.Next() {
		k := rateKey{kind: kind}
		if err := rows.Scan(&k.src, &k.k); err != nil {
			rows.Close()
			return nil, fmt.Errorf("cannot list report entities: %w", err)
		}
		if keep(k.src) {
			out = append(out, k)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot list report entities: %w", err)
	}
	next := func(st *sql.Stmt, args ...any) (rateKey, bool, error) {
		r := rateKey{kind: kind}
		switch err := st.QueryRowContext(ctx, args...).Scan(&r.src, &r.k); {
		case errors.Is(err, sql.ErrNoRows):
			return r, false, nil
		case err != nil:
			return r, false, fmt.Errorf("cannot list report entities: %w", err)
		}
		return r, true, nil
	}
	src := int64(math.MinInt64)
	for {
		k, ok, err := next(rr.nextSrc, kind, src)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		src = k.src
		for ok {
			if keep(k.src) {
				out = append(out, k)
			}
			if k, ok, err = next(rr.nextKey, kind, src, k.k); err != nil {
				return nil, err
			}
		}
	}
	if kind == rateRouter {
		for _, src := range sources {
			out = append(out, rateKey{kind: kind, src: src}) // a router asked for is a row
		}
	}
	slices.SortFunc(out, func(x, y rateKey) int {
		return cmp.Or(cmp.Compare(x.src, y.src), strings.Compare(x.k, y.k))
	})
	return slices.Compact(out), nil
}

// load fills rr.a and rr.b with an entity's samples (zeroing them first).
func (rr *rateReader) load(ctx context.Context, k rateKey) error {
	clear(rr.a)
	clear(rr.b)
	rows, err := rr.days.QueryContext(ctx, k.kind, k.src, k.k, store.FloorDiv(rr.f, 86400)*86400, rr.t)
	if err != nil {
		return fmt.Errorf("cannot read 5-minute samples: %w", err)
	}
	var x []byte
	for rows.Next() {
		var d int64
		if err := rows.Scan(&d, &x); err != nil {
			rows.Close()
			return fmt.Errorf("cannot read 5-minute samples: %w", err)
		}
		base := (d - rr.f) / rateSlot
		n := int64(len(rr.a))
		if err := decodeRateDay(x, func(i int, a, b uint64) {
			if j := base + int64(i); j >= 0 && j < n {
				rr.a[j] += a
				rr.b[j] += b
			}
		}); err != nil {
			rows.Close()
			return fmt.Errorf("cannot read the 5-minute samples of %s: %w", time.Unix(d, 0).UTC().Format(time.DateOnly), err)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read 5-minute samples: %w", err)
	}
	rows, err = rr.cur.QueryContext(ctx, k.kind, k.src, k.k, rr.f, rr.t)
	if err != nil {
		return fmt.Errorf("cannot read 5-minute samples: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t, a, b int64
		if err := rows.Scan(&t, &a, &b); err != nil {
			return fmt.Errorf("cannot read 5-minute samples: %w", err)
		}
		j := (t - rr.f) / rateSlot
		rr.a[j] += uint64(a)
		rr.b[j] += uint64(b)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read 5-minute samples: %w", err)
	}
	return nil
}

// start returns the unix time of a source's first router sample
// (math.MaxInt64 when it has none).
func (rr *rateReader) start(ctx context.Context, src int64) (int64, error) {
	if v, ok := rr.starts[src]; ok {
		return v, nil
	}
	first := int64(math.MaxInt64)
	var d int64
	var x []byte
	switch err := rr.firstSlot.QueryRowContext(ctx, src).Scan(&d, &x); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return 0, fmt.Errorf("cannot read 5-minute samples: %w", err)
	default:
		i0 := -1
		_ = decodeRateDay(x, func(i int, _, _ uint64) {
			if i0 < 0 {
				i0 = i
			}
		})
		first = d + int64(max(i0, 0))*rateSlot
	}
	var c sql.NullInt64
	if err := rr.firstCur.QueryRowContext(ctx, src).Scan(&c); err != nil {
		return 0, fmt.Errorf("cannot read 5-minute samples: %w", err)
	}
	if c.Valid {
		first = min(first, c.Int64)
	}
	rr.starts[src] = first
	return first, nil
}

// summary summarizes rr.a and rr.b, whose samples count from start.
func (rr *rateReader) summary(src int64, key string, start int64, pct float64) store.RateSummary {
	var r store.RateSummary
	r, rr.tmp = store.SummarizeRates(src, key, rr.f, rr.end, start, rr.a, rr.b, pct, rr.tmp)
	return r
}

// each summarizes every entity of a kind.
func (rr *rateReader) each(ctx context.Context, kind int, sources []int64, pct float64) ([]store.RateSummary, error) {
	keys, err := rr.keys(ctx, kind, sources)
	if err != nil {
		return nil, err
	}
	out := make([]store.RateSummary, 0, len(keys))
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := rr.load(ctx, k); err != nil {
			return nil, err
		}
		start, err := rr.start(ctx, k.src)
		if err != nil {
			return nil, err
		}
		r := rr.summary(k.src, k.k, start, pct)
		if r.A|r.B == 0 && (kind != rateRouter || len(sources) == 0) {
			continue // no traffic in the period
		}
		out = append(out, r)
	}
	return out, nil
}

// fleet summarizes the sum of every router (of sources, or all).
func (rr *rateReader) fleet(ctx context.Context, sources []int64, pct float64) (store.RateSummary, error) {
	keys, err := rr.keys(ctx, rateRouter, sources)
	if err != nil {
		return store.RateSummary{}, err
	}
	n := len(rr.a)
	sumA, sumB := make([]uint64, n), make([]uint64, n)
	start := int64(math.MaxInt64)
	for _, k := range keys {
		if err := rr.load(ctx, k); err != nil {
			return store.RateSummary{}, err
		}
		for i := range n {
			sumA[i] += rr.a[i]
			sumB[i] += rr.b[i]
		}
		st, err := rr.start(ctx, k.src)
		if err != nil {
			return store.RateSummary{}, err
		}
		start = min(start, st)
	}
	rr.a, rr.b = sumA, sumB
	return rr.summary(0, "", start, pct), nil
}
