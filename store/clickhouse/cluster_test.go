package clickhouse

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/clickhouse/chtest"
)

// TestForegroundInsert checks where the setting goes in each kind of
// INSERT flowbox sends, and that other statements are left alone.
func TestForegroundInsert(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"INSERT INTO d.flows (a, b) SETTINGS insert_deduplication_token = 'x' FORMAT RowBinary",
			"INSERT INTO d.flows (a, b) SETTINGS distributed_foreground_insert = 1, insert_deduplication_token = 'x' FORMAT RowBinary"},
		{"INSERT INTO d.t (a) FORMAT RowBinary", "INSERT INTO d.t (a) SETTINGS distributed_foreground_insert = 1 FORMAT RowBinary"},
		{"INSERT INTO d.t (site, t) VALUES ('a', 1)", "INSERT INTO d.t (site, t) SETTINGS distributed_foreground_insert = 1 VALUES ('a', 1)"},
		{"INSERT INTO d.t (a)\nSELECT a FROM d.u SETTINGS max_threads = 1",
			"INSERT INTO d.t (a) SETTINGS distributed_foreground_insert = 1\nSELECT a FROM d.u SETTINGS max_threads = 1"},
		{"INSERT INTO d.t (a)\nSETTINGS insert_deduplication_token = 'y'\nSELECT a FROM d.u",
			"INSERT INTO d.t (a)\nSETTINGS distributed_foreground_insert = 1, insert_deduplication_token = 'y'\nSELECT a FROM d.u"},
		{"SELECT 1 SETTINGS max_threads = 1", "SELECT 1 SETTINGS max_threads = 1"},
		{"CREATE TABLE d.x (a UInt8) ENGINE = Memory", "CREATE TABLE d.x (a UInt8) ENGINE = Memory"},
	} {
		if got := foregroundInsert(c.in); got != c.want {
			t.Errorf("%q:\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

// TestMigrateCluster migrates a cluster's two servers (two chDB endpoints,
// each defining chtest.Cluster as itself): each gets the tables in its
// local database and the Distributed tables over them; flows written and
// read through them are those of a plain store; a migration that changes
// a table's columns makes its Distributed table again; and a database
// laid out for the other mode is refused.
func TestMigrateCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two chDB endpoints")
	}
	a, b := chtest.Start(t), chtest.Start(t)
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.Addresses = []string{a.Addr, b.Addr}
	cfg.User, cfg.Cluster, cfg.Database = a.User, chtest.Cluster, "fleet"
	c := clientWith(t, cfg, a.Password)
	if n, err := Migrate(ctx, c); err != nil || n == 0 {
		t.Fatalf("first run: %d applied, %v", n, err)
	}
	if n, err := Migrate(ctx, c); err != nil || n != 0 {
		t.Fatalf("second run: %d applied (want 0), %v", n, err)
	}
	engines := func(c *Client, db string) map[string]string {
		t.Helper()
		out, err := c.Query(ctx, fmt.Sprintf("SELECT name, engine FROM system.tables WHERE database = %s FORMAT TabSeparated", quote(db)))
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for line := range strings.Lines(string(out)) {
			k, v, _ := strings.Cut(strings.TrimSpace(line), "\t")
			m[k] = v
		}
		return m
	}
	for i := range cfg.Addresses {
		one := c.only(i)
		local, dist := engines(one, "fleet_local"), engines(one, "fleet")
		if local["flows"] != "MergeTree" || local["tot_m_mv"] != "MaterializedView" || local["top_h"] != "SummingMergeTree" {
			t.Fatalf("server %d: local tables %v", i, local)
		}
		for name, engine := range local {
			if strings.HasSuffix(engine, "MergeTree") && dist[name] != "Distributed" {
				t.Errorf("server %d: %s is %q in fleet, want Distributed", i, name, dist[name])
			}
		}
		if dist["flowbox_migrations"] != "MergeTree" || dist["tot_m_mv"] != "" {
			t.Errorf("server %d: fleet holds %v", i, dist)
		}
	}

	// Flows through the Distributed tables: the rows and their rollups.
	c1 := c.only(0)
	s, err := newStore(c1, testExporters, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(-time.Hour).Truncate(time.Minute)
	flows := testFlows(50, end)
	if err := s.w.Insert(ctx, flows); err != nil {
		t.Fatal(err)
	}
	if err := s.w.Insert(ctx, flows[:10]); err != nil { // another insert: stored again
		t.Fatal(err)
	}
	for _, q := range []struct{ stmt, want string }{
		{"SELECT count() FROM fleet.flows", "60"},
		{"SELECT count() FROM fleet_local.flows", "60"},
		{"SELECT sum(flows) FROM fleet.tot_m", "60"},
		{"SELECT sum(flows) FROM fleet.tot_h", "60"},
	} {
		if out, err := c1.Query(ctx, q.stmt); err != nil || strings.TrimSpace(string(out)) != q.want {
			t.Errorf("%s: %q %v, want %s", q.stmt, out, err, q.want)
		}
	}
	page, err := s.Reader.SearchFlows(ctx, store.SearchQuery{From: end.Add(-time.Hour), To: end.Add(time.Hour), Limit: 100})
	if err != nil || len(page.Flows) != 60 {
		t.Fatalf("search: %v, %v", page, err)
	}

	// A migration adds a column: the Distributed table follows.
	if err := c1.Exec(ctx, "ALTER TABLE fleet_local.top_done ADD COLUMN extra UInt8"); err != nil {
		t.Fatal(err)
	}
	if err := syncDistributed(ctx, c1); err != nil {
		t.Fatal(err)
	}
	if out, err := c1.Query(ctx, "SELECT count() FROM system.columns WHERE database = 'fleet' AND table = 'top_done' AND name = 'extra'"); err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Fatalf("distributed top_done after the change: %q %v", out, err)
	}

	// The other mode's layout is refused, either way.
	plain := cfg
	plain.Cluster = ""
	if _, err := Migrate(ctx, clientWith(t, plain, a.Password)); err == nil || !strings.Contains(err.Error(), "laid out for a cluster") {
		t.Fatalf("plain store on a cluster's database: %v", err)
	}
	plain.Database = "single"
	pc := clientWith(t, plain, a.Password)
	if _, err := Migrate(ctx, pc.only(0)); err != nil {
		t.Fatal(err)
	}
	clustered := cfg
	clustered.Database = "single"
	if _, err := Migrate(ctx, clientWith(t, clustered, a.Password)); err == nil || !strings.Contains(err.Error(), "holds the flows of one server") {
		t.Fatalf("cluster on a plain store's database: %v", err)
	}
	bad := cfg
	bad.Cluster = "no such"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "clickhouse.cluster") {
		t.Fatalf("bad cluster name: %v", err)
	}
}
