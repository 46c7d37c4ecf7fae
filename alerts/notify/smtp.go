package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/flowbox/flowbox/internal/smtpmail"
)

// smtpSender sends each message in its own SMTP session
// (internal/smtpmail).
type smtpSender struct {
	srv  smtpmail.Server
	from *mail.Address
	to   []*mail.Address
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
		srv: smtpmail.Server{
			Addr: ch.SMTP, ImplicitTLS: ch.TLS, StartTLS: ch.StartTLS,
			NoStartTLSHint: "starttls: required; set starttls: opportunistic or none to send unencrypted",
			TLS:            &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12},
			Username:       ch.Username, Password: password, Helo: smtpmail.HeloName(),
		},
		timeout: timeout, now: now,
	}
	if ch.CAFile != "" {
		if s.srv.TLS.RootCAs, err = smtpmail.CertPool(ch.CAFile); err != nil {
			return nil, err
		}
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

// send delivers one message within the channel's timeout.
func (s *smtpSender) send(ctx context.Context, m *message) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	to := make([]string, len(s.to))
	for i, a := range s.to {
		to[i] = a.Address
	}
	err := s.srv.Send(ctx, s.from.Address, to, s.compose(m))
	if me := (*smtpmail.Error)(nil); errors.As(err, &me) {
		return &deliveryError{err: me.Err, permanent: me.Permanent}
	}
	return err
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
	header("Message-ID", smtpmail.MessageID(now, s.from.Address))
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
