package enrich

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
)

// metrics are enrichment's Prometheus metrics.
type metrics struct {
	flows           *prometheus.CounterVec                  // by direction
	flowsByDir      [store.NumDirections]prometheus.Counter // flows' children, by store.Direction
	subscriberHits  prometheus.Counter
	subscriberMiss  prometheus.Counter
	subscriberDrops prometheus.Counter
	subscribers     prometheus.GaugeFunc
	polls           *prometheus.CounterVec // by result
	pollDuration    prometheus.Histogram
	pollMenuErrors  *prometheus.CounterVec // by menu
	pollBadRows     *prometheus.CounterVec // by menu
	geoReloads      *prometheus.CounterVec // by result
	geoBuild        *prometheus.GaugeVec   // by database
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
		pollBadRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowbox_enrich_poll_bad_rows_total", Help: "Rows of router menus skipped during a poll because a value (address, prefix, range) could not be parsed, by menu.",
		}, []string{"menu"}),
		geoReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowbox_enrich_geoip_reloads_total", Help: "Reloads of the configured geoip files, by result.",
		}, []string{"result"}),
		geoBuild: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flowbox_enrich_geoip_build_timestamp_seconds",
			Help: "Build time of the geoip file in use (asn-file, country-file); 0 while the built-in tables are used.",
		}, []string{"database"}),
		localRanges: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flowbox_enrich_local_ranges", Help: "Address ranges currently treated as the subscriber side.",
		}),
		interfaceDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_enrich_interface_drops_total", Help: "Interface name records not kept because the per-router bound was reached.",
		}),
	}
	for d := range m.flowsByDir {
		m.flowsByDir[d] = m.flows.WithLabelValues(store.Direction(d).String())
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
		m.polls, m.pollDuration, m.pollMenuErrors, m.pollBadRows, m.geoReloads, m.geoBuild, m.localRanges, m.interfaceDrops} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("cannot register enrich metrics: %w", err)
		}
	}
	return nil
}

// setGeoBuild exports the build times of the geoip files in use.
func (m *metrics) setGeoBuild(st *geoState) {
	asn, country := 0.0, 0.0
	if st.asn != nil {
		asn = float64(st.asn.built.Unix())
	}
	if st.country != nil {
		country = float64(st.country.built.Unix())
	}
	m.geoBuild.WithLabelValues("asn-file").Set(asn)
	m.geoBuild.WithLabelValues("country-file").Set(country)
}
