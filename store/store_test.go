package store

import (
	"bytes"
	"context"
	"errors"
	"github.com/flowbox/flowbox/internal/testutil"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testLogger logs the store's warnings to the test.
func testLogger(t testing.TB) *slog.Logger { return testutil.Logger(t) }

func openTest(t testing.TB, dir string) *DB {
	t.Helper()
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenCreatesFilesAndMigrates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := openTest(t, dir)
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o750 {
		t.Fatalf("data dir: %v %v", st.Mode(), err)
	}
	kst, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || kst.Mode().Perm() != 0o600 || kst.Size() != 32 {
		t.Fatalf("key file: %v size %d err %v", kst.Mode(), kst.Size(), err)
	}
	var v int
	if err := s.r.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != len(migrationFiles()) {
		t.Fatalf("user_version = %d, %v", v, err)
	}
	var mode string
	if err := s.w.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v", mode, err)
	}
	s.Close()
	// Re-open: nothing to migrate, same key.
	key1, _ := os.ReadFile(filepath.Join(dir, KeyFile))
	s2 := openTest(t, dir)
	if !bytes.Equal(key1, s2.key) {
		t.Fatal("key changed on re-open")
	}
}

func TestMigrationsNumberedWithoutGaps(t *testing.T) {
	for i, m := range migrationFiles() {
		if m.version != i+1 {
			t.Fatalf("migration %s has version %d, want %d", m.name, m.version, i+1)
		}
	}
}

// TestSchemaGolden compares the schema that the migrations create with
// testdata/schema.sql (regenerate with FLOWBOX_UPDATE_GOLDEN=1).
func TestSchemaGolden(t *testing.T) {
	s := openTest(t, t.TempDir())
	rows, err := s.r.Query("SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY type, name")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var q string
		if err := rows.Scan(&q); err != nil {
			t.Fatal(err)
		}
		b.WriteString(q + ";\n")
	}
	golden := filepath.Join("testdata", "schema.sql")
	if os.Getenv("FLOWBOX_UPDATE_GOLDEN") == "1" {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (FLOWBOX_UPDATE_GOLDEN=1 creates it): %v", err)
	}
	if b.String() != string(want) {
		t.Fatalf("schema differs from %s (FLOWBOX_UPDATE_GOLDEN=1 to update):\n%s", golden, b.String())
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	if _, err := s.w.Exec("PRAGMA user_version = 999"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	dbPath := filepath.Join(dir, DBFile)
	before, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), dir)
	var sv *SchemaVersionError
	if !errors.As(err, &sv) || sv.Have != 999 || !strings.Contains(err.Error(), "newer than this flowbox") {
		t.Fatalf("Open of newer schema: %v", err)
	}
	after, _ := os.ReadFile(dbPath)
	if !bytes.Equal(before, after) {
		t.Fatal("the database file was modified")
	}
	if _, err := OpenReadOnly(context.Background(), dir); !errors.As(err, &sv) {
		t.Fatalf("OpenReadOnly of newer schema: %v", err)
	}
}

func TestKeyFileChecks(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir).Close()
	key := filepath.Join(dir, KeyFile)
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), "must not be readable by group or others") {
		t.Fatalf("open with 0644 key: %v", err)
	}
	if err := os.WriteFile(key, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), "holds 5 bytes, want 32") {
		t.Fatalf("open with short key: %v", err)
	}
}
