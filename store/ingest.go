package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// Reasons for which flows are dropped on their way into the store, the same
// everywhere: the keys of ExporterStats.FlowsDropped, the reason label of
// the drop metrics, `flowbox stats` and the console. Each flow is dropped
// for one reason, counted once, per exporter.
const (
	// DropQueueFull: the pipeline's queue to the writer was full.
	DropQueueFull = "queue_full"
	// DropWriteError: the batch could not be written (disk full,
	// read-only file system...).
	DropWriteError = "write_error"
	// DropTooOld: the flow ended before the raw retention window.
	DropTooOld = "too_old"
	// DropFuture: the flow ends more than an hour in the future.
	DropFuture = "future"
	// DropShutdown: the writer did not take the flow before shutdown
	// ended.
	DropShutdown = "shutdown"
	// DropUntrusted: the exporter is neither an onboarded router nor in
	// collector.allowed-exporters; its flows are counted, not stored.
	DropUntrusted = "untrusted"
)

// DropReasons lists every drop reason, in the order the console shows them.
var DropReasons = []string{DropQueueFull, DropWriteError, DropTooOld, DropFuture, DropShutdown, DropUntrusted}

// ErrQueueFull is Submit's answer when the writer's queue is full.
var ErrQueueFull = errors.New("the store's queue is full")

// WriteObserver learns what became of every flow the writer took, so that
// one per-exporter table (the collector's) counts stored and dropped flows
// for each exporter. It is called from the writer goroutine and must not
// retain the slices.
type WriteObserver interface {
	// FlowsStored is called with flows that were written.
	FlowsStored(flows []Flow)
	// FlowsDropped is called with flows dropped for reason (a Drop*
	// constant).
	FlowsDropped(flows []Flow, reason string)
}

// SetWriteObserver sets the observer of the writer's outcomes. Call it
// before Run; nil removes it.
func (s *Store) SetWriteObserver(o WriteObserver) { s.observer = o }

// Submit queues a filled batch for the writer without blocking. Every flow
// must have its Exporter and RouterID set (attribution is the caller's: the
// enrichment stage). It returns ErrQueueFull when the queue is full and an
// error wrapping ErrClosed once shutdown began; the batch then still belongs
// to the caller, which counts its flows as dropped (with the reason) and
// gives it back with PutBatch. Submit never counts a drop itself.
func (s *Store) Submit(b *Batch) error { return s.submit(nil, b) }

// SubmitWait is Submit that waits for room in the queue until ctx is done
// (then ctx's error is returned). Shutdown hands over the last batches with
// it, and so does InsertFlows.
func (s *Store) SubmitWait(ctx context.Context, b *Batch) error { return s.submit(ctx, b) }

// submit is Submit (ctx nil) and SubmitWait.
func (s *Store) submit(ctx context.Context, b *Batch) error {
	if len(b.Flows) == 0 {
		s.PutBatch(b)
		return nil
	}
	if s.readOnly || s.wr == nil {
		return errors.New("cannot submit flows: store is opened read-only")
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed || s.wr.draining {
		return fmt.Errorf("cannot submit flows: %w", ErrClosed)
	}
	if ctx == nil {
		select {
		case s.queue <- b:
			return nil
		default:
			return ErrQueueFull
		}
	}
	select {
	case s.queue <- b:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cannot queue flows: %w", ctx.Err())
	case <-s.wr.stopping:
		return fmt.Errorf("cannot queue flows: %w", ErrClosed)
	}
}

// InsertFlows queues a copy of flows for the writer (flows is not
// retained), attributing flows whose RouterID is 0 to the router of their
// exporter address. It blocks while the queue is full until ctx is done;
// then the flows are dropped, counted (as queue_full or shutdown), and the
// error returned. The collector does not use it (it fills batches and
// Submits them); tools and tests do.
func (s *Store) InsertFlows(ctx context.Context, flows []Flow) error {
	if len(flows) == 0 {
		return nil
	}
	if s.readOnly || s.wr == nil {
		return errors.New("cannot insert flows: store is opened read-only")
	}
	b := s.GetBatch()
	b.Flows = append(b.Flows[:0], flows...)
	b.Recv = s.now()
	attr := *s.attribution.Load()
	for i := range b.Flows {
		if f := &b.Flows[i]; f.RouterID == 0 {
			f.RouterID = attr[f.Exporter.Addr().Unmap()]
		}
	}
	err := s.SubmitWait(ctx, b)
	if err == nil {
		return nil
	}
	reason := DropQueueFull
	if errors.Is(err, ErrClosed) {
		reason = DropShutdown
	}
	s.dropFlows(b.Flows, reason)
	s.PutBatch(b)
	return err
}

// dropFlows counts flows dropped by the store for reason: in the metrics,
// the health counters and, through the observer, per exporter.
func (s *Store) dropFlows(flows []Flow, reason string) {
	if len(flows) == 0 {
		return
	}
	s.metrics.dropped.WithLabelValues(reason).Add(float64(len(flows)))
	s.countDropped(0, uint64(len(flows)))
	if s.observer != nil {
		s.observer.FlowsDropped(flows, reason)
	}
}

// noteBatch records the exporters and routers of a batch the writer took as
// seen at the batch's time.
func (s *Store) noteBatch(b *Batch) {
	var last netip.Addr
	for i := range b.Flows {
		f := &b.Flows[i]
		if a := f.Exporter.Addr().Unmap(); i == 0 || a != last {
			s.noteSeen(a, f.RouterID, b.Recv)
			last = a
		}
	}
}
