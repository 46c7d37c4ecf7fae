// Package mitigate acts on flowbox's alerts through the RouterOS API, on
// the routers whose operator opted in (mitigation is off by default):
//
//   - an inbound attack (volumetric, udp-amplification, syn-flood;
//     direction "in") puts the victim's address into an address list
//     (default flowbox-attacked) with a timeout (default 1h) and, if the
//     router's policy says blackhole: true, adds a blackhole route for the
//     victim (/32 or /128): RouterOS 7 `blackhole=yes`, RouterOS 6
//     `type=blackhole` (RouterOS 6 cannot blackhole IPv6: skipped);
//   - outbound abuse by a customer (port-scan, smtp-spam, flow-flood;
//     direction "out") puts the customer's address into another list
//     (default flowbox-abuse).
//
// Every entry carries the comment "flowbox alert <id>: <kind>". When the
// alert resolves, its entries are removed (found by list, address and a
// flowbox comment, so an operator's own entry for the same address stays).
// The address lists do nothing by themselves: the operator's firewall
// decides what they mean. For example:
//
//	# a customer caught spamming or scanning may not send mail or open
//	# new connections to the world at more than a trickle
//	/ip firewall filter add chain=forward src-address-list=flowbox-abuse protocol=tcp dst-port=25 action=drop comment="flowbox: no SMTP from abusers"
//	/ip firewall filter add chain=forward src-address-list=flowbox-abuse connection-state=new connection-limit=50,32 action=drop comment="flowbox: abusers' new connections"
//	# drop reflected UDP at the edge, before it fills the victim's sector
//	/ip firewall raw add chain=prerouting in-interface=ether1 dst-address-list=flowbox-attacked protocol=udp src-port=19,53,123,389,1900,11211 action=drop comment="flowbox: reflection to victims"
//	/ipv6 firewall filter add chain=forward src-address-list=flowbox-abuse protocol=tcp dst-port=25 action=drop
//
// Safety: a dry-run policy logs and audits ("skipped: dry run") without
// connecting to the router; a per-router cap (default 50 addresses) skips
// and counts the alerts beyond it; addresses that are not global unicast,
// or are the router's own, are never listed; entries time out on the
// router by themselves unless flowbox renews them (which it does while
// their alert lasts, once half the timeout has passed). Every change,
// skip and failure is written to the audit log (store.MitigationAction)
// and counted in Status. Router failures (unreachable, wrong password, a
// trap) are logged, audited "error: ..." and retried with backoff; they
// never block the detector, whose AlertChanged only queues.
//
// Blackhole routes have no timeout: Run starts with Cleanup, which
// removes the entries and routes of alerts that did not survive a restart,
// and Undo (for `flowbox router undo` and `router remove`) removes every
// flowbox entry from a router.
//
// RouterOS syntax follows the router's major version (store.Router.Version,
// or /system/resource when it does not parse). Nothing here was tried on a
// real router: address-list and route behaviour follow MikroTik's manual
// and the fake router in routeros/routerostest.
package mitigate

import (
	"cmp"
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

	"github.com/flowbox/flowbox/routeros"
	"github.com/flowbox/flowbox/store"
)

// API is one RouterOS API session; *routeros.Conn implements it.
type API interface {
	Run(ctx context.Context, words ...string) (*routeros.Reply, error)
	Close() error
}

// RouterSource finds a router by name, with its password decrypted; the
// inventory implements it. If it also implements RouterLister, Cleanup
// covers the routers enabled by the default block too.
type RouterSource interface {
	GetRouter(ctx context.Context, name string) (*store.Router, error)
}

// RouterLister lists every router of the inventory.
type RouterLister interface {
	ListRouters(ctx context.Context) ([]store.Router, error)
}

// AuditLog is where every mitigation change is recorded; the inventory
// implements it.
type AuditLog interface {
	AddMitigationAction(ctx context.Context, m *store.MitigationAction) error
}

// Deps are the Mitigator's collaborators.
type Deps struct {
	// Logger receives the mitigator's logs (nil: discarded).
	Logger *slog.Logger
	// Routers finds a router's address and login (required).
	Routers RouterSource
	// Dial opens an API session with a router; nil dials with
	// routeros.Dial and the configured timeouts.
	Dial func(ctx context.Context, r store.Router) (API, error)
	// Audit is the audit log (required).
	Audit AuditLog
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Audit log vocabulary (store.MitigationAction).
const (
	actionAdd       = "add"
	actionRemove    = "remove"
	kindAddressList = "address-list"
	kindBlackhole   = "blackhole"
	resultOK        = "ok"
	resultDryRun    = "skipped: dry run"
)

// Bounds.
const (
	// maxAlertsPerRouter bounds the alerts tracked per router (held,
	// skipped or failing); alerts beyond it are dropped and counted.
	maxAlertsPerRouter = 4096
	// maxOverflow bounds the resolutions kept aside when the queue is
	// full.
	maxOverflow = 4096
	// maxBackoffShift caps the retry backoff at RetryInterval << 5.
	maxBackoffShift = 5
	// auditTimeout bounds one audit-log write.
	auditTimeout = 5 * time.Second
	// staleAlert is how long an alert that is not held is remembered
	// without any event.
	staleAlert = 24 * time.Hour
)

// role is what an alert asks for: the victim of an inbound attack, or the
// source of outbound abuse.
type role int

const (
	roleNone role = iota
	roleAttacked
	roleAbuse
)

// roleOf says whether an alert is one the mitigator acts on.
func roleOf(a *store.Alert) role {
	switch a.Kind {
	case store.AlertVolumetric, store.AlertUDPAmplification, store.AlertSYNFlood:
		if a.Direction == "in" {
			return roleAttacked
		}
	case store.AlertPortScan, store.AlertSMTPSpam, store.AlertFlowFlood:
		if a.Direction == "out" {
			return roleAbuse
		}
	}
	return roleNone
}

// entryKey identifies an address in a list on a router.
type entryKey struct {
	list string
	addr netip.Addr
}

// entry is an address flowbox holds in a list on a router (in dry-run:
// would hold), possibly for several alerts.
type entry struct {
	key     entryKey
	role    role
	alertID int64  // the alert whose comment it carries
	comment string // "flowbox alert <id>: <kind>"
	alerts  map[int64]bool
	dryRun  bool
	// foreign: the list entry turned out to be the operator's (listed
	// meanwhile); flowbox neither renews nor removes it.
	foreign bool
	// wantRoute: the policy asks for a blackhole route; routed: it is in
	// place (or would be, in dry-run).
	wantRoute, routed bool
	// refreshed is when the list entry was added or last renewed.
	refreshed time.Time
	// releasing: every alert resolved but the removal failed; retried.
	releasing bool
	fails     int
	nextTry   time.Time
}

// alertStatus is where an alert stands on its router.
type alertStatus int

const (
	statusNew     alertStatus = iota // not tried yet
	statusHeld                       // its address is listed (entry holds it)
	statusCapped                     // skipped for the cap; retried when room frees
	statusSkipped                    // skipped for good (bad target, operator's entry...)
	statusFailed                     // the add failed; retried with backoff
)

// alertState is one alert the mitigator acts on.
type alertState struct {
	id      int64
	kind    string
	role    role
	addr    netip.Addr
	status  alertStatus
	fails   int
	nextTry time.Time
	// seen is the time of its last event.
	seen time.Time
}

// routerState is the mitigator's state of one router.
type routerState struct {
	entries map[entryKey]*entry
	alerts  map[int64]*alertState
	// cleanup: the start-up cleanup failed and is retried.
	cleanup bool
	nextTry time.Time
	fails   int

	added, removed, skipped, errors uint64
	lastError                       string
}

// Mitigator turns alert events into RouterOS address-list entries and
// blackhole routes. Build it with New; Run is its worker.
type Mitigator struct {
	cfg    Config
	logger *slog.Logger
	deps   Deps
	now    func() time.Time
	queue  chan store.AlertEvent
	// wake signals resolutions kept aside in overflow.
	wake    chan struct{}
	running atomic.Bool

	// op serialises the changes on routers (the worker, Undo, Cleanup).
	op sync.Mutex

	mu       sync.Mutex
	routers  map[string]*routerState
	overflow map[int64]store.AlertEvent
	dropped  uint64
	lastWarn time.Time
}

// New builds a Mitigator. It opens no connection and starts nothing.
func New(cfg Config, deps Deps) (*Mitigator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid mitigation configuration: %w", err)
	}
	if deps.Routers == nil {
		return nil, errors.New("cannot build the mitigator: no router source")
	}
	if deps.Audit == nil {
		return nil, errors.New("cannot build the mitigator: no audit log")
	}
	m := &Mitigator{cfg: cfg, logger: deps.Logger, deps: deps, now: deps.Now,
		queue: make(chan store.AlertEvent, cfg.QueueSize), wake: make(chan struct{}, 1),
		routers: map[string]*routerState{}, overflow: map[int64]store.AlertEvent{}}
	if m.logger == nil {
		m.logger = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.deps.Dial == nil {
		m.deps.Dial = func(ctx context.Context, r store.Router) (API, error) {
			c, err := routeros.Dial(ctx, routeros.Options{Address: r.Address, Username: r.Username, Password: r.Password,
				TLS: r.TLS, Fingerprint: r.TLSFingerprint, DialTimeout: cfg.DialTimeout, CommandTimeout: cfg.CommandTimeout})
			if err != nil {
				return nil, err
			}
			return c, nil
		}
	}
	return m, nil
}

// AlertChanged hands an alert event to the worker. It never blocks: the
// events the mitigator has no use for are ignored, and when the queue is
// full the event is dropped and counted (a resolution is kept aside
// instead, up to a bound, so that its entries are still removed).
func (m *Mitigator) AlertChanged(ev store.AlertEvent) {
	if roleOf(&ev.Alert) == roleNone || !m.cfg.Policy(ev.Alert.Router).Enabled {
		return
	}
	select {
	case m.queue <- ev:
		return
	default:
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if ev.Type == store.AlertResolved && len(m.overflow) < maxOverflow {
		m.overflow[ev.Alert.ID] = ev
		select {
		case m.wake <- struct{}{}:
		default:
		}
		return
	}
	m.dropped++
	rs := m.routerLocked(ev.Alert.Router)
	rs.errors++
	rs.lastError = "alert event dropped: mitigation queue full"
	if now := m.now(); now.Sub(m.lastWarn) >= time.Minute {
		m.lastWarn = now
		m.logger.Warn("mitigation queue full, alert event dropped", "router", ev.Alert.Router, "alert", ev.Alert.ID,
			"event", ev.Type, "dropped_total", m.dropped)
	}
}

// Dropped returns how many alert events a full queue dropped.
func (m *Mitigator) Dropped() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dropped
}

// Run is the worker: it first removes what earlier runs left on the
// routers (Cleanup), then applies the queued alert events one by one,
// each with its own API session, and every RetryInterval retries failed
// changes and renews entries. It returns when ctx is done.
func (m *Mitigator) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("mitigator already running")
	}
	defer m.running.Store(false)
	if n, err := m.Cleanup(ctx); err != nil {
		m.logger.Warn("mitigation cleanup incomplete, retried later", "removed", n, "error", err)
	} else if n > 0 {
		m.logger.Info("mitigation cleanup removed entries left by an earlier run", "removed", n)
	}
	tick := time.NewTicker(m.cfg.RetryInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-m.queue:
			m.handle(ctx, ev)
		case <-m.wake:
		case <-tick.C:
			m.maintain(ctx)
		}
		// Resolutions kept aside wait for the queue to drain, so that
		// they are applied after the events queued before them.
		if len(m.queue) == 0 {
			m.drainOverflow(ctx)
		}
	}
}

func (m *Mitigator) drainOverflow(ctx context.Context) {
	m.mu.Lock()
	evs := make([]store.AlertEvent, 0, len(m.overflow))
	for _, ev := range m.overflow {
		evs = append(evs, ev)
	}
	clear(m.overflow)
	m.mu.Unlock()
	for _, ev := range evs {
		m.handle(ctx, ev)
	}
}

// routerLocked returns (creating) a router's state.
func (m *Mitigator) routerLocked(name string) *routerState {
	rs := m.routers[name]
	if rs == nil {
		rs = &routerState{entries: map[entryKey]*entry{}, alerts: map[int64]*alertState{}}
		m.routers[name] = rs
	}
	return rs
}

// conn opens a router's session on first use, once.
type conn struct {
	m      *Mitigator
	router string
	s      *session
	err    error
	tried  bool
}

func (c *conn) get(ctx context.Context) (*session, error) {
	if !c.tried {
		c.tried = true
		c.s, c.err = c.m.open(ctx, c.router)
	}
	return c.s, c.err
}

func (c *conn) close() {
	if c.s != nil {
		if err := c.s.api.Close(); err != nil {
			c.m.logger.Debug("cannot close API session", "router", c.router, "error", err)
		}
		c.s = nil
	}
}

// open looks the router up, dials it and learns its version.
func (m *Mitigator) open(ctx context.Context, name string) (*session, error) {
	lctx, cancel := context.WithTimeout(ctx, m.cfg.CommandTimeout)
	r, err := m.deps.Routers.GetRouter(lctx, name)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("cannot find router %s: %w", name, err)
	}
	dctx, cancel := context.WithTimeout(ctx, m.cfg.DialTimeout+m.cfg.CommandTimeout)
	defer cancel()
	api, err := m.deps.Dial(dctx, *r)
	if err != nil {
		return nil, fmt.Errorf("router %s: %w", name, err)
	}
	s := &session{api: api, router: r, timeout: m.cfg.CommandTimeout}
	if err := s.detectVersion(ctx); err != nil {
		_ = api.Close()
		return nil, fmt.Errorf("router %s: %w", name, err)
	}
	return s, nil
}

// handle applies one alert event.
func (m *Mitigator) handle(ctx context.Context, ev store.AlertEvent) {
	a := &ev.Alert
	rl := roleOf(a)
	pol := m.cfg.Policy(a.Router)
	if rl == roleNone || !pol.Enabled {
		return
	}
	m.op.Lock()
	defer m.op.Unlock()
	c := &conn{m: m, router: a.Router}
	defer c.close()
	if ev.Type == store.AlertResolved {
		m.release(ctx, c, a.Router, a.ID, pol)
		return
	}
	m.mu.Lock()
	rs := m.routerLocked(a.Router)
	st := rs.alerts[a.ID]
	if st == nil {
		if len(rs.alerts) >= maxAlertsPerRouter {
			m.dropped++
			rs.errors++
			rs.lastError = "alert dropped: too many alerts tracked on this router"
			m.mu.Unlock()
			return
		}
		st = &alertState{id: a.ID, kind: a.Kind, role: rl}
		rs.alerts[a.ID] = st
	}
	st.seen = m.now()
	m.mu.Unlock()
	switch st.status {
	case statusHeld, statusSkipped:
		return
	case statusFailed:
		if m.now().Before(st.nextTry) {
			return
		}
	}
	if !st.addr.IsValid() {
		addr, why := parseTarget(a.Target)
		if why != "" {
			m.skip(ctx, a.Router, st, statusSkipped, pol, kindAddressList, a.Target, "skipped: "+why)
			return
		}
		st.addr = addr
	}
	m.add(ctx, c, a.Router, st, pol)
}

// parseTarget reads an alert's target; why says why it cannot be listed.
func parseTarget(t string) (netip.Addr, string) {
	a, err := netip.ParseAddr(t)
	if err != nil {
		return netip.Addr{}, fmt.Sprintf("target %q is not an IP address", t)
	}
	a = a.Unmap().WithZone("")
	if !a.IsGlobalUnicast() {
		return netip.Addr{}, fmt.Sprintf("target %s is not a unicast address", a)
	}
	return a, ""
}

// listOf is the list a role's addresses go into.
func (p Policy) listOf(r role) string {
	if r == roleAbuse {
		return p.AbuseList
	}
	return p.AttackedList
}

// add lists an alert's address (and routes it into a blackhole when
// asked), or explains why not.
func (m *Mitigator) add(ctx context.Context, c *conn, router string, st *alertState, pol Policy) {
	key := entryKey{list: pol.listOf(st.role), addr: st.addr}
	m.mu.Lock()
	rs := m.routerLocked(router)
	if e := rs.entries[key]; e != nil {
		// Another alert (or this one, earlier) already holds the address.
		e.alerts[st.id] = true
		e.releasing = false
		m.mu.Unlock()
		m.skip(ctx, router, st, statusHeld, pol, kindAddressList, st.addr.String(),
			fmt.Sprintf("skipped: already listed for alert %d", e.alertID))
		return
	}
	if len(rs.entries) >= pol.MaxEntries {
		first := st.status != statusCapped
		m.mu.Unlock()
		if first {
			m.skip(ctx, router, st, statusCapped, pol, kindAddressList, st.addr.String(),
				fmt.Sprintf("skipped: cap of %d entries reached", pol.MaxEntries))
		}
		return
	}
	m.mu.Unlock()

	cmt := comment(st.id, st.kind)
	e := &entry{key: key, role: st.role, alertID: st.id, comment: cmt, alerts: map[int64]bool{st.id: true},
		dryRun: pol.DryRun, wantRoute: st.role == roleAttacked && pol.Blackhole}
	act := store.MitigationAction{AlertID: st.id, Router: router, Action: actionAdd, Kind: kindAddressList,
		List: key.list, Address: st.addr.String(), Timeout: pol.Timeout, DryRun: pol.DryRun}
	if pol.DryRun {
		e.refreshed, e.routed = m.now(), e.wantRoute
		m.hold(router, st, e)
		m.logger.Info("mitigation dry run: would list address", "router", router, "alert", st.id, "list", key.list,
			"address", st.addr, "timeout", pol.Timeout, "blackhole", e.wantRoute)
		m.record(ctx, act, resultDryRun)
		if e.wantRoute {
			m.record(ctx, blackholeAction(act), resultDryRun)
		}
		return
	}
	s, err := c.get(ctx)
	if err != nil {
		m.fail(ctx, router, st, act, err)
		return
	}
	if s.ownAddress(st.addr) {
		m.skip(ctx, router, st, statusSkipped, pol, kindAddressList, st.addr.String(), "skipped: target is the router's own address")
		return
	}
	existing, err := s.addListEntry(ctx, key.list, st.addr, pol.Timeout, cmt)
	switch {
	case err != nil && st.addr.Is6() && errors.Is(err, routeros.ErrUnknown):
		m.skip(ctx, router, st, statusSkipped, pol, kindAddressList, st.addr.String(),
			"skipped: the router has no IPv6 firewall (ipv6 package disabled?)")
		return
	case err != nil:
		m.fail(ctx, router, st, act, err)
		return
	case existing != nil && commentOK(existing.comment):
		// Left by an earlier run: adopt it, with this alert's comment.
		if err := s.setListEntry(ctx, st.addr, existing.id, pol.Timeout, cmt); err != nil {
			m.fail(ctx, router, st, act, err)
			return
		}
	case existing != nil:
		m.skip(ctx, router, st, statusSkipped, pol, kindAddressList, st.addr.String(),
			fmt.Sprintf("skipped: %s is already in list %s (not flowbox's entry)", st.addr, key.list))
		return
	}
	e.refreshed = m.now()
	m.hold(router, st, e)
	m.logger.Info("mitigation: address listed", "router", router, "alert", st.id, "list", key.list, "address", st.addr,
		"timeout", pol.Timeout)
	m.record(ctx, act, resultOK)
	if e.wantRoute {
		m.addRoute(ctx, s, router, e, act)
	}
}

func commentOK(c string) bool { _, ok := commentAlert(c); return ok }

func blackholeAction(act store.MitigationAction) store.MitigationAction {
	act.Kind, act.List, act.Timeout = kindBlackhole, "", 0
	return act
}

// addRoute adds an entry's blackhole route.
func (m *Mitigator) addRoute(ctx context.Context, s *session, router string, e *entry, act store.MitigationAction) {
	ract := blackholeAction(act)
	ract.AlertID = e.alertID
	err := s.addBlackhole(ctx, e.key.addr, e.comment)
	switch {
	case errors.Is(err, errNoIPv6Blackhole):
		m.mu.Lock()
		e.wantRoute = false
		m.mu.Unlock()
		m.record(ctx, ract, "skipped: "+err.Error())
	case err != nil:
		m.mu.Lock()
		e.fails++
		e.nextTry = m.now().Add(m.backoff(e.fails))
		m.mu.Unlock()
		m.record(ctx, ract, "error: "+err.Error())
		m.logger.Warn("mitigation: cannot add blackhole route", "router", router, "address", e.key.addr, "error", err)
	default:
		m.mu.Lock()
		e.routed, e.fails = true, 0
		m.mu.Unlock()
		m.logger.Info("mitigation: blackhole route added", "router", router, "alert", e.alertID, "address", e.key.addr)
		m.record(ctx, ract, resultOK)
	}
}

// hold records an entry held for an alert.
func (m *Mitigator) hold(router string, st *alertState, e *entry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs := m.routerLocked(router)
	rs.entries[e.key] = e
	st.status, st.fails = statusHeld, 0
}

// skip sets an alert's status, then audits and counts the skip.
func (m *Mitigator) skip(ctx context.Context, router string, st *alertState, status alertStatus, pol Policy, kind, addr, result string) {
	m.mu.Lock()
	st.status = status
	m.mu.Unlock()
	m.logger.Info("mitigation skipped", "router", router, "alert", st.id, "address", addr, "why", result)
	m.record(ctx, store.MitigationAction{AlertID: st.id, Router: router, Action: actionAdd, Kind: kind,
		List: pol.listOf(st.role), Address: addr, Timeout: pol.Timeout, DryRun: pol.DryRun}, result)
}

// fail audits and counts a failed add, and schedules its retry.
func (m *Mitigator) fail(ctx context.Context, router string, st *alertState, act store.MitigationAction, err error) {
	m.mu.Lock()
	st.status = statusFailed
	st.fails++
	st.nextTry = m.now().Add(m.backoff(st.fails))
	m.mu.Unlock()
	m.logger.Warn("mitigation failed", "router", router, "alert", st.id, "address", act.Address, "error", err)
	m.record(ctx, act, "error: "+err.Error())
}

// backoff is the pause after n consecutive failures.
func (m *Mitigator) backoff(n int) time.Duration {
	return m.cfg.RetryInterval << min(max(n-1, 0), maxBackoffShift)
}

// release drops an alert; the last alert of an entry removes it.
func (m *Mitigator) release(ctx context.Context, c *conn, router string, id int64, pol Policy) {
	m.mu.Lock()
	rs := m.routerLocked(router)
	st := rs.alerts[id]
	delete(rs.alerts, id)
	if st == nil || st.status != statusHeld {
		m.mu.Unlock()
		return
	}
	e := rs.entries[entryKey{list: pol.listOf(st.role), addr: st.addr}]
	if e == nil {
		m.mu.Unlock()
		return
	}
	delete(e.alerts, id)
	if len(e.alerts) > 0 {
		m.mu.Unlock()
		return
	}
	e.releasing = true
	m.mu.Unlock()
	m.removeEntry(ctx, c, router, e, pol)
}

// removeEntry removes an entry (list entry and route) from its router.
func (m *Mitigator) removeEntry(ctx context.Context, c *conn, router string, e *entry, pol Policy) {
	act := store.MitigationAction{AlertID: e.alertID, Router: router, Action: actionRemove, Kind: kindAddressList,
		List: e.key.list, Address: e.key.addr.String(), Timeout: pol.Timeout, DryRun: e.dryRun}
	drop := func() {
		m.mu.Lock()
		rs := m.routerLocked(router)
		if rs.entries[e.key] == e {
			delete(rs.entries, e.key)
		}
		m.mu.Unlock()
	}
	if e.dryRun {
		drop()
		m.logger.Info("mitigation dry run: would unlist address", "router", router, "alert", e.alertID, "list", e.key.list,
			"address", e.key.addr)
		m.record(ctx, act, resultDryRun)
		if e.routed {
			m.record(ctx, blackholeAction(act), resultDryRun)
		}
		return
	}
	retry := func(a store.MitigationAction, err error) {
		m.mu.Lock()
		e.fails++
		e.nextTry = m.now().Add(m.backoff(e.fails))
		m.mu.Unlock()
		m.logger.Warn("mitigation: cannot remove entry, retried later", "router", router, "address", e.key.addr, "error", err)
		m.record(ctx, a, "error: "+err.Error())
	}
	s, err := c.get(ctx)
	if err != nil {
		retry(act, err)
		return
	}
	if e.routed || e.wantRoute {
		n, err := s.removeBlackholes(ctx, e.key.addr)
		if err != nil {
			retry(blackholeAction(act), err)
			return
		}
		m.mu.Lock()
		routed := e.routed
		e.routed, e.wantRoute = false, false
		m.mu.Unlock()
		if routed || n > 0 {
			m.record(ctx, blackholeAction(act), resultOK)
		}
	}
	if e.foreign {
		drop() // the operator's entry stays, as audited when found
		return
	}
	n, err := s.removeListEntries(ctx, e.key.addr, e.key.list)
	if err != nil {
		retry(act, err)
		return
	}
	drop()
	m.logger.Info("mitigation: address unlisted", "router", router, "alert", e.alertID, "list", e.key.list,
		"address", e.key.addr, "already_expired", n == 0)
	m.record(ctx, act, resultOK)
}

// record appends to the audit log and counts the action.
func (m *Mitigator) record(ctx context.Context, act store.MitigationAction, result string) {
	act.At, act.Result = m.now(), result
	m.mu.Lock()
	rs := m.routerLocked(act.Router)
	switch {
	case strings.HasPrefix(result, "error:"):
		rs.errors++
		rs.lastError = strings.TrimPrefix(result, "error: ")
	case strings.HasPrefix(result, "skipped:"):
		rs.skipped++
	case act.Action == actionRemove:
		rs.removed++
	default:
		rs.added++
	}
	m.mu.Unlock()
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	if err := m.deps.Audit.AddMitigationAction(actx, &act); err != nil {
		m.mu.Lock()
		rs.errors++
		rs.lastError = "cannot write the audit log: " + err.Error()
		m.mu.Unlock()
		m.logger.Error("cannot write the mitigation audit log", "router", act.Router, "alert", act.AlertID,
			"action", act.Action, "result", result, "error", err)
	}
}

// maintain retries failed changes, renews entries that passed half their
// timeout and retries a failed start-up cleanup, one session per router.
func (m *Mitigator) maintain(ctx context.Context) {
	m.op.Lock()
	defer m.op.Unlock()
	now := m.now()
	m.mu.Lock()
	names := make([]string, 0, len(m.routers))
	for n := range m.routers {
		names = append(names, n)
	}
	m.mu.Unlock()
	slices.Sort(names)
	for _, name := range names {
		if ctx.Err() != nil {
			return
		}
		pol := m.cfg.Policy(name)
		m.mu.Lock()
		rs := m.routers[name]
		cleanup := rs.cleanup && !now.Before(rs.nextTry)
		var (
			failed  []*alertState
			capped  []*alertState
			renew   []*entry
			routes  []*entry
			release []*entry
		)
		for id, st := range rs.alerts {
			switch {
			case st.status != statusHeld && now.Sub(st.seen) > staleAlert:
				delete(rs.alerts, id) // its resolution was lost
			case st.status == statusFailed && !now.Before(st.nextTry):
				failed = append(failed, st)
			case st.status == statusCapped:
				capped = append(capped, st)
			}
		}
		for _, e := range rs.entries {
			switch {
			case e.dryRun || now.Before(e.nextTry):
				continue
			case e.releasing:
				release = append(release, e)
				continue
			}
			if e.wantRoute && !e.routed {
				routes = append(routes, e)
			}
			if !e.foreign && now.Sub(e.refreshed) >= pol.Timeout/2 {
				renew = append(renew, e)
			}
		}
		m.mu.Unlock()
		if !pol.Enabled {
			continue
		}
		// In a stable order, for readable logs and audit.
		byID := func(a, b *alertState) int { return cmp.Compare(a.id, b.id) }
		slices.SortFunc(failed, byID)
		slices.SortFunc(capped, byID)
		byAlert := func(a, b *entry) int { return cmp.Compare(a.alertID, b.alertID) }
		slices.SortFunc(release, byAlert)
		slices.SortFunc(routes, byAlert)
		slices.SortFunc(renew, byAlert)
		c := &conn{m: m, router: name}
		if cleanup {
			m.cleanupRouter(ctx, c, name)
		}
		for _, e := range release {
			m.removeEntry(ctx, c, name, e, pol)
		}
		for _, e := range routes {
			s, err := c.get(ctx)
			if err != nil {
				m.mu.Lock()
				e.fails++
				e.nextTry = now.Add(m.backoff(e.fails))
				m.mu.Unlock()
				continue
			}
			m.addRoute(ctx, s, name, e, store.MitigationAction{AlertID: e.alertID, Router: name, Action: actionAdd,
				Address: e.key.addr.String()})
		}
		for _, e := range renew {
			m.renew(ctx, c, name, e, pol)
		}
		for _, st := range append(failed, capped...) {
			m.add(ctx, c, name, st, pol)
		}
		c.close()
	}
}

// renew gives a held list entry a fresh timeout; an entry that expired or
// was removed meanwhile is added again.
func (m *Mitigator) renew(ctx context.Context, c *conn, router string, e *entry, pol Policy) {
	act := store.MitigationAction{AlertID: e.alertID, Router: router, Action: actionAdd, Kind: kindAddressList,
		List: e.key.list, Address: e.key.addr.String(), Timeout: pol.Timeout}
	fail := func(err error) {
		m.mu.Lock()
		e.fails++
		e.nextTry = m.now().Add(m.backoff(e.fails))
		m.mu.Unlock()
		m.logger.Warn("mitigation: cannot renew entry", "router", router, "address", e.key.addr, "error", err)
		m.record(ctx, act, "error: "+err.Error())
	}
	s, err := c.get(ctx)
	if err != nil {
		fail(err)
		return
	}
	// Found by value, never by a remembered .id: after a reboot the
	// router hands out .ids again, and one may be an operator's entry.
	found, err := s.findListEntries(ctx, e.key.addr, e.key.list)
	if err != nil {
		fail(err)
		return
	}
	i := slices.IndexFunc(found, func(l listEntry) bool { return commentOK(l.comment) })
	switch {
	case i >= 0:
		err = s.setListEntry(ctx, e.key.addr, found[i].id, pol.Timeout, "")
	case len(found) > 0:
		// The operator listed the address meanwhile: the entry is theirs,
		// flowbox only keeps its route (if any) until the alert resolves.
		m.mu.Lock()
		e.foreign = true
		m.mu.Unlock()
		m.record(ctx, act, fmt.Sprintf("skipped: %s is already in list %s (not flowbox's entry)", e.key.addr, e.key.list))
		return
	default:
		// Expired (flowbox could not renew it in time) or removed: add
		// it again, the alert is still active.
		_, err = s.addListEntry(ctx, e.key.list, e.key.addr, pol.Timeout, e.comment)
	}
	if err != nil {
		fail(err)
		return
	}
	m.mu.Lock()
	e.refreshed, e.fails = m.now(), 0
	m.mu.Unlock()
	m.logger.Debug("mitigation: entry renewed", "router", router, "address", e.key.addr, "timeout", pol.Timeout)
	m.record(ctx, act, resultOK)
}

// Status returns each router's mitigation state: the routers configured
// under routers, and every router the mitigator acted on.
func (m *Mitigator) Status() []store.MitigationStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.cfg.Routers)+len(m.routers))
	for n := range m.cfg.Routers {
		names = append(names, n)
	}
	for n := range m.routers {
		if _, ok := m.cfg.Routers[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	out := make([]store.MitigationStatus, 0, len(names))
	for _, n := range names {
		pol := m.cfg.Policy(n)
		st := store.MitigationStatus{Router: n, Enabled: pol.Enabled, DryRun: pol.DryRun, MaxEntries: pol.MaxEntries}
		if rs := m.routers[n]; rs != nil {
			st.Entries = len(rs.entries)
			st.Added, st.Removed, st.Skipped, st.Errors, st.LastError = rs.added, rs.removed, rs.skipped, rs.errors, rs.lastError
		}
		out = append(out, st)
	}
	return out
}

// Undo removes every entry flowbox added on a router (address-list
// entries and routes whose comment starts with "flowbox alert "), whatever
// the router's policy, and stops mitigating the alerts active now; an
// operator's own entries stay.
// It returns how many entries it removed. `flowbox router undo` and
// `router remove` call it.
func (m *Mitigator) Undo(ctx context.Context, router string) (int, error) {
	m.op.Lock()
	defer m.op.Unlock()
	c := &conn{m: m, router: router}
	defer c.close()
	n, err := m.sweep(ctx, c, router, nil)
	if err != nil {
		m.mu.Lock()
		rs := m.routerLocked(router)
		rs.errors++
		rs.lastError = err.Error()
		m.mu.Unlock()
		return n, fmt.Errorf("cannot undo mitigation on router %s: %w", router, err)
	}
	m.mu.Lock()
	if rs := m.routers[router]; rs != nil {
		// The alerts active now are not mitigated again.
		clear(rs.entries)
		for _, st := range rs.alerts {
			st.status = statusSkipped
		}
	}
	m.mu.Unlock()
	m.logger.Info("mitigation undone", "router", router, "removed", n)
	return n, nil
}

// Cleanup removes, from every router whose mitigation is enabled (and not
// a dry run), the flowbox entries the mitigator does not hold: those of
// alerts that did not survive a restart. Run calls it first; a router
// that cannot be reached is retried with backoff. It returns how many
// entries it removed.
func (m *Mitigator) Cleanup(ctx context.Context) (int, error) {
	m.op.Lock()
	defer m.op.Unlock()
	names := map[string]bool{}
	for n := range m.cfg.Routers {
		names[n] = true
	}
	var errs []error
	if p := m.cfg.Policy(""); p.Enabled {
		// The default block enables routers not listed: ask the
		// inventory for them.
		if l, ok := m.deps.Routers.(RouterLister); ok {
			lctx, cancel := context.WithTimeout(ctx, m.cfg.CommandTimeout)
			rs, err := l.ListRouters(lctx)
			cancel()
			if err != nil {
				errs = append(errs, fmt.Errorf("cannot list routers: %w", err))
			}
			for _, r := range rs {
				names[r.Name] = true
			}
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		if p := m.cfg.Policy(n); p.Enabled && !p.DryRun {
			sorted = append(sorted, n)
		}
	}
	slices.Sort(sorted)
	total := 0
	for _, n := range sorted {
		c := &conn{m: m, router: n}
		k, err := m.cleanupRouter(ctx, c, n)
		c.close()
		total += k
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

// cleanupRouter is Cleanup for one router.
func (m *Mitigator) cleanupRouter(ctx context.Context, c *conn, name string) (int, error) {
	m.mu.Lock()
	held := map[entryKey]bool{}
	routed := map[netip.Addr]bool{}
	if rs := m.routers[name]; rs != nil {
		for k, e := range rs.entries {
			if !e.releasing {
				held[k] = true
				if e.routed || e.wantRoute {
					routed[k.addr] = true
				}
			}
		}
	}
	m.mu.Unlock()
	keep := func(list string, a netip.Addr, isRoute bool) bool {
		if isRoute {
			return routed[a]
		}
		return held[entryKey{list, a}]
	}
	n, err := m.sweep(ctx, c, name, keep)
	m.mu.Lock()
	rs := m.routerLocked(name)
	if err != nil {
		rs.cleanup = true
		rs.fails++
		rs.nextTry = m.now().Add(m.backoff(rs.fails))
		rs.errors++
		rs.lastError = "cleanup: " + err.Error()
	} else {
		rs.cleanup, rs.fails = false, 0
	}
	m.mu.Unlock()
	if err != nil {
		return n, fmt.Errorf("cannot clean up router %s: %w", name, err)
	}
	return n, nil
}

// sweep removes flowbox's entries from a router, except those keep
// reports (nil: none kept), auditing each removal.
func (m *Mitigator) sweep(ctx context.Context, c *conn, router string, keep func(list string, a netip.Addr, isRoute bool) bool) (int, error) {
	s, err := c.get(ctx)
	if err != nil {
		return 0, err
	}
	pol, def := m.cfg.Policy(router), m.cfg.Policy("")
	var lists []string
	for _, l := range []string{pol.AttackedList, pol.AbuseList, def.AttackedList, def.AbuseList, DefaultAttackedList, DefaultAbuseList} {
		if !slices.Contains(lists, l) {
			lists = append(lists, l)
		}
	}
	entries, routes, err := s.scan(ctx, lists)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range routes {
		if keep != nil && keep("", r.addr, true) {
			continue
		}
		id, _ := commentAlert(r.comment)
		act := store.MitigationAction{AlertID: id, Router: router, Action: actionRemove, Kind: kindBlackhole, Address: r.addr.String()}
		if err := s.remove(ctx, routeMenu(r.addr), r.id); err != nil {
			m.record(ctx, act, "error: "+err.Error())
			return n, err
		}
		n++
		m.record(ctx, act, resultOK)
	}
	for _, e := range entries {
		if keep != nil && keep(e.list, e.addr, false) {
			continue
		}
		id, _ := commentAlert(e.comment)
		act := store.MitigationAction{AlertID: id, Router: router, Action: actionRemove, Kind: kindAddressList,
			List: e.list, Address: e.addr.String()}
		if err := s.remove(ctx, listMenu(e.addr), e.id); err != nil {
			m.record(ctx, act, "error: "+err.Error())
			return n, err
		}
		n++
		m.record(ctx, act, resultOK)
	}
	return n, nil
}
