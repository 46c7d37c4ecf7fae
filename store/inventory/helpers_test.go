package inventory

import (
	"context"
	"github.com/flowbox/flowbox/internal/testutil"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
)

// testLogger logs the store's warnings to the test.
func testLogger(t testing.TB) *slog.Logger { return testutil.Logger(t) }

// Open opens the database in dir and builds the inventory on it. cfg and
// reg are the flow database's, unused here: the signature is the one the
// tests were written against.
func Open(ctx context.Context, dir string, _ store.Config, logger *slog.Logger, _ prometheus.Registerer) (*Inventory, error) {
	db, err := store.Open(ctx, dir)
	if err != nil {
		return nil, err
	}
	s, err := New(ctx, db, logger)
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the inventory's database (tests only: in flowbox the
// database's owner closes it).
func (s *Inventory) Close() error { return s.db.Close() }

func openTest(t testing.TB, dir string) *Inventory {
	t.Helper()
	s, err := Open(context.Background(), dir, store.DefaultConfig(), testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
