package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/flowbox/flowbox/store"
)

// isWrite reports whether an HTTP method changes state.
func isWrite(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch:
		return true
	}
	return false
}

// addUser creates a user with testPassword and a role.
func (e *env) addUser(name string, role store.Role) store.User {
	e.t.Helper()
	hash, err := testPasswordHash()
	if err != nil {
		e.t.Fatal(err)
	}
	u, err := e.st.CreateUser(context.Background(), name, hash, role)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// clientAs returns a client logged in as name (password testPassword).
func (e *env) clientAs(name string) *http.Client {
	e.t.Helper()
	c := newClient(e.t.(*testing.T))
	res, err := c.PostForm(e.ts.URL+"/login", url.Values{"username": {name}, "password": {testPassword}, "next": {"/"}})
	if err != nil {
		e.t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("login as %s: status %d, want 303", name, res.StatusCode)
	}
	return c
}

// doWith sends a request with a client, or with a bearer token when c is
// nil, and returns the status and body.
func (e *env) doWith(c *http.Client, bearer, method, path string, body any) (int, []byte) {
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
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if c == nil {
		c = http.DefaultClient
	}
	res, err := c.Do(req)
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

// makeToken stores a token of owner with a role and returns its secret.
func (e *env) makeToken(owner store.User, name string, role store.Role, expires time.Time) string {
	e.t.Helper()
	secret, tok, err := NewToken(name, e.now)
	if err != nil {
		e.t.Fatal(err)
	}
	tok.UserID, tok.Role, tok.ExpiresAt = owner.ID, role, expires
	if _, err := e.st.CreateToken(context.Background(), tok); err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// TestEveryRouteDeclaresARole walks the router: every route behind a login
// (pages, the API, /metrics) has its least role in the tables of
// routes.go, so none can skip the check.
func TestEveryRouteDeclaresARole(t *testing.T) {
	e := newEnv(t)
	open := map[string]bool{"/healthz": true, "/login": true, "/logout": true, "/setup": true, "/static/": true}
	n := 0
	err := e.srv.router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tmpl, err := route.GetPathTemplate()
		if err != nil || open[tmpl] || strings.HasPrefix(tmpl, "/debug/pprof") || tmpl == "/api/v1" {
			return nil
		}
		methods, err := route.GetMethods()
		if err != nil {
			return fmt.Errorf("route %s has no Methods", tmpl)
		}
		for _, m := range methods {
			n++
			if _, ok := e.srv.routeRoles[routeKey(m, tmpl)]; !ok {
				t.Errorf("%s %s declares no role (add it to the tables of routes.go)", m, tmpl)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(e.srv.routeRoles) || n < 50 {
		t.Fatalf("walked %d routes behind a login, the tables declare %d", n, len(e.srv.routeRoles))
	}
}

// TestRoutesRefuseLowerRoles is the route walk of the roles: every API
// route answers 403 with a JSON error to each role below its least one
// (sessions, and tokens whose role or whose owner's role is lower), every
// write route answers 403 to a viewer, and no route answers 403 to a role
// that may use it.
func TestRoutesRefuseLowerRoles(t *testing.T) {
	e := newEnv(t)
	admin := e.addUser("admin", store.RoleAdmin)
	e.addUser("oper", store.RoleOperator)
	e.addUser("view", store.RoleViewer)
	demoted := e.addUser("demoted", store.RoleAdmin)
	sessions := map[store.Role]*http.Client{
		store.RoleAdmin: e.clientAs("admin"), store.RoleOperator: e.clientAs("oper"), store.RoleViewer: e.clientAs("view"),
	}
	// Token ids 1 and 2 are these (DELETE /tokens/1 by an admin below
	// revokes a token nobody uses).
	e.makeToken(admin, "spare", store.RoleViewer, time.Time{})
	e.makeToken(admin, "spare2", store.RoleViewer, time.Time{})
	tokens := map[store.Role][]string{
		store.RoleViewer:   {e.makeToken(admin, "admins-viewer", store.RoleViewer, time.Time{})},
		store.RoleOperator: {e.makeToken(admin, "admins-operator", store.RoleOperator, time.Time{})},
	}
	// An admin token whose owner became an operator does what an operator
	// does.
	tokens[store.RoleOperator] = append(tokens[store.RoleOperator], e.makeToken(demoted, "demoted-admin", store.RoleAdmin, time.Time{}))
	if err := e.st.SetRole(context.Background(), "demoted", store.RoleOperator); err != nil {
		t.Fatal(err)
	}
	writes := 0
	for _, rt := range apiRoutes(t, e.srv) {
		method, path, tmpl := rt[0], rt[1], rt[2]
		least, ok := e.srv.routeRoles[routeKey(method, tmpl)]
		if !ok {
			t.Errorf("%s %s has no role", method, tmpl)
			continue
		}
		if isWrite(method) {
			writes++
			if least == store.RoleViewer && tmpl != "/api/v1/users/{name}/password" {
				t.Errorf("%s %s is a write route open to viewers", method, tmpl)
			}
		}
		for _, role := range store.Roles() {
			lower := !role.AtLeast(least)
			// Everybody changes their own password; the walk asks for the
			// admin's, which only an admin may reset.
			others := tmpl == "/api/v1/users/{name}/password" && role != store.RoleAdmin
			mustRefuse := lower || others || (isWrite(method) && role == store.RoleViewer)
			var code int
			var body []byte
			if mustRefuse {
				code, body = e.doWith(sessions[role], "", method, path, nil)
			} else if !isWrite(method) {
				code, body = e.doWith(sessions[role], "", method, path, nil)
			} else {
				// Allowed writes run with an empty body: refused as bad
				// input, not as forbidden.
				code, body = e.doWith(sessions[role], "", method, path, map[string]string{})
			}
			if mustRefuse != (code == http.StatusForbidden) {
				t.Errorf("%s %s as %s: status %d (least role %s): %s", method, path, role, code, least, body)
				continue
			}
			if mustRefuse {
				var eb errorBody
				if err := json.Unmarshal(body, &eb); err != nil || eb.Error == "" {
					t.Errorf("%s %s as %s: 403 body %s is not a JSON error", method, path, role, body)
				}
			}
			for _, tok := range tokens[role] {
				if !mustRefuse {
					break
				}
				if code, body := e.doWith(nil, tok, method, path, nil); code != http.StatusForbidden {
					t.Errorf("%s %s with a %s token: status %d: %s", method, path, role, code, body)
				}
			}
		}
	}
	if writes < 15 {
		t.Fatalf("walked only %d write routes", writes)
	}
	// The refusals of audited routes are in the audit log.
	es, err := e.st.AuditLog(context.Background(), store.AuditQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, a := range es {
		if !a.OK && strings.HasPrefix(a.Detail, "refused") {
			refused++
		}
	}
	if refused < writes {
		t.Fatalf("%d refusals in the audit log, want at least one per write route (%d)", refused, writes)
	}
}

// TestPagesCarryTheRole: every page is for viewers and tells the scripts
// and the style sheet the role; a page above one's role answers 403 HTML.
func TestPagesCarryTheRole(t *testing.T) {
	e := newEnv(t)
	e.addUser("view", store.RoleViewer)
	c := e.clientAs("view")
	e.addRouter(store.Router{Name: "r1", Address: "192.0.2.1:8728"})
	for _, p := range []string{"/", "/routers/1", "/subscribers", "/flows", "/settings", "/alerts", "/abuse"} {
		code, body := e.doWith(c, "", http.MethodGet, p, nil)
		if code != http.StatusOK || !strings.Contains(string(body), `data-role="viewer"`) {
			t.Errorf("GET %s as a viewer: %d, data-role in the page: %v", p, code, strings.Contains(string(body), `data-role="viewer"`))
		}
	}
	// The settings page marks what a viewer may not use.
	_, body := e.doWith(c, "", http.MethodGet, "/settings", nil)
	for _, want := range []string{`id="users-card" class="card needs-admin"`, `id="token-form" class="grid-form needs-operator"`, `id="audit-card" class="card wide needs-admin"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("settings page lacks %s", want)
		}
	}
	// A page declared for admins refuses a viewer with HTML.
	h := e.srv.guardPage(route{method: http.MethodGet, path: "/x", role: store.RoleAdmin, h: func(w http.ResponseWriter, r *http.Request) {
		t.Error("the page handler ran for a viewer")
	}})
	req := httptest.NewRequest(http.MethodGet, "/x", nil)
	for _, ck := range c.Jar.Cookies(mustURL(t, e.ts.URL)) {
		req.AddCookie(ck)
	}
	rec := httptest.NewRecorder()
	h(rec, req)
	if rec.Code != http.StatusForbidden || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") ||
		!strings.Contains(rec.Body.String(), "needs the admin role") {
		t.Fatalf("admin page as a viewer: %d %s %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestOpenAPINamesTheLeastRoles: every operation of the OpenAPI document
// says its least role (x-min-role), as the route tables declare it.
func TestOpenAPINamesTheLeastRoles(t *testing.T) {
	e := newEnv(t)
	e.addUser("view", store.RoleViewer)
	c := e.clientAs("view")
	var doc struct {
		Paths map[string]map[string]struct {
			MinRole   store.Role                 `json:"x-min-role"`
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
	}
	code, b := e.doWith(c, "", http.MethodGet, "/api/v1/openapi.json", nil)
	if code != http.StatusOK || json.Unmarshal(b, &doc) != nil {
		t.Fatalf("openapi: %d", code)
	}
	n := 0
	for p, ops := range doc.Paths {
		for m, o := range ops {
			want := e.srv.routeRoles[routeKey(strings.ToUpper(m), "/api/v1"+p)]
			if o.MinRole != want {
				t.Errorf("%s %s: x-min-role %q, want %q", m, p, o.MinRole, want)
			}
			if _, ok := o.Responses["403"]; ok != (want != store.RoleViewer || p == "/users/{name}/password") {
				t.Errorf("%s %s: a 403 answer is described: %v", m, p, ok)
			}
			n++
		}
	}
	if n < 40 {
		t.Fatalf("only %d operations", n)
	}
}
