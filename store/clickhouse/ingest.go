package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/flowbox/flowbox/store"
)

// maxInsertFlows bounds the flows of one insert (about 12 MB of
// RowBinary).
const maxInsertFlows = 1 << 16

// Ingest is the write side of the ClickHouse store (store.FlowIngest): a
// bounded queue of batches and one writer (Run) that inserts them, several
// batches a request. A ClickHouse that is down or slow never blocks the
// producers: the writer retries the batches it holds, with backoff, while
// new ones wait in the queue; once the queue is full Submit refuses them
// and the producer counts them as dropped (queue_full). A batch ClickHouse
// refuses as bad (400) is dropped at once (write_error). Every drop is
// counted in Health and, per exporter, by the WriteObserver.
type Ingest struct {
	w        *FlowWriter
	logger   *slog.Logger
	now      func() time.Time
	queue    chan *store.Batch
	free     *store.BatchPool
	observer store.WriteObserver
	// backoff is the first wait before a retry (doubled up to maxBackoff).
	backoff, maxBackoff time.Duration
	// drainTimeout bounds the last inserts at shutdown.
	drainTimeout time.Duration

	closeMu  sync.RWMutex // held for reading while sending on queue
	closed   bool
	stopping chan struct{} // closed when Run begins to stop

	mu     sync.Mutex
	health store.Health
	seen   seen
	// backlog is the end (unix ms) of the oldest flow of each batch
	// queued or being inserted: the top-N rollups wait for them
	// (Backlog). At most the queue, the free list and one insert.
	backlog map[*store.Batch]int64

	// spill, when set, takes the inserts ClickHouse cannot (spill.go);
	// spilled is signalled when it gets one, for the replayer.
	spill   *spill
	spilled chan struct{}
}

// EnableSpill makes the writer put the inserts it cannot make (ClickHouse
// down or slow) into files of dir, up to maxBytes, and send them once
// ClickHouse answers; the files a previous run left are sent first (a
// file that cannot be read is set aside as *.bad and counted as a dropped
// batch). Call before Run.
func (in *Ingest) EnableSpill(dir string, maxBytes int64) error {
	s, bad, err := openSpill(dir, maxBytes)
	for _, b := range bad {
		in.logger.Error("a clickhouse spill file cannot be read; set aside, its flows are lost", "file", b)
	}
	in.countDropped(0, uint64(len(bad)))
	if err != nil {
		return err
	}
	in.spill, in.spilled = s, make(chan struct{}, 1)
	if flows, bytes, _, ok := s.state(); ok {
		in.logger.Info("flows wait in the clickhouse spill from a previous run", "flows", flows, "bytes", bytes)
	}
	return nil
}

// NewIngest returns the writer of w's flows with a queue of queueSize
// batches. It starts nothing: call Run.
func NewIngest(w *FlowWriter, queueSize int, logger *slog.Logger) (*Ingest, error) {
	if queueSize < 1 {
		return nil, fmt.Errorf("clickhouse ingest: queue size %d, want at least 1", queueSize)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	in := &Ingest{w: w, logger: logger, now: time.Now,
		queue: make(chan *store.Batch, queueSize), free: store.NewBatchPool(queueSize + store.FreeBatches),
		backoff: time.Second, maxBackoff: 30 * time.Second, drainTimeout: w.c.cfg.Timeout,
		stopping: make(chan struct{}), backlog: map[*store.Batch]int64{}}
	in.health = store.Health{OK: true, Since: in.now(), QueueCapacity: queueSize}
	return in, nil
}

// SetWriteObserver sets who learns what became of each flow (before Run).
func (in *Ingest) SetWriteObserver(o store.WriteObserver) { in.observer = o }

// GetBatch returns an empty batch for a producer to fill and Submit.
func (in *Ingest) GetBatch() *store.Batch { return in.free.Get() }

// PutBatch gives a batch back to the free list.
func (in *Ingest) PutBatch(b *store.Batch) { in.free.Put(b) }

// Submit queues a filled batch without blocking: store.ErrQueueFull when
// the queue is full, an error wrapping store.ErrClosed once shutdown
// began. A refused batch still belongs to the caller, which counts it.
func (in *Ingest) Submit(b *store.Batch) error { return in.submit(nil, b) }

// SubmitWait is Submit that waits for room until ctx is done.
func (in *Ingest) SubmitWait(ctx context.Context, b *store.Batch) error { return in.submit(ctx, b) }

func (in *Ingest) submit(ctx context.Context, b *store.Batch) error {
	if len(b.Flows) == 0 {
		in.PutBatch(b)
		return nil
	}
	in.closeMu.RLock()
	defer in.closeMu.RUnlock()
	if in.closed {
		return fmt.Errorf("cannot submit flows: %w", store.ErrClosed)
	}
	// In the backlog before the writer can take it (and release it).
	in.hold(b)
	if ctx == nil {
		select {
		case in.queue <- b:
			return nil
		default:
			in.release(b)
			return store.ErrQueueFull
		}
	}
	select {
	case in.queue <- b:
		return nil
	case <-ctx.Done():
		in.release(b)
		return fmt.Errorf("cannot queue flows: %w", ctx.Err())
	case <-in.stopping:
		in.release(b)
		return fmt.Errorf("cannot queue flows: %w", store.ErrClosed)
	}
}

// hold adds b to the backlog.
func (in *Ingest) hold(b *store.Batch) {
	oldest := b.Flows[0].End
	for i := range b.Flows {
		oldest = min(oldest, b.Flows[i].End)
	}
	in.mu.Lock()
	in.backlog[b] = oldest
	in.mu.Unlock()
}

// release takes batches, written or dropped, out of the backlog.
func (in *Ingest) release(bs ...*store.Batch) {
	in.mu.Lock()
	for _, b := range bs {
		delete(in.backlog, b)
	}
	in.mu.Unlock()
}

// Backlog returns the end of the oldest flow not written yet (queued, or
// in an insert being tried), false when there is none: a step of the
// top-N rollups that ends after it waits (ClickHouse down or slow would
// otherwise see steps rolled up without the flows waiting for it).
func (in *Ingest) Backlog() (time.Time, bool) {
	var oldest int64
	found := false
	if in.spill != nil {
		_, _, oldest, found = in.spill.state()
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, t := range in.backlog {
		if !found || t < oldest {
			oldest, found = t, true
		}
	}
	return time.UnixMilli(oldest).UTC(), found
}

// InsertFlows queues a copy of flows (RouterID set by the caller), waiting
// for room until ctx is done; flows it cannot queue are counted as dropped.
func (in *Ingest) InsertFlows(ctx context.Context, flows []store.Flow) error {
	if len(flows) == 0 {
		return nil
	}
	b := in.GetBatch()
	b.Flows = append(b.Flows[:0], flows...)
	b.Recv = in.now()
	err := in.SubmitWait(ctx, b)
	if err == nil {
		return nil
	}
	reason := store.DropQueueFull
	if errors.Is(err, store.ErrClosed) {
		reason = store.DropShutdown
	}
	in.drop([]*store.Batch{b}, reason)
	return err
}

// rollupFailed counts a failed round of the top-N rollups (err), or
// clears the last error after a good one (nil).
func (in *Ingest) rollupFailed(err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if err == nil {
		in.health.RollupError = ""
		return
	}
	in.health.RollupErrors++
	in.health.RollupError = err.Error()
}

// Health is the writer's status.
func (in *Ingest) Health() store.Health {
	in.mu.Lock()
	defer in.mu.Unlock()
	h := in.health
	h.QueueLength = len(in.queue)
	if in.spill != nil {
		h.SpilledFlows, h.SpilledBytes, _, _ = in.spill.state()
		h.SpillCapacity = in.spill.max
	}
	return h
}

// setHealth records the outcome of an insert; it logs changes only.
func (in *Ingest) setHealth(err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	switch {
	case err == nil && !in.health.OK:
		in.logger.Info("clickhouse inserts resumed", "after", in.now().Sub(in.health.Since).Round(time.Second).String())
		in.health.OK, in.health.Error, in.health.Since = true, "", in.now()
	case err != nil && (in.health.OK || in.health.Error != err.Error()):
		in.logger.Error("cannot insert flows into clickhouse; they wait in the queue", "err", err)
		in.health.OK, in.health.Error, in.health.Since = false, err.Error(), in.now()
	}
}

// drop counts the flows of batches as dropped for reason and recycles
// the batches.
func (in *Ingest) drop(group []*store.Batch, reason string) {
	var n uint64
	in.release(group...)
	for _, b := range group {
		n += uint64(len(b.Flows))
		if in.observer != nil {
			in.observer.FlowsDropped(b.Flows, reason)
		}
		in.PutBatch(b)
	}
	batches := uint64(len(group))
	if reason != store.DropWriteError {
		batches = 0
	}
	in.countDropped(n, batches)
}

// countDropped adds dropped flows, and batches lost to a write error, to
// Health.
func (in *Ingest) countDropped(flows, batches uint64) {
	in.mu.Lock()
	in.health.DroppedFlows += flows
	in.health.DroppedBatches += batches
	in.mu.Unlock()
}

// Run is the writer: it inserts the queued batches, several a request,
// until ctx is done; then it closes the queue, inserts what is left within
// drainTimeout and counts the rest as dropped (shutdown).
func (in *Ingest) Run(ctx context.Context) error {
	if in.spill != nil {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			in.replay(ctx)
		}()
	}
	var group []*store.Batch
	flows := 0
	var first uint32 // the group's first flow id
	take := func(b *store.Batch) {
		in.seen.note(b)
		group = append(group, b)
		flows += len(b.Flows)
	}
	for {
		if len(group) == 0 {
			select {
			case b := <-in.queue:
				take(b)
			case <-ctx.Done():
				return in.shutdown(nil, 0)
			}
		}
		// More batches that are already waiting, up to one insert.
	gather:
		for flows < maxInsertFlows {
			select {
			case b := <-in.queue:
				take(b)
			default:
				break gather
			}
		}
		first = in.w.reserve(flows)
		// While inserts wait in the spill (ClickHouse down or slow),
		// the next go there too, at disk speed.
		if in.spillWaits() && in.toSpill(group, first) {
			group, flows = group[:0], 0
			continue
		}
		if !in.insert(ctx, group, first) {
			return in.shutdown(group, first)
		}
		group, flows = group[:0], 0
	}
}

// spillWaits reports whether inserts wait in the spill.
func (in *Ingest) spillWaits() bool {
	if in.spill == nil {
		return false
	}
	_, ok := in.spill.oldest()
	return ok
}

// toSpill puts the insert of group (its ids from first) into the spill;
// false when it has no room or the write fails (the group is still to
// write).
func (in *Ingest) toSpill(group []*store.Batch, first uint32) bool {
	n := 0
	for _, b := range group {
		n += len(b.Flows)
	}
	name := in.w.groupName(first, n)
	err := in.w.withRows(func(b []byte) []byte { return in.w.appendBatches(b, group, first) }, func(rows []byte) error {
		return in.spill.add(spillHeaderOf(name, group), rows)
	})
	if err != nil {
		if !errors.Is(err, errSpillFull) {
			in.logger.Error("cannot spill flows to disk; they wait in memory", "err", err)
		}
		return false
	}
	in.release(group...)
	for _, b := range group {
		in.PutBatch(b)
	}
	select {
	case in.spilled <- struct{}{}:
	default:
	}
	return true
}

// replay sends the spilled inserts, oldest first, until ctx is done: an
// insert sent is counted as stored (per exporter), one ClickHouse refuses
// as bad (or a file that cannot be read) as dropped (write_error); while
// ClickHouse is down it waits, with backoff.
func (in *Ingest) replay(ctx context.Context) {
	wait := in.backoff
	for {
		f, ok := in.spill.oldest()
		if !ok {
			select {
			case <-in.spilled:
				continue
			case <-ctx.Done():
				return
			}
		}
		rows, err := in.spill.load(f)
		if err == nil {
			// Not cut short by ctx: see insert.
			err = in.w.insertRows(context.WithoutCancel(ctx), f.Name, f.Flows, rows)
			if err == nil {
				in.setHealth(nil)
				if err := in.spill.remove(f); err != nil {
					in.logger.Error("cannot remove a spill file sent to clickhouse", "err", err)
					return
				}
				f.report(in.observer, "")
				wait = in.backoff
				continue
			}
			if ctx.Err() != nil {
				return
			}
			in.setHealth(err)
		}
		if rows == nil || refused(err) {
			in.logger.Error("spilled flows cannot be written; they are dropped", "flows", f.Flows, "err", err)
			if err := in.spill.remove(f); err != nil {
				in.logger.Error("cannot remove a spill file", "err", err)
				return
			}
			f.report(in.observer, store.DropWriteError)
			in.countDropped(uint64(f.Flows), 1)
			continue
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		wait = min(2*wait, in.maxBackoff)
	}
}

// insert writes a group of batches (their flow ids from first), retrying
// with backoff until it is written, refused as bad (dropped), or ctx is
// done (false: the group is still to write). Every attempt sends the same
// ids, so ClickHouse stores the group once.
func (in *Ingest) insert(ctx context.Context, group []*store.Batch, first uint32) bool {
	wait := in.backoff
	for {
		// An insert under way is not cut short when ctx ends (the
		// client's timeout bounds it): ClickHouse may have stored it,
		// and the shutdown's retry would store it again.
		err := in.w.insertBatches(context.WithoutCancel(ctx), group, first)
		if err == nil {
			in.setHealth(nil)
			in.release(group...)
			for _, b := range group {
				if in.observer != nil {
					in.observer.FlowsStored(b.Flows)
				}
				in.PutBatch(b)
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		in.setHealth(err)
		if refused(err) {
			in.logger.Error("clickhouse refused flows as bad; they are dropped", "batches", len(group), "err", err)
			in.drop(group, store.DropWriteError)
			return true
		}
		// ClickHouse down or slow: to the spill, when it has room, so
		// that the queue keeps draining.
		if in.spill != nil && in.toSpill(group, first) {
			return true
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return false
		}
		wait = min(2*wait, in.maxBackoff)
	}
}

// shutdown stops the queue, then inserts pending (the group Run was
// inserting, its ids from first: the same insert again) and what the
// queue holds within drainTimeout; what cannot be inserted is dropped
// (shutdown).
func (in *Ingest) shutdown(pending []*store.Batch, first uint32) error {
	in.closeMu.Lock()
	in.closed = true
	close(in.stopping)
	in.closeMu.Unlock()
	var rest []*store.Batch
	for {
		select {
		case b := <-in.queue:
			in.seen.note(b)
			rest = append(rest, b)
			continue
		default:
		}
		break
	}
	if len(pending)+len(rest) == 0 {
		return nil
	}
	if in.spillWaits() {
		// ClickHouse is down or slow: what is left goes to disk, for
		// the next start.
		if len(pending) > 0 && in.toSpill(pending, first) {
			pending = nil
		}
		for len(pending) == 0 && len(rest) > 0 {
			j, n := oneInsert(rest)
			if !in.toSpill(rest[:j], in.w.reserve(n)) {
				break
			}
			rest = rest[j:]
		}
		if len(pending)+len(rest) == 0 {
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), in.drainTimeout)
	defer cancel()
	if len(pending) > 0 && !in.insert(ctx, pending, first) {
		in.drop(append(pending, rest...), store.DropShutdown)
		return fmt.Errorf("clickhouse: flows dropped at shutdown: %w", ctx.Err())
	}
	for len(rest) > 0 {
		j, n := oneInsert(rest)
		if !in.insert(ctx, rest[:j], in.w.reserve(n)) {
			in.drop(rest, store.DropShutdown)
			return fmt.Errorf("clickhouse: flows dropped at shutdown: %w", ctx.Err())
		}
		rest = rest[j:]
	}
	return nil
}

// oneInsert returns how many of the batches (at least one) fit in one
// insert, and their flows.
func oneInsert(batches []*store.Batch) (j, n int) {
	for j < len(batches) && (j == 0 || n+len(batches[j].Flows) <= maxInsertFlows) {
		n += len(batches[j].Flows)
		j++
	}
	return j, n
}

// refused reports whether ClickHouse refused an insert as bad (400): it
// would refuse it again.
func refused(err error) bool {
	var se *ServerError
	return errors.As(err, &se) && se.Status == http.StatusBadRequest
}
