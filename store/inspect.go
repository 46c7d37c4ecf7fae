package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// DirStatus is what Inspect found in a data directory.
type DirStatus struct {
	// Dir is the data directory.
	Dir string
	// Exists is false when the directory does not exist yet (Open creates
	// it).
	Exists bool
	// WriteErr says why a writer could not write the directory (or, when
	// it does not exist, create it): a read-only file system or
	// permissions. It is nil when it can.
	WriteErr error
	// Database is true when the directory holds a database.
	Database bool
	// SchemaVersion is the database's schema version (0 without one).
	SchemaVersion int
	// SchemaWant is the schema version of this flowbox.
	SchemaWant int
	// Key is true when the key file exists.
	Key bool
	// KeyErr says why the existing key file would be refused (mode, size,
	// unreadable), nil when it is fine or absent.
	KeyErr error
	// Secrets is the number of router passwords the database holds
	// encrypted with the key.
	Secrets int
}

// NeedsMigration reports whether a writer would migrate the database.
func (d *DirStatus) NeedsMigration() bool {
	return d.Database && d.SchemaVersion < d.SchemaWant
}

// Problems returns what would stop a writer (flowbox serve) from opening
// the data directory, each error saying what to do.
func (d *DirStatus) Problems() []error {
	var errs []error
	if d.WriteErr != nil {
		errs = append(errs, d.WriteErr)
	}
	if d.SchemaVersion > d.SchemaWant {
		errs = append(errs, &SchemaVersionError{Have: d.SchemaVersion, Want: d.SchemaWant})
	}
	if d.KeyErr != nil {
		errs = append(errs, d.KeyErr)
	}
	if !d.Key && d.Secrets > 0 {
		errs = append(errs, &KeyMissingError{Path: filepath.Join(d.Dir, KeyFile), Secrets: d.Secrets})
	}
	return errs
}

// Inspect reports the state of the data directory dataDir without changing
// anything: it creates no directory, key or database, migrates nothing,
// takes no lock, and opens the database read-only without creating
// SQLite's -wal and -shm files. It is what `flowbox check` reads. The error
// is for a directory that cannot be inspected at all (unreadable, a
// damaged database); problems that would stop a writer are in Problems.
func Inspect(ctx context.Context, dataDir string) (*DirStatus, error) {
	d := &DirStatus{Dir: dataDir, SchemaWant: len(migrationFiles())}
	st, err := os.Stat(dataDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		d.WriteErr = creatable(dataDir)
		return d, nil
	case err != nil:
		return d, fmt.Errorf("cannot inspect data directory: %w", err)
	case !st.IsDir():
		return d, fmt.Errorf("cannot inspect data directory: %s is not a directory", dataDir)
	}
	d.Exists = true
	if err := writable(dataDir); err != nil {
		d.WriteErr = describeDirError(dataDir, err)
	}
	if _, err := readKey(filepath.Join(dataDir, KeyFile)); err == nil {
		d.Key = true
	} else if !errors.Is(err, os.ErrNotExist) {
		d.Key, d.KeyErr = true, err
	}
	path := filepath.Join(dataDir, DBFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return d, nil
	} else if err != nil {
		return d, fmt.Errorf("cannot inspect database: %w", err)
	}
	d.Database = true
	opts, err := readOnlyOptions(path, true)
	if err != nil {
		return d, fmt.Errorf("cannot inspect database: %w", err)
	}
	db, err := openConns(path, opts)
	if err != nil {
		return d, fmt.Errorf("cannot inspect database: %w", err)
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&d.SchemaVersion); err != nil {
		return d, fmt.Errorf("cannot read schema version: %w", err)
	}
	// The routers table exists from the first schema on; a newer schema
	// than ours may have moved it.
	if d.SchemaVersion >= 1 && d.SchemaVersion <= d.SchemaWant {
		if d.Secrets, err = countSecrets(ctx, db); err != nil {
			return d, fmt.Errorf("cannot count the encrypted router passwords: %w", err)
		}
	}
	return d, nil
}

// creatable says why the directory dir, which does not exist, could not be
// created by a writer: the error of its nearest existing ancestor, or nil.
func creatable(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil
	}
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		if st, err := os.Stat(p); err == nil {
			if !st.IsDir() {
				return fmt.Errorf("cannot create data directory %s: %s is not a directory", dir, p)
			}
			if err := writable(p); err != nil {
				return fmt.Errorf("cannot create data directory %s: %w", dir, err)
			}
			return nil
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}
