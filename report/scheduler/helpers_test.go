package scheduler

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// fakeReporter makes a small report of every request and remembers the
// requests; it fails the first fail requests.
type fakeReporter struct {
	mu   sync.Mutex
	reqs []store.ReportRequest
	fail int
}

func (f *fakeReporter) Report(_ context.Context, q store.ReportRequest) (*store.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, q)
	if f.fail > 0 {
		f.fail--
		return nil, errors.New("the database is busy")
	}
	return fakeReport(q), nil
}

func (f *fakeReporter) requests() []store.ReportRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

// fakeReport is the report fakeReporter makes of q: two subscribers.
func fakeReport(q store.ReportRequest) *store.Report {
	loc := q.Location
	if loc == nil {
		loc = time.UTC
	}
	row := func(sub string, down, up uint64) store.ReportRow {
		return store.ReportRow{Period: q.Label, From: q.From, To: q.To, RouterID: 1, Router: "tower-1", Subscriber: sub,
			DownloadBytes: down, UploadBytes: up, TotalBytes: down + up,
			PeakDown: store.Rate{BPS: float64(down) / 100, At: q.From.Add(time.Hour)}, PctDown: float64(down) / 300,
			PctUp: float64(up) / 300, PctBillable: float64(down) / 300, Samples: 12,
			TopApps: []store.AppShare{{App: "https", Bytes: down / 2}}}
	}
	return &store.Report{Kind: q.Kind, Label: q.Label, From: q.From, To: q.To, TimeZone: loc.String(),
		Percentile: max(q.Percentile, store.DefaultPercentile), Generated: q.To,
		Rows: []store.ReportRow{row("alice", 3_000_000_000, 400_000_000), row("bob, jr.", 1_000_000, 20_000)}}
}

// memRuns is an in-memory store.ReportRunLog that refuses a second
// success of a period, like the SQLite one.
type memRuns struct {
	mu   sync.Mutex
	runs []store.ReportRun
}

var _ store.ReportRunLog = (*memRuns)(nil)

func (m *memRuns) AddReportRun(_ context.Context, r *store.ReportRun) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r.ID = int64(len(m.runs) + 1)
	m.runs = append(m.runs, *r)
	return nil
}

func (m *memRuns) FinishReportRun(_ context.Context, r *store.ReportRun) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.ID < 1 || int(r.ID) > len(m.runs) {
		return fmt.Errorf("run %d: %w", r.ID, store.ErrNotFound)
	}
	if r.OK {
		for _, o := range m.runs {
			if o.ID != r.ID && o.OK && o.Schedule == r.Schedule && o.From.Equal(r.From) {
				return fmt.Errorf("run %d: period %s of %s succeeded already (run %d)", r.ID, r.Period, r.Schedule, o.ID)
			}
		}
	}
	m.runs[r.ID-1] = *r
	return nil
}

func (m *memRuns) ReportRuns(_ context.Context, limit int) ([]store.ReportRun, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := slices.Clone(m.runs)
	slices.Reverse(out)
	return out[:min(len(out), limit)], nil
}

func (m *memRuns) ScheduleRuns(_ context.Context, schedule string, limit int) ([]store.ReportRun, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.ReportRun
	for _, r := range m.runs {
		if r.Schedule == schedule {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b store.ReportRun) int {
		if c := b.From.Compare(a.From); c != 0 {
			return c
		}
		return int(b.ID - a.ID)
	})
	return out[:min(len(out), limit)], nil
}

func (m *memRuns) LastReportRuns(context.Context) ([]store.ReportRun, error) {
	return nil, errors.New("not used by the scheduler")
}

// all returns every run, oldest first.
func (m *memRuns) all() []store.ReportRun {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.runs)
}

// smtpMessage is a message the test SMTP server accepted.
type smtpMessage struct {
	From string
	To   []string
	Data string
	TLS  bool
	User string
}

// smtpServer is a minimal SMTP server on loopback for the tests: EHLO,
// optional STARTTLS and AUTH PLAIN, MAIL, RCPT, DATA (recorded), QUIT.
type smtpServer struct {
	ln         net.Listener
	tls        *tls.Config // STARTTLS is offered when set
	user, pass string      // AUTH PLAIN is required when user is set
	wg         sync.WaitGroup

	mu       sync.Mutex
	failData int // DATA is refused (451) this many times
	msgs     []smtpMessage
}

// startSMTPServer starts srv's listener on 127.0.0.1 and stops it at the
// test's end. It must be called outside a synctest bubble.
func startSMTPServer(t *testing.T, srv *smtpServer) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.ln = ln
	srv.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			srv.wg.Go(func() { srv.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		srv.wg.Wait()
	})
	return srv
}

// port returns the server's port.
func (s *smtpServer) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *smtpServer) messages() []smtpMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

func (s *smtpServer) serve(conn net.Conn) {
	defer func() { conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	tp := textproto.NewConn(conn)
	reply := func(format string, args ...any) { _ = tp.PrintfLine(format, args...) }
	reply("220 test ESMTP")
	var (
		msg    smtpMessage
		isTLS  bool
		authed string
	)
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			reply("250-test")
			if s.tls != nil && !isTLS {
				reply("250-STARTTLS")
			}
			if s.user != "" {
				reply("250-AUTH PLAIN")
			}
			reply("250 8BITMIME")
		case "HELO", "NOOP":
			reply("250 ok")
		case "RSET":
			msg = smtpMessage{}
			reply("250 ok")
		case "STARTTLS":
			if s.tls == nil || isTLS {
				reply("502 no")
				continue
			}
			reply("220 go ahead")
			tc := tls.Server(conn, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			conn, tp, isTLS = tc, textproto.NewConn(tc), true
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			b, err := base64.StdEncoding.DecodeString(resp)
			parts := strings.Split(string(b), "\x00")
			if !strings.EqualFold(mech, "PLAIN") || err != nil || len(parts) != 3 || parts[1] != s.user || parts[2] != s.pass {
				reply("535 5.7.8 authentication failed")
				continue
			}
			authed = parts[1]
			reply("235 2.7.0 ok")
		case "MAIL":
			if s.user != "" && authed == "" {
				reply("530 5.7.0 authentication required")
				continue
			}
			msg = smtpMessage{From: pathArg(arg, "FROM:"), TLS: isTLS, User: authed}
			reply("250 ok")
		case "RCPT":
			msg.To = append(msg.To, pathArg(arg, "TO:"))
			reply("250 ok")
		case "DATA":
			reply("354 go ahead")
			b, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			s.mu.Lock()
			fail := s.failData > 0
			if fail {
				s.failData--
			} else {
				msg.Data = string(b)
				s.msgs = append(s.msgs, msg)
			}
			s.mu.Unlock()
			if fail {
				reply("451 4.3.0 try again later")
			} else {
				reply("250 queued")
			}
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 unknown command")
		}
	}
}

// testCert writes a self-signed certificate for 127.0.0.1, valid from
// 1999 to 2100 (synctest's clock starts in 2000), and returns the
// server's TLS configuration and the certificate's path (a CA file).
func testCert(t *testing.T) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "flowbox test smtp"},
		NotBefore:             time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, path
}

// writeFile writes a secret file and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// pathArg returns the address of a MAIL FROM or RCPT TO argument
// ("FROM:<a@b> BODY=8BITMIME").
func pathArg(arg, prefix string) string {
	a, _ := strings.CutPrefix(arg, prefix)
	a, _, _ = strings.Cut(a, " ")
	return strings.Trim(a, "<>")
}

// base64Reader decodes a base64 body with line breaks.
func base64Reader(s string) io.Reader {
	return base64.NewDecoder(base64.StdEncoding, strings.NewReader(strings.NewReplacer("\r", "", "\n", "").Replace(s)))
}

func itoa(n int) string { return strconv.Itoa(n) }
