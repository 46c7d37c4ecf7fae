package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

const testToken = "123456789:AAH-test-bot-token-value"

// TestFormats delivers one opened and one resolved event to a generic
// webhook, Slack, Discord and Telegram on an httptest server, and checks
// each body.
func TestFormats(t *testing.T) {
	h := &hookServer{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	log := &memLog{}
	n, err := New(testConfig(
		ChannelConfig{Name: "hook", Type: TypeWebhook, URL: srv.URL + "/hook", Headers: map[string]string{"Authorization": "Bearer abc123"}},
		ChannelConfig{Name: "slack", Type: TypeSlack, URL: srv.URL + "/services/T0/B0/slacksecret"},
		ChannelConfig{Name: "discord", Type: TypeDiscord, URL: srv.URL + "/api/webhooks/1/discordsecret"},
		ChannelConfig{Name: "tg", Type: TypeTelegram, BotToken: testToken, ChatID: "-100123", APIURL: srv.URL},
	), Deps{Log: log, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer runNotifier(t, n)()
	a := testAlert(42)
	n.AlertChanged(opened(a))
	n.AlertChanged(updated(a)) // not sent: events default to opened, resolved
	n.AlertChanged(resolved(a))
	testutil.WaitFor(t, 10*time.Second, "8 requests", func() (bool, string) {
		got := len(h.received())
		return got == 8, fmt.Sprintf("%d requests", got)
	})
	byPath := map[string][]request{}
	for _, r := range h.received() {
		byPath[r.path] = append(byPath[r.path], r)
	}
	const title = "[flowbox] CRITICAL udp-amplification on 100.64.1.23 (Maria Garcia) at wisp-1"

	// Generic webhook: the store.AlertEvent's JSON, plus the text.
	hook := byPath["/hook"]
	if len(hook) != 2 {
		t.Fatalf("webhook got %d requests, want 2", len(hook))
	}
	if got := hook[0].header.Get("Authorization"); got != "Bearer abc123" {
		t.Errorf("webhook Authorization = %q", got)
	}
	if got := hook[0].header.Get("Content-Type"); got != "application/json" {
		t.Errorf("webhook Content-Type = %q", got)
	}
	var gen map[string]any
	if err := json.Unmarshal(hook[0].body, &gen); err != nil {
		t.Fatal(err)
	}
	if gen["event"] != "opened" || gen["title"] != title || !strings.HasPrefix(gen["text"].(string), title+"\n") {
		t.Errorf("webhook event/title/text = %v / %v / %v", gen["event"], gen["title"], gen["text"])
	}
	alert, _ := gen["alert"].(map[string]any)
	for _, k := range []string{"id", "kind", "severity", "router", "target", "subscriber", "direction", "started",
		"ended", "peak_bps", "peak_pps", "peak_flows_per_s", "summary", "evidence"} {
		if _, ok := alert[k]; !ok {
			t.Errorf("webhook alert has no %q: %s", k, hook[0].body)
		}
	}
	if alert["id"] != 42.0 || alert["kind"] != "udp-amplification" || alert["target"] != "100.64.1.23" ||
		alert["subscriber"] != "Maria Garcia" || alert["ended"] != nil || alert["peak_bps"] != 1.23e9 {
		t.Errorf("webhook alert = %v", alert)
	}
	var res webhookPayload
	if err := json.Unmarshal(hook[1].body, &res); err != nil {
		t.Fatal(err)
	}
	if res.Event != "resolved" || res.Alert == nil || res.Alert.Ended == nil ||
		res.Title != "[flowbox] RESOLVED udp-amplification on 100.64.1.23 (Maria Garcia) at wisp-1 after 12m30s" {
		t.Errorf("resolved webhook = %+v", res)
	}

	// Slack: text, the title in bold, the evidence.
	slack := byPath["/services/T0/B0/slacksecret"]
	if len(slack) != 2 {
		t.Fatalf("slack got %d requests, want 2", len(slack))
	}
	var sl map[string]any
	if err := json.Unmarshal(slack[0].body, &sl); err != nil {
		t.Fatal(err)
	}
	text, _ := sl["text"].(string)
	if !strings.HasPrefix(text, "*"+title+"*\n") || !strings.Contains(text, "203.0.113.5") || !strings.Contains(text, "udp/123") {
		t.Errorf("slack text = %q", text)
	}

	// Discord: content.
	discord := byPath["/api/webhooks/1/discordsecret"]
	if len(discord) != 2 {
		t.Fatalf("discord got %d requests, want 2", len(discord))
	}
	var dc struct {
		Content         string `json:"content"`
		AllowedMentions struct {
			Parse []string `json:"parse"`
		} `json:"allowed_mentions"`
	}
	if err := json.Unmarshal(discord[0].body, &dc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dc.Content, "**"+title+"**\n```\n") || !strings.HasSuffix(dc.Content, "\n```") || !strings.Contains(dc.Content, "Maria Garcia") {
		t.Errorf("discord content = %q", dc.Content)
	}
	if utf8.RuneCountInString(dc.Content) > discordLimit || dc.AllowedMentions.Parse == nil {
		t.Errorf("discord content of %d characters, mentions %v", utf8.RuneCountInString(dc.Content), dc.AllowedMentions.Parse)
	}

	// Telegram: /bot<token>/sendMessage with chat_id and text.
	tg := byPath["/bot"+testToken+"/sendMessage"]
	if len(tg) != 2 {
		t.Fatalf("telegram got %d requests, want 2 (paths: %v)", len(tg), keys(byPath))
	}
	var tm struct {
		ChatID string `json:"chat_id"`
		Text   string `json:"text"`
	}
	if err := json.Unmarshal(tg[0].body, &tm); err != nil {
		t.Fatal(err)
	}
	if tm.ChatID != "-100123" || !strings.HasPrefix(tm.Text, title+"\n") || !strings.Contains(tm.Text, "1.23 Gbit/s") {
		t.Errorf("telegram message = %+v", tm)
	}

	// A server sees a request before its sender counts the answer: wait
	// for the counters and the log.
	testutil.WaitFor(t, 10*time.Second, "8 attempts logged and counted", func() (bool, string) {
		sent := 0
		for _, st := range n.Status() {
			sent += int(st.Sent)
		}
		return len(log.attempts()) == 8 && sent == 8, fmt.Sprintf("%d attempts logged, %d sent", len(log.attempts()), sent)
	})
	for _, st := range n.Status() {
		if st.Sent != 2 || st.Failed != 0 || st.Dropped != 0 || st.LastSent == nil {
			t.Errorf("status = %+v", st)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestDiscordLimit: a huge alert text still fits Discord's 2000
// characters, its code block closed.
func TestDiscordLimit(t *testing.T) {
	a := testAlert(1)
	a.Summary = strings.Repeat("ééé long summary ", 400)
	for i := range 200 {
		a.Evidence.TopSources = append(a.Evidence.TopSources, store.AlertTop{Key: fmt.Sprintf("192.0.2.%d", i), Bytes: 1})
	}
	c := discordContent(alertMessage("opened", &a))
	if n := utf8.RuneCountInString(c); n > discordLimit || n < discordLimit-10 {
		t.Errorf("content has %d characters, want up to %d (and close to it)", n, discordLimit)
	}
	if !strings.HasSuffix(c, "…\n```") {
		t.Errorf("content does not end with a cut and a closed block: %q", c[len(c)-20:])
	}
	tg := telegramBody("1")(alertMessage("opened", &a)).(map[string]any)["text"].(string)
	if n := utf8.RuneCountInString(tg); n > telegramLimit {
		t.Errorf("telegram text has %d characters", n)
	}
}

// TestSendTest: the console's test message arrives, recognisable; a
// failing channel returns its failure, counted; an unknown channel is a
// clear error.
func TestSendTest(t *testing.T) {
	h := &hookServer{reply: func(int, http.ResponseWriter) int { return http.StatusOK }}
	ok := httptest.NewServer(h)
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no such hook", http.StatusGone)
	}))
	defer bad.Close()
	log := &memLog{}
	n, err := New(testConfig(
		ChannelConfig{Name: "good", Type: TypeWebhook, URL: ok.URL + "/x"},
		ChannelConfig{Name: "broken", Type: TypeSlack, URL: bad.URL + "/services/1/2/3"},
	), Deps{Log: log, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	// SendTest needs no Run.
	if err := n.SendTest(t.Context(), "good"); err != nil {
		t.Fatalf("SendTest(good) = %v", err)
	}
	reqs := h.received()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests", len(reqs))
	}
	var p webhookPayload
	if err := json.Unmarshal(reqs[0].body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Event != "test" || p.Title != "[flowbox] test message on channel good" || !strings.Contains(p.Text, "test message from flowbox") {
		t.Errorf("test message = %+v", p)
	}
	err = n.SendTest(t.Context(), "broken")
	if err == nil || !strings.Contains(err.Error(), `channel "broken"`) || !strings.Contains(err.Error(), "410") ||
		!strings.Contains(err.Error(), "no such hook") {
		t.Errorf("SendTest(broken) = %v", err)
	}
	if st := statusOf(t, n, "broken"); st.Failed != 1 || st.Sent != 0 || !strings.Contains(st.LastError, "410") || st.LastErrorAt == nil {
		t.Errorf("broken status = %+v", st)
	}
	if st := statusOf(t, n, "good"); st.Sent != 1 {
		t.Errorf("good status = %+v", st)
	}
	atts := log.attempts()
	if len(atts) != 2 || atts[0].Event != "test" || !atts[0].OK || atts[1].OK || atts[1].AlertID != 0 {
		t.Errorf("log = %+v", atts)
	}
	err = n.SendTest(t.Context(), "nope")
	if err == nil || !strings.Contains(err.Error(), `unknown notification channel "nope" (configured: good, broken)`) {
		t.Errorf("SendTest(nope) = %v", err)
	}
	empty, err := New(DefaultConfig(), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := empty.SendTest(t.Context(), "x"); err == nil || !strings.Contains(err.Error(), "no channel is configured") {
		t.Errorf("SendTest without channels = %v", err)
	}
}

// TestSecretsNeverShown: a server that echoes the request (path and
// headers) in its error, and a dead URL, leave no token, header value or
// password in the errors, Status, the notification log or the logs.
func TestSecretsNeverShown(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad request to "+r.URL.String()+" with "+r.Header.Get("X-Token"), http.StatusInternalServerError)
	}))
	defer echo.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	_ = l.Close() // a port nobody listens on: connection refused
	var logs testutil.SyncBuffer
	log := &memLog{}
	secrets := []string{testToken, "slackTOKENxyz", "hdr-secret-value", "smtp-pa55word"}
	n, err := New(testConfig(
		ChannelConfig{Name: "tg", Type: TypeTelegram, BotToken: testToken, ChatID: "1", APIURL: echo.URL},
		ChannelConfig{Name: "slack", Type: TypeSlack, URL: "http://" + dead + "/services/T/B/slackTOKENxyz"},
		ChannelConfig{Name: "hook", Type: TypeWebhook, URL: echo.URL + "/h?key=slackTOKENxyz", Headers: map[string]string{"X-Token": "hdr-secret-value"}},
		ChannelConfig{Name: "mail", Type: TypeEmail, SMTP: dead, From: "flowbox@example.net", To: []string{"noc@example.net"},
			Username: "flowbox", Password: "smtp-pa55word", StartTLS: StartTLSNone},
	), Deps{Log: log, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, ch := range []string{"tg", "slack", "hook", "mail"} {
		err := n.SendTest(t.Context(), ch)
		if err == nil {
			t.Fatalf("SendTest(%s) succeeded", ch)
		}
		texts = append(texts, err.Error())
	}
	if !strings.Contains(texts[0], "<redacted>") || !strings.Contains(texts[2], "<redacted>") {
		t.Errorf("echoed secrets were not redacted: %q", texts)
	}
	st, _ := json.Marshal(n.Status())
	atts, _ := json.Marshal(log.attempts())
	red, _ := json.Marshal(n.cfg.Redacted())
	texts = append(texts, string(st), string(atts), logs.String(), string(red))
	for _, text := range texts {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("secret %q shown in %s", s, text)
			}
		}
	}
	if !strings.Contains(logs.String(), "cannot deliver notification") {
		t.Errorf("failures not logged: %s", logs.String())
	}
}

// TestFilter: min-severity, kinds and events select what each channel
// gets; an alert escalated above a channel's min-severity is announced as
// opened, and its resolution follows even at a lower severity.
func TestFilter(t *testing.T) {
	n, err := New(testConfig(
		ChannelConfig{Name: "critical", Type: TypeWebhook, URL: "http://x.test/", MinSeverity: "critical"},
		ChannelConfig{Name: "default", Type: TypeWebhook, URL: "http://x.test/"},
		ChannelConfig{Name: "spam", Type: TypeWebhook, URL: "http://x.test/", MinSeverity: "info", Kinds: []string{store.AlertSMTPSpam}},
		ChannelConfig{Name: "all", Type: TypeWebhook, URL: "http://x.test/", MinSeverity: "info", Events: []string{"opened", "updated", "resolved"}},
	), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	a := testAlert(1)
	a.Severity = store.SeverityWarning
	n.AlertChanged(opened(a))
	n.AlertChanged(updated(a))
	a.Severity = store.SeverityCritical
	n.AlertChanged(updated(a)) // escalated
	n.AlertChanged(updated(a))
	a.Severity = store.SeverityWarning
	n.AlertChanged(resolved(a))
	info := testAlert(2)
	info.Severity = store.SeverityInfo
	n.AlertChanged(opened(info))
	n.AlertChanged(resolved(info))
	spam := testAlert(3)
	spam.Kind, spam.Severity = store.AlertSMTPSpam, store.SeverityInfo
	n.AlertChanged(opened(spam))

	want := map[string][]string{
		"critical": {"opened 1 critical", "resolved 1 warning"},
		"default":  {"opened 1 warning", "resolved 1 warning"},
		"spam":     {"opened 3 info"},
		"all": {"opened 1 warning", "updated 1 warning", "updated 1 critical", "updated 1 critical", "resolved 1 warning",
			"opened 2 info", "resolved 2 info", "opened 3 info"},
	}
	for _, c := range n.channels {
		var got []string
		for len(c.queue) > 0 {
			q := <-c.queue
			got = append(got, fmt.Sprintf("%s %d %s", q.event, q.alert.ID, q.alert.Severity))
		}
		if strings.Join(got, ", ") != strings.Join(want[c.name], ", ") {
			t.Errorf("channel %s got %q, want %q", c.name, got, want[c.name])
		}
	}
}

// TestAlertChangedCopies: the queued alert is the notifier's own copy.
func TestAlertChangedCopies(t *testing.T) {
	n, err := New(testConfig(ChannelConfig{Name: "a", Type: TypeWebhook, URL: "http://x.test/"}), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	a := testAlert(1)
	n.AlertChanged(opened(a))
	a.Evidence.TopSources[0].Key = "changed"
	a.Evidence.Measures["baseline_bps"] = 0
	q := <-n.channels[0].queue
	if q.alert.Evidence.TopSources[0].Key != "203.0.113.5" || q.alert.Evidence.Measures["baseline_bps"] != 2.5e6 {
		t.Errorf("queued alert shares the caller's evidence: %+v", q.alert.Evidence)
	}
}

// TestNewReadsFiles: password-file and bot-token-file are read by New;
// a missing file is an error naming the channel and the key.
func TestNewReadsFiles(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &hookServer{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	n, err := New(testConfig(ChannelConfig{Name: "tg", Type: TypeTelegram, BotTokenFile: tokenFile, ChatID: "@ops", APIURL: srv.URL + "/"}), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.SendTest(context.Background(), "tg"); err != nil {
		t.Fatal(err)
	}
	if reqs := h.received(); len(reqs) != 1 || reqs[0].path != "/bot"+testToken+"/sendMessage" {
		t.Errorf("requests = %+v", reqs)
	}
	_, err = New(testConfig(ChannelConfig{Name: "mail", Type: TypeEmail, SMTP: "127.0.0.1:25", From: "a@b.c", To: []string{"d@e.f"},
		Username: "u", PasswordFile: filepath.Join(dir, "missing")}), Deps{})
	if err == nil || !strings.Contains(err.Error(), "channels[0] (mail).password-file: cannot read it") {
		t.Errorf("New with a missing password file = %v", err)
	}
	_, err = New(testConfig(ChannelConfig{Name: "mail", Type: TypeEmail, SMTP: "127.0.0.1:25", From: "a@b.c", To: []string{"d@e.f"},
		CAFile: tokenFile}), Deps{})
	if err == nil || !strings.Contains(err.Error(), "channels[0] (mail).ca-file:") || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("New with a bad ca-file = %v", err)
	}
	if _, err := New(Config{}, Deps{}); err == nil || !strings.Contains(err.Error(), "queue-size") {
		t.Errorf("New with an invalid config = %v", err)
	}
}

// TestRunTwice: a notifier runs once at a time.
func TestRunTwice(t *testing.T) {
	n, err := New(testConfig(ChannelConfig{Name: "a", Type: TypeWebhook, URL: "http://x.test/"}), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	stop := runNotifier(t, n)
	testutil.WaitFor(t, 5*time.Second, "Run to start", func() (bool, string) { return n.running.Load(), "not running" })
	if err := n.Run(t.Context()); err == nil {
		t.Error("a second Run did not fail")
	}
	stop()
}
