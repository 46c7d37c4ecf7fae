package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/web"
)

// TestUserCommandsWhileServing: `flowbox user` and `flowbox token` change
// a running serve's users at once: a new operator logs in and may not
// manage users, a demoted one may no longer apply, its new token does what
// a viewer does, and removing it ends its session and its token.
func TestUserCommandsWhileServing(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	srv := startServeInProcess(t, "")
	base := srv.base
	tokenClient := &http.Client{Transport: consoleTransport("")}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli := func(args ...string) string {
		t.Helper()
		var out, errOut testutil.SyncBuffer
		e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
		if err := run(ctx, e, append(append([]string{}, args...), "--config", srv.cfgPath)); err != nil {
			t.Fatalf("flowbox %v: %v\n%s", args, err, errOut.String())
		}
		return out.String()
	}
	// call sends a request with the client (or a bearer token) and
	// returns the status and body.
	call := func(c *http.Client, bearer, method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}

	cli("user", "add", "--name", "noc", "--role", "operator", "--password-file", writePassword(t, "noc-password-1"))
	noc := login(t, base, "noc", "noc-password-1")
	if code, b := call(noc.http, "", http.MethodGet, "/api/v1/me", ""); code != http.StatusOK || !strings.Contains(b, `"role":"operator"`) {
		t.Fatalf("/me as noc: %d %s", code, b)
	}
	if code, b := call(noc.http, "", http.MethodPost, "/api/v1/users", `{"name":"x","password":"xxxxxxxxxx"}`); code != http.StatusForbidden {
		t.Fatalf("an operator adds a user: %d %s", code, b)
	}
	if code, b := call(noc.http, "", http.MethodPost, "/api/v1/routers/999/apply", ""); code != http.StatusNotFound {
		t.Fatalf("an operator applies a missing router: %d %s (want 404: allowed, but no such router)", code, b)
	}
	cli("user", "set-role", "--name", "noc", "--role", "viewer")
	if code, b := call(noc.http, "", http.MethodPost, "/api/v1/routers/999/apply", ""); code != http.StatusForbidden {
		t.Fatalf("a viewer applies: %d %s", code, b)
	}
	var tv web.TokenView
	if err := json.Unmarshal([]byte(cli("token", "create", "--user", "noc", "--name", "noc-dash", "--expires", "1h", "--json")), &tv); err != nil ||
		tv.Role != "viewer" || tv.Token == "" {
		t.Fatalf("token create --json: %v %+v", err, tv)
	}
	if code, b := call(tokenClient, tv.Token, http.MethodGet, "/api/v1/routers", ""); code != http.StatusOK {
		t.Fatalf("the viewer's token reads: %d %s", code, b)
	}
	if code, _ := call(tokenClient, tv.Token, http.MethodDelete, "/api/v1/routers/1", ""); code != http.StatusForbidden {
		t.Fatalf("the viewer's token deletes: %d", code)
	}
	cli("user", "remove", "--name", "noc")
	if code, _ := call(noc.http, "", http.MethodGet, "/api/v1/me", ""); code != http.StatusUnauthorized {
		t.Fatalf("the session of a removed user: %d", code)
	}
	if code, _ := call(tokenClient, tv.Token, http.MethodGet, "/api/v1/me", ""); code != http.StatusUnauthorized {
		t.Fatalf("the token of a removed user: %d", code)
	}
	if out := cli("user", "list"); strings.Contains(out, "noc") || !strings.Contains(out, "admin  admin") {
		t.Fatalf("user list:\n%s", out)
	}
}
