package scheduler

import "github.com/prometheus/client_golang/prometheus"

// metrics are the scheduler's counters.
type metrics struct {
	runs     *prometheus.CounterVec
	failures *prometheus.CounterVec
	retries  prometheus.Counter
	skipped  prometheus.Counter
	errors   *prometheus.CounterVec
}

// newMetrics builds the counters and registers them on reg (when not nil).
func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowbox_reports_runs_total",
			Help: "Scheduled report runs, by result (ok: the report was made and every delivery succeeded).",
		}, []string{"result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowbox_reports_delivery_failures_total",
			Help: "Scheduled report deliveries that failed after every attempt, by target kind (folder, mail, webhook).",
		}, []string{"kind"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_reports_retries_total",
			Help: "Failed attempts of scheduled reports and deliveries that were tried again.",
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_reports_skipped_periods_total",
			Help: "Periods missed while flowbox was not running that were older than reports.catch-up and not run.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowbox_reports_errors_total",
			Help: "Scheduled report errors besides deliveries, by step (store: recording runs; report: making it).",
		}, []string{"step"}),
	}
	for _, kind := range []string{"folder", "mail", "webhook"} {
		m.failures.WithLabelValues(kind)
	}
	for _, r := range []string{"ok", "failed"} {
		m.runs.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.failures, m.retries, m.skipped, m.errors)
	}
	return m
}
