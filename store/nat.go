package store

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// NAT lookup defaults and bounds, for every NAT-mapping store.
const (
	// NATDefaultWindow is the window of a query that sets none.
	NATDefaultWindow = 2 * time.Minute
	// NATMaxWindow is the widest window a query may ask for.
	NATMaxWindow = 24 * time.Hour
	// NATDefaultLimit and NATMaxLimit bound the matches of a query.
	NATDefaultLimit = 1000
	NATMaxLimit     = 100000
)

// Check validates a lookup as every NAT-mapping store does and sets the
// defaults of its window and limit.
func (q *NATQuery) Check() error {
	switch {
	case !q.Public.IsValid():
		return errors.New("cannot look up NAT mappings: a public address is required")
	case q.Public.Zone() != "":
		return fmt.Errorf("cannot look up NAT mappings: %s: a public address has no zone", q.Public)
	case q.Public.IsUnspecified() || q.Public.IsMulticast():
		return fmt.Errorf("cannot look up NAT mappings: %s is not a public address", q.Public)
	case q.At.IsZero():
		return errors.New("cannot look up NAT mappings: a time is required")
	case q.Window < 0 || q.Window > NATMaxWindow:
		return fmt.Errorf("cannot look up NAT mappings: window %s is outside [0, %s]", q.Window, NATMaxWindow)
	case q.Limit < 0:
		return fmt.Errorf("cannot look up NAT mappings: negative limit %d", q.Limit)
	}
	if q.Window == 0 {
		q.Window = NATDefaultWindow
	}
	if q.Limit == 0 {
		q.Limit = NATDefaultLimit
	}
	q.Limit = min(q.Limit, NATMaxLimit)
	return nil
}

// CompareNATMatches orders the matches of a lookup at unix ms at: the
// closest to the time first (0 when in use then), then by first use,
// router, public port and inside address.
func CompareNATMatches(at int64, a, b *NATMapping) int {
	dist := func(m *NATMapping) int64 {
		first, last := m.FirstSeen.UnixMilli(), m.LastSeen.UnixMilli()
		switch {
		case at < first:
			return first - at
		case at > last:
			return at - last
		}
		return 0
	}
	ai, bi := a.InsideAddr.As16(), b.InsideAddr.As16()
	return cmp.Or(cmp.Compare(dist(a), dist(b)), a.FirstSeen.Compare(b.FirstSeen), cmp.Compare(a.RouterID, b.RouterID),
		cmp.Compare(a.PublicPort, b.PublicPort), bytes.Compare(ai[:], bi[:]))
}

// NATMapping is one NAT translation a router made, from the flows that
// used it: the inside address and port a customer's device used, and the
// public address and port the world saw. Consecutive flows of one mapping
// are one NATMapping (FirstSeen to LastSeen). The JSON form is the one of
// `flowbox nat lookup --json` and /api/v1/nat/lookup.
type NATMapping struct {
	RouterID int64  `json:"router_id"`
	Router   string `json:"router"`
	// Proto is the IP protocol number; ProtoName its name ("tcp").
	Proto     uint8  `json:"-"`
	ProtoName string `json:"proto"`
	// PublicAddr and PublicPort are the translated (post-NAT) side.
	PublicAddr netip.Addr `json:"public_address"`
	PublicPort uint16     `json:"public_port"`
	// InsideAddr and InsidePort are the customer's side (pre-NAT).
	InsideAddr netip.Addr `json:"inside_address"`
	InsidePort uint16     `json:"inside_port"`
	// RemoteAddr and RemotePort are the far end of the mapping's first
	// flow (where known); Remotes counts the distinct far ends merged in.
	RemoteAddr netip.Addr `json:"remote_address,omitzero"`
	RemotePort uint16     `json:"remote_port,omitzero"`
	Remotes    uint32     `json:"remotes"`
	// FirstSeen and LastSeen bound the flows that used the mapping (their
	// start and end times); Flows counts them.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Flows     uint64    `json:"flows"`
	// Subscriber is the customer who had the inside address at the
	// mapping's time (from the subscriber history), filled by the lookup;
	// SubscriberSource says where the history learned it.
	Subscriber       string `json:"subscriber"`
	SubscriberSource string `json:"subscriber_source,omitempty"`
	CustomerID       string `json:"customer_id,omitempty"`
}

// NATQuery asks which inside address and port used a public address (and
// port) around a time.
type NATQuery struct {
	// Public is the public (post-NAT) address; required.
	Public netip.Addr
	// Port is the public port (0: any); Proto the protocol (0: any).
	Port  uint16
	Proto uint8
	// At is the complaint's time; Window the tolerance on both sides
	// (clocks and timeouts differ; default 2 minutes).
	At     time.Time
	Window time.Duration
	// Limit bounds the matches (0: 1000).
	Limit int
}

// NATMappings is the NAT-mapping store: fed at ingest, kept for
// store.nat-retention.
type NATMappings interface {
	// LookupNAT returns the mappings of a query that were in use within
	// the window, ordered by how close they are to At.
	LookupNAT(ctx context.Context, q NATQuery) ([]NATMapping, error)
	// NATKeptSince returns the start of the oldest day of mappings kept
	// (the zero time when none is).
	NATKeptSince(ctx context.Context) (time.Time, error)
}

// NATAnswer is the answer to an abuse lookup: the mappings with their
// subscribers, the raw flows still kept that match, and a sentence.
type NATAnswer struct {
	Query struct {
		Address string    `json:"address"`
		Port    uint16    `json:"port,omitzero"`
		Proto   string    `json:"proto,omitempty"`
		At      time.Time `json:"at"`
		Window  string    `json:"window"`
	} `json:"query"`
	Matches []NATMapping `json:"matches"`
	// Flows are raw flows of the matches' mappings around the time, while
	// raw retention keeps them (the evidence); FlowsKept says whether raw
	// flows of that time are still kept.
	Flows     []Flow `json:"-"`
	FlowsKept bool   `json:"flows_kept"`
	// KeptSince is the start of the oldest day of NAT mappings kept (nil
	// before the first is written); MappingsDropped counts the mappings
	// the running server could not write (the lookup may miss them).
	KeptSince       *time.Time `json:"kept_since,omitempty"`
	MappingsDropped uint64     `json:"mappings_dropped,omitempty"`
	// Message says what was found, or why nothing was.
	Message string `json:"message"`
}

// AddressHolder is who had an address at a time, from the subscriber
// history: "who had this address?".
type AddressHolder struct {
	Address string    `json:"address"`
	At      time.Time `json:"at"`
	// Found is false when nobody had it (then Message says so).
	Found      bool   `json:"found"`
	Subscriber string `json:"subscriber,omitempty"`
	CustomerID string `json:"customer_id,omitempty"`
	// Source is how the history learned it (dhcp, pppoe, queue, import...).
	Source string `json:"source,omitempty"`
	Router string `json:"router,omitempty"`
	// Prefix is the history record's prefix; From and To its validity
	// (To nil while current).
	Prefix  string     `json:"prefix,omitempty"`
	From    *time.Time `json:"from,omitempty"`
	To      *time.Time `json:"to,omitempty"`
	Message string     `json:"message"`
}
