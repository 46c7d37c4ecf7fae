package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/clickhouse/chtest"
	storagepkg "github.com/flowbox/flowbox/store/storage"
)

// TestServeOnClickHouse runs `flowbox serve` with store.backend:
// clickhouse against the chDB endpoint over HTTP, onboards a simulated
// CGNAT router through the API path, and reads its flows back through
// the console's API and the CLI: flow search, traffic, top talkers,
// subscriber usage, the abuse lookup, the settings. The SQLite database
// holds the inventory and the counters, and no raw flow; after a restart
// the flows are still answered.
func TestServeOnClickHouse(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	ch := chtest.Start(t)
	dir := t.TempDir()
	pw := filepath.Join(dir, "clickhouse.pw")
	if err := os.WriteFile(pw, []byte(ch.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	section := fmt.Sprintf("store:\n  backend: clickhouse\n  clickhouse:\n    addresses: [%q]\n    database: wisp\n    site: north\n    user: %s\n    password-file: %s\n",
		ch.Addr, ch.User, pw)
	// flowbox check reads the ClickHouse database's schema and writes
	// nothing: no database before serve, the current schema after.
	cfgFile := filepath.Join(dir, "check.yaml")
	if err := os.WriteFile(cfgFile, []byte("data-dir: "+filepath.Join(dir, "check-data")+"\n"+section), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the second sees what the first left: nothing
		if out, err := runWithEnv(nil, "check", "--config", cfgFile); err != nil || !strings.Contains(out, "clickhouse database wisp on "+ch.Addr+": no flowbox schema yet") {
			t.Errorf("check %d before serve: %v\n%s", i+1, err, out)
		}
	}
	srv := startServeInProcess(t, "  batch-age: 50ms\n", section)
	if out, err := runWithEnv(nil, "check", "--config", srv.cfgPath); err != nil || !strings.Contains(out, "clickhouse database wisp on "+ch.Addr+": schema ") ||
		!strings.Contains(out, "(current)") {
		t.Errorf("check beside serve: %v\n%s", err, out)
	}
	fl := onboardCGNATRouter(t, srv, 21)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg, err := LoadConfig(srv.cfgPath)
	if err != nil {
		t.Fatal(err)
	}

	// Flows arrive in ClickHouse: sample NAT flows of named subscribers,
	// read as the CLI reads (read-only, beside serve).
	var samples []natSample
	testutil.WaitFor(t, 90*time.Second, "named NAT flows in clickhouse", func() (bool, string) {
		st, err := storagepkg.Open(ctx, srv.dataDir, cfg.Store, storagepkg.ReadOnly, nil, nil)
		if err != nil {
			return false, err.Error()
		}
		defer st.Close()
		page, err := st.SearchFlows(ctx, store.SearchQuery{From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Minute), Limit: 5000})
		if err != nil {
			return false, err.Error()
		}
		samples = samples[:0]
		for _, f := range page.Flows {
			if len(samples) < 6 && f.Subscriber != "" && f.Direction == store.DirUpload && (f.Proto == 6 || f.Proto == 17) &&
				f.PostNATSrcAddr.IsValid() && f.PostNATSrcAddr != f.SrcAddr {
				samples = append(samples, natSample{public: netip.AddrPortFrom(f.PostNATSrcAddr, f.PostNATSrcPort),
					inside: netip.AddrPortFrom(f.SrcAddr, f.SrcPort), proto: f.Proto, at: time.UnixMilli((f.Start + f.End) / 2),
					subscriber: f.Subscriber, upload: true})
			}
		}
		return len(samples) == 6, fmt.Sprintf("%d samples of %d flows", len(samples), len(page.Flows))
	})

	c := login(t, srv.base, "admin", "e2e-admin-pw")
	var settings struct {
		FlowStore string `json:"flow_store"`
	}
	if code := c.get("/api/v1/settings", &settings); code != http.StatusOK || !strings.HasPrefix(settings.FlowStore, "clickhouse (database wisp, site north") {
		t.Errorf("settings: %d, flow store %q", code, settings.FlowStore)
	}
	// serve's writer spills to the data directory when ClickHouse cannot
	// take its inserts; the status shows the spill's room.
	var status struct {
		Store struct {
			SpillCapacity int64 `json:"spill_capacity"`
			SpilledFlows  int64 `json:"spilled_flows"`
		} `json:"store"`
	}
	if code := c.get("/api/v1/status", &status); code != http.StatusOK || status.Store.SpillCapacity != 1024<<20 {
		t.Errorf("status: %d, %+v", code, status)
	}
	if fi, err := os.Stat(filepath.Join(srv.dataDir, storagepkg.DefaultSpillDir)); err != nil || !fi.IsDir() {
		t.Errorf("spill directory: %v", err)
	}
	checkAPI := func(stage string) {
		t.Helper()
		var page struct {
			Flows []struct {
				Bytes uint64 `json:"bytes"`
			} `json:"flows"`
		}
		if code := c.get("/api/v1/flows?range=1h&limit=50", &page); code != http.StatusOK || len(page.Flows) == 0 {
			t.Errorf("%s: flow search: %d, %d flows", stage, code, len(page.Flows))
		}
		var series struct {
			BitsIn  []float64 `json:"bits_in"`
			BitsOut []float64 `json:"bits_out"`
		}
		if code := c.get("/api/v1/traffic?range=1h", &series); code != http.StatusOK || sum(series.BitsIn)+sum(series.BitsOut) == 0 {
			t.Errorf("%s: traffic: %d, %v", stage, code, series)
		}
		var top struct {
			Rows []struct {
				Label string `json:"label"`
				Bytes uint64 `json:"bytes"`
			} `json:"rows"`
		}
		if code := c.get("/api/v1/top/local?range=1h&limit=5", &top); code != http.StatusOK || len(top.Rows) == 0 || top.Rows[0].Bytes == 0 {
			t.Errorf("%s: top local hosts: %d, %+v", stage, code, top)
		}
		var usage struct {
			Rows []struct {
				Subscriber string `json:"subscriber"`
			} `json:"rows"`
		}
		from := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339)
		to := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		if code := c.get("/api/v1/subscribers/usage?"+url.Values{"from": {from}, "to": {to}}.Encode(), &usage); code != http.StatusOK || len(usage.Rows) == 0 {
			t.Errorf("%s: usage: %d, %+v", stage, code, usage)
		}
		for _, s := range samples {
			var ans struct {
				Matches []store.NATMapping `json:"matches"`
			}
			q := url.Values{"address": {s.public.Addr().String()}, "port": {strconv.Itoa(int(s.public.Port()))},
				"proto": {store.ProtoName(s.proto)}, "at": {s.at.UTC().Format(time.RFC3339)}}
			if code := c.get("/api/v1/nat/lookup?"+q.Encode(), &ans); code != http.StatusOK {
				t.Fatalf("%s: nat lookup: %d", stage, code)
			}
			found := false
			for _, m := range ans.Matches {
				found = found || (m.InsideAddr == s.inside.Addr() && m.InsidePort == s.inside.Port() && m.Subscriber == s.subscriber && m.Router == "tower1")
			}
			if !found {
				t.Errorf("%s: nat lookup of %s at %s: %+v, want %s of %s", stage, s.public, s.at, ans.Matches, s.inside, s.subscriber)
			}
		}
	}
	checkAPI("while serving")
	// The CLI's abuse lookup reads ClickHouse too.
	s0 := samples[0]
	ms, msg := natLookup(t, srv.cfgPath, "--address", s0.public.Addr().String(), "--port", strconv.Itoa(int(s0.public.Port())),
		"--at", s0.at.UTC().Format(time.RFC3339))
	if len(ms) == 0 || ms[0].InsideAddr != s0.inside.Addr() || ms[0].Subscriber != s0.subscriber {
		t.Errorf("nat lookup (CLI): %+v (%s)", ms, msg)
	}
	// SQLite holds the inventory, not the flows.
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(srv.dataDir, "flowbox.db")+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	var parts, routers int
	if err := db.QueryRow("SELECT (SELECT count(*) FROM raw_partitions), (SELECT count(*) FROM routers)").Scan(&parts, &routers); err != nil || parts != 0 || routers != 1 {
		t.Errorf("sqlite: %d raw partitions, %d routers (%v); want none and 1", parts, routers, err)
	}
	db.Close()

	// A restart: the flows are still there.
	if err := srv.stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	fl.Stop()
	srv2 := serveAgain(t, srv)
	c = login(t, srv2.base, "admin", "e2e-admin-pw")
	checkAPI("after a restart")
}

func sum(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s
}
