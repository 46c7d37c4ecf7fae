package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
)

// exporterRow is the part of `flowbox stats --json` the trust test reads.
type exporterRow struct {
	Exporter      string `json:"exporter"`
	Trusted       bool   `json:"trusted"`
	FlowsReceived uint64 `json:"flows_received"`
	FlowsStored   uint64 `json:"flows_stored"`
	ByReason      map[string]uint64
}

// TestUntrustedExporterThroughServe runs `flowbox serve` with no router and
// no allowed exporter, and blasts flows at it from 127.0.0.2 (`flowbox
// simulate --target`): they are counted per source, shown as untrusted in
// `flowbox stats --json` and the console's status, and not stored. Accepted
// from the console, the source's next flows are stored.
func TestUntrustedExporterThroughServe(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	srv := startServeInProcess(t, "  batch-age: 50ms\n")
	cfgPath, nf := srv.cfgPath, "127.0.0.1:"+strconv.Itoa(srv.nfPort)
	c := login(t, srv.base, "admin", "e2e-admin-pw")

	blast := func() uint64 {
		t.Helper()
		var out testutil.SyncBuffer
		e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &testutil.SyncBuffer{}, getenv: func(string) string { return "" }}
		if err := run(context.Background(), e, []string{"simulate", "--target", nf, "--source", "127.0.0.2", "--routers", "1",
			"--rate", "2000", "--duration", "1s", "--json"}); err != nil {
			t.Fatalf("simulate: %v", err)
		}
		var res struct {
			Flows uint64 `json:"flows"`
		}
		if err := json.Unmarshal([]byte(out.String()), &res); err != nil || res.Flows == 0 {
			t.Fatalf("simulate output %q: %v", out.String(), err)
		}
		return res.Flows
	}
	stats := func() map[string]exporterRow {
		var out testutil.SyncBuffer
		e := &env{stdout: &out, stderr: &testutil.SyncBuffer{}, getenv: func(string) string { return "" }}
		if err := run(context.Background(), e, []string{"stats", "--json", "--config", cfgPath}); err != nil {
			t.Fatalf("stats: %v", err)
		}
		var rows []struct {
			exporterRow
			ByReason map[string]uint64 `json:"flows_dropped_by_reason"`
		}
		if err := json.Unmarshal([]byte(out.String()), &rows); err != nil {
			t.Fatalf("stats output %q: %v", out.String(), err)
		}
		m := map[string]exporterRow{}
		for _, r := range rows {
			r.exporterRow.ByReason = r.ByReason
			m[r.Exporter] = r.exporterRow
		}
		return m
	}

	sent := blast()
	testutil.WaitFor(t, 30*time.Second, "the untrusted source in flowbox stats", func() (bool, string) {
		r, ok := stats()["127.0.0.2"]
		return ok && r.FlowsReceived >= sent, fmt.Sprintf("%+v (sent %d)", r, sent)
	})
	r := stats()["127.0.0.2"]
	if r.Trusted || r.FlowsStored != 0 || r.ByReason["untrusted"] != r.FlowsReceived {
		t.Fatalf("untrusted source: %+v", r)
	}
	var status struct {
		Store struct {
			OK bool `json:"ok"`
		} `json:"store"`
		Unknown []struct {
			Exporter string `json:"exporter"`
			Trusted  bool   `json:"trusted"`
		} `json:"unknown_exporters"`
	}
	if code := c.get("/api/v1/status", &status); code != http.StatusOK || !status.Store.OK ||
		len(status.Unknown) != 1 || status.Unknown[0].Exporter != "127.0.0.2" {
		t.Fatalf("status %d: %+v", code, status)
	}

	// Accept it from the console: the next flows are stored.
	body, _ := json.Marshal(map[string]string{"prefix": "127.0.0.2"})
	resp, err := c.http.Post(c.base+"/api/v1/exporters/allowed", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("accept: %s", resp.Status)
	}
	sent2 := blast()
	testutil.WaitFor(t, 30*time.Second, "the accepted source's flows stored", func() (bool, string) {
		r := stats()["127.0.0.2"]
		// The first packets after the acceptance may wait for a template.
		return r.Trusted && r.FlowsStored >= sent2*9/10, fmt.Sprintf("%+v (sent %d)", r, sent2)
	})
	var allowed []struct {
		Prefix, Source, AddedBy string
	}
	if code := c.get("/api/v1/exporters/allowed", &allowed); code != http.StatusOK || len(allowed) != 1 ||
		allowed[0].Prefix != "127.0.0.2/32" || allowed[0].Source != "console" {
		t.Fatalf("allowed %d: %+v", code, allowed)
	}
}
