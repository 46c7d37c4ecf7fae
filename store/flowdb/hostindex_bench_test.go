package flowdb

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// benchPostings returns n postings shaped like a WISP's: one side of each
// flow is one of 1,000 subscribers (Zipf), the other a remote address that
// mostly appears in the two flows of one session.
func benchPostings(n int) ([][16]byte, []uint32) {
	rng := rand.New(rand.NewPCG(3, 4))
	zipf := rand.NewZipf(rng, 1.2, 1, 999)
	hosts := make([][16]byte, 0, n)
	rel := make([]uint32, 0, n)
	var remote [16]byte
	for id := uint32(0); len(hosts) < n; id++ {
		sub := zipf.Uint64()
		hosts = append(hosts, hostKey(netip.AddrFrom4([4]byte{100, 64, byte(sub >> 8), byte(sub)})))
		if id%2 == 0 {
			r := rng.Uint32()
			remote = hostKey(netip.AddrFrom4([4]byte{byte(r), byte(r >> 8), byte(r >> 16), byte(r >> 24)}))
		}
		hosts = append(hosts, remote)
		rel = append(rel, id, id)
	}
	return hosts[:n], rel[:n]
}

// toChunks puts postings into tail chunks.
func toChunks(hosts [][16]byte, rel []uint32) []*postingChunk {
	var out []*postingChunk
	for i := range hosts {
		if len(out) == 0 || out[len(out)-1].n == tailChunk {
			out = append(out, new(postingChunk))
		}
		c := out[len(out)-1]
		c.hosts[c.n], c.rel[c.n] = hosts[i], rel[i]
		c.n++
	}
	return out
}

// BenchmarkBuildSegment measures turning one million postings of a host
// index tail into segment rows (the CPU part of a spill).
func BenchmarkBuildSegment(b *testing.B) {
	hosts, rel := benchPostings(1 << 20)
	chunks := toChunks(hosts, rel)
	b.ReportAllocs()
	var sc segScratch
	for b.Loop() {
		buildSegment(&sc, chunks, bucketsFor(len(rel)))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(rel)), "ns/posting")
}
