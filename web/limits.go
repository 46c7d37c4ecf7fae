package web

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// withDeadlines gives every request the response timeout as its write
// deadline (the server's ReadTimeout bounds reading it), so that a client
// that stops reading cannot hold a connection and a handler forever.
// Streaming handlers (the CSV exports) extend it as they make progress.
func (s *Server) withDeadlines(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.ResponseTimeout))
		next.ServeHTTP(w, r)
	})
}

// limitListener accepts at most n connections at a time; Accept waits for
// one to close beyond that (the kernel's backlog holds the rest), so a
// flood of idle connections cannot exhaust the process's descriptors.
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func newLimitListener(l net.Listener, n int) net.Listener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n)}
}

// Accept implements net.Listener.
func (l *limitListener) Accept() (net.Conn, error) {
	l.sem <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

// limitConn gives its slot back once, when closed.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// Close implements net.Conn.
func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// metricsHandler serves the Prometheus metrics of deps.Gatherer.
func (s *Server) metricsHandler() http.Handler {
	gatherer := s.deps.Gatherer
	if gatherer == nil {
		gatherer = prometheus.NewRegistry()
	}
	return promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})
}

// serveMetrics serves /metrics alone, without login, on web.metrics-listen
// until ctx is done.
func (s *Server) serveMetrics(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metricsHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: s.cfg.RequestTimeout,
		WriteTimeout: s.cfg.ResponseTimeout, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	s.log.Info("metrics listening", "url", fmt.Sprintf("http://%s/metrics", ln.Addr()))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics server stopped: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("cannot shut down the metrics server: %w", err)
	}
	return nil
}
