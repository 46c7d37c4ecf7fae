package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/flowbox/flowbox/internal/smtpmail"
	"github.com/flowbox/flowbox/store"
)

// Message size limits of the chat services.
const (
	// discordLimit is the most characters of a Discord message's content.
	discordLimit = 2000
	// telegramLimit is the most characters of a Telegram message.
	telegramLimit = 4096
	// slackLimit keeps a Slack message well under the 40000 characters
	// Slack truncates at.
	slackLimit = 3900
)

// maxErrorBody bounds what is read of a failed answer for the error text.
const maxErrorBody = 4096

// sender delivers one message on a channel. It is safe for concurrent use
// (a test message may go while the worker delivers).
type sender interface {
	send(ctx context.Context, m *message) error
}

// deliveryError is a failed delivery: permanent ones (the request itself
// is wrong: an HTTP 4xx, an SMTP 5xx) are not tried again; retryAfter is
// the server's Retry-After.
type deliveryError struct {
	err        error
	permanent  bool
	retryAfter time.Duration
}

func (e *deliveryError) Error() string { return e.err.Error() }
func (e *deliveryError) Unwrap() error { return e.err }

// httpSender POSTs a JSON body built by encode to a URL.
type httpSender struct {
	client  *http.Client
	typ     string
	url     string
	headers map[string]string
	encode  func(m *message) any
}

// send POSTs the message and checks the answer's status.
func (s *httpSender) send(ctx context.Context, m *message) error {
	body, err := json.Marshal(s.encode(m))
	if err != nil {
		return &deliveryError{err: fmt.Errorf("cannot encode the %s message: %w", s.typ, err), permanent: true}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return &deliveryError{err: errors.New("cannot build the request: invalid URL"), permanent: true}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "flowbox")
	for k, v := range s.headers {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		// *url.Error repeats the URL, which may hold a token: keep only
		// the host and the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &deliveryError{err: fmt.Errorf("cannot post to %s: %w", redactURL(s.url), err), permanent: smtpmail.IsCertError(err)}
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	text, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	detail := strings.TrimSpace(sanitizeLine(string(text)))
	if s.typ == TypeTelegram {
		var tg struct {
			Description string `json:"description"`
		}
		if json.Unmarshal(text, &tg) == nil && tg.Description != "" {
			detail = sanitizeLine(tg.Description)
		}
	}
	msg := fmt.Sprintf("%s answered %s", redactURL(s.url), resp.Status)
	if detail != "" {
		msg += ": " + truncateRunes(detail, 200)
	}
	de := &deliveryError{err: errors.New(msg)}
	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		de.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	case code == http.StatusRequestTimeout || code == http.StatusTooEarly:
	case code >= 400 && code < 500:
		de.permanent = true
	}
	return de
}

// parseRetryAfter reads a Retry-After header: seconds, or an HTTP date
// (relative to now, the real clock, as the server's is). 0 when absent or
// unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, 24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// webhookPayload is the generic webhook's body: the alert event as
// store.AlertEvent encodes it, with the message's title and text.
type webhookPayload struct {
	Event string       `json:"event"`
	Alert *store.Alert `json:"alert,omitempty"`
	// HeldBack is the count of a rate limit summary.
	HeldBack int    `json:"held_back,omitempty"`
	Channel  string `json:"channel"`
	Title    string `json:"title"`
	Text     string `json:"text"`
}

// webhookBody encodes a message for a generic webhook.
func webhookBody(channel string) func(m *message) any {
	return func(m *message) any {
		return webhookPayload{Event: m.event, Alert: m.alert, HeldBack: m.heldBack, Channel: channel,
			Title: m.title, Text: m.title + "\n\n" + m.body}
	}
}

// slackEscape escapes the characters Slack's mrkdwn reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// slackBody encodes a message for a Slack incoming webhook: the title in
// bold, the text as a preformatted block.
func slackBody(m *message) any {
	body := strings.ReplaceAll(m.body, "```", "'''")
	text := "*" + slackEscape(m.title) + "*\n```\n" + slackEscape(truncateRunes(body, slackLimit)) + "\n```"
	return map[string]string{"text": text}
}

// discordEscape escapes Discord's markdown in a title.
func discordEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "*", `\*`, "_", `\_`, "~", `\~`, "`", "\\`", "|", `\|`).Replace(s)
}

// discordContent is a Discord message's content: the title in bold and
// the text as a code block, within discordLimit characters.
func discordContent(m *message) string {
	head := "**" + discordEscape(truncateRunes(m.title, 256)) + "**\n```\n"
	const tail = "\n```"
	body := strings.ReplaceAll(m.body, "```", "'''")
	room := discordLimit - len([]rune(head)) - len([]rune(tail))
	return head + truncateRunes(body, room) + tail
}

// discordBody encodes a message for a Discord webhook; mentions are
// disabled, so that no text from the flows can ping anyone.
func discordBody(m *message) any {
	return map[string]any{
		"content":          discordContent(m),
		"allowed_mentions": map[string]any{"parse": []string{}},
	}
}

// telegramBody encodes a message for the Bot API's sendMessage, as plain
// text.
func telegramBody(chatID string) func(m *message) any {
	return func(m *message) any {
		return map[string]any{
			"chat_id":                  chatID,
			"text":                     truncateRunes(m.title+"\n\n"+m.body, telegramLimit),
			"disable_web_page_preview": true,
		}
	}
}
