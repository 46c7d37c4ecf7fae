package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

// runIn runs a flowbox command in-process with an empty environment.
func runIn(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	err := run(context.Background(), e, args)
	return out.String(), errb.String(), err
}

// TestBackupCommand backs up a data directory while its store is open with
// a running writer, then restores nothing but the backup: the router's
// encrypted password still decrypts (the key came along), the flows and the
// API token are there.
func TestBackupCommand(t *testing.T) {
	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := storetest.Open(ctx, data, store.DefaultConfig(), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.AddRouter(ctx, &store.Router{Name: "tower", Address: "127.0.0.2:8728", Username: "admin", Password: "s3cret-pw"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	now := time.Now()
	flows := make([]store.Flow, 20)
	for i := range flows {
		flows[i] = store.Flow{Exporter: netip.MustParseAddrPort("127.0.0.2:2055"), Start: now.UnixMilli() - 5, End: now.UnixMilli(),
			SrcAddr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), DstAddr: netip.MustParseAddr("192.0.2.9"), Bytes: 1000, Packets: 1}
	}
	if err := st.InsertFlows(ctx, flows); err != nil {
		t.Fatal(err)
	}
	countFlows := func(s *storetest.Store) int {
		page, err := s.SearchFlows(ctx, store.SearchQuery{From: now.Add(-time.Hour), To: now.Add(time.Hour), Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return len(page.Flows)
	}
	testutil.WaitFor(t, 10*time.Second, "the writer to store the flows", func() (bool, string) {
		n := countFlows(st)
		return n == len(flows), fmt.Sprintf("%d of %d", n, len(flows))
	})
	if _, _, err := runIn(t, "user", "add", "--name", "admin", "--role", "admin", "--password-file", writePassword(t, "long enough password"), "--data-dir", data); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runIn(t, "token", "create", "--name", "ci", "--data-dir", data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "extra.pem"), []byte("cert"), 0o640); err != nil {
		t.Fatal(err)
	}

	dest := filepath.Join(t.TempDir(), "backup")
	out, _, err := runIn(t, "backup", "--data-dir", data, dest)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if !strings.Contains(out, store.DBFile) || !strings.Contains(out, store.KeyFile) {
		t.Fatalf("backup printed %q", out)
	}
	for name, perm := range map[string]os.FileMode{store.KeyFile: 0o600, "extra.pem": 0o640} {
		fi, err := os.Stat(filepath.Join(dest, name))
		if err != nil || fi.Mode().Perm() != perm {
			t.Fatalf("%s in the backup: %v %v", name, fi, err)
		}
	}
	if fi, err := os.Stat(dest); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("backup directory: %v %v", fi, err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(filepath.Join(dest, store.DBFile+suffix)); err == nil {
			t.Fatalf("the backup copied the live %s file", suffix)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// The backup alone is a working data directory.
	cp, err := storetest.Open(context.Background(), dest, store.DefaultConfig(), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatalf("opening the backup: %v", err)
	}
	defer cp.Close()
	r, err := cp.GetRouter(context.Background(), "tower")
	if err != nil || r.Password != "s3cret-pw" {
		t.Fatalf("router from the backup: %+v, %v", r, err)
	}
	ctx = context.Background()
	if n := countFlows(cp); n != len(flows) {
		t.Fatalf("backup holds %d flows, want %d", n, len(flows))
	}
	cp.Close()
	if out, _, err := runIn(t, "token", "list", "--data-dir", dest); err != nil || !strings.Contains(out, "ci") {
		t.Fatalf("token list on the backup: %v\n%s", err, out)
	}

	// --without-key: everything but the key, which decrypts the router
	// passwords; restored beside the key, the backup works again.
	bare := filepath.Join(t.TempDir(), "bare")
	out, _, err = runIn(t, "backup", "--without-key", "--data-dir", data, bare)
	if err != nil {
		t.Fatalf("backup --without-key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(bare, store.KeyFile)); !os.IsNotExist(err) {
		t.Fatalf("backup --without-key holds the key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(bare, "extra.pem")); err != nil || !strings.Contains(out, "was left out") {
		t.Fatalf("backup --without-key: %q, other files %v", out, err)
	}
	if _, err := storetest.Open(context.Background(), bare, store.DefaultConfig(), slog.New(slog.DiscardHandler), nil); err == nil {
		t.Fatal("a backup without its key opened although it holds router passwords")
	}
	key, err := os.ReadFile(filepath.Join(data, store.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bare, store.KeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	cp2, err := storetest.Open(context.Background(), bare, store.DefaultConfig(), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatalf("the backup with its key put back: %v", err)
	}
	defer cp2.Close()
	if r, err := cp2.GetRouter(context.Background(), "tower"); err != nil || r.Password != "s3cret-pw" {
		t.Fatalf("router from the keyless backup with the key back: %+v, %v", r, err)
	}
}

// TestRouterPasswordNeverSerialized: a router's password cannot leave
// through JSON (API views, transcripts, logs of structs).
func TestRouterPasswordNeverSerialized(t *testing.T) {
	b, err := json.Marshal(store.Router{Name: "tower", Username: "admin", Password: "s3cret-pw"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "s3cret-pw") || strings.Contains(string(b), "Password") {
		t.Fatalf("the router's JSON carries its password: %s", b)
	}
}

func TestBackupCommandErrors(t *testing.T) {
	data := t.TempDir()
	st, err := storetest.Open(context.Background(), data, store.DefaultConfig(), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
		code int
	}{
		{"no destination", []string{"backup", "--data-dir", data}, "usage", 2},
		{"two destinations", []string{"backup", "--data-dir", data, "a", "b"}, "usage", 2},
		{"not empty", []string{"backup", "--data-dir", data, full}, "not empty", 1},
		{"inside the data dir", []string{"backup", "--data-dir", data, filepath.Join(data, "bk")}, "data directory itself", 1},
		{"no database", []string{"backup", "--data-dir", t.TempDir(), filepath.Join(t.TempDir(), "bk")}, "cannot open the data directory", 1},
		{"missing parent", []string{"backup", "--data-dir", data, filepath.Join(t.TempDir(), "a", "b")}, "cannot create backup directory", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runIn(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || exitCode(err) != tc.code {
				t.Fatalf("got %v (exit %d), want %q (exit %d)", err, exitCode(err), tc.want, tc.code)
			}
		})
	}
	// A failed backup leaves the destination as it was.
	ro, err := storetest.OpenReadOnly(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	ro.Close() // Backup now fails
	created := filepath.Join(t.TempDir(), "new")
	if _, err := backupTo(context.Background(), ro.DB, data, created, false); err == nil {
		t.Fatal("backup of a closed store succeeded")
	}
	if _, err := os.Stat(created); !os.IsNotExist(err) {
		t.Fatalf("a failed backup left %s: %v", created, err)
	}
	existing := t.TempDir()
	if _, err := backupTo(context.Background(), ro.DB, data, existing, false); err == nil {
		t.Fatal("backup of a closed store succeeded")
	}
	if entries, err := os.ReadDir(existing); err != nil || len(entries) != 0 {
		t.Fatalf("a failed backup left %v in an existing directory (%v)", entries, err)
	}

	// An empty existing directory is accepted.
	empty := t.TempDir()
	if _, _, err := runIn(t, "backup", "--data-dir", data, empty); err != nil {
		t.Fatalf("backup into an empty directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(empty, store.DBFile)); err != nil {
		t.Fatal(err)
	}
}

// TestBackupBesideTheLockHolder backs up a data directory that serve holds
// (store.OpenExclusive): backup takes no lock, and the lock file, which
// belongs to the running process, is not copied.
func TestBackupBesideTheLockHolder(t *testing.T) {
	data := t.TempDir()
	st, err := storetest.OpenExclusive(context.Background(), data, store.DefaultConfig(), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := os.Stat(filepath.Join(data, store.LockFile)); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "backup")
	out, _, err := runIn(t, "backup", "--data-dir", data, dest)
	if err != nil {
		t.Fatal(err)
	}
	if want := "backed up " + data + " to " + dest + ": flowbox.db, flowbox.key\n"; out != want {
		t.Errorf("backup printed %q, want %q", out, want)
	}
	if _, err := os.Stat(filepath.Join(dest, store.LockFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the lock file was copied: %v", err)
	}
}
