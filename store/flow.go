// Package store is the leaf of flowbox's storage: the nouns the other
// packages share (Flow, Batch, Router, Subscriber, ProvisionRun, the query
// types...), the interfaces of the two halves of the storage (FlowDB and
// Inventory, backend.go), and the one SQLite database file they share (DB:
// open, migrations, the data directory's lock and key, inspect, backup).
// The flow database is store/flowdb, the inventory store/inventory; it
// imports neither, nor anything else of flowbox's own.
package store

import (
	"fmt"
	"net/netip"
)

// Direction says which way a flow crossed the WISP's edge, seen from the
// subscribers. It is set by enrichment at ingest.
type Direction uint8

// Directions of a flow, seen from the subscribers.
const (
	DirUnknown  Direction = iota // not decided (no local prefixes known)
	DirDownload                  // remote -> local subscriber
	DirUpload                    // local subscriber -> remote
	DirInternal                  // local -> local
	DirTransit                   // remote -> remote
	// DirRouterOut is traffic a router sends from one of its own
	// addresses to a remote host (its NTP, DNS, API or VPN traffic): the
	// router is the local side and Flow.Subscriber holds its name. It is
	// never a customer's upload.
	DirRouterOut
	// DirRouterIn is traffic from a remote host to one of a router's own
	// addresses that the router itself terminates (answers to its
	// queries, scans of its WAN address); not a customer's download.
	DirRouterIn

	// NumDirections is the number of Direction values (they are dense,
	// from 0), for arrays indexed by direction.
	NumDirections = iota
)

// Inbound reports whether the remote side is the flow's source: downloads
// and traffic to a router. The remote AS, country and service port of an
// inbound flow are its source's.
func (d Direction) Inbound() bool { return d == DirDownload || d == DirRouterIn }

// Router reports whether d is a router's own traffic (DirRouterOut or
// DirRouterIn).
func (d Direction) Router() bool { return d == DirRouterOut || d == DirRouterIn }

// String returns the lower-case name of the direction.
func (d Direction) String() string {
	switch d {
	case DirDownload:
		return "download"
	case DirUpload:
		return "upload"
	case DirInternal:
		return "internal"
	case DirTransit:
		return "transit"
	case DirRouterOut:
		return "router-out"
	case DirRouterIn:
		return "router-in"
	default:
		return "unknown"
	}
}

// ParseDirection is the inverse of Direction.String.
func ParseDirection(s string) (Direction, error) {
	switch s {
	case "download":
		return DirDownload, nil
	case "upload":
		return DirUpload, nil
	case "internal":
		return DirInternal, nil
	case "transit":
		return DirTransit, nil
	case "router-out":
		return DirRouterOut, nil
	case "router-in":
		return DirRouterIn, nil
	case "unknown":
		return DirUnknown, nil
	}
	return DirUnknown, fmt.Errorf("unknown direction %q (want download, upload, internal, transit, router-out, router-in or unknown)", s)
}

// Flow is one decoded flow record, as the collector produces it and the store
// keeps it. Counters are the raw ones from the exporter: Bytes and Packets are
// not scaled by SamplingRate (rollups and query answers scale them).
//
// Flow is a plain value type on the hot path: the decoder appends into a
// reused []Flow, so it must stay free of pointers that need allocation
// (strings are only ever assigned from interned tables).
type Flow struct {
	// Exporter is the UDP source of the export packet.
	Exporter netip.AddrPort
	// Version is the NetFlow version: 1, 5, 9 or 10 (IPFIX).
	Version uint16
	// TemplateID is the v9/IPFIX template of the record (0 for v1/v5).
	TemplateID uint16
	// Domain is the v9 source id or IPFIX observation domain; for v5 it is
	// engine type << 8 | engine id.
	Domain uint32
	// RouterID is the inventory router the exporter belongs to; 0 when the
	// exporter is not matched to any router. Set by the store at ingest.
	RouterID int64

	// Start and End are the flow's first and last packet, in unix
	// milliseconds (UTC), already made absolute and clamped by the decoder.
	Start, End int64

	SrcAddr, DstAddr netip.Addr // IPv4 or IPv6
	NextHop          netip.Addr // zero when absent
	// PostNATSrcAddr and PostNATDstAddr are RouterOS/NSEL post-NAT
	// addresses (IE 225/226, 281/282); zero when absent.
	PostNATSrcAddr, PostNATDstAddr netip.Addr
	SrcPort, DstPort               uint16
	PostNATSrcPort, PostNATDstPort uint16 // IE 227/228; 0 when absent
	Proto                          uint8
	TCPFlags                       uint8
	ToS                            uint8
	SrcMask, DstMask               uint8
	// InIf and OutIf are SNMP ifIndex values; 0 means the router itself
	// (RouterOS: locally originated or terminated traffic).
	InIf, OutIf    uint32
	SrcAS, DstAS   uint32
	SrcMAC, DstMAC uint64 // 48-bit MAC in the low bits; 0 when absent
	VLAN           uint16

	Bytes, Packets uint64
	// SamplingRate is 1-in-N; 0 or 1 means unsampled.
	SamplingRate uint32

	// Enrichment, filled at ingest (see the enrichment pipeline).
	Direction   Direction
	Subscriber  string // customer name of the local side, "" when unknown
	Application string // application label, "" when unknown
	SrcCountry  string // ISO 3166 alpha-2, or a label such as "private"
	DstCountry  string
	// RemoteDomain is the registrable domain (e.g. googlevideo.com) of the
	// name the remote address had in the routers' DNS caches at the flow's
	// time, "" when unknown.
	RemoteDomain string
}

// Scale returns n multiplied by the flow's sampling rate.
func (f *Flow) Scale(n uint64) uint64 {
	if f.SamplingRate > 1 {
		return n * uint64(f.SamplingRate)
	}
	return n
}

// LocalRemote returns the subscriber-side and the remote-side address of the
// flow according to its direction. With NAT, the post-NAT address is used for
// the local side when it is set (RouterOS puts the inside host of a download
// in the post-NAT destination). For traffic to a router the router's
// address (the destination) is local. For internal, transit and unknown
// flows the source is returned as local.
func (f *Flow) LocalRemote() (local, remote netip.Addr) {
	switch f.Direction {
	case DirRouterIn:
		return f.DstAddr, f.SrcAddr
	case DirDownload:
		if f.PostNATDstAddr.IsValid() && !f.PostNATDstAddr.IsUnspecified() {
			return f.PostNATDstAddr, f.SrcAddr
		}
		return f.DstAddr, f.SrcAddr
	default:
		return f.SrcAddr, f.DstAddr
	}
}

// FormatMAC formats a 48-bit MAC held in the low bits of m.
func FormatMAC(m uint64) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x",
		byte(m>>40), byte(m>>32), byte(m>>24), byte(m>>16), byte(m>>8), byte(m))
}

// ServicePort is the port a flow's application is known by when it has no
// label: the remote side's port for downloads, uploads and a router's own
// traffic, else the lower port (0 counting as none).
func (f *Flow) ServicePort() uint16 {
	switch f.Direction {
	case DirDownload, DirRouterIn:
		return f.SrcPort
	case DirUpload, DirRouterOut:
		return f.DstPort
	}
	if f.SrcPort != 0 && (f.DstPort == 0 || f.SrcPort < f.DstPort) {
		return f.SrcPort
	}
	return f.DstPort
}

// RemoteCountry is the country of the remote side, the one DimCountry
// ranks a flow under: the source country of inbound flows, else the
// destination country.
func (f *Flow) RemoteCountry() string {
	if f.Direction.Inbound() {
		return f.SrcCountry
	}
	return f.DstCountry
}
