package domains

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/publicsuffix"

	"github.com/flowbox/flowbox/store"
)

// Label is what a remote address was named at a time.
type Label struct {
	// Name is the full name, as the customer asked it: for a CNAME chain
	// the head of the chain (www.youtube.com), not the CDN's canonical
	// name (youtube-ui.l.google.com).
	Name string
	// Domain is Name's registrable domain (public suffix plus one label:
	// youtube.com, bbc.co.uk), or Name itself when it has none.
	Domain string
	// Reverse is set when the name came from a reverse (PTR) lookup, not
	// from a router's DNS cache: it says who runs the host, not what the
	// customer visited.
	Reverse bool
}

// Sighting is one name seen for an address: a router's cache entry (or a
// chain of them), or a PTR answer.
type Sighting struct {
	Addr netip.Addr
	// Name is the name asked (the head of a CNAME chain).
	Name     string
	RouterID int64 // the router whose cache held it; 0 for PTR answers
	Reverse  bool
	// From is since when the address had the name at the latest: the
	// previous poll that did not see it (or when it was loaded).
	From time.Time
	// Seen is when it was seen.
	Seen time.Time
	// Until is when its TTL runs out.
	Until time.Time
}

// ErrFull is returned by Add when the history holds MaxNames names: the
// name is dropped and counted.
var ErrFull = errors.New("name history full")

// ErrBadName is wrapped by Add's error for a name that is not a valid DNS
// name; it is skipped and counted.
var ErrBadName = errors.New("invalid DNS name")

// DNSNameStore keeps the history across restarts (*inventory.Inventory
// implements it).
type DNSNameStore interface {
	store.DNSNames
}

// nameInfo is an interned name with its registrable domain, shared by every
// address that had the name. dom is the domain's index in
// History.domains (0 when that table is full).
type nameInfo struct {
	name, domain string
	dom          uint16
}

// maxDomains bounds the table of registrable domains that spans index, so
// that labelling a flow reads the domain without dereferencing the name
// (one cache miss less); the domains beyond it are read through the name.
const maxDomains = 1 << 16

// span is one period during which an address had a name. Times are unix
// milliseconds. from is immutable (it keys the stored row); to and seen
// only grow.
type span struct {
	info     *nameInfo
	from, to int64
	seen     int64
	router   int32
	dom      uint16 // info.dom, here to spare the dereference
	reverse  bool
}

// entry is an address's spans: the first inline (most addresses have one
// name), the others in more (nil while there are none). It fills one
// 64-byte cache line with its key.
type entry struct {
	first span
	more  *[]span
}

// extra returns the spans after the first.
func (e *entry) extra() []span {
	if e.more == nil {
		return nil
	}
	return *e.more
}

// push adds a span and returns it.
func (e *entry) push(s span) *span {
	if e.more == nil {
		e.more = &[]span{}
	}
	*e.more = append(*e.more, s)
	return &(*e.more)[len(*e.more)-1]
}

// numShards splits the address map so that labelling on several cores
// does not contend on one lock.
const numShards = 64

type shard struct {
	mu sync.RWMutex
	t  table
	_  [24]byte // keep shards on their own cache lines
}

// pendKey identifies a stored row: the address, the name, the source and
// the start.
type pendKey struct {
	addr    [16]byte
	name    string
	reverse bool
	from    int64
}

// HistoryStats are the history's counters, for the API and the console.
type HistoryStats struct {
	// Names is the number of names kept (an address with two names
	// counts twice); MaxNames the bound.
	Names    int `json:"names"`
	MaxNames int `json:"max_names"`
	// Dropped counts names not kept because the history was full,
	// BadNames names skipped as invalid.
	Dropped  uint64 `json:"dropped"`
	BadNames uint64 `json:"bad_names"`
	// Pending is the number of rows waiting to be saved; WriteFailures
	// counts failed saves, WriteDropped rows lost because the queue of
	// unsaved rows was full.
	Pending       int    `json:"pending"`
	WriteFailures uint64 `json:"write_failures"`
	WriteDropped  uint64 `json:"write_dropped"`
}

// History maps remote addresses to the names they had, with time ranges,
// so that a flow is named by what its remote address meant at the flow's
// time. It is kept by address, not per router: what one router's cache
// said applies to every router (each name records which router saw it).
// All methods are safe for concurrent use; Label is the ingest hot path.
type History struct {
	cfg    Config
	st     DNSNameStore // nil: not persisted
	log    *slog.Logger
	now    func() time.Time
	linger int64 // ms

	shards [numShards]shard
	names  atomic.Int64

	imu    sync.Mutex
	intern map[string]*nameInfo
	// domains are the registrable domains by index (0 unused); written
	// under imu before any span holds the index, read without a lock
	// (the slice itself never changes). domainIDs indexes them.
	domains   []string
	domainIDs map[string]uint16

	pmu     sync.Mutex
	pending map[pendKey]store.DNSName

	dropped, badNames           atomic.Uint64
	writeFailures, writeDropped atomic.Uint64
}

// NewHistory builds an empty history. st may be nil (nothing is saved);
// now may be nil (time.Now).
func NewHistory(cfg Config, st DNSNameStore, logger *slog.Logger, now func() time.Time) (*History, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid domains configuration: %w", err)
	}
	if logger == nil {
		return nil, errors.New("cannot build the name history: nil logger")
	}
	if now == nil {
		now = time.Now
	}
	h := &History{cfg: cfg, st: st, log: logger, now: now, linger: cfg.Linger.Milliseconds(),
		intern: map[string]*nameInfo{}, pending: map[pendKey]store.DNSName{},
		domains: make([]string, maxDomains), domainIDs: map[string]uint16{}}
	return h, nil
}

func (h *History) shard(hash uint64) *shard { return &h.shards[hash>>58] }

// Label returns what addr was named at atMs (unix milliseconds): among the
// names whose time range (extended by Linger past the TTL) covers atMs,
// the most recently seen. It takes no allocation.
func (h *History) Label(addr netip.Addr, atMs int64) (Label, bool) {
	return h.LabelRange(addr, atMs, atMs)
}

// LabelRange is Label for a flow that lasted from fromMs to toMs: among
// the names whose time range overlaps the flow, the most recently seen.
func (h *History) LabelRange(addr netip.Addr, fromMs, toMs int64) (Label, bool) {
	return h.LabelIn(addr, fromMs, toMs, "")
}

// LabelIn is LabelRange preferring the names of registrable domain dom
// ("": any): a stored flow carries the domain its address had when it was
// written, and a name seen since (an address that serves several domains)
// must not contradict it.
func (h *History) LabelIn(addr netip.Addr, fromMs, toMs int64, dom string) (Label, bool) {
	if !addr.IsValid() {
		return Label{}, false
	}
	k := keyOf(addr)
	hash := k.hash()
	sh := h.shard(hash)
	sh.mu.RLock()
	e := sh.t.get(k, hash)
	if e == nil {
		sh.mu.RUnlock()
		return Label{}, false
	}
	var best, bestIn *span
	consider := func(s *span) {
		if s.from > toMs || fromMs > s.to+h.linger {
			return
		}
		if best == nil || later(s, best) {
			best = s
		}
		if dom != "" && !s.reverse && h.spanDomain(s) == dom && (bestIn == nil || later(s, bestIn)) {
			bestIn = s
		}
	}
	consider(&e.first)
	more := e.extra()
	for i := range more {
		consider(&more[i])
	}
	if bestIn != nil {
		best = bestIn
	}
	var l Label
	if best != nil {
		l = Label{Name: best.info.name, Domain: best.info.domain, Reverse: best.reverse}
	}
	sh.mu.RUnlock()
	return l, best != nil
}

// Domain returns the registrable domain a router's DNS cache gave addr
// during [fromMs, toMs] (the most recently seen name; reverse DNS names
// are no visited domain): Label's answer for the flow path, which reads
// the domain without touching the name (one cache miss less).
func (h *History) Domain(addr netip.Addr, fromMs, toMs int64) (string, bool) {
	if !addr.IsValid() {
		return "", false
	}
	k := keyOf(addr)
	hash := k.hash()
	sh := h.shard(hash)
	sh.mu.RLock()
	e := sh.t.get(k, hash)
	if e == nil {
		sh.mu.RUnlock()
		return "", false
	}
	var best *span
	if s := &e.first; s.from <= toMs && fromMs <= s.to+h.linger {
		best = s
	}
	if e.more != nil {
		more := *e.more
		for i := range more {
			s := &more[i]
			if s.from <= toMs && fromMs <= s.to+h.linger && (best == nil || later(s, best)) {
				best = s
			}
		}
	}
	var d string
	ok := best != nil && !best.reverse
	if ok {
		if best.dom != 0 {
			d = h.domains[best.dom]
		} else {
			d = best.info.domain
		}
	}
	sh.mu.RUnlock()
	return d, ok
}

// spanDomain is the registrable domain of span s's name.
func (h *History) spanDomain(s *span) string {
	if s.dom != 0 {
		return h.domains[s.dom]
	}
	return s.info.domain
}

// later reports whether a wins over b: seen more recently, then a name
// from a cache over a PTR answer, then the longer TTL.
func later(a, b *span) bool {
	if a.seen != b.seen {
		return a.seen > b.seen
	}
	if a.reverse != b.reverse {
		return !a.reverse
	}
	return a.to > b.to
}

// NormalizeName returns name in lower case without the final dot, or an
// error when it is not a valid DNS host name (labels of 1..63 letters,
// digits, '-' or '_', 253 characters at most).
func NormalizeName(name string) (string, error) {
	n := strings.TrimSuffix(name, ".")
	if n == "" || len(n) > 253 {
		return "", fmt.Errorf("%w: %q", ErrBadName, name)
	}
	lower := true
	label := 0
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case c == '.':
			if label == 0 {
				return "", fmt.Errorf("%w: %q (empty label)", ErrBadName, name)
			}
			label = 0
			continue
		case c >= 'A' && c <= 'Z':
			lower = false
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return "", fmt.Errorf("%w: %q", ErrBadName, name)
		}
		label++
		if label > 63 {
			return "", fmt.Errorf("%w: %q (label longer than 63)", ErrBadName, name)
		}
	}
	if label == 0 {
		return "", fmt.Errorf("%w: %q (empty label)", ErrBadName, name)
	}
	if !lower {
		n = strings.ToLower(n)
	}
	return n, nil
}

// RegistrableDomain returns the public suffix plus one label of a
// normalised name (googlevideo.com for rr3---sn-x.googlevideo.com,
// bbc.co.uk for www.bbc.co.uk), or the name itself when it is a public
// suffix or has a single label.
func RegistrableDomain(name string) string {
	d, err := publicsuffix.EffectiveTLDPlusOne(name)
	if err != nil {
		return name
	}
	return d
}

// internName returns the shared nameInfo of name (normalised).
func (h *History) internName(name string) *nameInfo {
	h.imu.Lock()
	defer h.imu.Unlock()
	if ni := h.intern[name]; ni != nil {
		return ni
	}
	ni := &nameInfo{name: strings.Clone(name), domain: RegistrableDomain(name)}
	if ni.domain == name {
		ni.domain = ni.name
	}
	if id, ok := h.domainIDs[ni.domain]; ok {
		ni.dom = id
	} else if n := len(h.domainIDs) + 1; n < maxDomains {
		h.domains[n] = ni.domain
		h.domainIDs[ni.domain] = uint16(n)
		ni.dom = uint16(n)
	}
	h.intern[ni.name] = ni
	return ni
}

// Add records a sighting. A name the address already had over a range
// that meets the sighting's is extended; otherwise a new range starts. It
// returns an error wrapping ErrBadName for an invalid name (counted), or
// ErrFull when MaxNames names are kept (the name is dropped and counted).
func (h *History) Add(s Sighting) error {
	if !s.Addr.IsValid() {
		h.badNames.Add(1)
		return fmt.Errorf("%w: no address for %q", ErrBadName, s.Name)
	}
	name, err := NormalizeName(s.Name)
	if err != nil {
		h.badNames.Add(1)
		return err
	}
	from, seen, until := s.From.UnixMilli(), s.Seen.UnixMilli(), s.Until.UnixMilli()
	if s.From.IsZero() || from > seen {
		from = seen
	}
	until = max(until, seen)
	k := keyOf(s.Addr)
	if k == (addrKey{}) {
		h.badNames.Add(1)
		return fmt.Errorf("%w: unspecified address for %q", ErrBadName, s.Name)
	}
	info := h.internName(name) // before the shard lock: Prune takes them one after the other
	hash := k.hash()
	sh := h.shard(hash)
	sh.mu.Lock()
	e := sh.t.get(k, hash)
	var sp *span
	if e != nil {
		match := func(x *span) bool {
			return x.info.name == name && x.reverse == s.Reverse && from <= x.to+h.linger && until >= x.from
		}
		if match(&e.first) {
			sp = &e.first
		}
		more := e.extra()
		for i := range more {
			if sp == nil && match(&more[i]) {
				sp = &more[i]
			}
		}
	}
	switch {
	case sp != nil:
		sp.to, sp.seen = max(sp.to, until), max(sp.seen, seen)
		if s.RouterID != 0 {
			sp.router = routerID(s.RouterID)
		}
	case h.names.Load() >= int64(h.cfg.MaxNames):
		sh.mu.Unlock()
		h.dropped.Add(1)
		return ErrFull
	default:
		ns := span{info: info, from: from, to: until, seen: seen, router: routerID(s.RouterID), dom: info.dom, reverse: s.Reverse}
		if e == nil {
			e, _ = sh.t.put(k, hash)
			e.first = ns
			sp = &e.first
		} else {
			sp = e.push(ns)
		}
		h.names.Add(1)
	}
	row := h.row(k, sp)
	sh.mu.Unlock()
	h.queue(row)
	return nil
}

// routerID narrows an inventory router id to the span's field (ids are
// small; an impossible one is recorded as 0, no router).
func routerID(id int64) int32 {
	if id < 0 || id > 1<<31-1 {
		return 0
	}
	return int32(id)
}

// row is the stored form of a span.
func (h *History) row(k addrKey, s *span) store.DNSName {
	return store.DNSName{Addr: k.addr(), Name: s.info.name, Domain: s.info.domain,
		RouterID: int64(s.router), Reverse: s.reverse, From: time.UnixMilli(s.from).UTC(), To: time.UnixMilli(s.to).UTC(),
		Seen: time.UnixMilli(s.seen).UTC()}
}

// queue adds a row to the unsaved ones (the latest state of each row).
func (h *History) queue(r store.DNSName) {
	if h.st == nil {
		return
	}
	k := pendKey{addr: r.Addr.As16(), name: r.Name, reverse: r.Reverse, from: r.From.UnixMilli()}
	h.pmu.Lock()
	defer h.pmu.Unlock()
	if _, ok := h.pending[k]; !ok && len(h.pending) >= h.cfg.MaxNames {
		h.writeDropped.Add(1)
		return
	}
	h.pending[k] = r
}

// Len returns the number of names kept (an address with two names counts
// twice).
func (h *History) Len() int { return int(h.names.Load()) }

// Dropped returns the number of names dropped because the history was
// full.
func (h *History) Dropped() uint64 { return h.dropped.Load() }

// Stats returns the history's counters.
func (h *History) Stats() HistoryStats {
	h.pmu.Lock()
	pending := len(h.pending)
	h.pmu.Unlock()
	return HistoryStats{Names: h.Len(), MaxNames: h.cfg.MaxNames, Dropped: h.dropped.Load(), BadNames: h.badNames.Load(),
		Pending: pending, WriteFailures: h.writeFailures.Load(), WriteDropped: h.writeDropped.Load()}
}

// Names returns the names addr had, oldest first.
func (h *History) Names(addr netip.Addr) []store.DNSName {
	if !addr.IsValid() {
		return nil
	}
	k := keyOf(addr)
	hash := k.hash()
	sh := h.shard(hash)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	e := sh.t.get(k, hash)
	if e == nil {
		return nil
	}
	out := []store.DNSName{h.row(k, &e.first)}
	more := e.extra()
	for i := range more {
		out = append(out, h.row(k, &more[i]))
	}
	slices.SortFunc(out, func(a, b store.DNSName) int { return a.From.Compare(b.From) })
	return out
}

// Current returns the names whose TTL has not run out at now (what the
// routers' caches hold, and live PTR answers), at most limit (0: all).
func (h *History) Current(now time.Time, limit int) []store.DNSName {
	ms := now.UnixMilli()
	var out []store.DNSName
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		sh.t.each(func(k addrKey, e *entry) bool {
			if e.first.to >= ms && e.first.from <= ms {
				out = append(out, h.row(k, &e.first))
			}
			more := e.extra()
			for j := range more {
				if s := &more[j]; s.to >= ms && s.from <= ms {
					out = append(out, h.row(k, s))
				}
			}
			return limit <= 0 || len(out) < limit
		})
		sh.mu.RUnlock()
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out
}

// Prune forgets the names that stopped applying (TTL plus Linger) more
// than Retention before now, and returns how many.
func (h *History) Prune(now time.Time) int {
	cut := now.Add(-h.cfg.Retention).UnixMilli() - h.linger
	live := map[*nameInfo]bool{}
	removed := 0
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		sh.t.filter(func(_ addrKey, e *entry) bool {
			all := append([]span{e.first}, e.extra()...)
			kept := slices.DeleteFunc(all, func(s span) bool { return s.to < cut })
			removed += len(all) - len(kept)
			if len(kept) == 0 {
				return false
			}
			if len(kept) != len(all) {
				*e = entry{first: kept[0]}
				if len(kept) > 1 {
					more := slices.Clone(kept[1:])
					e.more = &more
				}
			}
			for _, s := range kept {
				live[s.info] = true
			}
			return true
		})
		sh.mu.Unlock()
	}
	h.names.Add(-int64(removed))
	h.imu.Lock()
	for n, ni := range h.intern {
		if !live[ni] {
			delete(h.intern, n)
		}
	}
	h.imu.Unlock()
	return removed
}

// saveChunk is the most rows saved in one transaction.
const saveChunk = 2000

// Flush saves the rows changed since the last Flush. On failure the unsaved
// rows are kept for the next Flush (within the bound) and the failure is
// counted.
func (h *History) Flush(ctx context.Context) error {
	if h.st == nil {
		return nil
	}
	h.pmu.Lock()
	batch := h.pending
	h.pending = make(map[pendKey]store.DNSName, len(batch))
	h.pmu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	rows := make([]store.DNSName, 0, len(batch))
	for _, r := range batch {
		rows = append(rows, r)
	}
	for len(rows) > 0 {
		n := min(len(rows), saveChunk)
		if err := h.st.SaveDNSNames(ctx, rows[:n]); err != nil {
			h.writeFailures.Add(1)
			h.requeue(rows)
			return fmt.Errorf("cannot save %d DNS names: %w", len(rows), err)
		}
		rows = rows[n:]
	}
	return nil
}

// requeue puts unsaved rows back, unless a newer state of the row is
// already queued.
func (h *History) requeue(rows []store.DNSName) {
	h.pmu.Lock()
	defer h.pmu.Unlock()
	for _, r := range rows {
		k := pendKey{addr: r.Addr.As16(), name: r.Name, reverse: r.Reverse, from: r.From.UnixMilli()}
		if _, ok := h.pending[k]; ok {
			continue
		}
		if len(h.pending) >= h.cfg.MaxNames {
			h.writeDropped.Add(1)
			continue
		}
		h.pending[k] = r
	}
}

// Load reads the stored names that still apply within Retention of now.
// Call it before Run and before the poller starts.
func (h *History) Load(ctx context.Context) error {
	if h.st == nil {
		return nil
	}
	since := h.now().Add(-h.cfg.Retention - h.cfg.Linger)
	rows, err := h.st.DNSNameHistory(ctx, since)
	if err != nil {
		return fmt.Errorf("cannot load the DNS name history: %w", err)
	}
	for _, r := range rows {
		if err := h.load(r); errors.Is(err, ErrFull) {
			return fmt.Errorf("cannot load the DNS name history: %w after %d names (domains.max-names)", err, h.Len())
		}
	}
	return nil
}

// load adds a stored row as it was, without queueing it for saving again.
func (h *History) load(r store.DNSName) error {
	name, err := NormalizeName(r.Name)
	if err != nil || !r.Addr.IsValid() {
		h.badNames.Add(1)
		return ErrBadName
	}
	if h.names.Load() >= int64(h.cfg.MaxNames) {
		h.dropped.Add(1)
		return ErrFull
	}
	k := keyOf(r.Addr)
	if k == (addrKey{}) {
		h.badNames.Add(1)
		return ErrBadName
	}
	info := h.internName(name)
	hash := k.hash()
	sh := h.shard(hash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ns := span{info: info, from: r.From.UnixMilli(), to: r.To.UnixMilli(), seen: r.Seen.UnixMilli(), router: routerID(r.RouterID), dom: info.dom, reverse: r.Reverse}
	e, added := sh.t.put(k, hash)
	if added {
		e.first = ns
	} else {
		for _, x := range append([]span{e.first}, e.extra()...) {
			if x.info.name == name && x.reverse == r.Reverse && x.from == ns.from {
				return nil // loaded twice
			}
		}
		e.push(ns)
	}
	h.names.Add(1)
	return nil
}

// History's housekeeping intervals.
const (
	flushEvery = 15 * time.Second
	pruneEvery = 10 * time.Minute
)

// Run saves changed names every few seconds and prunes old ones (memory
// and store) every few minutes, until ctx ends; then it saves what is left.
func (h *History) Run(ctx context.Context) error {
	flush := time.NewTicker(flushEvery)
	defer flush.Stop()
	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := h.Flush(sctx); err != nil {
				h.log.Warn("cannot save the DNS names at shutdown", "error", err)
			}
			return nil
		case <-flush.C:
			if err := h.Flush(ctx); err != nil && ctx.Err() == nil {
				h.log.Warn("cannot save DNS names, will retry", "error", err)
			}
		case <-prune.C:
			h.PruneAll(ctx)
		}
	}
}

// PruneAll prunes the memory and the store.
func (h *History) PruneAll(ctx context.Context) {
	now := h.now()
	if n := h.Prune(now); n > 0 {
		h.log.Debug("DNS names pruned from memory", "names", n)
	}
	if h.st == nil {
		return
	}
	before := now.Add(-h.cfg.Retention - h.cfg.Linger)
	if _, err := h.st.PruneDNSNames(ctx, before); err != nil && ctx.Err() == nil {
		h.log.Warn("cannot prune the stored DNS names", "error", err)
	}
}
