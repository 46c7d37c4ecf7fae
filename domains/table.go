package domains

import (
	"encoding/binary"
	"net/netip"
	"unsafe"
)

// addrKey is an address as two words (IPv4 in its IPv4-mapped form).
type addrKey struct{ hi, lo uint64 }

func keyOf(a netip.Addr) addrKey {
	b := a.As16()
	return addrKey{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func (k addrKey) addr() netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k.hi)
	binary.BigEndian.PutUint64(b[8:], k.lo)
	return netip.AddrFrom16(b).Unmap()
}

// hash mixes the key's words (a multiply-xorshift; addresses are not
// chosen by an adversary who could know the mix, and a bad spread only
// costs probes).
func (k addrKey) hash() uint64 {
	x := k.hi*0x9e3779b97f4a7c15 ^ k.lo
	x ^= x >> 32
	x *= 0xd6e8feb86659fd93
	x ^= x >> 32
	x *= 0xd6e8feb86659fd93
	x ^= x >> 29
	return x
}

// slot is one cell of a table; the zero key (::) marks an empty cell, so
// the unspecified address is never stored.
type slot struct {
	k addrKey
	e entry
}

// table is an open-addressing hash table (linear probing) from addresses
// to entries: cheaper to probe than a Go map on the labelling hot path.
// It is not safe for concurrent use: its shard's lock guards it.
type table struct {
	slots []slot // len is a power of two, at most 3/4 full
	n     int
}

const minTableSize = 16

// get returns the entry of k, nil when absent. The pointer is valid until
// the next put or rebuild.
func (t *table) get(k addrKey, h uint64) *entry {
	if len(t.slots) == 0 {
		return nil
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.k == k {
			return &s.e
		}
		if s.k == (addrKey{}) {
			return nil
		}
	}
}

// put returns the entry of k, adding an empty one when absent (added is
// then true).
func (t *table) put(k addrKey, h uint64) (e *entry, added bool) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.k == k {
			return &s.e, false
		}
		if s.k == (addrKey{}) {
			s.k = k
			t.n++
			return &s.e, true
		}
	}
}

func (t *table) grow() {
	size := max(minTableSize, 2*len(t.slots))
	old := t.slots
	t.slots, t.n = make([]slot, size), 0
	for i := range old {
		if old[i].k != (addrKey{}) {
			e, _ := t.put(old[i].k, old[i].k.hash())
			*e = old[i].e
		}
	}
}

// filter keeps the entries for which keep returns true (keep may change
// the entry) and rebuilds the table at the size they need.
func (t *table) filter(keep func(k addrKey, e *entry) bool) {
	var kept []slot
	for i := range t.slots {
		s := &t.slots[i]
		if s.k != (addrKey{}) && keep(s.k, &s.e) {
			kept = append(kept, *s)
		}
	}
	size := minTableSize
	for len(kept)*4 > size*3 {
		size *= 2
	}
	if len(kept) == 0 {
		size = 0
	}
	t.slots, t.n = make([]slot, size), 0
	for _, s := range kept {
		e, _ := t.put(s.k, s.k.hash())
		*e = s.e
	}
}

// each calls fn for every entry until it returns false.
func (t *table) each(fn func(k addrKey, e *entry) bool) {
	for i := range t.slots {
		if s := &t.slots[i]; s.k != (addrKey{}) && !fn(s.k, &s.e) {
			return
		}
	}
}

// The slot layout the hot path relies on: a key and its entry in one cache
// line.
var _ = [1]struct{}{}[unsafe.Sizeof(slot{})-64]
