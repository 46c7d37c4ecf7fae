package store

// Rollup rows as a copy between flow stores (flowbox store copy) reads
// them from one store and writes them into the other. T is the start of
// the row's bucket (unix seconds, UTC), Source a router id or minus an
// exporter id, and counters are scaled by the sampling rate.

// TotalRow is a source's traffic in one direction over one minute or
// hour.
type TotalRow struct {
	T, Source             int64
	Direction             Direction
	Bytes, Packets, Flows uint64
}

// InterfaceRow is a source's traffic through one interface over one
// minute or hour: Side 0 in, 1 out.
type InterfaceRow struct {
	T, Source             int64
	Side                  uint8
	Interface             uint32
	Bytes, Packets, Flows uint64
}

// UsageRow is a subscriber's traffic on a source over one hour or UTC
// day.
type UsageRow struct {
	T, Source                                                         int64
	Subscriber                                                        string
	DownloadBytes, UploadBytes, DownloadPackets, UploadPackets, Flows uint64
}

// RateRow is one 5-minute sample of a router (Kind 1, Key empty), an
// interface (2, Key its ifIndex in decimal) or a subscriber (3, Key its
// name): A the download (in) and B the upload (out) bytes.
type RateRow struct {
	Kind   uint8
	Source int64
	Key    string
	T      int64
	A, B   uint64
}

// TopRow is one row of a top-N rollup: a key of Dimension (one of the
// rollups' own, DimLocalHost to DimDomain) over one minute or hour for a
// source and direction. Entry holds the key in its typed fields (Addr,
// Peer, AS, Name, Proto, Port, as TopEntry describes them) and the
// counters; Other is the row of the keys beyond the top-K (its key
// empty).
type TopRow struct {
	Dimension Dimension
	T, Source int64
	Direction Direction
	Other     bool
	Entry     TopEntry
}

// SubDomainRow is a subscriber's traffic with one remote domain on a
// source over one UTC day (Domain DomainRest: the domains the store did
// not keep one by one).
type SubDomainRow struct {
	T, Source                         int64
	Subscriber, Domain                string
	DownloadBytes, UploadBytes, Flows uint64
}

// SubAppRow is a subscriber's traffic (both ways) with one application on
// a source over one UTC day: a named application (App), or the protocol
// and service port of traffic without one; Rest is the applications the
// store did not keep one by one.
type SubAppRow struct {
	T, Source  int64
	Subscriber string
	App        string
	Proto      uint8
	Port       uint16
	Rest       bool
	Bytes      uint64
}
