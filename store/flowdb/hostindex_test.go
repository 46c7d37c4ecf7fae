package flowdb

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

func TestBuildSegment(t *testing.T) {
	for _, n := range []int{1, 7, 100, 5000, 200000} {
		hosts, rel := benchPostings(n)
		buckets := bucketsFor(len(rel))
		var sc segScratch
		rows := buildSegment(&sc, toChunks(hosts, rel), buckets)
		got := map[string][]int64{}
		for i, r := range rows {
			if i > 0 && bytes.Compare(rows[i-1].k, r.k) >= 0 {
				t.Fatalf("n=%d: rows not sorted by key at %d", n, i)
			}
			ids, err := readPostings(nil, r.v, 1000)
			if err != nil || len(ids) == 0 || !slices.IsSorted(ids) {
				t.Fatalf("n=%d: key %x: postings %v %v", n, r.k, ids, err)
			}
			got[string(r.k)] = ids
		}
		want := map[[16]byte][]int64{}
		for i, h := range hosts {
			if l := want[h]; len(l) == 0 || l[len(l)-1] != 1000+int64(rel[i]) {
				want[h] = append(l, 1000+int64(rel[i]))
			}
		}
		for h, ids := range want {
			exact, ok := got[string(exactKey(h))]
			switch {
			case ok:
				// An address with its own row has all its postings there.
				if !slices.Equal(exact, ids) || len(ids) < frequentPostings {
					t.Fatalf("n=%d: %x: own row %v, want %v", n, h, exact, ids)
				}
			case len(ids) >= frequentPostings:
				t.Fatalf("n=%d: frequent address %x (%d postings) has no row", n, h, len(ids))
			default:
				// Else its bucket row holds them (among others).
				bucket := got[string(bucketKey(h, buckets))]
				for _, id := range ids {
					if _, ok := slices.BinarySearch(bucket, id); !ok {
						t.Fatalf("n=%d: %x: id %d missing from its bucket", n, h, id)
					}
				}
			}
		}
	}
}

func TestSelectKth(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		n := 1 + rng.IntN(300)
		vals := make([]uint64, n)
		for i := range vals {
			vals[i] = uint64(rng.IntN(1 + rng.IntN(50)))
		}
		sorted := slices.Sorted(slices.Values(vals))
		k := rng.IntN(n)
		if got := selectKth(slices.Clone(vals), k); got != sorted[k] {
			t.Fatalf("selectKth(%v, %d) = %d, want %d", vals, k, got, sorted[k])
		}
	}
}

// indexFlows returns n flows of many hosts, IPv4 and IPv6, NATed behind
// a public address, in arrival order over the span before now: most end a
// few seconds before they arrive, some when they arrive, a few (late
// exports) long before.
func indexFlows(seed uint64, n int, now time.Time, span time.Duration) []store.Flow {
	rng := rand.New(rand.NewPCG(seed, 9))
	apps := []string{"", "youtube", "netflix", "dns"}
	ccs := []string{"US", "FR", "", "DE"}
	wan := netip.MustParseAddr("203.0.113.2")
	out := make([]store.Flow, n)
	for i := range out {
		sub := rng.IntN(300)
		if rng.IntN(4) == 0 {
			sub = rng.IntN(3) // a few busy subscribers
		}
		local := netip.AddrFrom4([4]byte{100, 64, byte(sub >> 8), byte(sub)})
		var remote netip.Addr
		if rng.IntN(10) == 0 {
			var b [16]byte
			b[0], b[1], b[15] = 0x2a, 0x00, byte(rng.IntN(50))
			remote = netip.AddrFrom16(b)
			local = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(sub)})
		} else {
			remote = netip.AddrFrom4([4]byte{byte(1 + rng.IntN(3)), byte(rng.IntN(4)), 7, byte(rng.IntN(256))})
		}
		arrival := now.Add(-span + span*time.Duration(i)/time.Duration(n)).UnixMilli()
		end := arrival
		switch u := rng.IntN(100); {
		case u < 3:
			end -= rng.Int64N(25 * 60000)
		case u < 80:
			end -= rng.Int64N(20000)
		}
		f := store.Flow{Exporter: netip.MustParseAddrPort("127.0.0.2:2055"), Start: end - rng.Int64N(30000), End: end,
			Proto: 6, SrcPort: 443, DstPort: uint16(30000 + rng.IntN(30000)), InIf: 1, OutIf: 2,
			Bytes: uint64(40 + rng.IntN(100000)), Packets: uint64(1 + rng.IntN(100)), Direction: store.DirDownload,
			Application: apps[rng.IntN(len(apps))], SrcCountry: ccs[rng.IntN(len(ccs))], DstCountry: "private",
			Subscriber: fmt.Sprintf("sub-%d", sub)}
		f.SrcAddr, f.DstAddr = remote, local
		if local.Is4() {
			f.DstAddr, f.PostNATDstAddr, f.PostNATSrcAddr = wan, local, remote
		}
		if rng.IntN(2) == 0 {
			f.Direction = store.DirUpload
			f.SrcAddr, f.DstAddr, f.PostNATDstAddr, f.PostNATSrcAddr = local, remote, netip.Addr{}, netip.Addr{}
			f.SrcPort, f.DstPort = f.DstPort, f.SrcPort
			f.SrcCountry, f.DstCountry = f.DstCountry, f.SrcCountry
			if local.Is4() {
				f.PostNATSrcAddr, f.PostNATDstAddr = wan, remote
			}
		}
		out[i] = f
	}
	return out
}

// writeDirect writes flows through the writer's own path (as Run does)
// without the goroutine, so a test controls when groups and spills happen.
func writeDirect(t testing.TB, s *FlowDB, flows []store.Flow) {
	t.Helper()
	for i := 0; i < len(flows); i += 1000 {
		b := &store.Batch{Flows: append([]store.Flow(nil), flows[i:min(i+1000, len(flows))]...), Recv: s.now()}
		for j := range b.Flows {
			b.Flows[j].RouterID = 1
		}
		s.writeGroup(context.Background(), []*store.Batch{b})
		if h := s.Health(); !h.OK {
			t.Fatalf("write: %s", h.Error)
		}
	}
}

// brute is the reference: the flows that pass flt in [from, to), in
// search order. legacy flows (from a format 1 partition, nil for none)
// sort before the others of their partition's time.
func brute(flows []store.Flow, from, to time.Time, flt store.Filter, desc bool, legacy ...map[store.Flow]bool) []store.Flow {
	var out []store.Flow
	for i := range flows {
		f := rowOf(flows[i])
		f.RouterID = 1
		l, r := f.LocalRemote()
		if f.End < from.UnixMilli() || f.End >= to.UnixMilli() || !flt.Match(&f, 1, l.Unmap(), r.Unmap()) {
			continue
		}
		out = append(out, f)
	}
	// Stable sort by end: equal ends keep the arrival (id) order.
	part := func(f *store.Flow) int64 {
		if len(legacy) > 0 && legacy[0][*f] {
			return 2 * partitionStart(f.End)
		}
		return 2*partitionStart(f.End) + 1
	}
	slices.SortStableFunc(out, func(a, b store.Flow) int {
		return cmp.Or(cmp.Compare(part(&a), part(&b)), cmp.Compare(a.End, b.End))
	})
	if desc {
		slices.Reverse(out)
	}
	return out
}

// sameFlows compares search results with the reference, ignoring the
// order of flows with the same end time (whose ids order them).
func sameFlows(t *testing.T, what string, got, want []store.Flow) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d flows, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i].End != want[i].End {
			t.Fatalf("%s: flow %d ends at %d, want %d", what, i, got[i].End, want[i].End)
		}
	}
	order := func(a, b store.Flow) int {
		return cmp.Or(cmp.Compare(a.End, b.End), cmp.Compare(a.Start, b.Start), cmp.Compare(a.Bytes, b.Bytes),
			cmp.Compare(a.Packets, b.Packets), cmp.Compare(a.DstPort, b.DstPort), a.SrcAddr.Compare(b.SrcAddr))
	}
	g, w := slices.Clone(got), slices.Clone(want)
	slices.SortFunc(g, order)
	slices.SortFunc(w, order)
	for i := range g {
		if g[i] != w[i] {
			t.Fatalf("%s: flows differ:\n got %+v\nwant %+v", what, g[i], w[i])
		}
	}
}

// searchAll pages through a search.
func searchAll(t *testing.T, s *FlowDB, q store.SearchQuery) []store.Flow {
	t.Helper()
	var out []store.Flow
	for pages := 0; ; pages++ {
		p, err := s.SearchFlows(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Flows) > q.Limit || (p.Next != "" && len(p.Flows) != q.Limit) {
			t.Fatalf("page of %d flows with limit %d, next %q", len(p.Flows), q.Limit, p.Next)
		}
		out = append(out, p.Flows...)
		if p.Next == "" || pages > 10000 {
			return out
		}
		q.Cursor = p.Next
	}
}

// checkQueries compares searches, CSV exports, tops and series with
// filters against the reference.
func checkQueries(t *testing.T, s *FlowDB, flows []store.Flow, from, to time.Time, where string, legacy ...map[store.Flow]bool) {
	t.Helper()
	ctx := context.Background()
	one := func(s string) []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix(s)} }
	filters := map[string]store.Filter{
		"none":         {},
		"busy host":    {Hosts: one("100.64.0.1/32")},
		"rare host":    {Hosts: one("2.3.7.200/32")},
		"absent host":  {Hosts: one("9.9.9.9/32")},
		"v6 host":      {Hosts: one("2a00::7/128")},
		"small cidr":   {Hosts: one("100.64.0.0/28")},
		"large cidr":   {Hosts: one("100.64.0.0/16")},
		"conversation": {LocalHosts: one("100.64.0.2/32"), RemoteHosts: one("1.1.7.0/24")},
		"local side":   {LocalHosts: one("100.64.0.1/32"), Directions: []store.Direction{store.DirUpload}},
		"application":  {Applications: []string{"netflix", ""}, Hosts: one("100.64.0.0/30")},
		"country":      {Countries: []string{"FR"}},
		"two hosts":    {Hosts: []netip.Prefix{netip.MustParsePrefix("100.64.0.2/32"), netip.MustParsePrefix("2001:db8::7/128")}},
	}
	for name, flt := range filters {
		for _, desc := range []bool{true, false} {
			what := fmt.Sprintf("%s: %s desc=%v", where, name, desc)
			want := brute(flows, from, to, flt, desc, legacy...)
			small := 7
			if len(want) > 300 {
				small = 293 // pages end mid-partition all the same
			}
			limits := []int{small}
			if desc {
				limits = append(limits, 10000)
			}
			for _, limit := range limits {
				got := searchAll(t, s, store.SearchQuery{From: from, To: to, Filter: flt, Limit: limit, Ascending: !desc})
				sameFlows(t, fmt.Sprintf("%s limit %d", what, limit), got, want)
			}
			if desc != (len(name)%2 == 0) {
				continue // CSV export in one order per filter
			}
			var buf bytes.Buffer
			if err := s.ExportCSV(ctx, store.SearchQuery{From: from, To: to, Filter: flt, Ascending: !desc}, &buf); err != nil {
				t.Fatal(err)
			}
			recs, err := csv.NewReader(&buf).ReadAll()
			if err != nil || len(recs) != len(want)+1 {
				t.Fatalf("%s: CSV has %d records (%v), want %d", what, len(recs), err, len(want)+1)
			}
			for i, r := range recs[1:] {
				if r[0] != time.UnixMilli(want[i].End).UTC().Format(time.RFC3339Nano) {
					t.Fatalf("%s: CSV record %d ends at %s, want %d", what, i, r[0], want[i].End)
				}
			}
		}
		var bytesWant uint64
		for _, f := range brute(flows, from, to, flt, false) {
			bytesWant += f.Scale(f.Bytes)
		}
		top, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: store.DimRemoteHost, Filter: flt, Resolution: store.ResRaw})
		if err != nil || top.Total.Bytes != bytesWant {
			t.Fatalf("%s: %s: top total %d (%v), want %d", where, name, top.Total.Bytes, err, bytesWant)
		}
		ser, err := s.TimeSeries(ctx, store.SeriesQuery{From: from, To: to, Filter: flt, Resolution: store.ResRaw})
		if err != nil || seriesSum(ser).bytes != bytesWant {
			t.Fatalf("%s: %s: series %d (%v), want %d", where, name, seriesSum(ser).bytes, err, bytesWant)
		}
	}
}

// TestHostIndex checks raw queries against a brute-force reference while
// the rows of the partitions are in the in-memory tails, in segments, in
// both (late flows after a spill), after a restart (tails rebuilt from the
// rows), and from a read-only store that has no tails at all.
func TestHostIndex(t *testing.T) {
	dir := t.TempDir()
	now := testNow
	s := openAt(t, dir, now)
	ctx := context.Background()
	from, to := now.Add(-40*time.Minute), now.Add(time.Minute)
	flows := indexFlows(1, 4000, now, 30*time.Minute)
	writeDirect(t, s, flows[:2000])
	checkQueries(t, s, flows[:2000], from, to, "tails")

	// Close the partitions over when the 2000th flow arrived: their tails
	// become segments.
	if err := s.closePartitions(ctx, now.Add(-15*time.Minute)); err != nil {
		t.Fatal(err)
	}
	var segs int
	s.r.QueryRow("SELECT count(*) FROM raw_segments").Scan(&segs)
	if segs == 0 || s.wr.postings == 0 {
		t.Fatalf("%d segments, %d postings in tails: want both (the last partitions stay open)", segs, s.wr.postings)
	}
	// Late flows go into closed partitions' tails; a spill of a big tail
	// makes a second segment in one of them.
	writeDirect(t, s, flows[2000:3000])
	s.spillLargest(ctx)
	writeDirect(t, s, flows[3000:])
	checkQueries(t, s, flows, from, to, "segments and tails")

	// A restart loses the tails: they are rebuilt from the rows.
	closeAll(s)
	s = openAt(t, dir, now)
	if s.wr.postings == 0 {
		t.Fatal("no tail rebuilt after restart")
	}
	checkQueries(t, s, flows, from, to, "after restart")

	// Another process (read-only) has no tails: it reads those rows whole.
	ro, err := OpenReadOnly(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(ro)
	ro.now = s.now
	checkQueries(t, ro, flows, from, to, "read-only")

	// Everything closed: segments only.
	if err := s.closePartitions(ctx, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if s.wr.postings != 0 {
		t.Fatalf("%d postings left in tails after closing everything", s.wr.postings)
	}
	checkQueries(t, s, flows, from, to, "segments")
}

// TestSpillDuringSearches checks that searches running while the writer
// writes and spills never miss a committed row.
func TestSpillDuringSearches(t *testing.T) {
	s := openAt(t, t.TempDir(), testNow)
	host := netip.MustParsePrefix("100.64.0.1/32")
	flows := indexFlows(2, 30000, testNow, 4*time.Minute)
	want := func(n int) int {
		return len(brute(flows[:n], testNow.Add(-time.Hour), testNow.Add(time.Hour), store.Filter{Hosts: []netip.Prefix{host}}, true))
	}
	var committed atomic.Int64 // flows written so far
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := int(committed.Load())
				p, err := s.SearchFlows(context.Background(), store.SearchQuery{From: testNow.Add(-time.Hour), To: testNow.Add(time.Hour),
					Filter: store.Filter{Hosts: []netip.Prefix{host}}, Limit: 10000})
				if err != nil {
					t.Error(err)
					return
				}
				if w := want(n); len(p.Flows) < w {
					t.Errorf("search found %d flows, %d were committed before it began", len(p.Flows), w)
					return
				}
			}
		}()
	}
	for i := 0; i < len(flows); i += 3000 {
		writeDirect(t, s, flows[i:i+3000])
		committed.Store(int64(i + 3000))
		s.spillLargest(context.Background())
	}
	close(stop)
	wg.Wait()
}

// TestLegacyPartition checks that a format 1 partition left by an older
// flowbox is read (with the new partition of the same time beside it),
// indexed when it closes and dropped by retention.
func TestLegacyPartition(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, testNow)
	ctx := context.Background()
	flows := indexFlows(3, 2000, testNow, 4*time.Minute)
	start := partitionStart(testNow.Add(-time.Minute).UnixMilli())
	old, cur := []store.Flow{}, []store.Flow{}
	legacy := map[store.Flow]bool{}
	for _, f := range flows {
		if partitionStart(f.End) == start && len(old) < 500 {
			old = append(old, f)
			r := rowOf(f)
			r.RouterID = 1
			legacy[r] = true
		} else {
			cur = append(cur, f)
		}
	}
	// Write the old flows as flowbox did before: flows_* with (t, a, b, x).
	name := "flows_" + time.UnixMilli(start).UTC().Format("200601021504")
	if _, err := s.w.Exec("CREATE TABLE " + name + " (id INTEGER PRIMARY KEY, t INTEGER NOT NULL, a BLOB, b BLOB, x BLOB NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec("INSERT INTO raw_partitions (name, start, format) VALUES (?, ?, 1)", name, start/1000); err != nil {
		t.Fatal(err)
	}
	var exp int64
	if err := s.w.QueryRow("INSERT INTO exporters (addr) VALUES (?) RETURNING id", addrBytes(netip.MustParseAddr("127.0.0.2"))).Scan(&exp); err != nil {
		t.Fatal(err)
	}
	names := map[string]int64{}
	for _, f := range old {
		for _, n := range []string{f.Subscriber, f.Application, f.SrcCountry, f.DstCountry} {
			if _, ok := names[n]; !ok && n != "" {
				var id int64
				if err := s.w.QueryRow("INSERT INTO names (name) VALUES (?) RETURNING id", n).Scan(&id); err != nil {
					t.Fatal(err)
				}
				names[n] = id
			}
		}
		f.RouterID = 1
		l, r := f.LocalRemote()
		l, r = l.Unmap(), r.Unmap()
		x := encodeRawV1(nil, &f, l, r, exp, rawNames{uint64(names[f.Subscriber]), uint64(names[f.Application]),
			uint64(names[f.SrcCountry]), uint64(names[f.DstCountry]), 0})
		if _, err := s.w.Exec("INSERT INTO "+name+" (t, a, b, x) VALUES (?, ?, ?, ?)", f.End-start, addrBytes(l), addrBytes(r), x); err != nil {
			t.Fatal(err)
		}
	}
	closeAll(s)
	s = openAt(t, dir, testNow)
	if len(s.wr.legacy) != 1 {
		t.Fatalf("%d format 1 partitions loaded", len(s.wr.legacy))
	}
	writeDirect(t, s, cur)
	from, to := testNow.Add(-10*time.Minute), testNow.Add(time.Minute)
	checkQueries(t, s, flows, from, to, "format 1 beside format 2", legacy)
	s.maintain(ctx) // testNow is 10:30: the 10:25 partition is not over yet
	s.now = func() time.Time { return testNow.Add(10 * time.Minute) }
	s.maintain(ctx)
	var idx int
	s.r.QueryRow("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = ?", name).Scan(&idx)
	if idx != 2 {
		t.Fatalf("format 1 partition has %d indexes after closing, want 2", idx)
	}
	checkQueries(t, s, flows, from, to, "format 1 indexed", legacy)
	s.now = func() time.Time { return testNow.Add(49 * time.Hour) }
	s.maintain(ctx)
	var left int
	s.r.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name GLOB 'flows_*' OR name GLOB 'raw_2*' OR name GLOB 'rawx_*'").Scan(&left)
	if left != 0 || len(s.wr.legacy)+len(s.wr.parts) != 0 {
		t.Fatalf("%d partition tables left after retention", left)
	}
}

// TestTailBound checks that the tails stay within their bound: the writer
// spills the largest one when they hold too many postings.
func TestTailBound(t *testing.T) {
	s := openAt(t, t.TempDir(), testNow)
	s.wr.maxPostings = 2000
	flows := indexFlows(7, 6000, testNow, 4*time.Minute)
	writeDirect(t, s, flows)
	var segs int
	s.r.QueryRow("SELECT count(*) FROM raw_segments").Scan(&segs)
	if segs < 3 || s.wr.postings > s.wr.maxPostings+2*1000 {
		t.Fatalf("%d segments, %d postings in tails (bound %d)", segs, s.wr.postings, s.wr.maxPostings)
	}
	checkQueries(t, s, flows, testNow.Add(-10*time.Minute), testNow.Add(time.Minute), "bounded tails")
}
