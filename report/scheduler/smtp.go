package scheduler

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"time"
)

// smtpSender sends reports through the configured mail server, one SMTP
// session per message.
type smtpSender struct {
	addr, host string
	insecure   bool
	tlsConfig  *tls.Config
	username   string
	password   string
	from       *mail.Address
	helo       string
	now        func() time.Time
}

// newSMTPSender builds the sender; it reads the password and CA files.
func newSMTPSender(c SMTPConfig, now func() time.Time) (*smtpSender, error) {
	s := &smtpSender{
		addr: net.JoinHostPort(c.Host, strconv.Itoa(c.Port)), host: c.Host, insecure: c.Insecure,
		username: c.Username, helo: heloName(), now: now,
		tlsConfig: &tls.Config{ServerName: c.Host, MinVersion: tls.VersionTLS12},
	}
	if c.Insecure {
		// A relay on this host: STARTTLS when offered, its (often
		// self-signed) certificate unchecked.
		s.tlsConfig.InsecureSkipVerify = true
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
		s.password = strings.TrimRight(string(b), "\r\n")
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca-file: cannot read it: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca-file: %s holds no PEM certificate", c.CAFile)
		}
		s.tlsConfig.RootCAs = pool
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

// heloName is the host's name when it is a plausible domain name,
// "localhost" otherwise.
func heloName() string {
	h, err := os.Hostname()
	if err != nil || h == "" || len(h) > 253 || strings.ContainsFunc(h, func(r rune) bool {
		return !(r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) {
		return "localhost"
	}
	return h
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

// smtpError wraps a failed SMTP step: a 5xx reply (RFC 5321) and a
// rejected certificate are permanent, anything else (4xx, network) is
// worth another attempt.
func smtpError(err error, format string, args ...any) error {
	err = fmt.Errorf(format+": %w", append(args, err)...)
	var te *textproto.Error
	var ce *tls.CertificateVerificationError
	if errors.As(err, &te) && te.Code >= 500 || errors.As(err, &ce) {
		return &permanentError{err}
	}
	return err
}

// deliver sends the report in one SMTP session: STARTTLS (required
// unless insecure), AUTH PLAIN when a username is set, MAIL, RCPT, DATA.
func (t *mailTarget) deliver(ctx context.Context, d *delivery) error {
	s := t.s
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("cannot connect to %s: %w", s.addr, err)
	}
	defer conn.Close()
	// Cancelling ctx (shutdown, timeout) closes the connection under
	// whatever step is waiting.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	err = t.session(conn, d)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	return err
}

// session speaks SMTP on an open connection.
func (t *mailTarget) session(conn net.Conn, d *delivery) error {
	s := t.s
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		return smtpError(err, "smtp %s: no greeting", s.addr)
	}
	defer c.Close()
	if err := c.Hello(s.helo); err != nil {
		return smtpError(err, "smtp %s: HELO refused", s.addr)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(s.tlsConfig); err != nil {
			return smtpError(err, "smtp %s: STARTTLS failed", s.addr)
		}
	} else if !s.insecure {
		return &permanentError{fmt.Errorf("smtp %s: the server does not offer STARTTLS "+
			"(set reports.smtp.insecure: true for a relay on this host)", s.addr)}
	}
	if s.username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return &permanentError{fmt.Errorf("smtp %s: the server offers no authentication (AUTH) but username is set", s.addr)}
		}
		if err := c.Auth(smtp.PlainAuth("", s.username, s.password, s.host)); err != nil {
			wrapped := smtpError(err, "smtp %s: cannot authenticate as %q", s.addr, s.username)
			if m := err.Error(); m == "unencrypted connection" || m == "wrong host name" {
				// Refused by net/smtp itself, before sending the password.
				return &permanentError{wrapped}
			}
			return wrapped
		}
	}
	if err := c.Mail(s.from.Address); err != nil {
		return smtpError(err, "smtp %s: sender %s refused", s.addr, s.from.Address)
	}
	for _, to := range t.to {
		if err := c.Rcpt(to.Address); err != nil {
			return smtpError(err, "smtp %s: recipient %s refused", s.addr, to.Address)
		}
	}
	w, err := c.Data()
	if err != nil {
		return smtpError(err, "smtp %s: DATA refused", s.addr)
	}
	msg, err := t.compose(d)
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return smtpError(err, "smtp %s: cannot send the message", s.addr)
	}
	if err := w.Close(); err != nil {
		return smtpError(err, "smtp %s: message refused", s.addr)
	}
	_ = c.Quit() // the message is accepted; a failing QUIT changes nothing
	return nil
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
	header("Message-ID", messageID(now, s.from.Address))
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

// messageID returns a unique Message-ID in the sender's domain.
func messageID(now time.Time, from string) string {
	domain := "flowbox.invalid"
	if i := strings.LastIndexByte(from, '@'); i >= 0 && i < len(from)-1 {
		domain = from[i+1:]
	}
	var r [8]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("<%d.%s.flowbox@%s>", now.UnixNano(), hex.EncodeToString(r[:]), domain)
}
