package pcap

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
)

func allCaptures(tb testing.TB) []string {
	tb.Helper()
	dir := testutil.CapturesDir(tb)
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".pcap") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if len(files) < 100 {
		tb.Fatalf("only %d captures found under %s", len(files), dir)
	}
	return files
}

type truth struct {
	Frames       int `json:"frames"`
	CflowPackets int `json:"cflow_packets"`
	Packets      []struct {
		Exporter string `json:"exporter"`
	} `json:"packets"`
}

// readAll reads every packet of b, returning the packets (payloads copied)
// and the error that ended the read (nil at a clean EOF).
func readAll(b []byte) ([]Packet, int, error) {
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, 0, err
	}
	var out []Packet
	for {
		p, err := r.Next()
		if err == io.EOF {
			return out, r.Skipped(), nil
		}
		if err != nil {
			return out, r.Skipped(), err
		}
		p.Payload = bytes.Clone(p.Payload)
		out = append(out, p)
	}
}

func TestCaptures(t *testing.T) {
	dir := testutil.CapturesDir(t)
	for _, path := range allCaptures(t) {
		name, _ := filepath.Rel(dir, path)
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			pkts, skipped, err := readAll(b)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if len(pkts) == 0 {
				t.Fatal("no UDP packets")
			}
			for i, p := range pkts {
				if !p.Src.IsValid() || !p.Dst.IsValid() || p.Time.IsZero() {
					t.Fatalf("packet %d: bad addresses or time: %+v", i, p)
				}
				if p.Truncated {
					t.Errorf("packet %d at offset %d: truncated payload", i, p.Offset)
				}
			}
			tb, err := os.ReadFile(path + ".truth.json")
			if err != nil {
				return // exporters-input.pcap has no truth file
			}
			var tr truth
			if err := json.Unmarshal(tb, &tr); err != nil {
				t.Fatal(err)
			}
			if got := len(pkts) + skipped; got != tr.Frames {
				t.Errorf("packets+skipped = %d+%d, want %d frames", len(pkts), skipped, tr.Frames)
			}
			// tshark also dissects the UDP datagram quoted inside an ICMP
			// error (its exporter port shows as "None"); that is not a UDP
			// frame and the reader skips it.
			want := tr.CflowPackets
			for _, p := range tr.Packets {
				if strings.HasSuffix(p.Exporter, ":None") {
					want--
				}
			}
			if len(pkts) != want {
				t.Errorf("UDP packets = %d, want %d (cflow_packets minus ICMP-quoted datagrams)", len(pkts), want)
			}
		})
	}
}

// TestNetflowPayload checks one packet's fields against known values: the
// first frame of the MikroTik IPFIX capture (text2pcap: 192.0.2.10:40000 ->
// 192.0.2.20:2055, IPFIX header version 10).
func TestNetflowPayload(t *testing.T) {
	dir := testutil.CapturesDir(t)
	b, err := os.ReadFile(filepath.Join(dir, "logstash-codec-netflow", "ipfix-mikrotik-routeros-6-39-2.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	pkts, _, err := readAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != 3 {
		t.Fatalf("got %d packets, want 3", len(pkts))
	}
	p := pkts[0]
	if want := netip.MustParseAddrPort("192.0.2.10:40000"); p.Src != want {
		t.Errorf("src = %v, want %v", p.Src, want)
	}
	if want := netip.MustParseAddrPort("192.0.2.20:2055"); p.Dst != want {
		t.Errorf("dst = %v, want %v", p.Dst, want)
	}
	if p.Offset != 24 {
		t.Errorf("offset = %d, want 24", p.Offset)
	}
	if len(p.Payload) < 16 || binary.BigEndian.Uint16(p.Payload) != 10 {
		t.Fatalf("payload is not IPFIX: % x", p.Payload[:min(16, len(p.Payload))])
	}
	if int(binary.BigEndian.Uint16(p.Payload[2:4])) != len(p.Payload) {
		t.Errorf("IPFIX length %d != payload length %d", binary.BigEndian.Uint16(p.Payload[2:4]), len(p.Payload))
	}
	// text2pcap set the packet time to the IPFIX export time.
	export := time.Unix(int64(binary.BigEndian.Uint32(p.Payload[4:8])), 0)
	if d := p.Time.Sub(export); d < 0 || d > time.Second {
		t.Errorf("time %v, export time %v", p.Time, export)
	}
}

// recordOffsets returns the offsets of the records of a classic pcap file.
func recordOffsets(t *testing.T, b []byte) []int {
	t.Helper()
	var offs []int
	for off := 24; off < len(b); {
		offs = append(offs, off)
		off += 16 + int(binary.LittleEndian.Uint32(b[off+8:]))
	}
	return offs
}

// TestTruncated cuts real files inside and between records.
func TestTruncated(t *testing.T) {
	dir := testutil.CapturesDir(t)
	b, err := os.ReadFile(filepath.Join(dir, "graylog", "nprobe-netflow9-3.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	offs := recordOffsets(t, b)
	if len(offs) < 10 {
		t.Fatalf("only %d records", len(offs))
	}
	for i, off := range offs[:10] {
		// Cut exactly before record i: clean EOF after i packets.
		pkts, _, err := readAll(b[:off])
		if err != nil || len(pkts) != i {
			t.Errorf("cut at record %d boundary: %d packets, err %v", i, len(pkts), err)
		}
		// Cut inside the record header, and inside the record data.
		for _, cut := range []int{off + 7, off + 16 + 30} {
			pkts, _, err := readAll(b[:cut])
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("cut at %d: err = %v, want *Error", cut, err)
			}
			if pe.Offset != int64(off) || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("cut at %d: %v, want offset %d and unexpected EOF", cut, err, off)
			}
			if !strings.Contains(err.Error(), "truncated") {
				t.Errorf("error %q does not say truncated", err)
			}
			if len(pkts) != i {
				t.Errorf("cut at %d: %d packets before the error, want %d", cut, len(pkts), i)
			}
		}
	}
	// Cut inside the file header.
	if _, err := NewReader(bytes.NewReader(b[:10])); err == nil {
		t.Error("10-byte file accepted")
	}
}

func TestTruncatedPcapng(t *testing.T) {
	dir := testutil.CapturesDir(t)
	b, err := os.ReadFile(filepath.Join(dir, "libnetflow9", "malformed_2.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	full, _, err := readAll(b)
	if err != nil || len(full) != 16 {
		t.Fatalf("full file: %d packets, %v", len(full), err)
	}
	// Every cut either ends cleanly at a block boundary or names an offset
	// no later than the cut.
	for cut := 1; cut < len(b); cut += 7 {
		pkts, _, err := readAll(b[:cut])
		if err == nil {
			if len(pkts) > len(full) {
				t.Fatalf("cut %d: more packets than the full file", cut)
			}
			continue
		}
		var pe *Error
		if !errors.As(err, &pe) || pe.Offset > int64(cut) {
			t.Fatalf("cut %d: %v", cut, err)
		}
	}
}

func TestCorrupt(t *testing.T) {
	dir := testutil.CapturesDir(t)
	b, err := os.ReadFile(filepath.Join(dir, "graylog", "nprobe-netflow9-3.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	offs := recordOffsets(t, b)
	bad := bytes.Clone(b)
	binary.LittleEndian.PutUint32(bad[offs[3]+8:], 1<<30) // captured length
	pkts, _, err := readAll(bad)
	var pe *Error
	if !errors.As(err, &pe) || pe.Offset != int64(offs[3]) || len(pkts) != 3 {
		t.Errorf("huge record length: %d packets, err %v", len(pkts), err)
	}
	if _, err := NewReader(bytes.NewReader([]byte("this is not a capture file"))); err == nil {
		t.Error("text accepted as a capture")
	}
	// pcapng: a block length that is not a multiple of 4.
	ng, err := os.ReadFile(filepath.Join(dir, "libnetflow9", "malformed_5.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	shbLen := int(binary.LittleEndian.Uint32(ng[4:]))
	bad = bytes.Clone(ng)
	binary.LittleEndian.PutUint32(bad[shbLen+4:], 13)
	_, _, err = readAll(bad)
	if !errors.As(err, &pe) || pe.Offset != int64(shbLen) {
		t.Errorf("bad IDB length: %v", err)
	}
}

// frame builders for synthetic captures.

func udpIPv4(src, dst netip.AddrPort, payload []byte, frag uint16) []byte {
	ip := make([]byte, 20+8+len(payload))
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	binary.BigEndian.PutUint16(ip[6:], frag)
	ip[8] = 64
	ip[9] = protoUDP
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	u := ip[20:]
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	return ip
}

// udpIPv6 builds an IPv6 packet with a hop-by-hop header and a fragment
// header (first fragment, no more fragments) before UDP.
func udpIPv6(src, dst netip.AddrPort, payload []byte) []byte {
	ext := 8 + 8
	ip := make([]byte, 40+ext+8+len(payload))
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(ext+8+len(payload)))
	ip[6] = 0 // hop-by-hop
	ip[7] = 64
	s, d := src.Addr().As16(), dst.Addr().As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	h := ip[40:]
	h[0] = 44 // next: fragment
	h[1] = 0  // 8 bytes
	f := h[8:]
	f[0] = protoUDP
	u := f[8:]
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	return ip
}

func ethernet(etype uint16, vlans []uint16, pkt []byte) []byte {
	var b []byte
	b = append(b, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
	for i, tpid := range vlans {
		b = binary.BigEndian.AppendUint16(b, tpid)
		_ = i
		b = binary.BigEndian.AppendUint16(b, 100)
	}
	b = binary.BigEndian.AppendUint16(b, etype)
	b = append(b, pkt...)
	// Ethernet minimum size padding, which the IP length must cut off.
	for len(b) < 60 {
		b = append(b, 0xee)
	}
	return b
}

func sll2(etype uint16, pkt []byte) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], etype)
	return append(b, pkt...)
}

type synthPkt struct {
	ifc   uint32
	t     time.Time
	frame []byte
}

// buildPcap writes a classic pcap file in the given byte order.
func buildPcap(order byteOrder, nano bool, link uint32, pkts []synthPkt) []byte {
	var b []byte
	magic := uint32(0xa1b2c3d4)
	if nano {
		magic = 0xa1b23c4d
	}
	b = order.AppendUint32(b, magic)
	b = order.AppendUint16(b, 2)
	b = order.AppendUint16(b, 4)
	b = order.AppendUint32(b, 0)
	b = order.AppendUint32(b, 0)
	b = order.AppendUint32(b, 65535)
	b = order.AppendUint32(b, link)
	for _, p := range pkts {
		b = order.AppendUint32(b, uint32(p.t.Unix()))
		if nano {
			b = order.AppendUint32(b, uint32(p.t.Nanosecond()))
		} else {
			b = order.AppendUint32(b, uint32(p.t.Nanosecond()/1000))
		}
		b = order.AppendUint32(b, uint32(len(p.frame)))
		b = order.AppendUint32(b, uint32(len(p.frame)))
		b = append(b, p.frame...)
	}
	return b
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func ngBlock(order byteOrder, typ uint32, body []byte) []byte {
	body = pad4(body)
	var b []byte
	b = order.AppendUint32(b, typ)
	b = order.AppendUint32(b, uint32(12+len(body)))
	b = append(b, body...)
	return order.AppendUint32(b, uint32(12+len(body)))
}

// buildPcapng writes a pcapng section with one interface per link type;
// tsresol is the if_tsresol option byte of every interface.
func buildPcapng(order byteOrder, links []uint16, tsresol byte, pkts []synthPkt) []byte {
	var shb []byte
	shb = order.AppendUint32(shb, 0x1a2b3c4d)
	shb = order.AppendUint16(shb, 1)
	shb = order.AppendUint16(shb, 0)
	shb = order.AppendUint64(shb, ^uint64(0))
	b := ngBlock(order, blockSHB, shb)
	// An unknown block (a name resolution block) to skip.
	b = append(b, ngBlock(order, 4, []byte{0, 0, 0, 0})...)
	for _, lt := range links {
		var idb []byte
		idb = order.AppendUint16(idb, lt)
		idb = order.AppendUint16(idb, 0)
		idb = order.AppendUint32(idb, 0)
		idb = order.AppendUint16(idb, 9) // if_tsresol
		idb = order.AppendUint16(idb, 1)
		idb = append(idb, tsresol, 0, 0, 0)
		idb = order.AppendUint16(idb, 0)
		idb = order.AppendUint16(idb, 0)
		b = append(b, ngBlock(order, blockIDB, idb)...)
	}
	for _, p := range pkts {
		var ts uint64
		if tsresol&0x80 != 0 {
			exp := tsresol & 0x7f
			ts = uint64(p.t.Unix())<<exp | uint64(p.t.Nanosecond())<<exp/1e9
		} else {
			ts = uint64(p.t.UnixNano()) / pow10[9-tsresol]
		}
		var epb []byte
		epb = order.AppendUint32(epb, p.ifc)
		epb = order.AppendUint32(epb, uint32(ts>>32))
		epb = order.AppendUint32(epb, uint32(ts))
		epb = order.AppendUint32(epb, uint32(len(p.frame)))
		epb = order.AppendUint32(epb, uint32(len(p.frame)))
		epb = append(epb, p.frame...)
		b = append(b, ngBlock(order, blockEPB, epb)...)
	}
	return b
}

var (
	srcA = netip.MustParseAddrPort("198.51.100.1:5000")
	dstA = netip.MustParseAddrPort("198.51.100.2:2055")
	srcB = netip.MustParseAddrPort("[2001:db8::1]:6000")
	dstB = netip.MustParseAddrPort("[2001:db8::2]:4739")
	t0   = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
)

func TestSyntheticPcap(t *testing.T) {
	payload := []byte("netflow")
	tcp := udpIPv4(srcA, dstA, payload, 0)
	tcp[9] = 6 // TCP: skipped
	pkts := []synthPkt{
		{t: t0, frame: ethernet(etherIPv4, nil, udpIPv4(srcA, dstA, payload, 0))},
		{t: t0.Add(time.Second), frame: ethernet(etherIPv4, []uint16{etherQinQ, etherVLAN}, udpIPv4(srcA, dstA, payload, 0))},
		{t: t0, frame: ethernet(etherIPv4, nil, tcp)},
		{t: t0, frame: ethernet(etherIPv4, nil, udpIPv4(srcA, dstA, payload, 185))}, // non-first fragment
		{t: t0, frame: ethernet(etherIPv6, []uint16{etherVLAN}, udpIPv6(srcB, dstB, payload))},
		{t: t0, frame: ethernet(0x0806, nil, make([]byte, 28))}, // ARP
	}
	for _, order := range []byteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, nano := range []bool{false, true} {
			got, skipped, err := readAll(buildPcap(order, nano, linkEthernet, pkts))
			if err != nil {
				t.Fatalf("%v nano=%v: %v", order, nano, err)
			}
			if len(got) != 3 || skipped != 3 {
				t.Fatalf("%v nano=%v: %d packets, %d skipped; want 3, 3", order, nano, len(got), skipped)
			}
			want := t0.Truncate(time.Microsecond)
			if nano {
				want = t0
			}
			if !got[0].Time.Equal(want) || !got[1].Time.Equal(want.Add(time.Second)) {
				t.Errorf("%v nano=%v: times %v %v, want %v", order, nano, got[0].Time, got[1].Time, want)
			}
			if got[0].Src != srcA || got[0].Dst != dstA || got[2].Src != srcB || got[2].Dst != dstB {
				t.Errorf("addresses: %v>%v %v>%v", got[0].Src, got[0].Dst, got[2].Src, got[2].Dst)
			}
			for i, p := range got {
				if string(p.Payload) != "netflow" {
					t.Errorf("packet %d payload %q (Ethernet padding not cut?)", i, p.Payload)
				}
			}
		}
	}
}

func TestSyntheticLinkTypes(t *testing.T) {
	payload := []byte("ipfix!")
	v4 := udpIPv4(srcA, dstA, payload, 0)
	v6 := udpIPv6(srcB, dstB, payload)
	null := func(order byteOrder, fam uint32, p []byte) []byte {
		return append(order.AppendUint32(nil, fam), p...)
	}
	sll := func(etype uint16, p []byte) []byte {
		b := make([]byte, 16)
		binary.BigEndian.PutUint16(b[14:], etype)
		return append(b, p...)
	}
	cases := []struct {
		name  string
		link  uint32
		frame []byte
		want  netip.AddrPort
	}{
		{"raw-v4", linkRaw, v4, srcA},
		{"raw-v6", linkRaw, v6, srcB},
		{"dlt-raw-12", linkRaw12, v4, srcA},
		{"dlt-raw-14", linkRaw14, v6, srcB},
		{"ipv4", linkIPv4, v4, srcA},
		{"ipv6", linkIPv6, v6, srcB},
		{"null-le-v4", linkNull, null(binary.LittleEndian, 2, v4), srcA},
		{"null-le-v6-bsd", linkNull, null(binary.LittleEndian, 30, v6), srcB},
		{"loop-v4", linkLoop, null(binary.BigEndian, 2, v4), srcA},
		{"loop-v6", linkLoop, null(binary.BigEndian, 24, v6), srcB},
		{"sll-v4", linkSLL, sll(etherIPv4, v4), srcA},
		{"sll2-v6", linkSLL2, sll2(etherIPv6, v6), srcB},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, skipped, err := readAll(buildPcap(binary.LittleEndian, false, c.link, []synthPkt{{t: t0, frame: c.frame}}))
			if err != nil || len(got) != 1 || skipped != 0 {
				t.Fatalf("%d packets, %d skipped, err %v", len(got), skipped, err)
			}
			if got[0].Src != c.want || string(got[0].Payload) != "ipfix!" {
				t.Errorf("got %v %q", got[0].Src, got[0].Payload)
			}
		})
	}
	if _, err := NewReader(bytes.NewReader(buildPcap(binary.LittleEndian, false, 147, nil))); err == nil ||
		!strings.Contains(err.Error(), "unsupported link type 147") {
		t.Errorf("unsupported link type: %v", err)
	}
}

func TestSyntheticPcapng(t *testing.T) {
	payload := []byte("v9")
	pkts := []synthPkt{
		{ifc: 0, t: t0, frame: ethernet(etherIPv4, []uint16{etherVLAN}, udpIPv4(srcA, dstA, payload, 0))},
		{ifc: 1, t: t0.Add(time.Millisecond), frame: sll2(etherIPv6, udpIPv6(srcB, dstB, payload))},
		{ifc: 2, t: t0, frame: []byte{1, 2, 3}}, // unsupported link type: skipped
	}
	for _, order := range []byteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, res := range []struct {
			tsresol byte
			prec    time.Duration
		}{{6, time.Microsecond}, {9, time.Nanosecond}, {3, time.Millisecond}, {0x80 | 20, time.Microsecond}} {
			b := buildPcapng(order, []uint16{linkEthernet, linkSLL2, 147}, res.tsresol, pkts)
			// A second section with its own interface.
			b = append(b, buildPcapng(order, []uint16{linkRaw}, 6, []synthPkt{{ifc: 0, t: t0, frame: udpIPv4(srcA, dstA, payload, 0)}})...)
			got, skipped, err := readAll(b)
			if err != nil {
				t.Fatalf("%v tsresol %#x: %v", order, res.tsresol, err)
			}
			if len(got) != 3 || skipped != 1 {
				t.Fatalf("%v tsresol %#x: %d packets, %d skipped", order, res.tsresol, len(got), skipped)
			}
			if got[0].Src != srcA || got[1].Src != srcB || got[2].Dst != dstA {
				t.Errorf("addresses %v %v %v", got[0].Src, got[1].Src, got[2].Dst)
			}
			for i, w := range []time.Time{t0, t0.Add(time.Millisecond), t0} {
				prec := res.prec
				if i == 2 {
					prec = time.Microsecond // second section: tsresol 6
				}
				if d := got[i].Time.Sub(w); d < -prec || d > prec {
					t.Errorf("%v tsresol %#x: packet %d time %v, want %v", order, res.tsresol, i, got[i].Time, w)
				}
			}
		}
	}
}

func TestTruncatedPayload(t *testing.T) {
	// A capture with snaplen cutting the UDP payload.
	frame := ethernet(etherIPv4, nil, udpIPv4(srcA, dstA, bytes.Repeat([]byte{7}, 100), 0))
	got, _, err := readAll(buildPcap(binary.LittleEndian, false, linkEthernet, []synthPkt{{t: t0, frame: frame[:14+20+8+50]}}))
	if err != nil || len(got) != 1 {
		t.Fatalf("%d packets, %v", len(got), err)
	}
	if !got[0].Truncated || len(got[0].Payload) != 50 {
		t.Errorf("truncated=%v len=%d, want true, 50", got[0].Truncated, len(got[0].Payload))
	}
}

func FuzzReader(f *testing.F) {
	dir, _ := testutil.CapturesPath() // seeds from the corpus only when it is there
	for _, name := range []string{"libnetflow9/malformed_5.pcap", "libnetflow9/1.pcap", "telegraf/netflow_v5_example.pcap"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			f.Add(b)
		}
	}
	f.Add(buildPcapng(binary.BigEndian, []uint16{linkEthernet, linkSLL2}, 9, []synthPkt{
		{ifc: 1, t: t0, frame: sll2(etherIPv6, udpIPv6(srcB, dstB, []byte("x")))},
	}))
	f.Add(buildPcap(binary.BigEndian, true, linkNull, []synthPkt{{t: t0, frame: append([]byte{2, 0, 0, 0}, udpIPv4(srcA, dstA, []byte("y"), 0)...)}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for range 10000 {
			p, err := r.Next()
			if err != nil {
				var pe *Error
				if err != io.EOF && !errors.As(err, &pe) {
					t.Fatalf("error of type %T: %v", err, err)
				}
				return
			}
			if len(p.Payload) > MaxRecord || p.Offset > int64(len(b)) {
				t.Fatalf("payload %d bytes at offset %d", len(p.Payload), p.Offset)
			}
		}
	})
}

// byteOrder reads and appends in one byte order.
type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}
