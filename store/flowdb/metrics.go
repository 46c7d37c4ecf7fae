package flowdb

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
)

// metrics are the store's Prometheus metrics.
type metrics struct {
	written        prometheus.Counter
	dropped        *prometheus.CounterVec
	batchesDropped prometheus.Counter
	writeSeconds   prometheus.Histogram
	flushSeconds   prometheus.Histogram
	healthy        prometheus.Gauge
	rollupPruned   prometheus.Counter
	untracked      prometheus.Counter
	namesOverflow  prometheus.Counter
	partitions     prometheus.Gauge
	indexSeconds   prometheus.Histogram
	addrsOverflow  prometheus.Counter
	segments       prometheus.Counter
	spillSeconds   prometheus.Histogram
	tailPostings   prometheus.Gauge
	packedRows     prometheus.Counter
	packedBlocks   prometheus.Counter
	packErrors     prometheus.Counter
	// blockListEvictions counts the packed blocks forgotten by the cache
	// of block lists (blocklist.go) beyond its bound.
	blockListEvictions prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, s *FlowDB) (*metrics, error) {
	m := newUnregisteredMetrics()
	queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "flowbox_store_queue_batches", Help: "Batches of flows waiting for the writer.",
	}, func() float64 { return float64(len(s.queue)) })
	queueCap := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "flowbox_store_queue_capacity_batches", Help: "Bound of the writer queue.",
	}, func() float64 { return float64(cap(s.queue)) })
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.written, m.dropped, m.batchesDropped, m.writeSeconds, m.flushSeconds,
		m.healthy, m.rollupPruned, m.untracked, m.namesOverflow, m.addrsOverflow, m.partitions, m.indexSeconds, m.segments, m.spillSeconds, m.tailPostings,
		m.packedRows, m.packedBlocks, m.packErrors, m.blockListEvictions, queue, queueCap} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("cannot register store metrics: %w", err)
		}
	}
	for _, c := range natCollectors(&s.natCount) {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("cannot register store metrics: %w", err)
		}
	}
	return m, nil
}

func newUnregisteredMetrics() *metrics {
	m := &metrics{
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_store_flows_written_total", Help: "Raw flows written to the database.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowbox_store_flows_dropped_total", Help: "Flows the store dropped, by reason.",
		}, []string{"reason"}),
		batchesDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_store_batches_dropped_total", Help: "Write transactions that failed and whose flows were dropped.",
		}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flowbox_store_write_duration_seconds", Help: "Duration of one write transaction of raw flows.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flowbox_store_rollup_flush_duration_seconds", Help: "Duration of one rollup flush.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		healthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flowbox_store_healthy", Help: "1 when the last write succeeded, 0 while writes fail.",
		}),
		rollupPruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_store_rollup_pruned_keys_total", Help: "Rollup keys folded into the other row because a bucket reached its key bound.",
		}),
		untracked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_store_exporters_untracked_total", Help: "Flows from exporters beyond the in-memory bound of tracked exporters.",
		}),
		namesOverflow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_store_names_overflow_total", Help: "Names (subscriber, application, country) not interned because the dictionary is full.",
		}),
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flowbox_store_raw_partitions", Help: "Raw flow partitions in the database.",
		}),
		indexSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flowbox_store_partition_index_duration_seconds", Help: "Time to build the SQL address indexes of a closed partition of the old raw format.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		addrsOverflow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_store_addrs_overflow_total", Help: "Explicit addresses of raw rows written in full because the address dictionary is full.",
		}),
		segments: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_store_host_index_segments_total", Help: "Host index segments written (tails of raw partitions spilled to disk).",
		}),
		spillSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flowbox_store_host_index_spill_duration_seconds", Help: "Time to write one host index segment.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		tailPostings: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flowbox_store_host_index_tail_postings", Help: "Postings (address, row) of the host index held in memory, bounded by the store.",
		}),
		packedRows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_store_raw_rows_packed_total", Help: "Raw flow rows moved into packed blocks (closed partitions).",
		}),
		packedBlocks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_store_raw_blocks_packed_total", Help: "Packed blocks of raw flows written.",
		}),
		packErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_store_raw_pack_errors_total", Help: "Failed attempts to pack raw flows into blocks (the rows stay rows and are retried).",
		}),
		blockListEvictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowbox_store_block_list_evictions_total", Help: "Packed blocks whose cached listing was evicted because the cache of block lists was full (they are listed again from the database when read).",
		}),
	}
	m.healthy.Set(1)
	for _, r := range []string{store.DropQueueFull, store.DropShutdown, store.DropWriteError, store.DropTooOld, store.DropFuture} {
		m.dropped.WithLabelValues(r)
	}
	return m
}
