// Package provision onboards MikroTik routers over the RouterOS API (v6 and
// v7): it detects what a router is and how it is configured, plans the
// /ip/traffic-flow settings and the target that point it at flowbox's
// collector, shows the plan as a diff, applies it idempotently, verifies
// that flows arrive, undoes exactly what it changed, and checks for drift.
//
// Provisioning converges instead of running a script: each Step checks,
// applies, then checks again, and a step already in place is a counted
// skip. Previous values are recorded in the inventory before the router is
// changed, so a router that drops the connection mid-apply leaves a state
// that the next apply completes and that undo can restore. Every operation
// appends a store.ProvisionRun to the router's history, with the changes
// and a transcript whose passwords are redacted.
//
// The package talks to routers only through routeros, and to the
// inventory through the small Inventory interface (store/inventory with
// the flow database's last-seen times satisfies it, wired in cmd/flowbox). New only builds; Run runs the drift checker.
package provision

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/routeros"
	"github.com/flowbox/flowbox/store"
)

// Inventory is what the provisioner needs of the store.
type Inventory interface {
	AddRouter(ctx context.Context, r *store.Router) error
	UpdateRouter(ctx context.Context, r *store.Router) error
	GetRouter(ctx context.Context, name string) (*store.Router, error)
	ListRouters(ctx context.Context) ([]store.Router, error)
	RemoveRouter(ctx context.Context, name string) error
	AddProvisionRun(ctx context.Context, run *store.ProvisionRun) error
	ProvisionRuns(ctx context.Context, routerID int64, limit int) ([]store.ProvisionRun, error)
	LastFlowFrom(ctx context.Context, routerID int64) (time.Time, bool, error)
	ExporterLastSeen(addr netip.Addr) (time.Time, bool)
}

// Collector optionally exposes the collector's per-exporter counters, so
// that Verify can tell "packets but no template yet" and "flows from an
// address not matched to any router" apart from "no packets at all".
type Collector interface {
	Exporters() []store.ExporterStats
}

// DialFunc opens an API session; routeros.Dial in production.
type DialFunc func(ctx context.Context, opts routeros.Options) (*routeros.Conn, error)

// Deps are the provisioner's dependencies.
type Deps struct {
	Store      Inventory
	Collector  Collector // optional
	Dial       DialFunc  // nil means routeros.Dial
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Provisioner onboards and maintains routers. Its methods are safe for
// concurrent use; operations on the same router are serialised.
type Provisioner struct {
	cfg       Config
	store     Inventory
	collector Collector
	dial      DialFunc
	logger    *slog.Logger
	metrics   *metrics

	mu    sync.Mutex
	locks map[string]*sync.Mutex
	// addMu serialises storing new routers with the check that no other
	// router may export from where a new router's flows come from.
	addMu sync.Mutex
}

// New checks the configuration and builds a Provisioner. It opens no
// connection and starts no goroutine.
func New(cfg Config, deps Deps) (*Provisioner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid provision config: %w", err)
	}
	if deps.Store == nil {
		return nil, errors.New("cannot build provisioner: nil store")
	}
	if deps.Logger == nil {
		return nil, errors.New("cannot build provisioner: nil logger")
	}
	if deps.Registerer == nil {
		return nil, errors.New("cannot build provisioner: nil registerer")
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	dial := deps.Dial
	if dial == nil {
		dial = routeros.Dial
	}
	return &Provisioner{cfg: cfg, store: deps.Store, collector: deps.Collector, dial: dial,
		logger: deps.Logger, metrics: m, locks: map[string]*sync.Mutex{}}, nil
}

// Plan is what Apply would change on a router, as a diff.
type Plan struct {
	Router string
	// Collector is where the router will send flows.
	Collector netip.AddrPort
	// LegacySyntax is true when the router uses `address=IP:port` targets.
	LegacySyntax bool
	Changes      []Change
	// Source is the src-address flowbox gives the router's target, so
	// that its flows can be told apart from those of router Other, which
	// may export from Shared, where this router's flows would come from
	// otherwise. It is invalid when flowbox leaves src-address alone.
	Source netip.Addr
	Other  string
	Shared netip.Addr
}

// SourceReason explains Source in one line ("" without one).
func (p *Plan) SourceReason() string {
	if !p.Source.IsValid() {
		return ""
	}
	return fmt.Sprintf("flows will come from %s (src-address): router %s may export from %s, where they would come from otherwise",
		p.Source, p.Other, p.Shared)
}

// InPlace reports that nothing needs to change.
func (p *Plan) InPlace() bool { return len(p.Changes) == 0 }

// Lines renders the plan as "property: current -> new" lines.
func (p *Plan) Lines() []string {
	out := make([]string, len(p.Changes))
	for i, c := range p.Changes {
		out[i] = c.String()
	}
	return out
}

// Result is the outcome of Apply or Undo.
type Result struct {
	Router  string
	Changes []Change
	// Skipped counts the steps that were already in place.
	Skipped int
	Summary string
}

// Detection is what Detect learned from a router.
type Detection struct {
	Identity     string
	Version      string
	Board        string
	Model        string
	Serial       string
	Architecture string
	// CHR is true when /system/routerboard is absent (x86, cloud).
	CHR        bool
	Interfaces []store.Interface
	Addresses  []netip.Prefix
	// IPFIX is true when /ip/traffic-flow/ipfix exists.
	IPFIX bool
	// LocalAddr is flowbox's address as the router sees it.
	LocalAddr netip.Addr
}

// session is one API session with a router during an operation.
type session struct {
	p           *Provisioner
	conn        *routeros.Conn
	r           *store.Router
	collector   netip.AddrPort
	remote      netip.Addr // the router's address as flowbox reaches it
	legacy      bool
	syntaxKnown bool
	// source is the last decision on the target's src-address (see
	// source.go), taken from sourceIn.
	source   sourceDecision
	sourceIn sourceInput
}

func (s *session) run(ctx context.Context, words ...string) (*routeros.Reply, error) {
	return s.conn.Run(ctx, words...)
}

// recordPrevious keeps the first value seen before flowbox changed key.
func (s *session) recordPrevious(key, value string) {
	if s.r.Previous == nil {
		s.r.Previous = map[string]string{}
	}
	if _, ok := s.r.Previous[key]; !ok {
		s.r.Previous[key] = value
	}
}

func (s *session) save(ctx context.Context) error {
	if s.r.ID == 0 {
		return nil // dry run of an unsaved router
	}
	if err := s.p.store.UpdateRouter(ctx, s.r); err != nil {
		return fmt.Errorf("cannot save router %s: %w", s.r.Name, err)
	}
	return nil
}

// lock serialises operations on one router.
func (p *Provisioner) lock(name string) func() {
	p.mu.Lock()
	l, ok := p.locks[name]
	if !ok {
		l = &sync.Mutex{}
		p.locks[name] = l
	}
	p.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// connect dials the router, pins its certificate on first use and computes
// the collector address.
func (p *Provisioner) connect(ctx context.Context, r *store.Router) (*session, error) {
	conn, err := p.dial(ctx, routeros.Options{
		Address: r.Address, Username: r.Username, Password: r.Password, TLS: r.TLS,
		Fingerprint: r.TLSFingerprint, DialTimeout: p.cfg.DialTimeout, CommandTimeout: p.cfg.CommandTimeout,
	})
	if err != nil {
		return nil, err
	}
	if r.TLS && r.TLSFingerprint == "" {
		r.TLSFingerprint = conn.Fingerprint()
	}
	s := &session{p: p, conn: conn, r: r, remote: conn.RemoteAddr()}
	addr := conn.LocalAddr()
	if p.cfg.CollectorAddress != "" {
		addr = netip.MustParseAddr(p.cfg.CollectorAddress) // checked by Validate
	}
	if !addr.IsValid() || addr.IsUnspecified() {
		_ = conn.Close()
		return nil, fmt.Errorf("cannot tell the collector address for router %s: set provision.collector-address", r.Name)
	}
	s.collector = netip.AddrPortFrom(addr, uint16(p.cfg.CollectorPort))
	return s, nil
}

// retryable reports errors worth another attempt on a new connection.
func retryable(err error) bool {
	return errors.Is(err, routeros.ErrTimeout) || errors.Is(err, routeros.ErrDropped) || errors.Is(err, routeros.ErrBroken)
}

// withSession runs fn on a fresh session, retrying with exponential
// backoff when the router times out or drops the connection (steps
// converge, so running fn again is safe).
func (p *Provisioner) withSession(ctx context.Context, r *store.Router, rec *recorder, fn func(*session) error) error {
	backoff := p.cfg.RetryBackoff
	var err error
	for attempt := 1; ; attempt++ {
		var s *session
		s, err = p.connect(ctx, r)
		if err == nil {
			err = fn(s)
			rec.addConn(s.conn)
			_ = s.conn.Close()
			if err == nil {
				r.LastContact = time.Now()
				return nil
			}
		}
		if attempt >= p.cfg.Attempts || !retryable(err) || ctx.Err() != nil {
			return err
		}
		p.metrics.retries.Inc()
		p.logger.Warn("router operation failed, retrying", "router", r.Name, "attempt", attempt, "backoff", backoff, "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff *= 2
	}
}

// operation runs one action on a stored router and records it.
func (p *Provisioner) operation(ctx context.Context, name, action string, fn func(r *store.Router, rec *recorder) error) (*store.Router, error) {
	unlock := p.lock(name)
	defer unlock()
	r, err := p.store.GetRouter(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("cannot load router %s: %w", name, err)
	}
	rec := p.newRecorder(action, r)
	start := time.Now()
	err = fn(r, rec)
	p.metrics.duration.WithLabelValues(action).Observe(time.Since(start).Seconds())
	if err != nil {
		p.metrics.operations.WithLabelValues(action, "error").Inc()
		switch action {
		case "detect", "plan", "apply", "undo":
			r.State, r.StateDetail = store.StateError, rec.redact(err.Error())
			if uerr := p.store.UpdateRouter(ctx, r); uerr != nil {
				p.logger.Error("cannot save router state", "router", name, "error", uerr)
			}
		}
		p.logger.Warn("router operation failed", "router", name, "action", action, "error", rec.redact(err.Error()))
	} else {
		p.metrics.operations.WithLabelValues(action, "ok").Inc()
	}
	p.saveRun(ctx, rec, err)
	if err != nil {
		return r, fmt.Errorf("cannot %s router %s: %w", action, name, err)
	}
	return r, nil
}

// AddRequest describes a router to onboard.
type AddRequest struct {
	Name string
	// Address is HOST[:PORT]; the port defaults to 8728 (8729 with TLS).
	Address  string
	TLS      bool
	Username string
	Password string
	// DryRun only connects, detects and plans: nothing is stored or
	// changed.
	DryRun bool
	// CreateUser creates a least-privilege RouterOS user for flowbox
	// (group policy api,read,write) and stores it instead of the given
	// login.
	CreateUser bool
}

// Add connects to a new router, detects it, stores it and returns its plan.
// It does not apply the plan (see Apply).
func (p *Provisioner) Add(ctx context.Context, req AddRequest) (*store.Router, *Plan, error) {
	if !store.ValidRouterName(req.Name) {
		return nil, nil, fmt.Errorf("cannot add router: invalid name %q (%s)", req.Name, store.RouterNameRule)
	}
	if req.Address == "" || req.Username == "" {
		return nil, nil, errors.New("cannot add router: address and user are required")
	}
	address := routeros.WithDefaultPort(req.Address, req.TLS)
	if _, port, err := net.SplitHostPort(address); err != nil || port == "" {
		return nil, nil, fmt.Errorf("cannot add router: bad address %q", req.Address)
	}
	unlock := p.lock(req.Name)
	defer unlock()
	if _, err := p.store.GetRouter(ctx, req.Name); err == nil {
		return nil, nil, fmt.Errorf("cannot add router %s: %w", req.Name, store.ErrExists)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, nil, fmt.Errorf("cannot add router %s: %w", req.Name, err)
	}
	r := &store.Router{Name: req.Name, Address: address, TLS: req.TLS, Username: req.Username, Password: req.Password,
		State: store.StateNew, Previous: map[string]string{}}
	rec := p.newRecorder("detect", r)
	var (
		plan   *Plan
		srcIn  sourceInput
		source sourceDecision
	)
	start := time.Now()
	err := p.withSession(ctx, r, rec, func(s *session) error {
		if _, err := p.detect(ctx, s); err != nil {
			return err
		}
		var err error
		if plan, err = p.plan(ctx, s); err != nil {
			return err
		}
		srcIn, source = s.sourceIn, s.source
		if req.CreateUser && !req.DryRun {
			return p.createUser(ctx, s)
		}
		return nil
	})
	p.metrics.duration.WithLabelValues("detect").Observe(time.Since(start).Seconds())
	if err != nil {
		p.metrics.operations.WithLabelValues("detect", "error").Inc()
		return nil, nil, fmt.Errorf("cannot add router %s: %w", req.Name, apiSSLHint(err, req.TLS))
	}
	p.metrics.operations.WithLabelValues("detect", "ok").Inc()
	if req.DryRun {
		return r, plan, nil
	}
	if err := p.storeNew(ctx, r, srcIn, source); err != nil {
		return nil, nil, err
	}
	rec.summary = fmt.Sprintf("added %s (RouterOS %s, %s), %d changes planned", r.Identity, r.Version, r.Board, len(plan.Changes))
	rec.changes = plan.Lines()
	p.saveRun(ctx, rec, nil)
	p.logger.Info("router added", "router", r.Name, "identity", r.Identity, "version", r.Version, "changes", len(plan.Changes))
	return r, plan, nil
}

// storeNew stores a new router after deciding its source address again,
// under addMu, against the inventory as it is now: a router stored since
// the plan may have changed the answer.
func (p *Provisioner) storeNew(ctx context.Context, r *store.Router, in sourceInput, planned sourceDecision) error {
	p.addMu.Lock()
	defer p.addMu.Unlock()
	others, err := p.others(ctx, r)
	if err != nil {
		return fmt.Errorf("cannot add router %s: %w", r.Name, err)
	}
	now, err := decideSource(in, others)
	if err != nil {
		return fmt.Errorf("cannot add router %s: %w", r.Name, err)
	}
	if now != planned {
		return fmt.Errorf("cannot add router %s: another router was added meanwhile and changes where this one must export from: add it again", r.Name)
	}
	if err := p.store.AddRouter(ctx, r); err != nil {
		return fmt.Errorf("cannot store router %s: %w", r.Name, err)
	}
	return nil
}

// Detect reconnects to a stored router and refreshes what flowbox knows of
// it (identity, board, version, interfaces, addresses).
func (p *Provisioner) Detect(ctx context.Context, name string) (*Detection, error) {
	var d *Detection
	_, err := p.operation(ctx, name, "detect", func(r *store.Router, rec *recorder) error {
		err := p.withSession(ctx, r, rec, func(s *session) error {
			var err error
			d, err = p.detect(ctx, s)
			return err
		})
		if err != nil {
			return err
		}
		rec.summary = fmt.Sprintf("%s, RouterOS %s, %d interfaces, %d addresses", r.Identity, r.Version, len(r.Interfaces), len(r.Addresses))
		return p.store.UpdateRouter(ctx, r)
	})
	return d, err
}

// Plan connects to the router and returns what Apply would change.
func (p *Provisioner) Plan(ctx context.Context, name string) (*Plan, error) {
	var plan *Plan
	_, err := p.operation(ctx, name, "plan", func(r *store.Router, rec *recorder) error {
		err := p.withSession(ctx, r, rec, func(s *session) error {
			var err error
			plan, err = p.plan(ctx, s)
			return err
		})
		if err != nil {
			return err
		}
		rec.changes = plan.Lines()
		rec.summary = fmt.Sprintf("%d changes planned", len(plan.Changes))
		if plan.InPlace() {
			rec.summary = "configuration already in place"
		}
		return nil
	})
	return plan, err
}

func (p *Provisioner) plan(ctx context.Context, s *session) (*Plan, error) {
	changes, err := p.planSteps(ctx, s, p.trafficFlowSteps())
	if err != nil {
		return nil, err
	}
	return &Plan{Router: s.r.Name, Collector: s.collector, LegacySyntax: s.legacy, Changes: changes,
		Source: s.source.Pin, Other: s.source.Other, Shared: s.source.Shared}, nil
}

// Apply converges the router to the plan. It is idempotent: a second Apply
// changes nothing and says so.
func (p *Provisioner) Apply(ctx context.Context, name string) (*Result, error) {
	res := &Result{Router: name}
	_, err := p.operation(ctx, name, "apply", func(r *store.Router, rec *recorder) error {
		err := p.withSession(ctx, r, rec, func(s *session) error {
			changes, skipped, err := p.applySteps(ctx, s, p.trafficFlowSteps())
			res.Changes = append(res.Changes, changes...)
			res.Skipped = skipped
			return err
		})
		rec.changes = changeLines(res.Changes)
		if err != nil {
			return err
		}
		res.Summary = summarize(res.Changes, "configuration already in place, nothing changed")
		rec.summary = res.Summary
		r.State, r.StateDetail = store.StateConfigured, res.Summary
		return p.store.UpdateRouter(ctx, r)
	})
	if err != nil {
		return nil, err
	}
	p.logger.Info("router provisioned", "router", name, "changes", len(res.Changes), "skipped", res.Skipped)
	return res, nil
}

// Undo restores the values flowbox overwrote and removes its target if
// flowbox created it. Undoing twice is harmless.
func (p *Provisioner) Undo(ctx context.Context, name string) (*Result, error) {
	res := &Result{Router: name}
	_, err := p.operation(ctx, name, "undo", func(r *store.Router, rec *recorder) error {
		err := p.withSession(ctx, r, rec, func(s *session) error {
			changes, err := p.undoSteps(ctx, s, p.trafficFlowSteps())
			res.Changes = append(res.Changes, changes...)
			return err
		})
		rec.changes = changeLines(res.Changes)
		if err != nil {
			return err
		}
		res.Summary = summarize(res.Changes, "nothing to undo")
		rec.summary = res.Summary
		if !r.TargetCreated {
			// The target stays, with its previous src-address: the
			// router no longer exports from the address flowbox pinned.
			// (A target flowbox added is gone: the router exports
			// nothing to flowbox, and keeps its address for a new apply.)
			r.ExporterAddr = netip.Addr{}
		}
		r.Previous, r.TargetID, r.TargetCreated = map[string]string{}, "", false
		r.State, r.StateDetail = store.StateUndone, res.Summary
		return p.store.UpdateRouter(ctx, r)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Remove deletes a router from the inventory, after undoing flowbox's
// settings on it unless keepRouterConfig is set.
func (p *Provisioner) Remove(ctx context.Context, name string, keepRouterConfig bool) error {
	if !keepRouterConfig {
		if _, err := p.Undo(ctx, name); err != nil {
			return fmt.Errorf("%w (remove with keep-router-config to delete it anyway)", err)
		}
	}
	unlock := p.lock(name)
	defer unlock()
	if err := p.store.RemoveRouter(ctx, name); err != nil {
		return fmt.Errorf("cannot remove router %s: %w", name, err)
	}
	p.mu.Lock()
	delete(p.locks, name)
	p.mu.Unlock()
	p.logger.Info("router removed", "router", name, "kept_router_config", keepRouterConfig)
	return nil
}

// CreateUser creates (or resets) a least-privilege RouterOS user for
// flowbox on a stored router, using the stored login, and stores the new
// login instead.
func (p *Provisioner) CreateUser(ctx context.Context, name string) (*store.Router, error) {
	return p.operation(ctx, name, "create-user", func(r *store.Router, rec *recorder) error {
		err := p.withSession(ctx, r, rec, func(s *session) error { return p.createUser(ctx, s) })
		if err != nil {
			return err
		}
		rec.summary = fmt.Sprintf("user %s (group %s, policy api,read,write) created and stored", r.Username, p.cfg.UserGroup)
		return p.store.UpdateRouter(ctx, r)
	})
}

// userPolicy is the least privilege provisioning needs.
const userPolicy = "api,read,write"

func (p *Provisioner) createUser(ctx context.Context, s *session) error {
	group, user := p.cfg.UserGroup, p.cfg.UserName
	g, err := s.run(ctx, "/user/group/print", "?name="+group)
	if err != nil {
		return fmt.Errorf("cannot read user groups: %w", err)
	}
	if len(g.Re) == 0 {
		if _, err := s.run(ctx, "/user/group/add", "=name="+group, "=policy="+userPolicy, "=comment=flowbox provisioning"); err != nil {
			return fmt.Errorf("cannot create group %s: %w", group, err)
		}
	} else if !samePolicy(g.Re[0]["policy"], userPolicy) {
		if _, err := s.run(ctx, "/user/group/set", "=.id="+g.Re[0][".id"], "=policy="+userPolicy); err != nil {
			return fmt.Errorf("cannot set policy of group %s: %w", group, err)
		}
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("cannot generate password: %w", err)
	}
	password := base64.RawURLEncoding.EncodeToString(b)
	u, err := s.run(ctx, "/user/print", "?name="+user)
	if err != nil {
		return fmt.Errorf("cannot read users: %w", err)
	}
	if len(u.Re) == 0 {
		_, err = s.run(ctx, "/user/add", "=name="+user, "=group="+group, "=password="+password, "=comment=flowbox provisioning")
	} else {
		_, err = s.run(ctx, "/user/set", "=.id="+u.Re[0][".id"], "=group="+group, "=password="+password)
	}
	if err != nil {
		return fmt.Errorf("cannot create user %s: %w", user, err)
	}
	// Prove the new login works before storing it.
	check, err := p.dial(ctx, routeros.Options{Address: s.r.Address, Username: user, Password: password, TLS: s.r.TLS,
		Fingerprint: s.r.TLSFingerprint, DialTimeout: p.cfg.DialTimeout, CommandTimeout: p.cfg.CommandTimeout})
	if err != nil {
		return fmt.Errorf("cannot log in as the new user %s: %w", user, err)
	}
	_ = check.Close()
	s.r.Username, s.r.Password = user, password
	return nil
}

func samePolicy(have, want string) bool {
	set := func(s string) []string {
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p != "" && !strings.HasPrefix(p, "!") {
				out = append(out, p)
			}
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(set(have), set(want))
}

// detect reads the router's identity, resources, interfaces and addresses
// into s.r.
func (p *Provisioner) detect(ctx context.Context, s *session) (*Detection, error) {
	d := &Detection{LocalAddr: s.conn.LocalAddr()}
	res, err := s.run(ctx, "/system/resource/print", "=.proplist=version,board-name,architecture-name,uptime")
	if err != nil {
		return nil, fmt.Errorf("cannot read /system/resource: %w", err)
	}
	if len(res.Re) > 0 {
		d.Version, d.Board, d.Architecture = res.Re[0]["version"], res.Re[0]["board-name"], res.Re[0]["architecture-name"]
	}
	id, err := s.run(ctx, "/system/identity/print")
	if err != nil {
		return nil, fmt.Errorf("cannot read /system/identity: %w", err)
	}
	if len(id.Re) > 0 {
		d.Identity = id.Re[0]["name"]
	}
	rb, err := s.run(ctx, "/system/routerboard/print", "=.proplist=model,serial-number,board-name")
	switch {
	case errors.Is(err, routeros.ErrUnknown):
		d.CHR = true // no routerboard menu on x86/CHR
	case err != nil:
		return nil, fmt.Errorf("cannot read /system/routerboard: %w", err)
	case len(rb.Re) > 0:
		d.Model, d.Serial = rb.Re[0]["model"], rb.Re[0]["serial-number"]
	}
	ifs, err := s.run(ctx, "/interface/print", "=.proplist=.id,name,type,comment,name.oid")
	if err != nil {
		return nil, fmt.Errorf("cannot read /interface: %w", err)
	}
	for _, row := range ifs.Re {
		idx, ok := routeros.IfIndex(row)
		if !ok {
			p.logger.Debug("interface without ifIndex", "router", s.r.Name, "interface", row["name"])
			continue
		}
		d.Interfaces = append(d.Interfaces, store.Interface{Index: idx, Name: row["name"], Type: row["type"], Comment: row["comment"]})
	}
	addrs, err := s.run(ctx, "/ip/address/print", "=.proplist=address,interface,disabled")
	if err != nil {
		return nil, fmt.Errorf("cannot read /ip/address: %w", err)
	}
	for _, row := range addrs.Re {
		if pf, err := netip.ParsePrefix(row["address"]); err == nil && row["disabled"] != "true" {
			d.Addresses = append(d.Addresses, pf)
		}
	}
	_, err = s.run(ctx, "/ip/traffic-flow/ipfix/print", "=.proplist=bytes")
	switch {
	case err == nil:
		d.IPFIX = true
	case !errors.Is(err, routeros.ErrUnknown):
		return nil, fmt.Errorf("cannot read /ip/traffic-flow/ipfix: %w", err)
	}
	r := s.r
	r.Identity, r.Version, r.Board, r.Model, r.Serial = d.Identity, d.Version, d.Board, d.Model, d.Serial
	r.Interfaces, r.Addresses = d.Interfaces, d.Addresses
	return d, nil
}

func changeLines(cs []Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.String()
	}
	return out
}

// summarize writes one line such as "3 properties changed, target added".
func summarize(cs []Change, none string) string {
	if len(cs) == 0 {
		return none
	}
	props := 0
	var parts []string
	for _, c := range cs {
		switch c.op {
		case "add":
			parts = append(parts, "target added")
		case "remove":
			parts = append(parts, "target removed")
		default:
			props++
		}
	}
	if props > 0 {
		noun := "properties"
		if props == 1 {
			noun = "property"
		}
		parts = append([]string{fmt.Sprintf("%d %s changed", props, noun)}, parts...)
	}
	return strings.Join(parts, ", ")
}

// Routers lists the inventory.
func (p *Provisioner) Routers(ctx context.Context) ([]store.Router, error) {
	rs, err := p.store.ListRouters(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot list routers: %w", err)
	}
	return rs, nil
}

// Router returns one router of the inventory.
func (p *Provisioner) Router(ctx context.Context, name string) (*store.Router, error) {
	r, err := p.store.GetRouter(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("cannot load router %s: %w", name, err)
	}
	return r, nil
}

// Conflicts returns the addresses that several routers of the inventory
// may export from (store.Attribute): flows from them are attributed to
// none of those routers.
func (p *Provisioner) Conflicts(ctx context.Context) ([]store.AttributionConflict, error) {
	rs, err := p.store.ListRouters(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot list routers: %w", err)
	}
	_, conflicts := store.Attribute(rs)
	return conflicts, nil
}
