package store

// Bounds of a BatchPool.
const (
	// FreeBatches is the room of a flow database's free list of batches
	// beyond what its queue may hold: one batch per collector reader being
	// filled, one being written.
	FreeBatches = 16
	// maxFreeFlows is the largest batch kept; a bigger one is left to the
	// garbage collector.
	maxFreeFlows = 16384
)

// BatchPool is a bounded free list of batches, so that the ingest path
// reuses their memory: producers Get and fill them, the writer Puts them
// back once written (a producer does for a batch Submit refused).
type BatchPool struct {
	free chan *Batch
}

// NewBatchPool returns a pool that keeps at most n batches.
func NewBatchPool(n int) *BatchPool { return &BatchPool{free: make(chan *Batch, n)} }

// Get returns an empty batch from the pool, or a new one.
func (p *BatchPool) Get() *Batch {
	select {
	case b := <-p.free:
		return b
	default:
		return &Batch{}
	}
}

// Put empties b and keeps it unless the pool is full or b is too large.
func (p *BatchPool) Put(b *Batch) {
	clear(b.Flows) // drop string references
	b.Flows = b.Flows[:0]
	if cap(b.Flows) > maxFreeFlows {
		return
	}
	select {
	case p.free <- b:
	default:
	}
}
