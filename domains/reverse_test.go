package domains

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/flowbox/flowbox/internal/testutil"
)

// dnsServer is a minimal DNS server on loopback UDP that answers PTR
// queries from a table (NXDOMAIN otherwise) and counts the questions.
type dnsServer struct {
	conn net.PacketConn
	ptr  map[string]string // in-addr.arpa name -> target

	mu    sync.Mutex
	asked map[string]int
}

func startDNSServer(t *testing.T, ptr map[string]string) *dnsServer {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{conn: conn, ptr: ptr, asked: map[string]int{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if reply, ok := s.answer(buf[:n]); ok {
				_, _ = conn.WriteTo(reply, from)
			}
		}
	}()
	t.Cleanup(func() { _ = conn.Close(); <-done })
	return s
}

func (s *dnsServer) answer(req []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	name := q.Name.String()
	s.mu.Lock()
	if q.Type == dnsmessage.TypePTR {
		s.asked[name]++
	}
	s.mu.Unlock()
	target, found := s.ptr[name]
	rh := dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !found || q.Type != dnsmessage.TypePTR {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, false
	}
	if err := b.Question(q); err != nil {
		return nil, false
	}
	if found && q.Type == dnsmessage.TypePTR {
		if err := b.StartAnswers(); err != nil {
			return nil, false
		}
		if err := b.PTRResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 3600},
			dnsmessage.PTRResource{PTR: dnsmessage.MustNewName(target)}); err != nil {
			return nil, false
		}
	}
	out, err := b.Finish()
	return out, err == nil
}

func (s *dnsServer) questions() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.asked {
		out[k] = v
	}
	return out
}

// TestReverse: against a DNS server on loopback, the top hosts without a
// name from a router's cache get their PTR name, marked reverse; hosts a
// cache names, private hosts and cached answers are not asked again;
// lookups wait 1/rate between them; the answer cache is bounded.
func TestReverse(t *testing.T) {
	srv := startDNSServer(t, map[string]string{
		"10.2.0.192.in-addr.arpa.": "host-10.Example.NET.",
		"12.2.0.192.in-addr.arpa.": "edge-12.cdn.example.com.",
	})
	clk := &clock{t: t0}
	cfg := DefaultConfig()
	cfg.Reverse.Resolver = srv.conn.LocalAddr().String()
	cfg.Reverse.Rate = 4
	cfg.Reverse.Cache = 2
	h, err := NewHistory(cfg, nil, testutil.Logger(t), clk.now)
	if err != nil {
		t.Fatal(err)
	}
	mustAdd(t, h, Sighting{Addr: netip.MustParseAddr("192.0.2.20"), Name: "www.example.org", Seen: t0, Until: t0.Add(time.Hour)})
	top := []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.11"), netip.MustParseAddr("192.0.2.20"),
		netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("100.64.1.1"), netip.MustParseAddr("192.0.2.12")}
	var waits []time.Duration
	r, err := NewReverse(cfg, ReverseDeps{Logger: testutil.Logger(t), History: h, Now: clk.now,
		Top:  func(context.Context) ([]netip.Addr, error) { return top, nil },
		Wait: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if n := r.Round(ctx); n != 3 {
		t.Errorf("Round asked %d hosts, want 3 (.10, .11, .12)", n)
	}
	if len(waits) != 2 || waits[0] != 250*time.Millisecond {
		t.Errorf("waits %v, want two of 250ms at 4/s", waits)
	}
	l, ok := h.Label(netip.MustParseAddr("192.0.2.10"), t0.UnixMilli())
	if !ok || l != (Label{Name: "host-10.example.net", Domain: "example.net", Reverse: true}) {
		t.Errorf("label of 192.0.2.10 = %+v, %v", l, ok)
	}
	if l, _ := h.Label(netip.MustParseAddr("192.0.2.20"), t0.UnixMilli()); l.Reverse || l.Name != "www.example.org" {
		t.Errorf("the cache's name was replaced: %+v", l)
	}
	st := r.Stats()
	if st.Lookups != 3 || st.Named != 2 || st.NoName != 1 || st.Failures != 0 || st.Cached != 2 || st.Dropped != 1 {
		t.Errorf("stats %+v", st)
	}
	// .12 was named but its answer not cached (full): it is in the
	// history, so the next round does not ask again; .11 (no name) is
	// cached.
	if _, ok := h.Label(netip.MustParseAddr("192.0.2.12"), t0.UnixMilli()); !ok {
		t.Error("192.0.2.12 not labelled")
	}
	q := srv.questions()
	if q["10.2.0.192.in-addr.arpa."] != 1 || q["20.2.0.192.in-addr.arpa."] != 0 || q["1.0.0.10.in-addr.arpa."] != 0 {
		t.Errorf("questions %v", q)
	}
	if n := r.Round(ctx); n != 1 {
		t.Errorf("second Round asked %d hosts, want 1 (.12, named by PTR but not cached)", n)
	}
	// A day later the answers expired: asked again, and so is .20, whose
	// name from a router's cache ended.
	clk.add(25 * time.Hour)
	if n := r.Round(ctx); n != 4 {
		t.Errorf("Round after the cache TTL asked %d, want 4", n)
	}
}

// TestReverseOff: with the fallback off nothing is asked; a dead resolver
// is counted as failures, not as hosts without a name.
func TestReverseOff(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Reverse.Enabled = false
	h := newTestHistory(t, nil, nil)
	asked := false
	top := func(context.Context) ([]netip.Addr, error) {
		asked = true
		return []netip.Addr{netip.MustParseAddr("192.0.2.10")}, nil
	}
	r, err := NewReverse(cfg, ReverseDeps{Logger: testutil.Logger(t), History: h, Top: top})
	if err != nil {
		t.Fatal(err)
	}
	if n := r.Round(context.Background()); n != 0 || asked || r.Stats().Enabled {
		t.Errorf("the fallback is off but asked %d (top listed: %v)", n, asked)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Run(ctx); err != nil {
		t.Errorf("Run = %v", err)
	}

	// A resolver that never answers: a UDP socket nobody reads.
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	cfg = DefaultConfig()
	cfg.Reverse.Resolver = dead.LocalAddr().String()
	cfg.Reverse.Timeout = 200 * time.Millisecond
	r, err = NewReverse(cfg, ReverseDeps{Logger: testutil.Logger(t), History: h, Top: top})
	if err != nil {
		t.Fatal(err)
	}
	r.Round(context.Background())
	if st := r.Stats(); st.Failures != 1 || st.NoName != 0 || st.LastError == "" || st.Cached != 0 {
		t.Errorf("stats with a dead resolver %+v", st)
	}
	if _, err := NewReverse(cfg, ReverseDeps{Logger: testutil.Logger(t), History: h}); err == nil {
		t.Error("NewReverse without Top succeeded")
	}
}
