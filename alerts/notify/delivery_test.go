package notify

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
)

// In these tests the notifier, the webhook server and their connections
// live in a testing/synctest bubble: time.Sleep moves the fake clock at
// once, and synctest.Wait returns when every goroutine is blocked.

// TestRetryThenSuccess: a server that fails twice then succeeds gets three
// attempts, 5s then 10s apart (exponential backoff on the fake clock),
// each in the notification log.
func TestRetryThenSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &hookServer{reply: func(n int, _ http.ResponseWriter) int {
			if n <= 2 {
				return http.StatusInternalServerError
			}
			return http.StatusOK
		}}
		client, stop := startPipeServer(t, h)
		defer stop()
		log := &memLog{}
		n, err := New(testConfig(ChannelConfig{Name: "ops", Type: TypeWebhook, URL: "http://hooks.test/alerts"}),
			Deps{Log: log, HTTPClient: client, Logger: testutil.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer runNotifier(t, n)()
		n.AlertChanged(opened(testAlert(7)))
		time.Sleep(time.Hour) // fake clock: every backoff passes
		synctest.Wait()

		if got := len(h.received()); got != 3 {
			t.Errorf("server got %d requests, want 3", got)
		}
		st := statusOf(t, n, "ops")
		if st.Sent != 1 || st.Failed != 2 || st.Dropped != 0 || st.Queued != 0 {
			t.Errorf("status = %+v, want Sent=1 Failed=2 Dropped=0 Queued=0", st)
		}
		if st.LastSent == nil || st.LastErrorAt == nil || !strings.Contains(st.LastError, "500") {
			t.Errorf("status times/error = %v %v %q", st.LastSent, st.LastErrorAt, st.LastError)
		}
		atts := log.attempts()
		if len(atts) != 3 {
			t.Fatalf("log has %d attempts, want 3: %+v", len(atts), atts)
		}
		for i, a := range atts {
			if a.Attempt != i+1 || a.AlertID != 7 || a.Channel != "ops" || a.Event != "opened" || a.OK != (i == 2) {
				t.Errorf("attempt %d = %+v", i, a)
			}
			if (a.Error != "") == a.OK {
				t.Errorf("attempt %d: ok=%v with error %q", i, a.OK, a.Error)
			}
		}
		if d1, d2 := atts[1].At.Sub(atts[0].At), atts[2].At.Sub(atts[1].At); d1 != 5*time.Second || d2 != 10*time.Second {
			t.Errorf("pauses between attempts = %v, %v; want 5s, 10s", d1, d2)
		}
	})
}

// TestRetryExhausted: a server that always fails gets retry.attempts
// attempts, then the message is dropped and counted.
func TestRetryExhausted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &hookServer{reply: func(int, http.ResponseWriter) int { return http.StatusBadGateway }}
		client, stop := startPipeServer(t, h)
		defer stop()
		log := &memLog{}
		cfg := testConfig(ChannelConfig{Name: "ops", Type: TypeWebhook, URL: "http://hooks.test/alerts"})
		cfg.Retry.Attempts = 4
		n, err := New(cfg, Deps{Log: log, HTTPClient: client, Logger: testutil.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer runNotifier(t, n)()
		n.AlertChanged(opened(testAlert(7)))
		time.Sleep(time.Hour) // fake clock: every backoff passes
		synctest.Wait()

		if got := len(h.received()); got != 4 {
			t.Errorf("server got %d requests, want 4", got)
		}
		st := statusOf(t, n, "ops")
		if st.Sent != 0 || st.Failed != 4 || st.Dropped != 1 {
			t.Errorf("status = %+v, want Sent=0 Failed=4 Dropped=1", st)
		}
		if got := len(log.attempts()); got != 4 {
			t.Errorf("log has %d attempts, want 4", got)
		}
	})
}

// TestPermanentFailureNotRetried: a 404 (a revoked webhook) is not tried
// again.
func TestPermanentFailureNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &hookServer{reply: func(int, http.ResponseWriter) int { return http.StatusNotFound }}
		client, stop := startPipeServer(t, h)
		defer stop()
		n, err := New(testConfig(ChannelConfig{Name: "ops", Type: TypeSlack, URL: "http://hooks.test/services/T1/B2/x"}),
			Deps{HTTPClient: client, Logger: testutil.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer runNotifier(t, n)()
		n.AlertChanged(opened(testAlert(7)))
		time.Sleep(time.Hour) // fake clock
		synctest.Wait()
		if got := len(h.received()); got != 1 {
			t.Errorf("server got %d requests, want 1", got)
		}
		if st := statusOf(t, n, "ops"); st.Failed != 1 || st.Dropped != 1 || !strings.Contains(st.LastError, "404") {
			t.Errorf("status = %+v, want Failed=1 Dropped=1 and the 404", st)
		}
	})
}

// TestRetryAfter: a 429's Retry-After sets the pause (within
// max-backoff).
func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"30", 30 * time.Second},
		{"86400", 5 * time.Minute}, // bounded by retry.max-backoff
		{"1", 5 * time.Second},     // never below the backoff
	} {
		t.Run(tc.header, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := &hookServer{reply: func(n int, w http.ResponseWriter) int {
					if n == 1 {
						w.Header().Set("Retry-After", tc.header)
						return http.StatusTooManyRequests
					}
					return http.StatusNoContent
				}}
				client, stop := startPipeServer(t, h)
				defer stop()
				log := &memLog{}
				n, err := New(testConfig(ChannelConfig{Name: "chat", Type: TypeDiscord, URL: "http://hooks.test/api/webhooks/1/x"}),
					Deps{Log: log, HTTPClient: client, Logger: testutil.Logger(t)})
				if err != nil {
					t.Fatal(err)
				}
				defer runNotifier(t, n)()
				n.AlertChanged(opened(testAlert(7)))
				time.Sleep(time.Hour) // fake clock
				synctest.Wait()
				atts := log.attempts()
				if len(atts) != 2 || !atts[1].OK {
					t.Fatalf("attempts = %+v, want a failure then a success", atts)
				}
				if d := atts[1].At.Sub(atts[0].At); d != tc.want {
					t.Errorf("pause = %v, want %v", d, tc.want)
				}
			})
		})
	}
}

// TestRateLimitSummary: 30 events in a burst with a limit of 10 a minute
// send 10 messages, then one summary as soon as the bucket has a token
// again (6s later), and nothing more; the 20 held back are counted.
func TestRateLimitSummary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &hookServer{}
		client, stop := startPipeServer(t, h)
		defer stop()
		log := &memLog{}
		n, err := New(testConfig(ChannelConfig{Name: "ops", Type: TypeWebhook, URL: "http://hooks.test/alerts"}),
			Deps{Log: log, HTTPClient: client, Logger: testutil.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer runNotifier(t, n)()
		start := time.Now()
		for i := range 30 {
			n.AlertChanged(opened(testAlert(int64(100 + i))))
		}
		synctest.Wait()
		if got := len(h.received()); got != 10 {
			t.Fatalf("%d messages in the burst, want 10", got)
		}
		if st := statusOf(t, n, "ops"); st.RateLimited != 20 || st.Sent != 10 || st.Dropped != 0 {
			t.Errorf("status after the burst = %+v, want RateLimited=20 Sent=10", st)
		}
		time.Sleep(6*time.Second - time.Millisecond) // fake clock: just before a token is back
		synctest.Wait()
		if got := len(h.received()); got != 10 {
			t.Fatalf("%d messages before the refill, want 10", got)
		}
		time.Sleep(time.Hour) // fake clock
		synctest.Wait()
		reqs := h.received()
		if len(reqs) != 11 {
			t.Fatalf("%d messages in all, want 10 and one summary", len(reqs))
		}
		var sum webhookPayload
		if err := json.Unmarshal(reqs[10].body, &sum); err != nil {
			t.Fatal(err)
		}
		if sum.Event != "summary" || sum.HeldBack != 20 || !strings.Contains(sum.Text, "20 more alert events were held back by the rate limit") {
			t.Errorf("summary = %+v", sum)
		}
		if !strings.Contains(sum.Text, "udp-amplification on 100.64.1.23") || !strings.Contains(sum.Text, "and 10 more") {
			t.Errorf("summary does not list the first held-back events:\n%s", sum.Text)
		}
		atts := log.attempts()
		if last := atts[len(atts)-1]; last.Event != "summary" || last.At.Sub(start) != 6*time.Second {
			t.Errorf("summary attempt = %+v, %v after the burst; want 6s", last, last.At.Sub(start))
		}
		// A token per 6s again: the next event goes through.
		n.AlertChanged(opened(testAlert(200)))
		synctest.Wait()
		if got := len(h.received()); got != 12 {
			t.Errorf("%d messages after the refill, want 12", got)
		}
		if st := statusOf(t, n, "ops"); st.Sent != 12 || st.RateLimited != 20 {
			t.Errorf("final status = %+v", st)
		}
	})
}

// TestQueueFullAndBlockedChannel: a channel whose server does not answer
// keeps one message in flight and queue-size waiting, drops and counts the
// rest, and neither AlertChanged nor the other channel waits for it.
func TestQueueFullAndBlockedChannel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		slow := &hookServer{reply: func(int, http.ResponseWriter) int {
			<-release
			return http.StatusOK
		}}
		fast := &hookServer{}
		slowClient, stopSlow := startPipeServer(t, slow)
		defer stopSlow()
		fastClient, stopFast := startPipeServer(t, fast)
		defer stopFast()
		cfg := testConfig(ChannelConfig{Name: "slow", Type: TypeWebhook, URL: "http://slow.test/"},
			ChannelConfig{Name: "fast", Type: TypeWebhook, URL: "http://fast.test/"})
		cfg.QueueSize = 2
		cfg.Timeout = time.Hour
		// One client per channel: route by the URL's host.
		client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.URL.Host == "slow.test" {
				return slowClient.Transport.RoundTrip(r)
			}
			return fastClient.Transport.RoundTrip(r)
		})}
		n, err := New(cfg, Deps{HTTPClient: client, Logger: testutil.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer runNotifier(t, n)()
		for i := range 5 {
			n.AlertChanged(opened(testAlert(int64(i + 1))))
			synctest.Wait() // the fast channel delivers before the next event
		}
		if got := len(fast.received()); got != 5 {
			t.Errorf("fast channel delivered %d, want 5", got)
		}
		if st := statusOf(t, n, "fast"); st.Sent != 5 || st.Dropped != 0 {
			t.Errorf("fast status = %+v", st)
		}
		if st := statusOf(t, n, "slow"); st.Sent != 0 || st.Dropped != 2 || st.Queued != 3 {
			t.Errorf("slow status = %+v, want Dropped=2 Queued=3 (one in flight, two waiting)", st)
		}
		close(release)
		synctest.Wait()
		if got := len(slow.received()); got != 3 {
			t.Errorf("slow channel delivered %d, want 3", got)
		}
		if st := statusOf(t, n, "slow"); st.Sent != 3 || st.Dropped != 2 || st.Queued != 0 {
			t.Errorf("slow status after release = %+v", st)
		}
	})
}

// roundTripFunc is an http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
