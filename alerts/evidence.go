package alerts

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"

	"github.com/flowbox/flowbox/store"
)

// maxEvidenceKeys bounds each evidence table of a watched host per tick;
// what does not fit is summed under "other".
const maxEvidenceKeys = 512

// topN is the number of entries an alert's evidence keeps.
const topN = 10

type evCount struct {
	addr               netip.Addr // remotes only
	bytes, pkts, flows uint64
}

// evidence is what a watched host's flows looked like during a tick.
// Remotes are keyed by their hash (addrHash): two remotes with one hash
// are summed under the first (a 2^-64 chance, in evidence only).
type evidence struct {
	remotes map[uint64]*evCount
	ports   map[uint32]*evCount // proto<<16 | port
	other   evCount
}

func newEvidence() *evidence {
	return &evidence{remotes: map[uint64]*evCount{}, ports: map[uint32]*evCount{}}
}

func (e *evidence) add(remote netip.Addr, proto uint8, port uint16, bytes, pkts, flows uint64) {
	rh := addrHash(remote)
	if c := e.remotes[rh]; c != nil {
		c.bytes, c.pkts, c.flows = c.bytes+bytes, c.pkts+pkts, c.flows+flows
	} else if len(e.remotes) < maxEvidenceKeys {
		e.remotes[rh] = &evCount{remote, bytes, pkts, flows}
	} else {
		e.other.bytes, e.other.pkts, e.other.flows = e.other.bytes+bytes, e.other.pkts+pkts, e.other.flows+flows
	}
	pk := uint32(proto)<<16 | uint32(port)
	if c := e.ports[pk]; c != nil {
		c.bytes, c.pkts, c.flows = c.bytes+bytes, c.pkts+pkts, c.flows+flows
	} else if len(e.ports) < maxEvidenceKeys {
		e.ports[pk] = &evCount{bytes: bytes, pkts: pkts, flows: flows}
	}
}

// merge adds o into e.
func (e *evidence) merge(o *evidence) {
	sum := func(d *evCount, c *evCount) {
		d.bytes, d.pkts, d.flows = d.bytes+c.bytes, d.pkts+c.pkts, d.flows+c.flows
	}
	for a, c := range o.remotes {
		switch d := e.remotes[a]; {
		case d != nil:
			sum(d, c)
		case len(e.remotes) < maxEvidenceKeys:
			cc := *c
			e.remotes[a] = &cc
		default:
			sum(&e.other, c)
		}
	}
	for p, c := range o.ports {
		if d := e.ports[p]; d != nil {
			sum(d, c)
		} else if len(e.ports) < maxEvidenceKeys {
			cc := *c
			e.ports[p] = &cc
		}
	}
	sum(&e.other, &o.other)
}

// tops returns the top sources and ports, by bytes (by flows when bytes
// tie, as for scans).
func (e *evidence) tops() (sources, ports []store.AlertTop) {
	for _, c := range e.remotes {
		sources = append(sources, store.AlertTop{Key: c.addr.String(), Bytes: c.bytes, Packets: c.pkts, Flows: c.flows})
	}
	for p, c := range e.ports {
		ports = append(ports, store.AlertTop{Key: protoName(uint8(p>>16)) + "/" + strconv.Itoa(int(p&0xffff)),
			Bytes: c.bytes, Packets: c.pkts, Flows: c.flows})
	}
	order := func(a, b store.AlertTop) int {
		return cmp.Or(cmp.Compare(b.Bytes, a.Bytes), cmp.Compare(b.Flows, a.Flows), cmp.Compare(a.Key, b.Key))
	}
	slices.SortFunc(sources, order)
	slices.SortFunc(ports, order)
	return sources[:min(len(sources), topN)], ports[:min(len(ports), topN)]
}

func protoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1:
		return "icmp"
	case 58:
		return "icmpv6"
	}
	return strconv.Itoa(int(p))
}
