package routerostest

import (
	"slices"
	"testing"
	"time"
)

// TestDNSCache prints the DNS cache of a RouterOS 6 and a RouterOS 7
// router over the API: /ip/dns/cache/all has every record with the time
// left, which counts down on the server's clock until the record leaves;
// /ip/dns/cache has the addresses in each version's columns; /ip/dns says
// whether remote requests are allowed.
func TestDNSCache(t *testing.T) {
	for _, c := range []struct {
		p     Personality
		cache [][]string
	}{
		{V6("dns6"), [][]string{{"!re", "=.id=*1", "=name=e1234.a.akamaiedge.net", "=address=23.45.67.89", "=ttl=15s"}}},
		{V7("dns7"), [][]string{{"!re", "=.id=*1", "=name=e1234.a.akamaiedge.net", "=type=A", "=data=23.45.67.89", "=ttl=15s"},
			{"!re", "=.id=*2", "=name=e1234.a.akamaiedge.net", "=type=AAAA", "=data=2a02:26f0::1", "=ttl=15s"}}},
	} {
		t.Run(c.p.Identity, func(t *testing.T) {
			s := start(t, c.p)
			clk := &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
			s.SetClock(clk.now)
			s.AddDNSRecords(
				DNSRecord{Name: "www.ebay.com", Type: "CNAME", Data: "e1234.a.akamaiedge.net", TTL: 5 * time.Minute},
				DNSRecord{Name: "e1234.a.akamaiedge.net", Type: "A", Data: "23.45.67.89", TTL: 20 * time.Second},
				DNSRecord{Name: "e1234.a.akamaiedge.net", Type: "AAAA", Data: "2a02:26f0::1", TTL: 20 * time.Second})
			var r *rawClient
			if s.Features().ChallengeLogin {
				r = dialRawLoggedIn(t, s)
			} else {
				r = dialRaw(t, s)
				login(t, r)
			}
			clk.add(5 * time.Second)
			got := r.send("/ip/dns/cache/all/print", "=.proplist=name,type,data,ttl")
			want := [][]string{{"!re", "=name=www.ebay.com", "=type=CNAME", "=data=e1234.a.akamaiedge.net", "=ttl=4m55s"},
				{"!re", "=name=e1234.a.akamaiedge.net", "=type=A", "=data=23.45.67.89", "=ttl=15s"},
				{"!re", "=name=e1234.a.akamaiedge.net", "=type=AAAA", "=data=2a02:26f0::1", "=ttl=15s"}, {"!done"}}
			if !slices.EqualFunc(got, want, slices.Equal) {
				t.Errorf("cache/all =\n %q\nwant\n %q", got, want)
			}
			got = r.send("/ip/dns/cache/print")
			if !slices.EqualFunc(got, append(c.cache, []string{"!done"}), slices.Equal) {
				t.Errorf("cache =\n %q\nwant\n %q", got, c.cache)
			}
			clk.add(15 * time.Second)
			if got := s.DNSCache(); len(got) != 1 || got[0].Name != "www.ebay.com" || got[0].TTL != 4*time.Minute+40*time.Second {
				t.Errorf("after 20s the cache is %+v, want the CNAME only", got)
			}
			got = r.send("/ip/dns/print", "=.proplist=allow-remote-requests")
			if len(got) != 2 || !slices.Equal(got[0], []string{"!re", "=allow-remote-requests=true"}) {
				t.Errorf("/ip/dns = %q", got)
			}
			s.SetAllowRemoteRequests(false)
			got = r.send("/ip/dns/print", "=.proplist=allow-remote-requests")
			if !slices.Equal(got[0], []string{"!re", "=allow-remote-requests=false"}) {
				t.Errorf("/ip/dns after SetAllowRemoteRequests(false) = %q", got)
			}
			s.SetDNSCacheSource(func(now time.Time) []DNSRecord {
				return []DNSRecord{{Name: "time.google.com", Type: "A", Data: "216.239.35.0", TTL: time.Minute}}
			})
			if got := s.DNSCache(); len(got) != 1 || got[0].Name != "time.google.com" {
				t.Errorf("with a source the cache is %+v", got)
			}
		})
	}
}
