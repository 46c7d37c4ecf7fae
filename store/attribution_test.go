package store

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/internal/testutil"
)

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

var addr = netip.MustParseAddr

// TestAttribute: an address goes to a router only when no other router may
// export from it; a pinned exporter address wins over the other routers'
// /ip/address entries; a loopback API host shared by several routers
// (local tunnels, the simulator) is nobody's, one used by one router is
// that router's.
func TestAttribute(t *testing.T) {
	routers := []Router{
		{ID: 1, Name: "tower-a", Address: "203.0.113.5:8728", Addresses: pfx("10.0.0.1/24", "192.168.88.1/24")},
		{ID: 2, Name: "tower-b", Address: "198.51.100.7:8728", Addresses: pfx("10.0.0.1/24", "100.64.0.1/24")},
		// Behind tower-a's NAT: reached at tower-a's public address.
		{ID: 3, Name: "behind-a", Address: "203.0.113.5:8729", Addresses: pfx("172.16.0.2/30")},
		// Pinned to 100.64.9.1: its other addresses are only fallbacks.
		{ID: 4, Name: "pinned", Address: "127.0.0.1:18728", Addresses: pfx("100.64.9.1/24", "192.168.88.1/24", "10.9.9.9/32"),
			ExporterAddr: addr("100.64.9.1")},
		{ID: 5, Name: "pinned-2", Address: "127.0.0.1:18729", Addresses: pfx("100.64.10.1/24", "10.9.9.9/32"),
			ExporterAddr: addr("100.64.10.1")},
		{ID: 6, Name: "tunnelled", Address: "127.0.0.2:8728", Addresses: pfx("100.64.11.1/24")},
	}
	m, conflicts := Attribute(routers)
	want := map[netip.Addr]int64{
		addr("10.0.0.1"):     0, // tower-a and tower-b
		addr("192.168.88.1"): 1, // tower-a; pinned exports from 100.64.9.1
		addr("100.64.0.1"):   2,
		addr("198.51.100.7"): 2,
		addr("203.0.113.5"):  0, // tower-a and behind-a
		addr("172.16.0.2"):   3,
		addr("100.64.9.1"):   4,
		addr("100.64.10.1"):  5,
		addr("100.64.11.1"):  6,
		addr("127.0.0.2"):    6,
		// 10.9.9.9: an address of two pinned routers, neither exports
		// from it: nobody's. 127.0.0.1: the API host of two routers
		// reached through local tunnels: nobody's.
	}
	if diff := cmp.Diff(m, want, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("attribution (-got +want):\n%s", diff)
	}
	wantConflicts := []AttributionConflict{
		{Addr: addr("10.0.0.1"), Routers: []string{"tower-a", "tower-b"}},
		{Addr: addr("203.0.113.5"), Routers: []string{"behind-a", "tower-a"}},
	}
	if diff := cmp.Diff(conflicts, wantConflicts, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("conflicts (-got +want):\n%s", diff)
	}
	if got := conflicts[1].String(); got != "203.0.113.5 (behind-a, tower-a)" {
		t.Errorf("conflict renders as %q", got)
	}
}

// TestDuplicateAddressesNeverMerge: two routers with the same /ip/address
// entry used to be merged (the first router won the address silently).
// Now flows from it are kept and attributed to neither, the conflict is
// reported and logged once, and pinning one router's exporter address
// resolves it.
func TestDuplicateAddressesNeverMerge(t *testing.T) {
	ctx := context.Background()
	var logs testutil.SyncBuffer
	s, err := Open(ctx, t.TempDir(), DefaultConfig(), slog.New(slog.NewTextHandler(&logs, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := &Router{Name: "tower-a", Address: "127.0.0.1:18728", Addresses: pfx("10.0.0.1/24", "127.0.0.2/32")}
	b := &Router{Name: "tower-b", Address: "127.0.0.1:18729", Addresses: pfx("10.0.0.1/24", "127.0.0.3/32")}
	for _, r := range []*Router{a, b} {
		if err := s.AddRouter(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if id, ok := s.RouterFor(addr("10.0.0.1")); id != 0 || !ok {
		t.Errorf("RouterFor(10.0.0.1) = %d, %v: want 0 (nobody), true (an onboarded router's address)", id, ok)
	}
	if id, ok := s.RouterFor(addr("127.0.0.3")); id != b.ID || !ok {
		t.Errorf("RouterFor(127.0.0.3) = %d, %v, want tower-b's %d", id, ok, b.ID)
	}
	if _, ok := s.RouterFor(addr("127.0.0.1")); ok {
		t.Error("the loopback API host of two routers is attributed")
	}
	conflicts, err := s.AttributionConflicts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(conflicts) != 1 || conflicts[0].String() != "10.0.0.1 (tower-a, tower-b)" {
		t.Errorf("conflicts = %v", conflicts)
	}
	if n := strings.Count(logs.String(), "routers may export from the same address"); n != 1 {
		t.Errorf("conflict logged %d times, want once:\n%s", n, logs.String())
	}
	if err := s.ReloadRouters(ctx); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "routers may export from the same address"); n != 1 {
		t.Errorf("an unchanged conflict was logged again:\n%s", logs.String())
	}

	// Flows from the ambiguous address are stored, attributed to nobody.
	now := time.Now().UnixMilli()
	flows := []Flow{
		{Exporter: netip.MustParseAddrPort("10.0.0.1:2055"), Start: now - 1000, End: now, SrcAddr: addr("192.0.2.1"),
			DstAddr: addr("10.0.0.20"), Bytes: 100, Packets: 1, Proto: 6},
		{Exporter: netip.MustParseAddrPort("127.0.0.3:40000"), Start: now - 1000, End: now, SrcAddr: addr("192.0.2.1"),
			DstAddr: addr("10.0.0.21"), Bytes: 100, Packets: 1, Proto: 6},
	}
	ingest(t, s, flows)
	if _, ok, err := s.LastFlowFrom(ctx, a.ID); ok || err != nil {
		t.Errorf("tower-a got a flow from the ambiguous address (err %v)", err)
	}
	if _, ok, err := s.LastFlowFrom(ctx, b.ID); !ok || err != nil {
		t.Errorf("tower-b's flow from its own address was not attributed to it (err %v)", err)
	}

	// tower-b pinned to 127.0.0.3: 10.0.0.1 is tower-a's again.
	b.ExporterAddr = addr("127.0.0.3")
	if err := s.UpdateRouter(ctx, b); err != nil {
		t.Fatal(err)
	}
	if id, _ := s.RouterFor(addr("10.0.0.1")); id != a.ID {
		t.Errorf("after pinning tower-b, 10.0.0.1 goes to %d, want tower-a's %d", id, a.ID)
	}
	if conflicts, _ := s.AttributionConflicts(ctx); len(conflicts) != 0 {
		t.Errorf("conflicts after pinning: %v", conflicts)
	}
	if !strings.Contains(logs.String(), "exporter address no longer claimed by several routers") {
		t.Errorf("resolution not logged:\n%s", logs.String())
	}
	got, err := s.GetRouter(ctx, "tower-b")
	if err != nil || got.ExporterAddr != addr("127.0.0.3") {
		t.Fatalf("exporter address not stored: %v, %v", got, err)
	}

	// No two routers may have the same exporter address.
	a.ExporterAddr = addr("127.0.0.3")
	if err := s.UpdateRouter(ctx, a); !errors.Is(err, ErrExporterConflict) {
		t.Errorf("two routers with exporter address 127.0.0.3: %v, want ErrExporterConflict", err)
	}
	c := &Router{Name: "tower-c", Address: "192.0.2.9:8728", ExporterAddr: addr("127.0.0.3")}
	if err := s.AddRouter(ctx, c); !errors.Is(err, ErrExporterConflict) {
		t.Errorf("adding a router with tower-b's exporter address: %v, want ErrExporterConflict", err)
	}
	c.ExporterAddr = netip.Addr{}
	if err := s.AddRouter(ctx, c); err != nil {
		t.Errorf("routers without exporter address conflict: %v", err)
	}
}
