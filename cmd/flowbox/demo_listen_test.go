package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
)

// TestDemoListensOnLoopback: `flowbox demo` with addresses that name no
// host (like the defaults ":8080" and ":2055") listens on loopback
// only, so a demo on a laptop is not open to the network; an address with
// a host is kept.
func TestDemoListensOnLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a demo")
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "flowbox.yaml")
	nfPort, webPort := freePort(t, "udp"), freePort(t, "tcp")
	cfg := fmt.Sprintf("collector:\n  listen: [\":%d\"]\nweb:\n  listen: \":%d\"\n", nfPort, webPort)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, stop := startCommand(t, "demo", "--config", cfgPath, "--data-dir", filepath.Join(dir, "data"),
		"--routers", "1", "--rate", "50", "--api-port-base", "0")
	web := regexp.MustCompile(`msg="web console listening" .*url=https?://([^/]+)/`)
	nf := regexp.MustCompile(`msg="listening for flows" .*bound=(\S+)`)
	var webAddr, nfAddr string
	testutil.WaitFor(t, 60*time.Second, "the demo's listeners", func() (bool, string) {
		w, n := web.FindStringSubmatch(stderr.String()), nf.FindStringSubmatch(stderr.String())
		if w == nil || n == nil {
			return false, stderr.String()
		}
		webAddr, nfAddr = w[1], n[1]
		return true, ""
	})
	for what, a := range map[string]string{"web console": webAddr, "collector": nfAddr} {
		if !regexp.MustCompile(`^127\.0\.0\.1:\d+$`).MatchString(a) {
			t.Errorf("the demo's %s listens on %s, want loopback", what, a)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{":8080": "127.0.0.1:8080", "0.0.0.0:8080": "0.0.0.0:8080", "[::]:2055": "[::]:2055", "192.0.2.1:80": "192.0.2.1:80"} {
		if got := loopbackIfAny(in); got != want {
			t.Errorf("loopbackIfAny(%s) = %s, want %s", in, got, want)
		}
	}
}
