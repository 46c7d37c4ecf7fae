package simulator

import (
	"time"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/routeros/routerostest"
)

// dnsCache is a router's DNS cache as its API serves it (issue 18): the
// names of the remote hosts its traffic model's customers resolved, with
// CNAME chains and TTLs that count down on the API server's clock. The
// routers answer remote requests (they are their customers' resolver).
func dnsCache(m *netflowtest.Model) func(now time.Time) []routerostest.DNSRecord {
	return func(now time.Time) []routerostest.DNSRecord {
		recs := m.DNSCache(now)
		out := make([]routerostest.DNSRecord, len(recs))
		for i, r := range recs {
			out[i] = routerostest.DNSRecord(r)
		}
		return out
	}
}
