package web

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// routerNames names AS numbers like fakeNames and the routers' own
// addresses, as enrichment learns them from /ip/address.
type routerNames struct {
	fakeNames
	routers map[netip.Addr]string
}

func (n routerNames) RouterOf(a netip.Addr) string { return n.routers[a] }

// TestRouterOwnTraffic ingests a router's own traffic (its NTP from its
// WAN address, as enrichment labels it: router-out/router-in, the router's
// name) beside a customer's download and upload. The router's traffic
// counts in the router's in and out totals, shows as the router's (not an
// unnamed customer) in the top local hosts and the flow search, and is in
// no customer's usage.
func TestRouterOwnTraffic(t *testing.T) {
	t.Parallel()
	wan := netip.MustParseAddr("203.0.113.9")
	cust := netip.MustParseAddr("100.64.0.3")
	ntp := netip.MustParseAddr("216.239.35.4")
	e := newEnv(t, func(_ *Config, d *Deps) { d.Names = routerNames{routers: map[netip.Addr]string{wan: "gw1"}} })
	e.login()
	gw1 := e.addRouter(datasetRouter())
	exp := netip.MustParseAddrPort("127.0.0.2:2055")
	end := e.now.Add(-10 * time.Minute).UnixMilli()
	flow := func(dir store.Direction, src, dst netip.Addr, bytes uint64, sub string) store.Flow {
		return store.Flow{Exporter: exp, Version: 9, RouterID: gw1.ID, Start: end - 1000, End: end, SrcAddr: src, DstAddr: dst,
			Proto: 17, SrcPort: 123, DstPort: 123, Bytes: bytes, Packets: 1, Direction: dir, Subscriber: sub}
	}
	e.ingest([]store.Flow{
		flow(store.DirRouterOut, wan, ntp, 76, "gw1"),
		flow(store.DirRouterIn, ntp, wan, 122, "gw1"),
		flow(store.DirDownload, ntp, cust, 1000, "alice"),
		flow(store.DirUpload, cust, ntp, 400, "alice"),
	})

	// In and out: the customer's download and upload plus the router's own.
	var s Series
	e.getJSON(fmt.Sprintf("/api/v1/traffic?router=%d&range=1h", gw1.ID), &s)
	var in, out float64
	for i := range s.Times {
		in += s.BitsIn[i] * float64(s.Step) / 8
		out += s.BitsOut[i] * float64(s.Step) / 8
	}
	if uint64(in+0.5) != 1122 || uint64(out+0.5) != 476 {
		t.Errorf("traffic in %v out %v bytes, want 1122 and 476", in, out)
	}

	// The WAN address is the router's in the top local hosts.
	var top TopResult
	e.getJSON(fmt.Sprintf("/api/v1/top/local?router=%d&range=1h", gw1.ID), &top)
	found := false
	for _, r := range top.Rows {
		if r.Key == wan.String() {
			found = true
			if r.Name != "gw1" || !r.Router || r.Bytes != 198 {
				t.Errorf("top local row of the router's address: %+v", r)
			}
		}
		if r.Key == cust.String() && r.Router {
			t.Errorf("customer row marked as the router's: %+v", r)
		}
	}
	if !found {
		t.Errorf("router's address missing from the top local hosts: %+v", top.Rows)
	}

	// The flow search says whose traffic it is.
	var page struct {
		Flows []FlowView `json:"flows"`
	}
	e.getJSON(fmt.Sprintf("/api/v1/flows?router=%d&range=1h&host=%s", gw1.ID, wan), &page)
	dirs := map[string]string{}
	for _, f := range page.Flows {
		dirs[f.Direction] = f.Subscriber
	}
	if len(page.Flows) != 2 || dirs["router-out"] != "gw1" || dirs["router-in"] != "gw1" {
		t.Errorf("flows of the router's address: %+v", page.Flows)
	}

	// Usage counts the customer only.
	var usage struct {
		Rows []struct {
			Subscriber string `json:"subscriber"`
			Down       uint64 `json:"download_bytes"`
			Up         uint64 `json:"upload_bytes"`
		} `json:"rows"`
	}
	e.getJSON(fmt.Sprintf("/api/v1/subscribers/usage?router=%d&range=1h", gw1.ID), &usage)
	if len(usage.Rows) != 1 || usage.Rows[0].Subscriber != "alice" || usage.Rows[0].Down != 1000 || usage.Rows[0].Up != 400 {
		t.Errorf("usage: %+v", usage.Rows)
	}
}
