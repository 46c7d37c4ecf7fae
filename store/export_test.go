package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// Hooks for the tests of package store_test, which open both halves of
// the storage (store/storetest imports store).

// CreateOldSchema creates a database in dir with only the first n
// migrations, as an older flowbox left it.
func CreateOldSchema(t *testing.T, dir string, n int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	db, err := openConns(filepath.Join(dir, DBFile), "_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migrationFiles()[:n] {
		if err := applyMigration(context.Background(), db, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// SchemaVersion is the schema version of this flowbox.
func SchemaVersion() int { return len(migrationFiles()) }
