package inventory

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flowbox/flowbox/store"
)

// TestSubscriberCustomerIDs checks the customer ids of a billing period:
// the latest record with an id wins, records outside the period do not
// count, imported records are keyed with router 0, and an imported id
// wins over a router's for the same subscriber at the same address.
func TestSubscriberCustomerIDs(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	p := netip.MustParsePrefix
	recs := []store.Subscriber{
		// Maria on router 1: an id, then a newer one (renumbered), then a
		// record without id (the comment lost it): the newest id counts.
		{RouterID: 1, Prefix: p("100.64.0.10/32"), Name: "Maria Lopez", CustomerID: "1042", Source: store.SourceDHCP,
			ValidFrom: t0.Add(-10 * day), ValidTo: t0.Add(2 * day)},
		{RouterID: 1, Prefix: p("100.64.0.10/32"), Name: "Maria Lopez", CustomerID: "2042", Source: store.SourceDHCP,
			ValidFrom: t0.Add(2 * day), ValidTo: t0.Add(5 * day)},
		{RouterID: 1, Prefix: p("100.64.0.10/32"), Name: "Maria Lopez", Source: store.SourceQueue,
			ValidFrom: t0.Add(5 * day)},
		// The same name on router 2 is another key.
		{RouterID: 2, Prefix: p("100.64.9.9/32"), Name: "Maria Lopez", CustomerID: "77", Source: store.SourceARP,
			ValidFrom: t0.Add(-day)},
		// Bob's id ended before the period; his later record has none.
		{RouterID: 1, Prefix: p("100.64.0.11/32"), Name: "bob", CustomerID: "9", Source: store.SourcePPP,
			ValidFrom: t0.Add(-20 * day), ValidTo: t0},
		{RouterID: 1, Prefix: p("100.64.0.11/32"), Name: "bob", Source: store.SourcePPP, ValidFrom: t0},
		// Carol starts after the period.
		{RouterID: 1, Prefix: p("100.64.0.12/32"), Name: "carol", CustomerID: "12", Source: store.SourceDHCP,
			ValidFrom: t0.Add(31 * day)},
		// Acme is imported (C-1) for the router's prefix, and the router
		// says 555 for the same name at an address of it: the import wins.
		{Prefix: p("100.64.1.0/29"), Name: "Acme", CustomerID: "C-1", Source: store.SourceCSV, ValidFrom: t0.Add(-day)},
		{RouterID: 1, Prefix: p("100.64.1.3/32"), Name: "Acme", CustomerID: "555", Source: store.SourceQueue, ValidFrom: t0},
		// Router 2 names "Acme" elsewhere: not the imported customer.
		{RouterID: 2, Prefix: p("100.64.7.7/32"), Name: "Acme", CustomerID: "556", Source: store.SourceQueue, ValidFrom: t0},
		// Router 3's Acme at the imported prefix, without an id of its
		// own, gets the imported one.
		{RouterID: 3, Prefix: p("100.64.1.4/32"), Name: "Acme", Source: store.SourceDHCP, ValidFrom: t0},
		// An import without an id does not hide the router's.
		{Prefix: p("100.64.2.0/24"), Name: "Dan", Source: store.SourceCSV, ValidFrom: t0.Add(-day)},
		{RouterID: 1, Prefix: p("100.64.2.5/32"), Name: "Dan", CustomerID: "31", Source: store.SourceDHCP, ValidFrom: t0},
		// An imported record that ended before the period does not win.
		{Prefix: p("100.64.3.0/24"), Name: "Eve", CustomerID: "C-OLD", Source: store.SourceCSV,
			ValidFrom: t0.Add(-9 * day), ValidTo: t0.Add(-day)},
		{RouterID: 1, Prefix: p("100.64.3.5/32"), Name: "Eve", CustomerID: "40", Source: store.SourceDHCP, ValidFrom: t0.Add(-2 * day)},
	}
	if _, err := s.ApplySubscriberChanges(ctx, nil, recs); err != nil {
		t.Fatal(err)
	}
	ref := func(router int64, name string) store.SubscriberRef {
		return store.SubscriberRef{RouterID: router, Name: name}
	}

	got, err := s.SubscriberCustomerIDs(ctx, t0, t0.Add(30*day))
	if err != nil {
		t.Fatal(err)
	}
	want := map[store.SubscriberRef]string{
		ref(1, "Maria Lopez"): "2042",
		ref(2, "Maria Lopez"): "77",
		ref(0, "Acme"):        "C-1",
		ref(1, "Acme"):        "C-1",
		ref(2, "Acme"):        "556",
		ref(3, "Acme"):        "C-1",
		ref(1, "Dan"):         "31",
		ref(1, "Eve"):         "40",
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("May (-got +want):\n%s", diff)
	}

	// The first day only: Maria's first id, Bob's old record ended at t0
	// (not in [t0, ...)), Eve's import still out.
	got, err = s.SubscriberCustomerIDs(ctx, t0, t0.Add(day))
	if err != nil {
		t.Fatal(err)
	}
	if got[ref(1, "Maria Lopez")] != "1042" || got[ref(1, "bob")] != "" {
		t.Errorf("first day: %v", got)
	}
	// Before t0: Bob's id counts, the router's Acme record does not exist
	// yet, and Eve's import wins over her router id.
	got, err = s.SubscriberCustomerIDs(ctx, t0.Add(-2*day), t0)
	if err != nil {
		t.Fatal(err)
	}
	want = map[store.SubscriberRef]string{
		ref(1, "Maria Lopez"): "1042",
		ref(2, "Maria Lopez"): "77",
		ref(1, "bob"):         "9",
		ref(0, "Acme"):        "C-1",
		ref(0, "Eve"):         "C-OLD",
		ref(1, "Eve"):         "C-OLD",
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("before May (-got +want):\n%s", diff)
	}
	// Later, Carol has her id and Maria's current record none.
	if got, err := s.SubscriberCustomerIDs(ctx, t0.Add(40*day), t0.Add(41*day)); err != nil ||
		got[ref(1, "carol")] != "12" || got[ref(1, "Maria Lopez")] != "" || got[ref(1, "Acme")] != "C-1" {
		t.Errorf("after: %v, %v", got, err)
	}
	// A period before any record has nobody.
	if got, err := s.SubscriberCustomerIDs(ctx, t0.Add(-400*day), t0.Add(-300*day)); err != nil || len(got) != 0 {
		t.Errorf("long ago: %v, %v", got, err)
	}
}
