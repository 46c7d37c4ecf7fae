package notify

import (
	"mime"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

func TestFormatNumbers(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{formatUnit(1.23e9, "bit/s"), "1.23 Gbit/s"},
		{formatUnit(420e6, "B"), "420 MB"},
		{formatUnit(12, "B"), "12 B"},
		{formatUnit(999.7, "bit/s"), "1.00 kbit/s"},
		{formatUnit(0.5, "bit/s"), "0.50 bit/s"},
		{formatCount(150e3), "150k"},
		{formatCount(3200), "3.20k"},
		{formatCount(45.6e6), "45.6M"},
		{formatCount(7), "7"},
		{formatNumber(0.953), "0.953"},
		{formatNumber(2.5e6), "2.50M"},
		{formatDuration(12*time.Minute + 30*time.Second), "12m30s"},
		{formatDuration(time.Minute), "1m"},
		{formatDuration(10 * time.Second), "10s"},
		{formatDuration(2 * time.Hour), "2h"},
		{formatDuration(time.Hour + 10*time.Minute), "1h10m"},
		{formatDuration(time.Hour + 5*time.Second), "1h0m5s"},
		{truncateRunes("ééééé", 3), "éé…"},
		{truncateRunes("abc", 3), "abc"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// TestTitles: the subject names severity, kind, target, subscriber and
// router; a health alert whose target is its router names it once.
func TestTitles(t *testing.T) {
	a := testAlert(1)
	for _, tc := range []struct {
		event string
		a     store.Alert
		want  string
	}{
		{"opened", a, "[flowbox] CRITICAL udp-amplification on 100.64.1.23 (Maria Garcia) at wisp-1"},
		{"updated", a, "[flowbox] UPDATED CRITICAL udp-amplification on 100.64.1.23 (Maria Garcia) at wisp-1"},
		{"resolved", resolved(a).Alert, "[flowbox] RESOLVED udp-amplification on 100.64.1.23 (Maria Garcia) at wisp-1 after 12m30s"},
		{"opened", store.Alert{Kind: store.AlertExportStopped, Severity: store.SeverityWarning, Router: "wisp-2", Target: "wisp-2"},
			"[flowbox] WARNING export-stopped on wisp-2"},
	} {
		if got := alertMessage(tc.event, &tc.a).title; got != tc.want {
			t.Errorf("title = %q, want %q", got, tc.want)
		}
	}
	out := testAlert(2)
	out.Kind, out.Direction = store.AlertSMTPSpam, "out"
	if body := alertMessage("opened", &out).body; !strings.Contains(body, "Top destinations:") || !strings.Contains(body, "outbound") {
		t.Errorf("outbound body:\n%s", body)
	}
}

// TestMailHeaders: a subscriber's name cannot inject a header, and a
// non-ASCII subject is encoded and decodes back.
func TestMailHeaders(t *testing.T) {
	a := testAlert(3)
	a.Subscriber = "José Núñez\r\nBcc: victim@example.org"
	s := &smtpSender{now: func() time.Time { return a.Started }}
	var err error
	if s.from, err = mail.ParseAddress("flowbox@example.net"); err != nil {
		t.Fatal(err)
	}
	to, _ := mail.ParseAddress("noc@example.net")
	s.to = append(s.to, to)
	raw := string(s.compose(alertMessage("opened", &a)))
	m, err := mail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("Bcc") != "" {
		t.Errorf("a header was injected:\n%s", raw)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	want := "[flowbox] CRITICAL udp-amplification on 100.64.1.23 (José Núñez  Bcc: victim@example.org) at wisp-1"
	if err != nil || subject != want {
		t.Errorf("Subject = %q (%v), want %q", subject, err, want)
	}
	if got := m.Header.Get("X-Flowbox-Alert-ID"); got != "3" {
		t.Errorf("X-Flowbox-Alert-ID = %q", got)
	}
}
