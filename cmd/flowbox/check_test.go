package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

// createOldDatabase writes, in dir, a database with every migration of
// store/migrations but the last, as the previous flowbox left it, and
// returns its schema version.
func createOldDatabase(t *testing.T, dir string) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "store", "migrations", "*.sql"))
	if err != nil || len(files) < 2 {
		t.Fatalf("migrations: %v %v", files, err)
	}
	slices.Sort(files)
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, store.DBFile)+"?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := len(files) - 1
	for _, f := range files[:old] {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(string(b)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", old)); err != nil {
		t.Fatal(err)
	}
	return old
}

func userVersion(t *testing.T, dir string) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, store.DBFile)+"?mode=ro&immutable=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestCheckNeverWrites runs `flowbox check` on a data directory that does
// not exist, on an empty one and on one of the previous schema: it creates
// no directory, key or database and migrates nothing, and says what serve
// would do.
func TestCheckNeverWrites(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "data")
	out, _, err := runIn(t, "check", "--data-dir", missing)
	if err != nil {
		t.Fatal(err)
	}
	if want := "data directory " + missing + " does not exist yet: flowbox serve will create it, with a new database and key\nconfiguration OK\n"; out != want {
		t.Errorf("check printed:\n%s\nwant:\n%s", out, want)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("check created the data directory: %v", err)
	}

	empty := t.TempDir()
	if _, _, err := runIn(t, "check", "--data-dir", empty); err != nil {
		t.Fatal(err)
	}
	if l := testutil.DirListing(t, empty); len(l) != 0 {
		t.Errorf("check wrote into an empty data directory: %q", l)
	}

	oldDir := t.TempDir()
	old := createOldDatabase(t, oldDir)
	before := testutil.DirListing(t, oldDir)
	out, _, err = runIn(t, "check", "--data-dir", oldDir)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("data directory %s: database schema %d: flowbox serve will migrate it to %d on start (`flowbox backup` first keeps a copy); "+
		"no key file yet (flowbox serve creates one); 0 encrypted router password(s)\nconfiguration OK\n", oldDir, old, old+1)
	if out != want {
		t.Errorf("check printed:\n%s\nwant:\n%s", out, want)
	}
	if v := userVersion(t, oldDir); v != old {
		t.Errorf("user_version = %d after check, want %d", v, old)
	}
	if after := testutil.DirListing(t, oldDir); !slices.Equal(before, after) {
		t.Errorf("check changed the data directory:\nbefore %q\nafter  %q", before, after)
	}
}

// TestCheckMissingKey: a database with router passwords whose key file is
// gone fails the check, with how to restore the key.
func TestCheckMissingKey(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := storetest.Open(ctx, dir, store.DefaultConfig(), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AddRouter(ctx, &store.Router{Name: "tower", Address: "192.0.2.1:8728", Username: "admin", Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	key := filepath.Join(dir, store.KeyFile)
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	out, _, err := runIn(t, "check", "--data-dir", dir)
	want := "check failed:\n" + (&store.KeyMissingError{Path: key, Secrets: 1}).Error()
	if err == nil || err.Error() != want {
		t.Fatalf("check:\n got %v\nwant %s", err, want)
	}
	if !strings.Contains(out, "key file MISSING; 1 encrypted router password(s)") {
		t.Errorf("check printed %q", out)
	}
	if _, err := os.Stat(key); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("check created a key: %v", err)
	}
}

// TestReadOnlyCommands prepares a data directory, then runs the reading
// commands on it in a child process that sees it on a read-only mount
// (TestReadOnlyCommandsChild).
func TestReadOnlyCommands(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	ctx := context.Background()
	st, err := storetest.Open(ctx, data, store.DefaultConfig(), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AddRouter(ctx, &store.Router{Name: "tower", Address: "192.0.2.1:8728", Username: "admin", Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	testutil.RunReadOnly(t, root, "TestReadOnlyCommandsChild")
}

// TestReadOnlyCommandsChild runs in TestReadOnlyCommands's child: stats and
// backup read the read-only data directory; check says that serve could
// not write it; serve's store says so too.
func TestReadOnlyCommandsChild(t *testing.T) {
	data := filepath.Join(testutil.ReadOnlyDir(t), "data")
	out, stderr, err := runIn(t, "stats", "--json", "--data-dir", data)
	var rows []statsRow
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil {
		t.Errorf("stats on a read-only data directory: %v\n%s%s", err, out, stderr)
	}
	dest := filepath.Join(t.TempDir(), "backup")
	if out, _, err := runIn(t, "backup", "--data-dir", data, dest); err != nil {
		t.Errorf("backup of a read-only data directory: %v", err)
	} else if !strings.Contains(out, "flowbox.db, flowbox.key") {
		t.Errorf("backup printed %q", out)
	}
	roErr := fmt.Sprintf("data directory %s is on a read-only file system (flowbox stats and backup can read it; serve needs it writable): access %s: read-only file system", data, data)
	_, _, err = runIn(t, "check", "--data-dir", data)
	if want := "check failed:\n" + roErr; err == nil || err.Error() != want {
		t.Errorf("check:\n got %v\nwant %s", err, want)
	}
	_, err = storetest.Open(context.Background(), data, store.DefaultConfig(), slog.New(slog.DiscardHandler), nil)
	if err == nil || err.Error() != roErr {
		t.Errorf("store.Open:\n got %v\nwant %s", err, roErr)
	}
}

// TestCheckReportFiles: a scheduled report whose SMTP password file is
// missing fails the check (as it would fail serve's start), naming it.
func TestCheckReportFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "flowbox.yaml")
	missing := filepath.Join(dir, "smtp-password")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`reports:
  smtp:
    host: mail.example.net
    from: flowbox@example.net
    username: flowbox
    password-file: %s
  schedules:
    - name: billing
      every: month
      mail-to: [billing@example.net]
`, missing)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := runIn(t, "check", "--config", cfg, "--data-dir", filepath.Join(dir, "data"))
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("check: %v, want the missing password file named", err)
	}
	if err := os.WriteFile(missing, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _, err := runIn(t, "check", "--config", cfg, "--data-dir", filepath.Join(dir, "data")); err != nil || !strings.Contains(out, "configuration OK") {
		t.Fatalf("check with the file: %q %v", out, err)
	}
}
