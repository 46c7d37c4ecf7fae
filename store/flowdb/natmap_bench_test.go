//go:build unix

package flowdb

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/store"
)

// The simulated fleet: 3 routers at their default 200 flows/s each.
const (
	natFleetRouters = 3
	natFleetRate    = 200
)

// natFleet returns the fleet's models.
func natFleet(tb testing.TB) []*netflowtest.Model {
	tb.Helper()
	ms := make([]*netflowtest.Model, natFleetRouters)
	for r := range ms {
		m, err := netflowtest.NewModel(netflowtest.ModelConfig{Seed: uint64(11 + r), Index: r})
		if err != nil {
			tb.Fatal(err)
		}
		ms[r] = m
	}
	return ms
}

// natFleetSecond appends the fleet's flows exported at now (one second's
// worth), attributed to routers 1..3.
func natFleetSecond(dst []store.Flow, ms []*netflowtest.Model, now time.Time) []store.Flow {
	for r, m := range ms {
		n := len(dst)
		dst = m.AppendFlows(dst, natFleetRate, now)
		for i := n; i < len(dst); i++ {
			dst[i].RouterID = int64(r + 1)
			dst[i].Exporter = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + r)}), 2055)
		}
	}
	return dst
}

// natDisk measures the NAT day tables: their rows and the bytes of their
// pages (with their share of interior pages), from a checkpointed copy of
// the database where everything else is dropped.
func natDisk(ctx context.Context, s *FlowDB) (rows, size int64, err error) {
	if _, err := s.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return 0, 0, fmt.Errorf("cannot checkpoint: %w", err)
	}
	dir, err := os.MkdirTemp("", "flowbox-natdisk-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	cp := filepath.Join(dir, "copy.db")
	if err := copyFile(s.path, cp); err != nil {
		return 0, 0, err
	}
	db, err := openDB(cp, "_journal_mode=DELETE")
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	names := func(q string) ([]string, error) {
		r, err := db.QueryContext(ctx, q)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		var out []string
		for r.Next() {
			var n string
			if err := r.Scan(&n); err != nil {
				return nil, err
			}
			out = append(out, n)
		}
		return out, r.Err()
	}
	drop, err := names(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT GLOB 'natb_[0-9]*' AND name NOT LIKE 'sqlite%'`)
	if err != nil {
		return 0, 0, err
	}
	for _, n := range drop {
		if _, err := db.ExecContext(ctx, "DROP TABLE "+n); err != nil {
			return 0, 0, fmt.Errorf("cannot drop %s: %w", n, err)
		}
	}
	keep, err := names(`SELECT name FROM sqlite_schema WHERE type = 'table' AND type = 'table' AND name GLOB 'natb_[0-9]*'`)
	if err != nil {
		return 0, 0, err
	}
	for _, n := range keep {
		var c int64
		if err := db.QueryRowContext(ctx, "SELECT coalesce(sum(n), 0) FROM "+n).Scan(&c); err != nil {
			return 0, 0, err
		}
		rows += c
	}
	var pages, free, psize int64
	if err := db.QueryRowContext(ctx, "SELECT (SELECT page_count FROM pragma_page_count), (SELECT freelist_count FROM pragma_freelist_count), (SELECT page_size FROM pragma_page_size)").
		Scan(&pages, &free, &psize); err != nil {
		return 0, 0, err
	}
	return rows, (pages - free - 1) * psize, nil // page 1 holds the schema
}

// BenchmarkNATIngest measures the writer's cost per flow of the simulated
// fleet's flows (CGNAT, both directions, as RouterOS exports them) without
// and with the NAT-mapping store: raw rows, host index, rollups, and the
// minute maintenance at the flows' pace (the NAT flush among it). It
// reports ns/flow (wall), cpu-ns/flow (the process's CPU time, both
// cores), B/flow and allocs/flow (allocated on the heap), and, with the
// NAT store, the bytes of the day tables per mapping on disk.
func BenchmarkNATIngest(b *testing.B) {
	t0 := time.Date(2025, 3, 10, 1, 0, 0, 0, time.UTC)
	const poolSeconds = 300
	ms := natFleet(b)
	var pool []store.Flow
	for sec := range poolSeconds {
		pool = natFleetSecond(pool, ms, t0.Add(time.Duration(sec)*time.Second))
	}
	for _, c := range []struct {
		name     string
		nat      bool
		flows    int // of the pool replayed
		rate     int // flows per second of the writer's clock
		newConns bool
		only     bool // the NAT store alone: no raw write, no rollups
	}{
		// The fleet's flows at its rate: each pass over the pool is new
		// connections (other ports).
		{"fleet/nat=off", false, len(pool), natFleetRouters * natFleetRate, true, false},
		{"fleet/nat=on", true, len(pool), natFleetRouters * natFleetRate, true, false},
		{"fleet/nat-only", true, len(pool), natFleetRouters * natFleetRate, true, true},
		// The fleet's flows at 200,000 flows/s, new connections all the
		// time: the NAT store's worst case (its buffer fills in a second).
		{"fleet200k/nat=off", false, len(pool), 200000, true, false},
		{"fleet200k/nat=on", true, len(pool), 200000, true, false},
		{"fleet200k/nat-only", true, len(pool), 200000, true, true},
		// make bench-ingest's load: 32768 flows replayed at 200,000
		// flows/s, the same connections again and again (every mapping
		// stays open and is extended).
		{"replay200k/nat=off", false, 1 << 15, 200000, false, false},
		{"replay200k/nat=on", true, 1 << 15, 200000, false, false},
		{"replay200k/nat-only", true, 1 << 15, 200000, false, true},
	} {
		nat, only := c.nat, c.only
		pool := pool[:c.flows]
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(ctx, b.TempDir(), store.DefaultConfig(), testLogger(b), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer closeAll(s)
			if !nat {
				s.nat = nil
			}
			clock := t0
			s.now = func() time.Time { return clock }
			const group = 1000
			scratch := make([]store.Flow, group)
			lastMaint := t0
			n := 0
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			cpu0 := cpuTime(b)
			start := time.Now()
			for b.Loop() {
				i := (n * group) % (len(pool) / group * group)
				cycle := n * group / (len(pool) / group * group)
				shift := int64(cycle) * int64(len(pool)) * 1000 / int64(c.rate)
				copy(scratch, pool[i:i+group])
				for j := range scratch {
					f := &scratch[j]
					f.Start += shift
					f.End += shift
					// Each pass over the pool uses other ports: its
					// connections are new ones.
					k := uint16(cycle * 7919)
					if !c.newConns {
						continue
					}
					if f.PostNATSrcAddr.IsValid() && f.PostNATSrcAddr != f.SrcAddr {
						f.SrcPort += k
						f.PostNATSrcPort += k
					}
					if f.PostNATDstAddr.IsValid() && f.PostNATDstAddr != f.DstAddr {
						f.DstPort += k
						f.PostNATDstPort += k
					}
				}
				// The clock follows the export instants, at c.rate.
				clock = t0.Add(time.Duration(int64(n) * group * int64(time.Second) / int64(c.rate)))
				batch := &store.Batch{Flows: scratch, Recv: clock}
				if only {
					s.natObserve([]*store.Batch{batch})
					s.natFlushIfFull(ctx)
				} else {
					s.writeGroup(ctx, []*store.Batch{batch})
				}
				if clock.Sub(lastMaint) >= time.Minute {
					if only {
						if err := s.natFlush(ctx, clock, false); err != nil {
							b.Fatal(err)
						}
					} else {
						s.maintain(ctx)
					}
					lastMaint = clock
				}
				n++
			}
			elapsed := time.Since(start)
			cpu := cpuTime(b) - cpu0
			runtime.ReadMemStats(&after)
			if h := s.Health(); !h.OK {
				b.Fatal(h.Error)
			}
			flows := float64(n * group)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(elapsed.Nanoseconds())/flows, "ns/flow")
			b.ReportMetric(float64(cpu.Nanoseconds())/flows, "cpu-ns/flow")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/flows, "B/flow")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/flows, "allocs/flow")
			if !nat {
				return
			}
			clock = clock.Add(10 * time.Minute)
			if err := s.natFlush(ctx, clock, true); err != nil {
				b.Fatal(err)
			}
			rows, size, err := natDisk(ctx, s)
			if err != nil {
				b.Fatal(err)
			}
			st := s.NATStats()
			b.ReportMetric(float64(size)/float64(rows), "disk-B/mapping")
			b.ReportMetric(float64(rows)/flows, "mappings/flow")
			b.ReportMetric(float64(st.Evicted), "evicted")
			b.ReportMetric(float64(st.Written)/float64(st.Blocks), "mappings/block")
		})
	}
}

// natTemplate is one mapping row of the simulated hour, relative to it.
type natTemplate struct {
	natStored
	rel int64 // last_seen - the hour's start, ms
}

// BenchmarkNATLookup180Days measures abuse lookups on a 180-day NAT store
// of the simulated fleet. It runs the fleet's models (3 routers, 200
// flows/s each) for a simulated hour through the writer, which gives the
// mappings per hour (and per day: the fleet's rate has no daily curve),
// then synthesizes 180 day tables from that hour's rows: the last
// FLOWBOX_NAT_BENCH_FULL_DAYS days (default 2) at the full rate, the
// others at FLOWBOX_NAT_BENCH_SCALE of it (default 0.002; a full 180-day
// store would not fit this machine's disk: see the extrapolated size). A
// lookup reads the day tables around its time only, so its latency on a
// full day is the one of a full store. It then times LookupNAT for random
// (address, port, time) of mappings of the full days (each must be
// found), and reports p50/p99, and those of address-only lookups.
//
// It writes several GB: it runs only with FLOWBOX_BENCH_NAT180=1.
func BenchmarkNATLookup180Days(b *testing.B) {
	if os.Getenv("FLOWBOX_BENCH_NAT180") != "1" {
		b.Skip("set FLOWBOX_BENCH_NAT180=1 to build a 180-day NAT store (several GB, minutes)")
	}
	fullDays := envInt(b, "FLOWBOX_NAT_BENCH_FULL_DAYS", 2)
	scale, err := strconv.ParseFloat(cmp.Or(os.Getenv("FLOWBOX_NAT_BENCH_SCALE"), "0.002"), 64)
	if err != nil {
		b.Fatal(err)
	}
	const days = 180
	ctx := context.Background()
	dir := cmp.Or(os.Getenv("FLOWBOX_NAT_BENCH_DIR"), b.TempDir())

	// 1. One simulated hour of the fleet through the writer.
	hourStart := time.Date(2025, 3, 10, 1, 0, 0, 0, time.UTC)
	tpl, perHour, diskPerMapping := natSimulatedHour(b, hourStart)
	perDay := perHour * 24
	b.Logf("simulated fleet: %d mappings in the hour (%d flows/s): %d mappings/day; %.1f B/mapping on disk (writer's pages)",
		perHour, natFleetRouters*natFleetRate, perDay, diskPerMapping)

	// 2. The 180-day store.
	s, err := Open(ctx, dir, store.DefaultConfig(), testLogger(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer closeAll(s)
	lastDay := time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC)
	firstDay := lastDay.AddDate(0, 0, -(days - 1))
	buildStart := time.Now()
	rng := rand.New(rand.NewPCG(3, 4))
	var total int64
	for d := range days {
		day := firstDay.AddDate(0, 0, d)
		keep := scale
		if d >= days-fullDays {
			keep = 1
		}
		n, err := natSynthesizeDay(ctx, s, day, tpl, keep, rng)
		if err != nil {
			b.Fatal(err)
		}
		total += n
	}
	if _, err := s.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(s.path)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("180-day store: %d rows (%d full days) in %s: %.2f GB, %.1f B/row; a full-rate 180-day store: %.0f GB at the writer's %.1f B/mapping",
		total, fullDays, time.Since(buildStart).Round(time.Second), float64(st.Size())/1e9, float64(st.Size())/float64(total),
		float64(perDay)*days*diskPerMapping/1e9, diskPerMapping)

	// 3. Lookups of mappings of the full days.
	fullFrom := lastDay.AddDate(0, 0, -(fullDays - 1))
	pick := func() (store.NATQuery, *natTemplate) {
		r := &tpl[rng.IntN(len(tpl))]
		hour := fullFrom.Add(time.Duration(rng.IntN(fullDays*24)) * time.Hour)
		last := hour.UnixMilli() + r.rel
		at := time.UnixMilli(last - rng.Int64N(r.last-r.first+1))
		return store.NATQuery{Public: addrOf(r.key.pub), Port: r.key.pport, Proto: r.key.proto, At: at}, r
	}
	var lat []time.Duration
	misses, matches := 0, 0
	for b.Loop() {
		q, r := pick()
		t := time.Now()
		res, err := s.LookupNAT(ctx, q)
		lat = append(lat, time.Since(t))
		if err != nil {
			b.Fatal(err)
		}
		matches += len(res)
		found := false
		for _, m := range res {
			found = found || (m.InsideAddr == addrOf(r.key.in) && m.InsidePort == r.key.iport)
		}
		if !found {
			misses++
		}
	}
	if misses > 0 {
		b.Errorf("%d of %d lookups missed their mapping", misses, len(lat))
	}
	p50, p99 := percentiles(lat)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(matches)/float64(len(lat)), "matches/lookup")
	b.ReportMetric(float64(perDay), "mappings/day")
	b.ReportMetric(float64(st.Size())/1e9, "store-GB")
	b.ReportMetric(float64(perDay)*days*diskPerMapping/1e9, "full-180d-GB")

	// Address-only lookups (every port of the address within the window),
	// and lookups of random ports at random times of the 180 days.
	var addrLat, randLat []time.Duration
	for range 30 {
		q, _ := pick()
		q.Port, q.Proto, q.Limit = 0, 0, 100000
		t := time.Now()
		if _, err := s.LookupNAT(ctx, q); err != nil {
			b.Fatal(err)
		}
		addrLat = append(addrLat, time.Since(t))
	}
	for range 300 {
		q, _ := pick()
		q.Port = uint16(1024 + rng.IntN(64512))
		q.At = firstDay.Add(time.Duration(rng.Int64N(int64(days * 24 * time.Hour))))
		t := time.Now()
		if _, err := s.LookupNAT(ctx, q); err != nil {
			b.Fatal(err)
		}
		randLat = append(randLat, time.Since(t))
	}
	a50, a99 := percentiles(addrLat)
	r50, r99 := percentiles(randLat)
	b.ReportMetric(float64(a50.Microseconds())/1000, "addr-only-p50-ms")
	b.ReportMetric(float64(a99.Microseconds())/1000, "addr-only-p99-ms")
	b.ReportMetric(float64(r50.Microseconds())/1000, "random-p50-ms")
	b.ReportMetric(float64(r99.Microseconds())/1000, "random-p99-ms")

	// Retention drops a full day as natRetention does: one table.
	t := time.Now()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []stmt{{"DROP TABLE " + natTable(fullFrom.UnixMilli()), nil}, {"DELETE FROM nat_days WHERE day = ?", []any{fullFrom.Unix()}}} {
		if _, err := tx.ExecContext(ctx, q.q, q.args...); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(time.Since(t).Seconds(), "drop-full-day-s")
}

// cpuTime is the process's CPU time (user and system) so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func envInt(tb testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2], s[min(len(s)-1, len(s)*99/100)]
}

// natSimulatedHour runs the fleet's models for an hour (and the 30
// minutes before, so that the hour is in steady state) through the writer
// and returns the mapping rows that ended in the hour (relative to its
// start, sorted in a day table's key order), their number, and the bytes
// per mapping of the day tables.
func natSimulatedHour(tb testing.TB, hour time.Time) ([]natTemplate, int, float64) {
	ctx := context.Background()
	s, err := Open(ctx, tb.TempDir(), store.DefaultConfig(), testLogger(tb), nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer closeAll(s)
	clock := hour
	s.now = func() time.Time { return clock }
	ms := natFleet(tb)
	var flows []store.Flow
	from := hour.Add(-30 * time.Minute)
	for sec := range 5400 { // until the hour's last mappings left memory
		now := from.Add(time.Duration(sec) * time.Second)
		clock = now
		flows = natFleetSecond(flows[:0], ms, now)
		s.writeGroup(ctx, []*store.Batch{{Flows: flows, Recv: now}})
		if sec%60 == 59 {
			s.maintain(ctx)
		}
	}
	clock = clock.Add(10 * time.Minute)
	if err := s.natFlush(ctx, clock, true); err != nil {
		tb.Fatal(err)
	}
	if h := s.Health(); !h.OK {
		tb.Fatal(h.Error)
	}
	rows, size, err := natDisk(ctx, s)
	if err != nil {
		tb.Fatal(err)
	}
	var tpl []natTemplate
	lo, hi := hour.UnixMilli(), hour.Add(time.Hour).UnixMilli()
	var dec natDecoder
	for start, d := range s.nat.days {
		r, err := s.r.QueryContext(ctx, "SELECT b, pub, r, data FROM "+d.name)
		if err != nil {
			tb.Fatal(err)
		}
		for r.Next() {
			var b, router int64
			var p, data []byte
			if err := r.Scan(&b, &p, &router, &data); err != nil {
				tb.Fatal(err)
			}
			pub, _ := natAddr16(p)
			if err := dec.decode(data, natKey{router: router, pub: pub}, start+b*natMinuteMs, 0, func(n *natStored) {
				if n.last >= lo && n.last < hi {
					tpl = append(tpl, natTemplate{natStored: *n, rel: n.last - lo})
				}
			}); err != nil {
				tb.Fatal(err)
			}
		}
		if err := r.Err(); err != nil {
			tb.Fatal(err)
		}
		r.Close()
	}
	slices.SortFunc(tpl, func(a, b natTemplate) int { return cmpStored(&a.natStored, &b.natStored) })
	tpl = slices.CompactFunc(tpl, func(a, b natTemplate) bool { return a.key == b.key && a.rel == b.rel && a.first == b.first })
	return tpl, len(tpl), float64(size) / float64(rows)
}

// natSynthesizeDay writes a day table of the 24 hours of tpl (sorted in
// block order), each entry kept with probability keep, as the writer
// would. It returns the entries written.
func natSynthesizeDay(ctx context.Context, s *FlowDB, day time.Time, tpl []natTemplate, keep float64, rng *rand.Rand) (int64, error) {
	start := day.UnixMilli()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	w := natDayWriter{tx: tx, days: s.nat.days}
	defer w.close()
	var entries []natStored
	var n int64
	for h := range int64(24) {
		entries = entries[:0]
		shift := start + h*3600000 - (tpl[0].last - tpl[0].rel)
		for i := range tpl {
			if keep < 1 && rng.Float64() >= keep {
				continue
			}
			e := tpl[i].natStored
			e.first += shift
			e.last += shift
			entries = append(entries, e)
		}
		n += int64(len(entries))
		if err := s.nat.enc.blocks(entries, func(b *natBlock) error { return w.insert(ctx, b) }); err != nil {
			return 0, err
		}
	}
	if err := w.finish(ctx); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	w.apply()
	return n, nil
}
