package flowdb

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
)

// TestSeriesKeyedRollups: a series filtered on protocols or countries,
// which the rollups rank without folding any into "other", is answered
// from the rollups, equal to the raw answer; subscribers beyond the
// top-K (folded into "other") and two raw fields are answered from raw
// flows. Beyond the raw window the rollups still answer.
func TestSeriesKeyedRollups(t *testing.T) {
	cfg := store.DefaultConfig()
	cfg.TopK = 3
	s, err := Open(context.Background(), t.TempDir(), cfg, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeAll(s) })
	s.now = func() time.Time { return testNow }
	ctx := context.Background()
	exp := netip.MustParseAddrPort("127.0.0.2:2055")
	var flows []store.Flow
	for i := range 200 {
		at := testNow.Add(-time.Duration(i) * 17 * time.Second)
		proto := []uint8{6, 17}[i%2]
		dir := []store.Direction{store.DirDownload, store.DirUpload}[i%3%2]
		f := store.Flow{Exporter: exp, Start: at.UnixMilli() - 1000, End: at.UnixMilli(), Proto: proto, SrcPort: 443, DstPort: 50000,
			Bytes: uint64(1000 + i), Packets: 2, Direction: dir, Subscriber: fmt.Sprintf("s%d", i%5),
			SrcAddr: netip.MustParseAddr("198.51.100.1"), DstAddr: netip.MustParseAddr("100.64.0.9"),
			SrcCountry: []string{"BR", "US"}[i%2], DstCountry: []string{"BR", "US"}[i%2]}
		flows = append(flows, f)
	}
	// One busy minute: ten subscribers, more than the top 3 (the
	// subscriber dimension folds some into "other" there).
	for i := range 10 {
		f := flows[0]
		f.Subscriber, f.Bytes = fmt.Sprintf("busy%d", i), uint64(10000+i)
		flows = append(flows, f)
	}
	writeDirect(t, s, flows)
	if err := s.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	from, to := testNow.Add(-time.Hour), testNow.Add(time.Minute)
	for _, c := range []struct {
		name string
		flt  store.Filter
		raw  bool
	}{
		{"udp", store.Filter{Protocols: []uint8{17}}, false},
		{"tcp and udp, downloads", store.Filter{Protocols: []uint8{6, 17}, Directions: []store.Direction{store.DirDownload}}, false},
		{"a country", store.Filter{Countries: []string{"BR"}}, false},
		{"a subscriber beyond the top 3", store.Filter{Subscribers: []string{"s1"}}, true},
		{"a protocol and a port", store.Filter{Protocols: []uint8{17}, Ports: []uint16{443}}, true},
	} {
		q := store.SeriesQuery{From: from, To: to, Step: time.Minute, GroupBy: store.DimDirection, Filter: c.flt}
		got, err := s.TimeSeries(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if (got.Resolution == store.ResRaw) != c.raw {
			t.Errorf("%s: resolution %s", c.name, got.Resolution)
		}
		q.Resolution = store.ResRaw
		want, err := s.TimeSeries(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Lines) != len(want.Lines) || len(got.Lines) == 0 {
			t.Fatalf("%s: %d lines, raw %d", c.name, len(got.Lines), len(want.Lines))
		}
		for i := range got.Lines {
			if got.Lines[i].Label != want.Lines[i].Label || !slices.Equal(got.Lines[i].Bytes, want.Lines[i].Bytes) ||
				!slices.Equal(got.Lines[i].Flows, want.Lines[i].Flows) {
				t.Errorf("%s: %s differs from the raw answer", c.name, got.Lines[i].Label)
			}
		}
	}
	// Beyond the raw window (48 h), the protocol rollups still answer.
	res, err := s.TimeSeries(ctx, store.SeriesQuery{From: testNow.Add(-72 * time.Hour), To: testNow, Step: time.Hour, Filter: store.Filter{Protocols: []uint8{17}}})
	if err != nil || res.Resolution == store.ResRaw {
		t.Errorf("72 h of udp: %v, %v", err, res)
	}
}
