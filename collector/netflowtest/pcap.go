package netflowtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"
)

// PcapWriter writes UDP datagrams into a classic pcap file (microsecond
// timestamps, Ethernet link type), each framed as Ethernet/IPv4/UDP, so that
// tools like tshark can read what an exporter sent.
type PcapWriter struct {
	w    io.Writer
	buf  []byte
	ipID uint16
}

// NewPcapWriter writes the pcap file header to w.
func NewPcapWriter(w io.Writer) (*PcapWriter, error) {
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4) // magic, microseconds
	binary.LittleEndian.PutUint16(h[4:], 2)          // version 2.4
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 65535) // snaplen
	binary.LittleEndian.PutUint32(h[20:], 1)     // LINKTYPE_ETHERNET
	if _, err := w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("cannot write pcap header: %w", err)
	}
	return &PcapWriter{w: w}, nil
}

// WritePacket writes one UDP datagram from src to dst (both IPv4) with
// payload, captured at ts.
func (p *PcapWriter) WritePacket(ts time.Time, src, dst netip.AddrPort, payload []byte) error {
	if !src.Addr().Unmap().Is4() || !dst.Addr().Unmap().Is4() {
		return errors.New("cannot write pcap packet: only IPv4 framing is supported")
	}
	if len(payload) > 65535-28 {
		return fmt.Errorf("cannot write pcap packet: payload of %d bytes is too large", len(payload))
	}
	frameLen := 14 + 20 + 8 + len(payload)
	b := p.buf[:0]
	b = binary.LittleEndian.AppendUint32(b, uint32(ts.Unix()))
	b = binary.LittleEndian.AppendUint32(b, uint32(ts.Nanosecond()/1000))
	b = binary.LittleEndian.AppendUint32(b, uint32(frameLen))
	b = binary.LittleEndian.AppendUint32(b, uint32(frameLen))
	// Ethernet: locally administered MACs, type IPv4.
	b = append(b, 0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00)
	ip := len(b)
	p.ipID++
	b = append(b, 0x45, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(20+8+len(payload)))
	b = binary.BigEndian.AppendUint16(b, p.ipID)
	b = append(b, 0x40, 0, 64, 17, 0, 0) // DF, TTL 64, UDP, checksum below
	s4, d4 := src.Addr().Unmap().As4(), dst.Addr().Unmap().As4()
	b = append(b, s4[:]...)
	b = append(b, d4[:]...)
	binary.BigEndian.PutUint16(b[ip+10:], ipChecksum(b[ip:ip+20]))
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, dst.Port())
	b = binary.BigEndian.AppendUint16(b, uint16(8+len(payload)))
	b = append(b, 0, 0) // no UDP checksum (allowed over IPv4)
	b = append(b, payload...)
	p.buf = b
	if _, err := p.w.Write(b); err != nil {
		return fmt.Errorf("cannot write pcap packet: %w", err)
	}
	return nil
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
