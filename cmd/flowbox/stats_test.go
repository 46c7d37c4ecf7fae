package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
	storagepkg "github.com/flowbox/flowbox/store/storage"
	"github.com/flowbox/flowbox/store/storetest"
	"github.com/flowbox/flowbox/web"
)

// TestStatsWhileServing writes flows and collector counters with a running
// store, then runs `flowbox stats` on the same data directory while the
// writer still holds it open.
func TestStatsWhileServing(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := storetest.Open(ctx, dir, store.DefaultConfig(), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.AddRouter(ctx, &store.Router{Name: "tower", Address: "127.0.0.2:8728"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	now := time.Now()
	var flows []store.Flow
	for i := range 30 {
		exp := "127.0.0.2"
		if i%3 == 0 {
			exp = "127.0.0.3"
		}
		flows = append(flows, store.Flow{
			Exporter: netip.AddrPortFrom(netip.MustParseAddr(exp), 2055), End: now.UnixMilli(), Start: now.UnixMilli() - 10,
			SrcAddr: netip.MustParseAddr("10.0.0.1"), DstAddr: netip.MustParseAddr("192.0.2.1"), Bytes: 100, Packets: 2,
		})
	}
	if err := st.InsertFlows(ctx, flows); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveExporterStats(ctx, []store.ExporterStats{{
		Exporter: netip.MustParseAddr("127.0.0.2"), Packets: 4, FlowsReceived: 25, LostFlows: 3,
		FlowsDropped: map[string]uint64{"no_template": 5}, FirstSeen: now.Add(-time.Minute), LastSeen: now, Trusted: true,
	}, {
		// A source that is no router and not allowed: counted, not stored.
		Exporter: netip.MustParseAddr("198.51.100.9"), Packets: 2, FlowsReceived: 60,
		FlowsDropped: map[string]uint64{store.DropUntrusted: 60}, FirstSeen: now, LastSeen: now,
	}}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the writer to store the 30 flows", func() (bool, string) {
		if t2, ok, _ := st.LastFlowFrom(ctx, 1); !ok || t2.IsZero() {
			return false, "no flow of router 1 yet"
		}
		sums, err := st.ExporterSummaries(ctx)
		if err != nil || len(sums) != 3 {
			return false, fmt.Sprintf("summaries %+v, %v", sums, err)
		}
		return sums[0].FlowsStored+sums[1].FlowsStored == 30, fmt.Sprintf("%d stored", sums[0].FlowsStored+sums[1].FlowsStored)
	})
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	if err := run(ctx, e, []string{"stats", "--data-dir", dir, "--json"}); err != nil {
		t.Fatalf("stats --json: %v (%s)", err, errb.String())
	}
	var rows []map[string]any
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatalf("bad JSON %q: %v", out.String(), err)
	}
	if len(rows) != 3 {
		t.Fatalf("got %d rows: %s", len(rows), out.String())
	}
	for _, k := range []string{"exporter", "router", "flows_received", "flows_stored", "flows_dropped", "bytes", "packets", "first_seen", "last_seen", "lost_flows", "trusted"} {
		if _, ok := rows[0][k]; !ok {
			t.Errorf("key %q missing", k)
		}
	}
	r := rows[0]
	if r["exporter"] != "127.0.0.2" || r["router"] != "tower" || r["flows_received"] != 25.0 || r["flows_stored"] != 20.0 ||
		r["flows_dropped"] != 5.0 || r["bytes"] != 2000.0 || r["packets"] != 40.0 || r["lost_flows"] != 3.0 {
		t.Fatalf("row for 127.0.0.2 = %v", r)
	}
	if rows[1]["exporter"] != "127.0.0.3" || rows[1]["router"] != "" || rows[1]["flows_stored"] != 10.0 || rows[1]["trusted"] != true {
		t.Fatalf("row for 127.0.0.3 = %v", rows[1])
	}
	if u := rows[2]; u["exporter"] != "198.51.100.9" || u["trusted"] != false || u["flows_received"] != 60.0 ||
		u["flows_stored"] != 0.0 || u["flows_dropped"] != 60.0 {
		t.Fatalf("row for the untrusted 198.51.100.9 = %v", u)
	}
	out.Reset()
	if err := run(ctx, e, []string{"stats", "--data-dir", dir}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "allowed exporter") || !strings.Contains(out.String(), "no_template 5") ||
		!strings.Contains(out.String(), "untrusted (not stored)") || !strings.Contains(out.String(), "untrusted 60") {
		t.Fatalf("table:\n%s", out.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestStatsMissingDataDir(t *testing.T) {
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	err := run(context.Background(), e, []string{"stats", "--data-dir", t.TempDir() + "/nope"})
	if err == nil || !strings.Contains(err.Error(), "cannot open the data directory") {
		t.Fatalf("err = %v", err)
	}
}

// TestSetupTokenCommand: serve's first start without an admin password
// writes the setup token; `flowbox setup-token` prints it, and says why
// when there is none.
func TestSetupTokenCommand(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	if err := run(context.Background(), e, []string{"setup-token", "--data-dir", dir}); err == nil ||
		!strings.Contains(err.Error(), "no setup token") {
		t.Fatalf("setup-token before any start: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, web.SetupTokenFile), []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(context.Background(), e, []string{"setup-token", "--data-dir", dir}); err != nil ||
		strings.TrimSpace(out.String()) != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("setup-token: %q, %v", out.String(), err)
	}
}

// TestStatsSpill: with the ClickHouse store, `flowbox stats` says what
// serve's writer holds on disk for ClickHouse, and the damaged files it
// set aside.
func TestStatsSpill(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	st, err := storetest.Open(context.Background(), dataDir, store.DefaultConfig(), testutil.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	cfgPath := filepath.Join(dir, "flowbox.yaml")
	if err := os.WriteFile(cfgPath, []byte("data-dir: "+dataDir+"\nstore:\n  backend: clickhouse\n  clickhouse:\n    spill-max-mb: 16\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runWithEnv(nil, "stats", "--config", cfgPath)
	if err != nil || strings.Contains(out, "waiting for clickhouse") {
		t.Fatalf("no spill: %v\n%s", err, out)
	}
	spill := filepath.Join(dataDir, storagepkg.DefaultSpillDir)
	if err := os.MkdirAll(spill, 0o700); err != nil {
		t.Fatal(err)
	}
	// A spill file as the writer makes them (store/clickhouse/spill.go).
	head := []byte(`{"name":"x-1-300","flows":300,"oldest":1,"exporters":[{"a":"127.0.0.2:2055","n":300}]}`)
	file := append([]byte("FBSPILL1"), binary.LittleEndian.AppendUint32(nil, uint32(len(head)))...)
	file = append(append(file, head...), make([]byte, 1<<20)...)
	for name, data := range map[string][]byte{"00000000000000000001.spill": file, "00000000000000000002.spill.bad": []byte("?")} {
		if err := os.WriteFile(filepath.Join(spill, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err = runWithEnv(nil, "stats", "--config", cfgPath)
	if err != nil || !strings.Contains(out, "waiting for clickhouse in "+spill+": 300 flows in 1 files (1.0 of 16 MiB); 1 damaged files set aside") {
		t.Fatalf("spill: %v\n%s", err, out)
	}
}
