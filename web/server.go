// Package web is flowbox's console: an HTTP server with a JSON API under
// /api/v1 (described by /api/v1/openapi.json) and server-rendered pages
// (fleet, router, flows, settings) built from embedded templates, a little
// vanilla JavaScript and the vendored uPlot chart library, so the appliance
// works offline.
//
// Every page and API call needs a login: a session cookie from the login
// form, or an API token sent as "Authorization: Bearer fbx_...". Each user
// has a role (store.RoleAdmin, RoleOperator, RoleViewer) and each token a
// role at most its owner's; every route declares its least role in the
// tables of routes.go and answers 403 below it, and changes are written to
// the audit log. The first
// start asks for the admin password unless the configuration (or
// FLOWBOX_ADMIN_PASSWORD) provides it. State-changing requests are protected
// against cross-site forgery by http.CrossOriginProtection.
//
// New only builds; Run listens until its context ends, then shuts down
// gracefully.
package web

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/flowbox/flowbox/store"
)

// Server is the web console. Build it with New, serve it with Run.
type Server struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	now      func() time.Time
	metrics  *metrics
	sessions *sessions
	limiter  *limiter
	backoff  *accountBackoff // per-account login backoff
	proxies  []netip.Prefix  // web.trusted-proxies
	hosts    *hostChecker    // the Host names the console answers (web.hosts)
	// rawBudget and quickBudget bound a top-N's or a series' raw scan
	// (rawScanBudget, quickScanBudget with quick=1; tests shorten them).
	rawBudget   time.Duration
	quickBudget time.Duration
	router      *mux.Router
	handler     http.Handler
	pages       map[string]*template.Template
	static      fs.FS
	// assetVersions maps each static file to its content hash.
	assetVersions map[string]string
	setupMu       sync.Mutex // serialises the first-user creation
	setupToken    string     // one-time token /setup asks for while no user exists (setupMu)
	// routeRoles is the least role of each route ("METHOD /template"),
	// from the tables of routes.go.
	routeRoles     map[string]store.Role
	auditRetention store.AuditRetention
	auditMu        sync.Mutex
	auditPruned    time.Time // when the audit log was last pruned (auditMu)
}

// New checks the configuration and dependencies and builds the server
// (routes, templates, metrics). It opens no socket and starts nothing.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid web config: %w", err)
	}
	var missing []string
	if deps.Store == nil {
		missing = append(missing, "Store")
	}
	if deps.Routers == nil {
		missing = append(missing, "Routers")
	}
	if deps.Provisioner == nil {
		missing = append(missing, "Provisioner")
	}
	if deps.Collector == nil {
		missing = append(missing, "Collector")
	}
	if deps.Users == nil {
		missing = append(missing, "Users")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("web: missing dependencies: %v", missing)
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	s := &Server{cfg: cfg, deps: deps, log: deps.Logger, now: deps.Now, auditRetention: deps.AuditRetention}
	if s.auditRetention == (store.AuditRetention{}) {
		s.auditRetention = store.DefaultAuditRetention()
	}
	var err error
	s.metrics, err = newMetrics(deps.Registerer, func() float64 { return float64(s.sessions.count()) })
	if err != nil {
		return nil, fmt.Errorf("cannot register web metrics: %w", err)
	}
	deps.Store = &limitedQuerier{next: deps.Store,
		dashboard: newQueryLimiter(maxDashboardQueries, s.metrics.queryRejected.WithLabelValues("dashboard"), s.metrics.queryWait.WithLabelValues("dashboard")),
		raw:       newQueryLimiter(maxRawQueries, s.metrics.queryRejected.WithLabelValues("raw"), s.metrics.queryWait.WithLabelValues("raw")),
		export:    newQueryLimiter(maxExportQueries, s.metrics.queryRejected.WithLabelValues("export"), s.metrics.queryWait.WithLabelValues("export"))}
	s.deps = deps
	s.sessions = newSessions(cfg.MaxSessions, cfg.SessionTTL, s.metrics.sessionEvictions.Inc, deps.Users, s.metrics.sessionDBErrors.Inc, s.log)
	s.limiter = newLimiter(cfg.LoginTrackedIPs, cfg.LoginAttempts, cfg.LoginWindow, s.metrics.limiterEvictions.Inc)
	s.backoff = newAccountBackoff(cfg.LoginTrackedIPs, s.metrics.limiterEvictions.Inc)
	s.proxies = cfg.trustedProxyPrefixes()
	s.hosts = newHostChecker(cfg.Hosts, machineHostname())
	assets, err := assetsFS(cfg.DevAssetsDir)
	if err != nil {
		return nil, err
	}
	if s.static, err = fs.Sub(assets, "static"); err != nil {
		return nil, fmt.Errorf("cannot open static assets: %w", err)
	}
	if s.assetVersions, err = assetVersions(s.static); err != nil {
		return nil, err
	}
	if s.pages, err = parsePages(assets, s.assetVersions); err != nil {
		return nil, err
	}
	s.router = s.routes()
	s.handler = s.wrap(s.router)
	return s, nil
}

// Handler returns the whole console as one handler (used by Run and by
// tests through httptest).
func (s *Server) Handler() http.Handler { return s.handler }

// Run creates the first admin user when configured, listens on the
// configured address and serves until ctx ends, then shuts down gracefully
// within the configured timeout.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened (tests use 127.0.0.1:0). It
// closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.Bootstrap(ctx); err != nil {
		ln.Close()
		return err
	}
	ln = newLimitListener(ln, s.cfg.MaxConnections)
	srv := &http.Server{
		Handler:           s.withDeadlines(s.handler),
		ReadHeaderTimeout: min(10*time.Second, s.cfg.RequestTimeout),
		ReadTimeout:       s.cfg.RequestTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	scheme, listening := "http", []any{}
	if s.cfg.TLS.Enabled() {
		tc, fp, err := s.tlsConfig()
		if err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, tc)
		scheme = "https"
		// The fingerprint lets the operator check the self-signed
		// certificate the browser shows (`flowbox web-fingerprint`).
		listening = append(listening, "tls_sha256", fp)
	} else if s.cfg.TLS.Mode == TLSModeOff {
		s.log.Warn("the console serves plain HTTP (web.tls.mode off): logins, cookies and router passwords cross the network unencrypted")
	}
	var metricsDone chan error
	if s.cfg.MetricsListen != "" {
		mln, err := net.Listen("tcp", s.cfg.MetricsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("cannot listen on metrics-listen %s: %w", s.cfg.MetricsListen, err)
		}
		metricsDone = make(chan error, 1)
		go func() { metricsDone <- s.serveMetrics(ctx, mln) }()
	}
	s.log.Info("web console listening", append([]any{"url", fmt.Sprintf("%s://%s/", scheme, ln.Addr())}, listening...)...)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("web server stopped: %w", err)
	case err := <-metricsDone:
		srv.Close()
		return err
	case <-ctx.Done():
	}
	if metricsDone != nil {
		defer func() { <-metricsDone }()
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("cannot shut down web server: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("web server stopped: %w", err)
	}
	return nil
}

// Bootstrap does the console's start-up I/O, which New leaves out (New
// only builds): it loads the console sessions kept by the store (so logins
// survive restarts) and creates the user "admin" with the configured admin
// password when no user exists yet. Without a configured password the
// console's setup page asks for it instead. Serve calls it; calling it
// again is harmless.
func (s *Server) Bootstrap(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := s.sessions.load(lctx, s.now())
	cancel()
	if err != nil {
		return err
	}
	pw, err := s.cfg.adminPassword()
	if err != nil {
		return err
	}
	if pw == "" {
		// The console's setup page creates the first user, with the
		// one-time setup token.
		n, err := s.deps.Users.CountUsers(ctx)
		if err != nil {
			return fmt.Errorf("cannot count users: %w", err)
		}
		if n == 0 {
			return s.ensureSetupToken()
		}
		return nil
	}
	s.setupMu.Lock()
	defer s.setupMu.Unlock()
	n, err := s.deps.Users.CountUsers(ctx)
	if err != nil {
		return fmt.Errorf("cannot count users: %w", err)
	}
	if n > 0 {
		return nil
	}
	hash, err := HashPassword(pw)
	if err != nil {
		return fmt.Errorf("admin-password: %w", err)
	}
	if _, err := s.deps.Users.CreateUser(ctx, "admin", hash, store.RoleAdmin); err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("cannot create admin user: %w", err)
	}
	s.log.Info("created the admin user from the configured password")
	return nil
}
