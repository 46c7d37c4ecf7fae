// Package smtpmail delivers one composed message per SMTP session: the
// dial (plain or implicit TLS), STARTTLS, AUTH PLAIN, MAIL, RCPT and DATA,
// each failure classified as permanent (a 5xx reply, a rejected
// certificate, a server lacking what the configuration requires) or worth
// another attempt. Alert notifications (alerts/notify) and scheduled
// reports (report/scheduler) send their mail through it.
package smtpmail

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"time"
)

// STARTTLS policies of a Server (without implicit TLS).
const (
	// StartTLSRequired refuses a server that does not offer STARTTLS.
	StartTLSRequired = "required"
	// StartTLSOpportunistic uses STARTTLS when the server offers it.
	StartTLSOpportunistic = "opportunistic"
	// StartTLSNone never uses STARTTLS.
	StartTLSNone = "none"
)

// Server is a mail server and how to talk to it.
type Server struct {
	// Addr is host:port; the host names the server for TLS and AUTH.
	Addr string
	// ImplicitTLS connects with TLS from the start (port 465); otherwise
	// StartTLS is the policy ("" is StartTLSRequired).
	ImplicitTLS bool
	StartTLS    string
	// NoStartTLSHint ends the error of a server that does not offer the
	// required STARTTLS: what to configure instead.
	NoStartTLSHint string
	// TLS is the client configuration of TLS and STARTTLS.
	TLS *tls.Config
	// Username, when set, authenticates with AUTH PLAIN.
	Username, Password string
	// Helo is the name to greet the server with (HeloName()).
	Helo string
}

// Error is a failed delivery. Permanent is true when another attempt
// cannot succeed without a change of configuration.
type Error struct {
	Err       error
	Permanent bool
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// IsCertError reports whether err is a rejected server certificate: a
// configuration problem (a CA file, the server's name) that another
// attempt does not solve.
func IsCertError(err error) bool {
	var ce *tls.CertificateVerificationError
	return errors.As(err, &ce)
}

// stepError classifies a failed SMTP step: a 5xx reply (RFC 5321) and a
// rejected certificate are permanent; anything else (4xx, network) is
// worth another attempt.
func stepError(err error, format string, args ...any) *Error {
	var te *textproto.Error
	permanent := errors.As(err, &te) && te.Code >= 500 || IsCertError(err)
	return &Error{Err: fmt.Errorf(format+": %w", append(args, err)...), Permanent: permanent}
}

// Send delivers msg (headers and body, CRLF lines) from one address to
// recipients in one session. Cancelling ctx closes the connection under
// whatever step is waiting; the ctx deadline bounds the session. Errors
// are *Error.
func (s *Server) Send(ctx context.Context, from string, to []string, msg []byte) error {
	var (
		conn net.Conn
		err  error
	)
	if s.ImplicitTLS {
		d := &tls.Dialer{NetDialer: &net.Dialer{}, Config: s.TLS}
		conn, err = d.DialContext(ctx, "tcp", s.Addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", s.Addr)
	}
	if err != nil {
		return &Error{Err: fmt.Errorf("cannot connect to %s: %w", s.Addr, err), Permanent: IsCertError(err)}
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if err := s.session(conn, from, to, msg); err != nil {
		if ctx.Err() != nil {
			return &Error{Err: fmt.Errorf("%v: %w", err, ctx.Err())}
		}
		return err
	}
	return nil
}

// session speaks SMTP on an open connection.
func (s *Server) session(conn net.Conn, from string, to []string, msg []byte) *Error {
	host, _, _ := net.SplitHostPort(s.Addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return stepError(err, "smtp %s: no greeting", s.Addr)
	}
	defer c.Close()
	if err := c.Hello(s.Helo); err != nil {
		return stepError(err, "smtp %s: HELO refused", s.Addr)
	}
	if !s.ImplicitTLS && s.StartTLS != StartTLSNone {
		offered, _ := c.Extension("STARTTLS")
		switch {
		case offered:
			if err := c.StartTLS(s.TLS); err != nil {
				return stepError(err, "smtp %s: STARTTLS failed", s.Addr)
			}
		case s.StartTLS == StartTLSRequired || s.StartTLS == "":
			return &Error{Err: fmt.Errorf("smtp %s: the server does not offer STARTTLS (%s)", s.Addr, s.NoStartTLSHint), Permanent: true}
		}
	}
	if s.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return &Error{Err: fmt.Errorf("smtp %s: the server offers no authentication (AUTH) but username is set", s.Addr), Permanent: true}
		}
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, host)); err != nil {
			e := stepError(err, "smtp %s: cannot authenticate as %q", s.Addr, s.Username)
			if m := err.Error(); m == "unencrypted connection" || m == "wrong host name" {
				e.Permanent = true // refused by net/smtp itself, before sending the password
			}
			return e
		}
	}
	if err := c.Mail(from); err != nil {
		return stepError(err, "smtp %s: sender %s refused", s.Addr, from)
	}
	for _, a := range to {
		if err := c.Rcpt(a); err != nil {
			return stepError(err, "smtp %s: recipient %s refused", s.Addr, a)
		}
	}
	w, err := c.Data()
	if err != nil {
		return stepError(err, "smtp %s: DATA refused", s.Addr)
	}
	if _, err := w.Write(msg); err != nil {
		return stepError(err, "smtp %s: cannot send the message", s.Addr)
	}
	if err := w.Close(); err != nil {
		return stepError(err, "smtp %s: message refused", s.Addr)
	}
	_ = c.Quit() // the message is accepted; a failing QUIT changes nothing
	return nil
}

// CertPool reads the PEM certificates of a CA file.
func CertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("ca-file: cannot read it: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca-file: %s holds no PEM certificate", file)
	}
	return pool, nil
}

// HeloName is the host's name when it is a plausible domain name,
// "localhost" otherwise.
func HeloName() string {
	h, err := os.Hostname()
	if err != nil || h == "" || len(h) > 253 || strings.ContainsFunc(h, func(r rune) bool {
		return !(r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) {
		return "localhost"
	}
	return h
}

// MessageID returns a unique Message-ID in the sender's domain.
func MessageID(now time.Time, from string) string {
	domain := "flowbox.invalid"
	if i := strings.LastIndexByte(from, '@'); i >= 0 && i < len(from)-1 {
		domain = from[i+1:]
	}
	var r [8]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("<%d.%s.flowbox@%s>", now.UnixNano(), hex.EncodeToString(r[:]), domain)
}
