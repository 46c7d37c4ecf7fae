package coverage

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the counter poller's Prometheus metrics. The per-router
// label is bounded by the inventory.
type metrics struct {
	polls        *prometheus.CounterVec // by router, result
	pollSeconds  prometheus.Histogram
	resets       *prometheus.CounterVec // by router
	wraps        *prometheus.CounterVec // by router
	configErrors *prometheus.CounterVec // by router
	badRows      prometheus.Counter
	ifaceDrops   prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowbox_coverage_polls_total", Help: "Interface counter polls, by router and result (ok, error, store_error).",
		}, []string{"router", "result"}),
		pollSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flowbox_coverage_poll_duration_seconds", Help: "Duration of one router's counter poll.",
			Buckets: prometheus.ExponentialBuckets(0.01, 3, 8),
		}),
		resets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowbox_coverage_counter_resets_total", Help: "Interface counters that went down (reboot, reset-counters), by router.",
		}, []string{"router"}),
		wraps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowbox_coverage_counter_wraps_total", Help: "Interface counters that wrapped at 2^32, by router.",
		}, []string{"router"}),
		configErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowbox_coverage_config_errors_total", Help: "Polls whose configuration read (traffic-flow, firewall, switch) failed, by router.",
		}, []string{"router"}),
		badRows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_coverage_bad_rows_total", Help: "/interface rows skipped because a counter could not be parsed.",
		}),
		ifaceDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_coverage_interfaces_dropped_total", Help: "Interfaces not tracked because a router had more than max-interfaces.",
		}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{m.polls, m.pollSeconds, m.resets, m.wraps, m.configErrors, m.badRows, m.ifaceDrops} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cannot register the coverage metrics: %w", err)
	}
	return nil
}
