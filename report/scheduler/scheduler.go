// Package scheduler runs the scheduled reports of flowbox (the `reports:`
// section): each schedule makes a traffic report (store.Reporter) of every
// calendar month or week once it has closed in the schedule's time zone
// (plus a settle delay, so that the last flows and rollups are in), and
// delivers its CSV to a folder, by e-mail (SMTP) and to a webhook.
//
// Every run is recorded (store.ReportRunLog) with what became of each
// delivery, and the decisions are made from those records, so a restart
// is safe: a period that succeeded is never run again, and the periods
// that closed while flowbox was not running are run when it starts
// (catch-up, bounded to the last few periods). A failed delivery is tried
// again with backoff a bounded number of times; a run that still failed
// is tried again at the next start, delivering only to the targets that
// did not get it yet.
package scheduler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
)

// Routers names the routers a schedule's routers filter lists.
type Routers interface {
	GetRouter(ctx context.Context, name string) (*store.Router, error)
}

// Deps are the scheduler's dependencies.
type Deps struct {
	// Reporter makes the reports.
	Reporter store.Reporter
	// Runs records the runs.
	Runs store.ReportRunLog
	// Routers resolves the schedules' router names (needed only when a
	// schedule lists routers).
	Routers Routers
	// Logger may be nil.
	Logger *slog.Logger
	// Registerer may be nil.
	Registerer prometheus.Registerer
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// ScheduleInfo describes a configured schedule (store.ReportSchedule).
type ScheduleInfo = store.ReportSchedule

// Scheduler runs the scheduled reports.
type Scheduler struct {
	cfg       Config
	reporter  store.Reporter
	runs      store.ReportRunLog
	routers   Routers
	logger    *slog.Logger
	now       func() time.Time
	metrics   metrics
	schedules []*schedule

	mu sync.Mutex // guards the schedules' state
}

// schedule is one configured schedule and its state.
type schedule struct {
	cfg     ScheduleConfig
	loc     *time.Location
	kind    string
	targets []target

	// done is the end of the latest period this process handled (ran or
	// skipped); zero before the first pass.
	done time.Time
	// lastRun is the latest recorded run.
	lastRun *store.ReportRun
}

// maxWait bounds a wait of the loop, so that a change of the wall clock
// or a suspended machine is noticed.
const maxWait = time.Hour

// runHistory is how many of a schedule's recorded runs are read to decide
// what to run.
const runHistory = 200

// New builds the scheduler: it checks the configuration and reads the
// files it names (passwords, secrets, CAs). It starts nothing.
func New(cfg Config, deps Deps) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid reports configuration: %w", err)
	}
	if len(cfg.Schedules) > 0 && (deps.Reporter == nil || deps.Runs == nil) {
		return nil, errors.New("cannot build the report scheduler: a reporter and a run log are needed")
	}
	s := &Scheduler{cfg: cfg, reporter: deps.Reporter, runs: deps.Runs, routers: deps.Routers, logger: deps.Logger, now: deps.Now}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.metrics = newMetrics(deps.Registerer)
	var mailer *smtpSender
	for _, sc := range cfg.Schedules {
		if len(sc.MailTo) > 0 && mailer == nil {
			var err error
			if mailer, err = newSMTPSender(cfg.SMTP, s.now); err != nil {
				return nil, fmt.Errorf("reports.smtp: %w", err)
			}
			if !cfg.SMTP.Insecure {
				continue
			}
			if !isLoopback(cfg.SMTP.Host) {
				s.logger.Warn("reports.smtp.insecure is set for a relay that is not on this host: reports may be sent unencrypted",
					"host", cfg.SMTP.Host)
			}
		}
	}
	for i, sc := range cfg.Schedules {
		zone := sc.TimeZone
		if zone == "" {
			zone = cfg.TimeZone
		}
		loc, err := loadZone(zone)
		if err != nil {
			return nil, fmt.Errorf("reports.schedules[%d].time-zone: %w", i, err)
		}
		kind := sc.By
		if kind == "" {
			kind = store.ReportBySubscriber
		}
		if len(sc.Routers) > 0 && deps.Routers == nil {
			return nil, fmt.Errorf("reports.schedules[%d].routers: no router inventory to resolve them", i)
		}
		x := &schedule{cfg: sc, loc: loc, kind: kind}
		folder := sc.Folder
		if folder == "" {
			folder = cfg.Folder
		}
		if folder != "" {
			x.targets = append(x.targets, &folderTarget{dir: folder})
		}
		if len(sc.MailTo) > 0 {
			mt, err := mailer.target(sc.MailTo)
			if err != nil {
				return nil, fmt.Errorf("reports.schedules[%d].mail-to: %w", i, err)
			}
			x.targets = append(x.targets, mt)
		}
		if sc.Webhook.URL != "" {
			w := sc.Webhook
			if w.Format == "" {
				w.Format = cfg.Webhook.Format
			}
			if w.Format == "" {
				w.Format = FormatJSON
			}
			if w.SecretFile == "" {
				w.SecretFile = cfg.Webhook.SecretFile
			}
			wt, err := newWebhookTarget(w)
			if err != nil {
				return nil, fmt.Errorf("reports.schedules[%d].webhook: %w", i, err)
			}
			x.targets = append(x.targets, wt)
		}
		s.schedules = append(s.schedules, x)
	}
	return s, nil
}

// Run runs the schedules until ctx is done: first the periods missed
// while flowbox was not running, then each period when it is due. It
// returns nil when ctx is done; a run in progress is then recorded as
// failed and tried again at the next start.
func (s *Scheduler) Run(ctx context.Context) error {
	if len(s.schedules) == 0 {
		return nil
	}
	s.logger.Info("report scheduler started", "schedules", len(s.schedules))
	for _, sc := range s.schedules {
		s.pass(ctx, sc, true)
	}
	for {
		now := s.now()
		wait := maxWait
		for _, sc := range s.schedules {
			wait = min(wait, s.nextDue(sc).Sub(now))
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		now = s.now()
		for _, sc := range s.schedules {
			if !now.Before(s.nextDue(sc)) {
				s.pass(ctx, sc, false)
			}
		}
	}
}

// nextDue is when the schedule's next period is due.
func (s *Scheduler) nextDue(sc *schedule) time.Time {
	s.mu.Lock()
	done := sc.done
	s.mu.Unlock()
	if done.IsZero() {
		return time.Time{}
	}
	return periodAt(sc.cfg.Every, sc.loc, done).to.Add(s.cfg.Settle)
}

// pass runs the periods of a schedule that are due and were not run:
// the last closed one and, at the start, those missed before it (at most
// reports.catch-up periods back).
func (s *Scheduler) pass(ctx context.Context, sc *schedule, atStart bool) {
	now := s.now()
	last := lastClosed(sc.cfg.Every, sc.loc, s.cfg.Settle, now)
	log := s.logger.With("schedule", sc.cfg.Name)
	defer func() {
		s.mu.Lock()
		sc.done = last.to
		s.mu.Unlock()
	}()
	if ctx.Err() != nil {
		return
	}
	recorded, err := s.runs.ScheduleRuns(ctx, sc.cfg.Name, runHistory)
	if err != nil {
		// Without the records a run could be a duplicate: wait for the
		// next period (or start) rather than risk it.
		log.Error("cannot read the recorded report runs; the due periods are left for the next start", "err", err)
		s.metrics.errors.WithLabelValues("store").Inc()
		return
	}
	if len(recorded) > 0 {
		s.mu.Lock()
		sc.lastRun = &recorded[0]
		s.mu.Unlock()
	}
	todo := s.pending(sc, last, recorded, atStart, log)
	for _, p := range todo {
		if ctx.Err() != nil {
			return
		}
		// A period before the last closed one is late: flowbox was not
		// running (or the machine slept) when it closed.
		catchUp := atStart || !p.from.Equal(last.from)
		s.runPeriod(ctx, sc, p, catchUp, priorDeliveries(recorded, p), log)
	}
}

// pending returns the periods to run, oldest first: the last closed one,
// and at the start the ones before it within reports.catch-up, after the
// schedule's first recorded period (a new schedule runs only its last
// closed period), that did not succeed. Older missed periods are skipped
// and counted.
func (s *Scheduler) pending(sc *schedule, last period, recorded []store.ReportRun, atStart bool, log *slog.Logger) []period {
	every, loc := sc.cfg.Every, sc.loc
	succeeded := map[int64]bool{}
	var first, latest time.Time // the first and latest recorded periods
	for _, r := range recorded {
		if r.OK {
			succeeded[r.From.UnixMilli()] = true
		}
		if first.IsZero() || r.From.Before(first) {
			first = r.From
		}
		if r.From.After(latest) {
			latest = r.From
		}
	}
	if len(recorded) >= runHistory {
		first = time.Time{} // older runs exist: every period in the window counts
	}
	// At the start, reports.catch-up periods back; later, each period
	// since the one handled last (one, unless the machine was suspended
	// or the clock jumped), within the same bound.
	n := max(1, s.cfg.CatchUp)
	if atStart {
		n = s.cfg.CatchUp
	}
	done := s.done(sc)
	var out []period
	p := last
	for i := 0; i < n; i, p = i+1, p.prev(every, loc) {
		if !done.IsZero() && !p.to.After(done) {
			break // handled by this process already
		}
		if atStart && len(recorded) == 0 && i > 0 {
			break // a new schedule: its last closed period only
		}
		if !first.IsZero() && p.from.Before(first) {
			break // before the schedule existed
		}
		if !succeeded[p.from.UnixMilli()] {
			out = append(out, p)
		}
	}
	// Missed periods beyond the window, between the latest recorded one
	// and the window: skipped, and said so.
	if len(recorded) > 0 && done.IsZero() {
		skipped := 0
		for q := p; q.from.After(latest) && skipped < 1000; q = q.prev(every, loc) {
			if !succeeded[q.from.UnixMilli()] {
				skipped++
			}
		}
		if skipped > 0 {
			log.Warn("periods missed beyond reports.catch-up are skipped", "periods", skipped, "catch-up", s.cfg.CatchUp)
			s.metrics.skipped.Add(float64(skipped))
		}
	}
	slices.Reverse(out)
	return out
}

func (s *Scheduler) done(sc *schedule) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sc.done
}

// priorDeliveries returns the targets that already got a period's report
// in an earlier run, and that run's id.
func priorDeliveries(recorded []store.ReportRun, p period) map[string]int64 {
	out := map[string]int64{}
	for _, r := range recorded {
		if !r.From.Equal(p.from) {
			continue
		}
		for _, d := range r.Deliveries {
			if d.OK {
				if _, ok := out[d.Target]; !ok {
					out[d.Target] = r.ID
				}
			}
		}
	}
	return out
}

// runPeriod makes the report of a period, delivers it to each target
// that did not get it yet and records the run.
func (s *Scheduler) runPeriod(ctx context.Context, sc *schedule, p period, catchUp bool, delivered map[string]int64, log *slog.Logger) {
	log = log.With("period", p.label)
	run := &store.ReportRun{Schedule: sc.cfg.Name, Period: p.label, From: p.from, To: p.to, Started: s.now(), CatchUp: catchUp}
	if err := s.runs.AddReportRun(ctx, run); err != nil {
		log.Error("cannot record the report run; it is left for the next start", "err", err)
		s.metrics.errors.WithLabelValues("store").Inc()
		return
	}
	log.Info("scheduled report started", "catch_up", catchUp, "run", run.ID)
	err := s.deliverRun(ctx, sc, p, run, delivered, log)
	if err != nil {
		run.Error = err.Error()
	}
	run.OK = err == nil
	for _, d := range run.Deliveries {
		run.OK = run.OK && d.OK
	}
	run.Finished = s.now()
	// Recorded even when shutting down.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.runs.FinishReportRun(fctx, run); err != nil {
		log.Error("cannot record the outcome of the report run", "run", run.ID, "err", err)
		s.metrics.errors.WithLabelValues("store").Inc()
	}
	s.mu.Lock()
	r := *run
	sc.lastRun = &r
	s.mu.Unlock()
	if run.OK {
		s.metrics.runs.WithLabelValues("ok").Inc()
		log.Info("scheduled report delivered", "run", run.ID, "rows", run.Rows, "targets", len(run.Deliveries))
		return
	}
	s.metrics.runs.WithLabelValues("failed").Inc()
	if run.Error != "" {
		log.Error("scheduled report failed; it is tried again at the next start", "run", run.ID, "err", run.Error)
		return
	}
	log.Error("scheduled report not delivered everywhere; it is tried again at the next start", "run", run.ID,
		"failed_targets", failedTargets(run.Deliveries))
}

// failedTargets lists the targets of failed deliveries.
func failedTargets(ds []store.ReportDelivery) []string {
	var out []string
	for _, d := range ds {
		if !d.OK {
			out = append(out, d.Target)
		}
	}
	return out
}

// deliverRun makes the report and delivers it, filling run's Rows and
// Deliveries. It returns the error that stopped the run before the
// deliveries (the report could not be made).
func (s *Scheduler) deliverRun(ctx context.Context, sc *schedule, p period, run *store.ReportRun, delivered map[string]int64, log *slog.Logger) error {
	q := store.ReportRequest{From: p.from, To: p.to, Location: sc.loc, Label: p.label, Kind: sc.kind,
		Percentile: sc.cfg.Percentile, Split: "none", TopApps: sc.cfg.TopApps}
	if len(sc.cfg.Routers) > 0 {
		for _, name := range sc.cfg.Routers {
			r, err := s.routers.GetRouter(ctx, name)
			if err != nil {
				return fmt.Errorf("cannot find router %q of the schedule: %w", name, err)
			}
			q.Sources = append(q.Sources, r.ID)
		}
	}
	var rep *store.Report
	_, err := s.retry(ctx, log.With("step", "report"), func(ctx context.Context) error {
		var err error
		rep, err = s.reporter.Report(ctx, q)
		return err
	})
	if err != nil {
		s.metrics.errors.WithLabelValues("report").Inc()
		return fmt.Errorf("cannot make the report: %w", err)
	}
	run.Rows = len(rep.Rows)
	var csv bytes.Buffer
	if err := store.WriteReportCSV(&csv, rep); err != nil {
		return fmt.Errorf("cannot write the report's CSV: %w", err)
	}
	d := &delivery{schedule: sc.cfg.Name, period: p, loc: sc.loc, report: rep, csv: csv.Bytes(),
		file: sc.cfg.Name + "-" + p.label + ".csv", catchUp: run.CatchUp}
	for _, t := range sc.targets {
		name := t.name()
		if id, ok := delivered[name]; ok {
			run.Deliveries = append(run.Deliveries, store.ReportDelivery{Target: name, OK: true,
				Detail: fmt.Sprintf("delivered by run %d", id)})
			continue
		}
		attempts, err := s.retry(ctx, log.With("target", name), func(ctx context.Context) error { return t.deliver(ctx, d) })
		rd := store.ReportDelivery{Target: name, OK: err == nil}
		switch {
		case err != nil:
			s.metrics.failures.WithLabelValues(t.kind()).Inc()
			rd.Detail = fmt.Sprintf("failed after %d attempts: %v", attempts, err)
			if attempts == 1 {
				rd.Detail = err.Error()
			}
		case attempts > 1:
			rd.Detail = fmt.Sprintf("delivered at attempt %d", attempts)
		}
		run.Deliveries = append(run.Deliveries, rd)
	}
	return nil
}

// retry calls f until it succeeds, up to reports.retry.attempts times,
// each call bounded by reports.timeout, pausing with exponential backoff
// in between. A permanent error, or ctx done, ends it at once. It returns
// the number of calls.
func (s *Scheduler) retry(ctx context.Context, log *slog.Logger, f func(context.Context) error) (int, error) {
	backoff := s.cfg.Retry.Backoff
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		err := f(actx)
		cancel()
		if err == nil {
			return attempt, nil
		}
		var pe *permanentError
		if attempt >= s.cfg.Retry.Attempts || errors.As(err, &pe) || ctx.Err() != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%w (interrupted: %w)", err, context.Cause(ctx))
			}
			return attempt, err
		}
		s.metrics.retries.Inc()
		log.Warn("scheduled report attempt failed, trying again", "attempt", attempt, "in", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return attempt, fmt.Errorf("%w (interrupted: %w)", err, context.Cause(ctx))
		case <-t.C:
		}
		backoff = min(2*backoff, s.cfg.Retry.MaxBackoff)
	}
}

// Runs returns the latest recorded runs of every schedule, newest first
// (limit <= 0: 100), for the console and `flowbox report runs`.
func (s *Scheduler) Runs(ctx context.Context, limit int) ([]store.ReportRun, error) {
	if s.runs == nil {
		return nil, nil
	}
	runs, err := s.runs.ReportRuns(ctx, limit)
	if err != nil {
		return nil, fmt.Errorf("cannot read the report runs: %w", err)
	}
	return runs, nil
}

// Schedules describes the configured schedules, in configuration order:
// their next due run and their latest run (known once Run started).
func (s *Scheduler) Schedules() []ScheduleInfo {
	now := s.now()
	out := make([]ScheduleInfo, 0, len(s.schedules))
	for _, sc := range s.schedules {
		s.mu.Lock()
		done, last := sc.done, sc.lastRun
		s.mu.Unlock()
		next := lastClosed(sc.cfg.Every, sc.loc, s.cfg.Settle, now).next(sc.cfg.Every, sc.loc)
		if !done.IsZero() {
			next = periodAt(sc.cfg.Every, sc.loc, done)
		}
		info := ScheduleInfo{Name: sc.cfg.Name, Every: sc.cfg.Every, By: sc.kind, TimeZone: sc.loc.String(),
			NextPeriod: next.label, NextDue: next.to.Add(s.cfg.Settle)}
		for _, t := range sc.targets {
			info.Targets = append(info.Targets, t.name())
		}
		if last != nil {
			r := *last
			info.LastRun = &r
		}
		out = append(out, info)
	}
	return out
}
