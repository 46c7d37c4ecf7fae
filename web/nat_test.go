package web

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// The complaint of the tests: who used 203.0.113.7 port 51234/tcp at
// 14:02:11 UTC on 3 March 2026 (11:02:11 in São Paulo)?
var (
	complaintAt   = time.Date(2026, 3, 3, 14, 2, 11, 0, time.UTC)
	complaintAddr = netip.MustParseAddr("203.0.113.7")
	// rawKeptSince is the fake's raw retention: flows before it are gone.
	rawKeptSince = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	// carolAddr is a public address without NAT, assigned to carol.
	carolAddr = netip.MustParseAddr("198.51.100.20")
)

// natMappings are the fake's NAT mappings: alice's of the complaint, and
// bob's of the same public port months earlier (port reuse).
func natMappings() []store.NATMapping {
	return []store.NATMapping{
		{RouterID: 1, Router: "gw1", Proto: 6, ProtoName: "tcp", PublicAddr: complaintAddr, PublicPort: 51234,
			InsideAddr: netip.MustParseAddr("100.64.1.10"), InsidePort: 40000,
			RemoteAddr: netip.MustParseAddr("192.0.2.80"), RemotePort: 443, Remotes: 1,
			FirstSeen: complaintAt.Add(-21 * time.Second), LastSeen: complaintAt.Add(29 * time.Second), Flows: 3,
			Subscriber: "alice", SubscriberSource: "dhcp", CustomerID: "C-1001"},
		{RouterID: 1, Router: "gw1", Proto: 6, ProtoName: "tcp", PublicAddr: complaintAddr, PublicPort: 51234,
			InsideAddr: netip.MustParseAddr("100.64.1.11"), InsidePort: 52000,
			RemoteAddr: netip.MustParseAddr("192.0.2.81"), RemotePort: 25, Remotes: 4,
			FirstSeen: time.Date(2025, 12, 1, 8, 0, 0, 0, time.UTC), LastSeen: time.Date(2025, 12, 1, 8, 1, 0, 0, time.UTC), Flows: 9,
			Subscriber: "bob", SubscriberSource: "pppoe", CustomerID: "C-1002"},
	}
}

// fakeNAT is the lookup cmd/flowbox composes, over the fixed mappings of
// natMappings and a small subscriber history; it records the queries.
type fakeNAT struct {
	mu      sync.Mutex
	queries []store.NATQuery
	holders []string // "address at"
	// fail makes every call fail with this error.
	fail error
}

func (f *fakeNAT) LookupNAT(ctx context.Context, q store.NATQuery) (*store.NATAnswer, error) {
	f.mu.Lock()
	f.queries = append(f.queries, q)
	fail := f.fail
	f.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	ans := &store.NATAnswer{FlowsKept: !q.At.Add(q.Window).Before(rawKeptSince)}
	for _, m := range natMappings() {
		if m.PublicAddr != q.Public || (q.Port != 0 && m.PublicPort != q.Port) || (q.Proto != 0 && m.Proto != q.Proto) ||
			q.At.Before(m.FirstSeen.Add(-q.Window)) || q.At.After(m.LastSeen.Add(q.Window)) {
			continue
		}
		ans.Matches = append(ans.Matches, m)
		if ans.FlowsKept {
			for i := range 2 {
				start := m.FirstSeen.Add(time.Duration(i) * 20 * time.Second)
				ans.Flows = append(ans.Flows, store.Flow{
					Exporter: netip.MustParseAddrPort("127.0.0.2:40000"), RouterID: m.RouterID, Version: 9,
					Start: start.UnixMilli(), End: start.Add(10 * time.Second).UnixMilli(),
					SrcAddr: m.InsideAddr, DstAddr: m.RemoteAddr, SrcPort: m.InsidePort, DstPort: m.RemotePort, Proto: m.Proto,
					Bytes: 1500 * uint64(i+1), Packets: 3, SamplingRate: 1, DstAS: 64500,
					Direction: store.DirUpload, Subscriber: m.Subscriber,
				})
			}
		}
	}
	switch len(ans.Matches) {
	case 0:
		ans.Message = fmt.Sprintf("No NAT mapping of %s within ±%s of %s: nobody behind this router used it then.",
			q.Public, q.Window, q.At.UTC().Format(time.RFC3339))
	default:
		m := ans.Matches[0]
		ans.Message = fmt.Sprintf("%s port %d was %s port %d on %s: %s (customer %s).",
			m.PublicAddr, m.PublicPort, m.InsideAddr, m.InsidePort, m.Router, m.Subscriber, m.CustomerID)
	}
	return ans, nil
}

func (f *fakeNAT) AddressHolder(ctx context.Context, addr netip.Addr, at time.Time) (*store.AddressHolder, error) {
	f.mu.Lock()
	f.holders = append(f.holders, addr.String()+" "+at.UTC().Format(time.RFC3339))
	fail := f.fail
	f.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	from := at.Add(-3 * time.Hour).UTC()
	h := &store.AddressHolder{Address: addr.String(), At: at}
	for _, m := range natMappings() {
		if m.InsideAddr == addr {
			*h = store.AddressHolder{Address: addr.String(), At: at, Found: true, Subscriber: m.Subscriber, CustomerID: m.CustomerID,
				Source: m.SubscriberSource, Router: m.Router, Prefix: addr.String() + "/32", From: &from,
				Message: m.Subscriber + " had " + addr.String() + " (" + m.SubscriberSource + " on " + m.Router + ")."}
			return h, nil
		}
	}
	switch addr {
	case carolAddr:
		*h = store.AddressHolder{Address: addr.String(), At: at, Found: true, Subscriber: "carol", CustomerID: "C-1003",
			Source: "import", Prefix: "198.51.100.16/29", From: &from, Message: "carol had 198.51.100.20 (imported)."}
	case netip.MustParseAddr("192.0.2.1"):
		return nil, fmt.Errorf("no record: %w", store.ErrNotFound)
	case netip.MustParseAddr("192.0.2.2"):
		return nil, nil
	default:
		h.Message = "Nobody had " + addr.String() + " then."
	}
	return h, nil
}

func (f *fakeNAT) lastQuery(t *testing.T) store.NATQuery {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queries) == 0 {
		t.Fatal("the lookup was not asked")
	}
	return f.queries[len(f.queries)-1]
}

func (f *fakeNAT) count() (lookups, holders int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queries), len(f.holders)
}

// withNAT gives the console the fake lookup.
func withNAT(f *fakeNAT) envOption {
	return func(_ *Config, d *Deps) { d.NAT = f }
}

// complaintQuery is the query string of the complaint.
func complaintQuery() url.Values {
	return url.Values{"address": {"203.0.113.7"}, "port": {"51234"}, "proto": {"tcp"}, "at": {"2026-03-03T14:02:11Z"}}
}

// TestNATLookup answers the complaint with alice's mapping, the evidence
// flows as the flow search renders them, and the message; the lookup gets
// the query as given.
func TestNATLookup(t *testing.T) {
	t.Parallel()
	nat := &fakeNAT{}
	e := newEnv(t, withNAT(nat))
	e.login()
	q := complaintQuery()
	q.Set("window", "90s")
	code, body := e.do(http.MethodGet, "/api/v1/nat/lookup?"+q.Encode(), nil)
	if code != http.StatusOK {
		t.Fatalf("lookup: %d %s", code, body)
	}
	want := store.NATQuery{Public: complaintAddr, Port: 51234, Proto: 6, At: complaintAt, Window: 90 * time.Second}
	if got := nat.lastQuery(t); got.Public != want.Public || got.Port != want.Port || got.Proto != want.Proto ||
		!got.At.Equal(want.At) || got.Window != want.Window || got.Limit != 0 {
		t.Errorf("the lookup got %+v, want %+v", got, want)
	}
	var res NATLookupResult
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Matches) != 1 || res.Matches[0].Subscriber != "alice" || res.Matches[0].CustomerID != "C-1001" ||
		res.Matches[0].InsideAddr != netip.MustParseAddr("100.64.1.10") || res.Matches[0].InsidePort != 40000 {
		t.Errorf("matches %+v, want alice's mapping", res.Matches)
	}
	if res.Message != "203.0.113.7 port 51234 was 100.64.1.10 port 40000 on gw1: alice (customer C-1001)." || !res.FlowsKept {
		t.Errorf("message %q, flows kept %v", res.Message, res.FlowsKept)
	}
	if res.Query.Address != "203.0.113.7" || res.Query.Port != 51234 || res.Query.Proto != "tcp" || !res.Query.At.Equal(complaintAt) ||
		res.Query.Window != "1m30s" {
		t.Errorf("the answer's query is %+v", res.Query)
	}
	if len(res.Flows) != 2 || res.Flows[0].Src != "100.64.1.10" || res.Flows[0].SrcPort != 40000 || res.Flows[0].Dst != "192.0.2.80" ||
		res.Flows[0].Proto != "tcp" || res.Flows[0].Direction != "upload" || res.Flows[1].Bytes != 3000 || res.Flows[0].Exporter != "127.0.0.2" {
		t.Errorf("evidence flows %+v", res.Flows)
	}

	// The keys the issue promises, in the JSON itself; the flows have the
	// flow search's keys.
	var raw struct {
		Query   map[string]json.RawMessage   `json:"query"`
		Matches []map[string]json.RawMessage `json:"matches"`
		Flows   []map[string]json.RawMessage `json:"flows"`
	}
	if err := json.Unmarshal(body, &raw); err != nil || len(raw.Matches) != 1 || len(raw.Flows) != 2 {
		t.Fatalf("raw answer: %v %s", err, body)
	}
	for _, k := range []string{"router", "proto", "public_address", "public_port", "inside_address", "inside_port", "remote_address",
		"remote_port", "first_seen", "last_seen", "subscriber", "customer_id"} {
		if _, ok := raw.Matches[0][k]; !ok {
			t.Errorf("a match has no %q: %s", k, body)
		}
	}
	if string(raw.Matches[0]["first_seen"]) != `"2026-03-03T14:01:50Z"` {
		t.Errorf("first_seen is %s, want UTC RFC 3339", raw.Matches[0]["first_seen"])
	}
	var fv map[string]json.RawMessage
	b, _ := json.Marshal(flowView(&store.Flow{}))
	_ = json.Unmarshal(b, &fv)
	for k := range fv {
		if _, ok := raw.Flows[0][k]; !ok {
			t.Errorf("an evidence flow has no %q, which the flow search writes", k)
		}
	}
	if string(raw.Flows[0]["dst_as"]) != "64500" {
		t.Errorf("flow dst_as %s", raw.Flows[0]["dst_as"])
	}

	// Without port and protocol: any; the default window is 2 minutes.
	res = NATLookupResult{}
	e.getJSON("/api/v1/nat/lookup?address=203.0.113.7&at=2026-03-03T14:02:11Z", &res)
	if got := nat.lastQuery(t); got.Port != 0 || got.Proto != 0 || got.Window != 2*time.Minute {
		t.Errorf("a lookup without port and proto asked %+v", got)
	}
	if len(res.Matches) != 1 || res.Query.Port != 0 || res.Query.Proto != "" || res.Query.Window != "2m0s" {
		t.Errorf("answer without port: %+v", res)
	}
	// Port reuse: the same public port months earlier was bob's, whose raw
	// flows are gone.
	res = NATLookupResult{}
	e.getJSON("/api/v1/nat/lookup?address=203.0.113.7&port=51234&proto=6&at=2025-12-01T05:00:30-03:00", &res)
	if len(res.Matches) != 1 || res.Matches[0].Subscriber != "bob" || res.FlowsKept || len(res.Flows) != 0 {
		t.Errorf("December's lookup: %+v", res)
	}
	// An IPv4-mapped IPv6 address is the IPv4 address.
	res = NATLookupResult{}
	e.getJSON("/api/v1/nat/lookup?address=::ffff:203.0.113.7&at=2026-03-03T14:02:11Z", &res)
	if got := nat.lastQuery(t); got.Public != complaintAddr || len(res.Matches) != 1 {
		t.Errorf("a mapped address asked %v, found %d", got.Public, len(res.Matches))
	}
}

// TestNATLookupNone: no mapping is 200 with empty lists and the message;
// a lookup without a message gets the console's sentence; lookup errors
// are 400 (a bad query), 504 or 500.
func TestNATLookupNone(t *testing.T) {
	t.Parallel()
	nat := &fakeNAT{}
	e := newEnv(t, withNAT(nat))
	e.login()
	code, body := e.do(http.MethodGet, "/api/v1/nat/lookup?address=203.0.113.7&port=51234&at=2026-03-03T18:00:00Z", nil)
	if code != http.StatusOK || !strings.Contains(string(body), `"matches":[]`) || !strings.Contains(string(body), `"flows":[]`) ||
		!strings.Contains(string(body), `"message":"No NAT mapping of 203.0.113.7 within ±2m0s of 2026-03-03T18:00:00Z: nobody behind this router used it then."`) {
		t.Errorf("no match: %d %s", code, body)
	}

	// A lookup that leaves the message and lists empty.
	e2 := newEnv(t, func(_ *Config, d *Deps) { d.NAT = silentNAT{} })
	e2.login()
	code, body = e2.do(http.MethodGet, "/api/v1/nat/lookup?address=2001:db8::7&port=443&proto=udp&at=2026-03-03T18:00:00Z&window=5m", nil)
	if code != http.StatusOK || !strings.Contains(string(body), `"matches":[]`) ||
		!strings.Contains(string(body), `"message":"No NAT mapping of 2001:db8::7 port 443/udp within ±5m0s of 2026-03-03 18:00:00 UTC."`) ||
		!strings.Contains(string(body), `"query":{"address":"2001:db8::7","port":443,"proto":"udp","at":"2026-03-03T18:00:00Z","window":"5m0s"}`) {
		t.Errorf("a silent lookup: %d %s", code, body)
	}

	for _, c := range []struct {
		err  error
		code int
		msg  string
	}{
		{fmt.Errorf("window too wide: %w", store.ErrBadQuery), http.StatusBadRequest, "window too wide"},
		{context.DeadlineExceeded, http.StatusGatewayTimeout, "the query took too long"},
		{errors.New("disk I/O error in /var/lib/flowbox/nat.db"), http.StatusInternalServerError, "internal error (incident "},
	} {
		nat.mu.Lock()
		nat.fail = c.err
		nat.mu.Unlock()
		for _, path := range []string{"/api/v1/nat/lookup?", "/api/v1/nat/lookup.csv?"} {
			code, body := e.do(http.MethodGet, path+complaintQuery().Encode(), nil)
			var eb errorBody
			if code != c.code || json.Unmarshal(body, &eb) != nil || !strings.Contains(eb.Error, c.msg) || strings.Contains(eb.Error, "/var/lib") {
				t.Errorf("%s with a lookup failing with %v: %d %s, want %d %q", path, c.err, code, body, c.code, c.msg)
			}
		}
	}
}

// silentNAT finds nothing and says nothing.
type silentNAT struct{}

func (silentNAT) LookupNAT(context.Context, store.NATQuery) (*store.NATAnswer, error) {
	return &store.NATAnswer{}, nil
}

func (silentNAT) AddressHolder(context.Context, netip.Addr, time.Time) (*store.AddressHolder, error) {
	return nil, nil
}

// TestNATLookupBadParameters: each bad parameter is a 400 naming it, and
// the lookup is not asked.
func TestNATLookupBadParameters(t *testing.T) {
	t.Parallel()
	nat := &fakeNAT{}
	e := newEnv(t, withNAT(nat))
	e.login()
	cases := map[string]string{
		"":                              "address: required",
		"address=":                      "address: required",
		"address=203.0.113":             `address: "203.0.113" is not an IP address`,
		"address=example.com":           `address: "example.com" is not an IP address`,
		"address=203.0.113.0/24":        `address: "203.0.113.0/24" is not an IP address`,
		"address=fe80::1%25eth0":        `address: "fe80::1%eth0" is not an IP address`,
		"port=0":                        `port: "0" is not a port number (1-65535)`,
		"port=65536":                    `port: "65536" is not a port number (1-65535)`,
		"port=-1":                       `port: "-1" is not a port number`,
		"port=http":                     `port: "http" is not a port number`,
		"proto=tcpx":                    `proto: "tcpx" is not a protocol (tcp, udp or a number 1-255)`,
		"proto=0":                       `proto: "0" is not a protocol`,
		"proto=256":                     `proto: "256" is not a protocol`,
		"at=":                           "at: required",
		"at=yesterday":                  `at: "yesterday" is not a time`,
		"at=2026-03-03T14:02:11":        `at: "2026-03-03T14:02:11" has no time zone: add its offset (Z, -03:00) or give tz`,
		"at=2026-03-03T14:02:11 EST":    `at: "2026-03-03T14:02:11 EST" is not a time`,
		"at=2026-02-30T14:02:11Z":       `at: "2026-02-30T14:02:11Z" is not a time`,
		"at=" + strings.Repeat("1", 65): "at: longer than 64 characters",
		"at=99999999999999":             "at: 99999999999999 is out of range",
		"tz=Mars/Olympus_Mons":          `tz: "Mars/Olympus_Mons" is not a time zone`,
		"tz=Local":                      `tz: "Local" is not a time zone`,
		"tz=../../etc/passwd":           `tz: "../../etc/passwd" is not a time zone`,
		"tz=/etc/localtime":             `tz: "/etc/localtime" is not a time zone`,
		"window=0s":                     `window: "0s" is not a duration from 1s to 1 h`,
		"window=2h":                     `window: "2h" is not a duration from 1s to 1 h`,
		"window=-2m":                    `window: "-2m" is not a duration`,
		"window=2":                      `window: "2" is not a duration`,
		"a;b":                           "query: ",
		"at=2026-03-08T02:30:00&tz=America/New_York": "at: 2026-03-08T02:30:00 did not exist in America/New_York (the clocks went forward)",
		"at=2026-11-01T01:30:00&tz=America/New_York": "at: 2026-11-01T01:30:00 happened twice in America/New_York (the clocks went back)",
	}
	for raw, want := range cases {
		q := complaintQuery()
		over, err := url.ParseQuery(raw)
		if raw == "" {
			q.Del("address")
		} else if err != nil {
			q = nil // sent as is
		}
		for k, v := range over {
			q[k] = v
		}
		qs := raw
		if q != nil {
			qs = q.Encode()
		}
		for _, path := range []string{"/api/v1/nat/lookup?", "/api/v1/nat/lookup.csv?"} {
			code, body := e.do(http.MethodGet, path+qs, nil)
			var eb errorBody
			if code != http.StatusBadRequest || json.Unmarshal(body, &eb) != nil || !strings.HasPrefix(eb.Error, want) {
				t.Errorf("GET %s%s: %d %s, want 400 %q", path, qs, code, body, want)
			}
		}
	}
	if n, _ := nat.count(); n != 0 {
		t.Errorf("bad queries asked the lookup %d times", n)
	}
}

// TestNATLookupTimeZones: the same instant written as UTC, with an
// offset, in other pasted forms, or as a local time with tz, asks the
// same NATQuery.At; an offset wins over tz.
func TestNATLookupTimeZones(t *testing.T) {
	t.Parallel()
	nat := &fakeNAT{}
	e := newEnv(t, withNAT(nat))
	e.login()
	for _, c := range []struct{ at, tz string }{
		{"2026-03-03T14:02:11Z", ""},
		{"2026-03-03T11:02:11-03:00", ""},
		{"2026-03-03T11:02:11-03:00", "Asia/Tokyo"}, // the offset wins
		{"2026-03-03T23:02:11+09:00", ""},
		{"2026-03-03T14:02:11.000Z", ""},
		{"2026-03-03 14:02:11Z", ""},
		{"2026-03-03 11:02:11 -0300", ""},
		{"2026-03-03 14:02:11 UTC", ""},
		{"2026-03-03 14:02:11 utc", "America/Sao_Paulo"}, // UTC wins
		{"Tue, 03 Mar 2026 14:02:11 GMT", ""},
		{"Tue, 03 Mar 2026 11:02:11 -0300", ""},
		{"03/Mar/2026:11:02:11 -0300", ""},
		{"1772546531", ""},
		{"2026-03-03T11:02:11", "America/Sao_Paulo"},
		{"2026-03-03 11:02:11", "America/Sao_Paulo"},
		{"2026-03-03T14:02:11", "UTC"},
		{"2026-03-03T15:02:11", "Europe/Paris"},
		{"2026-03-03T09:02:11", "America/New_York"},
		{"2026-03-03T23:02:11", "Asia/Tokyo"},
		{" 2026-03-03T11:02:11 ", " America/Sao_Paulo "},
	} {
		q := complaintQuery()
		q.Set("at", c.at)
		if c.tz != "" {
			q.Set("tz", c.tz)
		}
		var res NATLookupResult
		e.getJSON("/api/v1/nat/lookup?"+q.Encode(), &res)
		if got := nat.lastQuery(t).At; !got.Equal(complaintAt) {
			t.Errorf("at=%q tz=%q asked %v, want %v", c.at, c.tz, got.UTC(), complaintAt)
		}
		if len(res.Matches) != 1 || !res.Query.At.Equal(complaintAt) || res.Query.At.Location() != time.UTC {
			t.Errorf("at=%q tz=%q: %d matches, query at %v", c.at, c.tz, len(res.Matches), res.Query.At)
		}
	}
	// Minutes only: 11:02 in São Paulo is 14:02:00 UTC.
	e.getJSON("/api/v1/nat/lookup?address=203.0.113.7&at=2026-03-03T11:02&tz=America/Sao_Paulo", &NATLookupResult{})
	if got := nat.lastQuery(t).At; !got.Equal(time.Date(2026, 3, 3, 14, 2, 0, 0, time.UTC)) {
		t.Errorf("minutes only asked %v", got)
	}
	// Summer time is the zone's: 09:02:11 in New York in July is 13:02:11 UTC.
	e.getJSON("/api/v1/nat/lookup?address=203.0.113.7&at=2026-07-03T09:02:11&tz=America/New_York", &NATLookupResult{})
	if got := nat.lastQuery(t).At; !got.Equal(time.Date(2026, 7, 3, 13, 2, 11, 0, time.UTC)) {
		t.Errorf("New York summer time asked %v", got)
	}
	// The offset settles a time the zone saw twice.
	e.getJSON("/api/v1/nat/lookup?address=203.0.113.7&at=2026-11-01T01:30:00-05:00&tz=America/New_York", &NATLookupResult{})
	if got := nat.lastQuery(t).At; !got.Equal(time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC)) {
		t.Errorf("an ambiguous time with its offset asked %v", got)
	}
}

// TestNATLookupCSV: the CSV states the query and the answer in comment
// lines, then one row per match with the promised columns; its name says
// what it is; text cells cannot run as spreadsheet formulas.
func TestNATLookupCSV(t *testing.T) {
	t.Parallel()
	nat := &fakeNAT{}
	e := newEnv(t, withNAT(nat))
	e.login()
	e.now = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	q := complaintQuery()
	q.Set("at", "2026-03-03T11:02:11")
	q.Set("tz", "America/Sao_Paulo")
	res, err := e.client.Get(e.ts.URL + "/api/v1/nat/lookup.csv?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		res.Header.Get("Content-Disposition") != `attachment; filename="abuse-203.0.113.7-51234-20260303T140211Z.csv"` ||
		res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("CSV answer %d %v", res.StatusCode, res.Header)
	}
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	body := string(raw)
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	wantComments := []string{
		"# flowbox abuse lookup",
		"# query: address=203.0.113.7 port=51234 proto=tcp at=2026-03-03T14:02:11Z (2026-03-03T11:02:11-03:00 America/Sao_Paulo) window=±2m0s",
		"# answer: 203.0.113.7 port 51234 was 100.64.1.10 port 40000 on gw1: alice (customer C-1001).",
		"# matches: 1; generated 2026-03-10T09:00:00Z by admin",
	}
	if len(lines) != 6 || !slices.Equal(lines[:4], wantComments) {
		t.Fatalf("the CSV is\n%s\nwant the comments\n%s", body, strings.Join(wantComments, "\n"))
	}
	r := csv.NewReader(strings.NewReader(body))
	r.Comment = '#'
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{natCSVHeader, {"gw1", "tcp", "203.0.113.7", "51234", "100.64.1.10", "40000", "192.0.2.80", "443",
		"2026-03-03T14:01:50Z", "2026-03-03T14:02:40Z", "alice", "C-1001"}}
	if !reflect.DeepEqual(recs, want) {
		t.Errorf("CSV records\n%q\nwant\n%q", recs, want)
	}
	if !slices.Equal(natCSVHeader, []string{"router", "proto", "public_address", "public_port", "inside_address", "inside_port",
		"remote_address", "remote_port", "first_seen", "last_seen", "subscriber", "customer_id"}) {
		t.Errorf("CSV header %q", natCSVHeader)
	}

	// No match: the comments say so, and the header row follows alone.
	code, b := e.do(http.MethodGet, "/api/v1/nat/lookup.csv?address=2001:db8::7&at=2026-03-03T18:00:00Z", nil)
	if code != http.StatusOK || !strings.Contains(string(b), "# answer: No NAT mapping of 2001:db8::7 within ±2m0s") ||
		!strings.Contains(string(b), "# matches: 0;") || !strings.HasSuffix(string(b), strings.Join(natCSVHeader, ",")+"\n") {
		t.Errorf("CSV without a match: %d\n%s", code, b)
	}
	if cd := e.lastHeader(t, "/api/v1/nat/lookup.csv?address=2001:db8::7&at=2026-03-03T18:00:00Z", "Content-Disposition"); cd != `attachment; filename="abuse-2001-db8--7-20260303T180000Z.csv"` {
		t.Errorf("IPv6 CSV name %q", cd)
	}

	// A customer's host name cannot run as a formula; a newline in the
	// message stays in its comment line.
	rec := natCSVRecord(&store.NATMapping{Router: "gw1", ProtoName: "udp", PublicAddr: complaintAddr, PublicPort: 1,
		InsideAddr: netip.MustParseAddr("100.64.1.12"), Subscriber: "=HYPERLINK(\"http://evil\")", CustomerID: "+1", FirstSeen: complaintAt, LastSeen: complaintAt})
	if rec[10] != `'=HYPERLINK("http://evil")` || rec[11] != "'+1" || rec[5] != "" || rec[6] != "" || rec[7] != "" {
		t.Errorf("record %q", rec)
	}
	if got := commentLine("two\r\nlines\nhere"); got != "two lines here" {
		t.Errorf("commentLine %q", got)
	}
}

// lastHeader GETs path and returns one header of the answer.
func (e *env) lastHeader(t *testing.T, path, name string) string {
	t.Helper()
	res, err := e.client.Get(e.ts.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.Header.Get(name)
}

// TestAddressHolder answers "who had this address?" for an inside and a
// public address without NAT, and says nobody had one (also when the
// history answers not found, or nothing); bad parameters name themselves.
func TestAddressHolder(t *testing.T) {
	t.Parallel()
	nat := &fakeNAT{}
	e := newEnv(t, withNAT(nat))
	e.login()
	var h store.AddressHolder
	e.getJSON("/api/v1/subscribers/at?address=100.64.1.10&at=2026-03-03T11:02:11&tz=America/Sao_Paulo", &h)
	if !h.Found || h.Subscriber != "alice" || h.CustomerID != "C-1001" || h.Source != "dhcp" || h.Router != "gw1" ||
		h.Prefix != "100.64.1.10/32" || h.From == nil || h.To != nil || !h.At.Equal(complaintAt) || h.Address != "100.64.1.10" {
		t.Errorf("who had 100.64.1.10: %+v", h)
	}
	if _, holders := nat.count(); holders != 1 {
		t.Errorf("the history was asked %d times", holders)
	}
	code, body := e.do(http.MethodGet, "/api/v1/subscribers/at?address=198.51.100.20&at=2026-03-03T14:02:11Z", nil)
	if code != http.StatusOK || !strings.Contains(string(body), `"subscriber":"carol"`) || !strings.Contains(string(body), `"found":true`) ||
		!strings.Contains(string(body), `"at":"2026-03-03T14:02:11Z"`) || strings.Contains(string(body), `"to"`) {
		t.Errorf("who had carol's public address: %d %s", code, body)
	}
	for addr, msg := range map[string]string{
		"10.9.9.9":  "Nobody had 10.9.9.9 then.",
		"192.0.2.1": "Nobody had 192.0.2.1 at 2026-03-03 14:02:11 UTC in the subscriber history.", // not found
		"192.0.2.2": "Nobody had 192.0.2.2 at 2026-03-03 14:02:11 UTC in the subscriber history.", // nil
	} {
		code, body := e.do(http.MethodGet, "/api/v1/subscribers/at?address="+addr+"&at=2026-03-03T14:02:11Z", nil)
		var h store.AddressHolder
		if code != http.StatusOK || json.Unmarshal(body, &h) != nil || h.Found || h.Message != msg || h.Address != addr || h.Subscriber != "" {
			t.Errorf("who had %s: %d %s, want found=false %q", addr, code, body, msg)
		}
		if !strings.Contains(string(body), `"found":false`) {
			t.Errorf("who had %s: found is not in %s", addr, body)
		}
	}
	for q, want := range map[string]string{
		"at=2026-03-03T14:02:11Z":                   "address: required",
		"address=nope&at=2026-03-03T14:02:11Z":      `address: "nope" is not an IP address`,
		"address=10.0.0.1":                          "at: required",
		"address=10.0.0.1&at=2026-03-03T14:02:11":   `at: "2026-03-03T14:02:11" has no time zone`,
		"address=10.0.0.1&at=soon":                  `at: "soon" is not a time`,
		"address=10.0.0.1&at=2026-03-03&tz=Nowhere": `tz: "Nowhere" is not a time zone`,
	} {
		code, body := e.do(http.MethodGet, "/api/v1/subscribers/at?"+q, nil)
		var eb errorBody
		if code != http.StatusBadRequest || json.Unmarshal(body, &eb) != nil || !strings.HasPrefix(eb.Error, want) {
			t.Errorf("GET /api/v1/subscribers/at?%s: %d %s, want 400 %q", q, code, body, want)
		}
	}
	nat.mu.Lock()
	nat.fail = errors.New("database is locked")
	nat.mu.Unlock()
	if code, body := e.do(http.MethodGet, "/api/v1/subscribers/at?address=10.0.0.1&at=2026-03-03T14:02:11Z", nil); code != http.StatusInternalServerError ||
		strings.Contains(string(body), "locked") {
		t.Errorf("a failing history: %d %s, want 500 without the details", code, body)
	}
}

// natAPIRoutes are the lookup's API routes, from the router.
func natAPIRoutes(t *testing.T, e *env) [][3]string {
	t.Helper()
	var out [][3]string
	for _, rt := range apiRoutes(t, e.srv) {
		if strings.HasPrefix(rt[2], "/api/v1/nat/") || rt[2] == "/api/v1/subscribers/at" {
			out = append(out, rt)
		}
	}
	if len(out) != 3 {
		t.Fatalf("%d lookup API routes, want 3: %v", len(out), out)
	}
	return out
}

// TestNATDisabled: without the NAT store every lookup route answers 503
// with why, and the page says the lookup is unavailable.
func TestNATDisabled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.login()
	for _, rt := range natAPIRoutes(t, e) {
		code, b := e.do(rt[0], rt[1]+"?"+complaintQuery().Encode(), nil)
		var eb errorBody
		if code != http.StatusServiceUnavailable || json.Unmarshal(b, &eb) != nil || eb.Error != errNATDisabled {
			t.Errorf("%s %s without the NAT store: %d %s, want 503 %q", rt[0], rt[1], code, b, errNATDisabled)
		}
	}
	code, b := e.do(http.MethodGet, "/abuse", nil)
	if code != http.StatusOK || !strings.Contains(string(b), `id="nat-disabled"`) || strings.Contains(string(b), "abuse.js") ||
		!strings.Contains(string(b), `<a href="/abuse" class="active">Abuse lookup</a>`) {
		t.Errorf("GET /abuse without the NAT store: %d, want the page saying the lookup is unavailable", code)
	}
}

// TestNATRoutes: the lookup's routes need a login (the API answers 401,
// the page sends to the login page), and answer a logged-in user; the
// page has no inline script or style (CSP) and every page links it.
func TestNATRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withNAT(&fakeNAT{}))
	e.createAdmin()
	api := natAPIRoutes(t, e)
	q := "?" + complaintQuery().Encode()
	for _, rt := range api {
		if code, _ := e.do(rt[0], rt[1]+q, nil); code != http.StatusUnauthorized {
			t.Errorf("%s %s without login: %d, want 401", rt[0], rt[1], code)
		}
	}
	page := "/abuse" + q
	res, err := e.client.Get(e.ts.URL + page)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || loc != "/login?next="+url.QueryEscape(page) {
		t.Errorf("GET %s without login: %d to %q", page, res.StatusCode, loc)
	}
	res, err = e.client.PostForm(e.ts.URL+"/login", url.Values{"username": {"admin"}, "password": {testPassword}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for _, rt := range api {
		if code, b := e.do(rt[0], rt[1]+q, nil); code != http.StatusOK {
			t.Errorf("%s %s logged in: %d %s, want 200", rt[0], rt[1], code, b)
		}
	}
	code, b := e.do(http.MethodGet, page, nil)
	if code != http.StatusOK || !strings.Contains(string(b), `id="lookup"`) || !strings.Contains(string(b), "/static/abuse.js?v=") ||
		!strings.Contains(string(b), "<title>Abuse lookup · flowbox</title>") {
		t.Errorf("GET %s logged in: %d", page, code)
	}
	if strings.Contains(string(b), "<script>") || strings.Contains(string(b), "style=") {
		t.Errorf("GET %s has an inline script or style (CSP)", page)
	}
	if code, b := e.do(http.MethodGet, "/flows", nil); code != http.StatusOK || !strings.Contains(string(b), `<a href="/abuse">Abuse lookup</a>`) {
		t.Errorf("the navigation has no Abuse lookup entry: %d", code)
	}
	if code, _ := e.do(http.MethodPost, "/api/v1/nat/lookup"+q, nil); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/v1/nat/lookup: %d, want 405", code)
	}
}

// jsonFields lists the JSON keys a type writes, embedded structs flattened.
func jsonFields(rt reflect.Type) []string {
	var out []string
	for i := range rt.NumField() {
		f := rt.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && tag == "" {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if tag == "-" || !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		if !slices.Contains(out, tag) {
			out = append(out, tag)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestNATSchemasMatchTypes keeps the lookup's schemas of the OpenAPI
// document in step with the JSON the handlers write.
func TestNATSchemasMatchTypes(t *testing.T) {
	t.Parallel()
	schemas := buildOpenAPI()["components"].(openAPI)["schemas"].(openAPI)
	for name, rt := range map[string]reflect.Type{
		"NATLookup":     reflect.TypeFor[NATLookupResult](),
		"NATMapping":    reflect.TypeFor[store.NATMapping](),
		"NATQuery":      reflect.TypeFor[store.NATAnswer]().Field(0).Type,
		"AddressHolder": reflect.TypeFor[store.AddressHolder](),
	} {
		sc, ok := schemas[name].(openAPI)
		if !ok {
			t.Errorf("no schema %s", name)
			continue
		}
		var props []string
		for p := range sc["properties"].(openAPI) {
			props = append(props, p)
		}
		slices.Sort(props)
		if fields := jsonFields(rt); !slices.Equal(props, fields) {
			t.Errorf("schema %s has %v, the Go type %v writes %v", name, props, rt, fields)
		}
	}
	paths := buildOpenAPI()["paths"].(openAPI)
	for _, p := range []string{"/nat/lookup", "/nat/lookup.csv", "/subscribers/at"} {
		get, ok := paths[p].(openAPI)["get"].(openAPI)
		if !ok {
			t.Errorf("no GET %s in the document", p)
			continue
		}
		var names []string
		for _, prm := range get["parameters"].([]any) {
			names = append(names, prm.(openAPI)["name"].(string))
		}
		slices.Sort(names)
		want := []string{"address", "at", "port", "proto", "tz", "window"}
		if p == "/subscribers/at" {
			want = []string{"address", "at", "tz"}
		}
		if !slices.Equal(names, want) {
			t.Errorf("GET %s documents the parameters %v, want %v", p, names, want)
		}
	}
}
