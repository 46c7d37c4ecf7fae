package web

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// fakeDomains names remote addresses from maps; status is what
// DomainStatus answers.
type fakeDomains struct {
	names   map[netip.Addr]string
	reverse map[netip.Addr]string
	status  any
}

func (f *fakeDomains) RemoteName(a netip.Addr, _, _ time.Time, _ string) (string, bool) {
	if n, ok := f.names[a]; ok {
		return n, false
	}
	if n, ok := f.reverse[a]; ok {
		return n, true
	}
	return "", false
}

func (f *fakeDomains) DomainStatus() any {
	if f.status != nil {
		return f.status
	}
	return []map[string]any{{"router": "tower1", "remote_requests": false, "resolver": false}}
}

// TestDomainsAPI: the domain top list (with the unknown row), the domain
// filter, names beside remote hosts (reverse DNS marked as such) in the
// remote-host top and the flow search, and the resolver status.
func TestDomainsAPI(t *testing.T) {
	t.Parallel()
	video, dns, bare := netip.MustParseAddr("142.250.1.10"), netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("198.51.100.9")
	names := &fakeDomains{names: map[netip.Addr]string{video: "rr3---sn-a.googlevideo.com"}, reverse: map[netip.Addr]string{dns: "dns.google"}}
	e := newEnv(t, func(_ *Config, d *Deps) { d.Domains = names })
	e.login()
	exp := netip.MustParseAddrPort("127.0.0.2:4000")
	local := netip.MustParseAddr("10.0.0.5")
	end := e.now.Add(-2 * time.Minute).UnixMilli()
	flow := func(remote netip.Addr, domain string, b uint64) store.Flow {
		return store.Flow{Exporter: exp, Version: 9, Start: end - 1000, End: end, SrcAddr: remote, DstAddr: local, Proto: 6, SrcPort: 443, DstPort: 50000,
			Bytes: b, Packets: 10, Direction: store.DirDownload, RemoteDomain: domain}
	}
	fs := []store.Flow{flow(video, "googlevideo.com", 900_000), flow(video, "googlevideo.com", 100_000), flow(dns, "", 5_000), flow(bare, "", 1_000)}
	for i := range fs {
		fs[i].Subscriber = "Maria"
	}
	e.ingest(fs)

	var top TopResult
	e.getJSON("/api/v1/top/domain?range=1h", &top)
	if len(top.Rows) != 2 || top.Rows[0].Key != "googlevideo.com" || top.Rows[0].Bytes != 1_000_000 || top.Rows[1].Key != "unknown" || top.Rows[1].Bytes != 6_000 {
		t.Fatalf("top domains: %+v", top.Rows)
	}
	top = TopResult{}
	e.getJSON("/api/v1/top/remote?range=1h", &top)
	got := map[string]TopRow{}
	for _, r := range top.Rows {
		got[r.Key] = r
	}
	if r := got[video.String()]; r.Name != "rr3---sn-a.googlevideo.com" || r.Reverse {
		t.Errorf("video host: %+v", r)
	}
	if r := got[dns.String()]; r.Name != "dns.google" || !r.Reverse {
		t.Errorf("reverse-named host: %+v", r)
	}
	if r := got[bare.String()]; r.Name != "" {
		t.Errorf("unnamed host: %+v", r)
	}

	var page FlowsResult
	e.getJSON("/api/v1/flows?range=1h&domain=googlevideo.com", &page)
	if len(page.Flows) != 2 {
		t.Fatalf("flows of googlevideo.com: %+v", page.Flows)
	}
	for _, f := range page.Flows {
		if f.Domain != "googlevideo.com" || f.RemoteName != "rr3---sn-a.googlevideo.com" || f.RemoteNameReverse {
			t.Errorf("flow %+v", f)
		}
	}
	page = FlowsResult{}
	e.getJSON("/api/v1/flows?range=1h&domain=unknown", &page)
	if len(page.Flows) != 2 {
		t.Fatalf("flows without a domain: %+v", page.Flows)
	}
	for _, f := range page.Flows {
		if f.Domain != "" || (f.Src == dns.String() && (f.RemoteName != "dns.google" || !f.RemoteNameReverse)) {
			t.Errorf("flow %+v", f)
		}
	}
	// A domain is matched as the top list names it: case and a final dot
	// do not matter.
	page = FlowsResult{}
	e.getJSON("/api/v1/flows?range=1h&domain=GoogleVideo.com.", &page)
	if len(page.Flows) != 2 {
		t.Fatalf("flows of GoogleVideo.com.: %d", len(page.Flows))
	}
	if code, body := e.do(http.MethodGet, "/api/v1/flows?range=1h&domain="+strings.Repeat("a", 254), nil); code != http.StatusBadRequest || !strings.Contains(string(body), "domain: longer than 253") {
		t.Errorf("long domain: %d %s", code, body)
	}
	code, body := e.do(http.MethodGet, "/api/v1/domains/status", nil)
	if code != http.StatusOK || !strings.Contains(string(body), `"remote_requests":false`) {
		t.Errorf("status: %d %s", code, body)
	}

	// The subscriber's domains over the day.
	var sd store.SubscriberDomains
	e.getJSON("/api/v1/subscribers/domains?subscriber=Maria&range=24h", &sd)
	if len(sd.Rows) != 2 || sd.Rows[0].Domain != "googlevideo.com" || sd.Rows[0].DownloadBytes != 1_000_000 || sd.Rows[1].Domain != "" ||
		sd.Total.DownloadBytes != 1_006_000 {
		t.Errorf("subscriber domains: %+v", sd)
	}
	if code, body := e.do(http.MethodGet, "/api/v1/subscribers/domains?range=24h", nil); code != http.StatusBadRequest || !strings.Contains(string(body), "subscriber: required") {
		t.Errorf("no subscriber: %d %s", code, body)
	}

	// Without a namer: no names, and the status says why.
	e2 := newEnv(t)
	e2.login()
	if code, body := e2.do(http.MethodGet, "/api/v1/domains/status", nil); code != http.StatusServiceUnavailable || !strings.Contains(string(body), "reads no router's DNS cache") {
		t.Errorf("no namer: %d %s", code, body)
	}
}

// TestTopPartial: a top-N whose raw scan runs out of its budget answers
// with the newest part of the range, marked partial with a note, instead
// of timing out; so does the traffic chart; quick=1 uses the quick
// budget.
func TestTopPartial(t *testing.T) {
	t.Parallel()
	sqliteOnly(t, "partial answers come from the time budget of its raw scans; ClickHouse answers the whole range")
	e := newEnv(t)
	e.login()
	gw := e.addRouter(datasetRouter())
	exp := netip.MustParseAddrPort("127.0.0.2:4000")
	local, remote := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("198.51.100.9")
	var flows []store.Flow
	for i := range 12 { // one flow every 5 minutes over the last hour: a raw partition each
		end := e.now.Add(-time.Duration(i)*5*time.Minute - time.Minute).UnixMilli()
		flows = append(flows, store.Flow{Exporter: exp, Version: 9, Start: end - 1000, End: end, SrcAddr: remote, DstAddr: local, Proto: 17,
			SrcPort: 53, DstPort: 40000, Bytes: 1000, Packets: 1, Direction: store.DirDownload})
	}
	e.ingest(flows)
	var top TopResult
	e.getJSON("/api/v1/top/remote?range=1h&proto=udp", &top)
	if top.Partial || top.Total.Bytes != 12000 {
		t.Fatalf("no budget pressure: partial %v, %d bytes", top.Partial, top.Total.Bytes)
	}
	// quick=1 uses the quick budget; the traffic chart answers partially
	// the same way, each interface series too.
	e.srv.quickBudget = time.Nanosecond
	top = TopResult{}
	e.getJSON("/api/v1/top/remote?range=1h&proto=udp&quick=1", &top)
	if !top.Partial || top.Total.Bytes >= 12000 {
		t.Fatalf("quick answer: %+v", top)
	}
	var sum float64
	for _, path := range []string{"/api/v1/traffic?range=1h&port=53&quick=1", fmt.Sprintf("/api/v1/traffic?range=1h&port=53&quick=1&interfaces=true&router=%d", gw.ID)} {
		var series Series
		e.getJSON(path, &series)
		if !series.Partial || series.ScannedFrom == nil || !strings.HasPrefix(series.Note, "scanned the last ") {
			t.Errorf("%s: partial %v %v %q", path, series.Partial, series.ScannedFrom, series.Note)
		}
		if strings.Contains(path, "interfaces") {
			continue
		}
		for i, v := range series.BitsIn {
			if series.Times[i] < series.ScannedFrom.Unix()-series.Step && v != 0 {
				t.Errorf("%s: traffic at %d, before the scan's start %s", path, series.Times[i], series.ScannedFrom)
			}
			sum += v
		}
	}
	if sum == 0 {
		t.Error("the partial traffic is empty")
	}
	var series Series
	e.getJSON("/api/v1/traffic?range=1h&port=53", &series)
	if series.Partial {
		t.Errorf("the whole answer is partial: %q", series.Note)
	}
	if code, _ := e.do(http.MethodGet, "/api/v1/traffic?range=1h&port=53&quick=maybe", nil); code != http.StatusBadRequest {
		t.Errorf("quick=maybe: %d, want 400", code)
	}
	e.srv.rawBudget = time.Nanosecond // spent at once: the newest partition only
	top = TopResult{}
	e.getJSON("/api/v1/top/remote?range=1h&proto=udp", &top)
	if !top.Partial || top.ScannedFrom == nil || top.Total.Bytes == 0 || top.Total.Bytes >= 12000 ||
		!strings.HasPrefix(top.Note, "scanned the last ") || !strings.Contains(top.Note, "of 1 h") {
		t.Fatalf("partial answer: %+v", top)
	}
}
