package web

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
)

// Deps are the components the web server consumes. Each is declared here as
// the small interface the handlers need, so that web imports no other
// flowbox package than store (for the shared nouns).
type Deps struct {
	// Store answers the traffic, top-N and flow search queries.
	Store FlowQuerier
	// Routers lists the router inventory and its provisioning history.
	Routers RouterService
	// Provisioner onboards, re-plans, verifies, undoes and removes routers.
	Provisioner Provisioner
	// Collector reports the per-exporter counters.
	Collector ExporterLister
	// Users keeps the console users and the API tokens.
	Users UserStore
	// Names names autonomous systems (optional: without it only numbers
	// are shown).
	Names Namer
	// Trust keeps the accepted exporter prefixes (optional: without it the
	// console cannot accept unknown exporters).
	Trust ExporterTrust
	// Health reports the store writer's health (optional).
	Health HealthReporter
	// Alerts is the alert history (optional: nil disables the Alerts page
	// and API, which then say so).
	Alerts AlertStore
	// AlertStatus is the live state of detection, notification and
	// mitigation (optional, like Alerts).
	AlertStatus AlertStatus
	// NAT answers the abuse lookup and "who had this address?" (optional:
	// nil makes the Abuse lookup page say it is unavailable and its API
	// answer 503).
	NAT NATLookup
	// Coverage compares the routers' flows with their interface counters
	// (optional: nil makes /api/v1/coverage answer 503 and hides the
	// coverage on the pages).
	Coverage CoverageReporter
	// Domains names remote addresses from the routers' DNS caches (and
	// reverse DNS) and says whether each router is its customers'
	// resolver (optional: without it remote hosts have no names and
	// /api/v1/domains/status answers 503).
	Domains DomainNamer
	// Reports makes the traffic reports (optional: nil makes the Reports
	// page say reports are unavailable and /api/v1/reports answer 503).
	Reports store.Reporter
	// ReportRuns lists the runs of the scheduled reports (optional: nil
	// means none is scheduled, which /api/v1/reports/runs and the Reports
	// page say).
	ReportRuns ReportRuns
	// ReportSchedules describes the configured schedules, with their next
	// due run (optional: nil lists none).
	ReportSchedules ReportSchedules
	// Gatherer is served on /metrics; nil serves an empty registry.
	Gatherer prometheus.Gatherer
	// Registerer receives the web metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger is the component logger; nil discards.
	Logger *slog.Logger
	// DataDir holds the generated self-signed certificate.
	DataDir string
	// Settings is what the settings page shows of the other components'
	// configuration (read only).
	Settings Settings
	// AuditRetention bounds the audit log; zero means
	// store.DefaultAuditRetention().
	AuditRetention store.AuditRetention
	// Now returns the current time; nil means time.Now. Tests freeze it.
	Now func() time.Time
}

// Settings is the read-only view of the configuration the settings page and
// GET /api/v1/settings show.
type Settings struct {
	// CollectorListen are the UDP addresses the collector listens on.
	CollectorListen []string `json:"collector_listen"`
	// FlowStore says where flows are kept: "sqlite", or "clickhouse"
	// with its database and servers.
	FlowStore string `json:"flow_store,omitempty"`
	// RawRetention, MinuteRetention and HourRetention are the store's
	// retention windows.
	RawRetention    Duration `json:"raw_retention"`
	MinuteRetention Duration `json:"minute_retention"`
	HourRetention   Duration `json:"hour_retention"`
}

// Duration is a time.Duration that marshals to JSON as "1h30m0s".
type Duration time.Duration

// MarshalText renders the duration in Go syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses a duration in Go syntax (clients of the API).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("cannot parse duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// FlowQuerier answers the dashboard's questions about stored flows
// (implemented by store/flowdb, with SubscriberAt from store/inventory).
type FlowQuerier interface {
	TimeSeries(ctx context.Context, q store.SeriesQuery) (*store.Series, error)
	Top(ctx context.Context, q store.TopQuery) (*store.TopResult, error)
	SearchFlows(ctx context.Context, q store.SearchQuery) (*store.FlowPage, error)
	ExportCSV(ctx context.Context, q store.SearchQuery, w io.Writer) error
	// LastFlowFrom returns the time of the newest flow of a router.
	LastFlowFrom(ctx context.Context, routerID int64) (time.Time, bool, error)
	// SubscriberAt names the subscriber of a local address at a time, or
	// returns an error wrapping store.ErrNotFound.
	SubscriberAt(ctx context.Context, addr netip.Addr, at time.Time) (store.Subscriber, error)
	// SubscriberUsage returns the traffic of each subscriber per router
	// over a period, sorted and paged, with the count and totals.
	SubscriberUsage(ctx context.Context, q store.UsageQuery) (*store.UsageResult, error)
	// SubscriberUsageSeries returns one subscriber's bytes per hour or day.
	SubscriberUsageSeries(ctx context.Context, q store.UsageSeriesQuery) (*store.UsageSeries, error)
	// SubscriberDomains returns one subscriber's top remote domains.
	SubscriberDomains(ctx context.Context, q store.SubscriberDomainsQuery) (*store.SubscriberDomains, error)
}

// RouterService reads the router inventory (implemented by
// *inventory.Inventory).
type RouterService interface {
	// ListRouters returns every router of the inventory.
	ListRouters(ctx context.Context) ([]store.Router, error)
	// GetRouterByID returns one router, or an error wrapping
	// store.ErrNotFound.
	GetRouterByID(ctx context.Context, id int64) (*store.Router, error)
	// ProvisionRuns returns a router's latest provisioning runs, newest
	// first, at most limit of them.
	ProvisionRuns(ctx context.Context, routerID int64, limit int) ([]store.ProvisionRun, error)
}

// Provisioner onboards routers over the RouterOS API. ProvisionerFunc
// adapts provision.Provisioner's name-based methods to it.
type Provisioner interface {
	// Add connects to a new router, learns what it is, stores it and
	// returns it with the plan of what provisioning would change.
	Add(ctx context.Context, spec RouterSpec) (store.Router, Plan, error)
	// Plan computes what Apply would change on a router (a dry run).
	Plan(ctx context.Context, id int64) (Plan, error)
	// Apply converges a router to the plan.
	Apply(ctx context.Context, id int64) (store.ProvisionRun, error)
	// Verify checks that the router's flows arrive.
	Verify(ctx context.Context, id int64) (store.ProvisionRun, error)
	// Undo removes flowbox's settings from a router and restores the
	// previous values.
	Undo(ctx context.Context, id int64) (store.ProvisionRun, error)
	// Remove deletes a router from the inventory, after undoing flowbox's
	// settings on it when undo is set.
	Remove(ctx context.Context, id int64, undo bool) error
}

// Namer names autonomous systems from the offline ASN data, and the
// routers' own addresses (implemented by *enrich.Enricher).
type Namer interface {
	ASName(asn uint32) string
	// RouterOf returns the name of the router whose own address a is,
	// "" when none.
	RouterOf(a netip.Addr) string
}

// DomainNamer names remote addresses (implemented in cmd/flowbox over the
// domains history and poller).
type DomainNamer interface {
	// RemoteName returns the name an address had during [from, to] (the
	// latest seen, one of registrable domain dom first when dom is not
	// ""): from a router's DNS cache, or from reverse DNS (reverse true,
	// which is not a name a customer visited); "" when unknown.
	RemoteName(a netip.Addr, from, to time.Time, dom string) (name string, reverse bool)
	// DomainStatus returns, per router, how its DNS cache is read and
	// whether it is its customers' resolver.
	DomainStatus() any
}

// ExporterTrust accepts exporters that are not onboarded routers: their
// flows are stored from then on (implemented in cmd/flowbox over the store
// and the collector's allowlist).
type ExporterTrust interface {
	// AllowedExporters lists the configured and the accepted prefixes.
	AllowedExporters(ctx context.Context) ([]AllowedPrefix, error)
	// AllowExporter accepts prefix; by names who did it.
	AllowExporter(ctx context.Context, prefix netip.Prefix, by string) error
	// DisallowExporter removes an accepted prefix (false: it was not
	// accepted from the console).
	DisallowExporter(ctx context.Context, prefix netip.Prefix) (bool, error)
}

// AllowedPrefix is one trusted exporter prefix.
type AllowedPrefix struct {
	Prefix string `json:"prefix"`
	// Source is "config" (collector.allowed-exporters, read only) or
	// "console" (accepted by a user, removable).
	Source  string     `json:"source"`
	AddedBy string     `json:"added_by,omitempty"`
	AddedAt *time.Time `json:"added_at,omitempty"`
}

// HealthReporter reports whether the store's writer is writing
// (*flowdb.FlowDB).
type HealthReporter interface {
	Health() store.Health
}

// AlertStore is the alert history (the inventory implements it).
type AlertStore interface {
	// ListAlerts returns the alerts of a filter, newest first.
	ListAlerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error)
	// GetAlert returns one alert, or an error wrapping store.ErrNotFound.
	GetAlert(ctx context.Context, id int64) (store.Alert, error)
	// AckAlert acknowledges an alert (store.ErrNotFound when unknown).
	AckAlert(ctx context.Context, id int64, by string, at time.Time) error
	// MitigationActions returns an alert's newest mitigation actions.
	MitigationActions(ctx context.Context, alertID int64, limit int) ([]store.MitigationAction, error)
	// NotificationAttempts returns an alert's newest notification
	// deliveries.
	NotificationAttempts(ctx context.Context, alertID int64, limit int) ([]store.NotificationAttempt, error)
}

// AlertStatus is the live state of detection, notification and mitigation
// (cmd/flowbox composes it).
type AlertStatus interface {
	// DetectorStatus reports the detector's health and bounds.
	DetectorStatus() store.DetectorStatus
	// NotificationChannels reports each configured channel's counters.
	NotificationChannels() []store.NotificationChannelStatus
	// MitigationStatus reports each router's mitigation state.
	MitigationStatus() []store.MitigationStatus
	// SendTestNotification delivers a test message to one channel now and
	// returns the delivery error.
	SendTestNotification(ctx context.Context, channel string) error
}

// NATLookup answers abuse lookups: the NAT-mapping store with the
// subscriber history and the raw flows still kept (cmd/flowbox composes
// it).
type NATLookup interface {
	// LookupNAT returns the mappings of a public address (and port) in use
	// around a time, with their subscribers, the raw flows still kept and
	// a sentence; no match is an answer with a message, not an error.
	LookupNAT(ctx context.Context, q store.NATQuery) (*store.NATAnswer, error)
	// AddressHolder says who had an address (inside, or public without
	// NAT) at a time; nobody is Found false with a message.
	AddressHolder(ctx context.Context, addr netip.Addr, at time.Time) (*store.AddressHolder, error)
}

// ExporterLister reports the collector's counters per exporter.
type ExporterLister interface {
	Exporters() []store.ExporterStats
}

// UserStore keeps users, API tokens, console sessions and the audit log
// (implemented by *inventory.Inventory).
type UserStore interface {
	SessionStore
	CountUsers(ctx context.Context) (int, error)
	CreateUser(ctx context.Context, name, passwordHash string, role store.Role) (store.User, error)
	UserByName(ctx context.Context, name string) (store.User, error)
	Users(ctx context.Context) ([]store.User, error)
	SetPassword(ctx context.Context, name, passwordHash string) error
	// SetRole changes a user's role (store.ErrLastAdmin when it would
	// leave no admin).
	SetRole(ctx context.Context, name string, role store.Role) error
	// DeleteUser removes a user with its sessions and tokens
	// (store.ErrLastAdmin for the last admin).
	DeleteUser(ctx context.Context, name string) error
	CreateToken(ctx context.Context, t store.Token) (store.Token, error)
	TokenByHash(ctx context.Context, hash string) (store.Token, error)
	Tokens(ctx context.Context) ([]store.Token, error)
	DeleteToken(ctx context.Context, id int64) error
	// DeleteUserTokens revokes every token of a user.
	DeleteUserTokens(ctx context.Context, user string) (int64, error)
	TouchToken(ctx context.Context, id int64, at time.Time) error
	// AddAudit, AuditLog and PruneAudit keep the audit log.
	AddAudit(ctx context.Context, e store.AuditEntry) error
	AuditLog(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error)
	PruneAudit(ctx context.Context, now time.Time, ret store.AuditRetention) (int64, error)
}

// RouterSpec is what the "Add router" form asks for.
type RouterSpec struct {
	Name     string `json:"name"`
	Address  string `json:"address"`
	Username string `json:"username"`
	Password string `json:"password"`
	TLS      bool   `json:"tls"`
	// CreateUser creates a least-privilege flowbox user on the router
	// (group policy api,read,write) and stores it instead of the login.
	CreateUser bool `json:"create_user"`
}

// Plan is what provisioning would change on a router, as a diff.
type Plan struct {
	Changes []Change `json:"changes"`
	// Summary is one line ("2 properties changed, target added").
	Summary string `json:"summary"`
}

// Change is one line of a plan.
type Change struct {
	// Path is the property changed, such as "/ip/traffic-flow enabled".
	Path string `json:"path"`
	Old  string `json:"old"`
	New  string `json:"new"`
	// Skip is true when the value is already in place.
	Skip bool `json:"skip"`
}

// Filter narrows every flow query; it maps to store.Filter plus the range.
// Zero fields match everything.
type Filter struct {
	From, To time.Time
	RouterID int64
	// Hosts match either side of the flow (addresses or CIDRs, ORed).
	Hosts []netip.Prefix
	// Locals match the subscriber side and Remotes the remote side; a
	// conversation is both.
	Locals, Remotes []netip.Prefix
	// App is an application label ("" matches everything).
	App string
	// Subscriber is a subscriber name, matched exactly ("" matches
	// everything).
	Subscriber string
	// Domain is the remote side's registrable domain ("" with HasDomain
	// is the unknown domain).
	Domain    string
	HasDomain bool
	// Country is the remote side's country (ISO code or a label such as
	// "private"; "" with HasCountry is the unknown country).
	Country    string
	HasCountry bool
	// Port matches either port; HasPort says it is set (port 0 is valid).
	Port    uint16
	HasPort bool
	// Proto is the IP protocol; HasProto says it is set.
	Proto    uint8
	HasProto bool
	// AS matches the source or destination AS; HasAS says it is set.
	AS    uint32
	HasAS bool
	// Interface matches the input or output interface; HasInterface says
	// it is set.
	Interface    uint32
	HasInterface bool
}

// storeFilter converts to the store's filter.
func (f *Filter) storeFilter() store.Filter {
	var sf store.Filter
	if f.RouterID != 0 {
		sf.Sources = []int64{f.RouterID}
	}
	sf.Hosts = f.Hosts
	sf.LocalHosts, sf.RemoteHosts = f.Locals, f.Remotes
	if f.App != "" {
		sf.Applications = []string{f.App}
	}
	if f.Subscriber != "" {
		sf.Subscribers = []string{f.Subscriber}
	}
	if f.HasCountry {
		sf.Countries = []string{f.Country}
	}
	if f.HasDomain {
		sf.Domains = []string{f.Domain}
	}
	if f.HasPort {
		sf.Ports = []uint16{f.Port}
	}
	if f.HasProto {
		sf.Protocols = []uint8{f.Proto}
	}
	if f.HasAS {
		sf.AS = []uint32{f.AS}
	}
	if f.HasInterface {
		sf.Interfaces = []uint32{f.Interface}
	}
	return sf
}

// Series is traffic over time. Times are the bucket starts in unix seconds;
// the rates are averages over each bucket. "In" is traffic towards the
// subscribers (download), "Out" from them (upload); per interface, "In"
// entered by the interface and "Out" left by it.
type Series struct {
	Step       int64  `json:"step"`
	Resolution string `json:"resolution"`
	// Now is the server's time of the answer (unix seconds): a bucket
	// ending after it is still open, and rollup buckets that ended within
	// the last minute may not be written yet (the store writes the
	// rollups once a minute).
	Now int64 `json:"now"`
	// Since is set (unix seconds) when the router (or the fleet) is newer
	// than the range: the series starts at its first minute with traffic
	// instead of the range's start.
	Since      int64             `json:"since,omitempty"`
	Times      []int64           `json:"times"`
	BitsIn     []float64         `json:"bits_in"`
	BitsOut    []float64         `json:"bits_out"`
	Interfaces []InterfaceSeries `json:"interfaces,omitempty"`
	// Partial is true when a raw scan ran out of time: only the flows
	// since ScannedFrom were read (the buckets before are empty); Note
	// says so in a sentence.
	Partial     bool       `json:"partial,omitempty"`
	ScannedFrom *time.Time `json:"scanned_from,omitempty"`
	Note        string     `json:"note,omitempty"`
}

// InterfaceSeries is the traffic of one interface, aligned with Series.Times.
type InterfaceSeries struct {
	Index   uint32    `json:"index"`
	Name    string    `json:"name"`
	BitsIn  []float64 `json:"bits_in"`
	BitsOut []float64 `json:"bits_out"`
}

// Dimensions of the top-N tables.
const (
	DimLocal        = "local"        // subscriber-side host
	DimRemote       = "remote"       // remote host
	DimAS           = "as"           // remote AS
	DimPort         = "port"         // application or service port
	DimProto        = "proto"        // IP protocol
	DimCountry      = "country"      // remote country
	DimConversation = "conversation" // local <-> remote pair
	DimInterface    = "interface"    // input interface
	DimDomain       = "domain"       // remote registrable domain
)

// ValidDimensions lists the valid top-N dimensions.
func ValidDimensions() []string {
	return []string{DimLocal, DimRemote, DimAS, DimPort, DimProto, DimCountry, DimConversation, DimInterface, DimDomain}
}

// TopRow is one entry of a top-N table. Key is what a click filters by:
// the host= of a host ("10.0.0.5"), as= of an AS ("15169"), app= of a named
// application ("youtube") or proto= and port= of a port ("tcp/443"),
// country= of a country ("US", "unknown"), local= and remote= of a
// conversation ("10.0.0.5|1.1.1.1"), iface= of an interface, proto= of a
// protocol; empty when it cannot filter. Label is the display form and
// Name the human name when known (subscriber, application, country, AS).
type TopRow struct {
	Key   string `json:"key"`
	Label string `json:"label"`
	Name  string `json:"name,omitempty"`
	// Router says Name is a router's (the row is one of its own
	// addresses), not a subscriber's.
	Router bool `json:"router,omitempty"`
	// Reverse says Name (of a remote host) came from reverse DNS, not
	// from a router's DNS cache: not a name a customer visited.
	Reverse bool   `json:"reverse,omitempty"`
	Bytes   uint64 `json:"bytes"`
	Packets uint64 `json:"packets"`
	Flows   uint64 `json:"flows"`
}

// RouterTotal sums one router's traffic over a window.
type RouterTotal struct {
	RouterID int64
	// Flows is the number of flow records; bytes are scaled by the
	// sampling rate.
	Flows    uint64
	BytesIn  uint64
	BytesOut uint64
	LastFlow time.Time
	// Seconds is the time of the rate window that has the router's
	// traffic: the whole window, or less for a router whose first flows
	// arrived within it (0 means the whole window).
	Seconds float64
}
