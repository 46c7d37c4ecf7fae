// Package storage opens the data directory's database and builds both
// halves on it, the inventory (store/inventory) and the flow database
// (store/flowdb), which attributes the flows of InsertFlows with the
// inventory's routers. It is the one place that composes them: flowbox's
// commands and the tests of the packages that consume them through
// interfaces both open their storage here.
package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/flowdb"
	"github.com/flowbox/flowbox/store/inventory"
)

// FlowDB is the flow database as flowbox's components use it: flows
// (store.FlowDB), NAT mappings, and the interface counters of coverage
// reports. *flowdb.FlowDB implements it on SQLite; with store.backend:
// clickhouse, the ClickHouse store does, with the counters in SQLite.
type FlowDB interface {
	store.FlowDB
	store.NATMappings
	// Health().NATMappingsDropped counts the NAT mappings not written.
	SaveCounterDeltas(ctx context.Context, ds []store.CounterDelta) error
	SaveCoverageState(ctx context.Context, st store.CoverageState) error
	RollupCounterHours(ctx context.Context, now time.Time) error
	PruneCounters(ctx context.Context, now time.Time) (int64, error)
	CounterTotals(ctx context.Context, routerID int64, from, to time.Time, hourly bool) ([]store.CounterTotals, error)
	CounterSeries(ctx context.Context, routerID int64, ifx uint32, from, to time.Time, hourly bool) (map[int64][2]uint64, error)
	CoverageStates(ctx context.Context) ([]store.CoverageState, error)
	// Close releases the flow database (after Run returned).
	Close() error
}

// Storage is a database with the inventory and the flow database built on
// it. Through the embedding it has the methods of both halves.
type Storage struct {
	// DB is the database file both halves share.
	DB *store.DB
	*inventory.Inventory
	// FlowDB is the flow database of store.backend.
	FlowDB
	// SQL is the SQLite flow database: FlowDB itself with the sqlite
	// backend; with clickhouse, the exporter ids and counters beside it.
	SQL *flowdb.FlowDB
	// Backend is store.backend.
	Backend string
	// cfg is the flow database's configuration (retentions).
	cfg store.Config
}

// Mode says how Open opens the database.
type Mode int

// The ways to open the database.
const (
	Shared    Mode = iota // store.Open: a short-lived writer beside serve, or a test
	Exclusive             // store.OpenExclusive: serve and demo hold the lock
	ReadOnly              // store.OpenReadOnly: readers (stats, backup, usage)
)

// Open opens the database of dataDir in mode and builds both halves on it.
// logger and reg may be nil.
// With store.backend: clickhouse, flows are in ClickHouse: the schema is
// migrated (checked only, ReadOnly) and the writer is its Ingest.
func Open(ctx context.Context, dataDir string, cfg Config, mode Mode, logger *slog.Logger, reg prometheus.Registerer) (*Storage, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var (
		db  *store.DB
		err error
	)
	switch mode {
	case Exclusive:
		db, err = store.OpenExclusive(ctx, dataDir)
	case ReadOnly:
		db, err = store.OpenReadOnly(ctx, dataDir)
	default:
		db, err = store.Open(ctx, dataDir)
	}
	if err != nil {
		return nil, err
	}
	inv, err := inventory.New(ctx, db, logger)
	if err != nil {
		db.Close()
		return nil, err
	}
	flows, err := flowdb.New(ctx, db, cfg.Config, logger, reg, inv)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Storage{DB: db, Inventory: inv, FlowDB: flows, SQL: flows, Backend: BackendSQLite, cfg: cfg.Config}
	if cfg.Backend == BackendClickHouse {
		ch, err := openClickHouse(ctx, dataDir, cfg, mode, flows, inv, logger)
		if err != nil {
			errs := errors.Join(flows.Close(), db.Close())
			return nil, errors.Join(err, errs)
		}
		s.FlowDB, s.Backend, s.cfg = ch, BackendClickHouse, cfg.Effective()
	}
	return s, nil
}

// Backup writes a consistent snapshot of the database to path
// (store.DB.Backup).
func (s *Storage) Backup(ctx context.Context, path string) error { return s.DB.Backup(ctx, path) }

// RouterNames names the inventory's routers by id.
func (s *Storage) RouterNames(ctx context.Context) (map[int64]string, error) {
	routers, err := s.ListRouters(ctx)
	if err != nil {
		return nil, err
	}
	names := make(map[int64]string, len(routers))
	for _, r := range routers {
		names[r.ID] = r.Name
	}
	return names, nil
}

// ExporterSummaries is flowdb's ExporterSummaries with the inventory's
// router names.
func (s *Storage) ExporterSummaries(ctx context.Context) ([]store.ExporterSummary, error) {
	names, err := s.RouterNames(ctx)
	if err != nil {
		return nil, err
	}
	out, err := s.FlowDB.ExporterSummaries(ctx, names)
	return out, err
}

// Close closes the flow database, then the database file. Call it after
// the flow database's Run returned.
func (s *Storage) Close() error {
	errs := []error{s.FlowDB.Close()}
	if s.Backend == BackendClickHouse {
		errs = append(errs, s.SQL.Close())
	}
	if err := errors.Join(append(errs, s.DB.Close())...); err != nil {
		return fmt.Errorf("cannot close storage: %w", err)
	}
	return nil
}
