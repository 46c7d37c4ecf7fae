package netflow

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

// softflowdTruth is one flow of exporters/exporters-input.pcap, the input of
// the softflowd exports: its 5-tuple and the capture times of its first and
// last packet. testdata/softflowd-ipfix-truth.json was computed with
//
//	tshark -n -r exporters-input.pcap -T fields -E occurrence=f -e frame.time_epoch \
//	  -e ip.src -e ipv6.src -e ip.dst -e ipv6.dst -e udp.srcport -e tcp.srcport \
//	  -e udp.dstport -e tcp.dstport -e ip.proto -e ipv6.nxt
//
// grouped by 5-tuple (58 of them: the 58 flows softflowd exported).
type softflowdTruth struct {
	Src     string `json:"src"`
	Dst     string `json:"dst"`
	SrcPort uint16 `json:"src_port"`
	DstPort uint16 `json:"dst_port"`
	Proto   uint8  `json:"proto"`
	FirstUs int64  `json:"first_us"`
	LastUs  int64  `json:"last_us"`
}

// TestSoftflowdIPFIXTimes: softflowd's IPFIX export carries uptime-relative
// times (IE 22/21) and systemInitTimeMilliseconds (IE 160) in an options
// record; the times are the input packets' times within 1 ms. softflowd
// read a file whose packets are up to 9 years older than its start, and
// writes their uptimes modulo 2^32 ms (49.7 days): flows within 49.7 days
// before the export (the capture's loopback traffic) are exact, the older
// ones are exact modulo 2^32 ms, placed within the 49.7 days before the
// export, which is all the encoding holds.
func TestSoftflowdIPFIXTimes(t *testing.T) {
	dir := testutil.CapturesDir(t)
	b, err := os.ReadFile(filepath.Join("testdata", "softflowd-ipfix-truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	var truths []softflowdTruth
	if err := json.Unmarshal(b, &truths); err != nil {
		t.Fatal(err)
	}
	type key struct {
		src, dst         netip.Addr
		srcPort, dstPort uint16
		proto            uint8
	}
	truth := map[key]softflowdTruth{}
	for _, tr := range truths {
		truth[key{netip.MustParseAddr(tr.Src), netip.MustParseAddr(tr.Dst), tr.SrcPort, tr.DstPort, tr.Proto}] = tr
	}
	dgs := readCapture(t, filepath.Join(dir, "exporters", "softflowd-ipfix.pcap"))
	flows, errs, d := decodeAll(t, DefaultConfig(), dgs)
	if errs != 0 || len(flows) != 58 || d.Summary().OptionsRecords != 1 {
		t.Fatalf("%d flows, %d errors, summary %+v", len(flows), errs, d.Summary())
	}
	exportMs := dgs[0].time.Unix() * 1000 // every message has this export second
	const wrap = int64(1) << 32
	// near reports whether got is within 1 ms of the truth (taken to the
	// ms: the fields have ms granularity), modulo 2^32 ms unless exact.
	near := func(got, wantUs int64, exact bool) bool {
		diff := got - wantUs/1000
		if !exact {
			diff = ((diff%wrap)+wrap+wrap/2)%wrap - wrap/2
		}
		return diff >= -1 && diff <= 1
	}
	recent := 0
	for i := range flows {
		f := &flows[i]
		tr, ok := truth[key{f.SrcAddr, f.DstAddr, f.SrcPort, f.DstPort, f.Proto}]
		if !ok {
			t.Errorf("flow %d (%v:%d > %v:%d) is not in the input", i, f.SrcAddr, f.SrcPort, f.DstAddr, f.DstPort)
			continue
		}
		exact := exportMs-tr.FirstUs/1000 < wrap-maxFutureSkewMs
		if exact {
			recent++
		}
		if !near(f.Start, tr.FirstUs, exact) {
			t.Errorf("flow %d (%v:%d > %v:%d): start %s, truth %s", i, f.SrcAddr, f.SrcPort, f.DstAddr, f.DstPort,
				time.UnixMilli(f.Start).UTC().Format(time.RFC3339Nano), time.UnixMicro(tr.FirstUs).UTC().Format(time.RFC3339Nano))
		}
		// An end whose 49.7-day alias falls before the start's is clamped
		// to the start; a flow of the input lasting days (softflowd never
		// expired it) can do that.
		if f.End != f.Start || tr.LastUs-tr.FirstUs < 1000 {
			if !near(f.End, tr.LastUs, exact) {
				t.Errorf("flow %d (%v:%d > %v:%d): end %s, truth %s", i, f.SrcAddr, f.SrcPort, f.DstAddr, f.DstPort,
					time.UnixMilli(f.End).UTC().Format(time.RFC3339Nano), time.UnixMicro(tr.LastUs).UTC().Format(time.RFC3339Nano))
			}
		}
		if f.Start > exportMs+maxFutureSkewMs || f.Start < exportMs-wrap {
			t.Errorf("flow %d: start %d ms from the export", i, f.Start-exportMs)
		}
	}
	if recent != 14 {
		t.Errorf("%d flows within 49.7 days of the export, want the 14 of the loopback capture", recent)
	}
}

// TestRouterOSBootTimeBound: RouterOS-shaped IPFIX without IE 160 (the
// netflowtest encoder, which knows the true times) decoded with the boot
// time estimate of routeros.go. The bound documented there: every flow is
// late by the same error e, 0 <= e < d + 1 s, where d is the shortest delay
// between a flow's end and its export among the records seen; durations
// are exact.
func TestRouterOSBootTimeBound(t *testing.T) {
	model, err := netflowtest.NewModel(netflowtest.ModelConfig{Seed: 3, Subscribers: 100})
	if err != nil {
		t.Fatal(err)
	}
	boot := tNow.Add(-17 * 24 * time.Hour).Add(123 * time.Millisecond)
	enc, err := netflowtest.NewEncoder(netflowtest.EncoderConfig{Version: netflowtest.IPFIX, BootTime: boot})
	if err != nil {
		t.Fatal(err)
	}
	d := New(DefaultConfig())
	var got, want []store.Flow
	minDelay := int64(1 << 62)
	for step := range 20 {
		// Export instants with a sub-second part; the flows ended 40 ms to
		// 15 s before (the model's flows end at the export instant or
		// before: shift them to know the delay).
		now := tNow.Add(time.Duration(step)*1500*time.Millisecond + 370*time.Millisecond)
		flows := model.AppendFlows(nil, 40, now)
		for i := range flows {
			delay := int64(40 + (i*997+step*131)%15000)
			dur := flows[i].End - flows[i].Start
			flows[i].End = now.UnixMilli() - delay
			flows[i].Start = flows[i].End - dur
			minDelay = min(minDelay, delay)
		}
		for rest := flows; len(rest) > 0; {
			pkt, n := enc.AppendPacket(nil, rest, now)
			want = append(want, rest[:n]...)
			rest = rest[n:]
			got, err = d.Decode(got, exporterA, pkt, now)
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d flows decoded, %d sent", len(got), len(want))
	}
	// The estimate converges: the error of the last flows is the final one.
	final := got[len(got)-1].End - want[len(want)-1].End
	if final < 0 || final >= minDelay+1000 {
		t.Errorf("final error %d ms, want 0 <= e < %d", final, minDelay+1000)
	}
	for i := range got {
		e := got[i].End - want[i].End
		if e < 0 || e >= 15_000+1000 {
			t.Fatalf("flow %d: error %d ms", i, e)
		}
		if got[i].End-got[i].Start != want[i].End-want[i].Start {
			t.Errorf("flow %d: duration %d ms, want %d", i, got[i].End-got[i].Start, want[i].End-want[i].Start)
		}
	}
	t.Logf("errors: first %d ms, final %d ms (shortest export delay %d ms)", got[0].End-want[0].End, final, minDelay)
}

// TestMikroTikIPFIXTimes: the RouterOS 6.39.2 capture (IE 21/22, no IE 160)
// no longer puts every flow at the export second. Per routeros.go, the
// boot time estimate makes the latest record end 1 s after the export
// second (the error is less than 1 s plus the shortest export delay), and
// every other record keeps its distance from it.
func TestMikroTikIPFIXTimes(t *testing.T) {
	dir := testutil.CapturesDir(t)
	dgs := readCapture(t, filepath.Join(dir, "logstash-codec-netflow", "ipfix-mikrotik-routeros-6-39-2.pcap"))
	flows, _, _ := decodeAll(t, DefaultConfig(), dgs)
	const exportSec = 1500481088 // both data messages
	var latest int64
	ends := map[int64]bool{}
	for i := range flows {
		f := &flows[i]
		latest = max(latest, f.End)
		ends[f.End] = true
		if f.End > exportSec*1000+1000 || f.End < exportSec*1000-5000 || f.End < f.Start {
			t.Errorf("flow %d: %d..%d", i, f.Start, f.End)
		}
	}
	// Uptimes (10 ms steps) 2666794170 .. 2666795750: the latest ends at
	// the bound, the earliest 1.58 s before it.
	if latest != exportSec*1000+1000 || !ends[latest-1580] || len(ends) < 8 {
		t.Errorf("latest end %d, %d distinct ends", latest-exportSec*1000, len(ends))
	}
}

// TestNetScalerTemplatesLiveForTheFile: the NetScaler capture sends its
// template, then its data 15 days later (capture time): with NoExpiry (as
// `flowbox decode` sets it) the 3 flows decode; with the default TTL the
// template has expired and the data set waits in vain.
func TestNetScalerTemplatesLiveForTheFile(t *testing.T) {
	dgs := readCapture(t, filepath.Join(testutil.CapturesDir(t), "logstash-codec-netflow", "ipfix-netscaler-with-variable-length-fields.pcap"))
	cfg := DefaultConfig()
	cfg.TemplateTTL, cfg.PendingTTL = NoExpiry, NoExpiry
	flows, errs, d := decodeAll(t, cfg, dgs)
	var bytes, packets uint64
	for _, f := range flows {
		bytes += f.Bytes
		packets += f.Packets
	}
	if len(flows) != 3 || errs != 0 || bytes != 3106 || packets != 5 {
		t.Errorf("with NoExpiry: %d flows (%d bytes, %d packets), %d errors; want 3 (3106, 5)", len(flows), bytes, packets, errs)
	}
	// (Set 280 has no template in the file: it waits, as for tshark.)
	if s := d.Summary(); s.TemplatesExpired != 0 || s.PendingSets != 1 {
		t.Errorf("with NoExpiry: %+v", s)
	}
	flows, _, d = decodeAll(t, DefaultConfig(), dgs)
	if s := d.Summary(); len(flows) != 0 || s.TemplatesExpired != 7 || s.PendingSets != 4 {
		t.Errorf("with the default TTL: %d flows, %+v", len(flows), s)
	}
}
