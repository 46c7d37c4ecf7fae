package netflow

import (
	"net/netip"
	"testing"
	"time"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/store"
)

// The template flood of issue 13: 32 NetFlow v9 packets of 4,096 templates
// each, from one address.
const (
	floodPackets   = 32
	floodTemplates = 4096
)

var flooder = netip.MustParseAddrPort("198.51.100.66:2055")

// floodPacket returns flood packet i: a v9 template flowset of n two-field
// templates whose ids follow those of packet i-1 (wrapping within
// 256..65535), with source id domain.
func floodPacket(i, n int, domain uint32) []byte {
	recs := make([][]byte, n)
	for j := range recs {
		id := 256 + (i*n+j)%(65536-256)
		recs[j] = tmpl(uint16(id), fld{8, 4, 0}, fld{1, 4, 0})
	}
	return v9Packet(uint32(1000+i), secs, uint32(i), domain, set(0, 0, recs...))
}

// routerTraffic encodes n flows as a RouterOS exporter of version v (9 or
// 10) sends them, templates included, and returns the datagrams and the
// number of flow records they carry.
func routerTraffic(t testing.TB, v, n int) ([][]byte, uint64) {
	t.Helper()
	model, err := netflowtest.NewModel(netflowtest.ModelConfig{Seed: 13, Subscribers: 50})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := netflowtest.NewEncoder(netflowtest.EncoderConfig{Version: v, BootTime: tNow.Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	flows := model.AppendFlows(nil, n, tNow)
	var pkts [][]byte
	for len(flows) > 0 {
		pkt, k := enc.AppendPacket(nil, flows, tNow)
		flows = flows[k:]
		pkts = append(pkts, pkt)
	}
	return pkts, enc.Stats().Flows
}

// TestTemplateFlood: an address that floods templates fills only its own
// quota (or, the cache being full, pays with its own templates): normal
// RouterOS exporters, v9 and IPFIX, keep decoding every record, during
// and after the flood, whether the flood uses one domain or many.
func TestTemplateFlood(t *testing.T) {
	routerV9 := netip.MustParseAddrPort("192.0.2.10:40000")
	routerIPFIX := netip.MustParseAddrPort("192.0.2.11:40001")
	for _, c := range []struct {
		name    string
		domains uint32 // the flood cycles through this many source ids
	}{{"one domain", 1}, {"many domains", 32}} {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.MaxTemplates = 4096 // the collector's per-reader default
			d := New(cfg)
			var flows []store.Flow
			for i := range floodPackets {
				var err error
				flows, err = d.Decode(flows[:0], flooder, floodPacket(i, floodTemplates, uint32(i)%c.domains), tNow)
				if err == nil && c.domains == 1 {
					t.Errorf("flood packet %d: no template_limit error", i)
				}
			}
			if d.templates > cfg.MaxTemplates {
				t.Fatalf("%d templates cached, bound %d", d.templates, cfg.MaxTemplates)
			}
			for _, r := range []struct {
				from netip.AddrPort
				v    int
			}{{routerV9, 9}, {routerIPFIX, 10}} {
				pkts, want := routerTraffic(t, r.v, 784)
				var got uint64
				for i, p := range pkts {
					// The flood goes on between the router's datagrams.
					flows, _ = d.Decode(flows[:0], flooder, floodPacket(floodPackets+i, floodTemplates, uint32(i)%c.domains), tNow)
					var err error
					flows, err = d.Decode(flows[:0], r.from, p, tNow)
					if err != nil {
						t.Fatalf("v%d datagram %d: %v", r.v, i, err)
					}
					got += uint64(len(flows))
				}
				if got != want || want < 784 {
					t.Errorf("v%d router: decoded %d of %d records", r.v, got, want)
				}
				if s := statsOf(t, d, r.from); s.TemplatesEvicted != 0 || s.NoTemplateSets != 0 {
					t.Errorf("v%d router: %d templates evicted, %d sets without template", r.v, s.TemplatesEvicted, s.NoTemplateSets)
				}
			}
			s := statsOf(t, d, flooder)
			if s.TemplatesEvicted == 0 || s.Templates > cfg.MaxTemplates {
				t.Errorf("flooder: %d templates, %d evicted", s.Templates, s.TemplatesEvicted)
			}
			if c.domains == 1 && s.Templates != cfg.MaxTemplatesPerDomain {
				t.Errorf("flooder holds %d templates, want its quota %d", s.Templates, cfg.MaxTemplatesPerDomain)
			}
			if err := d.checkInvariants(); err != nil {
				t.Error(err)
			}
		})
	}
}

// BenchmarkTemplateFlood measures the CPU of one flood packet (4,096 new
// templates, each evicting an older one of the flooder) once the
// flooder's quota, or the whole cache, is full.
func BenchmarkTemplateFlood(b *testing.B) {
	for _, c := range []struct {
		name    string
		domains uint32
	}{{"one-domain", 1}, {"many-domains", 32}} {
		b.Run(c.name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.MaxTemplates = 4096
			d := New(cfg)
			// A normal router holds its templates meanwhile.
			pkts, _ := routerTraffic(b, 9, 100)
			for _, p := range pkts {
				if _, err := d.Decode(nil, exporterA, p, tNow); err != nil {
					b.Fatal(err)
				}
			}
			const n = 64 // distinct packets: ids wrap after 15.9 of them
			var flood [n][]byte
			for i := range flood {
				flood[i] = floodPacket(i, floodTemplates, uint32(i)%c.domains)
			}
			for i := range floodPackets {
				_, _ = d.Decode(nil, flooder, flood[i], tNow)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(flood[0])))
			i := 0
			for b.Loop() {
				_, _ = d.Decode(nil, flooder, flood[i%n], tNow)
				i++
			}
			b.ReportMetric(float64(i*floodTemplates)/b.Elapsed().Seconds(), "templates/s")
			if s := statsOf(b, d, exporterA); s.Templates != 2 {
				b.Errorf("the router lost its templates: %d left", s.Templates)
			}
		})
	}
}
