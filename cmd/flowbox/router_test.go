package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/routeros"
	"github.com/flowbox/flowbox/routeros/routerostest"
)

const routerSecret = "cli-Secret-9x"

// routerCLI runs `flowbox router ...` in-process against one data
// directory and keeps every byte written, to prove no password leaks.
type routerCLI struct {
	t       *testing.T
	dataDir string
	env     map[string]string
	stdin   string
	all     bytes.Buffer
}

func (c *routerCLI) run(args ...string) (string, error) {
	c.t.Helper()
	var out, errOut bytes.Buffer
	e := &env{stdin: strings.NewReader(c.stdin), stdout: &out, stderr: &errOut, getenv: func(k string) string { return c.env[k] }}
	full := append([]string{"router"}, args...)
	full = append(full, "--data-dir", c.dataDir, "--config", writeRouterConfig(c.t))
	err := run(context.Background(), e, full)
	c.all.WriteString(out.String() + errOut.String())
	if err != nil {
		c.all.WriteString(err.Error())
	}
	return out.String(), err
}

func writeRouterConfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "flowbox.yaml")
	cfg := "log:\n  level: debug\nprovision:\n  command-timeout: 2s\n  retry-backoff: 10ms\n  verify-timeout: 1s\n"
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// withAdmin gives p one user, admin (full), with routerSecret.
func withAdmin(p routerostest.Personality) routerostest.Personality {
	p.Users = []routerostest.User{{Name: "admin", Group: "full", Password: routerSecret}}
	return p
}

func TestRouterCommands(t *testing.T) {
	s := testutil.StartRouter(t, withAdmin(routerostest.V7("edge-1")))
	before := s.TrafficFlow()
	c := &routerCLI{t: t, dataDir: t.TempDir()}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(routerSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	out, err := c.run("add", "--tls=false", "--name", "edge", "--address", s.Addr(), "--user", "admin", "--password-file", pwFile, "--dry-run")
	if err != nil {
		t.Fatalf("add --dry-run: %v", err)
	}
	for _, want := range []string{"router edge: edge-1, RouterOS 7.16.2 (stable)", "collector: 127.0.0.1:2055",
		"  traffic-flow/enabled: false -> true", "dry run: nothing was stored or changed"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output misses %q:\n%s", want, out)
		}
	}
	if out, _ := c.run("list"); strings.Contains(out, "edge-1") {
		t.Fatalf("dry run stored the router:\n%s", out)
	}

	out, err = c.run("add", "--tls=false", "--name", "edge", "--address", s.Addr(), "--user", "admin", "--password-file", pwFile, "--no-verify")
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	if !strings.Contains(out, "applied: 2 properties changed, target added") {
		t.Errorf("add output:\n%s", out)
	}
	if st := s.TrafficFlow(); !st.Enabled || len(st.Targets) != 1 {
		t.Errorf("router not provisioned: %+v", st)
	}

	out, err = c.run("list")
	if err != nil || !strings.Contains(out, "edge-1") || !strings.Contains(out, "configured") {
		t.Errorf("list = %v\n%s", err, out)
	}
	out, err = c.run("show", "edge")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"identity:     edge-1", "8388611", "<pppoe-alice>", "10.0.0.1/24", "traffic-flow/enabled: false", "apply", "detect"} {
		if !strings.Contains(out, want) {
			t.Errorf("show misses %q:\n%s", want, out)
		}
	}

	out, err = c.run("provision", "edge", "--no-verify")
	if err != nil || !strings.Contains(out, "applied: configuration already in place, nothing changed") {
		t.Errorf("second provision = %v\n%s", err, out)
	}

	// No collector runs here: verify explains that nothing arrived.
	_, err = c.run("verify", "edge", "--timeout", "1s")
	if err == nil || !strings.Contains(err.Error(), "no packets at all") {
		t.Errorf("verify = %v", err)
	}

	out, err = c.run("undo", "edge")
	if err != nil || !strings.Contains(out, "undone: 2 properties changed, target removed") {
		t.Errorf("undo = %v\n%s", err, out)
	}
	if st := s.TrafficFlow(); st.Enabled || len(st.Targets) != 0 || st.ActiveFlowTimeout != before.ActiveFlowTimeout {
		t.Errorf("undo did not restore: %+v", st)
	}
	if _, err := c.run("remove", "edge", "--keep-router-config"); err != nil {
		t.Fatal(err)
	}
	if out, _ := c.run("list"); strings.Contains(out, "edge-1") {
		t.Errorf("router still listed after remove:\n%s", out)
	}
	if strings.Contains(c.all.String(), routerSecret) {
		t.Errorf("password appears in the output:\n%s", c.all.String())
	}
}

func TestRouterAddPasswordSources(t *testing.T) {
	s := testutil.StartRouter(t, withAdmin(routerostest.V6("old-1")))
	c := &routerCLI{t: t, dataDir: t.TempDir(), env: map[string]string{passwordEnv: routerSecret}}
	if _, err := c.run("add", "--tls=false", "--name", "a", "--address", s.Addr(), "--user", "admin", "--dry-run"); err != nil {
		t.Fatalf("password from the environment: %v", err)
	}
	c.env = nil
	c.stdin = routerSecret + "\n"
	if _, err := c.run("add", "--tls=false", "--name", "a", "--address", s.Addr(), "--user", "admin", "--dry-run"); err != nil {
		t.Fatalf("password from the prompt: %v", err)
	}
	c.stdin = "wrong\n"
	_, err := c.run("add", "--tls=false", "--name", "a", "--address", s.Addr(), "--user", "admin", "--no-verify")
	if !errors.Is(err, routeros.ErrAuth) {
		t.Fatalf("wrong password: %v", err)
	}
	if strings.Contains(c.all.String(), routerSecret) {
		t.Errorf("password appears in the output:\n%s", c.all.String())
	}
}

func TestRouterUsageErrors(t *testing.T) {
	c := &routerCLI{t: t, dataDir: t.TempDir()}
	for _, args := range [][]string{{"add", "--name", "x"}, {"show"}, {"frobnicate"}, {"undo", "a", "b"}} {
		_, err := c.run(args...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
	if _, err := c.run("show", "nope"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("show of an unknown router = %v", err)
	}
}

// TestRouterAddDefaultsToTLS: `router add` speaks API-SSL unless told
// otherwise; to a router without it, the error says how to enable it; the
// plain API is an explicit choice, with a warning.
func TestRouterAddDefaultsToTLS(t *testing.T) {
	s := testutil.StartRouter(t, withAdmin(routerostest.V7("plain-1")))
	c := &routerCLI{t: t, dataDir: t.TempDir(), env: map[string]string{passwordEnv: routerSecret}}
	_, err := c.run("add", "--name", "a", "--address", s.Addr(), "--user", "admin", "--dry-run")
	if err == nil || !strings.Contains(err.Error(), "/ip service set api-ssl certificate=") {
		t.Fatalf("API-SSL by default to a plain router: %v", err)
	}
	if strings.Contains(c.all.String(), "warning: the plain API") {
		t.Error("warned about the plain API while using API-SSL")
	}
	if _, err := c.run("add", "--tls=false", "--name", "a", "--address", s.Addr(), "--user", "admin", "--dry-run"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.all.String(), "warning: the plain API (--tls=false) sends the router's password in clear") {
		t.Errorf("no warning for the plain API:\n%s", c.all.String())
	}
}
