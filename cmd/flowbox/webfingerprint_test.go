package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/web"
)

// TestWebFingerprintCommand: `flowbox web-fingerprint` prints the SHA-256
// of the console's self-signed certificate in the data directory (and
// `flowbox setup-token` shows it on stderr), says when serve has not made
// it yet, and refuses when the console serves plain HTTP.
func TestWebFingerprintCommand(t *testing.T) {
	dir := t.TempDir()
	cli := func(args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		e := &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		err := run(context.Background(), e, args)
		return out.String(), errb.String(), err
	}
	if _, _, err := cli("web-fingerprint", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "no certificate") {
		t.Fatalf("before serve made the certificate: %v", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "flowbox"},
		NotBefore: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "web-selfsigned.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	var pairs []string
	for _, b := range sum {
		pairs = append(pairs, fmt.Sprintf("%02X", b))
	}
	want := strings.Join(pairs, ":")
	out, _, err := cli("web-fingerprint", "--data-dir", dir)
	if err != nil || strings.TrimSpace(out) != want {
		t.Fatalf("web-fingerprint = %q, %v; want %s", out, err, want)
	}
	if err := os.WriteFile(filepath.Join(dir, web.SetupTokenFile), []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := cli("setup-token", "--data-dir", dir)
	if err != nil || strings.TrimSpace(out) != "0123456789abcdef0123456789abcdef" || !strings.Contains(errOut, want) {
		t.Fatalf("setup-token: stdout %q, stderr %q, %v; want the token alone on stdout and the fingerprint on stderr", out, errOut, err)
	}
	cfg := filepath.Join(t.TempDir(), "flowbox.yaml")
	if err := os.WriteFile(cfg, []byte("web:\n  tls:\n    mode: proxy\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cli("web-fingerprint", "--config", cfg, "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "tls.mode") {
		t.Fatalf("with tls.mode proxy: %v", err)
	}
}
