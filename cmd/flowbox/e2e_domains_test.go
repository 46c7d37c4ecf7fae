package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/domains"
	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/simulator"
)

// TestDomainsThroughServe runs `flowbox serve` and two simulated routers
// onboarded over the API: the first answers its customers' DNS, the second
// leaves them on public resolvers. Serve reads their DNS caches, labels the
// flows with the domains the customers resolved, and answers the top
// domains per router (from the rollups) and per subscriber (from the
// subscriber-domain rollup), the domain filter, names beside remote hosts,
// and the resolver status: the second router is not its customers'
// resolver, and says so.
func TestDomainsThroughServe(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	// Caches read every 10 s; no reverse DNS (loopback only).
	srv := startServeInProcess(t, "  batch-age: 50ms\n", "domains:\n  poll-interval: 10s\n  timeout: 10s\n  reverse:\n    enabled: false\n")
	dir, cfgPath := filepath.Dir(srv.cfgPath), srv.cfgPath
	fl, err := simulator.New(simulator.Config{Routers: 2, Versions: "mixed", Password: "router-pw", Rate: 300, Seed: 21},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := fl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fl.Stop)
	pwFile := filepath.Join(dir, "router.pw")
	if err := os.WriteFile(pwFile, []byte("router-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	for i, rt := range fl.Routers() {
		var out, errOut testutil.SyncBuffer
		e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
		if err := run(ctx, e, []string{"router", "add", "--tls=false", "--config", cfgPath, "--name", fmt.Sprintf("tower%d", i+1),
			"--address", rt.APIAddr(), "--user", rt.Username, "--password-file", pwFile, "--timeout", "60s"}); err != nil {
			t.Fatalf("router add: %v\n%s\n%s", err, out.String(), errOut.String())
		}
	}
	c := login(t, srv.base, "admin", "e2e-admin-pw")

	// The routers' caches are read (at serve's first round, then every
	// minute) and the flows after that are named.
	var top struct {
		Rows []struct {
			Key     string `json:"key"`
			Name    string `json:"name"`
			Reverse bool   `json:"reverse"`
			Bytes   uint64 `json:"bytes"`
		} `json:"rows"`
	}
	testutil.WaitFor(t, 150*time.Second, "domains on tower1's flows", func() (bool, string) {
		if code := c.get("/api/v1/top/domain?range=1h&router=1&limit=20", &top); code != http.StatusOK {
			return false, fmt.Sprintf("status %d", code)
		}
		known := 0
		for _, r := range top.Rows {
			if r.Key != "unknown" {
				known++
			}
		}
		return known >= 3, fmt.Sprintf("%+v", top.Rows)
	})
	names := map[string]bool{}
	for _, r := range top.Rows {
		names[r.Key] = true
		if r.Key != "unknown" && (strings.Contains(r.Key, "---") || strings.Count(r.Key, ".") > 2) {
			t.Errorf("%q is not a registrable domain", r.Key)
		}
	}
	if !names["googlevideo.com"] && !names["nflxvideo.net"] {
		t.Errorf("the video CDNs are not among the domains: %v", names)
	}

	// A domain filters the flows, which carry it and their remote names.
	var dom string
	for _, r := range top.Rows {
		if r.Key != "unknown" {
			dom = r.Key
			break
		}
	}
	var page struct {
		Flows []struct {
			Domain     string `json:"domain"`
			RemoteName string `json:"remote_name"`
			Subscriber string `json:"subscriber"`
			Direction  string `json:"direction"`
		} `json:"flows"`
	}
	if code := c.get("/api/v1/flows?range=1h&router=1&limit=200&domain="+url.QueryEscape(dom), &page); code != http.StatusOK || len(page.Flows) == 0 {
		t.Fatalf("flows of %s: status %d, %d flows", dom, code, len(page.Flows))
	}
	sub := ""
	for _, f := range page.Flows {
		if f.Domain != dom {
			t.Fatalf("a flow of %q in the flows of %q", f.Domain, dom)
		}
		if !strings.HasSuffix(f.RemoteName, dom) {
			t.Errorf("the remote name %q is not a name of %s", f.RemoteName, dom)
		}
		if sub == "" && f.Subscriber != "" && (f.Direction == "download" || f.Direction == "upload") {
			sub = f.Subscriber
		}
	}
	if sub == "" {
		t.Fatalf("no subscriber among the flows of %s", dom)
	}

	// The subscriber's domains over the day, from the rollups (written
	// every minute).
	var sd struct {
		Rows []struct {
			Domain        string `json:"domain"`
			DownloadBytes uint64 `json:"download_bytes"`
		} `json:"rows"`
	}
	testutil.WaitFor(t, 90*time.Second, "the subscriber's domains", func() (bool, string) {
		if code := c.get("/api/v1/subscribers/domains?range=24h&subscriber="+url.QueryEscape(sub), &sd); code != http.StatusOK {
			return false, fmt.Sprintf("status %d", code)
		}
		for _, r := range sd.Rows {
			if r.Domain == dom {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", sd.Rows)
	})

	// Remote hosts have names.
	if code := c.get("/api/v1/top/remote?range=1h&router=1&limit=50", &top); code != http.StatusOK {
		t.Fatalf("top remote: %d", code)
	}
	named := 0
	for _, r := range top.Rows {
		if r.Name != "" && !r.Reverse {
			named++
		}
	}
	if named == 0 {
		t.Errorf("no remote host named: %+v", top.Rows)
	}

	// The resolver status: tower1 answers its customers' DNS, tower2 does
	// not, and says what that means.
	var status []domains.RouterStatus
	testutil.WaitFor(t, 90*time.Second, "the resolver verdicts", func() (bool, string) {
		if code := c.get("/api/v1/domains/status", &status); code != http.StatusOK {
			return false, fmt.Sprintf("status %d", code)
		}
		got := map[string]string{}
		for _, s := range status {
			got[s.Router] = s.Resolver
		}
		return got["tower1"] == domains.ResolverYes && got["tower2"] == domains.ResolverNo, fmt.Sprintf("%+v", status)
	})
	for _, s := range status {
		if s.Router == "tower2" && !strings.Contains(s.Warning, "resolver") {
			t.Errorf("tower2's warning %q", s.Warning)
		}
		// A poll may time out on a loaded machine (the race detector);
		// most succeed and name addresses.
		if s.Polls <= 2*s.Failures || s.Names == 0 {
			t.Errorf("%s: %d polls, %d failures (%s), %d names", s.Router, s.Polls, s.Failures, s.LastError, s.Names)
		}
	}
}
