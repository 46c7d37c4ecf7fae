package store_test

import (
	"context"
	"fmt"
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

// TestBackupWhileWriting backs the database up through a read-only store
// while the writer of another handle holds it open with flows in its WAL,
// then opens the copy and finds the same routers and flows.
func TestBackupWhileWriting(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := openTest(t, dir)
	if err := s.AddRouter(ctx, &store.Router{Name: "tower", Address: "127.0.0.2:8728", Password: "secret"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	now := time.Now()
	var flows []store.Flow
	for i := range 50 {
		flows = append(flows, store.Flow{
			Exporter: netip.MustParseAddrPort("127.0.0.2:2055"), Start: now.UnixMilli() - 10, End: now.UnixMilli(),
			SrcAddr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), DstAddr: netip.MustParseAddr("192.0.2.1"),
			Proto: 6, SrcPort: uint16(40000 + i), DstPort: 443, Bytes: uint64(100 + i), Packets: 2,
		})
	}
	if err := s.InsertFlows(ctx, flows); err != nil {
		t.Fatal(err)
	}
	search := func(st *storetest.Store) int {
		t.Helper()
		page, err := st.SearchFlows(ctx, store.SearchQuery{From: now.Add(-time.Hour), To: now.Add(time.Hour), Limit: 1000})
		if err != nil {
			t.Fatalf("search: %v", err)
		}
		return len(page.Flows)
	}
	testutil.WaitFor(t, 10*time.Second, "the writer to store the flows", func() (bool, string) {
		n := search(s)
		return n == len(flows), fmt.Sprintf("%d of %d flows stored", n, len(flows))
	})

	ro, err := storetest.OpenReadOnly(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	out := filepath.Join(t.TempDir(), "copy")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(out, store.DBFile)
	if err := ro.Backup(ctx, dst); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	// Only the backup is left in the directory: no temporary file.
	entries, err := os.ReadDir(out)
	if err != nil || len(entries) != 1 || entries[0].Name() != store.DBFile {
		t.Fatalf("backup directory holds %v (%v)", entries, err)
	}
	// A second backup to the same name is refused and leaves it intact.
	before, _ := os.ReadFile(dst)
	if err := ro.Backup(ctx, dst); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("overwriting a backup: %v", err)
	}
	if after, _ := os.ReadFile(dst); string(after) != string(before) {
		t.Fatal("a refused backup changed the existing file")
	}
	// The writable store can back up too.
	if err := s.Backup(ctx, filepath.Join(out, "second.db")); err != nil {
		t.Fatalf("Backup from the writer's store: %v", err)
	}

	cp, err := storetest.OpenReadOnly(ctx, out)
	if err != nil {
		t.Fatalf("opening the backup: %v", err)
	}
	defer cp.Close()
	if n := search(cp); n != len(flows) {
		t.Fatalf("backup holds %d flows, want %d", n, len(flows))
	}
	routers, err := cp.ListRouters(ctx)
	if err != nil || len(routers) != 1 || routers[0].Name != "tower" {
		t.Fatalf("backup routers: %+v, %v", routers, err)
	}
	var check string
	if err := cp.DB.Reader().QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check of the backup: %q, %v", check, err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestBackupErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	if err := s.Backup(ctx, filepath.Join(dir, "missing", store.DBFile)); err == nil {
		t.Fatal("backup into a missing directory succeeded")
	}
	if err := s.Backup(ctx, filepath.Join(dir, store.DBFile)); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("backup over the live database: %v", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	out := t.TempDir()
	if err := s.Backup(canceled, filepath.Join(out, store.DBFile)); err == nil {
		t.Fatal("backup with a canceled context succeeded")
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Fatalf("a failed backup left %v behind", entries)
	}
	s.Close()
	if err := s.Backup(ctx, filepath.Join(out, store.DBFile)); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("backup of a closed store: %v", err)
	}
}
