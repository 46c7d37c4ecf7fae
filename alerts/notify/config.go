package notify

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/flowbox/flowbox/internal/smtpmail"
	"github.com/flowbox/flowbox/store"
)

// Channel types (ChannelConfig.Type).
const (
	TypeWebhook  = "webhook"
	TypeSlack    = "slack"
	TypeDiscord  = "discord"
	TypeTelegram = "telegram"
	TypeEmail    = "email"
)

// types lists the channel types, in the order the errors name them.
var types = []string{TypeWebhook, TypeSlack, TypeDiscord, TypeTelegram, TypeEmail}

// STARTTLS modes of an e-mail channel (ChannelConfig.StartTLS).
const (
	// StartTLSRequired refuses to send when the server does not offer
	// STARTTLS (the default).
	StartTLSRequired = smtpmail.StartTLSRequired
	// StartTLSOpportunistic uses STARTTLS when the server offers it.
	StartTLSOpportunistic = smtpmail.StartTLSOpportunistic
	// StartTLSNone never uses STARTTLS (a relay on the same host).
	StartTLSNone = smtpmail.StartTLSNone
)

// DefaultTelegramAPI is the Telegram Bot API's base URL.
const DefaultTelegramAPI = "https://api.telegram.org"

// redacted replaces a secret in Redacted's copy.
const redacted = "<redacted>"

// Config configures the alert notifications. It is the `notifications:`
// section of flowbox.yaml.
type Config struct {
	// QueueSize bounds each channel's queue of messages waiting for
	// delivery; an alert event that finds its channel's queue full is
	// dropped and counted.
	QueueSize int `yaml:"queue-size"`
	// Timeout bounds one delivery attempt (an HTTP request, an SMTP
	// session).
	Timeout time.Duration `yaml:"timeout"`
	// RateLimit bounds the messages per channel.
	RateLimit RateLimitConfig `yaml:"rate-limit"`
	// Retry says how failed deliveries are tried again.
	Retry RetryConfig `yaml:"retry"`
	// Channels are where messages go; none by default.
	Channels []ChannelConfig `yaml:"channels"`
}

// RateLimitConfig is a token bucket per channel: Messages per Per, in
// bursts of up to Messages. Alert events over the limit are held back and
// announced by one summary message when the bucket refills.
type RateLimitConfig struct {
	// Messages is the bucket's size; 0 turns the limit off.
	Messages int `yaml:"messages"`
	// Per is the time the bucket takes to refill completely.
	Per time.Duration `yaml:"per"`
}

// RetryConfig says how a failed delivery is tried again: up to Attempts
// attempts in all, pausing Backoff after the first failure, doubled after
// each next one, up to MaxBackoff.
type RetryConfig struct {
	Attempts   int           `yaml:"attempts"`
	Backoff    time.Duration `yaml:"backoff"`
	MaxBackoff time.Duration `yaml:"max-backoff"`
}

// ChannelConfig is one notification channel. Which keys apply depends on
// Type: url and headers for webhook, slack and discord; bot-token (or
// bot-token-file), chat-id and api-url for telegram; smtp, username,
// password (or password-file), from, to, starttls, tls and ca-file for
// email. min-severity, kinds and events filter the alert events of every
// type.
type ChannelConfig struct {
	// Name identifies the channel in the console, the logs and the
	// notification log.
	Name string `yaml:"name"`
	// Type is webhook, slack, discord, telegram or email.
	Type string `yaml:"type"`
	// URL is where webhook, slack and discord channels POST. Slack's and
	// Discord's URLs hold a token: they are secrets.
	URL string `yaml:"url,omitempty"`
	// Headers are added to the webhook requests (e.g. Authorization);
	// their values are secrets.
	Headers map[string]string `yaml:"headers,omitempty"`
	// BotToken is the Telegram bot's token; BotTokenFile reads it from a
	// file instead.
	BotToken     string `yaml:"bot-token,omitempty"`
	BotTokenFile string `yaml:"bot-token-file,omitempty"`
	// ChatID is the Telegram chat (a number, or "@channelname").
	ChatID string `yaml:"chat-id,omitempty"`
	// APIURL is the Telegram Bot API's base URL ("" means
	// https://api.telegram.org).
	APIURL string `yaml:"api-url,omitempty"`
	// SMTP is the mail server's host:port.
	SMTP string `yaml:"smtp,omitempty"`
	// Username turns on SMTP authentication (PLAIN, only over TLS or to
	// localhost); Password or PasswordFile gives its password.
	Username     string `yaml:"username,omitempty"`
	Password     string `yaml:"password,omitempty"`
	PasswordFile string `yaml:"password-file,omitempty"`
	// From and To are the message's sender and recipients.
	From string   `yaml:"from,omitempty"`
	To   []string `yaml:"to,omitempty"`
	// StartTLS is required ("" too), opportunistic or none.
	StartTLS string `yaml:"starttls,omitempty"`
	// TLS connects with TLS from the start (implicit TLS, port 465)
	// instead of STARTTLS.
	TLS bool `yaml:"tls,omitempty"`
	// CAFile is a PEM bundle of the certificate authorities to trust for
	// the mail server instead of the system's.
	CAFile string `yaml:"ca-file,omitempty"`
	// MinSeverity is the least severity sent: info, warning ("", the
	// default) or critical.
	MinSeverity string `yaml:"min-severity,omitempty"`
	// Kinds keeps only these alert kinds (empty: all).
	Kinds []string `yaml:"kinds,omitempty"`
	// Events are the alert events sent: opened, updated, resolved (empty:
	// opened and resolved).
	Events []string `yaml:"events,omitempty"`
}

// DefaultConfig returns the notification defaults: no channel.
func DefaultConfig() Config {
	return Config{
		QueueSize: 1000,
		Timeout:   10 * time.Second,
		RateLimit: RateLimitConfig{Messages: 10, Per: time.Minute},
		Retry:     RetryConfig{Attempts: 5, Backoff: 5 * time.Second, MaxBackoff: 5 * time.Minute},
	}
}

// defaultEvents are the events a channel sends when it lists none.
var defaultEvents = []string{string(store.AlertOpened), string(store.AlertResolved)}

// severityRank orders the severities; an unknown severity ranks as
// critical, so that it is never filtered out.
func severityRank(s string) int {
	switch s {
	case store.SeverityInfo:
		return 0
	case store.SeverityWarning:
		return 1
	}
	return 2
}

var channelName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate returns every problem of the configuration, each naming its key
// (channels are named by their index and name). Files (password-file,
// bot-token-file, ca-file) are read by New.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.QueueSize < 1 || c.QueueSize > 1_000_000 {
		add("queue-size: must be within 1..1000000")
	}
	if c.Timeout <= 0 {
		add("timeout: must be positive")
	}
	if c.RateLimit.Messages < 0 {
		add("rate-limit.messages: must not be negative (0 turns the limit off)")
	}
	if c.RateLimit.Messages > 0 && c.RateLimit.Per <= 0 {
		add("rate-limit.per: must be positive")
	}
	if c.Retry.Attempts < 1 || c.Retry.Attempts > 20 {
		add("retry.attempts: must be within 1..20")
	}
	if c.Retry.Backoff <= 0 {
		add("retry.backoff: must be positive")
	}
	if c.Retry.MaxBackoff < c.Retry.Backoff {
		add("retry.max-backoff: must be at least retry.backoff")
	}
	seen := map[string]bool{}
	for i, ch := range c.Channels {
		key := fmt.Sprintf("channels[%d]", i)
		if ch.Name != "" {
			key = fmt.Sprintf("channels[%d] (%s)", i, ch.Name)
		}
		if !channelName.MatchString(ch.Name) {
			add("%s.name: %q must be 1 to 64 letters, digits, '.', '_' or '-'", key, ch.Name)
		} else if seen[ch.Name] {
			add("%s.name: %q is used by another channel", key, ch.Name)
		}
		seen[ch.Name] = true
		errs = append(errs, ch.validate(key)...)
	}
	return errors.Join(errs...)
}

// validate returns the problems of one channel, each prefixed with key.
func (ch ChannelConfig) validate(key string) []error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(key+"."+format, args...))
	}
	unused := func(name string, set bool) {
		if set {
			add("%s: not used by a %s channel", name, ch.Type)
		}
	}
	switch ch.Type {
	case TypeWebhook, TypeSlack, TypeDiscord:
		if ch.URL == "" {
			add("url: required for a %s channel", ch.Type)
		} else if err := checkHTTPURL(ch.URL); err != nil {
			add("url: %v", err)
		}
		for h := range ch.Headers {
			if h == "" || strings.ContainsAny(h, " :\r\n") {
				add("headers: %q is not a header name", h)
			}
		}
		unused("bot-token", ch.BotToken != "" || ch.BotTokenFile != "")
		unused("chat-id", ch.ChatID != "")
		unused("api-url", ch.APIURL != "")
		ch.unusedEmail(unused)
	case TypeTelegram:
		switch {
		case ch.BotToken == "" && ch.BotTokenFile == "":
			add("bot-token: required for a telegram channel (or bot-token-file)")
		case ch.BotToken != "" && ch.BotTokenFile != "":
			add("bot-token-file: cannot be combined with bot-token")
		case ch.BotToken != "" && strings.ContainsAny(ch.BotToken, "/?# \r\n"):
			add("bot-token: is not a Telegram bot token")
		}
		if ch.ChatID == "" {
			add("chat-id: required for a telegram channel")
		}
		if ch.APIURL != "" {
			if err := checkHTTPURL(ch.APIURL); err != nil {
				add("api-url: %v", err)
			}
		}
		unused("url", ch.URL != "")
		unused("headers", len(ch.Headers) > 0)
		ch.unusedEmail(unused)
	case TypeEmail:
		ch.validateEmail(add)
		unused("url", ch.URL != "")
		unused("headers", len(ch.Headers) > 0)
		unused("bot-token", ch.BotToken != "" || ch.BotTokenFile != "")
		unused("chat-id", ch.ChatID != "")
		unused("api-url", ch.APIURL != "")
	case "":
		add("type: required (one of %s)", strings.Join(types, ", "))
	default:
		add("type: %q is not one of %s", ch.Type, strings.Join(types, ", "))
	}
	if ch.MinSeverity != "" && !slices.Contains([]string{store.SeverityInfo, store.SeverityWarning, store.SeverityCritical}, ch.MinSeverity) {
		add("min-severity: %q is not one of info, warning, critical", ch.MinSeverity)
	}
	for _, k := range ch.Kinds {
		if !slices.Contains(store.AlertKinds, k) {
			add("kinds: %q is not an alert kind (%s)", k, strings.Join(store.AlertKinds, ", "))
		}
	}
	for _, e := range ch.Events {
		switch store.AlertEventType(e) {
		case store.AlertOpened, store.AlertUpdated, store.AlertResolved:
		default:
			add("events: %q is not one of opened, updated, resolved", e)
		}
	}
	return errs
}

// unusedEmail reports the e-mail keys set on a channel of another type.
func (ch ChannelConfig) unusedEmail(unused func(string, bool)) {
	unused("smtp", ch.SMTP != "")
	unused("username", ch.Username != "")
	unused("password", ch.Password != "" || ch.PasswordFile != "")
	unused("from", ch.From != "")
	unused("to", len(ch.To) > 0)
	unused("starttls", ch.StartTLS != "")
	unused("tls", ch.TLS)
	unused("ca-file", ch.CAFile != "")
}

// validateEmail checks the keys of an e-mail channel.
func (ch ChannelConfig) validateEmail(add func(string, ...any)) {
	if ch.SMTP == "" {
		add("smtp: required for an email channel (host:port)")
	} else if host, port, err := net.SplitHostPort(ch.SMTP); err != nil || host == "" || port == "" {
		add("smtp: %q is not a host:port address", ch.SMTP)
	}
	if ch.From == "" {
		add("from: required for an email channel")
	} else if _, err := mail.ParseAddress(ch.From); err != nil {
		add("from: %q is not an e-mail address: %v", ch.From, err)
	}
	if len(ch.To) == 0 {
		add("to: required for an email channel (a list of addresses)")
	}
	for _, to := range ch.To {
		if _, err := mail.ParseAddress(to); err != nil {
			add("to: %q is not an e-mail address: %v", to, err)
		}
	}
	switch ch.StartTLS {
	case "", StartTLSRequired, StartTLSOpportunistic, StartTLSNone:
	default:
		add("starttls: %q is not one of required, opportunistic, none", ch.StartTLS)
	}
	if ch.TLS && ch.StartTLS != "" && ch.StartTLS != StartTLSRequired {
		add("starttls: %q cannot be combined with tls (implicit TLS is always encrypted)", ch.StartTLS)
	}
	if ch.Password != "" && ch.PasswordFile != "" {
		add("password-file: cannot be combined with password")
	}
	if ch.Username == "" && (ch.Password != "" || ch.PasswordFile != "") {
		add("username: required with a password")
	}
}

// checkHTTPURL checks an http(s) URL without repeating it (it may hold a
// token).
func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("is not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("must be an http:// or https:// URL")
	}
	if u.Host == "" {
		return errors.New("has no host")
	}
	return nil
}

// Redacted returns a copy with the secrets replaced (passwords, bot
// tokens, header values, and the path and query of URLs, which hold the
// tokens of Slack and Discord), for `flowbox check --dump`.
func (c Config) Redacted() Config {
	c.Channels = slices.Clone(c.Channels)
	for i := range c.Channels {
		ch := &c.Channels[i]
		ch.URL = redactURL(ch.URL)
		if ch.Headers != nil {
			h := make(map[string]string, len(ch.Headers))
			for k := range ch.Headers {
				h[k] = redacted
			}
			ch.Headers = h
		}
		if ch.BotToken != "" {
			ch.BotToken = redacted
		}
		if ch.Password != "" {
			ch.Password = redacted
		}
	}
	return c
}

// redactURL keeps a URL's scheme and host and replaces the rest.
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return redacted
	}
	if u.Path == "" && u.RawQuery == "" && u.User == nil {
		return u.Scheme + "://" + u.Host
	}
	return u.Scheme + "://" + u.Host + "/" + redacted
}
