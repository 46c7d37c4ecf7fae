package netflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/pcap"
	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

// datagram is one UDP payload of a capture.
type datagram struct {
	from    netip.AddrPort
	time    time.Time
	payload []byte
}

// readCapture returns every UDP payload of a pcap file, in order.
func readCapture(tb testing.TB, path string) []datagram {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r, err := pcap.NewReader(f)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	var out []datagram
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			tb.Fatalf("%s: %v", path, err)
		}
		out = append(out, datagram{from: p.Src, time: p.Time, payload: slices.Clone(p.Payload)})
	}
}

// decodeAll decodes datagrams in order with one decoder and returns the
// flows, the number of datagrams that returned an error, and the decoder.
func decodeAll(tb testing.TB, cfg Config, dgs []datagram) ([]store.Flow, int, *Decoder) {
	tb.Helper()
	d := New(cfg)
	var flows []store.Flow
	errs := 0
	for _, g := range dgs {
		var err error
		flows, err = d.Decode(flows, g.from, g.payload, g.time)
		if err != nil {
			var de *Error
			if !errors.As(err, &de) || !slices.Contains(Reasons, de.Reason) {
				tb.Fatalf("error %v is not an *Error with a known reason", err)
			}
			errs++
		}
	}
	return flows, errs, d
}

// truthFile is the part of a tshark truth file the tests use.
type truthFile struct {
	Totals struct {
		FlowRecords             int    `json:"flow_records"`
		OptionsRecords          int    `json:"options_records"`
		Octets                  uint64 `json:"octets"`
		Packets                 uint64 `json:"packets"`
		DataSetsWithoutTemplate int    `json:"data_sets_without_template"`
	} `json:"totals"`
	OtherCounters map[string]uint64 `json:"other_counters_sum"`
	Templates     []struct {
		Exporter   string  `json:"exporter"`
		Domain     *uint32 `json:"domain"`
		TemplateID int     `json:"template_id"`
		Options    bool    `json:"options"`
		Fields     [][]any `json:"fields"`
	} `json:"templates"`
	PerTemplate []struct {
		Exporter   string  `json:"exporter"`
		Domain     *uint32 `json:"domain"`
		TemplateID any     `json:"template_id"` // number, or "v5"
		Options    bool    `json:"options"`
		Records    int     `json:"records"`
		Octets     uint64  `json:"octets"`
		Packets    uint64  `json:"packets"`
	} `json:"per_template"`
}

// corpusConfig is the decoder configuration for replaying a capture file
// the way tshark reads it: templates and waiting data sets never expire
// within the file (several corpus files join captures made days apart).
func corpusConfig() Config {
	c := DefaultConfig()
	c.TemplateTTL = 100 * 365 * 24 * time.Hour
	c.PendingTTL = c.TemplateTTL
	return c
}

// tmplKey names a template the way the truth files do.
type tmplKey struct {
	exporter string
	domain   uint32
	id       string
}

func exporterString(a netip.AddrPort) string { return fmt.Sprintf("%s:%d", a.Addr(), a.Port()) }

func flowKey(f *store.Flow) tmplKey {
	if f.Version == 1 || f.Version == 5 {
		return tmplKey{exporterString(f.Exporter), 0, "v5"}
	}
	return tmplKey{exporterString(f.Exporter), f.Domain, fmt.Sprint(f.TemplateID)}
}

// tsharkOverrides are files where tshark's totals are wrong, with the right
// numbers and why.
var tsharkOverrides = map[string]struct {
	flows, options int
	packets, bytes uint64
	why            string
}{
	// SOURCES.md: softflowd 1.1.0 writes count=1 and tshark stops after
	// count records; nfcapd and softflowd's own summary give 58 flows /
	// 3817 packets / 14146460 bytes. The options record (IE 160, 305,
	// 306...) is in the same packet.
	"exporters/softflowd-v9.pcap": {58, 1, 3817, 14146460, "softflowd count=1"},
	// Header count 2 covers the two templates only; the packet goes on
	// with an options template, its record, and one IPv6 (2048) and one
	// IPv4 (1024) data record: 192.168.0.1:53 -> 192.168.0.105:55575
	// (0x62 bytes, 1 packet) and 2001:44b8:1118:7200::10:123 ->
	// 2001:44b8:4030:cd91:8075:bae:d39d:2621:123 (0x60 bytes, 1 packet).
	"logstash-codec-netflow/netflow-9-invalid-01.pcap": {2, 1, 2, 0x60 + 0x62, "header count 2"},
	// tshark stops after the first of 16 records (a dissector exception,
	// "Trying to fetch an IPvN address with length N"); the header count
	// is 16, the set holds exactly 16 records of 80 bytes, and every
	// record decodes to plausible 10.20-22.x.x TCP flows. The first
	// (1027087 bytes / 697 packets) is tshark's.
	"logstash-codec-netflow/netflow-9-h3c.pcap": {16, 0, 6113, 8729687, "tshark exception after record 1"},
	// Options template 4096 is defined twice per packet, the second time
	// with a single field of length 0: records of length 0 cannot be
	// decoded (tshark counts one "record" of nothing per data set).
	// flowbox refuses the template (bad_template) and decodes nothing.
	"libnetflow9/malformed_2.pcap": {0, 0, 0, 0, "zero-length template"},
}

// faultyCaptures are captures with a real fault, and the least number of
// datagrams that must report an error. Every file whose name says
// malformed or invalid is faulty unless listed in cleanCaptures.
var faultyCaptures = map[string]string{
	// telegraf issue 14370 (malformed-input regression): the last set
	// claims 2 bytes more than the datagram holds; its record fits and is
	// decoded (as by tshark) and the overrun is reported (bad_set).
	"telegraf/issue_14370.pcap": "set runs past the datagram",
}

// cleanCaptures are named malformed/invalid but decode without a fault.
var cleanCaptures = map[string]string{
	// The datagram ends with 4 zero bytes (tshark: "Flowset Length too
	// short"); flowbox treats trailing zeros as padding, as it must for
	// zero-filled datagrams (Palo Alto).
	"libnetflow9/malformed_4.pcap": "trailing zero padding",
	// Only logstash's parser rejected it (an options flowset of 22 bytes,
	// not a multiple of 4, which RFC 3954 allows); see tsharkOverrides.
	"logstash-codec-netflow/netflow-9-invalid-01.pcap": "unaligned options flowset",
}

// TestCaptures decodes every capture that has a tshark truth file and
// compares records, bytes and packets with tshark.
func TestCaptures(t *testing.T) {
	dir := testutil.CapturesDir(t)
	var truths []string
	err := filepath.WalkDir(dir, func(path string, de os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".pcap.truth.json") {
			truths = append(truths, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(truths) < 140 {
		t.Fatalf("only %d truth files under %s", len(truths), dir)
	}
	for _, tp := range truths {
		pcapPath := strings.TrimSuffix(tp, ".truth.json")
		name, _ := filepath.Rel(dir, pcapPath)
		t.Run(name, func(t *testing.T) {
			var tr truthFile
			b, err := os.ReadFile(tp)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &tr); err != nil {
				t.Fatal(err)
			}
			flows, errs, d := decodeAll(t, corpusConfig(), readCapture(t, pcapPath))
			checkTruth(t, name, &tr, flows, errs, d)
		})
	}
}

func checkTruth(t *testing.T, name string, tr *truthFile, flows []store.Flow, errs int, d *Decoder) {
	sum := d.Summary()
	var bytes, packets uint64
	for i := range flows {
		bytes += flows[i].Bytes
		packets += flows[i].Packets
	}
	_, faulty := faultyCaptures[name]
	if strings.Contains(name, "malformed") || strings.Contains(name, "invalid") {
		_, clean := cleanCaptures[name]
		faulty = !clean
	}
	switch {
	case faulty && errs == 0:
		t.Errorf("faulty capture decoded without any error")
	case !faulty && errs > 0:
		t.Errorf("%d datagrams gave errors: %v", errs, sum.ErrorsByReason)
	}
	if uint64(len(flows)) != sum.Flows {
		t.Errorf("summary says %d flows, got %d", sum.Flows, len(flows))
	}
	if o, ok := tsharkOverrides[name]; ok {
		if len(flows) != o.flows || packets != o.packets || bytes != o.bytes || sum.OptionsRecords != uint64(o.options) {
			t.Errorf("got %d flows / %d packets / %d bytes / %d options records, want %d / %d / %d / %d (%s)",
				len(flows), packets, bytes, sum.OptionsRecords, o.flows, o.packets, o.bytes, o.options, o.why)
		}
		return
	}
	if tr.Totals.DataSetsWithoutTemplate > 0 {
		// tshark could not decode some data sets; flowbox keeps early
		// data sets and must decode at least as much.
		if len(flows) < tr.Totals.FlowRecords {
			t.Errorf("got %d flow records, tshark %d", len(flows), tr.Totals.FlowRecords)
		}
		if sum.OptionsRecords < uint64(tr.Totals.OptionsRecords) {
			t.Errorf("got %d options records, tshark %d", sum.OptionsRecords, tr.Totals.OptionsRecords)
		}
		return
	}
	if len(flows) != tr.Totals.FlowRecords {
		t.Errorf("got %d flow records, tshark %d", len(flows), tr.Totals.FlowRecords)
	}
	if sum.OptionsRecords != uint64(tr.Totals.OptionsRecords) {
		t.Errorf("got %d options records, tshark %d", sum.OptionsRecords, tr.Totals.OptionsRecords)
	}
	// Which templates carry IE 1 / IE 2 (tshark's octets/packets).
	hasIE := func(k tmplKey, ie float64) bool {
		if k.id == "v5" {
			return true
		}
		for _, tm := range tr.Templates {
			dom := uint32(0)
			if tm.Domain != nil {
				dom = *tm.Domain
			}
			if tm.Exporter == k.exporter && dom == k.domain && fmt.Sprint(tm.TemplateID) == k.id {
				for _, f := range tm.Fields {
					if len(f) == 3 && f[0] == ie && f[2] == nil {
						return true
					}
				}
			}
		}
		return false
	}
	type agg struct {
		records        int
		bytes, packets uint64
	}
	got := map[tmplKey]*agg{}
	for i := range flows {
		k := flowKey(&flows[i])
		a := got[k]
		if a == nil {
			a = &agg{}
			got[k] = a
		}
		a.records++
		a.bytes += flows[i].Bytes
		a.packets += flows[i].Packets
	}
	var ie1Bytes, ie2Packets, otherBytes, otherPackets uint64
	for k, a := range got {
		if hasIE(k, 1) {
			ie1Bytes += a.bytes
		} else {
			otherBytes += a.bytes
		}
		if hasIE(k, 2) {
			ie2Packets += a.packets
		} else {
			otherPackets += a.packets
		}
	}
	for _, pt := range tr.PerTemplate {
		if pt.Options || pt.Records == 0 {
			continue // options, or a reserved set id tshark lists without records
		}
		k := tmplKey{exporter: pt.Exporter, id: fmt.Sprint(pt.TemplateID)}
		if pt.Domain != nil {
			k.domain = *pt.Domain
		}
		a := got[k]
		if a == nil {
			t.Errorf("template %v: tshark decoded %d records, flowbox none", k, pt.Records)
			continue
		}
		if a.records != pt.Records {
			t.Errorf("template %v: %d records, tshark %d", k, a.records, pt.Records)
		}
		if hasIE(k, 1) && a.bytes != pt.Octets {
			t.Errorf("template %v: %d bytes, tshark %d", k, a.bytes, pt.Octets)
		}
		if hasIE(k, 2) && a.packets != pt.Packets {
			t.Errorf("template %v: %d packets, tshark %d", k, a.packets, pt.Packets)
		}
	}
	if ie1Bytes != tr.Totals.Octets || ie2Packets != tr.Totals.Packets {
		t.Errorf("IE 1/2 sums: %d bytes / %d packets, tshark %d / %d", ie1Bytes, ie2Packets, tr.Totals.Octets, tr.Totals.Packets)
	}
	// Records without IE 1/2 take their counters from NSEL 231+232, then
	// IE 85/86, then IE 23/24. When no template has IE 1 (2), every such
	// counter tshark summed is ours, unless options records carry them too
	// (YAF and telegraf's exporter statistics have IE 86).
	inOptions := func(ie float64) bool {
		for _, tm := range tr.Templates {
			if tm.Options {
				for _, f := range tm.Fields {
					if len(f) == 3 && f[0] == ie {
						return true
					}
				}
			}
		}
		return false
	}
	oc := tr.OtherCounters
	if tr.Totals.Octets == 0 && !inOptions(85) && !inOptions(231) && !inOptions(23) {
		var want uint64
		switch {
		case oc["cflow.initiator_octets"]+oc["cflow.responder_octets"] > 0:
			want = oc["cflow.initiator_octets"] + oc["cflow.responder_octets"]
		case oc["cflow.permanent_octets"] > 0:
			want = oc["cflow.permanent_octets"]
		default:
			want = oc["cflow.post_octets"]
		}
		if otherBytes != want {
			t.Errorf("bytes from other counters: %d, tshark %d (%v)", otherBytes, want, oc)
		}
	}
	if tr.Totals.Packets == 0 && !inOptions(86) && !inOptions(24) {
		want := oc["cflow.permanent_packets"]
		if want == 0 {
			want = oc["cflow.post_packets"]
		}
		if otherPackets != want {
			t.Errorf("packets from other counters: %d, tshark %d (%v)", otherPackets, want, oc)
		}
	}
}
