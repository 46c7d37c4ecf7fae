package enrich

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

// flakySubscribers is a subscriber store whose first saves fail, as a busy
// database under load does.
type flakySubscribers struct {
	failures atomic.Int32 // saves left to fail
	next     int64
}

func (f *flakySubscribers) SubscriberHistory(context.Context, time.Time) ([]store.Subscriber, error) {
	return nil, nil
}

func (f *flakySubscribers) ApplySubscriberChanges(_ context.Context, _ []store.SubscriberEnd, opens []store.Subscriber) ([]int64, error) {
	if f.failures.Add(-1) >= 0 {
		return nil, errors.New("database is locked")
	}
	ids := make([]int64, len(opens))
	for i := range ids {
		f.next++
		ids[i] = f.next
	}
	return ids, nil
}

// TestIncompletePollRetried: a router's first poll whose subscribers cannot
// be saved is retried at the next discovery round, not after the whole
// poll interval, so its customers' flows get their names within seconds.
func TestIncompletePollRetried(t *testing.T) {
	srv := testutil.StartRouter(t, v7Router("bob-laptop"))
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	router := store.Router{ID: 3, Name: "tower-1", Address: srv.Addr(), Username: "admin"}
	subs := &flakySubscribers{}
	subs.failures.Store(1)
	e, sink, _ := newTestEnricher(t, DefaultConfig(), Deps{Routers: routerList{router}, Dial: DialRouterOS,
		Subscribers: subs, Now: clk.Now})
	ctx := context.Background()
	flow := func() store.Flow {
		return store.Flow{RouterID: 3, Start: ms(clk.Now()), SrcAddr: addr("10.0.0.20"), DstAddr: addr("8.8.8.8"), Proto: 6, SrcPort: 50000, DstPort: 443}
	}
	e.pollNew(ctx) // the first poll: the save fails
	if n := promtestutil.ToFloat64(e.metrics.polls.WithLabelValues("partial")); n != 1 {
		t.Fatalf("partial polls %v, want 1", n)
	}
	if err := e.InsertFlows(ctx, []store.Flow{flow()}); err != nil {
		t.Fatal(err)
	}
	e.pollNew(ctx) // the next discovery round retries it
	if err := e.InsertFlows(ctx, []store.Flow{flow()}); err != nil {
		t.Fatal(err)
	}
	if got := sink.flows[0].Subscriber; got != "" {
		t.Errorf("before the retry the flow is named %q (the save failed)", got)
	}
	if got := sink.flows[1].Subscriber; got != "bob-laptop" {
		t.Errorf("after the retry the flow is named %q, want bob-laptop", got)
	}
	e.pollNew(ctx) // a complete poll is not repeated by discovery
	if n := promtestutil.ToFloat64(e.metrics.polls.WithLabelValues("ok")); n != 1 {
		t.Errorf("complete polls %v, want 1 (discovery repeated a complete poll)", n)
	}
}
