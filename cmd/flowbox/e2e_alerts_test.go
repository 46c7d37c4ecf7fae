package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/simulator"
	"github.com/flowbox/flowbox/store"
)

// webhookSink records the JSON bodies a notification channel posts.
type webhookSink struct {
	mu     sync.Mutex
	bodies []map[string]any
}

func (w *webhookSink) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err == nil {
		w.mu.Lock()
		w.bodies = append(w.bodies, m)
		w.mu.Unlock()
	}
	rw.WriteHeader(http.StatusNoContent)
}

// events returns "event kind target" of every message received.
func (w *webhookSink) events() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, m := range w.bodies {
		a, _ := m["alert"].(map[string]any)
		out = append(out, fmt.Sprintf("%v %v %v", m["event"], a["kind"], a["target"]))
	}
	return out
}

// scenarioRun is one simulated router running one scenario.
type scenarioRun struct {
	scenario string
	kind     string
	fleet    *simulator.Fleet
	name     string
	target   string
	sub      string
	start    time.Time
	end      time.Time
}

// TestAlertsThroughServe runs `flowbox serve` with fast alert settings and
// a webhook channel, and five simulated routers onboarded through the
// RouterOS API, each running one scenario (`flowbox simulate --scenario`):
// a UDP amplification attack on a subscriber, a subscriber's port scan,
// a subscriber's spam, a router that stops exporting, and a SYN flood. Each raises its
// kind within 60 s of its start, naming the target (and the subscriber),
// in `flowbox alerts --json`; each resolves after it ends; the webhook
// receives the opened and resolved messages; nothing else is raised. The
// attacked router, with mitigation on, lists the victim in its
// flowbox-attacked address list until the attack resolves; the spammer's,
// in dry run, is left alone; both are in the audit log.
func TestAlertsThroughServe(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	hook := &webhookSink{}
	hs := httptest.NewServer(hook)
	t.Cleanup(hs.Close)
	extra := "  batch-age: 50ms\n" +
		"alerts:\n  interval: 2s\n  resolve-after: 10s\n  export:\n    stopped-after: 20s\n" +
		"notifications:\n  channels:\n    - name: hook\n      type: webhook\n      url: " + hs.URL + "/flowbox\n" +
		// Mitigation on the attacked router, a dry run on the spammer's.
		"mitigation:\n  routers:\n    tower1:\n      enabled: true\n      timeout: 10m\n    tower3:\n      enabled: true\n      dry-run: true\n"
	srv := startServeInProcess(t, extra)
	t.Cleanup(func() {
		if t.Failed() {
			var out testutil.SyncBuffer
			_ = run(context.Background(), &env{stdout: &out, stderr: &testutil.SyncBuffer{}, getenv: func(string) string { return "" }},
				[]string{"stats", "--json", "--config", srv.cfgPath})
			t.Logf("flowbox stats: %s", out.String())
			for _, l := range strings.Split(srv.stderr.String(), "\n") {
				if strings.Contains(l, "alert") || strings.Contains(l, "notify") || strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
					t.Log(l)
				}
			}
		}
	})
	dir, cfgPath := filepath.Dir(srv.cfgPath), srv.cfgPath

	runs := []*scenarioRun{
		{scenario: netflowtest.ScenarioDDoS, kind: store.AlertUDPAmplification},
		{scenario: netflowtest.ScenarioPortscan, kind: store.AlertPortScan},
		{scenario: netflowtest.ScenarioSpam, kind: store.AlertSMTPSpam},
		{scenario: netflowtest.ScenarioExportStop, kind: store.AlertExportStopped},
		{scenario: netflowtest.ScenarioSynflood, kind: store.AlertSYNFlood},
	}
	pwFile := filepath.Join(dir, "router.pw")
	if err := os.WriteFile(pwFile, []byte("router-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const scenarioDuration = 30 * time.Second
	for i, r := range runs {
		// One fleet per scenario, each exporting from its own loopback
		// address; the scenario starts once all are onboarded.
		fl, err := simulator.New(simulator.Config{Routers: 1, FirstIndex: i, Versions: "7", Password: "router-pw", Rate: 200, Seed: uint64(40 + i),
			Scenario: r.scenario, ScenarioStart: time.Hour, ScenarioDuration: scenarioDuration,
			ExportFrom: netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)})}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if err := fl.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(fl.Stop)
		r.fleet, r.name = fl, fmt.Sprintf("tower%d", i+1)
		// Disjoint address plans (FirstIndex): each router's subscribers
		// are its own.
		rt := fl.Routers()[0]
		var out, errOut testutil.SyncBuffer
		e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
		if err := run(ctx, e, []string{"router", "add", "--tls=false", "--config", cfgPath, "--name", r.name,
			"--address", rt.APIAddr(), "--user", rt.Username, "--password-file", pwFile, "--timeout", "60s"}); err != nil {
			t.Fatalf("router add %s: %v\n%s\n%s", r.name, err, out.String(), errOut.String())
		}
		addr, sub := rt.Model.ScenarioTarget()
		r.target, r.sub = addr.String(), sub
		if r.scenario == netflowtest.ScenarioExportStop {
			r.target, r.sub = r.name, ""
		}
	}
	// Let the enrichment learn the subscribers, then start every scenario.
	start := time.Now().Add(10 * time.Second)
	for _, r := range runs {
		r.fleet.Routers()[0].Model.SetScenarioStart(start)
		r.start, r.end = start, start.Add(scenarioDuration)
	}

	alertsJSON := func(all bool) []store.Alert {
		t.Helper()
		var out testutil.SyncBuffer
		e := &env{stdout: &out, stderr: &testutil.SyncBuffer{}, getenv: func(string) string { return "" }}
		args := []string{"alerts", "--json", "--config", cfgPath}
		if all {
			args = append(args, "--all")
		}
		if err := run(ctx, e, args); err != nil {
			t.Fatalf("flowbox alerts: %v", err)
		}
		var as []store.Alert
		if err := json.Unmarshal([]byte(out.String()), &as); err != nil {
			t.Fatalf("flowbox alerts --json printed %q: %v", out.String(), err)
		}
		return as
	}
	find := func(as []store.Alert, r *scenarioRun) *store.Alert {
		for i := range as {
			if as[i].Kind == r.kind && as[i].Router == r.name && as[i].Target == r.target {
				return &as[i]
			}
		}
		return nil
	}
	opened := map[string]time.Duration{}
	testutil.WaitFor(t, 90*time.Second+time.Until(start), "every scenario's alert", func() (bool, string) {
		as := alertsJSON(false)
		for _, r := range runs {
			if _, ok := opened[r.scenario]; !ok && find(as, r) != nil {
				opened[r.scenario] = time.Since(r.start)
			}
		}
		return len(opened) == len(runs), fmt.Sprintf("opened %v; active %+v", opened, as)
	})
	for _, r := range runs {
		if d := opened[r.scenario]; d > 60*time.Second {
			t.Errorf("%s: %s opened %s after the start, want within 60 s", r.scenario, r.kind, d)
		}
		t.Logf("%s: %s opened %s after the start", r.scenario, r.kind, opened[r.scenario].Round(time.Second))
	}
	// The attacked router lists the victim while the attack lasts; the
	// dry run changes nothing on the spammer's router.
	ddos, spam := runs[0], runs[2]
	victimListed := func() (bool, string) {
		for _, e := range ddos.fleet.Routers()[0].Server.AddressList(false) {
			if e.List == "flowbox-attacked" && e.Address == ddos.target && strings.HasPrefix(e.Comment, "flowbox alert ") && e.Timeout > 0 {
				return true, fmt.Sprintf("%+v", e)
			}
		}
		return false, fmt.Sprintf("%+v", ddos.fleet.Routers()[0].Server.AddressList(false))
	}
	testutil.WaitFor(t, 30*time.Second, "the victim in tower1's flowbox-attacked list", victimListed)
	if l := spam.fleet.Routers()[0].Server.AddressList(false); len(l) != 0 {
		t.Errorf("dry run changed tower3's address lists: %+v", l)
	}
	// The raw JSON has the keys the issue names.
	var raw testutil.SyncBuffer
	if err := run(ctx, &env{stdout: &raw, stderr: &testutil.SyncBuffer{}, getenv: func(string) string { return "" }},
		[]string{"alerts", "--json", "--config", cfgPath}); err != nil {
		t.Fatal(err)
	}
	var rawList []map[string]any
	if err := json.Unmarshal([]byte(raw.String()), &rawList); err != nil || len(rawList) == 0 {
		t.Fatalf("alerts --json: %v %q", err, raw.String())
	}
	for _, k := range []string{"id", "kind", "severity", "router", "target", "direction", "started", "ended",
		"peak_bps", "peak_pps", "peak_flows_per_s", "summary"} {
		if _, ok := rawList[0][k]; !ok {
			t.Errorf("alerts --json lacks %q: %v", k, rawList[0])
		}
	}
	if rawList[0]["ended"] != nil {
		t.Errorf("an active alert's ended = %v, want null", rawList[0]["ended"])
	}

	// Every scenario ends: its alert resolves.
	testutil.WaitFor(t, time.Until(start.Add(scenarioDuration))+90*time.Second, "every alert resolved", func() (bool, string) {
		as := alertsJSON(true)
		done := 0
		for _, r := range runs {
			if a := find(as, r); a != nil && a.Ended != nil {
				done++
			}
		}
		return done == len(runs), fmt.Sprintf("%d of %d resolved: %+v", done, len(runs), as)
	})
	as := alertsJSON(true)
	for _, r := range runs {
		a := find(as, r)
		if r.sub != "" && a.Subscriber != r.sub {
			t.Errorf("%s: subscriber %q, want %q", r.kind, a.Subscriber, r.sub)
		}
		t.Logf("%s: started %s after the scenario, ended %s after it", r.kind, a.Started.Sub(r.start).Round(time.Second),
			a.Ended.Sub(r.end).Round(time.Second))
		if !strings.HasPrefix(a.Summary, r.kind+":") {
			t.Errorf("%s: summary %q does not name its kind", r.kind, a.Summary)
		}
		if a.Ended.Before(r.end) {
			t.Errorf("%s: resolved at %v, before the scenario ended (%v)", r.kind, a.Ended, r.end)
		}
		t.Logf("%s", a.Summary)
	}
	if len(as) != len(runs) {
		for _, a := range as {
			t.Logf("alert: %s %s %s: %s", a.Kind, a.Router, a.Target, a.Summary)
		}
		t.Errorf("%d alerts, want one per scenario (%d)", len(as), len(runs))
	}
	// The resolved attack's entry is gone; the audit log has the add and
	// the remove, and the dry run's skip.
	testutil.WaitFor(t, 30*time.Second, "the victim's entry removed", func() (bool, string) {
		listed, state := victimListed()
		return !listed, state
	})
	c := login(t, srv.base, "admin", "e2e-admin-pw")
	for _, r := range []*scenarioRun{ddos, spam} {
		a := find(as, r)
		var detail struct {
			Mitigation []store.MitigationAction `json:"mitigation"`
		}
		if code := c.get(fmt.Sprintf("/api/v1/alerts/%d", a.ID), &detail); code != http.StatusOK {
			t.Fatalf("GET alert %d: %d", a.ID, code)
		}
		var log []string
		for _, m := range detail.Mitigation {
			log = append(log, m.Action+" "+m.Kind+" "+m.List+" "+m.Address+" "+m.Result)
		}
		want := []string{"add address-list flowbox-attacked " + r.target + " ok", "remove address-list flowbox-attacked " + r.target + " ok"}
		if r == spam {
			want = []string{"add address-list flowbox-abuse " + r.target + " skipped: dry run"}
		}
		for _, w := range want {
			if !strings.Contains(strings.Join(log, "\n"), w) {
				t.Errorf("%s's mitigation log lacks %q:\n%s", r.name, w, strings.Join(log, "\n"))
			}
		}
	}
	testutil.WaitFor(t, 30*time.Second, "the webhook's opened and resolved messages", func() (bool, string) {
		evs := strings.Join(hook.events(), "\n")
		for _, r := range runs {
			for _, ev := range []string{"opened", "resolved"} {
				if !strings.Contains(evs, ev+" "+r.kind+" "+r.target) {
					return false, evs
				}
			}
		}
		return true, evs
	})
}
