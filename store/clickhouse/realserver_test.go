package clickhouse

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

// TestRealServer runs the store end to end on the real ClickHouse server
// of FLOWBOX_CLICKHOUSE_URL (http[s]://user:password@host:port; with
// FLOWBOX_CLICKHOUSE_CLUSTER, through that cluster's Distributed tables),
// in a database of its own dropped after: Open migrates it, the writer
// (Run) inserts queued flows, the rollups run, and the series, a top-N
// list and a search count every flow once. Every other test of this
// package runs on that server too when the variable is set (newTestClient);
// without it they run on chDB, and this one skips.
func TestRealServer(t *testing.T) {
	if os.Getenv("FLOWBOX_CLICKHOUSE_URL") == "" {
		t.Skip("FLOWBOX_CLICKHOUSE_URL is not set (http[s]://user:password@host:port of a ClickHouse server to test against); the other tests of this package ran on chDB")
	}
	c := newTestClient(t)
	ctx := context.Background()
	s, err := Open(ctx, c.cfg, testExporters, 8, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	run, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(run) }()
	end := time.Now().Truncate(time.Minute).Add(-10 * time.Minute)
	flows := testFlows(5000, end)
	if err := s.InsertFlows(ctx, flows); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 2*time.Minute, "the flows written", func() (bool, string) {
		n := countFlows(t, c)
		return n == len(flows), fmt.Sprintf("%d of %d", n, len(flows))
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := s.RollupTop(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	var bytes, n uint64
	for i := range flows {
		bytes += flows[i].Scale(flows[i].Bytes)
		n++
	}
	from, to := end.Add(-2*time.Hour), end.Add(time.Minute)
	ser, err := s.TimeSeries(ctx, store.SeriesQuery{From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	var sb, sf uint64
	for _, l := range ser.Lines {
		for i := range l.Bytes {
			sb, sf = sb+l.Bytes[i], sf+l.Flows[i]
		}
	}
	if sb != bytes || sf != n {
		t.Errorf("series: %d bytes, %d flows; want %d, %d", sb, sf, bytes, n)
	}
	top, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: store.DimRemoteHost, N: 10})
	if err != nil || top.Total.Bytes != bytes || top.Total.Flows != n {
		t.Errorf("top remote hosts: total %+v (%v); want %d bytes, %d flows", top.Total, err, bytes, n)
	}
	seen := 0
	q := store.SearchQuery{From: from, To: to, Limit: 1000}
	for {
		page, err := s.SearchFlows(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		seen += len(page.Flows)
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	if seen != len(flows) {
		t.Errorf("search: %d flows, want %d", seen, len(flows))
	}
}
