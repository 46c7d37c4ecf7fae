package flowdb

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// natRandomEntries returns n entries of one router and public address
// ending in the minute starting at m, in block order: IPv4 and IPv6
// inside addresses and far ends (repeated or not), every protocol class,
// translated and kept ports, one flow or many, far end unknown.
func natRandomEntries(rng *rand.Rand, n int, router int64, pub [16]byte, m int64) []natStored {
	ins := []netip.Addr{netip.MustParseAddr("100.64.0.1"), netip.MustParseAddr("100.64.7.200"), netip.MustParseAddr("fd00::1:2")}
	rems := []netip.Addr{netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("142.250.1.10"), netip.MustParseAddr("2001:4860::8888")}
	protos := []uint8{6, 17, 1, 47, 58}
	out := make([]natStored, n)
	for i := range out {
		e := &out[i]
		e.key.router, e.key.pub = router, pub
		e.key.pport = uint16(rng.IntN(65536))
		e.key.proto = protos[rng.IntN(len(protos))]
		if rng.IntN(3) == 0 {
			e.key.in = netip.AddrFrom4([4]byte{100, 64, byte(rng.IntN(256)), byte(rng.IntN(256))}).As16()
		} else {
			e.key.in = ins[rng.IntN(len(ins))].As16()
		}
		e.key.iport = e.key.pport
		if rng.IntN(4) == 0 {
			e.key.iport = uint16(rng.IntN(65536))
		}
		e.last = m + rng.Int64N(natMinuteMs)
		e.first = e.last - rng.Int64N(int64(natMaxSpan/time.Millisecond))
		e.flows, e.remotes = 1, 1
		if rng.IntN(3) == 0 {
			e.flows, e.remotes = uint64(1+rng.IntN(1000)), uint32(rng.IntN(300))
		}
		switch rng.IntN(5) {
		case 0: // unknown
		case 1:
			e.remote, e.rport = netip.AddrFrom4([4]byte{byte(1 + rng.IntN(200)), byte(rng.IntN(256)), 1, 1}).As16(), uint16(rng.IntN(65536))
		default:
			e.remote, e.rport = rems[rng.IntN(len(rems))].As16(), []uint16{53, 443}[rng.IntN(2)]
		}
	}
	slices.SortFunc(out, func(a, b natStored) int { return cmpStored(&a, &b) })
	return out
}

// TestNATBlockRoundTrip: a block decodes to its entries, times widened to
// the second; a port lookup decodes that port's entries only.
func TestNATBlockRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	m := natMinuteOf(testNow.UnixMilli())
	pub := netip.MustParseAddr("203.0.113.7").As16()
	entries := natRandomEntries(rng, 3000, 7, pub, m)
	var enc natEncoder
	var blocks []natBlock
	if err := enc.blocks(entries, func(b *natBlock) error {
		c := *b
		c.data = slices.Clone(b.data)
		blocks = append(blocks, c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 1 || blocks[0].n != len(entries) || blocks[0].minute != m || blocks[0].router != 7 || blocks[0].pub != pub {
		t.Fatalf("blocks %+v", blocks)
	}
	b := blocks[0]
	t.Logf("%d entries in %d bytes: %.1f bytes each", b.n, len(b.data), float64(len(b.data))/float64(b.n))
	var dec natDecoder
	var got []natStored
	if err := dec.decode(b.data, natKey{router: 7, pub: pub}, m, 0, func(e *natStored) { got = append(got, *e) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(entries) {
		t.Fatalf("%d entries decoded, want %d", len(got), len(entries))
	}
	for i := range got {
		want := entries[i]
		want.first, want.last = store.FloorDiv(want.first, 1000)*1000, ceilDiv(want.last, 1000)*1000
		if got[i] != want {
			t.Fatalf("entry %d:\n got %+v\nwant %+v", i, got[i], want)
		}
		if got[i].last-got[i].first > b.maxSpan || got[i].last > b.maxLast {
			t.Fatalf("entry %d beyond the block's bounds %d %d", i, b.maxSpan, b.maxLast)
		}
	}
	// A port lookup.
	port := entries[len(entries)/2].key.pport
	var n, wantN int
	for i := range entries {
		if entries[i].key.pport == port {
			wantN++
		}
	}
	if err := dec.decode(b.data, natKey{router: 7, pub: pub}, m, port, func(e *natStored) {
		if e.key.pport != port {
			t.Fatalf("port %d decoded for a lookup of %d", e.key.pport, port)
		}
		n++
	}); err != nil || n != wantN {
		t.Fatalf("port %d: %d entries, want %d (%v)", port, n, wantN, err)
	}
}

// TestNATBlockMinutes: entries of several minutes make one block per
// minute, in block order each.
func TestNATBlockMinutes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m := natMinuteOf(testNow.UnixMilli())
	pub := netip.MustParseAddr("203.0.113.7").As16()
	var entries []natStored
	for k := range int64(3) {
		entries = append(entries, natRandomEntries(rng, 200, 1, pub, m+k*7*natMinuteMs)...)
	}
	slices.SortFunc(entries, func(a, b natStored) int { return cmpStored(&a, &b) })
	var enc natEncoder
	var dec natDecoder
	total := 0
	var minutes []int64
	if err := enc.blocks(entries, func(b *natBlock) error {
		minutes = append(minutes, b.minute)
		return dec.decode(b.data, natKey{router: 1, pub: pub}, b.minute, 0, func(e *natStored) {
			if natMinuteOf(e.last-1) != b.minute && natMinuteOf(e.last) != b.minute {
				t.Fatalf("an entry ending at %d in the block of minute %d", e.last, b.minute)
			}
			total++
		})
	}); err != nil {
		t.Fatal(err)
	}
	if total != 600 || !slices.Equal(minutes, []int64{m, m + 7*natMinuteMs, m + 14*natMinuteMs}) {
		t.Fatalf("%d entries in minutes %v", total, minutes)
	}
}

// TestNATBlockCorrupt: a truncated or damaged block is an error, never a
// panic.
func TestNATBlockCorrupt(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	m := natMinuteOf(testNow.UnixMilli())
	pub := netip.MustParseAddr("203.0.113.7").As16()
	var enc natEncoder
	var data []byte
	if err := enc.blocks(natRandomEntries(rng, 50, 1, pub, m), func(b *natBlock) error {
		data = slices.Clone(b.data)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var dec natDecoder
	decode := func(d []byte) error {
		return dec.decode(d, natKey{router: 1, pub: pub}, m, 0, func(*natStored) {})
	}
	if err := decode(nil); err == nil {
		t.Fatal("an empty block decoded")
	}
	if err := decode([]byte{9}); err == nil {
		t.Fatal("an unknown version decoded")
	}
	errs := 0
	for i := 1; i < len(data); i++ {
		if decode(data[:i]) != nil {
			errs++
		}
	}
	if errs < len(data)/4 {
		t.Fatalf("%d of %d truncations detected", errs, len(data)-1)
	}
	for range 2000 {
		d := slices.Clone(data)
		d[1+rng.IntN(len(d)-1)] = byte(rng.IntN(256))
		_ = decode(d) // an error or wrong entries, not a panic
	}
}

// FuzzNATBlock: any bytes decode or fail cleanly.
func FuzzNATBlock(f *testing.F) {
	rng := rand.New(rand.NewPCG(7, 8))
	var enc natEncoder
	m := natMinuteOf(testNow.UnixMilli())
	pub := netip.MustParseAddr("203.0.113.7").As16()
	_ = enc.blocks(natRandomEntries(rng, 20, 1, pub, m), func(b *natBlock) error {
		f.Add(slices.Clone(b.data), uint16(0))
		return nil
	})
	f.Fuzz(func(t *testing.T, data []byte, port uint16) {
		var dec natDecoder
		_ = dec.decode(data, natKey{router: 1, pub: pub}, m, port, func(e *natStored) {
			if port != 0 && e.key.pport != port {
				t.Fatalf("port %d for a lookup of %d", e.key.pport, port)
			}
		})
	})
}

// TestNATSortTail: the radix sort orders records as cmpRec does.
func TestNATSortTail(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	c := &natCache{capacity: 1 << 12}
	for _, n := range []int{10, 100, 5000} {
		recs := make([]natRec, n)
		for i := range recs {
			r := &recs[i]
			// Few routers and addresses, many ports, repeated mappings.
			r.k1 = uint64(1+rng.IntN(3))<<48 | uint64(0xcb007100+rng.IntN(4))<<16 | uint64(rng.IntN(1<<16))
			if i > 0 && rng.IntN(5) == 0 {
				r.k1 = recs[rng.IntN(i)].k1
			}
			r.k2 = 6<<48 | uint64(0x64400000+rng.IntN(50))<<16 | uint64(rng.IntN(4))
			r.first = rng.Int64N(1000)
			r.w = -1
		}
		want := slices.Clone(recs)
		slices.SortStableFunc(want, func(a, b natRec) int { return c.cmpRec(&a, &b) })
		c.sortTail(recs)
		for i := range recs {
			if c.cmpRec(&recs[i], &want[i]) != 0 {
				t.Fatalf("n=%d: record %d: %+v, want %+v", n, i, recs[i], want[i])
			}
		}
	}
}
