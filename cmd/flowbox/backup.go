package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/flowbox/flowbox/store"
)

// runBackup copies the data directory to a new directory: the database as a
// consistent snapshot (SQLite VACUUM INTO, through a read-only connection,
// so it works while `flowbox serve` runs) and every other file beside it
// (the router password key, the generated TLS certificate...). Restoring is
// copying the files back into an empty data directory while flowbox is
// stopped.
func runBackup(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "backup")
	load := commonFlags(fs)
	withoutKey := fs.Bool("without-key", false, "leave out "+store.KeyFile+" (it decrypts the router passwords in the database): a backup that is safe to store elsewhere; keep the key apart")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || fs.Arg(0) == "" {
		return usageError{"usage: flowbox backup [--config FILE] [--data-dir DIR] [--without-key] DEST-DIR"}
	}
	dest := fs.Arg(0)
	cfg, err := load()
	if err != nil {
		return err
	}
	src, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("cannot resolve data directory: %w", err)
	}
	if abs, err := filepath.Abs(dest); err != nil {
		return fmt.Errorf("cannot resolve backup directory: %w", err)
	} else if abs == src || strings.HasPrefix(abs, src+string(filepath.Separator)) {
		return fmt.Errorf("cannot back up into the data directory itself (%s)", dest)
	}
	st, err := store.OpenReadOnly(ctx, cfg.DataDir)
	if err != nil {
		return fmt.Errorf("cannot open the data directory %s: %w", cfg.DataDir, err)
	}
	defer st.Close()
	names, err := backupTo(ctx, st, src, dest, *withoutKey)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backed up %s to %s: %s\n", cfg.DataDir, dest, strings.Join(names, ", "))
	if *withoutKey {
		fmt.Fprintf(e.stdout, "%s was left out: the router passwords in this backup can be decrypted only with it; keep a copy of it apart\n", store.KeyFile)
	}
	return nil
}

// backupTo writes the snapshot of st and the other files of the data
// directory src (without the key when withoutKey) into dest, a new or empty directory, and returns the names
// written. On failure dest is left as it was: absent, or empty.
func backupTo(ctx context.Context, st *store.DB, src, dest string, withoutKey bool) ([]string, error) {
	created, err := makeEmptyDir(dest)
	if err != nil {
		return nil, err
	}
	undo := func() {
		entries, _ := os.ReadDir(dest)
		for _, ent := range entries {
			os.RemoveAll(filepath.Join(dest, ent.Name()))
		}
		if created {
			os.Remove(dest)
		}
	}
	if err := st.Backup(ctx, filepath.Join(dest, store.DBFile)); err != nil {
		undo()
		return nil, err
	}
	copied, err := copyDataFiles(src, dest, withoutKey)
	if err != nil {
		undo()
		return nil, err
	}
	return append([]string{store.DBFile}, copied...), nil
}

// makeEmptyDir creates dir (mode 0700: the backup holds the password key)
// or accepts an existing empty directory. It reports whether it created it.
func makeEmptyDir(dir string) (bool, error) {
	err := os.Mkdir(dir, 0o700)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, os.ErrExist) {
		return false, fmt.Errorf("cannot create backup directory: %w", err)
	}
	entries, rerr := os.ReadDir(dir)
	if rerr != nil {
		return false, fmt.Errorf("cannot read backup directory: %w", rerr)
	}
	if len(entries) > 0 {
		return false, fmt.Errorf("cannot back up to %s: directory not empty", dir)
	}
	return false, nil
}

// copyDataFiles copies the regular files at the top of the data directory,
// except the database and its journal files, keeping their permissions. It
// returns the names copied.
func copyDataFiles(src, dest string, withoutKey bool) ([]string, error) {
	entries, err := os.ReadDir(src)
	if err != nil {
		return nil, fmt.Errorf("cannot read data directory: %w", err)
	}
	var names []string
	for _, ent := range entries {
		name := ent.Name()
		if !ent.Type().IsRegular() || strings.HasPrefix(name, store.DBFile) || name == store.LockFile {
			continue // flowbox.db, -wal, -shm, -journal: in the snapshot; the lock belongs to the running serve
		}
		if withoutKey && name == store.KeyFile {
			continue
		}
		if err := copyFile(filepath.Join(src, name), filepath.Join(dest, name)); err != nil {
			return names, err
		}
		names = append(names, name)
	}
	return names, nil
}

// copyFile copies one file with its permission bits, refusing to overwrite,
// and syncs it.
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return fmt.Errorf("cannot back up %s: %w", from, err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return fmt.Errorf("cannot back up %s: %w", from, err)
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, st.Mode().Perm())
	if err != nil {
		return fmt.Errorf("cannot back up %s: %w", from, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("cannot back up %s: %w", from, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("cannot back up %s: %w", from, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("cannot back up %s: %w", from, err)
	}
	return nil
}
