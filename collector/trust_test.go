package collector

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

// routerSet is a RouterResolver over a fixed set of router addresses.
type routerSet map[netip.Addr]int64

func (r routerSet) RouterFor(a netip.Addr) (int64, bool) { id, ok := r[a]; return id, ok }

// TestUntrustedExporter sends NetFlow v9 (templates and data) from a source
// that is neither a router nor allowed: its datagrams and flows are counted
// per source, nothing reaches the store and no template is cached. Once the
// prefix is allowed, data without a new template waits for it (the earlier
// templates were never kept), and after the exporter's template refresh
// every flow is stored. A router's address is trusted all along.
func TestUntrustedExporter(t *testing.T) {
	cfg := testConfig()
	cfg.BatchSize = 1
	cfg.BatchAge = 10 * time.Millisecond
	sink := &memSink{}
	trust := NewAllowlist(routerSet{netip.MustParseAddr("127.0.0.3"): 7}, nil)
	r := startCollectorTrust(t, cfg, sink, trust)
	dst := r.addr(t, 0)

	enc, err := netflowtest.NewEncoder(netflowtest.EncoderConfig{Version: netflowtest.V9, BootTime: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	enc.SetTemplateSchedule(1000, time.Hour) // templates in the first packet only, until ResendTemplates
	packets, flows := encodePackets(t, enc, 4)
	stranger := newSender(t, "127.0.0.2:0")
	stranger.send(t, dst, packets)
	router := newSender(t, "127.0.0.3:0")
	routerPackets, routerFlows := encodeV5(t, 2)
	router.send(t, dst, routerPackets)
	waitReceived(t, r, len(packets)+len(routerPackets))

	byAddr := func() map[string]store.ExporterStats {
		m := map[string]store.ExporterStats{}
		for _, e := range r.c.Exporters() {
			m[e.Exporter.String()] = e
		}
		return m
	}
	testutil.WaitFor(t, 10*time.Second, "the router's flows stored", func() (bool, string) {
		e := byAddr()["127.0.0.3"]
		return e.FlowsStored == uint64(routerFlows), fmt.Sprintf("%+v", e)
	})
	s := byAddr()["127.0.0.2"]
	// v9 headers count template records too: the first packet's count
	// includes its templates.
	if s.Trusted || s.FlowsStored != 0 || s.Templates != 0 || s.Packets != uint64(len(packets)) ||
		s.FlowsReceived < uint64(flows) || s.FlowsDropped[store.DropUntrusted] != s.FlowsReceived {
		t.Errorf("untrusted exporter: %+v", s)
	}
	if rt := byAddr()["127.0.0.3"]; !rt.Trusted || rt.RouterID != 0 && rt.RouterID != 7 {
		t.Errorf("router exporter: %+v", rt)
	}
	for _, f := range sink.snapshot() {
		if f.Exporter.Addr() == netip.MustParseAddr("127.0.0.2") {
			t.Fatalf("a flow of the untrusted exporter reached the store: %+v", f)
		}
	}
	if m := metric(t, r.reg, "flowbox_collector_dropped_flows_total", "reason", store.DropUntrusted); m != float64(s.FlowsReceived) {
		t.Errorf("untrusted metric = %v, want %d", m, s.FlowsReceived)
	}

	// Allowed now: data packets without their template wait for it.
	trust.SetPrefixes([]netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")})
	more, nMore := encodePackets(t, enc, 2)
	stranger.send(t, dst, more)
	testutil.WaitFor(t, 10*time.Second, "data waiting for a template", func() (bool, string) {
		e := byAddr()["127.0.0.2"]
		return e.PendingNoTmpl > 0 && e.Trusted, fmt.Sprintf("%+v", e)
	})
	if e := byAddr()["127.0.0.2"]; e.FlowsStored != 0 {
		t.Fatalf("flows stored without a template: %+v", e)
	}
	enc.ResendTemplates()
	last, nLast := encodePackets(t, enc, 1)
	stranger.send(t, dst, last)
	testutil.WaitFor(t, 10*time.Second, "the allowed exporter's flows stored", func() (bool, string) {
		e := byAddr()["127.0.0.2"]
		return e.FlowsStored == uint64(nMore+nLast), fmt.Sprintf("%+v", e)
	})
}

func TestAllowlist(t *testing.T) {
	a := NewAllowlist(routerSet{netip.MustParseAddr("192.0.2.1"): 1}, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8::/32")})
	for addr, want := range map[string]bool{
		"192.0.2.1": true, "192.0.2.2": false, "198.51.100.77": true, "::ffff:198.51.100.77": true,
		"2001:db8::1": true, "2001:db9::1": false, "203.0.113.1": false,
	} {
		if got := a.Trusted(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Trusted(%s) = %v, want %v", addr, got, want)
		}
	}
	a.SetPrefixes(nil)
	if a.Trusted(netip.MustParseAddr("198.51.100.77")) {
		t.Error("still trusted after the prefixes were removed")
	}
	for in, want := range map[string]string{"192.0.2.7": "192.0.2.7/32", "192.0.2.7/24": "192.0.2.0/24", "::ffff:10.0.0.1": "10.0.0.1/32", "2001:db8::1/48": "2001:db8::/48"} {
		if p, err := ParsePrefix(in); err != nil || p.String() != want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, bad := range []string{"", "bogus", "10.0.0.0/33", "::1/200"} {
		if _, err := ParsePrefix(bad); err == nil {
			t.Errorf("ParsePrefix(%q) accepted", bad)
		}
	}
}

// TestPortHeldByAnotherProcess: a second collector (another flowbox) on a
// UDP port that one already holds refuses to start with a clear error,
// instead of sharing the port through SO_REUSEPORT and splitting the
// exporters between the two.
func TestPortHeldByAnotherProcess(t *testing.T) {
	cfg := testConfig()
	r := startCollector(t, cfg, &memSink{})
	cfg.Listen = []string{r.addr(t, 0).String()}
	c, err := New(cfg, Deps{Sink: newPipeSink(&memSink{}, 1), Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "already in use by another process") {
		t.Fatalf("second collector on %s: %v", cfg.Listen[0], err)
	}
}
