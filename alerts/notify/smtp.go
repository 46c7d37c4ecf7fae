package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
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

// smtpSender sends each message in its own SMTP session.
type smtpSender struct {
	addr, host string
	// implicitTLS connects with TLS from the start (port 465); otherwise
	// starttls says whether STARTTLS is required, opportunistic or none.
	implicitTLS bool
	starttls    string
	tlsConfig   *tls.Config
	username    string
	password    string
	from        *mail.Address
	to          []*mail.Address
	// helo is the name flowbox greets the server with.
	helo string
	// timeout bounds the whole session (the context bounds it too).
	timeout time.Duration
	// now dates the message (Date and Message-ID).
	now func() time.Time
}

// newSMTPSender builds the sender of an e-mail channel; the addresses
// were validated, the password read.
func newSMTPSender(ch ChannelConfig, password string, timeout time.Duration, now func() time.Time) (*smtpSender, error) {
	host, _, err := net.SplitHostPort(ch.SMTP)
	if err != nil {
		return nil, fmt.Errorf("smtp: %q is not a host:port address", ch.SMTP)
	}
	s := &smtpSender{
		addr: ch.SMTP, host: host, implicitTLS: ch.TLS, starttls: ch.StartTLS,
		username: ch.Username, password: password, helo: heloName(), timeout: timeout, now: now,
		tlsConfig: &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12},
	}
	if s.starttls == "" {
		s.starttls = StartTLSRequired
	}
	if ch.CAFile != "" {
		pem, err := os.ReadFile(ch.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca-file: cannot read it: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca-file: %s holds no PEM certificate", ch.CAFile)
		}
		s.tlsConfig.RootCAs = pool
	}
	if s.from, err = mail.ParseAddress(ch.From); err != nil {
		return nil, fmt.Errorf("from: %q is not an e-mail address: %w", ch.From, err)
	}
	for _, to := range ch.To {
		a, err := mail.ParseAddress(to)
		if err != nil {
			return nil, fmt.Errorf("to: %q is not an e-mail address: %w", to, err)
		}
		s.to = append(s.to, a)
	}
	return s, nil
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

// isCertError reports whether err is a rejected server certificate: a
// configuration problem (ca-file, the server's name) that another attempt
// does not solve.
func isCertError(err error) bool {
	var ce *tls.CertificateVerificationError
	return errors.As(err, &ce)
}

// smtpError classifies a failed SMTP step: a 5xx reply is permanent
// (RFC 5321), and so is a rejected certificate; anything else (4xx,
// network) is worth another attempt.
func smtpError(err error, format string, args ...any) error {
	var te *textproto.Error
	permanent := errors.As(err, &te) && te.Code >= 500 || isCertError(err)
	return &deliveryError{err: fmt.Errorf(format+": %w", append(args, err)...), permanent: permanent}
}

// send delivers one message: connect (TLS or STARTTLS), authenticate,
// MAIL, RCPT for each recipient, DATA.
func (s *smtpSender) send(ctx context.Context, m *message) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var (
		conn net.Conn
		err  error
	)
	if s.implicitTLS {
		d := &tls.Dialer{NetDialer: &net.Dialer{}, Config: s.tlsConfig}
		conn, err = d.DialContext(ctx, "tcp", s.addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", s.addr)
	}
	if err != nil {
		return &deliveryError{err: fmt.Errorf("cannot connect to %s: %w", s.addr, err), permanent: isCertError(err)}
	}
	defer conn.Close()
	// The session follows the context: cancelling it (shutdown, timeout)
	// closes the connection under whatever step is waiting.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	err = s.session(conn, m)
	if err != nil && ctx.Err() != nil {
		return &deliveryError{err: fmt.Errorf("%v: %w", err, ctx.Err())}
	}
	return err
}

// session speaks SMTP on an open connection.
func (s *smtpSender) session(conn net.Conn, m *message) error {
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		return smtpError(err, "smtp %s: no greeting", s.addr)
	}
	defer c.Close()
	if err := c.Hello(s.helo); err != nil {
		return smtpError(err, "smtp %s: HELO refused", s.addr)
	}
	if !s.implicitTLS && s.starttls != StartTLSNone {
		offered, _ := c.Extension("STARTTLS")
		switch {
		case offered:
			if err := c.StartTLS(s.tlsConfig); err != nil {
				return smtpError(err, "smtp %s: STARTTLS failed", s.addr)
			}
		case s.starttls == StartTLSRequired:
			return &deliveryError{err: fmt.Errorf("smtp %s: the server does not offer STARTTLS "+
				"(starttls: required; set starttls: opportunistic or none to send unencrypted)", s.addr), permanent: true}
		}
	}
	if s.username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return &deliveryError{err: fmt.Errorf("smtp %s: the server offers no authentication (AUTH) "+
				"but username is set", s.addr), permanent: true}
		}
		if err := c.Auth(smtp.PlainAuth("", s.username, s.password, s.host)); err != nil {
			de := smtpError(err, "smtp %s: cannot authenticate as %q", s.addr, s.username).(*deliveryError)
			if msg := err.Error(); msg == "unencrypted connection" || msg == "wrong host name" {
				de.permanent = true // refused by net/smtp itself, before sending the password
			}
			return de
		}
	}
	if err := c.Mail(s.from.Address); err != nil {
		return smtpError(err, "smtp %s: sender %s refused", s.addr, s.from.Address)
	}
	for _, to := range s.to {
		if err := c.Rcpt(to.Address); err != nil {
			return smtpError(err, "smtp %s: recipient %s refused", s.addr, to.Address)
		}
	}
	w, err := c.Data()
	if err != nil {
		return smtpError(err, "smtp %s: DATA refused", s.addr)
	}
	if _, err := w.Write(s.compose(m)); err != nil {
		return smtpError(err, "smtp %s: cannot send the message", s.addr)
	}
	if err := w.Close(); err != nil {
		return smtpError(err, "smtp %s: message refused", s.addr)
	}
	_ = c.Quit() // the message is accepted; a failing QUIT changes nothing
	return nil
}

// compose writes the message: headers, then the text, quoted-printable
// in UTF-8.
func (s *smtpSender) compose(m *message) []byte {
	now := s.now()
	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", s.from.String())
	to := make([]string, len(s.to))
	for i, a := range s.to {
		to[i] = a.String()
	}
	header("To", strings.Join(to, ", "))
	header("Subject", mime.QEncoding.Encode("utf-8", sanitizeLine(m.title)))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", messageID(now, s.from.Address))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	header("Auto-Submitted", "auto-generated")
	header("X-Flowbox-Event", m.event)
	if id := m.alertID(); id != 0 {
		header("X-Flowbox-Alert-ID", strconv.FormatInt(id, 10))
	}
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(strings.ReplaceAll(m.body, "\n", "\r\n") + "\r\n"))
	_ = qp.Close()
	return b.Bytes()
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
