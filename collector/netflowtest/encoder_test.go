package netflowtest

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

var t0 = time.Date(2026, 3, 14, 21, 0, 0, 0, time.UTC)

func testFlows(t testing.TB, n int, ipv6 float64) []store.Flow {
	t.Helper()
	m, err := NewModel(ModelConfig{Seed: 7, Subscribers: 200, IPv6Share: ipv6})
	if err != nil {
		t.Fatal(err)
	}
	return m.AppendFlows(nil, n, t0)
}

func only(flows []store.Flow, v6 bool) []store.Flow {
	var out []store.Flow
	for _, f := range flows {
		if is6(&f) == v6 {
			out = append(out, f)
		}
	}
	return out
}

func newEnc(t testing.TB, cfg EncoderConfig) *Encoder {
	t.Helper()
	if cfg.BootTime.IsZero() {
		cfg.BootTime = t0.Add(-30 * 24 * time.Hour)
	}
	e, err := NewEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The IPFIX template message is byte for byte the one RouterOS 6.39.2 sent
// (logstash-codec-netflow's ipfix_test_mikrotik_tpl.dat), apart from the
// header's export time and sequence number.
func TestIPFIXTemplatesMatchRouterOS6392(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(testutil.CapturesDir(t), "logstash-codec-netflow", "dat", "ipfix_test_mikrotik_tpl.dat"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnc(t, EncoderConfig{Version: IPFIX})
	pkt, n := e.AppendPacket(nil, testFlows(t, 10, 0), t0)
	if n != 0 {
		t.Fatalf("first IPFIX message carried %d records, want a template-only message", n)
	}
	if !bytes.Equal(pkt[16:], want[16:]) {
		t.Fatalf("template sets differ:\ngot  %x\nwant %x", pkt[16:], want[16:])
	}
	if !bytes.Equal(pkt[:4], want[:4]) || binary.BigEndian.Uint32(pkt[12:]) != 0 {
		t.Fatalf("header %x, want version 10, length %d, domain 0", pkt[:16], len(want))
	}
}

// RouterOS fills a 1472-byte budget: 28 unpadded 51-byte IPv4 records or 18
// 79-byte IPv6 records per message, as in the 6.39.2 capture; the sequence
// number counts data records and template messages do not advance it.
func TestIPFIXRecordsAndSequence(t *testing.T) {
	flows := testFlows(t, 3000, 0.3)
	v4, v6 := only(flows, false), only(flows, true)
	e := newEnc(t, EncoderConfig{Version: IPFIX})
	tpl, _ := e.AppendPacket(nil, v4, t0)
	if binary.BigEndian.Uint32(tpl[8:]) != 0 {
		t.Fatalf("template message sequence %d, want 0", binary.BigEndian.Uint32(tpl[8:]))
	}
	pkt, n := e.AppendPacket(nil, v4, t0)
	if n != 28 || len(pkt) != 16+4+28*51 || binary.BigEndian.Uint16(pkt[2:]) != uint16(len(pkt)) {
		t.Fatalf("IPv4 message: %d records in %d bytes, want 28 in %d", n, len(pkt), 16+4+28*51)
	}
	if id := binary.BigEndian.Uint16(pkt[16:]); id != TemplateIPFIXIPv4 {
		t.Fatalf("data set id %d, want 258", id)
	}
	pkt, n = e.AppendPacket(nil, v6, t0)
	if n != 18 || len(pkt) != 16+4+18*79 {
		t.Fatalf("IPv6 message: %d records in %d bytes, want 18 in %d", n, len(pkt), 16+4+18*79)
	}
	if seq := binary.BigEndian.Uint32(pkt[8:]); seq != 28 {
		t.Fatalf("sequence %d, want 28 (records sent before)", seq)
	}
	if len(pkt) > MaxPacketSize {
		t.Fatalf("packet of %d bytes exceeds %d", len(pkt), MaxPacketSize)
	}
	// With IE 160 (v7) the records grow by 8 bytes and carry the boot time.
	e7 := newEnc(t, EncoderConfig{Version: IPFIX, SysInitTime: true})
	e7.AppendPacket(nil, v4, t0)
	pkt, n = e7.AppendPacket(nil, v4, t0)
	if n != (1472-20)/59 || len(pkt) != 20+n*59 {
		t.Fatalf("v7 IPv4 message: %d records in %d bytes", n, len(pkt))
	}
	boot := binary.BigEndian.Uint64(pkt[20+9:])
	if boot != uint64(t0.Add(-30*24*time.Hour).UnixMilli()) {
		t.Fatalf("IE 160 = %d, want the boot time", boot)
	}
}

// hasV9Templates reports whether a v9 packet carries a template flowset.
func hasV9Templates(pkt []byte) bool {
	for off := 20; off+4 <= len(pkt); {
		id, l := binary.BigEndian.Uint16(pkt[off:]), int(binary.BigEndian.Uint16(pkt[off+2:]))
		if id == 0 {
			return true
		}
		if l < 4 {
			return false
		}
		off += l
	}
	return false
}

func TestV9TemplateRefreshAndTimeout(t *testing.T) {
	flows := only(testFlows(t, 4000, 0), false)
	e := newEnc(t, EncoderConfig{Version: V9, TemplateRefresh: 3, TemplateTimeout: time.Hour})
	var got []bool
	for i := range 8 {
		pkt, n := e.AppendPacket(nil, flows, t0)
		flows = flows[n:]
		got = append(got, hasV9Templates(pkt))
		if seq := binary.BigEndian.Uint32(pkt[12:]); seq != uint32(i) {
			t.Fatalf("packet %d has sequence %d; v9 counts packets", i, seq)
		}
		if len(pkt) > MaxPacketSize || len(pkt)%4 != 0 {
			t.Fatalf("packet %d is %d bytes", i, len(pkt))
		}
	}
	want := []bool{true, false, false, false, true, false, false, false}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("templates carried by packets %v, want %v (refresh 3: every 4th packet)", got, want)
		}
	}

	e = newEnc(t, EncoderConfig{Version: V9, TemplateRefresh: 1000, TemplateTimeout: time.Minute})
	for i, c := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {30 * time.Second, false}, {59 * time.Second, false}, {61 * time.Second, true}, {90 * time.Second, false}} {
		pkt, n := e.AppendPacket(nil, flows, t0.Add(c.at))
		flows = flows[n:]
		if hasV9Templates(pkt) != c.want {
			t.Fatalf("step %d at +%s: templates %v, want %v", i, c.at, !c.want, c.want)
		}
	}
	// A reconfiguration takes effect at once: with refresh 1, one packet
	// without templates is followed by one with them.
	e.SetTemplateSchedule(1, time.Hour)
	for i, want := range []bool{true, false, true, false} {
		pkt, n := e.AppendPacket(nil, flows, t0.Add(91*time.Second))
		flows = flows[n:]
		if hasV9Templates(pkt) != want {
			t.Fatalf("refresh 1, packet %d: templates %v, want %v", i, !want, want)
		}
	}
}

func TestV5Layout(t *testing.T) {
	flows := testFlows(t, 200, 0.5)
	e := newEnc(t, EncoderConfig{Version: V5})
	skipped := 0
	for _, f := range flows {
		if is6(&f) {
			skipped++
		}
	}
	var seqs []uint32
	total := 0
	for len(flows) > 0 {
		pkt, n := e.AppendPacket(nil, flows, t0)
		flows = flows[n:]
		if len(pkt) == 0 {
			continue
		}
		count := int(binary.BigEndian.Uint16(pkt[2:]))
		if len(pkt) != 24+48*count || count > 30 {
			t.Fatalf("v5 packet of %d bytes with count %d", len(pkt), count)
		}
		seqs = append(seqs, binary.BigEndian.Uint32(pkt[16:]))
		if seqs[len(seqs)-1] != uint32(total) {
			t.Fatalf("v5 sequence %d, want %d (flows sent before)", seqs[len(seqs)-1], total)
		}
		total += count
		// engine type/id and sampling are 0, as RouterOS sends them.
		if !bytes.Equal(pkt[20:24], []byte{0, 0, 0, 0}) {
			t.Fatalf("engine/sampling %x", pkt[20:24])
		}
	}
	st := e.Stats()
	if st.Skipped != uint64(skipped) || st.Flows != uint64(total) {
		t.Fatalf("stats %+v, want %d skipped IPv6 flows and %d flows", st, skipped, total)
	}
}

// Uptime fields are 32-bit milliseconds since boot and wrap after ~49.7
// days; a flow that started before the wrap has a larger FIRST_SWITCHED than
// the header's sysUptime.
func TestUptimeWrap(t *testing.T) {
	boot := t0.Add(-time.Duration(1<<32)*time.Millisecond - 2*time.Second)
	e := newEnc(t, EncoderConfig{Version: V9, BootTime: boot})
	f := store.Flow{SrcAddr: netip.MustParseAddr("100.64.0.10"), DstAddr: netip.MustParseAddr("1.1.1.1"),
		Start: t0.Add(-5 * time.Second).UnixMilli(), End: t0.Add(-time.Second).UnixMilli(), Bytes: 100, Packets: 1}
	pkt, _ := e.AppendPacket(nil, []store.Flow{f}, t0)
	up := binary.BigEndian.Uint32(pkt[4:])
	if up != 2000 {
		t.Fatalf("sysUptime %d, want 2000 (wrapped)", up)
	}
	rec := pkt[20+len(e.tplBytes)+4:]
	first, last := binary.BigEndian.Uint32(rec), binary.BigEndian.Uint32(rec[4:])
	if first != uint32(1<<32-3000) || last != 1000 {
		t.Fatalf("first %d last %d, want %d and 1000", first, last, uint32(1<<32-3000))
	}
	if up-first != 5000 {
		t.Fatalf("modular age %d ms, want 5000", up-first)
	}
}

func TestEncoderConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  EncoderConfig
		want string
	}{
		{EncoderConfig{Version: 7}, "version: 7 is not one of 1, 5, 9, 10"},
		{EncoderConfig{Version: 9, TemplateRefresh: -1}, "template-refresh: -1 is outside 0..65536"},
		{EncoderConfig{Version: 9, TemplateTimeout: -time.Second}, "template-timeout: must not be negative"},
		{EncoderConfig{Version: 9, MaxPacketSize: 100}, "max-packet-size: 100 is outside 256..65507"},
	} {
		_, err := NewEncoder(c.cfg)
		if err == nil || err.Error() != "invalid encoder config: "+c.want {
			t.Errorf("NewEncoder(%+v) = %v, want %q", c.cfg, err, c.want)
		}
	}
}

func TestAppendPacketAllocatesNothing(t *testing.T) {
	flows := testFlows(t, 2000, 0.1)
	buf := make([]byte, 0, MaxPacketSize)
	for _, v := range []int{V1, V5, V9, IPFIX} {
		e := newEnc(t, EncoderConfig{Version: v})
		i := 0
		allocs := testing.AllocsPerRun(200, func() {
			_, n := e.AppendPacket(buf[:0], flows[i:], t0)
			i += n
			if i >= len(flows)-100 {
				i = 0
			}
		})
		if allocs != 0 {
			t.Errorf("version %d: %.1f allocations per packet, want 0", v, allocs)
		}
	}
}

func BenchmarkAppendPacket(b *testing.B) {
	flows := testFlows(b, 1<<14, 0.1)
	buf := make([]byte, 0, MaxPacketSize)
	for _, c := range []struct {
		name string
		v    int
	}{{"v5", V5}, {"v9", V9}, {"ipfix", IPFIX}} {
		b.Run(c.name, func(b *testing.B) {
			e := newEnc(b, EncoderConfig{Version: c.v})
			b.ReportAllocs()
			i, sent := 0, 0
			for b.Loop() {
				_, n := e.AppendPacket(buf[:0], flows[i:], t0)
				i += n
				sent += n
				if i >= len(flows)-64 {
					i = 0
				}
			}
			b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "flows/s")
		})
	}
}
