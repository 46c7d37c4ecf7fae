package testutil

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// Datagram is one UDP datagram a UDPSink received.
type Datagram struct {
	// From is the sender's address and port.
	From netip.AddrPort
	// Data is a copy of the payload.
	Data []byte
}

// UDPSink is a UDP receiver on a free 127.0.0.1 port that keeps every
// datagram it receives, in arrival order: a collector's stand-in for tests
// of exporters. Its socket closes when the test ends. All methods are safe
// for concurrent use.
type UDPSink struct {
	conn *net.UDPConn
	done chan struct{}

	mu  sync.Mutex // guards got
	got []Datagram
}

// sinkWait is how long UDPSink.Wait waits.
const sinkWait = 10 * time.Second

// NewUDPSink opens the sink's socket (with an 8 MiB receive buffer when
// the kernel allows it) and starts receiving.
func NewUDPSink(tb testing.TB) *UDPSink {
	tb.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		tb.Fatalf("cannot open UDP sink: %v", err)
	}
	_ = conn.SetReadBuffer(8 << 20)
	s := &UDPSink{conn: conn, done: make(chan struct{})}
	go s.receive()
	tb.Cleanup(func() {
		_ = conn.Close()
		<-s.done
	})
	return s
}

func (s *UDPSink) receive() {
	defer close(s.done)
	buf := make([]byte, 65536)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.got = append(s.got, Datagram{From: from, Data: bytes.Clone(buf[:n])})
		s.mu.Unlock()
	}
}

// Addr returns the address the sink listens on.
func (s *UDPSink) Addr() netip.AddrPort { return s.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// Datagrams returns the datagrams received so far.
func (s *UDPSink) Datagrams() []Datagram {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Datagram(nil), s.got...)
}

// Len returns how many datagrams were received so far.
func (s *UDPSink) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// Wait waits until at least n datagrams arrived and returns those received
// so far. The test fails after 10 s.
func (s *UDPSink) Wait(tb testing.TB, n int) []Datagram {
	tb.Helper()
	WaitFor(tb, sinkWait, fmt.Sprintf("%d datagrams", n), func() (bool, string) {
		got := s.Len()
		return got >= n, fmt.Sprintf("%d datagrams received", got)
	})
	return s.Datagrams()
}
