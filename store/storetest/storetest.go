// Package storetest opens both halves of the storage (store/storage) for
// the tests of the packages that consume them through interfaces, with the
// signatures those tests use. Only tests import it.
package storetest

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storage"
)

// Store is a database with the inventory and the flow database built on
// it (storage.Storage).
type Store = storage.Storage

// Open opens (creating and migrating) the database in dataDir as
// store.Open does and builds both halves on it. reg may be nil.
func Open(ctx context.Context, dataDir string, cfg store.Config, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	return storage.Open(ctx, dataDir, storage.SQLite(cfg), storage.Shared, logger, reg)
}

// OpenExclusive is Open with the data directory's lock (store.OpenExclusive).
func OpenExclusive(ctx context.Context, dataDir string, cfg store.Config, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	return storage.Open(ctx, dataDir, storage.SQLite(cfg), storage.Exclusive, logger, reg)
}

// OpenReadOnly opens an existing database read-only (store.OpenReadOnly)
// with the default configuration.
func OpenReadOnly(ctx context.Context, dataDir string) (*Store, error) {
	return storage.Open(ctx, dataDir, storage.DefaultConfig(), storage.ReadOnly, nil, nil)
}
