// Package notify delivers flowbox's alert events to the operator's
// notification channels: a generic JSON webhook, Slack, Discord and
// Telegram messages, and e-mail over SMTP.
//
// The detector calls AlertChanged for every alert event. AlertChanged
// never blocks and never does I/O: it filters the event for each channel
// (the channel's events, min-severity and kinds) and puts it in that
// channel's bounded queue, or drops and counts it when the queue is full.
// Run starts one worker per channel, so a slow or dead channel delays only
// itself: neither detection nor the other channels wait for it.
//
// A worker takes the events in order and formats each into a message (a
// title, which is the e-mail subject, and a text with the evidence). It
// first asks the channel's token bucket (rate-limit: messages per
// duration, in bursts): an event over the limit is not sent but counted
// (RateLimited) and held back, and as soon as the bucket has a token again
// one summary message ("N more alert events were held back by the rate
// limit") goes instead of them. A failed delivery (network error, HTTP
// status other than 2xx, SMTP error) is tried again after an exponential
// backoff (retry: attempts, backoff, max-backoff; an HTTP 429 or 503
// answer's Retry-After is honoured within max-backoff), then dropped and
// counted. Permanent failures are not tried again: an HTTP 4xx other than
// 408, 425 and 429 (the request itself is wrong: a revoked webhook, an
// unknown chat) and an SMTP 5xx reply (a refused login, recipient or
// message). Every attempt is written to the AttemptLog (the store's
// notification log) and counted in Status.
//
// An alert whose opened event a channel filtered out (below its
// min-severity, or of another kind) but whose update later passes the
// filter (its severity rose, its kind was refined) is announced to that
// channel as opened then; its resolved event follows it even if its
// severity fell again.
//
// Secrets (passwords, bot tokens, header values, the tokens in Slack's and
// Discord's webhook URLs) never appear in the logs, the errors, Status or
// the notification log: errors name URLs by their scheme and host only,
// and every error text is scrubbed of the channel's secrets.
//
// Times (rate limits, backoffs, timestamps) come from Deps.Now and the
// time package's timers, so that tests run in a testing/synctest bubble.
// New only builds (it reads the password and token files); Run delivers.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowbox/flowbox/store"
)

// AttemptLog records notification attempts; the store's inventory
// implements it.
type AttemptLog interface {
	AddNotificationAttempt(ctx context.Context, n *store.NotificationAttempt) error
}

// Deps are the notifier's dependencies.
type Deps struct {
	// Logger receives the delivery failures (nil: discarded).
	Logger *slog.Logger
	// Log is the notification log (nil: not recorded).
	Log AttemptLog
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// HTTPClient sends the webhook requests (nil: a client with the
	// configured timeout).
	HTTPClient *http.Client
}

// logTimeout bounds the write of one attempt to the notification log.
const logTimeout = 5 * time.Second

// maxSeen bounds the alerts a channel remembers having announced.
const maxSeen = 10000

// Notifier delivers alert events to the configured channels. Its methods
// are safe for concurrent use.
type Notifier struct {
	cfg      Config
	logger   *slog.Logger
	log      AttemptLog
	now      func() time.Time
	channels []*channel
	byName   map[string]*channel
	running  atomic.Bool
}

// New builds a notifier from a configuration, which it validates, and
// reads the files it names (password-file, bot-token-file, ca-file). It
// starts nothing.
func New(cfg Config, deps Deps) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid notifications configuration: %w", err)
	}
	n := &Notifier{cfg: cfg, logger: deps.Logger, log: deps.Log, now: deps.Now, byName: map[string]*channel{}}
	if n.logger == nil {
		n.logger = slog.New(slog.DiscardHandler)
	}
	if n.now == nil {
		n.now = time.Now
	}
	client := deps.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: cfg.Timeout}
	}
	var errs []error
	for i, cc := range cfg.Channels {
		c, err := n.newChannel(cc, client)
		if err != nil {
			errs = append(errs, fmt.Errorf("channels[%d] (%s).%w", i, cc.Name, err))
			continue
		}
		n.channels = append(n.channels, c)
		n.byName[c.name] = c
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cannot build the notification channels: %w", err)
	}
	return n, nil
}

// readSecret returns a secret given inline or read from a file (its
// trailing line break removed).
func readSecret(key, inline, file string) (string, error) {
	if file == "" {
		return inline, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: cannot read it: %w", key, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s: %s is empty", key, file)
	}
	return s, nil
}

// newChannel builds one channel and its sender.
func (n *Notifier) newChannel(cc ChannelConfig, client *http.Client) (*channel, error) {
	c := &channel{
		n:       n,
		name:    cc.Name,
		typ:     cc.Type,
		minRank: severityRank(cc.MinSeverity),
		kinds:   map[string]bool{},
		events:  map[string]bool{},
		queue:   make(chan queued, n.cfg.QueueSize),
		seen:    map[alertKey]struct{}{},
		bucket:  newBucket(n.cfg.RateLimit),
	}
	if cc.MinSeverity == "" {
		c.minRank = severityRank(store.SeverityWarning)
	}
	for _, k := range cc.Kinds {
		c.kinds[k] = true
	}
	events := cc.Events
	if len(events) == 0 {
		events = defaultEvents
	}
	for _, e := range events {
		c.events[e] = true
	}
	c.addSecret(cc.URL)
	for _, v := range cc.Headers {
		c.addSecret(v)
	}
	switch cc.Type {
	case TypeWebhook:
		c.sender = &httpSender{client: client, typ: cc.Type, url: cc.URL, headers: cc.Headers, encode: webhookBody(cc.Name)}
	case TypeSlack:
		c.sender = &httpSender{client: client, typ: cc.Type, url: cc.URL, headers: cc.Headers, encode: slackBody}
	case TypeDiscord:
		c.sender = &httpSender{client: client, typ: cc.Type, url: cc.URL, headers: cc.Headers, encode: discordBody}
	case TypeTelegram:
		token, err := readSecret("bot-token-file", cc.BotToken, cc.BotTokenFile)
		if err != nil {
			return nil, err
		}
		c.addSecret(token)
		api := cc.APIURL
		if api == "" {
			api = DefaultTelegramAPI
		}
		u := strings.TrimRight(api, "/") + "/bot" + token + "/sendMessage"
		c.addSecret(u)
		c.sender = &httpSender{client: client, typ: cc.Type, url: u, encode: telegramBody(cc.ChatID)}
	case TypeEmail:
		password, err := readSecret("password-file", cc.Password, cc.PasswordFile)
		if err != nil {
			return nil, err
		}
		c.addSecret(password)
		s, err := newSMTPSender(cc, password, n.cfg.Timeout, n.now)
		if err != nil {
			return nil, err
		}
		c.sender = s
	default:
		return nil, fmt.Errorf("type: %q is not a channel type", cc.Type) // Validate caught it
	}
	// The longest first, so that a URL goes before its path.
	slices.SortFunc(c.secrets, func(a, b string) int { return len(b) - len(a) })
	return c, nil
}

// AlertChanged learns an alert event. It never blocks: the event goes into
// the queue of each channel that wants it, or is dropped and counted when
// that queue is full.
func (n *Notifier) AlertChanged(ev store.AlertEvent) {
	var a *store.Alert // copied once, shared read-only by the channels
	for _, c := range n.channels {
		event, ok := c.accept(ev)
		if !ok {
			continue
		}
		if a == nil {
			a = cloneAlert(ev.Alert)
		}
		select {
		case c.queue <- queued{event: event, alert: a}:
		default:
			c.droppedFull(event, a)
		}
	}
}

// Run delivers the queued messages, one worker per channel, until ctx is
// done; then it returns nil, leaving what is still queued undelivered.
func (n *Notifier) Run(ctx context.Context) error {
	if !n.running.CompareAndSwap(false, true) {
		return errors.New("notifier is already running")
	}
	defer n.running.Store(false)
	var wg sync.WaitGroup
	for _, c := range n.channels {
		wg.Go(func() { c.run(ctx) })
	}
	<-ctx.Done()
	wg.Wait()
	return nil
}

// SendTest sends a test message on one channel now, once (no queue, no
// rate limit, no retry), and returns its failure. The attempt is counted
// and logged like the others.
func (n *Notifier) SendTest(ctx context.Context, channel string) error {
	c := n.byName[channel]
	if c == nil {
		names := make([]string, len(n.channels))
		for i, c := range n.channels {
			names[i] = c.name
		}
		if len(names) == 0 {
			return fmt.Errorf("unknown notification channel %q: no channel is configured (notifications.channels)", channel)
		}
		return fmt.Errorf("unknown notification channel %q (configured: %s)", channel, strings.Join(names, ", "))
	}
	if err := c.attempt(ctx, testMessage(c.name, c.typ, n.now()), 1); err != nil {
		return fmt.Errorf("cannot send a test message on channel %q: %w", channel, err)
	}
	return nil
}

// Status returns each channel's counters, in the configuration's order.
func (n *Notifier) Status() []store.NotificationChannelStatus {
	out := make([]store.NotificationChannelStatus, 0, len(n.channels))
	for _, c := range n.channels {
		out = append(out, c.status())
	}
	return out
}

// cloneAlert copies an alert deeply enough that the detector may change
// its own copy while the workers format this one.
func cloneAlert(a store.Alert) *store.Alert {
	c := a
	c.Evidence.TopSources = slices.Clone(a.Evidence.TopSources)
	c.Evidence.TopPorts = slices.Clone(a.Evidence.TopPorts)
	if a.Evidence.Measures != nil {
		c.Evidence.Measures = make(map[string]float64, len(a.Evidence.Measures))
		for k, v := range a.Evidence.Measures {
			c.Evidence.Measures[k] = v
		}
	}
	if a.Ended != nil {
		t := *a.Ended
		c.Ended = &t
	}
	if a.AckedAt != nil {
		t := *a.AckedAt
		c.AckedAt = &t
	}
	return &c
}

// secretParts returns the parts of a URL that may hold a token: the
// whole, its path, its query and its password.
func secretParts(raw string) []string {
	out := []string{raw}
	u, err := url.Parse(raw)
	if err != nil {
		return out
	}
	if len(u.Path) > 1 {
		out = append(out, u.Path)
	}
	if u.RawQuery != "" {
		out = append(out, u.RawQuery)
	}
	if p, ok := u.User.Password(); ok {
		out = append(out, p)
	}
	return out
}
