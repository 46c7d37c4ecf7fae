package flowdb

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/flowbox/flowbox/store"
)

// SetWriteObserver sets the observer of the writer's outcomes. Call it
// before Run; nil removes it.
func (s *FlowDB) SetWriteObserver(o store.WriteObserver) { s.observer = o }

// Submit queues a filled batch for the writer without blocking. Every flow
// must have its Exporter and RouterID set (attribution is the caller's: the
// enrichment stage). It returns ErrQueueFull when the queue is full and an
// error wrapping ErrClosed once shutdown began; the batch then still belongs
// to the caller, which counts its flows as dropped (with the reason) and
// gives it back with PutBatch. Submit never counts a drop itself.
func (s *FlowDB) Submit(b *store.Batch) error { return s.submit(nil, b) }

// SubmitWait is Submit that waits for room in the queue until ctx is done
// (then ctx's error is returned). Shutdown hands over the last batches with
// it, and so does InsertFlows.
func (s *FlowDB) SubmitWait(ctx context.Context, b *store.Batch) error { return s.submit(ctx, b) }

// submit is Submit (ctx nil) and SubmitWait.
func (s *FlowDB) submit(ctx context.Context, b *store.Batch) error {
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
		return fmt.Errorf("cannot submit flows: %w", store.ErrClosed)
	}
	if ctx == nil {
		select {
		case s.queue <- b:
			return nil
		default:
			return store.ErrQueueFull
		}
	}
	select {
	case s.queue <- b:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cannot queue flows: %w", ctx.Err())
	case <-s.wr.stopping:
		return fmt.Errorf("cannot queue flows: %w", store.ErrClosed)
	}
}

// InsertFlows queues a copy of flows for the writer (flows is not
// retained), attributing flows whose RouterID is 0 to the router of their
// exporter address. It blocks while the queue is full until ctx is done;
// then the flows are dropped, counted (as queue_full or shutdown), and the
// error returned. The collector does not use it (it fills batches and
// Submits them); tools and tests do.
func (s *FlowDB) InsertFlows(ctx context.Context, flows []store.Flow) error {
	if len(flows) == 0 {
		return nil
	}
	if s.readOnly || s.wr == nil {
		return errors.New("cannot insert flows: store is opened read-only")
	}
	b := s.GetBatch()
	b.Flows = append(b.Flows[:0], flows...)
	b.Recv = s.now()
	s.attribute(b.Flows)
	err := s.SubmitWait(ctx, b)
	if err == nil {
		return nil
	}
	reason := store.DropQueueFull
	if errors.Is(err, store.ErrClosed) {
		reason = store.DropShutdown
	}
	s.dropFlows(b.Flows, reason)
	s.PutBatch(b)
	return err
}

// dropFlows counts flows dropped by the store for reason: in the metrics,
// the health counters and, through the observer, per exporter.
func (s *FlowDB) dropFlows(flows []store.Flow, reason string) {
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
func (s *FlowDB) noteBatch(b *store.Batch) {
	var last netip.Addr
	for i := range b.Flows {
		f := &b.Flows[i]
		if a := f.Exporter.Addr().Unmap(); i == 0 || a != last {
			s.noteSeen(a, f.RouterID, b.Recv)
			last = a
		}
	}
}

// attribute sets the RouterID of flows that have none from the router
// resolver (when there is one).
func (s *FlowDB) attribute(flows []store.Flow) {
	if s.routers == nil {
		return
	}
	for i := range flows {
		if f := &flows[i]; f.RouterID == 0 {
			f.RouterID, _ = s.routers.RouterFor(f.Exporter.Addr().Unmap())
		}
	}
}
