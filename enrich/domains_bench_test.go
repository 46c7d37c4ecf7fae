package enrich

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/flowbox/flowbox/domains"
)

// historyLabeler is cmd/flowbox's adapter of the domain history.
type historyLabeler struct{ h *domains.History }

func (l historyLabeler) RemoteDomain(a netip.Addr, from, to int64) string {
	d, _ := l.h.Domain(a, from, to)
	return d
}

// BenchmarkEnrichDomains measures what labelling the remote side with its
// domain adds to enrichment: the fixture's flows (2000 subscribers) with
// and without a domain history of 200,000 names, which names every remote
// address of the flows (each flow pays a hit) among 200,000 others.
func BenchmarkEnrichDomains(b *testing.B) {
	fx := newWISPFixture(b, 2000, 100_000, discardSink{})
	fx.e.Enrich(fx.flows) // directions, for the remote sides
	cfg := domains.DefaultConfig()
	cfg.MaxNames = 500_000
	now := func() time.Time { return fixtureTime }
	h, err := domains.NewHistory(cfg, nil, slog.New(slog.DiscardHandler), now)
	if err != nil {
		b.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	seen := map[netip.Addr]bool{}
	sight := func(a netip.Addr, name string) {
		if err := h.Add(domains.Sighting{Addr: a, Name: name, RouterID: 1, From: fixtureTime.Add(-time.Hour), Seen: fixtureTime,
			Until: fixtureTime.Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range fx.flows {
		_, r := fx.flows[i].LocalRemote()
		if r = r.Unmap(); r.IsValid() && !seen[r] {
			seen[r] = true
			sight(r, fmt.Sprintf("edge%d.cdn%d.example.com", len(seen), len(seen)%50))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for h.Len() < 200_000 {
		sight(netip.AddrFrom4([4]byte{byte(1 + rng.IntN(200)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))}),
			fmt.Sprintf("host%d.site%d.example.net", h.Len(), h.Len()%5000))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.Logf("%d names (%d remote addresses of the flows): %.0f bytes per name", h.Len(), len(seen),
		float64(after.HeapAlloc-before.HeapAlloc)/float64(h.Len()))
	for _, tc := range []struct {
		name    string
		labeler DomainLabeler
	}{{"off", nil}, {"on", historyLabeler{h}}} {
		b.Run(tc.name, func(b *testing.B) {
			fx.e.deps.Domains = tc.labeler
			const batch = 1000
			n, named := 0, 0
			b.ReportAllocs()
			for b.Loop() {
				i := (n * batch) % len(fx.flows)
				work := fx.flows[i : i+batch]
				for j := range work {
					work[j].RouterID, work[j].SrcAS, work[j].DstAS, work[j].RemoteDomain = 0, 0, 0, ""
				}
				fx.e.Enrich(work)
				for j := range work {
					if work[j].RemoteDomain != "" {
						named++
					}
				}
				n++
			}
			if tc.labeler != nil && named == 0 {
				b.Fatal("no flow was named")
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*batch), "ns/flow")
			b.ReportMetric(float64(named)/float64(n*batch), "named/flow")
			b.ReportMetric(0, "ns/op")
		})
	}
	fx.e.deps.Domains = nil
}
