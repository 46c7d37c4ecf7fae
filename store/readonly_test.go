package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

// TestInspectChangesNothing inspects a data directory that does not exist,
// a closed current one and one of an older schema: nothing is created or
// migrated, and the report says what a writer would do.
func TestInspectChangesNothing(t *testing.T) {
	ctx := context.Background()
	fresh := filepath.Join(t.TempDir(), "data")
	d, err := store.Inspect(ctx, fresh)
	if err != nil {
		t.Fatal(err)
	}
	if d.Exists || d.Database || d.Key || len(d.Problems()) != 0 {
		t.Errorf("Inspect of a fresh directory: %+v", d)
	}
	if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Inspect created the data directory: %v", err)
	}

	current := t.TempDir()
	s := openTest(t, current)
	if err := s.AddRouter(ctx, &store.Router{Name: "tower", Address: "192.0.2.1:8728", Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before := testutil.DirListing(t, current)
	d, err = store.Inspect(ctx, current)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Exists || !d.Database || !d.Key || d.Secrets != 1 || d.NeedsMigration() || d.SchemaVersion != d.SchemaWant || len(d.Problems()) != 0 {
		t.Errorf("Inspect of a current directory: %+v", d)
	}
	if after := testutil.DirListing(t, current); !slices.Equal(before, after) {
		t.Errorf("Inspect changed the directory:\nbefore %q\nafter  %q", before, after)
	}

	old := t.TempDir()
	store.CreateOldSchema(t, old, store.SchemaVersion()-1)
	before = testutil.DirListing(t, old)
	d, err = store.Inspect(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if !d.NeedsMigration() || d.SchemaVersion != store.SchemaVersion()-1 || d.Key || len(d.Problems()) != 0 {
		t.Errorf("Inspect of an old schema: %+v", d)
	}
	if after := testutil.DirListing(t, old); !slices.Equal(before, after) {
		t.Errorf("Inspect changed the directory:\nbefore %q\nafter  %q", before, after)
	}
}

// TestReadOnlyDataDir prepares data directories, then reads them in a
// child process that sees them on a read-only mount (TestReadOnlyChild).
func TestReadOnlyDataDir(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)

	// clean: closed normally, so SQLite removed its -wal and -shm.
	clean := filepath.Join(root, "clean")
	s := openTest(t, clean)
	if err := s.AddRouter(ctx, &store.Router{Name: "tower", Address: "192.0.2.1:8728", Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveExporterStats(ctx, []store.ExporterStats{{Exporter: netip.MustParseAddr("192.0.2.1"), FlowsReceived: 7, LastSeen: now}}); err != nil {
		t.Fatal(err)
	}
	// crashed: a copy taken while the store was open, -wal and -shm
	// included, as a crash leaves them; nowal: the same without -shm.
	crashed := filepath.Join(root, "crashed")
	noshm := filepath.Join(root, "noshm")
	for _, d := range []string{crashed, noshm} {
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{store.DBFile, store.DBFile + "-wal", store.DBFile + "-shm", store.KeyFile} {
			if d == noshm && name == store.DBFile+"-shm" {
				continue
			}
			copyTestFile(t, filepath.Join(clean, name), filepath.Join(d, name))
		}
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(clean, store.DBFile+"-wal")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the clean directory has a -wal: %v", err)
	}
	out := testutil.RunReadOnly(t, root, "TestReadOnlyChild")
	if !strings.Contains(out, "--- PASS: TestReadOnlyChild") {
		t.Fatalf("the child did not run:\n%s", out)
	}
}

func copyTestFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestReadOnlyChild runs in TestReadOnlyDataDir's child, on a read-only
// mount: writers say what is wrong, readers work.
func TestReadOnlyChild(t *testing.T) {
	root := testutil.ReadOnlyDir(t)
	ctx := context.Background()
	clean := filepath.Join(root, "clean")
	before := testutil.DirListing(t, clean)

	_, err := storetest.Open(ctx, clean, store.DefaultConfig(), testLogger(t), nil)
	want := fmt.Sprintf("data directory %s is on a read-only file system (flowbox stats and backup can read it; serve needs it writable): access %s: read-only file system", clean, clean)
	if err == nil || err.Error() != want {
		t.Errorf("Open:\n got %v\nwant %s", err, want)
	}
	_, err = storetest.OpenExclusive(ctx, clean, store.DefaultConfig(), testLogger(t), nil)
	if err == nil || err.Error() != want {
		t.Errorf("OpenExclusive:\n got %v\nwant %s", err, want)
	}
	fresh := filepath.Join(root, "fresh")
	_, err = storetest.Open(ctx, fresh, store.DefaultConfig(), testLogger(t), nil)
	want = fmt.Sprintf("cannot create data directory: data directory %s is on a read-only file system (flowbox stats and backup can read it; serve needs it writable): mkdir %s: read-only file system", fresh, fresh)
	if err == nil || err.Error() != want {
		t.Errorf("Open of a new directory:\n got %v\nwant %s", err, want)
	}

	for _, dir := range []string{clean, filepath.Join(root, "crashed")} {
		ro, err := storetest.OpenReadOnly(ctx, dir)
		if err != nil {
			t.Errorf("OpenReadOnly(%s): %v", filepath.Base(dir), err)
			continue
		}
		stats, err := ro.ExporterStats(ctx)
		if err != nil || len(stats) != 1 || stats[0].FlowsReceived != 7 {
			t.Errorf("ExporterStats of %s: %+v, %v", filepath.Base(dir), stats, err)
		}
		routers, err := ro.ListRouters(ctx)
		if err != nil || len(routers) != 1 {
			t.Errorf("ListRouters of %s: %+v, %v", filepath.Base(dir), routers, err)
		}
		backup := filepath.Join(t.TempDir(), "backup.db")
		if err := ro.Backup(ctx, backup); err != nil {
			t.Errorf("Backup of %s: %v", filepath.Base(dir), err)
		}
		ro.Close()
	}

	noshm := filepath.Join(root, "noshm")
	_, err = storetest.OpenReadOnly(ctx, noshm)
	want = fmt.Sprintf("cannot open store: data directory %s is read-only and its database has a write-ahead log (flowbox.db-wal) but no flowbox.db-shm, which SQLite needs to read it: copy the data directory to a writable place and read the copy, or make it writable", noshm)
	if err == nil || err.Error() != want {
		t.Errorf("OpenReadOnly without -shm:\n got %v\nwant %s", err, want)
	}

	d, err := store.Inspect(ctx, clean)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Database || d.Secrets != 1 || d.WriteErr == nil || len(d.Problems()) != 1 {
		t.Errorf("Inspect: %+v", d)
	}
	if after := testutil.DirListing(t, clean); !slices.Equal(before, after) {
		t.Errorf("the directory changed:\nbefore %q\nafter  %q", before, after)
	}
}
