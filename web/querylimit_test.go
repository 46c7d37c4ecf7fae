package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

func TestQueryLimiter(t *testing.T) {
	t.Parallel()
	// In a synctest bubble: the queries' durations and the context's
	// timeout pass on a fake clock.
	synctest.Test(t, func(t *testing.T) {
		rejected := prometheus.NewCounter(prometheus.CounterOpts{Name: "rejected"})
		wait := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "wait"})
		l := newQueryLimiter(2, rejected, wait)

		// At most two run at once; the others wait their turn.
		var running, peak atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				release, err := l.acquire(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				n := running.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				time.Sleep(5 * time.Millisecond) // the bubble's fake clock: the query holds its slot while the others queue
				running.Add(-1)
				release()
			}()
		}
		wg.Wait()
		if p := peak.Load(); p != 2 {
			t.Errorf("%d queries ran at once, want 2", p)
		}
		if d := time.Since(start); d != 25*time.Millisecond {
			t.Errorf("ten 5 ms queries, two at a time, took %v, want 25ms", d)
		}

		// A waiting query gives up with its context.
		r1, _ := l.acquire(context.Background())
		r2, _ := l.acquire(context.Background())
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if _, err := l.acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("acquire with an expired context: %v", err)
		}

		// Beyond the waiting bound, queries are refused and counted.
		l.waiting.Store(maxWaitingQueries)
		if _, err := l.acquire(context.Background()); !errors.Is(err, errBusy) {
			t.Errorf("acquire over the waiting bound: %v", err)
		}
		if n := promtestutil.ToFloat64(rejected); n != 1 {
			t.Errorf("rejected counter %v, want 1", n)
		}
		l.waiting.Store(0)
		r1()
		r2()
		if _, err := l.acquire(context.Background()); err != nil {
			t.Errorf("acquire after release: %v", err)
		}
	})
}

// TestConcurrentRawQueriesWhileIngesting sends a router page's worth of
// filtered (raw-flow) queries at once, several times, while flows with new
// subscriber names keep arriving, as after a click on a talker of a live
// router. Each must answer: a raw scan holds a reader connection while it
// resolves names it has not seen yet, so running more scans at once than
// the store's reader pool allows used to leave them all waiting for each
// other until the query timeout.
func TestConcurrentRawQueriesWhileIngesting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.login()
	gw1 := e.addRouter(datasetRouter())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.st.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	// 10,000 flows of one subscriber with 5,120 remote hosts over the last
	// 100 seconds: long enough scans to overlap.
	local := netip.MustParseAddr("10.0.1.7")
	exp := netip.MustParseAddrPort("127.0.0.2:40000")
	flow := func(i int, end time.Time, sub string) store.Flow {
		return store.Flow{Exporter: exp, Version: 9, Start: end.UnixMilli() - 1000, End: end.UnixMilli(),
			SrcAddr: netip.AddrFrom4([4]byte{93, 184, byte(i / 256 % 20), byte(i)}), DstAddr: local, SrcPort: 443, DstPort: uint16(40000 + i%1000),
			Proto: 6, Bytes: uint64(100 + i%1000), Packets: 2, Direction: store.DirDownload, Subscriber: sub, SrcCountry: "US", Application: "https"}
	}
	now := e.now // the console's clock: queries end there
	var base []store.Flow
	for i := range 10000 {
		base = append(base, flow(i, now.Add(-time.Duration(100000-10*i)*time.Millisecond-time.Second), "alice"))
	}
	for i := 0; i < len(base); i += 5000 {
		if err := e.st.InsertFlows(ctx, base[i:i+5000]); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the writer stored them.
	testutil.WaitFor(t, 20*time.Second, "10000 stored flows", func() (bool, string) {
		var top TopResult
		e.getJSON(fmt.Sprintf("/api/v1/top/local?router=%d&range=1h&host=%s", gw1.ID, local), &top)
		return top.Total.Flows >= 10000, fmt.Sprintf("%d flows stored", top.Total.Flows)
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var batch []store.Flow
			for j := range 20 {
				batch = append(batch, flow(j, now.Add(-time.Second), fmt.Sprintf("new-subscriber-%d-%d", i, j)))
			}
			_ = e.st.InsertFlows(ctx, batch)
		}
	}()
	qctx, qcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer qcancel()
	var qwg sync.WaitGroup
	for round := range 3 {
		for _, dim := range []string{DimLocal, DimAS, DimPort, DimRemote, DimCountry, DimConversation} {
			qwg.Add(1)
			go func() {
				defer qwg.Done()
				req, _ := http.NewRequestWithContext(qctx, http.MethodGet,
					fmt.Sprintf("%s/api/v1/top/%s?router=%d&range=1h&host=%s", e.ts.URL, dim, gw1.ID, local), nil)
				res, err := e.client.Do(req)
				if err != nil {
					t.Errorf("round %d, top %s: %v", round, dim, err)
					return
				}
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Errorf("round %d, top %s: %d", round, dim, res.StatusCode)
				}
			}()
		}
	}
	qwg.Wait()
	close(stop)
	wg.Wait()
}

// blockingQuerier is a FlowQuerier whose raw scans (SearchFlows, and Top
// with a raw-only filter) block until released; rollup queries answer at
// once.
type blockingQuerier struct {
	FlowQuerier
	started chan struct{}
	release chan struct{}
}

func (b *blockingQuerier) scan() {
	b.started <- struct{}{}
	<-b.release
}

func (b *blockingQuerier) SearchFlows(context.Context, store.SearchQuery) (*store.FlowPage, error) {
	b.scan()
	return &store.FlowPage{}, nil
}

func (b *blockingQuerier) Top(_ context.Context, q store.TopQuery) (*store.TopResult, error) {
	if q.Filter.NeedsRaw() {
		b.scan()
	}
	return &store.TopResult{}, nil
}

func (b *blockingQuerier) TimeSeries(_ context.Context, q store.SeriesQuery) (*store.Series, error) {
	if q.Filter.NeedsRaw() {
		b.scan()
	}
	return &store.Series{}, nil
}

// TestRawScansDoNotDelayRollups: while raw scans hold every raw slot (and
// more wait), rollup series and top-N queries still answer at once; the
// waiting scans run as the slots free.
func TestRawScansDoNotDelayRollups(t *testing.T) {
	t.Parallel()
	newLimiter := func(n int) *queryLimiter {
		return newQueryLimiter(n, prometheus.NewCounter(prometheus.CounterOpts{Name: "r"}), prometheus.NewHistogram(prometheus.HistogramOpts{Name: "w"}))
	}
	b := &blockingQuerier{started: make(chan struct{}), release: make(chan struct{})}
	q := &limitedQuerier{next: b, dashboard: newLimiter(maxDashboardQueries), raw: newLimiter(maxRawQueries), export: newLimiter(1)}
	ctx := context.Background()
	const scans = 4
	errs := make(chan error, scans)
	for i := range scans {
		go func() {
			var err error
			switch i % 3 {
			case 0:
				_, err = q.SearchFlows(ctx, store.SearchQuery{})
			case 1:
				_, err = q.Top(ctx, store.TopQuery{Dimension: store.DimLocalHost, Filter: store.Filter{Ports: []uint16{443}}})
			default:
				_, err = q.TimeSeries(ctx, store.SeriesQuery{Filter: store.Filter{Protocols: []uint8{17}}})
			}
			errs <- err
		}()
	}
	<-b.started // one scan runs, the others wait for the raw slot
	for range 2 * maxDashboardQueries {
		done := make(chan error, 1)
		go func() {
			_, err := q.Top(ctx, store.TopQuery{Dimension: store.DimCountry})
			if err == nil {
				_, err = q.TimeSeries(ctx, store.SeriesQuery{})
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-b.started:
			t.Fatal("a second raw scan ran beside the first")
		case <-time.After(30 * time.Second): // a hang, not a speed measure
			t.Fatal("a rollup query waited behind the raw scans")
		}
	}
	close(b.release)
	for range scans - 1 {
		<-b.started
	}
	for range scans {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestFitBudget: a raw scan that acquired its slot late gets what is left
// of its request's deadline less the margin, never less than minBudget;
// no budget or no deadline leaves it as it is.
func TestFitBudget(t *testing.T) {
	bg := context.Background()
	if got := fitBudget(bg, 10*time.Second); got != 10*time.Second {
		t.Errorf("no deadline: %v", got)
	}
	far, cancel := context.WithTimeout(bg, time.Hour)
	defer cancel()
	if got := fitBudget(far, 10*time.Second); got != 10*time.Second {
		t.Errorf("a far deadline: %v", got)
	}
	if got := fitBudget(far, 0); got != 0 {
		t.Errorf("no budget: %v", got)
	}
	near, cancel2 := context.WithTimeout(bg, 5*time.Second)
	defer cancel2()
	if got := fitBudget(near, 10*time.Second); got > 3*time.Second || got < 2*time.Second {
		t.Errorf("5 s left: budget %v, want about 3 s", got)
	}
	gone, cancel3 := context.WithDeadline(bg, time.Now().Add(-time.Second))
	defer cancel3()
	if got := fitBudget(gone, 10*time.Second); got != minBudget {
		t.Errorf("past the deadline: %v, want %v", got, minBudget)
	}
}
