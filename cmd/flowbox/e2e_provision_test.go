package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/simulator"
	"github.com/flowbox/flowbox/store"
)

// TestRouterAddWhileServing is the onboarding path end to end, with the
// pieces in separate roles as in production: `flowbox serve` runs; a
// simulated RouterOS v7 router serves the API; `flowbox router add` (a
// second "process" on the same data directory and config) connects, plans,
// applies and waits for the first flows; the running server attributes the
// flows to the new router, which the console then shows online. Undo stops
// the exports and restores the router's settings.
func TestRouterAddWhileServing(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	srv := startServeInProcess(t, "")
	dir, nfPort, cfgPath := filepath.Dir(srv.cfgPath), srv.nfPort, srv.cfgPath
	c := login(t, srv.base, "admin", "e2e-admin-pw")

	fl, err := simulator.New(simulator.Config{Routers: 1, Versions: "7", Password: "router-pw", Rate: 300, Seed: 7},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := fl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fl.Stop)
	rt := fl.Routers()[0]
	before := rt.Server.TrafficFlow()

	pwFile := filepath.Join(dir, "router.pw")
	if err := os.WriteFile(pwFile, []byte("router-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut testutil.SyncBuffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, e, []string{"router", "add", "--tls=false", "--config", cfgPath, "--name", "tower1",
		"--address", rt.APIAddr(), "--user", rt.Username, "--password-file", pwFile, "--timeout", "60s"}); err != nil {
		t.Fatalf("router add: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
	}
	for _, want := range []string{fmt.Sprintf("collector: 127.0.0.1:%d", nfPort), "plan:", "applied:", "flows arrive"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("router add output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String()+errOut.String(), "router-pw") {
		t.Error("router add printed the router password")
	}

	testutil.WaitFor(t, 30*time.Second, "tower1 online in the console", func() (bool, string) {
		var routers []apiRouter
		c.get("/api/v1/routers", &routers)
		return len(routers) == 1 && routers[0].Name == "tower1" && routers[0].Status == "online" &&
			routers[0].State == store.StateConfigured, fmt.Sprintf("%+v", routers)
	})

	// Undo from the CLI: the router's traffic-flow settings are restored
	// and it stops exporting.
	out = testutil.SyncBuffer{}
	if err := run(ctx, e, []string{"router", "undo", "--config", cfgPath, "tower1"}); err != nil {
		t.Fatalf("router undo: %v\n%s", err, errOut.String())
	}
	after := rt.Server.TrafficFlow()
	if fmt.Sprintf("%+v", after) != fmt.Sprintf("%+v", before) {
		t.Errorf("undo did not restore traffic-flow:\nbefore %+v\nafter  %+v", before, after)
	}
	// The undo's reply comes after the exporter lost its target, and an
	// exporter without targets sends nothing: no need to watch it for a
	// while.
	if st := rt.Exporter.Stats(); len(st.Targets) != 0 {
		t.Errorf("router still exports after undo, to %+v", st.Targets)
	}
}
