package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/flowbox/flowbox/web"
)

// runSetupToken prints the one-time setup token that the console's /setup
// page asks for while no user exists (web.SetupTokenFile in the data
// directory, written by serve at its first start), and on stderr the
// fingerprint of the console's certificate.
func runSetupToken(_ context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "setup-token")
	load := commonFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{"usage: flowbox setup-token [--config FILE] [--data-dir DIR]"}
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	path := filepath.Join(cfg.DataDir, web.SetupTokenFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no setup token in %s: a console user exists already, or flowbox serve has not started yet "+
			"(or FLOWBOX_ADMIN_PASSWORD created the admin)", cfg.DataDir)
	}
	if err != nil {
		return fmt.Errorf("cannot read the setup token: %w", err)
	}
	fmt.Fprintln(e.stdout, strings.TrimSpace(string(b)))
	// The browser's first visit shows the self-signed certificate: this
	// is what it should show (stderr, so scripts read the token alone).
	if fp, err := webFingerprint(cfg); err == nil {
		fmt.Fprintf(e.stderr, "the console's HTTPS certificate has the SHA-256 fingerprint %s\n", fp)
	}
	return nil
}
