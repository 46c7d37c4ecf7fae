package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// runWithEnv runs a flowbox command in-process with the given environment.
func runWithEnv(vars map[string]string, args ...string) (string, error) {
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }}
	err := run(context.Background(), e, args)
	return out.String() + errb.String(), err
}

// healthServer answers /healthz with the status in *status and counts the
// requests it got.
func healthServer(t *testing.T, tlsOn bool, status *atomic.Int32, hits *atomic.Int32) *httptest.Server {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		hits.Add(1)
		w.WriteHeader(int(status.Load()))
	})
	var srv *httptest.Server
	if tlsOn {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv
}

func TestHealthcheck(t *testing.T) {
	var status, hits atomic.Int32
	status.Store(http.StatusOK)
	srv := healthServer(t, false, &status, &hits)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	out, err := runWithEnv(nil, "healthcheck", "--url", srv.URL+"/healthz")
	if err != nil || !strings.Contains(out, "healthy") {
		t.Fatalf("healthy server: %v %q", err, out)
	}
	// The URL derived from FLOWBOX_LISTEN_WEB (unspecified host ->
	// loopback), with plain HTTP configured.
	plainCfg := filepath.Join(t.TempDir(), "flowbox.yaml")
	if err := os.WriteFile(plainCfg, []byte("web:\n  listen: \"127.0.0.1:1\"\n  tls:\n    mode: \"off\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runWithEnv(map[string]string{EnvListenWeb: ":" + port}, "healthcheck", "--config", plainCfg); err != nil {
		t.Fatalf("derived from %s: %v", EnvListenWeb, err)
	}
	// The URL derived from the configuration file.
	cfgFile := filepath.Join(t.TempDir(), "flowbox.yaml")
	if err := os.WriteFile(cfgFile, []byte("web:\n  listen: \"0.0.0.0:"+port+"\"\n  tls:\n    mode: proxy\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runWithEnv(nil, "healthcheck", "--config", cfgFile); err != nil {
		t.Fatalf("derived from --config: %v", err)
	}
	if hits.Load() != 3 {
		t.Fatalf("server saw %d health requests, want 3", hits.Load())
	}

	status.Store(http.StatusServiceUnavailable)
	if _, err := runWithEnv(nil, "healthcheck", "--url", srv.URL+"/healthz"); err == nil || !strings.Contains(err.Error(), "503") || exitCode(err) != 1 {
		t.Fatalf("503: %v", err)
	}
	status.Store(http.StatusOK)
	if _, err := runWithEnv(nil, "healthcheck", "--url", srv.URL+"/nothing"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("404: %v", err)
	}

	// Nothing listening.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	if _, err := runWithEnv(nil, "healthcheck", "--url", "http://"+closed+"/healthz"); err == nil || !strings.Contains(err.Error(), "unhealthy") || exitCode(err) != 1 {
		t.Fatalf("closed port: %v", err)
	}
}

func TestHealthcheckTLS(t *testing.T) {
	var status, hits atomic.Int32
	status.Store(http.StatusOK)
	srv := healthServer(t, true, &status, &hits)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	// An explicit https URL verifies the certificate (httptest's is not
	// trusted) unless --insecure.
	if _, err := runWithEnv(nil, "healthcheck", "--url", srv.URL+"/healthz"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate accepted: %v", err)
	}
	if _, err := runWithEnv(nil, "healthcheck", "--insecure", "--url", srv.URL+"/healthz"); err != nil {
		t.Fatalf("--insecure: %v", err)
	}
	// A configuration with TLS makes the derived URL https, on loopback.
	cfgFile := filepath.Join(t.TempDir(), "flowbox.yaml")
	if err := os.WriteFile(cfgFile, []byte("web:\n  listen: \":"+port+"\"\n  tls:\n    self-signed: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runWithEnv(nil, "healthcheck", "--config", cfgFile)
	if err != nil || !strings.Contains(out, "https://127.0.0.1:"+port+"/healthz") {
		t.Fatalf("derived https: %v %q", err, out)
	}
	// HTTPS is the default: FLOWBOX_LISTEN_WEB alone derives https too.
	out, err = runWithEnv(map[string]string{EnvListenWeb: ":" + port}, "healthcheck")
	if err != nil || !strings.Contains(out, "https://127.0.0.1:"+port+"/healthz") {
		t.Fatalf("derived from the default: %v %q", err, out)
	}
}

func TestHealthcheckUsage(t *testing.T) {
	for _, args := range [][]string{
		{"healthcheck", "extra"},
		{"healthcheck", "--url", "ftp://127.0.0.1/healthz"},
		{"healthcheck", "--url", "127.0.0.1:8080"},
		{"healthcheck", "--timeout", "0s"},
		{"healthcheck", "--bogus"},
	} {
		if _, err := runWithEnv(nil, args...); err == nil || exitCode(err) != 2 {
			t.Errorf("%v: got %v, want a usage error", args, err)
		}
	}
	if _, err := runWithEnv(map[string]string{EnvListenWeb: "no-port"}, "healthcheck"); err == nil || !strings.Contains(err.Error(), "no-port") {
		t.Errorf("bad listen address: %v", err)
	}
	if _, err := runWithEnv(nil, "healthcheck", "--config", filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing config file accepted")
	}
}

func TestHealthURL(t *testing.T) {
	for _, tc := range []struct {
		listen string
		tls    bool
		want   string
	}{
		{":8080", false, "http://127.0.0.1:8080/healthz"},
		{"0.0.0.0:80", false, "http://127.0.0.1:80/healthz"},
		{"[::]:8443", true, "https://[::1]:8443/healthz"},
		{"192.0.2.7:8080", false, "http://192.0.2.7:8080/healthz"},
		{"localhost:9000", true, "https://localhost:9000/healthz"},
	} {
		got, err := healthURL(tc.listen, tc.tls)
		if err != nil || got != tc.want {
			t.Errorf("healthURL(%q, %v) = %q, %v; want %q", tc.listen, tc.tls, got, err, tc.want)
		}
	}
}
