package flowdb

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

// testNow is the fixed clock of the ingest tests: 10:30 UTC.
var testNow = time.Date(2025, 3, 10, 10, 30, 0, 0, time.UTC)

// genFlows returns n flows ending within the 3 hours before now, from two
// exporters, over 20 local hosts, with some sampled flows.
func genFlows(n int, now time.Time) []store.Flow {
	out := make([]store.Flow, n)
	dirs := []store.Direction{store.DirDownload, store.DirUpload, store.DirInternal, store.DirUnknown}
	for i := range out {
		end := now.Add(-time.Duration(i%180)*time.Minute - time.Duration(i%57)*time.Second).UnixMilli()
		exp := netip.MustParseAddr("127.0.0.2")
		if i%3 == 0 {
			exp = netip.MustParseAddr("127.0.0.3")
		}
		local := netip.AddrFrom4([4]byte{10, 0, 0, byte(i % 20)})
		remote := netip.AddrFrom4([4]byte{198, 51, 100, byte(i % 7)})
		f := store.Flow{
			Exporter: netip.AddrPortFrom(exp, 2055), Version: 9, Start: end - 1500, End: end,
			Proto: 6, SrcPort: 443, DstPort: uint16(40000 + i%100), InIf: uint32(1 + i%2), OutIf: uint32(2 - i%2),
			SrcAS: 15169, Bytes: uint64(1000 + i), Packets: uint64(1 + i%10), Direction: dirs[i%4],
			SrcCountry: "US", DstCountry: "FR", Subscriber: fmt.Sprintf("sub-%d", i%5),
		}
		f.SrcAddr, f.DstAddr = remote, local
		if f.Direction != store.DirDownload {
			f.SrcAddr, f.DstAddr = local, remote
		}
		if i%10 == 0 {
			f.SamplingRate = 10
		}
		if i%13 == 5 {
			f.Proto = 17
		}
		if i%11 == 0 {
			f.PostNATDstAddr = netip.MustParseAddr("100.64.0.9")
			f.Application = "dns"
		}
		out[i] = f
	}
	return out
}

func openAt(t testing.TB, dir string, now time.Time) *FlowDB {
	s := openTest(t, dir)
	s.now = func() time.Time { return now }
	return s
}

// ingest runs the writer, inserts the flows in chunks, stops the writer
// and returns once everything is written.
func ingest(t testing.TB, s *FlowDB, flows []store.Flow) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for i := 0; i < len(flows); i += 500 {
		if err := s.InsertFlows(ctx, flows[i:min(i+500, len(flows))]); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s.running.Store(false)
	s.wr.stopping = make(chan struct{})
	s.wr.stopOnce = sync.Once{}
	s.wr.draining = false
}

type sums struct{ bytes, packets, flows uint64 }

func expected(flows []store.Flow, keep func(*store.Flow) bool) sums {
	var s sums
	for i := range flows {
		f := &flows[i]
		if keep(f) {
			s.bytes += f.Scale(f.Bytes)
			s.packets += f.Scale(f.Packets)
			s.flows++
		}
	}
	return s
}

func seriesSum(s *store.Series) sums {
	var out sums
	for _, l := range s.Lines {
		for i := range l.Bytes {
			out.bytes += l.Bytes[i]
			out.packets += l.Packets[i]
			out.flows += l.Flows[i]
		}
	}
	return out
}

func TestIngestQueryRetention(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, testNow)
	ctx := context.Background()
	r := &store.Router{Name: "r1", Address: "127.0.0.2:8728"}
	if err := inv(s).AddRouter(ctx, r); err != nil {
		t.Fatal(err)
	}
	flows := genFlows(6000, testNow)
	ingest(t, s, flows)

	all := func(*store.Flow) bool { return true }
	want := expected(flows, all)
	from, to := testNow.Add(-4*time.Hour), testNow.Add(time.Minute)

	// Time series from the minute rollups equals the sum of the flows.
	ser, err := s.TimeSeries(ctx, store.SeriesQuery{From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	if ser.Resolution != store.ResMinute || ser.Step != time.Minute {
		t.Fatalf("series resolution %s step %s", ser.Resolution, ser.Step)
	}
	if got := seriesSum(ser); got != want {
		t.Fatalf("series sum = %+v, want %+v", got, want)
	}
	// The same from raw flows.
	rawSer, err := s.TimeSeries(ctx, store.SeriesQuery{From: from, To: to, Resolution: store.ResRaw})
	if err != nil {
		t.Fatal(err)
	}
	if got := seriesSum(rawSer); got != want || rawSer.Resolution != store.ResRaw {
		t.Fatalf("raw series sum = %+v (%s), want %+v", got, rawSer.Resolution, want)
	}
	// Per direction and per router.
	byDir, err := s.TimeSeries(ctx, store.SeriesQuery{From: from, To: to, GroupBy: store.DimDirection, Filter: store.Filter{Directions: []store.Direction{store.DirDownload}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, w := seriesSum(byDir), expected(flows, func(f *store.Flow) bool { return f.Direction == store.DirDownload }); got != w || len(byDir.Lines) != 1 {
		t.Fatalf("download series = %+v, want %+v", got, w)
	}
	byRouter, err := s.TimeSeries(ctx, store.SeriesQuery{From: from, To: to, GroupBy: store.DimRouter, Filter: store.Filter{Sources: []int64{r.ID}}})
	if err != nil {
		t.Fatal(err)
	}
	wantR := expected(flows, func(f *store.Flow) bool { return f.Exporter.Addr() == netip.MustParseAddr("127.0.0.2") })
	if got := seriesSum(byRouter); got != wantR {
		t.Fatalf("router series = %+v, want %+v", got, wantR)
	}
	// Interface series: each flow counted once on its input interface.
	byIf, err := s.TimeSeries(ctx, store.SeriesQuery{From: from, To: to, GroupBy: store.DimInInterface})
	if err != nil {
		t.Fatal(err)
	}
	if got := seriesSum(byIf); got != want {
		t.Fatalf("interface series = %+v, want %+v", got, want)
	}

	// Top local hosts: rollups and raw agree with the flows.
	hostSums := map[netip.Addr]uint64{}
	for i := range flows {
		l, _ := flows[i].LocalRemote()
		hostSums[l] += flows[i].Scale(flows[i].Bytes)
	}
	for _, res := range []store.Resolution{store.ResAuto, store.ResRaw} {
		top, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: store.DimLocalHost, N: 5, Resolution: res})
		if err != nil {
			t.Fatal(err)
		}
		if len(top.Entries) != 5 {
			t.Fatalf("%s: %d entries", res, len(top.Entries))
		}
		var sum uint64
		for _, e := range top.Entries {
			if hostSums[e.Addr] != e.Bytes {
				t.Fatalf("%s: host %s = %d bytes, want %d", res, e.Addr, e.Bytes, hostSums[e.Addr])
			}
			sum += e.Bytes
		}
		if sum+top.Other.Bytes != want.bytes || top.Total.Bytes != want.bytes || top.Total.Flows != want.flows {
			t.Fatalf("%s: top %d + other %d != total %d (want %d)", res, sum, top.Other.Bytes, top.Total.Bytes, want.bytes)
		}
	}
	// Every rollup dimension adds up to the same total.
	for _, d := range store.Dimensions() {
		top, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: d, N: 3})
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		if top.Total.Bytes != want.bytes || top.Total.Packets != want.packets {
			t.Fatalf("%s: total %+v, want %+v", d, top.Total, want)
		}
	}
	app, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: store.DimApplication, N: 3})
	if err != nil {
		t.Fatal(err)
	}
	if app.Entries[0].Label != "tcp/443" {
		t.Fatalf("application top = %+v", app.Entries)
	}

	// Hour rollups equal minute rollups for whole hours.
	if err := s.rebuildHours(ctx, testNow); err != nil {
		t.Fatal(err)
	}
	hFrom, hTo := testNow.Truncate(time.Hour).Add(-2*time.Hour), testNow.Truncate(time.Hour)
	inHours := expected(flows, func(f *store.Flow) bool { return f.End >= hFrom.UnixMilli() && f.End < hTo.UnixMilli() })
	hs, err := s.TimeSeries(ctx, store.SeriesQuery{From: hFrom, To: hTo, Step: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if hs.Resolution != store.ResHour || seriesSum(hs) != inHours {
		t.Fatalf("hour series %s %+v, want %+v", hs.Resolution, seriesSum(hs), inHours)
	}
	ht, err := s.Top(ctx, store.TopQuery{From: hFrom, To: hTo, Dimension: store.DimSubscriber})
	if err != nil {
		t.Fatal(err)
	}
	if ht.Resolution != store.ResHour || ht.Total.Bytes != inHours.bytes || len(ht.Entries) != 5 {
		t.Fatalf("hour top %s total %d want %d (%d entries)", ht.Resolution, ht.Total.Bytes, inHours.bytes, len(ht.Entries))
	}
	// Protocols come from the hour rollups too, exactly.
	pt, err := s.Top(ctx, store.TopQuery{From: hFrom, To: hTo, Dimension: store.DimProtocol})
	if err != nil {
		t.Fatal(err)
	}
	if pt.Resolution != store.ResHour || len(pt.Entries) != 2 {
		t.Fatalf("hour protocol top %s: %+v", pt.Resolution, pt.Entries)
	}
	for _, e := range pt.Entries {
		want := expected(flows, func(f *store.Flow) bool {
			return f.Proto == e.Proto && f.End >= hFrom.UnixMilli() && f.End < hTo.UnixMilli()
		})
		wantLabel := map[uint8]string{6: "tcp", 17: "udp"}[e.Proto]
		if e.Bytes != want.bytes || e.Flows != want.flows || e.Label != wantLabel {
			t.Fatalf("protocol %d (%s) = %d bytes %d flows, want %d, %d (%s)", e.Proto, e.Label, e.Bytes, e.Flows, want.bytes, want.flows, wantLabel)
		}
	}

	// Search: a host over the whole range, paged, equals the flows of that host.
	host := netip.MustParseAddr("10.0.0.3")
	wantHost := expected(flows, func(f *store.Flow) bool { l, r := f.LocalRemote(); return l == host || r == host })
	var got sums
	cursor := ""
	pages := 0
	for {
		page, err := s.SearchFlows(ctx, store.SearchQuery{From: from, To: to, Filter: store.Filter{Hosts: []netip.Prefix{netip.PrefixFrom(host, 32)}}, Limit: 37, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range page.Flows {
			if i > 0 && f.End > page.Flows[i-1].End {
				t.Fatal("search not newest first")
			}
			got.bytes += f.Scale(f.Bytes)
			got.packets += f.Scale(f.Packets)
			got.flows++
		}
		pages++
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if got != wantHost || pages < 2 {
		t.Fatalf("search for %s = %+v in %d pages, want %+v", host, got, pages, wantHost)
	}
	// CSV export streams everything.
	var buf bytes.Buffer
	if err := s.ExportCSV(ctx, store.SearchQuery{From: from, To: to}, &buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(recs) != len(flows)+1 {
		t.Fatalf("CSV has %d records (%v), want %d", len(recs), err, len(flows)+1)
	}

	// A flow round-trips through the raw encoding.
	page, err := s.SearchFlows(ctx, store.SearchQuery{From: from, To: to, Filter: store.Filter{Hosts: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}, Directions: []store.Direction{store.DirDownload}}, Limit: 1})
	if err != nil || len(page.Flows) != 1 {
		t.Fatal(page, err)
	}
	f := page.Flows[0]
	var orig *store.Flow
	for i := range flows {
		if flows[i].End == f.End && flows[i].Bytes == f.Bytes {
			orig = &flows[i]
		}
	}
	if orig == nil {
		t.Fatalf("no original for %+v", f)
	}
	o := *orig
	o.Exporter = netip.AddrPortFrom(o.Exporter.Addr(), 0)
	o.RouterID = f.RouterID
	o.Version = 0 // not kept in raw rows (see codec.go)
	if f != o {
		t.Fatalf("round trip:\n got %+v\nwant %+v", f, o)
	}

	// Restart keeps data.
	closeAll(s)
	s = openAt(t, dir, testNow)
	ser2, err := s.TimeSeries(ctx, store.SeriesQuery{From: from, To: to})
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if seriesSum(ser2) != want {
		t.Fatalf("after restart: %+v", seriesSum(ser2))
	}

	// Retention: 3 days later raw partitions are gone, minute rollups stay.
	later := testNow.Add(72 * time.Hour)
	s.now = func() time.Time { return later }
	s.maintain(ctx)
	var nparts int
	s.r.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name GLOB 'raw_[0-9]*' OR name GLOB 'rawx_[0-9]*' OR name GLOB 'flows_[0-9]*'").Scan(&nparts)
	if nparts != 0 || len(s.wr.parts) != 0 {
		t.Fatalf("%d partitions left after raw retention", nparts)
	}
	ser3, err := s.TimeSeries(ctx, store.SeriesQuery{From: from, To: to, Step: time.Minute})
	if err != nil || seriesSum(ser3) != want {
		t.Fatalf("minute rollups after raw retention: %+v %v", seriesSum(ser3), err)
	}
	if _, err := s.SearchFlows(ctx, store.SearchQuery{From: from, To: to}); !errors.Is(err, store.ErrBadQuery) {
		t.Fatalf("search outside raw window: %v", err)
	}
	// 15 days later minute rollups are gone and hours answer.
	later = testNow.Add(15 * 24 * time.Hour)
	s.maintain(ctx)
	var nmin int
	s.r.QueryRow("SELECT count(*) FROM tot_m").Scan(&nmin)
	if nmin != 0 {
		t.Fatalf("%d minute rows after minute retention", nmin)
	}
	hs2, err := s.TimeSeries(ctx, store.SeriesQuery{From: hFrom, To: hTo})
	if err != nil || hs2.Resolution != store.ResHour || seriesSum(hs2) != inHours {
		t.Fatalf("hour rollups after minute retention: %v %+v %v", hs2, seriesSum(hs2), err)
	}
	// 401 days later everything is gone.
	later = testNow.Add(401 * 24 * time.Hour)
	s.maintain(ctx)
	var nh int
	s.r.QueryRow("SELECT (SELECT count(*) FROM tot_h) + (SELECT count(*) FROM top_h)").Scan(&nh)
	if nh != 0 {
		t.Fatalf("%d hour rows after hour retention", nh)
	}
}

func TestBadQueries(t *testing.T) {
	s := openAt(t, t.TempDir(), testNow)
	ctx := context.Background()
	from, to := testNow.Add(-time.Hour), testNow
	cases := map[string]func() error{
		"inverted": func() error { _, err := s.TimeSeries(ctx, store.SeriesQuery{From: to, To: from}); return err },
		"empty": func() error {
			_, err := s.Top(ctx, store.TopQuery{From: to, To: to, Dimension: store.DimLocalHost})
			return err
		},
		"absurd": func() error {
			_, err := s.TimeSeries(ctx, store.SeriesQuery{From: testNow.AddDate(-5, 0, 0), To: to})
			return err
		},
		"zero":      func() error { _, err := s.SearchFlows(ctx, store.SearchQuery{}); return err },
		"dimension": func() error { _, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: 99}); return err },
		"parse dim": func() error { _, err := store.ParseDimension("nope"); return err },
		"bad cidr":  func() error { _, err := store.ParsePrefix("10.0.0.0/99"); return err },
		"bad addr":  func() error { _, err := store.ParsePrefix("10.0.0.256"); return err },
		"metric": func() error {
			_, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: store.DimLocalHost, Metric: "x"})
			return err
		},
		"n": func() error {
			_, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: store.DimLocalHost, N: 5000})
			return err
		},
		"step": func() error {
			_, err := s.TimeSeries(ctx, store.SeriesQuery{From: from, To: to, Step: time.Second})
			return err
		},
		"points": func() error {
			_, err := s.TimeSeries(ctx, store.SeriesQuery{From: testNow.AddDate(0, 0, -300), To: to, Step: time.Hour / 60})
			return err
		},
		"cursor": func() error {
			_, err := s.SearchFlows(ctx, store.SearchQuery{From: from, To: to, Cursor: "!!"})
			return err
		},
		"group": func() error {
			_, err := s.TimeSeries(ctx, store.SeriesQuery{From: from, To: to, GroupBy: store.DimLocalHost})
			return err
		},
		"raw window": func() error {
			_, err := s.Top(ctx, store.TopQuery{From: testNow.AddDate(0, 0, -10), To: to, Dimension: store.DimLocalHost,
				Filter: store.Filter{Ports: []uint16{53}}})
			return err
		},
		"limit": func() error {
			_, err := s.SearchFlows(ctx, store.SearchQuery{From: from, To: to, Limit: -1})
			return err
		},
	}
	for name, f := range cases {
		err := f()
		var qe *store.QueryError
		if !errors.As(err, &qe) || !errors.Is(err, store.ErrBadQuery) {
			t.Errorf("%s: got %v, want a *QueryError", name, err)
		}
	}
}

func TestShutdownLosesNothing(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, testNow)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var accepted atomic.Int64
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			flows := genFlows(200, testNow)
			for i := 0; ; i++ {
				for j := range flows {
					flows[j].Bytes = uint64(g*1000000 + i)
				}
				if err := s.InsertFlows(context.Background(), flows); err != nil {
					if !errors.Is(err, store.ErrClosed) {
						t.Errorf("InsertFlows: %v", err)
					}
					return
				}
				accepted.Add(int64(len(flows)))
			}
		}()
	}
	testutil.WaitFor(t, 30*time.Second, "20000 accepted flows", func() (bool, string) {
		n := accepted.Load()
		return n >= 20000, fmt.Sprintf("%d flows accepted", n)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	var stored int64
	if err := s.r.QueryRow("SELECT sum(flows) FROM exporters").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	var rolled int64
	if err := s.r.QueryRow("SELECT sum(flows) FROM tot_m").Scan(&rolled); err != nil {
		t.Fatal(err)
	}
	if stored != accepted.Load() || rolled != stored {
		t.Fatalf("accepted %d flows, stored %d, in rollups %d", accepted.Load(), stored, rolled)
	}
	if h := s.Health(); h.DroppedFlows == 0 {
		t.Log("no flow was refused after shutdown began")
	}
}

func TestDiskFullAndRecovery(t *testing.T) {
	s := openAt(t, t.TempDir(), testNow)
	ctx := context.Background()
	flows := genFlows(2000, testNow)
	ingest(t, s, flows[:100])
	var pages int64
	if err := s.w.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(fmt.Sprintf("PRAGMA max_page_count = %d", pages+2)); err != nil {
		t.Fatal(err)
	}
	group := []*store.Batch{{Flows: append([]store.Flow(nil), flows...), Recv: testNow}}
	s.writeGroup(ctx, group)
	h := s.Health()
	if h.OK || h.DroppedBatches != 1 || h.DroppedFlows != 2000 || !bytes.Contains([]byte(h.Error), []byte("disk full")) {
		t.Fatalf("health after disk full = %+v", h)
	}
	if _, err := s.w.Exec("PRAGMA max_page_count = 1073741823"); err != nil {
		t.Fatal(err)
	}
	s.writeGroup(ctx, []*store.Batch{{Flows: append([]store.Flow(nil), flows[:50]...), Recv: testNow}})
	if h := s.Health(); !h.OK || h.DroppedBatches != 1 {
		t.Fatalf("health after space returned = %+v", h)
	}
	var stored int64
	s.r.QueryRow("SELECT sum(flows) FROM exporters").Scan(&stored)
	if stored != 150 {
		t.Fatalf("stored %d flows, want 150", stored)
	}
}

func TestReadOnlyDatabase(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, testNow)
	ingest(t, s, genFlows(10, testNow))
	closeAll(s)
	// A writer on a read-only handle gets the documented error.
	db, err := openDB(dir+"/"+store.DBFile, "mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.Exec("INSERT INTO names (name) VALUES ('x')")
	if err == nil || !bytes.Contains([]byte(store.DescribeWriteError(err).Error()), []byte("database is read-only")) {
		t.Fatalf("write on read-only database: %v", store.DescribeWriteError(err))
	}
	ro, err := OpenReadOnly(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(ro)
	if err := ro.InsertFlows(context.Background(), genFlows(1, testNow)); err == nil {
		t.Fatal("read-only store accepted flows")
	}
	if err := inv(ro).AddRouter(context.Background(), &store.Router{Name: "x", Address: "h:1"}); err == nil {
		t.Fatal("read-only store accepted a router")
	}
}

func TestConcurrentReadersDuringWrites(t *testing.T) {
	s := openAt(t, t.TempDir(), testNow)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.SearchFlows(context.Background(), store.SearchQuery{From: testNow.Add(-4 * time.Hour), To: testNow, Limit: 10}); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Top(context.Background(), store.TopQuery{From: testNow.Add(-4 * time.Hour), To: testNow, Dimension: store.DimRemoteHost}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	flows := genFlows(500, testNow)
	for range 20 {
		if err := s.InsertFlows(ctx, flows); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var stored int64
	s.r.QueryRow("SELECT sum(flows) FROM exporters").Scan(&stored)
	if stored != 10000 {
		t.Fatalf("stored %d, want 10000", stored)
	}
}
