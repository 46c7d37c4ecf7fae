package enrich

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are enrichment's Prometheus metrics.
type metrics struct {
	flows           *prometheus.CounterVec // by direction
	subscriberHits  prometheus.Counter
	subscriberMiss  prometheus.Counter
	subscriberDrops prometheus.Counter
	subscribers     prometheus.GaugeFunc
	polls           *prometheus.CounterVec // by result
	pollDuration    prometheus.Histogram
	pollMenuErrors  *prometheus.CounterVec // by menu
	geoReloads      *prometheus.CounterVec // by result
	localRanges     prometheus.Gauge
	interfaceDrops  prometheus.Counter
}

// newMetrics builds the metrics unregistered (see register).
func newMetrics() *metrics {
	m := &metrics{
		flows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowbox_enrich_flows_total", Help: "Flows enriched, by direction.",
		}, []string{"direction"}),
		subscriberHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_enrich_subscriber_hits_total", Help: "Flows whose local side was attributed to a subscriber.",
		}),
		subscriberMiss: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_enrich_subscriber_misses_total", Help: "Flows with a local side but no known subscriber.",
		}),
		subscriberDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_enrich_subscriber_drops_total", Help: "Subscriber records not kept in memory because max-subscribers was reached.",
		}),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowbox_enrich_polls_total", Help: "Router polls for subscribers, by result.",
		}, []string{"result"}),
		pollDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flowbox_enrich_poll_duration_seconds", Help: "Duration of one router poll.",
			Buckets: prometheus.ExponentialBuckets(0.01, 3, 8),
		}),
		pollMenuErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowbox_enrich_poll_menu_errors_total", Help: "Router menus that could not be read during a poll, by menu.",
		}, []string{"menu"}),
		geoReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowbox_enrich_geoip_reloads_total", Help: "Reloads of the configured geoip files, by result.",
		}, []string{"result"}),
		localRanges: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flowbox_enrich_local_ranges", Help: "Address ranges currently treated as the subscriber side.",
		}),
		interfaceDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_enrich_interface_drops_total", Help: "Interface name records not kept because the per-router bound was reached.",
		}),
	}
	return m
}

// register registers the metrics and a gauge reading the history size.
func (m *metrics) register(reg prometheus.Registerer, size func() int) error {
	if reg == nil {
		return errors.New("cannot register enrich metrics: nil registerer")
	}
	m.subscribers = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "flowbox_enrich_subscriber_records", Help: "Subscriber records held in memory (current and recently ended).",
	}, func() float64 { return float64(size()) })
	for _, c := range []prometheus.Collector{m.flows, m.subscriberHits, m.subscriberMiss, m.subscriberDrops, m.subscribers,
		m.polls, m.pollDuration, m.pollMenuErrors, m.geoReloads, m.localRanges, m.interfaceDrops} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("cannot register enrich metrics: %w", err)
		}
	}
	return nil
}
