package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
)

const (
	// partitionSpan is the time span of one raw partition table.
	partitionSpan = 5 * time.Minute
	// indexDelay is how long after its end a partition is closed and gets
	// its address indexes (late flows still go into it afterwards).
	indexDelay = time.Minute
	// maxTxFlows bounds the flows written in one transaction: at most this
	// many flows are lost by a crash (SQLite's WAL keeps every committed one).
	maxTxFlows = 16384
	// rowsPerInsert is the number of rows of one multi-row INSERT statement.
	rowsPerInsert = 64
	// maxExporters bounds the exporters table; flows from more exporters are
	// stored under exporter id 0.
	maxExporters = 65535
	// maxNames bounds the interned names; more names are stored as id 0 ("").
	maxNames = 1 << 20
	// futureSlack is how far in the future a flow may end.
	futureSlack = time.Hour
)

// batch is one InsertFlows call's copy of the flows.
type batch struct {
	flows []Flow
	recv  time.Time
}

var batchPool = sync.Pool{New: func() any { return &batch{} }}

// writerState is owned by the writer goroutine (Run).
type writerState struct {
	exporters map[netip.Addr]int64
	names     map[string]int64
	parts     map[int64]*partition // by start, unix ms
	agg       *aggregator
	buf       []byte
	args      []any
	stopping  chan struct{}
	stopOnce  sync.Once
	draining  bool // set under closeMu: InsertFlows refuses new flows
}

// partition is one raw flows table.
type partition struct {
	start   int64 // unix ms
	name    string
	indexed bool
	stmtN   *sql.Stmt // rowsPerInsert rows
	stmt1   *sql.Stmt
}

func partitionName(startMs int64) string {
	return "flows_" + time.UnixMilli(startMs).UTC().Format("200601021504")
}

func partitionStart(ms int64) int64 {
	span := partitionSpan.Milliseconds()
	if ms < 0 {
		return (ms - span + 1) / span * span
	}
	return ms / span * span
}

func newWriterState(ctx context.Context, s *Store) (*writerState, error) {
	w := &writerState{
		exporters: map[netip.Addr]int64{},
		names:     map[string]int64{"": 0},
		parts:     map[int64]*partition{},
		agg:       newAggregator(s.cfg.TopK, s.metrics),
		stopping:  make(chan struct{}),
	}
	rows, err := s.w.QueryContext(ctx, "SELECT id, addr FROM exporters")
	if err != nil {
		return nil, fmt.Errorf("cannot load exporters: %w", err)
	}
	for rows.Next() {
		var id int64
		var raw []byte
		if err := rows.Scan(&id, &raw); err != nil {
			rows.Close()
			return nil, fmt.Errorf("cannot load exporters: %w", err)
		}
		if a, ok := netip.AddrFromSlice(raw); ok {
			w.exporters[a] = id
		}
	}
	rows.Close()
	if rows, err = s.w.QueryContext(ctx, "SELECT id, name FROM names"); err != nil {
		return nil, fmt.Errorf("cannot load names: %w", err)
	}
	for rows.Next() {
		var id int64
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			rows.Close()
			return nil, fmt.Errorf("cannot load names: %w", err)
		}
		w.names[name] = id
	}
	rows.Close()
	if rows, err = s.w.QueryContext(ctx, "SELECT start, name, indexed FROM partitions"); err != nil {
		return nil, fmt.Errorf("cannot load partitions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		p := &partition{}
		var startSec int64
		if err := rows.Scan(&startSec, &p.name, &p.indexed); err != nil {
			return nil, fmt.Errorf("cannot load partitions: %w", err)
		}
		p.start = startSec * 1000
		w.parts[p.start] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot load partitions: %w", err)
	}
	s.metrics.partitions.Set(float64(len(w.parts)))
	return w, nil
}

// InsertFlows queues a copy of flows for the writer (flows is not
// retained) and records the exporters as seen. It blocks while the queue is
// full until ctx is done; then the flows are dropped, counted, and ctx's
// error returned. Flow.RouterID is set from the exporter address.
func (s *Store) InsertFlows(ctx context.Context, flows []Flow) error {
	if len(flows) == 0 {
		return nil
	}
	if s.readOnly || s.wr == nil {
		return errors.New("cannot insert flows: store is opened read-only")
	}
	now := s.now()
	b := batchPool.Get().(*batch)
	b.flows = append(b.flows[:0], flows...)
	b.recv = now
	attr := *s.attribution.Load()
	var last netip.Addr
	var lastID int64
	for i := range b.flows {
		f := &b.flows[i]
		a := f.Exporter.Addr().Unmap()
		if i == 0 || a != last {
			lastID = attr[a]
			s.noteSeen(a, lastID, now)
			last = a
		}
		f.RouterID = lastID
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed || s.wr.draining {
		s.metrics.dropped.WithLabelValues(dropShutdown).Add(float64(len(flows)))
		s.countDropped(0, uint64(len(flows)))
		batchPool.Put(b)
		return fmt.Errorf("cannot insert flows: %w", ErrClosed)
	}
	select {
	case s.queue <- b:
		return nil
	default:
	}
	select {
	case s.queue <- b:
		return nil
	case <-ctx.Done():
	case <-s.wr.stopping:
	}
	s.metrics.dropped.WithLabelValues(dropQueue).Add(float64(len(flows)))
	s.countDropped(0, uint64(len(flows)))
	batchPool.Put(b)
	if ctx.Err() != nil {
		return fmt.Errorf("cannot queue flows: %w", ctx.Err())
	}
	return fmt.Errorf("cannot queue flows: %w", ErrClosed)
}

// Run is the single writer: it writes queued flows in transactions of up
// to maxTxFlows, flushes the rollups every minute, closes partitions and
// applies retention. When ctx is done it stops accepting flows, drains the
// queue, writes the last batch and the rollups, and returns nil.
func (s *Store) Run(ctx context.Context) error {
	if s.readOnly || s.wr == nil {
		return errors.New("cannot run store: opened read-only")
	}
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("store is already running")
	}
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	// The first maintenance runs at once: it closes partitions and applies
	// retention after a restart.
	s.maintain(context.WithoutCancel(ctx))
	var group []*batch
	for {
		select {
		case b := <-s.queue:
			group = s.gather(append(group[:0], b))
			s.writeGroup(context.WithoutCancel(ctx), group)
		case <-tick.C:
			s.maintain(context.WithoutCancel(ctx))
		case <-ctx.Done():
			return s.shutdown()
		}
	}
}

// gather adds queued batches to group without waiting, up to maxTxFlows.
func (s *Store) gather(group []*batch) []*batch {
	n := len(group[0].flows)
	for n < maxTxFlows {
		select {
		case b := <-s.queue:
			group = append(group, b)
			n += len(b.flows)
		default:
			return group
		}
	}
	return group
}

func (s *Store) shutdown() error {
	w := s.wr
	w.stopOnce.Do(func() { close(w.stopping) })
	s.closeMu.Lock()
	w.draining = true
	s.closeMu.Unlock()
	ctx := context.Background()
	var group []*batch
	for {
		select {
		case b := <-s.queue:
			group = s.gather(append(group[:0], b))
			s.writeGroup(ctx, group)
			continue
		default:
		}
		break
	}
	err := s.flushRollups(ctx)
	if err != nil {
		s.logger.Error("cannot write the rollups at shutdown", "err", err)
		return fmt.Errorf("cannot write rollups at shutdown: %w", err)
	}
	s.logger.Info("store stopped")
	return nil
}

// writeGroup writes the batches in one transaction while the aggregator
// adds them to the in-memory rollups.
func (s *Store) writeGroup(ctx context.Context, group []*batch) {
	w := s.wr
	now := s.now()
	minMs := now.Add(-s.cfg.RawRetention).UnixMilli()
	maxMs := now.Add(futureSlack).UnixMilli()
	var tooOld, future int
	// Drop out-of-range flows first, in place.
	for _, b := range group {
		kept := b.flows[:0]
		for _, f := range b.flows {
			t := flowTime(&f, b.recv)
			switch {
			case t < minMs:
				tooOld++
			case t > maxMs:
				future++
			default:
				f.End = t
				kept = append(kept, f)
			}
		}
		b.flows = kept
	}
	if tooOld > 0 {
		s.metrics.dropped.WithLabelValues(dropTooOld).Add(float64(tooOld))
	}
	if future > 0 {
		s.metrics.dropped.WithLabelValues(dropFuture).Add(float64(future))
	}
	start := time.Now()
	if err := s.prepareGroup(ctx, group); err != nil {
		for _, b := range group {
			w.agg.add(b.flows, w.exporters)
		}
		s.failGroup(group, err)
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, b := range group {
			w.agg.add(b.flows, w.exporters)
		}
	}()
	n, err := s.writeRaw(ctx, group)
	<-done
	if err != nil {
		s.failGroup(group, err)
		return
	}
	s.metrics.written.Add(float64(n))
	s.metrics.writeSeconds.Observe(time.Since(start).Seconds())
	s.setHealth(nil)
	recycle(group)
}

// failGroup counts the group's flows as dropped and reports the error. The
// group's flows stay in the in-memory rollups when they were added, so
// rollup totals include flows whose raw rows were lost.
func (s *Store) failGroup(group []*batch, err error) {
	n := 0
	for _, b := range group {
		n += len(b.flows)
	}
	err = describeWriteError(err)
	s.metrics.batchesDropped.Inc()
	s.metrics.dropped.WithLabelValues(dropWriteError).Add(float64(n))
	s.countDropped(1, uint64(n))
	s.setHealth(fmt.Errorf("cannot write flows: %w", err))
	recycle(group)
}

func recycle(group []*batch) {
	for _, b := range group {
		clear(b.flows) // drop string references before pooling
		b.flows = b.flows[:0]
		batchPool.Put(b)
	}
}

// flowTime returns the time a flow is filed under: its end, else its
// start, else when it was received.
func flowTime(f *Flow, recv time.Time) int64 {
	switch {
	case f.End != 0:
		return f.End
	case f.Start != 0:
		return f.Start
	}
	return recv.UnixMilli()
}

// expCounters accumulates one exporter's stored flows within a transaction.
type expCounters struct {
	router                int64
	flows, bytes, packets int64
}

// writeRaw inserts the flows of the group into their partitions in one
// transaction. It returns the number of flows it tried to write. Partitions,
// exporters and names must have been prepared by prepareGroup.
func (s *Store) writeRaw(ctx context.Context, group []*batch) (int, error) {
	w := s.wr
	total := 0
	for _, b := range group {
		total += len(b.flows)
	}
	if total == 0 {
		return 0, nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return total, fmt.Errorf("cannot begin transaction: %w", err)
	}
	defer tx.Rollback()
	exps := map[int64]*expCounters{}
	arena := make([]byte, 0, total*48) // x and address columns of every row
	take := func(from int) []byte { return arena[from:len(arena):len(arena)] }
	type pending struct {
		p            *partition
		stmtN, stmt1 *sql.Stmt
		args         []any
		rows         int
	}
	byPart := map[int64]*pending{}
	flush := func(pd *pending) error {
		if pd.rows != rowsPerInsert {
			for i := 0; i < pd.rows; i++ {
				if _, err := pd.stmt1.ExecContext(ctx, pd.args[i*4:i*4+4]...); err != nil {
					return fmt.Errorf("cannot insert flows into %s: %w", pd.p.name, err)
				}
			}
		} else if _, err := pd.stmtN.ExecContext(ctx, pd.args...); err != nil {
			return fmt.Errorf("cannot insert flows into %s: %w", pd.p.name, err)
		}
		pd.args, pd.rows = pd.args[:0], 0
		return nil
	}
	for _, b := range group {
		var lastAddr netip.Addr
		var lastExp int64
		var ec *expCounters
		for i := range b.flows {
			f := &b.flows[i]
			a := f.Exporter.Addr().Unmap()
			if ec == nil || a != lastAddr {
				lastAddr, lastExp = a, w.exporters[a]
				if ec = exps[lastExp]; ec == nil {
					ec = &expCounters{}
					exps[lastExp] = ec
				}
			}
			ec.router = f.RouterID
			ec.flows++
			ec.bytes += int64(f.Scale(f.Bytes))
			ec.packets += int64(f.Scale(f.Packets))
			nm := rawNames{sub: uint64(w.names[f.Subscriber]), app: uint64(w.names[f.Application]),
				scc: uint64(w.names[f.SrcCountry]), dcc: uint64(w.names[f.DstCountry])}
			pstart := partitionStart(f.End)
			pd := byPart[pstart]
			if pd == nil {
				p := w.parts[pstart]
				pd = &pending{p: p, args: make([]any, 0, rowsPerInsert*4),
					stmtN: tx.StmtContext(ctx, p.stmtN), stmt1: tx.StmtContext(ctx, p.stmt1)}
				byPart[pstart] = pd
			}
			local, remote := f.LocalRemote()
			local, remote = local.Unmap(), remote.Unmap()
			o := len(arena)
			arena = append(arena, addrBytes(local)...)
			la := take(o)
			o = len(arena)
			arena = append(arena, addrBytes(remote)...)
			ra := take(o)
			o = len(arena)
			arena = encodeRaw(arena, f, local, remote, lastExp, nm)
			pd.args = append(pd.args, f.End-pstart, nilIfEmpty(la), nilIfEmpty(ra), take(o))
			pd.rows++
			if pd.rows == rowsPerInsert {
				if err := flush(pd); err != nil {
					return total, err
				}
			}
		}
	}
	for _, pd := range byPart {
		if pd.rows > 0 {
			if err := flush(pd); err != nil {
				return total, err
			}
		}
	}
	nowMs := s.now().UnixMilli()
	for id, ec := range exps {
		if id == 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE exporters SET router_id = ?, flows = flows + ?, bytes = bytes + ?,
			packets = packets + ?, last_flow = ?, first_flow = CASE WHEN first_flow = 0 THEN ? ELSE first_flow END
			WHERE id = ?`, ec.router, ec.flows, ec.bytes, ec.packets, nowMs, nowMs, id); err != nil {
			return total, fmt.Errorf("cannot update exporter counters: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return total, fmt.Errorf("cannot commit flows: %w", err)
	}
	return total, nil
}

// prepareGroup creates, in a small transaction of its own, the partitions,
// exporter rows and interned names that the group needs, and prepares the
// partitions' insert statements. It runs before the data transaction
// because the writer's single connection cannot prepare statements while a
// transaction holds it, and so that the rollup aggregator can read the ids
// concurrently with the data transaction.
func (s *Store) prepareGroup(ctx context.Context, group []*batch) error {
	w := s.wr
	newParts := map[int64]struct{}{}
	newExp := map[netip.Addr]int64{}
	newNames := map[string]struct{}{}
	for _, b := range group {
		var last netip.Addr
		for i := range b.flows {
			f := &b.flows[i]
			if ps := partitionStart(f.End); w.parts[ps] == nil {
				newParts[ps] = struct{}{}
			}
			if a := f.Exporter.Addr().Unmap(); i == 0 || a != last {
				last = a
				if _, ok := w.exporters[a]; !ok && a.IsValid() {
					newExp[a] = f.RouterID
				}
			}
			for _, n := range [...]string{f.Subscriber, f.Application, f.SrcCountry, f.DstCountry} {
				if _, ok := w.names[n]; !ok {
					newNames[n] = struct{}{}
				}
			}
		}
	}
	if len(newParts)+len(newExp)+len(newNames) > 0 {
		if err := s.createRefs(ctx, newParts, newExp, newNames); err != nil {
			return err
		}
	}
	for _, b := range group {
		for i := range b.flows {
			p := w.parts[partitionStart(b.flows[i].End)]
			if p.stmtN != nil {
				continue
			}
			var err error
			vals := strings.TrimSuffix(strings.Repeat("(?,?,?,?),", rowsPerInsert), ",")
			if p.stmtN, err = s.w.PrepareContext(ctx, "INSERT INTO "+p.name+" (t, a, b, x) VALUES "+vals); err != nil {
				return fmt.Errorf("cannot prepare insert into %s: %w", p.name, err)
			}
			if p.stmt1, err = s.w.PrepareContext(ctx, "INSERT INTO "+p.name+" (t, a, b, x) VALUES (?,?,?,?)"); err != nil {
				p.stmtN.Close()
				p.stmtN = nil
				return fmt.Errorf("cannot prepare insert into %s: %w", p.name, err)
			}
		}
	}
	return nil
}

func (s *Store) createRefs(ctx context.Context, parts map[int64]struct{}, exps map[netip.Addr]int64, names map[string]struct{}) error {
	w := s.wr
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cannot begin transaction: %w", err)
	}
	defer tx.Rollback()
	created := map[int64]*partition{}
	for start := range parts {
		p := &partition{start: start, name: partitionName(start)}
		if _, err := tx.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+p.name+
			" (id INTEGER PRIMARY KEY, t INTEGER NOT NULL, a BLOB, b BLOB, x BLOB NOT NULL)"); err != nil {
			return fmt.Errorf("cannot create partition %s: %w", p.name, err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO partitions (start, name) VALUES (?, ?)", start/1000, p.name); err != nil {
			return fmt.Errorf("cannot record partition %s: %w", p.name, err)
		}
		created[start] = p
	}
	expIDs := map[netip.Addr]int64{}
	for a, router := range exps {
		if len(w.exporters)+len(expIDs) >= maxExporters {
			break // the rest is stored under exporter id 0
		}
		var id int64
		if err := tx.QueryRowContext(ctx, "INSERT INTO exporters (addr, router_id) VALUES (?, ?) RETURNING id",
			addrBytes(a), router).Scan(&id); err != nil {
			return fmt.Errorf("cannot add exporter %s: %w", a, err)
		}
		expIDs[a] = id
	}
	nameIDs := map[string]int64{}
	for n := range names {
		if len(w.names)+len(nameIDs) >= maxNames {
			s.metrics.namesOverflow.Inc()
			continue // stored as id 0, the empty name
		}
		var id int64
		if err := tx.QueryRowContext(ctx, "INSERT INTO names (name) VALUES (?) RETURNING id", n).Scan(&id); err != nil {
			return fmt.Errorf("cannot intern name: %w", err)
		}
		nameIDs[n] = id
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cannot commit new partitions and names: %w", err)
	}
	for start, p := range created {
		w.parts[start] = p
	}
	for a, id := range expIDs {
		w.exporters[a] = id
	}
	for n, id := range nameIDs {
		w.names[n] = id
	}
	s.metrics.partitions.Set(float64(len(w.parts)))
	return nil
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// closeStatements releases a partition's prepared statements.
func (p *partition) closeStatements() {
	if p.stmtN != nil {
		p.stmtN.Close()
		p.stmt1.Close()
		p.stmtN, p.stmt1 = nil, nil
	}
}
