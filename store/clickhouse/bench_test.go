package clickhouse

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store/storetest/flowmodel"
)

// BenchmarkInsert measures raw flow inserts into ClickHouse (chDB through
// the HTTP endpoint chdbhttp, or the server of FLOWBOX_CLICKHOUSE_URL): realistic flows (the netflowtest model of a
// 1,000-subscriber router at 20,000 flows/s, enriched, none repeated) in
// inserts of 65,536, as the writer sends them; at most 32 inserts
// (-benchtime 20x). It reports flows/s end to end, the client's encoding time a
// flow (the rest is the endpoint and chDB), the time the hourly top-N
// rollups of these flows take a flow, and the bytes a flow takes on
// disk once merged (the flows table's active parts) and what the rollups
// the views fill take a flow, logging the columns that take the most.
func BenchmarkInsert(b *testing.B) {
	c, w := migratedWriter(b, "bench", nil)
	ctx := context.Background()
	// Distinct flows for every insert (repeated ones would compress
	// better than real traffic): at most 32 inserts.
	const batch = maxInsertFlows
	pool := flowmodel.ModelFlows(b, 7, 32*batch, 20000, time.Now().Truncate(time.Minute))
	var encode time.Duration
	n := 0
	start := time.Now()
	for b.Loop() {
		if (n+1)*batch > len(pool) {
			b.Fatalf("more than %d inserts: use -benchtime %dx or less", len(pool)/batch, len(pool)/batch)
		}
		flows := pool[n*batch : (n+1)*batch]
		t0 := time.Now()
		buf := make([]byte, 0, 200*batch)
		for j := range flows {
			buf = appendFlow(buf, "bench", flows[j].RouterID, uint32(j), &flows[j])
		}
		encode += time.Since(t0)
		if err := w.Insert(ctx, flows); err != nil {
			b.Fatal(err)
		}
		n++
	}
	elapsed := time.Since(start)
	total := float64(n * batch)
	b.ReportMetric(total/elapsed.Seconds(), "flows/s")
	b.ReportMetric(float64(encode.Nanoseconds())/total, "encode-ns/flow")
	b.ReportMetric(0, "ns/op")
	// The writer's hourly top-N rollups of these flows (their hours over).
	later := time.Now().Add(3 * time.Hour)
	t0 := time.Now()
	if _, err := NewReader(c, "bench", func() time.Time { return later }).rollupGrain(ctx, topHours, later); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(t0).Nanoseconds())/total, "topk-ns/flow")
	if err := c.Exec(ctx, "OPTIMIZE TABLE "+c.cfg.tablesDB()+".flows FINAL"); err != nil {
		b.Fatal(err)
	}
	out, err := c.Query(ctx, "SELECT sum(data_compressed_bytes), sum(rows) FROM system.parts WHERE database = '"+c.cfg.tablesDB()+"' AND table = 'flows' AND active")
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(out))
	bytes, _ := strconv.ParseFloat(f[0], 64)
	rows, _ := strconv.ParseFloat(f[1], 64)
	if rows != total {
		b.Fatalf("%v rows stored, %v inserted", rows, total)
	}
	b.ReportMetric(bytes/rows, "disk-B/flow")
	// The rollups the views filled from these flows (merged as they are).
	out, err = c.Query(ctx, "SELECT sum(data_compressed_bytes) FROM system.parts WHERE database = '"+c.cfg.tablesDB()+"' AND table != 'flows' AND active")
	if err != nil {
		b.Fatal(err)
	}
	roll, _ := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	b.ReportMetric(roll/rows, "rollups-B/flow")
	cols, err := c.Query(ctx, "SELECT name, round(data_compressed_bytes / "+f[1]+", 2) AS b FROM system.columns WHERE database = '"+c.cfg.tablesDB()+"' AND table = 'flows' ORDER BY data_compressed_bytes DESC LIMIT 12 FORMAT TabSeparated")
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("bytes a flow by column: %s", strings.ReplaceAll(strings.TrimSpace(string(cols)), "\n", ", "))
}
