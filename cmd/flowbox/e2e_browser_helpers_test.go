package main

import (
	"context"
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
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/flowbox/flowbox/internal/browsertest"
	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/simulator"
	fbweb "github.com/flowbox/flowbox/web"
)

// e2eAdminPassword is the console password of the in-process app.
const e2eAdminPassword = "e2e-admin-password"

// e2eRouterPassword is the API password of the simulated routers.
const e2eRouterPassword = "e2e-router-secret"

// e2eApp is the whole flowbox graph of `flowbox serve` (buildApp, run)
// running in-process on loopback.
type e2eApp struct {
	*app
	// base is the console's URL ("http://127.0.0.1:port").
	base string
	// netflowPort is the collector's UDP port, the one provisioning points
	// routers at.
	netflowPort int
}

// startE2EApp builds and runs flowbox with a temporary data directory, the
// collector and the console on free loopback ports, and the admin password
// preset. The app's log goes to logw. It is stopped when the test ends.
func startE2EApp(t *testing.T, logw io.Writer) *e2eApp {
	t.Helper()
	udp, web := freePort(t, "udp"), freePort(t, "tcp")
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Log.Level = "debug"
	cfg.Collector.Listen = []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(udp))}
	cfg.Web.Listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(web))
	cfg.Web.AdminPassword = e2eAdminPassword
	// Plain HTTP, explicitly: the browser tests drive the console on
	// loopback (startServeInProcess tests the HTTPS default).
	cfg.Web.TLS.Mode = fbweb.TLSModeOff
	cfg.Provision.VerifyTimeout = 30 * time.Second
	cfg.reconcile()
	if cfg.Provision.CollectorPort != udp {
		t.Fatalf("provisioning points routers at port %d, the collector listens on %d", cfg.Provision.CollectorPort, udp)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("invalid config: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: cfg.Log.slogLevel()}))
	ctx, cancel := context.WithCancel(context.Background())
	a, err := buildApp(ctx, cfg, logger)
	if err != nil {
		cancel()
		t.Fatalf("cannot build the app: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("app stopped with: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("app did not stop within 30 s")
		}
		if err := a.close(); err != nil {
			t.Errorf("cannot close the app: %v", err)
		}
	})
	select {
	case <-a.collector.Ready():
	case err := <-done:
		t.Fatalf("app stopped at start: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the collector is not ready after 20 s")
	}
	addrs := a.collector.Addrs()
	if len(addrs) != 1 || addrs[0].(*net.UDPAddr).Port != udp {
		t.Fatalf("the collector is bound to %v, want port %d", addrs, udp)
	}
	e := &e2eApp{app: a, base: "http://" + cfg.Web.Listen, netflowPort: udp}
	testutil.WaitFor(t, 20*time.Second, "the console on "+e.base, func() (bool, string) {
		res, err := http.Get(e.base + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK, res.Status
	})
	return e
}

// e2eAPI is a logged-in client of the console's JSON API.
type e2eAPI struct {
	t      *testing.T
	base   string
	client *http.Client
}

// apiClient logs in through the login form and returns the client.
func (e *e2eApp) apiClient(t *testing.T) *e2eAPI {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.PostForm(e.base+"/login", url.Values{"username": {"admin"}, "password": {e2eAdminPassword}})
	if err != nil {
		t.Fatalf("cannot log in: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("log in: status %d, want 303", res.StatusCode)
	}
	return &e2eAPI{t: t, base: e.base, client: c}
}

// get decodes GET /api/v1{path} into v.
func (c *e2eAPI) get(path string, v any) error {
	res, err := c.client.Get(c.base + "/api/v1" + path)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, res.StatusCode, b)
	}
	return json.Unmarshal(b, v)
}

// startE2EFleet starts n simulated routers with a flat rate (no daily
// curve), stopped when the test ends.
func startE2EFleet(t *testing.T, n int, rate float64, logger *slog.Logger) *simulator.Fleet {
	t.Helper()
	fl, err := simulator.New(simulator.Config{Routers: n, Versions: "mixed", Password: e2eRouterPassword,
		Rate: rate, Subscribers: 40, Seed: 11}, logger)
	if err != nil {
		t.Fatalf("cannot build the fleet: %v", err)
	}
	if err := fl.Start(); err != nil {
		t.Fatalf("cannot start the fleet: %v", err)
	}
	t.Cleanup(fl.Stop)
	return fl
}

// e2eBrowser is a headless Chromium tab that records the page's uncaught
// exceptions and console errors.
type e2eBrowser struct {
	ctx context.Context
	// art is where a failing step saves a screenshot of the page.
	art string
	mu  sync.Mutex
	// errs are the page's JavaScript errors so far.
	errs []string
}

// newE2EBrowser starts Chromium (browsertest.Start) with a tab that records
// the page's JavaScript errors.
func newE2EBrowser(t *testing.T, timeout time.Duration, art string) *e2eBrowser {
	t.Helper()
	b := &e2eBrowser{art: art}
	b.ctx = browsertest.Start(t, timeout, b.record)
	return b
}

// record keeps the page's uncaught exceptions and console errors. It runs
// on the tab's reading goroutine, so it only appends under the lock.
func (b *e2eBrowser) record(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg = ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			msg += " " + ev.ExceptionDetails.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError {
			return
		}
		for _, a := range ev.Args {
			msg += " " + string(a.Value) + a.Description
		}
	default:
		return
	}
	b.mu.Lock()
	b.errs = append(b.errs, msg)
	b.mu.Unlock()
}

// jsErrors returns the JavaScript errors recorded so far.
func (b *e2eBrowser) jsErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

// do runs actions, failing the test with what was being done.
func (b *e2eBrowser) do(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.failed(t)
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression.
func e2eEval[T any](t *testing.T, b *e2eBrowser, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS polls a JavaScript predicate until it is true.
func (b *e2eBrowser) waitJS(t *testing.T, what, expr string, timeout time.Duration) {
	t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout),
		chromedp.WithPollingInterval(200*time.Millisecond))); err != nil {
		b.failed(t)
		t.Fatalf("%s (waited %v for %s): %v", what, timeout, expr, err)
	}
}

// failed saves the page as it is when a step fails, as failed.png, with
// its HTML as failed.html.
func (b *e2eBrowser) failed(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		_ = os.WriteFile(filepath.Join(b.art, "failed.png"), buf, 0o644)
	}
	if html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`)); err == nil {
		_ = os.WriteFile(filepath.Join(b.art, "failed.html"), []byte(html), 0o644)
	}
	t.Logf("the page at the failure: %s", filepath.Join(b.art, "failed.png"))
}

// screenshot saves a full-page PNG named name.png in dir.
func (b *e2eBrowser) screenshot(t *testing.T, dir, name string) {
	t.Helper()
	if err := browsertest.Screenshot(b.ctx, dir, name); err != nil {
		t.Fatal(err)
	}
}
