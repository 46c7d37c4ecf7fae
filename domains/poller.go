// Package domains names the remote addresses of flows with the names the
// customers visited, from the routers' own DNS caches: most small WISPs
// use the MikroTik router as their customers' resolver, so its cache holds
// the names its customers just resolved, with the addresses they got.
//
// The Poller reads each router's DNS cache over the API (RouterOS 6 and 7:
// /ip/dns/cache/all, name, type, data, ttl), follows CNAME chains back to
// the name the customer asked, and records each address's names with the
// time they applied in a History, which labels flows at ingest (Label) by
// what the address meant at the flow's time. It also checks that the
// router is its customers' resolver (allow-remote-requests, and where the
// customers' DNS flows go: Observe) and says what it means when it is not.
// Reverse fills in, with PTR lookups marked as such, the top remote hosts
// that no cache names.
//
// New only builds; Run polls until its context ends.
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

	"github.com/flowbox/flowbox/internal/poll"
	"github.com/flowbox/flowbox/routeros"
	"github.com/flowbox/flowbox/store"
)

// API is the part of a RouterOS API session the poller uses: Print runs
// `<path>/print` with `=.proplist=` and optional query words.
type API interface {
	Print(ctx context.Context, path string, proplist []string, query ...string) ([]map[string]string, error)
	Close() error
}

// ErrUnavailable is wrapped by API errors when the router lacks a menu.
var ErrUnavailable = routeros.ErrUnavailable

// DialFunc opens an API session with a router of the inventory.
type DialFunc func(ctx context.Context, r store.Router) (API, error)

// RouterLister lists the router inventory.
type RouterLister interface {
	ListRouters(ctx context.Context) ([]store.Router, error)
}

// Deps are the poller's dependencies.
type Deps struct {
	Logger  *slog.Logger
	Routers RouterLister
	Dial    DialFunc
	// History receives the names (required).
	History *History
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Resolver verdicts of RouterStatus.Resolver.
const (
	ResolverYes     = "yes"
	ResolverNo      = "no"
	ResolverUnknown = "unknown"
)

// RouterStatus is what the poller knows of one router's DNS cache and
// whether the router is its customers' resolver.
type RouterStatus struct {
	RouterID int64  `json:"router_id"`
	Router   string `json:"router"`
	// Polls and Failures count the cache polls since flowbox started;
	// LastError is the latest failure, cleared by a successful poll.
	Polls       uint64    `json:"polls"`
	Failures    uint64    `json:"failures"`
	LastPoll    time.Time `json:"last_poll"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at"`
	// Entries is the number of cache entries read at the last poll, and
	// Names the addresses they named (CNAME chains followed).
	Entries int `json:"entries"`
	Names   int `json:"names"`
	// Cut counts the entries left unread by max-entries-per-poll, BadRows
	// those skipped as malformed, Dropped the names the full history
	// refused (all since flowbox started).
	Cut     uint64 `json:"cut"`
	BadRows uint64 `json:"bad_rows"`
	Dropped uint64 `json:"dropped"`
	// RemoteRequests is /ip/dns allow-remote-requests (nil until read).
	RemoteRequests *bool `json:"remote_requests"`
	// DNSFlowsToRouter and DNSFlowsElsewhere count the customers' DNS
	// queries (flows to port 53) seen lately, to one of the router's own
	// addresses or to another resolver.
	DNSFlowsToRouter  uint64 `json:"dns_flows_to_router"`
	DNSFlowsElsewhere uint64 `json:"dns_flows_elsewhere"`
	// Resolver says whether the router is its customers' resolver (yes,
	// no or unknown), and Warning what it means when it is not.
	Resolver string `json:"resolver"`
	Warning  string `json:"warning,omitempty"`
}

// MinDNSFlows is the number of customers' DNS flows the resolver check
// needs before it judges where they go.
const MinDNSFlows = 20

// ResolverWindow is how long the customers' DNS flows are counted before
// older counts are forgotten (the status shows the last one or two
// windows).
const ResolverWindow = 15 * time.Minute

// Poller reads the routers' DNS caches into a History.
type Poller struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	now  func() time.Time

	mu      sync.Mutex
	routers map[int64]*routerState
	rotated time.Time

	obs atomic.Pointer[observer]
}

// routerState is what the poller keeps per router.
type routerState struct {
	status RouterStatus
	lastOK time.Time // the last successful poll
	own    []netip.Addr
	counts *dnsCounts
}

// dnsCounts are one router's customers' DNS flows: this window's and the
// previous one's.
type dnsCounts struct {
	to, elsewhere         atomic.Uint64
	prevTo, prevElsewhere atomic.Uint64
}

// observer is what Observe reads: immutable once published.
type observer struct {
	routers map[int64]*routerObs
}

type routerObs struct {
	own    map[netip.Addr]struct{}
	counts *dnsCounts
}

// New builds a poller.
func New(cfg Config, deps Deps) (*Poller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid domains configuration: %w", err)
	}
	if deps.Logger == nil || deps.Routers == nil || deps.Dial == nil || deps.History == nil {
		return nil, errors.New("cannot build the DNS cache poller: Logger, Routers, Dial and History are required")
	}
	p := &Poller{cfg: cfg, deps: deps, log: deps.Logger, now: deps.Now, routers: map[int64]*routerState{}}
	if p.now == nil {
		p.now = time.Now
	}
	p.obs.Store(&observer{})
	return p, nil
}

// Run polls every router each PollInterval until ctx ends.
func (p *Poller) Run(ctx context.Context) error {
	if !p.cfg.Enabled {
		<-ctx.Done()
		return nil
	}
	poll.Every(ctx, p.cfg.PollInterval, p.Round)
	return nil
}

// Round polls every router of the inventory once (Concurrency at a time).
func (p *Poller) Round(ctx context.Context) {
	routers, err := p.deps.Routers.ListRouters(ctx)
	if err != nil {
		p.log.Warn("cannot list routers for the DNS cache poll", "error", err)
		return
	}
	poll.Each(routers, p.cfg.Concurrency, func(r store.Router) { p.PollRouter(ctx, r) })
	keep := make(map[int64]bool, len(routers))
	for _, r := range routers {
		keep[r.ID] = true
	}
	p.mu.Lock()
	for id := range p.routers {
		if !keep[id] {
			delete(p.routers, id)
		}
	}
	if now := p.now(); now.Sub(p.rotated) >= ResolverWindow {
		p.rotated = now
		for _, rs := range p.routers {
			rs.counts.prevTo.Store(rs.counts.to.Swap(0))
			rs.counts.prevElsewhere.Store(rs.counts.elsewhere.Swap(0))
		}
	}
	p.publishLocked()
	p.mu.Unlock()
}

// publishLocked rebuilds what Observe reads.
func (p *Poller) publishLocked() {
	o := &observer{routers: make(map[int64]*routerObs, len(p.routers))}
	for id, rs := range p.routers {
		ro := &routerObs{own: make(map[netip.Addr]struct{}, len(rs.own)), counts: rs.counts}
		for _, a := range rs.own {
			ro.own[a] = struct{}{}
		}
		o.routers[id] = ro
	}
	p.obs.Store(o)
}

// Observe counts the customers' DNS queries among flows (upload or
// internal flows to port 53 over UDP or TCP, attributed to a polled
// router): to one of the router's own addresses, or elsewhere. Call it on
// each batch after enrichment (Direction and RouterID set); it takes no
// allocation and no lock.
func (p *Poller) Observe(flows []store.Flow) {
	o := p.obs.Load()
	if len(o.routers) == 0 {
		return
	}
	for i := range flows {
		f := &flows[i]
		if f.DstPort != 53 || (f.Proto != 17 && f.Proto != 6) {
			continue
		}
		switch f.Direction {
		case store.DirUpload, store.DirInternal, store.DirUnknown:
		default:
			continue // the router's own queries, answers, transit
		}
		ro := o.routers[f.RouterID]
		if ro == nil {
			continue
		}
		if _, mine := ro.own[f.DstAddr.Unmap()]; mine {
			ro.counts.to.Add(1)
		} else {
			ro.counts.elsewhere.Add(1)
		}
	}
}

// Status returns each polled router's status, by router name.
func (p *Poller) Status() []RouterStatus {
	p.mu.Lock()
	out := make([]RouterStatus, 0, len(p.routers))
	for _, rs := range p.routers {
		st := rs.status
		st.DNSFlowsToRouter = rs.counts.to.Load() + rs.counts.prevTo.Load()
		st.DNSFlowsElsewhere = rs.counts.elsewhere.Load() + rs.counts.prevElsewhere.Load()
		st.Resolver, st.Warning = verdict(st)
		out = append(out, st)
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b RouterStatus) int { return strings.Compare(a.Router, b.Router) })
	return out
}

// verdict says whether the router is its customers' resolver and, when it
// is not, what that means.
func verdict(st RouterStatus) (string, string) {
	if st.RemoteRequests != nil && !*st.RemoteRequests {
		return ResolverNo, "allow-remote-requests is off in /ip dns: the router does not answer its customers' DNS " +
			"queries, so its cache holds only its own lookups and the domains its customers visit will be missing " +
			"(the top remote hosts get reverse-DNS names instead, which name the host's operator, not the site)"
	}
	total := st.DNSFlowsToRouter + st.DNSFlowsElsewhere
	if total >= MinDNSFlows && st.DNSFlowsElsewhere*2 > total {
		return ResolverNo, fmt.Sprintf("%d%% of the customers' DNS queries (%d of %d flows) go to other resolvers than "+
			"the router: the names they resolve are not in its cache, so their domains will be missing (the top "+
			"remote hosts get reverse-DNS names instead). Hand out the router as DNS server (DHCP, PPP profile) or "+
			"redirect port 53 to it", st.DNSFlowsElsewhere*100/total, st.DNSFlowsElsewhere, total)
	}
	if st.RemoteRequests != nil {
		return ResolverYes, ""
	}
	return ResolverUnknown, ""
}

// Menus the poller reads.
var (
	propsDNS      = []string{"allow-remote-requests"}
	propsCacheAll = []string{"name", "type", "data", "ttl"}
	propsCacheV6  = []string{"name", "address", "type", "data", "ttl"}
	propsAddress  = []string{"address", "disabled", "invalid"}
)

// PollRouter reads one router's DNS cache now and records its names. A
// failure is counted on the router and shown in its status.
func (p *Poller) PollRouter(ctx context.Context, r store.Router) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	p.mu.Lock()
	rs := p.routers[r.ID]
	if rs == nil {
		rs = &routerState{counts: &dnsCounts{}}
		p.routers[r.ID] = rs
	}
	st := rs.status
	from := rs.lastOK
	p.mu.Unlock()
	st.RouterID, st.Router = r.ID, r.Name
	st.Polls++
	res, err := p.poll(ctx, r)
	now := p.now()
	st.LastPoll = now
	st.BadRows += res.bad
	st.Cut += res.cut
	if res.remote != nil {
		st.RemoteRequests = res.remote
	}
	if err != nil {
		st.Failures++
		st.LastError, st.LastErrorAt = err.Error(), now
		p.log.Warn("cannot read the DNS cache", "router", r.Name, "error", err)
	} else {
		st.LastError = ""
		// The names were not in the previous successful poll's cache:
		// the address had them since just after it, at the latest.
		if from.IsZero() {
			from = now.Add(-p.cfg.PollInterval)
		} else {
			from = from.Add(time.Millisecond)
		}
		st.Entries = res.entries
		st.Names = 0
		for _, s := range res.sightings {
			s.RouterID, s.From, s.Seen, s.Until = r.ID, from, now, now.Add(s.Until.Sub(time.Time{}))
			switch err := p.deps.History.Add(s); {
			case err == nil:
				st.Names++
			case errors.Is(err, ErrFull):
				st.Dropped++
			default:
				st.BadRows++
			}
		}
		if res.cut > 0 {
			p.log.Warn("DNS cache larger than max-entries-per-poll: entries cut", "router", r.Name, "cut", res.cut,
				"max", p.cfg.MaxEntriesPerPoll)
		}
	}
	p.mu.Lock()
	rs.status = st
	if err == nil {
		rs.lastOK = now
	}
	if res.own != nil {
		rs.own = res.own
	}
	p.mu.Unlock()
}

// polled is what one poll read.
type polled struct {
	remote    *bool
	own       []netip.Addr // nil when /ip/address could not be read
	entries   int
	cut, bad  uint64
	sightings []Sighting // Until holds the TTL left, from the zero time
}

// poll reads the router.
func (p *Poller) poll(ctx context.Context, r store.Router) (polled, error) {
	var res polled
	api, err := p.deps.Dial(ctx, r)
	if err != nil {
		return res, err
	}
	defer api.Close()
	if rows, err := api.Print(ctx, "/ip/dns", propsDNS); err != nil {
		return res, fmt.Errorf("cannot read /ip/dns: %w", err)
	} else if len(rows) > 0 {
		switch rows[0]["allow-remote-requests"] {
		case "true", "yes":
			on := true
			res.remote = &on
		case "false", "no":
			off := false
			res.remote = &off
		}
	}
	for _, path := range []string{"/ip/address", "/ipv6/address"} {
		rows, err := api.Print(ctx, path, propsAddress)
		if errors.Is(err, ErrUnavailable) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("cannot read %s: %w", path, err)
		}
		if res.own == nil {
			res.own = []netip.Addr{}
		}
		for _, row := range rows {
			if row["disabled"] == "true" || row["invalid"] == "true" {
				continue
			}
			if pf, err := netip.ParsePrefix(row["address"]); err == nil {
				res.own = append(res.own, pf.Addr().Unmap())
			}
		}
	}
	rows, err := api.Print(ctx, "/ip/dns/cache/all", propsCacheAll)
	if errors.Is(err, ErrUnavailable) {
		rows, err = api.Print(ctx, "/ip/dns/cache", propsCacheV6)
	}
	if err != nil {
		return res, fmt.Errorf("cannot read the DNS cache: %w", err)
	}
	if len(rows) > p.cfg.MaxEntriesPerPoll {
		res.cut = uint64(len(rows) - p.cfg.MaxEntriesPerPoll)
		rows = rows[:p.cfg.MaxEntriesPerPoll]
	}
	res.entries = len(rows)
	var bad int
	res.sightings, bad = Chains(rows)
	res.bad += uint64(bad)
	return res, nil
}

// maxChain bounds how far a CNAME chain is followed back.
const maxChain = 8

// Chains turns DNS cache rows (name, type, data, ttl; RouterOS 6's
// /ip/dns/cache rows have address instead of type and data) into
// sightings: each A or AAAA record's address with the name the customer
// asked, found by following CNAME chains back to their head (a name no
// CNAME points to), and the TTL left of the whole chain in Until (from
// the zero time). It also returns the number of malformed rows skipped.
// Other record types are ignored.
func Chains(rows []map[string]string) ([]Sighting, int) {
	type rec struct {
		name string
		ttl  time.Duration
	}
	type addrRec struct {
		rec
		addr netip.Addr
	}
	bad := 0
	cnames := map[string][]rec{} // target -> the names that point to it
	var addrs []addrRec
	for _, row := range rows {
		typ, data := strings.ToUpper(row["type"]), row["data"]
		if typ == "" && row["address"] != "" {
			typ, data = "A", row["address"]
		}
		if typ != "A" && typ != "AAAA" && typ != "CNAME" {
			continue
		}
		name, err := NormalizeName(row["name"])
		if err != nil {
			bad++
			continue
		}
		ttl, err := routeros.ParseDuration(row["ttl"])
		if err != nil || ttl <= 0 {
			bad++
			continue
		}
		if typ == "CNAME" {
			target, err := NormalizeName(data)
			if err != nil {
				bad++
				continue
			}
			cnames[target] = append(cnames[target], rec{name, ttl})
			continue
		}
		a, err := netip.ParseAddr(data)
		if err != nil || a.Is4() != (typ == "A") && !a.Is4In6() || a.IsUnspecified() {
			bad++
			continue
		}
		addrs = append(addrs, addrRec{rec{name, ttl}, a.Unmap()})
	}
	var out []Sighting
	var heads func(r rec, depth int, seen []string)
	var cur netip.Addr
	heads = func(r rec, depth int, seen []string) {
		from := cnames[r.name]
		if len(from) == 0 || depth >= maxChain || slices.Contains(seen, r.name) {
			out = append(out, Sighting{Addr: cur, Name: r.name, Until: time.Time{}.Add(r.ttl)})
			return
		}
		for _, f := range from {
			heads(rec{f.name, min(f.ttl, r.ttl)}, depth+1, append(seen, r.name))
		}
	}
	for _, a := range addrs {
		cur = a.addr
		heads(a.rec, 0, nil)
	}
	return out, bad
}

// DialRouterOS is the production DialFunc: it logs in to r over the
// RouterOS API (TLS pinned to r.TLSFingerprint when set).
func DialRouterOS(ctx context.Context, r store.Router) (API, error) {
	c, err := routeros.Dial(ctx, routeros.Options{Address: r.Address, Username: r.Username, Password: r.Password,
		TLS: r.TLS, Fingerprint: r.TLSFingerprint})
	if err != nil {
		return nil, fmt.Errorf("cannot dial router %s: %w", r.Name, err)
	}
	return c, nil
}
