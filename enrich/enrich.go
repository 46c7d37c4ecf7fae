// Package enrich labels flows at ingest so that rollups and queries carry
// names instead of addresses: the router a flow came from, its direction
// (download, upload, internal, transit, or a router's own traffic) seen
// from the subscribers, the subscriber's name, the application, and the AS
// number and country of both ends. It is the ingest pipeline's stage
// between decoding and the queue: each collector reader calls Enrich on its
// batch in place (Enricher is a collector.Stage), attributing the flows to
// their router once.
//
// # Where the data comes from
//
//   - Subscribers: polled from each router over the RouterOS API every
//     poll-interval (simple queues, PPP active sessions, DHCP leases, ARP
//     entries with a comment, DHCPv6 bindings (delegated prefixes, named
//     by comment, PPPoE login or DUID); a queue or interface named
//     "<pppoe-USER>" names USER), plus a CSV import for static customers.
//     A customer id (account number) written in those names and comments
//     ("Maria Lopez #1042") is found by customer-id-pattern and kept
//     beside the name, which loses it (SplitCustomerID).
//     They are kept as a history (prefix -> name, customer id, MAC,
//     source, valid from, valid to),
//     persisted in the store and mirrored in memory for HistoryWindow, so a
//     flow is attributed to whoever had its address when the flow started.
//     When several sources name an address, the CSV import wins, then
//     queues, PPP, DHCP and DHCPv6, and ARP (store.SourceRank); among
//     records of one rank the longest prefix wins. A new address is
//     backdated to the previous poll of its router (on the first poll of
//     a router, by FirstPollBackdate: what a router reports has held for
//     a while); an address that changes hands switches at the poll that
//     saw the change.
//   - Local prefixes: the configured prefixes, plus per router /ip/pool
//     ranges, /ip/dhcp-server/network networks, PPP and lease addresses,
//     queue targets, /ip/address and /ipv6/address networks, /ipv6/pool
//     prefixes and DHCPv6 bindings. Networks on an upstream
//     interface (configured, or the interface of the default route) are
//     not customer networks: only the router's own address there counts.
//   - ASN and country: the built-in tables (package geodata, CC BY 4.0,
//     see GeoAttribution) or MaxMind-format files (GeoLite2, DB-IP lite),
//     verified and turned into the same range tables at load, and
//     reloaded when they change (a file that cannot be loaded is reported
//     once and the previous data kept). Private, CGNAT, loopback,
//     link-local, multicast, broadcast and bogon addresses get a label
//     instead.
//   - Applications: data/applications.yaml plus configured entries.
//
// # Direction and NAT
//
// A side is local when its address is in the local prefixes or is
// link-scoped (link-local, multicast, limited broadcast: such traffic
// never leaves the router's links). For the destination the RouterOS
// post-NAT destination (IPFIX IE 226/282) counts too, so a download to the
// router's public address that RouterOS un-NATs to an inside host is a
// download whose local side (store.Flow.LocalRemote) is the inside host.
// Both sides local is internal, neither is transit. With no local prefix
// known at all, the direction stays unknown.
//
// # The routers' own traffic
//
// Every address a router lists in /ip/address and /ipv6/address (static,
// or dynamic from its DHCP or PPPoE client) is the router's own. What
// would be an upload from such an address is the router's own traffic
// (store.DirRouterOut: its NTP, DNS, API or VPN traffic), and a download
// to one that the router itself terminates is store.DirRouterIn (the
// answers, or a scan of its WAN address): a download that RouterOS
// un-NATs to an inside host (post-NAT destination not the router's) stays
// the customer's download; without post-NAT fields, out-interface 0 says
// the router terminated it. Such flows carry the router's name in
// Flow.Subscriber and count in no customer's usage. Traffic between a
// router and its customers stays internal.
//
// # Interface numbers
//
// RouterOS puts SNMP ifIndex values in the flow records' ingress/egress
// interface fields (IE 10/14), and 0 for the router itself: in=0 for
// traffic the router originates, out=0 for traffic it terminates or
// broadcasts (MNDP to 255.255.255.255:5678 shows both). The MikroTik IPFIX
// capture in shared/captures (RouterOS 6.39.2) uses 0, 7 and 9..17: each
// of the router's LAN addresses sends its MNDP broadcast out of exactly
// one ifIndex (172.20.4.1 on 9, 172.30.0.1 on 10, 10.10.6.1 on 11,
// 10.10.7.1 on 12, 10.10.8.1 on 13, 10.20.0.1 on 14, 10.10.10.1 on 15, and
// IPv6 link-local only on 16 and 17), and the NAT uplink is 7. Over the
// API the same numbers come from `/interface/print =.proplist=name.oid`
// (the last OID arc, .1.3.6.1.2.1.2.2.1.2.<ifIndex>); when the router does
// not answer name.oid the poller falls back to the numeric part of .id
// (*7 -> 7), which matches on the routers and fakes we know of but is not
// documented by MikroTik. Dynamic interfaces (PPPoE, L2TP) get large
// indexes (0x800000+) and new ones per session, and RouterOS reuses them,
// so names are kept with their history (in memory for HistoryWindow, in
// the store for 400 days: store.InterfaceNameAt names the interfaces of
// older flows) and subscribers are attributed by address first.
package enrich

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
)

// Sink receives enriched flows; the store implements it. It is the same
// contract as the collector's sink, so an Enricher can sit in between.
type Sink interface {
	InsertFlows(ctx context.Context, flows []store.Flow) error
}

// RouterResolver attributes an exporter address to an inventory router;
// *inventory.Inventory implements it.
type RouterResolver interface {
	RouterFor(addr netip.Addr) (int64, bool)
}

// DomainLabeler names remote addresses: the registrable domain of the
// name an address had in the routers' DNS caches during a flow [fromMs,
// toMs] (unix ms), "" when none; cmd/flowbox adapts the domains history
// to it. It is called for every flow: it must be fast and must not
// allocate.
type DomainLabeler interface {
	RemoteDomain(addr netip.Addr, fromMs, toMs int64) string
}

// Deps are the Enricher's collaborators.
type Deps struct {
	// Next receives the flows after enrichment when InsertFlows is used
	// (optional: in the ingest pipeline the collector's readers call
	// Enrich on each batch, then queue it themselves).
	Next Sink
	// Logger is required.
	Logger *slog.Logger
	// Registerer receives the metrics (required).
	Registerer prometheus.Registerer
	// Resolver sets Flow.RouterID from the exporter address when the
	// collector left it 0 (optional).
	Resolver RouterResolver
	// Routers lists the inventory to poll and its interface names
	// (optional: without it there is no polling).
	Routers RouterLister
	// Dial opens API sessions for polling (optional; DialRouterOS in
	// production).
	Dial DialFunc
	// Subscribers persists the subscriber history (optional: memory only).
	Subscribers SubscriberStore
	// Interfaces persists the interface-name history (optional: memory
	// only).
	Interfaces InterfaceStore
	// Domains labels the remote side of flows with its domain (optional:
	// without it flows have none).
	Domains DomainLabeler
	// Now is the clock (optional, for tests).
	Now func() time.Time
}

// Enricher enriches flows and keeps the data it needs fresh. New builds
// it; Run polls the routers and reloads the geo files until ctx ends;
// InsertFlows may be called before and during Run.
type Enricher struct {
	cfg     Config
	deps    Deps
	logger  *slog.Logger
	metrics *metrics
	now     func() time.Time

	geo    *geo
	apps   *Apps
	subs   *history
	ifaces *ifHistory
	// custIDs finds customer ids in router texts (customer-id-pattern);
	// nil when disabled.
	custIDs *regexp.Regexp

	mu         sync.Mutex
	configured []addrRange
	routers    map[int64]*routerState
	local      atomicPrefixSet
	owners     atomic.Pointer[ownerIndex] // routers' own addresses
}

var _ Sink = (*Enricher)(nil)

// New builds an Enricher: it loads the geo tables and the application
// table and validates everything, but starts nothing and dials nothing.
func New(cfg Config, deps Deps) (*Enricher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid enrich config: %w", err)
	}
	if deps.Logger == nil {
		return nil, errors.New("cannot build enricher: nil logger")
	}
	e := &Enricher{cfg: cfg, deps: deps, logger: deps.Logger, metrics: newMetrics(), now: deps.Now,
		routers: map[int64]*routerState{}}
	if e.now == nil {
		e.now = time.Now
	}
	var err error
	if e.geo, err = newGeo(cfg.GeoIP); err != nil {
		return nil, fmt.Errorf("cannot build enricher: %w", err)
	}
	if e.apps, err = newApps(cfg.Applications); err != nil {
		return nil, fmt.Errorf("cannot build enricher: %w", err)
	}
	if e.custIDs, err = CompileCustomerIDPattern(cfg.CustomerIDPattern); err != nil {
		return nil, fmt.Errorf("cannot build enricher: %w", err)
	}
	e.subs = newHistory(deps.Subscribers, cfg.HistoryWindow, cfg.MaxSubscribers, e.metrics)
	e.ifaces = newIfHistory(deps.Interfaces, cfg.HistoryWindow, e.metrics)
	for _, p := range cfg.Prefixes {
		r, _ := parseRange(p) // validated
		e.configured = append(e.configured, r)
	}
	e.rebuildLocalLocked()
	if err := e.metrics.register(deps.Registerer, e.subs.size); err != nil {
		return nil, err
	}
	e.metrics.setGeoBuild(e.geo.state.Load())
	return e, nil
}

// Run loads the subscriber and interface-name histories, then polls the
// routers every poll-interval and checks the geoip files every
// reload-interval, until ctx is done. It returns nil on cancellation.
func (e *Enricher) Run(ctx context.Context) error {
	if err := e.subs.load(ctx, e.now()); err != nil {
		return err
	}
	if err := e.ifaces.load(ctx, e.now()); err != nil {
		return err
	}
	poll := time.NewTicker(e.cfg.PollInterval)
	defer poll.Stop()
	reload := time.NewTicker(e.cfg.GeoIP.ReloadInterval)
	defer reload.Stop()
	discover := time.NewTicker(discoverInterval)
	defer discover.Stop()
	e.pollAll(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
			e.pollAll(ctx)
		case <-discover.C:
			e.pollNew(ctx)
		case <-reload.C:
			e.reloadGeo()
		}
	}
}

// discoverInterval is how often Run looks for routers added to the
// inventory since the last poll, so that a newly onboarded router's
// subscribers and prefixes are known within seconds, not at the next poll.
const discoverInterval = 10 * time.Second

// pollNew polls the routers of the inventory that were never polled, and
// those whose last poll was incomplete (a first poll that could not save
// the subscribers under load would otherwise leave their flows unnamed
// until the next poll-interval).
func (e *Enricher) pollNew(ctx context.Context) {
	if e.deps.Routers == nil || !e.cfg.Poll || e.deps.Dial == nil {
		return
	}
	routers, err := e.deps.Routers.ListRouters(ctx)
	if err != nil {
		e.logger.Warn("cannot list routers for enrichment", "error", err)
		return
	}
	for _, r := range routers {
		e.mu.Lock()
		rs, known := e.routers[r.ID]
		retry := known && rs.incomplete
		e.mu.Unlock()
		if !known || retry {
			e.PollRouter(ctx, r)
		}
	}
}

// reloadGeo reloads changed geoip files, logging and counting the result
// per file.
func (e *Enricher) reloadGeo() {
	res := e.geo.reload()
	for _, err := range res.errs {
		e.metrics.geoReloads.WithLabelValues("error").Inc()
		e.logger.Warn("cannot reload geoip file, keeping the previous data", "error", err)
	}
	for _, key := range res.reloaded {
		e.metrics.geoReloads.WithLabelValues("ok").Inc()
		e.logger.Info("geoip file reloaded", "file", key)
	}
	if len(res.reloaded) > 0 {
		e.metrics.setGeoBuild(e.geo.state.Load())
	}
}

// rebuildLocalLocked recomputes the local prefix set (e.mu held, or
// during New).
func (e *Enricher) rebuildLocalLocked() {
	all := append([]addrRange(nil), e.configured...)
	for _, rs := range e.routers {
		for _, ranges := range rs.prefixes {
			all = append(all, ranges...)
		}
	}
	set := newPrefixSet(all)
	e.local.Store(set)
	e.metrics.localRanges.Set(float64(set.count()))
	e.owners.Store(newOwnerIndex(e.routers))
}

// InsertFlows enriches flows in place and passes them to the next sink.
// It does not keep the slice.
func (e *Enricher) InsertFlows(ctx context.Context, flows []store.Flow) error {
	if e.deps.Next == nil {
		return errors.New("cannot insert flows: the enricher has no next sink")
	}
	e.Enrich(flows)
	return e.deps.Next.InsertFlows(ctx, flows)
}

// Enrich fills the enrichment fields of flows in place: RouterID (when
// 0), Direction, Subscriber, Application, SrcCountry/DstCountry,
// SrcAS/DstAS (when the exporter left them 0) and RemoteDomain.
func (e *Enricher) Enrich(flows []store.Flow) {
	local := e.local.Load()
	owners := e.owners.Load()
	subs := e.subs.idx.Load()
	geo := e.geo.state.Load()
	var dirs [store.NumDirections]int
	hits, misses := 0, 0
	// Batches usually come from one exporter: resolve each run of flows
	// from the same exporter once.
	var lastExp netip.Addr
	var lastID int64
	for i := range flows {
		f := &flows[i]
		if f.RouterID == 0 && e.deps.Resolver != nil {
			if a := f.Exporter.Addr(); a != lastExp || !a.IsValid() {
				lastExp, lastID = a, 0
				if id, ok := e.deps.Resolver.RouterFor(a); ok {
					lastID = id
				}
			}
			f.RouterID = lastID
		}
		f.Direction = direction(local, f)
		var router string
		f.Direction, router = owners.routerDirection(f)
		dirs[f.Direction]++

		f.SrcCountry = country(geo, f.SrcAddr, &f.SrcAS)
		f.DstCountry = country(geo, f.DstAddr, &f.DstAS)

		loc, remote := f.LocalRemote()
		remoteAS := f.DstAS
		if f.Direction.Inbound() {
			remoteAS = f.SrcAS
		}
		if f.Direction == store.DirInternal {
			remote, remoteAS = netip.Addr{}, 0
		}
		f.Application = e.apps.Classify(f.Proto, f.SrcPort, f.DstPort, remote, remoteAS)
		if e.deps.Domains != nil && remote.IsValid() {
			// The name the customer resolved for the connection (seen in
			// a cache during the flow, or just before).
			f.RemoteDomain = e.deps.Domains.RemoteDomain(remote.Unmap(), cmp.Or(f.Start, f.End), f.End)
		}

		f.Subscriber = router // the router's name for its own traffic
		if f.Direction == store.DirTransit || f.Direction == store.DirUnknown || f.Direction.Router() {
			continue
		}
		name := subs.lookup(loc, f.Start)
		if name == "" {
			// A dynamic "<pppoe-USER>" interface on the subscriber side.
			idx := f.InIf
			if f.Direction == store.DirDownload {
				idx = f.OutIf
			}
			if idx != 0 {
				if user, ok := pppoeUser(e.ifaces.lookup(f.RouterID, idx, f.Start)); ok {
					name = user
				}
			}
		}
		f.Subscriber = name
		if name != "" {
			hits++
		} else {
			misses++
		}
	}
	for d, n := range dirs {
		if n > 0 {
			e.metrics.flowsByDir[d].Add(float64(n))
		}
	}
	e.metrics.subscriberHits.Add(float64(hits))
	e.metrics.subscriberMiss.Add(float64(misses))
}

// country returns the country (or special label) of a, and fills *as from
// the geo tables when it is 0.
func country(geo *geoState, a netip.Addr, as *uint32) string {
	if !a.IsValid() {
		return ""
	}
	if l := SpecialLabel(a); l != "" {
		return l
	}
	asn, cc := geo.lookup(a)
	if *as == 0 {
		*as = asn
	}
	return cc
}

// direction decides a flow's direction from the local prefix set.
func direction(local *prefixSet, f *store.Flow) store.Direction {
	if local.empty() {
		return store.DirUnknown
	}
	src := local.contains(f.SrcAddr) || linkScope(f.SrcAddr)
	dst := local.contains(f.DstAddr) || linkScope(f.DstAddr) ||
		(f.PostNATDstAddr.IsValid() && !f.PostNATDstAddr.IsUnspecified() && local.contains(f.PostNATDstAddr))
	switch {
	case src && dst:
		return store.DirInternal
	case src:
		return store.DirUpload
	case dst:
		return store.DirDownload
	}
	return store.DirTransit
}

// InterfaceName returns the name of a router's interface at time t, for
// the web console: RouterItself for ifIndex 0, "" when unknown.
func (e *Enricher) InterfaceName(routerID int64, ifIndex uint32, t time.Time) string {
	if ifIndex == 0 {
		return RouterItself
	}
	return e.ifaces.lookup(routerID, ifIndex, t.UnixMilli())
}

// LookupAddr describes an address (special label, or ASN, AS name and
// country), for the web console.
func (e *Enricher) LookupAddr(a netip.Addr) AddrInfo {
	if !a.IsValid() {
		return AddrInfo{}
	}
	if l := SpecialLabel(a); l != "" {
		return AddrInfo{Label: l}
	}
	st := e.geo.state.Load()
	asn, cc := st.lookup(a)
	return AddrInfo{ASN: asn, ASName: st.asName(asn), Country: cc}
}

// ASName returns the organisation name of an AS, "" when unknown, for the
// web console (flows store only the number).
func (e *Enricher) ASName(asn uint32) string { return e.geo.state.Load().asName(asn) }

// ApplicationCategory returns the category of an application label.
func (e *Enricher) ApplicationCategory(label string) string { return e.apps.Category(label) }

// SubscriberAt returns the subscriber name the in-memory history gives an
// address at t ("" when none), as ingest would.
func (e *Enricher) SubscriberAt(a netip.Addr, t time.Time) string {
	return e.subs.idx.Load().lookup(a, t.UnixMilli())
}
