package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

// proxy stands between the client and chDB: it forwards, or answers as a
// ClickHouse behind a load balancer that is down (503), or as one that
// refuses the data (400).
type proxy struct {
	mode atomic.Int32 // 0 forward, 1 down, 2 bad data
	rp   *httputil.ReverseProxy
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p.mode.Load() {
	case 1:
		http.Error(w, "no healthy upstream", http.StatusServiceUnavailable)
	case 2:
		io.Copy(io.Discard, r.Body)
		w.Header().Set("X-ClickHouse-Exception-Code", "27")
		http.Error(w, "Code: 27. DB::Exception: Cannot parse input. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)", http.StatusBadRequest)
	default:
		p.rp.ServeHTTP(w, r)
	}
}

// countObserver counts what the writer reports.
type countObserver struct {
	mu      sync.Mutex
	stored  int
	dropped map[string]int
}

func (o *countObserver) FlowsStored(flows []store.Flow) {
	o.mu.Lock()
	o.stored += len(flows)
	o.mu.Unlock()
}

func (o *countObserver) FlowsDropped(flows []store.Flow, reason string) {
	o.mu.Lock()
	if o.dropped == nil {
		o.dropped = map[string]int{}
	}
	o.dropped[reason] += len(flows)
	o.mu.Unlock()
}

func (o *countObserver) counts() (int, map[string]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	d := map[string]int{}
	for k, v := range o.dropped {
		d[k] = v
	}
	return o.stored, d
}

// ingestRig is an Ingest writing to chDB through a proxy.
func ingestRig(t *testing.T, queue int) (*Ingest, *proxy, *Client, *countObserver) {
	t.Helper()
	c := newTestClient(t)
	if _, err := Migrate(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	scheme := "http"
	if c.cfg.TLS.Enabled {
		scheme = "https"
	}
	target := &url.URL{Scheme: scheme, Host: c.cfg.Addresses[0], Path: "/"}
	p := &proxy{rp: httputil.NewSingleHostReverseProxy(target)}
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	cfg := c.cfg
	cfg.Addresses = []string{strings.TrimPrefix(front.URL, "http://")}
	pc, err := NewClient(cfg, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewFlowWriter(pc, "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := NewIngest(w, queue, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	in.backoff, in.maxBackoff = time.Millisecond, 20*time.Millisecond
	o := &countObserver{}
	in.SetWriteObserver(o)
	return in, p, c, o
}

func countFlows(t *testing.T, c *Client) int {
	t.Helper()
	out, err := c.Query(context.Background(), "SELECT count() FROM "+c.Database()+".flows")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestIngestOutage: while ClickHouse is down, batches wait in the queue
// and the writer retries; once the queue is full, Submit refuses more
// (the producer counts them); when ClickHouse is back, every accepted
// flow is written, nothing lost unseen.
func TestIngestOutage(t *testing.T) {
	in, p, c, o := ingestRig(t, 4)
	p.mode.Store(1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	flows := testFlows(3000, time.Now().Truncate(time.Minute))
	// A first batch, that the writer takes and retries.
	if err := in.InsertFlows(ctx, flows[:100]); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, time.Minute, "the writer to see ClickHouse down", func() (bool, string) {
		h := in.Health()
		return !h.OK && strings.Contains(h.Error, "503"), fmt.Sprintf("%+v", h)
	})
	// The others wait in the queue until it is full.
	accepted, refused := 100, 0
	for i := 100; i < len(flows); i += 100 {
		b := in.GetBatch()
		b.Flows = append(b.Flows, flows[i:i+100]...)
		switch err := in.Submit(b); {
		case err == nil:
			accepted += 100
		case errors.Is(err, store.ErrQueueFull):
			refused += 100
			in.PutBatch(b)
		default:
			t.Fatal(err)
		}
	}
	if accepted != 500 || refused != len(flows)-500 {
		t.Fatalf("%d flows accepted, %d refused: want 5 batches (one being retried, 4 queued)", accepted, refused)
	}
	if h := in.Health(); h.QueueLength != 4 || h.QueueCapacity != 4 {
		t.Fatalf("health %+v: want a full queue of 4", h)
	}
	p.mode.Store(0)
	testutil.WaitFor(t, time.Minute, "every accepted flow written", func() (bool, string) {
		stored, _ := o.counts()
		return stored == accepted, fmt.Sprintf("%d of %d stored", stored, accepted)
	})
	if h := in.Health(); !h.OK || h.DroppedFlows != 0 {
		t.Fatalf("health after the outage: %+v", h)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := countFlows(t, c); n != accepted {
		t.Fatalf("%d flows in clickhouse, %d accepted", n, accepted)
	}
	if err := in.Submit(in.GetBatch()); err != nil {
		t.Fatalf("empty batch after shutdown: %v", err)
	}
	b := in.GetBatch()
	b.Flows = append(b.Flows, flows[0])
	if err := in.Submit(b); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("submit after shutdown: %v", err)
	}
}

// TestIngestDrops: data ClickHouse refuses is dropped at once and counted
// (write_error); at shutdown with ClickHouse down, what waits is dropped
// and counted (shutdown).
func TestIngestDrops(t *testing.T) {
	in, p, c, o := ingestRig(t, 8)
	in.drainTimeout = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	flows := testFlows(600, time.Now().Truncate(time.Minute))
	p.mode.Store(2)
	if err := in.InsertFlows(ctx, flows[:200]); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, time.Minute, "the bad batch dropped", func() (bool, string) {
		_, d := o.counts()
		return d[store.DropWriteError] == 200, fmt.Sprintf("dropped %v", d)
	})
	if h := in.Health(); h.OK || h.DroppedBatches != 1 || h.DroppedFlows != 200 || !strings.Contains(h.Error, "Cannot parse input") {
		t.Fatalf("health after a refused batch: %+v", h)
	}
	p.mode.Store(1)
	if err := in.InsertFlows(ctx, flows[200:400]); err != nil {
		t.Fatal(err)
	}
	if err := in.InsertFlows(ctx, flows[400:]); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, time.Minute, "the writer to see ClickHouse down", func() (bool, string) {
		h := in.Health()
		return strings.Contains(h.Error, "503"), h.Error
	})
	cancel()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "dropped at shutdown") {
		t.Fatalf("Run: %v", err)
	}
	stored, d := o.counts()
	if stored != 0 || d[store.DropShutdown] != 400 || d[store.DropWriteError] != 200 {
		t.Fatalf("stored %d, dropped %v: want 400 at shutdown, 200 refused", stored, d)
	}
	if h := in.Health(); h.DroppedFlows != 600 {
		t.Fatalf("health: %+v", h)
	}
	if n := countFlows(t, c); n != 0 {
		t.Fatalf("%d flows in clickhouse", n)
	}
}

// TestStoreLastSeen opens the store (migrating), writes flows, and wants
// when their exporters and routers were last seen: from memory, and from
// ClickHouse for a store opened afterwards.
func TestStoreLastSeen(t *testing.T) {
	cfg := newTestClient(t).cfg
	ctx := context.Background()
	s, err := Open(ctx, withSite(cfg, "north"), nil, 8, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	run, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(run) }()
	end := time.Now().Truncate(time.Minute)
	flows := testFlows(400, end)
	b := s.GetBatch()
	b.Flows = append(b.Flows, flows...)
	b.Recv = end.Add(time.Second)
	if err := s.SubmitWait(ctx, b); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	exp := flows[0].Exporter.Addr()
	if at, ok := s.ExporterLastSeen(exp); !ok || !at.Equal(end.Add(time.Second)) {
		t.Fatalf("exporter %v last seen %v %v", exp, at, ok)
	}
	if _, ok := s.ExporterLastSeen(netip.MustParseAddr("192.0.2.99")); ok {
		t.Fatal("an exporter never seen has a time")
	}
	if at, ok, err := s.LastFlowFrom(ctx, 2); err != nil || !ok || !at.Equal(end.Add(time.Second)) {
		t.Fatalf("router 2: last flow %v %v %v", at, ok, err)
	}
	// Another process: only ClickHouse knows, the newest flow's end.
	s2, err := Open(ctx, withSite(cfg, "north"), nil, 8, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	var newest int64
	for _, f := range flows {
		if f.RouterID == 2 {
			newest = max(newest, f.End)
		}
	}
	if at, ok, err := s2.LastFlowFrom(ctx, 2); err != nil || !ok || at.UnixMilli() != newest {
		t.Fatalf("router 2 after a restart: last flow %v %v %v, want %v", at, ok, err, time.UnixMilli(newest).UTC())
	}
	if _, ok, err := s2.LastFlowFrom(ctx, 77); err != nil || ok {
		t.Fatalf("router 77: %v %v", ok, err)
	}
	other, err := Open(ctx, withSite(cfg, "south"), nil, 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := other.LastFlowFrom(ctx, 2); err != nil || ok {
		t.Fatalf("another site sees router 2: %v %v", ok, err)
	}
}

// withSite returns cfg for site.
func withSite(cfg Config, site string) Config {
	cfg.Site = site
	return cfg
}

// TestInsertIdempotent: an insert sent again with the same flow ids (a
// retry after a timeout or a lost answer) is stored once, in the flows
// and in the rollups the views fill; the same flows under new ids are
// new flows.
func TestInsertIdempotent(t *testing.T) {
	c, w := migratedWriter(t, "s", nil)
	ctx := context.Background()
	end := time.Now().Truncate(time.Minute)
	b := &store.Batch{Flows: testFlows(300, end)}
	sums := func() string {
		out, err := c.Query(ctx, "SELECT (SELECT count() FROM "+c.Database()+".flows), (SELECT sum(flows) FROM "+c.Database()+".tot_m),"+
			" (SELECT sum(flows) FROM "+c.Database()+".if_m), (SELECT sum(flows) FROM "+c.Database()+".nat) FORMAT TabSeparated")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	first := w.reserve(len(b.Flows))
	for range 3 {
		if err := w.insertBatches(ctx, []*store.Batch{b}, first); err != nil {
			t.Fatal(err)
		}
	}
	once := sums()
	if !strings.HasPrefix(once, "300\t300\t600\t") {
		t.Fatalf("one insert sent three times: %q, want 300 flows in each table", once)
	}
	if err := w.insertBatches(ctx, []*store.Batch{b}, w.reserve(len(b.Flows))); err != nil {
		t.Fatal(err)
	}
	if twice := sums(); !strings.HasPrefix(twice, "600\t600\t1200\t") {
		t.Fatalf("the same flows under new ids: %q, want 600", twice)
	}
}

// TestRollupWaitsForBacklog: while ClickHouse is down, the flows the
// writer holds keep the top-N minutes and hours they are in from being
// rolled up (Ingest.Backlog); once they are written, the minutes rolled
// up count them, as the raw flows do.
func TestRollupWaitsForBacklog(t *testing.T) {
	in, p, c, o := ingestRig(t, 8)
	ctx := context.Background()
	end := time.Now().Truncate(time.Hour).Add(-time.Hour)
	now := end.Add(10 * time.Minute)
	// Flows written before the outage: the hour before end.
	w, err := NewFlowWriter(c, "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Insert(ctx, testFlows(300, end)); err != nil {
		t.Fatal(err)
	}
	// Later flows, 3 minutes after end on, held by the writer.
	late := testFlows(100, end)
	for i := range late {
		late[i].End = end.Add(3*time.Minute).UnixMilli() + int64(i)*1000
		late[i].Start = late[i].End - 1000
	}
	r := readerWith(t, NewReader(c, "s", nil), now, func(cfg *Config) { cfg.TopK = 10000 })
	r.backlog = in.Backlog
	p.mode.Store(1)
	run, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- in.Run(run) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	if err := in.InsertFlows(ctx, late); err != nil {
		t.Fatal(err)
	}
	if oldest, ok := in.Backlog(); !ok || !oldest.Equal(end.Add(3*time.Minute)) {
		t.Fatalf("backlog %v %v, want %v", oldest, ok, end.Add(3*time.Minute))
	}
	if _, err := r.RollupTop(ctx, now); err != nil {
		t.Fatal(err)
	}
	if _, to, ok, err := r.topDone(ctx, topMinutes); err != nil || !ok || !to.Equal(end.Add(3*time.Minute)) {
		t.Fatalf("minutes done up to %v (%v, %v) while the writer holds flows of %v on", to, ok, err, end.Add(3*time.Minute))
	}
	if _, to, ok, err := r.topDone(ctx, topHours); err != nil || (ok && to.After(end)) {
		t.Fatalf("hours done up to %v (%v, %v), past the held flows", to, ok, err)
	}
	p.mode.Store(0)
	testutil.WaitFor(t, time.Minute, "the held flows written", func() (bool, string) {
		stored, _ := o.counts()
		return stored == len(late), fmt.Sprintf("%d of %d stored", stored, len(late))
	})
	if _, ok := in.Backlog(); ok {
		t.Fatal("backlog after every flow was written")
	}
	if _, err := r.RollupTop(ctx, now); err != nil {
		t.Fatal(err)
	}
	last := now.Add(-topMinutes.grace).Truncate(time.Minute) // the end of the last minute over a grace ago
	if _, to, ok, err := r.topDone(ctx, topMinutes); err != nil || !ok || !to.Equal(last) {
		t.Fatalf("minutes done up to %v (%v, %v), want %v", to, ok, err, last)
	}
	q := store.TopQuery{From: end.Add(-30 * time.Minute), To: last, Dimension: store.DimRemoteHost, N: 5, Metric: store.MetricBytes}
	got, err := r.Top(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	q.Resolution = store.ResRaw
	want, err := r.Top(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if got.Resolution != store.ResMinute || got.Total != want.Total {
		t.Fatalf("rolled-up minutes: %s, total %+v; raw flows: total %+v", got.Resolution, got.Total, want.Total)
	}
}
