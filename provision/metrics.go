package provision

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the provisioner's Prometheus metrics.
type metrics struct {
	operations        *prometheus.CounterVec
	duration          *prometheus.HistogramVec
	steps             *prometheus.CounterVec
	retries           prometheus.Counter
	drifted           prometheus.Gauge
	historyErrors     prometheus.Counter
	transcriptDropped prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowbox_provision_operations_total",
			Help: "Provisioning operations by action (detect, plan, apply, verify, undo, drift, create-user) and result (ok, error).",
		}, []string{"action", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flowbox_provision_operation_duration_seconds",
			Help:    "Duration of provisioning operations.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 90},
		}, []string{"action"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowbox_provision_steps_total",
			Help: "Provisioning steps by step and result (applied, skipped when already in place, failed).",
		}, []string{"step", "result"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_provision_retries_total",
			Help: "Operations retried after a timeout or a dropped connection.",
		}),
		drifted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flowbox_provision_drifted_routers",
			Help: "Routers whose traffic-flow settings differ from the plan at the last drift check.",
		}),
		historyErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_provision_history_errors_total",
			Help: "Provisioning runs that could not be saved to the history.",
		}),
		transcriptDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_provision_transcript_lines_dropped_total",
			Help: "Transcript lines dropped to keep each history entry bounded.",
		}),
	}
	for _, c := range []prometheus.Collector{m.operations, m.duration, m.steps, m.retries, m.drifted, m.historyErrors, m.transcriptDropped} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("cannot register provision metrics: %w", err)
		}
	}
	return m, nil
}
