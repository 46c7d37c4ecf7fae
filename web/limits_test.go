package web

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
)

// serveOn runs the console on a loopback listener until the test ends and
// returns its address.
func serveOn(t *testing.T, e *env) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	addr := ln.Addr().String()
	testutil.WaitFor(t, 10*time.Second, "the console", func() (bool, string) {
		res, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK, res.Status
	})
	return addr
}

// TestSlowRequestBodyTimesOut: a POST /login whose headers announce a body
// that never comes is cut off after request-timeout, instead of holding
// the connection open for ever (slowloris).
func TestSlowRequestBodyTimesOut(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.RequestTimeout = time.Second })
	addr := serveOn(t, e)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "POST /login HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nusername=a", addr); err != nil {
		t.Fatal(err)
	}
	// The server must close the connection (with or without an answer);
	// the read deadline only keeps a broken server from hanging the test.
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err = io.ReadAll(bufio.NewReader(conn))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server kept a request with a missing body open for 30 s")
	}
}

// TestConnectionLimit: beyond max-connections, a new connection waits to be
// accepted until another one closes.
func TestConnectionLimit(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.MaxConnections = 2 })
	addr := serveOn(t, e) // the probe's keep-alive connection may hold a slot: close it
	http.DefaultClient.CloseIdleConnections()
	// Two keep-alive connections, each answered once (so the server has
	// surely accepted both), then left open: they hold both slots.
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("held connection: %v %v", res, err)
		}
		res.Body.Close()
		held = append(held, c)
	}
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	fmt.Fprintf(third, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	answered := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(third).ReadString('\n')
		answered <- line
	}()
	// Not answered while both slots are held: a server without the limit
	// answers within milliseconds.
	select {
	case line := <-answered:
		t.Fatalf("a third connection was served beyond max-connections 2: %q", line)
	case <-time.After(500 * time.Millisecond): // a bound on a negative: passing never depends on speed
	}
	held[0].Close()
	select {
	case line := <-answered:
		if !strings.HasPrefix(line, "HTTP/1.1 200") {
			t.Fatalf("third connection got %q", line)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the third connection was never served after a slot was freed")
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/routers/3":            "/routers/3",
		"/flows?host=10.0.0.1":  "/flows?host=10.0.0.1",
		"":                      "/",
		"//evil.example":        "/",
		"/\\evil.example":       "/",
		"/\t/evil.example":      "/",
		"/\n/evil.example":      "/",
		"/\x00x":                "/",
		"https://evil.example/": "/",
		"javascript:alert(1)":   "/",
		"evil.example":          "/",
		"/%2F/evil.example":     "/", // decodes to //evil.example: refused to be safe
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMetricsListen: web.metrics-listen serves /metrics without login on
// its own address, and nothing else; the console's /metrics still needs a
// login.
func TestMetricsListen(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	maddr := probe.Addr().String()
	probe.Close()
	e := newEnv(t, func(c *Config, _ *Deps) { c.MetricsListen = maddr })
	addr := serveOn(t, e)
	var body string
	testutil.WaitFor(t, 10*time.Second, "the metrics listener", func() (bool, string) {
		res, err := http.Get("http://" + maddr + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		body = string(b)
		return res.StatusCode == http.StatusOK, res.Status
	})
	if !strings.Contains(body, "flowbox_web_requests_total") {
		t.Errorf("metrics listener body: %.200s", body)
	}
	for _, u := range []string{"http://" + maddr + "/api/v1/routers", "http://" + addr + "/metrics"} {
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Errorf("%s answered 200 without login", u)
		}
	}
}

// TestInternalErrorsSayNothing: a 500 answer carries an incident id, never
// the internal error text (file names, SQL), which goes to the log.
func TestInternalErrorsSayNothing(t *testing.T) {
	e := newEnv(t)
	e.login()
	e.st.Close() // every query fails from now on
	code, b := e.do(http.MethodGet, "/api/v1/subscribers/usage?range=24h", nil)
	if code != http.StatusInternalServerError {
		t.Fatalf("usage on a closed store: %d %s", code, b)
	}
	if !strings.Contains(string(b), "incident ") || strings.Contains(strings.ToLower(string(b)), "sql") ||
		strings.Contains(string(b), "closed") {
		t.Fatalf("500 answer %s", b)
	}
}
