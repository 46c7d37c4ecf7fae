package collector

import (
	"context"
	"sync"

	"github.com/flowbox/flowbox/store"
)

// inserter is what the tests' sinks implement: take a batch of flows (the
// store's writer writing one), or fail.
type inserter interface {
	InsertFlows(ctx context.Context, flows []store.Flow) error
}

// pipeSink plays the store's side of the pipeline for the tests: a bounded
// queue of batches drained by one writer goroutine that hands each batch to
// an inserter and tells the collector's table what became of it, as
// flowdb.FlowDB does.
type pipeSink struct {
	ins   inserter
	queue chan *store.Batch
	obs   store.WriteObserver

	mu      sync.Mutex
	closed  bool
	stopped chan struct{}
	done    chan struct{}
}

func newPipeSink(ins inserter, size int) *pipeSink {
	return &pipeSink{ins: ins, queue: make(chan *store.Batch, size), stopped: make(chan struct{}), done: make(chan struct{})}
}

func (p *pipeSink) GetBatch() *store.Batch  { return &store.Batch{} }
func (p *pipeSink) PutBatch(b *store.Batch) { b.Flows = b.Flows[:0] }

func (p *pipeSink) Submit(b *store.Batch) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return store.ErrClosed
	}
	select {
	case p.queue <- b:
		return nil
	default:
		return store.ErrQueueFull
	}
}

func (p *pipeSink) SubmitWait(ctx context.Context, b *store.Batch) error {
	select {
	case p.queue <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.stopped:
		return store.ErrClosed
	}
}

// run is the writer: until stop, then it drains the queue.
func (p *pipeSink) run(ctx context.Context) {
	defer close(p.done)
	write := func(b *store.Batch) {
		if err := p.ins.InsertFlows(ctx, b.Flows); err != nil {
			p.obs.FlowsDropped(b.Flows, store.DropWriteError)
			return
		}
		p.obs.FlowsStored(b.Flows)
	}
	for {
		select {
		case b := <-p.queue:
			write(b)
		case <-p.stopped:
			for {
				select {
				case b := <-p.queue:
					write(b)
				default:
					return
				}
			}
		}
	}
}

// stop ends the writer after it drained the queue.
func (p *pipeSink) stop() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.stopped)
	}
	p.mu.Unlock()
	<-p.done
}
