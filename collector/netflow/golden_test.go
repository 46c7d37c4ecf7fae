package netflow

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

// goldenFlow is the field-level view of a decoded flow kept in golden files.
type goldenFlow struct {
	Exporter     string `json:"exporter"`
	Version      uint16 `json:"version"`
	Domain       uint32 `json:"domain"`
	Template     uint16 `json:"template"`
	Start        int64  `json:"start"`
	End          int64  `json:"end"`
	Src          string `json:"src"`
	Dst          string `json:"dst"`
	SrcPort      uint16 `json:"src_port"`
	DstPort      uint16 `json:"dst_port"`
	Proto        uint8  `json:"proto"`
	TCPFlags     uint8  `json:"tcp_flags"`
	ToS          uint8  `json:"tos"`
	InIf         uint32 `json:"in_if"`
	OutIf        uint32 `json:"out_if"`
	NextHop      string `json:"next_hop"`
	SrcMask      uint8  `json:"src_mask"`
	DstMask      uint8  `json:"dst_mask"`
	SrcAS        uint32 `json:"src_as"`
	DstAS        uint32 `json:"dst_as"`
	PostNATSrc   string `json:"post_nat_src"`
	PostNATDst   string `json:"post_nat_dst"`
	PostNATSPort uint16 `json:"post_nat_src_port"`
	PostNATDPort uint16 `json:"post_nat_dst_port"`
	SrcMAC       string `json:"src_mac"`
	DstMAC       string `json:"dst_mac"`
	VLAN         uint16 `json:"vlan"`
	Bytes        uint64 `json:"bytes"`
	Packets      uint64 `json:"packets"`
	SamplingRate uint32 `json:"sampling_rate"`
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func toGolden(f *store.Flow) goldenFlow {
	mac := func(m uint64) string {
		if m == 0 {
			return ""
		}
		return store.FormatMAC(m)
	}
	return goldenFlow{
		Exporter: f.Exporter.String(), Version: f.Version, Domain: f.Domain, Template: f.TemplateID,
		Start: f.Start, End: f.End, Src: addrString(f.SrcAddr), Dst: addrString(f.DstAddr),
		SrcPort: f.SrcPort, DstPort: f.DstPort, Proto: f.Proto, TCPFlags: f.TCPFlags, ToS: f.ToS,
		InIf: f.InIf, OutIf: f.OutIf, NextHop: addrString(f.NextHop), SrcMask: f.SrcMask, DstMask: f.DstMask,
		SrcAS: f.SrcAS, DstAS: f.DstAS, PostNATSrc: addrString(f.PostNATSrcAddr), PostNATDst: addrString(f.PostNATDstAddr),
		PostNATSPort: f.PostNATSrcPort, PostNATDPort: f.PostNATDstPort, SrcMAC: mac(f.SrcMAC), DstMAC: mac(f.DstMAC),
		VLAN: f.VLAN, Bytes: f.Bytes, Packets: f.Packets, SamplingRate: f.SamplingRate,
	}
}

// TestGolden decodes the two MikroTik captures (with the capture time as
// receive time, default configuration) and compares every field of every
// flow with testdata/<name>.golden.json. Regenerate with -update, then
// check by hand against routeros.md 4.2.
func TestGolden(t *testing.T) {
	dir := testutil.CapturesDir(t)
	for _, c := range []struct{ golden, pcap string }{
		{"mikrotik-routeros-6-39-2-ipfix", "logstash-codec-netflow/ipfix-mikrotik-routeros-6-39-2.pcap"},
		{"mikrotik-netflow5", "logstash-codec-netflow/netflow5-mikrotik.pcap"},
	} {
		t.Run(c.golden, func(t *testing.T) {
			flows, errs, _ := decodeAll(t, DefaultConfig(), readCapture(t, filepath.Join(dir, c.pcap)))
			if errs != 0 {
				t.Fatalf("%d datagrams gave errors", errs)
			}
			got := make([]goldenFlow, len(flows))
			for i := range flows {
				got[i] = toGolden(&flows[i])
			}
			b, err := json.MarshalIndent(got, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, '\n')
			path := filepath.Join("testdata", c.golden+".golden.json")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(b, want) {
				var w []goldenFlow
				if err := json.Unmarshal(want, &w); err != nil {
					t.Fatal(err)
				}
				for i := range max(len(w), len(got)) {
					switch {
					case i >= len(w):
						t.Errorf("flow %d: extra %+v", i, got[i])
					case i >= len(got):
						t.Errorf("flow %d: missing %+v", i, w[i])
					case got[i] != w[i]:
						t.Errorf("flow %d:\n got %+v\nwant %+v", i, got[i], w[i])
					}
				}
			}
		})
	}
}

// TestMikroTikIPFIXFacts checks the decoded RouterOS 6.39.2 capture against
// the facts of routeros.md 4.2, independently of the golden file.
func TestMikroTikIPFIXFacts(t *testing.T) {
	dir := testutil.CapturesDir(t)
	flows, _, d := decodeAll(t, DefaultConfig(), readCapture(t, filepath.Join(dir, "logstash-codec-netflow/ipfix-mikrotik-routeros-6-39-2.pcap")))
	if len(flows) != 46 {
		t.Fatalf("%d flows, want 46 (28 IPv4 + 18 IPv6)", len(flows))
	}
	f := flows[0]
	if f.SrcAddr.String() != "10.10.8.197" || f.DstAddr.String() != "192.168.128.17" || f.SrcPort != 123 || f.DstPort != 123 ||
		f.Proto != 17 || f.Bytes != 152 || f.Packets != 2 || f.TemplateID != 258 || f.Domain != 0 {
		t.Errorf("first record: %+v", toGolden(&f))
	}
	var v4, v6, routerIf, postNAT int
	for i := range flows {
		f := &flows[i]
		switch f.TemplateID {
		case 258:
			v4++
			if !f.SrcAddr.Is4() || !f.PostNATSrcAddr.Is4() || !f.PostNATDstAddr.Is4() {
				t.Errorf("flow %d: IPv4 template without IPv4 addresses", i)
			}
			postNAT++
		case 259:
			v6++
			if !f.SrcAddr.Is6() {
				t.Errorf("flow %d: IPv6 template without IPv6 address", i)
			}
		}
		if f.InIf == RouterIfIndex || f.OutIf == RouterIfIndex {
			routerIf++
		}
		if f.End < f.Start || f.End-f.Start > 30*60*1000 {
			t.Errorf("flow %d: start %d end %d", i, f.Start, f.End)
		}
	}
	if v4 != 28 || v6 != 18 || postNAT != 28 || routerIf == 0 {
		t.Errorf("v4 %d v6 %d postNAT %d router-ifIndex %d", v4, v6, postNAT, routerIf)
	}
	// 3891 -> 3936 -> 3964: the template message does not advance the
	// sequence and the data messages are not consecutive (45 records).
	if s := d.Stats(); len(s) != 1 || s[0].LostFlows != 45 {
		t.Errorf("stats %+v, want 45 lost flows", s)
	}
}
