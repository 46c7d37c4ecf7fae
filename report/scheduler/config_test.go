package scheduler

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestConfigValidate checks each problem's message.
func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	ok := ScheduleConfig{Name: "m", Every: EveryMonth, Folder: "/srv/reports"}
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		want   []string
	}{
		{"fine", func(c *Config) {
			c.Schedules = []ScheduleConfig{ok, {Name: "w", Every: EveryWeek, By: "fleet", Webhook: WebhookConfig{URL: "https://example.com/x", Format: "csv"}}}
		}, nil},
		{"time zone", func(c *Config) {
			c.TimeZone = "Mars/Olympus"
			c.Schedules = []ScheduleConfig{{Name: "m", Every: EveryMonth, Folder: "/x", TimeZone: "Europe/Nowhere"}}
		}, []string{
			`time-zone: "Mars/Olympus" is not a known time zone (an IANA name such as Europe/Berlin, UTC or Local)`,
			`schedules[0] (m).time-zone: "Europe/Nowhere" is not a known time zone (an IANA name such as Europe/Berlin, UTC or Local)`,
		}},
		{"names", func(c *Config) {
			c.Schedules = []ScheduleConfig{ok, ok, {Name: "../x", Every: EveryMonth, Folder: "/x"}}
		}, []string{
			`schedules[1] (m).name: "m" is the name of another schedule`,
			`schedules[2] (../x).name: "../x" must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit`,
		}},
		{"every and by", func(c *Config) {
			c.Schedules = []ScheduleConfig{{Name: "d", Every: "day", By: "host", Percentile: 101, TopApps: 11, Folder: "/x"}}
		}, []string{
			`schedules[0] (d).every: "day" is not one of month, week`,
			`schedules[0] (d).by: "host" is not one of subscriber, router, interface, fleet`,
			`schedules[0] (d).percentile: must be within (0, 100] (0: 95)`,
			`schedules[0] (d).top-apps: must be within 0..10`,
		}},
		{"no target", func(c *Config) { c.Schedules = []ScheduleConfig{{Name: "m", Every: EveryMonth}} }, []string{
			`schedules[0] (m): no delivery target: set folder (or reports.folder), mail-to or webhook.url`,
		}},
		{"mail without smtp", func(c *Config) {
			c.Schedules = []ScheduleConfig{{Name: "m", Every: EveryMonth, MailTo: []string{"noc@isp.example", "not an address"}}}
		}, []string{
			`schedules[0] (m).mail-to[1]: "not an address" is not an e-mail address`,
			`schedules[0] (m).mail-to: needs reports.smtp (host and from)`,
		}},
		{"smtp", func(c *Config) {
			c.SMTP = SMTPConfig{Host: "mail.isp.example", Port: 0, Username: "u"}
		}, []string{
			`smtp.port: must be within 1..65535`,
			`smtp.from: must be set (the sender of the reports)`,
			`smtp.password-file: must be set when smtp.username is`,
		}},
		{"smtp without host", func(c *Config) { c.SMTP.From = "a@b.example" }, []string{`smtp.host: must be set when other smtp keys are`}},
		{"webhook", func(c *Config) {
			c.Webhook = WebhookConfig{URL: "https://example.com", Format: "xml"}
			c.Schedules = []ScheduleConfig{{Name: "m", Every: EveryMonth, Webhook: WebhookConfig{URL: "ftp://example.com", Format: "pdf"}},
				{Name: "n", Every: EveryMonth, Folder: "/x", Webhook: WebhookConfig{SecretFile: "/s"}}}
		}, []string{
			`webhook.format: "xml" is not one of json, csv`,
			`webhook.url: set the url of each schedule (reports.webhook holds only defaults: format, secret-file)`,
			`schedules[0] (m).webhook.url: "ftp://example.com" is not an http or https URL`,
			`schedules[0] (m).webhook.format: "pdf" is not one of json, csv`,
			`schedules[1] (n).webhook.url: must be set when other webhook keys are`,
		}},
		{"bounds", func(c *Config) {
			c.Settle, c.CatchUp, c.Timeout = 25*time.Hour, 13, 0
			c.Retry = RetryConfig{Attempts: 11, Backoff: 0, MaxBackoff: -1}
		}, []string{
			`settle: must be within 0s..24h`,
			`catch-up: must be within 0..12`,
			`timeout: must be positive`,
			`retry.attempts: must be within 1..10`,
			`retry.backoff: must be positive`,
			`retry.max-backoff: must be at least retry.backoff`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.TimeZone = "UTC"
			tc.change(&c)
			var got []string
			if err := c.Validate(); err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(got, tc.want); diff != "" {
				t.Errorf("Validate (-got +want):\n%s", diff)
			}
		})
	}
}

// TestNewReadsFiles: New reads the password, secret and CA files and
// says which one it cannot.
func TestNewReadsFiles(t *testing.T) {
	c := DefaultConfig()
	c.TimeZone = "UTC"
	c.SMTP = SMTPConfig{Host: "127.0.0.1", Port: 25, From: "r@isp.example", Username: "u", PasswordFile: "/nonexistent/pw"}
	c.Schedules = []ScheduleConfig{{Name: "m", Every: EveryMonth, MailTo: []string{"a@isp.example"}}}
	_, err := New(c, Deps{Reporter: &fakeReporter{}, Runs: &memRuns{}})
	if err == nil || !strings.HasPrefix(err.Error(), "reports.smtp: password-file: cannot read it: open /nonexistent/pw:") {
		t.Errorf("New: %v", err)
	}
	c.SMTP = SMTPConfig{}
	c.Schedules = []ScheduleConfig{{Name: "m", Every: EveryMonth, Webhook: WebhookConfig{URL: "http://127.0.0.1/", SecretFile: "/nonexistent/s"}}}
	if _, err := New(c, Deps{Reporter: &fakeReporter{}, Runs: &memRuns{}}); err == nil || !strings.HasPrefix(err.Error(), "reports.schedules[0].webhook: secret-file: cannot read it:") {
		t.Errorf("New: %v", err)
	}
	c.Schedules[0].Routers = []string{"tower-1"}
	if _, err := New(c, Deps{Reporter: &fakeReporter{}, Runs: &memRuns{}}); err == nil {
		t.Error("New accepted a routers filter without a router inventory")
	}
	if _, err := New(DefaultConfig(), Deps{}); err != nil {
		t.Errorf("New without schedules: %v", err)
	}
}
