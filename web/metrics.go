package web

import "github.com/prometheus/client_golang/prometheus"

// metrics are the web server's own counters.
type metrics struct {
	requests         *prometheus.CounterVec
	duration         *prometheus.HistogramVec
	logins           *prometheus.CounterVec
	limiterEvictions prometheus.Counter
	sessionEvictions prometheus.Counter
	sessionDBErrors  prometheus.Counter
	sessions         prometheus.GaugeFunc
	queryRejected    *prometheus.CounterVec
	queryWait        *prometheus.HistogramVec
	auditEntries     prometheus.Counter
	auditErrors      prometheus.Counter
	auditPruned      prometheus.Counter
}

// newMetrics builds the metrics and registers them on reg when it is not nil.
// sessions reports the number of live sessions.
func newMetrics(reg prometheus.Registerer, sessions func() float64) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowbox_web_requests_total",
			Help: "HTTP requests served, by route template and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flowbox_web_request_duration_seconds",
			Help:    "HTTP request latency, by route template.",
			Buckets: []float64{.005, .01, .025, .05, .1, .2, .5, 1, 2.5, 5},
		}, []string{"route"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowbox_web_logins_total",
			Help: "Console login attempts, by result (ok, bad_credentials, rate_limited).",
		}, []string{"result"}),
		limiterEvictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_web_login_limiter_evictions_total",
			Help: "Client IPs dropped from the full login rate-limiter table.",
		}),
		sessionEvictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_web_session_evictions_total",
			Help: "Live sessions dropped because max-sessions was reached.",
		}),
		sessionDBErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_web_session_store_errors_total",
			Help: "Console session changes that could not be written to the store (such a session is lost at the next restart).",
		}),
		sessions: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "flowbox_web_sessions",
			Help: "Live console sessions.",
		}, sessions),
		queryRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowbox_web_store_queries_rejected_total",
			Help: "Store queries refused (503) because too many were waiting, by pool (dashboard, export).",
		}, []string{"pool"}),
		queryWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flowbox_web_store_query_wait_seconds",
			Help:    "Time store queries waited for a slot, by pool (dashboard, export).",
			Buckets: []float64{.001, .01, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"pool"}),
		auditEntries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_web_audit_entries_total",
			Help: "Entries written to the audit log.",
		}),
		auditErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_web_audit_errors_total",
			Help: "Audit log entries that could not be written, and failed prunings.",
		}),
		auditPruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_web_audit_pruned_total",
			Help: "Audit log entries removed by its retention (age or row count).",
		}),
	}
	for _, p := range []string{"dashboard", "export"} {
		m.queryRejected.WithLabelValues(p)
		m.queryWait.WithLabelValues(p)
	}
	for _, r := range []string{"ok", "bad_credentials", "rate_limited"} {
		m.logins.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.logins, m.limiterEvictions, m.sessionEvictions, m.sessionDBErrors, m.sessions, m.queryRejected, m.queryWait,
		m.auditEntries, m.auditErrors, m.auditPruned} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
