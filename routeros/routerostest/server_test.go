package routerostest

import (
	"bufio"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-routeros/routeros/v3/proto"
)

// rawClient speaks the wire protocol directly, to see exactly what the
// server sends (tags, !empty, bare-word !fatal).
type rawClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
	w  proto.Writer
}

func dialRaw(t *testing.T, s *Server) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return &rawClient{t: t, c: c, br: bufio.NewReader(c), w: proto.NewWriter(c)}
}

// send writes a sentence and returns the reply sentences up to !done (or
// a !fatal).
func (r *rawClient) send(words ...string) [][]string {
	r.t.Helper()
	r.w.BeginSentence()
	for _, w := range words {
		r.w.WriteWord(w)
	}
	if err := r.w.EndSentence(); err != nil {
		r.t.Fatal(err)
	}
	var out [][]string
	for {
		sen, err := readSentence(r.br)
		if err != nil {
			r.t.Fatalf("read reply to %v: %v", words, err)
		}
		out = append(out, sen)
		if sen[0] == "!done" || sen[0] == "!fatal" {
			return out
		}
	}
}

func start(t *testing.T, p Personality) *Server {
	t.Helper()
	s, err := NewServer(p, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func login(t *testing.T, r *rawClient) {
	t.Helper()
	if got := r.send("/login", "=name=admin", "=password="); got[0][0] != "!done" {
		t.Fatalf("login: %v", got)
	}
}

func TestProtocol(t *testing.T) {
	p := V7("proto")
	p.Version = "7.18.2 (stable)"
	s := start(t, p)
	r := dialRaw(t, s)
	if got := r.send("/system/identity/print"); got[0][0] != "!fatal" || got[0][1] != "not logged in" {
		t.Fatalf("command before login = %v, want bare-word !fatal", got)
	}
	r = dialRaw(t, s)
	login(t, r)

	got := r.send("/interface/print", "=.proplist=name,name.oid", "?type=ether", "?type=bridge", "?#|", ".tag=t1")
	want := [][]string{
		{"!re", "=name=ether1", "=name.oid=.1.3.6.1.2.1.2.2.1.2.1", ".tag=t1"},
		{"!re", "=name=ether2", "=name.oid=.1.3.6.1.2.1.2.2.1.2.2", ".tag=t1"},
		{"!re", "=name=bridge-lan", "=name.oid=.1.3.6.1.2.1.2.2.1.2.7", ".tag=t1"},
		{"!done", ".tag=t1"},
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("OR query with tag:\n got %v\nwant %v", got, want)
	}
	got = r.send("/interface/print", "=.proplist=name", "?type=ether", "?-comment")
	if len(got) != 2 || got[0][1] != "=name=ether2" {
		t.Errorf("AND with ?-comment = %v", got)
	}
	got = r.send("/interface/print", "=.proplist=name", "?>mtu=1490", "?type=ether", "?#!&")
	if len(got) != 2 || got[0][1] != "=name=bridge-lan" {
		t.Errorf("?> with negation = %v", got)
	}
	if got = r.send("/ip/traffic-flow/target/print"); got[0][0] != "!empty" || got[1][0] != "!done" {
		t.Errorf("empty print on 7.18 = %v, want !empty !done", got)
	}
	got = r.send("/ip/traffic-flow/target/add", "=dst-address=127.0.0.1", "=version=IPFIX")
	if got[0][0] != "!done" || got[0][1] != "=ret=*1" {
		t.Errorf("add = %v, want !done =ret=*1", got)
	}
	got = r.send("/ip/traffic-flow/target/add", "=dst-address=127.0.0.1")
	if got[0][0] != "!trap" || got[0][1] != "=message=failure: already have such entry" {
		t.Errorf("duplicate add = %v", got)
	}
	got = r.send("/ip/traffic-flow/target/set", "=.id=*1", "=bogus=1")
	if got[0][0] != "!trap" || !strings.Contains(strings.Join(got[0], " "), "unknown parameter bogus") {
		t.Errorf("unknown parameter = %v", got)
	}
	got = r.send("/ip/traffic-flow/set", "=active-flow-timeout=00:01:30", "=enabled=yes")
	if got[0][0] != "!done" {
		t.Fatalf("set = %v", got)
	}
	got = r.send("/ip/traffic-flow/print", "=.proplist=enabled,active-flow-timeout")
	if !slices.Equal(got[0], []string{"!re", "=enabled=true", "=active-flow-timeout=1m30s"}) {
		t.Errorf("normalised values = %v", got[0])
	}
	if got = r.send("/system/routerboard/print"); got[0][0] != "!re" {
		t.Errorf("routerboard on a RB = %v", got)
	}
	if got = r.send("/quit"); !slices.Equal(got[0], []string{"!fatal", "session terminated on request"}) {
		t.Errorf("/quit = %v", got)
	}
}

func TestCHRHasNoRouterboard(t *testing.T) {
	p := V7("chr")
	p.CHR = true
	r := dialRaw(t, start(t, p))
	login(t, r)
	got := r.send("/system/routerboard/print")
	if got[0][0] != "!trap" || got[0][1] != "=category=0" {
		t.Errorf("routerboard on CHR = %v", got)
	}
}

func TestTrafficFlowHook(t *testing.T) {
	s := start(t, V6("hook"))
	var mu sync.Mutex
	var states []TrafficFlowState
	s.OnTrafficFlowChange(func(st TrafficFlowState) {
		mu.Lock()
		states = append(states, st)
		mu.Unlock()
	})
	// 6.42 uses the challenge login: the first /login returns =ret=.
	r := dialRaw(t, s)
	if got := r.send("/login", "=name=admin", "=password="); !strings.HasPrefix(got[0][1], "=ret=") {
		t.Fatalf("pre-6.43 login = %v, want a challenge", got)
	}
	rc := dialRawLoggedIn(t, s)
	rc.send("/ip/traffic-flow/target/add", "=address=127.0.0.1:2056", "=v9-template-timeout=1m")
	rc.send("/ip/traffic-flow/set", "=enabled=yes")
	rc.send("/system/identity/set", "=name=other")
	mu.Lock()
	defer mu.Unlock()
	if len(states) != 2 {
		t.Fatalf("hook called %d times, want 2 (identity changes do not count)", len(states))
	}
	last := states[1]
	want := Target{ID: "*1", DstAddress: netip.MustParseAddr("127.0.0.1"), Port: 2056, Version: "9", TemplateRefresh: 20, TemplateTimeout: time.Minute}
	if !last.Enabled || len(last.Targets) != 1 || last.Targets[0] != want {
		t.Errorf("state = %+v", last)
	}
}

// dialRawLoggedIn logs in with the pre-6.43 challenge.
func dialRawLoggedIn(t *testing.T, s *Server) *rawClient {
	t.Helper()
	r := dialRaw(t, s)
	got := r.send("/login")
	ch := strings.TrimPrefix(got[0][1], "=ret=")
	resp := challengeResponse(t, "", ch)
	if got := r.send("/login", "=name=admin", "=response="+resp); got[0][0] != "!done" {
		t.Fatalf("challenge login = %v", got)
	}
	return r
}

func TestChallengeVector(t *testing.T) {
	// MikroTik's documented example: user admin, empty password.
	if got := challengeResponse(t, "", "93b438ec9b80057c06dd9fe67d56aa9a"); got != "00e134102a9d330dd7b1849fedfea3cb57" {
		t.Fatalf("response = %s", got)
	}
}

func TestNewServerValidates(t *testing.T) {
	if _, err := NewServer(Personality{Version: "7.1"}, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("empty identity accepted")
	}
	if _, err := NewServer(Personality{Identity: "x", Version: "seven"}, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("bad version accepted")
	}
	p := V7("x")
	p.Interfaces = append(p.Interfaces, Interface{Name: "bad"})
	if _, err := NewServer(p, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("ifIndex 0 accepted")
	}
}

// TestIPv6Menus prints the /ipv6 menus: the personality's addresses with
// a link-local address per interface with a MAC, pools and bindings; a
// router with NoIPv6 traps on them like RouterOS without the ipv6
// package, and RouterOS 6 has the same menus as 7.
func TestIPv6Menus(t *testing.T) {
	p := V7("tower-1")
	p.IPv6Addresses = []Address{{Address: netip.MustParsePrefix("2001:db8:100:1::1/64"), Interface: "bridge-lan"}}
	p.IPv6Pools = []IPv6Pool{{Name: "pd", Prefix: netip.MustParsePrefix("2001:db8:100::/48"), PrefixLength: 64}}
	p.DHCPv6Bindings = []DHCPv6Binding{{Address: "2001:db8:100:20::/64", DUID: "0x00030001aabbcc000021",
		Server: "<pppoe-alice>", Status: "bound", Dynamic: true}}
	r := dialRaw(t, start(t, p))
	login(t, r)
	got := r.send("/ipv6/address/print", "=.proplist=address,interface,dynamic", "?interface=bridge-lan")
	want := [][]string{
		{"!re", "=address=2001:db8:100:1::1/64", "=interface=bridge-lan", "=dynamic=false"},
		{"!re", "=address=fe80::4aa9:8aff:fe00:3/64", "=interface=bridge-lan", "=dynamic=true"},
		{"!done"},
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("/ipv6/address: %q", got)
	}
	got = r.send("/ipv6/pool/print", "=.proplist=name,prefix,prefix-length")
	if len(got) != 2 || !slices.Equal(got[0], []string{"!re", "=name=pd", "=prefix=2001:db8:100::/48", "=prefix-length=64"}) {
		t.Errorf("/ipv6/pool: %q", got)
	}
	got = r.send("/ipv6/dhcp-server/binding/print", "=.proplist=address,server,status")
	if len(got) != 2 || !slices.Equal(got[0], []string{"!re", "=address=2001:db8:100:20::/64", "=server=<pppoe-alice>", "=status=bound"}) {
		t.Errorf("/ipv6/dhcp-server/binding: %q", got)
	}

	p.NoIPv6 = true
	r = dialRaw(t, start(t, p))
	login(t, r)
	for _, path := range []string{"/ipv6/address", "/ipv6/pool", "/ipv6/dhcp-server/binding"} {
		if got := r.send(path + "/print"); got[0][0] != "!trap" {
			t.Errorf("%s without the ipv6 package: %q", path, got)
		}
	}

	s6, err := NewServer(V6("old"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/ipv6/address", "/ipv6/pool", "/ipv6/dhcp-server/binding"} {
		if s6.menus[path] == nil {
			t.Errorf("RouterOS 6 lacks %s", path)
		}
	}
}
