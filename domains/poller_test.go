package domains

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/routeros/routerostest"
	"github.com/flowbox/flowbox/store"
)

// clock is a settable clock shared by the fake routers and the poller.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type routerList []store.Router

func (l routerList) ListRouters(context.Context) ([]store.Router, error) { return l, nil }

// fleet is a v6 and a v7 fake router with a poller and a history.
type fleet struct {
	clk     *clock
	v6, v7  *routerostest.Server
	routers routerList
	hist    *History
	poller  *Poller
}

func newFleet(t *testing.T, mod func(*Config)) *fleet {
	t.Helper()
	f := &fleet{clk: &clock{t: t0}}
	for i, p := range []routerostest.Personality{routerostest.V6("tower6"), routerostest.V7("tower7")} {
		if i == 1 {
			p.Addresses = []routerostest.Address{{Address: netip.MustParsePrefix("10.7.0.1/24"), Interface: "ether2"}}
		}
		s := testutil.StartRouter(t, p)
		s.SetClock(f.clk.now)
		f.routers = append(f.routers, store.Router{ID: int64(i + 1), Name: p.Identity, Address: s.Addr(), Username: "admin"})
		if i == 0 {
			f.v6 = s
		} else {
			f.v7 = s
		}
	}
	cfg := DefaultConfig()
	cfg.Linger = 0
	if mod != nil {
		mod(&cfg)
	}
	var err error
	if f.hist, err = NewHistory(cfg, nil, testutil.Logger(t), f.clk.now); err != nil {
		t.Fatal(err)
	}
	f.poller, err = New(cfg, Deps{Logger: testutil.Logger(t), Routers: f.routers, Dial: DialRouterOS, History: f.hist, Now: f.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fleet) status(t *testing.T, name string) RouterStatus {
	t.Helper()
	for _, s := range f.poller.Status() {
		if s.Router == name {
			return s
		}
	}
	t.Fatalf("no status for %s in %+v", name, f.poller.Status())
	return RouterStatus{}
}

func (f *fleet) label(t *testing.T, addr string, at time.Time) string {
	t.Helper()
	l, ok := f.hist.Label(netip.MustParseAddr(addr), at.UnixMilli())
	if !ok {
		return ""
	}
	if l.Reverse {
		t.Errorf("%s labelled %+v from a router's cache, marked reverse", addr, l)
	}
	return l.Name + " (" + l.Domain + ")"
}

// TestPollerCaches: against a RouterOS 6 and a RouterOS 7 fake router,
// cached addresses get the name the customer asked (CNAME chains followed
// back), a name that moved to another address is applied by time, and
// entries past their TTL leave the current view but stay in the history
// for their time range.
func TestPollerCaches(t *testing.T) {
	f := newFleet(t, nil)
	ctx := context.Background()
	f.v6.AddDNSRecords(
		routerostest.DNSRecord{Name: "www.youtube.com", Type: "CNAME", Data: "youtube-ui.l.google.com", TTL: 5 * time.Minute},
		routerostest.DNSRecord{Name: "youtube-ui.l.google.com", Type: "A", Data: "142.250.1.10", TTL: 2 * time.Minute},
		routerostest.DNSRecord{Name: "bad name.example", Type: "A", Data: "192.0.2.1", TTL: time.Minute},
		routerostest.DNSRecord{Name: "garbage.example", Type: "A", Data: "not-an-address", TTL: time.Minute},
		routerostest.DNSRecord{Name: "example.com", Type: "TXT", Data: "v=spf1 -all", TTL: time.Minute})
	f.v7.AddDNSRecords(
		routerostest.DNSRecord{Name: "www.bbc.co.uk", Type: "CNAME", Data: "www.bbc.co.uk.pri.bbc.co.uk", TTL: 5 * time.Minute},
		routerostest.DNSRecord{Name: "www.bbc.co.uk.pri.bbc.co.uk", Type: "CNAME", Data: "bbc.map.fastly.net", TTL: 4 * time.Minute},
		routerostest.DNSRecord{Name: "bbc.map.fastly.net", Type: "AAAA", Data: "2a04:4e42::81", TTL: 3 * time.Minute},
		routerostest.DNSRecord{Name: "rr3---sn-ab5l6nrz.googlevideo.com", Type: "A", Data: "173.194.2.9", TTL: 10 * time.Minute})
	f.poller.Round(ctx)
	p1 := f.clk.now()
	for addr, want := range map[string]string{
		"142.250.1.10":  "www.youtube.com (youtube.com)",
		"2a04:4e42::81": "www.bbc.co.uk (bbc.co.uk)",
		"173.194.2.9":   "rr3---sn-ab5l6nrz.googlevideo.com (googlevideo.com)",
		"192.0.2.1":     "",
	} {
		if got := f.label(t, addr, p1); got != want {
			t.Errorf("label of %s = %q, want %q", addr, got, want)
		}
	}
	s6, s7 := f.status(t, "tower6"), f.status(t, "tower7")
	if s6.Entries != 5 || s6.Names != 1 || s6.BadRows != 2 || s6.Failures != 0 || s6.Polls != 1 {
		t.Errorf("v6 status %+v", s6)
	}
	if s7.Entries != 4 || s7.Names != 2 || s7.RemoteRequests == nil || !*s7.RemoteRequests || s7.Resolver != ResolverYes {
		t.Errorf("v7 status %+v", s7)
	}

	// Ten minutes later the records have expired; the name moved to
	// another address, and the old address serves another site.
	f.clk.add(10 * time.Minute)
	f.v6.AddDNSRecords(
		routerostest.DNSRecord{Name: "www.youtube.com", Type: "CNAME", Data: "youtube-ui.l.google.com", TTL: 5 * time.Minute},
		routerostest.DNSRecord{Name: "youtube-ui.l.google.com", Type: "A", Data: "142.250.1.99", TTL: 2 * time.Minute})
	f.v7.AddDNSRecords(routerostest.DNSRecord{Name: "cdn.Example.NET.", Type: "A", Data: "142.250.1.10", TTL: time.Minute})
	f.poller.Round(ctx)
	p2 := f.clk.now()
	for _, c := range []struct {
		addr string
		at   time.Time
		want string
	}{
		{"142.250.1.10", p1, "www.youtube.com (youtube.com)"},
		{"142.250.1.10", p2, "cdn.example.net (example.net)"},
		{"142.250.1.99", p1.Add(-time.Second), ""},
		{"142.250.1.99", p2, "www.youtube.com (youtube.com)"},
		{"173.194.2.9", p2, "rr3---sn-ab5l6nrz.googlevideo.com (googlevideo.com)"}, // TTL 10m: still cached
		{"2a04:4e42::81", p2, ""},                                                  // expired after 3m
		{"2a04:4e42::81", p1.Add(3 * time.Minute), "www.bbc.co.uk (bbc.co.uk)"},
	} {
		if got := f.label(t, c.addr, c.at); got != c.want {
			t.Errorf("label of %s at %v = %q, want %q", c.addr, c.at.Sub(t0), got, c.want)
		}
	}
	// The expired names are out of the current view, not out of the
	// history.
	cur := map[string]bool{}
	for _, n := range f.hist.Current(p2, 0) {
		cur[n.Addr.String()+" "+n.Name] = true
	}
	if cur["2a04:4e42::81 www.bbc.co.uk"] || !cur["142.250.1.99 www.youtube.com"] || !cur["142.250.1.10 cdn.example.net"] {
		t.Errorf("current view %v", cur)
	}
	hist := f.hist.Names(netip.MustParseAddr("2a04:4e42::81"))
	if len(hist) != 1 || !hist[0].To.Equal(p1.Add(3*time.Minute)) || !hist[0].From.Equal(p1.Add(-time.Minute)) || hist[0].RouterID != 2 {
		t.Errorf("history of the expired name %+v", hist)
	}
	// The second poll's names start just after the first poll, which did
	// not see them.
	if n := f.hist.Names(netip.MustParseAddr("142.250.1.99")); len(n) != 1 || !n[0].From.Equal(p1.Add(time.Millisecond)) {
		t.Errorf("history of the moved name %+v", n)
	}
}

// TestPollerResolverCheck: a router with remote requests off is reported
// as not its customers' resolver, and so is one whose customers send most
// DNS queries elsewhere; a failing router is counted.
func TestPollerResolverCheck(t *testing.T) {
	f := newFleet(t, nil)
	ctx := context.Background()
	f.v6.SetAllowRemoteRequests(false)
	f.poller.Round(ctx)
	s6 := f.status(t, "tower6")
	if s6.Resolver != ResolverNo || s6.RemoteRequests == nil || *s6.RemoteRequests || !strings.Contains(s6.Warning, "allow-remote-requests is off") ||
		!strings.Contains(s6.Warning, "will be missing") {
		t.Errorf("v6 status %+v", s6)
	}
	dns := func(router int64, dst string, dir store.Direction, n int) []store.Flow {
		out := make([]store.Flow, n)
		for i := range out {
			out[i] = store.Flow{RouterID: router, SrcAddr: netip.MustParseAddr("10.7.0.50"), DstAddr: netip.MustParseAddr(dst),
				DstPort: 53, Proto: 17, Direction: dir}
		}
		return out
	}
	var flows []store.Flow
	flows = append(flows, dns(2, "10.7.0.1", store.DirInternal, 10)...) // the router's own address
	flows = append(flows, dns(2, "8.8.8.8", store.DirUpload, 30)...)    // elsewhere
	flows = append(flows, dns(2, "1.1.1.1", store.DirRouterOut, 50)...) // the router's own queries: not counted
	flows = append(flows, store.Flow{RouterID: 2, DstAddr: netip.MustParseAddr("8.8.8.8"), DstPort: 443, Proto: 6, Direction: store.DirUpload})
	flows = append(flows, dns(9, "8.8.8.8", store.DirUpload, 5)...) // unknown router
	f.poller.Observe(flows)
	s7 := f.status(t, "tower7")
	if s7.DNSFlowsToRouter != 10 || s7.DNSFlowsElsewhere != 30 || s7.Resolver != ResolverNo ||
		!strings.Contains(s7.Warning, "75% of the customers' DNS queries (30 of 40 flows) go to other resolvers") {
		t.Errorf("v7 status %+v", s7)
	}
	f.poller.Observe(dns(2, "10.7.0.1", store.DirInternal, 60))
	if s7 := f.status(t, "tower7"); s7.Resolver != ResolverYes || s7.Warning != "" {
		t.Errorf("v7 status after most queries went to the router %+v", s7)
	}
	if a := testing.AllocsPerRun(100, func() { f.poller.Observe(flows) }); a != 0 {
		t.Errorf("Observe allocates %v times per batch", a)
	}

	// A router that stops answering: its failure is counted, its last
	// state kept.
	if err := f.v7.Close(); err != nil {
		t.Fatal(err)
	}
	f.poller.Round(ctx)
	s7 = f.status(t, "tower7")
	if s7.Failures != 1 || s7.Polls != 2 || s7.LastError == "" || s7.RemoteRequests == nil {
		t.Errorf("status of the stopped router %+v", s7)
	}
}

// TestPollerBounds: entries beyond max-entries-per-poll are cut and
// counted; names beyond max-names are dropped and counted.
func TestPollerBounds(t *testing.T) {
	f := newFleet(t, func(c *Config) { c.MaxEntriesPerPoll = 5; c.MaxNames = 3 })
	var recs []routerostest.DNSRecord
	for i := range 8 {
		recs = append(recs, routerostest.DNSRecord{Name: "h" + string(rune('a'+i)) + ".example.org", Type: "A",
			Data: netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}).String(), TTL: time.Minute})
	}
	f.v7.AddDNSRecords(recs...)
	f.poller.Round(context.Background())
	s7 := f.status(t, "tower7")
	if s7.Entries != 5 || s7.Cut != 3 || s7.Names != 3 || s7.Dropped != 2 {
		t.Errorf("status %+v", s7)
	}
	if f.hist.Len() != 3 || f.hist.Dropped() != 2 {
		t.Errorf("history Len %d Dropped %d", f.hist.Len(), f.hist.Dropped())
	}
}

// TestChains follows CNAME chains back to every name that leads to an
// address, with the shortest TTL of the chain, and survives a loop.
func TestChains(t *testing.T) {
	rows := []map[string]string{
		{"name": "a.example.com", "type": "CNAME", "data": "edge.cdn.net", "ttl": "5m"},
		{"name": "b.example.org", "type": "CNAME", "data": "edge.cdn.net", "ttl": "30s"},
		{"name": "edge.cdn.net", "type": "A", "data": "192.0.2.7", "ttl": "1m"},
		{"name": "loop1.example", "type": "CNAME", "data": "loop2.example", "ttl": "1m"},
		{"name": "loop2.example", "type": "CNAME", "data": "loop1.example", "ttl": "1m"},
		{"name": "loop1.example", "type": "A", "data": "192.0.2.8", "ttl": "1m"},
		{"name": "v6only.example", "address": "192.0.2.9", "ttl": "00:01:00"},
		{"name": "wrong.example", "type": "A", "data": "2001:db8::1", "ttl": "1m"},
		{"name": "nottl.example", "type": "A", "data": "192.0.2.10", "ttl": "soon"},
	}
	got, bad := Chains(rows)
	want := map[string]time.Duration{"192.0.2.7 a.example.com": time.Minute, "192.0.2.7 b.example.org": 30 * time.Second,
		"192.0.2.9 v6only.example": time.Minute}
	if bad != 2 {
		t.Errorf("bad rows %d, want 2", bad)
	}
	n := 0
	for _, s := range got {
		k := s.Addr.String() + " " + s.Name
		if s.Addr.String() == "192.0.2.8" {
			continue // a loop ends somewhere; it must only not hang
		}
		n++
		if d, ok := want[k]; !ok || s.Until.Sub(time.Time{}) != d {
			t.Errorf("sighting %s ttl %v", k, s.Until.Sub(time.Time{}))
		}
	}
	if n != len(want) {
		t.Errorf("sightings %+v", got)
	}
}
