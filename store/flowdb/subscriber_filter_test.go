package flowdb

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// TestSubscriberFilter checks that search, top and series filtered by
// subscriber give what a brute-force pass over the flows gives, and that
// the filter is refused beyond the raw window. The reference compares
// Flow.Subscriber directly rather than calling match, so a broken match
// fails here.
func TestSubscriberFilter(t *testing.T) {
	s := openAt(t, t.TempDir(), testNow)
	flows := indexFlows(7, 3000, testNow, 20*time.Minute)
	writeDirect(t, s, flows)
	if err := s.flushRollups(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	from, to := testNow.Add(-time.Hour), testNow.Add(time.Minute)
	for _, subs := range [][]string{{"sub-1"}, {"sub-0", "sub-2"}, {"sub-77"}, {"nobody"}} {
		flt := store.Filter{Subscribers: subs}
		want := map[string]bool{}
		for _, n := range subs {
			want[n] = true
		}
		// The reference: counters per local host, per minute and in all.
		var total store.TopEntry
		byHost := map[netip.Addr]store.TopEntry{}
		const stepS = 60
		fromS := from.Unix() / stepS * stepS
		byMinute := map[int64]uint64{}
		nflows := 0
		for i := range flows {
			f := rowOf(flows[i])
			if f.End < from.UnixMilli() || f.End >= to.UnixMilli() || !want[f.Subscriber] {
				continue
			}
			nflows++
			c := counters{f.Scale(f.Bytes), f.Scale(f.Packets), 1}
			addCounters(&total, c)
			l, _ := f.LocalRemote()
			e := byHost[l.Unmap()]
			addCounters(&e, c)
			byHost[l.Unmap()] = e
			byMinute[(f.End/1000-fromS)/stepS] += c.bytes
		}
		if subs[0] != "nobody" && nflows == 0 {
			t.Fatalf("%v: no flows in the data set", subs)
		}

		// Search: every flow of the subscribers, and only them.
		page, err := s.SearchFlows(ctx, store.SearchQuery{From: from, To: to, Filter: flt, Limit: 10000})
		if err != nil {
			t.Fatalf("%v: search: %v", subs, err)
		}
		if len(page.Flows) != nflows || page.Next != "" {
			t.Fatalf("%v: search gave %d flows (next %q), want %d", subs, len(page.Flows), page.Next, nflows)
		}
		var got store.TopEntry
		for i := range page.Flows {
			f := &page.Flows[i]
			if !want[f.Subscriber] {
				t.Fatalf("%v: search returned a flow of %q", subs, f.Subscriber)
			}
			addCounters(&got, counters{f.Scale(f.Bytes), f.Scale(f.Packets), 1})
		}
		if got.Bytes != total.Bytes || got.Packets != total.Packets {
			t.Fatalf("%v: search sums %d bytes %d packets, want %d, %d", subs, got.Bytes, got.Packets, total.Bytes, total.Packets)
		}

		// Top local hosts: the brute-force sums per host.
		top, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: store.DimLocalHost, N: 1000, Filter: flt})
		if err != nil {
			t.Fatalf("%v: top: %v", subs, err)
		}
		if top.Resolution != store.ResRaw {
			t.Fatalf("%v: top answered from %s, want raw", subs, top.Resolution)
		}
		if top.Total.Bytes != total.Bytes || top.Total.Packets != total.Packets || top.Total.Flows != total.Flows {
			t.Fatalf("%v: top total %+v, want %+v", subs, top.Total, total)
		}
		if len(top.Entries) != len(byHost) || top.Other.Bytes != 0 {
			t.Fatalf("%v: top has %d hosts (other %d bytes), want %d", subs, len(top.Entries), top.Other.Bytes, len(byHost))
		}
		for _, e := range top.Entries {
			w := byHost[e.Addr]
			if e.Bytes != w.Bytes || e.Packets != w.Packets || e.Flows != w.Flows {
				t.Fatalf("%v: top host %s = %d/%d/%d, want %d/%d/%d", subs, e.Addr, e.Bytes, e.Packets, e.Flows, w.Bytes, w.Packets, w.Flows)
			}
		}

		// Series: the brute-force sums per minute, from the subscriber
		// rollups when they folded none into "other", else from raw
		// flows.
		ser, err := s.TimeSeries(ctx, store.SeriesQuery{From: from, To: to, Step: time.Minute, Filter: flt})
		if err != nil {
			t.Fatalf("%v: series: %v", subs, err)
		}
		gotMinute := map[int64]uint64{}
		for _, l := range ser.Lines {
			for i, b := range l.Bytes {
				if b != 0 {
					gotMinute[int64(i)] += b
				}
			}
		}
		if len(gotMinute) != len(byMinute) {
			t.Fatalf("%v: series has %d non-empty minutes, want %d", subs, len(gotMinute), len(byMinute))
		}
		for i, b := range byMinute {
			if gotMinute[i] != b {
				t.Fatalf("%v: series minute %d = %d bytes, want %d", subs, i, gotMinute[i], b)
			}
		}
	}

	// Beyond the raw window the filter is refused, naming it, unless
	// (a series) the subscriber rollups answer it exactly.
	old := testNow.Add(-72 * time.Hour)
	flt := store.Filter{Subscribers: []string{"sub-1"}}
	for name, q := range map[string]func() error{
		"top": func() error {
			_, err := s.Top(ctx, store.TopQuery{From: old, To: testNow, Dimension: store.DimRemoteHost, Filter: flt})
			return err
		},
		"series": func() error {
			res, err := s.TimeSeries(ctx, store.SeriesQuery{From: old, To: testNow, Filter: store.Filter{Subscribers: []string{"sub-1"}, Ports: []uint16{443}}})
			if err == nil {
				return fmt.Errorf("answered from %s", res.Resolution)
			}
			return err
		},
	} {
		err := q()
		var qe *store.QueryError
		if !errors.As(err, &qe) || !errors.Is(err, store.ErrBadQuery) || qe.Field != "filter" {
			t.Fatalf("%s beyond the raw window: %v, want a *QueryError on filter", name, err)
		}
		if !strings.Contains(err.Error(), "a filter on subscribers") && !strings.Contains(err.Error(), "a filter on ports, subscribers") {
			t.Errorf("%s: error %q does not name subscribers", name, err)
		}
	}
}
