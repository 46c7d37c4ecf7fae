package collector

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flowbox/flowbox/collector/netflow"
	"github.com/flowbox/flowbox/store"
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

// probePort refuses a UDP port that another process holds. The readers
// share their port with SO_REUSEPORT, so without this check a second
// flowbox (or any program setting SO_REUSEPORT as the same user) could bind
// the same port and the kernel would split the exporters between the two.
// A socket bound without SO_REUSEPORT fails with EADDRINUSE on a port in
// use; it is closed at once. Port 0 (the kernel chooses) is not probed.
func probePort(ctx context.Context, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "0" {
		return nil // Validate reported it, or nothing to probe
	}
	pc, err := (&net.ListenConfig{}).ListenPacket(ctx, "udp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("cannot listen on %s: UDP port %s is already in use by another process "+
				"(another flowbox on this port? stop it, or set collector.listen to another port): %w", addr, port, err)
		}
		return fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	return pc.Close()
}

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
	if err := probePort(ctx, addr); err != nil {
		return nil, err
	}
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
// checks that their exporter is trusted, decodes them with its own decoder
// and fills its current batch.
type reader struct {
	c    *Collector
	sock *socket
	dec  *netflow.Decoder
	buf  []byte
	oob  []byte

	cur        *store.Batch
	batchStart time.Time // when cur got its first flow; zero when empty
	deadline   bool      // a read deadline is set on the socket

	packets atomic.Uint64 // datagrams received
	bytes   atomic.Uint64 // UDP payload bytes received
	flows   atomic.Uint64 // flows decoded
	readErr atomic.Uint64 // socket read errors

	errLog  rateLimiter
	dropLog rateLimiter

	// mu guards the decoder statistics copied by snapshot, and its
	// templates (tplBlock, netflow.Decoder.AppendTemplates) for the
	// periodic save.
	mu       sync.Mutex
	stats    []netflow.ExporterStats
	summary  netflow.Summary
	lastSnap time.Time
	tplBlock []byte
	lastTpl  time.Time // reader goroutine only
}

func (c *Collector) newReader(s *socket) *reader {
	dc := netflow.DefaultConfig()
	dc.TemplateTTL = c.cfg.TemplateTTL
	dc.MaxTemplates = c.cfg.MaxTemplates
	dc.MaxTemplatesPerDomain = c.cfg.MaxTemplatesPerDomain
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
	}
}

// run reads until the collector stops and the socket is drained (or
// closed), then hands over its last batch (waiting for room in the queue
// until flush is done) and takes a last snapshot.
func (r *reader) run(flush context.Context) {
	c := r.c
	r.cur = c.newBatch()
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
	r.flush(flush)
	r.snapshot(time.Now())
}

// handle decodes one datagram into the current batch.
func (r *reader) handle(from netip.AddrPort, payload []byte) {
	c := r.c
	// A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; the exporter
	// is the IPv4 address.
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	now := c.now()
	r.packets.Add(1)
	r.bytes.Add(uint64(len(payload)))
	trusted := c.trust == nil || c.trust.Trusted(from.Addr())
	c.exporters.datagram(from.Addr(), len(payload), trusted, now)
	if !trusted {
		// Counted, never decoded: an unknown sender neither fills the
		// template cache nor reaches the store.
		c.exporters.untrusted(from.Addr(), headerRecords(payload))
		return
	}
	before := len(r.cur.Flows)
	var err error
	r.cur.Flows, err = r.dec.Decode(r.cur.Flows, from, payload, now)
	added := len(r.cur.Flows) - before
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
	if len(r.cur.Flows) >= c.cfg.BatchSize ||
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

// snapshot copies the decoder's statistics for readers of Exporters and
// the metrics.
func (r *reader) snapshot(now time.Time) {
	stats := r.dec.Stats()
	sum := r.dec.Summary()
	var tpl []byte
	if r.c.templateFile != "" && now.Sub(r.lastTpl) >= templateSnapInterval {
		// The decoder is the reader's alone: its templates are copied
		// here, on the reader's goroutine, for the periodic save.
		tpl = r.dec.AppendTemplates(nil)
		r.lastTpl = now
	}
	r.mu.Lock()
	r.stats, r.summary, r.lastSnap = stats, sum, now
	if tpl != nil {
		r.tplBlock = tpl
	}
	r.mu.Unlock()
}

// headerRecords returns how many flow records a datagram carries, read from
// its header only (an untrusted exporter's datagrams are not decoded): the
// count of NetFlow v1/v5/v7 and v9 (v9 counts template records too), and
// for IPFIX, which has no count, its data sets (at least one record each: a
// lower bound). 0 for anything else.
func headerRecords(b []byte) uint64 {
	if len(b) < 4 {
		return 0
	}
	switch binary.BigEndian.Uint16(b) {
	case 1, 5, 7, 9:
		return uint64(binary.BigEndian.Uint16(b[2:]))
	case 10:
		const head = 16
		var sets uint64
		for off := head; off+4 <= len(b); {
			id, n := binary.BigEndian.Uint16(b[off:]), int(binary.BigEndian.Uint16(b[off+2:]))
			if n < 4 {
				break
			}
			if id >= 256 {
				sets++
			}
			off += n
		}
		return sets
	}
	return 0
}
