package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/simulator"
)

// freePort returns a loopback port that was free a moment ago for the
// network ("tcp" or "udp").
func freePort(t testing.TB, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startCommand runs a flowbox command in-process until the test ends (or
// stop is called) and returns its output streams.
func startCommand(t *testing.T, args ...string) (stdout, stderr *testutil.SyncBuffer, stop func() error) {
	t.Helper()
	stdout, stderr = &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
	e := &env{stdin: strings.NewReader(""), stdout: stdout, stderr: stderr, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, e, args) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(60 * time.Second):
				err = fmt.Errorf("flowbox %s did not stop within 60s", args[0])
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("flowbox %s: %v\nstderr:\n%s", args[0], err, stderr.String())
		}
	})
	return stdout, stderr, stop
}

// consoleClient is an HTTP client logged in to the web console.
type consoleClient struct {
	t    *testing.T
	base string
	http *http.Client
}

// login logs in through the login form, as a browser would.
func login(t *testing.T, base, user, password string) *consoleClient {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &consoleClient{t: t, base: base, http: &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: consoleTransport("")}}
	resp, err := c.http.PostForm(base+"/login", url.Values{"username": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: status %d", resp.StatusCode)
	}
	var me map[string]any
	if code := c.get("/api/v1/me", &me); code != http.StatusOK {
		t.Fatalf("after login, /api/v1/me answers %d", code)
	}
	return c
}

// get fetches an API path into out and returns the status code.
func (c *consoleClient) get(path string, out any) int {
	c.t.Helper()
	resp, err := c.http.Get(c.base + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("GET %s: %v in %s", path, err, b)
		}
	}
	return resp.StatusCode
}

// apiRouter is the part of GET /api/v1/routers the tests read.
type apiRouter struct {
	ID          int64   `json:"id"`
	Name        string  `json:"name"`
	Version     string  `json:"version"`
	Status      string  `json:"status"`
	State       string  `json:"state"`
	FlowsPerSec float64 `json:"flows_per_sec"`
}

// apiTop is the part of GET /api/v1/top/{dimension} the tests read.
type apiTop struct {
	Resolution string `json:"resolution"`
	Rows       []struct {
		Key   string `json:"key"`
		Name  string `json:"name"`
		Bytes uint64 `json:"bytes"`
	} `json:"rows"`
}

// consoleTransport talks to a console on loopback. Over HTTPS it accepts
// the certificate whose SHA-256 fingerprint is pin (as `flowbox
// web-fingerprint` prints it), or any certificate when pin is empty (the
// console's own self-signed one; startServeInProcess has pinned it).
func consoleTransport(pin string) *http.Transport {
	tc := &tls.Config{InsecureSkipVerify: true}
	if pin != "" {
		tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			sum := sha256.Sum256(raw[0])
			got := strings.ToUpper(hex.EncodeToString(sum[:]))
			if want := strings.ReplaceAll(pin, ":", ""); got != want {
				return fmt.Errorf("console certificate %s, want %s", got, want)
			}
			return nil
		}
	}
	return &http.Transport{TLSClientConfig: tc, Proxy: nil}
}

// servedApp is a `flowbox serve` started in-process by startServeInProcess.
type servedApp struct {
	// base is the console's URL, https://webAddr.
	base                      string
	cfgPath, dataDir, webAddr string
	nfPort                    int
	stderr                    *testutil.SyncBuffer
	// stop stops serve (it stops at the test's end otherwise).
	stop func() error
}

// startServeInProcess writes a configuration (loopback ports, admin password
// e2e-admin-pw, collectorExtra added under collector:, e.g. "  batch-age:
// 50ms\n", sections added at the top level, e.g. "alerts:\n  ...\n"),
// starts `flowbox serve` with it until the test ends, and waits for the
// console to answer.
func startServeInProcess(t *testing.T, collectorExtra string, sections ...string) *servedApp {
	t.Helper()
	dir := t.TempDir()
	a := &servedApp{dataDir: filepath.Join(dir, "data"), cfgPath: filepath.Join(dir, "flowbox.yaml"),
		webAddr: "127.0.0.1:" + strconv.Itoa(freePort(t, "tcp")), nfPort: freePort(t, "udp")}
	cfg := fmt.Sprintf("data-dir: %s\ncollector:\n  listen: [\"127.0.0.1:%d\"]\n%sweb:\n  listen: %q\n  admin-password: e2e-admin-pw\n",
		a.dataDir, a.nfPort, collectorExtra, a.webAddr)
	extra := strings.Join(sections, "")
	if !strings.Contains(extra, "domains:") {
		extra += "domains:\n  reverse:\n    enabled: false\n" // tests talk to loopback only
	}
	cfg += extra
	if err := os.WriteFile(a.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	a.base = "https://" + a.webAddr
	return serveAgain(t, a)
}

// serveAgain starts `flowbox serve` with a's configuration (after a.stop)
// until the test ends, and waits for the console to answer.
func serveAgain(t *testing.T, a *servedApp) *servedApp {
	t.Helper()
	a = &servedApp{base: a.base, cfgPath: a.cfgPath, dataDir: a.dataDir, webAddr: a.webAddr, nfPort: a.nfPort}
	_, a.stderr, a.stop = startCommand(t, "serve", "--config", a.cfgPath)
	// serve generates its self-signed certificate at start: the console
	// must answer with the one `flowbox web-fingerprint` names.
	var pin string
	testutil.WaitFor(t, 30*time.Second, "the console's certificate", func() (bool, string) {
		out, err := runWithEnv(nil, "web-fingerprint", "--config", a.cfgPath)
		pin = strings.TrimSpace(out)
		return err == nil, fmt.Sprint(err) + a.stderr.String()
	})
	client := &http.Client{Transport: consoleTransport(pin), Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	testutil.WaitFor(t, 30*time.Second, "the console", func() (bool, string) {
		resp, err := client.Get(a.base + "/healthz")
		if err != nil {
			return false, err.Error() + a.stderr.String()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return a
}

// onboardCGNATRouter starts a simulated RouterOS 7 CGNAT router (300
// flows/s, seed) until the test ends and onboards it into a's serve as
// tower1 with `flowbox router add`; it returns the fleet.
func onboardCGNATRouter(t *testing.T, a *servedApp, seed uint64) *simulator.Fleet {
	t.Helper()
	fl, err := simulator.New(simulator.Config{Routers: 1, Versions: "7", Password: "router-pw", Rate: 300, Seed: seed},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := fl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fl.Stop)
	rt := fl.Routers()[0]
	pwFile := filepath.Join(filepath.Dir(a.cfgPath), "router.pw")
	if err := os.WriteFile(pwFile, []byte("router-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errOut testutil.SyncBuffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	if err := run(ctx, e, []string{"router", "add", "--tls=false", "--config", a.cfgPath, "--name", "tower1",
		"--address", rt.APIAddr(), "--user", rt.Username, "--password-file", pwFile, "--timeout", "60s"}); err != nil {
		t.Fatalf("router add: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	return fl
}
