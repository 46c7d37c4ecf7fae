package scheduler

import (
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flowbox/flowbox/store"
)

const (
	smtpUser     = "flowbox"
	smtpPassword = "s3cret-Pa55"
)

// mailConfig is a monthly schedule in UTC mailed through srv.
func mailConfig(srv *smtpServer, c SMTPConfig) Config {
	c.Host, c.Port, c.From = "127.0.0.1", srv.port(), "flowbox <reports@isp.example>"
	cfg := testConfig("UTC", ScheduleConfig{Name: "billing", Every: EveryMonth, MailTo: []string{"noc@isp.example", "Billing <billing@isp.example>"}})
	cfg.SMTP = c
	cfg.Settle = 12 * time.Hour // only November runs in the tests
	return cfg
}

// parts returns the text and the attachment of a message, and the
// attachment's file name.
func parts(t *testing.T, data string) (text, csv, file string) {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(data))
	if err != nil {
		t.Fatalf("cannot read the message: %v\n%s", err, data)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("Content-Type %q: %v", m.Header.Get("Content-Type"), err)
	}
	if got, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject")); err != nil || got != "flowbox report billing: 1999-11" {
		t.Errorf("Subject: %q %v", got, err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p) // quoted-printable is decoded by the reader; base64 is not
		if err != nil {
			t.Fatal(err)
		}
		if p.FileName() != "" {
			file = p.FileName()
			dec, err := io.ReadAll(base64Reader(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			csv = string(dec)
		} else {
			text = string(b)
		}
	}
	return text, csv, file
}

// TestMail: the report is mailed through an SMTP server on loopback,
// plain to a relay (insecure), or with STARTTLS and AUTH PLAIN.
func TestMail(t *testing.T) {
	nov := store.ReportRequest{From: time.Date(1999, 11, 1, 0, 0, 0, 0, time.UTC), To: time.Date(1999, 12, 1, 0, 0, 0, 0, time.UTC),
		Location: time.UTC, Label: "1999-11", Kind: store.ReportBySubscriber, Split: "none"}
	check := func(t *testing.T, srv *smtpServer, wantTLS bool, wantUser string) {
		t.Helper()
		msgs := srv.messages()
		if len(msgs) != 1 {
			t.Fatalf("%d messages, want 1", len(msgs))
		}
		m := msgs[0]
		if m.From != "reports@isp.example" || !cmp.Equal(m.To, []string{"noc@isp.example", "billing@isp.example"}) || m.TLS != wantTLS || m.User != wantUser {
			t.Errorf("envelope: from %s to %v, tls %v, user %q", m.From, m.To, m.TLS, m.User)
		}
		text, csv, file := parts(t, m.Data)
		for _, want := range []string{"Period:   1999-11 (1999-11-01 00:00 UTC to 1999-12-01 00:00 UTC)", "Rows:     2",
			"Total:    3.40 GB (3401020000 bytes)", "made late", "attached as billing-1999-11.csv"} {
			if !strings.Contains(text, want) {
				t.Errorf("the text lacks %q:\n%s", want, text)
			}
		}
		if file != "billing-1999-11.csv" {
			t.Errorf("attachment %q", file)
		}
		if diff := cmp.Diff(csv, string(expectedCSV(t, nov))); diff != "" {
			t.Errorf("attachment (-got +want):\n%s", diff)
		}
	}

	t.Run("relay", func(t *testing.T) {
		srv := startSMTPServer(t, &smtpServer{})
		synctest.Test(t, func(t *testing.T) {
			runs := &memRuns{}
			s := start(t, mailConfig(srv, SMTPConfig{Insecure: true}), Deps{Reporter: &fakeReporter{}, Runs: runs})
			s.stop(t)
			all := runs.all()
			if len(all) != 1 || !all[0].OK || all[0].Deliveries[0].Target != "mail to noc@isp.example, billing@isp.example" {
				t.Fatalf("runs: %+v", all)
			}
		})
		check(t, srv, false, "")
	})

	t.Run("starttls-auth", func(t *testing.T) {
		tlsCfg, caFile := testCert(t)
		srv := startSMTPServer(t, &smtpServer{tls: tlsCfg, user: smtpUser, pass: smtpPassword})
		pw := writeFile(t, "password", smtpPassword+"\n")
		synctest.Test(t, func(t *testing.T) {
			runs := &memRuns{}
			s := start(t, mailConfig(srv, SMTPConfig{Username: smtpUser, PasswordFile: pw, CAFile: caFile}),
				Deps{Reporter: &fakeReporter{}, Runs: runs})
			s.stop(t)
			if all := runs.all(); len(all) != 1 || !all[0].OK {
				t.Fatalf("runs: %+v", all)
			}
		})
		check(t, srv, true, smtpUser)
	})

	t.Run("relay-starttls", func(t *testing.T) {
		tlsCfg, _ := testCert(t)
		srv := startSMTPServer(t, &smtpServer{tls: tlsCfg})
		synctest.Test(t, func(t *testing.T) {
			runs := &memRuns{}
			// insecure: STARTTLS when offered, its certificate unchecked.
			s := start(t, mailConfig(srv, SMTPConfig{Insecure: true}), Deps{Reporter: &fakeReporter{}, Runs: runs})
			s.stop(t)
			if all := runs.all(); len(all) != 1 || !all[0].OK {
				t.Fatalf("runs: %+v", all)
			}
		})
		check(t, srv, true, "")
	})

	t.Run("untrusted-certificate", func(t *testing.T) {
		tlsCfg, _ := testCert(t)
		srv := startSMTPServer(t, &smtpServer{tls: tlsCfg})
		synctest.Test(t, func(t *testing.T) {
			runs := &memRuns{}
			s := start(t, mailConfig(srv, SMTPConfig{}), Deps{Reporter: &fakeReporter{}, Runs: runs})
			s.stop(t)
			all := runs.all()
			if len(all) != 1 || all[0].OK || !strings.HasPrefix(all[0].Deliveries[0].Detail, "smtp 127.0.0.1:"+itoa(srv.port())+": STARTTLS failed: tls: failed to verify certificate") {
				t.Fatalf("runs: %+v", all)
			}
		})
	})

	t.Run("retry", func(t *testing.T) {
		srv := startSMTPServer(t, &smtpServer{failData: 1})
		synctest.Test(t, func(t *testing.T) {
			runs := &memRuns{}
			s := start(t, mailConfig(srv, SMTPConfig{Insecure: true}), Deps{Reporter: &fakeReporter{}, Runs: runs})
			sleepUntil(time.Now().Add(2 * time.Minute)) // past the backoff
			s.stop(t)
			if all := runs.all(); len(all) != 1 || !all[0].OK || all[0].Deliveries[0].Detail != "delivered at attempt 2" {
				t.Fatalf("runs: %+v", all)
			}
		})
		check(t, srv, false, "")
	})

	// Permanent failures are not tried again, and are recorded.
	for _, tc := range []struct {
		name   string
		srv    *smtpServer
		smtp   func(t *testing.T) SMTPConfig
		detail string
	}{
		{"no-starttls", &smtpServer{}, func(*testing.T) SMTPConfig { return SMTPConfig{} },
			"smtp 127.0.0.1:PORT: the server does not offer STARTTLS (set reports.smtp.insecure: true for a relay on this host)"},
		{"wrong-password", &smtpServer{user: smtpUser, pass: smtpPassword}, func(t *testing.T) SMTPConfig {
			return SMTPConfig{Insecure: true, Username: smtpUser, PasswordFile: writeFile(t, "pw", "wrong")}
		}, `smtp 127.0.0.1:PORT: cannot authenticate as "flowbox": 535 "5.7.8 authentication failed"`},
		{"no-auth", &smtpServer{}, func(t *testing.T) SMTPConfig {
			return SMTPConfig{Insecure: true, Username: smtpUser, PasswordFile: writeFile(t, "pw", "x")}
		}, "smtp 127.0.0.1:PORT: the server offers no authentication (AUTH) but username is set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startSMTPServer(t, tc.srv)
			cfg := mailConfig(srv, tc.smtp(t))
			synctest.Test(t, func(t *testing.T) {
				runs := &memRuns{}
				s := start(t, cfg, Deps{Reporter: &fakeReporter{}, Runs: runs})
				s.stop(t)
				all := runs.all()
				if len(all) != 1 || all[0].OK || len(all[0].Deliveries) != 1 {
					t.Fatalf("runs: %+v", all)
				}
				want := strings.ReplaceAll(tc.detail, "PORT", itoa(srv.port()))
				if got := all[0].Deliveries[0].Detail; got != want {
					t.Errorf("detail:\n got %s\nwant %s", got, want)
				}
			})
			if n := len(srv.messages()); n != 0 {
				t.Errorf("%d messages accepted", n)
			}
		})
	}
}
