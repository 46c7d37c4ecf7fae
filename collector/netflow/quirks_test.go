package netflow

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// dec decodes one datagram and fails the test on an error.
func dec(t *testing.T, d *Decoder, from netip.AddrPort, b []byte, now time.Time) []store.Flow {
	t.Helper()
	flows, err := d.Decode(nil, from, b, now)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return flows
}

func statsOf(t testing.TB, d *Decoder, a netip.AddrPort) ExporterStats {
	t.Helper()
	for _, s := range d.Stats() {
		if s.Exporter == a.Addr() {
			return s
		}
	}
	t.Fatalf("no stats for %v", a)
	return ExporterStats{}
}

const secs = 1_700_000_000 // export time of hand-built datagrams

var exportMs = int64(secs) * 1000

// v9 template 300: first, last, bytes, packets, src, dst.
var v9Simple = []fld{{22, 4, 0}, {21, 4, 0}, {1, 4, 0}, {2, 4, 0}, {8, 4, 0}, {12, 4, 0}}

func v9SimpleRec(first, last uint32, bytes uint64) []byte {
	return cat(u(4, uint64(first)), u(4, uint64(last)), u(4, bytes), u(4, 1), ip4("10.0.0.1"), ip4("10.0.0.2"))
}

func TestUptimeWrap(t *testing.T) {
	// sysUptime wrapped to 500 ms; the flow started 756 ms earlier (before
	// the wrap, 0xffffff00) and ended at uptime 100.
	d := New(DefaultConfig())
	pkt := v9Packet(500, secs, 1, 0, set(0, 0, tmpl(300, v9Simple...)), set(300, 0, v9SimpleRec(0xffffff00, 100, 10)))
	f := dec(t, d, exporterA, pkt, tNow)
	if len(f) != 1 || f[0].Start != exportMs-756 || f[0].End != exportMs-400 {
		t.Fatalf("got %+v, want start %d end %d", f, exportMs-756, exportMs-400)
	}
	// A last switched slightly ahead of sysUptime (exporter clock jitter)
	// is a small future time, not 49.7 days in the past.
	f = dec(t, d, exporterA, v9Packet(1000, secs, 2, 0, set(300, 0, v9SimpleRec(900, 1002, 10))), tNow)
	if f[0].End != exportMs+2 || f[0].Start != exportMs-100 {
		t.Errorf("ahead of uptime: start %d end %d", f[0].Start-exportMs, f[0].End-exportMs)
	}
}

func TestFutureAndReversedTimesClamped(t *testing.T) {
	d := New(DefaultConfig())
	// v9: last switched one hour after the export: clamped to the export
	// time. first after last: end clamped to start.
	pkt := v9Packet(10_000_000, secs, 1, 0, set(0, 0, tmpl(300, v9Simple...)),
		set(300, 0, v9SimpleRec(9_000_000, 10_000_000+3_600_000, 1), v9SimpleRec(9_500_000, 9_000_000, 2)))
	f := dec(t, d, exporterA, pkt, time.UnixMilli(exportMs))
	if f[0].Start != exportMs-1_000_000 || f[0].End != exportMs {
		t.Errorf("future end: start %d end %d", f[0].Start-exportMs, f[0].End-exportMs)
	}
	if f[1].Start != exportMs-500_000 || f[1].End != f[1].Start {
		t.Errorf("end before start: start %d end %d", f[1].Start-exportMs, f[1].End-exportMs)
	}
	// IPFIX absolute ms times beyond the receive time (router clock ahead
	// of ours by an hour): clamped to the receive time.
	fields := []fld{{152, 8, 0}, {153, 8, 0}, {1, 4, 0}}
	msg := ipfixMessage(secs+3600, 0, 0, set(2, 0, tmpl(400, fields...)),
		set(400, 0, cat(u(8, uint64(exportMs+3_599_000)), u(8, uint64(exportMs+3_600_000)), u(4, 5))))
	now := time.UnixMilli(exportMs)
	f = dec(t, d, exporterB, msg, now)
	if f[0].Start != exportMs || f[0].End != exportMs {
		t.Errorf("future IPFIX flow: start %d end %d, want both %d", f[0].Start, f[0].End, exportMs)
	}
	// Within the skew: kept.
	msg = ipfixMessage(secs, 1, 0, set(400, 0, cat(u(8, uint64(exportMs-1000)), u(8, uint64(exportMs+2000)), u(4, 5))))
	f = dec(t, d, exporterB, msg, now)
	if f[0].Start != exportMs-1000 || f[0].End != exportMs+2000 {
		t.Errorf("small skew: start %d end %d", f[0].Start-exportMs, f[0].End-exportMs)
	}
}

func TestIPFIXTimeFields(t *testing.T) {
	d := New(DefaultConfig())
	ntp := func(ms int64) uint64 {
		sec := uint64(ms/1000 + ntpEpochOffset)
		return sec<<32 | uint64(ms%1000)<<32/1000
	}
	cases := []struct {
		name   string
		fields []fld
		rec    []byte
		start  int64
		end    int64
	}{
		{"seconds 150/151", []fld{{150, 4, 0}, {151, 4, 0}}, cat(u(4, secs-60), u(4, secs-30)), exportMs - 60_000, exportMs - 30_000},
		{"µs NTP 154/155", []fld{{154, 8, 0}, {155, 8, 0}}, cat(u(8, ntp(exportMs-5000)), u(8, ntp(exportMs-4000))), exportMs - 5000, exportMs - 4000},
		{"ns NTP 156/157", []fld{{156, 8, 0}, {157, 8, 0}}, cat(u(8, ntp(exportMs-7250)), u(8, ntp(exportMs-250))), exportMs - 7250, exportMs - 250},
		{"start + duration ms 161", []fld{{152, 8, 0}, {161, 4, 0}}, cat(u(8, uint64(exportMs-9000)), u(4, 4000)), exportMs - 9000, exportMs - 5000},
		{"end + duration µs 162", []fld{{153, 8, 0}, {162, 4, 0}}, cat(u(8, uint64(exportMs-1000)), u(4, 3_000_000)), exportMs - 4000, exportMs - 1000},
		{"uptime + 160 in record", []fld{{22, 4, 0}, {21, 4, 0}, {160, 8, 0}}, cat(u(4, 1000), u(4, 3000), u(8, uint64(exportMs-100_000))), exportMs - 99_000, exportMs - 97_000},
		{"no time at all", []fld{{1, 4, 0}}, u(4, 7), exportMs, exportMs},
	}
	for i, c := range cases {
		id := uint16(500 + i)
		f := dec(t, d, exporterA, ipfixMessage(secs, 0, 0, set(2, 0, tmpl(id, c.fields...)), set(id, 0, c.rec)), tNow.Add(time.Hour*24*365*10))
		if len(f) != 1 || f[0].Start != c.start || f[0].End != c.end {
			t.Errorf("%s: got %d..%d, want %d..%d", c.name, f[0].Start-exportMs, f[0].End-exportMs, c.start-exportMs, c.end-exportMs)
		}
	}
}

// TestRouterOSUptimeTimes: IPFIX 21/22 without systemInitTimeMilliseconds
// (RouterOS 6) are placed on the exporter's boot time estimated from the
// largest end uptime per export second (routeros.go): durations are kept,
// the estimate only moves earlier, an uptime reset starts it over (a
// restart), the 49.7-day uptime wrap does not; once an options record
// gives IE 160, times are absolute.
func TestRouterOSUptimeTimes(t *testing.T) {
	d := New(DefaultConfig())
	later := tNow.Add(time.Hour) // received late: no clamping to the receive time
	fields := []fld{{22, 4, 0}, {21, 4, 0}, {1, 4, 0}}
	rec := func(first, last uint32) []byte { return cat(u(4, uint64(first)), u(4, uint64(last)), u(4, 100)) }
	const x = 2_666_799_170
	// The latest record bounds the boot time: it ends at most 1 s after
	// the export second; the other keeps its place relative to it.
	f := dec(t, d, exporterA, ipfixMessage(secs, 0, 0, set(2, 0, tmpl(258, fields...)), set(258, 0, rec(x-8000, x-3000), rec(x-5000, x))), later)
	if f[1].End != exportMs+1000 || f[1].Start != exportMs-4000 || f[0].End != exportMs-2000 || f[0].Start != exportMs-7000 {
		t.Errorf("first message: %d..%d and %d..%d", f[0].Start-exportMs, f[0].End-exportMs, f[1].Start-exportMs, f[1].End-exportMs)
	}
	// 10 s later, a record whose end is 400 ms later than the estimate
	// allows: the estimate moves 400 ms earlier (never later).
	f = dec(t, d, exporterA, ipfixMessage(secs+10, 2, 0, set(258, 0, rec(x+10_000, x+10_400), rec(x+9_000, x+9_500))), later)
	if f[0].End != exportMs+11_000 || f[1].End != exportMs+10_100 {
		t.Errorf("refined: ends %d and %d, want 11000 and 10100", f[0].End-exportMs, f[1].End-exportMs)
	}
	f = dec(t, d, exporterA, ipfixMessage(secs+20, 4, 0, set(258, 0, rec(x+15_000, x+15_000))), later)
	if f[0].End != exportMs+15_600 {
		t.Errorf("a record exported 5 s after its end: end %d, want 15600", f[0].End-exportMs)
	}
	if s := statsOf(t, d, exporterA); s.Restarts != 0 {
		t.Errorf("%d restarts", s.Restarts)
	}
	// The router restarted: uptimes start over.
	f = dec(t, d, exporterA, ipfixMessage(secs+100, 0, 0, set(258, 0, rec(1000, 30_000))), later)
	if f[0].End != exportMs+101_000 || f[0].Start != exportMs+72_000 {
		t.Errorf("after the restart: %d..%d", f[0].Start-exportMs, f[0].End-exportMs)
	}
	if s := statsOf(t, d, exporterA); s.Restarts != 1 {
		t.Errorf("%d restarts, want 1", s.Restarts)
	}
	// The uptime wraps (49.7 days) between two messages and inside a flow:
	// the estimate holds, the duration is kept.
	d = New(DefaultConfig())
	dec(t, d, exporterA, ipfixMessage(secs, 0, 0, set(2, 0, tmpl(258, fields...)), set(258, 0, rec(0xffffff00-5000, 0xffffff00))), later)
	f = dec(t, d, exporterA, ipfixMessage(secs+1, 1, 0, set(258, 0, rec(0xffffff00, 0x100))), later)
	if f[0].End-f[0].Start != 0x200 || f[0].End != exportMs+1000+0x200 {
		t.Errorf("wrap: %d..%d", f[0].Start-exportMs, f[0].End-exportMs)
	}
	if s := statsOf(t, d, exporterA); s.Restarts != 0 {
		t.Errorf("the wrap counted %d restarts", s.Restarts)
	}
	// An options record with IE 160 (scope: meteringProcessId 143).
	d = New(DefaultConfig())
	dec(t, d, exporterA, ipfixMessage(secs, 0, 0, set(2, 0, tmpl(258, fields...))), later)
	boot := exportMs - 2_666_800_000
	opt := ipfixMessage(secs, 2, 0,
		set(3, 0, ipfixOptTmpl(600, []fld{{143, 4, 0}}, []fld{{160, 8, 0}})),
		set(600, 0, cat(u(4, 1), u(8, uint64(boot)))))
	dec(t, d, exporterA, opt, later)
	f = dec(t, d, exporterA, ipfixMessage(secs, 3, 0, set(258, 0, rec(2_666_794_170, 2_666_799_170))), later)
	if f[0].Start != boot+2_666_794_170 || f[0].End != boot+2_666_799_170 {
		t.Errorf("with 160 from options: %d..%d", f[0].Start-exportMs, f[0].End-exportMs)
	}
}

func TestSamplingIntervalFieldLittleEndian(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want uint64
	}{
		{[]byte{0xae, 0x08, 0, 0}, 2222},      // RouterOS 1-in-2222, little-endian
		{[]byte{0x00, 0x04, 0, 0}, 1024},      // little-endian 1024
		{[]byte{0, 0, 0x03, 0xe8}, 1000},      // big-endian, left alone
		{[]byte{0, 0x01, 0x86, 0xa0}, 100000}, // big-endian above 65535 with low bits set
		{[]byte{0x03, 0xe8}, 1000},            // 2 bytes: big-endian
	} {
		if got := samplingIntervalField(c.in); got != c.want {
			t.Errorf("samplingIntervalField(% x) = %d, want %d", c.in, got, c.want)
		}
	}
}

// TestRouterOSLittleEndianSampling: RouterOS puts IE 34 in the data
// template, little-endian.
func TestRouterOSLittleEndianSampling(t *testing.T) {
	d := New(DefaultConfig())
	fields := append([]fld{{34, 4, 0}}, v9Simple...)
	rec := cat([]byte{0xae, 0x08, 0, 0}, v9SimpleRec(1, 2, 3))
	f := dec(t, d, exporterA, v9Packet(10, secs, 1, 0, set(0, 0, tmpl(256, fields...)), set(256, 0, rec)), tNow)
	if f[0].SamplingRate != 2222 || f[0].Bytes != 3 {
		t.Errorf("rate %d bytes %d, want 2222 and raw 3 (not scaled)", f[0].SamplingRate, f[0].Bytes)
	}
}

func TestSamplerOptions(t *testing.T) {
	d := New(DefaultConfig())
	// v9 sampler options (Cisco style): scope System, FLOW_SAMPLER_ID (48,
	// 1 byte), FLOW_SAMPLER_MODE (49), FLOW_SAMPLER_RANDOM_INTERVAL (50).
	opt := v9Packet(10, secs, 1, 7,
		set(1, 2, v9OptTmpl(257, []fld{{1, 4, 0}}, []fld{{48, 1, 0}, {49, 1, 0}, {50, 4, 0}})),
		set(257, 2, cat(u(4, 0), u(1, 1), u(1, 2), u(4, 100)), cat(u(4, 0), u(1, 2), u(1, 2), u(4, 1000))))
	if f := dec(t, d, exporterA, opt, tNow); len(f) != 0 {
		t.Fatalf("options records returned as flows: %d", len(f))
	}
	fields := append([]fld{{48, 1, 0}}, v9Simple...)
	data := v9Packet(10, secs, 2, 7, set(0, 0, tmpl(300, fields...)),
		set(300, 0, cat(u(1, 2), v9SimpleRec(1, 2, 3)), cat(u(1, 1), v9SimpleRec(1, 2, 3)), cat(u(1, 9), v9SimpleRec(1, 2, 3))))
	f := dec(t, d, exporterA, data, tNow)
	if f[0].SamplingRate != 1000 || f[1].SamplingRate != 100 || f[2].SamplingRate != 0 {
		t.Errorf("rates %d %d %d, want 1000 100 0 (unknown sampler, two samplers: no single rate)", f[0].SamplingRate, f[1].SamplingRate, f[2].SamplingRate)
	}
	if s := statsOf(t, d, exporterA); s.OptionsRecords != 2 {
		t.Errorf("%d options records, want 2", s.OptionsRecords)
	}
	// Another source id of the same exporter has its own table.
	f = dec(t, d, exporterA, v9Packet(10, secs, 1, 8, set(0, 0, tmpl(300, fields...)), set(300, 0, cat(u(1, 2), v9SimpleRec(1, 2, 3)))), tNow)
	if f[0].SamplingRate != 0 {
		t.Errorf("source id 8 used source 7's sampler: %d", f[0].SamplingRate)
	}
	// IPFIX: an exporter-wide rate from 305/306 (1 in 100) without a
	// selector id applies to every flow of the domain.
	ipfixOpt := ipfixMessage(secs, 0, 3,
		set(3, 0, ipfixOptTmpl(700, []fld{{149, 4, 0}}, []fld{{305, 4, 0}, {306, 4, 0}})),
		set(700, 0, cat(u(4, 3), u(4, 1), u(4, 99))),
		set(2, 0, tmpl(701, []fld{{1, 4, 0}}...)), set(701, 0, u(4, 42)))
	f = dec(t, d, exporterB, ipfixOpt, tNow)
	if len(f) != 1 || f[0].SamplingRate != 100 {
		t.Errorf("IPFIX 305/306 rate: %+v", f)
	}
	// A sampler id (302) in the options scope and in the flows.
	sel := ipfixMessage(secs, 1, 4,
		set(3, 0, ipfixOptTmpl(702, []fld{{302, 2, 0}}, []fld{{309, 4, 0}, {310, 4, 0}})),
		set(702, 0, cat(u(2, 5), u(4, 1), u(4, 512))),
		set(2, 0, tmpl(703, []fld{{302, 2, 0}, {1, 4, 0}}...)), set(703, 0, cat(u(2, 5), u(4, 42))))
	f = dec(t, d, exporterB, sel, tNow)
	if len(f) != 1 || f[0].SamplingRate != 512 {
		t.Errorf("IPFIX selector 309/310 rate: %+v", f)
	}
}

func TestSamplingV5AndOverride(t *testing.T) {
	v5 := func(sampling uint16) []byte {
		b := be.AppendUint16(nil, 5)
		b = be.AppendUint16(b, 1)
		b = be.AppendUint32(b, 1000)
		b = be.AppendUint32(b, secs)
		b = be.AppendUint32(b, 0)
		b = be.AppendUint32(b, 77)
		b = append(b, 1, 2)
		b = be.AppendUint16(b, sampling)
		rec := make([]byte, 48)
		copy(rec, ip4("10.1.1.1"))
		copy(rec[4:], ip4("10.1.1.2"))
		be.PutUint32(rec[16:], 4)   // packets
		be.PutUint32(rec[20:], 400) // bytes
		be.PutUint32(rec[24:], 500)
		be.PutUint32(rec[28:], 900)
		rec[38] = 17
		return append(b, rec...)
	}
	d := New(DefaultConfig())
	f := dec(t, d, exporterA, v5(0x4000|100), tNow)
	if f[0].SamplingRate != 100 || f[0].Domain != 0x0102 || f[0].Bytes != 400 || f[0].Start != exportMs-500 || f[0].End != exportMs-100 {
		t.Errorf("v5: %+v", toGolden(&f[0]))
	}
	cfg := DefaultConfig()
	cfg.SamplingOverride = map[netip.Addr]uint32{exporterA.Addr(): 64}
	d = New(cfg)
	if f := dec(t, d, exporterA, v5(0x4000|100), tNow); f[0].SamplingRate != 64 {
		t.Errorf("override: rate %d, want 64", f[0].SamplingRate)
	}
	if f := dec(t, d, exporterB, v5(0), tNow); f[0].SamplingRate != 0 {
		t.Errorf("other exporter: rate %d, want 0", f[0].SamplingRate)
	}
}

func TestIPFIXWithdrawal(t *testing.T) {
	d := New(DefaultConfig())
	fields := []fld{{8, 4, 0}, {1, 4, 0}}
	rec := cat(ip4("10.0.0.1"), u(4, 10))
	dec(t, d, exporterA, ipfixMessage(secs, 0, 0,
		set(2, 0, tmpl(256, fields...), tmpl(257, fields...)),
		set(3, 0, ipfixOptTmpl(258, []fld{{149, 4, 0}}, []fld{{305, 4, 0}}))), tNow)
	if s := statsOf(t, d, exporterA); s.Templates != 3 {
		t.Fatalf("%d templates, want 3", s.Templates)
	}
	// Withdraw 256 only.
	dec(t, d, exporterA, ipfixMessage(secs, 0, 0, set(2, 0, cat(u(2, 256), u(2, 0)))), tNow)
	f := dec(t, d, exporterA, ipfixMessage(secs, 0, 0, set(256, 0, rec), set(257, 0, rec)), tNow)
	if len(f) != 1 || f[0].TemplateID != 257 {
		t.Errorf("after withdrawing 256: %d flows", len(f))
	}
	// Withdraw all data templates (template id 2 in set 2): the options
	// template stays.
	dec(t, d, exporterA, ipfixMessage(secs, 0, 0, set(2, 0, cat(u(2, 2), u(2, 0)))), tNow)
	if f := dec(t, d, exporterA, ipfixMessage(secs, 0, 0, set(257, 0, rec)), tNow); len(f) != 0 {
		t.Errorf("after withdrawing all: %d flows", len(f))
	}
	if s := statsOf(t, d, exporterA); s.Templates != 1 {
		t.Errorf("%d templates after withdrawing all data templates, want 1", s.Templates)
	}
	dec(t, d, exporterA, ipfixMessage(secs, 0, 0, set(3, 0, cat(u(2, 3), u(2, 0)))), tNow)
	if s := statsOf(t, d, exporterA); s.Templates != 0 {
		t.Errorf("%d templates after withdrawing all options templates, want 0", s.Templates)
	}
	// Redefinition replaces: 257 now has bytes first.
	// The data set that waited for 257 is decoded with the new layout
	// (its address reads as the counter 0x0a000001).
	f = dec(t, d, exporterA, ipfixMessage(secs, 0, 0, set(2, 0, tmpl(257, fld{1, 4, 0}, fld{8, 4, 0}))), tNow)
	if len(f) != 1 || f[0].Bytes != 0x0a000001 {
		t.Errorf("waiting set on redefinition: %+v", f)
	}
	f = dec(t, d, exporterA, ipfixMessage(secs, 0, 0, set(257, 0, cat(u(4, 99), ip4("10.9.9.9")))), tNow)
	if len(f) != 1 || f[0].Bytes != 99 || f[0].SrcAddr.String() != "10.9.9.9" {
		t.Errorf("redefined template: %+v", f)
	}
}

func TestTemplateTTLAndLimit(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TemplateTTL = time.Minute
	cfg.MaxTemplates = 3
	cfg.MaxTemplatesPerDomain = 2
	d := New(cfg)
	fields := []fld{{1, 4, 0}}
	// A third template in one domain takes the place of the domain's
	// oldest, and the datagram says so.
	_, err := d.Decode(nil, exporterA, ipfixMessage(secs, 0, 0, set(2, 0, tmpl(256, fields...), tmpl(257, fields...), tmpl(258, fields...))), tNow)
	var de *Error
	if !errors.As(err, &de) || de.Reason != ReasonTemplateLimit {
		t.Fatalf("third template of a domain: err %v, want template_limit", err)
	}
	if s := statsOf(t, d, exporterA); s.Templates != 2 || s.TemplatesEvicted != 1 || s.Errors[ReasonTemplateLimit] != 1 {
		t.Errorf("exporter A stats %+v", s)
	}
	if f := dec(t, d, exporterA, ipfixMessage(secs, 0, 0, set(256, 0, u(4, 1)), set(258, 0, u(4, 2))), tNow); len(f) != 1 || f[0].TemplateID != 258 {
		t.Errorf("after the quota: %+v", f)
	}
	// Another domain of A has its own quota, within the cache's bound.
	dec(t, d, exporterA, ipfixMessage(secs, 0, 9, set(2, 0, tmpl(256, fields...))), tNow)
	// The cache is full (3): B's template takes the place of the oldest
	// template of A (who holds the most), not of B's; B is not at fault.
	f := dec(t, d, exporterB, ipfixMessage(secs, 0, 0, set(2, 0, tmpl(256, fields...)), set(256, 0, u(4, 7))), tNow.Add(10*time.Second))
	if len(f) != 1 || f[0].Bytes != 7 {
		t.Errorf("exporter B with a full cache: %+v", f)
	}
	if a, b := statsOf(t, d, exporterA), statsOf(t, d, exporterB); a.Templates != 2 || a.TemplatesEvicted != 2 || b.Templates != 1 || b.TemplatesEvicted != 0 || len(b.Errors) != 0 {
		t.Errorf("A %+v\nB %+v", a, b)
	}
	// Refreshing does not count against the bound, and moves 258 after
	// 257... which is gone: A holds 258 (domain 0) and 256 (domain 9).
	dec(t, d, exporterA, ipfixMessage(secs, 0, 0, set(2, 0, tmpl(258, fields...))), tNow.Add(30*time.Second))
	// After the TTL, A's domain-9 template (not refreshed) and B's have
	// expired; 258 is still live.
	f = dec(t, d, exporterA, ipfixMessage(secs, 0, 0, set(258, 0, u(4, 1))), tNow.Add(75*time.Second))
	if len(f) != 1 || f[0].TemplateID != 258 {
		t.Errorf("after TTL: %+v", f)
	}
	if f := dec(t, d, exporterA, ipfixMessage(secs, 0, 9, set(256, 0, u(4, 1))), tNow.Add(75*time.Second)); len(f) != 0 {
		t.Errorf("expired template used: %+v", f)
	}
	if s := statsOf(t, d, exporterA); s.TemplatesExpired != 1 || s.Templates != 1 {
		t.Errorf("exporter A after TTL: %+v", s)
	}
	if err := d.checkInvariants(); err != nil {
		t.Error(err)
	}
}

func TestPendingDataBeforeTemplate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPending = 2
	d := New(cfg)
	rec := v9SimpleRec(900, 950, 5)
	// Three data sets arrive before their template; the bound keeps 2.
	for i := range 3 {
		if f := dec(t, d, exporterA, v9Packet(1000, secs+uint32(i), uint32(i), 0, set(300, 0, rec, rec)), tNow); len(f) != 0 {
			t.Fatalf("flows without template")
		}
	}
	s := statsOf(t, d, exporterA)
	if s.NoTemplateSets != 3 || s.PendingSetsEvicted != 1 {
		t.Errorf("stats %+v", s)
	}
	// The template comes with one data set of its own: its record first,
	// then the 4 records of the 2 waiting sets, with their own export time.
	f := dec(t, d, exporterA, v9Packet(1000, secs+10, 3, 0, set(0, 0, tmpl(300, v9Simple...)), set(300, 0, v9SimpleRec(990, 1000, 7))), tNow)
	if len(f) != 5 || f[0].Bytes != 7 || f[1].Bytes != 5 || f[4].Bytes != 5 {
		t.Fatalf("got %d flows", len(f))
	}
	if f[1].Start != (secs+1)*1000-100 || f[0].Start != (secs+10)*1000-10 {
		t.Errorf("waiting set times: %d, %d", f[1].Start, f[0].Start)
	}
	s = statsOf(t, d, exporterA)
	if s.PendingDecoded != 4 || s.Flows != 5 {
		t.Errorf("stats %+v", s)
	}
	if sum := d.Summary(); sum.PendingSets != 0 || sum.NoTemplateSets != 3 || sum.PendingDropped != 1 {
		t.Errorf("summary %+v", sum)
	}
	// Pending TTL: a waiting set older than PendingTTL is dropped.
	dec(t, d, exporterA, v9Packet(1000, secs, 4, 0, set(301, 0, rec)), tNow)
	f = dec(t, d, exporterA, v9Packet(1000, secs, 5, 0, set(0, 0, tmpl(301, v9Simple...))), tNow.Add(cfg.PendingTTL+time.Second))
	if len(f) != 0 {
		t.Errorf("expired set decoded: %d flows", len(f))
	}
	if s := statsOf(t, d, exporterA); s.PendingDropped != 2 {
		t.Errorf("PendingDropped %d, want 2", s.PendingDropped)
	}
}

func TestPendingBytesBound(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPendingBytes = 100
	d := New(cfg)
	big := make([]byte, 60)
	dec(t, d, exporterA, ipfixMessage(secs, 0, 0, set(256, 0, big)), tNow)
	dec(t, d, exporterB, ipfixMessage(secs, 0, 0, set(256, 0, big)), tNow)
	if sum := d.Summary(); sum.PendingSets != 1 || sum.PendingDropped != 1 || d.pendingBytes > 100 {
		t.Errorf("summary %+v, %d bytes", sum, d.pendingBytes)
	}
}

// TestRouterOSSharedTemplateIDs: every MikroTik uses template 258 in
// domain 0; two exporters with different layouts must not mix.
func TestRouterOSSharedTemplateIDs(t *testing.T) {
	d := New(DefaultConfig())
	dec(t, d, exporterA, ipfixMessage(secs, 0, 0, set(2, 0, tmpl(258, fld{8, 4, 0}, fld{1, 4, 0}))), tNow)
	dec(t, d, exporterB, ipfixMessage(secs, 0, 0, set(2, 0, tmpl(258, fld{1, 4, 0}, fld{8, 4, 0}))), tNow)
	fa := dec(t, d, exporterA, ipfixMessage(secs, 0, 0, set(258, 0, cat(ip4("10.0.0.1"), u(4, 11)))), tNow)
	fb := dec(t, d, exporterB, ipfixMessage(secs, 0, 0, set(258, 0, cat(u(4, 22), ip4("10.0.0.2")))), tNow)
	if fa[0].Bytes != 11 || fa[0].SrcAddr.String() != "10.0.0.1" || fb[0].Bytes != 22 || fb[0].SrcAddr.String() != "10.0.0.2" {
		t.Errorf("A %+v\nB %+v", toGolden(&fa[0]), toGolden(&fb[0]))
	}
}

// TestRouterOSOddLengthRecords: 51-byte records back to back, no padding,
// and the same with set padding.
func TestRouterOSOddLengthRecords(t *testing.T) {
	for _, pad := range []int{0, 3} {
		d := New(DefaultConfig())
		msg := ipfixMessage(secs, 0, 0, set(2, 0, tmpl(258, mikrotikIPFIXFields...)),
			set(258, pad, mikrotikIPFIXRecord(0), mikrotikIPFIXRecord(1), mikrotikIPFIXRecord(2)))
		f := dec(t, d, exporterA, msg, tNow)
		if len(f) != 3 || f[2].Bytes != 154 || f[2].DstAddr.String() != "192.168.128.17" || f[2].PostNATSrcAddr.String() != "10.10.8.197" {
			t.Errorf("pad %d: %d flows", pad, len(f))
		}
	}
}

// TestRouterOSIfIndexZero: ifIndex 0 (the router itself) is kept as 0.
func TestRouterOSIfIndexZero(t *testing.T) {
	d := New(DefaultConfig())
	f := dec(t, d, exporterA, ipfixMessage(secs, 0, 0, set(2, 0, tmpl(258, mikrotikIPFIXFields...)), set(258, 0, mikrotikIPFIXRecord(0))), tNow)
	if f[0].InIf != RouterIfIndex || f[0].OutIf != 9 {
		t.Errorf("in %d out %d, want 0 and 9", f[0].InIf, f[0].OutIf)
	}
}

func TestV9CountIgnoredAndZeroPadding(t *testing.T) {
	d := New(DefaultConfig())
	pkt := v9Packet(1000, secs, 1, 0, set(0, 0, tmpl(300, v9Simple...)), set(300, 0, v9SimpleRec(1, 2, 3), v9SimpleRec(1, 2, 4)))
	be.PutUint16(pkt[2:], 1)                // softflowd: count=1
	pkt = append(pkt, make([]byte, 200)...) // zero-filled tail (Palo Alto)
	if f := dec(t, d, exporterA, pkt, tNow); len(f) != 2 {
		t.Errorf("%d flows, want 2", len(f))
	}
}

func TestVariableLengthAndEnterpriseFields(t *testing.T) {
	d := New(DefaultConfig())
	fields := []fld{
		{8, 4, 0},           // source
		{100, 4, 6871},      // enterprise field, 4 bytes
		{82, varLen, 0},     // interfaceName, variable (1-byte length)
		{12, 4, 0},          // destination
		{292, varLen, 0},    // subTemplateList, variable (3-byte length)
		{0, 0, 0},           // zero-length field
		{1, 4, 29305},       // reverse octets (RFC 5103)
		{1, 3, 0},           // octets, reduced-size encoding
		{999, varLen, 9999}, // enterprise variable-length
		{6, 2, 0},           // TCP flags, 2 bytes
	}
	long := make([]byte, 300)
	rec1 := cat(ip4("10.0.0.1"), u(4, 1), []byte{3}, []byte("eth"), ip4("10.0.0.2"),
		[]byte{255}, u(2, 300), long, u(4, 50), u(3, 70000), []byte{0}, u(2, 0x0112))
	rec2 := cat(ip4("10.0.0.3"), u(4, 1), []byte{0}, ip4("10.0.0.4"),
		[]byte{0}, u(4, 0), u(3, 9), []byte{2}, []byte("xy"), u(2, 0x02))
	msg := ipfixMessage(secs, 0, 0, set(2, 0, tmpl(256, fields...)), set(256, 3, rec1, rec2))
	f := dec(t, d, exporterA, msg, tNow)
	if len(f) != 2 {
		t.Fatalf("%d flows, want 2", len(f))
	}
	if f[0].SrcAddr.String() != "10.0.0.1" || f[0].DstAddr.String() != "10.0.0.2" || f[0].Bytes != 70050 || f[0].TCPFlags != 0x12 {
		t.Errorf("record 1: %+v", toGolden(&f[0]))
	}
	if f[1].SrcAddr.String() != "10.0.0.3" || f[1].DstAddr.String() != "10.0.0.4" || f[1].Bytes != 9 || f[1].TCPFlags != 2 {
		t.Errorf("record 2: %+v", toGolden(&f[1]))
	}
}

func TestFieldMapping(t *testing.T) {
	d := New(DefaultConfig())
	fields := []fld{
		{27, 16, 0}, {28, 16, 0}, {62, 16, 0}, {10, 1, 0}, {14, 3, 0}, {16, 2, 0}, {17, 4, 0},
		{29, 1, 0}, {30, 1, 0}, {5, 1, 0}, {4, 1, 0}, {7, 2, 0}, {11, 2, 0},
		{81, 6, 0}, {57, 6, 0}, {243, 2, 0}, {281, 16, 0}, {282, 16, 0}, {227, 2, 0}, {228, 2, 0},
		{231, 4, 0}, {232, 4, 0}, {298, 8, 0}, {299, 8, 0},
	}
	rec := cat(ip6("2001:db8::1"), ip6("2001:db8::2"), ip6("fe80::1"), u(1, 3), u(3, 70000), u(2, 64512), u(4, 4200000000),
		u(1, 48), u(1, 64), u(1, 0xb8), u(1, 6), u(2, 1234), u(2, 443),
		u(6, 0x0a0b0c0d0e0f), u(6, 0x010203040506), u(2, 42), ip6("2001:db8::10"), ip6("2001:db8::20"), u(2, 4000), u(2, 4001),
		u(4, 1000), u(4, 2000), u(8, 3), u(8, 4))
	f := dec(t, d, exporterA, v9Packet(10, secs, 1, 0, set(0, 0, tmpl(256, fields...)), set(256, 0, rec)), tNow)
	g := toGolden(&f[0])
	want := goldenFlow{Exporter: exporterA.String(), Version: 9, Template: 256, Start: exportMs, End: exportMs,
		Src: "2001:db8::1", Dst: "2001:db8::2", NextHop: "fe80::1", InIf: 3, OutIf: 70000, SrcAS: 64512, DstAS: 4200000000,
		SrcMask: 48, DstMask: 64, ToS: 0xb8, Proto: 6, SrcPort: 1234, DstPort: 443,
		SrcMAC: "0a:0b:0c:0d:0e:0f", DstMAC: "01:02:03:04:05:06", VLAN: 42,
		PostNATSrc: "2001:db8::10", PostNATDst: "2001:db8::20", PostNATSPort: 4000, PostNATDPort: 4001,
		Bytes: 3000, Packets: 7}
	if g != want {
		t.Errorf("got  %+v\nwant %+v", g, want)
	}
}

func TestSequenceLoss(t *testing.T) {
	d := New(DefaultConfig())
	tp := ipfixMessage(secs, 0, 0, set(2, 0, tmpl(256, fld{1, 4, 0})))
	data := func(seq uint32, n int) []byte {
		var recs [][]byte
		for range n {
			recs = append(recs, u(4, 1))
		}
		return ipfixMessage(secs, seq, 0, set(256, 0, recs...))
	}
	dec(t, d, exporterA, tp, tNow)
	lost := func() uint64 { return statsOf(t, d, exporterA).LostFlows }
	dec(t, d, exporterA, data(0, 5), tNow)
	dec(t, d, exporterA, data(5, 5), tNow)
	if lost() != 0 {
		t.Fatalf("lost %d without a gap", lost())
	}
	dec(t, d, exporterA, data(20, 5), tNow) // 10 records missing
	if lost() != 10 {
		t.Fatalf("lost %d, want 10", lost())
	}
	dec(t, d, exporterA, data(10, 5), tNow) // one late message fills part of the gap
	if lost() != 5 {
		t.Fatalf("after a late message: lost %d, want 5", lost())
	}
	dec(t, d, exporterA, data(25, 5), tNow)
	dec(t, d, exporterA, data(2_000_000_000, 5), tNow) // implausible jump: resync
	dec(t, d, exporterA, data(2_000_000_005, 5), tNow)
	if lost() != 5 {
		t.Errorf("after a jump: lost %d, want 5", lost())
	}
	// A new source port: the exporter restarted, sequence starts over.
	restarted := netip.AddrPortFrom(exporterA.Addr(), exporterA.Port()+1)
	dec(t, d, restarted, data(1000, 5), tNow)
	if lost() != 5 {
		t.Errorf("after restart: lost %d, want 5", lost())
	}
	// v9 counts packets: a gap of 2 packets of 4 records each.
	v9 := func(seq uint32) []byte {
		return v9Packet(10, secs, seq, 0, set(0, 0, tmpl(300, v9Simple...)), set(300, 0, v9SimpleRec(1, 2, 1), v9SimpleRec(1, 2, 1), v9SimpleRec(1, 2, 1), v9SimpleRec(1, 2, 1)))
	}
	d = New(DefaultConfig())
	dec(t, d, exporterB, v9(1), tNow)
	dec(t, d, exporterB, v9(2), tNow)
	dec(t, d, exporterB, v9(5), tNow)
	if s := statsOf(t, d, exporterB); s.LostFlows != 8 {
		t.Errorf("v9: lost %d, want 8 (2 packets x 4 records)", s.LostFlows)
	}
}

func TestMalformed(t *testing.T) {
	tp := set(0, 0, tmpl(300, v9Simple...))
	good := v9Packet(10, secs, 1, 0, tp, set(300, 0, v9SimpleRec(1, 2, 3)))
	cases := []struct {
		name   string
		b      []byte
		reason string
		flows  int
	}{
		{"empty", nil, ReasonShortPacket, 0},
		{"bad version", []byte{0, 7, 0, 0}, ReasonBadVersion, 0},
		{"short v9", good[:12], ReasonShortPacket, 0},
		{"short v5", []byte{0, 5, 0, 1, 0}, ReasonShortPacket, 0},
		{"set length 2", append(v9Packet(10, secs, 1, 0, tp, set(300, 0, v9SimpleRec(1, 2, 3))), 1, 44, 0, 2, 9), ReasonBadSet, 1},
		{"set past end", good[:len(good)-4], ReasonBadSet, 0},
		{"template past set", v9Packet(10, secs, 1, 0, set(0, 0, cat(u(2, 300), u(2, 9), u(4, 0)))), ReasonBadTemplate, 0},
		{"template id 5", v9Packet(10, secs, 1, 0, set(0, 0, tmpl(5, fld{1, 4, 0}))), ReasonBadTemplate, 0},
		{"ipfix length", ipfixMessage(secs, 0, 0)[:15], ReasonShortPacket, 0},
		{"ipfix length field", func() []byte { b := ipfixMessage(secs, 0, 0); be.PutUint16(b[2:], 900); return b }(), ReasonBadLength, 0},
		{"var field past record", ipfixMessage(secs, 0, 0, set(2, 0, tmpl(256, fld{1, 4, 0}, fld{82, varLen, 0})), set(256, 0, cat(u(4, 1), []byte{200}, []byte("short")))), ReasonTruncatedRecord, 0},
		{"options scope count 0", ipfixMessage(secs, 0, 0, set(3, 0, ipfixOptTmpl(256, nil, []fld{{1, 4, 0}}))), ReasonBadTemplate, 0},
	}
	for _, c := range cases {
		d := New(DefaultConfig())
		f, err := d.Decode(nil, exporterA, c.b, tNow)
		var de *Error
		if !errors.As(err, &de) || de.Reason != c.reason {
			t.Errorf("%s: err %v, want reason %s", c.name, err, c.reason)
			continue
		}
		if len(f) != c.flows {
			t.Errorf("%s: %d flows before the fault, want %d", c.name, len(f), c.flows)
		}
		if s := d.Stats()[0]; s.Errors[c.reason] != 1 {
			t.Errorf("%s: error not counted: %v", c.name, s.Errors)
		}
	}
}

func TestExporterBound(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxExporters = 2
	d := New(cfg)
	tp := ipfixMessage(secs, 0, 0, set(2, 0, tmpl(256, fld{1, 4, 0})))
	for i := range 5 {
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)}), 4739)
		dec(t, d, from, tp, tNow.Add(time.Duration(i)*time.Second))
	}
	if sum := d.Summary(); sum.Exporters != 2 || sum.Templates != 2 || sum.ExportersForgotten != 3 {
		t.Errorf("summary %+v", sum)
	}
}
