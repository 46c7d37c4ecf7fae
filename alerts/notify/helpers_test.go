package notify

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// testAlert returns an inbound attack alert with evidence.
func testAlert(id int64) store.Alert {
	started := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	return store.Alert{
		ID: id, Kind: store.AlertUDPAmplification, Severity: store.SeverityCritical,
		RouterID: 1, Router: "wisp-1", Target: "100.64.1.23", Subscriber: "Maria Garcia", Direction: "in",
		Started: started, Updated: started.Add(time.Minute),
		PeakBps: 1.23e9, PeakPps: 150e3, PeakFlowsPerS: 3200, PeakAt: started.Add(30 * time.Second),
		Summary: "1.23 Gbit/s of UDP from port 123 (NTP) to 100.64.1.23",
		Evidence: store.AlertEvidence{
			TopSources: []store.AlertTop{{Key: "203.0.113.5", Bytes: 420e6, Packets: 300e3, Flows: 12},
				{Key: "198.51.100.7", Bytes: 210e6, Packets: 150e3, Flows: 9}},
			TopPorts: []store.AlertTop{{Key: "udp/123", Bytes: 600e6, Packets: 430e3, Flows: 20}},
			Measures: map[string]float64{"baseline_bps": 2.5e6},
		},
	}
}

// opened, resolved and updated return an alert event.
func opened(a store.Alert) store.AlertEvent {
	return store.AlertEvent{Type: store.AlertOpened, Alert: a}
}
func updated(a store.Alert) store.AlertEvent {
	return store.AlertEvent{Type: store.AlertUpdated, Alert: a}
}
func resolved(a store.Alert) store.AlertEvent {
	end := a.Started.Add(12*time.Minute + 30*time.Second)
	a.Ended = &end
	return store.AlertEvent{Type: store.AlertResolved, Alert: a}
}

// memLog is an AttemptLog in memory.
type memLog struct {
	mu   sync.Mutex
	list []store.NotificationAttempt
}

func (l *memLog) AddNotificationAttempt(_ context.Context, n *store.NotificationAttempt) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = append(l.list, *n)
	return nil
}

func (l *memLog) attempts() []store.NotificationAttempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]store.NotificationAttempt(nil), l.list...)
}

// request is one request a test server received.
type request struct {
	path   string
	header http.Header
	body   []byte
}

// hookServer records the requests it receives and answers with the
// status reply returns for the n-th one (from 1; nil: 200).
type hookServer struct {
	mu       sync.Mutex
	requests []request
	reply    func(n int, w http.ResponseWriter) int
}

func (h *hookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.requests = append(h.requests, request{path: r.URL.Path, header: r.Header.Clone(), body: body})
	n := len(h.requests)
	reply := h.reply
	h.mu.Unlock()
	status := http.StatusOK
	if reply != nil {
		status = reply(n, w)
	}
	w.WriteHeader(status)
}

func (h *hookServer) received() []request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]request(nil), h.requests...)
}

// pipeListener serves HTTP over in-memory pipes, so that a testing/synctest
// bubble holds the server, the client and their connections (a real socket
// is never "durably blocked", and would keep the fake clock from moving).
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// startPipeServer serves h over pipes inside the current synctest bubble
// and returns the client that reaches it (whatever the URL's host) and the
// function that stops both.
func startPipeServer(t *testing.T, h http.Handler) (*http.Client, func()) {
	t.Helper()
	l := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	srv := &http.Server{Handler: h}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(l)
	}()
	tr := &http.Transport{DialContext: l.dial}
	return &http.Client{Transport: tr}, func() {
		_ = srv.Close()
		<-served
		tr.CloseIdleConnections()
	}
}

// runNotifier runs n until the returned function is called, which waits for
// Run to return.
func runNotifier(t *testing.T, n *Notifier) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// statusOf returns one channel's status.
func statusOf(t *testing.T, n *Notifier, name string) store.NotificationChannelStatus {
	t.Helper()
	for _, st := range n.Status() {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("no status for channel %q", name)
	return store.NotificationChannelStatus{}
}

// testConfig returns a configuration with the given channels.
func testConfig(channels ...ChannelConfig) Config {
	cfg := DefaultConfig()
	cfg.Channels = channels
	return cfg
}
