package web

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// wantUsage sums the dataset's flows of each subscriber as the usage API
// should: download and upload bytes and packets scaled by the sampling
// rate, flows counted, only download and upload flows of a known
// subscriber.
func wantUsage(flows []store.Flow, keep func(*store.Flow) bool) (map[string]UsageRow, UsageTotal) {
	rows := map[string]UsageRow{}
	var tot UsageTotal
	for i := range flows {
		f := &flows[i]
		if f.Subscriber == "" || (f.Direction != store.DirDownload && f.Direction != store.DirUpload) || !keep(f) {
			continue
		}
		r := rows[f.Subscriber]
		r.Subscriber, r.RouterID = f.Subscriber, f.RouterID
		if f.Direction == store.DirDownload {
			r.DownloadBytes += f.Scale(f.Bytes)
			r.DownloadPackets += f.Scale(f.Packets)
		} else {
			r.UploadBytes += f.Scale(f.Bytes)
			r.UploadPackets += f.Scale(f.Packets)
		}
		r.Flows++
		rows[f.Subscriber] = r
	}
	for _, r := range rows {
		tot.DownloadBytes += r.DownloadBytes
		tot.UploadBytes += r.UploadBytes
		tot.DownloadPackets += r.DownloadPackets
		tot.UploadPackets += r.UploadPackets
		tot.Flows += r.Flows
	}
	return rows, tot
}

// subscribersOf lists the rows' subscriber names in order.
func subscribersOf(rows []UsageRow) []string {
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.Subscriber)
	}
	return out
}

// dashboardQueries is how many store queries went through the dashboard
// limiter.
func dashboardQueries(t *testing.T, e *env) uint64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "flowbox_web_store_query_wait_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "pool" && l.GetValue() == "dashboard" {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	t.Fatal("no dashboard query wait histogram")
	return 0
}

func TestSubscriberUsage(t *testing.T) {
	t.Parallel()
	e, gw1, flows := datasetEnv(t)
	// Every flow of the dataset is within the last 24 h, and the period
	// is widened to whole hours.
	want, wantTot := wantUsage(flows, func(*store.Flow) bool { return true })
	if len(want) != 2 {
		t.Fatalf("the dataset has subscribers %v, want alice and bob", want)
	}

	before := dashboardQueries(t, e)
	var res UsageResult
	e.getJSON("/api/v1/subscribers/usage?range=24h", &res)
	if dashboardQueries(t, e) == before {
		t.Error("the usage query did not go through the dashboard query limiter")
	}
	if res.Count != 2 || len(res.Rows) != 2 || res.Resolution != "1h" {
		t.Fatalf("usage: count %d, %d rows, resolution %q; want 2, 2, 1h", res.Count, len(res.Rows), res.Resolution)
	}
	if res.Total != wantTot {
		t.Errorf("total %+v, want %+v", res.Total, wantTot)
	}
	if !res.From.Equal(e.now.Add(-24*time.Hour).Truncate(time.Hour)) || res.To.Before(e.now) || res.To.Sub(e.now) > time.Hour {
		t.Errorf("period read %s - %s, want the last 24 h widened to hours (now %s)", res.From, res.To, e.now)
	}
	// A row is last seen at the end of the last hour of its subscriber's
	// traffic, never after now: now (the hour under way), except in the
	// first minute of an hour, when the dataset's last flow (30 s before
	// the minute) is still in the previous one. Compute it from the flows,
	// not from the clock.
	lastSeen := map[string]time.Time{}
	for _, f := range flows {
		if f.Subscriber != "" && (f.Direction == store.DirDownload || f.Direction == store.DirUpload) {
			end := time.UnixMilli(f.End).Truncate(time.Hour).Add(time.Hour)
			if end.After(e.now) {
				end = e.now
			}
			if end.After(lastSeen[f.Subscriber]) {
				lastSeen[f.Subscriber] = end
			}
		}
	}
	// bob downloads twice what alice does and both upload as much: bob first.
	if got := subscribersOf(res.Rows); !slices.Equal(got, []string{"bob", "alice"}) {
		t.Errorf("sorted by total: %v, want bob, alice", got)
	}
	for _, r := range res.Rows {
		w := want[r.Subscriber]
		if r.RouterID != gw1.ID || r.Router != "gw1" {
			t.Errorf("%s: router %d %q, want %d gw1", r.Subscriber, r.RouterID, r.Router, gw1.ID)
		}
		if r.DownloadBytes != w.DownloadBytes || r.UploadBytes != w.UploadBytes || r.DownloadPackets != w.DownloadPackets ||
			r.UploadPackets != w.UploadPackets || r.Flows != w.Flows {
			t.Errorf("%s: %+v, want %+v", r.Subscriber, r, w)
		}
		if r.LastSeen == nil || !r.LastSeen.Equal(lastSeen[r.Subscriber]) {
			t.Errorf("%s: last seen %v, want %v, the end of the hour of its last flow, at most now (%v)", r.Subscriber, r.LastSeen, lastSeen[r.Subscriber], e.now)
		}
	}

	// Sort orders (ties by name).
	for sort, order := range map[string][]string{
		"total": {"bob", "alice"}, "download": {"bob", "alice"}, "upload": {"alice", "bob"}, "name": {"alice", "bob"},
	} {
		e.getJSON("/api/v1/subscribers/usage?range=24h&sort="+sort, &res)
		if got := subscribersOf(res.Rows); !slices.Equal(got, order) {
			t.Errorf("sort=%s: %v, want %v", sort, got, order)
		}
	}

	// Search: a part of the name, ignoring case; the totals follow.
	for search, name := range map[string]string{"bo": "bob", "ALI": "alice"} {
		e.getJSON("/api/v1/subscribers/usage?range=24h&search="+search, &res)
		if res.Count != 1 || len(res.Rows) != 1 || res.Rows[0].Subscriber != name {
			t.Errorf("search=%s: count %d rows %v, want %s only", search, res.Count, subscribersOf(res.Rows), name)
			continue
		}
		w := want[name]
		if res.Total.DownloadBytes != w.DownloadBytes || res.Total.UploadBytes != w.UploadBytes {
			t.Errorf("search=%s: total %+v, want %s's %+v", search, res.Total, name, w)
		}
	}
	e.getJSON("/api/v1/subscribers/usage?range=24h&search=nobody", &res)
	if res.Count != 0 || len(res.Rows) != 0 || res.Total != (UsageTotal{}) || res.Rows == nil {
		t.Errorf("search=nobody: %+v, want no rows (an empty list) and zero totals", res)
	}

	// Paging: count and totals cover every row, rows only the page.
	for _, tc := range []struct {
		offset int
		want   []string
	}{{0, []string{"bob"}}, {1, []string{"alice"}}, {2, []string{}}} {
		e.getJSON(fmt.Sprintf("/api/v1/subscribers/usage?range=24h&limit=1&offset=%d", tc.offset), &res)
		if got := subscribersOf(res.Rows); res.Count != 2 || !slices.Equal(got, tc.want) || res.Total != wantTot {
			t.Errorf("limit=1 offset=%d: count %d rows %v total %+v, want 2 %v %+v", tc.offset, res.Count, got, res.Total, tc.want, wantTot)
		}
	}

	// Router filter: gw2 has no subscriber; a list with both has both.
	gw2 := e.routerID("gw2")
	for q, count := range map[string]int{
		fmt.Sprintf("router=%d", gw2):                   0,
		fmt.Sprintf("router=%d", gw1.ID):                2,
		fmt.Sprintf("router=%d,%d", gw2, gw1.ID):        2,
		fmt.Sprintf("router=%d&router=%d", gw2, gw1.ID): 2,
	} {
		e.getJSON("/api/v1/subscribers/usage?range=24h&"+q, &res)
		if res.Count != count {
			t.Errorf("%s: count %d, want %d", q, res.Count, count)
		}
	}

	// An explicit period: the last two hours, widened to hours, holds
	// the flows of those hours only.
	from := e.now.Add(-2 * time.Hour)
	e.getJSON("/api/v1/subscribers/usage?from="+url.QueryEscape(from.Format(time.RFC3339))+"&to="+url.QueryEscape(e.now.Format(time.RFC3339)), &res)
	hourFrom := from.Truncate(time.Hour)
	_, part := wantUsage(flows, func(f *store.Flow) bool { return !time.UnixMilli(f.End).Before(hourFrom) })
	if !res.From.Equal(hourFrom) || res.Total.DownloadBytes != part.DownloadBytes || res.Total.DownloadBytes >= wantTot.DownloadBytes {
		t.Errorf("last 2 h: from %s download %d, want from %s download %d", res.From, res.Total.DownloadBytes, hourFrom, part.DownloadBytes)
	}
}

func TestSubscriberUsageCSV(t *testing.T) {
	t.Parallel()
	e, _, _ := datasetEnv(t)
	var res UsageResult
	e.getJSON("/api/v1/subscribers/usage?range=24h", &res)

	req, err := http.NewRequest(http.MethodGet, e.ts.URL+"/api/v1/subscribers/usage.csv?range=24h", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	cd := resp.Header.Get("Content-Disposition")
	period := res.From.Format("20060102T1504Z") + "-" + res.To.Format("20060102T1504Z")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		!strings.HasPrefix(cd, "attachment;") || !strings.Contains(cd, period) {
		t.Fatalf("csv: status %d, Content-Type %q, Content-Disposition %q (want the period %s)", resp.StatusCode, resp.Header.Get("Content-Type"), cd, period)
	}
	recs, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || !slices.Equal(recs[0], store.UsageCSVHeader) {
		t.Fatalf("csv: %q, want the header and 2 rows", recs)
	}
	col := func(name string) int { return slices.Index(store.UsageCSVHeader, name) }
	var down, up, total uint64
	for i, rec := range recs[1:] {
		if rec[col("subscriber")] != res.Rows[i].Subscriber || rec[col("router")] != "gw1" {
			t.Errorf("csv row %d: %q, want %s on gw1 (the JSON order)", i, rec, res.Rows[i].Subscriber)
		}
		n := func(c string) uint64 {
			v, err := strconv.ParseUint(rec[col(c)], 10, 64)
			if err != nil {
				t.Fatalf("csv row %d: %s: %v", i, c, err)
			}
			return v
		}
		down += n("download_bytes")
		up += n("upload_bytes")
		total += n("total_bytes")
		if rec[col("from")] != res.From.Format(time.RFC3339) || rec[col("to")] != res.To.Format(time.RFC3339) {
			t.Errorf("csv row %d: period %s - %s, want %s - %s", i, rec[col("from")], rec[col("to")], res.From, res.To)
		}
	}
	if down != res.Total.DownloadBytes || up != res.Total.UploadBytes || total != down+up {
		t.Errorf("csv sums: download %d upload %d total %d, want %d %d %d", down, up, total,
			res.Total.DownloadBytes, res.Total.UploadBytes, res.Total.DownloadBytes+res.Total.UploadBytes)
	}

	// The same query parameters: a search narrows the export.
	code, body := e.do(http.MethodGet, "/api/v1/subscribers/usage.csv?range=24h&search=bo&sort=name", nil)
	recs, err = csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if code != http.StatusOK || err != nil || len(recs) != 2 || recs[1][col("subscriber")] != "bob" {
		t.Errorf("csv search=bo: %d %v %q", code, err, recs)
	}
	// A refused query is a JSON 400, not a broken CSV.
	code, body = e.do(http.MethodGet, "/api/v1/subscribers/usage.csv?range=24h&sort=size", nil)
	var eb errorBody
	if code != http.StatusBadRequest || json.Unmarshal(body, &eb) != nil || !strings.Contains(eb.Error, "sort") {
		t.Errorf("csv with a bad sort: %d %s", code, body)
	}
}

func TestSubscriberUsageSeries(t *testing.T) {
	t.Parallel()
	e, gw1, _ := datasetEnv(t)
	var res UsageResult
	e.getJSON("/api/v1/subscribers/usage?range=24h", &res)
	for _, row := range res.Rows {
		for step, secs := range map[string]int64{"": 3600, "1h": 3600, "1d": 86400} {
			var s UsageSeries
			e.getJSON(fmt.Sprintf("/api/v1/subscribers/usage/series?range=24h&router=%d&subscriber=%s&step=%s", gw1.ID, row.Subscriber, step), &s)
			if s.Subscriber != row.Subscriber || s.Step != secs || len(s.Times) == 0 ||
				len(s.DownloadBytes) != len(s.Times) || len(s.UploadBytes) != len(s.Times) {
				t.Fatalf("%s step=%q: %+v, want steps of %d s", row.Subscriber, step, s, secs)
			}
			var down, up uint64
			for i := range s.Times {
				down += s.DownloadBytes[i]
				up += s.UploadBytes[i]
				if i > 0 && s.Times[i]-s.Times[i-1] != secs {
					t.Errorf("%s step=%q: times %d and %d are not %d s apart", row.Subscriber, step, s.Times[i-1], s.Times[i], secs)
				}
			}
			if down != row.DownloadBytes || up != row.UploadBytes {
				t.Errorf("%s step=%q: the series sums to %d down %d up, the row says %d and %d", row.Subscriber, step, down, up, row.DownloadBytes, row.UploadBytes)
			}
		}
	}
	// Another router, or an unknown subscriber: zeros over the period.
	var s UsageSeries
	e.getJSON("/api/v1/subscribers/usage/series?range=24h&router=2&subscriber=alice", &s)
	for i := range s.Times {
		if s.DownloadBytes[i] != 0 || s.UploadBytes[i] != 0 {
			t.Fatalf("alice on router 2: %+v, want zeros", s)
		}
	}
}

func TestSubscriberUsageValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.login()
	now := e.now.Format(time.RFC3339)
	earlier := e.now.Add(-time.Hour).Format(time.RFC3339)
	for _, tc := range []struct{ path, want string }{
		{"/api/v1/subscribers/usage?sort=size", "sort"},
		{"/api/v1/subscribers/usage?limit=0", "limit"},
		{"/api/v1/subscribers/usage?limit=1001", "limit"},
		{"/api/v1/subscribers/usage?limit=ten", "limit"},
		{"/api/v1/subscribers/usage?offset=-1", "offset"},
		{"/api/v1/subscribers/usage?router=gw1", "router"},
		{"/api/v1/subscribers/usage?router=0", "router"},
		{"/api/v1/subscribers/usage?range=1y", "range"},
		{"/api/v1/subscribers/usage?from=" + url.QueryEscape(now) + "&to=" + url.QueryEscape(earlier), "from"},
		{"/api/v1/subscribers/usage?search=" + strings.Repeat("x", 201), "search"},
		{"/api/v1/subscribers/usage.csv?limit=1&sort=biggest", "sort"},
		{"/api/v1/subscribers/usage.csv?from=" + url.QueryEscape(now) + "&to=" + url.QueryEscape(earlier), "from"},
		{"/api/v1/subscribers/usage/series?range=24h", "subscriber"},
		{"/api/v1/subscribers/usage/series?range=24h&subscriber=alice&step=5m", "step"},
		{"/api/v1/subscribers/usage/series?range=24h&subscriber=alice&step=1w", "step"},
		{"/api/v1/subscribers/usage/series?subscriber=alice&from=" + url.QueryEscape(now) + "&to=" + url.QueryEscape(earlier), "from"},
		{"/api/v1/subscribers/usage/series?subscriber=alice&router=x", "router"},
	} {
		code, body := e.do(http.MethodGet, tc.path, nil)
		var eb errorBody
		if code != http.StatusBadRequest || json.Unmarshal(body, &eb) != nil || !strings.Contains(eb.Error, tc.want) {
			t.Errorf("GET %s: %d %s, want 400 naming %s", tc.path, code, body, tc.want)
		}
	}
	// The store's own refusal (hourly steps beyond the hourly retention)
	// is a 400 with its message too.
	old := e.now.Add(-100 * 24 * time.Hour)
	code, body := e.do(http.MethodGet, "/api/v1/subscribers/usage/series?subscriber=alice&step=1h&from="+url.QueryEscape(old.Format(time.RFC3339))+
		"&to="+url.QueryEscape(old.Add(24*time.Hour).Format(time.RFC3339)), nil)
	if code != http.StatusBadRequest || !strings.Contains(string(body), "step") {
		t.Errorf("hourly series 100 days ago: %d %s, want 400 about the step", code, body)
	}
	// Without a session, every usage route is refused.
	anon := &http.Client{}
	for _, p := range []string{"/api/v1/subscribers/usage", "/api/v1/subscribers/usage.csv", "/api/v1/subscribers/usage/series?subscriber=alice", "/subscribers"} {
		res, err := anon.Get(e.ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if p == "/subscribers" {
			if res.Request.URL.Path != "/login" {
				t.Errorf("GET %s without a session ends at %s, want /login", p, res.Request.URL)
			}
		} else if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without a session: %d, want 401", p, res.StatusCode)
		}
	}
}

// TestUsageSchemasMatchTypes keeps the OpenAPI schemas of the usage API in
// step with the JSON the handlers write.
func TestUsageSchemasMatchTypes(t *testing.T) {
	t.Parallel()
	schemas := buildOpenAPI()["components"].(openAPI)["schemas"].(openAPI)
	for name, v := range map[string]any{"Usage": UsageResult{}, "UsageRow": UsageRow{}, "UsageTotal": UsageTotal{}, "UsageSeries": UsageSeries{}} {
		sc, ok := schemas[name].(openAPI)
		if !ok {
			t.Errorf("no schema %s", name)
			continue
		}
		var props, fields []string
		for p := range sc["properties"].(openAPI) {
			props = append(props, p)
		}
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			if tag, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ","); tag != "" && tag != "-" {
				fields = append(fields, tag)
			}
		}
		slices.Sort(props)
		slices.Sort(fields)
		if !slices.Equal(props, fields) {
			t.Errorf("schema %s has %v, the Go type %T writes %v", name, props, v, fields)
		}
	}
}
