package scheduler

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Schedule periods (ScheduleConfig.Every).
const (
	// EveryMonth is a calendar month in the schedule's time zone.
	EveryMonth = "month"
	// EveryWeek is a week from Monday 00:00 to the next Monday 00:00 in
	// the schedule's time zone.
	EveryWeek = "week"
)

// Webhook body formats (WebhookConfig.Format).
const (
	// FormatJSON posts the run's description and the whole report as JSON.
	FormatJSON = "json"
	// FormatCSV posts the report's CSV (store.WriteReportCSV).
	FormatCSV = "csv"
)

// Config configures the scheduled reports. It is the `reports:` section
// of flowbox.yaml.
type Config struct {
	// TimeZone is the zone whose calendar periods the schedules report
	// ("Local": the machine's; an IANA name such as Europe/Berlin). A
	// schedule may set its own.
	TimeZone string `yaml:"time-zone"`
	// Folder is where the schedules without a folder of their own write
	// their CSV files ("": those schedules write no file).
	Folder string `yaml:"folder"`
	// Settle is how long after a period closes its report is made, so
	// that the last flows and rollups are in.
	Settle time.Duration `yaml:"settle"`
	// CatchUp is how many of a schedule's last closed periods are looked
	// at when flowbox starts: those missed while it was not running are
	// run then; older ones are skipped (logged and counted).
	CatchUp int `yaml:"catch-up"`
	// Timeout bounds one delivery attempt (an SMTP session, an HTTP
	// request) and the making of one report.
	Timeout time.Duration `yaml:"timeout"`
	// Retry says how a failed delivery (or report) is tried again.
	Retry RetryConfig `yaml:"retry"`
	// SMTP is the mail server of the schedules that mail their report.
	SMTP SMTPConfig `yaml:"smtp"`
	// Webhook holds defaults (format, secret-file) for the schedules'
	// webhooks.
	Webhook WebhookConfig `yaml:"webhook"`
	// Schedules are the scheduled reports; none by default.
	Schedules []ScheduleConfig `yaml:"schedules"`
}

// RetryConfig says how a failed delivery is tried again: up to Attempts
// attempts in all, pausing Backoff after the first failure, doubled after
// each next one, up to MaxBackoff.
type RetryConfig struct {
	Attempts   int           `yaml:"attempts"`
	Backoff    time.Duration `yaml:"backoff"`
	MaxBackoff time.Duration `yaml:"max-backoff"`
}

// SMTPConfig is the mail server reports are sent through.
type SMTPConfig struct {
	// Host and Port are the server's address (Port 587 by default).
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// Username turns on authentication (AUTH PLAIN); PasswordFile holds
	// its password (read when flowbox starts).
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password-file"`
	// From is the messages' sender.
	From string `yaml:"from"`
	// CAFile is a PEM bundle of the certificate authorities trusted for
	// the server instead of the system's.
	CAFile string `yaml:"ca-file"`
	// Insecure allows a relay without STARTTLS (a relay on the same host):
	// STARTTLS is then used when offered but its certificate is not
	// checked, and the session is plain when it is not offered. Without
	// it STARTTLS is required and its certificate checked.
	Insecure bool `yaml:"insecure"`
}

// WebhookConfig is where and how a report is posted.
type WebhookConfig struct {
	// URL receives an HTTP POST of the report (http or https).
	URL string `yaml:"url"`
	// Format is json (the default) or csv.
	Format string `yaml:"format"`
	// SecretFile holds a secret: each request then carries
	// X-Flowbox-Signature: sha256=<hex HMAC-SHA256 of the body>.
	SecretFile string `yaml:"secret-file"`
}

// ScheduleConfig is one scheduled report.
type ScheduleConfig struct {
	// Name names the schedule in the runs, the logs and the file names.
	Name string `yaml:"name"`
	// Every is month or week (weeks start on Monday).
	Every string `yaml:"every"`
	// By is what a row is about: subscriber (the default), router,
	// interface or fleet.
	By string `yaml:"by"`
	// Percentile is the billing percentile (0: 95).
	Percentile float64 `yaml:"percentile"`
	// TopApps is how many applications each row lists (0..10).
	TopApps int `yaml:"top-apps"`
	// Routers keeps the rows of these routers (by name); empty keeps all.
	Routers []string `yaml:"routers"`
	// TimeZone overrides reports.time-zone.
	TimeZone string `yaml:"time-zone"`
	// Folder overrides reports.folder.
	Folder string `yaml:"folder"`
	// MailTo are the recipients of the report (needs reports.smtp).
	MailTo []string `yaml:"mail-to"`
	// Webhook posts the report; format and secret-file default to
	// reports.webhook's.
	Webhook WebhookConfig `yaml:"webhook"`
}

// DefaultConfig returns the defaults: no schedule, the machine's time
// zone, a 15-minute settle delay, the last 3 periods caught up.
func DefaultConfig() Config {
	return Config{
		TimeZone: "Local",
		Settle:   15 * time.Minute,
		CatchUp:  3,
		Timeout:  2 * time.Minute,
		Retry:    RetryConfig{Attempts: 4, Backoff: time.Minute, MaxBackoff: 15 * time.Minute},
		SMTP:     SMTPConfig{Port: 587},
		Webhook:  WebhookConfig{Format: FormatJSON},
	}
}

// Limits of the configuration.
const (
	maxCatchUp   = 12
	maxAttempts  = 10
	maxSchedules = 100
	maxSettle    = 24 * time.Hour
)

var scheduleName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate returns every problem of the configuration, each naming its key
// (schedules by index and name). Files (password-file, secret-file,
// ca-file) are read by New.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, err := loadZone(c.TimeZone); err != nil {
		add("time-zone: %v", err)
	}
	if c.Settle < 0 || c.Settle > maxSettle {
		add("settle: must be within 0s..24h")
	}
	if c.CatchUp < 0 || c.CatchUp > maxCatchUp {
		add("catch-up: must be within 0..%d", maxCatchUp)
	}
	if c.Timeout <= 0 {
		add("timeout: must be positive")
	}
	if c.Retry.Attempts < 1 || c.Retry.Attempts > maxAttempts {
		add("retry.attempts: must be within 1..%d", maxAttempts)
	}
	if c.Retry.Backoff <= 0 {
		add("retry.backoff: must be positive")
	}
	if c.Retry.MaxBackoff < c.Retry.Backoff {
		add("retry.max-backoff: must be at least retry.backoff")
	}
	smtpSet := c.SMTP.Host != ""
	if smtpSet {
		if c.SMTP.Port < 1 || c.SMTP.Port > 65535 {
			add("smtp.port: must be within 1..65535")
		}
		if c.SMTP.From == "" {
			add("smtp.from: must be set (the sender of the reports)")
		} else if _, err := mail.ParseAddress(c.SMTP.From); err != nil {
			add("smtp.from: %q is not an e-mail address", c.SMTP.From)
		}
		if c.SMTP.Username != "" && c.SMTP.PasswordFile == "" {
			add("smtp.password-file: must be set when smtp.username is")
		}
	} else if c.SMTP.Username != "" || c.SMTP.PasswordFile != "" || c.SMTP.From != "" {
		add("smtp.host: must be set when other smtp keys are")
	}
	if err := validFormat(c.Webhook.Format); err != nil {
		add("webhook.format: %v", err)
	}
	if c.Webhook.URL != "" {
		add("webhook.url: set the url of each schedule (reports.webhook holds only defaults: format, secret-file)")
	}
	if len(c.Schedules) > maxSchedules {
		add("schedules: at most %d", maxSchedules)
	}
	seen := map[string]bool{}
	for i, s := range c.Schedules {
		key := fmt.Sprintf("schedules[%d]", i)
		if s.Name != "" {
			key = fmt.Sprintf("schedules[%d] (%s)", i, s.Name)
		}
		switch {
		case !scheduleName.MatchString(s.Name):
			add("%s.name: %q must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", key, s.Name)
		case seen[s.Name]:
			add("%s.name: %q is the name of another schedule", key, s.Name)
		}
		seen[s.Name] = true
		if s.Every != EveryMonth && s.Every != EveryWeek {
			add("%s.every: %q is not one of month, week", key, s.Every)
		}
		switch s.By {
		case "", store.ReportBySubscriber, store.ReportByRouter, store.ReportByInterface, store.ReportByFleet:
		default:
			add("%s.by: %q is not one of subscriber, router, interface, fleet", key, s.By)
		}
		if s.Percentile < 0 || s.Percentile > 100 {
			add("%s.percentile: must be within (0, 100] (0: %d)", key, store.DefaultPercentile)
		}
		if s.TopApps < 0 || s.TopApps > 10 {
			add("%s.top-apps: must be within 0..10", key)
		}
		if s.TimeZone != "" {
			if _, err := loadZone(s.TimeZone); err != nil {
				add("%s.time-zone: %v", key, err)
			}
		}
		for j, to := range s.MailTo {
			if _, err := mail.ParseAddress(to); err != nil {
				add("%s.mail-to[%d]: %q is not an e-mail address", key, j, to)
			}
		}
		if len(s.MailTo) > 0 && !smtpSet {
			add("%s.mail-to: needs reports.smtp (host and from)", key)
		}
		if s.Webhook.URL != "" {
			if u, err := url.Parse(s.Webhook.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				add("%s.webhook.url: %q is not an http or https URL", key, s.Webhook.URL)
			}
		} else if s.Webhook.Format != "" || s.Webhook.SecretFile != "" {
			add("%s.webhook.url: must be set when other webhook keys are", key)
		}
		if err := validFormat(s.Webhook.Format); err != nil {
			add("%s.webhook.format: %v", key, err)
		}
		if s.Folder == "" && c.Folder == "" && len(s.MailTo) == 0 && s.Webhook.URL == "" {
			add("%s: no delivery target: set folder (or reports.folder), mail-to or webhook.url", key)
		}
	}
	return errors.Join(errs...)
}

// validFormat checks a webhook format ("" is the default).
func validFormat(f string) error {
	if f != "" && f != FormatJSON && f != FormatCSV {
		return fmt.Errorf("%q is not one of json, csv", f)
	}
	return nil
}

// loadZone loads a time zone by name; "" and "Local" are the machine's.
func loadZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return time.Local, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("%q is not a known time zone (an IANA name such as Europe/Berlin, UTC or Local)", name)
	}
	return loc, nil
}
