// Package flowmodel is the model WISP's flows for the stores' benchmarks
// and comparisons: the flows of collector/netflowtest's model, labelled
// as enrichment would label them.
package flowmodel

import (
	"net/netip"
	"testing"
	"time"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/store"
)

// Enricher is a stand-in for enrich.Enricher that labels model flows
// the way the real one does, without its router polling and geo data: the
// direction from the model router's own prefixes (enrich's rule), the
// subscriber of the local address, AS, country and an application from
// the model's remote networks.
type Enricher struct {
	local []netip.Prefix
	subs  map[netip.Addr]string
	nets  []modelNet
}

type modelNet struct {
	prefix  netip.Prefix
	asn     uint32
	country string
	app     string
}

// Countries and application labels of the model's networks.
var modelNetInfo = map[string][2]string{
	"Netflix": {"US", "netflix"}, "Google": {"US", "youtube"}, "Meta": {"US", "facebook"},
	"Akamai": {"NL", ""}, "Cloudflare": {"US", ""}, "Valve": {"LU", "steam"},
	"Microsoft": {"IE", "microsoft"}, "Apple": {"US", "icloud"}, "Amazon": {"IE", ""},
	"Zoom": {"US", "zoom"}, "Quad9": {"CH", "dns"}, "Comcast": {"US", ""},
	"Deutsche Telekom": {"DE", ""}, "Orange": {"FR", ""}, "DigitalOcean": {"NL", ""},
}

// NewEnricher returns the enricher of the models' flows.
func NewEnricher(models ...*netflowtest.Model) *Enricher {
	e := &Enricher{subs: map[netip.Addr]string{}}
	for _, m := range models {
		for _, a := range m.Addresses() {
			e.local = append(e.local, a.Prefix.Masked())
		}
		for _, s := range m.Subscribers() {
			e.subs[s.Addr] = s.Name
			if s.Addr6.IsValid() {
				e.subs[s.Addr6] = s.Name
			}
		}
	}
	for _, n := range netflowtest.Networks() {
		info := modelNetInfo[n.Name]
		for _, p := range n.Prefixes {
			e.nets = append(e.nets, modelNet{p, n.ASN, info[0], info[1]})
		}
	}
	// Most specific first (service subsets of the big networks).
	for i := range e.nets {
		for j := i + 1; j < len(e.nets); j++ {
			if e.nets[j].prefix.Bits() > e.nets[i].prefix.Bits() {
				e.nets[i], e.nets[j] = e.nets[j], e.nets[i]
			}
		}
	}
	return e
}

func (e *Enricher) isLocal(a netip.Addr) bool {
	for _, p := range e.local {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (e *Enricher) network(a netip.Addr) *modelNet {
	for i := range e.nets {
		if e.nets[i].prefix.Contains(a) {
			return &e.nets[i]
		}
	}
	return nil
}

// Enrich labels flows exported from exporter (attributed to routerID).
func (e *Enricher) Enrich(flows []store.Flow, exporter netip.AddrPort, routerID int64) {
	for i := range flows {
		f := &flows[i]
		f.Exporter, f.Version, f.RouterID = exporter, 10, routerID
		src := e.isLocal(f.SrcAddr) || f.SrcAddr.IsLinkLocalUnicast()
		dst := e.isLocal(f.DstAddr) || f.DstAddr.IsMulticast() ||
			(f.PostNATDstAddr.IsValid() && e.isLocal(f.PostNATDstAddr))
		switch {
		case src && dst:
			f.Direction = store.DirInternal
		case src:
			f.Direction = store.DirUpload
		case dst:
			f.Direction = store.DirDownload
		default:
			f.Direction = store.DirTransit
		}
		local, remote := f.LocalRemote()
		f.Subscriber = e.subs[local]
		f.Application, f.SrcCountry, f.DstCountry = "", "", ""
		switch {
		case f.SrcPort == 53 || f.DstPort == 53:
			f.Application = "dns"
		case f.SrcPort == 123 || f.DstPort == 123:
			f.Application = "ntp"
		}
		if n := e.network(remote); n != nil {
			if f.Application == "" {
				f.Application = n.app
			}
			if f.Direction == store.DirDownload {
				f.SrcAS, f.SrcCountry = n.asn, n.country
			} else {
				f.DstAS, f.DstCountry = n.asn, n.country
			}
		}
		if f.Direction == store.DirDownload {
			f.DstCountry = "private"
		} else if f.Direction == store.DirUpload {
			f.SrcCountry = "private"
		}
	}
}

// ModelFlows returns n enriched flows of a 1,000-subscriber WISP router
// exported over the seconds before end at rate flows/s.
func ModelFlows(tb testing.TB, seed uint64, n, rate int, end time.Time) []store.Flow {
	m, err := netflowtest.NewModel(netflowtest.ModelConfig{Seed: seed, Subscribers: 1000})
	if err != nil {
		tb.Fatal(err)
	}
	e := NewEnricher(m)
	exp := netip.MustParseAddrPort("127.0.0.2:2055")
	out := make([]store.Flow, 0, n)
	secs := (n + rate - 1) / rate
	for i := range secs {
		at := end.Add(time.Duration(i-secs) * time.Second)
		k := len(out)
		out = m.AppendFlows(out, min(rate, n-len(out)), at)
		e.Enrich(out[k:], exp, 1)
	}
	return out
}
