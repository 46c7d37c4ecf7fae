package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"testing"

	"github.com/flowbox/flowbox/store"
)

// remoteCountry is the country of a flow's remote side, as the country
// filter reads it.
func remoteCountry(f *store.Flow) string {
	if f.Direction == store.DirDownload {
		return f.SrcCountry
	}
	return f.DstCountry
}

// TestClickFilters checks the filters behind the clicks of the router
// page's tables against sums over the known dataset.
func TestClickFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.login()
	gw1 := e.addRouter(datasetRouter())
	gw2 := e.addRouter(store.Router{Name: "gw2", Address: "127.0.0.3:8728", State: store.StateConfigured})
	flows := dataset(e.now)
	e.ingest(flows)
	local, remote := netip.MustParseAddr("10.0.1.7"), netip.MustParseAddr("8.8.8.8")

	// Row keys: what a click filters by.
	var top TopResult
	keys := func(path string) map[string]TopRow {
		t.Helper()
		e.getJSON(path, &top)
		out := map[string]TopRow{}
		for _, r := range top.Rows {
			out[r.Key] = r
		}
		return out
	}
	if k := keys(fmt.Sprintf("/api/v1/top/port?router=%d&range=24h", gw1.ID)); len(k) != 2 || k["https"].Label != "https" || k["udp/53"].Label != "udp/53" {
		t.Errorf("application and port keys %+v", top.Rows)
	}
	if k := keys(fmt.Sprintf("/api/v1/top/country?router=%d&range=24h", gw1.ID)); len(k) != 2 || k["US"].Bytes == 0 || k["AU"].Bytes == 0 {
		t.Errorf("country keys %+v", top.Rows)
	}
	if k := keys(fmt.Sprintf("/api/v1/top/country?router=%d&range=24h", gw2.ID)); len(k) != 1 || k["unknown"].Label != "unknown" {
		t.Errorf("country keys of gw2 %+v", top.Rows)
	}

	for _, tc := range []struct {
		name, path string
		keep       func(*store.Flow) bool
		wantRows   int
	}{
		{"conversation", fmt.Sprintf("/api/v1/top/conversation?router=%d&range=24h&local=%s&remote=%s", gw1.ID, local, remote),
			func(f *store.Flow) bool { l, r := f.LocalRemote(); return fromGW1(f) && l == local && r == remote }, 1},
		{"local only", fmt.Sprintf("/api/v1/top/conversation?router=%d&range=24h&local=%s", gw1.ID, local),
			func(f *store.Flow) bool { l, _ := f.LocalRemote(); return fromGW1(f) && l == local }, 3},
		{"application", fmt.Sprintf("/api/v1/top/local?router=%d&range=24h&app=https", gw1.ID),
			func(f *store.Flow) bool { return fromGW1(f) && f.Application == "https" }, 3},
		{"country", fmt.Sprintf("/api/v1/top/as?router=%d&range=24h&country=AU", gw1.ID),
			func(f *store.Flow) bool { return fromGW1(f) && remoteCountry(f) == "AU" }, 1},
		{"unknown country", fmt.Sprintf("/api/v1/top/local?router=%d&range=24h&country=unknown", gw2.ID),
			func(f *store.Flow) bool { return !fromGW1(f) && remoteCountry(f) == "" }, 1},
	} {
		e.getJSON(tc.path, &top)
		want, _ := sumFlows(flows, tc.keep)
		if top.Total.Bytes != want || len(top.Rows) != tc.wantRows || want == 0 {
			t.Errorf("%s: %d rows, total %d bytes; want %d rows, %d bytes", tc.name, len(top.Rows), top.Total.Bytes, tc.wantRows, want)
		}
	}
	if k := keys(fmt.Sprintf("/api/v1/top/as?router=%d&range=24h&country=AU", gw1.ID)); len(k) != 1 || k["13335"].Bytes == 0 {
		t.Errorf("AS of Australia %+v", top.Rows)
	}

	// The flow search takes the same filters.
	var page FlowsResult
	e.getJSON(fmt.Sprintf("/api/v1/flows?router=%d&range=24h&local=%s&remote=%s&limit=1000", gw1.ID, local, remote), &page)
	_, n := sumFlows(flows, func(f *store.Flow) bool { l, r := f.LocalRemote(); return fromGW1(f) && l == local && r == remote })
	if len(page.Flows) != n {
		t.Errorf("flows of the conversation: %d, want %d", len(page.Flows), n)
	}

	// Beyond the raw window, the message names the filters in use.
	code, body := e.do(http.MethodGet, fmt.Sprintf("/api/v1/top/local?router=%d&range=7d&app=https&country=US", gw1.ID), nil)
	var eb errorBody
	_ = json.Unmarshal(body, &eb)
	if code != http.StatusBadRequest || eb.Error != "filters on applications and countries work on the last 48 h; pick a shorter range" {
		t.Errorf("application filter over 7 days: %d %s", code, body)
	}
}
