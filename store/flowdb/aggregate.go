package flowdb

import (
	"cmp"
	"encoding/binary"
	"iter"
	"net/netip"
	"slices"

	"github.com/flowbox/flowbox/store"
)

// The aggregator counts every written flow into the minute rollups in
// memory; flushRollups writes them. It is on the ingest hot path: counting
// a flow allocates nothing and costs about fifteen hash-table operations,
// on small fixed-size keys. A bucket (minute, source, direction) gets a
// dense id; each dimension has a table of keys of its own type (an
// address, a 4-byte value such as an AS, a name id or a protocol and port,
// or an address pair), open-addressed with the counters inline.

// totKey is a rollup bucket.
type totKey struct {
	t   int64 // minute, unix seconds
	src int64
	dir store.Direction
}

// ifKey is an interface of a minute and source (the interface rollups
// have no direction).
type ifKey struct {
	ts   uint32 // id of the (minute, source) pair
	ifx  uint32
	side uint8
}

func (k ifKey) hash() uint64 {
	return hashEnd(uint64(k.ts)<<40 ^ uint64(k.side)<<32 ^ uint64(k.ifx))
}
func (k ifKey) bucketID() uint32 { return k.ts }
func (k ifKey) isOther() bool    { return k.ifx == otherIf }
func (k ifKey) other() ifKey     { return ifKey{ts: k.ts, ifx: otherIf, side: k.side} }

// tsKey is a minute and a source.
type tsKey struct{ t, src int64 }

// Bounds of the aggregator's maps.
const (
	// maxIfKeys bounds interface entries; more go to interface otherIf.
	maxIfKeys = 20000
	otherIf   = ^uint32(0)
	// maxAggNames bounds the names (applications, countries, subscribers)
	// the aggregator interns between two flushes; more count as unknown.
	maxAggNames = 1 << 18
	// maxAggBuckets bounds the buckets (minute, source, direction) between
	// two flushes: the writer flushes early beyond it (a group adds at most
	// maxTxFlows more).
	maxAggBuckets = 1 << 16
)

// aggKey is what the tables of the dimensions need of their key type.
type aggKey[K any] interface {
	comparable
	hash() uint64
	bucketID() uint32
	isOther() bool
	other() K // the "other" key of the same bucket
}

// hashMix folds w into the hash h.
func hashMix(h, w uint64) uint64 {
	h = (h ^ w) * 0x9e3779b97f4a7c15
	return h ^ h>>32
}

// hashEnd finishes a hash so that its low bits depend on every input bit
// (splitmix64's finalizer).
func hashEnd(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

// Key kinds of valKey.
const (
	valOther   = iota // the bucket's "other" row
	valBytes          // v as 4 big-endian bytes (AS; 'P', protocol, port)
	valName           // v is an aggregator name id
	valUnknown        // unknown name: stored "\x00"
)

// valKey is a key of the AS, application, country and subscriber
// dimensions.
type valKey struct {
	b    uint32
	v    uint32
	kind uint8
}

func (k valKey) hash() uint64 {
	return hashEnd(uint64(k.b)<<40 ^ uint64(k.kind)<<32 ^ uint64(k.v))
}
func (k valKey) bucketID() uint32 { return k.b }
func (k valKey) isOther() bool    { return k.kind == valOther }
func (k valKey) other() valKey    { return valKey{b: k.b} }

// subDomKey is a key of the subscriber-domain table: a subscriber's name
// id and a domain's (domKind valName), or no domain (valUnknown); kind
// valOther is the subscriber's "other" row. The subscriber-application
// table uses it too, dom being the application's key (valName or
// valBytes, as in the application rollup).
type subDomKey struct {
	b, sub, dom uint32
	kind        uint8
}

func (k subDomKey) hash() uint64 {
	return hashEnd(hashMix(uint64(k.b)<<8|uint64(k.kind), uint64(k.sub)<<32|uint64(k.dom)))
}
func (k subDomKey) bucketID() uint32 { return k.b }
func (k subDomKey) isOther() bool    { return k.kind == valOther }
func (k subDomKey) other() subDomKey { return subDomKey{b: k.b, sub: k.sub} }

// hostAggKey is a key of the host dimensions: n is 4 or 16 for an
// address in a[:n], 1 for none ("\x00"), 0 for the "other" row.
type hostAggKey struct {
	b uint32
	n uint8
	a [16]byte
}

func (k hostAggKey) hash() uint64 {
	h := hashMix(uint64(k.b)<<8|uint64(k.n), binary.LittleEndian.Uint64(k.a[:8]))
	return hashEnd(hashMix(h, binary.LittleEndian.Uint64(k.a[8:])))
}
func (k hostAggKey) bucketID() uint32  { return k.b }
func (k hostAggKey) isOther() bool     { return k.n == 0 }
func (k hostAggKey) other() hostAggKey { return hostAggKey{b: k.b} }

// convKey is a key of the conversation dimension (local, remote).
type convKey struct {
	b      uint32
	nl, nr uint8 // as hostAggKey.n; nl = 0 for the "other" row
	l, r   [16]byte
}

func (k convKey) hash() uint64 {
	h := hashMix(uint64(k.b)<<16|uint64(k.nl)<<8|uint64(k.nr), binary.LittleEndian.Uint64(k.l[:8]))
	h = hashMix(h, binary.LittleEndian.Uint64(k.l[8:]))
	h = hashMix(h, binary.LittleEndian.Uint64(k.r[:8]))
	return hashEnd(hashMix(h, binary.LittleEndian.Uint64(k.r[8:])))
}
func (k convKey) bucketID() uint32 { return k.b }
func (k convKey) isOther() bool    { return k.nl == 0 }
func (k convKey) other() convKey   { return convKey{b: k.b} }

// putHost stores a in a and returns n as hostAggKey.n.
func putHost(dst *[16]byte, a netip.Addr) uint8 {
	switch {
	case !a.IsValid():
		return 1
	case a.Is4():
		b := a.As4()
		copy(dst[:], b[:])
		return 4
	}
	*dst = a.As16()
	return 16
}

func hostBytes(n uint8, a *[16]byte) []byte {
	if n == 1 {
		return []byte{0}
	}
	return slices.Clone(a[:n])
}

// aggEntry is one key of a table and its counters. An entry counts at
// least one flow: a slot whose flows are 0 is empty.
type aggEntry[K comparable] struct {
	key K
	c   counters
}

// aggTable is one dimension's keys: an open-addressing hash table (linear
// probing, at most half full) whose slots hold the keys and their counters
// inline, so that counting a flow into a large table costs one cache miss
// where a Go map to a slice index cost three. Iteration order is the
// slots' order, fixed by the keys' hashes.
type aggTable[K aggKey[K]] struct {
	slots []aggEntry[K] // len is 0 or a power of two
	n     int           // live entries
	spare []aggEntry[K] // the live entries during prune
}

func newAggTable[K aggKey[K]]() *aggTable[K] { return &aggTable[K]{} }

// reset empties the table, keeping its memory for the next minute.
func (t *aggTable[K]) reset() {
	clear(t.slots)
	t.n = 0
}

// all yields the live entries.
func (t *aggTable[K]) all() iter.Seq[*aggEntry[K]] {
	return func(yield func(*aggEntry[K]) bool) {
		for i := range t.slots {
			if e := &t.slots[i]; e.c.flows != 0 && !yield(e) {
				return
			}
		}
	}
}

// slot returns the slot of k: its entry, or the empty slot where it would
// go (ok false). The table must have a free slot.
func (t *aggTable[K]) slot(k K) (e *aggEntry[K], ok bool) {
	mask := uint64(len(t.slots) - 1)
	for i := k.hash() & mask; ; i = (i + 1) & mask {
		e := &t.slots[i]
		if e.c.flows == 0 {
			return e, false
		}
		if e.key == k {
			return e, true
		}
	}
}

// room makes the table at most half full after one more key.
func (t *aggTable[K]) room() {
	if 2*(t.n+1) <= len(t.slots) {
		return
	}
	old := t.slots
	t.slots = make([]aggEntry[K], max(64, 2*len(old)))
	for i := range old {
		if e := &old[i]; e.c.flows != 0 {
			s, _ := t.slot(e.key)
			*s = *e
		}
	}
}

// add counts c (at least one flow) into key k.
func (t *aggTable[K]) add(k K, c counters) {
	t.room()
	e, ok := t.slot(k)
	if ok {
		e.c.add(c)
		return
	}
	e.key, e.c = k, c
	t.n++
}

// prune folds all but the keep largest keys (by bytes) into their
// bucket's "other" row. Totals are unchanged. It returns the keys folded.
func (t *aggTable[K]) prune(keep int, scratch *[]uint64) int {
	vals := (*scratch)[:0]
	for e := range t.all() {
		if !e.key.isOther() {
			vals = append(vals, e.c.bytes)
		}
	}
	*scratch = vals
	if len(vals) <= keep {
		return 0
	}
	threshold := selectKth(vals, len(vals)-keep) // keys below it are folded
	above := 0
	old := t.spare[:0]
	for e := range t.all() {
		if !e.key.isOther() && e.c.bytes > threshold {
			above++
		}
		old = append(old, *e)
	}
	ties := keep - above // keys equal to the threshold kept while it lasts
	t.reset()
	pruned := 0
	for i := range old {
		e := &old[i]
		switch {
		case e.key.isOther() || e.c.bytes > threshold:
		case e.c.bytes == threshold && ties > 0:
			ties--
		default:
			pruned++
			t.add(e.key.other(), e.c)
			continue
		}
		t.add(e.key, e.c)
	}
	t.spare = old[:0]
	return pruned
}

// topRow is a rollup row ready to be written.
type topRow struct {
	bucket uint32
	key    []byte
	c      counters
}

// top returns, per bucket, the topK largest keys and an "other" row with
// the rest; stored turns a key into its stored bytes.
func (t *aggTable[K]) top(topK int, stored func(*K) []byte) []topRow {
	buckets := map[uint32][]int32{}
	for i := range t.slots {
		if t.slots[i].c.flows != 0 {
			b := t.slots[i].key.bucketID()
			buckets[b] = append(buckets[b], int32(i))
		}
	}
	var out []topRow
	for b, es := range buckets {
		slices.SortFunc(es, func(x, y int32) int {
			ex, ey := &t.slots[x], &t.slots[y]
			if ox, oy := ex.key.isOther(), ey.key.isOther(); ox != oy {
				if ox {
					return 1
				}
				return -1
			}
			return cmp.Compare(ey.c.bytes, ex.c.bytes)
		})
		var other counters
		for i, ei := range es {
			e := &t.slots[ei]
			if i >= topK || e.key.isOther() {
				other.add(e.c)
				continue
			}
			out = append(out, topRow{b, stored(&e.key), e.c})
		}
		if other.flows > 0 {
			out = append(out, topRow{b, []byte{}, other})
		}
	}
	return out
}

// aggNames interns the names used in keys between two flushes.
type aggNames struct {
	ids   map[string]uint32
	names []string
}

// id returns the id of name, or false when the table is full.
func (a *aggNames) id(name string) (uint32, bool) {
	if id, ok := a.ids[name]; ok {
		return id, true
	}
	if len(a.names) >= maxAggNames {
		return 0, false
	}
	id := uint32(len(a.names))
	a.ids[name] = id
	a.names = append(a.names, name)
	return id, true
}

// aggregator accumulates the rollups of the flows written since the last
// flush. It is owned by the writer goroutine (and the one helper goroutine
// that writeGroup runs while the writer waits).
type aggregator struct {
	topK    int
	maxKeys int // per dimension, across buckets
	metrics *metrics

	bucketIDs map[totKey]uint32
	buckets   []totKey   // by id
	bucketTS  []uint32   // by bucket id: id of its (minute, source)
	tot       []counters // by bucket id
	tsIDs     map[tsKey]uint32
	ts        []tsKey // by id
	ifs       *aggTable[ifKey]
	local     *aggTable[hostAggKey]
	remote    *aggTable[hostAggKey]
	as        *aggTable[valKey]
	app       *aggTable[valKey]
	country   *aggTable[valKey]
	conv      *aggTable[convKey]
	sub       *aggTable[valKey]
	proto     *aggTable[valKey]
	domain    *aggTable[valKey]
	subdom    *aggTable[subDomKey]
	subapp    *aggTable[subDomKey] // dom is the application key
	names     aggNames
	scratch   []uint64
}

func newAggregator(topK int, m *metrics) *aggregator {
	a := &aggregator{topK: topK, maxKeys: max(50000, 20*topK), metrics: m}
	a.reset()
	return a
}

// reset empties the aggregator after a flush. The tables keep their
// memory (bounded by maxKeys): the next minute fills them again.
func (a *aggregator) reset() {
	if a.local == nil {
		a.local, a.remote, a.conv = newAggTable[hostAggKey](), newAggTable[hostAggKey](), newAggTable[convKey]()
		a.as, a.app, a.country, a.sub = newAggTable[valKey](), newAggTable[valKey](), newAggTable[valKey](), newAggTable[valKey]()
		a.proto, a.domain = newAggTable[valKey](), newAggTable[valKey]()
		a.subdom, a.subapp = newAggTable[subDomKey](), newAggTable[subDomKey]()
		a.ifs = newAggTable[ifKey]()
	}
	a.subdom.reset()
	a.subapp.reset()
	a.local.reset()
	a.remote.reset()
	a.conv.reset()
	for _, t := range []*aggTable[valKey]{a.as, a.app, a.country, a.sub, a.proto, a.domain} {
		t.reset()
	}
	a.bucketIDs = map[totKey]uint32{}
	a.buckets, a.bucketTS, a.tot = a.buckets[:0], a.bucketTS[:0], a.tot[:0]
	a.tsIDs, a.ts = map[tsKey]uint32{}, a.ts[:0]
	a.ifs.reset()
	a.names = aggNames{ids: map[string]uint32{}}
}

func (a *aggregator) empty() bool { return len(a.buckets) == 0 }

// full reports whether the writer should flush before the next group.
func (a *aggregator) full() bool { return len(a.buckets) >= maxAggBuckets }

// bucketID returns the dense id of a bucket.
func (a *aggregator) bucketID(k totKey) uint32 {
	if id, ok := a.bucketIDs[k]; ok {
		return id
	}
	tk := tsKey{k.t, k.src}
	ts, ok := a.tsIDs[tk]
	if !ok {
		ts = uint32(len(a.ts))
		a.tsIDs[tk] = ts
		a.ts = append(a.ts, tk)
	}
	id := uint32(len(a.buckets))
	a.bucketIDs[k] = id
	a.buckets = append(a.buckets, k)
	a.bucketTS = append(a.bucketTS, ts)
	a.tot = append(a.tot, counters{})
	return id
}

// sourceOf returns the rollup source of a flow: its router id, or minus its
// exporter id when the exporter belongs to no router.
func sourceOf(f *store.Flow, exporters map[netip.Addr]int64) int64 {
	if f.RouterID != 0 {
		return f.RouterID
	}
	return -exporters[f.Exporter.Addr().Unmap()]
}

// add accumulates flows (whose End is their filing time).
func (a *aggregator) add(flows []store.Flow, exporters map[netip.Addr]int64) {
	var last totKey
	var b uint32
	for i := range flows {
		f := &flows[i]
		c := counters{bytes: f.Scale(f.Bytes), packets: f.Scale(f.Packets), flows: 1}
		k := totKey{f.End / 60000 * 60, sourceOf(f, exporters), f.Direction}
		if i == 0 || k != last {
			b, last = a.bucketID(k), k
		}
		a.tot[b].add(c)
		ts := a.bucketTS[b]
		a.addIf(ifKey{ts, f.InIf, 0}, c)
		a.addIf(ifKey{ts, f.OutIf, 1}, c)
		local, remote := f.LocalRemote()
		local, remote = local.Unmap(), remote.Unmap()

		hk := hostAggKey{b: b}
		hk.n = putHost(&hk.a, local)
		a.local.add(hk, c)
		ck := convKey{b: b, nl: hk.n, l: hk.a}
		hk = hostAggKey{b: b}
		hk.n = putHost(&hk.a, remote)
		a.remote.add(hk, c)
		ck.nr, ck.r = hk.n, hk.a
		a.conv.add(ck, c)

		as := f.DstAS
		if f.Direction.Inbound() {
			as = f.SrcAS
		}
		a.as.add(valKey{b: b, v: as, kind: valBytes}, c)
		var ak valKey
		if f.Application != "" {
			ak = a.nameKey(b, f.Application)
		} else {
			ak = valKey{b: b, v: 'P'<<24 | uint32(f.Proto)<<16 | uint32(f.ServicePort()), kind: valBytes}
		}
		a.app.add(ak, c)
		a.country.add(a.nameKey(b, f.RemoteCountry()), c)
		sk, dk := a.nameKey(b, f.Subscriber), a.nameKey(b, f.RemoteDomain)
		a.sub.add(sk, c)
		a.domain.add(dk, c)
		if sk.kind == valName && (f.Direction == store.DirDownload || f.Direction == store.DirUpload) {
			a.subdom.add(subDomKey{b: b, sub: sk.v, dom: dk.v, kind: dk.kind}, c)
			if ak.kind != valUnknown {
				a.subapp.add(subDomKey{b: b, sub: sk.v, dom: ak.v, kind: ak.kind}, c)
			}
		}
		a.proto.add(valKey{b: b, v: uint32(f.Proto), kind: valBytes}, c)
		a.bound()
	}
}

func (a *aggregator) nameKey(b uint32, name string) valKey {
	if name == "" {
		return valKey{b: b, kind: valUnknown}
	}
	id, ok := a.names.id(name)
	if !ok {
		a.metrics.namesOverflow.Inc()
		return valKey{b: b, kind: valUnknown}
	}
	return valKey{b: b, v: id, kind: valName}
}

// bound prunes the tables beyond their bound: maxKeys keys, plus the
// "other" row of each bucket.
func (a *aggregator) bound() {
	keep, limit := a.maxKeys/4, a.maxKeys+len(a.buckets)
	n := 0
	if a.local.n > limit {
		n += a.local.prune(keep, &a.scratch)
	}
	if a.remote.n > limit {
		n += a.remote.prune(keep, &a.scratch)
	}
	if a.conv.n > limit {
		n += a.conv.prune(keep, &a.scratch)
	}
	if a.subdom.n > limit {
		n += a.subdom.prune(keep, &a.scratch)
	}
	if a.subapp.n > limit {
		n += a.subapp.prune(keep, &a.scratch)
	}
	for _, t := range []*aggTable[valKey]{a.as, a.app, a.country, a.sub, a.proto, a.domain} {
		if t.n > limit {
			n += t.prune(keep, &a.scratch)
		}
	}
	if n > 0 {
		a.metrics.rollupPruned.Add(float64(n))
	}
}

// addIf counts c into interface k, or into its "other" interface beyond
// maxIfKeys interfaces.
func (a *aggregator) addIf(k ifKey, c counters) {
	a.ifs.room()
	e, ok := a.ifs.slot(k)
	switch {
	case ok:
		e.c.add(c)
	case a.ifs.n >= maxIfKeys:
		a.ifs.add(k.other(), c)
	default:
		e.key, e.c = k, c
		a.ifs.n++
	}
}

// topRows returns the rows to write for dimension d.
func (a *aggregator) topRows(d store.Dimension) []topRow {
	hostKey := func(k *hostAggKey) []byte { return hostBytes(k.n, &k.a) }
	val := func(prefix string) func(k *valKey) []byte {
		return func(k *valKey) []byte {
			switch k.kind {
			case valBytes:
				return binary.BigEndian.AppendUint32(nil, k.v)
			case valName:
				return []byte(prefix + a.names.names[k.v])
			}
			return []byte{0}
		}
	}
	switch d {
	case store.DimLocalHost:
		return a.local.top(a.topK, hostKey)
	case store.DimRemoteHost:
		return a.remote.top(a.topK, hostKey)
	case store.DimRemoteAS:
		return a.as.top(a.topK, val(""))
	case store.DimApplication:
		return a.app.top(a.topK, val("A"))
	case store.DimCountry:
		return a.country.top(a.topK, val(""))
	case store.DimConversation:
		return a.conv.top(a.topK, func(k *convKey) []byte {
			l, r := hostBytes(k.nl, &k.l), hostBytes(k.nr, &k.r)
			return append(append([]byte{byte(len(l))}, l...), r...)
		})
	case store.DimSubscriber:
		return a.sub.top(a.topK, val(""))
	case store.DimProtocol:
		return a.proto.top(a.topK, val(""))
	case store.DimDomain:
		return a.domain.top(a.topK, val(""))
	}
	return nil
}

// selectKth is store.SelectKth.
func selectKth(vals []uint64, k int) uint64 { return store.SelectKth(vals, k) }
