package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

// fakeAlertStatus is the live alert state cmd/flowbox composes: fixed
// counters, and test sends that fail for the channels in fail.
type fakeAlertStatus struct {
	mu    sync.Mutex
	fail  map[string]error
	sent  []string
	chans []store.NotificationChannelStatus
}

func newFakeAlertStatus() *fakeAlertStatus {
	last := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	return &fakeAlertStatus{
		fail: map[string]error{"mail": errors.New("cannot send mail: 535 5.7.8 authentication failed")},
		chans: []store.NotificationChannelStatus{
			{Name: "ops", Type: "slack", Sent: 12, Queued: 0, LastSent: &last},
			{Name: "mail", Type: "email", Sent: 3, Failed: 4, Dropped: 1, RateLimited: 2, LastError: "535 5.7.8 authentication failed", LastErrorAt: &last},
		},
	}
}

func (f *fakeAlertStatus) DetectorStatus() store.DetectorStatus {
	return store.DetectorStatus{Enabled: true, Hosts: 420, MaxHosts: 100000, HostsDropped: 7, Evaluations: 360,
		LastEvaluation: time.Now().Add(-3 * time.Second), EvaluationSeconds: 0.0042, Active: 1}
}

func (f *fakeAlertStatus) NotificationChannels() []store.NotificationChannelStatus { return f.chans }

func (f *fakeAlertStatus) MitigationStatus() []store.MitigationStatus {
	return []store.MitigationStatus{{Router: "gw1", Enabled: true, DryRun: true, Entries: 1, MaxEntries: 100, Added: 1, Skipped: 1}}
}

func (f *fakeAlertStatus) SendTestNotification(ctx context.Context, channel string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, channel)
	return f.fail[channel]
}

func (f *fakeAlertStatus) sends() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sent)
}

// withAlerts gives the console the env's store as its alert history and
// status as the live state.
func withAlerts(status *fakeAlertStatus) envOption {
	return func(_ *Config, d *Deps) {
		d.Alerts = d.Users.(*storetest.Store)
		d.AlertStatus = status
	}
}

// openAlert stores an alert.
func (e *env) openAlert(a store.Alert) store.Alert {
	e.t.Helper()
	if a.Updated.IsZero() {
		a.Updated = a.Started
	}
	if a.PeakAt.IsZero() {
		a.PeakAt = a.Started
	}
	if err := e.st.OpenAlert(context.Background(), &a); err != nil {
		e.t.Fatal(err)
	}
	return a
}

// attackAlert is an active UDP amplification attack on bob's 10.0.0.6
// behind gw1 that started at started, with its evidence.
func attackAlert(routerID int64, started time.Time) store.Alert {
	return store.Alert{Kind: store.AlertUDPAmplification, Severity: store.SeverityCritical, RouterID: routerID, Router: "gw1",
		Target: "10.0.0.6", Subscriber: "bob", Direction: "in", Started: started, Updated: started.Add(30 * time.Minute),
		PeakBps: 1.25e9, PeakPps: 180000, PeakFlowsPerS: 5200, PeakAt: started.Add(5 * time.Minute),
		Summary: "UDP amplification on 10.0.0.6 (bob): 1.25 Gb/s from 2 reflectors, mostly from udp/123 (NTP)",
		Evidence: store.AlertEvidence{
			TopSources: []store.AlertTop{{Key: "198.51.100.23", Bytes: 6e9, Packets: 5e6, Flows: 1200}, {Key: "203.0.113.77", Bytes: 3e9, Packets: 2e6, Flows: 800}},
			TopPorts:   []store.AlertTop{{Key: "udp/123", Bytes: 8e9, Packets: 6e6, Flows: 1800}, {Key: "udp/53", Bytes: 1e9, Packets: 1e6, Flows: 200}},
			Measures:   map[string]float64{"baseline_bps": 2.4e6, "udp_share": 0.97, "sources": 2},
		}}
}

// alertFixture stores three alerts: an active attack (40 min old), a port
// scan that ended 2 h ago, and a volumetric attack of 10 days ago.
func alertFixture(e *env) (attack, scan, old store.Alert) {
	attack = e.openAlert(attackAlert(1, e.now.Add(-40*time.Minute)))
	ended := e.now.Add(-2 * time.Hour)
	scan = e.openAlert(store.Alert{Kind: store.AlertPortScan, Severity: store.SeverityWarning, RouterID: 2, Router: "gw2",
		Target: "10.0.1.7", Direction: "out", Started: e.now.Add(-3 * time.Hour), Ended: &ended, PeakPps: 900, PeakFlowsPerS: 850,
		Summary: "port scan by 10.0.1.7: 3100 hosts on tcp/22"})
	oldEnd := e.now.Add(-10*24*time.Hour + time.Hour)
	old = e.openAlert(store.Alert{Kind: store.AlertVolumetric, Severity: store.SeverityCritical, RouterID: 1, Router: "gw1",
		Target: "10.0.0.5", Subscriber: "alice", Direction: "in", Started: e.now.Add(-10 * 24 * time.Hour), Ended: &oldEnd, PeakBps: 4e8,
		Summary: "volumetric attack on 10.0.0.5"})
	return attack, scan, old
}

func alertIDs(t *testing.T, e *env, path string) []int64 {
	t.Helper()
	var list []store.Alert
	e.getJSON(path, &list)
	ids := []int64{}
	for _, a := range list {
		ids = append(ids, a.ID)
	}
	return ids
}

// TestAlertsList lists alerts with each filter, and refuses bad parameters
// with a message naming them.
func TestAlertsList(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withAlerts(newFakeAlertStatus()))
	e.login()
	attack, scan, old := alertFixture(e)
	for path, want := range map[string][]int64{
		"/api/v1/alerts":                   {attack.ID, scan.ID}, // the last 7 days
		"/api/v1/alerts?active=1":          {attack.ID},
		"/api/v1/alerts?active=true&all=1": {attack.ID},
		"/api/v1/alerts?all=1":             {attack.ID, scan.ID, old.ID},
		"/api/v1/alerts?kind=port-scan":    {scan.ID},
		"/api/v1/alerts?router=gw1":        {attack.ID},
		"/api/v1/alerts?router=gw1&all=1":  {attack.ID, old.ID},
		"/api/v1/alerts?target=10.0.1.7":   {scan.ID},
		"/api/v1/alerts?since=1h":          {attack.ID},
		"/api/v1/alerts?since=24h":         {attack.ID, scan.ID},
		"/api/v1/alerts?since=30d":         {attack.ID, scan.ID, old.ID},
		"/api/v1/alerts?since=" + url.QueryEscape(e.now.Add(-90*time.Minute).Format(time.RFC3339)): {attack.ID},
		"/api/v1/alerts?all=1&limit=2":  {attack.ID, scan.ID},
		"/api/v1/alerts?kind=syn-flood": {},
		"/api/v1/alerts?router=gw9":     {},
	} {
		if got := alertIDs(t, e, path); !slices.Equal(got, want) {
			t.Errorf("GET %s: alerts %v, want %v", path, got, want)
		}
	}

	// The JSON keys that `flowbox alerts --json` and the issue promise;
	// ended is null while active.
	code, body := e.do(http.MethodGet, "/api/v1/alerts?all=1", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/alerts: %d %s", code, body)
	}
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || len(raw) != 3 {
		t.Fatalf("list: %v %s", err, body)
	}
	for _, k := range []string{"id", "kind", "severity", "router", "target", "subscriber", "direction", "started", "ended",
		"peak_bps", "peak_pps", "peak_flows_per_s", "summary", "evidence"} {
		if _, ok := raw[0][k]; !ok {
			t.Errorf("an alert has no %q: %s", k, body)
		}
	}
	if string(raw[0]["ended"]) != "null" || string(raw[1]["ended"]) == "null" {
		t.Errorf("ended is %s while active and %s once resolved", raw[0]["ended"], raw[1]["ended"])
	}

	for q, want := range map[string]string{
		"kind=nope":                          `kind: "nope" is not one of volumetric, udp-amplification`,
		"since=yesterday":                    `since: "yesterday" is neither RFC 3339 nor a duration such as 24h or 7d`,
		"since=-1h":                          `since: "-1h" is neither`,
		"since=0d":                           `since: "0d" is neither`,
		"all=1&since=24h":                    "since: cannot be combined with all",
		"limit=0":                            `limit: "0" is not an integer within 1..1000`,
		"limit=5000":                         `limit: "5000" is not an integer within 1..1000`,
		"limit=x":                            `limit: "x" is not an integer`,
		"active=maybe":                       `active: "maybe" is not a boolean`,
		"all=2":                              `all: "2" is not a boolean`,
		"a;b":                                "query: ",
		"router=" + strings.Repeat("r", 201): "router: longer than 200 characters",
		"target=" + strings.Repeat("t", 201): "target: longer than 200 characters",
	} {
		code, body := e.do(http.MethodGet, "/api/v1/alerts?"+q, nil)
		var eb errorBody
		if code != http.StatusBadRequest || json.Unmarshal(body, &eb) != nil || !strings.Contains(eb.Error, want) {
			t.Errorf("GET /api/v1/alerts?%.40s: %d %s, want 400 with %q", q, code, body, want)
		}
	}
}

// TestAlertDetailAndAck reads one alert with its logs (and only its own),
// answers 400 and 404 for bad and unknown ids, and acknowledges as the
// session's user or the token's, keeping the first acknowledgement.
func TestAlertDetailAndAck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withAlerts(newFakeAlertStatus()))
	e.login()
	attack, scan, _ := alertFixture(e)
	ctx := context.Background()
	at := e.now.Add(-35 * time.Minute).UTC()
	for _, m := range []store.MitigationAction{
		{At: at, AlertID: attack.ID, Router: "gw1", Action: "add", Kind: "address-list", List: "flowbox-attacked", Address: "10.0.0.6",
			Timeout: time.Hour, DryRun: true, Result: "ok"},
		{At: at, AlertID: scan.ID, Router: "gw2", Action: "add", Kind: "address-list", List: "flowbox-abuse", Address: "10.0.1.7", Result: "ok"},
	} {
		if err := e.st.AddMitigationAction(ctx, &m); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []store.NotificationAttempt{
		{At: at, AlertID: attack.ID, Channel: "mail", Event: "opened", Attempt: 1, Error: "535 5.7.8 authentication failed"},
		{At: at.Add(time.Second), AlertID: attack.ID, Channel: "ops", Event: "opened", Attempt: 1, OK: true},
	} {
		if err := e.st.AddNotificationAttempt(ctx, &n); err != nil {
			t.Fatal(err)
		}
	}

	var d AlertDetail
	e.getJSON(fmt.Sprintf("/api/v1/alerts/%d", attack.ID), &d)
	if d.Alert.ID != attack.ID || d.Alert.Target != "10.0.0.6" || d.Alert.Subscriber != "bob" || d.Alert.Ended != nil ||
		len(d.Alert.Evidence.TopSources) != 2 || d.Alert.Evidence.Measures["udp_share"] != 0.97 {
		t.Errorf("alert %d is %+v", attack.ID, d.Alert)
	}
	if len(d.Mitigation) != 1 || d.Mitigation[0].Address != "10.0.0.6" || !d.Mitigation[0].DryRun || d.Mitigation[0].Timeout != time.Hour {
		t.Errorf("the mitigation log is %+v, want the one action of this alert", d.Mitigation)
	}
	if len(d.Notifications) != 2 || d.Notifications[0].Channel != "ops" || d.Notifications[1].Error == "" {
		t.Errorf("the notification log is %+v, want ops then the failed mail, newest first", d.Notifications)
	}
	// An alert without logs has empty lists, not null.
	code, body := e.do(http.MethodGet, fmt.Sprintf("/api/v1/alerts/%d", e.openAlert(attackAlert(1, e.now)).ID), nil)
	if code != http.StatusOK || !strings.Contains(string(body), `"mitigation":[]`) || !strings.Contains(string(body), `"notifications":[]`) {
		t.Errorf("an alert without logs: %d %s", code, body)
	}

	for path, want := range map[string]struct {
		code int
		msg  string
	}{
		"/api/v1/alerts/9999":     {http.StatusNotFound, "no such alert"},
		"/api/v1/alerts/abc":      {http.StatusBadRequest, `id: "abc" is not an alert id`},
		"/api/v1/alerts/0":        {http.StatusBadRequest, `id: "0" is not an alert id`},
		"/api/v1/alerts/-3/ack":   {http.StatusBadRequest, `id: "-3" is not an alert id`},
		"/api/v1/alerts/9999/ack": {http.StatusNotFound, "no such alert"},
	} {
		method := http.MethodGet
		if strings.HasSuffix(path, "/ack") {
			method = http.MethodPost
		}
		code, body := e.do(method, path, nil)
		var eb errorBody
		if code != want.code || json.Unmarshal(body, &eb) != nil || eb.Error != want.msg {
			t.Errorf("%s %s: %d %s, want %d %q", method, path, code, body, want.code, want.msg)
		}
	}

	// Acknowledge as the session's user.
	e.now = e.now.Add(time.Minute)
	var acked store.Alert
	code, body = e.do(http.MethodPost, fmt.Sprintf("/api/v1/alerts/%d/ack", attack.ID), nil)
	if code != http.StatusOK || json.Unmarshal(body, &acked) != nil {
		t.Fatalf("ack: %d %s", code, body)
	}
	if acked.AckedBy != "admin" || acked.AckedAt == nil || !acked.AckedAt.Equal(e.now) {
		t.Errorf("acknowledged alert: by %q at %v, want admin at %v", acked.AckedBy, acked.AckedAt, e.now)
	}
	// A token acknowledges as "token:<name>"; a second acknowledgement
	// keeps the first.
	code, body = e.do(http.MethodPost, "/api/v1/tokens", map[string]string{"name": "noc"})
	var tok TokenView
	if code != http.StatusCreated || json.Unmarshal(body, &tok) != nil {
		t.Fatalf("create token: %d %s", code, body)
	}
	bearer := []string{"Authorization", "Bearer " + tok.Token}
	code, body = e.do(http.MethodPost, fmt.Sprintf("/api/v1/alerts/%d/ack", scan.ID), nil, bearer...)
	if code != http.StatusOK || !strings.Contains(string(body), `"acked_by":"token:noc"`) {
		t.Errorf("ack with a token: %d %s", code, body)
	}
	code, body = e.do(http.MethodPost, fmt.Sprintf("/api/v1/alerts/%d/ack", attack.ID), nil, bearer...)
	if code != http.StatusOK || !strings.Contains(string(body), `"acked_by":"admin"`) {
		t.Errorf("a second ack: %d %s, want the first acknowledgement kept", code, body)
	}
	e.getJSON(fmt.Sprintf("/api/v1/alerts/%d", attack.ID), &d)
	if d.Alert.AckedBy != "admin" {
		t.Errorf("stored acknowledgement by %q", d.Alert.AckedBy)
	}
	// A cross-site acknowledgement is refused (CSRF), and GET is not
	// routed to it.
	code, _ = e.do(http.MethodPost, fmt.Sprintf("/api/v1/alerts/%d/ack", scan.ID), nil, "Sec-Fetch-Site", "cross-site")
	if code != http.StatusForbidden {
		t.Errorf("cross-site ack: %d, want 403", code)
	}
	code, _ = e.do(http.MethodGet, fmt.Sprintf("/api/v1/alerts/%d/ack", scan.ID), nil)
	if code != http.StatusMethodNotAllowed {
		t.Errorf("GET ack: %d, want 405", code)
	}
}

// TestAlertStatusAndTestSend reports the live state, and sends test
// messages: delivered, failed (502 with why), unknown channel (400).
func TestAlertStatusAndTestSend(t *testing.T) {
	t.Parallel()
	status := newFakeAlertStatus()
	e := newEnv(t, withAlerts(status))
	e.login()
	var st AlertStatusView
	e.getJSON("/api/v1/alerts/status", &st)
	if !st.Detector.Enabled || st.Detector.Hosts != 420 || st.Detector.HostsDropped != 7 || len(st.Notifications) != 2 ||
		st.Notifications[1].LastError == "" || len(st.Mitigation) != 1 || !st.Mitigation[0].DryRun {
		t.Errorf("status %+v", st)
	}

	code, body := e.do(http.MethodPost, "/api/v1/notifications/test", map[string]string{"channel": "ops"})
	if code != http.StatusOK || strings.TrimSpace(string(body)) != `{"ok":true}` {
		t.Errorf("test to ops: %d %s", code, body)
	}
	code, body = e.do(http.MethodPost, "/api/v1/notifications/test", map[string]string{"channel": "mail"})
	if code != http.StatusBadGateway || !strings.Contains(string(body), "cannot deliver to mail: cannot send mail: 535 5.7.8 authentication failed") {
		t.Errorf("test to mail: %d %s, want 502 with the SMTP error", code, body)
	}
	for _, c := range []struct {
		body any
		msg  string
	}{
		{map[string]string{"channel": "pager"}, `channel: no notification channel named "pager" (configured: ops, mail)`},
		{map[string]string{"channel": " "}, "channel: required"},
		{map[string]string{}, "channel: required"},
		{map[string]any{"channel": "ops", "extra": 1}, `body: json: unknown field "extra"`},
		{[]string{"ops"}, "body: json: cannot unmarshal array"},
	} {
		code, body := e.do(http.MethodPost, "/api/v1/notifications/test", c.body)
		var eb errorBody
		if code != http.StatusBadRequest || json.Unmarshal(body, &eb) != nil || !strings.HasPrefix(eb.Error, c.msg) {
			t.Errorf("test with %v: %d %s, want 400 %q", c.body, code, body, c.msg)
		}
	}
	if got := status.sends(); !slices.Equal(got, []string{"ops", "mail"}) {
		t.Errorf("test messages sent to %q, want ops then mail (none for bad requests)", got)
	}
	code, _ = e.do(http.MethodPost, "/api/v1/notifications/test", map[string]string{"channel": "ops"}, "Origin", "http://evil.example")
	if code != http.StatusForbidden {
		t.Errorf("cross-origin test send: %d, want 403", code)
	}
	// Without channels the answer says so.
	status.chans = nil
	code, body = e.do(http.MethodPost, "/api/v1/notifications/test", map[string]string{"channel": "ops"})
	if code != http.StatusBadRequest || !strings.Contains(string(body), "no notification channel is configured") {
		t.Errorf("test without channels: %d %s", code, body)
	}
	code, body = e.do(http.MethodGet, "/api/v1/alerts/status", nil)
	if code != http.StatusOK || !strings.Contains(string(body), `"notifications":[]`) {
		t.Errorf("status without channels: %d %s, want an empty list", code, body)
	}
}

// TestAlertsDisabled: without an alert store every alert route answers 503
// with why, and the pages say that alerts are off.
func TestAlertsDisabled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.login()
	for _, rt := range apiRoutes(t, e.srv) {
		if !strings.HasPrefix(rt[2], "/api/v1/alerts") && !strings.HasPrefix(rt[2], "/api/v1/notifications") {
			continue
		}
		var body any
		if rt[0] == http.MethodPost {
			body = map[string]string{"channel": "ops"}
		}
		code, b := e.do(rt[0], rt[1], body)
		var eb errorBody
		if code != http.StatusServiceUnavailable || json.Unmarshal(b, &eb) != nil || eb.Error != errAlertsDisabled {
			t.Errorf("%s %s without alerts: %d %s, want 503 %q", rt[0], rt[1], code, b, errAlertsDisabled)
		}
	}
	for _, page := range []string{"/alerts", "/alerts/1"} {
		code, b := e.do(http.MethodGet, page, nil)
		if code != http.StatusOK || !strings.Contains(string(b), `id="alerts-disabled"`) || strings.Contains(string(b), "alerts.js") {
			t.Errorf("GET %s without alerts: %d, want the page saying alerts are disabled", page, code)
		}
	}
	// The Fleet page still loads its banner script, which hides on 503.
	code, b := e.do(http.MethodGet, "/fleet", nil)
	if code != http.StatusOK || !strings.Contains(string(b), `id="alerts-banner"`) || !strings.Contains(string(b), "/static/alertkit.js") {
		t.Errorf("fleet page: %d, want the alerts banner and its script", code)
	}
}

// TestAlertRoutes: every alert route needs a login (the API answers 401,
// the pages send to the login page), and answers a logged-in user.
func TestAlertRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withAlerts(newFakeAlertStatus()))
	e.createAdmin()
	attack, _, _ := alertFixture(e)
	var api [][3]string
	for _, rt := range apiRoutes(t, e.srv) {
		if strings.HasPrefix(rt[2], "/api/v1/alerts") || strings.HasPrefix(rt[2], "/api/v1/notifications") {
			rt[1] = strings.Replace(rt[1], "/alerts/1", fmt.Sprintf("/alerts/%d", attack.ID), 1)
			api = append(api, rt)
		}
	}
	if len(api) != 5 {
		t.Fatalf("%d alert API routes, want 5: %v", len(api), api)
	}
	pages := []string{"/alerts", "/alerts?kind=syn-flood", fmt.Sprintf("/alerts/%d", attack.ID)}
	for _, rt := range api {
		if code, _ := e.do(rt[0], rt[1], nil); code != http.StatusUnauthorized {
			t.Errorf("%s %s without login: %d, want 401", rt[0], rt[1], code)
		}
	}
	for _, p := range pages {
		res, err := e.client.Get(e.ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || loc != "/login?next="+url.QueryEscape(p) {
			t.Errorf("GET %s without login: %d to %q", p, res.StatusCode, loc)
		}
	}
	res, err := e.client.PostForm(e.ts.URL+"/login", url.Values{"username": {"admin"}, "password": {testPassword}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for _, rt := range api {
		var body any
		if rt[0] == http.MethodPost {
			body = map[string]string{"channel": "ops"}
		}
		if code, b := e.do(rt[0], rt[1], body); code != http.StatusOK {
			t.Errorf("%s %s logged in: %d %s, want 200", rt[0], rt[1], code, b)
		}
	}
	for p, want := range map[string]string{
		pages[0]: `<option value="traffic-collapse">traffic-collapse</option>`,
		pages[1]: `id="active-alerts"`,
		pages[2]: fmt.Sprintf(`data-alert-id="%d"`, attack.ID),
	} {
		code, b := e.do(http.MethodGet, p, nil)
		if code != http.StatusOK || !strings.Contains(string(b), want) {
			t.Errorf("GET %s logged in: %d, want %q in the page", p, code, want)
		}
		if strings.Contains(string(b), "<script>") || strings.Contains(string(b), "style=") {
			t.Errorf("GET %s has an inline script or style (CSP)", p)
		}
	}
	code, b := e.do(http.MethodGet, pages[2], nil)
	if code != http.StatusOK || !strings.Contains(string(b), fmt.Sprintf("<title>Alert %d: udp-amplification on 10.0.0.6 · flowbox</title>", attack.ID)) {
		t.Errorf("alert page title: %d %s", code, b[:min(len(b), 300)])
	}
	for _, p := range []string{"/alerts/9999", "/alerts/abc", "/alerts/0"} {
		if code, _ := e.do(http.MethodGet, p, nil); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}
}

// TestAlertSchemasMatchTypes keeps the alert schemas of the OpenAPI
// document in step with the JSON the handlers write.
func TestAlertSchemasMatchTypes(t *testing.T) {
	t.Parallel()
	schemas := buildOpenAPI()["components"].(openAPI)["schemas"].(openAPI)
	for name, v := range map[string]any{
		"Alert": store.Alert{}, "AlertEvidence": store.AlertEvidence{}, "AlertTop": store.AlertTop{},
		"MitigationAction": store.MitigationAction{}, "NotificationAttempt": store.NotificationAttempt{},
		"AlertDetail": AlertDetail{}, "DetectorStatus": store.DetectorStatus{},
		"NotificationChannelStatus": store.NotificationChannelStatus{}, "MitigationStatus": store.MitigationStatus{},
		"AlertStatus": AlertStatusView{}, "TestNotificationRequest": TestNotificationRequest{},
		"TestNotificationResult": TestNotificationResult{},
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
		var fields []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			tag, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			if tag != "" && tag != "-" {
				fields = append(fields, tag)
			}
		}
		slices.Sort(fields)
		if !slices.Equal(props, fields) {
			t.Errorf("schema %s has %v, the Go type %T writes %v", name, props, v, fields)
		}
	}
}
