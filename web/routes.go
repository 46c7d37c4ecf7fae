package web

import (
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"

	"github.com/gorilla/mux"
)

// routes builds every route of the console on one gorilla/mux router.
func (s *Server) routes() *mux.Router {
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
	r.Handle("/metrics", s.requireAPIAuth(s.metricsHandler())).Methods(http.MethodGet)
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

	// Pages.
	r.HandleFunc("/", s.requirePageAuth(s.handleFleetPage)).Methods(http.MethodGet)
	r.HandleFunc("/routers/{id}", s.requirePageAuth(s.handleRouterPage)).Methods(http.MethodGet)
	r.HandleFunc("/subscribers", s.requirePageAuth(s.handleSubscribersPage)).Methods(http.MethodGet)
	r.HandleFunc("/flows", s.requirePageAuth(s.handleFlowsPage)).Methods(http.MethodGet)
	r.HandleFunc("/settings", s.requirePageAuth(s.handleSettingsPage)).Methods(http.MethodGet)
	r.HandleFunc("/alerts", s.requirePageAuth(s.handleAlertsPage)).Methods(http.MethodGet)
	r.HandleFunc("/alerts/{id}", s.requirePageAuth(s.handleAlertPage)).Methods(http.MethodGet)
	r.HandleFunc("/abuse", s.requirePageAuth(s.handleAbusePage)).Methods(http.MethodGet)

	// The JSON API: every route needs a session or a token.
	api := r.PathPrefix("/api/v1").Subrouter()
	api.Use(s.requireAPIAuth)
	api.NotFoundHandler = r.NotFoundHandler
	api.MethodNotAllowedHandler = r.MethodNotAllowedHandler
	api.HandleFunc("/openapi.json", s.handleOpenAPI).Methods(http.MethodGet)
	api.HandleFunc("/me", s.handleMe).Methods(http.MethodGet)
	api.HandleFunc("/routers", s.handleListRouters).Methods(http.MethodGet)
	api.HandleFunc("/routers", s.handleAddRouter).Methods(http.MethodPost)
	api.HandleFunc("/routers/{id}", s.handleGetRouter).Methods(http.MethodGet)
	api.HandleFunc("/routers/{id}", s.handleRemoveRouter).Methods(http.MethodDelete)
	api.HandleFunc("/routers/{id}/plan", s.handlePlan).Methods(http.MethodGet)
	api.HandleFunc("/routers/{id}/apply", s.handleApply).Methods(http.MethodPost)
	api.HandleFunc("/routers/{id}/verify", s.handleVerify).Methods(http.MethodPost)
	api.HandleFunc("/routers/{id}/undo", s.handleUndo).Methods(http.MethodPost)
	api.HandleFunc("/routers/{id}/history", s.handleHistory).Methods(http.MethodGet)
	api.HandleFunc("/exporters", s.handleExporters).Methods(http.MethodGet)
	api.HandleFunc("/exporters/allowed", s.handleAllowedExporters).Methods(http.MethodGet)
	api.HandleFunc("/exporters/allowed", s.handleAllowExporter).Methods(http.MethodPost)
	api.HandleFunc("/exporters/allowed", s.handleDisallowExporter).Methods(http.MethodDelete)
	api.HandleFunc("/status", s.handleStatus).Methods(http.MethodGet)
	api.HandleFunc("/traffic", s.handleTraffic).Methods(http.MethodGet)
	api.HandleFunc("/top/{dimension}", s.handleTop).Methods(http.MethodGet)
	api.HandleFunc("/flows", s.handleFlows).Methods(http.MethodGet)
	api.HandleFunc("/flows.csv", s.handleFlowsCSV).Methods(http.MethodGet)
	api.HandleFunc("/subscribers/usage", s.handleSubscriberUsage).Methods(http.MethodGet)
	api.HandleFunc("/subscribers/usage.csv", s.handleSubscriberUsageCSV).Methods(http.MethodGet)
	api.HandleFunc("/subscribers/usage/series", s.handleSubscriberUsageSeries).Methods(http.MethodGet)
	api.HandleFunc("/subscribers/at", s.handleAddressHolder).Methods(http.MethodGet)
	api.HandleFunc("/subscribers/domains", s.handleSubscriberDomains).Methods(http.MethodGet)
	api.HandleFunc("/nat/lookup", s.handleNATLookup).Methods(http.MethodGet)
	api.HandleFunc("/nat/lookup.csv", s.handleNATLookupCSV).Methods(http.MethodGet)
	api.HandleFunc("/coverage", s.handleCoverage).Methods(http.MethodGet)
	api.HandleFunc("/coverage/counters", s.handleCoverageCounters).Methods(http.MethodGet)
	api.HandleFunc("/domains/status", s.handleDomainStatus).Methods(http.MethodGet)
	api.HandleFunc("/settings", s.handleSettings).Methods(http.MethodGet)
	api.HandleFunc("/alerts", s.handleListAlerts).Methods(http.MethodGet)
	api.HandleFunc("/alerts/status", s.handleAlertStatus).Methods(http.MethodGet) // before /alerts/{id}
	api.HandleFunc("/alerts/{id}", s.handleGetAlert).Methods(http.MethodGet)
	api.HandleFunc("/alerts/{id}/ack", s.handleAckAlert).Methods(http.MethodPost)
	api.HandleFunc("/notifications/test", s.handleTestNotification).Methods(http.MethodPost)
	api.HandleFunc("/users", s.handleListUsers).Methods(http.MethodGet)
	api.HandleFunc("/users", s.handleCreateUser).Methods(http.MethodPost)
	api.HandleFunc("/users/{name}", s.handleDeleteUser).Methods(http.MethodDelete)
	api.HandleFunc("/users/{name}/password", s.handleSetPassword).Methods(http.MethodPut)
	api.HandleFunc("/tokens", s.handleListTokens).Methods(http.MethodGet)
	api.HandleFunc("/tokens", s.handleCreateToken).Methods(http.MethodPost)
	api.HandleFunc("/tokens/{id}", s.handleDeleteToken).Methods(http.MethodDelete)
	return r
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
