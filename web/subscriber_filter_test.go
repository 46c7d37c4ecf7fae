package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// TestSubscriberFilterAPI checks subscriber= on the flow search, the tops
// and the traffic series against sums over the known dataset, and its
// refusals.
func TestSubscriberFilterAPI(t *testing.T) {
	t.Parallel()
	e, gw1, flows := datasetEnv(t)
	from := e.now.Add(-24 * time.Hour)
	inRange := func(f *store.Flow) bool { return time.UnixMilli(f.End).After(from) }

	// The flow search lists alice's flows, all of them and only them.
	var page FlowsResult
	e.getJSON("/api/v1/flows?subscriber=alice&range=24h&limit=1000", &page)
	_, n := sumFlows(flows, func(f *store.Flow) bool { return inRange(f) && f.Subscriber == "alice" })
	if n == 0 || len(page.Flows) != n || page.Next != "" {
		t.Fatalf("flows of alice: %d (next %q), want %d", len(page.Flows), page.Next, n)
	}
	for _, f := range page.Flows {
		if f.Subscriber != "alice" {
			t.Fatalf("flow of %q in alice's flows: %+v", f.Subscriber, f)
		}
	}

	// The remote top of bob adds up to bob's bytes, on one router or all.
	wantBob, _ := sumFlows(flows, func(f *store.Flow) bool { return inRange(f) && f.Subscriber == "bob" })
	for _, path := range []string{
		"/api/v1/top/remote?subscriber=bob&range=24h",
		fmt.Sprintf("/api/v1/top/remote?router=%d&subscriber=bob&range=24h", gw1.ID),
	} {
		var top TopResult
		e.getJSON(path, &top)
		var rows uint64
		for _, r := range top.Rows {
			rows += r.Bytes
		}
		if wantBob == 0 || top.Total.Bytes != wantBob || rows+top.Other.Bytes != wantBob || len(top.Rows) != 3 {
			t.Errorf("%s: %d rows, total %d bytes (rows %d, other %d), want 3 rows, %d bytes",
				path, len(top.Rows), top.Total.Bytes, rows, top.Other.Bytes, wantBob)
		}
	}

	// The traffic series too.
	var s Series
	e.getJSON("/api/v1/traffic?subscriber=bob&range=24h", &s)
	wantIn, _ := sumFlows(flows, func(f *store.Flow) bool {
		return inRange(f) && f.Subscriber == "bob" && f.Direction == store.DirDownload
	})
	var gotIn float64
	for i := range s.Times {
		gotIn += s.BitsIn[i] * float64(s.Step) / 8
	}
	if uint64(gotIn+0.5) != wantIn {
		t.Errorf("traffic of bob: %v bytes in, want %d", gotIn, wantIn)
	}

	// A subscriber nobody is has no flows.
	e.getJSON("/api/v1/flows?subscriber=nobody&range=24h", &page)
	if len(page.Flows) != 0 {
		t.Errorf("flows of nobody: %d", len(page.Flows))
	}

	// Refusals: beyond the raw window, and a name too long.
	for _, tc := range []struct{ path, want string }{
		{"/api/v1/top/remote?subscriber=bob&range=7d", "filters on subscribers work on the last 48 h; pick a shorter range"},
		{"/api/v1/top/remote?subscriber=bob&app=https&range=7d", "filters on applications and subscribers work on the last 48 h; pick a shorter range"},
		{"/api/v1/flows?subscriber=" + strings.Repeat("a", 201), "subscriber: longer than 200 characters"},
		{"/api/v1/top/remote?subscriber=" + strings.Repeat("a", 201), "subscriber: longer than 200 characters"},
	} {
		code, body := e.do(http.MethodGet, tc.path, nil)
		var eb errorBody
		_ = json.Unmarshal(body, &eb)
		if code != http.StatusBadRequest || eb.Error != tc.want {
			t.Errorf("%s: %d %s, want 400 %q", tc.path[:min(len(tc.path), 60)], code, body, tc.want)
		}
	}
	// Over 7 days bob's traffic comes from the subscriber rollups (they
	// folded nobody into "other"): the same bytes.
	var week Series
	e.getJSON("/api/v1/traffic?subscriber=bob&range=7d", &week)
	var weekIn float64
	for i := range week.Times {
		weekIn += week.BitsIn[i] * float64(week.Step) / 8
	}
	// (ClickHouse keeps raw flows for 30 days: it answers from them.)
	if uint64(weekIn+0.5) != wantIn || (week.Resolution == string(store.ResRaw)) != onClickHouse() {
		t.Errorf("7 days of bob: %v bytes in from %s, want %d from the rollups", weekIn, week.Resolution, wantIn)
	}
	// Once a minute ranks more subscribers than the rollups keep (some
	// folded into "other"), only raw flows answer a subscriber over 7
	// days: refused, as before.
	busy := flows[0]
	busy.End = e.now.Add(-time.Hour).UnixMilli() // e2's clock is e's
	busy.Start = busy.End - 1000
	var crowd []store.Flow
	for i := range 120 {
		f := busy
		f.Subscriber, f.Bytes = fmt.Sprintf("crowd-%d", i), uint64(1000+i)
		crowd = append(crowd, f)
	}
	e2 := newEnv(t)
	e2.login()
	e2.ingest(crowd)
	code, body := e2.do(http.MethodGet, "/api/v1/traffic?subscriber=crowd-1&range=7d", nil)
	if onClickHouse() {
		var s Series
		if err := json.Unmarshal(body, &s); code != http.StatusOK || err != nil || s.Resolution != string(store.ResRaw) {
			t.Errorf("7 days of a subscriber on ClickHouse: %d %s, want its raw flows", code, body)
		}
		return
	}
	var eb errorBody
	_ = json.Unmarshal(body, &eb)
	if want := "filters on subscribers work on the last 48 h; pick a shorter range"; code != http.StatusBadRequest || eb.Error != want {
		t.Errorf("7 days of a folded subscriber: %d %s, want 400 %q", code, body, want)
	}
	// 200 characters are accepted.
	if code, body := e.do(http.MethodGet, "/api/v1/flows?subscriber="+strings.Repeat("a", 200), nil); code != http.StatusOK {
		t.Errorf("a 200-character name: %d %s", code, body)
	}
}
