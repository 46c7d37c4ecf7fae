package scheduler

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/flowbox/flowbox/store"
)

// SignatureHeader carries the HMAC-SHA256 of a webhook's body, keyed with
// the secret of secret-file: "sha256=" and the HMAC in hex.
const SignatureHeader = "X-Flowbox-Signature"

// WebhookBody is the JSON a webhook of format json receives.
type WebhookBody struct {
	Schedule string    `json:"schedule"`
	Period   string    `json:"period"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Rows     int       `json:"rows"`
	// CatchUp is true when the report is late: flowbox was not running
	// when the period closed.
	CatchUp bool          `json:"catch_up,omitempty"`
	Report  *store.Report `json:"report"`
}

// webhookTarget posts reports to a URL.
type webhookTarget struct {
	url    string
	shown  string // the URL without its query (which may hold a token)
	format string
	secret []byte
	client *http.Client
}

// newWebhookTarget builds a webhook; it reads the secret file.
func newWebhookTarget(c WebhookConfig) (*webhookTarget, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	shown := *u
	shown.RawQuery, shown.Fragment, shown.User = "", "", nil
	t := &webhookTarget{url: c.URL, shown: shown.String(), format: c.Format,
		// One connection per request: a report a month needs no pool.
		client: &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true}}}
	if c.SecretFile != "" {
		b, err := os.ReadFile(c.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("secret-file: cannot read it: %w", err)
		}
		t.secret = []byte(strings.TrimRight(string(b), "\r\n"))
		if len(t.secret) == 0 {
			return nil, fmt.Errorf("secret-file: %s is empty", c.SecretFile)
		}
	}
	return t, nil
}

func (t *webhookTarget) name() string { return "webhook " + t.shown }
func (t *webhookTarget) kind() string { return "webhook" }

// deliver posts the report; an answer other than 2xx is an error (4xx,
// but 408 and 429, permanent).
func (t *webhookTarget) deliver(ctx context.Context, d *delivery) error {
	body, ctype := d.csv, "text/csv; charset=utf-8"
	if t.format != FormatCSV {
		var err error
		body, err = json.Marshal(WebhookBody{Schedule: d.schedule, Period: d.period.label, From: d.period.from, To: d.period.to,
			Rows: len(d.report.Rows), CatchUp: d.catchUp, Report: d.report})
		if err != nil {
			return fmt.Errorf("cannot encode the report: %w", err)
		}
		ctype = "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return &permanentError{fmt.Errorf("webhook %s: %w", t.shown, err)}
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", "flowbox")
	req.Header.Set("X-Flowbox-Schedule", d.schedule)
	req.Header.Set("X-Flowbox-Period", d.period.label)
	if t.secret != nil {
		req.Header.Set(SignatureHeader, Sign(t.secret, body))
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", t.shown, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("webhook %s answered %s: %q", t.shown, resp.Status, strings.TrimSpace(string(snippet)))
	if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		return &permanentError{err}
	}
	return err
}

// Sign returns the signature header's value of a body: "sha256=" and the
// hex HMAC-SHA256 of body keyed with secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}
