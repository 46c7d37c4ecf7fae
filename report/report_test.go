package report

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// fakeFlows answers RateSummaries with fixed summaries per period start
// and records the queries.
type fakeFlows struct {
	sums    map[time.Time][]store.RateSummary
	queries []store.RateQuery
	top     []store.TopQuery
	err     error
}

func (f *fakeFlows) RateSummaries(_ context.Context, q store.RateQuery) ([]store.RateSummary, error) {
	f.queries = append(f.queries, q)
	return f.sums[q.From.UTC()], f.err
}

func (f *fakeFlows) Top(_ context.Context, q store.TopQuery) (*store.TopResult, error) {
	f.top = append(f.top, q)
	return &store.TopResult{Entries: []store.TopEntry{{Label: "tcp/443", Bytes: 99}}}, nil
}

type fakeInventory struct{}

func (fakeInventory) ListRouters(context.Context) ([]store.Router, error) {
	return []store.Router{{ID: 1, Name: "tower1", Interfaces: []store.Interface{{Index: 3, Name: "ether1-uplink"}}}, {ID: 2, Name: "tower2"}}, nil
}

func (fakeInventory) InterfaceHistory(context.Context, time.Time) ([]store.InterfaceName, error) {
	return []store.InterfaceName{{RouterID: 2, Index: 7, Name: "old-name"}, {RouterID: 2, Index: 7, Name: "wlan1"}}, nil
}

func (fakeInventory) SubscriberCustomerIDs(context.Context, time.Time, time.Time) (map[store.SubscriberRef]string, error) {
	return map[store.SubscriberRef]string{{RouterID: 1, Name: "Maria"}: "1042", {Name: "João"}: "C-7"}, nil
}

// TestReportMonths: a two-month period in a time zone is one row per
// entity and month, each month read whole (and kept); names, customer ids
// (the router's first, then the imported), the billable percentile, the
// largest first, search, applications.
func TestReportMonths(t *testing.T) {
	sp, err := time.LoadLocation("America/Sao_Paulo")
	if err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	from, to, label, err := store.ParseReportPeriod("2026-03..2026-04", sp, now)
	if err != nil {
		t.Fatal(err)
	}
	mar, apr := from.UTC(), time.Date(2026, 4, 1, 0, 0, 0, 0, sp).UTC()
	ff := &fakeFlows{sums: map[time.Time][]store.RateSummary{
		mar: {{Source: 1, Key: "Maria", A: 100, B: 50, PctA: 8000, PctB: 9000, Apps: []store.AppShare{{App: "Netflix", Bytes: 80}}},
			{Source: 2, Key: "João", A: 1000, B: 1, PctA: 1, PctB: 2}},
		apr: {{Source: 1, Key: "Maria", A: 10, B: 5}},
	}}
	b := New(Deps{Flows: ff, Inventory: fakeInventory{}, Now: func() time.Time { return now }})
	rep, err := b.Report(context.Background(), store.ReportRequest{From: from, To: to, Location: sp, Label: label, TopApps: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(ff.queries) != 2 || !ff.queries[0].From.Equal(mar) || !ff.queries[0].To.Equal(apr) || !ff.queries[0].Keep ||
		ff.queries[0].Percentile != 95 || ff.queries[0].Apps != 3 || !ff.queries[1].To.Equal(to) {
		t.Fatalf("queries: %+v", ff.queries)
	}
	if rep.Label != "2026-03..2026-04" || rep.TimeZone != "America/Sao_Paulo" || len(rep.Rows) != 3 || rep.Note != "" {
		t.Fatalf("report: %+v", rep)
	}
	j, m := rep.Rows[0], rep.Rows[1]
	if j.Period != "2026-03" || j.Subscriber != "João" || j.CustomerID != "C-7" || j.Router != "tower2" || j.TotalBytes != 1001 {
		t.Errorf("first row: %+v", j)
	}
	if m.Subscriber != "Maria" || m.CustomerID != "1042" || m.PctBillable != 9000 || len(m.TopApps) != 1 || m.TopApps[0].App != "Netflix" {
		t.Errorf("second row: %+v", m)
	}
	if rep.Rows[2].Period != "2026-04" {
		t.Errorf("third row: %+v", rep.Rows[2])
	}
	// Search by customer id; CSV.
	rep, err = b.Report(context.Background(), store.ReportRequest{From: from, To: to, Location: sp, Search: "c-7", Split: "month"})
	if err != nil || len(rep.Rows) != 1 || rep.Rows[0].Subscriber != "João" {
		t.Fatalf("search: %+v %v", rep, err)
	}
	var csv strings.Builder
	if err := store.WriteReportCSV(&csv, rep); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(csv.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "period,from,to,router_id,router,subscriber,customer_id,download_bytes") ||
		!strings.Contains(lines[1], ",tower2,João,C-7,1000,1,1001,") {
		t.Errorf("CSV:\n%s", csv.String())
	}
}

// TestReportKinds: one period (split none), interfaces named from the
// inventory and the history, routers' applications from the rollups, the
// fleet as one row, a period not over says so.
func TestReportKinds(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	from := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(0, 1, 0)
	ff := &fakeFlows{sums: map[time.Time][]store.RateSummary{from: {
		{Source: 1, Key: "3", A: 5}, {Source: 2, Key: "7", A: 9}, {Source: 2, Key: "8", A: 1},
	}}}
	b := New(Deps{Flows: ff, Inventory: fakeInventory{}, Now: func() time.Time { return now }})
	rep, err := b.Report(context.Background(), store.ReportRequest{From: from, To: to, Kind: store.ReportByInterface, Percentile: 99})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 3 || rep.Rows[0].InterfaceName != "wlan1" || rep.Rows[1].InterfaceName != "ether1-uplink" || rep.Rows[2].InterfaceName != "if 8" {
		t.Errorf("interfaces: %+v", rep.Rows)
	}
	if rep.Note == "" || ff.queries[0].Percentile != 99 || ff.queries[0].Keep != true {
		t.Errorf("note %q, query %+v", rep.Note, ff.queries[0])
	}
	ff.sums[from] = []store.RateSummary{{Source: 1}, {Source: 2}}
	rep, err = b.Report(context.Background(), store.ReportRequest{From: from, To: to, Kind: store.ReportByRouter, TopApps: 2})
	if err != nil || len(rep.Rows) != 2 || len(ff.top) != 2 || ff.top[1].Filter.Sources[0] != 2 || rep.Rows[0].TopApps[0].App != "tcp/443" {
		t.Errorf("routers: %+v %+v %v", rep, ff.top, err)
	}
	if to := ff.top[0].To; to.After(now.Add(time.Minute)) {
		t.Errorf("the applications of a month not over are asked up to %s, after now", to)
	}
	ff.sums[from] = []store.RateSummary{{A: 7}}
	rep, err = b.Report(context.Background(), store.ReportRequest{From: from, To: to, Kind: store.ReportByFleet})
	if err != nil || len(rep.Rows) != 1 || rep.Rows[0].Router != "" || rep.Rows[0].TotalBytes != 7 {
		t.Errorf("fleet: %+v %v", rep, err)
	}
	ff.err = errors.New("disk on fire")
	if _, err := b.Report(context.Background(), store.ReportRequest{From: from, To: to}); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("store error: %v", err)
	}
}

// TestReportErrors: bad requests are query errors naming the field.
func TestReportErrors(t *testing.T) {
	b := New(Deps{Flows: &fakeFlows{}, Inventory: fakeInventory{}})
	from := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		q     store.ReportRequest
		field string
	}{
		{store.ReportRequest{From: from, To: from.Add(time.Hour), Kind: "tower"}, "by"},
		{store.ReportRequest{From: from, To: from.Add(time.Hour), Percentile: 101}, "percentile"},
		{store.ReportRequest{From: from, To: from.Add(time.Hour), Percentile: -1}, "percentile"},
		{store.ReportRequest{From: from, To: from.Add(time.Hour), TopApps: 11}, "top_apps"},
		{store.ReportRequest{From: from, To: from}, "period"},
		{store.ReportRequest{From: from.Add(time.Minute), To: from.Add(time.Hour)}, "period"},
		{store.ReportRequest{From: from, To: from.Add(time.Hour), Split: "week"}, "split"},
	} {
		_, err := b.Report(context.Background(), c.q)
		var qe *store.QueryError
		if !errors.As(err, &qe) || qe.Field != c.field {
			t.Errorf("%+v: %v, want an error about %s", c.q, err, c.field)
		}
	}
}

// TestParseReportPeriod: months, days, ranges (both ends included), the
// default (last month), and errors.
func TestParseReportPeriod(t *testing.T) {
	sp, err := time.LoadLocation("America/Sao_Paulo")
	if err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	now := time.Date(2026, 1, 10, 12, 0, 0, 0, sp)
	for _, c := range []struct {
		in, from, to, label string
	}{
		{"", "2025-12-01", "2026-01-01", "2025-12"},
		{"2026-02", "2026-02-01", "2026-03-01", "2026-02"},
		{"2026-01..2026-12", "2026-01-01", "2027-01-01", "2026-01..2026-12"},
		{"2026-11-15..2026-12-14", "2026-11-15", "2026-12-15", "2026-11-15..2026-12-14"},
		{"2026-03-05", "2026-03-05", "2026-03-06", "2026-03-05"},
	} {
		f, to, label, err := store.ParseReportPeriod(c.in, sp, now)
		if err != nil || f.Format("2006-01-02") != c.from || to.Format("2006-01-02") != c.to || label != c.label || f.Location() != sp {
			t.Errorf("%q: %s %s %q %v", c.in, f, to, label, err)
		}
	}
	for _, bad := range []string{"2026", "2026-13", "2026-02..2026-01", "2026-01..", "2020-01..2026-01", "march"} {
		if _, _, _, err := store.ParseReportPeriod(bad, sp, now); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestWarm: the months that are over in the zone, every kind, kept.
func TestWarm(t *testing.T) {
	sp, err := time.LoadLocation("America/Sao_Paulo")
	if err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	ff := &fakeFlows{}
	now := time.Date(2026, 5, 1, 1, 0, 0, 0, time.UTC) // still April in São Paulo
	b := New(Deps{Flows: ff, Inventory: fakeInventory{}, Now: func() time.Time { return now }})
	if err := b.Warm(context.Background(), sp, 2); err != nil {
		t.Fatal(err)
	}
	if len(ff.queries) != 8 {
		t.Fatalf("%d queries, want 2 months × 4 kinds", len(ff.queries))
	}
	q := ff.queries[0]
	if !q.Keep || q.Percentile != 95 || !q.From.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, sp)) || !q.To.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, sp)) {
		t.Errorf("first query %+v", q)
	}
	if last := ff.queries[7]; last.Kind != store.ReportByFleet || !last.From.Equal(time.Date(2026, 2, 1, 0, 0, 0, 0, sp)) {
		t.Errorf("last query %+v", last)
	}
}
