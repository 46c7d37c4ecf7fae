package web

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
)

// Bounds of the store queries the console runs. A router page asks for
// eight answers at once and the appliance has two cores; the store's
// reader pool is small too (4 connections), and a raw-flow scan holds a
// connection for its whole run. Raw scans (a flow search, or a series or
// top-N with a filter only raw flows answer) have slots of their own, so
// that a slow scan never delays the rollup answers the other views need.
// Queries beyond the slots wait their turn; beyond the waiting bound they
// are refused with 503.
const (
	// maxDashboardQueries is how many rollup series, top-N and lookup
	// queries run at once.
	maxDashboardQueries = 2
	// maxRawQueries is how many raw scans run at once.
	maxRawQueries = 1
	// maxExportQueries is how many CSV exports stream at once (an export
	// holds its slot until the client has read everything).
	maxExportQueries = 1
	// maxWaitingQueries bounds the queries waiting for a slot.
	maxWaitingQueries = 64
)

// errBusy is the answer when too many queries wait already.
var errBusy = errors.New("the console is busy with other queries; try again in a moment")

// queryLimiter is a counting semaphore with a bounded queue.
type queryLimiter struct {
	slots    chan struct{}
	waiting  atomic.Int64
	rejected prometheus.Counter
	wait     prometheus.Observer
}

func newQueryLimiter(n int, rejected prometheus.Counter, wait prometheus.Observer) *queryLimiter {
	return &queryLimiter{slots: make(chan struct{}, n), rejected: rejected, wait: wait}
}

// acquire waits for a slot (or for ctx) and returns its release.
func (l *queryLimiter) acquire(ctx context.Context) (func(), error) {
	select {
	case l.slots <- struct{}{}:
		l.wait.Observe(0)
		return l.release, nil
	default:
	}
	if l.waiting.Add(1) > maxWaitingQueries {
		l.waiting.Add(-1)
		l.rejected.Inc()
		return nil, errBusy
	}
	defer l.waiting.Add(-1)
	start := time.Now()
	select {
	case l.slots <- struct{}{}:
		l.wait.Observe(time.Since(start).Seconds())
		return l.release, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *queryLimiter) release() { <-l.slots }

// limitedQuerier runs a FlowQuerier's calls within the limiters.
type limitedQuerier struct {
	next      FlowQuerier
	dashboard *queryLimiter
	raw       *queryLimiter // raw scans; the dashboard's slots when nil
	export    *queryLimiter
}

// scan returns the limiter of a query: raw scans have their own.
func (q *limitedQuerier) scan(raw bool) *queryLimiter {
	if raw && q.raw != nil {
		return q.raw
	}
	return q.dashboard
}

// rawFilter reports whether a filter or resolution makes the store scan
// raw flows.
func rawFilter(f *store.Filter, res store.Resolution) bool {
	return res == store.ResRaw || f.NeedsRaw()
}

var _ FlowQuerier = (*limitedQuerier)(nil)

// budgetMargin is the time a raw scan's budget leaves before the
// request's deadline, to answer with what it read.
const budgetMargin = 2 * time.Second

// minBudget is the least budget of a raw scan that waited for its slot
// until near its deadline: it reads the newest blocks and answers
// partially.
const minBudget = 100 * time.Millisecond

// fitBudget shortens a raw scan's budget (0: none) to what is left of
// ctx's deadline less budgetMargin (minBudget at least), once its slot is
// acquired: a scan that waited behind others answers with its newest part
// in time, instead of timing out.
func fitBudget(ctx context.Context, budget time.Duration) time.Duration {
	dl, ok := ctx.Deadline()
	if budget <= 0 || !ok {
		return budget
	}
	return min(budget, max(time.Until(dl)-budgetMargin, minBudget))
}

// TimeSeries runs the series query within a dashboard slot, or a raw
// slot when it scans raw flows.
func (q *limitedQuerier) TimeSeries(ctx context.Context, sq store.SeriesQuery) (*store.Series, error) {
	raw := rawFilter(&sq.Filter, sq.Resolution)
	release, err := q.scan(raw).acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if raw {
		sq.Budget = fitBudget(ctx, sq.Budget)
	}
	return q.next.TimeSeries(ctx, sq)
}

// Top runs the top-N query within a dashboard slot, or a raw slot when it
// scans raw flows (a raw-only filter or dimension).
func (q *limitedQuerier) Top(ctx context.Context, tq store.TopQuery) (*store.TopResult, error) {
	raw := rawFilter(&tq.Filter, tq.Resolution) || tq.Dimension == store.DimSrcPort || tq.Dimension == store.DimDstPort
	release, err := q.scan(raw).acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if raw {
		tq.Budget = fitBudget(ctx, tq.Budget)
	}
	return q.next.Top(ctx, tq)
}

// SearchFlows runs the flow search within a raw slot.
func (q *limitedQuerier) SearchFlows(ctx context.Context, sq store.SearchQuery) (*store.FlowPage, error) {
	release, err := q.scan(true).acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return q.next.SearchFlows(ctx, sq)
}

// ExportCSV streams the export within an export slot.
func (q *limitedQuerier) ExportCSV(ctx context.Context, sq store.SearchQuery, w io.Writer) error {
	release, err := q.export.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	return q.next.ExportCSV(ctx, sq, w)
}

// LastFlowFrom runs the lookup within a dashboard slot.
func (q *limitedQuerier) LastFlowFrom(ctx context.Context, routerID int64) (time.Time, bool, error) {
	release, err := q.dashboard.acquire(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	defer release()
	return q.next.LastFlowFrom(ctx, routerID)
}

// SubscriberAt runs the lookup within a dashboard slot.
func (q *limitedQuerier) SubscriberAt(ctx context.Context, addr netip.Addr, at time.Time) (store.Subscriber, error) {
	release, err := q.dashboard.acquire(ctx)
	if err != nil {
		return store.Subscriber{}, err
	}
	defer release()
	return q.next.SubscriberAt(ctx, addr, at)
}

// SubscriberUsage runs the usage query within a dashboard slot.
func (q *limitedQuerier) SubscriberUsage(ctx context.Context, uq store.UsageQuery) (*store.UsageResult, error) {
	release, err := q.dashboard.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return q.next.SubscriberUsage(ctx, uq)
}

// SubscriberUsageSeries runs the usage series query within a dashboard
// slot.
func (q *limitedQuerier) SubscriberUsageSeries(ctx context.Context, sq store.UsageSeriesQuery) (*store.UsageSeries, error) {
	release, err := q.dashboard.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return q.next.SubscriberUsageSeries(ctx, sq)
}

// SubscriberDomains runs the subscriber-domain query within a dashboard
// slot.
func (q *limitedQuerier) SubscriberDomains(ctx context.Context, dq store.SubscriberDomainsQuery) (*store.SubscriberDomains, error) {
	release, err := q.dashboard.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return q.next.SubscriberDomains(ctx, dq)
}
