package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	_ "time/tzdata" // the zones do not depend on the machine's database

	"github.com/google/go-cmp/cmp"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

// The scheduler tests run in a synctest bubble: its clock starts at
// 2000-01-01 00:00 UTC and jumps ahead whenever every goroutine of the
// bubble waits. Servers (SMTP, HTTP) are started outside the bubble.

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// sleepUntil moves the bubble's clock to at and waits until the
// scheduler is idle again.
func sleepUntil(at time.Time) {
	time.Sleep(time.Until(at)) // fake clock (synctest)
	synctest.Wait()
}

// running is a scheduler running in the bubble.
type running struct {
	*Scheduler
	cancel context.CancelFunc
	done   chan error
}

// start builds and runs a scheduler and waits until its first pass is
// done.
func start(t *testing.T, cfg Config, deps Deps) *running {
	t.Helper()
	if deps.Logger == nil {
		deps.Logger = testutil.Logger(t)
	}
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Scheduler: s, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	synctest.Wait()
	return r
}

// stop stops the scheduler (a machine going down).
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if err := <-r.done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func testConfig(tz string, schedules ...ScheduleConfig) Config {
	c := DefaultConfig()
	c.TimeZone = tz
	c.Schedules = schedules
	return c
}

// runSummary is what the tests compare of a run.
type runSummary struct {
	Period  string
	Started string // in the schedule's zone
	CatchUp bool
	OK      bool
}

func summarize(runs []store.ReportRun, loc *time.Location) []runSummary {
	out := make([]runSummary, len(runs))
	for i, r := range runs {
		out[i] = runSummary{Period: r.Period, Started: r.Started.In(loc).Format("2006-01-02 15:04 MST"), CatchUp: r.CatchUp, OK: r.OK}
	}
	return out
}

// listDir returns the names in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func expectedCSV(t *testing.T, q store.ReportRequest) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := store.WriteReportCSV(&b, fakeReport(q)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestPeriods checks the calendar periods in zones with daylight saving
// time.
func TestPeriods(t *testing.T) {
	berlin, saoPaulo := zone(t, "Europe/Berlin"), zone(t, "America/Sao_Paulo")
	for _, tc := range []struct {
		every string
		loc   *time.Location
		at    time.Time
		label string
		hours float64
	}{
		{EveryMonth, berlin, time.Date(2026, 3, 15, 12, 0, 0, 0, berlin), "2026-03", 31*24 - 1},
		{EveryMonth, berlin, time.Date(2026, 10, 31, 23, 59, 0, 0, berlin), "2026-10", 31*24 + 1},
		{EveryMonth, berlin, time.Date(2026, 11, 1, 0, 0, 0, 0, berlin), "2026-11", 30 * 24},
		{EveryMonth, saoPaulo, time.Date(2026, 12, 1, 2, 59, 0, 0, time.UTC), "2026-11", 30 * 24},
		{EveryMonth, saoPaulo, time.Date(2000, 2, 10, 0, 0, 0, 0, saoPaulo), "2000-02", 29*24 + 1},
		// The week of the spring change in Berlin has 167 hours.
		{EveryWeek, berlin, time.Date(2026, 3, 29, 23, 0, 0, 0, berlin), "2026-03-23..2026-03-29", 167},
		{EveryWeek, berlin, time.Date(2026, 3, 30, 0, 0, 0, 0, berlin), "2026-03-30..2026-04-05", 168},
		{EveryWeek, berlin, time.Date(2026, 12, 31, 10, 0, 0, 0, berlin), "2026-12-28..2027-01-03", 168},
		{EveryWeek, saoPaulo, time.Date(2026, 11, 2, 2, 0, 0, 0, time.UTC), "2026-10-26..2026-11-01", 168},
	} {
		p := periodAt(tc.every, tc.loc, tc.at)
		if p.label != tc.label || p.to.Sub(p.from).Hours() != tc.hours {
			t.Errorf("periodAt(%s, %s, %s) = %s, %v long; want %s, %vh", tc.every, tc.loc, tc.at, p.label, p.to.Sub(p.from), tc.label, tc.hours)
		}
		if p.from.In(tc.loc).Hour() != 0 || p.to.In(tc.loc).Hour() != 0 || p.prev(tc.every, tc.loc).to != p.from || p.next(tc.every, tc.loc).from != p.to {
			t.Errorf("%s: not a calendar period: %s..%s", tc.label, p.from.In(tc.loc), p.to.In(tc.loc))
		}
	}
}

// TestMonthlyOnTheFirst: a monthly report in São Paulo runs on the 1st,
// 15 minutes after midnight there (across the end of daylight saving
// time), and its CSV lands in the folder.
func TestMonthlyOnTheFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		loc := zone(t, "America/Sao_Paulo")
		dir := filepath.Join(t.TempDir(), "reports", "monthly")
		runs, rep := &memRuns{}, &fakeReporter{}
		cfg := testConfig("America/Sao_Paulo", ScheduleConfig{Name: "billing", Every: EveryMonth, Percentile: 90, TopApps: 3, Folder: dir})
		s := start(t, cfg, Deps{Reporter: rep, Runs: runs})
		defer s.stop(t)

		// A new schedule runs its last closed period at once.
		want := []runSummary{{"1999-11", "1999-12-31 22:00 -02", true, true}}
		if diff := cmp.Diff(summarize(runs.all(), loc), want); diff != "" {
			t.Fatalf("runs at the start (-got +want):\n%s", diff)
		}
		sleepUntil(time.Date(2000, 1, 1, 0, 14, 59, 0, loc))
		if n := len(runs.all()); n != 1 {
			t.Fatalf("%d runs before the settle delay, want 1", n)
		}
		sleepUntil(time.Date(2000, 1, 1, 0, 15, 0, 0, loc))
		want = append(want, runSummary{"1999-12", "2000-01-01 00:15 -02", false, true})
		if diff := cmp.Diff(summarize(runs.all(), loc), want); diff != "" {
			t.Fatalf("runs on the 1st (-got +want):\n%s", diff)
		}
		// The request and the file.
		reqs := rep.requests()
		q := reqs[len(reqs)-1]
		wantQ := store.ReportRequest{From: time.Date(1999, 12, 1, 0, 0, 0, 0, loc), To: time.Date(2000, 1, 1, 0, 0, 0, 0, loc),
			Location: loc, Label: "1999-12", Kind: store.ReportBySubscriber, Percentile: 90, Split: "none", TopApps: 3}
		if diff := cmp.Diff(q, wantQ, cmp.Comparer(func(a, b *time.Location) bool { return a.String() == b.String() })); diff != "" {
			t.Errorf("request (-got +want):\n%s", diff)
		}
		file := filepath.Join(dir, "billing-1999-12.csv")
		got, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(got), string(expectedCSV(t, wantQ))); diff != "" {
			t.Errorf("CSV (-got +want):\n%s", diff)
		}
		if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("file mode: %v %v, want 0640", fi.Mode(), err)
		}
		if diff := cmp.Diff(listDir(t, dir), []string{"billing-1999-11.csv", "billing-1999-12.csv"}); diff != "" {
			t.Errorf("folder (-got +want):\n%s", diff)
		}
		last := runs.all()[1]
		if diff := cmp.Diff(last.Deliveries, []store.ReportDelivery{{Target: "folder " + dir, OK: true}}); diff != "" || last.Rows != 2 {
			t.Errorf("run: %d rows, deliveries (-got +want):\n%s", last.Rows, diff)
		}

		// Daylight saving time ends on 2000-02-27 in São Paulo: March's
		// 1st is due at 00:15 -03.
		sleepUntil(time.Date(2000, 2, 1, 0, 15, 0, 0, loc))
		info := s.Schedules()
		if len(info) != 1 || info[0].NextPeriod != "2000-02" || info[0].NextDue.UTC() != time.Date(2000, 3, 1, 3, 15, 0, 0, time.UTC) ||
			info[0].LastRun == nil || info[0].LastRun.Period != "2000-01" || info[0].TimeZone != "America/Sao_Paulo" {
			t.Errorf("Schedules: %+v", info)
		}
		sleepUntil(time.Date(2000, 3, 1, 0, 15, 0, 0, loc))
		want = append(want, runSummary{"2000-01", "2000-02-01 00:15 -02", false, true}, runSummary{"2000-02", "2000-03-01 00:15 -03", false, true})
		if diff := cmp.Diff(summarize(runs.all(), loc), want); diff != "" {
			t.Fatalf("runs (-got +want):\n%s", diff)
		}
		if all, err := s.Runs(context.Background(), 2); err != nil || len(all) != 2 || all[0].Period != "2000-02" {
			t.Errorf("Runs: %v %+v", err, all)
		}
	})
}

// TestWeekly: a weekly report in Berlin runs each Monday at 00:15,
// across the spring change to daylight saving time (a 167-hour week).
func TestWeekly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		loc := zone(t, "Europe/Berlin")
		runs := &memRuns{}
		cfg := testConfig("UTC", ScheduleConfig{Name: "weekly", Every: EveryWeek, By: store.ReportByRouter, TimeZone: "Europe/Berlin",
			Folder: t.TempDir()})
		s := start(t, cfg, Deps{Reporter: &fakeReporter{}, Runs: runs})
		defer s.stop(t)
		sleepUntil(time.Date(2000, 3, 27, 0, 15, 0, 0, loc))
		all := runs.all()
		if len(all) != 14 {
			t.Fatalf("%d runs, want 14: %+v", len(all), summarize(all, loc))
		}
		if got := summarize(all[:1], loc)[0]; got != (runSummary{"1999-12-20..1999-12-26", "2000-01-01 01:00 CET", true, true}) {
			t.Errorf("first run: %+v", got)
		}
		for _, r := range all[1:] {
			st := r.Started.In(loc)
			if r.CatchUp || !r.OK || st.Weekday() != time.Monday || st.Hour() != 0 || st.Minute() != 15 || !st.Equal(r.To.Add(15*time.Minute)) {
				t.Errorf("run %s started %s (catch-up %v, ok %v)", r.Period, st, r.CatchUp, r.OK)
			}
		}
		dst := all[len(all)-1]
		if dst.Period != "2000-03-20..2000-03-26" || dst.To.Sub(dst.From) != 167*time.Hour {
			t.Errorf("last run: %s, %v long", dst.Period, dst.To.Sub(dst.From))
		}
	})
}

// TestCatchUpAfterRestart: the periods that closed while flowbox was not
// running are run at the next start, from the recorded runs, at most
// catch-up of them, and never twice.
func TestCatchUpAfterRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		loc := zone(t, "Europe/Berlin")
		runs, rep := &memRuns{}, &fakeReporter{}
		dir := t.TempDir()
		cfg := testConfig("Europe/Berlin", ScheduleConfig{Name: "m", Every: EveryMonth, Folder: dir})
		a := start(t, cfg, Deps{Reporter: rep, Runs: runs})
		sleepUntil(time.Date(2000, 2, 1, 0, 15, 0, 0, loc))
		a.stop(t)
		want := []runSummary{{"1999-12", "2000-01-01 01:00 CET", true, true}, {"2000-01", "2000-02-01 00:15 CET", false, true}}
		if diff := cmp.Diff(summarize(runs.all(), loc), want); diff != "" {
			t.Fatalf("runs before the stop (-got +want):\n%s", diff)
		}

		// Off from February to June 10: February is beyond catch-up (3),
		// March to May are run at the start, oldest first.
		sleepUntil(time.Date(2000, 6, 10, 9, 0, 0, 0, loc))
		b := start(t, cfg, Deps{Reporter: rep, Runs: runs})
		want = append(want,
			runSummary{"2000-03", "2000-06-10 09:00 CEST", true, true},
			runSummary{"2000-04", "2000-06-10 09:00 CEST", true, true},
			runSummary{"2000-05", "2000-06-10 09:00 CEST", true, true})
		if diff := cmp.Diff(summarize(runs.all(), loc), want); diff != "" {
			t.Fatalf("runs after the restart (-got +want):\n%s", diff)
		}
		if got := promtest.ToFloat64(b.metrics.skipped); got != 1 {
			t.Errorf("skipped periods: %v, want 1", got)
		}
		b.stop(t)

		// Restarted again at once, and on the 1st before and after the
		// settle delay: nothing runs twice.
		c := start(t, cfg, Deps{Reporter: rep, Runs: runs})
		c.stop(t)
		sleepUntil(time.Date(2000, 7, 1, 0, 5, 0, 0, loc))
		d := start(t, cfg, Deps{Reporter: rep, Runs: runs})
		if n := len(runs.all()); n != len(want) {
			t.Fatalf("%d runs after restarts, want %d", n, len(want))
		}
		sleepUntil(time.Date(2000, 7, 1, 0, 15, 0, 0, loc))
		d.stop(t)
		e := start(t, cfg, Deps{Reporter: rep, Runs: runs})
		e.stop(t)
		want = append(want, runSummary{"2000-06", "2000-07-01 00:15 CEST", false, true})
		if diff := cmp.Diff(summarize(runs.all(), loc), want); diff != "" {
			t.Fatalf("runs (-got +want):\n%s", diff)
		}
		if n := len(rep.requests()); n != len(want) {
			t.Errorf("%d reports made, want %d", n, len(want))
		}
		files := listDir(t, dir)
		if diff := cmp.Diff(files, []string{"m-1999-12.csv", "m-2000-01.csv", "m-2000-03.csv", "m-2000-04.csv", "m-2000-05.csv", "m-2000-06.csv"}); diff != "" {
			t.Errorf("folder (-got +want):\n%s", diff)
		}
	})
}

// TestNewScheduleNoCatchUp: with catch-up 0, a start runs nothing; the
// next periods run when due (December's at 00:15 on January 1).
func TestNewScheduleNoCatchUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		runs := &memRuns{}
		cfg := testConfig("UTC", ScheduleConfig{Name: "m", Every: EveryMonth, Folder: t.TempDir()})
		cfg.CatchUp = 0
		s := start(t, cfg, Deps{Reporter: &fakeReporter{}, Runs: runs})
		defer s.stop(t)
		if n := len(runs.all()); n != 0 {
			t.Fatalf("%d runs at the start, want 0", n)
		}
		sleepUntil(time.Date(2000, 2, 1, 0, 15, 0, 0, time.UTC))
		if diff := cmp.Diff(summarize(runs.all(), time.UTC), []runSummary{{"1999-12", "2000-01-01 00:15 UTC", false, true}, {"2000-01", "2000-02-01 00:15 UTC", false, true}}); diff != "" {
			t.Errorf("runs (-got +want):\n%s", diff)
		}
	})
}

// hookServer is a webhook receiver that checks signatures and answers
// with the statuses it is given, then 200.
type hookServer struct {
	*httptest.Server
	secret string
	mu     sync.Mutex
	answer []int
	bodies [][]byte
	bad    []string
}

func startHookServer(t *testing.T, secret string, answers ...int) *hookServer {
	h := &hookServer{secret: secret, answer: answers}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if secret != "" && r.Header.Get(SignatureHeader) != Sign([]byte(secret), body) {
			h.bad = append(h.bad, r.Header.Get(SignatureHeader))
		}
		h.bodies = append(h.bodies, body)
		status := http.StatusOK
		if len(h.answer) > 0 {
			status, h.answer = h.answer[0], h.answer[1:]
		}
		if status != http.StatusOK {
			http.Error(w, "boom", status)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "thanks")
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) received() ([][]byte, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bodies, h.bad
}

func (h *hookServer) setAnswers(a ...int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.answer = a
}

// TestWebhook: JSON and CSV posts with their signature; a failing
// receiver is tried again with backoff.
func TestWebhook(t *testing.T) {
	const secret = "hook-s3cret"
	secretFile := writeFile(t, "secret", secret+"\n")
	hook := startHookServer(t, secret, http.StatusServiceUnavailable, http.StatusBadGateway)
	csvHook := startHookServer(t, "")
	synctest.Test(t, func(t *testing.T) {
		runs := &memRuns{}
		cfg := testConfig("UTC",
			ScheduleConfig{Name: "json", Every: EveryMonth, Webhook: WebhookConfig{URL: hook.URL + "/hook?token=x"}},
			ScheduleConfig{Name: "csv", Every: EveryWeek, Webhook: WebhookConfig{URL: csvHook.URL, Format: FormatCSV}})
		cfg.Webhook.SecretFile = secretFile
		t0 := time.Now()
		s := start(t, cfg, Deps{Reporter: &fakeReporter{}, Runs: runs})
		defer s.stop(t)
		sleepUntil(t0.Add(10 * time.Minute)) // past the backoff
		all := runs.all()
		if len(all) != 2 {
			t.Fatalf("runs: %+v", all)
		}
		j := all[0]
		want := []store.ReportDelivery{{Target: "webhook " + hook.URL + "/hook", OK: true, Detail: "delivered at attempt 3"}}
		if diff := cmp.Diff(j.Deliveries, want); diff != "" || !j.OK {
			t.Errorf("json run ok=%v (-got +want):\n%s", j.OK, diff)
		}
		// Backoff: 1m, then 2m.
		if d := j.Finished.Sub(t0); d != 3*time.Minute {
			t.Errorf("the run took %v, want 3m of backoff", d)
		}
		bodies, bad := hook.received()
		if len(bodies) != 3 || len(bad) != 0 {
			t.Fatalf("%d posts, bad signatures %q", len(bodies), bad)
		}
		var body WebhookBody
		if err := json.Unmarshal(bodies[2], &body); err != nil {
			t.Fatal(err)
		}
		if body.Schedule != "json" || body.Period != "1999-11" || body.Rows != 2 || !body.CatchUp || body.Report == nil ||
			len(body.Report.Rows) != 2 || body.Report.Rows[0].Subscriber != "alice" || !body.From.Equal(time.Date(1999, 11, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("body: %s", bodies[2])
		}
		csvBodies, _ := csvHook.received()
		if len(csvBodies) != 1 || !strings.HasPrefix(string(csvBodies[0]), "period,from,to,router_id,router,subscriber,customer_id,download_bytes") {
			t.Errorf("csv posts: %q", csvBodies)
		}
		if got := promtest.ToFloat64(s.metrics.retries); got != 2 {
			t.Errorf("retries: %v, want 2", got)
		}
	})
}

// TestFailureRecordedAndRetried: a delivery that keeps failing is
// recorded in the run (and counted); the next start runs the period
// again, delivering only to the target that missed it.
func TestFailureRecordedAndRetried(t *testing.T) {
	hook := startHookServer(t, "")
	hook.setAnswers(500, 500, 500, 500)
	bad := startHookServer(t, "", http.StatusNotFound)
	synctest.Test(t, func(t *testing.T) {
		runs := &memRuns{}
		dir := t.TempDir()
		cfg := testConfig("UTC", ScheduleConfig{Name: "m", Every: EveryMonth, Folder: dir, Webhook: WebhookConfig{URL: hook.URL}})
		cfg.Settle = 12 * time.Hour // December is not due during the test
		a := start(t, cfg, Deps{Reporter: &fakeReporter{}, Runs: runs})
		sleepUntil(time.Now().Add(10 * time.Minute)) // past the backoff
		a.stop(t)
		all := runs.all()
		if len(all) != 1 {
			t.Fatalf("runs: %+v", all)
		}
		want := []store.ReportDelivery{
			{Target: "folder " + dir, OK: true},
			{Target: "webhook " + hook.URL, Detail: fmt.Sprintf(`failed after 4 attempts: webhook %s answered 500 Internal Server Error: "boom"`, hook.URL)},
		}
		if diff := cmp.Diff(all[0].Deliveries, want); diff != "" || all[0].OK || all[0].Finished.IsZero() {
			t.Errorf("failed run: ok=%v finished=%v (-got +want):\n%s", all[0].OK, all[0].Finished, diff)
		}
		if got := promtest.ToFloat64(a.metrics.failures.WithLabelValues("webhook")); got != 1 {
			t.Errorf("webhook failures: %v", got)
		}
		if got := promtest.ToFloat64(a.metrics.runs.WithLabelValues("failed")); got != 1 {
			t.Errorf("failed runs: %v", got)
		}

		// The receiver is back: the next start delivers the webhook only.
		b := start(t, cfg, Deps{Reporter: &fakeReporter{}, Runs: runs})
		b.stop(t)
		all = runs.all()
		want = []store.ReportDelivery{{Target: "folder " + dir, OK: true, Detail: "delivered by run 1"}, {Target: "webhook " + hook.URL, OK: true}}
		if len(all) != 2 || !all[1].OK || !all[1].CatchUp {
			t.Fatalf("runs: %+v", all)
		}
		if diff := cmp.Diff(all[1].Deliveries, want); diff != "" {
			t.Errorf("second run (-got +want):\n%s", diff)
		}
		if bodies, _ := hook.received(); len(bodies) != 5 {
			t.Errorf("%d posts, want 5", len(bodies))
		}
		c := start(t, cfg, Deps{Reporter: &fakeReporter{}, Runs: runs})
		c.stop(t)
		if n := len(runs.all()); n != 2 {
			t.Errorf("%d runs after a third start, want 2", n)
		}

		// A 404 is not tried again; a reporter that keeps failing fails
		// the run before any delivery.
		cfg = testConfig("UTC", ScheduleConfig{Name: "gone", Every: EveryMonth, Webhook: WebhookConfig{URL: bad.URL}})
		cfg.Settle = 12 * time.Hour
		d := start(t, cfg, Deps{Reporter: &fakeReporter{}, Runs: runs})
		d.stop(t)
		cfg = testConfig("UTC", ScheduleConfig{Name: "noreport", Every: EveryMonth, Folder: dir})
		cfg.Settle = 12 * time.Hour
		e := start(t, cfg, Deps{Reporter: &fakeReporter{fail: 10}, Runs: runs})
		sleepUntil(time.Now().Add(10 * time.Minute)) // past the backoff
		e.stop(t)
		all = runs.all()
		if len(all) != 4 {
			t.Fatalf("runs: %+v", all)
		}
		if got := promtest.ToFloat64(e.metrics.errors.WithLabelValues("report")); got != 1 {
			t.Errorf("report errors: %v", got)
		}
		if g := all[2]; g.OK || g.Error != "" || len(g.Deliveries) != 1 ||
			g.Deliveries[0].Detail != fmt.Sprintf(`webhook %s answered 404 Not Found: "boom"`, bad.URL) {
			t.Errorf("404 run: %+v", g)
		}
		if n := all[3]; n.OK || n.Error != "cannot make the report: the database is busy" || len(n.Deliveries) != 0 {
			t.Errorf("reporter failure run: %+v", n)
		}
	})
}

// fakeRouters knows tower-1 (id 7).
type fakeRouters struct{}

func (fakeRouters) GetRouter(_ context.Context, name string) (*store.Router, error) {
	if name == "tower-1" {
		return &store.Router{ID: 7, Name: name}, nil
	}
	return nil, fmt.Errorf("router %q: %w", name, store.ErrNotFound)
}

// TestRoutersFilter: a schedule's routers are resolved at each run; an
// unknown router fails the run, recorded.
func TestRoutersFilter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		runs, rep := &memRuns{}, &fakeReporter{}
		cfg := testConfig("UTC",
			ScheduleConfig{Name: "one", Every: EveryMonth, By: store.ReportByInterface, Routers: []string{"tower-1"}, Folder: t.TempDir()},
			ScheduleConfig{Name: "gone", Every: EveryMonth, Routers: []string{"tower-9"}, Folder: t.TempDir()})
		s := start(t, cfg, Deps{Reporter: rep, Runs: runs, Routers: fakeRouters{}})
		s.stop(t)
		reqs := rep.requests()
		if len(reqs) != 1 || !cmp.Equal(reqs[0].Sources, []int64{7}) || reqs[0].Kind != store.ReportByInterface {
			t.Errorf("requests: %+v", reqs)
		}
		all := runs.all()
		if len(all) != 2 || !all[0].OK || all[1].OK || !strings.HasPrefix(all[1].Error, `cannot find router "tower-9" of the schedule: router "tower-9": `) {
			t.Errorf("runs: %+v", all)
		}
	})
}

// TestClockJump: a machine that slept (the wall clock jumped two months
// ahead) notices it within maxWait and runs the missed periods, late.
func TestClockJump(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var offset atomic.Int64
		now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
		runs := &memRuns{}
		cfg := testConfig("UTC", ScheduleConfig{Name: "m", Every: EveryMonth, Folder: t.TempDir()})
		s := start(t, cfg, Deps{Reporter: &fakeReporter{}, Runs: runs, Now: now})
		defer s.stop(t)
		sleepUntil(time.Date(2000, 1, 1, 1, 0, 0, 0, time.UTC)) // November at the start, December at 00:15
		offset.Store(int64(time.Date(2000, 3, 10, 0, 0, 0, 0, time.UTC).Sub(time.Now())))
		time.Sleep(maxWait) // fake clock (synctest)
		synctest.Wait()
		want := []runSummary{{"1999-11", "2000-01-01 00:00 UTC", true, true}, {"1999-12", "2000-01-01 00:15 UTC", false, true},
			{"2000-01", "2000-03-10 00:15 UTC", true, true}, {"2000-02", "2000-03-10 00:15 UTC", false, true}}
		if diff := cmp.Diff(summarize(runs.all(), time.UTC), want); diff != "" {
			t.Errorf("runs (-got +want):\n%s", diff)
		}
	})
}
