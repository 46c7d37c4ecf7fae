package clickhouse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/flowbox/flowbox/store"
)

// flowColumns are the columns of the flows table that inserts and reads
// of whole flows name, in the order of their RowBinary rows.
const flowColumns = "site, t, duration, src, router, exporter, exporter_port, version, dir, proto, " +
	"src_addr, dst_addr, src_port, dst_port, nat_src_addr, nat_dst_addr, nat_src_port, nat_dst_port, " +
	"in_if, out_if, src_as, dst_as, bytes, packets, sampling, tcp_flags, " +
	"subscriber, application, src_country, dst_country, domain, local, remote, remote_as, remote_country, service_port, id"

// appendFlow appends flow f of site, source src and id as a RowBinary row
// of flowColumns (integers little-endian, IPv6 16 bytes in network order,
// strings prefixed by their uvarint length).
func appendFlow(b []byte, site string, src int64, id uint32, f *store.Flow) []byte {
	b = appendString(b, site)
	b = binary.LittleEndian.AppendUint64(b, uint64(f.End))
	dur := f.End - f.Start
	b = binary.LittleEndian.AppendUint32(b, uint32(min(max(dur, 0), 1<<32-1)))
	b = binary.LittleEndian.AppendUint64(b, uint64(src))
	b = binary.LittleEndian.AppendUint64(b, uint64(f.RouterID))
	b = appendAddr(b, f.Exporter.Addr())
	b = binary.LittleEndian.AppendUint16(b, f.Exporter.Port())
	b = append(b, byte(f.Version), byte(f.Direction), f.Proto)
	b = appendAddr(b, f.SrcAddr)
	b = appendAddr(b, f.DstAddr)
	b = binary.LittleEndian.AppendUint16(b, f.SrcPort)
	b = binary.LittleEndian.AppendUint16(b, f.DstPort)
	b = appendAddr(b, f.PostNATSrcAddr)
	b = appendAddr(b, f.PostNATDstAddr)
	b = binary.LittleEndian.AppendUint16(b, f.PostNATSrcPort)
	b = binary.LittleEndian.AppendUint16(b, f.PostNATDstPort)
	b = binary.LittleEndian.AppendUint32(b, f.InIf)
	b = binary.LittleEndian.AppendUint32(b, f.OutIf)
	b = binary.LittleEndian.AppendUint32(b, f.SrcAS)
	b = binary.LittleEndian.AppendUint32(b, f.DstAS)
	b = binary.LittleEndian.AppendUint64(b, f.Bytes)
	b = binary.LittleEndian.AppendUint64(b, f.Packets)
	b = binary.LittleEndian.AppendUint32(b, f.SamplingRate)
	b = append(b, f.TCPFlags)
	b = appendString(b, f.Subscriber)
	b = appendString(b, f.Application)
	b = appendString(b, f.SrcCountry)
	b = appendString(b, f.DstCountry)
	b = appendString(b, f.RemoteDomain)
	local, remote := f.LocalRemote()
	b = appendAddr(b, local)
	b = appendAddr(b, remote)
	as := f.DstAS
	if f.Direction.Inbound() {
		as = f.SrcAS
	}
	b = binary.LittleEndian.AppendUint32(b, as)
	b = appendString(b, f.RemoteCountry())
	b = binary.LittleEndian.AppendUint16(b, f.ServicePort())
	return binary.LittleEndian.AppendUint32(b, id)
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// appendAddr appends a as an IPv6 value: IPv4 mapped, :: when absent.
func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(b, make([]byte, 16)...)
	}
	v := a.As16()
	return append(b, v[:]...)
}

// errShortRow is a RowBinary answer that ends inside a row.
var errShortRow = errors.New("truncated RowBinary row")

// rowReader reads RowBinary values.
type rowReader struct {
	b   []byte
	err error
}

func (r *rowReader) take(n int) []byte {
	if r.err != nil || len(r.b) < n {
		r.err = errShortRow
		return make([]byte, n)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *rowReader) u8() uint8   { return r.take(1)[0] }
func (r *rowReader) u16() uint16 { return binary.LittleEndian.Uint16(r.take(2)) }
func (r *rowReader) u32() uint32 { return binary.LittleEndian.Uint32(r.take(4)) }
func (r *rowReader) u64() uint64 { return binary.LittleEndian.Uint64(r.take(8)) }

func (r *rowReader) addr() netip.Addr {
	a := netip.AddrFrom16([16]byte(r.take(16)))
	if a == netip.IPv6Unspecified() {
		return netip.Addr{}
	}
	return a.Unmap()
}

// str reads a string, interned in names (the answer's few distinct
// names share one copy).
func (r *rowReader) str(names map[string]string) string {
	n, k := binary.Uvarint(r.b)
	if k <= 0 || uint64(len(r.b)-k) < n {
		r.err = errShortRow
		return ""
	}
	v := r.b[k : k+int(n)]
	r.b = r.b[k+int(n):]
	if s, ok := names[string(v)]; ok {
		return s
	}
	s := string(v)
	if len(names) < 1<<16 {
		names[s] = s
	}
	return s
}

// storedFlow is a flow read back, with what was stored beside it.
type storedFlow struct {
	store.Flow
	site string
	src  int64
	id   uint32
}

// readFlows decodes a RowBinary answer of flowColumns (the derived
// columns are read and checked against the flow's own fields).
func readFlows(b []byte) ([]storedFlow, error) {
	r := &rowReader{b: b}
	names := map[string]string{}
	var flows []storedFlow
	for len(r.b) > 0 {
		var sf storedFlow
		f := &sf.Flow
		sf.site = r.str(names)
		f.End = int64(r.u64())
		f.Start = f.End - int64(r.u32())
		sf.src = int64(r.u64())
		f.RouterID = int64(r.u64())
		exp := r.addr()
		f.Exporter = netip.AddrPortFrom(exp, r.u16())
		f.Version = uint16(r.u8())
		f.Direction = store.Direction(r.u8())
		f.Proto = r.u8()
		f.SrcAddr, f.DstAddr = r.addr(), r.addr()
		f.SrcPort, f.DstPort = r.u16(), r.u16()
		f.PostNATSrcAddr, f.PostNATDstAddr = r.addr(), r.addr()
		f.PostNATSrcPort, f.PostNATDstPort = r.u16(), r.u16()
		f.InIf, f.OutIf = r.u32(), r.u32()
		f.SrcAS, f.DstAS = r.u32(), r.u32()
		f.Bytes, f.Packets = r.u64(), r.u64()
		f.SamplingRate = r.u32()
		f.TCPFlags = r.u8()
		f.Subscriber, f.Application = r.str(names), r.str(names)
		f.SrcCountry, f.DstCountry = r.str(names), r.str(names)
		f.RemoteDomain = r.str(names)
		local, remote := r.addr(), r.addr()
		remoteAS, remoteCC, svc := r.u32(), r.str(names), r.u16()
		sf.id = r.u32()
		if r.err != nil {
			return nil, fmt.Errorf("cannot read flows from clickhouse: row %d: %w", len(flows)+1, r.err)
		}
		l, rm := f.LocalRemote()
		as := f.DstAS
		if f.Direction.Inbound() {
			as = f.SrcAS
		}
		if local != l.Unmap() || remote != rm.Unmap() || remoteAS != as || remoteCC != f.RemoteCountry() || svc != f.ServicePort() {
			return nil, fmt.Errorf("cannot read flows from clickhouse: row %d: derived columns (%v %v %d %q %d) do not match the flow's", len(flows)+1, local, remote, remoteAS, remoteCC, svc)
		}
		flows = append(flows, sf)
	}
	return flows, nil
}
