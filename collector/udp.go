package collector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowbox/flowbox/collector/netflow"
)

// maxDatagram is the largest UDP payload; one buffer of this size is reused
// by each reader.
const maxDatagram = 65535

// drainIdle and drainMax bound the shutdown drain: a reader stops when its
// socket has been idle for drainIdle, and the sockets are closed after
// drainMax in any case.
const (
	drainIdle = 20 * time.Millisecond
	drainMax  = time.Second
)

// readErrorPause is the pause after an unexpected socket read error.
const readErrorPause = 10 * time.Millisecond

// snapshotInterval is how often a reader copies its decoder's statistics
// for Exporters and the metrics.
const snapshotInterval = time.Second

// listener is one configured listen address and its sockets (one per
// worker, sharing the address with SO_REUSEPORT).
type listener struct {
	addr   string   // as configured
	bound  net.Addr // the address the sockets are bound to
	socks  []*socket
	rcvbuf int // receive buffer granted by the kernel (as it reports it)
}

// socket is one UDP socket and its kernel drop counter.
type socket struct {
	conn     *net.UDPConn
	listener *listener
	inode    uint64
	// kernelDrops is the socket's cumulative drop count (sk_drops), the
	// largest value seen in SO_RXQ_OVFL messages or /proc/net/udp.
	kernelDrops atomic.Uint64
}

// noteDrops raises the kernel drop counter to v when v is larger (both
// sources read the same monotonic kernel counter).
func (s *socket) noteDrops(v uint64) {
	for {
		old := s.kernelDrops.Load()
		if v <= old || s.kernelDrops.CompareAndSwap(old, v) {
			return
		}
	}
}

// openListener binds cfg.Workers sockets to addr. With port 0 the first
// socket picks the port and the others join it.
func (c *Collector) openListener(ctx context.Context, addr string) (*listener, error) {
	lc := net.ListenConfig{Control: setSocketOptions(c.cfg.ReceiveBuffer, !c.noForceRcvbuf)}
	l := &listener{addr: addr}
	bindAddr := addr
	for i := 0; i < c.cfg.Workers; i++ {
		pc, err := lc.ListenPacket(ctx, "udp", bindAddr)
		if err != nil {
			l.close()
			return nil, fmt.Errorf("cannot listen on %s: %w", addr, err)
		}
		conn := pc.(*net.UDPConn)
		s := &socket{conn: conn, listener: l}
		l.socks = append(l.socks, s)
		raw, err := conn.SyscallConn()
		if err != nil {
			l.close()
			return nil, fmt.Errorf("cannot inspect socket on %s: %w", addr, err)
		}
		granted, inode, err := socketInfo(raw)
		if err != nil {
			l.close()
			return nil, fmt.Errorf("cannot inspect socket on %s: %w", addr, err)
		}
		s.inode = inode
		if i == 0 {
			l.bound = conn.LocalAddr()
			l.rcvbuf = granted
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				l.close()
				return nil, fmt.Errorf("cannot parse listen address %s: %w", addr, err)
			}
			bindAddr = net.JoinHostPort(host, strconv.Itoa(conn.LocalAddr().(*net.UDPAddr).Port))
		} else if granted < l.rcvbuf {
			l.rcvbuf = granted
		}
	}
	if grantedBufferShort(c.cfg.ReceiveBuffer, l.rcvbuf) {
		c.log.Warn("the kernel granted a smaller UDP receive buffer than requested; "+
			"bursts may be dropped: raise net.core.rmem_max (sysctl -w net.core.rmem_max=N) "+
			"or run flowbox with CAP_NET_ADMIN",
			"listen", addr, "requested_bytes", c.cfg.ReceiveBuffer,
			"granted_bytes", l.rcvbuf, "net.core.rmem_max", rmemMax())
	}
	return l, nil
}

func (l *listener) close() {
	for _, s := range l.socks {
		_ = s.conn.Close()
	}
}

// reader owns one socket: it receives datagrams into a reused buffer,
// decodes them with its own decoder and fills its current batch.
type reader struct {
	c    *Collector
	sock *socket
	dec  *netflow.Decoder
	buf  []byte
	oob  []byte

	cur        *batch
	batchStart time.Time // when cur got its first flow; zero when empty
	deadline   bool      // a read deadline is set on the socket

	packets atomic.Uint64 // datagrams received
	bytes   atomic.Uint64 // UDP payload bytes received
	flows   atomic.Uint64 // flows decoded
	readErr atomic.Uint64 // socket read errors

	errLog rateLimiter

	// mu guards the decoder statistics copied by snapshot, and seen.
	mu       sync.Mutex
	stats    []netflow.ExporterStats
	summary  netflow.Summary
	lastSnap time.Time
	// seen holds when each exporter address was first and last heard by
	// this reader, for at most MaxExporters addresses (the stalest is
	// forgotten beyond it). last caches the latest entry.
	seen     map[netip.Addr]*seenTimes
	last     *seenTimes
	lastAddr netip.Addr
}

// seenTimes are the first and last datagram times of an exporter.
type seenTimes struct {
	first, last time.Time
}

// touchLocked records a datagram from addr at now. The caller holds r.mu.
func (r *reader) touchLocked(addr netip.Addr, now time.Time) {
	if r.last != nil && addr == r.lastAddr {
		r.last.last = now
		return
	}
	s, ok := r.seen[addr]
	if !ok {
		if len(r.seen) >= r.c.cfg.MaxExporters {
			var oldest netip.Addr
			var oldestT time.Time
			for a, t := range r.seen {
				if !oldest.IsValid() || t.last.Before(oldestT) {
					oldest, oldestT = a, t.last
				}
			}
			delete(r.seen, oldest)
		}
		s = &seenTimes{first: now}
		r.seen[addr] = s
	}
	s.last = now
	r.last, r.lastAddr = s, addr
}

func (c *Collector) newReader(s *socket) *reader {
	dc := netflow.DefaultConfig()
	dc.TemplateTTL = c.cfg.TemplateTTL
	dc.MaxTemplates = c.cfg.MaxTemplates
	dc.MaxPending = c.cfg.MaxPending
	dc.PendingTTL = c.cfg.PendingTTL
	dc.MaxExporters = c.cfg.MaxExporters
	dc.SamplingOverride = c.sampling
	return &reader{
		c:    c,
		sock: s,
		dec:  netflow.New(dc),
		buf:  make([]byte, maxDatagram),
		oob:  make([]byte, oobSize),
		seen: make(map[netip.Addr]*seenTimes),
	}
}

// run reads until the collector stops and the socket is drained (or
// closed), then hands over its last batch (waiting at most until flushBy)
// and takes a last snapshot.
func (r *reader) run(flushBy func() <-chan time.Time) {
	c := r.c
	r.cur = c.pool.get()
	draining := false
	for {
		if c.stopping.Load() {
			// Shutdown: read what the kernel already queued until the
			// socket is idle (Run closes it after drainMax anyway).
			draining = true
			r.setDeadline(time.Now().Add(drainIdle))
		}
		n, oobn, _, from, err := r.sock.conn.ReadMsgUDPAddrPort(r.buf, r.oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				break
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if draining && !hasQueued(r.sock.conn) {
					break
				}
				if !c.stopping.Load() {
					r.onTimeout()
				}
				continue
			}
			r.readErr.Add(1)
			if ok, suppressed := r.errLog.allow(time.Now()); ok {
				c.log.Warn("cannot read from socket", "listen", r.sock.conn.LocalAddr().String(),
					"error", err, "suppressed", suppressed)
			}
			// Do not spin on an error that persists.
			time.Sleep(readErrorPause)
			continue
		}
		if oobn > 0 {
			if d, ok := parseRxqOvfl(r.oob[:oobn]); ok {
				r.sock.noteDrops(uint64(d))
			}
		}
		r.handle(from, r.buf[:n])
	}
	r.flush(flushBy())
	r.snapshot(time.Now())
}

// handle decodes one datagram into the current batch.
func (r *reader) handle(from netip.AddrPort, payload []byte) {
	c := r.c
	// A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; the exporter
	// is the IPv4 address.
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	now := c.now()
	r.mu.Lock()
	r.touchLocked(from.Addr(), now)
	r.mu.Unlock()
	r.packets.Add(1)
	r.bytes.Add(uint64(len(payload)))
	before := len(r.cur.flows)
	var err error
	r.cur.flows, err = r.dec.Decode(r.cur.flows, from, payload, now)
	added := len(r.cur.flows) - before
	r.flows.Add(uint64(added))
	if err != nil {
		if ok, suppressed := r.errLog.allow(time.Now()); ok {
			c.log.Warn("cannot decode datagram", "exporter", from.String(),
				"error", err, "suppressed", suppressed)
		}
	}
	wall := time.Now()
	if added > 0 && r.batchStart.IsZero() {
		r.batchStart = wall
		r.setDeadline(wall.Add(c.cfg.BatchAge))
	}
	if len(r.cur.flows) >= c.cfg.BatchSize ||
		(!r.batchStart.IsZero() && wall.Sub(r.batchStart) >= c.cfg.BatchAge) {
		r.flush(nil)
	}
	if wall.Sub(r.lastSnap) >= snapshotInterval {
		r.snapshot(wall)
	}
}

// onTimeout runs when the read deadline (the age limit of the current
// batch) passed without a datagram.
func (r *reader) onTimeout() {
	now := time.Now()
	if !r.batchStart.IsZero() && now.Sub(r.batchStart) < r.c.cfg.BatchAge {
		r.setDeadline(r.batchStart.Add(r.c.cfg.BatchAge))
		return
	}
	r.flush(nil)
	r.snapshot(now)
	r.clearDeadline()
}

func (r *reader) setDeadline(t time.Time) {
	// An error here means the socket is closed; the next read reports it.
	_ = r.sock.conn.SetReadDeadline(t)
	r.deadline = true
}

func (r *reader) clearDeadline() {
	if r.deadline {
		_ = r.sock.conn.SetReadDeadline(time.Time{})
		r.deadline = false
	}
}

// flush hands the current batch to the queue. With wait nil it never
// blocks: a full queue drops the batch and counts its flows. At shutdown
// wait is the end of the flush timeout.
func (r *reader) flush(wait <-chan time.Time) {
	b := r.cur
	r.batchStart = time.Time{}
	if len(b.flows) == 0 {
		return
	}
	c := r.c
	c.exporters.received(b.flows)
	if wait == nil {
		select {
		case c.queue <- b:
		default:
			c.drops[dropQueueFull].Add(uint64(len(b.flows)))
			c.exporters.dropped(b.flows, dropQueueFull)
			c.pool.put(b)
		}
	} else {
		select {
		case c.queue <- b:
		case <-wait:
			c.drops[dropShutdown].Add(uint64(len(b.flows)))
			c.exporters.dropped(b.flows, dropShutdown)
			c.pool.put(b)
		}
	}
	r.cur = c.pool.get()
}

// snapshot copies the decoder's statistics for readers of Exporters and
// the metrics.
func (r *reader) snapshot(now time.Time) {
	stats := r.dec.Stats()
	sum := r.dec.Summary()
	r.mu.Lock()
	r.stats, r.summary, r.lastSnap = stats, sum, now
	r.mu.Unlock()
}
