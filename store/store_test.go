package store

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func openTest(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, DefaultConfig(), testLogger(t), prometheus.NewRegistry())
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
	_, err = Open(context.Background(), dir, DefaultConfig(), testLogger(t), prometheus.NewRegistry())
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
	_, err := Open(context.Background(), dir, DefaultConfig(), testLogger(t), nil)
	if err == nil || !strings.Contains(err.Error(), "must not be readable by group or others") {
		t.Fatalf("open with 0644 key: %v", err)
	}
	if err := os.WriteFile(key, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), dir, DefaultConfig(), testLogger(t), nil)
	if err == nil || !strings.Contains(err.Error(), "holds 5 bytes, want 32") {
		t.Fatalf("open with short key: %v", err)
	}
}

// TestKeyMissingRefused removes the key of a database that holds an
// encrypted router password: Open refuses, says how to restore the key
// and creates none; with the key restored the password decrypts again.
func TestKeyMissingRefused(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openTest(t, dir)
	if err := s.AddRouter(ctx, &Router{Name: "tower", Address: "192.0.2.1:8728", Username: "admin", Password: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	keyPath := filepath.Join(dir, KeyFile)
	key, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, dir, DefaultConfig(), testLogger(t), nil)
	var km *KeyMissingError
	if !errors.As(err, &km) || km.Secrets != 1 {
		t.Fatalf("Open without the key: %v, want a *KeyMissingError", err)
	}
	want := "key file " + keyPath + " is missing, and the database holds 1 router password(s) encrypted with it: " +
		"restore flowbox.key from the backup made by `flowbox backup` (copy it to " + keyPath +
		" with mode 0600, owned by the user that runs flowbox) and start again; " +
		"flowbox did not create a new key, which could not decrypt them"
	if err.Error() != want {
		t.Errorf("error:\n got %s\nwant %s", err, want)
	}
	if _, err := os.Stat(keyPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a key file was created: %v", err)
	}
	d, err := Inspect(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if p := d.Problems(); len(p) != 1 || p[0].Error() != want {
		t.Errorf("Inspect problems = %v, want the missing key", p)
	}

	if err := os.WriteFile(keyPath, key, 0o600); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	r, err := s.GetRouter(ctx, "tower")
	if err != nil || r.Password != "s3cret" {
		t.Fatalf("router after restoring the key: %+v, %v", r, err)
	}
}

// TestKeyCreatedWithoutSecrets removes the key of a database without
// encrypted passwords: a new key is created, as on first start.
func TestKeyCreatedWithoutSecrets(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openTest(t, dir)
	if err := s.AddRouter(ctx, &Router{Name: "tower", Address: "192.0.2.1:8728", Username: "admin"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	keyPath := filepath.Join(dir, KeyFile)
	old, _ := os.ReadFile(keyPath)
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	st, err := os.Stat(keyPath)
	if err != nil || st.Mode().Perm() != 0o600 || st.Size() != keySize || bytes.Equal(old, s.key) {
		t.Fatalf("new key file: %v, %v", st, err)
	}
}

func TestRouterCRUD(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ctx := context.Background()
	const secret = "Sup3r-s3cret-pa55word"
	r := &Router{
		Name: "tower-1", Address: "192.0.2.1:8728", Username: "admin", Password: secret,
		Interfaces: []Interface{{Index: 1, Name: "ether1", Type: "ether"}},
		Addresses:  []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")},
		Previous:   map[string]string{"traffic-flow/enabled": "no"},
	}
	if err := s.AddRouter(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.ID == 0 || r.CreatedAt.IsZero() || r.State != StateNew {
		t.Fatalf("AddRouter did not set fields: %+v", r)
	}
	if err := s.AddRouter(ctx, &Router{Name: "tower-1", Address: "192.0.2.9:8728"}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := s.AddRouter(ctx, &Router{Name: "bad", Address: "no-port"}); err == nil {
		t.Fatal("bad address accepted")
	}
	got, err := s.GetRouter(ctx, "tower-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Password != secret || got.Interfaces[0].Name != "ether1" || got.Addresses[0] != r.Addresses[0] ||
		got.Previous["traffic-flow/enabled"] != "no" || !got.CreatedAt.Equal(r.CreatedAt) {
		t.Fatalf("GetRouter = %+v", got)
	}
	if id, ok := s.RouterFor(netip.MustParseAddr("10.0.0.1")); !ok || id != r.ID {
		t.Fatalf("attribution by /ip/address: %d %v", id, ok)
	}
	if id, ok := s.RouterFor(netip.MustParseAddr("192.0.2.1")); !ok || id != r.ID {
		t.Fatalf("attribution by API host: %d %v", id, ok)
	}
	got.State, got.Identity, got.LastContact = StateConfigured, "MikroTik", time.Now()
	got.Addresses = append(got.Addresses, netip.MustParsePrefix("198.51.100.1/32"))
	if err := s.UpdateRouter(ctx, got); err != nil {
		t.Fatal(err)
	}
	if id, _ := s.RouterFor(netip.MustParseAddr("198.51.100.1")); id != r.ID {
		t.Fatal("attribution not refreshed after update")
	}
	byID, err := s.GetRouterByID(ctx, r.ID)
	if err != nil || byID.State != StateConfigured || byID.Identity != "MikroTik" || byID.LastContact.IsZero() {
		t.Fatalf("GetRouterByID = %+v, %v", byID, err)
	}
	if err := s.UpdateRouter(ctx, &Router{ID: 9999, Name: "x", Address: "h:1"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update missing: %v", err)
	}
	if err := s.AddRouter(ctx, &Router{Name: "tower-2", Address: "[2001:db8::1]:8729", TLS: true}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListRouters(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "tower-1" || list[1].Name != "tower-2" {
		t.Fatalf("ListRouters = %+v, %v", list, err)
	}
	// The password is not in the database in clear.
	s.Close()
	for _, f := range []string{DBFile, DBFile + "-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Fatalf("password found in clear in %s", f)
		}
	}
	s = openTest(t, dir)
	if got, err := s.GetRouter(ctx, "tower-1"); err != nil || got.Password != secret {
		t.Fatalf("after restart: %v %v", got, err)
	}
	if err := s.RemoveRouter(ctx, "tower-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRouter(ctx, "tower-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed router: %v", err)
	}
	if err := s.RemoveRouter(ctx, "tower-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove twice: %v", err)
	}
	if _, ok := s.RouterFor(netip.MustParseAddr("10.0.0.1")); ok {
		t.Fatal("attribution kept after remove")
	}
}

func TestProvisionRunsBounded(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx := context.Background()
	r := &Router{Name: "r", Address: "192.0.2.1:8728"}
	if err := s.AddRouter(ctx, r); err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour)
	for i := range 10 {
		run := &ProvisionRun{RouterID: r.ID, Time: base.Add(time.Duration(i) * time.Second), Action: "apply", OK: false,
			Error: "boom", Transcript: []string{"/login", "=password=***"}}
		if err := s.AddProvisionRun(ctx, run); err != nil {
			t.Fatal(err)
		}
	}
	for i := range historyOK + 20 {
		run := &ProvisionRun{RouterID: r.ID, Time: base.Add(time.Minute + time.Duration(i)*time.Second), Action: "verify", OK: true,
			Summary: "ok", Changes: []string{"a: 1 -> 2"}}
		if err := s.AddProvisionRun(ctx, run); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.ProvisionRuns(ctx, r.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var oks, fails int
	for i, run := range all {
		if i > 0 && run.Time.After(all[i-1].Time) {
			t.Fatal("not newest first")
		}
		if run.OK {
			oks++
		} else {
			fails++
		}
	}
	if oks != historyOK || fails != 10 {
		t.Fatalf("kept %d ok and %d failed runs, want %d and 10", oks, fails, historyOK)
	}
	some, err := s.ProvisionRuns(ctx, r.ID, 3)
	if err != nil || len(some) != 3 || some[0].Changes[0] != "a: 1 -> 2" {
		t.Fatalf("limit 3: %+v %v", some, err)
	}
	if err := s.AddProvisionRun(ctx, &ProvisionRun{RouterID: 777, Action: "apply"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("run for missing router: %v", err)
	}
}

func TestExporterStatsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	in := []ExporterStats{{
		Exporter: netip.MustParseAddr("192.0.2.7"), RouterID: 0, Packets: 10, FlowsReceived: 300, FlowsStored: 290,
		FlowsDropped: map[string]uint64{"no_template": 10}, DecodeErrors: map[string]uint64{"short": 1},
		LostFlows: 5, Templates: 2, FirstSeen: now.Add(-time.Hour), LastSeen: now, Bytes: 1000, PktsSeen: 20,
	}}
	if err := s.SaveExporterStats(ctx, in); err != nil {
		t.Fatal(err)
	}
	in[0].FlowsReceived = 400
	if err := s.SaveExporterStats(ctx, in); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	out, err := ro.ExporterStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].FlowsReceived != 400 || out[0].FlowsDropped["no_template"] != 10 ||
		!out[0].LastSeen.Equal(now) || out[0].LostFlows != 5 {
		t.Fatalf("ExporterStats = %+v", out)
	}
	if err := ro.SaveExporterStats(ctx, in); err == nil {
		t.Fatal("read-only store accepted a write")
	}
}
