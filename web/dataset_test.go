package web

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// datasetEnv is a console whose store holds dataset(now) for router gw1
// (127.0.0.2) and gw2 (127.0.0.3).
func datasetEnv(t testing.TB) (*env, store.Router, []store.Flow) {
	e := newEnv(t)
	e.login()
	gw1 := e.addRouter(datasetRouter())
	e.addRouter(store.Router{Name: "gw2", Address: "127.0.0.3:8728", State: store.StateConfigured})
	flows := dataset(e.now)
	e.ingest(flows)
	return e, gw1, flows
}

// datasetRouter is the router whose flows dataset holds (127.0.0.2).
func datasetRouter() store.Router {
	return store.Router{Name: "gw1", Address: "127.0.0.2:8728", State: store.StateConfigured,
		Interfaces: []store.Interface{{Index: 1, Name: "ether1-wan"}, {Index: 2, Name: "bridge-lan"}}}
}

// sumFlows sums the scaled bytes of the flows that keep accepts.
func sumFlows(flows []store.Flow, keep func(*store.Flow) bool) (bytes uint64, n int) {
	for i := range flows {
		if keep(&flows[i]) {
			bytes += flows[i].Scale(flows[i].Bytes)
			n++
		}
	}
	return bytes, n
}

func fromGW1(f *store.Flow) bool { return f.Exporter.Addr() == netip.MustParseAddr("127.0.0.2") }

func TestKnownDatasetTraffic(t *testing.T) {
	t.Parallel()
	e, gw1, flows := datasetEnv(t)
	for _, rng := range []string{"24h", "6h", "1h"} {
		var s Series
		e.getJSON(fmt.Sprintf("/api/v1/traffic?router=%d&range=%s", gw1.ID, rng), &s)
		d, _ := time.ParseDuration(strings.Replace(rng, "d", "h", 1))
		from := e.now.Add(-d)
		inRange := func(f *store.Flow) bool { return fromGW1(f) && time.UnixMilli(f.End).After(from) }
		wantIn, _ := sumFlows(flows, func(f *store.Flow) bool { return inRange(f) && f.Direction == store.DirDownload })
		wantOut, _ := sumFlows(flows, func(f *store.Flow) bool { return inRange(f) && f.Direction == store.DirUpload })
		var gotIn, gotOut float64
		for i := range s.Times {
			gotIn += s.BitsIn[i] * float64(s.Step) / 8
			gotOut += s.BitsOut[i] * float64(s.Step) / 8
		}
		if uint64(gotIn+0.5) != wantIn || uint64(gotOut+0.5) != wantOut {
			t.Errorf("range %s: in %v out %v bytes, want %d and %d", rng, gotIn, gotOut, wantIn, wantOut)
		}
		if len(s.Times) == 0 || len(s.Times) > 400 {
			t.Errorf("range %s: %d points", rng, len(s.Times))
		}
	}
	// Per interface: bytes entering ether1-wan are the downloads.
	var s Series
	e.getJSON(fmt.Sprintf("/api/v1/traffic?router=%d&range=24h&interfaces=true", gw1.ID), &s)
	if len(s.Interfaces) != 2 || s.Interfaces[0].Name != "ether1-wan" || s.Interfaces[1].Name != "bridge-lan" {
		t.Fatalf("interfaces %+v", s.Interfaces)
	}
	var wanIn float64
	for _, v := range s.Interfaces[0].BitsIn {
		wanIn += v * float64(s.Step) / 8
	}
	want, _ := sumFlows(flows, func(f *store.Flow) bool { return fromGW1(f) && f.InIf == 1 })
	if uint64(wanIn+0.5) != want {
		t.Errorf("ether1-wan in: %v bytes, want %d", wanIn, want)
	}
}

func TestKnownDatasetTop(t *testing.T) {
	t.Parallel()
	e, gw1, flows := datasetEnv(t)
	var top TopResult
	e.getJSON(fmt.Sprintf("/api/v1/top/local?router=%d&range=24h&limit=5", gw1.ID), &top)
	if len(top.Rows) != 3 {
		t.Fatalf("top local: %+v", top.Rows)
	}
	// 10.0.1.7 has the largest downloads (factor 3).
	want, _ := sumFlows(flows, func(f *store.Flow) bool {
		l, _ := f.LocalRemote()
		return fromGW1(f) && l == netip.MustParseAddr("10.0.1.7")
	})
	if top.Rows[0].Key != "10.0.1.7" || top.Rows[0].Bytes != want {
		t.Errorf("top talker %+v, want 10.0.1.7 with %d bytes", top.Rows[0], want)
	}
	total, _ := sumFlows(flows, fromGW1)
	if top.Total.Bytes != total {
		t.Errorf("total %d, want %d", top.Total.Bytes, total)
	}
	e.getJSON(fmt.Sprintf("/api/v1/top/as?router=%d&range=24h", gw1.ID), &top)
	if len(top.Rows) != 3 || top.Rows[0].Key != "15133" {
		t.Errorf("top AS %+v", top.Rows)
	}
	// A click on the top talker filters the other tables: only its flows remain.
	e.getJSON(fmt.Sprintf("/api/v1/top/conversation?router=%d&range=24h&host=10.0.1.7", gw1.ID), &top)
	if len(top.Rows) != 3 {
		t.Fatalf("conversations of 10.0.1.7: %+v", top.Rows)
	}
	for _, r := range top.Rows {
		if !strings.HasPrefix(r.Key, "10.0.1.7|") {
			t.Errorf("conversation %q does not involve the filtered host", r.Key)
		}
	}
	e.getJSON(fmt.Sprintf("/api/v1/top/port?router=%d&range=24h&proto=udp", gw1.ID), &top)
	if len(top.Rows) != 1 || top.Rows[0].Key != "udp/53" {
		t.Errorf("udp ports %+v", top.Rows)
	}
	// Protocols come from the rollups, so a week works too.
	for _, rng := range []string{"24h", "7d"} {
		e.getJSON(fmt.Sprintf("/api/v1/top/proto?router=%d&range=%s", gw1.ID, rng), &top)
		if len(top.Rows) != 2 {
			t.Fatalf("%s: protocols %+v", rng, top.Rows)
		}
		for i, want := range []struct {
			key, name string
			proto     uint8
		}{{"6", "tcp", 6}, {"17", "udp", 17}} {
			bytes, n := sumFlows(flows, func(f *store.Flow) bool { return fromGW1(f) && f.Proto == want.proto })
			r := top.Rows[i]
			if r.Key != want.key || r.Name != want.name || r.Bytes != bytes || r.Flows != uint64(n) {
				t.Errorf("%s: protocol row %d = %+v, want key %s name %s %d bytes %d flows", rng, i, r, want.key, want.name, bytes, n)
			}
		}
	}
}

func TestKnownDatasetFlowsAndCSV(t *testing.T) {
	t.Parallel()
	e, gw1, flows := datasetEnv(t)
	_, want := sumFlows(flows, func(f *store.Flow) bool { return fromGW1(f) && f.Proto == 17 })
	// Page through every UDP flow of gw1.
	seen, pages := 0, 0
	cursor := ""
	for {
		var page FlowsResult
		e.getJSON(fmt.Sprintf("/api/v1/flows?router=%d&range=24h&proto=udp&limit=500&cursor=%s", gw1.ID, cursor), &page)
		for _, f := range page.Flows {
			if f.Proto != "udp" || f.RouterID != gw1.ID || f.Bytes != 200 {
				t.Fatalf("flow %+v does not match the filter or is not scaled", f)
			}
		}
		seen += len(page.Flows)
		pages++
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if seen != want || pages < 2 {
		t.Errorf("paged %d flows in %d pages, want %d", seen, pages, want)
	}
	// The CSV export streams the whole result.
	code, body := e.do(http.MethodGet, fmt.Sprintf("/api/v1/flows.csv?router=%d&range=24h&proto=udp", gw1.ID), nil)
	if code != http.StatusOK {
		t.Fatalf("csv: %d %s", code, body)
	}
	recs, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != want+1 || recs[0][0] != store.CSVHeader[0] {
		t.Errorf("csv has %d records, want %d plus the header", len(recs), want)
	}
	// A query the store refuses is a JSON 400, not a broken CSV.
	code, body = e.do(http.MethodGet, fmt.Sprintf("/api/v1/flows.csv?from=%d&to=%d", e.now.Add(-30*24*time.Hour).Unix(), e.now.Add(-20*24*time.Hour).Unix()), nil)
	if code != http.StatusBadRequest || !strings.Contains(string(body), "raw") {
		t.Errorf("csv beyond the raw window: %d %s", code, body)
	}
}
