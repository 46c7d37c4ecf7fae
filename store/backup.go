package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Backup writes a consistent snapshot of the database to path with SQLite's
// `VACUUM INTO`, through a read connection: it works on a store opened
// read-only while another process (flowbox serve) writes, and does not block
// that writer. The snapshot is written to a temporary file next to path,
// synced, then renamed, so path either does not exist or holds a complete
// database. Backup refuses to overwrite an existing file.
func (d *DB) Backup(ctx context.Context, path string) error {
	if d.r == nil {
		return errors.New("cannot back up: store not open")
	}
	if d.Closed() {
		return errors.New("cannot back up: store closed")
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("cannot back up to %s: file exists", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot back up to %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("cannot create backup file: %w", err)
	}
	tmpName := tmp.Name()
	// VACUUM INTO refuses an existing non-empty file and accepts an empty
	// one; the temporary name is reserved by creating it, then handed over.
	if err := tmp.Close(); err != nil {
		os.Remove(tmpName)
		return fmt.Errorf("cannot create backup file: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmpName)
		}
	}()
	if _, err := d.r.ExecContext(ctx, "VACUUM INTO ?", tmpName); err != nil {
		return fmt.Errorf("cannot back up database: %w", err)
	}
	if err := syncFile(tmpName); err != nil {
		return fmt.Errorf("cannot sync backup: %w", err)
	}
	// Link, not rename: link fails when path appeared meanwhile, so a file
	// created since the check above is never replaced. File systems
	// without hard links (a vfat USB stick) get a rename after a second
	// check.
	if err := os.Link(tmpName, path); err == nil {
		ok = true
		if err := os.Remove(tmpName); err != nil {
			return fmt.Errorf("cannot remove temporary backup file: %w", err)
		}
	} else {
		if _, serr := os.Lstat(path); serr == nil || errors.Is(err, os.ErrExist) {
			return fmt.Errorf("cannot back up to %s: file exists", path)
		}
		if err := os.Rename(tmpName, path); err != nil {
			return fmt.Errorf("cannot back up to %s: %w", path, err)
		}
		ok = true
	}
	if err := syncFile(dir); err != nil {
		return fmt.Errorf("cannot sync backup directory: %w", err)
	}
	return nil
}

// syncFile flushes a file or directory to stable storage.
func syncFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
