package notify

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flowbox/flowbox/store"
)

// Events of messages that are not an alert's: the rate limit's summary
// and the console's test message.
const (
	eventSummary = "summary"
	eventTest    = "test"
)

// maxTopLines bounds the entries of each evidence list in a message.
const maxTopLines = 10

// maxHeldLines bounds the held-back events a summary message lists.
const maxHeldLines = 10

// message is what a channel delivers: one alert event, the rate limit's
// summary or a test message, with its title (the e-mail subject) and text.
type message struct {
	// event is opened, updated, resolved, summary or test.
	event string
	// alert is the alert of an alert event, nil otherwise.
	alert *store.Alert
	// heldBack is the count a summary announces.
	heldBack int
	title    string
	body     string
}

// alertID returns the message's alert ID (0 when it has none).
func (m *message) alertID() int64 {
	if m.alert == nil {
		return 0
	}
	return m.alert.ID
}

// sanitizeLine keeps one line of text: control characters (CR and LF,
// which could inject mail headers, included) become spaces.
func sanitizeLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// alertSubject names an alert: "udp-amplification on 100.64.1.23 (Maria
// Garcia) at wisp-1".
func alertSubject(a *store.Alert) string {
	s := a.Kind + " on " + a.Target
	if a.Subscriber != "" {
		s += " (" + a.Subscriber + ")"
	}
	if a.Router != "" && a.Router != a.Target {
		s += " at " + a.Router
	}
	return sanitizeLine(s)
}

// alertMessage builds the message of an alert event.
func alertMessage(event string, a *store.Alert) *message {
	subject := alertSubject(a)
	sev := strings.ToUpper(sanitizeLine(a.Severity))
	var title string
	switch event {
	case string(store.AlertResolved):
		title = "[flowbox] RESOLVED " + subject
		if a.Ended != nil && a.Ended.After(a.Started) {
			title += " after " + formatDuration(a.Ended.Sub(a.Started))
		}
	case string(store.AlertUpdated):
		title = "[flowbox] UPDATED " + sev + " " + subject
	default:
		title = "[flowbox] " + sev + " " + subject
	}
	return &message{event: event, alert: a, title: title, body: alertBody(event, a)}
}

// alertBody is the text of an alert event: what, when, the peaks and the
// evidence.
func alertBody(event string, a *store.Alert) string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	switch event {
	case string(store.AlertResolved):
		line("Resolved: %s", alertSubject(a))
	case string(store.AlertUpdated):
		line("Still active: %s", alertSubject(a))
	default:
		line("Alert: %s", alertSubject(a))
	}
	if a.Summary != "" {
		line("%s", sanitizeLine(a.Summary))
	}
	line("")
	line("Severity:  %s", a.Severity)
	switch a.Direction {
	case "in":
		line("Direction: inbound (traffic to the target)")
	case "out":
		line("Direction: outbound (traffic from the target)")
	}
	if a.Router != "" {
		line("Router:    %s", sanitizeLine(a.Router))
	}
	line("Started:   %s", formatTime(a.Started))
	if a.Ended != nil {
		line("Ended:     %s (lasted %s)", formatTime(*a.Ended), formatDuration(a.Ended.Sub(a.Started)))
	} else if !a.Updated.IsZero() {
		line("Updated:   %s (active)", formatTime(a.Updated))
	}
	var peaks []string
	if a.PeakBps > 0 {
		peaks = append(peaks, formatUnit(a.PeakBps, "bit/s"))
	}
	if a.PeakPps > 0 {
		peaks = append(peaks, formatCount(a.PeakPps)+" packets/s")
	}
	if a.PeakFlowsPerS > 0 {
		peaks = append(peaks, formatCount(a.PeakFlowsPerS)+" flows/s")
	}
	if len(peaks) > 0 {
		p := strings.Join(peaks, ", ")
		if !a.PeakAt.IsZero() {
			p += " at " + formatTime(a.PeakAt)
		}
		line("Peak:      %s", p)
	}
	ev := a.Evidence
	writeTop := func(name string, tops []store.AlertTop) {
		if len(tops) == 0 {
			return
		}
		shown := tops[:min(len(tops), maxTopLines)]
		width := 0
		for _, t := range shown {
			width = max(width, min(utf8.RuneCountInString(t.Key), 40))
		}
		line("")
		line("%s:", name)
		for _, t := range shown {
			line("  %-*s  %s, %s packets, %s flows", width, sanitizeLine(t.Key), formatUnit(float64(t.Bytes), "B"),
				formatCount(float64(t.Packets)), formatCount(float64(t.Flows)))
		}
		if len(tops) > len(shown) {
			line("  ... and %d more", len(tops)-len(shown))
		}
	}
	if a.Direction == "out" {
		writeTop("Top destinations", ev.TopSources)
		writeTop("Top destination ports", ev.TopPorts)
	} else {
		writeTop("Top sources", ev.TopSources)
		writeTop("Top source ports", ev.TopPorts)
	}
	if len(ev.Measures) > 0 {
		names := make([]string, 0, len(ev.Measures))
		for k := range ev.Measures {
			names = append(names, k)
		}
		slices.Sort(names)
		line("")
		line("Measures at the peak:")
		for _, k := range names {
			line("  %s: %s", sanitizeLine(k), formatNumber(ev.Measures[k]))
		}
	}
	if a.ID != 0 {
		line("")
		line("Alert #%d", a.ID)
	}
	return strings.TrimRight(b.String(), "\n")
}

// heldLine describes one held-back alert event in a summary.
func heldLine(event string, a *store.Alert) string {
	return fmt.Sprintf("%s %s %s", event, strings.ToUpper(sanitizeLine(a.Severity)), alertSubject(a))
}

// summaryMessage builds the rate limit's summary of n held-back events,
// listing the first few.
func summaryMessage(channel string, rl RateLimitConfig, n int, first []string) *message {
	var b strings.Builder
	fmt.Fprintf(&b, "The rate limit of channel %s (%d messages per %s) held back %d alert events;\n", channel,
		rl.Messages, formatDuration(rl.Per), n)
	b.WriteString("the console's Alerts page lists them all.\n")
	if len(first) > 0 {
		b.WriteString("\nHeld back:\n")
		for _, l := range first {
			b.WriteString("  " + l + "\n")
		}
		if n > len(first) {
			fmt.Fprintf(&b, "  ... and %d more\n", n-len(first))
		}
	}
	return &message{
		event:    eventSummary,
		heldBack: n,
		title:    fmt.Sprintf("[flowbox] %d more alert events were held back by the rate limit", n),
		body:     strings.TrimRight(b.String(), "\n"),
	}
}

// testMessage builds the console's test message.
func testMessage(channel, typ string, now time.Time) *message {
	return &message{
		event: eventTest,
		title: "[flowbox] test message on channel " + channel,
		body: fmt.Sprintf("This is a test message from flowbox on channel %s (%s), sent at %s.\n"+
			"If you can read it, flowbox's alerts will reach you here.", channel, typ, formatTime(now)),
	}
}

// formatTime writes a time in UTC, to the second.
func formatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// formatDuration writes a duration to the second, without its trailing
// zero units ("12m30s", "1m", "2h").
func formatDuration(d time.Duration) string {
	if d < time.Second {
		return d.String()
	}
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// siParts splits a number into three significant digits and an SI
// prefix: 1234567 is ("1.23", "M").
func siParts(v float64) (string, string) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprint(v), ""
	}
	prefixes := []string{"", "k", "M", "G", "T", "P", "E"}
	i := 0
	for math.Abs(v) >= 999.5 && i < len(prefixes)-1 {
		v /= 1000
		i++
	}
	switch {
	case i == 0 && v == math.Trunc(v), math.Abs(v) >= 99.95:
		return fmt.Sprintf("%.0f", v), prefixes[i]
	case math.Abs(v) >= 9.995:
		return fmt.Sprintf("%.1f", v), prefixes[i]
	}
	return fmt.Sprintf("%.2f", v), prefixes[i]
}

// formatUnit writes a quantity with an SI-prefixed unit: "1.23 Gbit/s",
// "420 MB".
func formatUnit(v float64, unit string) string {
	n, p := siParts(v)
	return n + " " + p + unit
}

// formatCount writes a count with an SI prefix: "150k", "3.20M", "12".
func formatCount(v float64) string {
	n, p := siParts(v)
	return n + p
}

// formatNumber writes a measure: shares and ratios with their decimals,
// large numbers with an SI prefix.
func formatNumber(v float64) string {
	if math.Abs(v) >= 1000 {
		return formatCount(v)
	}
	return fmt.Sprintf("%.4g", v)
}

// truncateRunes cuts s to at most n characters, ending it with "…" when
// cut.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	i, count := 0, 0
	for j := range s {
		if count == n-1 {
			i = j
			break
		}
		count++
	}
	return s[:i] + "…"
}
