package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

func TestUsagePeriod(t *testing.T) {
	mx, err := time.LoadLocation("America/Mexico_City")
	if err != nil {
		t.Fatalf("no time zone data (time/tzdata is embedded): %v", err)
	}
	now := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC) // 26 Nov 21:00 in Mexico City
	for _, c := range []struct {
		month, from, to string
		loc             *time.Location
		want            [2]string
		err             string
	}{
		{month: "2026-10", loc: mx, want: [2]string{"2026-10-01T06:00:00Z", "2026-11-01T06:00:00Z"}},
		{month: "2026-10", loc: time.UTC, want: [2]string{"2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z"}},
		{loc: mx, want: [2]string{"2026-11-01T06:00:00Z", "2026-11-27T03:00:00Z"}}, // this month so far
		{loc: time.UTC, want: [2]string{"2026-11-01T00:00:00Z", "2026-11-27T03:00:00Z"}},
		{from: "2026-11-20", to: "2026-11-21", loc: mx, want: [2]string{"2026-11-20T06:00:00Z", "2026-11-21T06:00:00Z"}},
		{from: "2026-11-20T10:00:00Z", loc: mx, want: [2]string{"2026-11-20T10:00:00Z", "2026-11-27T03:00:00Z"}},
		{month: "2026-13", loc: mx, err: "not YYYY-MM"},
		{month: "2026-10", from: "2026-10-02", loc: mx, err: "excludes"},
		{from: "yesterday", loc: mx, err: "neither"},
		{from: "2026-11-21", to: "2026-11-20", loc: mx, err: "empty"},
	} {
		from, to, err := usagePeriod(c.month, c.from, c.to, c.loc, now)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%+v: error %v, want %q", c, err, c.err)
			}
			continue
		}
		got := [2]string{from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339)}
		if err != nil || got != c.want {
			t.Errorf("%+v: %v %v, want %v", c, got, err, c.want)
		}
	}
}

// TestSubscribersUsageCommand stores flows of three subscribers on two
// routers and reads the report as JSON, CSV and a table, filtered by
// router and search, while the store is open for writing.
func TestSubscribersUsageCommand(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := storetest.Open(ctx, dir, store.DefaultConfig(), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, r := range []*store.Router{{Name: "tower-a", Address: "127.0.0.2:8728"}, {Name: "tower-b", Address: "127.0.0.3:8728"}} {
		if err := st.AddRouter(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	now := time.Now().UnixMilli()
	flow := func(exp, sub string, dir store.Direction, bytes uint64) store.Flow {
		return store.Flow{Exporter: netip.AddrPortFrom(netip.MustParseAddr(exp), 2055), Start: now - 1000, End: now,
			SrcAddr: netip.MustParseAddr("192.0.2.1"), DstAddr: netip.MustParseAddr("10.0.0.1"), Bytes: bytes, Packets: 1,
			Direction: dir, Subscriber: sub}
	}
	flows := []store.Flow{
		flow("127.0.0.2", "Maria Garcia", store.DirDownload, 5_000_000), flow("127.0.0.2", "Maria Garcia", store.DirUpload, 200_000),
		flow("127.0.0.2", "jlopez", store.DirDownload, 9_000_000), flow("127.0.0.3", "jlopez", store.DirDownload, 1_000),
		flow("127.0.0.3", "Ana Ruiz", store.DirUpload, 70_000), flow("127.0.0.3", "", store.DirDownload, 123), // no name: not counted
		flow("127.0.0.3", "Ana Ruiz", store.DirInternal, 999), // internal: not counted
	}
	if err := st.InsertFlows(ctx, flows); err != nil {
		t.Fatal(err)
	}
	cancel() // the writer flushes the rollups and the usage when it stops
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	report := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		e := &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		if err := run(context.Background(), e, append([]string{"subscribers", "usage", "--data-dir", dir, "--from", "2000-01-01"}, args...)); err != nil {
			t.Fatalf("subscribers usage %v: %v (%s)", args, err, errb.String())
		}
		return out.String()
	}

	var js struct {
		Resolution string `json:"resolution"`
		Rows       []usageJSON
	}
	if err := json.Unmarshal([]byte(report("--format", "json")), &js); err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, r := range js.Rows {
		got = append(got, r.Router+"/"+r.Subscriber)
	}
	if strings.Join(got, ",") != "tower-a/jlopez,tower-a/Maria Garcia,tower-b/Ana Ruiz,tower-b/jlopez" ||
		js.Rows[1].DownloadBytes != 5_000_000 || js.Rows[1].UploadBytes != 200_000 || js.Rows[2].UploadBytes != 70_000 || js.Resolution != "1d" {
		t.Fatalf("json report %s: %+v", js.Resolution, js.Rows)
	}

	recs, err := csv.NewReader(strings.NewReader(report("--format", "csv", "--router", "tower-b", "--sort", "name"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0][0] != "subscriber" || recs[1][0] != "Ana Ruiz" || recs[2][0] != "jlopez" || recs[2][5] != "1000" {
		t.Fatalf("csv report: %q", recs)
	}

	table := report("--search", "GARC", "--tz", "UTC")
	for _, want := range []string{"Maria Garcia", "tower-a", "5 MB", "200 kB", "5.2 MB", "total (1)"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "jlopez") {
		t.Errorf("search did not filter:\n%s", table)
	}

	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	for _, args := range [][]string{{"--router", "nope"}, {"--format", "xml"}, {"--month", "2026/10"}, {"--tz", "Mars/Base"}} {
		if err := run(context.Background(), e, append([]string{"subscribers", "usage", "--data-dir", dir}, args...)); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
