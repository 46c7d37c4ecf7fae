package routeros_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/routeros"
	"github.com/flowbox/flowbox/routeros/routerostest"
)

const secret = "s3cr3t-Pa55"

// withUsers gives p the tests' users, admin (full) and viewer (read), both
// with secret, unless it has users of its own.
func withUsers(p routerostest.Personality) routerostest.Personality {
	if len(p.Users) == 0 {
		p.Users = []routerostest.User{{Name: "admin", Group: "full", Password: secret}, {Name: "viewer", Group: "read", Password: secret}}
	}
	return p
}

func dial(t *testing.T, s *routerostest.Server, mod func(*routeros.Options)) (*routeros.Conn, error) {
	t.Helper()
	o := routeros.Options{Address: s.Addr(), Username: "admin", Password: secret, TLS: s.Personality().TLS,
		DialTimeout: 2 * time.Second, CommandTimeout: 2 * time.Second}
	if mod != nil {
		mod(&o)
	}
	c, err := routeros.Dial(context.Background(), o)
	if err == nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	if err != nil && strings.Contains(err.Error(), secret) {
		t.Errorf("error leaks the password: %v", err)
	}
	return c, err
}

func TestLoginAndPrint(t *testing.T) {
	for _, p := range []routerostest.Personality{routerostest.V6("old"), routerostest.V7("new")} {
		t.Run(p.Version, func(t *testing.T) {
			s := testutil.StartRouter(t, withUsers(p))
			c, err := dial(t, s, nil)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			r, err := c.Run(context.Background(), "/system/identity/print")
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if len(r.Re) != 1 || r.Re[0]["name"] != p.Identity {
				t.Fatalf("identity reply = %v, want name=%s", r.Re, p.Identity)
			}
			if got := c.LocalAddr().String(); got != "127.0.0.1" {
				t.Errorf("LocalAddr = %s, want 127.0.0.1", got)
			}
			lines, _ := c.Transcript()
			all := strings.Join(lines, "\n")
			if strings.Contains(all, secret) || !strings.Contains(all, "=password=***") {
				t.Errorf("transcript not redacted:\n%s", all)
			}
			if !strings.Contains(all, "=name="+p.Identity) {
				t.Errorf("transcript misses the reply:\n%s", all)
			}
		})
	}
}

func TestWrongPassword(t *testing.T) {
	for _, p := range []routerostest.Personality{routerostest.V6("old"), routerostest.V7("new")} {
		t.Run(p.Version, func(t *testing.T) {
			s := testutil.StartRouter(t, withUsers(p))
			_, err := dial(t, s, func(o *routeros.Options) { o.Password = "wrong-" + secret })
			if !errors.Is(err, routeros.ErrAuth) {
				t.Fatalf("err = %v, want ErrAuth", err)
			}
			if !strings.Contains(err.Error(), "wrong username or password") {
				t.Errorf("unclear message: %v", err)
			}
		})
	}
}

func TestPortClosed(t *testing.T) {
	s := testutil.StartRouter(t, withUsers(routerostest.V7("r")))
	if err := s.SetAPIEnabled(false); err != nil {
		t.Fatal(err)
	}
	_, err := dial(t, s, nil)
	if !errors.Is(err, routeros.ErrRefused) {
		t.Fatalf("err = %v, want ErrRefused", err)
	}
	if !strings.Contains(err.Error(), "API service disabled or port closed") {
		t.Errorf("unclear message: %v", err)
	}
	if err := s.SetAPIEnabled(true); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, s, nil); err != nil {
		t.Fatalf("after re-enabling: %v", err)
	}
}

func TestSilentRouterTimesOut(t *testing.T) {
	s := testutil.StartRouter(t, withUsers(routerostest.V7("r")))
	s.SetSilent(true)
	start := time.Now()
	_, err := dial(t, s, func(o *routeros.Options) { o.CommandTimeout = 200 * time.Millisecond })
	if !errors.Is(err, routeros.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("login was not bounded by the command timeout")
	}

	// A router that goes silent after login breaks the Conn.
	s.SetSilent(false)
	c, err := dial(t, s, func(o *routeros.Options) { o.CommandTimeout = 200 * time.Millisecond })
	if err != nil {
		t.Fatal(err)
	}
	s.SetSilent(true)
	if _, err := c.Run(context.Background(), "/system/identity/print"); !errors.Is(err, routeros.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if _, err := c.Run(context.Background(), "/system/identity/print"); !errors.Is(err, routeros.ErrBroken) {
		t.Fatalf("second Run err = %v, want ErrBroken", err)
	}
}

func TestContextCancelInterruptsCommand(t *testing.T) {
	s := testutil.StartRouter(t, withUsers(routerostest.V7("r")))
	c, err := dial(t, s, func(o *routeros.Options) { o.CommandTimeout = time.Minute })
	if err != nil {
		t.Fatal(err)
	}
	s.SetSilent(true)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Run(ctx, "/system/identity/print"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
}

func TestTLSTrustOnFirstUse(t *testing.T) {
	p := routerostest.V7("tls")
	p.TLS = true
	s := testutil.StartRouter(t, withUsers(p))
	c, err := dial(t, s, nil)
	if err != nil {
		t.Fatalf("first dial: %v", err)
	}
	if c.Fingerprint() != s.Fingerprint() || c.Fingerprint() == "" {
		t.Fatalf("recorded fingerprint %q, server has %q", c.Fingerprint(), s.Fingerprint())
	}
	if _, err := dial(t, s, func(o *routeros.Options) { o.Fingerprint = s.Fingerprint() }); err != nil {
		t.Fatalf("dial with the pinned fingerprint: %v", err)
	}
	pinned := strings.Repeat("ab", 32)
	_, err = dial(t, s, func(o *routeros.Options) { o.Fingerprint = pinned })
	var fe *routeros.FingerprintError
	if !errors.As(err, &fe) || !errors.Is(err, routeros.ErrFingerprint) {
		t.Fatalf("err = %v, want FingerprintError", err)
	}
	if !strings.Contains(err.Error(), pinned) || !strings.Contains(err.Error(), s.Fingerprint()) {
		t.Errorf("message does not name both fingerprints: %v", err)
	}
}

func TestTraps(t *testing.T) {
	ctx := context.Background()
	t.Run("not enough permissions", func(t *testing.T) {
		s := testutil.StartRouter(t, withUsers(routerostest.V7("r")))
		c, err := dial(t, s, func(o *routeros.Options) { o.Username = "viewer" })
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Run(ctx, "/ip/traffic-flow/set", "=enabled=yes")
		if !errors.Is(err, routeros.ErrPermission) || !strings.Contains(err.Error(), "not enough permissions") {
			t.Fatalf("err = %v, want ErrPermission", err)
		}
		// A trap leaves the session usable.
		if _, err := c.Run(ctx, "/ip/traffic-flow/print"); err != nil {
			t.Fatalf("print after trap: %v", err)
		}
	})
	t.Run("unknown property on old version", func(t *testing.T) {
		s := testutil.StartRouter(t, withUsers(routerostest.V6("r")))
		c, err := dial(t, s, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Run(ctx, "/ip/traffic-flow/target/add", "=dst-address=127.0.0.1", "=port=2055")
		if !errors.Is(err, routeros.ErrUnknown) || !strings.Contains(err.Error(), "unknown parameter") {
			t.Fatalf("err = %v, want ErrUnknown", err)
		}
		_, err = c.Run(ctx, "/ip/traffic-flow/ipfix/print")
		if !errors.Is(err, routeros.ErrUnknown) {
			t.Fatalf("ipfix on 6.42: err = %v, want ErrUnknown", err)
		}
		r, err := c.Run(ctx, "/ip/traffic-flow/target/add", "=address=127.0.0.1:2055")
		if err != nil || r.Done["ret"] == "" {
			t.Fatalf("legacy add: %v %v", r, err)
		}
		_, err = c.Run(ctx, "/ip/traffic-flow/target/add", "=address=127.0.0.1:2055")
		if !errors.Is(err, routeros.ErrExists) {
			t.Fatalf("duplicate add: err = %v, want ErrExists", err)
		}
	})
}

func TestDroppedConnection(t *testing.T) {
	s := testutil.StartRouter(t, withUsers(routerostest.V7("r")))
	c, err := dial(t, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.DropAfter(1)
	_, err = c.Run(context.Background(), "/ip/traffic-flow/set", "=enabled=yes")
	if !errors.Is(err, routeros.ErrDropped) {
		t.Fatalf("err = %v, want ErrDropped", err)
	}
	if !s.TrafficFlow().Enabled {
		t.Errorf("the dropped command should have been executed")
	}
	if _, err := c.Run(context.Background(), "/system/identity/print"); !errors.Is(err, routeros.ErrBroken) {
		t.Fatalf("err = %v, want ErrBroken", err)
	}
	c2, err := dial(t, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	// !fatal with a bare-word reason (RouterOS's /quit answer).
	if _, err := c2.Run(context.Background(), "/quit"); !errors.Is(err, routeros.ErrDropped) {
		t.Fatalf("/quit: err = %v, want ErrDropped", err)
	}
}

func TestDialValidation(t *testing.T) {
	if _, err := routeros.Dial(context.Background(), routeros.Options{Username: "a"}); err == nil {
		t.Error("empty address accepted")
	}
	if got := routeros.WithDefaultPort("192.0.2.1", false); got != "192.0.2.1:8728" {
		t.Errorf("WithDefaultPort = %s", got)
	}
	if got := routeros.WithDefaultPort("2001:db8::1", true); got != "[2001:db8::1]:8729" {
		t.Errorf("WithDefaultPort = %s", got)
	}
	if got := routeros.WithDefaultPort("r1.example:1234", true); got != "r1.example:1234" {
		t.Errorf("WithDefaultPort = %s", got)
	}
}
