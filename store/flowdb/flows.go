package flowdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/flowbox/flowbox/store"
)

const (
	// partitionSpan is the time span of one raw partition table.
	partitionSpan = 5 * time.Minute
	// indexDelay is how long after its end a partition is closed: its host
	// index tail is written as a segment (late flows still go into it
	// afterwards).
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
	// maxAddrs bounds the interned explicit addresses (table addrs); more
	// are written literally in each row.
	maxAddrs = 1 << 16
	// futureSlack is how far in the future a flow may end.
	futureSlack = time.Hour
)

// Raw partition formats (see codec.go).
const (
	formatV1 = 1 // flows_*: read only, SQL address indexes once closed
	formatV2 = 2 // raw_*: written now, host index
)

// GetBatch returns an empty batch from the free list, or a new one, for a
// producer to fill and Submit.
func (s *FlowDB) GetBatch() *store.Batch { return s.free.Get() }

// PutBatch gives a batch back to the free list (the writer does it for the
// batches it took; a producer does it for a batch Submit refused).
func (s *FlowDB) PutBatch(b *store.Batch) { s.free.Put(b) }

// writerState is owned by the writer goroutine (Run).
type writerState struct {
	exporters map[netip.Addr]int64
	names     map[string]int64
	addrs     map[netip.Addr]uint64   // interned explicit addresses
	newAddrs  map[netip.Addr]struct{} // explicit addresses to intern with the next group
	parts     map[int64]*partition    // format 2 partitions by start, unix ms
	legacy    map[int64]*partition    // format 1 partitions by start
	agg       *aggregator
	metrics   *metrics
	postings  int // postings held by all tails
	// maxPostings bounds postings (maxTailPostings; tests lower it).
	maxPostings int
	// segScratch is buildSegment's memory, kept from spill to spill, and
	// chunks the free posting chunks of the tails.
	segScratch segScratch
	chunks     chunkPool

	// Rollup replay (replay.go): the partitions whose rows written before
	// an unclean stop are not in the rollups yet, in start order, and the
	// dictionaries that turn those rows back into flows.
	replay      []*partition
	replayChunk int // rows read at a time (replayChunkRows; tests lower it)
	replayDicts *replayDicts
	replayBuf   []store.Flow
	replayStats replayStats
	marks       []*partition // flushRollups' scratch

	// Scratch space of writeRaw, reused from group to group.
	arena      []byte
	tailRows   []pendingRow
	runScratch []tailRow
	pending    map[*partition]*pendingInsert
	expCount   map[int64]*expCounters

	stopping chan struct{}
	stopOnce sync.Once
	draining bool // set under closeMu: InsertFlows refuses new flows
}

// partition is one raw flows table.
type partition struct {
	start  int64 // unix ms
	name   string
	format int
	closed bool // format 1: indexed; format 2: its first tail was spilled
	// format 2
	nextID int64     // id of the next row
	segs   int       // segments of its host index
	tail   *hostTail // rows not in a segment yet
	stmtN  *sql.Stmt // rowsPerInsert rows
	stmt1  *sql.Stmt
	// rolled is the last row id whose flow is in the rollups written to
	// the database (raw_partitions.rolled, set by each rollup flush in its
	// transaction); -1 when not recorded (a partition of a flowbox before
	// the watermark, all of whose rows are in). Outside a replay, every
	// row after it is in the in-memory aggregator.
	rolled int64
	// replayNext..replayEnd are the rows, written before an unclean stop,
	// that the aggregator has not counted yet (replay.go); 0, 0 for none.
	replayNext, replayEnd int64
}

// replaying reports whether some of the partition's rows are still to be
// counted into the rollups again.
func (p *partition) replaying() bool { return p.replayNext != 0 && p.replayNext <= p.replayEnd }

func partitionName(startMs int64) string {
	return "raw_" + time.UnixMilli(startMs).UTC().Format("200601021504")
}

func partitionStart(ms int64) int64 {
	span := partitionSpan.Milliseconds()
	if ms < 0 {
		return (ms - span + 1) / span * span
	}
	return ms / span * span
}

func newWriterState(ctx context.Context, s *FlowDB) (*writerState, error) {
	w := &writerState{
		exporters:   map[netip.Addr]int64{},
		names:       map[string]int64{"": 0},
		addrs:       map[netip.Addr]uint64{},
		newAddrs:    map[netip.Addr]struct{}{},
		parts:       map[int64]*partition{},
		legacy:      map[int64]*partition{},
		agg:         newAggregator(s.cfg.TopK, s.metrics),
		pending:     map[*partition]*pendingInsert{},
		expCount:    map[int64]*expCounters{},
		maxPostings: maxTailPostings,
		replayChunk: replayChunkRows,
		stopping:    make(chan struct{}),
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
	if rows, err = s.w.QueryContext(ctx, "SELECT id, addr FROM addrs"); err != nil {
		return nil, fmt.Errorf("cannot load addresses: %w", err)
	}
	for rows.Next() {
		var id int64
		var raw []byte
		if err := rows.Scan(&id, &raw); err != nil {
			rows.Close()
			return nil, fmt.Errorf("cannot load addresses: %w", err)
		}
		if a, ok := netip.AddrFromSlice(raw); ok {
			w.addrs[a] = uint64(id)
		}
	}
	rows.Close()
	if rows, err = s.w.QueryContext(ctx, "SELECT start, name, format, closed, rolled FROM raw_partitions"); err != nil {
		return nil, fmt.Errorf("cannot load partitions: %w", err)
	}
	var loaded []*partition
	for rows.Next() {
		p := &partition{}
		var startSec int64
		var rolled sql.NullInt64
		if err := rows.Scan(&startSec, &p.name, &p.format, &p.closed, &rolled); err != nil {
			rows.Close()
			return nil, fmt.Errorf("cannot load partitions: %w", err)
		}
		p.start = startSec * 1000
		p.rolled = -1
		if rolled.Valid {
			p.rolled = rolled.Int64
		}
		loaded = append(loaded, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot load partitions: %w", err)
	}
	for _, p := range loaded {
		if p.format == formatV1 {
			w.legacy[p.start] = p
			continue
		}
		if err := s.loadTail(ctx, w, p); err != nil {
			return nil, err
		}
		w.parts[p.start] = p
	}
	s.metrics.partitions.Set(float64(len(w.parts) + len(w.legacy)))
	return w, nil
}

// loadTail restores the writer state of a format 2 partition after a
// restart: its next row id, its segment count and, from the rows that no
// segment covers (lost with the process), its host index tail.
func (s *FlowDB) loadTail(ctx context.Context, w *writerState, p *partition) error {
	var covered, segs int64
	maxID, err := maxRowID(ctx, s.w, p.name) // packed rows too (rawpack.go)
	if err != nil {
		return fmt.Errorf("cannot load partition %s: %w", p.name, err)
	}
	if err := s.w.QueryRowContext(ctx, "SELECT coalesce(max(last_id), 0), count(*) FROM raw_segments WHERE part = ?", p.name).
		Scan(&covered, &segs); err != nil {
		return fmt.Errorf("cannot load host index of %s: %w", p.name, err)
	}
	p.nextID, p.segs = maxID+1, int(segs)
	p.tail = newHostTail(covered + 1)
	if maxID > covered {
		batch := make([]tailRow, 0, 4096)
		next := covered + 1
		add := func(id, t int64, local, remote netip.Addr) error {
			if id != next {
				return fmt.Errorf("cannot rebuild host index of %s: damaged row %d", p.name, id)
			}
			next++
			batch = append(batch, tailRow{int32(t), local, remote})
			if len(batch) == cap(batch) {
				p.tail.add(batch, time.Time{}, &w.chunks)
				batch = batch[:0]
			}
			return nil
		}
		// The packer may have moved some of these rows into blocks
		// (rawpack.go): those first, then the rows after them.
		packedHi, err := s.tailFromBlocks(ctx, p.name, covered, add)
		if err != nil {
			return err
		}
		rows, err := s.w.QueryContext(ctx, "SELECT id, x FROM "+p.name+" WHERE id > ? ORDER BY id", max(covered, packedHi))
		if err != nil {
			return fmt.Errorf("cannot rebuild host index of %s: %w", p.name, err)
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var x []byte
			if err := rows.Scan(&id, &x); err != nil {
				return fmt.Errorf("cannot rebuild host index of %s: %w", p.name, err)
			}
			t, local, remote, err := rawHead(x)
			if err != nil {
				return fmt.Errorf("cannot rebuild host index of %s: damaged row %d", p.name, id)
			}
			if err := add(id, t, local, remote); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("cannot rebuild host index of %s: %w", p.name, err)
		}
		// The age of these rows is unknown: a closed partition spills them at
		// the next maintenance.
		p.tail.add(batch, time.Time{}, &w.chunks)
		s.logger.Info("rebuilt the host index of the rows written since the last segment", "partition", p.name, "rows", maxID-covered)
	}
	w.postings += p.tail.size()
	s.setTail(p.name, p.tail)
	return nil
}

// setTail publishes (or with nil, withdraws) the host index tail of a
// partition for readers.
func (s *FlowDB) setTail(name string, h *hostTail) {
	s.tailsMu.Lock()
	defer s.tailsMu.Unlock()
	if h == nil {
		delete(s.tails, name)
		return
	}
	s.tails[name] = h
}

func (s *FlowDB) tailOf(name string) *hostTail {
	s.tailsMu.RLock()
	defer s.tailsMu.RUnlock()
	return s.tails[name]
}

// addrID returns the interned id of an explicit address; an address not
// interned yet is noted for the next group (while the dictionary has room)
// and written literally meanwhile.
func (w *writerState) addrID(a netip.Addr) (uint64, bool) {
	if id, ok := w.addrs[a]; ok {
		return id, true
	}
	if len(w.addrs)+len(w.newAddrs) < maxAddrs {
		w.newAddrs[a] = struct{}{}
	} else {
		w.metrics.addrsOverflow.Inc()
	}
	return 0, false
}

// Run is the single writer: it writes queued flows in transactions of up
// to maxTxFlows, flushes the rollups every minute, closes partitions and
// applies retention. After an unclean stop it first counts the rows written
// since the last rollup flush into the rollups again (replay.go), between
// batches. When ctx is done it stops accepting flows, drains the queue,
// writes the last batch and the rollups, and returns nil.
func (s *FlowDB) Run(ctx context.Context) error {
	if s.readOnly || s.wr == nil {
		return errors.New("cannot run store: opened read-only")
	}
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("store is already running")
	}
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	bg := context.WithoutCancel(ctx)
	// The packer moves closed partitions' rows into blocks (rawpack.go)
	// beside the writer; it stops with ctx, and Run returns after it.
	packCtx, stopPack := context.WithCancel(ctx)
	packDone := make(chan struct{})
	go func() {
		defer close(packDone)
		s.packLoop(packCtx)
	}()
	defer func() {
		stopPack()
		<-packDone
	}()
	s.startReplay(bg)
	// The first maintenance runs at once: it closes partitions and applies
	// retention after a restart (the rollups, empty or being replayed, are
	// flushed at the first tick).
	s.housekeep(bg, s.now())
	var group []*store.Batch
	write := func(b *store.Batch) {
		group = s.gather(append(group[:0], b))
		s.writeGroup(bg, group)
	}
	for {
		if len(s.wr.replay) > 0 {
			select {
			case b := <-s.queue:
				write(b)
			case <-tick.C:
				s.maintain(bg) // finishes the replay first
			case <-ctx.Done():
				return s.shutdown()
			default:
				// Nothing waiting: count some rows again.
				s.replayStep(bg)
			}
			continue
		}
		select {
		case b := <-s.queue:
			write(b)
		case <-tick.C:
			s.maintain(bg)
		case <-ctx.Done():
			return s.shutdown()
		}
	}
}

// gather adds queued batches to group without waiting, up to maxTxFlows.
func (s *FlowDB) gather(group []*store.Batch) []*store.Batch {
	n := len(group[0].Flows)
	for n < maxTxFlows {
		select {
		case b := <-s.queue:
			group = append(group, b)
			n += len(b.Flows)
		default:
			return group
		}
	}
	return group
}

func (s *FlowDB) shutdown() error {
	w := s.wr
	w.stopOnce.Do(func() { close(w.stopping) })
	s.closeMu.Lock()
	w.draining = true
	s.closeMu.Unlock()
	ctx := context.Background()
	var group []*store.Batch
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
	if err := s.natFlush(ctx, s.now(), true); err != nil {
		s.logger.Error("cannot write the NAT mappings at shutdown", "err", err)
		return err
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
// adds them to the in-memory rollups, then indexes the rows.
func (s *FlowDB) writeGroup(ctx context.Context, group []*store.Batch) {
	w := s.wr
	now := s.now()
	minMs := now.Add(-s.cfg.RawRetention).UnixMilli()
	maxMs := now.Add(futureSlack).UnixMilli()
	// Drop out-of-range flows first, in place, counting each per exporter.
	for _, b := range group {
		s.noteBatch(b)
		kept := b.Flows[:0]
		for i := range b.Flows {
			f := b.Flows[i]
			t := flowTime(&f, b.Recv)
			switch {
			case t < minMs:
				s.dropFlows(b.Flows[i:i+1], store.DropTooOld)
			case t > maxMs:
				s.dropFlows(b.Flows[i:i+1], store.DropFuture)
			default:
				f.End = t
				kept = append(kept, f)
			}
		}
		b.Flows = kept
	}
	start := time.Now()
	if err := s.prepareGroup(ctx, group); err != nil {
		for _, b := range group {
			w.agg.add(b.Flows, w.exporters)
		}
		s.failGroup(group, err)
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, b := range group {
			w.agg.add(b.Flows, w.exporters)
		}
		s.natObserve(group)
	}()
	n, err := s.writeRaw(ctx, group)
	<-done
	if w.agg.full() {
		if err := s.flushRollups(ctx); err != nil {
			s.setHealth(err)
		}
	}
	if err != nil {
		s.failGroup(group, err)
		return
	}
	s.metrics.written.Add(float64(n))
	s.metrics.writeSeconds.Observe(time.Since(start).Seconds())
	s.setHealth(nil)
	if s.observer != nil {
		for _, b := range group {
			s.observer.FlowsStored(b.Flows)
		}
	}
	s.recycle(group)
	if w.postings > w.maxPostings {
		s.spillLargest(ctx)
	}
	s.natFlushIfFull(ctx)
}

// spillLargest writes the biggest host index tail as a segment, to bound
// the memory of the tails.
func (s *FlowDB) spillLargest(ctx context.Context) {
	w := s.wr
	var big *partition
	for _, p := range w.parts {
		if big == nil || p.tail.postings > big.tail.postings {
			big = p
		}
	}
	if big == nil {
		return
	}
	n := big.tail.postings
	if err := s.spill(ctx, big); err != nil {
		// The tail stays in memory (and searchable); the next group retries.
		s.setHealth(err)
		return
	}
	w.postings -= n
	s.metrics.tailPostings.Set(float64(w.postings))
}

// failGroup counts the group's flows as dropped and reports the error. The
// group's flows stay in the in-memory rollups when they were added, so
// rollup totals include flows whose raw rows were lost.
func (s *FlowDB) failGroup(group []*store.Batch, err error) {
	err = store.DescribeWriteError(err)
	s.metrics.batchesDropped.Inc()
	s.countDropped(1, 0)
	for _, b := range group {
		s.dropFlows(b.Flows, store.DropWriteError)
	}
	s.setHealth(fmt.Errorf("cannot write flows: %w", err))
	s.recycle(group)
}

func (s *FlowDB) recycle(group []*store.Batch) {
	for _, b := range group {
		s.PutBatch(b)
	}
}

// flowTime returns the time a flow is filed under: its end, else its
// start, else when it was received.
func flowTime(f *store.Flow, recv time.Time) int64 {
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

// pendingInsert is the rows of one partition waiting for their multi-row
// INSERT.
type pendingInsert struct {
	p            *partition
	stmtN, stmt1 *sql.Stmt
	args         []any
	firstID      int64 // p.nextID when the group began
}

// pendingRow is a written row that goes into its partition's host index
// tail once the transaction commits.
type pendingRow struct {
	p   *partition
	row tailRow
}

// writeRaw inserts the flows of the group into their partitions in one
// transaction and, once it committed, adds the rows to the host index
// tails. It returns the number of flows it tried to write. Partitions,
// exporters and names must have been prepared by prepareGroup.
func (s *FlowDB) writeRaw(ctx context.Context, group []*store.Batch) (total int, err error) {
	w := s.wr
	for _, b := range group {
		total += len(b.Flows)
	}
	if total == 0 {
		return 0, nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return total, fmt.Errorf("cannot begin transaction: %w", err)
	}
	defer tx.Rollback()
	clear(w.expCount)
	clear(w.pending)
	arena := w.arena[:0]
	rows := w.tailRows[:0]
	defer func() {
		// On failure the rows are rolled back: their ids are free again.
		for p, pd := range w.pending {
			if err != nil {
				p.nextID = pd.firstID
			}
		}
		w.arena, w.tailRows = arena[:0], rows[:0]
	}()
	flush := func(pd *pendingInsert) error {
		p := pd.p
		n := int64(len(pd.args))
		if n == rowsPerInsert {
			res, err := pd.stmtN.ExecContext(ctx, pd.args...)
			if err == nil {
				err = checkRowID(res, p.nextID+n-1)
			}
			if err != nil {
				return fmt.Errorf("cannot insert flows into %s: %w", p.name, err)
			}
		} else {
			for i := range pd.args {
				res, err := pd.stmt1.ExecContext(ctx, pd.args[i])
				if err == nil {
					err = checkRowID(res, p.nextID+int64(i))
				}
				if err != nil {
					return fmt.Errorf("cannot insert flows into %s: %w", p.name, err)
				}
			}
		}
		p.nextID += n
		pd.args = pd.args[:0]
		return nil
	}
	for _, b := range group {
		var lastAddr netip.Addr
		var lastExp int64
		var ec *expCounters
		var pd *pendingInsert
		for i := range b.Flows {
			f := &b.Flows[i]
			a := f.Exporter.Addr().Unmap()
			if ec == nil || a != lastAddr {
				lastAddr, lastExp = a, w.exporters[a]
				if ec = w.expCount[lastExp]; ec == nil {
					ec = &expCounters{}
					w.expCount[lastExp] = ec
				}
			}
			ec.router = f.RouterID
			ec.flows++
			ec.bytes += int64(f.Scale(f.Bytes))
			ec.packets += int64(f.Scale(f.Packets))
			nm := rawNames{sub: uint64(w.names[f.Subscriber]), app: uint64(w.names[f.Application]),
				scc: uint64(w.names[f.SrcCountry]), dcc: uint64(w.names[f.DstCountry]), dom: uint64(w.names[f.RemoteDomain])}
			pstart := partitionStart(f.End)
			if pd == nil || pd.p.start != pstart {
				p := w.parts[pstart]
				if pd = w.pending[p]; pd == nil {
					pd = &pendingInsert{p: p, args: make([]any, 0, rowsPerInsert), firstID: p.nextID,
						stmtN: tx.StmtContext(ctx, p.stmtN), stmt1: tx.StmtContext(ctx, p.stmt1)}
					w.pending[p] = pd
				}
			}
			local, remote := f.LocalRemote()
			local, remote = local.Unmap(), remote.Unmap()
			t := f.End - pstart
			o := len(arena)
			arena = encodeRaw(arena, f, t, local, remote, lastExp, nm, w)
			pd.args = append(pd.args, arena[o:len(arena):len(arena)])
			rows = append(rows, pendingRow{pd.p, tailRow{int32(t), local, remote}})
			if len(pd.args) == rowsPerInsert {
				if err = flush(pd); err != nil {
					return total, err
				}
			}
		}
	}
	for _, pd := range w.pending {
		if len(pd.args) > 0 {
			if err = flush(pd); err != nil {
				return total, err
			}
		}
	}
	nowMs := s.now().UnixMilli()
	for id, ec := range w.expCount {
		if id == 0 {
			continue
		}
		if _, err = tx.ExecContext(ctx, `UPDATE exporters SET router_id = ?, flows = flows + ?, bytes = bytes + ?,
			packets = packets + ?, last_flow = ?, first_flow = CASE WHEN first_flow = 0 THEN ? ELSE first_flow END
			WHERE id = ?`, ec.router, ec.flows, ec.bytes, ec.packets, nowMs, nowMs, id); err != nil {
			return total, fmt.Errorf("cannot update exporter counters: %w", err)
		}
	}
	if err = tx.Commit(); err != nil {
		return total, fmt.Errorf("cannot commit flows: %w", err)
	}
	s.indexRows(rows)
	return total, nil
}

// checkRowID checks that the last row an INSERT wrote got the id the
// writer assigned to it: the host index relies on it.
func checkRowID(res sql.Result, want int64) error {
	got, err := res.LastInsertId()
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("row id %d, want %d", got, want)
	}
	return nil
}

// indexRows adds committed rows to their partitions' host index tails.
func (s *FlowDB) indexRows(rows []pendingRow) {
	w := s.wr
	now := s.now()
	for len(rows) > 0 {
		p := rows[0].p
		// Rows of one partition are contiguous in the common case (a group
		// rarely spans two partitions); collect a run.
		j := 1
		for j < len(rows) && rows[j].p == p {
			j++
		}
		run := w.runScratch[:0]
		for _, r := range rows[:j] {
			run = append(run, r.row)
		}
		if j < len(rows) {
			// Rows of p further on keep their order: move them forward.
			rest := rows[j:]
			k := 0
			for _, r := range rest {
				if r.p == p {
					run = append(run, r.row)
				} else {
					rest[k] = r
					k++
				}
			}
			rows = rest[:k]
		} else {
			rows = nil
		}
		before := p.tail.postings
		p.tail.add(run, now, &w.chunks)
		w.postings += p.tail.postings - before
		w.runScratch = run[:0]
	}
	s.metrics.tailPostings.Set(float64(w.postings))
}

// prepareGroup creates, in a small transaction of its own, the partitions,
// exporter rows, interned names and addresses that the group needs, and
// prepares the partitions' insert statements. It runs before the data
// transaction because the writer's single connection cannot prepare
// statements while a transaction holds it, and so that the rollup
// aggregator can read the ids concurrently with the data transaction.
func (s *FlowDB) prepareGroup(ctx context.Context, group []*store.Batch) error {
	w := s.wr
	newParts := map[int64]struct{}{}
	newExp := map[netip.Addr]int64{}
	newNames := map[string]struct{}{}
	for _, b := range group {
		var last netip.Addr
		lastPart := int64(-1)
		for i := range b.Flows {
			f := &b.Flows[i]
			if ps := partitionStart(f.End); ps != lastPart {
				lastPart = ps
				if w.parts[ps] == nil {
					newParts[ps] = struct{}{}
				}
			}
			if a := f.Exporter.Addr().Unmap(); i == 0 || a != last {
				last = a
				if _, ok := w.exporters[a]; !ok && a.IsValid() {
					newExp[a] = f.RouterID
				}
			}
			for _, n := range [...]string{f.Subscriber, f.Application, f.SrcCountry, f.DstCountry, f.RemoteDomain} {
				if _, ok := w.names[n]; !ok {
					newNames[n] = struct{}{}
				}
			}
		}
	}
	if len(newParts)+len(newExp)+len(newNames)+len(w.newAddrs) > 0 {
		if err := s.createRefs(ctx, newParts, newExp, newNames); err != nil {
			return err
		}
	}
	for _, b := range group {
		lastPart := int64(-1)
		for i := range b.Flows {
			ps := partitionStart(b.Flows[i].End)
			if ps == lastPart {
				continue
			}
			lastPart = ps
			p := w.parts[ps]
			if p.stmtN != nil {
				continue
			}
			var err error
			vals := strings.TrimSuffix(strings.Repeat("(?),", rowsPerInsert), ",")
			if p.stmtN, err = s.w.PrepareContext(ctx, "INSERT INTO "+p.name+" (x) VALUES "+vals); err != nil {
				return fmt.Errorf("cannot prepare insert into %s: %w", p.name, err)
			}
			if p.stmt1, err = s.w.PrepareContext(ctx, "INSERT INTO "+p.name+" (x) VALUES (?)"); err != nil {
				p.stmtN.Close()
				p.stmtN = nil
				return fmt.Errorf("cannot prepare insert into %s: %w", p.name, err)
			}
		}
	}
	return nil
}

func (s *FlowDB) createRefs(ctx context.Context, parts map[int64]struct{}, exps map[netip.Addr]int64, names map[string]struct{}) error {
	w := s.wr
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cannot begin transaction: %w", err)
	}
	defer tx.Rollback()
	created := map[int64]*partition{}
	for start := range parts {
		p := &partition{start: start, name: partitionName(start), format: formatV2, nextID: 1}
		for _, q := range []string{
			"CREATE TABLE IF NOT EXISTS " + p.name + " (id INTEGER PRIMARY KEY, x BLOB NOT NULL)",
			"CREATE TABLE IF NOT EXISTS " + indexTable(p.name) + " (seg INTEGER NOT NULL, k BLOB NOT NULL, v BLOB NOT NULL, PRIMARY KEY (seg, k)) WITHOUT ROWID",
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("cannot create partition %s: %w", p.name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO raw_partitions (name, start, format, rolled) VALUES (?, ?, ?, 0)",
			p.name, start/1000, formatV2); err != nil {
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
	addrIDs := map[netip.Addr]uint64{}
	for a := range w.newAddrs {
		var id int64
		if err := tx.QueryRowContext(ctx, "INSERT INTO addrs (addr) VALUES (?) RETURNING id", addrBytes(a)).Scan(&id); err != nil {
			return fmt.Errorf("cannot intern address: %w", err)
		}
		addrIDs[a] = uint64(id)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cannot commit new partitions and names: %w", err)
	}
	for start, p := range created {
		p.tail = newHostTail(1)
		w.parts[start] = p
		s.setTail(p.name, p.tail)
	}
	for a, id := range expIDs {
		w.exporters[a] = id
	}
	for n, id := range nameIDs {
		w.names[n] = id
	}
	for a, id := range addrIDs {
		w.addrs[a] = id
	}
	clear(w.newAddrs)
	s.metrics.partitions.Set(float64(len(w.parts) + len(w.legacy)))
	return nil
}

// closeStatements releases a partition's prepared statements.
func (p *partition) closeStatements() {
	if p.stmtN != nil {
		p.stmtN.Close()
		p.stmt1.Close()
		p.stmtN, p.stmt1 = nil, nil
	}
}
