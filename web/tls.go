package web

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Names of the generated self-signed certificate in the data directory.
const (
	selfSignedCert = "web-selfsigned.crt"
	selfSignedKey  = "web-selfsigned.key"
)

// secureCookies reports whether the console's cookies get the Secure
// attribute: on HTTPS, and behind a TLS proxy (tls.mode proxy).
func (s *Server) secureCookies(r *http.Request) bool {
	return r.TLS != nil || s.cfg.TLS.Mode == TLSModeProxy
}

// CertFiles returns the certificate and key files the console serves in
// mode https: the configured ones, or the self-signed pair in dataDir.
func (t TLSConfig) CertFiles(dataDir string) (certFile, keyFile string, err error) {
	if !t.Enabled() {
		return "", "", fmt.Errorf("tls.mode: %s serves plain HTTP, without a certificate", t.Mode)
	}
	if !t.selfSigned() {
		return t.Cert, t.Key, nil
	}
	if dataDir == "" {
		return "", "", errors.New("tls: no data directory to keep the self-signed certificate in (set tls.cert and tls.key, or tls.mode off)")
	}
	return filepath.Join(dataDir, selfSignedCert), filepath.Join(dataDir, selfSignedKey), nil
}

// CertFingerprint returns the SHA-256 fingerprint of the first certificate
// of a PEM file, as colon-separated upper-case hex pairs (as browsers show
// it).
func CertFingerprint(certFile string) (string, error) {
	b, err := os.ReadFile(certFile)
	if err != nil {
		return "", fmt.Errorf("cannot read the console's certificate: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return "", fmt.Errorf("cannot read the console's certificate: %s holds no PEM certificate", certFile)
	}
	return fingerprint(blk.Bytes), nil
}

// fingerprint formats the SHA-256 of a DER certificate.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	var sb strings.Builder
	for i, c := range sum {
		if i > 0 {
			sb.WriteByte(':')
		}
		fmt.Fprintf(&sb, "%02X", c)
	}
	return sb.String()
}

// tlsConfig loads the configured certificate, or the self-signed one from
// the data directory, generating it on first use. It returns the
// certificate's SHA-256 fingerprint too.
func (s *Server) tlsConfig() (*tls.Config, string, error) {
	certFile, keyFile, err := s.cfg.TLS.CertFiles(s.deps.DataDir)
	if err != nil {
		return nil, "", err
	}
	if s.cfg.TLS.selfSigned() {
		if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
			if err := generateSelfSigned(certFile, keyFile, s.now()); err != nil {
				return nil, "", err
			}
			s.log.Info("generated a self-signed certificate", "file", certFile)
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, "", fmt.Errorf("cannot load TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, fingerprint(cert.Certificate[0]), nil
}

// generateSelfSigned writes a new ECDSA P-256 certificate valid for ten
// years for the host name, localhost and the loopback addresses. The key
// file is written 0600, and both files atomically.
func generateSelfSigned(certFile, keyFile string, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("cannot generate TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return fmt.Errorf("cannot generate certificate serial: %w", err)
	}
	host, _ := os.Hostname()
	names := []string{"localhost"}
	if host != "" && host != "localhost" {
		names = append(names, host)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "flowbox", Organization: []string{"flowbox"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              names,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("cannot create certificate: %w", err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("cannot encode TLS key: %w", err)
	}
	if err := writeAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return writeAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// writeAtomic writes a file through a temporary file and a rename.
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}
