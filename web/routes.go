package web

import (
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"github.com/flowbox/flowbox/store"
)

// routes builds every route of the console on one gorilla/mux router.
func (s *Server) routes() *mux.Router {
	s.routeRoles = make(map[string]store.Role)
	r := mux.NewRouter()
	r.Use(s.instrument)
	r.NotFoundHandler = s.instrument(http.HandlerFunc(s.handleNotFound))
	r.MethodNotAllowedHandler = s.instrument(http.HandlerFunc(s.handleMethodNotAllowed))

	// Open to everybody.
	r.HandleFunc("/healthz", s.handleHealthz).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix("/static/").Handler(http.StripPrefix("/static/", s.staticHandler())).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/login", s.handleLoginPage).Methods(http.MethodGet)
	r.HandleFunc("/login", s.handleLogin).Methods(http.MethodPost)
	r.HandleFunc("/logout", s.handleLogout).Methods(http.MethodPost)
	r.HandleFunc("/setup", s.handleSetupPage).Methods(http.MethodGet)
	r.HandleFunc("/setup", s.handleSetup).Methods(http.MethodPost)

	// Authenticated (a session, or an API token as Prometheus's bearer
	// credentials): a loopback peer may be a same-host proxy or a
	// rootless container's port forwarder, so it proves nothing.
	// web.metrics-listen serves it without login on an address of its own.
	r.Handle("/metrics", s.requireAPIAuth(s.guardAPI(readRoute("/metrics", store.RoleViewer, s.metricsHandler().ServeHTTP)))).Methods(http.MethodGet)
	s.routeRoles[routeKey(http.MethodGet, "/metrics")] = store.RoleViewer
	if s.cfg.Pprof {
		p := r.PathPrefix("/debug/pprof").Subrouter()
		p.Use(loopbackOnly)
		p.HandleFunc("/", pprof.Index).Methods(http.MethodGet)
		p.HandleFunc("/cmdline", pprof.Cmdline).Methods(http.MethodGet)
		p.HandleFunc("/profile", pprof.Profile).Methods(http.MethodGet)
		p.HandleFunc("/symbol", pprof.Symbol).Methods(http.MethodGet, http.MethodPost)
		p.HandleFunc("/trace", pprof.Trace).Methods(http.MethodGet)
		p.PathPrefix("/").HandlerFunc(pprof.Index).Methods(http.MethodGet)
	}

	// Pages: every one is for viewers (read only); what a role cannot do
	// is hidden (layout.html puts the role on <body data-role>, and
	// app.css hides .needs-operator and .needs-admin from lesser roles).
	for _, rt := range s.pageRoutes() {
		r.HandleFunc(rt.path, s.guardPage(rt)).Methods(rt.method)
		s.routeRoles[routeKey(rt.method, rt.path)] = rt.role
	}

	// The JSON API: every route needs a session or a token, and the least
	// role its table entry declares (403 below it).
	api := r.PathPrefix("/api/v1").Subrouter()
	api.Use(s.requireAPIAuth)
	api.NotFoundHandler = r.NotFoundHandler
	api.MethodNotAllowedHandler = r.MethodNotAllowedHandler
	for _, rt := range s.apiRoutes() {
		api.Handle(rt.path, s.guardAPI(rt)).Methods(rt.method)
		s.routeRoles[routeKey(rt.method, "/api/v1"+rt.path)] = rt.role
	}
	return r
}

// Roles of the routes, for the tables below.
const (
	viewer   = store.RoleViewer
	operator = store.RoleOperator
	admin    = store.RoleAdmin
)

// pageRoutes are the console's pages with the least role of each.
func (s *Server) pageRoutes() []route {
	return []route{
		readRoute("/", viewer, s.handleDashboardPage),
		readRoute("/fleet", viewer, s.handleFleetPage),
		readRoute("/routers/{id}", viewer, s.handleRouterPage),
		readRoute("/subscribers", viewer, s.handleSubscribersPage),
		readRoute("/flows", viewer, s.handleFlowsPage),
		readRoute("/settings", viewer, s.handleSettingsPage), // users, tokens and the audit log are hidden below admin
		readRoute("/alerts", viewer, s.handleAlertsPage),
		readRoute("/alerts/{id}", viewer, s.handleAlertPage),
		readRoute("/abuse", viewer, s.handleAbusePage),
		readRoute("/reports", viewer, s.handleReportsPage),
	}
}

// apiRoutes are the JSON API's routes (under /api/v1) with the least role
// of each, and the audit action of those that change something.
func (s *Server) apiRoutes() []route {
	return []route{
		readRoute("/openapi.json", viewer, s.handleOpenAPI),
		readRoute("/me", viewer, s.handleMe),
		readRoute("/routers", viewer, s.handleListRouters),
		writeRoute(http.MethodPost, "/routers", operator, "router.add", s.handleAddRouter, "name", "address", "username"),
		readRoute("/routers/{id}", viewer, s.handleGetRouter),
		writeRoute(http.MethodDelete, "/routers/{id}", operator, "router.remove", s.handleRemoveRouter),
		readRoute("/routers/{id}/plan", viewer, s.handlePlan),
		writeRoute(http.MethodPost, "/routers/{id}/apply", operator, "router.apply", s.handleApply),
		writeRoute(http.MethodPost, "/routers/{id}/verify", operator, "router.verify", s.handleVerify),
		writeRoute(http.MethodPost, "/routers/{id}/undo", operator, "router.undo", s.handleUndo),
		readRoute("/routers/{id}/history", viewer, s.handleHistory),
		readRoute("/routers/{id}/certificate", operator, s.handleCertificate),
		writeRoute(http.MethodPost, "/routers/{id}/repin", operator, "router.repin", s.handleRepin, "fingerprint"),
		readRoute("/exporters", viewer, s.handleExporters),
		readRoute("/exporters/allowed", viewer, s.handleAllowedExporters),
		writeRoute(http.MethodPost, "/exporters/allowed", operator, "exporter.allow", s.handleAllowExporter, "prefix"),
		writeRoute(http.MethodDelete, "/exporters/allowed", operator, "exporter.disallow", s.handleDisallowExporter),
		readRoute("/status", viewer, s.handleStatus),
		readRoute("/traffic", viewer, s.handleTraffic),
		readRoute("/top/{dimension}", viewer, s.handleTop),
		readRoute("/fleet/traffic", viewer, s.handleFleetTraffic),
		readRoute("/flows", viewer, s.handleFlows),
		readRoute("/flows.csv", viewer, s.handleFlowsCSV),
		readRoute("/subscribers/usage", viewer, s.handleSubscriberUsage),
		readRoute("/subscribers/usage.csv", viewer, s.handleSubscriberUsageCSV),
		readRoute("/subscribers/usage/series", viewer, s.handleSubscriberUsageSeries),
		readRoute("/subscribers/at", viewer, s.handleAddressHolder),
		readRoute("/subscribers/domains", viewer, s.handleSubscriberDomains),
		// Reports carry customers' traffic, like the usage above.
		readRoute("/reports", viewer, s.handleReport),
		readRoute("/reports/runs", viewer, s.handleReportRuns),
		readRoute("/nat/lookup", viewer, s.handleNATLookup),
		readRoute("/nat/lookup.csv", viewer, s.handleNATLookupCSV),
		readRoute("/coverage", viewer, s.handleCoverage),
		readRoute("/coverage/counters", viewer, s.handleCoverageCounters),
		readRoute("/domains/status", viewer, s.handleDomainStatus),
		readRoute("/settings", viewer, s.handleSettings),
		readRoute("/alerts", viewer, s.handleListAlerts),
		readRoute("/alerts/status", viewer, s.handleAlertStatus), // before /alerts/{id}
		readRoute("/alerts/{id}", viewer, s.handleGetAlert),
		writeRoute(http.MethodPost, "/alerts/{id}/ack", operator, "alert.ack", s.handleAckAlert),
		writeRoute(http.MethodPost, "/notifications/test", operator, "notification.test", s.handleTestNotification, "channel"),
		// Users: admins only, but everybody changes their own password
		// (giving the current one; the handler checks who may).
		readRoute("/users", admin, s.handleListUsers),
		writeRoute(http.MethodPost, "/users", admin, "user.add", s.handleCreateUser, "name", "role"),
		writeRoute(http.MethodDelete, "/users/{name}", admin, "user.remove", s.handleDeleteUser),
		writeRoute(http.MethodPut, "/users/{name}/password", viewer, "user.password", s.handleSetPassword),
		writeRoute(http.MethodPut, "/users/{name}/role", admin, "user.role", s.handleSetRole, "role"),
		// Tokens: everybody lists their own, operators make and revoke
		// their own, admins everybody's (the handlers check whose).
		readRoute("/tokens", viewer, s.handleListTokens),
		writeRoute(http.MethodPost, "/tokens", operator, "token.create", s.handleCreateToken, "name", "user", "role", "expires_in", "expires_at"),
		writeRoute(http.MethodDelete, "/tokens/{id}", operator, "token.revoke", s.handleDeleteToken),
		readRoute("/audit", admin, s.handleAudit),
	}
}

// handleHealthz says the process serves HTTP and the store writes: 200
// "ok", or 503 "store: writes failing" while the writer cannot write (disk
// full, read-only file system). It reveals no detail (the console's Fleet
// page and /api/v1/status do, after login).
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.deps.Health != nil && !s.deps.Health.Health().OK {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("store: writes failing\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	if allowed := s.allowedMethods(r); len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		s.handleMethodNotAllowed(w, r)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeError(w, http.StatusNotFound, "no such API route")
		return
	}
	http.NotFound(w, r)
}

// allowedMethods returns the methods routed for the request's path.
// gorilla/mux v1.8.1 loses the method mismatch inside subrouters and
// reports 404, so the not-found handler asks the routes again.
func (s *Server) allowedMethods(r *http.Request) []string {
	var out []string
	_ = s.router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		methods, err := route.GetMethods()
		if err != nil {
			return nil
		}
		for _, m := range methods {
			probe := r.Clone(r.Context())
			probe.Method = m
			var match mux.RouteMatch
			if route.Match(probe, &match) && match.MatchErr == nil && !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
		return nil
	})
	return out
}

func (s *Server) handleMethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed here")
}
