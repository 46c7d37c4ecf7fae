package web

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

// testPassword is the console password of the test user "admin".
const testPassword = "correct horse battery"

// testPasswordHash hashes testPassword once for the whole package: bcrypt
// is slow on purpose, and more so under the race detector.
var testPasswordHash = sync.OnceValues(func() (string, error) { return HashPassword(testPassword) })

// env is a console on httptest with a real store (users, tokens) in a
// temporary directory, the in-memory fleet and collector, and a querier.
type env struct {
	t      testing.TB
	srv    *Server
	ts     *httptest.Server
	st     *storetest.Store
	prov   *fakeProv
	coll   *fakeCollector
	reg    *prometheus.Registry
	now    time.Time
	client *http.Client
}

type envOption func(*Config, *Deps)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// openTestStore opens a real store in a temporary directory.
func openTestStore(t testing.TB) *storetest.Store {
	t.Helper()
	return storetest.OpenFor(t, t.TempDir(), store.DefaultConfig(), testLogger(t), prometheus.NewRegistry())
}

// newEnv builds a console on a fresh store. The store's clock is the real
// one, so the console's (e.now) starts at the real time too.
func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, st: openTestStore(t), coll: &fakeCollector{}, reg: prometheus.NewRegistry(),
		now: time.Now().Truncate(time.Second)}
	e.prov = &fakeProv{st: e.st}
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.TLS.Mode = TLSModeOff // the test server is plain HTTP; HTTPS tests set the mode
	deps := Deps{
		Store: e.st, Routers: e.st, Provisioner: e.prov, Collector: e.coll, Users: e.st,
		Gatherer: e.reg, Registerer: e.reg, Logger: testLogger(t), DataDir: t.TempDir(),
		Settings: Settings{CollectorListen: []string{":2055", ":4739"}, RawRetention: Duration(48 * time.Hour)},
		Now:      func() time.Time { return e.now },
	}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.srv = srv
	e.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(e.ts.Close)
	jar, _ := cookiejar.New(nil)
	e.client = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return e
}

// addRouter stores a router.
func (e *env) addRouter(r store.Router) store.Router {
	e.t.Helper()
	if r.Username == "" {
		r.Username = "admin"
	}
	if err := e.st.AddRouter(context.Background(), &r); err != nil {
		e.t.Fatal(err)
	}
	return r
}

// routerID returns the id of the stored router called name.
func (e *env) routerID(name string) int64 {
	e.t.Helper()
	routers, err := e.st.ListRouters(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range routers {
		if r.Name == name {
			return r.ID
		}
	}
	e.t.Fatalf("no router %q", name)
	return 0
}

// ingest writes flows through the store's writer and waits until they are
// stored (the writer flushes flows and rollups when it stops). It can be
// called once per env.
func (e *env) ingest(flows []store.Flow) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.st.Run(ctx) }()
	for i := 0; i < len(flows); i += 1000 {
		if err := e.st.InsertFlows(ctx, flows[i:min(i+1000, len(flows))]); err != nil {
			e.t.Fatal(err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		e.t.Fatal(err)
	}
}

// createAdmin adds the user admin with testPassword.
func (e *env) createAdmin() {
	e.t.Helper()
	hash, err := testPasswordHash()
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.CreateUser(context.Background(), "admin", hash, store.RoleAdmin); err != nil {
		e.t.Fatal(err)
	}
}

// login creates the admin and logs the env's client in.
func (e *env) login() {
	e.t.Helper()
	e.createAdmin()
	res, err := e.client.PostForm(e.ts.URL+"/login", url.Values{"username": {"admin"}, "password": {testPassword}, "next": {"/"}})
	if err != nil {
		e.t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("login: status %d, want 303", res.StatusCode)
	}
}

// do sends a request with the env's client (its session cookie) and returns
// the status and body.
func (e *env) do(method, path string, body any, hdr ...string) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.StatusCode, b
}

// getJSON GETs path, expects 200 and decodes the answer into v.
func (e *env) getJSON(path string, v any) {
	e.t.Helper()
	code, b := e.do(http.MethodGet, path, nil)
	if code != http.StatusOK {
		e.t.Fatalf("GET %s: status %d: %s", path, code, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		e.t.Fatalf("GET %s: %v in %s", path, err, b)
	}
}

func TestNewRejectsMissingDeps(t *testing.T) {
	_, err := New(DefaultConfig(), Deps{})
	if err == nil || !strings.Contains(err.Error(), "Store") || !strings.Contains(err.Error(), "Users") {
		t.Fatalf("New with no deps: %v, want the missing dependencies named", err)
	}
	cfg := DefaultConfig()
	cfg.Listen = "nonsense"
	if _, err := New(cfg, Deps{}); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("New with a bad listen: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"listen", func(c *Config) { c.Listen = "8080" }, "listen:"},
		{"tls pair", func(c *Config) { c.TLS.Cert = "a.pem" }, "tls: cert and key"},
		{"tls both", func(c *Config) { c.TLS = TLSConfig{Cert: "a", Key: "b", SelfSigned: true} }, "tls.self-signed"},
		{"short admin password", func(c *Config) { c.AdminPassword = "short" }, "admin-password: must be at least 8"},
		{"password and file", func(c *Config) { c.AdminPassword = "longenough"; c.AdminPasswordFile = "/x" }, "admin-password-file"},
		{"session ttl", func(c *Config) { c.SessionTTL = time.Second }, "session-ttl"},
		{"max sessions", func(c *Config) { c.MaxSessions = 0 }, "max-sessions"},
		{"login attempts", func(c *Config) { c.LoginAttempts = 0 }, "login-attempts"},
		{"login window", func(c *Config) { c.LoginWindow = 0 }, "login-window"},
		{"tracked ips", func(c *Config) { c.LoginTrackedIPs = 0 }, "login-tracked-ips"},
		{"stale after", func(c *Config) { c.StaleAfter = time.Second }, "stale-after"},
		{"shutdown", func(c *Config) { c.ShutdownTimeout = 0 }, "shutdown-timeout"},
		{"dev assets", func(c *Config) { c.DevAssetsDir = "/nonexistent/dir" }, "dev-assets-dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	c.ApplyEnv(func(k string) string {
		if k == EnvAdminPassword {
			return "from-the-env"
		}
		return ""
	})
	if c.AdminPassword != "from-the-env" || c.Redacted().AdminPassword != "<redacted>" {
		t.Fatalf("ApplyEnv/Redacted: %q %q", c.AdminPassword, c.Redacted().AdminPassword)
	}
}

func TestAdminPasswordFile(t *testing.T) {
	pwFile := t.TempDir() + "/pw"
	if err := os.WriteFile(pwFile, []byte("from-a-file-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config, d *Deps) { c.AdminPasswordFile = pwFile })
	if err := e.srv.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, err := e.client.PostForm(e.ts.URL+"/login", url.Values{"username": {"admin"}, "password": {"from-a-file-123"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("login with the password from the file: %d", res.StatusCode)
	}
}

// sqliteOnly skips a test of a behaviour only the SQLite flow store has
// when the tests run on ClickHouse (storetest.BackendEnv), saying why.
func sqliteOnly(t testing.TB, why string) {
	t.Helper()
	if storetest.OnClickHouse() {
		t.Skip("SQLite store only: " + why)
	}
}

// onClickHouse reports whether the tests run on the ClickHouse store.
func onClickHouse() bool { return storetest.OnClickHouse() }
