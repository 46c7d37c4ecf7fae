package web

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
)

// serveAny runs the env's server on a loopback listener until the test
// ends and returns its address at once (serveOn waits for plain HTTP).
func serveAny(t *testing.T, e *env) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestServeHTTPSByDefault: the default configuration serves HTTPS with the
// generated certificate, logs its fingerprint, marks the session cookie
// Secure and does not answer plain HTTP.
func TestServeHTTPSByDefault(t *testing.T) {
	var logs testutil.SyncBuffer
	dataDir := t.TempDir()
	e := newEnv(t, func(c *Config, d *Deps) {
		*c = DefaultConfig()
		c.Listen = "127.0.0.1:0"
		d.DataDir = dataDir
		d.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	e.createAdmin()
	addr := serveAny(t, e)
	client := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	var res *http.Response
	testutil.WaitFor(t, 10*time.Second, "the HTTPS console", func() (bool, string) {
		var err error
		res, err = client.PostForm("https://"+addr+"/login", url.Values{"username": {"admin"}, "password": {testPassword}})
		return err == nil, fmt.Sprint(err)
	})
	res.Body.Close()
	if res.TLS == nil || res.StatusCode != http.StatusSeeOther {
		t.Fatalf("login over HTTPS: %d, TLS %v", res.StatusCode, res.TLS != nil)
	}
	var secure bool
	for _, c := range res.Cookies() {
		if c.Name == sessionCookie {
			secure = c.Secure
		}
	}
	if !secure {
		t.Error("the session cookie over HTTPS is not Secure")
	}
	sum := sha256.Sum256(res.TLS.PeerCertificates[0].Raw)
	want := strings.ToUpper(fmt.Sprintf("%x", sum[:2])) // the first pair, "AB:"
	fp, err := CertFingerprint(filepath.Join(dataDir, selfSignedCert))
	if err != nil {
		t.Fatal(err)
	}
	if len(fp) != 95 || !strings.HasPrefix(fp, want[:2]+":"+want[2:]) {
		t.Errorf("fingerprint %s does not match the served certificate (%x)", fp, sum)
	}
	if !strings.Contains(logs.String(), "tls_sha256="+fp) || !strings.Contains(logs.String(), "url=https://") {
		t.Errorf("the start log does not show the HTTPS URL and fingerprint %s:\n%s", fp, logs.String())
	}
	// Plain HTTP gets no console.
	if res, err := http.Get("http://" + addr + "/healthz"); err == nil {
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered 200 on the HTTPS console")
		}
	}
}

// TestServePlainHTTPWhenConfigured: tls.mode off serves plain HTTP with
// ordinary cookies; tls.mode proxy serves plain HTTP to a TLS proxy and
// marks the cookie Secure.
func TestServePlainHTTPWhenConfigured(t *testing.T) {
	for _, tc := range []struct {
		mode   string
		secure bool
	}{{TLSModeOff, false}, {TLSModeProxy, true}} {
		t.Run(tc.mode, func(t *testing.T) {
			e := newEnv(t, func(c *Config, d *Deps) { c.TLS.Mode = tc.mode })
			e.createAdmin()
			addr := serveAny(t, e)
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			var res *http.Response
			testutil.WaitFor(t, 10*time.Second, "the HTTP console", func() (bool, string) {
				var err error
				res, err = client.PostForm("http://"+addr+"/login", url.Values{"username": {"admin"}, "password": {testPassword}})
				return err == nil, fmt.Sprint(err)
			})
			res.Body.Close()
			if res.StatusCode != http.StatusSeeOther {
				t.Fatalf("login over HTTP: %d", res.StatusCode)
			}
			found := false
			for _, c := range res.Cookies() {
				if c.Name == sessionCookie {
					found = true
					if c.Secure != tc.secure {
						t.Errorf("session cookie Secure = %v, want %v", c.Secure, tc.secure)
					}
				}
			}
			if !found {
				t.Error("no session cookie")
			}
		})
	}
}

func TestTLSModeValidation(t *testing.T) {
	for _, tc := range []struct {
		tls  TLSConfig
		want string
	}{
		{TLSConfig{Mode: "yes"}, `tls.mode: "yes" is not https, proxy or off`},
		{TLSConfig{Mode: TLSModeOff, Cert: "a", Key: "b"}, "tls: cert, key and self-signed need mode https, not off"},
		{TLSConfig{Mode: TLSModeProxy, SelfSigned: true}, "tls: cert, key and self-signed need mode https, not proxy"},
	} {
		c := DefaultConfig()
		c.TLS = tc.tls
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.tls, err, tc.want)
		}
	}
	if _, _, err := (TLSConfig{Mode: TLSModeHTTPS}).CertFiles(""); err == nil || !strings.Contains(err.Error(), "tls.mode off") {
		t.Errorf("self-signed without a data directory: %v", err)
	}
}
