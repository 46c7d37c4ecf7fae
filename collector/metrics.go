package collector

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/collector/netflow"
	"github.com/flowbox/flowbox/store"
)

// metrics exposes the collector's counters. It is a prometheus.Collector
// that sums, at scrape time, the readers' own atomic counters and their
// latest decoder snapshots, so the hot path pays for no metric update.
// Nothing is labelled by exporter address; per-exporter numbers are in
// Collector.Exporters.
type metrics struct {
	c *Collector

	packets        *prometheus.Desc
	bytes          *prometheus.Desc
	flows          *prometheus.Desc
	stored         *prometheus.Desc
	decodeErrors   *prometheus.Desc
	dropped        *prometheus.Desc
	noTemplate     *prometheus.Desc
	pendingDropped *prometheus.Desc
	pendingDecoded *prometheus.Desc
	pendingSets    *prometheus.Desc
	optionsRecords *prometheus.Desc
	lost           *prometheus.Desc
	templates      *prometheus.Desc
	kernelDrops    *prometheus.Desc
	readErrors     *prometheus.Desc
	rcvbuf         *prometheus.Desc
	forgotten      *prometheus.Desc
	restarts       *prometheus.Desc
	tplSaves       *prometheus.Desc
	tplErrors      *prometheus.Desc
}

func newMetrics(c *Collector) *metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("flowbox_collector_"+name, help, labels, nil)
	}
	return &metrics{
		c:              c,
		packets:        d("packets_total", "UDP datagrams received."),
		bytes:          d("received_bytes_total", "UDP payload bytes received."),
		flows:          d("flows_total", "Flow records decoded."),
		stored:         d("stored_flows_total", "Flow records the sink accepted."),
		decodeErrors:   d("decode_errors_total", "Datagrams or sets that could not be decoded, by reason.", "reason"),
		dropped:        d("dropped_flows_total", "Flow records dropped on their way into the store, by reason (queue full, untrusted exporter, write error, too old, future, shutdown).", "reason"),
		noTemplate:     d("no_template_sets_total", "Data sets that arrived before their template (kept pending)."),
		pendingDropped: d("no_template_dropped_sets_total", "Data sets dropped while waiting for their template (expired or over the bound)."),
		pendingDecoded: d("pending_decoded_flows_total", "Flow records of waiting data sets decoded once their template arrived."),
		pendingSets:    d("pending_sets", "Data sets waiting for their template."),
		optionsRecords: d("options_records_total", "Options data records decoded (not flows)."),
		lost:           d("lost_flows_total", "Flows estimated lost upstream from sequence number gaps."),
		templates:      d("templates", "Templates currently known."),
		kernelDrops:    d("kernel_drops_total", "Datagrams the kernel dropped because a socket buffer was full.", "listener"),
		readErrors:     d("read_errors_total", "Socket read errors.", "listener"),
		rcvbuf:         d("receive_buffer_bytes", "Socket receive buffer granted by the kernel (as SO_RCVBUF reports it).", "listener"),
		forgotten: d("forgotten_exporters_total",
			"Exporters whose state was evicted by the max-exporters bound, by table (decoder: templates and counters; stats: collector counters).", "table"),
		restarts:  d("exporter_restarts_total", "Exporter restarts detected (new source port, uptime or sequence reset)."),
		tplSaves:  d("template_file_writes_total", "Writes of the template file kept across restarts."),
		tplErrors: d("template_file_errors_total", "Failed loads and writes of the template file."),
	}
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.packets, m.bytes, m.flows, m.stored, m.decodeErrors,
		m.dropped, m.noTemplate, m.pendingDropped, m.pendingDecoded, m.pendingSets, m.optionsRecords,
		m.lost, m.templates, m.kernelDrops, m.readErrors, m.rcvbuf, m.forgotten, m.restarts, m.tplSaves, m.tplErrors} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	c := m.c
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}

	t := c.decoderTotals()
	var packets, bytes, flows uint64
	for _, r := range c.runningReaders() {
		packets += r.packets.Load()
		bytes += r.bytes.Load()
		flows += r.flows.Load()
	}
	counter(m.packets, packets)
	counter(m.bytes, bytes)
	counter(m.flows, flows)
	counter(m.stored, c.exporters.total.Load())
	// Every known reason is exported, at 0 until it happens.
	for _, reason := range netflow.Reasons {
		counter(m.decodeErrors, t.errors[reason], reason)
	}
	for reason, n := range t.errors {
		if !slices.Contains(netflow.Reasons, reason) {
			counter(m.decodeErrors, n, reason)
		}
	}
	for i, reason := range store.DropReasons {
		counter(m.dropped, c.exporters.drops[i].Load(), reason)
	}
	counter(m.noTemplate, t.noTemplateSets)
	counter(m.pendingDropped, t.pendingDropped)
	counter(m.pendingDecoded, t.pendingDecoded)
	gauge(m.pendingSets, float64(t.pendingSets))
	counter(m.optionsRecords, t.options)
	counter(m.lost, t.lost)
	gauge(m.templates, float64(t.templates))
	for _, l := range c.runningListeners() {
		var drops, readErrs uint64
		for _, s := range l.socks {
			drops += s.kernelDrops.Load()
		}
		for _, r := range c.runningReaders() {
			if r.sock.listener == l {
				readErrs += r.readErr.Load()
			}
		}
		counter(m.kernelDrops, drops, l.addr)
		counter(m.readErrors, readErrs, l.addr)
		gauge(m.rcvbuf, float64(l.rcvbuf), l.addr)
	}
	c.exporters.mu.Lock()
	forgotten := c.exporters.forgotten
	c.exporters.mu.Unlock()
	counter(m.restarts, t.restarts)
	counter(m.tplSaves, c.tplSaves.Load())
	counter(m.tplErrors, c.tplErrors.Load())
	counter(m.forgotten, t.forgotten, "decoder")
	counter(m.forgotten, forgotten, "stats")
}
