package flowdb

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/flowbox/flowbox/store"
)

// mapDict is an addrDicter over a map (nil map: nothing interned).
type mapDict map[netip.Addr]uint64

func (d mapDict) addrID(a netip.Addr) (uint64, bool) {
	id, ok := d[a]
	return id, ok
}

// codecFlows returns flows that exercise every mode of the row encoding.
func codecFlows() []store.Flow {
	v4 := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	wan := v4("203.0.113.2")
	base := store.Flow{Start: 1_000_000 - 1500, End: 1_000_000, Proto: 6, SrcPort: 443, DstPort: 51000, TCPFlags: 0x1b,
		InIf: 1, OutIf: 0x800001, SrcAS: 15169, Bytes: 1 << 20, Packets: 900, RouterID: 3,
		Subscriber: "Ana Silva", Application: "youtube", SrcCountry: "US", DstCountry: "private"}
	var out []store.Flow
	// A NATed download: destination is the router's public address.
	f := base
	f.Direction = store.DirDownload
	f.SrcAddr, f.DstAddr = v4("142.250.1.1"), wan
	f.PostNATSrcAddr, f.PostNATDstAddr = v4("142.250.1.1"), v4("100.64.0.9")
	f.PostNATSrcPort, f.PostNATDstPort = 443, 40000
	f.RemoteDomain = "googlevideo.com" // named by a router's DNS cache
	out = append(out, f)
	// The NATed upload.
	f = base
	f.Direction = store.DirUpload
	f.SrcAddr, f.DstAddr = v4("100.64.0.9"), v4("142.250.1.1")
	f.SrcPort, f.DstPort = 40000, 443
	f.PostNATSrcAddr, f.PostNATDstAddr = wan, v4("142.250.1.1")
	f.PostNATSrcPort, f.PostNATDstPort = 40000, 443
	out = append(out, f)
	// IPv6, sampled, no NAT, negative duration (clock skew of an exporter).
	f = base
	f.Direction = store.DirDownload
	f.SrcAddr, f.DstAddr = netip.MustParseAddr("2001:4860::1"), netip.MustParseAddr("2001:db8:100::5")
	f.SamplingRate, f.Start = 100, f.End+20
	out = append(out, f)
	// Sampling rate 1 is kept as 1 (not 0); internal; explicit literal
	// addresses in every field; explicit NAT ports.
	f = base
	f.Direction, f.SamplingRate = store.DirInternal, 1
	f.SrcAddr, f.DstAddr = v4("10.0.0.1"), v4("10.0.0.2")
	f.PostNATSrcAddr, f.PostNATDstAddr = v4("192.0.2.77"), netip.MustParseAddr("2001:db8::77")
	f.PostNATSrcPort, f.PostNATDstPort = 1234, 4321
	out = append(out, f)
	// Transit, unknown names, zero addresses, huge counters.
	f = store.Flow{End: 1_000_000, Direction: store.DirTransit, Bytes: 1<<64 - 1, Packets: 1<<64 - 1, InIf: 1<<32 - 1, SrcAS: 1<<32 - 1}
	out = append(out, f)
	// Unknown direction with a broadcast destination and 0.0.0.0 post-NAT.
	f = base
	f.Direction = store.DirUnknown
	f.SrcAddr, f.DstAddr, f.PostNATSrcAddr = v4("100.64.0.1"), v4("255.255.255.255"), netip.IPv4Unspecified()
	f.PostNATDstPort = f.SrcPort
	out = append(out, f)
	return out
}

// rowOf is what a flow becomes once stored and read back.
func rowOf(f store.Flow) store.Flow {
	f.Exporter = netip.AddrPortFrom(f.Exporter.Addr(), 0)
	f.Version, f.TemplateID, f.Domain, f.ToS, f.SrcMask, f.DstMask = 0, 0, 0, 0, 0, 0
	f.NextHop, f.SrcMAC, f.DstMAC, f.VLAN = netip.Addr{}, 0, 0, 0
	if f.Start == 0 {
		f.Start = f.End
	}
	for _, a := range []*netip.Addr{&f.SrcAddr, &f.DstAddr, &f.PostNATSrcAddr, &f.PostNATDstAddr} {
		*a = a.Unmap()
	}
	return f
}

func TestRawCodecRoundTrip(t *testing.T) {
	dict := mapDict{netip.MustParseAddr("203.0.113.2"): 7, netip.MustParseAddr("255.255.255.255"): 300}
	names := map[string]uint64{"": 0, "Ana Silva": 1, "youtube": 2, "US": 3, "private": 4, "googlevideo.com": 300}
	byID := map[uint64]netip.Addr{}
	for a, id := range dict {
		byID[id] = a
	}
	for _, d := range []mapDict{nil, dict} {
		for i, f := range codecFlows() {
			const start = 900_000
			local, remote := f.LocalRemote()
			local, remote = local.Unmap(), remote.Unmap()
			n := rawNames{names[f.Subscriber], names[f.Application], names[f.SrcCountry], names[f.DstCountry], names[f.RemoteDomain]}
			x := encodeRaw(nil, &f, f.End-start, local, remote, 5, n, d)
			var r decodedRow
			if err := decodeRaw(&r, 42, start, x); err != nil {
				t.Fatalf("flow %d: %v", i, err)
			}
			// The public address of the NATed flows is the one explicit
			// address of the dictionary.
			if (r.dictMask != 0) != (d != nil && i < 2) {
				t.Errorf("flow %d: dictionary mask %b", i, r.dictMask)
			}
			r.fillAddrs(func(id uint64) netip.Addr { return byID[id] })
			if r.id != 42 || r.expID != 5 || r.names != n || r.local != local || r.remote != remote || r.t != f.End-start {
				t.Errorf("flow %d: row fields %+v", i, r)
			}
			got := r.Flow
			got.Subscriber, got.Application, got.SrcCountry, got.DstCountry, got.RemoteDomain = f.Subscriber, f.Application, f.SrcCountry, f.DstCountry, f.RemoteDomain
			if want := rowOf(f); got != want {
				t.Errorf("flow %d (dict %v):\n got %+v\nwant %+v", i, d != nil, got, want)
			}
			th, tl, tr, err := rawHead(x)
			if err != nil || th != f.End-start || tl != local || tr != remote {
				t.Errorf("flow %d: head %d %s %s %v", i, th, tl, tr, err)
			}
			// Every truncation is an error, never a panic (but at the
			// optional trailer: a row without the remote domain).
			for k := range len(x) {
				if err := decodeRaw(&r, 1, start, x[:k]); f.RemoteDomain != "" && k == len(x)-1-len(binary.AppendUvarint(nil, n.dom)) {
					if err != nil || r.names.dom != 0 {
						t.Fatalf("flow %d without its trailer: %v %+v", i, err, r.names)
					}
				} else if !errors.Is(err, errBadRow) {
					t.Fatalf("flow %d cut at %d: %v", i, k, err)
				}
			}
			// So is trailing garbage.
			if err := decodeRaw(&r, 1, start, append(x, 0)); !errors.Is(err, errBadRow) {
				t.Fatalf("flow %d with a trailing byte: %v", i, err)
			}
		}
	}
}

func TestRawCodecRandomBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	var r decodedRow
	for range 20000 {
		b := make([]byte, rng.IntN(80))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		_ = decodeRaw(&r, 1, 0, b) // must not panic
		if err := decodeRaw(&r, 1, 0, b); err == nil && len(b) < rawHeadLen {
			t.Fatalf("short row %x decoded", b)
		}
		_ = decodeRawV1(&r, 1, 0, b[:len(b)/3], b[len(b)/3:len(b)/2], b[len(b)/2:])
		r.fillAddrs(func(uint64) netip.Addr { return netip.Addr{} })
	}
}

func TestRawCodecV1RoundTrip(t *testing.T) {
	for i, f := range codecFlows() {
		local, remote := f.LocalRemote()
		local, remote = local.Unmap(), remote.Unmap()
		n := rawNames{1, 2, 3, 4, 0}
		x := encodeRawV1(nil, &f, local, remote, 9, n)
		var r decodedRow
		if err := decodeRawV1(&r, 3, f.End, addrBytes(local), addrBytes(remote), x); err != nil {
			t.Fatalf("flow %d: %v", i, err)
		}
		got := r.Flow
		got.Subscriber, got.Application, got.SrcCountry, got.DstCountry = f.Subscriber, f.Application, f.SrcCountry, f.DstCountry
		got.RemoteDomain = f.RemoteDomain // format 1 has none
		if want := rowOf(f); got != want || r.expID != 9 || r.names != n {
			t.Errorf("flow %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
}
