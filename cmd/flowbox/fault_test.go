package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

// Fault tests (issue 13, point 9): what flowbox serve does when it is
// killed, stopped under load, runs out of disk, or meets another flowbox on
// its data directory or port. The ones that need a real process (kill -9,
// SIGTERM at a high rate) run the built binary (testutil.BuildFlowbox); the
// others run serve in-process (run).

// faultSetup is the configuration of one serve of a fault test.
type faultSetup struct {
	path, data string // config file, data directory
	nf, web    string // NetFlow (UDP) and console (TCP) listen addresses
}

// newFaultSetup writes a config for serve in dir (data in data, or
// dir/data when data is ""): free loopback ports, flows from 127.0.0.0/8
// trusted (the simulator's sources), batches handed over every 50 ms, an
// admin password, and the given log level.
func newFaultSetup(t *testing.T, dir, data, level string) faultSetup {
	t.Helper()
	if data == "" {
		data = filepath.Join(dir, "data")
	}
	f := faultSetup{
		path: filepath.Join(dir, "flowbox.yaml"), data: data,
		nf:  "127.0.0.1:" + strconv.Itoa(freePort(t, "udp")),
		web: "127.0.0.1:" + strconv.Itoa(freePort(t, "tcp")),
	}
	f.write(t)
	if level != "" {
		b, _ := os.ReadFile(f.path)
		if err := os.WriteFile(f.path, append(b, "log:\n  level: "+level+"\n"...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f faultSetup) write(t *testing.T) {
	t.Helper()
	cfg := fmt.Sprintf("data-dir: %s\ncollector:\n  listen: [%q]\n  allowed-exporters: [\"127.0.0.0/8\"]\n  batch-age: 50ms\n"+
		"web:\n  listen: %q\n  admin-password: fault-admin-pw\ndomains:\n  reverse:\n    enabled: false\n", f.data, f.nf, f.web)
	if err := os.WriteFile(f.path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// stats runs `flowbox stats --json` in-process.
func (f faultSetup) stats(t *testing.T) []statsRow {
	t.Helper()
	var out, errOut testutil.SyncBuffer
	e := &env{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	if err := run(context.Background(), e, []string{"stats", "--json", "--config", f.path}); err != nil {
		t.Fatalf("stats: %v\n%s", err, errOut.String())
	}
	var rows []statsRow
	if err := json.Unmarshal([]byte(out.String()), &rows); err != nil {
		t.Fatalf("stats output %q: %v", out.String(), err)
	}
	return rows
}

// stored sums flows_stored over the exporters of `flowbox stats --json`.
func (f faultSetup) stored(t *testing.T) uint64 {
	t.Helper()
	var n uint64
	for _, r := range f.stats(t) {
		n += r.FlowsStored
	}
	return n
}

// healthz returns the status of GET /healthz, 0 when the console does
// not answer.
func (f faultSetup) healthz() int {
	c := &http.Client{Timeout: 10 * time.Second, Transport: consoleTransport("")}
	resp, err := c.Get("https://" + f.web + "/healthz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// serveProc is `flowbox serve` run from the built binary.
type serveProc struct {
	cmd    *exec.Cmd
	stderr *testutil.SyncBuffer
	exited chan struct{}
	err    error // the exit, once exited is closed
}

// startServe starts the binary's serve on the setup and waits until its
// console answers /healthz. The test's end kills it if it still runs.
func startServe(t *testing.T, bin string, f faultSetup) *serveProc {
	t.Helper()
	p := &serveProc{cmd: exec.Command(bin, "serve", "--config", f.path), stderr: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	testutil.WaitFor(t, 30*time.Second, "serve's console", func() (bool, string) {
		select {
		case <-p.exited:
			t.Fatalf("serve exited: %v\n%s", p.err, p.stderr.String())
		default:
		}
		code := f.healthz()
		return code == http.StatusOK, fmt.Sprintf("/healthz answers %d", code)
	})
	return p
}

// stop sends sig and waits (up to a minute) for the process to exit.
func (p *serveProc) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		return p.err
	case <-time.After(time.Minute):
		t.Fatalf("serve did not exit within a minute of %s\n%s", sig, p.stderr.String())
		return nil
	}
}

// startSimulate runs `flowbox simulate --target` from the binary until
// the returned stop is called (or the test ends), at rate flows/s.
func startSimulate(t *testing.T, bin, target string, rate int) (stop func()) {
	t.Helper()
	cmd := exec.Command(bin, "simulate", "--target", target, "--rate", strconv.Itoa(rate), "--duration", "5m", "--log-level", "error")
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	stop = func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

// sums are the totals of a series.
type sums struct{ bytes, packets, flows uint64 }

// seriesTotals reads, from the store (read-only, beside or after serve),
// the per-minute series of every flow from the raw rows and from the
// rollups over the last hour.
func seriesTotals(t *testing.T, data string) (raw, rolled *store.Series) {
	t.Helper()
	ctx := context.Background()
	st, err := storetest.OpenReadOnly(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().Truncate(time.Minute)
	q := store.SeriesQuery{From: now.Add(-time.Hour), To: now.Add(5 * time.Minute), Step: time.Minute}
	out := [2]*store.Series{}
	for i, res := range []store.Resolution{store.ResRaw, store.ResAuto} {
		q.Resolution = res
		s, err := st.TimeSeries(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if want := []store.Resolution{store.ResRaw, store.ResMinute}[i]; s.Resolution != want {
			t.Fatalf("series resolution %s, want %s", s.Resolution, want)
		}
		out[i] = s
	}
	return out[0], out[1]
}

func total(s *store.Series) sums {
	var out sums
	for _, l := range s.Lines {
		for i := range l.Bytes {
			out.bytes += l.Bytes[i]
			out.packets += l.Packets[i]
			out.flows += l.Flows[i]
		}
	}
	return out
}

// perMinute returns the series' total line as "minute bytes packets flows"
// lines, for the minutes with traffic.
func perMinute(s *store.Series) []string {
	m := map[time.Time]sums{}
	for _, l := range s.Lines {
		for i, tm := range s.Times {
			c := m[tm]
			m[tm] = sums{c.bytes + l.Bytes[i], c.packets + l.Packets[i], c.flows + l.Flows[i]}
		}
	}
	var out []string
	for tm, c := range m {
		if c.flows > 0 {
			out = append(out, fmt.Sprintf("%s %d %d %d", tm.UTC().Format("15:04"), c.bytes, c.packets, c.flows))
		}
	}
	slices.Sort(out)
	return out
}

// TestFaultKill9RollupsComplete kills serve with SIGKILL while flows
// arrive, before any rollup flush (serve flushes its first minute of
// rollups a minute after it starts): the raw rows survive, the rollups are
// lost. The next serve counts the rows beyond the rollup watermark again,
// so after it the minute rollups equal the raw flows, minute for minute.
func TestFaultKill9RollupsComplete(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: builds and runs the binary")
	}
	bin := testutil.BuildFlowbox(t)
	f := newFaultSetup(t, t.TempDir(), "", "info")
	first := startServe(t, bin, f)
	stopSim := startSimulate(t, bin, f.nf, 5000)
	testutil.WaitFor(t, 30*time.Second, "5,000 flows stored", func() (bool, string) {
		n := f.stored(t)
		return n >= 5000, fmt.Sprintf("%d flows stored", n)
	})
	// The flows keep arriving until the kill: rows are written after any
	// rollup flush.
	if err := first.stop(t, syscall.SIGKILL); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("serve after SIGKILL: %v", err)
	}
	stopSim()
	raw, rolled := seriesTotals(t, f.data)
	if total(rolled).flows >= total(raw).flows {
		t.Fatalf("the kill lost no rollup (raw %+v, rollups %+v): nothing to prove", total(raw), total(rolled))
	}
	storedRaw := f.stored(t)
	if storedRaw != total(raw).flows {
		t.Fatalf("flowbox stats says %d flows stored, the raw rows hold %d", storedRaw, total(raw).flows)
	}
	t.Logf("after kill -9: %d raw flows, %d in the rollups", total(raw).flows, total(rolled).flows)

	second := startServe(t, bin, f)
	testutil.WaitFor(t, 30*time.Second, "the replay of the rows beyond the watermark", func() (bool, string) {
		return strings.Contains(second.stderr.String(), "counted the raw rows of the unclean stop into the rollups"), second.stderr.String()
	})
	if err := second.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, second.stderr.String())
	}
	raw2, rolled2 := seriesTotals(t, f.data)
	if total(raw2) != total(raw) {
		t.Fatalf("the raw flows changed across the restart: %+v, then %+v", total(raw), total(raw2))
	}
	if total(rolled2) != total(raw2) {
		t.Fatalf("rollups %+v, raw flows %+v: want them equal", total(rolled2), total(raw2))
	}
	if g, w := perMinute(rolled2), perMinute(raw2); !slices.Equal(g, w) {
		t.Fatalf("per minute, rollups:\n%s\nraw flows:\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
}

// TestFaultSIGTERMUnderLoad stops serve with SIGTERM while `flowbox
// simulate` sends 200,000 flows/s. Proven for every exporter: every flow
// the collector decoded (flows_received, saved at shutdown after the
// writer drained) is stored or counted as dropped with a reason,
// flows_received = flows_stored + sum(flows_dropped_by_reason), and the
// shutdown itself drops nothing (no "shutdown" drops: the readers drain
// their sockets and the writer takes every batch handed over). Datagrams
// the kernel dropped or still held when the sockets closed were never
// decoded: they are outside flows_received (the kernel's drop counter is
// the collector's metric). Drops for a full queue under overload, before
// or during the drain, are counted (queue_full) and logged here.
func TestFaultSIGTERMUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: builds and runs the binary")
	}
	bin := testutil.BuildFlowbox(t)
	f := newFaultSetup(t, t.TempDir(), "", "warn")
	serve := startServe(t, bin, f)
	stopSim := startSimulate(t, bin, f.nf, 200000)
	testutil.WaitFor(t, 40*time.Second, "300,000 flows stored under load", func() (bool, string) {
		n := f.stored(t)
		return n >= 300000, fmt.Sprintf("%d flows stored", n)
	})
	if err := serve.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, serve.stderr.String())
	}
	stopSim()
	var received, stored uint64
	for _, r := range f.stats(t) {
		var dropped uint64
		for _, n := range r.DroppedByReason {
			dropped += n
		}
		t.Logf("exporter %s: received %d, stored %d, dropped %v", r.Exporter, r.FlowsReceived, r.FlowsStored, r.DroppedByReason)
		if r.FlowsReceived != r.FlowsStored+dropped {
			t.Errorf("exporter %s: received %d flows, stored %d and dropped %d: %d unaccounted", r.Exporter,
				r.FlowsReceived, r.FlowsStored, dropped, int64(r.FlowsReceived)-int64(r.FlowsStored+dropped))
		}
		if n := r.DroppedByReason[store.DropShutdown]; n != 0 {
			t.Errorf("exporter %s: %d flows dropped by the shutdown", r.Exporter, n)
		}
		received += r.FlowsReceived
		stored += r.FlowsStored
	}
	if stored < 300000 {
		t.Fatalf("%d flows stored in all, want at least the 300,000 seen before the signal", stored)
	}
	t.Logf("in all: %d flows received, %d stored", received, stored)
}

// TestFaultTwoServesOneDataDir starts a second serve on the data directory
// of a running one (other ports): it refuses, naming the holder.
func TestFaultTwoServesOneDataDir(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	dir := t.TempDir()
	first := newFaultSetup(t, dir, "", "")
	_, firstErr, _ := startCommand(t, "serve", "--config", first.path)
	waitHealthyInProcess(t, first, firstErr)
	second := newFaultSetup(t, t.TempDir(), first.data, "")
	err := runToError(t, second)
	var le *store.LockedError
	want := fmt.Sprintf("data directory %s is in use by this process (pid %d)", first.data, os.Getpid())
	if !errors.As(err, &le) || !strings.Contains(err.Error(), want) {
		t.Fatalf("second serve on the data directory: %v; want a *store.LockedError saying %q", err, want)
	}
}

// TestFaultTwoServesOnePort starts a second serve on the NetFlow port of a
// running one (another data directory): the collector's probe refuses the
// port.
func TestFaultTwoServesOnePort(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	first := newFaultSetup(t, t.TempDir(), "", "")
	_, firstErr, _ := startCommand(t, "serve", "--config", first.path)
	waitHealthyInProcess(t, first, firstErr)
	second := newFaultSetup(t, t.TempDir(), "", "")
	second.nf = first.nf
	second.write(t)
	err := runToError(t, second)
	if err == nil || !strings.Contains(err.Error(), "UDP port "+strings.TrimPrefix(first.nf, "127.0.0.1:")+" is already in use") {
		t.Fatalf("second serve on the NetFlow port: %v; want it refused as already in use", err)
	}
	// The first one still collects.
	if code := first.healthz(); code != http.StatusOK {
		t.Fatalf("the first serve's /healthz answers %d", code)
	}
}

// waitHealthyInProcess waits for the console of a serve started with
// startCommand.
func waitHealthyInProcess(t *testing.T, f faultSetup, stderr *testutil.SyncBuffer) {
	t.Helper()
	testutil.WaitFor(t, 30*time.Second, "serve's console", func() (bool, string) {
		code := f.healthz()
		return code == http.StatusOK, fmt.Sprintf("/healthz answers %d\n%s", code, stderr.String())
	})
}

// runToError runs serve in-process on the setup and returns its error; it
// fails the test when serve is still running after 30 s (it should refuse
// at once).
func runToError(t *testing.T, f faultSetup) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr testutil.SyncBuffer
	e := &env{stdin: strings.NewReader(""), stdout: &testutil.SyncBuffer{}, stderr: &stderr, getenv: func(string) string { return "" }}
	done := make(chan error, 1)
	go func() { done <- run(ctx, e, []string{"serve", "--config", f.path}) }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatalf("the second serve started\n%s", stderr.String())
		return nil
	}
}

// TestFaultDiskFull runs TestFaultDiskFullChild on a small tmpfs.
func TestFaultDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	out := testutil.RunOnTmpfs(t, 16<<20, "TestFaultDiskFullChild")
	if !strings.Contains(out, "--- PASS: TestFaultDiskFullChild") {
		t.Fatalf("the child did not pass:\n%s", out)
	}
	t.Log(out)
}

// apiExporter is the part of GET /api/v1/exporters the disk test reads.
type apiExporter struct {
	Exporter     string            `json:"exporter"`
	FlowsStored  uint64            `json:"flows_stored"`
	FlowsDropped map[string]uint64 `json:"flows_dropped"`
}

// TestFaultDiskFullChild (in TestFaultDiskFull's child, whose data
// directory is a 16 MiB tmpfs) fills the disk under serve while flows
// arrive: the writer fails, the flows are counted as dropped (write_error)
// per exporter, /api/v1/status says store.ok=false and /healthz answers
// 503. Once a filler file is removed, writing resumes by itself: store.ok
// again, new flows stored, and `flowbox stats --json` shows the write_error
// drops.
func TestFaultDiskFullChild(t *testing.T) {
	root := testutil.TmpfsDir(t)
	f := newFaultSetup(t, t.TempDir(), filepath.Join(root, "data"), "")
	_, serveErr, _ := startCommand(t, "serve", "--config", f.path)
	waitHealthyInProcess(t, f, serveErr)
	c := login(t, "https://"+f.web, "admin", "fault-admin-pw") // before the disk fills: a login writes a session

	simCtx, stopSim := context.WithCancel(context.Background())
	simDone := make(chan error, 1)
	go func() {
		e := &env{stdin: strings.NewReader(""), stdout: &testutil.SyncBuffer{}, stderr: &testutil.SyncBuffer{}, getenv: func(string) string { return "" }}
		simDone <- run(simCtx, e, []string{"simulate", "--target", f.nf, "--rate", "5000", "--duration", "5m", "--log-level", "error"})
	}()
	t.Cleanup(func() {
		stopSim()
		<-simDone
	})
	exporters := func() (stored, writeErrors uint64) {
		var rows []apiExporter
		if code := c.get("/api/v1/exporters", &rows); code != http.StatusOK {
			t.Fatalf("/api/v1/exporters: %d", code)
		}
		for _, r := range rows {
			stored += r.FlowsStored
			writeErrors += r.FlowsDropped[store.DropWriteError]
		}
		return stored, writeErrors
	}
	type status struct {
		Store struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		} `json:"store"`
	}
	storeOK := func() (bool, string) {
		var st status
		if code := c.get("/api/v1/status", &st); code != http.StatusOK {
			t.Fatalf("/api/v1/status: %d", code)
		}
		return st.Store.OK, st.Store.Error
	}
	testutil.WaitFor(t, 30*time.Second, "flows stored", func() (bool, string) {
		n, _ := exporters()
		return n >= 1000, fmt.Sprintf("%d stored", n)
	})

	filler := filepath.Join(root, "filler")
	n := testutil.FillFS(t, filler)
	t.Logf("filled the tmpfs with %d bytes", n)
	testutil.WaitFor(t, 40*time.Second, "writes failing", func() (bool, string) {
		ok, msg := storeOK()
		_, werr := exporters()
		code := f.healthz()
		return !ok && werr > 0 && code == http.StatusServiceUnavailable,
			fmt.Sprintf("store.ok %v (%s), write_error drops %d, /healthz %d", ok, msg, werr, code)
	})
	_, msg := storeOK()
	if !strings.Contains(msg, "disk full") {
		t.Errorf("store error %q does not say the disk is full", msg)
	}
	storedFull, _ := exporters()

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 40*time.Second, "writes resumed", func() (bool, string) {
		ok, msg := storeOK()
		n, _ := exporters()
		code := f.healthz()
		return ok && n > storedFull && code == http.StatusOK,
			fmt.Sprintf("store.ok %v (%s), %d stored (%d when full), /healthz %d", ok, msg, n, storedFull, code)
	})
	// flowbox stats reads the counters serve saves every few seconds.
	testutil.WaitFor(t, 30*time.Second, "write_error drops in flowbox stats", func() (bool, string) {
		var stored, werr uint64
		for _, r := range f.stats(t) {
			stored += r.FlowsStored
			werr += r.DroppedByReason[store.DropWriteError]
		}
		return werr > 0 && stored > storedFull, fmt.Sprintf("%d stored, %d write_error", stored, werr)
	})
}
