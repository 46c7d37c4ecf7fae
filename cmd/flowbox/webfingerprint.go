package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/flowbox/flowbox/web"
)

// runWebFingerprint prints the SHA-256 fingerprint of the console's HTTPS
// certificate (the configured one, or the self-signed one serve generated
// in the data directory), so the operator can check what the browser shows
// before accepting a self-signed certificate.
func runWebFingerprint(_ context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "web-fingerprint")
	load := commonFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{"usage: flowbox web-fingerprint [--config FILE] [--data-dir DIR]"}
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	fp, err := webFingerprint(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, fp)
	return nil
}

// webFingerprint returns the fingerprint of the console's certificate.
func webFingerprint(cfg Config) (string, error) {
	certFile, _, err := cfg.Web.TLS.CertFiles(cfg.DataDir)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("no certificate in %s yet: flowbox serve generates it at its first start", certFile)
	}
	return web.CertFingerprint(certFile)
}
