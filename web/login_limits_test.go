package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// loginFrom posts a login as the client xff behind the test's trusted
// proxy (the httptest peer, 127.0.0.1) and returns the status.
func loginFrom(t *testing.T, e *env, xff, pw string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.ts.URL+"/login",
		strings.NewReader(url.Values{"username": {"admin"}, "password": {pw}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	res, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestLoginAccountBackoff: a password guess spread over many addresses is
// slowed per account: after five failures each attempt waits twice as long
// as the previous one; the right password, once allowed, clears it.
func TestLoginAccountBackoff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config, _ *Deps) { c.LoginAttempts = 100; c.TrustedProxies = []string{"127.0.0.1"} })
	e.createAdmin()
	for i := range 5 {
		if code := loginFrom(t, e, "198.51.100."+string(rune('1'+i)), "wrong password"); code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i+1, code)
		}
	}
	if code := loginFrom(t, e, "203.0.113.9", testPassword); code != http.StatusTooManyRequests {
		t.Fatalf("sixth attempt right after five failures: %d, want 429", code)
	}
	e.now = e.now.Add(time.Second)
	if code := loginFrom(t, e, "203.0.113.10", "wrong password"); code != http.StatusUnauthorized {
		t.Fatalf("after 1 s: %d, want 401", code)
	}
	e.now = e.now.Add(time.Second) // the next wait is 2 s
	if code := loginFrom(t, e, "203.0.113.11", testPassword); code != http.StatusTooManyRequests {
		t.Fatalf("1 s into a 2 s wait: %d, want 429", code)
	}
	e.now = e.now.Add(time.Second)
	if code := loginFrom(t, e, "203.0.113.12", testPassword); code != http.StatusSeeOther {
		t.Fatalf("after the wait, the right password: %d, want 303", code)
	}
	if code := loginFrom(t, e, "203.0.113.13", "wrong password"); code != http.StatusUnauthorized {
		t.Fatalf("a success cleared the failures, yet: %d", code)
	}
}

// TestLoginLimitIPv6Prefix: the per-address limit counts an IPv6 client's
// whole /64 (a subscriber line gets one), and it applies to the address
// behind a trusted proxy, not to the proxy.
func TestLoginLimitIPv6Prefix(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config, _ *Deps) { c.LoginAttempts = 2; c.TrustedProxies = []string{"127.0.0.0/8"} })
	e.createAdmin()
	for _, xff := range []string{"2001:db8:1:2::1", "2001:db8:1:2:aaaa::7"} {
		if code := loginFrom(t, e, xff, "wrong password"); code != http.StatusUnauthorized {
			t.Fatalf("%s: %d, want 401", xff, code)
		}
	}
	if code := loginFrom(t, e, "2001:db8:1:2:ffff::1", testPassword); code != http.StatusTooManyRequests {
		t.Fatalf("a third address of the same /64: %d, want 429", code)
	}
	if code := loginFrom(t, e, "2001:db8:1:3::1", testPassword); code != http.StatusSeeOther {
		t.Fatalf("another /64: %d, want 303", code)
	}
}

func TestClientIP(t *testing.T) {
	cfg := Config{TrustedProxies: []string{"10.0.0.0/8", "::1"}}
	s := &Server{cfg: cfg, proxies: cfg.trustedProxyPrefixes()}
	if len(s.proxies) != 2 {
		t.Fatalf("proxies %v", s.proxies)
	}
	for _, c := range []struct{ peer, xff, want string }{
		{"192.0.2.1:5000", "198.51.100.7", "192.0.2.1"},             // untrusted peer: the header is ignored
		{"10.1.2.3:5000", "198.51.100.7", "198.51.100.7"},           // trusted proxy
		{"10.1.2.3:5000", "6.6.6.6, 198.51.100.7", "198.51.100.7"},  // the rightmost untrusted hop
		{"10.1.2.3:5000", "198.51.100.7, 10.9.9.9", "198.51.100.7"}, // through two proxies
		{"10.1.2.3:5000", "bogus", "10.1.2.3"},
		{"10.1.2.3:5000", "", "10.1.2.3"},
		{"[::1]:5000", "2001:db8::5", "2001:db8::5"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = c.peer
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := s.clientIP(r); got != c.want {
			t.Errorf("peer %s, X-Forwarded-For %q: client %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
	for in, want := range map[string]string{"192.0.2.1": "192.0.2.1", "2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64", "bogus": "bogus"} {
		if got := limitKey(in); got != want {
			t.Errorf("limitKey(%s) = %s, want %s", in, got, want)
		}
	}
}
