package netflow

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// SaveTemplateFile saves the templates of every decoder (one per UDP
// reader) into the file at path, atomically (WriteTemplateFile). The
// decoders must not be decoding meanwhile (e.g. at shutdown, after the
// readers stopped); while they run, take each one's AppendTemplates in its
// own goroutine and pass them to WriteTemplateFile.
func SaveTemplateFile(path string, decoders ...*Decoder) error {
	var b []byte
	for _, d := range decoders {
		b = d.AppendTemplates(b)
	}
	return WriteTemplateFile(path, b)
}

// WriteTemplateFile replaces the file at path with the concatenation of
// blocks (each from AppendTemplates) atomically: it writes a temporary file
// in the same directory, syncs it, renames it over path and syncs the
// directory, so that a crash leaves either the old file or the new one.
// The file is readable by its owner only.
func WriteTemplateFile(path string, blocks ...[]byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot save templates: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("cannot save templates: %w", err)
	}
	for _, b := range blocks {
		if _, err := f.Write(b); err != nil {
			return fmt.Errorf("cannot save templates: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cannot save templates: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cannot save templates: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cannot save templates: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("cannot save templates: %w", err)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, errors.ErrUnsupported) {
		return nil // the platform cannot sync a directory
	}
	return err
}

// LoadTemplateFile adds the templates saved in the file at path to every
// decoder (each gets all of them, whichever decoder saved them) and
// returns how many templates the first decoder took (see LoadTemplates for
// what is skipped). A missing file loads nothing and is no error (the
// first start). The file is checked whole before any decoder is touched:
// an error about its content wraps ErrTemplateFile, and nothing is loaded.
// Call it before the decoders start decoding.
func LoadTemplateFile(path string, now time.Time, decoders ...*Decoder) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("cannot load templates: %w", err)
	}
	saved, err := parseTemplateBlocks(b)
	if err != nil {
		return 0, fmt.Errorf("cannot load templates from %s: %w", path, err)
	}
	n := 0
	for i, d := range decoders {
		k := d.loadSaved(saved, now)
		if i == 0 {
			n = k
		}
	}
	return n, nil
}
