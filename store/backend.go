package store

import (
	"context"
	"io"
	"net/netip"
	"time"
)

// The two halves of flowbox's storage, as interfaces a second backend can
// implement: store/flowdb implements FlowDB and store/inventory implements
// Inventory, both on the one SQLite database (DB). cmd/flowbox wires them;
// the other packages consume smaller interfaces of their own.

// FlowIngest is the write side of a flow database: one bounded queue of
// batches and the single writer (Run) that stores them.
type FlowIngest interface {
	// GetBatch returns an empty batch for a producer to fill and Submit.
	GetBatch() *Batch
	// PutBatch gives back a batch Submit refused.
	PutBatch(b *Batch)
	// Submit queues a filled batch without blocking: ErrQueueFull when the
	// queue is full, an error wrapping ErrClosed once shutdown began.
	Submit(b *Batch) error
	// SubmitWait is Submit that waits for room until ctx is done.
	SubmitWait(ctx context.Context, b *Batch) error
	// InsertFlows queues a copy of flows, attributing those without a
	// RouterID; it waits for room until ctx is done.
	InsertFlows(ctx context.Context, flows []Flow) error
	// SetWriteObserver sets who learns what became of each flow (before
	// Run).
	SetWriteObserver(o WriteObserver)
	// Run is the writer: it returns once ctx is done and the queue is
	// drained.
	Run(ctx context.Context) error
	// Health is the writer's status.
	Health() Health
}

// FlowQueries are the questions a flow database answers.
type FlowQueries interface {
	// Top ranks the largest entries of a dimension over a range.
	Top(ctx context.Context, q TopQuery) (*TopResult, error)
	// TimeSeries returns traffic per step over a range.
	TimeSeries(ctx context.Context, q SeriesQuery) (*Series, error)
	// SearchFlows returns one page of raw flows.
	SearchFlows(ctx context.Context, q SearchQuery) (*FlowPage, error)
	// ExportCSV writes every raw flow of a search as CSV (CSVHeader).
	ExportCSV(ctx context.Context, q SearchQuery, w io.Writer) error
	// SubscriberUsage returns the traffic of each subscriber per router.
	SubscriberUsage(ctx context.Context, q UsageQuery) (*UsageResult, error)
	// SubscriberUsageSeries returns one subscriber's traffic per hour or
	// day.
	SubscriberUsageSeries(ctx context.Context, q UsageSeriesQuery) (*UsageSeries, error)
	// SubscriberDomains returns one subscriber's top remote domains.
	SubscriberDomains(ctx context.Context, q SubscriberDomainsQuery) (*SubscriberDomains, error)
	// RateSummaries returns the totals, peaks and percentiles of the
	// 5-minute rates of every entity of a kind over a period.
	RateSummaries(ctx context.Context, q RateQuery) ([]RateSummary, error)
	// ExporterSources maps the addresses of exporters that match no router
	// to their source ids (negative in Filter.Sources).
	ExporterSources(ctx context.Context) (map[netip.Addr]int64, error)
	// ExporterLastSeen returns when this process last received flows from
	// an exporter address.
	ExporterLastSeen(addr netip.Addr) (time.Time, bool)
	// LastFlowFrom returns when the last flow of a router was ingested.
	LastFlowFrom(ctx context.Context, routerID int64) (time.Time, bool, error)
}

// ExporterCounters keeps the collector's per-exporter counters across
// restarts, beside what the flow database stored of each exporter.
type ExporterCounters interface {
	// SaveExporterStats upserts the collector's counters.
	SaveExporterStats(ctx context.Context, stats []ExporterStats) error
	// ExporterStats returns the counters last saved.
	ExporterStats(ctx context.Context) ([]ExporterStats, error)
	// ExporterSummaries joins them with the stored counts; names names
	// the routers by id.
	ExporterSummaries(ctx context.Context, names map[int64]string) ([]ExporterSummary, error)
}

// FlowDB is a flow database: ingest, queries and exporter counters.
type FlowDB interface {
	FlowIngest
	FlowQueries
	ExporterCounters
}

// Routers is the router inventory: the routers, the attribution of
// exporter addresses to them, and their provisioning history.
type Routers interface {
	AddRouter(ctx context.Context, r *Router) error
	UpdateRouter(ctx context.Context, r *Router) error
	GetRouter(ctx context.Context, name string) (*Router, error)
	GetRouterByID(ctx context.Context, id int64) (*Router, error)
	ListRouters(ctx context.Context) ([]Router, error)
	RemoveRouter(ctx context.Context, name string) error
	// RouterFor attributes an exporter address (see Attribute).
	RouterFor(addr netip.Addr) (int64, bool)
	// ReloadRouters re-reads the attribution after changes made by
	// another process.
	ReloadRouters(ctx context.Context) error
	AttributionConflicts(ctx context.Context) ([]AttributionConflict, error)
	AddProvisionRun(ctx context.Context, run *ProvisionRun) error
	ProvisionRuns(ctx context.Context, routerID int64, limit int) ([]ProvisionRun, error)
}

// Histories are what enrichment learns over time: who had an address, and
// what an ifIndex was called.
type Histories interface {
	ApplySubscriberChanges(ctx context.Context, ends []SubscriberEnd, opens []Subscriber) ([]int64, error)
	SubscriberHistory(ctx context.Context, since time.Time) ([]Subscriber, error)
	SubscriberAt(ctx context.Context, addr netip.Addr, at time.Time) (Subscriber, error)
	ApplyInterfaceChanges(ctx context.Context, ends []InterfaceEnd, opens []InterfaceName) ([]int64, error)
	InterfaceHistory(ctx context.Context, since time.Time) ([]InterfaceName, error)
	InterfaceNameAt(ctx context.Context, routerID int64, index uint32, at time.Time) (string, error)
	PruneInterfaceHistory(ctx context.Context, before time.Time) (int64, error)
}

// Accounts are the console users, their sessions and the API tokens.
type Accounts interface {
	CountUsers(ctx context.Context) (int, error)
	CreateUser(ctx context.Context, name, passwordHash string, role Role) (User, error)
	UserByName(ctx context.Context, name string) (User, error)
	Users(ctx context.Context) ([]User, error)
	SetPassword(ctx context.Context, name, passwordHash string) error
	SetRole(ctx context.Context, name string, role Role) error
	DeleteUser(ctx context.Context, name string) error
	CreateToken(ctx context.Context, t Token) (Token, error)
	TokenByHash(ctx context.Context, hash string) (Token, error)
	Tokens(ctx context.Context) ([]Token, error)
	DeleteToken(ctx context.Context, id int64) error
	DeleteUserTokens(ctx context.Context, user string) (int64, error)
	TouchToken(ctx context.Context, id int64, at time.Time) error
	AddAudit(ctx context.Context, e AuditEntry) error
	AuditLog(ctx context.Context, q AuditQuery) ([]AuditEntry, error)
	PruneAudit(ctx context.Context, now time.Time, ret AuditRetention) (int64, error)
	SaveSession(ctx context.Context, ss Session) error
	LiveSessions(ctx context.Context, now time.Time, limit int) ([]Session, error)
	DeleteSessions(ctx context.Context, hashes ...string) error
	DeleteUserSessions(ctx context.Context, user, except string) error
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error)
}

// Inventory is everything flowbox keeps besides flows.
type Inventory interface {
	Routers
	Histories
	Accounts
	Alerts
	ReportRunLog
	AllowedExporters(ctx context.Context) ([]AllowedExporter, error)
	AllowExporter(ctx context.Context, p netip.Prefix, by string) error
	DisallowExporter(ctx context.Context, p netip.Prefix) (bool, error)
	// SubscriberCustomerIDs returns the customer id of each subscriber
	// (router, name) with records overlapping [from, to), for reports.
	SubscriberCustomerIDs(ctx context.Context, from, to time.Time) (map[SubscriberRef]string, error)
}
