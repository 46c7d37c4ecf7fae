package flowdb

import (
	"math/rand/v2"
	"testing"
)

// TestAggTable checks the open-addressing table against a Go map: keys
// that share their low hash bits, growth, reset, and iteration over the
// live entries only.
func TestAggTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tbl := newAggTable[valKey]()
	for round := range 3 {
		want := map[valKey]counters{}
		for i := range 20000 {
			// Few buckets and values: most adds hit existing keys.
			k := valKey{b: uint32(rng.IntN(7)), v: uint32(rng.IntN(3000)), kind: valBytes}
			if i%11 == 0 {
				k = k.other()
			}
			c := counters{bytes: uint64(rng.IntN(1500)), packets: 1, flows: 1}
			tbl.add(k, c)
			w := want[k]
			w.add(c)
			want[k] = w
		}
		if tbl.n != len(want) {
			t.Fatalf("round %d: %d keys, want %d", round, tbl.n, len(want))
		}
		if 2*tbl.n > len(tbl.slots) {
			t.Fatalf("round %d: %d keys in %d slots", round, tbl.n, len(tbl.slots))
		}
		seen := 0
		for e := range tbl.all() {
			seen++
			if want[e.key] != e.c {
				t.Fatalf("round %d: key %+v counts %+v, want %+v", round, e.key, e.c, want[e.key])
			}
		}
		if seen != len(want) {
			t.Fatalf("round %d: iterated %d keys, want %d", round, seen, len(want))
		}
		tbl.reset()
		for range tbl.all() {
			t.Fatalf("round %d: an entry survived reset", round)
		}
	}
}

// TestAggregatorInterfaceBound checks that interfaces beyond maxIfKeys are
// counted in their minute's "other" interface, totals unchanged.
func TestAggregatorInterfaceBound(t *testing.T) {
	a := newAggregator(5, newUnregisteredMetrics())
	var total uint64
	for i := range maxIfKeys + 500 {
		c := counters{bytes: uint64(i + 1), packets: 1, flows: 1}
		a.addIf(ifKey{ts: 0, ifx: uint32(i + 1), side: uint8(i % 2)}, c)
		total += c.bytes
	}
	var got, other uint64
	for e := range a.ifs.all() {
		got += e.c.bytes
		if e.key.ifx == otherIf {
			other += e.c.flows
		}
	}
	if got != total {
		t.Fatalf("interfaces count %d bytes, want %d", got, total)
	}
	if a.ifs.n > maxIfKeys+2 || other != 500 {
		t.Fatalf("%d interface keys (bound %d), %d flows in other, want 500", a.ifs.n, maxIfKeys, other)
	}
}
