package routerostest

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for SetClock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestAddressListV7 adds timed entries to the IPv4 and IPv6 address lists
// of a RouterOS 7 router: they are dynamic, print the time left and their
// creation time, refuse duplicates, and disappear when the server's clock
// passes their timeout; a static entry stays.
func TestAddressListV7(t *testing.T) {
	p := V7("fw7")
	p.AddressLists = []AddressListEntry{{List: "blocked", Address: "198.51.100.9/32", Comment: "operator"}}
	s := start(t, p)
	clk := &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	s.SetClock(clk.now)
	r := dialRaw(t, s)
	login(t, r)

	got := r.send("/ip/firewall/address-list/add", "=list=flowbox-attacked", "=address=10.0.0.20/32", "=timeout=1h", "=comment=flowbox alert 7: syn-flood")
	if got[0][0] != "!done" || got[0][1] != "=ret=*2" {
		t.Fatalf("add = %q", got)
	}
	got = r.send("/ip/firewall/address-list/add", "=list=flowbox-attacked", "=address=10.0.0.20")
	if got[0][0] != "!trap" || got[0][1] != "=message=failure: already have such entry" {
		t.Errorf("duplicate add = %q", got)
	}
	clk.add(10 * time.Minute)
	got = r.send("/ip/firewall/address-list/print", "?list=flowbox-attacked")
	want := []string{"!re", "=.id=*2", "=list=flowbox-attacked", "=address=10.0.0.20", "=timeout=50m", "=dynamic=true",
		"=disabled=false", "=comment=flowbox alert 7: syn-flood", "=creation-time=2025-03-01 12:00:00"}
	if len(got) != 2 || !slices.Equal(got[0], want) {
		t.Errorf("print =\n %q\nwant\n %q", got, want)
	}
	got = r.send("/ipv6/firewall/address-list/add", "=list=flowbox-attacked", "=address=2001:db8::7", "=timeout=30m")
	if got[0][0] != "!done" {
		t.Fatalf("IPv6 add = %q", got)
	}
	if got := r.send("/ipv6/firewall/address-list/add", "=list=x", "=address=10.0.0.1"); got[0][0] != "!trap" {
		t.Errorf("IPv4 address in the IPv6 list = %q", got)
	}
	if l := s.AddressList(true); len(l) != 1 || l[0].Address != "2001:db8::7/128" || l[0].Timeout != 30*time.Minute || !l[0].Dynamic {
		t.Errorf("IPv6 list = %+v", l)
	}
	// set renews the timeout.
	if got := r.send("/ip/firewall/address-list/set", "=.id=*2", "=timeout=1h"); got[0][0] != "!done" {
		t.Fatalf("set = %q", got)
	}
	clk.add(59 * time.Minute)
	if l := s.AddressList(false); len(l) != 2 || l[1].Timeout != time.Minute {
		t.Errorf("after renewal = %+v", l)
	}
	clk.add(time.Minute)
	l := s.AddressList(false)
	if len(l) != 1 || l[0].Comment != "operator" || l[0].Address != "198.51.100.9" || l[0].Dynamic || l[0].Timeout != 0 {
		t.Errorf("after expiry = %+v", l)
	}
	if got := r.send("/ipv6/firewall/address-list/print"); got[0][0] != "!done" {
		t.Errorf("IPv6 entry not expired: %q", got)
	}
	if got := r.send("/ip/firewall/address-list/remove", "=.id=*2"); got[0][0] != "!trap" {
		t.Errorf("remove of an expired entry = %q", got)
	}
}

// TestAddressListV6 checks the RouterOS 6 differences: no creation-time;
// remove works by .id.
func TestAddressListV6(t *testing.T) {
	s := start(t, V6("fw6"))
	clk := &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	s.SetClock(clk.now)
	r := dialRawLoggedIn(t, s)
	got := r.send("/ip/firewall/address-list/add", "=list=flowbox-abuse", "=address=10.0.1.5", "=timeout=1h", "=comment=c")
	if got[0][0] != "!done" {
		t.Fatalf("add = %q", got)
	}
	got = r.send("/ip/firewall/address-list/print")
	if len(got) != 2 || strings.Contains(strings.Join(got[0], " "), "creation-time") ||
		!slices.Contains(got[0], "=timeout=1h") || !slices.Contains(got[0], "=dynamic=true") {
		t.Errorf("v6 print = %q", got)
	}
	if got := r.send("/ip/firewall/address-list/remove", "=.id=*1"); got[0][0] != "!done" {
		t.Errorf("remove = %q", got)
	}
	if l := s.AddressList(false); len(l) != 0 {
		t.Errorf("after remove = %+v", l)
	}
}

// TestBlackholeRoutes adds blackhole routes with each version's syntax and
// checks that the other version's syntax is refused.
func TestBlackholeRoutes(t *testing.T) {
	p := V7("rt7")
	p.Routes = []Route{{DstAddress: netip.MustParsePrefix("0.0.0.0/0"), Gateway: "192.0.2.1"}}
	s7 := start(t, p)
	r := dialRaw(t, s7)
	login(t, r)
	if got := r.send("/ip/route/add", "=dst-address=10.0.0.20/32", "=type=blackhole"); got[0][0] != "!trap" ||
		!strings.Contains(got[0][len(got[0])-1], "unknown parameter type") {
		t.Errorf("v6 syntax on v7 = %q", got)
	}
	if got := r.send("/ip/route/add", "=dst-address=10.0.0.20", "=blackhole=yes", "=comment=flowbox alert 1: volumetric"); got[0][0] != "!done" {
		t.Fatalf("v7 blackhole = %q", got)
	}
	if got := r.send("/ipv6/route/add", "=dst-address=2001:db8::7/128", "=blackhole=yes"); got[0][0] != "!done" {
		t.Fatalf("v7 IPv6 blackhole = %q", got)
	}
	got := r.send("/ip/route/print", "=.proplist=dst-address,blackhole,comment", "?blackhole=true")
	if len(got) != 2 || !slices.Equal(got[0], []string{"!re", "=dst-address=10.0.0.20/32", "=blackhole=true", "=comment=flowbox alert 1: volumetric"}) {
		t.Errorf("v7 print = %q", got)
	}
	if rs := s7.Routes(false); len(rs) != 2 || rs[0].Blackhole || rs[0].Gateway != "192.0.2.1" || !rs[1].Blackhole || rs[1].Type != "" {
		t.Errorf("v7 routes = %+v", rs)
	}
	if rs := s7.Routes(true); len(rs) != 1 || rs[0].DstAddress != netip.MustParsePrefix("2001:db8::7/128") || !rs[0].Blackhole {
		t.Errorf("v7 IPv6 routes = %+v", rs)
	}

	s6 := start(t, V6("rt6"))
	r = dialRawLoggedIn(t, s6)
	if got := r.send("/ip/route/add", "=dst-address=10.0.0.20/32", "=blackhole=yes"); got[0][0] != "!trap" {
		t.Errorf("v7 syntax on v6 = %q", got)
	}
	if got := r.send("/ip/route/add", "=dst-address=10.0.0.20/32", "=type=blackhole", "=comment=c"); got[0][0] != "!done" {
		t.Fatalf("v6 blackhole = %q", got)
	}
	if got := r.send("/ipv6/route/add", "=dst-address=2001:db8::7/128", "=type=blackhole"); got[0][0] != "!trap" {
		t.Errorf("v6 IPv6 blackhole type accepted: %q", got)
	}
	if rs := s6.Routes(false); len(rs) != 1 || !rs[0].Blackhole || rs[0].Type != "blackhole" || rs[0].Comment != "c" {
		t.Errorf("v6 routes = %+v", rs)
	}
	got = r.send("/ip/route/remove", "=.id=*1")
	if got[0][0] != "!done" || len(s6.Routes(false)) != 0 {
		t.Errorf("remove = %q, left %+v", got, s6.Routes(false))
	}

	p = V7("noipv6")
	p.NoIPv6 = true
	r = dialRaw(t, start(t, p))
	login(t, r)
	for _, path := range []string{pathAddressList6, pathRoute6} {
		if got := r.send(path + "/print"); got[0][0] != "!trap" {
			t.Errorf("%s without the ipv6 package = %q", path, got)
		}
	}
}
