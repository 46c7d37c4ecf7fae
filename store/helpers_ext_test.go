package store_test

import (
	"context"
	"github.com/flowbox/flowbox/internal/testutil"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

// testLogger logs the store's warnings to the test.
func testLogger(t testing.TB) *slog.Logger { return testutil.Logger(t) }

// openTest opens the database in dir with both halves of the storage.
func openTest(t testing.TB, dir string) *storetest.Store {
	t.Helper()
	s, err := storetest.Open(context.Background(), dir, store.DefaultConfig(), testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
