package store

import (
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Batch is a slice of flows on its way through the ingest pipeline: a
// collector reader fills it (decoded and enriched in place), Submit queues
// it, the writer stores it and recycles it. Get one with GetBatch.
type Batch struct {
	// Flows are the flows, each with Exporter and RouterID set.
	Flows []Flow
	// Recv is when the batch was started, the time of flows without one.
	Recv time.Time
}

// Health is the writer's status for the status page.
type Health struct {
	// OK is false while writes fail (disk full, read-only file system...).
	OK bool
	// Error is the last write error, "" when OK.
	Error string
	// Since is when the current state began.
	Since time.Time
	// DroppedBatches counts batches of flows lost because they could not be written.
	DroppedBatches uint64
	// DroppedFlows counts the flows of those batches and of the full queue.
	DroppedFlows uint64
	// QueueLength is the number of batches waiting for the writer.
	QueueLength int
	// QueueCapacity is the bound of that queue.
	QueueCapacity int
	// NATMappingsDropped counts NAT mappings lost because they could not
	// be written while they waited (the abuse lookup will not find them);
	// NATEvicted those written early because the NAT cache was full.
	NATMappingsDropped, NATEvicted uint64
	// PackErrors counts the failed attempts to pack closed raw partitions
	// into blocks, and PackError is the last one while packing fails (the
	// rows stay rows: readable, but larger and slower to scan).
	PackErrors uint64
	PackError  string
	// RollupErrors counts the failed rounds of rollups the writer makes
	// from raw flows (ClickHouse's top-N lists), and RollupError is the
	// last one while they fail (the lists are then read from raw flows).
	RollupErrors uint64
	RollupError  string
	// SpilledFlows and SpilledBytes are what waits on disk for ClickHouse
	// (down or slow) to be written, SpillCapacity the bound in bytes (0:
	// no spill).
	SpilledFlows  uint64
	SpilledBytes  int64
	SpillCapacity int64
}

// ErrBadQuery is wrapped by every *QueryError, so callers can answer 400
// with errors.Is(err, store.ErrBadQuery).
var ErrBadQuery = errors.New("bad query")

// QueryError is a query the store refuses: a bad range, an unknown
// dimension, a filter that the data kept for that range cannot answer.
type QueryError struct {
	Field string // the query field at fault ("from", "filter.hosts"...)
	Msg   string
}

func (e *QueryError) Error() string { return fmt.Sprintf("bad query: %s: %s", e.Field, e.Msg) }

// Is makes errors.Is(err, ErrBadQuery) true.
func (e *QueryError) Is(target error) bool { return target == ErrBadQuery }

// Resolution is the data a query was answered from.
type Resolution string

// Resolutions.
const (
	ResAuto   Resolution = ""    // let the store choose (queries only)
	ResRaw    Resolution = "raw" // raw flows (last RawRetention)
	ResMinute Resolution = "1m"  // 1-minute rollups (last MinuteRetention)
	ResHour   Resolution = "1h"  // 1-hour rollups, completed with 1-minute rollups for the last hours
	ResDay    Resolution = "1d"  // 1-day top-K rollups, completed with hours and minutes at the ends (tops only)
)

// Filter restricts a query. Empty fields match everything; values within a
// field are ORed, fields are ANDed. Rollups answer Sources and Directions
// (and Interfaces for interface series and tops); the other fields need raw
// flows, so they are only accepted for ranges within the raw window: the
// rollups keep the top entries of each dimension separately, which cannot
// answer "the remote ASes of local host X" exactly.
type Filter struct {
	// Sources are router ids; a negative value -N selects the flows of the
	// unknown exporter with id N (see FlowQueries.ExporterSources).
	Sources    []int64
	Directions []Direction
	// Interfaces match the input or the output ifIndex.
	Interfaces []uint32
	// Hosts match the local or the remote address (Flow.LocalRemote).
	Hosts []netip.Prefix
	// LocalHosts match the local address and RemoteHosts the remote
	// address (Flow.LocalRemote): both together select a conversation, as
	// DimConversation ranks them.
	LocalHosts  []netip.Prefix
	RemoteHosts []netip.Prefix
	// AS match the source or destination AS.
	AS []uint32
	// Ports match the source or destination port.
	Ports     []uint16
	Protocols []uint8
	// Applications match Flow.Application ("" matches flows without one),
	// as DimApplication labels them.
	Applications []string
	// Countries match the country of the remote side (the source country of
	// downloads, else the destination country), as DimCountry ranks them;
	// "" matches an unknown country.
	Countries []string
	// Subscribers match Flow.Subscriber exactly ("" matches flows without
	// one), as DimSubscriber labels them.
	Subscribers []string
	// Domains match Flow.RemoteDomain exactly ("" matches flows without one), as
	// DimDomain labels them.
	Domains []string
}

// RawFields returns the names of the set fields that only raw flows
// answer.
func (f *Filter) RawFields() []string {
	var out []string
	for _, c := range []struct {
		name string
		n    int
	}{
		{"hosts", len(f.Hosts)}, {"local-hosts", len(f.LocalHosts)}, {"remote-hosts", len(f.RemoteHosts)},
		{"as", len(f.AS)}, {"ports", len(f.Ports)}, {"protocols", len(f.Protocols)},
		{"applications", len(f.Applications)}, {"countries", len(f.Countries)},
		{"subscribers", len(f.Subscribers)}, {"domains", len(f.Domains)},
	} {
		if c.n > 0 {
			out = append(out, c.name)
		}
	}
	return out
}

// NeedsRaw reports whether a set field is one only raw flows answer.
func (f *Filter) NeedsRaw() bool { return len(f.RawFields()) > 0 }

// RollupKeyed reports whether a time series with this filter may be
// answered from the rollups although the filter needs raw flows: its only
// raw field is one the rollups rank the way the filter matches
// (protocols, countries, named applications, subscribers, domains), with
// no interface filter. The store answers so when the rollups of that
// dimension folded nothing into "other" over the range (they are exact),
// beyond the raw window too, and from raw flows otherwise.
func (f *Filter) RollupKeyed() bool {
	if len(f.RawFields()) != 1 || len(f.Interfaces) > 0 {
		return false
	}
	if len(f.Applications) > 0 {
		return !slices.Contains(f.Applications, "") // flows without a name are ranked by port
	}
	return len(f.Protocols) > 0 || len(f.Countries) > 0 || len(f.Subscribers) > 0 || len(f.Domains) > 0
}

// Validate checks the prefixes and directions; errors are *QueryError.
func (f *Filter) Validate() error {
	for _, l := range []struct {
		field string
		ps    []netip.Prefix
	}{{"filter.hosts", f.Hosts}, {"filter.local-hosts", f.LocalHosts}, {"filter.remote-hosts", f.RemoteHosts}} {
		for _, p := range l.ps {
			if !p.IsValid() {
				return &QueryError{Field: l.field, Msg: "invalid prefix"}
			}
		}
	}
	for _, d := range f.Directions {
		if d >= NumDirections {
			return &QueryError{Field: "filter.directions", Msg: fmt.Sprintf("unknown direction %d", d)}
		}
	}
	return nil
}

// ParsePrefix parses a host or CIDR filter ("192.0.2.1", "2001:db8::/32");
// errors are *QueryError.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, &QueryError{Field: "filter.hosts", Msg: fmt.Sprintf("bad CIDR %q", s)}
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, &QueryError{Field: "filter.hosts", Msg: fmt.Sprintf("bad address %q", s)}
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func anyContains(ps []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Match reports whether a decoded flow passes the filter. local and remote
// are its unmapped Flow.LocalRemote addresses.
func (f *Filter) Match(fl *Flow, src int64, local, remote netip.Addr) bool {
	if len(f.Sources) > 0 && !slices.Contains(f.Sources, src) {
		return false
	}
	if !f.MatchNumbers(fl) {
		return false
	}
	if len(f.Hosts) > 0 && !anyContains(f.Hosts, local) && !anyContains(f.Hosts, remote) {
		return false
	}
	if len(f.LocalHosts) > 0 && !anyContains(f.LocalHosts, local) {
		return false
	}
	if len(f.RemoteHosts) > 0 && !anyContains(f.RemoteHosts, remote) {
		return false
	}
	if len(f.Applications) > 0 && !slices.Contains(f.Applications, fl.Application) {
		return false
	}
	if len(f.Countries) > 0 && !slices.Contains(f.Countries, fl.RemoteCountry()) {
		return false
	}
	if len(f.Subscribers) > 0 && !slices.Contains(f.Subscribers, fl.Subscriber) {
		return false
	}
	if len(f.Domains) > 0 && !slices.Contains(f.Domains, fl.RemoteDomain) {
		return false
	}
	return true
}

// MatchNumbers reports whether fl passes the fields of the filter that
// are numbers in the flow itself (directions, interfaces, AS, ports,
// protocols): a raw scan tests them before it looks up names and
// addresses, which most rows of a selective filter then skip. Match
// includes it.
func (f *Filter) MatchNumbers(fl *Flow) bool {
	if len(f.Directions) > 0 && !slices.Contains(f.Directions, fl.Direction) {
		return false
	}
	if len(f.Interfaces) > 0 && !slices.Contains(f.Interfaces, fl.InIf) && !slices.Contains(f.Interfaces, fl.OutIf) {
		return false
	}
	if len(f.AS) > 0 && !slices.Contains(f.AS, fl.SrcAS) && !slices.Contains(f.AS, fl.DstAS) {
		return false
	}
	if len(f.Ports) > 0 && !slices.Contains(f.Ports, fl.SrcPort) && !slices.Contains(f.Ports, fl.DstPort) {
		return false
	}
	if len(f.Protocols) > 0 && !slices.Contains(f.Protocols, fl.Proto) {
		return false
	}
	return true
}

// Dimension is what a top-N list ranks.
type Dimension uint8

// Dimensions kept in the rollups (top-K per router, direction and minute).
const (
	DimLocalHost    Dimension = iota + 1 // subscriber-side address (Flow.LocalRemote)
	DimRemoteHost                        // remote-side address
	DimRemoteAS                          // AS of the remote side
	DimApplication                       // application label, else protocol/service port
	DimCountry                           // country of the remote side
	DimConversation                      // local and remote address pair
	DimSubscriber                        // subscriber name
	DimProtocol                          // IP protocol
	DimDomain                            // registrable domain of the remote side (Flow.RemoteDomain)
	// NumRollupDims is the number of dimensions kept in the rollups.
	NumRollupDims = iota
)

// Dimensions answered from the totals rollups or, for the last two, from
// raw flows only.
const (
	DimRouter       Dimension = iota + 16 // router (or unknown exporter)
	DimDirection                          // download, upload...
	DimInInterface                        // input interface (ifIndex)
	DimOutInterface                       // output interface (ifIndex)
	DimSrcPort                            // source port (raw only)
	DimDstPort                            // destination port (raw only)
)

var dimNames = map[Dimension]string{
	DimLocalHost: "local-host", DimRemoteHost: "remote-host", DimRemoteAS: "remote-as",
	DimApplication: "application", DimCountry: "country", DimConversation: "conversation",
	DimSubscriber: "subscriber", DimRouter: "router", DimDirection: "direction",
	DimInInterface: "in-interface", DimOutInterface: "out-interface", DimProtocol: "protocol",
	DimSrcPort: "src-port", DimDstPort: "dst-port", DimDomain: "domain",
}

// Valid reports whether d is a known dimension.
func (d Dimension) Valid() bool {
	_, ok := dimNames[d]
	return ok
}

// String returns the name used in the API ("local-host"...).
func (d Dimension) String() string {
	if n, ok := dimNames[d]; ok {
		return n
	}
	return fmt.Sprintf("dimension(%d)", uint8(d))
}

// ParseDimension is the inverse of Dimension.String. Unknown names give a
// *QueryError.
func ParseDimension(s string) (Dimension, error) {
	for d, n := range dimNames {
		if n == s {
			return d, nil
		}
	}
	return 0, &QueryError{Field: "dimension", Msg: fmt.Sprintf("unknown dimension %q", s)}
}

// Dimensions returns every dimension, in API order.
func Dimensions() []Dimension {
	return []Dimension{DimLocalHost, DimRemoteHost, DimRemoteAS, DimApplication, DimCountry,
		DimConversation, DimSubscriber, DimRouter, DimDirection, DimInInterface, DimOutInterface,
		DimProtocol, DimDomain, DimSrcPort, DimDstPort}
}

// InRollups reports whether the rollups keep the top entries of d.
func (d Dimension) InRollups() bool { return d >= DimLocalHost && d < DimLocalHost+NumRollupDims }

// Metric is what a top-N list is ranked by.
type Metric string

// Metrics.
const (
	MetricBytes   Metric = "bytes"
	MetricPackets Metric = "packets"
	MetricFlows   Metric = "flows"
)

// TopQuery asks for the N largest entries of a dimension over a range.
type TopQuery struct {
	From, To   time.Time
	Dimension  Dimension
	N          int    // 1..1000; 0 means 10
	Metric     Metric // "" means bytes
	Filter     Filter
	Resolution Resolution // ResAuto or ResRaw
	// Budget bounds a raw scan (0: none), as SeriesQuery.Budget does.
	Budget time.Duration
}

// NeedsRaw reports whether only raw flows answer a top-N query: asked
// so, a filter the rollups cannot apply, a port dimension, an interface
// filter on another dimension, or a direction filter on an interface
// ranking.
func (q *TopQuery) NeedsRaw() bool {
	isIf := q.Dimension == DimInInterface || q.Dimension == DimOutInterface
	return q.Resolution == ResRaw || q.Filter.NeedsRaw() || q.Dimension >= DimSrcPort ||
		(len(q.Filter.Interfaces) > 0 && !isIf) || (isIf && len(q.Filter.Directions) > 0)
}

// Check checks a top-N query's dimension, n, metric and resolution, and
// sets the defaults: n 10, metric bytes.
func (q *TopQuery) Check() error {
	if !q.Dimension.Valid() {
		return &QueryError{Field: "dimension", Msg: fmt.Sprintf("unknown dimension %d", q.Dimension)}
	}
	if q.N == 0 {
		q.N = 10
	}
	if q.N < 0 || q.N > 1000 {
		return &QueryError{Field: "n", Msg: fmt.Sprintf("n=%d is outside 1..1000", q.N)}
	}
	switch q.Metric {
	case "":
		q.Metric = MetricBytes
	case MetricBytes, MetricPackets, MetricFlows:
	default:
		return &QueryError{Field: "metric", Msg: fmt.Sprintf("unknown metric %q (want bytes, packets or flows)", q.Metric)}
	}
	if q.Resolution != ResAuto && q.Resolution != ResRaw {
		return &QueryError{Field: "resolution", Msg: fmt.Sprintf("unknown resolution %q (want raw or empty)", q.Resolution)}
	}
	return nil
}

// TopResult is a top-N answer: Entries plus Other add up to Total.
type TopResult struct {
	From, To   time.Time
	Resolution Resolution
	// Partial is true when a raw scan spent its budget: From is then
	// where it stopped (the newest part, From to To, was read).
	Partial   bool
	Dimension Dimension
	Metric    Metric
	Entries   []TopEntry
	// Other sums everything not in Entries (including what the rollups
	// already folded into their "other" rows).
	Other TopEntry
	Total TopEntry
}

// TopEntry is one ranked value. Only the fields of the dimension are set.
type TopEntry struct {
	// Label is a display form: "192.0.2.1", "AS64500", "tcp/443", "youtube",
	// "FR", "192.0.2.1 ↔ 198.51.100.7", "router 3", "download", "if 12".
	Label     string
	Addr      netip.Addr // hosts; the local side of a conversation
	Peer      netip.Addr // the remote side of a conversation
	AS        uint32
	Name      string // application, country or subscriber ("" = unknown)
	Proto     uint8
	Port      uint16
	Source    int64
	Direction Direction
	Interface uint32
	Bytes     uint64
	Packets   uint64
	Flows     uint64
}

// TopLabel is the display form of entry e of dimension d, from its
// typed fields: "192.0.2.1" (or "unknown"), "AS64500", "youtube" or
// "tcp/443", "FR" (or "unknown"), "192.0.2.1 ↔ 198.51.100.7", "router 3",
// "download", "router 3 if 12", "tcp", "udp/53".
func TopLabel(d Dimension, e *TopEntry) string {
	addr := func(a netip.Addr) string {
		if !a.IsValid() {
			return "unknown"
		}
		return a.String()
	}
	switch d {
	case DimLocalHost, DimRemoteHost:
		return addr(e.Addr)
	case DimRemoteAS:
		return fmt.Sprintf("AS%d", e.AS)
	case DimApplication:
		if e.Name != "" {
			return e.Name
		}
		return fmt.Sprintf("%s/%d", ProtoName(e.Proto), e.Port)
	case DimCountry, DimSubscriber, DimDomain:
		if e.Name == "" {
			return "unknown"
		}
		return e.Name
	case DimConversation:
		return addr(e.Addr) + " ↔ " + addr(e.Peer)
	case DimRouter:
		return SourceLabel(e.Source)
	case DimDirection:
		return e.Direction.String()
	case DimInInterface, DimOutInterface:
		return fmt.Sprintf("%s if %d", SourceLabel(e.Source), e.Interface)
	case DimProtocol:
		return ProtoName(e.Proto)
	case DimSrcPort, DimDstPort:
		return fmt.Sprintf("%s/%d", ProtoName(e.Proto), e.Port)
	}
	return ""
}

// RankTop sorts entries by metric m, largest first, ties by label, and
// returns the first n.
func RankTop(list []TopEntry, m Metric, n int) []TopEntry {
	slices.SortFunc(list, func(a, b TopEntry) int {
		if c := cmp.Compare(b.Value(m), a.Value(m)); c != 0 {
			return c
		}
		return strings.Compare(a.Label, b.Label)
	})
	if len(list) > n {
		list = list[:n]
	}
	return list
}

// Value is the entry's count of metric m.
func (e *TopEntry) Value(m Metric) uint64 {
	switch m {
	case MetricPackets:
		return e.Packets
	case MetricFlows:
		return e.Flows
	}
	return e.Bytes
}

// SearchQuery asks for raw flows, newest first unless Ascending.
type SearchQuery struct {
	From, To  time.Time
	Filter    Filter
	Limit     int    // page size, 1..10000; 0 means 100 (ignored by ExportCSV)
	Cursor    string // FlowPage.Next of the previous page; "" for the first
	Ascending bool
}

// FlowPage is one page of a flow search. Flows carry RouterID, the exporter
// address (port 0) and raw counters with their sampling rate.
type FlowPage struct {
	Flows      []Flow
	Next       string // cursor of the next page; "" when this is the last
	Resolution Resolution
}

// CSVHeader is the header row of ExportCSV.
var CSVHeader = []string{"end", "start", "router_id", "exporter", "src_addr", "dst_addr", "src_port", "dst_port",
	"proto", "tcp_flags", "in_if", "out_if", "src_as", "dst_as", "bytes", "packets", "sampling_rate",
	"direction", "subscriber", "application", "src_country", "dst_country",
	"post_nat_src_addr", "post_nat_dst_addr", "post_nat_src_port", "post_nat_dst_port", "remote_domain"}

// CheckLimit checks a search's page size and sets the default, 100.
func (q *SearchQuery) CheckLimit() error {
	if q.Limit == 0 {
		q.Limit = 100
	}
	if q.Limit < 0 || q.Limit > 10000 {
		return &QueryError{Field: "limit", Msg: fmt.Sprintf("limit %d is outside 1..10000", q.Limit)}
	}
	return nil
}

// FlowCSV writes flows as every ExportCSV does: CSVHeader, then a record
// per flow (times in RFC 3339 UTC, raw counters, absent addresses empty,
// text guarded by CSVText).
type FlowCSV struct {
	w   *csv.Writer
	rec []string
}

// NewFlowCSV writes the header to w and returns the writer of the rows.
func NewFlowCSV(w io.Writer) (*FlowCSV, error) {
	c := &FlowCSV{w: csv.NewWriter(w), rec: make([]string, len(CSVHeader))}
	if err := c.w.Write(CSVHeader); err != nil {
		return nil, fmt.Errorf("cannot write CSV: %w", err)
	}
	return c, nil
}

// Write writes flow f's record.
func (c *FlowCSV) Write(f *Flow) error {
	csvRecord(f, c.rec)
	if err := c.w.Write(c.rec); err != nil {
		return fmt.Errorf("cannot write CSV: %w", err)
	}
	return nil
}

// Flush writes what is buffered.
func (c *FlowCSV) Flush() error {
	c.w.Flush()
	if err := c.w.Error(); err != nil {
		return fmt.Errorf("cannot write CSV: %w", err)
	}
	return nil
}

// csvRecord fills rec (len(CSVHeader)) with flow f's fields.
func csvRecord(f *Flow, rec []string) {
	addr := func(a netip.Addr) string {
		if !a.IsValid() {
			return ""
		}
		return a.String()
	}
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	rec[0] = time.UnixMilli(f.End).UTC().Format(time.RFC3339Nano)
	rec[1] = time.UnixMilli(f.Start).UTC().Format(time.RFC3339Nano)
	rec[2] = strconv.FormatInt(f.RouterID, 10)
	rec[3] = addr(f.Exporter.Addr())
	rec[4], rec[5] = addr(f.SrcAddr), addr(f.DstAddr)
	rec[6], rec[7] = u(uint64(f.SrcPort)), u(uint64(f.DstPort))
	rec[8], rec[9] = u(uint64(f.Proto)), u(uint64(f.TCPFlags))
	rec[10], rec[11] = u(uint64(f.InIf)), u(uint64(f.OutIf))
	rec[12], rec[13] = u(uint64(f.SrcAS)), u(uint64(f.DstAS))
	rec[14], rec[15], rec[16] = u(f.Bytes), u(f.Packets), u(uint64(f.SamplingRate))
	rec[17], rec[18], rec[19] = f.Direction.String(), CSVText(f.Subscriber), CSVText(f.Application)
	rec[20], rec[21] = CSVText(f.SrcCountry), CSVText(f.DstCountry)
	rec[22], rec[23] = addr(f.PostNATSrcAddr), addr(f.PostNATDstAddr)
	rec[24], rec[25] = u(uint64(f.PostNATSrcPort)), u(uint64(f.PostNATDstPort))
	rec[26] = CSVText(f.RemoteDomain)
}

// SeriesQuery asks for a traffic time series.
type SeriesQuery struct {
	From, To time.Time
	// Step is the bucket width; 0 chooses 1m up to 6h, 5m up to 24h, 1h
	// up to 31 days and 1d beyond. It must be a multiple of a minute.
	Step time.Duration
	// GroupBy splits the series into lines: 0 for one total line,
	// DimRouter, DimDirection, DimInInterface or DimOutInterface.
	GroupBy Dimension
	Filter  Filter
	// Resolution forces raw flows (ResRaw) or leaves the choice to the
	// store (ResAuto): rollups when they can answer, else raw flows.
	Resolution Resolution
	// Budget bounds a raw scan (0: none): it reads the newest raw flows
	// first and, once the budget is spent, answers with what it read
	// (Series.Partial).
	Budget time.Duration
}

// Series is a time series answer. Times[i] is the start of bucket i.
type Series struct {
	From, To   time.Time
	Step       time.Duration
	Resolution Resolution
	Times      []time.Time
	Lines      []SeriesLine
	// Partial is true when a raw scan spent its budget: only the flows
	// from ScannedFrom to To were read (the buckets before are empty).
	Partial     bool
	ScannedFrom time.Time
}

// SeriesLine is one line of a series. Counters are scaled by sampling rate.
type SeriesLine struct {
	// Label names the line: "total", a direction, "router 3",
	// "exporter 7" (unknown exporter), or "if 12" / "router 3 if 12".
	Label     string
	Source    int64     // set when grouped by router or interface
	Direction Direction // set when grouped by direction
	Interface uint32    // set when grouped by interface
	Bytes     []uint64
	Packets   []uint64
	Flows     []uint64
}

// Usage sort orders.
const (
	UsageByTotal    = "total"    // download + upload bytes, largest first (default)
	UsageByDownload = "download" // download bytes, largest first
	UsageByUpload   = "upload"   // upload bytes, largest first
	UsageByName     = "name"     // subscriber name, A to Z
)

// UsageQuery asks for the traffic of each subscriber over [From, To).
type UsageQuery struct {
	From, To time.Time
	// Sources are router ids (or -exporter ids); empty for every source.
	Sources []int64
	// Search keeps the subscribers whose name contains it, ignoring case.
	Search string
	// Sort is one of the Usage* orders; empty means UsageByTotal.
	Sort string
	// Limit is 1..10000 rows (0 means 100); Offset skips rows (paging).
	Limit, Offset int
}

// SubscriberUsage is one subscriber's traffic on one router (Source) over
// a period. The totals of a UsageResult have an empty Subscriber.
type SubscriberUsage struct {
	Source                     int64
	Subscriber                 string
	DownloadBytes, UploadBytes uint64
	DownloadPackets            uint64
	UploadPackets              uint64
	Flows                      uint64
	// LastSeen is the end of the last hour (or day) with traffic.
	LastSeen time.Time
}

// UsageResult is the answer to a UsageQuery.
type UsageResult struct {
	// From and To are the period actually read: the query's, widened to
	// hour (ResHour) or UTC day (ResDay) boundaries.
	From, To   time.Time
	Resolution Resolution
	Rows       []SubscriberUsage
	// Count is the number of (source, subscriber) rows matching, for paging.
	Count int
	// Total sums every matching row, not only this page.
	Total SubscriberUsage
}

// UsageSeriesQuery asks for one subscriber's traffic over time.
type UsageSeriesQuery struct {
	From, To time.Time
	// Sources are router ids (or -exporter ids); empty for every source.
	Sources []int64
	// Subscriber is the exact name (required).
	Subscriber string
	// Step is time.Hour or 24*time.Hour; 0 picks hours for ranges of up
	// to 7 days within UsageHourRetention, else UTC days.
	Step time.Duration
}

// UsageSeries is one subscriber's traffic per step: Times are the starts
// of the steps (unix seconds), the counters are aligned with them.
type UsageSeries struct {
	Resolution    Resolution
	Step          time.Duration
	Times         []int64
	DownloadBytes []uint64
	UploadBytes   []uint64
}

// ExporterSummary joins, for one exporter address, the collector's counters
// with what the store wrote. It is what `flowbox stats` prints.
type ExporterSummary struct {
	Exporter   netip.Addr
	RouterID   int64
	RouterName string // "" when the exporter is not attributed to a router
	// From the collector (zero when serve never saved its counters).
	Packets       uint64
	FlowsReceived uint64
	FlowsDropped  map[string]uint64 // by reason: collector reasons plus the store's
	LostFlows     uint64
	// From the store.
	FlowsStored uint64
	// Trusted is false for a source that is neither an onboarded router
	// nor allowed: its flows are counted, not stored.
	Trusted bool
	// SetsNoTemplate counts data sets dropped while waiting for their
	// template (sets, not flows).
	SetsNoTemplate uint64
	// DecodeErrors counts datagrams the decoder rejected, by reason.
	DecodeErrors map[string]uint64
	Bytes        uint64 // stored, scaled by sampling rate
	PacketsSum   uint64 // stored flow packets, scaled by sampling rate
	FirstSeen    time.Time
	LastSeen     time.Time
}
