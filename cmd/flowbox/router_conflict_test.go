package main

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/routeros/routerostest"
	"github.com/flowbox/flowbox/store"
)

// TestRouterAddBehindOneAddress: `flowbox router add` never merges two
// routers. edge-a and edge-b have the same addresses (127.0.0.1/8 towards
// the collector): edge-b is refused, naming edge-a. edge-c has an address
// of its own as well: its plan pins the target's src-address to it, and
// `router show` says so.
func TestRouterAddBehindOneAddress(t *testing.T) {
	a := testutil.StartRouter(t, withAdmin(routerostest.V7("edge-a")))
	b := testutil.StartRouter(t, withAdmin(routerostest.V7("edge-b")))
	pc := withAdmin(routerostest.V7("edge-c"))
	pc.Addresses = append(pc.Addresses, routerostest.Address{Address: netip.MustParsePrefix("127.0.0.9/32"), Interface: "loopback"})
	c := testutil.StartRouter(t, pc)
	cli := &routerCLI{t: t, dataDir: t.TempDir()}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(routerSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	add := func(name string, s *routerostest.Server, extra ...string) (string, error) {
		return cli.run(append([]string{"add", "--tls=false", "--name", name, "--address", s.Addr(), "--user", "admin", "--password-file", pwFile, "--no-verify"}, extra...)...)
	}
	if _, err := add("edge-a", a); err != nil {
		t.Fatal(err)
	}
	_, err := add("edge-b", b)
	if err == nil || !errors.Is(err, store.ErrExporterConflict) ||
		!strings.Contains(err.Error(), "router edge-a already exports from 127.0.0.1, where this router's flows would come from too") ||
		!strings.Contains(err.Error(), "routers behind one NAT address cannot be told apart") {
		t.Errorf("add edge-b: %v", err)
	}
	if out, _ := cli.run("list"); strings.Contains(out, "edge-b") {
		t.Errorf("the refused router was stored:\n%s", out)
	}
	out, err := add("edge-c", c, "--dry-run")
	if err != nil || !strings.Contains(out, "src-address=127.0.0.9") ||
		!strings.Contains(out, "source:    flows will come from 127.0.0.9 (src-address): router edge-a may export from 127.0.0.1") {
		t.Errorf("add edge-c --dry-run = %v:\n%s", err, out)
	}
	if _, err := add("edge-c", c); err != nil {
		t.Fatal(err)
	}
	if tg := c.TrafficFlow().Targets; len(tg) != 1 || tg[0].SrcAddress != netip.MustParseAddr("127.0.0.9") {
		t.Errorf("edge-c's targets: %+v", tg)
	}
	out, err = cli.run("show", "edge-c")
	if err != nil || !strings.Contains(out, "exports from: 127.0.0.9") {
		t.Errorf("show edge-c = %v:\n%s", err, out)
	}
	// Both keep 10.0.0.1/24 on their LAN, but edge-c exports from
	// 127.0.0.9 only: no conflict to show.
	if out, _ := cli.run("show", "edge-a"); strings.Contains(out, "conflict:") {
		t.Errorf("show edge-a reports a conflict:\n%s", out)
	}
	if strings.Contains(cli.all.String(), routerSecret) {
		t.Errorf("password appears in the output:\n%s", cli.all.String())
	}
}
