package inventory

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flowbox/flowbox/store"
)

// TestDNSNames saves rows, extends one, reads them back after a reopen and
// prunes the ended ones.
func TestDNSNames(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a4, a6 := netip.MustParseAddr("142.250.1.10"), netip.MustParseAddr("2607:f8b0::200e")
	rows := []store.DNSName{
		{Addr: a4, Name: "www.youtube.com", Domain: "youtube.com", RouterID: 1, From: t0, To: t0.Add(5 * time.Minute), Seen: t0},
		{Addr: a6, Name: "www.google.com", Domain: "google.com", RouterID: 2, From: t0, To: t0.Add(time.Minute), Seen: t0},
		{Addr: a4, Name: "old.example.com", Domain: "example.com", From: t0.Add(-48 * time.Hour), To: t0.Add(-47 * time.Hour),
			Seen: t0.Add(-48 * time.Hour), Reverse: true},
	}
	if err := s.SaveDNSNames(ctx, rows); err != nil {
		t.Fatal(err)
	}
	// Seen again later through router 3: the row is extended, not doubled;
	// an older end does not shorten it.
	ext := rows[0]
	ext.To, ext.Seen, ext.RouterID = t0.Add(9*time.Minute), t0.Add(4*time.Minute), 3
	back := rows[1]
	back.To = t0
	if err := s.SaveDNSNames(ctx, []store.DNSName{ext, back}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTest(t, dir)
	got, err := s.DNSNameHistory(ctx, t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []store.DNSName{ext, rows[1]}
	if len(got) == 2 && got[0].Addr != a4 {
		got[0], got[1] = got[1], got[0]
	}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("history (-want +got):\n%s", d)
	}
	n, err := s.PruneDNSNames(ctx, t0.Add(-time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("PruneDNSNames = %d, %v; want 1 row", n, err)
	}
	all, err := s.DNSNameHistory(ctx, time.Time{})
	if err != nil || len(all) != 2 {
		t.Fatalf("after prune: %d rows, %v", len(all), err)
	}
	if err := s.SaveDNSNames(ctx, []store.DNSName{{Name: "x.example"}}); err == nil {
		t.Error("a row without an address was saved")
	}
}
