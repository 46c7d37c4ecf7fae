package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/flowbox/flowbox/alerts"
	"github.com/flowbox/flowbox/alerts/mitigate"
	"github.com/flowbox/flowbox/alerts/notify"
	"github.com/flowbox/flowbox/collector"
	"github.com/flowbox/flowbox/coverage"
	"github.com/flowbox/flowbox/enrich"
	"github.com/flowbox/flowbox/provision"
	"github.com/flowbox/flowbox/report"
	"github.com/flowbox/flowbox/report/scheduler"
	"github.com/flowbox/flowbox/store"
	storagepkg "github.com/flowbox/flowbox/store/storage"
	"github.com/flowbox/flowbox/web"
)

// statsInterval is how often the collector's per-exporter counters are
// saved to the store, so that `flowbox stats` in another process sees them.
const statsInterval = 5 * time.Second

// app is the component graph of `flowbox serve`, built in dependency order.
type app struct {
	cfg    Config
	logger *slog.Logger
	reg    *prometheus.Registry

	store     *storage
	enricher  *enrich.Enricher
	coverage  *coverage.Poller
	domains   *domainParts // nil when domains.enabled is false
	detector  *alerts.Detector
	notifier  *notify.Notifier
	mitigator *mitigate.Mitigator
	collector *collector.Collector
	trust     *collector.Allowlist
	prov      *provision.Provisioner
	report    *report.Builder      // the console's, the schedules' and the kept months'
	sched     *scheduler.Scheduler // the reports section's schedules
	web       *web.Server
}

// buildApp opens the store and builds every component. It starts nothing
// but the store's database (which must be open for the others to be
// built); the caller must call close.
func buildApp(ctx context.Context, cfg Config, logger *slog.Logger) (*app, error) {
	a := &app{cfg: cfg, logger: logger, reg: prometheus.NewRegistry()}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	st, err := storagepkg.Open(ctx, cfg.DataDir, cfg.Store, storagepkg.Exclusive, logger.With("component", "store"), a.reg)
	if err != nil {
		return nil, fmt.Errorf("cannot open store: %w", err)
	}
	a.store = st
	if err := a.build(); err != nil {
		st.Close()
		return nil, err
	}
	return a, nil
}

func (a *app) build() error {
	cfg, logger, st := a.cfg, a.logger, a.store
	// Visited domains: names for remote addresses from the routers' DNS
	// caches (and reverse DNS of the busiest hosts).
	dom, err := newDomainParts(cfg.Domains, st, logger)
	if err != nil {
		return err
	}
	a.domains = dom
	var labeler enrich.DomainLabeler
	if dom != nil {
		labeler = domainLabeler{dom.hist}
	}
	enr, err := enrich.New(cfg.Enrich, enrich.Deps{
		Logger:      logger.With("component", "enrich"),
		Registerer:  a.reg,
		Resolver:    st.Inventory,
		Routers:     st.Inventory,
		Dial:        enrich.DialRouterOS,
		Subscribers: st.Inventory,
		Interfaces:  st.Inventory,
		Domains:     labeler,
	})
	if err != nil {
		return fmt.Errorf("cannot build enrichment: %w", err)
	}
	a.enricher = enr
	// Coverage: the routers' interface counters beside the flows.
	cov, err := coverage.New(cfg.Coverage, coverage.Deps{
		Logger:          logger.With("component", "coverage"),
		Registerer:      a.reg,
		Routers:         st.Inventory,
		Dial:            coverage.DialRouterOS,
		Store:           st.FlowDB,
		Source:          st,
		MinuteRetention: cfg.Store.Effective().MinuteRetention,
	})
	if err != nil {
		return fmt.Errorf("cannot build the counter poller: %w", err)
	}
	a.coverage = cov
	// The detectors watch the enriched stream before the store's queue
	// (an attack that overflows the queue is still seen); export health
	// reads the collector's per-exporter counters.
	det, err := alerts.New(cfg.Alerts, alerts.Deps{
		Logger:        logger.With("component", "alerts"),
		Store:         st.Inventory,
		Routers:       st.Inventory,
		Exporters:     func() []store.ExporterStats { return a.collector.Exporters() },
		InterfaceName: enr.InterfaceName,
		Coverage:      cov.Health,
	})
	if err != nil {
		return fmt.Errorf("cannot build the alert detector: %w", err)
	}
	a.detector = det
	// Notifications learn every alert change; a slow channel never holds
	// detection (bounded queues, counted drops).
	ntf, err := notify.New(cfg.Notifications, notify.Deps{Logger: logger.With("component", "notify"), Log: st.Inventory})
	if err != nil {
		return fmt.Errorf("cannot build notifications: %w", err)
	}
	a.notifier = ntf
	det.AddListener(ntf)
	// Mitigation, opt-in per router, acts on the alerts through the
	// routers' API; every change is in the audit log.
	mit, err := newMitigator(cfg, st, logger)
	if err != nil {
		return err
	}
	a.mitigator = mit
	det.AddListener(mit)
	// The ingest pipeline: readers decode, enrichment labels each batch in
	// place, the store's one queue and writer take it; the collector's
	// per-exporter table counts every outcome.
	// Trusted exporters: the onboarded routers' addresses, the configured
	// prefixes and those accepted from the console (loaded at start).
	a.trust = collector.NewAllowlist(st.Inventory, cfg.Collector.AllowedPrefixes())
	coll, err := collector.New(cfg.Collector, collector.Deps{
		Sink:  st.FlowDB,
		Stage: pipelineStage{enr, det, dom},
		Trust: a.trust,
		// Templates survive restarts: the first packets after one decode.
		TemplateFile: filepath.Join(cfg.DataDir, "templates.bin"),
		Logger:       logger.With("component", "collector"),
		Registerer:   a.reg,
	})
	if err != nil {
		return fmt.Errorf("cannot build collector: %w", err)
	}
	st.FlowDB.SetWriteObserver(coll.WriteObserver())
	a.collector = coll
	prov, err := provision.New(cfg.Provision, provision.Deps{
		Store:      st, // the inventory, and the flow database's last flow per router
		Collector:  coll,
		Logger:     logger.With("component", "provision"),
		Registerer: a.reg,
	})
	if err != nil {
		return fmt.Errorf("cannot build provisioner: %w", err)
	}
	a.prov = prov
	var domainsWeb web.DomainNamer
	if dom != nil {
		domainsWeb = domainService{dom}
	}
	a.report = report.New(report.Deps{Flows: st.FlowDB, Inventory: st.Inventory, Logger: logger.With("component", "report")})
	// The scheduler reads its password, secret and CA files here, so a
	// missing one stops serve (and fails flowbox check) before anything
	// starts.
	if a.sched, err = newReportScheduler(cfg.Reports, a.report, st.Inventory, a.reg, logger); err != nil {
		return err
	}
	var reportRuns web.ReportRuns // nil: the console says none is scheduled
	var reportSchedules web.ReportSchedules
	if len(cfg.Reports.Schedules) > 0 {
		reportRuns, reportSchedules = st.Inventory, scheduleList{a.sched}
	}
	srv, err := web.New(cfg.Web, web.Deps{
		Store:           st, // the flow database, and the inventory's subscriber names
		Routers:         st.Inventory,
		Provisioner:     webProvisioner{prov: prov, store: st, learn: enr.PollRouter, mit: mit, mitCfg: cfg.Mitigation},
		Collector:       coll,
		Users:           st.Inventory,
		Names:           enr,
		Trust:           exporterTrust{a},
		Health:          st.FlowDB,
		Alerts:          st.Inventory,
		AlertStatus:     alertStatus{a},
		NAT:             natService{st},
		Coverage:        coverageService{st: st, cov: cov, minute: cfg.Store.Effective().MinuteRetention},
		Domains:         domainsWeb,
		Reports:         a.report,
		ReportRuns:      reportRuns,
		ReportSchedules: reportSchedules,
		Gatherer:        a.reg,
		Registerer:      a.reg,
		Logger:          logger.With("component", "web"),
		DataDir:         cfg.DataDir,
		Settings: web.Settings{
			CollectorListen: cfg.Collector.Listen,
			FlowStore:       cfg.Store.Describe(),
			RawRetention:    web.Duration(cfg.Store.Effective().RawRetention),
			MinuteRetention: web.Duration(cfg.Store.Effective().MinuteRetention),
			HourRetention:   web.Duration(cfg.Store.Effective().HourRetention),
		},
	})
	if err != nil {
		return fmt.Errorf("cannot build web server: %w", err)
	}
	a.web = srv
	return nil
}

// close releases what buildApp opened.
func (a *app) close() error {
	return a.store.Close()
}

// run starts every component and blocks until ctx is done or one of them
// fails. Shutdown order: the collector stops reading, drains its sockets
// and hands its last batches (enriched) to the store's queue; only then is
// the store's writer told to drain that queue and write the current
// minute's rollups. The writer runs in the same errgroup as the rest.
func (a *app) run(ctx context.Context) error {
	if err := a.web.Bootstrap(ctx); err != nil {
		return fmt.Errorf("cannot create the admin user: %w", err)
	}
	saved, err := a.store.ExporterStats(ctx)
	if err != nil {
		return fmt.Errorf("cannot read the saved exporter counters: %w", err)
	}
	a.collector.Restore(saved)
	if err := a.reloadTrust(ctx); err != nil {
		return err
	}
	if a.domains != nil {
		// The names of the last hours, before the first flow is labelled.
		if err := a.domains.hist.Load(ctx); err != nil {
			return fmt.Errorf("cannot load the domain history: %w", err)
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	// The writer outlives the collector: its context ends when the
	// collector has returned (or failed to start).
	storeCtx, stopStore := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStore()
	storeDone := make(chan struct{})
	g.Go(func() error {
		defer close(storeDone)
		if err := a.store.Run(storeCtx); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("store: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		defer stopStore()
		if err := a.collector.Run(gctx); err != nil {
			return fmt.Errorf("collector: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := a.enricher.Run(gctx); err != nil {
			return fmt.Errorf("enrichment: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := a.coverage.Run(gctx); err != nil {
			return fmt.Errorf("coverage: %w", err)
		}
		return nil
	})
	if d := a.domains; d != nil {
		for name, run := range map[string]func(context.Context) error{"domain history": d.hist.Run, "DNS cache poller": d.pol.Run, "reverse DNS": d.rev.Run} {
			g.Go(func() error {
				if err := run(gctx); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				return nil
			})
		}
	}
	g.Go(func() error {
		if err := a.mitigator.Run(gctx); err != nil {
			return fmt.Errorf("mitigation: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := a.notifier.Run(gctx); err != nil {
			return fmt.Errorf("notifications: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := a.detector.Run(gctx); err != nil {
			return fmt.Errorf("alerts: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := a.prov.Run(gctx); err != nil {
			return fmt.Errorf("provisioner: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := a.web.Run(gctx); err != nil {
			return fmt.Errorf("web: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		a.saveStatsLoop(gctx, storeDone)
		return nil
	})
	select {
	case <-a.collector.Ready():
		a.logger.Info("flowbox started", "version", version, "netflow", a.collector.Addrs(),
			"web", a.cfg.Web.Listen, "data-dir", a.cfg.DataDir)
	case <-gctx.Done():
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	a.logger.Info("flowbox stopped")
	return err
}

// saveStatsLoop persists the per-exporter counters every statsInterval and
// once more after the store's writer has drained the pipeline (done). On the same
// tick it reloads the router attribution, so routers added by another
// process are recognised within statsInterval.
func (a *app) saveStatsLoop(ctx context.Context, done <-chan struct{}) {
	t := time.NewTicker(statsInterval)
	defer t.Stop()
	save := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := a.store.SaveExporterStats(sctx, a.collector.Exporters()); err != nil {
			a.logger.Warn("cannot save exporter stats", "err", err)
		}
	}
	for {
		select {
		case <-t.C:
			// Routers added by `flowbox router add` and exporters accepted
			// by `flowbox exporters allow` in another process.
			if err := a.store.ReloadRouters(ctx); err != nil && ctx.Err() == nil {
				a.logger.Warn("cannot reload routers", "err", err)
			}
			if err := a.reloadTrust(ctx); err != nil && ctx.Err() == nil {
				a.logger.Warn("cannot reload the allowed exporters", "err", err)
			}
			save()
		case <-ctx.Done():
			<-done
			save()
			return
		}
	}
}

// natService is the console's abuse lookup: the NAT store, the
// subscriber history and the raw flows, composed by the storage.
type natService struct{ st *storage }

// LookupNAT implements web.NATLookup.
func (n natService) LookupNAT(ctx context.Context, q store.NATQuery) (*store.NATAnswer, error) {
	return n.st.NATLookup(ctx, q)
}

// AddressHolder implements web.NATLookup.
func (n natService) AddressHolder(ctx context.Context, addr netip.Addr, at time.Time) (*store.AddressHolder, error) {
	return n.st.AddressHolder(ctx, addr, at)
}

// alertStatus is the console's view of detection, notification and
// mitigation.
type alertStatus struct{ a *app }

// DetectorStatus implements web.AlertStatus.
func (s alertStatus) DetectorStatus() store.DetectorStatus {
	st := s.a.detector.Status()
	st.EventsDropped = s.a.mitigator.Dropped()
	return st
}

// NotificationChannels implements web.AlertStatus.
func (s alertStatus) NotificationChannels() []store.NotificationChannelStatus {
	return s.a.notifier.Status()
}

// MitigationStatus implements web.AlertStatus.
func (s alertStatus) MitigationStatus() []store.MitigationStatus { return s.a.mitigator.Status() }

// SendTestNotification implements web.AlertStatus.
func (s alertStatus) SendTestNotification(ctx context.Context, channel string) error {
	return s.a.notifier.SendTest(ctx, channel)
}

// newMitigator builds the mitigator on the inventory (routers and their
// passwords, the audit log).
func newMitigator(cfg Config, st *storage, logger *slog.Logger) (*mitigate.Mitigator, error) {
	mit, err := mitigate.New(cfg.Mitigation, mitigate.Deps{Logger: logger.With("component", "mitigate"),
		Routers: st.Inventory, Audit: st.Inventory})
	if err != nil {
		return nil, fmt.Errorf("cannot build mitigation: %w", err)
	}
	return mit, nil
}

// undoMitigation removes flowbox's address-list entries and routes from a
// router (router undo and remove). A failure is an error when the
// router's mitigation is enabled; otherwise only a warning (there should
// be nothing to remove).
func undoMitigation(ctx context.Context, mit *mitigate.Mitigator, cfg mitigate.Config, name string, warn func(string)) (int, error) {
	n, err := mit.Undo(ctx, name)
	if err != nil {
		if cfg.Policy(name).Enabled {
			return n, err
		}
		warn(err.Error())
	}
	return n, nil
}

// pipelineStage is the readers' stage: enrichment labels each batch in
// place, then the alert detectors observe it.
type pipelineStage struct {
	enr *enrich.Enricher
	det *alerts.Detector
	dom *domainParts // nil when domains are off
}

// Enrich implements collector.Stage.
func (p pipelineStage) Enrich(flows []store.Flow) {
	p.enr.Enrich(flows)
	p.det.Observe(flows)
	if p.dom != nil {
		p.dom.pol.Observe(flows) // are the routers their customers' resolvers?
	}
}

// collectorPort returns the UDP port of the first NetFlow listen address,
// which provisioning points routers at unless configured otherwise.
func collectorPort(listen []string) (int, bool) {
	for _, l := range listen {
		_, p, err := net.SplitHostPort(l)
		if err != nil {
			continue
		}
		if n, err := strconv.Atoi(p); err == nil && n > 0 {
			return n, true
		}
	}
	return 0, false
}

// reloadTrust sets the collector's allowed prefixes to the configured ones
// and those accepted from the console or the command line.
func (a *app) reloadTrust(ctx context.Context) error {
	accepted, err := a.store.AllowedExporters(ctx)
	if err != nil {
		return fmt.Errorf("cannot load the allowed exporters: %w", err)
	}
	ps := a.cfg.Collector.AllowedPrefixes()
	for _, e := range accepted {
		ps = append(ps, e.Prefix)
	}
	a.trust.SetPrefixes(ps)
	return nil
}

// exporterTrust is the console's web.ExporterTrust: accepted prefixes are
// kept in the store and take effect at once.
type exporterTrust struct{ a *app }

// AllowedExporters implements web.ExporterTrust.
func (t exporterTrust) AllowedExporters(ctx context.Context) ([]web.AllowedPrefix, error) {
	accepted, err := t.a.store.AllowedExporters(ctx)
	if err != nil {
		return nil, err
	}
	return web.AllowedList(t.a.cfg.Collector.AllowedPrefixes(), accepted), nil
}

// AllowExporter implements web.ExporterTrust.
func (t exporterTrust) AllowExporter(ctx context.Context, p netip.Prefix, by string) error {
	if err := t.a.store.AllowExporter(ctx, p, by); err != nil {
		return err
	}
	return t.a.reloadTrust(ctx)
}

// DisallowExporter implements web.ExporterTrust.
func (t exporterTrust) DisallowExporter(ctx context.Context, p netip.Prefix) (bool, error) {
	ok, err := t.a.store.DisallowExporter(ctx, p)
	if err != nil || !ok {
		return ok, err
	}
	return true, t.a.reloadTrust(ctx)
}

// coverageService is the console's coverage: reports over the store with
// the poller's settings, and the counter series of the traffic chart.
type coverageService struct {
	st     *storage
	cov    *coverage.Poller
	minute time.Duration
}

// Coverage implements web.CoverageReporter.
func (c coverageService) Coverage(ctx context.Context, q store.CoverageQuery) (*store.CoverageReport, error) {
	return coverage.Report(ctx, c.st, q, c.cov.Options(time.Now()))
}

// CounterSeries implements web.CoverageReporter.
func (c coverageService) CounterSeries(ctx context.Context, routerID int64, ifx uint32, from, to time.Time) (map[int64][2]uint64, bool, error) {
	hourly := from.Before(time.Now().Add(-c.minute))
	m, err := c.st.CounterSeries(ctx, routerID, ifx, from, to, hourly)
	return m, hourly, err
}

// DefaultWindow implements web.CoverageReporter.
func (c coverageService) DefaultWindow() time.Duration { return c.cov.Config().Window }
