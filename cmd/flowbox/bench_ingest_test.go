package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
)

// BenchmarkIngestEndToEnd is the end-to-end ingest benchmark: it builds
// the flowbox binary, runs `flowbox serve` on loopback ports with a
// temporary data directory, blasts it with `flowbox simulate --target`
// (RouterOS-shaped NetFlow v9 from two exporters), then compares what the
// simulator sent with what the store kept (`flowbox stats --json`), and
// samples the serve process's memory (VmRSS, VmHWM) and CPU time from
// /proc. Everything runs on this machine: the simulator's CPU is taken
// from the same cores.
//
// FLOWBOX_BENCH_INGEST_RATE (flows/s, default 200000) and
// FLOWBOX_BENCH_INGEST_DURATION (default 10s; `make bench-ingest` runs 60s)
// set the load; FLOWBOX_BENCH_SERVE_CPUS and FLOWBOX_BENCH_SIM_CPUS pin
// serve and the simulator (taskset CPU lists; `make bench-ingest-1cpu`);
// FLOWBOX_BENCH_BINARY uses an already built binary;
// FLOWBOX_BENCH_NAT_RETENTION sets store.nat-retention (0 turns the NAT
// store off); FLOWBOX_BENCH_WEB_CLIENTS (default 0) runs that many console
// clients while the load runs, each asking in turn rollup views (fleet
// traffic, top talkers, applications over 1 h and 24 h) and raw-filtered
// ones (the traffic and the countries of port 443 over 1 h, as the router
// page asks them: quick first, then whole), and reports each kind's
// latencies and the answers of status 500 or more. The benchmark fails
// when a flow is lost. Run it alone:
//
//	go test -run '^$' -bench BenchmarkIngestEndToEnd -benchtime 1x ./cmd/flowbox
func BenchmarkIngestEndToEnd(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("reads /proc: linux only")
	}
	rate := envInt(b, "FLOWBOX_BENCH_INGEST_RATE", 200000)
	dur, err := time.ParseDuration(envOr("FLOWBOX_BENCH_INGEST_DURATION", "10s"))
	if err != nil {
		b.Fatalf("FLOWBOX_BENCH_INGEST_DURATION: %v", err)
	}
	bin := benchBinary(b)
	for b.Loop() {
		r := ingestRun(b, bin, rate, dur)
		b.ReportMetric(r.Sent/dur.Seconds(), "sent-flows/s")
		b.ReportMetric(r.Stored, "stored-flows")
		b.ReportMetric(r.Sent-r.Stored, "lost-flows")
		b.ReportMetric(r.MaxRSS/(1<<20), "max-RSS-MB")
		b.ReportMetric(r.HWM/(1<<20), "VmHWM-MB")
		b.ReportMetric(r.CPU/r.Wall, "serve-cores")
		if r.Stored > 0 {
			b.ReportMetric(r.CPU*1e9/r.Stored, "serve-cpu-ns/flow")
		}
		if r.Web != nil {
			w := r.Web
			b.ReportMetric(float64(w.requests), "web-requests")
			b.ReportMetric(float64(w.errors5xx), "web-5xx")
			b.ReportMetric(float64(w.partial), "web-partial")
			b.ReportMetric(w.pct("rollup", 50), "rollup-p50-ms")
			b.ReportMetric(w.pct("rollup", 99), "rollup-p99-ms")
			b.ReportMetric(w.pct("raw", 50), "raw-p50-ms")
			b.ReportMetric(w.pct("raw", 99), "raw-p99-ms")
			if w.errors5xx > 0 || w.pct("rollup", 99) > 500 {
				b.Errorf("console under load: %d answers of status 500 or more, rollup p99 %.0f ms (want none, under 500 ms): %v",
					w.errors5xx, w.pct("rollup", 99), w.codes)
			}
		}
		b.ReportMetric(0, "ns/op")
		b.Logf("%+v", r)
		if r.Sent == 0 || r.Stored != r.Sent || r.Dropped != 0 {
			b.Errorf("sent %.0f flows, stored %.0f, dropped %.0f (%v)", r.Sent, r.Stored, r.Dropped, r.DroppedBy)
		}
	}
}

// ingestResult is one run's numbers.
type ingestResult struct {
	Sent, Lagged, Received, Stored, Dropped float64
	DroppedBy                               map[string]uint64
	MaxRSS, HWM                             float64 // bytes
	CPU, Wall                               float64 // seconds of the serve process
	Drain                                   time.Duration
	Web                                     *webLoad // FLOWBOX_BENCH_WEB_CLIENTS
}

// webLoad is what the console clients of a run saw.
type webLoad struct {
	mu        sync.Mutex
	ms        map[string][]float64 // latencies by kind (rollup, raw)
	codes     map[int]int
	requests  int
	errors5xx int
	partial   int
}

// pct returns the p-th percentile of a kind's latencies, in ms.
func (w *webLoad) pct(kind string, p float64) float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	v := slices.Clone(w.ms[kind])
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[min(len(v)-1, int(math.Ceil(p/100*float64(len(v))))-1)]
}

// consoleLoad runs clients console clients against base until ctx is
// done: each logs in, then asks the views in turn.
func consoleLoad(ctx context.Context, b *testing.B, base, password string, clients int) *webLoad {
	w := &webLoad{ms: map[string][]float64{}, codes: map[int]int{}}
	views := []struct{ kind, path string }{
		{"rollup", "/api/v1/fleet/traffic?range=1h"},
		{"rollup", "/api/v1/top/local?range=1h"},
		{"rollup", "/api/v1/top/port?range=24h"},
		{"rollup", "/api/v1/traffic?range=24h"},
		{"raw", "/api/v1/traffic?range=1h&port=443&quick=1"},
		{"raw", "/api/v1/traffic?range=1h&port=443"},
		{"raw", "/api/v1/top/country?range=1h&port=443&quick=1"},
		{"raw", "/api/v1/top/country?range=1h&port=443"},
	}
	// One login (logins are rate-limited), shared by the clients as by
	// the tabs of a browser; each client has its own connections.
	jar, _ := cookiejar.New(nil)
	client := func() *http.Client {
		return &http.Client{Jar: jar, Timeout: 40 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, Proxy: nil}}
	}
	resp, err := client().PostForm(base+"/login", url.Values{"username": {"admin"}, "password": {password}})
	if err != nil {
		b.Fatalf("console login: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("console login: status %d", resp.StatusCode)
	}
	var wg sync.WaitGroup
	for i := range clients {
		c := client()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := i; ctx.Err() == nil; j++ {
				v := views[j%len(views)]
				start := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+v.path, nil)
				resp, err := c.Do(req)
				if err != nil {
					continue // the load ended (ctx), or a timeout: counted as no answer
				}
				var body struct {
					Partial bool `json:"partial"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				ms := float64(time.Since(start).Microseconds()) / 1000
				w.mu.Lock()
				w.requests++
				w.codes[resp.StatusCode]++
				if resp.StatusCode >= 500 {
					w.errors5xx++
				}
				if body.Partial {
					w.partial++
				}
				w.ms[v.kind] = append(w.ms[v.kind], ms)
				w.mu.Unlock()
			}
		}()
	}
	b.Cleanup(wg.Wait)
	return w
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// envIntOr is envInt that accepts 0.
func envIntOr(b *testing.B, k string, def int) int {
	v, err := strconv.Atoi(envOr(k, strconv.Itoa(def)))
	if err != nil || v < 0 {
		b.Fatalf("%s: want a number, 0 or more", k)
	}
	return v
}

func envInt(b *testing.B, k string, def int) int {
	v, err := strconv.Atoi(envOr(k, strconv.Itoa(def)))
	if err != nil || v <= 0 {
		b.Fatalf("%s: want a positive integer", k)
	}
	return v
}

// benchBinary builds flowbox (or returns FLOWBOX_BENCH_BINARY).
func benchBinary(b *testing.B) string {
	if p := os.Getenv("FLOWBOX_BENCH_BINARY"); p != "" {
		return p
	}
	out := filepath.Join(b.TempDir(), "flowbox")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("cannot build flowbox: %v\n%s", err, msg)
	}
	return out
}

func ingestRun(b *testing.B, bin string, rate int, dur time.Duration) ingestResult {
	dir := b.TempDir()
	nf := freePort(b, "udp")
	web := freePort(b, "tcp")
	cfg := filepath.Join(dir, "flowbox.yaml")
	data := filepath.Join(dir, "data")
	yaml := fmt.Sprintf("data-dir: %s\nlog:\n  level: warn\ncollector:\n  listen: [\"127.0.0.1:%d\"]\n  allowed-exporters: [\"127.0.0.0/8\"]\nweb:\n  listen: \"127.0.0.1:%d\"\n"+
		// The simulated subscribers are local: flows get their directions
		// (download, upload), as on a real network.
		"enrich:\n  prefixes: [\"100.64.0.0/10\"]\ndomains:\n  reverse:\n    enabled: false\n", data, nf, web)
	const adminPassword = "bench-admin-pw"
	yaml = strings.Replace(yaml, "web:\n", "web:\n  admin-password: "+adminPassword+"\n", 1)
	// FLOWBOX_BENCH_NAT_RETENTION sets store.nat-retention (0: the NAT
	// store off, to measure its cost).
	if v := os.Getenv("FLOWBOX_BENCH_NAT_RETENTION"); v != "" {
		yaml += "store:\n  nat-retention: " + v + "\n"
	}
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		b.Fatal(err)
	}
	var serveErr testutil.SyncBuffer
	serve := pinned(b, "FLOWBOX_BENCH_SERVE_CPUS", bin, "serve", "--config", cfg)
	serve.Stderr = &serveErr
	if err := serve.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	defer func() {
		if serve.ProcessState == nil {
			serve.Process.Kill()
			<-exited
		}
	}()
	waitListening(b, web, exited, &serveErr)

	// Memory samples while the load runs and drains.
	var mu sync.Mutex
	var maxRSS, hwm float64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, h, err := procMemory(serve.Process.Pid); err == nil {
				mu.Lock()
				maxRSS, hwm = max(maxRSS, rss), max(hwm, h)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	cpu0, _ := procCPU(serve.Process.Pid)
	start := time.Now()
	var load *webLoad
	loadCtx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	if n := envIntOr(b, "FLOWBOX_BENCH_WEB_CLIENTS", 0); n > 0 {
		load = consoleLoad(loadCtx, b, fmt.Sprintf("https://127.0.0.1:%d", web), adminPassword, n)
	}

	var sim struct {
		Flows  float64 `json:"flows"`
		Lagged float64 `json:"lagged"`
	}
	// FLOWBOX_BENCH_SUBSCRIBERS sets the subscribers per exporter (default
	// 300; 20000 spreads the load over as many hosts as a large WISP has).
	subscribers := cmp.Or(os.Getenv("FLOWBOX_BENCH_SUBSCRIBERS"), "300")
	out, err := pinned(b, "FLOWBOX_BENCH_SIM_CPUS", bin, "simulate", "--target", fmt.Sprintf("127.0.0.1:%d", nf), "--rate", strconv.Itoa(rate),
		"--duration", dur.String(), "--json", "--log-level", "warn", "--subscribers", subscribers).Output()
	if err != nil {
		b.Fatalf("simulate: %v\n%s", err, out)
	}
	if err := json.Unmarshal(lastLine(out), &sim); err != nil {
		b.Fatalf("simulate output %q: %v", out, err)
	}
	sent := time.Now()
	stopLoad()
	// The store keeps writing the queued flows: wait until the stored count
	// stops moving (the collector's counters are saved every 5 s).
	var stored float64
	stable := 0
	for stable < 3 && time.Since(sent) < 2*time.Minute {
		time.Sleep(2 * time.Second) // benchmark drain: the stored count must stay put 3 times, which is no failure, so not testutil.WaitFor
		st := benchStats(b, bin, cfg)
		if st.stored == stored && st.stored > 0 {
			stable++
		} else {
			stable = 0
		}
		stored = st.stored
		if stored >= sim.Flows {
			break
		}
	}
	drain := time.Since(sent)
	cpu1, _ := procCPU(serve.Process.Pid)
	wall := time.Since(start).Seconds()
	serve.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			b.Errorf("serve: %v\n%s", err, serveErr.String())
		}
	case <-time.After(time.Minute):
		b.Fatalf("serve did not stop\n%s", serveErr.String())
	}
	close(stop)
	<-sampled
	st := benchStats(b, bin, cfg)
	return ingestResult{Sent: sim.Flows, Lagged: sim.Lagged, Received: st.received, Stored: st.stored, Dropped: st.dropped,
		DroppedBy: st.by, MaxRSS: maxRSS, HWM: hwm, CPU: cpu1 - cpu0, Wall: wall, Drain: drain, Web: load}
}

// pinned returns the command bin args, run on the CPUs listed in the
// environment variable env (taskset -c LIST) when it is set: `make
// bench-ingest-1cpu` puts serve on one core and the simulator on the other,
// so that serve's flows/s per core is measured.
func pinned(b *testing.B, env, bin string, args ...string) *exec.Cmd {
	cpus := os.Getenv(env)
	if cpus == "" {
		return exec.Command(bin, args...)
	}
	ts, err := exec.LookPath("taskset")
	if err != nil {
		b.Fatalf("%s is set but taskset is missing (apt-get install util-linux): %v", env, err)
	}
	return exec.Command(ts, append([]string{"-c", cpus, bin}, args...)...)
}

func lastLine(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return lines[len(lines)-1]
}

func waitListening(b *testing.B, port int, exited <-chan error, stderr *testutil.SyncBuffer) {
	testutil.WaitFor(b, 30*time.Second, "serve to listen", func() (bool, string) {
		select {
		case err := <-exited:
			b.Fatalf("serve exited: %v\n%s", err, stderr.String())
		default:
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			return false, err.Error() + "\n" + stderr.String()
		}
		c.Close()
		return true, ""
	})
}

type benchStatsRow struct {
	received, stored, dropped float64
	by                        map[string]uint64
}

// benchStats sums `flowbox stats --json` over the exporters.
func benchStats(b *testing.B, bin, cfg string) benchStatsRow {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "stats", "--json", "--config", cfg).Output()
	if err != nil {
		b.Fatalf("stats: %v\n%s", err, out)
	}
	var rows []struct {
		FlowsReceived uint64            `json:"flows_received"`
		FlowsStored   uint64            `json:"flows_stored"`
		FlowsDropped  uint64            `json:"flows_dropped"`
		By            map[string]uint64 `json:"flows_dropped_by_reason"`
	}
	if err := json.Unmarshal(out, &rows); err != nil {
		b.Fatalf("stats output %q: %v", out, err)
	}
	r := benchStatsRow{by: map[string]uint64{}}
	for _, x := range rows {
		r.received += float64(x.FlowsReceived)
		r.stored += float64(x.FlowsStored)
		r.dropped += float64(x.FlowsDropped)
		for k, v := range x.By {
			if v > 0 {
				r.by[k] += v
			}
		}
	}
	return r
}

// procMemory returns VmRSS and VmHWM of a process, in bytes.
func procMemory(pid int) (rss, hwm float64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			return 0, 0, err
		}
		if k == "VmRSS" {
			rss = kb * 1024
		} else {
			hwm = kb * 1024
		}
	}
	return rss, hwm, sc.Err()
}

// procCPU returns the user and system CPU time of a process, in seconds.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	_, rest, ok := bytes.Cut(b, []byte(") "))
	if !ok {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	return (ut + st) / 100, nil // USER_HZ is 100 on Linux
}
