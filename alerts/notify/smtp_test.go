package notify

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
)

// The SMTP tests run a real server on loopback: testdata/smtpd.py on
// Python's aiosmtpd (Debian package python3-aiosmtpd).

const (
	smtpUser     = "flowbox"
	smtpPassword = "s3cret-Pa55"
)

// aiosmtpdPython returns a Python interpreter that can import aiosmtpd;
// without one the test is skipped, or fails when FLOWBOX_FUNCTIONAL_TESTS=1.
func aiosmtpdPython(t *testing.T) string {
	t.Helper()
	candidates := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil && p != "/usr/bin/python3" {
		candidates = append(candidates, p)
	}
	var problems []string
	for _, py := range candidates {
		out, err := exec.Command(py, "-c", "import aiosmtpd").CombinedOutput()
		if err == nil {
			return py
		}
		problems = append(problems, fmt.Sprintf("%s: %v %s", py, err, strings.TrimSpace(string(out))))
	}
	msg := "no Python with aiosmtpd (install python3-aiosmtpd): " + strings.Join(problems, "; ")
	if len(problems) == 0 {
		msg = "no python3 (install python3-aiosmtpd)"
	}
	if os.Getenv(testutil.FunctionalEnv) == "1" {
		t.Fatalf("%s (%s=1)", msg, testutil.FunctionalEnv)
	}
	t.Skip(msg)
	return ""
}

// writeTestCert writes a self-signed certificate for 127.0.0.1 and its
// key, and returns their paths (the certificate is its own CA).
func writeTestCert(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "flowbox test smtp"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// smtpServer is a running testdata/smtpd.py.
type smtpServer struct {
	addr   string
	outDir string
	cert   string
}

// startSMTPD starts testdata/smtpd.py in a mode (starttls, implicit,
// plain) and stops it at the test's end.
func startSMTPD(t *testing.T, mode string) *smtpServer {
	t.Helper()
	py := aiosmtpdPython(t)
	dir := t.TempDir()
	s := &smtpServer{outDir: filepath.Join(dir, "out")}
	if err := os.Mkdir(s.outDir, 0o700); err != nil {
		t.Fatal(err)
	}
	args := []string{"testdata/smtpd.py", mode, s.outDir}
	if mode != "plain" {
		var key string
		s.cert, key = writeTestCert(t, dir)
		args = append(args, s.cert, key, smtpUser, smtpPassword)
	}
	cmd := exec.Command(py, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = stdin.Close() // the server exits when its input closes
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("smtpd.py stderr:\n%s", stderr.String())
		}
	})
	port := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		port <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case p := <-port:
		if p == "" {
			t.Fatalf("smtpd.py did not start: %s", stderr.String())
		}
		s.addr = net.JoinHostPort("127.0.0.1", p)
	case <-time.After(30 * time.Second):
		t.Fatalf("smtpd.py did not print its port within 30s: %s", stderr.String())
	}
	return s
}

// smtpRecord is a message smtpd.py accepted.
type smtpRecord struct {
	MailFrom string   `json:"mail_from"`
	RcptTos  []string `json:"rcpt_tos"`
	TLS      bool     `json:"tls"`
	Login    *string  `json:"login"`
	Data     string   `json:"data"`
}

// messages returns the messages accepted so far, in order.
func (s *smtpServer) messages(t *testing.T) []smtpRecord {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(s.outDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(names, func(a, b string) int { return len(a) - len(b) }) // 1..9 before 10..
	var out []smtpRecord
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var r smtpRecord
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, r)
	}
	return out
}

// waitMessages waits until the server accepted n messages.
func (s *smtpServer) waitMessages(t *testing.T, n int) []smtpRecord {
	t.Helper()
	var got []smtpRecord
	testutil.WaitFor(t, 20*time.Second, fmt.Sprintf("%d messages", n), func() (bool, string) {
		got = s.messages(t)
		return len(got) >= n, fmt.Sprintf("%d messages", len(got))
	})
	return got
}

// emailChannel returns an e-mail channel on the server.
func (s *smtpServer) emailChannel(name string) ChannelConfig {
	return ChannelConfig{Name: name, Type: TypeEmail, SMTP: s.addr, CAFile: s.cert,
		From: "Flowbox Alerts <flowbox@example.net>", To: []string{"noc@example.net", "Ops Team <ops@example.org>"}}
}

// parsed is a received message, parsed.
type parsed struct {
	header mail.Header
	body   string
}

func parseMessage(t *testing.T, data string) parsed {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(data))
	if err != nil {
		t.Fatalf("cannot parse the message: %v\n%s", err, data)
	}
	if cte := m.Header.Get("Content-Transfer-Encoding"); cte != "quoted-printable" {
		t.Errorf("Content-Transfer-Encoding = %q", cte)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatalf("cannot decode the body: %v", err)
	}
	return parsed{header: m.Header, body: string(body)}
}

// TestEmailSTARTTLSAndAuth: opened and resolved messages go through a
// server that requires STARTTLS and authentication (only over TLS), with
// their headers and evidence; a wrong password and an untrusted
// certificate are clear failures, counted.
func TestEmailSTARTTLSAndAuth(t *testing.T) {
	srv := startSMTPD(t, "starttls")
	pwFile := filepath.Join(t.TempDir(), "smtp-password")
	if err := os.WriteFile(pwFile, []byte(smtpPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := srv.emailChannel("mail")
	good.Username, good.PasswordFile = smtpUser, pwFile
	wrong := srv.emailChannel("wrong-password")
	wrong.Username, wrong.Password = smtpUser, "not-the-password"
	untrusted := srv.emailChannel("untrusted")
	untrusted.CAFile = ""
	now := time.Date(2026, 3, 4, 5, 20, 0, 0, time.UTC)
	log := &memLog{}
	n, err := New(testConfig(good, wrong, untrusted), Deps{Log: log, Now: func() time.Time { return now }, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	stop := runNotifier(t, n)
	defer stop()
	a := testAlert(42)
	n.AlertChanged(opened(a))
	n.AlertChanged(resolved(a))
	msgs := srv.waitMessages(t, 2)
	testutil.WaitFor(t, 20*time.Second, "the failed deliveries to be dropped", func() (bool, string) {
		w, u := statusOf(t, n, "wrong-password"), statusOf(t, n, "untrusted")
		return w.Dropped == 2 && u.Dropped == 2, fmt.Sprintf("wrong-password %+v, untrusted %+v", w, u)
	})

	titles := []string{
		"[flowbox] CRITICAL udp-amplification on 100.64.1.23 (Maria Garcia) at wisp-1",
		"[flowbox] RESOLVED udp-amplification on 100.64.1.23 (Maria Garcia) at wisp-1 after 12m30s",
	}
	var ids []string
	for i, rec := range msgs[:2] {
		if !rec.TLS {
			t.Errorf("message %d was not sent over TLS", i)
		}
		if rec.Login == nil || *rec.Login != smtpUser {
			t.Errorf("message %d login = %v, want %q", i, rec.Login, smtpUser)
		}
		if rec.MailFrom != "flowbox@example.net" || !slices.Equal(rec.RcptTos, []string{"noc@example.net", "ops@example.org"}) {
			t.Errorf("message %d envelope = %s -> %v", i, rec.MailFrom, rec.RcptTos)
		}
		m := parseMessage(t, rec.Data)
		if got := m.header.Get("From"); got != `"Flowbox Alerts" <flowbox@example.net>` {
			t.Errorf("From = %q", got)
		}
		to, err := m.header.AddressList("To")
		if err != nil || len(to) != 2 || to[0].Address != "noc@example.net" || to[1].Address != "ops@example.org" || to[1].Name != "Ops Team" {
			t.Errorf("To = %v (%v)", to, err)
		}
		subject, err := new(mime.WordDecoder).DecodeHeader(m.header.Get("Subject"))
		if err != nil || subject != titles[i] {
			t.Errorf("Subject = %q (%v), want %q", subject, err, titles[i])
		}
		if date, err := m.header.Date(); err != nil || !date.Equal(now) {
			t.Errorf("Date = %v (%v), want %v", date, err, now)
		}
		id := m.header.Get("Message-ID")
		if !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@example.net>") || slices.Contains(ids, id) {
			t.Errorf("Message-ID = %q (earlier: %v)", id, ids)
		}
		ids = append(ids, id)
		for _, want := range []string{"100.64.1.23", "udp-amplification", "Maria Garcia", "wisp-1", "203.0.113.5", "udp/123",
			"1.23 Gbit/s", "150k packets/s", "Alert #42"} {
			if !strings.Contains(m.body, want) {
				t.Errorf("message %d body lacks %q:\n%s", i, want, m.body)
			}
		}
	}
	if st := statusOf(t, n, "mail"); st.Sent != 2 || st.Failed != 0 {
		t.Errorf("mail status = %+v", st)
	}

	// A wrong password: refused (535), not tried again, counted; the
	// password is not shown.
	st := statusOf(t, n, "wrong-password")
	if st.Sent != 0 || st.Failed != 2 || st.Dropped != 2 || !strings.Contains(st.LastError, "535") ||
		!strings.Contains(st.LastError, `cannot authenticate as "flowbox"`) || strings.Contains(st.LastError, "not-the-password") {
		t.Errorf("wrong-password status = %+v", st)
	}
	err = n.SendTest(t.Context(), "wrong-password")
	if err == nil || !strings.Contains(err.Error(), "535") || !strings.Contains(err.Error(), "authenticate") {
		t.Errorf("SendTest with a wrong password = %v", err)
	}
	if st := statusOf(t, n, "wrong-password"); st.Failed != 3 {
		t.Errorf("wrong-password status after the test = %+v", st)
	}
	// The server's certificate is checked; that failure is not tried
	// again either.
	if st := statusOf(t, n, "untrusted"); st.Sent != 0 || st.Failed != 2 || !strings.Contains(st.LastError, "certificate") {
		t.Errorf("untrusted status = %+v", st)
	}
	if got := len(srv.messages(t)); got != 2 {
		t.Errorf("server accepted %d messages, want 2", got)
	}
	// A test message is recognisable.
	if err := n.SendTest(t.Context(), "mail"); err != nil {
		t.Fatalf("SendTest(mail) = %v", err)
	}
	m := parseMessage(t, srv.waitMessages(t, 3)[2].Data)
	if subject := m.header.Get("Subject"); subject != "[flowbox] test message on channel mail" || !strings.Contains(m.body, "test message from flowbox") {
		t.Errorf("test message: %q\n%s", subject, m.body)
	}
}

// TestEmailImplicitTLS: tls: true speaks TLS from the first byte (port
// 465 style) and authenticates.
func TestEmailImplicitTLS(t *testing.T) {
	srv := startSMTPD(t, "implicit")
	ch := srv.emailChannel("mail")
	ch.TLS, ch.Username, ch.Password = true, smtpUser, smtpPassword
	n, err := New(testConfig(ch), Deps{Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.SendTest(t.Context(), "mail"); err != nil {
		t.Fatalf("SendTest = %v", err)
	}
	rec := srv.waitMessages(t, 1)[0]
	if !rec.TLS || rec.Login == nil || *rec.Login != smtpUser {
		t.Errorf("record = tls %v, login %v", rec.TLS, rec.Login)
	}
}

// TestEmailSTARTTLSRequired: by default a server that offers no STARTTLS
// gets nothing, with a clear error; starttls: opportunistic sends in
// clear.
func TestEmailSTARTTLSRequired(t *testing.T) {
	srv := startSMTPD(t, "plain")
	required := srv.emailChannel("required")
	opportunistic := srv.emailChannel("opportunistic")
	opportunistic.StartTLS = StartTLSOpportunistic
	n, err := New(testConfig(required, opportunistic), Deps{Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	err = n.SendTest(t.Context(), "required")
	if err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") || !strings.Contains(err.Error(), "starttls: required") {
		t.Errorf("SendTest(required) = %v", err)
	}
	if err := n.SendTest(t.Context(), "opportunistic"); err != nil {
		t.Fatalf("SendTest(opportunistic) = %v", err)
	}
	msgs := srv.waitMessages(t, 1)
	if len(msgs) != 1 || msgs[0].TLS || msgs[0].Login != nil {
		t.Errorf("messages = %+v", msgs)
	}
}
