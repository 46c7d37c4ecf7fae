package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowbox/flowbox/store"
)

// TestPasswordChangeRules: one's own password needs the current one and
// keeps one's tokens; an admin's reset of another user's needs none, ends
// the user's sessions and revokes the user's tokens; nobody else resets.
func TestPasswordChangeRules(t *testing.T) {
	e := newEnv(t)
	e.addUser("admin", store.RoleAdmin)
	noc := e.addUser("noc", store.RoleOperator)
	e.addUser("view", store.RoleViewer)
	admin, nocC, view := e.clientAs("admin"), e.clientAs("noc"), e.clientAs("view")
	tok := e.makeToken(noc, "noc-ci", store.RoleOperator, time.Time{})

	pw := func(c *http.Client, user string, body map[string]string) (int, string) {
		code, b := e.doWith(c, "", http.MethodPut, "/api/v1/users/"+user+"/password", body)
		return code, string(b)
	}
	if code, b := pw(nocC, "noc", map[string]string{"password": "a new password"}); code != http.StatusBadRequest || !strings.Contains(b, "current_password") {
		t.Fatalf("own change without the current password: %d %s", code, b)
	}
	if code, b := pw(nocC, "noc", map[string]string{"password": "a new password", "current_password": "wrong one!"}); code != http.StatusForbidden || !strings.Contains(b, "current_password") {
		t.Fatalf("own change with a wrong current password: %d %s", code, b)
	}
	if code, b := pw(nocC, "noc", map[string]string{"password": "short", "current_password": testPassword}); code != http.StatusBadRequest || !strings.Contains(b, "password: ") {
		t.Fatalf("own change to a short password: %d %s", code, b)
	}
	if code, b := pw(nocC, "view", map[string]string{"password": "a new password"}); code != http.StatusForbidden {
		t.Fatalf("an operator resets a viewer: %d %s", code, b)
	}
	if code, b := pw(view, "view", map[string]string{"password": "a new password", "current_password": testPassword}); code != http.StatusNoContent {
		t.Fatalf("a viewer changes its own password: %d %s", code, b)
	}
	// A token may not change its owner's password.
	if code, _ := e.doWith(nil, tok, http.MethodPut, "/api/v1/users/noc/password", map[string]string{"password": "x-new-password", "current_password": testPassword}); code != http.StatusForbidden {
		t.Fatalf("a token changes its owner's password: %d", code)
	}
	// Own change: the token keeps working, the session too.
	if code, b := pw(nocC, "noc", map[string]string{"password": "nocs new password", "current_password": testPassword}); code != http.StatusNoContent {
		t.Fatalf("own change: %d %s", code, b)
	}
	if code, _ := e.doWith(nil, tok, http.MethodGet, "/api/v1/me", nil); code != http.StatusOK {
		t.Fatalf("the token after its owner changed their password: %d", code)
	}
	if code, _ := e.doWith(nocC, "", http.MethodGet, "/api/v1/me", nil); code != http.StatusOK {
		t.Fatalf("the session that changed its password: %d", code)
	}
	// An admin's reset: no current password; sessions and tokens end.
	if code, b := pw(admin, "noc", map[string]string{"password": "reset by the admin"}); code != http.StatusNoContent {
		t.Fatalf("admin reset: %d %s", code, b)
	}
	if code, _ := e.doWith(nil, tok, http.MethodGet, "/api/v1/me", nil); code != http.StatusUnauthorized {
		t.Fatalf("the token after an admin reset its owner's password: %d", code)
	}
	if code, _ := e.doWith(nocC, "", http.MethodGet, "/api/v1/me", nil); code != http.StatusUnauthorized {
		t.Fatalf("the session after an admin reset: %d", code)
	}
	es, _ := e.st.AuditLog(context.Background(), store.AuditQuery{Limit: 100})
	found := false
	for _, a := range es {
		if a.Action == "user.password" && a.Actor == "admin" && a.Target == "user noc" && strings.Contains(a.Detail, "1 API tokens revoked") {
			found = true
		}
		if strings.Contains(a.Detail, "reset by the admin") || strings.Contains(a.Target, "reset by the admin") {
			t.Fatalf("a password in the audit log: %+v", a)
		}
	}
	if !found {
		t.Fatalf("no audit entry of the reset in %+v", es)
	}
}

// TestTokenOwnershipRoleAndExpiry: a token is its creator's (or, made by
// an admin, another user's), its role is at most its owner's and its
// creator's, it may expire (on the server's clock), non-admins see and
// revoke only their own, and removing the owner revokes it.
func TestTokenOwnershipRoleAndExpiry(t *testing.T) {
	e := newEnv(t)
	e.addUser("admin", store.RoleAdmin)
	e.addUser("noc", store.RoleOperator)
	e.addUser("noc2", store.RoleOperator)
	e.addUser("view", store.RoleViewer)
	admin, noc, noc2 := e.clientAs("admin"), e.clientAs("noc"), e.clientAs("noc2")

	create := func(c *http.Client, body map[string]string) (int, TokenView, string) {
		code, b := e.doWith(c, "", http.MethodPost, "/api/v1/tokens", body)
		var tv TokenView
		_ = json.Unmarshal(b, &tv)
		return code, tv, string(b)
	}
	for _, tc := range []struct {
		c    *http.Client
		body map[string]string
		want string
	}{
		{noc, map[string]string{"name": "x", "role": "admin"}, "role: at most operator"},
		{noc, map[string]string{"name": "x", "role": "god"}, "role: unknown role"},
		{noc, map[string]string{"name": "x", "user": "view"}, "user: only an admin"},
		{admin, map[string]string{"name": "x", "user": "ghost"}, "user: no such user"},
		{admin, map[string]string{"name": "x", "user": "view", "role": "operator"}, "role: at most viewer"},
		{noc, map[string]string{"name": "x", "expires_in": "tomorrow"}, "expires_in:"},
		{noc, map[string]string{"name": "x", "expires_in": "-1h"}, "expires_in:"},
		{noc, map[string]string{"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at: in the past"},
		{noc, map[string]string{"name": "x", "expires_at": "soon"}, "expires_at:"},
		{noc, map[string]string{"name": "x", "expires_in": "1h", "expires_at": "2099-01-01T00:00:00Z"}, "not both"},
	} {
		code, _, b := create(tc.c, tc.body)
		if code != http.StatusBadRequest && code != http.StatusForbidden || !strings.Contains(b, tc.want) {
			t.Errorf("create %v: %d %s, want %q", tc.body, code, b, tc.want)
		}
	}
	// An operator's token defaults to the operator's role; it expires.
	code, nocTok, b := create(noc, map[string]string{"name": "noc-ci", "expires_in": "2h"})
	if code != http.StatusCreated || nocTok.Owner != "noc" || nocTok.Role != store.RoleOperator || nocTok.ExpiresAt == nil ||
		!nocTok.ExpiresAt.Equal(e.now.Add(2*time.Hour).UTC()) {
		t.Fatalf("operator's token: %d %s", code, b)
	}
	code, viewTok, b := create(admin, map[string]string{"name": "view-dash", "user": "view", "expires_at": e.now.Add(24 * time.Hour).UTC().Format(time.RFC3339)})
	if code != http.StatusCreated || viewTok.Owner != "view" || viewTok.Role != store.RoleViewer {
		t.Fatalf("admin's token for a viewer: %d %s", code, b)
	}
	_, adminTok, _ := create(admin, map[string]string{"name": "admin-ro", "role": "viewer"})
	// A viewer-role token of an admin reads but does not write.
	if code, b := e.doWith(nil, adminTok.Token, http.MethodGet, "/api/v1/me", nil); code != http.StatusOK || !strings.Contains(string(b), `"role":"viewer"`) ||
		!strings.Contains(string(b), `"owner":"admin"`) {
		t.Fatalf("viewer token of the admin /me: %d %s", code, b)
	}
	if code, _ := e.doWith(nil, adminTok.Token, http.MethodPost, "/api/v1/users", map[string]string{"name": "z", "password": "zzzzzzzzzz"}); code != http.StatusForbidden {
		t.Fatalf("viewer token of the admin adds a user: %d", code)
	}
	// Listing: admins see all, others their own.
	var list []TokenView
	if code, b := e.doWith(noc, "", http.MethodGet, "/api/v1/tokens", nil); code != http.StatusOK || json.Unmarshal(b, &list) != nil || len(list) != 1 || list[0].Name != "noc-ci" {
		t.Fatalf("noc's list: %d %s", code, b)
	}
	if code, b := e.doWith(admin, "", http.MethodGet, "/api/v1/tokens", nil); code != http.StatusOK || json.Unmarshal(b, &list) != nil || len(list) != 3 ||
		strings.Contains(string(b), nocTok.Token) {
		t.Fatalf("admin's list: %d %s", code, b)
	}
	// Another operator cannot revoke noc's token (nor learn it exists).
	if code, _ := e.doWith(noc2, "", http.MethodDelete, fmt.Sprintf("/api/v1/tokens/%d", nocTok.ID), nil); code != http.StatusNotFound {
		t.Fatalf("noc2 revokes noc's token: %d", code)
	}
	// Expiry on the server's clock.
	if code, _ := e.doWith(nil, nocTok.Token, http.MethodGet, "/api/v1/me", nil); code != http.StatusOK {
		t.Fatalf("fresh token: %d", code)
	}
	e.now = e.now.Add(2 * time.Hour)
	if code, _ := e.doWith(nil, nocTok.Token, http.MethodGet, "/api/v1/me", nil); code != http.StatusUnauthorized {
		t.Fatalf("expired token: %d", code)
	}
	if code, b := e.doWith(noc, "", http.MethodGet, "/api/v1/tokens", nil); !strings.Contains(string(b), `"expired":true`) {
		t.Fatalf("the list does not say expired: %d %s", code, b)
	}
	// Removing the owner revokes the token; a demoted owner's does less.
	if code, _ := e.doWith(admin, "", http.MethodDelete, "/api/v1/users/view", nil); code != http.StatusNoContent {
		t.Fatalf("delete view: %d", code)
	}
	if code, _ := e.doWith(nil, viewTok.Token, http.MethodGet, "/api/v1/me", nil); code != http.StatusUnauthorized {
		t.Fatalf("token of a removed user: %d", code)
	}
	_, noc2Tok, _ := create(noc2, map[string]string{"name": "noc2-ci"})
	if code, b := e.doWith(admin, "", http.MethodPut, "/api/v1/users/noc2/role", map[string]string{"role": "viewer"}); code != http.StatusOK {
		t.Fatalf("demote noc2: %d %s", code, b)
	}
	if code, _ := e.doWith(nil, noc2Tok.Token, http.MethodPost, "/api/v1/routers/1/apply", nil); code != http.StatusForbidden {
		t.Fatalf("the token of a demoted operator applies: %d", code)
	}
	if code, _ := e.doWith(noc2, "", http.MethodPost, "/api/v1/routers/1/apply", nil); code != http.StatusForbidden {
		t.Fatalf("the session of a demoted operator applies: %d", code)
	}
	if code, b := e.doWith(admin, "", http.MethodPut, "/api/v1/users/admin/role", map[string]string{"role": "viewer"}); code != http.StatusConflict {
		t.Fatalf("demote the last admin: %d %s", code, b)
	}
}

// TestAuditLog: logins, user and token changes and router operations are
// written with who, what, when and from where, never a secret; the log is
// admin only, paginated, and pruned (and counted) beyond its bound.
func TestAuditLog(t *testing.T) {
	e := newEnv(t, func(_ *Config, d *Deps) {
		d.AuditRetention = store.AuditRetention{MaxAge: 24 * time.Hour, MaxRows: 1000}
	})
	e.addUser("admin", store.RoleAdmin)
	e.addUser("noc", store.RoleOperator)
	// A failed login, by a known and an unknown name (not kept: it may be
	// a password typed in the wrong field).
	for _, name := range []string{"admin", "hunter2-typed-here"} {
		res, err := newClient(t).PostForm(e.ts.URL+"/login", url.Values{"username": {name}, "password": {"not-the-pw-123"}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	admin, noc := e.clientAs("admin"), e.clientAs("noc")
	if code, b := e.doWith(admin, "", http.MethodPost, "/api/v1/users", map[string]string{"name": "ro", "password": "SECRET-user-pw", "role": "viewer"}); code != http.StatusCreated {
		t.Fatalf("add user: %d %s", code, b)
	}
	code, b := e.doWith(noc, "", http.MethodPost, "/api/v1/routers", RouterSpec{Name: "tower-1", Address: "192.0.2.1", Username: "admin", Password: "SECRET-router-pw"})
	if code != http.StatusCreated {
		t.Fatalf("add router: %d %s", code, b)
	}
	var added AddResult
	_ = json.Unmarshal(b, &added)
	e.doWith(noc, "", http.MethodPost, fmt.Sprintf("/api/v1/routers/%d/apply", added.Router.ID), nil)
	e.doWith(noc, "", http.MethodPost, "/api/v1/users", map[string]string{"name": "sneaky", "password": "SECRET-user-pw"})
	code, b = e.doWith(noc, "", http.MethodPost, "/api/v1/tokens", map[string]string{"name": "noc-ci"})
	var tv TokenView
	if err := json.Unmarshal(b, &tv); err != nil || code != http.StatusCreated || tv.Token == "" {
		t.Fatalf("create token: %d %s", code, b)
	}

	if code, _ := e.doWith(noc, "", http.MethodGet, "/api/v1/audit", nil); code != http.StatusForbidden {
		t.Fatalf("an operator reads the audit log: %d", code)
	}
	var page AuditPage
	code, b = e.doWith(admin, "", http.MethodGet, "/api/v1/audit?limit=500", nil)
	if code != http.StatusOK || json.Unmarshal(b, &page) != nil {
		t.Fatalf("audit: %d %s", code, b)
	}
	for _, secret := range []string{"SECRET", "not-the-pw-123", "hunter2", tv.Token, testPassword} {
		if strings.Contains(string(b), secret) {
			t.Fatalf("the audit log holds %q: %s", secret, b)
		}
	}
	var got []string
	for i := len(page.Entries) - 1; i >= 0; i-- {
		a := page.Entries[i]
		if a.Client != "127.0.0.1" || a.At.IsZero() {
			t.Errorf("entry %+v lacks its client or time", a)
		}
		got = append(got, fmt.Sprintf("%s %s %s ok=%v", a.Actor, a.Action, a.Target, a.OK))
	}
	want := []string{
		"admin login  ok=false",
		"(unknown user) login  ok=false",
		"admin login  ok=true",
		"noc login  ok=true",
		"admin user.add user ro ok=true",
		"noc router.add name tower-1, address 192.0.2.1, username admin ok=true",
		fmt.Sprintf("noc router.apply router tower-1 (id %d) ok=true", added.Router.ID),
		"noc user.add  ok=false",
		"noc token.create token noc-ci of noc ok=true",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Pages.
	var p1, p2 AuditPage
	e.doWith(admin, "", http.MethodGet, "/api/v1/audit?limit=5", nil)
	_, b = e.doWith(admin, "", http.MethodGet, "/api/v1/audit?limit=5", nil)
	_ = json.Unmarshal(b, &p1)
	_, b = e.doWith(admin, "", http.MethodGet, fmt.Sprintf("/api/v1/audit?limit=5&before=%d", p1.Next), nil)
	_ = json.Unmarshal(b, &p2)
	if len(p1.Entries) != 5 || p1.Next == 0 || len(p2.Entries) != 4 || p2.Next != 0 || p2.Entries[0].ID >= p1.Entries[4].ID {
		t.Fatalf("pages %+v then %+v", p1, p2)
	}
	for _, bad := range []string{"limit=0", "limit=501", "limit=x", "before=-1"} {
		if code, b := e.doWith(admin, "", http.MethodGet, "/api/v1/audit?"+bad, nil); code != http.StatusBadRequest || !strings.Contains(string(b), strings.Split(bad, "=")[0]+":") {
			t.Errorf("audit?%s: %d %s", bad, code, b)
		}
	}
	// Two days later, the next write (a login) prunes what is older than
	// a day.
	e.now = e.now.Add(48 * time.Hour)
	admin = e.clientAs("admin")
	if code, _ := e.doWith(admin, "", http.MethodPut, "/api/v1/users/ro/role", map[string]string{"role": "operator"}); code != http.StatusOK {
		t.Fatalf("set role: %d", code)
	}
	_, b = e.doWith(admin, "", http.MethodGet, "/api/v1/audit", nil)
	page = AuditPage{}
	_ = json.Unmarshal(b, &page)
	if len(page.Entries) != 2 || page.Entries[0].Action != "user.role" || page.Entries[0].Detail != "role operator" || page.Entries[1].Action != "login" {
		t.Fatalf("after pruning: %s", b)
	}
	if n := testutil.ToFloat64(e.srv.metrics.auditPruned); n != 9 {
		t.Fatalf("flowbox_web_audit_pruned_total = %v, want 9", n)
	}
}
