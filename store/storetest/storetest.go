// Package storetest opens both halves of the storage (store/storage) for
// the tests of the packages that consume them through interfaces, with the
// signatures those tests use. Only tests import it.
package storetest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/clickhouse/chtest"
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

// BackendEnv names the flow backend of the stores OpenFor opens: sqlite
// (unset) or clickhouse. `make test` runs the console's tests on both.
const BackendEnv = "FLOWBOX_TEST_BACKEND"

var sites atomic.Int64

// OpenFor opens a store for a test in dir as Open does, on the flow
// backend BackendEnv names, and closes it when the test ends. With
// clickhouse, flows go to the chDB endpoint the tests of the process share
// (chtest.Shared), in one database where each store is a site of its own;
// with chtest.ClusterEnv set too, through Distributed tables of that
// cluster.
func OpenFor(tb testing.TB, dir string, cfg store.Config, logger *slog.Logger, reg prometheus.Registerer) *Store {
	tb.Helper()
	sc := storage.SQLite(cfg)
	switch b := os.Getenv(BackendEnv); b {
	case "", storage.BackendSQLite:
	case storage.BackendClickHouse:
		srv := chtest.Shared(tb)
		sc.Backend = storage.BackendClickHouse
		sc.ClickHouse.Addresses = []string{srv.Addr}
		sc.ClickHouse.User = srv.User
		sc.ClickHouse.Database = "flowbox_shared"
		if cl := os.Getenv(chtest.ClusterEnv); cl != "" {
			sc.ClickHouse.Database, sc.ClickHouse.Cluster = "flowbox_shared_cluster", cl
		}
		sc.ClickHouse.Site = fmt.Sprintf("test%d", sites.Add(1))
		sc.ClickHouse.PasswordFile = filepath.Join(tb.TempDir(), "clickhouse-password")
		if err := os.WriteFile(sc.ClickHouse.PasswordFile, []byte(srv.Password+"\n"), 0o600); err != nil {
			tb.Fatal(err)
		}
	default:
		tb.Fatalf("%s=%q: want sqlite or clickhouse", BackendEnv, b)
	}
	st, err := storage.Open(context.Background(), dir, sc, storage.Shared, logger, reg)
	if err != nil {
		tb.Fatalf("cannot open store: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// OnClickHouse reports whether BackendEnv puts OpenFor's flows on
// ClickHouse.
func OnClickHouse() bool { return os.Getenv(BackendEnv) == storage.BackendClickHouse }
