package flowdb_test

import (
	"context"
	"log/slog"
	"net/netip"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/flowdb"
	"github.com/flowbox/flowbox/store/storetest"
)

// benchEnricher is a stand-in for enrich.Enricher that labels model flows
// the way the real one does, without its router polling and geo data: the
// direction from the model router's own prefixes (enrich's rule), the
// subscriber of the local address, AS, country and an application from
// the model's remote networks.
type benchEnricher struct {
	local []netip.Prefix
	subs  map[netip.Addr]string
	nets  []benchNet
}

type benchNet struct {
	prefix  netip.Prefix
	asn     uint32
	country string
	app     string
}

// Countries and application labels of the model's networks.
var benchNetInfo = map[string][2]string{
	"Netflix": {"US", "netflix"}, "Google": {"US", "youtube"}, "Meta": {"US", "facebook"},
	"Akamai": {"NL", ""}, "Cloudflare": {"US", ""}, "Valve": {"LU", "steam"},
	"Microsoft": {"IE", "microsoft"}, "Apple": {"US", "icloud"}, "Amazon": {"IE", ""},
	"Zoom": {"US", "zoom"}, "Quad9": {"CH", "dns"}, "Comcast": {"US", ""},
	"Deutsche Telekom": {"DE", ""}, "Orange": {"FR", ""}, "DigitalOcean": {"NL", ""},
}

func newBenchEnricher(models ...*netflowtest.Model) *benchEnricher {
	e := &benchEnricher{subs: map[netip.Addr]string{}}
	for _, m := range models {
		for _, a := range m.Addresses() {
			e.local = append(e.local, a.Prefix.Masked())
		}
		for _, s := range m.Subscribers() {
			e.subs[s.Addr] = s.Name
			if s.Addr6.IsValid() {
				e.subs[s.Addr6] = s.Name
			}
		}
	}
	for _, n := range netflowtest.Networks() {
		info := benchNetInfo[n.Name]
		for _, p := range n.Prefixes {
			e.nets = append(e.nets, benchNet{p, n.ASN, info[0], info[1]})
		}
	}
	// Most specific first (service subsets of the big networks).
	for i := range e.nets {
		for j := i + 1; j < len(e.nets); j++ {
			if e.nets[j].prefix.Bits() > e.nets[i].prefix.Bits() {
				e.nets[i], e.nets[j] = e.nets[j], e.nets[i]
			}
		}
	}
	return e
}

func (e *benchEnricher) isLocal(a netip.Addr) bool {
	for _, p := range e.local {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (e *benchEnricher) network(a netip.Addr) *benchNet {
	for i := range e.nets {
		if e.nets[i].prefix.Contains(a) {
			return &e.nets[i]
		}
	}
	return nil
}

// enrich labels flows exported from exporter (attributed to routerID).
func (e *benchEnricher) enrich(flows []store.Flow, exporter netip.AddrPort, routerID int64) {
	for i := range flows {
		f := &flows[i]
		f.Exporter, f.Version, f.RouterID = exporter, 10, routerID
		src := e.isLocal(f.SrcAddr) || f.SrcAddr.IsLinkLocalUnicast()
		dst := e.isLocal(f.DstAddr) || f.DstAddr.IsMulticast() ||
			(f.PostNATDstAddr.IsValid() && e.isLocal(f.PostNATDstAddr))
		switch {
		case src && dst:
			f.Direction = store.DirInternal
		case src:
			f.Direction = store.DirUpload
		case dst:
			f.Direction = store.DirDownload
		default:
			f.Direction = store.DirTransit
		}
		local, remote := f.LocalRemote()
		f.Subscriber = e.subs[local]
		f.Application, f.SrcCountry, f.DstCountry = "", "", ""
		switch {
		case f.SrcPort == 53 || f.DstPort == 53:
			f.Application = "dns"
		case f.SrcPort == 123 || f.DstPort == 123:
			f.Application = "ntp"
		}
		if n := e.network(remote); n != nil {
			if f.Application == "" {
				f.Application = n.app
			}
			if f.Direction == store.DirDownload {
				f.SrcAS, f.SrcCountry = n.asn, n.country
			} else {
				f.DstAS, f.DstCountry = n.asn, n.country
			}
		}
		if f.Direction == store.DirDownload {
			f.DstCountry = "private"
		} else if f.Direction == store.DirUpload {
			f.SrcCountry = "private"
		}
	}
}

// modelFlows returns n enriched flows of a 1,000-subscriber WISP router
// exported over the seconds before end at rate flows/s.
func modelFlows(tb testing.TB, seed uint64, n, rate int, end time.Time) []store.Flow {
	m, err := netflowtest.NewModel(netflowtest.ModelConfig{Seed: seed, Subscribers: 1000})
	if err != nil {
		tb.Fatal(err)
	}
	e := newBenchEnricher(m)
	exp := netip.MustParseAddrPort("127.0.0.2:2055")
	out := make([]store.Flow, 0, n)
	secs := (n + rate - 1) / rate
	for i := range secs {
		at := end.Add(time.Duration(i-secs) * time.Second)
		k := len(out)
		out = m.AppendFlows(out, min(rate, n-len(out)), at)
		e.enrich(out[k:], exp, 1)
	}
	return out
}

type benchLog struct{ tb testing.TB }

func (w benchLog) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func benchLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(benchLog{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkInsertModelFlows measures sustained ingest of realistic flows
// (the netflowtest model of a 1,000-subscriber WISP router, enriched) into
// raw partitions, their host index and the rollups, in batches of 4,096
// (the collector's batch size). It reports flows/s, the CPU time a flow
// of the whole process (cpu-ns/flow: ingest all-in, every goroutine: raw
// rows, host index, rollups, NAT mappings, garbage collection), allocations
// per flow, and the bytes on disk per raw flow of the raw partitions alone (rows and
// host index), of their host index, and of the whole database file; then
// the same once the partitions are packed into blocks (rawpack.go): the
// raw partitions, and the file's pages in use (the pages the rows left are
// free, and SQLite reuses them before the file grows), with the packer's
// time per flow (one goroutine).
func BenchmarkInsertModelFlows(b *testing.B) {
	ctx := context.Background()
	end := time.Date(2026, 1, 14, 21, 30, 0, 0, time.UTC)
	pool := modelFlows(b, 7, 1<<19, 5000, end)
	s, err := storetest.Open(ctx, b.TempDir(), store.DefaultConfig(), benchLogger(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	flowdb.SetClock(s.FlowDB, func() time.Time { return end })
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	const batchSize = 4096
	n := 0
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := cpuTime(b)
	start := time.Now()
	for b.Loop() {
		i := (n * batchSize) % (len(pool) - batchSize)
		if err := s.InsertFlows(ctx, pool[i:i+batchSize]); err != nil {
			b.Fatal(err)
		}
		n++
	}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	cpu := cpuTime(b) - cpu0
	runtime.ReadMemStats(&after)
	flows := float64(n * batchSize)
	b.ReportMetric(flows/elapsed.Seconds(), "flows/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/flows, "cpu-ns/flow")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/flows, "allocs/flow")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/flows, "B/flow")
	b.ReportMetric(0, "ns/op")
	if err := flowdb.CloseAllPartitions(ctx, s.FlowDB); err != nil {
		b.Fatal(err)
	}
	raw, index, file, stored, err := flowdb.DiskUsage(ctx, s.FlowDB)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(raw)/float64(stored), "raw-disk-B/flow")
	b.ReportMetric(float64(index)/float64(stored), "host-index-B/flow")
	b.ReportMetric(float64(file)/float64(stored), "file-B/flow")
	// The same flows once the packer has moved them into blocks.
	flowdb.SetClock(s.FlowDB, func() time.Time { return end.Add(48 * time.Hour) })
	packStart := time.Now()
	if _, err := flowdb.PackAll(ctx, s.FlowDB); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(packStart).Nanoseconds())/float64(stored), "pack-ns/flow")
	raw, _, _, _, err = flowdb.DiskUsage(ctx, s.FlowDB)
	if err != nil {
		b.Fatal(err)
	}
	used, err := flowdb.FileInUse(ctx, s.FlowDB)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(raw)/float64(stored), "packed-raw-disk-B/flow")
	b.ReportMetric(float64(used)/float64(stored), "packed-file-B/flow")
}
