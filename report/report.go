// Package report makes the traffic reports WISPs bill and plan with:
// per subscriber, router, interface or the whole fleet, over calendar
// months (or any period) in a time zone, the download and upload totals,
// the peak 5-minute rates and when, the percentiles of the 5-minute rates
// (the 95th by default, as transit and many plans are billed), the
// customer id next to a subscriber's name, and the largest applications.
// The console, the API, `flowbox report` and the scheduled reports all
// make them here.
package report

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Flows is what a report reads of the flow database.
type Flows interface {
	RateSummaries(ctx context.Context, q store.RateQuery) ([]store.RateSummary, error)
	Top(ctx context.Context, q store.TopQuery) (*store.TopResult, error)
}

// Inventory is what a report reads of the inventory: router and
// interface names, and customer ids.
type Inventory interface {
	ListRouters(ctx context.Context) ([]store.Router, error)
	InterfaceHistory(ctx context.Context, since time.Time) ([]store.InterfaceName, error)
	SubscriberCustomerIDs(ctx context.Context, from, to time.Time) (map[store.SubscriberRef]string, error)
}

// Deps are what a Builder reads.
type Deps struct {
	Flows     Flows
	Inventory Inventory
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger is the component logger; nil discards.
	Logger *slog.Logger
}

// Builder makes reports. It implements store.Reporter.
type Builder struct {
	d Deps
}

// New returns a Builder reading from d.
func New(d Deps) *Builder {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return &Builder{d: d}
}

// maxTopApps bounds ReportRequest.TopApps.
const maxTopApps = 10

// period is one row period of a report.
type period struct {
	label    string
	from, to time.Time
	month    bool // a whole calendar month
}

// Report makes the report q asks for. Errors in q are *store.QueryError.
func (b *Builder) Report(ctx context.Context, q store.ReportRequest) (*store.Report, error) {
	if q.Kind == "" {
		q.Kind = store.ReportBySubscriber
	}
	switch q.Kind {
	case store.ReportBySubscriber, store.ReportByRouter, store.ReportByInterface, store.ReportByFleet:
	default:
		return nil, &store.QueryError{Field: "by", Msg: fmt.Sprintf("%q is not subscriber, router, interface or fleet", q.Kind)}
	}
	if q.Percentile == 0 {
		q.Percentile = store.DefaultPercentile
	}
	if !(q.Percentile > 0 && q.Percentile <= 100) {
		return nil, &store.QueryError{Field: "percentile", Msg: fmt.Sprintf("%g is not within (0, 100]", q.Percentile)}
	}
	if q.TopApps < 0 || q.TopApps > maxTopApps {
		return nil, &store.QueryError{Field: "top_apps", Msg: fmt.Sprintf("%d is not within 0..%d", q.TopApps, maxTopApps)}
	}
	if q.Location == nil {
		q.Location = time.UTC
	}
	if !q.To.After(q.From) {
		return nil, &store.QueryError{Field: "period", Msg: "the period is empty"}
	}
	if q.From.Unix()%300 != 0 || q.To.Unix()%300 != 0 {
		return nil, &store.QueryError{Field: "period", Msg: "a period starts and ends on 5-minute boundaries"}
	}
	periods, err := split(q)
	if err != nil {
		return nil, err
	}
	now := b.d.Now()
	rep := &store.Report{Kind: q.Kind, Label: q.Label, From: q.From.UTC(), To: q.To.UTC(), TimeZone: q.Location.String(),
		Percentile: q.Percentile, Generated: now.UTC(), Rows: []store.ReportRow{}}
	if rep.Label == "" {
		rep.Label = q.From.In(q.Location).Format("2006-01-02") + ".." + q.To.In(q.Location).Add(-time.Nanosecond).Format("2006-01-02")
		if len(periods) == 1 {
			rep.Label = periods[0].label
		}
	}
	names, ifNames, err := b.names(ctx, q.From)
	if err != nil {
		return nil, err
	}
	var ids map[store.SubscriberRef]string
	if q.Kind == store.ReportBySubscriber {
		if ids, err = b.d.Inventory.SubscriberCustomerIDs(ctx, q.From, q.To); err != nil {
			return nil, fmt.Errorf("cannot read customer ids: %w", err)
		}
	}
	for _, p := range periods {
		rows, err := b.periodRows(ctx, q, p, now, names, ifNames, ids)
		if err != nil {
			return nil, err
		}
		rep.Rows = append(rep.Rows, rows...)
	}
	switch {
	case !q.From.Before(now):
		rep.Note = "The period has not started yet."
	case q.To.After(now):
		rep.Note = "The period is not over: the numbers are so far, up to the last finished 5 minutes."
	}
	return rep, nil
}

// split cuts the request's period into the row periods: calendar months
// in q.Location (the first and last possibly partial) or one period.
func split(q store.ReportRequest) ([]period, error) {
	loc := q.Location
	f, t := q.From.In(loc), q.To.In(loc)
	monthStart := func(x time.Time) time.Time { return time.Date(x.Year(), x.Month(), 1, 0, 0, 0, 0, loc) }
	whole := func(a, b time.Time) bool { return a.Equal(monthStart(a)) && b.Equal(monthStart(a).AddDate(0, 1, 0)) }
	mode := q.Split
	if mode == "" {
		mode = "none"
		if monthStart(f).AddDate(0, 1, 0).Before(t) {
			mode = "month"
		}
	}
	switch mode {
	case "none":
		label := q.Label
		switch {
		case label != "":
		case whole(f, t):
			label = f.Format("2006-01")
		default:
			label = f.Format("2006-01-02") + ".." + t.Add(-time.Nanosecond).Format("2006-01-02")
		}
		return []period{{label: label, from: q.From, to: q.To, month: whole(f, t)}}, nil
	case "month":
		var out []period
		for a := f; a.Before(t); {
			b := monthStart(a).AddDate(0, 1, 0)
			if b.After(t) {
				b = t
			}
			label := a.Format("2006-01")
			if !whole(a, b) {
				label = a.Format("2006-01-02") + ".." + b.Add(-time.Nanosecond).Format("2006-01-02")
			}
			out = append(out, period{label: label, from: a, to: b, month: whole(a, b)})
			a = b
		}
		return out, nil
	}
	return nil, &store.QueryError{Field: "split", Msg: fmt.Sprintf("%q is not month or none", q.Split)}
}

// names returns the routers' names and the interfaces' names (the latest
// known since from, else the current ones).
func (b *Builder) names(ctx context.Context, from time.Time) (map[int64]string, map[ifRef]string, error) {
	routers, err := b.d.Inventory.ListRouters(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot list routers: %w", err)
	}
	names := map[int64]string{}
	ifNames := map[ifRef]string{}
	for _, r := range routers {
		names[r.ID] = r.Name
		for _, i := range r.Interfaces {
			ifNames[ifRef{r.ID, i.Index}] = i.Name
		}
	}
	hist, err := b.d.Inventory.InterfaceHistory(ctx, from)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read interface names: %w", err)
	}
	old := map[ifRef]string{}
	for _, h := range hist { // oldest first: the latest wins
		old[ifRef{h.RouterID, h.Index}] = h.Name
	}
	for k, n := range old {
		if _, current := ifNames[k]; !current {
			ifNames[k] = n
		}
	}
	return names, ifNames, nil
}

// ifRef is a router's interface.
type ifRef struct {
	router int64
	index  uint32
}

// periodRows makes the rows of one period.
func (b *Builder) periodRows(ctx context.Context, q store.ReportRequest, p period, now time.Time,
	names map[int64]string, ifNames map[ifRef]string, ids map[store.SubscriberRef]string) ([]store.ReportRow, error) {
	sums, err := b.d.Flows.RateSummaries(ctx, store.RateQuery{Kind: q.Kind, From: p.from, To: p.to,
		Percentile: q.Percentile, Sources: q.Sources, Keep: p.month, Apps: q.TopApps})
	if err != nil {
		return nil, fmt.Errorf("cannot read the 5-minute rates of %s: %w", p.label, err)
	}
	search := strings.ToLower(strings.TrimSpace(q.Search))
	rows := make([]store.ReportRow, 0, len(sums))
	for _, s := range sums {
		r := store.ReportRow{Period: p.label, From: p.from.UTC(), To: p.to.UTC(),
			DownloadBytes: s.A, UploadBytes: s.B, TotalBytes: s.A + s.B,
			PeakDown: s.PeakA, PeakUp: s.PeakB, PctDown: s.PctA, PctUp: s.PctB, PctBillable: max(s.PctA, s.PctB),
			Samples: s.Samples, TopApps: s.Apps}
		if q.Kind != store.ReportByFleet {
			r.RouterID, r.Router = s.Source, store.SourceName(names, s.Source)
		}
		var text string
		switch q.Kind {
		case store.ReportBySubscriber:
			r.Subscriber = s.Key
			r.CustomerID = ids[store.SubscriberRef{RouterID: s.Source, Name: s.Key}]
			if r.CustomerID == "" {
				r.CustomerID = ids[store.SubscriberRef{Name: s.Key}]
			}
			text = r.Subscriber + "\x00" + r.CustomerID
		case store.ReportByInterface:
			ifx, err := strconv.ParseUint(s.Key, 10, 32)
			if err != nil {
				continue
			}
			r.Interface = uint32(ifx)
			r.InterfaceName = ifNames[ifRef{s.Source, r.Interface}]
			if r.InterfaceName == "" {
				r.InterfaceName = "if " + s.Key
			}
			text = r.InterfaceName
		case store.ReportByRouter:
			text = r.Router
		}
		if search != "" && q.Kind != store.ReportByFleet && !strings.Contains(strings.ToLower(text), search) {
			continue
		}
		rows = append(rows, r)
	}
	slices.SortStableFunc(rows, func(x, y store.ReportRow) int {
		if c := cmp.Compare(y.TotalBytes, x.TotalBytes); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(x.Router, y.Router), strings.Compare(x.Subscriber, y.Subscriber), cmp.Compare(x.Interface, y.Interface))
	})
	if q.TopApps > 0 && p.from.Before(now) && q.Kind != store.ReportBySubscriber {
		if err := b.topApps(ctx, q, p, rows); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// topApps fills the largest applications of routers and the fleet, from
// the application rollups (a subscriber's come with its summary, from its
// daily applications). Interfaces have none: the rollups do not cross
// interfaces with applications.
func (b *Builder) topApps(ctx context.Context, q store.ReportRequest, p period, rows []store.ReportRow) error {
	switch q.Kind {
	case store.ReportByRouter, store.ReportByFleet:
		to := p.to
		if now := b.d.Now(); to.After(now) {
			to = now.Truncate(time.Minute).Add(time.Minute) // a period not over: up to now
		}
		for i := range rows {
			tq := store.TopQuery{From: p.from, To: to, Dimension: store.DimApplication, N: q.TopApps}
			if q.Kind == store.ReportByRouter {
				tq.Filter.Sources = []int64{rows[i].RouterID}
			} else {
				tq.Filter.Sources = q.Sources
			}
			res, err := b.d.Flows.Top(ctx, tq)
			if err != nil {
				return fmt.Errorf("cannot read the applications of %s: %w", p.label, err)
			}
			for _, e := range res.Entries {
				rows[i].TopApps = append(rows[i].TopApps, store.AppShare{App: e.Label, Bytes: e.Bytes})
			}
		}
	}
	return nil
}

// Warm keeps the summaries of the calendar months in loc that are over
// (the last months of them, at most 13) for every kind at the default
// percentile, so that the first report of a month that just closed reads
// them instead of a month of 5-minute samples (about half a second per
// month for a thousand subscribers). A month already kept costs one
// lookup. flowbox serve runs it in the background every few hours.
func (b *Builder) Warm(ctx context.Context, loc *time.Location, months int) error {
	if loc == nil {
		loc = time.UTC
	}
	months = min(max(months, 0), 13)
	now := b.d.Now().In(loc)
	end := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, loc)
	for i := range months {
		to := end.AddDate(0, -i, 0)
		from := to.AddDate(0, -1, 0)
		for _, kind := range []string{store.ReportBySubscriber, store.ReportByRouter, store.ReportByInterface, store.ReportByFleet} {
			if err := ctx.Err(); err != nil {
				return err
			}
			if _, err := b.d.Flows.RateSummaries(ctx, store.RateQuery{Kind: kind, From: from, To: to,
				Percentile: store.DefaultPercentile, Keep: true}); err != nil {
				return fmt.Errorf("cannot keep the %s summaries of %s: %w", kind, from.Format("2006-01"), err)
			}
		}
	}
	return nil
}

// WarmEvery runs Warm at start (after a minute, so that it does not
// compete with the start itself) and then every interval, until ctx is
// done. Failures are logged and retried at the next interval.
func (b *Builder) WarmEvery(ctx context.Context, loc *time.Location, interval time.Duration) {
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		if err := b.Warm(ctx, loc, 13); err != nil {
			if ctx.Err() != nil {
				return
			}
			b.d.Logger.Warn("cannot keep the report summaries of the last months", "err", err)
		} else {
			b.d.Logger.Debug("report summaries kept", "took", time.Since(start).Round(time.Millisecond))
		}
		t.Reset(interval)
	}
}
