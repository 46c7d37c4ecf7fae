package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// KeySize is the size of the key in KeyFile (AES-256).
const KeySize = 32

// KeyMissingError is returned when the key file is missing although the
// database holds router passwords encrypted with it: a new key could not
// decrypt them, so none is created.
type KeyMissingError struct {
	// Path is where the key file is expected.
	Path string
	// Secrets is the number of encrypted router passwords.
	Secrets int
}

func (e *KeyMissingError) Error() string {
	return fmt.Sprintf("key file %s is missing, and the database holds %d router password(s) encrypted with it: "+
		"restore %s from the backup made by `flowbox backup` (copy it to %s with mode 0600, owned by the user that runs flowbox) and start again; "+
		"flowbox did not create a new key, which could not decrypt them",
		e.Path, e.Secrets, filepath.Base(e.Path), e.Path)
}

// loadOrCreateKey returns the 32-byte key of the key file at path. When the
// file is missing it creates one (mode 0600), unless secrets reports that
// the database holds passwords encrypted with the lost key: then it
// returns a *KeyMissingError.
func loadOrCreateKey(path string, secrets func() (int, error)) ([]byte, error) {
	key, err := readKey(path)
	if !errors.Is(err, os.ErrNotExist) {
		return key, err
	}
	n, err := secrets()
	if err != nil {
		return nil, fmt.Errorf("cannot count the encrypted router passwords: %w", err)
	}
	if n > 0 {
		return nil, &KeyMissingError{Path: path, Secrets: n}
	}
	key, err = createKey(path)
	if errors.Is(err, os.ErrExist) {
		return readKey(path) // another flowbox command created it meanwhile
	}
	return key, err
}

// createKey writes a new random key to path, which must not exist.
func createKey(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, err
		}
		return nil, fmt.Errorf("cannot create key file %s: %w", path, err)
	}
	key := make([]byte, KeySize)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("cannot generate key: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("cannot write key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("cannot write key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("cannot write key file %s: %w", path, err)
	}
	return key, nil
}

// readKey reads the key file at path. A missing file is an error that
// matches os.ErrNotExist. A key of the wrong size, or readable by group or
// others, is refused: router passwords would be unreadable or exposed.
func readKey(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read key file: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %04o: it must not be readable by group or others (chmod 600 it)", path, perm)
	}
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read key file: %w", err)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("key file %s holds %d bytes, want %d: it is damaged (restore it from a backup; without it router passwords cannot be decrypted)", path, len(key), KeySize)
	}
	return key, nil
}

// countSecrets returns the number of values in the database encrypted with
// the key: the router passwords.
func countSecrets(ctx context.Context, db *sql.DB) (int, error) {
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM routers WHERE length(password) > 0").Scan(&n); err != nil {
		return 0, err
	}
	return n, nil
}
