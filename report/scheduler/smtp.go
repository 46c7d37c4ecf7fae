package scheduler

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/flowbox/flowbox/internal/smtpmail"
)

// smtpSender sends reports through the configured mail server, one SMTP
// session per message (internal/smtpmail).
type smtpSender struct {
	srv  smtpmail.Server
	from *mail.Address
	now  func() time.Time
}

// newSMTPSender builds the sender; it reads the password and CA files.
func newSMTPSender(c SMTPConfig, now func() time.Time) (*smtpSender, error) {
	s := &smtpSender{now: now, srv: smtpmail.Server{
		Addr: net.JoinHostPort(c.Host, strconv.Itoa(c.Port)), StartTLS: smtpmail.StartTLSRequired,
		NoStartTLSHint: "set reports.smtp.insecure: true for a relay on this host",
		TLS:            &tls.Config{ServerName: c.Host, MinVersion: tls.VersionTLS12},
		Username:       c.Username, Helo: smtpmail.HeloName(),
	}}
	if c.Insecure {
		// A relay on this host: STARTTLS when offered, its (often
		// self-signed) certificate unchecked.
		s.srv.StartTLS, s.srv.TLS.InsecureSkipVerify = smtpmail.StartTLSOpportunistic, true
	}
	var err error
	if s.from, err = mail.ParseAddress(c.From); err != nil {
		return nil, fmt.Errorf("from: %q is not an e-mail address: %w", c.From, err)
	}
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("password-file: cannot read it: %w", err)
		}
		s.srv.Password = strings.TrimRight(string(b), "\r\n")
	}
	if c.CAFile != "" {
		if s.srv.TLS.RootCAs, err = smtpmail.CertPool(c.CAFile); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// target returns the mail target of a list of recipients.
func (s *smtpSender) target(to []string) (*mailTarget, error) {
	t := &mailTarget{s: s}
	for _, a := range to {
		addr, err := mail.ParseAddress(a)
		if err != nil {
			return nil, fmt.Errorf("%q is not an e-mail address: %w", a, err)
		}
		t.to = append(t.to, addr)
	}
	return t, nil
}

// isLoopback reports whether host names this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// mailTarget mails a schedule's reports to its recipients.
type mailTarget struct {
	s  *smtpSender
	to []*mail.Address
}

func (t *mailTarget) name() string {
	to := make([]string, len(t.to))
	for i, a := range t.to {
		to[i] = a.Address
	}
	return "mail to " + strings.Join(to, ", ")
}

func (t *mailTarget) kind() string { return "mail" }

// deliver sends the report in one SMTP session: STARTTLS (required
// unless insecure), AUTH PLAIN when a username is set, MAIL, RCPT, DATA.
func (t *mailTarget) deliver(ctx context.Context, d *delivery) error {
	msg, err := t.compose(d)
	if err != nil {
		return err
	}
	to := make([]string, len(t.to))
	for i, a := range t.to {
		to[i] = a.Address
	}
	err = t.s.srv.Send(ctx, t.s.from.Address, to, msg)
	if me := (*smtpmail.Error)(nil); errors.As(err, &me) && me.Permanent {
		return &permanentError{me.Err}
	}
	return err
}

// compose writes the message: a short text (period, rows, totals) and
// the CSV as an attachment.
func (t *mailTarget) compose(d *delivery) ([]byte, error) {
	s := t.s
	now := s.now()
	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", s.from.String())
	to := make([]string, len(t.to))
	for i, a := range t.to {
		to[i] = a.String()
	}
	header("To", strings.Join(to, ", "))
	header("Subject", mime.QEncoding.Encode("utf-8", fmt.Sprintf("flowbox report %s: %s", d.schedule, d.period.label)))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", smtpmail.MessageID(now, s.from.Address))
	header("MIME-Version", "1.0")
	header("Auto-Submitted", "auto-generated")
	header("X-Flowbox-Schedule", d.schedule)
	header("X-Flowbox-Period", d.period.label)
	mw := multipart.NewWriter(&b)
	header("Content-Type", mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": mw.Boundary()}))
	b.WriteString("\r\n")

	text, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {"text/plain; charset=utf-8"},
		"Content-Transfer-Encoding": {"quoted-printable"},
	})
	if err != nil {
		return nil, fmt.Errorf("cannot compose the message: %w", err)
	}
	qp := quotedprintable.NewWriter(text)
	_, _ = qp.Write([]byte(strings.ReplaceAll(summary(d), "\n", "\r\n")))
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("cannot compose the message: %w", err)
	}
	att, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {mime.FormatMediaType("text/csv", map[string]string{"charset": "utf-8", "name": d.file})},
		"Content-Transfer-Encoding": {"base64"},
		"Content-Disposition":       {mime.FormatMediaType("attachment", map[string]string{"filename": d.file})},
	})
	if err != nil {
		return nil, fmt.Errorf("cannot compose the message: %w", err)
	}
	enc := base64.StdEncoding.EncodeToString(d.csv)
	for len(enc) > 76 {
		_, _ = att.Write([]byte(enc[:76] + "\r\n"))
		enc = enc[76:]
	}
	_, _ = att.Write([]byte(enc + "\r\n"))
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("cannot compose the message: %w", err)
	}
	return b.Bytes(), nil
}

// summary is the text of a report's message: its period, rows and
// totals.
func summary(d *delivery) string {
	r := d.report
	var down, up, total uint64
	for i := range r.Rows {
		down += r.Rows[i].DownloadBytes
		up += r.Rows[i].UploadBytes
		total += r.Rows[i].TotalBytes
	}
	const layout = "2006-01-02 15:04 MST"
	var b strings.Builder
	fmt.Fprintf(&b, "flowbox scheduled report %q, by %s\n\n", d.schedule, r.Kind)
	fmt.Fprintf(&b, "Period:   %s (%s to %s)\n", d.period.label, d.period.from.In(d.loc).Format(layout), d.period.to.In(d.loc).Format(layout))
	fmt.Fprintf(&b, "Rows:     %d\n", len(r.Rows))
	fmt.Fprintf(&b, "Download: %s\nUpload:   %s\nTotal:    %s\n", humanBytes(down), humanBytes(up), humanBytes(total))
	if r.Note != "" {
		fmt.Fprintf(&b, "\nNote: %s\n", r.Note)
	}
	if d.catchUp {
		b.WriteString("\nThis report was made late: flowbox was not running when the period closed.\n")
	}
	fmt.Fprintf(&b, "\nThe report is attached as %s.\n", d.file)
	return b.String()
}

// humanBytes writes a byte count in decimal units with the exact count.
func humanBytes(n uint64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	v, i := float64(n), 0
	for v >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.2f %s (%d bytes)", v, units[i], n)
}
