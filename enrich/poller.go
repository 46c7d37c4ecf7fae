package enrich

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/flowbox/flowbox/internal/poll"
	"github.com/flowbox/flowbox/routeros"
	"github.com/flowbox/flowbox/store"
)

// RouterAPI is the part of a RouterOS API session the poller uses. Print
// runs `<path>/print` with `=.proplist=` and optional query words
// ("?dst-address=0.0.0.0/0") and returns the rows. DialRouterOS adapts
// routeros.
type RouterAPI interface {
	Print(ctx context.Context, path string, proplist []string, query ...string) ([]map[string]string, error)
	Close() error
}

// ErrUnavailable is wrapped by RouterAPI errors when the router lacks a
// menu or property (an older version, a missing package). The poller then
// treats the menu as empty.
var ErrUnavailable = routeros.ErrUnavailable

// DialFunc opens an API session with a router of the inventory.
type DialFunc func(ctx context.Context, r store.Router) (RouterAPI, error)

// RouterLister lists the router inventory; *inventory.Inventory implements
// it.
type RouterLister interface {
	ListRouters(ctx context.Context) ([]store.Router, error)
}

// Menus the poller reads, with their properties.
var (
	menuAddress = menuSpec{"/ip/address", []string{"address", "interface", "disabled", "invalid"}}
	menuRoute   = menuSpec{"/ip/route", []string{"dst-address", "gateway", "immediate-gw", "active", "disabled"}}
	menuPool    = menuSpec{"/ip/pool", []string{"name", "ranges"}}
	menuDHCPNet = menuSpec{"/ip/dhcp-server/network", []string{"address"}}
	menuLease   = menuSpec{"/ip/dhcp-server/lease", []string{"address", "mac-address", "host-name", "comment", "status", "disabled"}}
	menuPPP     = menuSpec{"/ppp/active", []string{"name", "address", "caller-id"}}
	// menuPPPSecret is read only for customer ids (the comments of the
	// active sessions' secrets), when customer-id-pattern is set.
	menuPPPSecret = menuSpec{"/ppp/secret", []string{"name", "comment"}}
	menuQueue     = menuSpec{"/queue/simple", []string{"name", "target", "comment", "dynamic", "disabled"}}
	menuARP       = menuSpec{"/ip/arp", []string{"address", "mac-address", "comment", "disabled"}}
	menuIface     = menuSpec{"/interface", []string{".id", "name", "type", "name.oid"}}

	// IPv6 menus: absent (a trap) when the ipv6 package is disabled, as
	// on many RouterOS 6 routers; the poller then treats them as empty.
	menuAddress6 = menuSpec{"/ipv6/address", []string{"address", "interface", "disabled", "invalid", "dynamic"}}
	menuRoute6   = menuSpec{"/ipv6/route", []string{"dst-address", "gateway", "immediate-gw", "active", "disabled"}}
	menuPool6    = menuSpec{"/ipv6/pool", []string{"name", "prefix", "prefix-length"}}
	menuBinding6 = menuSpec{"/ipv6/dhcp-server/binding", []string{"address", "duid", "server", "comment", "status", "disabled"}}
)

type menuSpec struct {
	path     string
	proplist []string
}

// SourceDHCPv6 is the source of subscriber records learned from
// /ipv6/dhcp-server/binding (a delegated prefix or a /128); the store ranks
// it with DHCP leases.
const SourceDHCPv6 = store.SourceDHCPv6

// RouterItself is the interface name shown for ifIndex 0: RouterOS uses 0
// for traffic the router originates (input) or terminates (output).
const RouterItself = "router itself"

// pollResult is what one poll learned from one router.
type pollResult struct {
	obs      []observation
	sources  []string               // subscriber sources read successfully
	prefixes map[string][]addrRange // by menu path, for menus read successfully
	// own are the router's own addresses (/ip/address, /ipv6/address,
	// dynamic ones from a DHCP or PPPoE client included), by menu path,
	// for menus read successfully.
	own    map[string][]netip.Addr
	ifaces map[uint32]string // nil when /interface could not be read
}

// printMenu reads one menu; a missing menu is an empty menu.
func printMenu(ctx context.Context, api RouterAPI, m menuSpec, query ...string) ([]map[string]string, bool, error) {
	rows, err := api.Print(ctx, m.path, m.proplist, query...)
	if errors.Is(err, ErrUnavailable) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("cannot print %s: %w", m.path, err)
	}
	return rows, true, nil
}

func isTrue(s string) bool { return s == "true" || s == "yes" }

// pollRouter reads one router's subscribers, prefixes and interfaces.
// Menus that fail are left out of the result (and their previous data
// kept); the first error is returned with whatever was read.
func (e *Enricher) pollRouter(ctx context.Context, api RouterAPI) (pollResult, error) {
	res := pollResult{prefixes: map[string][]addrRange{}, own: map[string][]netip.Addr{}}
	var errs []error
	read := func(m menuSpec, query ...string) ([]map[string]string, bool) {
		rows, ok, err := printMenu(ctx, api, m, query...)
		if err != nil {
			e.metrics.pollMenuErrors.WithLabelValues(m.path).Inc()
			errs = append(errs, err)
		}
		return rows, ok
	}

	// Upstream interfaces: configured, plus the default route's.
	upstream := map[string]bool{}
	for _, n := range e.cfg.UpstreamInterfaces {
		upstream[n] = true
	}
	addrRows, addrOK := read(menuAddress)
	addr6Rows, addr6OK := read(menuAddress6)
	var gateways []netip.Addr
	for _, q := range []struct {
		m     menuSpec
		query string
	}{{menuRoute, "?dst-address=0.0.0.0/0"}, {menuRoute, "?dst-address=::/0"}, {menuRoute6, "?dst-address=::/0"}} {
		routes, _ := read(q.m, q.query)
		for _, r := range routes {
			if isTrue(r["disabled"]) || r["active"] == "false" {
				continue
			}
			for _, g := range []string{r["gateway"], r["immediate-gw"]} {
				for _, part := range strings.Split(g, ",") {
					ip, iface, hasIface := strings.Cut(part, "%")
					if hasIface {
						upstream[iface] = true
					}
					if a, err := netip.ParseAddr(ip); err == nil {
						gateways = append(gateways, a.Unmap())
					} else if !hasIface && ip != "" {
						upstream[ip] = true // gateway given as an interface name
					}
				}
			}
		}
	}
	type ifAddr struct {
		p     netip.Prefix
		iface string
	}
	// The router's addresses, IPv4 and IPv6, by the same rules: disabled
	// and invalid ones skipped, and IPv6 link-local ones too (fe80::/10 is
	// on every interface, and link-scoped traffic counts as local anyway).
	// An interface whose network holds a default gateway is upstream, for
	// both families.
	parseAddrs := func(m menuSpec, rows []map[string]string) []ifAddr {
		var out []ifAddr
		for _, r := range rows {
			if isTrue(r["disabled"]) || isTrue(r["invalid"]) {
				continue
			}
			p, err := netip.ParsePrefix(r["address"])
			if err != nil {
				e.badRow(m)
				continue
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), min(p.Bits(), p.Addr().Unmap().BitLen()))
			if p.Addr().Is6() && p.Addr().IsLinkLocalUnicast() {
				continue
			}
			out = append(out, ifAddr{p, r["interface"]})
			for _, g := range gateways {
				if p.Masked().Contains(g) {
					upstream[r["interface"]] = true
				}
			}
		}
		return out
	}
	addrs := parseAddrs(menuAddress, addrRows)
	addrs6 := parseAddrs(menuAddress6, addr6Rows)
	localAddrs := func(addrs []ifAddr) []addrRange {
		var rs []addrRange
		for _, a := range addrs {
			if upstream[a.iface] {
				rs = append(rs, addrRange{a.p.Addr(), a.p.Addr()}) // the router itself
			} else {
				rs = append(rs, prefixRange(a.p))
			}
		}
		return rs
	}
	ownAddrs := func(addrs []ifAddr) []netip.Addr {
		out := make([]netip.Addr, 0, len(addrs))
		for _, a := range addrs {
			out = append(out, a.p.Addr())
		}
		return out
	}
	if addrOK {
		res.prefixes[menuAddress.path] = localAddrs(addrs)
		res.own[menuAddress.path] = ownAddrs(addrs)
	}
	if addr6OK {
		res.prefixes[menuAddress6.path] = localAddrs(addrs6)
		res.own[menuAddress6.path] = ownAddrs(addrs6)
	}
	if rows, ok := read(menuPool); ok {
		var rs []addrRange
		for _, r := range rows {
			if got, err := parseRanges(r["ranges"]); err == nil {
				rs = append(rs, got...)
			} else {
				e.badRow(menuPool)
			}
		}
		res.prefixes[menuPool.path] = rs
	}
	if rows, ok := read(menuPool6); ok {
		var rs []addrRange
		for _, r := range rows {
			// The whole pool is customer space, whatever prefix-length it
			// hands out.
			p, err := netip.ParsePrefix(r["prefix"])
			if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
				e.badRow(menuPool6)
				continue
			}
			rs = append(rs, prefixRange(p))
		}
		res.prefixes[menuPool6.path] = rs
	}
	if rows, ok := read(menuDHCPNet); ok {
		var rs []addrRange
		for _, r := range rows {
			if p, err := netip.ParsePrefix(r["address"]); err == nil {
				rs = append(rs, prefixRange(p))
			} else {
				e.badRow(menuDHCPNet)
			}
		}
		res.prefixes[menuDHCPNet.path] = rs
	}

	// Subscribers, and their addresses as local prefixes.
	hostRanges := func(obs []observation) []addrRange {
		rs := make([]addrRange, 0, len(obs))
		for _, o := range obs {
			rs = append(rs, prefixRange(o.prefix))
		}
		return rs
	}
	if rows, ok := read(menuQueue); ok {
		var obs []observation
		for _, r := range rows {
			if isTrue(r["disabled"]) {
				continue
			}
			name := r["name"]
			if user, ok := pppoeUser(name); ok {
				name = user
			} else if isTrue(r["dynamic"]) && strings.HasPrefix(name, "dhcp-ds<") {
				continue // created by a DHCP lease's rate-limit: the lease names it
			}
			if name == "" {
				continue
			}
			name, id := e.nameAndID(name, r["comment"])
			for _, t := range strings.Split(r["target"], ",") {
				p, err := parsePrefixOrAddr(strings.TrimSpace(t))
				if err != nil {
					continue // an interface target (<pppoe-USER>): PPP covers it
				}
				obs = append(obs, observation{prefix: p, source: store.SourceQueue, name: name, customerID: id})
			}
		}
		res.obs = append(res.obs, obs...)
		res.sources = append(res.sources, store.SourceQueue)
		res.prefixes[menuQueue.path] = hostRanges(obs)
	}
	var secretComments map[string]string // PPP login -> its secret's comment
	if e.custIDs != nil {
		if rows, ok := read(menuPPPSecret); ok {
			secretComments = make(map[string]string, len(rows))
			for _, r := range rows {
				if r["name"] != "" && r["comment"] != "" {
					secretComments[r["name"]] = r["comment"]
				}
			}
		}
	}
	if rows, ok := read(menuPPP); ok {
		var obs []observation
		for _, r := range rows {
			p, ok := hostPrefix(r["address"])
			if !ok || r["name"] == "" {
				continue
			}
			name, id := e.nameAndID(r["name"], secretComments[r["name"]])
			obs = append(obs, observation{prefix: p, source: store.SourcePPP, name: name, customerID: id,
				mac: parseMAC(r["caller-id"])})
		}
		res.obs = append(res.obs, obs...)
		res.sources = append(res.sources, store.SourcePPP)
		res.prefixes[menuPPP.path] = hostRanges(obs)
	}
	if rows, ok := read(menuLease); ok {
		var obs []observation
		for _, r := range rows {
			if isTrue(r["disabled"]) || (r["status"] != "" && r["status"] != "bound") {
				continue
			}
			p, ok := hostPrefix(r["address"])
			name, id := e.nameAndID(r["comment"])
			if name == "" {
				name = r["host-name"] // the device's: no customer id there
			}
			if !ok || name == "" {
				continue
			}
			obs = append(obs, observation{prefix: p, source: store.SourceDHCP, name: name, customerID: id,
				mac: parseMAC(r["mac-address"])})
		}
		res.obs = append(res.obs, obs...)
		res.sources = append(res.sources, store.SourceDHCP)
		res.prefixes[menuLease.path] = hostRanges(obs)
	}
	if rows, ok := read(menuBinding6); ok {
		var obs []observation
		for _, r := range rows {
			if isTrue(r["disabled"]) || (r["status"] != "" && r["status"] != "bound") {
				continue
			}
			p, ok := bindingPrefix(r["address"])
			if !ok {
				e.badRow(menuBinding6)
				continue
			}
			name, id := bindingName(r), ""
			if name == "" {
				continue
			}
			if c := strings.TrimSpace(r["comment"]); c != "" {
				name, id = e.nameAndID(c) // a comment names the binding
			}
			obs = append(obs, observation{prefix: p, source: SourceDHCPv6, name: name, customerID: id})
		}
		res.obs = append(res.obs, obs...)
		res.sources = append(res.sources, SourceDHCPv6)
		res.prefixes[menuBinding6.path] = hostRanges(obs)
	}
	if rows, ok := read(menuARP); ok {
		var obs []observation
		for _, r := range rows {
			p, ok := hostPrefix(r["address"])
			if !ok || isTrue(r["disabled"]) || r["comment"] == "" {
				continue // without a comment ARP names nobody
			}
			name, id := e.nameAndID(r["comment"])
			obs = append(obs, observation{prefix: p, source: store.SourceARP, name: name, customerID: id,
				mac: parseMAC(r["mac-address"])})
		}
		res.obs = append(res.obs, obs...)
		res.sources = append(res.sources, store.SourceARP)
	}

	// Interfaces: ifIndex from name.oid (last arc) when the router answers
	// it, else from the numeric .id (see the package documentation).
	rows, ok, err := printMenu(ctx, api, menuIface)
	if err != nil && !errors.Is(err, ErrUnavailable) {
		// Some versions reject name.oid: retry without it.
		rows, ok, err = printMenu(ctx, api, menuSpec{menuIface.path, menuIface.proplist[:3]})
	}
	if err != nil {
		e.metrics.pollMenuErrors.WithLabelValues(menuIface.path).Inc()
		errs = append(errs, err)
	}
	if ok {
		res.ifaces = map[uint32]string{}
		for _, r := range rows {
			if idx, ok := routeros.IfIndex(r); ok && r["name"] != "" {
				res.ifaces[idx] = r["name"]
			}
		}
	}
	return res, errors.Join(errs...)
}

// bindingPrefix parses the address of an /ipv6/dhcp-server/binding: a
// delegated prefix ("2001:db8:1:100::/56") or an address (a /128, with or
// without the length). ok is false for anything else, IPv4 included.
func bindingPrefix(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, false
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		p = netip.PrefixFrom(a, 128)
	}
	if !p.Addr().Is6() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
		return netip.Prefix{}, false
	}
	return p.Masked(), true
}

// bindingName names the subscriber of a DHCPv6 binding: its comment, else
// the PPPoE login when the binding was made over a "<pppoe-LOGIN>"
// session (its server is that dynamic interface), else the client's DUID.
func bindingName(r map[string]string) string {
	if c := strings.TrimSpace(r["comment"]); c != "" {
		return c
	}
	if user, ok := pppoeUser(r["server"]); ok {
		return user
	}
	return strings.TrimSpace(r["duid"])
}

// nameAndID splits what a router calls a subscriber (a comment, a queue
// name, a PPP login) into the name and the customer id that
// customer-id-pattern finds in it; when text holds no id, the first of
// comments that does gives it (a queue's comment, a PPP secret's comment),
// and the name stays text.
func (e *Enricher) nameAndID(text string, comments ...string) (name, id string) {
	name, id = SplitCustomerID(e.custIDs, text)
	for _, c := range comments {
		if id != "" {
			break
		}
		_, id = SplitCustomerID(e.custIDs, c)
	}
	return name, id
}

// badRow counts a row of m skipped because a value could not be parsed.
func (e *Enricher) badRow(m menuSpec) {
	e.metrics.pollBadRows.WithLabelValues(m.path).Inc()
}

// pppoeUser returns USER for a RouterOS dynamic PPPoE interface or queue
// name "<pppoe-USER>".
func pppoeUser(name string) (string, bool) {
	if u, ok := strings.CutPrefix(name, "<pppoe-"); ok {
		if u, ok := strings.CutSuffix(u, ">"); ok && u != "" {
			return u, true
		}
	}
	return "", false
}

// routerState is what the poller keeps per router between polls.
type routerState struct {
	name     string
	lastPoll time.Time
	prefixes map[string][]addrRange
	own      map[string][]netip.Addr // the router's own addresses, by menu
	// incomplete is set while the last poll failed in part (a menu, or
	// saving the subscribers): the router is polled again within
	// discoverInterval instead of waiting for poll-interval.
	incomplete bool
}

// pollAll polls every router of the inventory, PollConcurrency at a time,
// and refreshes the interface names from the inventory.
func (e *Enricher) pollAll(ctx context.Context) {
	now := e.now()
	if err := e.subs.load(ctx, now); err != nil {
		e.logger.Warn("cannot reload subscriber history", "error", err)
	}
	if e.deps.Routers == nil {
		return
	}
	routers, err := e.deps.Routers.ListRouters(ctx)
	if err != nil {
		e.logger.Warn("cannot list routers for enrichment", "error", err)
		return
	}
	for _, r := range routers {
		if len(r.Interfaces) > 0 {
			names := make(map[uint32]string, len(r.Interfaces))
			for _, i := range r.Interfaces {
				if i.Name != "" {
					names[i.Index] = i.Name
				}
			}
			if err := e.ifaces.update(ctx, r.ID, names, now, true); err != nil {
				e.logger.Warn("cannot save interface names from the inventory", "router", r.Name, "error", err)
			}
		}
	}
	if n, err := e.ifaces.prune(ctx, now); err != nil {
		e.logger.Warn("cannot prune interface names", "error", err)
	} else if n > 0 {
		e.logger.Debug("interface names pruned", "records", n)
	}
	if !e.cfg.Poll || e.deps.Dial == nil {
		return
	}
	poll.Each(routers, e.cfg.PollConcurrency, func(r store.Router) { e.PollRouter(ctx, r) })
}

// FirstPollBackdate is how far back the subscribers found by the first
// poll of a router (since flowbox started) are taken to have held their
// addresses: a flow that started before the poll (a long download, or the
// first flows of a router onboarded right after its poll) is attributed
// too. Later polls backdate new addresses to the previous poll.
const FirstPollBackdate = time.Hour

// PollRouter polls one router now and applies what it learned. Errors are
// logged and counted; what could be read is applied.
func (e *Enricher) PollRouter(ctx context.Context, r store.Router) {
	start := e.now()
	ctx, cancel := context.WithTimeout(ctx, e.cfg.PollTimeout)
	defer cancel()
	log := e.logger.With("router", r.Name)
	api, err := e.deps.Dial(ctx, r)
	if err != nil {
		e.metrics.polls.WithLabelValues("dial_error").Inc()
		log.Warn("cannot poll router for subscribers", "error", err)
		return
	}
	res, perr := e.pollRouter(ctx, api)
	_ = api.Close()
	now := e.now()

	e.mu.Lock()
	rs := e.routers[r.ID]
	if rs == nil {
		rs = &routerState{prefixes: map[string][]addrRange{}, own: map[string][]netip.Addr{}}
		e.routers[r.ID] = rs
	}
	rs.name = r.Name
	since := rs.lastPoll
	if since.IsZero() {
		since = now.Add(-FirstPollBackdate)
	}
	for menu, ranges := range res.prefixes {
		rs.prefixes[menu] = ranges
	}
	for menu, addrs := range res.own {
		rs.own[menu] = addrs
	}
	e.rebuildLocalLocked()
	e.mu.Unlock()

	if res.ifaces != nil {
		if err := e.ifaces.update(ctx, r.ID, res.ifaces, now, false); err != nil {
			perr = errors.Join(perr, fmt.Errorf("cannot save interface names: %w", err))
		}
	}
	ch, err := e.subs.apply(ctx, r.ID, res.sources, res.obs, now, since, false)
	if err != nil {
		perr = errors.Join(perr, fmt.Errorf("cannot save subscribers: %w", err))
	}
	if err == nil {
		e.mu.Lock()
		rs.lastPoll = now
		e.mu.Unlock()
	}
	e.metrics.pollDuration.Observe(e.now().Sub(start).Seconds())
	e.mu.Lock()
	rs.incomplete = perr != nil
	e.mu.Unlock()
	if perr != nil {
		e.metrics.polls.WithLabelValues("partial").Inc()
		log.Warn("router poll incomplete, retrying soon", "error", perr, "opened", ch.opened, "ended", ch.ended)
		return
	}
	e.metrics.polls.WithLabelValues("ok").Inc()
	log.Debug("router polled", "opened", ch.opened, "ended", ch.ended, "dropped", ch.dropped,
		"subscribers", len(res.obs), "sources", slices.Clone(res.sources))
}
