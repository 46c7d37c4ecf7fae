package web

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostCheckRefusesRebinding proves that a page on another name (DNS
// rebinding: evil.example resolving to the console) can neither claim a
// fresh install through /setup, even with the token, nor call the API,
// while the console's own names and addresses pass and /healthz stays open.
func TestHostCheckRefusesRebinding(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.Hosts = []string{"flowbox.example.net", "*.wisp.example"} })
	if err := e.srv.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(e.srv.deps.DataDir, SetupTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(b))
	send := func(host, method, path string, form url.Values) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, e.ts.URL+path, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		res, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var sb strings.Builder
		buf := make([]byte, 4096)
		n, _ := res.Body.Read(buf)
		sb.Write(buf[:n])
		return res, sb.String()
	}
	claim := url.Values{"token": {token}, "username": {"evil"}, "password": {"evilevil1"}, "confirm": {"evilevil1"}}
	for _, host := range []string{"evil.example", "evil.example:8080", "EVIL.example.", "flowbox.example.net.evil.example", "wisp.example"} {
		res, body := send(host, http.MethodPost, "/setup", claim)
		if res.StatusCode != http.StatusMisdirectedRequest || !strings.Contains(body, "web.hosts") {
			t.Errorf("POST /setup with Host %s: %d %q, want 421 naming web.hosts", host, res.StatusCode, body)
		}
		if res, _ := send(host, http.MethodGet, "/api/v1/routers", nil); res.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("GET /api/v1/routers with Host %s: %d, want 421", host, res.StatusCode)
		}
		if res, _ := send(host, http.MethodGet, "/setup", nil); res.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("GET /setup with Host %s: %d, want 421", host, res.StatusCode)
		}
		// Local health checks work whatever name they use.
		if res, _ := send(host, http.MethodGet, "/healthz", nil); res.StatusCode != http.StatusOK {
			t.Errorf("GET /healthz with Host %s: %d, want 200", host, res.StatusCode)
		}
	}
	if n, _ := e.st.CountUsers(context.Background()); n != 0 {
		t.Fatalf("%d users after setups through a foreign Host", n)
	}
	// The console's names and addresses pass (the API answers 401 without
	// a login, not 421).
	u, _ := url.Parse(e.ts.URL)
	for _, host := range []string{u.Host, "localhost:8080", "LOCALHOST", "a.localhost", "[::1]:443", "192.0.2.7",
		"flowbox.example.net", "FlowBox.Example.Net.:8443", "console.wisp.example", machineHostname()} {
		if host == "" {
			continue
		}
		if res, _ := send(host, http.MethodGet, "/api/v1/routers", nil); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /api/v1/routers with Host %s: %d, want 401", host, res.StatusCode)
		}
	}
	// The configured name can claim the install with the token.
	if res, _ := send("flowbox.example.net", http.MethodPost, "/setup", url.Values{"token": {token}, "username": {"admin"}, "password": {"longenough1"}, "confirm": {"longenough1"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /setup with a configured Host: %d, want 303", res.StatusCode)
	}
}

func TestHostsValidation(t *testing.T) {
	for _, tc := range []struct {
		hosts []string
		want  string
	}{
		{[]string{"flowbox.example.net", "*.example.org", "192.0.2.1", "::1", "box"}, ""},
		{[]string{"https://flowbox.example.net"}, `hosts[0]: "https://flowbox.example.net" is not a host name`},
		{[]string{"ok.example", "flowbox.example.net:8443"}, `hosts[1]: "flowbox.example.net:8443" is not a host name`},
		{[]string{""}, "hosts[0]: empty host name"},
	} {
		c := DefaultConfig()
		c.Hosts = tc.hosts
		err := c.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%v: %v", tc.hosts, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.hosts, err, tc.want)
		}
	}
}
