package store

import (
	"errors"
	"net/netip"
	"time"
)

// Errors that callers branch on.
var (
	// ErrNotFound is returned when a router (or another named item) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned when adding a router whose name is taken.
	ErrExists = errors.New("already exists")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("store is closed")
)

// Provisioning states of a router.
const (
	StateNew        = "new"        // added, never provisioned
	StateConfigured = "configured" // our traffic-flow settings are in place
	StateDrift      = "drift"      // the router's settings no longer match the plan
	StateError      = "error"      // the last operation failed
	StateUndone     = "undone"     // our settings were removed
)

// Router is one MikroTik router of the inventory: how to reach its API and
// what flowbox learned from it. Password is only ever held in memory in
// clear; the store encrypts it at rest and never logs it.
type Router struct {
	ID   int64
	Name string
	// Address is the API endpoint as host:port.
	Address string
	TLS     bool
	// TLSFingerprint is the hex SHA-256 of the router's certificate, pinned
	// on first use; "" until the first TLS connection.
	TLSFingerprint string
	Username       string
	// Password is never serialized (json:"-"): API views, logs and
	// transcripts cannot carry it by accident.
	Password string `json:"-"`

	// What was learned from the router.
	Identity   string
	Board      string
	Model      string
	Serial     string
	Version    string // RouterOS version, e.g. "7.16.2 (stable)"
	Interfaces []Interface
	Addresses  []netip.Prefix // from /ip/address; flows are attributed by these
	// ExporterAddr is the address the router exports flows from when
	// flowbox pinned it (the src-address of its traffic-flow target,
	// chosen because another router may export from the address it
	// would use otherwise); invalid when flowbox did not. No two routers
	// have the same one. See Sources.
	ExporterAddr netip.Addr

	// Provisioning.
	State string // one of the State* constants
	// StateDetail explains an error or a drift in one sentence.
	StateDetail string
	// Previous holds, per property path ("traffic-flow/enabled"), the value
	// the router had before flowbox changed it, so undo can restore it.
	Previous map[string]string
	// TargetID is the .id of the traffic-flow target flowbox created, "" if
	// it reused an existing one or none exists.
	TargetID string
	// TargetCreated is true when flowbox added the target (undo removes it).
	TargetCreated bool

	CreatedAt   time.Time
	UpdatedAt   time.Time
	LastContact time.Time // last successful API session
}

// Interface maps a router's SNMP ifIndex (as used in flow records) to its name.
type Interface struct {
	Index   uint32
	Name    string
	Type    string
	Comment string
}

// ProvisionRun is one entry of a router's provisioning history.
type ProvisionRun struct {
	ID       int64
	RouterID int64
	Time     time.Time
	// Action is "detect", "plan", "apply", "verify", "undo" or "drift".
	Action string
	OK     bool
	// Summary is one line for the UI ("2 properties changed, target added").
	Summary string
	// Changes lists "property: old -> new" lines.
	Changes []string
	// Transcript holds the API sentences sent and received, passwords redacted.
	Transcript []string
	Error      string
}

// ExporterStats are the collector's counters for one exporter address,
// saved periodically so that `flowbox stats` can read them from another
// process.
type ExporterStats struct {
	Exporter        netip.Addr
	RouterID        int64
	Packets         uint64
	FlowsReceived   uint64
	FlowsStored     uint64
	FlowsDropped    map[string]uint64 // by reason
	DecodeErrors    map[string]uint64 // by reason
	LostFlows       uint64            // estimated from sequence gaps
	Templates       int
	FirstSeen       time.Time
	LastSeen        time.Time
	LastTemplate    time.Time
	PendingNoTmpl   uint64 // data records that waited for their template
	Bytes, PktsSeen uint64 // sums of flow counters (scaled)
	// Trusted is false for an exporter that is neither an onboarded
	// router nor in collector.allowed-exporters: its flows are counted
	// (FlowsReceived, FlowsDropped["untrusted"]), not decoded or stored.
	Trusted bool
	// SetsNoTemplate counts data sets (not flows: without the template
	// their record count is unknown) dropped while they waited for their
	// template.
	SetsNoTemplate uint64
}

// ErrExporterConflict is wrapped by errors about two routers whose flows
// would come from one address: storing a router whose ExporterAddr is
// another router's, or (in provision) onboarding a router that cannot be
// told apart from another one.
var ErrExporterConflict = errors.New("exporter address used by another router")
