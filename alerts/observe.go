package alerts

import (
	"math"
	"math/bits"
	"net/netip"
	"sync"

	"github.com/flowbox/flowbox/store"
)

// The hot path: readers hand each enriched batch to Observe, which adds
// its flows to per-tick aggregates in one of a few shards (picked by the
// exporter, so that each reader mostly takes its own shard's lock once
// per batch). Every evaluation swaps each shard's aggregates out and
// merges them into the detector's state.
//
// A flow contributes to a host's rate as if it had lasted at least the
// rate's horizon (tau): bytes / max(duration, tau). Decayed with time
// constant tau, these contributions sum to the host's rate: exact for
// flows shorter than tau (each burst of short attack flows), exact for
// the active-timeout chunks of long flows when the active timeout is tau
// (flowbox provisions 1 minute), never above a flow's own average rate (a
// 60-second chunk of a customer's download arriving at once is no spike).

// hostKey is a tracked host: a local address seen through a router, in
// one direction (in: traffic to it; out: traffic from it).
type hostKey struct {
	router int64
	addr   netip.Addr
	out    bool
}

// ifKey is one interface of a router.
type ifKey struct {
	router int64
	index  uint32
}

// tickHost is a host's aggregate over one tick.
type tickHost struct {
	key hostKey
	// Contributions to the rates (see above), and raw scaled sums.
	bytesC, pktsC, flowsC float64
	// ampC and synC are the contributions of reflection-port UDP bytes
	// and of SYN-only tiny packets; singleSynC of single-packet SYN-only
	// flows (outbound) or of bare-SYN flows (inbound), in flows/s.
	ampC, synC, singleSynC float64
	sub                    string
	routerOwn              bool
	// x counts distinct destinations of an outbound host's SYN-only and
	// port-25 flows (allocated on the first such flow).
	x *distinct
	// ev collects evidence for watched hosts.
	ev *evidence
}

// tickRouter is a router's aggregate over one tick.
type tickRouter struct {
	bytesC float64
	flows  uint64
	// minLagMs and maxLeadMs are how far the freshest flow ended before
	// (lag) and the furthest after (lead) the collector's clock.
	minLagMs, maxLeadMs int64
}

// tickIf is an interface's aggregate over one tick.
type tickIf struct {
	inC, outC float64
}

// hash is a host key's 64-bit hash: the tick's index and the watch set
// are keyed by it (maps of uint64 take the runtime's fast path; a hostKey
// holds a netip.Addr, which hashes slowly). Two hosts with one hash
// cannot both be tracked in a tick: the second is counted as dropped.
func (k hostKey) hash() uint64 {
	h := addrHash(k.addr) ^ uint64(k.router)*0xc2b2ae3d27d4eb4f
	if k.out {
		h ^= 0x165667b19e3779f9
	}
	return h
}

// tick is one shard's aggregates since the last evaluation.
type tick struct {
	idx     map[uint64]int32
	hosts   []tickHost
	routers map[int64]*tickRouter
	ifs     map[uint64]*tickIf // by ifKey.pack
	dropped uint64             // flows of hosts that found no room
	n       uint64             // flows seen (interface sampling)
}

// ifSample is the sampling of the interface aggregates.
const ifSample = 4

// pack packs an interface key into a map key (routers ids stay far below
// 2^32).
func (k ifKey) pack() uint64 { return uint64(k.router)<<32 | uint64(k.index) }

func unpackIf(p uint64) ifKey { return ifKey{int64(p >> 32), uint32(p)} }

func newTick() *tick {
	return &tick{idx: map[uint64]int32{}, routers: map[int64]*tickRouter{}, ifs: map[uint64]*tickIf{}}
}

func (t *tick) reset() {
	clear(t.idx)
	clear(t.hosts) // drop the pointers
	t.hosts = t.hosts[:0]
	clear(t.routers)
	clear(t.ifs)
	t.dropped, t.n = 0, 0
}

// shard is one lock and its tick.
type shard struct {
	mu  sync.Mutex
	cur *tick
	_   [48]byte // keep shards' locks on separate cache lines
}

// watchSet is the hosts whose evidence is collected (near or above a
// threshold, or in an alert), published by the evaluator.
type watchSet map[uint64]struct{}

// maxWatch bounds the watch set.
const maxWatch = 64

// Observe adds a batch of enriched flows to the detectors' aggregates. It
// is called by every reader goroutine concurrently (collector.Stage, after
// enrichment) and never blocks on anything but a shard's short lock.
func (d *Detector) Observe(flows []store.Flow) {
	if len(flows) == 0 || !d.cfg.Enabled {
		return
	}
	sh := &d.shards[shardOf(flows[0].Exporter.Addr(), len(d.shards))]
	watch := *d.watch.Load()
	nowMs := d.now().UnixMilli()
	tauMs := d.tau.Milliseconds()
	sh.mu.Lock()
	t := sh.cur
	var (
		lastID = int64(-1)
		tr     *tickRouter
	)
	for i := range flows {
		f := &flows[i]
		if f.RouterID != lastID {
			lastID = f.RouterID
			if tr = t.routers[f.RouterID]; tr == nil {
				tr = &tickRouter{minLagMs: 1<<63 - 1, maxLeadMs: -1 << 63}
				t.routers[f.RouterID] = tr
			}
		}
		scale := uint64(1)
		if f.SamplingRate > 1 {
			scale = uint64(f.SamplingRate)
		}
		bytes, pkts := float64(f.Bytes*scale), float64(f.Packets*scale)
		div := float64(max(f.End-f.Start, tauMs)) / 1000
		bc, pc, fc := bytes/div, pkts/div, float64(scale)/d.tau.Seconds()
		tr.bytesC += bc
		tr.flows++
		lag := nowMs - f.End
		tr.minLagMs = min(tr.minLagMs, lag)
		tr.maxLeadMs = max(tr.maxLeadMs, -lag)
		// Interfaces are sampled, one flow in ifSample (scaled): the
		// collapse of an uplink or a sector is seen in thousands of flows,
		// and a router has as many interfaces as PPPoE customers.
		if t.n++; t.n%ifSample == 0 {
			if f.InIf != 0 {
				t.iface(f.RouterID, f.InIf).inC += bc * ifSample
			}
			if f.OutIf != 0 {
				t.iface(f.RouterID, f.OutIf).outC += bc * ifSample
			}
		}
		var (
			key    hostKey
			remote netip.Addr
			port   uint16
		)
		switch f.Direction {
		case store.DirDownload, store.DirRouterIn:
			var local netip.Addr
			local, remote = f.LocalRemote()
			key, port = hostKey{router: f.RouterID, addr: local}, f.SrcPort
		case store.DirUpload:
			key, remote, port = hostKey{router: f.RouterID, addr: f.SrcAddr, out: true}, f.DstAddr, f.DstPort
		default:
			continue
		}
		kh := key.hash()
		h := t.host(key, kh, d.cfg.MaxHosts)
		if h == nil {
			t.dropped++
			continue
		}
		h.bytesC += bc
		h.pktsC += pc
		h.flowsC += fc
		h.sub = f.Subscriber
		h.routerOwn = f.Direction == store.DirRouterIn
		synOnly := f.Proto == 6 && f.TCPFlags&0x3f == 0x02
		if !key.out {
			switch {
			case f.Proto == 17 && d.ampPorts[f.SrcPort]:
				h.ampC += bc
			case synOnly && f.Packets > 0 && f.Bytes/f.Packets <= 100:
				// Bare SYN packets, and the flows they make (a SYN
				// flood's flows outnumber a victim's own, its packets
				// may not).
				h.synC += pc
				h.singleSynC += fc
			}
		} else {
			if synOnly && f.Packets == 1 {
				h.singleSynC += fc
				if h.x == nil {
					h.x = &distinct{}
				}
				h.x.hosts.add(addrHash(f.DstAddr))
				h.x.ports.add(uint64(f.DstPort) * 0x9e3779b97f4a7c15)
			}
			if f.Proto == 6 && f.DstPort == 25 {
				if h.x == nil {
					h.x = &distinct{}
				}
				h.x.smtp.add(addrHash(f.DstAddr))
			}
		}
		if len(watch) > 0 {
			if _, ok := watch[kh]; ok {
				if h.ev == nil {
					h.ev = newEvidence()
				}
				h.ev.add(remote, f.Proto, port, uint64(bytes), uint64(pkts), scale)
			}
		}
	}
	sh.mu.Unlock()
}

// host returns the tick's entry of key (whose hash is kh), nil when the
// tick holds max hosts or another host has the same hash.
func (t *tick) host(key hostKey, kh uint64, max int) *tickHost {
	if i, ok := t.idx[kh]; ok {
		if t.hosts[i].key != key {
			return nil
		}
		return &t.hosts[i]
	}
	if len(t.hosts) >= max {
		return nil
	}
	t.idx[kh] = int32(len(t.hosts))
	t.hosts = append(t.hosts, tickHost{key: key})
	return &t.hosts[len(t.hosts)-1]
}

func (t *tick) iface(router int64, index uint32) *tickIf {
	k := ifKey{router, index}.pack()
	p := t.ifs[k]
	if p == nil {
		p = &tickIf{}
		t.ifs[k] = p
	}
	return p
}

// shardOf picks the shard of an exporter.
func shardOf(a netip.Addr, n int) int {
	return int(addrHash(a) % uint64(n))
}

// addrHash is a cheap 64-bit hash of an address.
func addrHash(a netip.Addr) uint64 {
	b := a.As16()
	hi := uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
	lo := uint64(b[8])<<56 | uint64(b[9])<<48 | uint64(b[10])<<40 | uint64(b[11])<<32 |
		uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15])
	h := (hi ^ bits.RotateLeft64(lo, 31)) * 0x9e3779b97f4a7c15
	return h ^ h>>29
}

// bitmap is a 256-bit linear counter of distinct values.
type bitmap [4]uint64

func (b *bitmap) add(h uint64) {
	h = (h ^ h>>33) * 0xff51afd7ed558ccd
	h ^= h >> 33
	i := h & 255
	b[i>>6] |= 1 << (i & 63)
}

func (b *bitmap) or(o *bitmap) {
	for i := range b {
		b[i] |= o[i]
	}
}

// estimate returns the estimated number of distinct values added
// (linear counting; saturates near 1400).
func (b *bitmap) estimate() float64 {
	ones := 0
	for _, w := range b {
		ones += bits.OnesCount64(w)
	}
	zeros := 256 - ones
	if zeros == 0 {
		zeros = 1
	}
	return -256 * math.Log(float64(zeros)/256)
}

// distinct are an outbound host's distinct counters.
type distinct struct {
	hosts, ports, smtp bitmap
}
