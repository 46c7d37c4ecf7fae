package flowdb

import (
	"context"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/store"
)

// natClock is a settable clock for the writer (the tests drive the writer
// from their own goroutine: writeGroup, natFlush, maintain), with the
// registry of the store's metrics.
type natClock struct {
	t   time.Time
	reg *prometheus.Registry
}

func (c *natClock) now() time.Time { return c.t }

// openNAT opens a flow database at testNow with cfg's changes applied.
func openNAT(t *testing.T, change func(*store.Config)) (*FlowDB, *natClock) {
	t.Helper()
	cfg := store.DefaultConfig()
	if change != nil {
		change(&cfg)
	}
	reg := prometheus.NewRegistry()
	s, err := Open(context.Background(), t.TempDir(), cfg, testLogger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeAll(s) })
	c := &natClock{t: testNow, reg: reg}
	s.now = c.now
	return s, c
}

// natIngest writes flows as the writer does, in one group.
func natIngest(t *testing.T, s *FlowDB, flows ...store.Flow) {
	t.Helper()
	b := &store.Batch{Flows: append([]store.Flow(nil), flows...), Recv: s.now()}
	s.writeGroup(context.Background(), []*store.Batch{b})
	if h := s.Health(); !h.OK {
		t.Fatalf("write: %s", h.Error)
	}
}

// natFlush writes every mapping in memory, as at shutdown.
func natFlush(t *testing.T, s *FlowDB) {
	t.Helper()
	if err := s.natFlush(context.Background(), s.now(), true); err != nil {
		t.Fatal(err)
	}
}

// natMem returns the mapping records in memory.
func natMem(s *FlowDB) int {
	s.nat.mu.RLock()
	defer s.nat.mu.RUnlock()
	return len(s.nat.recs) + len(s.nat.pending)
}

// natRows returns the mapping entries of every day table.
func natRows(t *testing.T, s *FlowDB) int {
	t.Helper()
	ctx := context.Background()
	rows, err := s.r.QueryContext(ctx, "SELECT name FROM nat_days")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	rows.Close()
	total := 0
	for _, n := range names {
		var c int
		if err := s.r.QueryRowContext(ctx, "SELECT coalesce(sum(n), 0) FROM "+n).Scan(&c); err != nil {
			t.Fatal(err)
		}
		total += c
	}
	return total
}

var (
	natPublic  = netip.MustParseAddr("203.0.113.7")
	natRemote  = netip.MustParseAddr("142.250.1.10")
	natInsideA = netip.MustParseAddr("100.64.1.20")
	natInsideB = netip.MustParseAddr("100.64.3.99")
)

// natPair returns the two flows RouterOS exports for one NATed connection
// (as netflowtest's subscriberSession builds them): the upload from
// inside:lport leaving as public:natPort, and the download arriving for
// public:natPort, translated back to inside:lport.
func natPair(inside netip.Addr, lport, natPort uint16, start, end time.Time) (up, down store.Flow) {
	exp := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), 2055)
	up = store.Flow{Exporter: exp, Version: 9, RouterID: 1, Start: start.UnixMilli(), End: end.UnixMilli(),
		SrcAddr: inside, DstAddr: natRemote, SrcPort: lport, DstPort: 443, Proto: 6, Bytes: 900, Packets: 10,
		PostNATSrcAddr: natPublic, PostNATSrcPort: natPort, PostNATDstAddr: natRemote, PostNATDstPort: 443,
		Direction: store.DirUpload}
	down = store.Flow{Exporter: exp, Version: 9, RouterID: 1, Start: start.UnixMilli() + 20, End: end.UnixMilli(),
		SrcAddr: natRemote, DstAddr: natPublic, SrcPort: 443, DstPort: natPort, Proto: 6, Bytes: 90000, Packets: 70,
		PostNATSrcAddr: natRemote, PostNATSrcPort: 443, PostNATDstAddr: inside, PostNATDstPort: lport,
		Direction: store.DirDownload}
	return up, down
}

func lookup(t *testing.T, s *FlowDB, q store.NATQuery) []store.NATMapping {
	t.Helper()
	ms, err := s.LookupNAT(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestNATBothDirections: the upload and the download of one connection
// give one mapping (one row), seen by a lookup before and after the flush.
func TestNATBothDirections(t *testing.T) {
	s, clock := openNAT(t, nil)
	start := testNow.Add(-3 * time.Minute)
	up, down := natPair(natInsideA, 40001, 51234, start, start.Add(20*time.Second))
	natIngest(t, s, down, up)
	q := store.NATQuery{Public: natPublic, Port: 51234, Proto: 6, At: start.Add(10 * time.Second)}
	check := func(when string) {
		t.Helper()
		ms := lookup(t, s, q)
		if len(ms) != 1 {
			t.Fatalf("%s: %d matches, want 1: %+v", when, len(ms), ms)
		}
		m := ms[0]
		if m.RouterID != 1 || m.Proto != 6 || m.ProtoName != "tcp" || m.PublicAddr != natPublic || m.PublicPort != 51234 ||
			m.InsideAddr != natInsideA || m.InsidePort != 40001 || m.RemoteAddr != natRemote || m.RemotePort != 443 ||
			m.Remotes != 1 || m.Flows != 2 || !m.FirstSeen.Equal(start) || !m.LastSeen.Equal(start.Add(20*time.Second)) {
			t.Fatalf("%s: %+v", when, m)
		}
	}
	check("in memory")
	if n := natRows(t, s); n != 0 {
		t.Fatalf("%d rows before the flush", n)
	}
	clock.t = clock.t.Add(time.Minute)
	s.maintain(context.Background())
	if n := natRows(t, s); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
	check("written")
	if n := natMem(s); n != 0 {
		t.Fatalf("%d mappings in memory after natHold", n)
	}
	check("on disk only")
	if st := s.NATStats(); st.Written != 1 || st.Blocks != 1 || st.Evicted != 0 || st.Dropped != 0 || st.Days != 1 || st.Cached != 0 {
		t.Fatalf("stats %+v", st)
	}
	// The lookup without a port or protocol finds it too; another port
	// or protocol does not.
	if ms := lookup(t, s, store.NATQuery{Public: natPublic, At: q.At}); len(ms) != 1 {
		t.Fatalf("address only: %+v", ms)
	}
	if ms := lookup(t, s, store.NATQuery{Public: natPublic, Port: 51235, At: q.At}); len(ms) != 0 {
		t.Fatalf("other port: %+v", ms)
	}
	if ms := lookup(t, s, store.NATQuery{Public: natPublic, Port: 51234, Proto: 17, At: q.At}); len(ms) != 0 {
		t.Fatalf("udp: %+v", ms)
	}
}

// TestNATNonNAT: flows without translation (post-NAT fields equal to the
// pre-NAT ones, absent or unspecified, a router's own traffic) give no
// mapping.
func TestNATNonNAT(t *testing.T) {
	s, clock := openNAT(t, nil)
	exp := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), 2055)
	end := testNow.Add(-time.Minute).UnixMilli()
	base := store.Flow{Exporter: exp, Version: 9, RouterID: 1, Start: end - 1000, End: end, Proto: 17,
		SrcAddr: natInsideA, DstAddr: natRemote, SrcPort: 5353, DstPort: 53, Bytes: 80, Packets: 1}
	same := base
	same.PostNATSrcAddr, same.PostNATSrcPort, same.PostNATDstAddr, same.PostNATDstPort = base.SrcAddr, base.SrcPort, base.DstAddr, base.DstPort
	unspec := base
	unspec.PostNATSrcAddr, unspec.PostNATDstAddr = netip.IPv4Unspecified(), netip.IPv4Unspecified()
	unspec.PostNATSrcPort = 1
	router := base // the router's own DNS query, from its public address
	router.SrcAddr, router.PostNATSrcAddr, router.PostNATDstAddr = natPublic, natPublic, natRemote
	router.PostNATSrcPort, router.PostNATDstPort = router.SrcPort, router.DstPort
	v6 := base
	v6.SrcAddr, v6.DstAddr = netip.MustParseAddr("2001:db8:1::10"), netip.MustParseAddr("2001:4860::8888")
	v6.PostNATSrcAddr, v6.PostNATDstAddr = v6.SrcAddr, v6.DstAddr
	portOnlyAbsent := base // post-NAT address equal, post-NAT port absent
	portOnlyAbsent.PostNATSrcAddr = base.SrcAddr
	natIngest(t, s, base, same, unspec, router, v6, portOnlyAbsent)
	clock.t = clock.t.Add(time.Minute)
	s.maintain(context.Background())
	if natMem(s) != 0 || natRows(t, s) != 0 || s.NATStats().Days != 0 {
		t.Fatalf("non-NAT flows made mappings: %d in memory, stats %+v", natMem(s), s.NATStats())
	}
}

// TestNATIPv6AndPortTranslation: an IPv6 translation (NAT66) and a
// translation of the port alone give mappings with their addresses.
func TestNATIPv6AndPortTranslation(t *testing.T) {
	s, _ := openNAT(t, nil)
	exp := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), 2055)
	end := testNow.Add(-time.Minute).UnixMilli()
	inside6, public6, remote6 := netip.MustParseAddr("fd00::10"), netip.MustParseAddr("2001:db8:ff::1"), netip.MustParseAddr("2001:4860::8888")
	f6 := store.Flow{Exporter: exp, Version: 10, RouterID: 2, Start: end - 1000, End: end, Proto: 17,
		SrcAddr: inside6, DstAddr: remote6, SrcPort: 5000, DstPort: 53,
		PostNATSrcAddr: public6, PostNATSrcPort: 6000, PostNATDstAddr: remote6, PostNATDstPort: 53}
	port := store.Flow{Exporter: exp, Version: 9, RouterID: 2, Start: end - 1000, End: end, Proto: 6,
		SrcAddr: natPublic, DstAddr: natRemote, SrcPort: 8080, DstPort: 443,
		PostNATSrcAddr: natPublic, PostNATSrcPort: 18080, PostNATDstAddr: natRemote, PostNATDstPort: 443}
	natIngest(t, s, f6, port)
	natFlush(t, s)
	at := time.UnixMilli(end)
	ms := lookup(t, s, store.NATQuery{Public: public6, Port: 6000, At: at})
	if len(ms) != 1 || ms[0].InsideAddr != inside6 || ms[0].InsidePort != 5000 || ms[0].RemoteAddr != remote6 || ms[0].ProtoName != "udp" || ms[0].RouterID != 2 {
		t.Fatalf("IPv6: %+v", ms)
	}
	ms = lookup(t, s, store.NATQuery{Public: natPublic, Port: 18080, At: at})
	if len(ms) != 1 || ms[0].InsideAddr != natPublic || ms[0].InsidePort != 8080 {
		t.Fatalf("port translation: %+v", ms)
	}
}

// TestNATLongMapping: a connection exported in active-timeout chunks is
// one entry per natMaxSpan, whether its chunks come while it is in memory
// (1-minute active timeout) or after it left memory (RouterOS' default 30
// minutes); the lookup joins the entries into one match.
func TestNATLongMapping(t *testing.T) {
	s, clock := openNAT(t, nil)
	ctx := context.Background()
	t0 := testNow.Add(-2 * time.Hour)
	clock.t = t0
	// 1-minute chunks for 40 minutes, each exported when it ends, with
	// the writer's minute maintenance in between.
	for i := range 40 {
		cs := t0.Add(time.Duration(i) * time.Minute)
		up, down := natPair(natInsideA, 40001, 51234, cs, cs.Add(time.Minute))
		clock.t = cs.Add(time.Minute + time.Second)
		natIngest(t, s, up, down)
		s.maintain(ctx)
		if n := natMem(s); n != 1 && i != 29 { // at 30 minutes, it is written
			t.Fatalf("minute %d: %d records in memory, want the merged one", i, n)
		}
	}
	clock.t = clock.t.Add(natHold)
	s.maintain(ctx)
	if n := natRows(t, s); n != 2 {
		t.Fatalf("1-minute chunks: %d entries, want 2 (30 minutes, then 10)", n)
	}
	ms := lookup(t, s, store.NATQuery{Public: natPublic, Port: 51234, At: t0.Add(20 * time.Minute)})
	if len(ms) != 1 || ms[0].Flows != 80 || !ms[0].FirstSeen.Equal(t0) || !ms[0].LastSeen.Equal(t0.Add(40*time.Minute)) || ms[0].Remotes != 1 {
		t.Fatalf("1-minute chunks: %+v", ms)
	}

	// 30-minute chunks of another connection: the mapping leaves memory
	// between them.
	t1 := t0.Add(time.Hour)
	for i := range 2 {
		cs := t1.Add(time.Duration(i) * 30 * time.Minute)
		up, down := natPair(natInsideB, 50002, 60000, cs, cs.Add(30*time.Minute))
		clock.t = cs.Add(30*time.Minute + time.Second)
		natIngest(t, s, up, down)
		s.maintain(ctx)
		if n := natMem(s); n != 0 {
			t.Fatalf("%d records in memory after a chunk of natMaxSpan", n)
		}
	}
	if n := natRows(t, s); n != 4 {
		t.Fatalf("30-minute chunks: %d entries in all, want 4", n)
	}
	ms = lookup(t, s, store.NATQuery{Public: natPublic, Port: 60000, At: t1.Add(45 * time.Minute)})
	if len(ms) != 1 || ms[0].Flows != 4 || !ms[0].FirstSeen.Equal(t1) || !ms[0].LastSeen.Equal(t1.Add(time.Hour)) || ms[0].InsideAddr != natInsideB {
		t.Fatalf("30-minute chunks: %+v", ms)
	}

	// Three hours of 10-minute chunks: six entries of at most 30 minutes,
	// joined by the lookup.
	s2, clock2 := openNAT(t, nil)
	t2 := testNow.Add(-4 * time.Hour)
	for i := range 18 {
		cs := t2.Add(time.Duration(i) * 10 * time.Minute)
		up, down := natPair(natInsideA, 40001, 51234, cs, cs.Add(10*time.Minute))
		clock2.t = cs.Add(10*time.Minute + time.Second)
		natIngest(t, s2, up, down)
		s2.maintain(ctx)
	}
	natFlush(t, s2)
	if n := natRows(t, s2); n != 6 {
		t.Fatalf("3 hours: %d entries, want 6", n)
	}
	ms = lookup(t, s2, store.NATQuery{Public: natPublic, Port: 51234, At: t2.Add(90 * time.Minute), Window: time.Hour})
	if len(ms) != 1 || ms[0].Flows != 36 || !ms[0].FirstSeen.Equal(t2) || !ms[0].LastSeen.Equal(t2.Add(3*time.Hour)) {
		t.Fatalf("3 hours: %+v", ms)
	}
}

// TestNATPortReuse: one public port used by two customers at different
// times gives two rows, and a lookup at each time finds the right one.
func TestNATPortReuse(t *testing.T) {
	s, clock := openNAT(t, nil)
	ta := testNow.Add(-40 * time.Minute)
	tb := ta.Add(20 * time.Minute)
	upA, downA := natPair(natInsideA, 40001, 51234, ta, ta.Add(time.Minute))
	upB, downB := natPair(natInsideB, 33333, 51234, tb, tb.Add(2*time.Minute))
	natIngest(t, s, upA, downA)
	clock.t = tb.Add(3 * time.Minute)
	natIngest(t, s, upB, downB)
	for _, flushed := range []bool{false, true} {
		if flushed {
			natFlush(t, s)
			if n := natRows(t, s); n != 2 {
				t.Fatalf("%d rows, want 2", n)
			}
		}
		if ms := lookup(t, s, store.NATQuery{Public: natPublic, Port: 51234, At: ta.Add(30 * time.Second)}); len(ms) != 1 || ms[0].InsideAddr != natInsideA || ms[0].InsidePort != 40001 {
			t.Fatalf("flushed %v: at A's time: %+v", flushed, ms)
		}
		if ms := lookup(t, s, store.NATQuery{Public: natPublic, Port: 51234, At: tb.Add(time.Minute)}); len(ms) != 1 || ms[0].InsideAddr != natInsideB || ms[0].InsidePort != 33333 {
			t.Fatalf("flushed %v: at B's time: %+v", flushed, ms)
		}
		if ms := lookup(t, s, store.NATQuery{Public: natPublic, Port: 51234, At: ta.Add(10 * time.Minute)}); len(ms) != 0 {
			t.Fatalf("flushed %v: between them: %+v", flushed, ms)
		}
		// A wide window finds both, the closest first (A ended 9 minutes
		// before, B starts 10 minutes after).
		ms := lookup(t, s, store.NATQuery{Public: natPublic, Port: 51234, At: ta.Add(10 * time.Minute), Window: 15 * time.Minute})
		if len(ms) != 2 || ms[0].InsideAddr != natInsideA || ms[1].InsideAddr != natInsideB {
			t.Fatalf("flushed %v: wide window: %+v", flushed, ms)
		}
		if ms := lookup(t, s, store.NATQuery{Public: natPublic, Port: 51234, At: ta.Add(10 * time.Minute), Window: 15 * time.Minute, Limit: 1}); len(ms) != 1 || ms[0].InsideAddr != natInsideA {
			t.Fatalf("flushed %v: limit 1: %+v", flushed, ms)
		}
	}
}

// TestNATWindowEdges: a complaint's time off by up to the window (clock
// skew, timeouts) finds the mapping, the edges included; beyond, nothing.
func TestNATWindowEdges(t *testing.T) {
	s, _ := openNAT(t, nil)
	first := testNow.Add(-20 * time.Minute).Truncate(time.Second)
	last := first.Add(5 * time.Second)
	up, down := natPair(natInsideA, 40001, 51234, first, last)
	natIngest(t, s, up, down)
	for _, flushed := range []bool{false, true} {
		if flushed {
			natFlush(t, s)
		}
		for _, c := range []struct {
			at     time.Time
			window time.Duration
			want   int
		}{
			{last.Add(90 * time.Second), 0, 1},   // the abuse desk's clock is 90 s late
			{first.Add(-90 * time.Second), 0, 1}, // or early
			{last.Add(2 * time.Minute), 0, 1},    // the edges are in
			{first.Add(-2 * time.Minute), 0, 1},
			{last.Add(2*time.Minute + time.Millisecond), 0, 0},
			{first.Add(-2*time.Minute - time.Millisecond), 0, 0},
			{last.Add(5 * time.Minute), 4 * time.Minute, 0},
			{last.Add(5 * time.Minute), 5 * time.Minute, 1},
			{first.Add(time.Second), time.Millisecond, 1},
		} {
			if ms := lookup(t, s, store.NATQuery{Public: natPublic, Port: 51234, At: c.at, Window: c.window}); len(ms) != c.want {
				t.Errorf("flushed %v: at %s (first %s) window %s: %d matches, want %d", flushed, c.at.Format(time.TimeOnly), first.Format(time.TimeOnly), c.window, len(ms), c.want)
			}
		}
		// Any time zone: the same instant.
		paris := time.FixedZone("CET", 3600)
		if ms := lookup(t, s, store.NATQuery{Public: natPublic, Port: 51234, At: first.In(paris)}); len(ms) != 1 {
			t.Errorf("flushed %v: time in another zone: %+v", flushed, ms)
		}
	}
}

// TestNATLookupErrors: bad queries get clear errors.
func TestNATLookupErrors(t *testing.T) {
	s, _ := openNAT(t, nil)
	for _, c := range []struct {
		q    store.NATQuery
		want string
	}{
		{store.NATQuery{At: testNow}, "a public address is required"},
		{store.NATQuery{Public: netip.IPv4Unspecified(), At: testNow}, "0.0.0.0 is not a public address"},
		{store.NATQuery{Public: netip.MustParseAddr("fe80::1%eth0"), At: testNow}, "has no zone"},
		{store.NATQuery{Public: natPublic}, "a time is required"},
		{store.NATQuery{Public: natPublic, At: testNow, Window: -time.Second}, "window -1s is outside"},
		{store.NATQuery{Public: natPublic, At: testNow, Window: 48 * time.Hour}, "window 48h0m0s is outside"},
		{store.NATQuery{Public: natPublic, At: testNow, Limit: -1}, "negative limit"},
	} {
		_, err := s.LookupNAT(context.Background(), c.q)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.q, err, c.want)
		}
	}
	// A v4-mapped address is its IPv4 address; nothing found is no error.
	ms, err := s.LookupNAT(context.Background(), store.NATQuery{Public: netip.MustParseAddr("::ffff:203.0.113.7"), At: testNow})
	if err != nil || len(ms) != 0 {
		t.Fatalf("nothing: %+v %v", ms, err)
	}
}

// TestNATLookupSeesUnflushed: mappings still in memory, not yet merged,
// merged, and waiting for their write, are all found before they are
// written.
func TestNATLookupSeesUnflushed(t *testing.T) {
	s, clock := openNAT(t, nil)
	t0 := testNow.Add(-30 * time.Minute)
	up, down := natPair(natInsideA, 40001, 51234, t0, t0.Add(time.Second))
	natIngest(t, s, up, down)
	// The same mapping 10 minutes later: another entry.
	up2, down2 := natPair(natInsideA, 40001, 51234, t0.Add(10*time.Minute), t0.Add(11*time.Minute))
	natIngest(t, s, up2, down2)
	// 150 other mappings.
	var more []store.Flow
	for i := range 150 {
		u, d := natPair(natInsideB, uint16(20000+i), uint16(30000+i), t0.Add(12*time.Minute), t0.Add(13*time.Minute))
		more = append(more, u, d)
	}
	clock.t = t0.Add(14 * time.Minute)
	natIngest(t, s, more...)
	check := func(when string) {
		t.Helper()
		if ms := lookup(t, s, store.NATQuery{Public: natPublic, Port: 51234, At: t0}); len(ms) != 1 || ms[0].Flows != 2 || !ms[0].LastSeen.Equal(t0.Add(time.Second)) {
			t.Fatalf("%s: first use: %+v", when, ms)
		}
		if ms := lookup(t, s, store.NATQuery{Public: natPublic, Port: 51234, At: t0.Add(10 * time.Minute)}); len(ms) != 1 || ms[0].Flows != 2 || !ms[0].FirstSeen.Equal(t0.Add(10*time.Minute)) {
			t.Fatalf("%s: second use: %+v", when, ms)
		}
		if ms := lookup(t, s, store.NATQuery{Public: natPublic, Port: 30000, At: t0.Add(12 * time.Minute)}); len(ms) != 1 || ms[0].InsidePort != 20000 || ms[0].Flows != 2 {
			t.Fatalf("%s: other: %+v", when, ms)
		}
		if ms := lookup(t, s, store.NATQuery{Public: natPublic, At: t0.Add(12 * time.Minute)}); len(ms) != 151 {
			t.Fatalf("%s: address only: %d matches, want 151", when, len(ms))
		}
	}
	check("appended")
	if natRows(t, s) != 0 || natMem(s) != 152 { // each flow of a mapping after the first extends its record
		t.Fatalf("%d entries written, %d records in memory before any flush", natRows(t, s), natMem(s))
	}
	s.nat.mu.Lock()
	s.nat.merge()
	s.nat.mu.Unlock()
	check("merged")
	if n := natMem(s); n != 152 {
		t.Fatalf("%d records in memory after the merge, want 152", n)
	}
	// Waiting for a write that fails (a day table the writer cannot
	// write into).
	day := store.FloorDiv(t0.UnixMilli(), natDayMs) * natDayMs
	s.nat.days[day] = &natDay{start: day, name: "nat_broken", format: 1}
	if err := s.natFlush(context.Background(), s.now(), true); err == nil {
		t.Fatal("the write into a table of format 1 succeeded")
	}
	check("waiting")
	delete(s.nat.days, day)
	natFlush(t, s)
	if n := natRows(t, s); n != 152 {
		t.Fatalf("%d entries, want 152", n)
	}
	check("written")
}

// TestNATCacheBound: the buffer holds about nat-cache records; when
// merging leaves it half full, everything is written early (counted), and
// should the database not take them, those dropped are counted: written +
// dropped = all.
func TestNATCacheBound(t *testing.T) {
	s, clock := openNAT(t, func(c *store.Config) { c.NATCache = 100 })
	s.nat.maxPending = 150 // as if writes had failed for long
	t0 := testNow.Add(-time.Minute)
	day := store.FloorDiv(t0.UnixMilli(), natDayMs) * natDayMs
	s.nat.days[day] = &natDay{start: day, name: "nat_broken", format: 1} // writes fail
	var flows []store.Flow
	for i := range 300 {
		u, d := natPair(netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)}), 40000, uint16(1024+i), t0, t0.Add(time.Second))
		flows = append(flows, u, d)
	}
	s.writeGroup(context.Background(), []*store.Batch{{Flows: flows, Recv: s.now()}})
	if h := s.Health(); h.OK || !strings.Contains(h.Error, "cannot write NAT mappings") {
		t.Fatalf("health %+v", h)
	}
	if n := natMem(s); n != 150 {
		t.Fatalf("%d records in memory, want the 150 that wait", n)
	}
	st := s.NATStats()
	if st.Evicted != 300 || st.Dropped != 150 || st.FlushErrors != 1 || st.CacheCapacity != 100 || st.Cached != 150 {
		t.Fatalf("stats %+v", st)
	}
	delete(s.nat.days, day)
	clock.t = clock.t.Add(time.Minute)
	s.maintain(context.Background())
	st = s.NATStats()
	if n := natRows(t, s); uint64(n) != st.Written || st.Written+st.Dropped != 300 {
		t.Fatalf("%d entries, stats %+v", n, st)
	}
	if n := natMem(s); n != 0 {
		t.Fatalf("after the write: %d records in memory", n)
	}
	// The metrics say the same.
	want := map[string]float64{
		"flowbox_store_nat_cache_evictions_total":  300,
		"flowbox_store_nat_mappings_dropped_total": 150,
		"flowbox_store_nat_mappings_written_total": 150,
		"flowbox_store_nat_blocks_written_total":   1,
		"flowbox_store_nat_cache_mappings":         0,
		"flowbox_store_nat_days":                   1,
		"flowbox_store_nat_flush_errors_total":     1,
	}
	mfs, err := clock.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		w, ok := want[mf.GetName()]
		if !ok {
			continue
		}
		m := mf.GetMetric()[0]
		got := m.GetCounter().GetValue() + m.GetGauge().GetValue()
		if got != w {
			t.Errorf("%s = %g, want %g", mf.GetName(), got, w)
		}
		delete(want, mf.GetName())
	}
	if len(want) > 0 {
		t.Errorf("metrics not registered: %v", want)
	}
}

// TestNATRetention: day tables go after nat-retention, independently of
// raw retention: a mapping whose raw flows are gone still answers.
func TestNATRetention(t *testing.T) {
	s, clock := openNAT(t, func(c *store.Config) {
		c.RawRetention = time.Hour
		c.NATRetention = 48 * time.Hour
	})
	ctx := context.Background()
	day := 24 * time.Hour
	times := []time.Time{testNow.Add(-4 * day), testNow.Add(-day), testNow.Add(-10 * time.Minute)}
	for i, at := range times {
		clock.t = at.Add(time.Minute)
		up, down := natPair(natInsideA, uint16(40000+i), uint16(50000+i), at, at.Add(10*time.Second))
		natIngest(t, s, up, down)
		s.maintain(ctx)
	}
	clock.t = testNow
	s.maintain(ctx)
	if st := s.NATStats(); st.Days != 2 || !st.Oldest.Equal(times[1].Truncate(day)) {
		t.Fatalf("stats %+v", st)
	}
	if since, err := s.NATKeptSince(ctx); err != nil || !since.Equal(times[1].Truncate(day)) {
		t.Fatalf("kept since %s, %v", since, err)
	}
	for i, at := range times {
		ms := lookup(t, s, store.NATQuery{Public: natPublic, Port: uint16(50000 + i), At: at})
		if want := min(i, 1); len(ms) != want {
			t.Fatalf("mapping %d (%s): %d matches, want %d", i, at, len(ms), want)
		}
	}
	// The raw flows of yesterday are gone: the mapping is what is left.
	var parts int
	if err := s.r.QueryRow("SELECT count(*) FROM raw_partitions WHERE start < ?", testNow.Add(-time.Hour).Unix()).Scan(&parts); err != nil || parts != 0 {
		t.Fatalf("raw partitions older than raw-retention: %d, %v", parts, err)
	}
	// Nothing is dropped while a row may still end inside the retention.
	var n int
	if err := s.r.QueryRow("SELECT count(*) FROM nat_days").Scan(&n); err != nil || n != 2 {
		t.Fatalf("nat_days: %d rows, %v", n, err)
	}
}

// TestNATRestart: mappings in memory are written at shutdown and answer
// after a restart; a flow of a mapping written before it continues it (the
// lookup joins the two entries).
func TestNATRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cfg := store.DefaultConfig()
	s, err := Open(ctx, dir, cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := &natClock{t: testNow}
	s.now = clock.now
	t0 := testNow.Add(-40 * time.Minute)
	up, down := natPair(natInsideA, 40001, 51234, t0, t0.Add(30*time.Minute))
	natIngest(t, s, up, down)
	if err := s.shutdown(); err != nil {
		t.Fatal(err)
	}
	closeAll(s)

	s, err = Open(ctx, dir, cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(s)
	s.now = clock.now
	if ms := lookup(t, s, store.NATQuery{Public: natPublic, Port: 51234, At: t0}); len(ms) != 1 || ms[0].InsideAddr != natInsideA {
		t.Fatalf("after restart: %+v", ms)
	}
	clock.t = testNow.Add(time.Minute)
	up, down = natPair(natInsideA, 40001, 51234, t0.Add(30*time.Minute), testNow)
	natIngest(t, s, up, down)
	natFlush(t, s)
	if n := natRows(t, s); n != 2 {
		t.Fatalf("%d entries, want 2", n)
	}
	if ms := lookup(t, s, store.NATQuery{Public: natPublic, Port: 51234, At: t0.Add(30 * time.Minute)}); len(ms) != 1 || ms[0].Flows != 4 || !ms[0].FirstSeen.Equal(t0) || !ms[0].LastSeen.Equal(testNow) {
		t.Fatalf("continued: %+v", ms)
	}
}

// TestNATModel: the simulator's routers (netflowtest, CGNAT flows as
// RouterOS exports them): every translated flow, of either direction,
// maps back to its inside address and port.
func TestNATModel(t *testing.T) {
	s, clock := openNAT(t, nil)
	ctx := context.Background()
	var all []store.Flow
	for r := range 3 {
		m, err := netflowtest.NewModel(netflowtest.ModelConfig{Seed: 7, Index: r})
		if err != nil {
			t.Fatal(err)
		}
		var flows []store.Flow
		for sec := range 120 {
			flows = m.AppendFlows(flows, 50, testNow.Add(time.Duration(sec-150)*time.Second))
		}
		for i := range flows {
			flows[i].RouterID = int64(r + 1)
			flows[i].Exporter = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + r)}), 2055)
		}
		all = append(all, flows...)
	}
	clock.t = testNow
	for i := 0; i < len(all); i += 1000 {
		natIngest(t, s, all[i:min(i+1000, len(all))]...)
	}
	check := func(when string) {
		t.Helper()
		checked := 0
		for i := range all {
			f := &all[i]
			var pub netip.Addr
			var pport, iport uint16
			var inside netip.Addr
			switch {
			case f.PostNATSrcAddr.IsValid() && f.PostNATSrcAddr != f.SrcAddr:
				pub, pport, inside, iport = f.PostNATSrcAddr, f.PostNATSrcPort, f.SrcAddr, f.SrcPort
			case f.PostNATDstAddr.IsValid() && f.PostNATDstAddr != f.DstAddr:
				pub, pport, inside, iport = f.DstAddr, f.DstPort, f.PostNATDstAddr, f.PostNATDstPort
			default:
				continue
			}
			if i%23 != 0 {
				continue // a sample keeps the test short
			}
			checked++
			ms := lookup(t, s, store.NATQuery{Public: pub, Port: pport, Proto: f.Proto, At: time.UnixMilli((f.Start + f.End) / 2)})
			ok := false
			for _, m := range ms {
				ok = ok || (m.InsideAddr == inside && m.InsidePort == iport && m.RouterID == f.RouterID)
			}
			if !ok {
				t.Fatalf("%s: flow %d %s:%d -> %s:%d (post-NAT %s:%d -> %s:%d): %+v", when, i, f.SrcAddr, f.SrcPort, f.DstAddr, f.DstPort,
					f.PostNATSrcAddr, f.PostNATSrcPort, f.PostNATDstAddr, f.PostNATDstPort, ms)
			}
		}
		if checked < 200 {
			t.Fatalf("%s: %d flows checked", when, checked)
		}
	}
	check("in memory")
	s.maintain(ctx)
	check("written")
	st := s.NATStats()
	if st.Written == 0 || st.Written > uint64(len(all))/2+100 || st.Dropped != 0 {
		t.Fatalf("%d flows: stats %+v", len(all), st)
	}
}

// TestNATLookupPlan: a lookup reads one index range of a day table.
func TestNATLookupPlan(t *testing.T) {
	s, _ := openNAT(t, nil)
	up, down := natPair(natInsideA, 40001, 51234, testNow.Add(-time.Minute), testNow)
	natIngest(t, s, up, down)
	natFlush(t, s)
	name := natTable(store.FloorDiv(testNow.UnixMilli(), natDayMs) * natDayMs)
	rows, err := s.r.Query("EXPLAIN QUERY PLAN "+natSelect(name), []byte{203, 0, 113, 7}, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	rows.Close()
	if want := "USING INDEX " + name + "_pub (pub=? AND b>? AND b<?)"; len(plan) != 1 || !strings.Contains(plan[0], want) {
		t.Errorf("plan\n%s\nwant %q", strings.Join(plan, "\n"), want)
	}
}

// TestNATConfig: the keys are validated.
func TestNATConfig(t *testing.T) {
	cfg := store.DefaultConfig()
	if cfg.NATRetention != 180*24*time.Hour || cfg.NATCache != 200000 {
		t.Fatalf("defaults %s %d", cfg.NATRetention, cfg.NATCache)
	}
	cfg.NATRetention, cfg.NATCache = time.Hour, 10
	err := cfg.Validate()
	for _, want := range []string{"nat-retention: must be at least 24h", "nat-cache: must be within 100..10000000"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}

// TestNATConcurrentLookups: lookups run while the writer ingests (run
// with -race), and a lookup right after InsertFlows returned and the
// writer took the flows answers.
func TestNATConcurrentLookups(t *testing.T) {
	s, _ := openNAT(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stop := make(chan struct{})
	lookups := make(chan int, 1)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				lookups <- n
				return
			default:
			}
			if _, err := s.LookupNAT(context.Background(), store.NATQuery{Public: natPublic, At: testNow}); err != nil {
				t.Error(err)
			}
			n++
		}
	}()
	t0 := testNow.Add(-time.Minute)
	for i := range 50 {
		var flows []store.Flow
		for j := range 40 {
			u, d := natPair(netip.AddrFrom4([4]byte{100, 64, byte(i), byte(j)}), 40000, uint16(1024+i*40+j), t0, t0.Add(time.Second))
			flows = append(flows, u, d)
		}
		if err := s.InsertFlows(ctx, flows); err != nil {
			t.Fatal(err)
		}
	}
	// The writer takes the batches in order: once the last one is
	// written, every mapping is found.
	want := 50 * 40
	for {
		ms, err := s.LookupNAT(context.Background(), store.NATQuery{Public: natPublic, At: t0, Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == want {
			break
		}
		if len(ms) > want {
			t.Fatalf("%d matches, want %d", len(ms), want)
		}
		runtime.Gosched()
	}
	close(stop)
	if n := <-lookups; n == 0 {
		t.Fatal("no concurrent lookup ran")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := natRows(t, s); n != want {
		t.Fatalf("%d rows after shutdown, want %d", n, want)
	}
}

// TestNATOff: store.nat-retention 0 turns the NAT store off: translated
// flows are stored as raw flows and make no mapping.
func TestNATOff(t *testing.T) {
	s, _ := openNAT(t, func(c *store.Config) { c.NATRetention = 0 })
	up, down := natPair(netip.MustParseAddr("100.64.1.10"), 40000, 51234, testNow.Add(-time.Minute), testNow.Add(-30*time.Second))
	natIngest(t, s, up, down)
	natFlush(t, s)
	if n := natRows(t, s); n != 0 {
		t.Fatalf("%d mappings written with the NAT store off", n)
	}
	if st := s.NATStats(); st.Written != 0 || st.Cached != 0 {
		t.Fatalf("NAT stats with the store off: %+v", st)
	}
	cfg := store.DefaultConfig()
	cfg.NATRetention = 0
	if err := cfg.Validate(); err != nil {
		t.Fatalf("nat-retention 0 refused: %v", err)
	}
}
