package web

import (
	"net"
	"net/http"
	"sync"
	"time"
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
