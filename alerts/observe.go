package alerts

import (
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
	// flows (flows/s).
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

// tick is one shard's aggregates since the last evaluation.
type tick struct {
	idx     map[hostKey]int32
	hosts   []tickHost
	routers map[int64]*tickRouter
	ifs     map[ifKey]*tickIf
	dropped uint64 // flows of hosts that found no room
}

func newTick() *tick {
	return &tick{idx: map[hostKey]int32{}, routers: map[int64]*tickRouter{}, ifs: map[ifKey]*tickIf{}}
}

func (t *tick) reset() {
	clear(t.idx)
	clear(t.hosts) // drop the pointers
	t.hosts = t.hosts[:0]
	clear(t.routers)
	clear(t.ifs)
	t.dropped = 0
}

// shard is one lock and its tick.
type shard struct {
	mu  sync.Mutex
	cur *tick
	_   [48]byte // keep shards' locks on separate cache lines
}

// watchSet is the hosts whose evidence is collected (near or above a
// threshold, or in an alert), published by the evaluator.
type watchSet map[hostKey]struct{}

// maxWatch bounds the watch set.
const maxWatch = 256

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
		lastID        = int64(-1)
		tr            *tickRouter
		inKey, outKey ifKey
		inAgg, outAgg *tickIf
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
		// A flow and its reply cross the same interfaces: the last ones
		// are remembered.
		if f.InIf != 0 {
			if k := (ifKey{f.RouterID, f.InIf}); k != inKey || inAgg == nil {
				inKey, inAgg = k, t.iface(k)
			}
			inAgg.inC += bc
		}
		if f.OutIf != 0 {
			if k := (ifKey{f.RouterID, f.OutIf}); k != outKey || outAgg == nil {
				outKey, outAgg = k, t.iface(k)
			}
			outAgg.outC += bc
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
		h := t.host(key, d.cfg.MaxHosts)
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
				h.synC += pc
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
			if _, ok := watch[key]; ok {
				if h.ev == nil {
					h.ev = newEvidence()
				}
				h.ev.add(remote, f.Proto, port, uint64(bytes), uint64(pkts), scale)
			}
		}
	}
	sh.mu.Unlock()
}

// host returns the tick's entry of key, nil when the tick holds max hosts.
func (t *tick) host(key hostKey, max int) *tickHost {
	if i, ok := t.idx[key]; ok {
		return &t.hosts[i]
	}
	if len(t.hosts) >= max {
		return nil
	}
	t.idx[key] = int32(len(t.hosts))
	t.hosts = append(t.hosts, tickHost{key: key})
	return &t.hosts[len(t.hosts)-1]
}

func (t *tick) iface(k ifKey) *tickIf {
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
	return -256 * logf(float64(zeros)/256)
}

// distinct are an outbound host's distinct counters.
type distinct struct {
	hosts, ports, smtp bitmap
}
