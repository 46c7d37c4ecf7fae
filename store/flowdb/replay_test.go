package flowdb

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
)

// The crash tests simulate kill -9 with crashStore: the database handles
// are closed, the in-memory rollups are not flushed. Everything committed
// stays (as SQLite's WAL keeps it through a crash).

// replayConfig keeps every key of a bucket in the top rollups (no top-K
// cut), so that the rollups of a store that crashed and replayed compare
// row for row with those of a store that did not crash: with a cut, the
// top-K of a minute depends on how its flows were split between flushes.
func replayConfig() store.Config {
	c := store.DefaultConfig()
	c.TopK = 10000
	return c
}

// openReplay opens dir with replayConfig at testNow, with router r1 for
// exporter 127.0.0.2 (127.0.0.3 stays an unknown exporter).
func openReplay(t testing.TB, dir string) *FlowDB {
	t.Helper()
	s, err := Open(context.Background(), dir, replayConfig(), testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { closeAll(s) })
	s.now = func() time.Time { return testNow }
	if _, err := inv(s).GetRouter(context.Background(), "r1"); err != nil {
		if err := inv(s).AddRouter(context.Background(), &store.Router{Name: "r1", Address: "127.0.0.2:8728"}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// crashStore closes the store's handles without flushing its rollups.
func crashStore(t testing.TB, s *FlowDB) {
	t.Helper()
	if err := closeAll(s); err != nil {
		t.Fatal(err)
	}
}

// replayFlows returns n flows of the two exporters over the 2 hours
// before testNow, with interned addresses (a router's public address),
// sampled flows, names and both directions.
func replayFlows(seed uint64, n int) []store.Flow {
	out := genFlows(n/2, testNow)
	for i, f := range indexFlows(seed, n-n/2, testNow, 2*time.Hour) {
		if i%4 == 0 {
			f.Exporter = netip.MustParseAddrPort("127.0.0.3:2055")
		}
		if i%9 == 0 {
			f.SamplingRate = 100
		}
		out = append(out, f)
	}
	return out
}

// writeChunks writes flows through the writer's path, 700 at a time.
func writeChunks(t testing.TB, s *FlowDB, flows []store.Flow) {
	t.Helper()
	for i := 0; i < len(flows); i += 700 {
		if err := WriteFlows(context.Background(), s, flows[i:min(i+700, len(flows))]); err != nil {
			t.Fatal(err)
		}
	}
}

// runAndStop runs the writer (which replays what an unclean stop left),
// calls during while it runs, then stops it cleanly.
func runAndStop(t testing.TB, s *FlowDB, during func(ctx context.Context)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	if during != nil {
		during(ctx)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// srcLabels names the rollup sources of a store: "r1" for router 1, the
// exporter's address for minus an exporter id (ids differ between stores).
func srcLabels(t testing.TB, s *FlowDB) map[int64]string {
	t.Helper()
	out := map[int64]string{}
	rows, err := s.r.Query("SELECT id, addr FROM exporters")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var raw []byte
		if err := rows.Scan(&id, &raw); err != nil {
			t.Fatal(err)
		}
		a, _ := netip.AddrFromSlice(raw)
		out[-id] = a.String()
	}
	rows, err = s.r.Query("SELECT id, name FROM routers")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			t.Fatal(err)
		}
		out[id] = name
	}
	return out
}

// rollupTables are the tables a crash must leave exact.
var rollupTables = []string{"tot_m", "if_m", "top_m", "usage_h", "usage_d", "tot_h", "if_h", "top_h", "top_d"}

// dumpTable returns the rows of a rollup table as sorted lines, the src
// column named by srcLabels.
func dumpTable(t testing.TB, s *FlowDB, table string) []string {
	t.Helper()
	labels := srcLabels(t, s)
	rows, err := s.r.Query("SELECT * FROM " + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for i, c := range cols {
			v := vals[i]
			switch {
			case c == "src":
				v = labels[v.(int64)]
			case c == "k":
				v = fmt.Sprintf("%x", v)
			}
			fmt.Fprintf(&b, "%s=%v ", c, v)
		}
		out = append(out, b.String())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// sameRollups compares every rollup table of got with want's.
func sameRollups(t *testing.T, got, want *FlowDB) {
	t.Helper()
	for _, table := range rollupTables {
		g, w := dumpTable(t, got, table), dumpTable(t, want, table)
		if slices.Equal(g, w) {
			continue
		}
		var diff []string
		for _, l := range g {
			if !slices.Contains(w, l) {
				diff = append(diff, "+ "+l)
			}
		}
		for _, l := range w {
			if !slices.Contains(g, l) {
				diff = append(diff, "- "+l)
			}
		}
		t.Errorf("%s: %d rows, want %d (-want +got, first 20):\n%s", table, len(g), len(w),
			strings.Join(diff[:min(20, len(diff))], "\n"))
	}
}

// rawSums checks that the minute totals (tot_m), the hour totals (tot_h)
// and the hourly and daily subscriber usage equal the sums of the stored
// raw flows, read back from the raw rows, key for key.
func rawSums(t *testing.T, s *FlowDB, wantFlows int) {
	t.Helper()
	ctx := context.Background()
	labels := srcLabels(t, s)
	var raw []store.Flow
	q := store.SearchQuery{From: testNow.Add(-4 * time.Hour), To: testNow.Add(time.Hour), Limit: 10000}
	for {
		page, err := s.SearchFlows(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, page.Flows...)
		if q.Cursor = page.Next; q.Cursor == "" {
			break
		}
	}
	if len(raw) != wantFlows {
		t.Fatalf("%d raw flows, want %d", len(raw), wantFlows)
	}
	wantTot := map[string]sums{}
	wantUsage := map[string]sums{}
	for i := range raw {
		f := &raw[i]
		src := labels[f.RouterID]
		if f.RouterID == 0 {
			src = f.Exporter.Addr().String()
		}
		c := sums{f.Scale(f.Bytes), f.Scale(f.Packets), 1}
		for _, k := range []string{
			fmt.Sprintf("tot_m %d %s %d", f.End/60000*60, src, f.Direction),
			fmt.Sprintf("tot_h %d %s %d", f.End/3600000*3600, src, f.Direction),
		} {
			w := wantTot[k]
			wantTot[k] = sums{w.bytes + c.bytes, w.packets + c.packets, w.flows + 1}
		}
		if f.Subscriber == "" || (f.Direction != store.DirDownload && f.Direction != store.DirUpload) {
			continue
		}
		for _, k := range []string{
			fmt.Sprintf("usage_h %d %s %s %d", f.End/3600000*3600, src, f.Subscriber, f.Direction),
			fmt.Sprintf("usage_d %d %s %s %d", f.End/86400000*86400, src, f.Subscriber, f.Direction),
		} {
			w := wantUsage[k]
			wantUsage[k] = sums{w.bytes + c.bytes, w.packets + c.packets, w.flows + 1}
		}
	}
	gotTot := map[string]sums{}
	for _, table := range []string{"tot_m", "tot_h"} {
		rows, err := s.r.Query("SELECT t, src, dir, bytes, packets, flows FROM " + table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var tm, src int64
			var dir int
			var c sums
			if err := rows.Scan(&tm, &src, &dir, &c.bytes, &c.packets, &c.flows); err != nil {
				t.Fatal(err)
			}
			gotTot[fmt.Sprintf("%s %d %s %d", table, tm, labels[src], dir)] = c
		}
		rows.Close()
	}
	if !maps.Equal(gotTot, wantTot) {
		t.Errorf("minute and hour totals differ from the raw flows: %d keys, want %d", len(gotTot), len(wantTot))
		for k, w := range wantTot {
			if gotTot[k] != w {
				t.Errorf("%s: %+v, want %+v", k, gotTot[k], w)
			}
		}
	}
	for _, table := range []string{"usage_h", "usage_d"} {
		rows, err := s.r.Query("SELECT t, src, sub, down_bytes, up_bytes, down_packets, up_packets, flows FROM " + table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var tm, src int64
			var sub string
			var db, ub, dp, up, n uint64
			if err := rows.Scan(&tm, &src, &sub, &db, &ub, &dp, &up, &n); err != nil {
				t.Fatal(err)
			}
			// Flows are per subscriber, not per direction: split them by
			// the flows of each direction in the expectation instead.
			key := fmt.Sprintf("%s %d %s %s", table, tm, labels[src], sub)
			down, upl := wantUsage[key+fmt.Sprintf(" %d", store.DirDownload)], wantUsage[key+fmt.Sprintf(" %d", store.DirUpload)]
			if db != down.bytes || dp != down.packets || ub != upl.bytes || up != upl.packets || n != down.flows+upl.flows {
				t.Errorf("%s: down %d/%d up %d/%d flows %d, want down %+v up %+v", key, db, dp, ub, up, n, down, upl)
			}
			delete(wantUsage, key+fmt.Sprintf(" %d", store.DirDownload))
			delete(wantUsage, key+fmt.Sprintf(" %d", store.DirUpload))
		}
		rows.Close()
	}
	if len(wantUsage) > 0 {
		t.Errorf("usage missing for %d subscriber hours or days, e.g. %v", len(wantUsage), slices.Collect(maps.Keys(wantUsage))[:1])
	}
}

// watermarks returns, per raw partition, its rollup watermark and its last
// row id.
func watermarks(t testing.TB, s *FlowDB) map[string][2]int64 {
	t.Helper()
	out := map[string][2]int64{}
	rows, err := s.r.Query("SELECT name, coalesce(rolled, -1) FROM raw_partitions WHERE format = 2")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		var rolled int64
		if err := rows.Scan(&name, &rolled); err != nil {
			t.Fatal(err)
		}
		out[name] = [2]int64{rolled}
	}
	rows.Close()
	for name, v := range out {
		if err := s.r.QueryRow("SELECT coalesce(max(id), 0) FROM " + name).Scan(&v[1]); err != nil {
			t.Fatal(err)
		}
		out[name] = v
	}
	return out
}

// rolledFlows is the flow count of the minute rollups.
func rolledFlows(t testing.TB, s *FlowDB) int64 {
	t.Helper()
	var n sql.NullInt64
	if err := s.r.QueryRow("SELECT sum(flows) FROM tot_m").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n.Int64
}

// reference writes flows into a store that never crashes, flushes its
// rollups and rebuilds its hours at later.
func reference(t *testing.T, flows []store.Flow, later time.Time) *FlowDB {
	t.Helper()
	ref := openReplay(t, t.TempDir())
	writeChunks(t, ref, flows)
	Maintain(context.Background(), ref)
	ref.now = func() time.Time { return later }
	Maintain(context.Background(), ref)
	return ref
}

// TestReplayAfterCrash crashes after the raw rows of the last minute (and
// more) were committed and before their rollups were flushed: the restart
// counts exactly those rows again, so the minute, hour and usage rollups
// equal the raw flows' sums and a store that never crashed; a clean stop
// then leaves nothing to replay.
func TestReplayAfterCrash(t *testing.T) {
	dir := t.TempDir()
	flows := replayFlows(1, 6000)
	s := openReplay(t, dir)
	writeChunks(t, s, flows[:2500])
	Maintain(context.Background(), s)
	writeChunks(t, s, flows[2500:])
	crashStore(t, s)

	s = openReplay(t, dir)
	if got := rolledFlows(t, s); got != 2500 {
		t.Fatalf("before the restart the rollups hold %d flows, want the 2500 flushed", got)
	}
	behind := 0
	for name, m := range watermarks(t, s) {
		if m[0] > m[1] {
			t.Fatalf("partition %s: watermark %d beyond its last row %d", name, m[0], m[1])
		}
		if m[0] < m[1] {
			behind++
		}
	}
	if behind == 0 {
		t.Fatal("no partition has rows beyond its watermark: the crash lost nothing")
	}
	runAndStop(t, s, nil)
	later := testNow.Add(2 * time.Hour)
	s.now = func() time.Time { return later }
	Maintain(context.Background(), s)
	rawSums(t, s, len(flows))
	sameRollups(t, s, reference(t, flows, later))

	// A clean stop leaves every watermark on the last row: nothing to replay.
	for name, m := range watermarks(t, s) {
		if m[0] != m[1] {
			t.Errorf("partition %s after a clean stop: watermark %d, last row %d", name, m[0], m[1])
		}
	}
	crashStore(t, s)
	s = openReplay(t, dir)
	s.startReplay(context.Background())
	if len(s.wr.replay) != 0 {
		t.Fatalf("%d partitions to replay after a clean stop", len(s.wr.replay))
	}
}

// TestReplayInterrupted crashes in the middle of a rollup flush (it fails:
// disk full), then again in the middle of the replay, then replays while
// new flows arrive: every flow is counted once.
func TestReplayInterrupted(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	flows := replayFlows(2, 9000)
	s := openReplay(t, dir)
	writeChunks(t, s, flows[:2000])
	Maintain(ctx, s)
	writeChunks(t, s, flows[2000:6000])
	var pages int64
	if err := s.w.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	if err := s.flushRollups(ctx); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("flush on a full disk: %v", err)
	}
	crashStore(t, s)

	// Restart, replay a part, crash again.
	s = openReplay(t, dir)
	if got := rolledFlows(t, s); got != 2000 {
		t.Fatalf("after the failed flush the rollups hold %d flows, want 2000", got)
	}
	s.wr.replayChunk = 100
	s.startReplay(ctx)
	for range 5 {
		s.replayStep(ctx)
	}
	if len(s.wr.replay) == 0 || s.wr.replayStats.rows == 0 {
		t.Fatalf("replay after 5 steps: %d partitions left, %d rows", len(s.wr.replay), s.wr.replayStats.rows)
	}
	crashStore(t, s)

	// Restart: the writer replays between the batches of new flows.
	s = openReplay(t, dir)
	s.wr.replayChunk = 50
	runAndStop(t, s, func(ctx context.Context) {
		for i := 6000; i < len(flows); i += 300 {
			if err := s.InsertFlows(ctx, flows[i:min(i+300, len(flows))]); err != nil {
				t.Error(err)
				return
			}
		}
	})
	later := testNow.Add(2 * time.Hour)
	s.now = func() time.Time { return later }
	Maintain(ctx, s)
	rawSums(t, s, len(flows))
	sameRollups(t, s, reference(t, flows, later))
}

// TestReplayOlderPartitions opens partitions written by a flowbox before the
// watermark (rolled is NULL, everything flushed at its shutdown): nothing is
// counted twice, and the writer records their watermark at start.
func TestReplayOlderPartitions(t *testing.T) {
	dir := t.TempDir()
	flows := replayFlows(3, 3000)
	s := openReplay(t, dir)
	writeChunks(t, s, flows)
	Maintain(context.Background(), s)
	if _, err := s.w.Exec("UPDATE raw_partitions SET rolled = NULL"); err != nil {
		t.Fatal(err)
	}
	crashStore(t, s)
	s = openReplay(t, dir)
	runAndStop(t, s, nil)
	if got := rolledFlows(t, s); got != int64(len(flows)) {
		t.Fatalf("rollups hold %d flows, want %d", got, len(flows))
	}
	for name, m := range watermarks(t, s) {
		if m[0] != m[1] {
			t.Errorf("partition %s: watermark %d, last row %d", name, m[0], m[1])
		}
	}
}

// BenchmarkReplayRollups measures the replay after a crash: rows decoded
// and counted into the aggregator per second (the rows of one minute at
// 5,000 flows/s take 300,000 / this).
func BenchmarkReplayRollups(b *testing.B) {
	ctx := context.Background()
	s := openAt(b, b.TempDir(), testNow)
	flows := replayFlows(4, 100000)
	for i := 0; i < len(flows); i += 4096 {
		s.writeGroup(ctx, []*store.Batch{{Flows: append([]store.Flow(nil), flows[i:min(i+4096, len(flows))]...), Recv: testNow}})
	}
	if h := s.Health(); !h.OK {
		b.Fatal(h.Error)
	}
	rows := 0
	start := time.Now()
	for b.Loop() {
		s.wr.agg.reset()
		for _, p := range s.wr.parts {
			p.rolled = 0
		}
		s.startReplay(ctx)
		s.finishReplay(ctx)
		rows += int(s.wr.replayStats.rows)
	}
	b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
	b.ReportMetric(0, "ns/op")
}
