package enrich

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// fakeDomains names addresses from a map, valid from a time on, and
// records the times asked.
type fakeDomains struct {
	names map[netip.Addr]string
	from  int64
	asked []int64
}

func (f *fakeDomains) RemoteDomain(a netip.Addr, from, to int64) string {
	f.asked = append(f.asked, from)
	if to < f.from {
		return ""
	}
	return f.names[a]
}

// TestRemoteDomain: a flow is labelled with the domain of its remote side
// (the destination of an upload, the source of a download, through NAT)
// at its start; internal flows and addresses without a name get none.
func TestRemoteDomain(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Prefixes = []string{"10.0.0.0/16"}
	t0 := time.Date(2025, 3, 10, 10, 0, 0, 0, time.UTC)
	d := &fakeDomains{names: map[netip.Addr]string{addr("45.57.12.1"): "nflxvideo.net", addr("8.8.8.8"): "google.com"}, from: ms(t0)}
	e, sink, _ := newTestEnricher(t, cfg, Deps{Domains: d})
	flows := []store.Flow{
		{SrcAddr: addr("45.57.12.1"), DstAddr: addr("198.51.100.7"), PostNATDstAddr: addr("10.0.5.9"), Proto: 6, SrcPort: 443, DstPort: 51000,
			Start: ms(t0.Add(time.Second)), End: ms(t0.Add(time.Minute))},
		{SrcAddr: addr("10.0.5.9"), DstAddr: addr("8.8.8.8"), PostNATSrcAddr: addr("198.51.100.7"), Proto: 17, SrcPort: 40000, DstPort: 53,
			Start: ms(t0.Add(2 * time.Second)), End: ms(t0.Add(3 * time.Second))},
		{SrcAddr: addr("10.0.5.9"), DstAddr: addr("10.0.7.1"), Proto: 6, SrcPort: 50000, DstPort: 22, Start: ms(t0), End: ms(t0)},
		{SrcAddr: addr("10.0.5.9"), DstAddr: addr("9.9.9.9"), Proto: 6, SrcPort: 50000, DstPort: 443, Start: ms(t0), End: ms(t0)},
		// Before the name was cached.
		{SrcAddr: addr("10.0.5.9"), DstAddr: addr("8.8.8.8"), Proto: 17, SrcPort: 40001, DstPort: 53,
			Start: ms(t0.Add(-time.Minute)), End: ms(t0.Add(-time.Second))},
	}
	if err := e.InsertFlows(context.Background(), flows); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"nflxvideo.net", "google.com", "", "", ""} {
		if got := sink.flows[i].RemoteDomain; got != want {
			t.Errorf("flow %d: domain %q, want %q", i, got, want)
		}
	}
	if len(d.asked) != 4 || d.asked[0] != ms(t0.Add(time.Second)) {
		t.Errorf("asked at %v: want the remote side of every flow but the internal one, at its start", d.asked)
	}
}
