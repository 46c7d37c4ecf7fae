package flowdb

import (
	"context"
	"database/sql"
	"errors"
	"github.com/flowbox/flowbox/internal/testutil"
	"log/slog"
	"net/url"
	"path/filepath"
	"sync"
	"testing"

	_ "github.com/mattn/go-sqlite3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/inventory"
)

// testLogger logs the store's warnings to the test.
func testLogger(t testing.TB) *slog.Logger { return testutil.Logger(t) }

// inventories are the inventories the tests' flow databases attribute
// flows with, as cmd/flowbox wires them.
var inventories sync.Map // *FlowDB -> *inventory.Inventory

// Open opens the database in dir and builds the inventory and the flow
// database on it, as cmd/flowbox does.
func Open(ctx context.Context, dir string, cfg store.Config, logger *slog.Logger, reg prometheus.Registerer) (*FlowDB, error) {
	db, err := store.Open(ctx, dir)
	if err != nil {
		return nil, err
	}
	return build(ctx, db, cfg, logger, reg)
}

// OpenReadOnly opens the database in dir read-only with both halves.
func OpenReadOnly(ctx context.Context, dir string) (*FlowDB, error) {
	db, err := store.OpenReadOnly(ctx, dir)
	if err != nil {
		return nil, err
	}
	return build(ctx, db, store.DefaultConfig(), nil, nil)
}

func build(ctx context.Context, db *store.DB, cfg store.Config, logger *slog.Logger, reg prometheus.Registerer) (*FlowDB, error) {
	inv, err := inventory.New(ctx, db, logger)
	if err != nil {
		db.Close()
		return nil, err
	}
	s, err := New(ctx, db, cfg, logger, reg, inv)
	if err != nil {
		db.Close()
		return nil, err
	}
	inventories.Store(s, inv)
	return s, nil
}

// inv is the inventory of a flow database opened by Open.
func inv(s *FlowDB) *inventory.Inventory {
	v, _ := inventories.Load(s)
	return v.(*inventory.Inventory)
}

// closeAll closes the flow database and its database file.
func closeAll(s *FlowDB) error { return errors.Join(s.Close(), s.db.Close()) }

func openTest(t testing.TB, dir string) *FlowDB {
	t.Helper()
	s, err := Open(context.Background(), dir, store.DefaultConfig(), testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { closeAll(s) })
	return s
}

// openDB opens a database/sql handle on the file: URI of path with the
// given options, outside the store (for checks on copies and on
// read-only handles).
func openDB(path, opts string) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	u := url.URL{Scheme: "file", Path: abs, RawQuery: opts}
	db, err := sql.Open("sqlite3", u.String())
	if err != nil {
		return nil, err
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}
