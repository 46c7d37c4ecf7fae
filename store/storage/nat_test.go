package storage

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

// TestNATLookupRouterRemoved: a mapping outlives its router. After the
// router is removed, the lookup still answers with the inside address,
// the subscriber the router's history named, and says the router was
// removed; a time with no mapping answers none, with a message.
func TestNATLookupRouterRemoved(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := Open(ctx, t.TempDir(), DefaultConfig(), Shared, testutil.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		st.Close()
	})
	r := &store.Router{Name: "tower9", Address: "127.0.0.1:8728", Username: "admin", Password: "pw",
		Addresses: []netip.Prefix{netip.MustParsePrefix("127.0.0.9/32")}}
	if err := st.AddRouter(ctx, r); err != nil {
		t.Fatal(err)
	}
	inside, public, remote := netip.MustParseAddr("100.64.7.7"), netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("198.51.100.80")
	end := time.Now().Add(-30 * time.Second).Truncate(time.Millisecond)
	start := end.Add(-20 * time.Second)
	if _, err := st.ApplySubscriberChanges(ctx, nil, []store.Subscriber{{RouterID: r.ID, Prefix: netip.PrefixFrom(inside, 32),
		Name: "Dora Lima", Source: store.SourceDHCP, ValidFrom: start.Add(-time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	up := store.Flow{RouterID: r.ID, Exporter: netip.MustParseAddrPort("127.0.0.9:4000"), Version: 9,
		Start: start.UnixMilli(), End: end.UnixMilli(), SrcAddr: inside, DstAddr: remote, SrcPort: 40001, DstPort: 443, Proto: 6,
		PostNATSrcAddr: public, PostNATSrcPort: 51234, PostNATDstAddr: remote, PostNATDstPort: 443, Bytes: 1000, Packets: 10,
		Direction: store.DirUpload, Subscriber: "Dora Lima"}
	if err := st.InsertFlows(ctx, []store.Flow{up}); err != nil {
		t.Fatal(err)
	}
	q := store.NATQuery{Public: public, Port: 51234, Proto: 6, At: start.Add(5 * time.Second)}
	var ans *store.NATAnswer
	testutil.WaitFor(t, 10*time.Second, "the mapping", func() (bool, string) {
		if ans, err = st.NATLookup(ctx, q); err != nil {
			return false, err.Error()
		}
		return len(ans.Matches) == 1, ans.Message
	})
	if m := ans.Matches[0]; m.Router != "tower9" || m.InsideAddr != inside || m.InsidePort != 40001 || m.Subscriber != "Dora Lima" {
		t.Fatalf("before removal: %+v", m)
	}
	if err := st.RemoveRouter(ctx, "tower9"); err != nil {
		t.Fatal(err)
	}
	if ans, err = st.NATLookup(ctx, q); err != nil || len(ans.Matches) != 1 {
		t.Fatalf("after removal: %+v, %v", ans, err)
	}
	m := ans.Matches[0]
	if !strings.Contains(m.Router, "removed") || m.InsideAddr != inside || m.InsidePort != 40001 {
		t.Fatalf("after removal: %+v, want the mapping of a removed router", m)
	}
	t.Logf("after removal: %s", ans.Message)
	q.At = start.Add(-time.Hour)
	if ans, err = st.NATLookup(ctx, q); err != nil || len(ans.Matches) != 0 || !strings.Contains(ans.Message, "No NAT mapping") {
		t.Fatalf("an hour earlier: %+v, %v; want none with a message", ans, err)
	}
}

// TestNATMessage: the sentence of an answer says when a time is before
// the oldest mapping kept, and warns of mappings that could not be
// written.
func TestNATMessage(t *testing.T) {
	since := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	q := store.NATQuery{Public: netip.MustParseAddr("203.0.113.9"), Port: 51234, At: since.Add(-time.Hour), Window: 2 * time.Minute}
	a := &store.NATAnswer{KeptSince: &since}
	if msg := natMessage(q, a, 180*24*time.Hour, since.Add(24*time.Hour)); !strings.Contains(msg, "before the oldest NAT mapping kept (since 2025-03-01") {
		t.Errorf("before the oldest: %q", msg)
	}
	q.At = since.Add(time.Hour)
	if msg := natMessage(q, a, 180*24*time.Hour, since.Add(24*time.Hour)); !strings.Contains(msg, "Check the address") || strings.Contains(msg, "Warning") {
		t.Errorf("after the oldest: %q", msg)
	}
	a.MappingsDropped = 7
	a.Matches = []store.NATMapping{{InsideAddr: netip.MustParseAddr("100.64.1.1"), InsidePort: 4000, Router: "tower9", Subscriber: "Dora"}}
	if msg := natMessage(q, a, 180*24*time.Hour, since.Add(24*time.Hour)); !strings.Contains(msg, "used by 100.64.1.1 port 4000, Dora") || !strings.Contains(msg, "Warning: 7 NAT mappings could not be written") {
		t.Errorf("with drops: %q", msg)
	}
}
