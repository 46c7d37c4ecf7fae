package enrich

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/flowbox/flowbox/store"
)

// SubscriberStore persists the subscriber history; *inventory.Inventory
// implements it. A nil SubscriberStore keeps the history in memory only.
type SubscriberStore interface {
	SubscriberHistory(ctx context.Context, since time.Time) ([]store.Subscriber, error)
	ApplySubscriberChanges(ctx context.Context, ends []store.SubscriberEnd, opens []store.Subscriber) ([]int64, error)
}

// observation is one address (or prefix) seen naming a subscriber, by one
// source, at one poll or import.
type observation struct {
	prefix     netip.Prefix
	source     string
	name       string
	customerID string
	mac        uint64
}

// openKey identifies the current record of an address per router and
// source.
type openKey struct {
	router int64
	prefix netip.Prefix
	source string
}

// history is the subscriber history mirrored in memory: every current
// record, and ended records for HistoryWindow. Changes go to the store
// first, then to memory, then into a new immutable index for ingest.
type history struct {
	st      SubscriberStore
	window  time.Duration
	max     int
	metrics *metrics

	mu      sync.Mutex
	records map[int64]*store.Subscriber
	open    map[openKey]int64
	localID int64 // ids handed out when there is no store (negative)

	idx atomic.Pointer[subIndex]
}

func newHistory(st SubscriberStore, window time.Duration, max int, m *metrics) *history {
	h := &history{st: st, window: window, max: max, metrics: m,
		records: map[int64]*store.Subscriber{}, open: map[openKey]int64{}}
	h.idx.Store(&subIndex{})
	return h
}

// load fills memory from the store (records current or ended within the
// window).
func (h *history) load(ctx context.Context, now time.Time) error {
	if h.st == nil {
		return nil
	}
	subs, err := h.st.SubscriberHistory(ctx, now.Add(-h.window))
	if err != nil {
		return fmt.Errorf("cannot load subscriber history: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = map[int64]*store.Subscriber{}
	h.open = map[openKey]int64{}
	for i := range subs {
		if len(h.records) >= h.max {
			h.metrics.subscriberDrops.Add(float64(len(subs) - i))
			break
		}
		s := subs[i]
		h.records[s.ID] = &s
		if s.ValidTo.IsZero() {
			h.open[openKey{s.RouterID, s.Prefix, s.Source}] = s.ID
		}
	}
	h.rebuildLocked()
	return nil
}

// changes is what apply did.
type changes struct{ opened, ended, dropped int }

// apply records what a poll of router (0 for the CSV import) saw from the
// given sources at now. Addresses new since the previous poll start at
// since (the previous poll's time: the change happened in between); a
// changed owner starts at now; current records of those sources that were
// not observed end at now (unless keepMissing).
func (h *history) apply(ctx context.Context, router int64, sources []string, obs []observation, now, since time.Time, keepMissing bool) (changes, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var (
		ends  []store.SubscriberEnd
		opens []store.Subscriber
		seen  = map[openKey]bool{}
		ch    changes
	)
	if since.IsZero() || since.After(now) {
		since = now
	}
	h.pruneLocked(now)
	for _, o := range obs {
		k := openKey{router, o.prefix, o.source}
		if seen[k] {
			continue // first observation wins
		}
		seen[k] = true
		from := since
		if id, ok := h.open[k]; ok {
			r := h.records[id]
			if r.Name == o.name && r.MAC == o.mac && r.CustomerID == o.customerID {
				continue
			}
			ends = append(ends, store.SubscriberEnd{ID: id, At: now})
			from = now
		}
		opens = append(opens, store.Subscriber{RouterID: router, Prefix: o.prefix, Name: o.name, CustomerID: o.customerID,
			MAC: o.mac, Source: o.source, ValidFrom: from})
	}
	if !keepMissing {
		for k, id := range h.open {
			if k.router == router && slices.Contains(sources, k.source) && !seen[k] {
				ends = append(ends, store.SubscriberEnd{ID: id, At: now})
			}
		}
	}
	// Bound: ended records stay (they are pruned by age), new ones beyond
	// the limit are dropped and counted.
	if room := h.max - len(h.records); len(opens) > room {
		ch.dropped = len(opens) - max(room, 0)
		opens = opens[:max(room, 0)]
		h.metrics.subscriberDrops.Add(float64(ch.dropped))
	}
	if len(ends) == 0 && len(opens) == 0 {
		return ch, nil
	}
	var ids []int64
	if h.st != nil {
		var err error
		if ids, err = h.st.ApplySubscriberChanges(ctx, ends, opens); err != nil {
			return ch, err
		}
	} else {
		for range opens {
			h.localID--
			ids = append(ids, h.localID)
		}
	}
	for _, e := range ends {
		if r, ok := h.records[e.ID]; ok {
			r.ValidTo = e.At
			delete(h.open, openKey{r.RouterID, r.Prefix, r.Source})
		}
	}
	for i := range opens {
		o := opens[i]
		o.ID = ids[i]
		h.records[o.ID] = &o
		h.open[openKey{o.RouterID, o.Prefix, o.Source}] = o.ID
	}
	ch.opened, ch.ended = len(opens), len(ends)
	h.rebuildLocked()
	return ch, nil
}

// pruneLocked forgets records that ended before the window.
func (h *history) pruneLocked(now time.Time) {
	limit := now.Add(-h.window)
	pruned := false
	for id, r := range h.records {
		if !r.ValidTo.IsZero() && r.ValidTo.Before(limit) {
			delete(h.records, id)
			pruned = true
		}
	}
	if pruned {
		h.rebuildLocked()
	}
}

// size returns the number of records in memory.
func (h *history) size() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.records)
}

// subEntry is a record as the ingest index holds it.
type subEntry struct {
	from, to int64 // unix ms; to is MaxInt64 while current
	name     string
	rank     int8
	bits     int16
}

// better reports whether e should name an address rather than o.
func (e *subEntry) better(o *subEntry) bool {
	if e.rank != o.rank {
		return e.rank < o.rank
	}
	if e.bits != o.bits {
		return e.bits > o.bits
	}
	return e.from > o.from
}

// netGroup4 holds the IPv4 non-host records of one prefix length, keyed
// by the masked address.
type netGroup4 struct {
	bits int
	m    map[uint32][]subEntry
}

// netGroup6 holds the IPv6 non-host records of one prefix length (the
// delegated prefixes of DHCPv6 bindings, usually /56 to /64, and
// imported prefixes), keyed by the masked prefix (netip.Addr.Prefix
// masks without allocating; measured faster than integer keys here).
type netGroup6 struct {
	bits int
	m    map[netip.Prefix][]subEntry
}

// subIndex is an immutable snapshot of the history for ingest lookups.
// Host records are keyed by integers rather than netip.Addr, whose
// hashing costs several times more on the ingest path; prefixes are in
// one map per prefix length and family (IPv4 keyed by integers). A lookup is one map access for
// the host, then one per prefix length in use (longest first), so its
// cost is bounded by the number of distinct lengths (at most 32 for IPv4,
// 128 for IPv6; a few in practice), not by the number of records.
type subIndex struct {
	hosts4 map[uint32][]subEntry
	hosts6 map[[16]byte][]subEntry
	nets4  []netGroup4 // longest prefixes first
	nets6  []netGroup6 // longest prefixes first
}

func (h *history) rebuildLocked() {
	idx := &subIndex{hosts4: make(map[uint32][]subEntry, len(h.records)), hosts6: map[[16]byte][]subEntry{}}
	groups4 := map[int]map[uint32][]subEntry{}
	groups6 := map[int]map[netip.Prefix][]subEntry{}
	for _, r := range h.records {
		e := subEntry{from: r.ValidFrom.UnixMilli(), to: math.MaxInt64, name: r.Name,
			rank: int8(store.SourceRank(r.Source)), bits: int16(r.Prefix.Bits())}
		if !r.ValidTo.IsZero() {
			e.to = r.ValidTo.UnixMilli()
		}
		a := r.Prefix.Addr().Unmap()
		bits := r.Prefix.Bits()
		if r.Prefix.Addr().Is4In6() {
			bits -= 96
		}
		if !a.IsValid() || bits < 0 {
			continue
		}
		e.bits = int16(bits)
		switch {
		case a.Is4() && bits == 32:
			k := addrU32(a)
			idx.hosts4[k] = append(idx.hosts4[k], e)
		case a.Is4():
			g := groups4[bits]
			if g == nil {
				g = map[uint32][]subEntry{}
				groups4[bits] = g
			}
			k := mask4(addrU32(a), bits)
			g[k] = append(g[k], e)
		case bits == 128:
			k := a.As16()
			idx.hosts6[k] = append(idx.hosts6[k], e)
		default:
			g := groups6[bits]
			if g == nil {
				g = map[netip.Prefix][]subEntry{}
				groups6[bits] = g
			}
			k := netip.PrefixFrom(a, bits).Masked()
			g[k] = append(g[k], e)
		}
	}
	for bits, m := range groups4 {
		idx.nets4 = append(idx.nets4, netGroup4{bits: bits, m: m})
	}
	for bits, m := range groups6 {
		idx.nets6 = append(idx.nets6, netGroup6{bits: bits, m: m})
	}
	slices.SortFunc(idx.nets4, func(a, b netGroup4) int { return b.bits - a.bits })
	slices.SortFunc(idx.nets6, func(a, b netGroup6) int { return b.bits - a.bits })
	h.idx.Store(idx)
}

// mask4 returns v with only its first bits kept.
func mask4(v uint32, bits int) uint32 {
	if bits <= 0 {
		return 0
	}
	return v &^ (1<<(32-bits) - 1)
}

// pick returns the better of best and the entries of list current at t.
func pick(best *subEntry, list []subEntry, t int64) *subEntry {
	for i := range list {
		e := &list[i]
		if e.from <= t && t < e.to && (best == nil || e.better(best)) {
			best = e
		}
	}
	return best
}

// lookup returns the subscriber name of a at t (unix ms), "" when none:
// the best record (store.SourceRank, then the longest prefix, then the
// latest) among the host records of a and the prefixes holding it. It
// allocates nothing.
func (idx *subIndex) lookup(a netip.Addr, t int64) string {
	if !a.IsValid() {
		return ""
	}
	a = a.Unmap()
	var best *subEntry
	if a.Is4() {
		v := addrU32(a)
		best = pick(best, idx.hosts4[v], t)
		for _, g := range idx.nets4 {
			if best != nil && best.rank == 0 {
				break // an imported record: shorter prefixes cannot beat it
			}
			best = pick(best, g.m[mask4(v, g.bits)], t)
		}
	} else {
		best = pick(best, idx.hosts6[a.As16()], t)
		for _, g := range idx.nets6 {
			if best != nil && best.rank == 0 {
				break
			}
			p, _ := a.Prefix(g.bits) // a is IPv6 and bits <= 128: no error
			best = pick(best, g.m[p], t)
		}
	}
	if best == nil {
		return ""
	}
	return best.name
}

// parseMAC parses a RouterOS MAC address ("AA:BB:CC:00:00:20"); 0 when
// empty or invalid.
func parseMAC(s string) uint64 {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return 0
	}
	var v uint64
	for _, b := range hw {
		v = v<<8 | uint64(b)
	}
	return v
}

// hostPrefix returns the host prefix of an address string; ok is false
// for anything else.
func hostPrefix(s string) (netip.Prefix, bool) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), true
}

// ImportResult summarises a CSV import.
type ImportResult struct {
	Rows    int // data rows read
	Opened  int // records started (new or changed customers)
	Ended   int // records ended (changed, or absent with replace)
	Dropped int // rows beyond max-subscribers
}

// CSVColumns names the columns of a subscriber CSV file with a header
// row (names are matched case-insensitively, ignoring spaces, "-" and
// "_"). An empty field picks the first header among the usual names:
// HeaderAddress, HeaderName, HeaderID.
type CSVColumns struct {
	Address string // the prefix or IP column
	Name    string // the customer name column
	ID      string // the customer id column (optional unless named)
}

// Usual header names of each column of a subscriber CSV file, in order of
// preference (compared as CSVColumns says).
var (
	HeaderAddress = []string{"address", "ip", "ip address", "ipv4", "ipv6", "prefix", "subnet", "network", "cidr"}
	HeaderName    = []string{"name", "customer name", "customer", "client name", "client", "subscriber name",
		"subscriber", "full name"}
	HeaderID = []string{"customer id", "id", "account id", "account", "account number", "account no",
		"client id", "subscriber id", "cust id", "contract"}
)

// ParseSubscriberCSV is ParseSubscriberCSVColumns with the usual column
// names.
func ParseSubscriberCSV(r io.Reader) ([]store.Subscriber, error) {
	return ParseSubscriberCSVColumns(r, CSVColumns{})
}

// ParseSubscriberCSVColumns reads static customers from CSV, in one of two
// forms:
//
//   - rows of "prefix or IP, customer name[, customer id]", without a
//     header row;
//   - a header row naming the columns, in any order (a billing system's
//     export): the address, name and id columns are those of cols, or
//     the first among the usual names; other columns are ignored.
//
// The first row is a header when cols names a column or when one of its
// fields is a usual column name. Blank lines and lines starting with "#"
// are skipped; the id is optional. Every problem is reported, each naming
// its line and column.
func ParseSubscriberCSVColumns(r io.Reader, cols CSVColumns) ([]store.Subscriber, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.Comment = '#'
	var (
		out    []store.Subscriber
		errs   []error
		layout *csvLayout
	)
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read CSV: %w", err)
		}
		l, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if layout == nil {
			var header bool
			layout, header, err = newCSVLayout(rec, cols)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", l, err)
			}
			if header {
				continue
			}
		}
		sub, rowErrs := layout.row(l, rec)
		if len(rowErrs) > 0 {
			errs = append(errs, rowErrs...)
			continue
		}
		out = append(out, sub)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// csvLayout is where a subscriber CSV file keeps its columns.
type csvLayout struct {
	header         []string // nil without a header row
	addr, name, id int      // field indexes; id is -1 when there is none
}

// newCSVLayout reads the first row of a file: a header (header is true)
// or the first data row of the header-less form.
func newCSVLayout(rec []string, cols CSVColumns) (*csvLayout, bool, error) {
	explicit := cols != CSVColumns{}
	known := false
	for _, f := range rec {
		for _, names := range [][]string{HeaderAddress, HeaderName, HeaderID} {
			if headerIndex([]string{f}, names) == 0 {
				known = true
			}
		}
	}
	_, err := parsePrefixOrAddr(strings.TrimSpace(rec[0]))
	isData := err == nil
	switch {
	case isData && explicit:
		return nil, false, fmt.Errorf("columns are named (%s) but the file has no header row", cols.describe())
	case isData || !known && !explicit:
		return &csvLayout{addr: 0, name: 1, id: 2}, false, nil
	}
	lay := &csvLayout{header: rec, addr: -1, name: -1, id: -1}
	var errs []error
	taken := map[int]bool{}
	for _, c := range []struct {
		dst    *int
		what   string
		named  string
		usual  []string
		needed bool
	}{
		{&lay.addr, "address", cols.Address, HeaderAddress, true},
		{&lay.name, "name", cols.Name, HeaderName, true},
		{&lay.id, "id", cols.ID, HeaderID, cols.ID != ""},
	} {
		if c.named != "" {
			i := headerIndex(rec, []string{c.named})
			if i < 0 {
				errs = append(errs, fmt.Errorf("no %s column %q in the header (%s)", c.what, c.named, quoteList(rec)))
				continue
			}
			*c.dst, taken[i] = i, true
			continue
		}
		for _, u := range c.usual {
			if i := headerIndexExcept(rec, u, taken); i >= 0 {
				*c.dst, taken[i] = i, true
				break
			}
		}
		if *c.dst < 0 && c.needed {
			errs = append(errs, fmt.Errorf("no %s column in the header (%s): want one of %s", c.what, quoteList(rec), quoteList(c.usual)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, false, err
	}
	return lay, true, nil
}

// describe lists the named columns.
func (c CSVColumns) describe() string {
	var parts []string
	for _, p := range []struct{ what, name string }{{"address", c.Address}, {"name", c.Name}, {"id", c.ID}} {
		if p.name != "" {
			parts = append(parts, fmt.Sprintf("%s %q", p.what, p.name))
		}
	}
	return strings.Join(parts, ", ")
}

// column names field i for errors: its header, else its position and role.
func (lay *csvLayout) column(i int, role string) string {
	if lay.header != nil {
		return fmt.Sprintf("column %q", strings.TrimSpace(lay.header[i]))
	}
	return fmt.Sprintf("column %d (%s)", i+1, role)
}

// row parses one data row found at line l.
func (lay *csvLayout) row(l int, rec []string) (store.Subscriber, []error) {
	if lay.header == nil {
		if len(rec) < 2 || len(rec) > 3 {
			return store.Subscriber{}, []error{fmt.Errorf("line %d: want 2 or 3 fields (prefix or IP, customer name, customer id), got %d", l, len(rec))}
		}
	}
	var errs []error
	field := func(i int, role string) (string, bool) {
		if i >= len(rec) {
			errs = append(errs, fmt.Errorf("line %d, %s: missing (the row has %d fields)", l, lay.column(i, role), len(rec)))
			return "", false
		}
		return strings.TrimSpace(rec[i]), true
	}
	var sub store.Subscriber
	if a, ok := field(lay.addr, "address"); ok {
		p, err := parsePrefixOrAddr(a)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d, %s: %w", l, lay.column(lay.addr, "address"), err))
		}
		sub.Prefix = p
	}
	if n, ok := field(lay.name, "name"); ok {
		if n == "" {
			errs = append(errs, fmt.Errorf("line %d, %s: customer name must not be empty", l, lay.column(lay.name, "name")))
		}
		sub.Name = n
	}
	if lay.id >= 0 && lay.id < len(rec) {
		sub.CustomerID = strings.TrimSpace(rec[lay.id])
	}
	sub.Source = store.SourceCSV
	return sub, errs
}

// normHeader folds a header name for comparison: lower case, without
// spaces, "-" and "_".
func normHeader(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '_', '\t':
			return -1
		}
		return unicode.ToLower(r)
	}, strings.TrimSpace(s))
}

// headerIndex returns the index of the first field of rec that is one of
// names (the earliest name first), -1 when none is.
func headerIndex(rec, names []string) int {
	for _, n := range names {
		if i := headerIndexExcept(rec, n, nil); i >= 0 {
			return i
		}
	}
	return -1
}

// headerIndexExcept returns the index of the first field of rec named
// name that is not taken, -1 when there is none.
func headerIndexExcept(rec []string, name string, taken map[int]bool) int {
	n := normHeader(name)
	for i, f := range rec {
		if !taken[i] && normHeader(f) == n {
			return i
		}
	}
	return -1
}

// quoteList quotes and joins names for messages.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(strings.TrimSpace(n))
	}
	return strings.Join(q, ", ")
}

func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("invalid prefix %q: %w", s, err)
		}
		a := p.Addr().Unmap()
		bits := p.Bits()
		if p.Addr().Is4In6() {
			bits -= 96
		}
		if bits < 0 {
			return p, fmt.Errorf("invalid prefix %q", s)
		}
		return netip.PrefixFrom(a, bits).Masked(), nil
	}
	if p, ok := hostPrefix(s); ok {
		return p, nil
	}
	return netip.Prefix{}, fmt.Errorf("invalid address or prefix %q", s)
}

// ImportSubscribers applies a CSV import to the history in st: rows whose
// prefix has no current imported record, or a different name or id, start
// at now; with replace, current imported records absent from rows end at
// now. It is what `flowbox subscribers import` runs; a running flowbox
// picks the change up at its next poll.
func ImportSubscribers(ctx context.Context, st SubscriberStore, rows []store.Subscriber, replace bool, now time.Time, maxRecords int) (ImportResult, error) {
	h := newHistory(st, 0, maxRecords, newMetrics())
	if err := h.load(ctx, now); err != nil {
		return ImportResult{}, err
	}
	obs := make([]observation, 0, len(rows))
	for _, r := range rows {
		obs = append(obs, observation{prefix: r.Prefix, source: store.SourceCSV, name: r.Name, customerID: r.CustomerID})
	}
	ch, err := h.apply(ctx, 0, []string{store.SourceCSV}, obs, now, now, !replace)
	if err != nil {
		return ImportResult{}, fmt.Errorf("cannot import subscribers: %w", err)
	}
	return ImportResult{Rows: len(rows), Opened: ch.opened, Ended: ch.ended, Dropped: ch.dropped}, nil
}
