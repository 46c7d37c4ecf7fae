package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/collector"
	"github.com/flowbox/flowbox/enrich"
	"github.com/flowbox/flowbox/provision"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/flowdb"
	"github.com/flowbox/flowbox/store/inventory"
	"github.com/flowbox/flowbox/web"
)

// storage is the data directory's database with its two halves built on
// it: the inventory and the flow database, which attributes the flows of
// InsertFlows with the inventory's routers. It is the one place that knows
// both; the components get the half (or, through the embedding, the
// methods of both) that their interfaces ask for.
type storage struct {
	db *store.DB
	*inventory.Inventory
	*flowdb.FlowDB
}

// openMode says how openStorage opens the database.
type openMode int

const (
	openShared    openMode = iota // store.Open: a short-lived writer beside serve
	openExclusive                 // store.OpenExclusive: serve and demo
	openReadOnly                  // store.OpenReadOnly: readers (stats, backup, usage)
)

// openStorage opens the database of dataDir and builds both halves on it.
// reg may be nil.
func openStorage(ctx context.Context, dataDir string, cfg store.Config, mode openMode, logger *slog.Logger, reg prometheus.Registerer) (*storage, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var (
		db  *store.DB
		err error
	)
	switch mode {
	case openExclusive:
		db, err = store.OpenExclusive(ctx, dataDir)
	case openReadOnly:
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
	flows, err := flowdb.New(ctx, db, cfg, logger, reg, inv)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &storage{db: db, Inventory: inv, FlowDB: flows}, nil
}

// inventoryOnly is the inventory alone, for the short-lived commands that
// touch no flow (token, exporters, subscribers import): the flow
// database's writer state (partitions, host index tails) is not loaded.
type inventoryOnly struct {
	db *store.DB
	*inventory.Inventory
}

// openInventory opens the database of dataDir without the lock (beside a
// running serve) and builds the inventory on it.
func openInventory(ctx context.Context, dataDir string, logger *slog.Logger) (*inventoryOnly, error) {
	db, err := store.Open(ctx, dataDir)
	if err != nil {
		return nil, err
	}
	inv, err := inventory.New(ctx, db, logger)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &inventoryOnly{db: db, Inventory: inv}, nil
}

// Close closes the database.
func (s *inventoryOnly) Close() error { return s.db.Close() }

// Backup writes a consistent snapshot of the database to path (see
// store.DB.Backup).
func (s *storage) Backup(ctx context.Context, path string) error { return s.db.Backup(ctx, path) }

// routerNames names the inventory's routers by id, for the flow
// database's exporter summaries.
func (s *storage) routerNames(ctx context.Context) (map[int64]string, error) {
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

// exporterSummaries is flowdb's ExporterSummaries with the inventory's
// router names.
func (s *storage) exporterSummaries(ctx context.Context) ([]store.ExporterSummary, error) {
	names, err := s.routerNames(ctx)
	if err != nil {
		return nil, err
	}
	return s.ExporterSummaries(ctx, names)
}

// Close closes the flow database, then the database file. Call it after
// the flow database's Run returned.
func (s *storage) Close() error {
	if err := errors.Join(s.FlowDB.Close(), s.db.Close()); err != nil {
		return fmt.Errorf("cannot close storage: %w", err)
	}
	return nil
}

// The halves implement what the components consume (checked here, where
// they are wired, since the components import neither half).
var (
	_ enrich.RouterResolver  = (*inventory.Inventory)(nil)
	_ enrich.SubscriberStore = (*inventory.Inventory)(nil)
	_ enrich.InterfaceStore  = (*inventory.Inventory)(nil)
	_ collector.Sink         = (*flowdb.FlowDB)(nil)
	_ provision.Inventory    = (*storage)(nil)
	_ web.FlowQuerier        = (*storage)(nil)
	_ web.UserStore          = (*inventory.Inventory)(nil)
	_ store.FlowDB           = (*flowdb.FlowDB)(nil)
	_ store.Inventory        = (*inventory.Inventory)(nil)
)
