package storage

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/clickhouse"
	"github.com/flowbox/flowbox/store/flowdb"
	"github.com/flowbox/flowbox/store/inventory"
)

// maxExporterIDs bounds the exporter ids chFlows caches (as flowdb keeps
// at most 65,535 exporters).
const maxExporterIDs = 65535

// chFlows is the flow database of store.backend: clickhouse. Flows, their
// rollups, usage, domains, rates and NAT mappings are in ClickHouse; the
// exporter ids (the source of the flows no router matched), the
// collector's saved counters, the interface counters and the poller's
// states stay in the SQLite flow database (sql), which takes no flow.
type chFlows struct {
	*clickhouse.Store
	sql     *flowdb.FlowDB
	routers *inventory.Inventory
	logger  *slog.Logger

	mu  sync.Mutex
	ids map[netip.Addr]int64 // exporter ids, 0 when one could not be had
}

// openClickHouse opens the ClickHouse store of cfg beside sql: migrated
// by the writers, only checked by ReadOnly. The writer of Exclusive (serve,
// which holds the data directory) spills to disk while ClickHouse is down
// (clickhouse.spill-dir, by default in dataDir).
func openClickHouse(ctx context.Context, dataDir string, cfg Config, mode Mode, sql *flowdb.FlowDB, inv *inventory.Inventory, logger *slog.Logger) (*chFlows, error) {
	f := &chFlows{sql: sql, routers: inv, logger: logger, ids: map[netip.Addr]int64{}}
	var (
		st  *clickhouse.Store
		err error
	)
	if mode == ReadOnly {
		st, err = clickhouse.OpenReader(ctx, cfg.ClickHouse, logger)
	} else {
		st, err = clickhouse.Open(ctx, cfg.ClickHouse, f.exporterID, cfg.QueueSize, logger)
	}
	if err != nil {
		return nil, err
	}
	if ch := &cfg.ClickHouse; mode == Exclusive && ch.SpillMaxMB > 0 {
		dir := ch.SpillDir
		if dir == "" {
			dir = filepath.Join(dataDir, DefaultSpillDir)
		}
		if err := st.EnableSpill(dir, int64(ch.SpillMaxMB)<<20); err != nil {
			st.Close()
			return nil, err
		}
	}
	f.Store = st
	return f, nil
}

// DefaultSpillDir is where, in the data directory, serve's ClickHouse
// writer spills when clickhouse.spill-dir is not set.
const DefaultSpillDir = "clickhouse-spill"

// exporterID returns the id of an exporter no router matched, from the
// SQLite exporters table (added there when new). It runs in the writer.
func (f *chFlows) exporterID(a netip.Addr) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.ids[a]; ok {
		return id
	}
	if len(f.ids) >= maxExporterIDs {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := f.sql.ExporterID(ctx, a, 0)
	if err != nil {
		// Its flows are stored under source 0 until restart; said once.
		f.logger.Warn("cannot give an exporter an id: its flows are stored without one", "exporter", a, "err", err)
	}
	f.ids[a] = id
	return id
}

// InsertFlows attributes the flows without a router (as flowdb does), then
// queues them.
func (f *chFlows) InsertFlows(ctx context.Context, flows []store.Flow) error {
	for i := range flows {
		if fl := &flows[i]; fl.RouterID == 0 {
			fl.RouterID, _ = f.routers.RouterFor(fl.Exporter.Addr().Unmap())
		}
	}
	return f.Store.InsertFlows(ctx, flows)
}

// ExporterSources are the SQLite store's: the exporter ids are there.
func (f *chFlows) ExporterSources(ctx context.Context) (map[netip.Addr]int64, error) {
	return f.sql.ExporterSources(ctx)
}

// SaveExporterStats saves the collector's counters in SQLite.
func (f *chFlows) SaveExporterStats(ctx context.Context, stats []store.ExporterStats) error {
	return f.sql.SaveExporterStats(ctx, stats)
}

// ExporterStats returns the collector's counters saved in SQLite.
func (f *chFlows) ExporterStats(ctx context.Context) ([]store.ExporterStats, error) {
	return f.sql.ExporterStats(ctx)
}

// ExporterSummaries are the SQLite store's, whose exporters table has no
// stored counts with this backend: the collector's count of the flows the
// writer took (its observer) stands for them.
func (f *chFlows) ExporterSummaries(ctx context.Context, names map[int64]string) ([]store.ExporterSummary, error) {
	out, err := f.sql.ExporterSummaries(ctx, names)
	if err != nil {
		return nil, err
	}
	stats, err := f.sql.ExporterStats(ctx)
	if err != nil {
		return nil, err
	}
	stored := make(map[netip.Addr]store.ExporterStats, len(stats))
	for _, s := range stats {
		stored[s.Exporter] = s
	}
	for i := range out {
		if s, ok := stored[out[i].Exporter]; ok && out[i].FlowsStored == 0 {
			out[i].FlowsStored = s.FlowsStored
		}
	}
	return out, nil
}

// SaveCounterDeltas keeps the interface counters in SQLite.
func (f *chFlows) SaveCounterDeltas(ctx context.Context, ds []store.CounterDelta) error {
	return f.sql.SaveCounterDeltas(ctx, ds)
}

// SaveCoverageState keeps the poller's state in SQLite.
func (f *chFlows) SaveCoverageState(ctx context.Context, st store.CoverageState) error {
	return f.sql.SaveCoverageState(ctx, st)
}

// RollupCounterHours rolls the SQLite counters up.
func (f *chFlows) RollupCounterHours(ctx context.Context, now time.Time) error {
	return f.sql.RollupCounterHours(ctx, now)
}

// PruneCounters prunes the SQLite counters.
func (f *chFlows) PruneCounters(ctx context.Context, now time.Time) (int64, error) {
	return f.sql.PruneCounters(ctx, now)
}

// CounterSeries reads the SQLite counters.
func (f *chFlows) CounterSeries(ctx context.Context, routerID int64, ifx uint32, from, to time.Time, hourly bool) (map[int64][2]uint64, error) {
	return f.sql.CounterSeries(ctx, routerID, ifx, from, to, hourly)
}

// CoverageStates reads the poller's states from SQLite.
func (f *chFlows) CoverageStates(ctx context.Context) ([]store.CoverageState, error) {
	return f.sql.CoverageStates(ctx)
}

// CounterTotals sets ClickHouse's interface totals beside the counters of
// the same minutes (or hours) in SQLite.
func (f *chFlows) CounterTotals(ctx context.Context, routerID int64, from, to time.Time, hourly bool) ([]store.CounterTotals, error) {
	buckets, err := f.sql.CounterBuckets(ctx, routerID, from, to, hourly)
	if err != nil || len(buckets) == 0 {
		return nil, err
	}
	flows, err := f.Store.InterfaceFlows(ctx, routerID, from, to, hourly)
	if err != nil {
		return nil, fmt.Errorf("cannot read the flows of a coverage report: %w", err)
	}
	return store.SumCounterTotals(buckets, flows), nil
}

// Close closes the ClickHouse client (the SQLite store is Storage's).
func (f *chFlows) Close() error { return f.Store.Close() }

var _ FlowDB = (*chFlows)(nil)
var _ FlowDB = (*flowdb.FlowDB)(nil)
