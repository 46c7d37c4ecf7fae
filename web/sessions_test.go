package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// restart replaces the env's server by a new one on the same store, as a
// restart of flowbox does; the client keeps its cookies.
func (e *env) restart() {
	e.t.Helper()
	d := e.srv.deps
	d.Store = d.Store.(*limitedQuerier).next
	e.reg = prometheus.NewRegistry()
	d.Registerer, d.Gatherer = e.reg, e.reg
	srv, err := New(e.srv.cfg, d)
	if err != nil {
		e.t.Fatalf("New after restart: %v", err)
	}
	if err := srv.Bootstrap(context.Background()); err != nil {
		e.t.Fatalf("Bootstrap after restart: %v", err)
	}
	e.ts.Close()
	e.srv = srv
	e.ts = httptest.NewServer(srv.Handler())
	e.t.Cleanup(e.ts.Close)
}

// status returns the status of GET /api/v1/me for client c.
func status(t *testing.T, c *http.Client, base string) int {
	t.Helper()
	res, err := c.Get(base + "/api/v1/me")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func TestSessionsSurviveRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.login()
	if code, b := e.do(http.MethodPost, "/api/v1/users", map[string]string{"name": "noc", "password": "noc-password"}); code != http.StatusCreated {
		t.Fatalf("create user: %d %s", code, b)
	}
	login := func(user, pw string) *http.Client {
		c := newClient(t)
		res, err := c.PostForm(e.ts.URL+"/login", url.Values{"username": {user}, "password": {pw}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("login %s: %d", user, res.StatusCode)
		}
		return c
	}
	noc, noc2, leaving := login("noc", "noc-password"), login("noc", "noc-password"), login("admin", testPassword)

	// The database holds hashes, never the cookie values.
	u, _ := url.Parse(e.ts.URL)
	var cookie string
	for _, c := range noc.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			cookie = c.Value
		}
	}
	stored, err := e.st.LiveSessions(context.Background(), time.Unix(0, 0), 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 4 {
		t.Fatalf("%d stored sessions, want 4", len(stored))
	}
	found := false
	for _, ss := range stored {
		if ss.Hash == cookie || len(ss.Hash) != 64 {
			t.Fatalf("stored session %q is not a hex SHA-256", ss.Hash)
		}
		found = found || ss.Hash == HashToken(cookie)
	}
	if !found {
		t.Fatal("noc's session is not stored by the SHA-256 of its cookie")
	}

	// A logout before the restart stays a logout.
	res, err := leaving.Post(e.ts.URL+"/logout", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()

	e.restart()
	if code, b := e.do(http.MethodGet, "/api/v1/me", nil); code != http.StatusOK {
		t.Fatalf("admin after a restart: %d %s", code, b)
	}
	if code := status(t, noc, e.ts.URL); code != http.StatusOK {
		t.Fatalf("noc after a restart: %d", code)
	}
	if code := status(t, leaving, e.ts.URL); code != http.StatusUnauthorized {
		t.Fatalf("a logged-out session after a restart: %d", code)
	}

	// A password change ends the user's sessions for good, and a deleted
	// user's sessions do not come back either.
	if code, _ := e.do(http.MethodPut, "/api/v1/users/noc/password", map[string]string{"password": "new-noc-password"}); code != http.StatusNoContent {
		t.Fatalf("set password: %d", code)
	}
	noc3 := login("noc", "new-noc-password")
	e.restart()
	if status(t, noc, e.ts.URL) != http.StatusUnauthorized || status(t, noc2, e.ts.URL) != http.StatusUnauthorized {
		t.Fatal("a session ended by a password change is back after a restart")
	}
	if code := status(t, noc3, e.ts.URL); code != http.StatusOK {
		t.Fatalf("the session opened after the password change: %d", code)
	}
	if code, _ := e.do(http.MethodDelete, "/api/v1/users/noc", nil); code != http.StatusNoContent {
		t.Fatalf("delete user: %d", code)
	}
	e.restart()
	if code := status(t, noc3, e.ts.URL); code != http.StatusUnauthorized {
		t.Fatalf("a deleted user's session after a restart: %d", code)
	}

	// Sessions expire across restarts too.
	e.now = e.now.Add(e.srv.cfg.SessionTTL + time.Minute)
	e.restart()
	if code, _ := e.do(http.MethodGet, "/api/v1/me", nil); code != http.StatusUnauthorized {
		t.Fatalf("an expired session after a restart: %d", code)
	}
	if left, err := e.st.LiveSessions(context.Background(), time.Unix(0, 0), 100); err != nil || len(left) != 0 {
		t.Fatalf("%d expired sessions left in the store (%v)", len(left), err)
	}
}
