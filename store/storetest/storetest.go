// Package storetest opens both halves of the storage (store/inventory and
// store/flowdb) on one database, as cmd/flowbox wires them, for the tests
// of the packages that consume them through interfaces. Only tests import
// it.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/flowdb"
	"github.com/flowbox/flowbox/store/inventory"
)

// Store is a database with the inventory and the flow database built on
// it. Through the embedding it has the methods of both halves.
type Store struct {
	// DB is the database file both halves share.
	DB *store.DB
	*inventory.Inventory
	*flowdb.FlowDB
}

// Open opens (creating and migrating) the database in dataDir as
// store.Open does and builds both halves on it, the flow database
// attributing flows with the inventory's routers. reg may be nil.
func Open(ctx context.Context, dataDir string, cfg store.Config, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	db, err := store.Open(ctx, dataDir)
	if err != nil {
		return nil, err
	}
	return build(ctx, db, cfg, logger, reg)
}

// OpenExclusive is Open with the data directory's lock (store.OpenExclusive).
func OpenExclusive(ctx context.Context, dataDir string, cfg store.Config, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	db, err := store.OpenExclusive(ctx, dataDir)
	if err != nil {
		return nil, err
	}
	return build(ctx, db, cfg, logger, reg)
}

// OpenReadOnly opens an existing database read-only (store.OpenReadOnly)
// with the default configuration.
func OpenReadOnly(ctx context.Context, dataDir string) (*Store, error) {
	db, err := store.OpenReadOnly(ctx, dataDir)
	if err != nil {
		return nil, err
	}
	return build(ctx, db, store.DefaultConfig(), nil, nil)
}

func build(ctx context.Context, db *store.DB, cfg store.Config, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
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
	return &Store{DB: db, Inventory: inv, FlowDB: flows}, nil
}

// Backup snapshots the database (store.DB.Backup).
func (s *Store) Backup(ctx context.Context, path string) error { return s.DB.Backup(ctx, path) }

// ExporterSummaries is flowdb's ExporterSummaries with the inventory's
// router names.
func (s *Store) ExporterSummaries(ctx context.Context) ([]store.ExporterSummary, error) {
	routers, err := s.ListRouters(ctx)
	if err != nil {
		return nil, err
	}
	names := map[int64]string{}
	for _, r := range routers {
		names[r.ID] = r.Name
	}
	return s.FlowDB.ExporterSummaries(ctx, names)
}

// Close closes the flow database and the database file.
func (s *Store) Close() error {
	if err := errors.Join(s.FlowDB.Close(), s.DB.Close()); err != nil {
		return fmt.Errorf("cannot close store: %w", err)
	}
	return nil
}
