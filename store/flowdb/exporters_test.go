package flowdb

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

var addr = netip.MustParseAddr

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

func TestExporterStatsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	in := []store.ExporterStats{{
		Exporter: netip.MustParseAddr("192.0.2.7"), RouterID: 0, Packets: 10, FlowsReceived: 300, FlowsStored: 290,
		FlowsDropped: map[string]uint64{"no_template": 10}, DecodeErrors: map[string]uint64{"short": 1},
		LostFlows: 5, Templates: 2, FirstSeen: now.Add(-time.Hour), LastSeen: now, Bytes: 1000, PktsSeen: 20,
	}}
	if err := s.SaveExporterStats(ctx, in); err != nil {
		t.Fatal(err)
	}
	in[0].FlowsReceived = 400
	if err := s.SaveExporterStats(ctx, in); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	out, err := ro.ExporterStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].FlowsReceived != 400 || out[0].FlowsDropped["no_template"] != 10 ||
		!out[0].LastSeen.Equal(now) || out[0].LostFlows != 5 {
		t.Fatalf("ExporterStats = %+v", out)
	}
	if err := ro.SaveExporterStats(ctx, in); err == nil {
		t.Fatal("read-only store accepted a write")
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
	s, err := Open(ctx, t.TempDir(), store.DefaultConfig(), slog.New(slog.NewTextHandler(&logs, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(s)
	a := &store.Router{Name: "tower-a", Address: "127.0.0.1:18728", Addresses: pfx("10.0.0.1/24", "127.0.0.2/32")}
	b := &store.Router{Name: "tower-b", Address: "127.0.0.1:18729", Addresses: pfx("10.0.0.1/24", "127.0.0.3/32")}
	for _, r := range []*store.Router{a, b} {
		if err := inv(s).AddRouter(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if id, ok := inv(s).RouterFor(addr("10.0.0.1")); id != 0 || !ok {
		t.Errorf("RouterFor(10.0.0.1) = %d, %v: want 0 (nobody), true (an onboarded router's address)", id, ok)
	}
	if id, ok := inv(s).RouterFor(addr("127.0.0.3")); id != b.ID || !ok {
		t.Errorf("RouterFor(127.0.0.3) = %d, %v, want tower-b's %d", id, ok, b.ID)
	}
	if _, ok := inv(s).RouterFor(addr("127.0.0.1")); ok {
		t.Error("the loopback API host of two routers is attributed")
	}
	conflicts, err := inv(s).AttributionConflicts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(conflicts) != 1 || conflicts[0].String() != "10.0.0.1 (tower-a, tower-b)" {
		t.Errorf("conflicts = %v", conflicts)
	}
	if n := strings.Count(logs.String(), "routers may export from the same address"); n != 1 {
		t.Errorf("conflict logged %d times, want once:\n%s", n, logs.String())
	}
	if err := inv(s).ReloadRouters(ctx); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "routers may export from the same address"); n != 1 {
		t.Errorf("an unchanged conflict was logged again:\n%s", logs.String())
	}

	// Flows from the ambiguous address are stored, attributed to nobody.
	now := time.Now().UnixMilli()
	flows := []store.Flow{
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
	if err := inv(s).UpdateRouter(ctx, b); err != nil {
		t.Fatal(err)
	}
	if id, _ := inv(s).RouterFor(addr("10.0.0.1")); id != a.ID {
		t.Errorf("after pinning tower-b, 10.0.0.1 goes to %d, want tower-a's %d", id, a.ID)
	}
	if conflicts, _ := inv(s).AttributionConflicts(ctx); len(conflicts) != 0 {
		t.Errorf("conflicts after pinning: %v", conflicts)
	}
	if !strings.Contains(logs.String(), "exporter address no longer claimed by several routers") {
		t.Errorf("resolution not logged:\n%s", logs.String())
	}
	got, err := inv(s).GetRouter(ctx, "tower-b")
	if err != nil || got.ExporterAddr != addr("127.0.0.3") {
		t.Fatalf("exporter address not stored: %v, %v", got, err)
	}

	// No two routers may have the same exporter address.
	a.ExporterAddr = addr("127.0.0.3")
	if err := inv(s).UpdateRouter(ctx, a); !errors.Is(err, store.ErrExporterConflict) {
		t.Errorf("two routers with exporter address 127.0.0.3: %v, want ErrExporterConflict", err)
	}
	c := &store.Router{Name: "tower-c", Address: "192.0.2.9:8728", ExporterAddr: addr("127.0.0.3")}
	if err := inv(s).AddRouter(ctx, c); !errors.Is(err, store.ErrExporterConflict) {
		t.Errorf("adding a router with tower-b's exporter address: %v, want ErrExporterConflict", err)
	}
	c.ExporterAddr = netip.Addr{}
	if err := inv(s).AddRouter(ctx, c); err != nil {
		t.Errorf("routers without exporter address conflict: %v", err)
	}
}
