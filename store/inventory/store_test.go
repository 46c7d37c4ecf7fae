package inventory

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// TestKeyMissingRefused removes the key of a database that holds an
// encrypted router password: Open refuses, says how to restore the key
// and creates none; with the key restored the password decrypts again.
func TestKeyMissingRefused(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openTest(t, dir)
	if err := s.AddRouter(ctx, &store.Router{Name: "tower", Address: "192.0.2.1:8728", Username: "admin", Password: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	keyPath := filepath.Join(dir, store.KeyFile)
	key, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, dir, store.DefaultConfig(), testLogger(t), nil)
	var km *store.KeyMissingError
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
	d, err := store.Inspect(ctx, dir)
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
	if err := s.AddRouter(ctx, &store.Router{Name: "tower", Address: "192.0.2.1:8728", Username: "admin"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	keyPath := filepath.Join(dir, store.KeyFile)
	old, _ := os.ReadFile(keyPath)
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	st, err := os.Stat(keyPath)
	if err != nil || st.Mode().Perm() != 0o600 || st.Size() != store.KeySize || bytes.Equal(old, s.key) {
		t.Fatalf("new key file: %v, %v", st, err)
	}
}

func TestRouterCRUD(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ctx := context.Background()
	const secret = "Sup3r-s3cret-pa55word"
	r := &store.Router{
		Name: "tower-1", Address: "192.0.2.1:8728", Username: "admin", Password: secret,
		Interfaces: []store.Interface{{Index: 1, Name: "ether1", Type: "ether"}},
		Addresses:  []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")},
		Previous:   map[string]string{"traffic-flow/enabled": "no"},
	}
	if err := s.AddRouter(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.ID == 0 || r.CreatedAt.IsZero() || r.State != store.StateNew {
		t.Fatalf("AddRouter did not set fields: %+v", r)
	}
	if err := s.AddRouter(ctx, &store.Router{Name: "tower-1", Address: "192.0.2.9:8728"}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := s.AddRouter(ctx, &store.Router{Name: "bad", Address: "no-port"}); err == nil {
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
	got.State, got.Identity, got.LastContact = store.StateConfigured, "MikroTik", time.Now()
	got.Addresses = append(got.Addresses, netip.MustParsePrefix("198.51.100.1/32"))
	if err := s.UpdateRouter(ctx, got); err != nil {
		t.Fatal(err)
	}
	if id, _ := s.RouterFor(netip.MustParseAddr("198.51.100.1")); id != r.ID {
		t.Fatal("attribution not refreshed after update")
	}
	byID, err := s.GetRouterByID(ctx, r.ID)
	if err != nil || byID.State != store.StateConfigured || byID.Identity != "MikroTik" || byID.LastContact.IsZero() {
		t.Fatalf("GetRouterByID = %+v, %v", byID, err)
	}
	if err := s.UpdateRouter(ctx, &store.Router{ID: 9999, Name: "x", Address: "h:1"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update missing: %v", err)
	}
	if err := s.AddRouter(ctx, &store.Router{Name: "tower-2", Address: "[2001:db8::1]:8729", TLS: true}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListRouters(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "tower-1" || list[1].Name != "tower-2" {
		t.Fatalf("ListRouters = %+v, %v", list, err)
	}
	// The password is not in the database in clear.
	s.Close()
	for _, f := range []string{store.DBFile, store.DBFile + "-wal"} {
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
	if _, err := s.GetRouter(ctx, "tower-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removed router: %v", err)
	}
	if err := s.RemoveRouter(ctx, "tower-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("remove twice: %v", err)
	}
	if _, ok := s.RouterFor(netip.MustParseAddr("10.0.0.1")); ok {
		t.Fatal("attribution kept after remove")
	}
}

func TestProvisionRunsBounded(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx := context.Background()
	r := &store.Router{Name: "r", Address: "192.0.2.1:8728"}
	if err := s.AddRouter(ctx, r); err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour)
	for i := range 10 {
		run := &store.ProvisionRun{RouterID: r.ID, Time: base.Add(time.Duration(i) * time.Second), Action: "apply", OK: false,
			Error: "boom", Transcript: []string{"/login", "=password=***"}}
		if err := s.AddProvisionRun(ctx, run); err != nil {
			t.Fatal(err)
		}
	}
	for i := range historyOK + 20 {
		run := &store.ProvisionRun{RouterID: r.ID, Time: base.Add(time.Minute + time.Duration(i)*time.Second), Action: "verify", OK: true,
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
	if err := s.AddProvisionRun(ctx, &store.ProvisionRun{RouterID: 777, Action: "apply"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("run for missing router: %v", err)
	}
}
