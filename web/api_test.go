package web

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

// apiRoutes lists every (method, concrete path, template) of the API by
// walking the router.
func apiRoutes(t *testing.T, s *Server) [][3]string {
	t.Helper()
	var out [][3]string
	err := s.router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tmpl, err := route.GetPathTemplate()
		if err != nil || !strings.HasPrefix(tmpl, "/api/") {
			return nil
		}
		methods, err := route.GetMethods()
		if err != nil {
			if strings.HasPrefix(tmpl, "/api/v1") && tmpl != "/api/v1" {
				return fmt.Errorf("route %s has no Methods", tmpl)
			}
			return nil
		}
		path := strings.NewReplacer("{id}", "1", "{dimension}", "local", "{name}", "admin").Replace(tmpl)
		for _, m := range methods {
			out = append(out, [3]string{m, path, tmpl})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 20 {
		t.Fatalf("walked only %d API routes", len(out))
	}
	return out
}

func TestEveryAPIRouteRequiresAuth(t *testing.T) {
	e := newEnv(t)
	e.createAdmin()
	for _, rt := range apiRoutes(t, e.srv) {
		for _, auth := range []string{"", "Bearer fbx_not-a-real-token", "Basic YWRtaW46eA=="} {
			var hdr []string
			if auth != "" {
				hdr = []string{"Authorization", auth}
			}
			code, body := e.do(rt[0], rt[1], nil, hdr...)
			if code != http.StatusUnauthorized {
				t.Errorf("%s %s with %q: status %d, want 401", rt[0], rt[1], auth, code)
				continue
			}
			var eb errorBody
			if err := json.Unmarshal(body, &eb); err != nil || eb.Error == "" {
				t.Errorf("%s %s: body %s is not a JSON error", rt[0], rt[1], body)
			}
		}
	}
}

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	e := newEnv(t)
	e.login()
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	e.getJSON("/api/v1/openapi.json", &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	seen := map[string]bool{}
	for _, rt := range apiRoutes(t, e.srv) {
		p := strings.TrimPrefix(rt[2], "/api/v1")
		ops, ok := doc.Paths[p]
		if !ok {
			t.Errorf("route %s is not in the OpenAPI document", p)
			continue
		}
		if _, ok := ops[strings.ToLower(rt[0])]; !ok {
			t.Errorf("route %s %s is not in the OpenAPI document", rt[0], p)
		}
		seen[strings.ToLower(rt[0])+" "+p] = true
	}
	for p, ops := range doc.Paths {
		for m := range ops {
			if !seen[m+" "+p] {
				t.Errorf("the OpenAPI document describes %s %s, which is not routed", m, p)
			}
		}
	}
}

func TestCSRFRejectsCrossOriginWrites(t *testing.T) {
	e := newEnv(t)
	e.login()
	for _, hdr := range [][]string{
		{"Origin", "http://evil.example"},
		{"Sec-Fetch-Site", "cross-site"},
	} {
		code, body := e.do(http.MethodPost, "/api/v1/tokens", map[string]string{"name": "x"}, hdr...)
		if code != http.StatusForbidden || !strings.Contains(string(body), "cross-origin") {
			t.Errorf("POST /api/v1/tokens with %v: %d %s, want 403", hdr, code, body)
		}
		code, _ = e.do(http.MethodDelete, "/api/v1/users/admin", nil, hdr...)
		if code != http.StatusForbidden {
			t.Errorf("DELETE with %v: %d, want 403", hdr, code)
		}
	}
	// A cross-site login form post is refused too (login CSRF).
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/login", strings.NewReader("username=admin&password="+url.QueryEscape(testPassword)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site login: %d, want 403", res.StatusCode)
	}
	// Same-origin browser requests and reads pass.
	u, _ := url.Parse(e.ts.URL)
	code, body := e.do(http.MethodPost, "/api/v1/tokens", map[string]string{"name": "same-origin"}, "Origin", "http://"+u.Host, "Sec-Fetch-Site", "same-origin")
	if code != http.StatusCreated {
		t.Errorf("same-origin POST: %d %s", code, body)
	}
	if code, _ := e.do(http.MethodGet, "/api/v1/me", nil, "Sec-Fetch-Site", "cross-site"); code != http.StatusOK {
		t.Errorf("cross-site GET: %d, want 200 (reads are not state-changing)", code)
	}
}

func TestSetupThenLogin(t *testing.T) {
	e := newEnv(t)
	// The first start makes the one-time setup token (in the data
	// directory, mode 0600).
	if err := e.srv.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(e.srv.deps.DataDir, SetupTokenFile)
	b, err := os.ReadFile(tokenFile)
	if st, serr := os.Stat(tokenFile); err != nil || serr != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("setup token file: %v %v", err, serr)
	}
	token := strings.TrimSpace(string(b))
	// No user: every page leads to the setup page.
	for _, p := range []string{"/", "/flows", "/login"} {
		res, err := e.client.Get(e.ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/setup" {
			t.Fatalf("GET %s before setup: %d %s", p, res.StatusCode, res.Header.Get("Location"))
		}
	}
	post := func(v url.Values) *http.Response {
		res, err := e.client.PostForm(e.ts.URL+"/setup", v)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	// Without the setup token, or with a wrong one, nobody claims it.
	for _, tok := range []string{"", "0123456789abcdef0123456789abcdef"} {
		if res := post(url.Values{"token": {tok}, "username": {"evil"}, "password": {"evilevil1"}, "confirm": {"evilevil1"}}); res.StatusCode != http.StatusForbidden {
			t.Fatalf("setup with token %q: %d, want 403", tok, res.StatusCode)
		}
	}
	if n, _ := e.st.CountUsers(context.Background()); n != 0 {
		t.Fatalf("%d users after setups without the token", n)
	}
	if res := post(url.Values{"token": {token}, "username": {"admin"}, "password": {"longenough1"}, "confirm": {"different1"}}); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("mismatched passwords: %d", res.StatusCode)
	}
	if res := post(url.Values{"token": {token}, "username": {"admin"}, "password": {"short"}, "confirm": {"short"}}); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("short password: %d", res.StatusCode)
	}
	if res := post(url.Values{"token": {token}, "username": {"admin"}, "password": {"longenough1"}, "confirm": {"longenough1"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("setup: %d", res.StatusCode)
	}
	if _, err := os.Stat(tokenFile); !os.IsNotExist(err) {
		t.Errorf("the setup token file outlived the setup: %v", err)
	}
	// The setup logged us in.
	var me MeView
	e.getJSON("/api/v1/me", &me)
	if me.User != "admin" || me.Token {
		t.Fatalf("me after setup: %+v", me)
	}
	// A second setup is refused: it does not replace the password.
	other, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/setup", strings.NewReader("username=evil&password=evilevil1&confirm=evilevil1"))
	other.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := (&http.Client{CheckRedirect: e.client.CheckRedirect}).Do(other)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login" {
		t.Fatalf("second setup: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if n, _ := e.st.CountUsers(context.Background()); n != 1 {
		t.Fatalf("%d users after a second setup, want 1", n)
	}
	// Logout ends the session.
	res, err = e.client.PostForm(e.ts.URL+"/logout", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if code, _ := e.do(http.MethodGet, "/api/v1/me", nil); code != http.StatusUnauthorized {
		t.Fatalf("after logout: %d", code)
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	e := newEnv(t)
	e.createAdmin()
	res, err := e.client.PostForm(e.ts.URL+"/login", url.Values{"username": {"admin"}, "password": {testPassword}, "next": {"//evil.example/"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if loc := res.Header.Get("Location"); loc != "/" {
		t.Errorf("open redirect: Location %q", loc)
	}
	var c *http.Cookie
	for _, k := range res.Cookies() {
		if k.Name == sessionCookie {
			c = k
		}
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Lax, not Secure without TLS", c)
	}
}

func TestBootstrapFromConfig(t *testing.T) {
	e := newEnv(t, func(c *Config, d *Deps) { c.AdminPassword = "unattended-pw" })
	if err := e.srv.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Bootstrap(context.Background()); err != nil {
		t.Fatalf("second bootstrap: %v", err)
	}
	u, err := e.st.UserByName(context.Background(), "admin")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(u.PasswordHash, "unattended") || !strings.HasPrefix(u.PasswordHash, "$2") {
		t.Fatalf("stored password is not a bcrypt hash: %q", u.PasswordHash)
	}
	res, err := e.client.PostForm(e.ts.URL+"/login", url.Values{"username": {"admin"}, "password": {"unattended-pw"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("login with the configured password: %d", res.StatusCode)
	}
}

func TestLoginRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config, d *Deps) { c.LoginAttempts = 3 })
	e.createAdmin()
	try := func(pw string) int {
		res, err := e.client.PostForm(e.ts.URL+"/login", url.Values{"username": {"admin"}, "password": {pw}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for i := 0; i < 3; i++ {
		if code := try("wrong password"); code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d, want 401", i, code)
		}
	}
	// Even the right password is refused until the window passes.
	if code := try(testPassword); code != http.StatusTooManyRequests {
		t.Fatalf("attempt 4: %d, want 429", code)
	}
	e.now = e.now.Add(time.Minute)
	if code := try(testPassword); code != http.StatusSeeOther {
		t.Fatalf("after the window: %d, want 303", code)
	}
	if got := counterValue(t, e, "flowbox_web_logins_total", "rate_limited"); got != 1 {
		t.Errorf("rate_limited logins = %v, want 1", got)
	}
}

func TestLimiterBoundAndEviction(t *testing.T) {
	evicted := 0
	l := newLimiter(3, 1, time.Minute, func() { evicted++ })
	now := time.Unix(1000, 0)
	for i := 0; i < 5; i++ {
		if ok, _ := l.allow(fmt.Sprintf("192.0.2.%d", i), now); !ok {
			t.Fatalf("first attempt of ip %d refused", i)
		}
	}
	if l.size() != 3 || evicted != 2 {
		t.Fatalf("size %d, evicted %d; want 3 and 2", l.size(), evicted)
	}
	if ok, retry := l.allow("192.0.2.4", now.Add(time.Second)); ok || retry != 59*time.Second {
		t.Fatalf("second attempt: ok %v retry %v", ok, retry)
	}
	// The evicted IP starts over (the bound trades memory for leniency).
	if ok, _ := l.allow("192.0.2.0", now); !ok {
		t.Fatal("evicted ip refused")
	}
}

func TestSessionsBoundAndExpiry(t *testing.T) {
	evicted := 0
	st := openTestStore(t)
	for _, u := range []string{"a", "b", "c"} {
		if _, err := st.CreateUser(context.Background(), u, "x", store.RoleViewer); err != nil {
			t.Fatal(err)
		}
	}
	s := newSessions(2, time.Hour, func() { evicted++ }, st, func() { t.Error("session store write failed") }, testLogger(t))
	now := time.Unix(1000, 0)
	a, _ := s.create("a", now)
	b, _ := s.create("b", now.Add(time.Second))
	c, _ := s.create("c", now.Add(2*time.Second))
	if _, ok := s.lookup(a, now); ok || evicted != 1 {
		t.Fatalf("oldest session kept beyond the bound (evicted %d)", evicted)
	}
	// The evicted session is gone from the store too.
	if stored, err := st.LiveSessions(context.Background(), now, 10); err != nil || len(stored) != 2 ||
		stored[0].Hash != HashToken(b) || stored[1].Hash != HashToken(c) {
		t.Fatalf("stored sessions %+v (%v), want b and c", stored, err)
	}
	if u, ok := s.lookup(b, now); !ok || u != "b" {
		t.Fatal("session b lost")
	}
	if _, ok := s.lookup(c, now.Add(2*time.Second+time.Hour)); ok {
		t.Fatal("expired session accepted")
	}
	s.deleteUser("b", "")
	if s.count() != 0 {
		t.Fatalf("%d sessions left", s.count())
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.login()
	code, body := e.do(http.MethodPost, "/api/v1/tokens", map[string]string{"name": "backup-script"})
	if code != http.StatusCreated {
		t.Fatalf("create token: %d %s", code, body)
	}
	var tv TokenView
	if err := json.Unmarshal(body, &tv); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tv.Token, TokenPrefix) || !strings.HasPrefix(tv.Token, tv.Prefix) {
		t.Fatalf("token %+v", tv)
	}
	if code, _ := e.do(http.MethodPost, "/api/v1/tokens", map[string]string{"name": "backup-script"}); code != http.StatusConflict {
		t.Fatalf("duplicate token name: %d, want 409", code)
	}
	// The token works without the session.
	bearer := func(path string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, e.ts.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tv.Token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	code, body = bearer("/api/v1/me")
	if code != http.StatusOK || !strings.Contains(string(body), `"token:backup-script"`) {
		t.Fatalf("bearer /me: %d %s", code, body)
	}
	// The list never shows the secret or its hash.
	code, body = e.do(http.MethodGet, "/api/v1/tokens", nil)
	if code != http.StatusOK || strings.Contains(string(body), tv.Token) || strings.Contains(string(body), HashToken(tv.Token)) {
		t.Fatalf("token list leaks the secret: %s", body)
	}
	var list []TokenView
	_ = json.Unmarshal(body, &list)
	if len(list) != 1 || list[0].LastUsed == nil {
		t.Fatalf("token list %s: want one token with last_used set", body)
	}
	// Revoked, it stops working.
	if code, _ := e.do(http.MethodDelete, fmt.Sprintf("/api/v1/tokens/%d", tv.ID), nil); code != http.StatusNoContent {
		t.Fatalf("revoke: %d", code)
	}
	if code, _ := bearer("/api/v1/me"); code != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d", code)
	}
	if code, _ := e.do(http.MethodDelete, fmt.Sprintf("/api/v1/tokens/%d", tv.ID), nil); code != http.StatusNotFound {
		t.Fatalf("revoke twice: %d", code)
	}
}

func TestUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.login()
	if code, b := e.do(http.MethodPost, "/api/v1/users", map[string]string{"name": "noc", "password": "noc-password"}); code != http.StatusCreated {
		t.Fatalf("create user: %d %s", code, b)
	}
	if code, _ := e.do(http.MethodPost, "/api/v1/users", map[string]string{"name": "noc", "password": "noc-password"}); code != http.StatusConflict {
		t.Fatalf("duplicate user: %d", code)
	}
	var users []UserView
	e.getJSON("/api/v1/users", &users)
	if len(users) != 2 || users[0].Name != "admin" || users[1].Name != "noc" {
		t.Fatalf("users %+v", users)
	}
	// A second client logged in as noc loses its session when the password changes.
	noc := newClient(t)
	res, err := noc.PostForm(e.ts.URL+"/login", url.Values{"username": {"noc"}, "password": {"noc-password"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if code, _ := e.do(http.MethodPut, "/api/v1/users/noc/password", map[string]string{"password": "new-noc-password"}); code != http.StatusNoContent {
		t.Fatalf("set password: %d", code)
	}
	res, err = noc.Get(e.ts.URL + "/api/v1/me")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("old session after a password change: %d", res.StatusCode)
	}
	if code, _ := e.do(http.MethodDelete, "/api/v1/users/noc", nil); code != http.StatusNoContent {
		t.Fatalf("delete user: %d", code)
	}
	if code, _ := e.do(http.MethodDelete, "/api/v1/users/admin", nil); code != http.StatusConflict {
		t.Fatalf("delete the last user: %d, want 409", code)
	}
	if code, _ := e.do(http.MethodDelete, "/api/v1/users/ghost", nil); code != http.StatusNotFound {
		t.Fatalf("delete a missing user: %d, want 404", code)
	}
}

func newClient(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func TestValidationErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.login()
	for _, tc := range []struct {
		method, path string
		body         any
		want         string
	}{
		{"GET", "/api/v1/traffic?range=2h", nil, "range:"},
		{"GET", "/api/v1/traffic?from=yesterday", nil, "from:"},
		{"GET", "/api/v1/traffic?from=2026-03-10T00:00:00Z&to=2026-03-09T00:00:00Z", nil, "from: must be before to"},
		{"GET", "/api/v1/traffic?from=2020-01-01T00:00:00Z", nil, "longer than"},
		{"GET", "/api/v1/traffic?range=1h&from=1", nil, "range: cannot be combined"},
		{"GET", "/api/v1/traffic?router=abc", nil, "router:"},
		{"GET", "/api/v1/traffic?step=1s", nil, "step:"},
		{"GET", "/api/v1/traffic?interfaces=true", nil, "interfaces: needs router"},
		{"GET", "/api/v1/traffic?interfaces=maybe&router=1", nil, "interfaces:"},
		{"GET", "/api/v1/top/colour", nil, "dimension:"},
		{"GET", "/api/v1/top/local?limit=1000", nil, "limit:"},
		{"GET", "/api/v1/top/local?host=10.0.0.300", nil, "host:"},
		{"GET", "/api/v1/top/local?port=70000", nil, "port:"},
		{"GET", "/api/v1/top/local?proto=carrier-pigeon", nil, "proto:"},
		{"GET", "/api/v1/top/local?as=ASX", nil, "as:"},
		{"GET", "/api/v1/top/local?host=a;b", nil, "query:"},
		{"GET", "/api/v1/top/local?range=7d&port=53", nil, "filters on ports work on the last 48 h; pick a shorter range"},
		{"GET", "/api/v1/traffic?range=30d&host=10.0.0.5", nil, "filters on hosts work on the last 48 h; pick a shorter range"},
		{"GET", "/api/v1/flows?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z", nil, "raw flows are kept for the last 48 h"},
		{"GET", "/api/v1/top/local?iface=-1", nil, "iface:"},
		{"GET", "/api/v1/flows?limit=0", nil, "limit:"},
		{"GET", "/api/v1/flows?cursor=!!", nil, "cursor"},
		{"GET", "/api/v1/flows.csv?proto=999", nil, "proto:"},
		{"GET", "/api/v1/routers/abc", nil, "id:"},
		{"GET", "/api/v1/routers/1/history?limit=x", nil, "limit:"},
		{"POST", "/api/v1/routers", map[string]any{"address": ""}, "address: required"},
		{"POST", "/api/v1/routers", map[string]any{"address": "10.0.0.1", "username": ""}, "username: required"},
		{"POST", "/api/v1/routers", map[string]any{"address": "10.0.0.1:99999", "username": "a"}, "address:"},
		{"POST", "/api/v1/routers", map[string]any{"address": "10.0.0.1", "username": "a", "colour": "red"}, "unknown field"},
		{"POST", "/api/v1/routers", nil, "body:"},
		{"POST", "/api/v1/routers/0/apply", nil, "id:"},
		{"DELETE", "/api/v1/routers/1?undo=perhaps", nil, "undo:"},
		{"POST", "/api/v1/users", map[string]any{"name": "a b", "password": "longenough"}, "name:"},
		{"POST", "/api/v1/users", map[string]any{"name": "ab", "password": "short"}, "password:"},
		{"PUT", "/api/v1/users/admin/password", map[string]any{"name": "other", "password": "longenough"}, "name:"},
		{"POST", "/api/v1/tokens", map[string]any{"name": ""}, "name:"},
		{"DELETE", "/api/v1/tokens/x", nil, "id:"},
	} {
		code, body := e.do(tc.method, tc.path, tc.body)
		var eb errorBody
		_ = json.Unmarshal(body, &eb)
		if code != http.StatusBadRequest || !strings.Contains(eb.Error, tc.want) {
			t.Errorf("%s %s: %d %s, want 400 with %q", tc.method, tc.path, code, body, tc.want)
		}
	}
	// A non-JSON content type is refused.
	code, body := e.do(http.MethodPost, "/api/v1/tokens", nil, "Content-Type", "text/plain")
	if code != http.StatusBadRequest || !strings.Contains(string(body), "Content-Type") {
		t.Errorf("text/plain body: %d %s", code, body)
	}
	// Unknown routes and methods get JSON errors too.
	if code, body := e.do(http.MethodGet, "/api/v1/nope", nil); code != http.StatusNotFound || !strings.Contains(string(body), "error") {
		t.Errorf("unknown route: %d %s", code, body)
	}
	if code, _ := e.do(http.MethodPatch, "/api/v1/routers", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("PATCH /routers: %d", code)
	}
}

func TestHealthzAndMetrics(t *testing.T) {
	e := newEnv(t)
	res, err := http.Get(e.ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || string(b) != "ok\n" {
		t.Fatalf("healthz: %d %q", res.StatusCode, b)
	}
	// Even loopback (httptest) needs a login or a token: a loopback peer
	// may be a same-host proxy.
	res, err = http.Get(e.ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("metrics from loopback without a token: %d, want 401", res.StatusCode)
	}
	e.login()
	code, b := e.do(http.MethodGet, "/metrics", nil)
	if code != http.StatusOK || !strings.Contains(string(b), "flowbox_web_requests_total") {
		t.Fatalf("metrics with a session: %d %s", code, b)
	}
	// pprof is off by default, and loopback-only when on.
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1/debug/pprof/", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("pprof without the option: %d", rec.Code)
	}
	p := newEnv(t, func(c *Config, d *Deps) { c.Pprof = true })
	rec = httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/debug/pprof/", nil)
	req.RemoteAddr = "192.0.2.10:5555"
	p.srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("pprof from 192.0.2.10: %d, want 403", rec.Code)
	}
	res, err = http.Get(p.ts.URL + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("pprof from loopback: %d", res.StatusCode)
	}
}

// counterValue reads a counter of the env's registry by its one label value.
func counterValue(t *testing.T, e *env, name, label string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestFleetStatus(t *testing.T) {
	e := newEnv(t)
	e.login()
	add := func(name, addr, state string) store.Router {
		return e.addRouter(store.Router{Name: name, Address: addr + ":8728", Username: "admin", Password: "SECRET-router-pw",
			Identity: name, Model: "hAP ax2", Version: "7.16.2", State: state})
	}
	online := add("a-online", "127.0.0.2", store.StateConfigured)
	stale := add("b-stale", "127.0.0.3", store.StateConfigured)
	add("c-never", "127.0.0.4", store.StateNew)
	broken := add("d-error", "127.0.0.5", store.StateError)
	e.coll.set([]store.ExporterStats{
		{Exporter: netip.MustParseAddr("127.0.0.2"), RouterID: online.ID, LastSeen: e.now.Add(-30 * time.Second), LostFlows: 7, Templates: 2},
		{Exporter: netip.MustParseAddr("127.0.0.3"), RouterID: stale.ID, LastSeen: e.now.Add(-time.Hour), PendingNoTmpl: 3},
		{Exporter: netip.MustParseAddr("127.0.0.5"), RouterID: broken.ID, LastSeen: e.now},
	})
	// 3 flows in the last 5 minutes: 150 kB down, 30 kB up; one older.
	exp := netip.MustParseAddrPort("127.0.0.2:4000")
	end := e.now.Add(-2 * time.Minute).UnixMilli()
	src, dst := netip.MustParseAddr("1.1.1.1"), netip.MustParseAddr("10.0.0.5")
	e.ingest([]store.Flow{
		{Exporter: exp, Version: 9, Start: end - 1000, End: end, SrcAddr: src, DstAddr: dst, Proto: 6, Bytes: 100_000, Packets: 100, Direction: store.DirDownload},
		{Exporter: exp, Version: 9, Start: end - 1000, End: end, SrcAddr: src, DstAddr: dst, Proto: 6, Bytes: 25_000, Packets: 10, SamplingRate: 2, Direction: store.DirDownload},
		{Exporter: exp, Version: 9, Start: end - 1000, End: end, SrcAddr: dst, DstAddr: src, Proto: 6, Bytes: 30_000, Packets: 30, Direction: store.DirUpload},
		{Exporter: exp, Version: 9, Start: end - 600_000, End: end - 590_000, SrcAddr: src, DstAddr: dst, Proto: 6, Bytes: 1 << 30, Packets: 1000, Direction: store.DirDownload},
	})
	code, body := e.do(http.MethodGet, "/api/v1/routers", nil)
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	if strings.Contains(string(body), "SECRET-router-pw") || strings.Contains(strings.ToLower(string(body)), "password") {
		t.Fatalf("the fleet answer carries the router password: %s", body)
	}
	var fleet []RouterView
	if err := json.Unmarshal(body, &fleet); err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{
		"a-online": {StatusOnline, "received"}, "b-stale": {StatusStale, "waiting"},
		"c-never": {StatusNeverSeen, "unknown"}, "d-error": {StatusError, "none"},
	}
	if len(fleet) != 4 {
		t.Fatalf("%d routers", len(fleet))
	}
	for _, r := range fleet {
		if w := want[r.Name]; r.Status != w[0] || r.TemplateState != w[1] {
			t.Errorf("%s: status %s, templates %s; want %v", r.Name, r.Status, r.TemplateState, w)
		}
	}
	a := fleet[0]
	if a.LostFlows != 7 || a.Templates != 2 || a.LastFlow == nil {
		t.Errorf("online router counters: %+v", a)
	}
	if got, want := a.BitsInPerSec, 150_000.0*8/300; got != want {
		t.Errorf("bits in %v, want %v", got, want)
	}
	if got, want := a.BitsOutPerSec, 30_000.0*8/300; got != want {
		t.Errorf("bits out %v, want %v", got, want)
	}
	if got, want := a.FlowsPerSec, 3.0/300; got != want {
		t.Errorf("flows/s %v, want %v", got, want)
	}
	var one RouterView
	e.getJSON(fmt.Sprintf("/api/v1/routers/%d", a.ID), &one)
	if one.Name != "a-online" || len(one.Exporters) != 1 || one.Exporters[0].Exporter != "127.0.0.2" {
		t.Errorf("one router: %+v", one)
	}
	if code, _ := e.do(http.MethodGet, "/api/v1/routers/999", nil); code != http.StatusNotFound {
		t.Errorf("missing router: %d", code)
	}
	var exps []ExporterView
	e.getJSON("/api/v1/exporters", &exps)
	if len(exps) != 3 || exps[0].Exporter != "127.0.0.2" || exps[0].FlowsDropped == nil {
		t.Errorf("exporters: %+v", exps)
	}
}

func TestAddRouterFlow(t *testing.T) {
	e := newEnv(t)
	e.login()
	code, body := e.do(http.MethodPost, "/api/v1/routers", RouterSpec{Address: "192.0.2.1", Username: "admin", Password: "SECRET-pw"})
	if code != http.StatusCreated {
		t.Fatalf("add: %d %s", code, body)
	}
	if strings.Contains(string(body), "SECRET-pw") {
		t.Fatalf("the add answer carries the password: %s", body)
	}
	var added AddResult
	if err := json.Unmarshal(body, &added); err != nil {
		t.Fatal(err)
	}
	if added.Router.Address != "192.0.2.1:8728" || len(added.Plan.Changes) != 4 || added.Router.Status != StatusNeverSeen {
		t.Fatalf("add result %+v", added)
	}
	id := added.Router.ID
	if code, _ := e.do(http.MethodPost, "/api/v1/routers", RouterSpec{Address: "192.0.2.1:8728", Username: "admin"}); code != http.StatusConflict {
		t.Fatalf("adding twice: %d, want 409", code)
	}
	var plan Plan
	e.getJSON(fmt.Sprintf("/api/v1/routers/%d/plan", id), &plan)
	if plan.Summary == "" || len(plan.Changes) != 4 {
		t.Fatalf("plan %+v", plan)
	}
	for _, action := range []string{"apply", "verify"} {
		code, body := e.do(http.MethodPost, fmt.Sprintf("/api/v1/routers/%d/%s", id, action), nil)
		var run RunView
		_ = json.Unmarshal(body, &run)
		if code != http.StatusOK || !run.OK || run.Action != action {
			t.Fatalf("%s: %d %s", action, code, body)
		}
	}
	var rv RouterView
	e.getJSON(fmt.Sprintf("/api/v1/routers/%d", id), &rv)
	if rv.State != store.StateConfigured {
		t.Fatalf("state after apply: %s", rv.State)
	}
	var hist []RunView
	e.getJSON(fmt.Sprintf("/api/v1/routers/%d/history?limit=2", id), &hist)
	if len(hist) != 2 || hist[0].Action != "verify" || hist[1].Action != "apply" {
		t.Fatalf("history %+v", hist)
	}
	if code, _ := e.do(http.MethodPost, fmt.Sprintf("/api/v1/routers/%d/undo", id), nil); code != http.StatusOK {
		t.Fatalf("undo: %d", code)
	}
	if code, _ := e.do(http.MethodDelete, fmt.Sprintf("/api/v1/routers/%d?undo=true", id), nil); code != http.StatusNoContent {
		t.Fatalf("remove: %d", code)
	}
	for _, p := range []string{"/plan", "/history"} {
		if code, _ := e.do(http.MethodGet, fmt.Sprintf("/api/v1/routers/%d%s", id, p), nil); code != http.StatusNotFound {
			t.Errorf("%s of a removed router: %d", p, code)
		}
	}
	// A router that cannot be reached is the router's fault (502), and the
	// message never echoes the password.
	e.prov.failAdd = fmt.Errorf("cannot log in to 192.0.2.9:8728 with password hunter2: connection refused")
	code, body = e.do(http.MethodPost, "/api/v1/routers", RouterSpec{Address: "192.0.2.9", Username: "admin", Password: "hunter2"})
	if code != http.StatusBadGateway || strings.Contains(string(body), "hunter2") || !strings.Contains(string(body), "connection refused") {
		t.Fatalf("unreachable router: %d %s", code, body)
	}
}

func TestPages(t *testing.T) {
	e := newEnv(t)
	r := e.addRouter(store.Router{Name: "gw1", Address: "gw1:8728", State: store.StateNew})
	// Unauthenticated pages send to the login page, keeping the target.
	res, err := e.client.Get(e.ts.URL + "/flows?port=53")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	e.createAdmin()
	res, err = e.client.Get(e.ts.URL + "/flows?port=53")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || loc != "/login?next=%2Fflows%3Fport%3D53" {
		t.Fatalf("unauthenticated page: %d %q", res.StatusCode, loc)
	}
	res, err = e.client.PostForm(e.ts.URL+"/login", url.Values{"username": {"admin"}, "password": {testPassword}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for path, want := range map[string]string{
		"/":                                `id="dashboard"`,
		"/fleet":                           `id="fleet"`,
		fmt.Sprintf("/routers/%d", r.ID):   `data-router-id="` + fmt.Sprint(r.ID) + `"`,
		"/flows":                           `id="flows"`,
		"/settings":                        `id="tokens"`,
		"/alerts":                          `href="/alerts" class="active"`,
		"/static/app.css":                  "--accent",
		"/static/vendor/uPlot.iife.min.js": "uPlot",
		"/static/router.js":                "filterFor",
	} {
		code, body := e.do(http.MethodGet, path, nil)
		if code != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, want %q in the body", path, code, want)
		}
	}
	code, _ := e.do(http.MethodGet, "/routers/999", nil)
	if code != http.StatusNotFound {
		t.Errorf("missing router page: %d", code)
	}
	code, body := e.do(http.MethodGet, "/", nil)
	if code != http.StatusOK || strings.Contains(string(body), "<script>") || strings.Contains(string(body), "style=") {
		t.Errorf("pages must have no inline script or style (CSP)")
	}
}

// TestPageWeight measures what each page loads without the data: the HTML,
// its stylesheets and its scripts. The budget is 300 KB per page.
func TestPageWeight(t *testing.T) {
	e := newEnv(t, withAlerts(newFakeAlertStatus()))
	r := e.addRouter(store.Router{Name: "gw1", Address: "gw1:8728"})
	e.login()
	alert := e.openAlert(attackAlert(r.ID, e.now))
	for _, page := range []string{"/", fmt.Sprintf("/routers/%d", r.ID), "/subscribers", "/flows", "/settings", "/alerts",
		fmt.Sprintf("/alerts/%d", alert.ID), "/login"} {
		code, html := e.do(http.MethodGet, page, nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d", page, code)
		}
		total := len(html)
		parts := map[string]int{"html": len(html)}
		for _, m := range assetRefs(string(html)) {
			code, b := e.do(http.MethodGet, m, nil)
			if code != http.StatusOK {
				t.Fatalf("%s references %s: %d", page, m, code)
			}
			total += len(b)
			kind := strings.TrimPrefix(path.Ext(strings.SplitN(m, "?", 2)[0]), ".")
			if strings.HasPrefix(m, "/static/vendor/") {
				kind = "vendor " + kind
			}
			parts[kind] += len(b)
		}
		t.Logf("page %s weighs %d bytes without data: html %d, css %d, js %d, svg %d, vendor css %d, vendor js %d", page, total,
			parts["html"], parts["css"], parts["js"], parts["svg"], parts["vendor css"], parts["vendor js"])
		if total > 300<<10 {
			t.Errorf("page %s weighs %d bytes, over 300 KB", page, total)
		}
	}
}

// assetRefs returns the /static/ URLs that a page references.
func assetRefs(html string) []string {
	var out []string
	for _, attr := range []string{`src="`, `href="`} {
		rest := html
		for {
			i := strings.Index(rest, attr)
			if i < 0 {
				break
			}
			rest = rest[i+len(attr):]
			j := strings.IndexByte(rest, '"')
			if u := rest[:j]; strings.HasPrefix(u, "/static/") && !slices.Contains(out, u) {
				out = append(out, u)
			}
		}
	}
	return out
}

func TestServeTLSSelfSigned(t *testing.T) {
	dataDir := t.TempDir()
	e := newEnv(t, func(c *Config, d *Deps) { c.TLS = TLSConfig{Mode: TLSModeHTTPS, SelfSigned: true}; d.DataDir = dataDir })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, ln) }()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	var res *http.Response
	testutil.WaitFor(t, 10*time.Second, "the HTTPS server", func() (bool, string) {
		var err error
		res, err = client.Get("https://" + ln.Addr().String() + "/healthz")
		return err == nil, fmt.Sprint(err)
	})
	res.Body.Close()
	if res.TLS == nil || res.StatusCode != http.StatusOK || res.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("https healthz: %d", res.StatusCode)
	}
	cert := res.TLS.PeerCertificates[0]
	if !slices.Contains(cert.DNSNames, "localhost") {
		t.Errorf("certificate names %v", cert.DNSNames)
	}
	st, err := os.Stat(filepath.Join(dataDir, selfSignedKey))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", err, st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel: %v", err)
	}
	// A restart reuses the same certificate.
	e2 := newEnv(t, func(c *Config, d *Deps) { c.TLS = TLSConfig{Mode: TLSModeHTTPS, SelfSigned: true}; d.DataDir = dataDir })
	tc, _, err := e2.srv.tlsConfig()
	if err != nil {
		t.Fatal(err)
	}
	if string(tc.Certificates[0].Certificate[0]) != string(cert.Raw) {
		t.Error("the self-signed certificate was regenerated")
	}
}

func TestRunFailsOnBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	e := newEnv(t, func(c *Config, d *Deps) { c.Listen = ln.Addr().String() })
	if err := e.srv.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "cannot listen") {
		t.Fatalf("Run on a busy port: %v", err)
	}
}
