package clickhouse

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// TestTotalsMatchFlows: the materialized views fill the minute and hour
// totals, per source and direction and per interface, with the counters
// (scaled by sampling) of the flows inserted, over several inserts.
func TestTotalsMatchFlows(t *testing.T) {
	c, w := migratedWriter(t, "s", testExporters)
	ctx := context.Background()
	flows := testFlows(4000, time.Now().Truncate(time.Minute))
	for i := 0; i < len(flows); i += 1000 {
		if err := w.Insert(ctx, flows[i:i+1000]); err != nil {
			t.Fatal(err)
		}
	}
	// Another site's flows are kept apart.
	other, err := NewFlowWriter(c, "other", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Insert(ctx, flows[:10]); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		table string
		step  int64
		ifs   bool
	}{{"tot_m", 60, false}, {"tot_h", 3600, false}, {"if_m", 60, true}, {"if_h", 3600, true}} {
		want := map[string][3]uint64{}
		add := func(k string, f *store.Flow) {
			v := want[k]
			v[0] += f.Scale(f.Bytes)
			v[1] += f.Scale(f.Packets)
			v[2]++
			want[k] = v
		}
		for i := range flows {
			f := &flows[i]
			b := f.End / 1000 / tc.step * tc.step
			if tc.ifs {
				add(fmt.Sprintf("%d %d 0 %d", b, testSource(f), f.InIf), f)
				add(fmt.Sprintf("%d %d 1 %d", b, testSource(f), f.OutIf), f)
			} else {
				add(fmt.Sprintf("%d %d %d", b, testSource(f), f.Direction), f)
			}
		}
		key := "toUnixTimestamp(t), src, dir"
		if tc.ifs {
			key = "toUnixTimestamp(t), src, side, ifx"
		}
		out, err := c.Query(ctx, fmt.Sprintf("SELECT %s, sum(bytes), sum(packets), sum(flows) FROM %s.%s WHERE site = 's' GROUP BY %s FORMAT TabSeparated",
			key, c.Database(), tc.table, key))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][3]uint64{}
		for line := range strings.Lines(string(out)) {
			f := strings.Split(strings.TrimSpace(line), "\t")
			var v [3]uint64
			n := len(f) - 3
			for i := range v {
				fmt.Sscan(f[n+i], &v[i])
			}
			got[strings.Join(f[:n], " ")] = v
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d keys, want %d", tc.table, len(got), len(want))
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("%s %s: %v, want %v", tc.table, k, got[k], v)
			}
		}
	}
}
