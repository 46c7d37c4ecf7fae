package simulator

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/enrich"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

// TestPersonalityCustomerIDs: the comments of three customers in four
// carry a customer id, in the forms enrich's default pattern finds, and
// every comment without its id is the customer's name as before.
func TestPersonalityCustomerIDs(t *testing.T) {
	re, err := enrich.CompileCustomerIDPattern(enrich.DefaultCustomerIDPattern)
	if err != nil {
		t.Fatal(err)
	}
	m, err := netflowtest.NewModel(netflowtest.ModelConfig{Seed: 11, Index: 2, Subscribers: 200})
	if err != nil {
		t.Fatal(err)
	}
	p := personality(m, 7, 11, "admin", "x")
	subs := m.Subscribers()
	byAddr := map[netip.Addr]int{}
	for i, s := range subs {
		byAddr[s.Addr] = i
	}
	withID := 0
	for _, l := range p.Leases {
		i := byAddr[l.Address]
		name, id := enrich.SplitCustomerID(re, l.Comment)
		if name != subs[i].Name || id != CustomerID(2, i) {
			t.Errorf("lease %q: name %q, id %q; want %q, %q", l.Comment, name, id, subs[i].Name, CustomerID(2, i))
		}
		if id != "" {
			withID++
		}
	}
	if withID == 0 || withID == len(p.Leases) {
		t.Errorf("%d of %d leases have a customer id, want some", withID, len(p.Leases))
	}
	byIAID := map[uint32]int{}
	for i, s := range subs {
		byIAID[uint32(s.MAC)] = i
	}
	for _, b := range p.DHCPv6Bindings {
		if b.Comment == "" {
			continue // over PPPoE: the login names it
		}
		i := byIAID[b.IAID]
		if name, id := enrich.SplitCustomerID(re, b.Comment); name != subs[i].Name || id != CustomerID(2, i) {
			t.Errorf("binding %q: name %q, id %q; want %q, %q", b.Comment, name, id, subs[i].Name, CustomerID(2, i))
		}
	}
	if CustomerID(0, 0) != "100001" || CustomerID(2, 3) != "" || CustomerID(63, 19998) != "6419999" {
		t.Errorf("ids %q %q %q", CustomerID(0, 0), CustomerID(2, 3), CustomerID(63, 19998))
	}
}

// TestFleetNamesAndCustomerIDs polls a simulated router with the
// enrichment, as the demo does: every customer is named exactly as before
// (the queue's name, the PPPoE login), and the customers with an id have
// it, on their address and in the report lookup.
func TestFleetNamesAndCustomerIDs(t *testing.T) {
	f := startFleet(t, Config{Routers: 1, Versions: "7", Seed: 4, Password: "demo", Subscribers: 60})
	r := f.Routers()[0]
	ctx := context.Background()
	st, err := storetest.Open(ctx, t.TempDir(), store.DefaultConfig(), discard(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now()
	e, err := enrich.New(enrich.DefaultConfig(), enrich.Deps{Dial: enrich.DialRouterOS, Subscribers: st, Logger: discard(),
		Registerer: prometheus.NewRegistry(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	e.PollRouter(ctx, store.Router{ID: 1, Name: r.Identity, Address: r.APIAddr(), Username: r.Username, Password: r.Password})
	ids, err := st.SubscriberCustomerIDs(ctx, now.Add(-time.Minute), now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	name := func(s netflowtest.Subscriber) string {
		if s.Kind == netflowtest.KindPPPoE {
			return s.Login
		}
		return s.Name
	}
	for _, s := range r.Model.Subscribers() {
		names[name(s)]++
	}
	withID := 0
	for i, s := range r.Model.Subscribers() {
		name := name(s)
		if got := e.SubscriberAt(s.Addr, now); got != name {
			t.Errorf("subscriber %d at %s: named %q, want %q", i, s.Addr, got, name)
		}
		want := CustomerID(r.Model.Config().Index, i)
		sub, err := st.SubscriberAt(ctx, s.Addr, now)
		if err != nil || sub.Name != name || sub.CustomerID != want {
			t.Errorf("subscriber %d at %s: %+v, %v; want %q, id %q", i, s.Addr, sub, err, name, want)
		}
		if got := ids[store.SubscriberRef{RouterID: 1, Name: name}]; got != want && want != "" && names[name] == 1 {
			t.Errorf("subscriber %d %q: report id %q, want %q", i, name, got, want)
		}
		if want != "" {
			withID++
		}
	}
	if withID == 0 {
		t.Error("no customer has an id")
	}
}
