package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/clickhouse/chtest"
	storagepkg "github.com/flowbox/flowbox/store/storage"
	"github.com/flowbox/flowbox/store/storetest"
)

// TestStoreCopyToClickHouse fills a SQLite store with translated flows of
// the last 2 hours, copies it with `flowbox store copy --to clickhouse`
// under a 1-hour raw retention, and reads both: the raw flows of the hour
// (and the NAT mappings ClickHouse made of them), and the older NAT
// mappings copied as they are, answer the same searches and abuse
// lookups; a second copy is refused.
func TestStoreCopyToClickHouse(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	ch := chtest.Start(t)
	ctx := context.Background()
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	st, err := storetest.Open(ctx, dataDir, store.DefaultConfig(), testutil.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &store.Router{Name: "cgnat", Address: "127.0.0.2:8728"}
	if err := st.AddRouter(ctx, r); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var flows []store.Flow
	for i := range 400 {
		age := 30 * time.Minute
		if i%2 == 1 {
			age = 90 * time.Minute
		}
		end := now.Add(-age + time.Duration(i)*time.Second).UnixMilli()
		flows = append(flows, store.Flow{Exporter: netip.MustParseAddrPort("127.0.0.2:2055"), Version: 9, RouterID: r.ID,
			Start: end - 2000, End: end, Proto: 6, Direction: store.DirUpload,
			SrcAddr: netip.AddrFrom4([4]byte{100, 64, 0, byte(i)}), SrcPort: uint16(40000 + i),
			DstAddr: netip.MustParseAddr("198.51.100.7"), DstPort: 443,
			PostNATSrcAddr: netip.MustParseAddr("203.0.113.1"), PostNATSrcPort: uint16(10000 + i),
			Bytes: uint64(1000 + i), Packets: 3, Subscriber: fmt.Sprintf("cust-%d", i%7)})
	}
	run, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- st.Run(run) }()
	if err := st.InsertFlows(ctx, flows); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st.Close()

	pw := filepath.Join(dir, "ch.pw")
	if err := os.WriteFile(pw, []byte(ch.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "flowbox.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf("data-dir: %s\nstore:\n  raw-retention: 1h\n  clickhouse:\n    addresses: [%q]\n    user: %s\n    password-file: %s\n    database: copied\n",
		dataDir, ch.Addr, ch.User, pw)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runWithEnv(nil, "store", "copy", "--to", "clickhouse", "--config", cfgPath)
	if err != nil || !strings.Contains(out, "copied 200 raw flows since") || !strings.Contains(out, "and 200 older NAT mappings") {
		t.Fatalf("store copy: %v\n%s", err, out)
	}

	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	sqCfg, chCfg := cfg.Store, cfg.Store
	chCfg.Backend = storagepkg.BackendClickHouse
	sq, err := storagepkg.Open(ctx, dataDir, sqCfg, storagepkg.ReadOnly, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	cs, err := storagepkg.Open(ctx, dataDir, chCfg, storagepkg.ReadOnly, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	q := store.SearchQuery{From: now.Add(-time.Hour), To: now.Add(time.Minute), Limit: 1000, Filter: store.Filter{Hosts: []netip.Prefix{netip.MustParsePrefix("100.64.0.0/24")}}}
	want, err := sq.SearchFlows(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cs.SearchFlows(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Flows) != 200 || len(got.Flows) != 200 {
		t.Fatalf("the last hour's flows: %d in sqlite, %d in clickhouse; want 200", len(want.Flows), len(got.Flows))
	}
	for i := range want.Flows {
		if w, g := want.Flows[i], got.Flows[i]; w.End != g.End || w.SrcAddr != g.SrcAddr || w.Bytes != g.Bytes || w.Subscriber != g.Subscriber || g.RouterID != r.ID {
			t.Fatalf("flow %d: clickhouse %+v, sqlite %+v", i, g, w)
		}
	}
	for _, i := range []int{0, 1, 198, 399} { // recent and old mappings
		f := flows[i]
		nq := store.NATQuery{Public: f.PostNATSrcAddr, Port: f.PostNATSrcPort, At: time.UnixMilli(f.End)}
		want, err := sq.LookupNAT(ctx, nq)
		if err != nil {
			t.Fatal(err)
		}
		got, err := cs.LookupNAT(ctx, nq)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) != 1 || !reflect.DeepEqual(got, want) {
			t.Errorf("mapping of flow %d: clickhouse %+v, sqlite %+v", i, got, want)
		}
	}
	if out, err := runWithEnv(nil, "store", "copy", "--to", "clickhouse", "--config", cfgPath); err == nil || !strings.Contains(out+err.Error(), "already holds 200 flows") {
		t.Fatalf("a second copy: %v\n%s", err, out)
	}
}
