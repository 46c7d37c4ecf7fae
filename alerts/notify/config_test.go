package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

func TestDefaultConfigValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestConfigYAML: the kebab-case keys decode strictly (as flowbox.yaml's
// notifications: section is decoded), over the defaults.
func TestConfigYAML(t *testing.T) {
	const in = `
queue-size: 500
timeout: 15s
rate-limit: {messages: 20, per: 2m}
retry: {attempts: 3, backoff: 10s, max-backoff: 10m}
channels:
  - name: ops
    type: webhook
    url: https://hooks.example.net/flowbox
    headers: {Authorization: Bearer xyz}
    min-severity: info
    events: [opened, updated, resolved]
  - name: tg
    type: telegram
    bot-token-file: /etc/flowbox/telegram-token
    chat-id: -1001234567
  - name: mail
    type: email
    smtp: mail.example.net:587
    username: flowbox
    password-file: /etc/flowbox/smtp-password
    from: Flowbox <flowbox@example.net>
    to: [noc@example.net]
    starttls: required
    ca-file: /etc/flowbox/ca.pem
    kinds: [udp-amplification, syn-flood]
    min-severity: critical
`
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(in))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	want := Config{
		QueueSize: 500, Timeout: 15 * time.Second,
		RateLimit: RateLimitConfig{Messages: 20, Per: 2 * time.Minute},
		Retry:     RetryConfig{Attempts: 3, Backoff: 10 * time.Second, MaxBackoff: 10 * time.Minute},
		Channels: []ChannelConfig{
			{Name: "ops", Type: TypeWebhook, URL: "https://hooks.example.net/flowbox", Headers: map[string]string{"Authorization": "Bearer xyz"},
				MinSeverity: "info", Events: []string{"opened", "updated", "resolved"}},
			{Name: "tg", Type: TypeTelegram, BotTokenFile: "/etc/flowbox/telegram-token", ChatID: "-1001234567"},
			{Name: "mail", Type: TypeEmail, SMTP: "mail.example.net:587", Username: "flowbox", PasswordFile: "/etc/flowbox/smtp-password",
				From: "Flowbox <flowbox@example.net>", To: []string{"noc@example.net"}, StartTLS: "required", CAFile: "/etc/flowbox/ca.pem",
				Kinds: []string{"udp-amplification", "syn-flood"}, MinSeverity: "critical"},
		},
	}
	if diff := cmp.Diff(cfg, want); diff != "" {
		t.Errorf("decoded config (-got +want):\n%s", diff)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
	dec = yaml.NewDecoder(strings.NewReader("channels: [{name: a, type: slack, webhook-url: x}]"))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err == nil || !strings.Contains(err.Error(), "webhook-url") {
		t.Errorf("an unknown key decoded: %v", err)
	}
}

// TestValidate: each problem is named by its channel and key.
func TestValidate(t *testing.T) {
	mail := func(mod func(*ChannelConfig)) ChannelConfig {
		c := ChannelConfig{Name: "mail", Type: TypeEmail, SMTP: "mail.example.net:587", From: "a@example.net", To: []string{"b@example.net"}}
		mod(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want []string
	}{
		{"unknown type", func(c *Config) { c.Channels = []ChannelConfig{{Name: "ops", Type: "pager"}} },
			[]string{`channels[0] (ops).type: "pager" is not one of webhook, slack, discord, telegram, email`}},
		{"no type", func(c *Config) { c.Channels = []ChannelConfig{{Name: "ops"}} },
			[]string{`channels[0] (ops).type: required (one of webhook, slack, discord, telegram, email)`}},
		{"missing url", func(c *Config) { c.Channels = []ChannelConfig{{Name: "ops", Type: TypeSlack}} },
			[]string{`channels[0] (ops).url: required for a slack channel`}},
		{"bad url", func(c *Config) {
			c.Channels = []ChannelConfig{{Name: "ops", Type: TypeDiscord, URL: "ftp://x/secret-token"}}
		}, []string{`channels[0] (ops).url: must be an http:// or https:// URL`}},
		{"missing to", func(c *Config) { c.Channels = []ChannelConfig{mail(func(m *ChannelConfig) { m.To = nil })} },
			[]string{`channels[0] (mail).to: required for an email channel`}},
		{"missing smtp", func(c *Config) { c.Channels = []ChannelConfig{mail(func(m *ChannelConfig) { m.SMTP = "" })} },
			[]string{`channels[0] (mail).smtp: required for an email channel (host:port)`}},
		{"smtp without port", func(c *Config) {
			c.Channels = []ChannelConfig{mail(func(m *ChannelConfig) { m.SMTP = "mail.example.net" })}
		},
			[]string{`channels[0] (mail).smtp: "mail.example.net" is not a host:port address`}},
		{"bad addresses", func(c *Config) {
			c.Channels = []ChannelConfig{mail(func(m *ChannelConfig) { m.From, m.To = "nobody", []string{"x@y.z", "@"} })}
		}, []string{`channels[0] (mail).from: "nobody" is not an e-mail address`, `channels[0] (mail).to: "@" is not an e-mail address`}},
		{"bad starttls", func(c *Config) { c.Channels = []ChannelConfig{mail(func(m *ChannelConfig) { m.StartTLS = "maybe" })} },
			[]string{`channels[0] (mail).starttls: "maybe" is not one of required, opportunistic, none`}},
		{"password without username", func(c *Config) { c.Channels = []ChannelConfig{mail(func(m *ChannelConfig) { m.Password = "x" })} },
			[]string{`channels[0] (mail).username: required with a password`}},
		{"password twice", func(c *Config) {
			c.Channels = []ChannelConfig{mail(func(m *ChannelConfig) { m.Username, m.Password, m.PasswordFile = "u", "x", "/f" })}
		}, []string{`channels[0] (mail).password-file: cannot be combined with password`}},
		{"bad severity", func(c *Config) {
			c.Channels = []ChannelConfig{{Name: "ops", Type: TypeWebhook, URL: "http://x/", MinSeverity: "high"}}
		}, []string{`channels[0] (ops).min-severity: "high" is not one of info, warning, critical`}},
		{"bad kind and event", func(c *Config) {
			c.Channels = []ChannelConfig{{Name: "ops", Type: TypeWebhook, URL: "http://x/", Kinds: []string{"ddos"}, Events: []string{"acked"}}}
		}, []string{`channels[0] (ops).kinds: "ddos" is not an alert kind`, `channels[0] (ops).events: "acked" is not one of opened, updated, resolved`}},
		{"telegram", func(c *Config) { c.Channels = []ChannelConfig{{Name: "tg", Type: TypeTelegram, APIURL: "nope"}} },
			[]string{`channels[0] (tg).bot-token: required for a telegram channel`, `channels[0] (tg).chat-id: required`,
				`channels[0] (tg).api-url: must be an http:// or https:// URL`}},
		{"keys of another type", func(c *Config) {
			c.Channels = []ChannelConfig{{Name: "ops", Type: TypeSlack, URL: "http://x/", SMTP: "a:25", ChatID: "1"}}
		}, []string{`channels[0] (ops).smtp: not used by a slack channel`, `channels[0] (ops).chat-id: not used by a slack channel`}},
		{"names", func(c *Config) {
			c.Channels = []ChannelConfig{{Type: TypeSlack, URL: "http://x/"}, {Name: "a b", Type: TypeSlack, URL: "http://x/"},
				{Name: "ok", Type: TypeSlack, URL: "http://x/"}, {Name: "ok", Type: TypeSlack, URL: "http://x/"}}
		}, []string{`channels[0].name: "" must be 1 to 64 letters`, `channels[1] (a b).name: "a b" must be`,
			`channels[3] (ok).name: "ok" is used by another channel`}},
		{"globals", func(c *Config) {
			c.QueueSize, c.Timeout, c.RateLimit.Per, c.Retry = 0, 0, 0, RetryConfig{Attempts: 0, Backoff: time.Minute, MaxBackoff: time.Second}
		}, []string{"queue-size: must be within 1..1000000", "timeout: must be positive", "rate-limit.per: must be positive",
			"retry.attempts: must be within 1..20", "retry.max-backoff: must be at least retry.backoff"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mod(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Errorf("%d problems, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "secret-token") {
				t.Errorf("error repeats a URL's path: %v", err)
			}
		})
	}
}

// TestRedacted: the dump keeps what identifies a channel and hides its
// secrets, without changing the configuration itself.
func TestRedacted(t *testing.T) {
	cfg := testConfig(
		ChannelConfig{Name: "s", Type: TypeSlack, URL: "https://hooks.slack.com/services/T0/B0/tok", Headers: map[string]string{"X-Key": "k"}},
		ChannelConfig{Name: "t", Type: TypeTelegram, BotToken: "1:abc", ChatID: "5"},
		ChannelConfig{Name: "m", Type: TypeEmail, Username: "u", Password: "pw", PasswordFile: "/f"},
	)
	red := cfg.Redacted()
	if got := red.Channels[0]; got.URL != "https://hooks.slack.com/<redacted>" || got.Headers["X-Key"] != "<redacted>" {
		t.Errorf("slack = %+v", got)
	}
	if got := red.Channels[1]; got.BotToken != "<redacted>" || got.ChatID != "5" {
		t.Errorf("telegram = %+v", got)
	}
	if got := red.Channels[2]; got.Password != "<redacted>" || got.Username != "u" || got.PasswordFile != "/f" {
		t.Errorf("email = %+v", got)
	}
	if cfg.Channels[0].Headers["X-Key"] != "k" || cfg.Channels[1].BotToken != "1:abc" || cfg.Channels[0].URL == red.Channels[0].URL {
		t.Error("Redacted changed the original")
	}
}
