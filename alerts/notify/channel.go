package notify

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/flowbox/flowbox/store"
)

// queued is one alert event waiting in a channel's queue.
type queued struct {
	event string
	alert *store.Alert
}

// alertKey identifies an alert even when the store could not give it an
// ID.
type alertKey struct {
	id             int64
	router, target string
	started        int64
}

func keyOf(a *store.Alert) alertKey {
	return alertKey{id: a.ID, router: a.Router, target: a.Target, started: a.Started.UnixNano()}
}

// channel is one configured channel: its filter, its queue, its worker's
// state and its counters.
type channel struct {
	n       *Notifier
	name    string
	typ     string
	sender  sender
	secrets []string
	minRank int
	kinds   map[string]bool
	events  map[string]bool
	queue   chan queued
	// bucket is the rate limit; only the worker uses it.
	bucket *bucket

	mu sync.Mutex
	// seen are the alerts announced to this channel (bounded by
	// maxSeen), so that an escalation is announced once and a resolution
	// follows its announcement.
	seen     map[alertKey]struct{}
	st       store.NotificationChannelStatus
	inflight int
	// lastDropLog rate-limits the log of full-queue drops to one a
	// minute; dropsSince counts the drops since.
	lastDropLog time.Time
	dropsSince  int
}

// addSecret records a secret to scrub from error texts; a URL adds the
// parts that may hold its token.
func (c *channel) addSecret(s string) {
	parts := []string{s}
	if strings.Contains(s, "://") {
		parts = secretParts(s)
	}
	for _, p := range parts {
		if len(p) >= 4 {
			c.secrets = append(c.secrets, p)
		}
	}
}

// redact scrubs the channel's secrets from a text.
func (c *channel) redact(s string) string {
	for _, sec := range c.secrets {
		s = strings.ReplaceAll(s, sec, redacted)
	}
	return s
}

// accept filters an alert event for this channel and returns the event to
// announce: an update of an alert not announced yet is announced as
// opened.
func (c *channel) accept(ev store.AlertEvent) (string, bool) {
	a := &ev.Alert
	passes := severityRank(a.Severity) >= c.minRank && (len(c.kinds) == 0 || c.kinds[a.Kind])
	key := keyOf(a)
	c.mu.Lock()
	defer c.mu.Unlock()
	_, announced := c.seen[key]
	switch ev.Type {
	case store.AlertOpened:
		if !passes {
			return "", false
		}
		c.remember(key)
		return string(store.AlertOpened), c.events[string(store.AlertOpened)]
	case store.AlertUpdated:
		if !passes {
			return "", false
		}
		if !announced {
			c.remember(key)
			if c.events[string(store.AlertOpened)] {
				return string(store.AlertOpened), true
			}
		}
		return string(store.AlertUpdated), c.events[string(store.AlertUpdated)]
	case store.AlertResolved:
		delete(c.seen, key)
		if !passes && !announced {
			return "", false
		}
		return string(store.AlertResolved), c.events[string(store.AlertResolved)]
	}
	return "", false
}

// remember records an announced alert, forgetting another one when the
// set is full. Called with mu held.
func (c *channel) remember(k alertKey) {
	if len(c.seen) >= maxSeen {
		for old := range c.seen {
			delete(c.seen, old)
			break
		}
	}
	c.seen[k] = struct{}{}
}

// droppedFull counts an alert event its full queue refused, and logs it
// at most once a minute.
func (c *channel) droppedFull(event string, a *store.Alert) {
	now := c.n.now()
	c.mu.Lock()
	c.st.Dropped++
	c.dropsSince++
	var n int
	if c.lastDropLog.IsZero() || now.Sub(c.lastDropLog) >= time.Minute || now.Before(c.lastDropLog) {
		n, c.dropsSince, c.lastDropLog = c.dropsSince, 0, now
	}
	c.mu.Unlock()
	if n > 0 {
		c.n.logger.Warn("notification queue full, alert events dropped", "channel", c.name, "type", c.typ,
			"dropped", n, "event", event, "alert", a.ID, "queue_size", cap(c.queue))
	}
}

// status returns the channel's counters.
func (c *channel) status() store.NotificationChannelStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st
	st.Name, st.Type = c.name, c.typ
	st.Queued = len(c.queue) + c.inflight
	if st.LastSent != nil {
		t := *st.LastSent
		st.LastSent = &t
	}
	if st.LastErrorAt != nil {
		t := *st.LastErrorAt
		st.LastErrorAt = &t
	}
	return st
}

// run is the channel's worker: it takes the queued events in order,
// applies the rate limit (holding back what is over it, then sending the
// summary as soon as a token is there) and delivers with retries.
func (c *channel) run(ctx context.Context) {
	var (
		held      int
		heldLines []string
	)
	sendSummary := func() {
		c.deliver(ctx, summaryMessage(c.name, c.n.cfg.RateLimit, held, heldLines))
		held, heldLines = 0, nil
	}
	for {
		var (
			timer *time.Timer
			wake  <-chan time.Time
		)
		if held > 0 {
			timer = time.NewTimer(c.bucket.wait(c.n.now()))
			wake = timer.C
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			if left := len(c.queue) + held; left > 0 {
				c.n.logger.Info("notifications not delivered at shutdown", "channel", c.name, "queued", len(c.queue), "held_back", held)
			}
			return
		case q := <-c.queue:
			if timer != nil {
				timer.Stop()
			}
			c.setInflight(1)
			if held > 0 && c.bucket.take(c.n.now()) {
				sendSummary()
			}
			if held == 0 && c.bucket.take(c.n.now()) {
				c.deliver(ctx, alertMessage(q.event, q.alert))
			} else {
				held++
				if len(heldLines) < maxHeldLines {
					heldLines = append(heldLines, heldLine(q.event, q.alert))
				}
				c.mu.Lock()
				c.st.RateLimited++
				c.mu.Unlock()
			}
			c.setInflight(0)
		case <-wake:
			if c.bucket.take(c.n.now()) {
				c.setInflight(1)
				sendSummary()
				c.setInflight(0)
			}
		}
	}
}

func (c *channel) setInflight(n int) {
	c.mu.Lock()
	c.inflight = n
	c.mu.Unlock()
}

// backoff is the pause after the attempt-th failed attempt.
func (c *channel) backoff(attempt int) time.Duration {
	r := c.n.cfg.Retry
	d := r.Backoff
	for i := 1; i < attempt && d < r.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, r.MaxBackoff)
}

// deliver sends a message, trying again after failures up to the
// configured attempts; then it drops and counts it.
func (c *channel) deliver(ctx context.Context, m *message) {
	attempts := c.n.cfg.Retry.Attempts
	for attempt := 1; ; attempt++ {
		err := c.attempt(ctx, m, attempt)
		if err == nil || ctx.Err() != nil {
			return
		}
		var de *deliveryError
		errors.As(err, &de)
		if (de != nil && de.permanent) || attempt >= attempts {
			c.mu.Lock()
			c.st.Dropped++
			c.mu.Unlock()
			reason := "attempts exhausted"
			if attempt < attempts {
				reason = "permanent failure"
			}
			c.n.logger.Warn("notification dropped", "channel", c.name, "type", c.typ, "event", m.event,
				"alert", m.alertID(), "attempts", attempt, "reason", reason, "error", err.Error())
			return
		}
		wait := c.backoff(attempt)
		if de != nil && de.retryAfter > wait {
			wait = min(de.retryAfter, c.n.cfg.Retry.MaxBackoff)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// attempt makes one delivery attempt, counts it, logs a failure and
// records it in the notification log. Its error is scrubbed of secrets.
func (c *channel) attempt(ctx context.Context, m *message, n int) error {
	actx, cancel := context.WithTimeout(ctx, c.n.cfg.Timeout)
	err := c.sender.send(actx, m)
	cancel()
	at := c.n.now()
	rec := &store.NotificationAttempt{At: at, AlertID: m.alertID(), Channel: c.name, Event: m.event, Attempt: n, OK: err == nil}
	var out error
	if err != nil {
		rec.Error = c.redact(err.Error())
		scrubbed := &deliveryError{err: errors.New(rec.Error)}
		var de *deliveryError
		if errors.As(err, &de) {
			scrubbed.permanent, scrubbed.retryAfter = de.permanent, de.retryAfter
		}
		out = scrubbed
	}
	c.mu.Lock()
	if err == nil {
		c.st.Sent++
		c.st.LastSent = &at
	} else {
		c.st.Failed++
		c.st.LastError = rec.Error
		c.st.LastErrorAt = &at
	}
	c.mu.Unlock()
	if err != nil {
		c.n.logger.Warn("cannot deliver notification", "channel", c.name, "type", c.typ, "event", m.event,
			"alert", m.alertID(), "attempt", n, "error", rec.Error)
	}
	if c.n.log != nil {
		lctx, lcancel := context.WithTimeout(context.WithoutCancel(ctx), logTimeout)
		if lerr := c.n.log.AddNotificationAttempt(lctx, rec); lerr != nil {
			c.n.logger.Warn("cannot record notification attempt", "channel", c.name, "error", c.redact(lerr.Error()))
		}
		lcancel()
	}
	return out
}

// bucket is a token bucket on the injected clock, in integer nanoseconds:
// each message costs interval of credit, credit accrues with time up to
// size messages' worth. A nil bucket (rate limit off) always has a token.
type bucket struct {
	interval time.Duration
	capacity time.Duration
	credit   time.Duration
	last     time.Time
}

// newBucket returns the bucket of a rate limit, full; nil when the limit
// is off.
func newBucket(rl RateLimitConfig) *bucket {
	if rl.Messages <= 0 {
		return nil
	}
	iv := max(rl.Per/time.Duration(rl.Messages), 1)
	return &bucket{interval: iv, capacity: iv * time.Duration(rl.Messages), credit: iv * time.Duration(rl.Messages)}
}

// refill adds the credit earned since the last call (none when the clock
// went back).
func (b *bucket) refill(now time.Time) {
	if !b.last.IsZero() && now.After(b.last) {
		b.credit = min(b.credit+now.Sub(b.last), b.capacity)
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
}

// take spends a token if there is one.
func (b *bucket) take(now time.Time) bool {
	if b == nil {
		return true
	}
	b.refill(now)
	if b.credit < b.interval {
		return false
	}
	b.credit -= b.interval
	return true
}

// wait returns how long until a token is there.
func (b *bucket) wait(now time.Time) time.Duration {
	if b == nil {
		return 0
	}
	b.refill(now)
	return max(b.interval-b.credit, 0)
}
