package collector

import (
	"context"
	"errors"
	"time"

	"github.com/flowbox/flowbox/store"
)

// flush hands the current batch to the pipeline: the enrichment stage
// labels its flows in place (router, direction, subscriber...), the table
// counts them as received, and the sink's one queue takes the batch. With
// wait nil it never blocks: a full queue drops the batch and counts its
// flows (queue_full) per exporter. At shutdown wait is done when the flush
// timeout passed; until then the reader waits for room.
func (r *reader) flush(wait context.Context) {
	b := r.cur
	r.batchStart = time.Time{}
	if len(b.Flows) == 0 {
		return
	}
	c := r.c
	if c.stage != nil {
		c.stage.Enrich(b.Flows)
	}
	c.exporters.received(b.Flows)
	b.Recv = c.now()
	var err error
	if wait == nil {
		err = c.sink.Submit(b)
	} else {
		err = c.sink.SubmitWait(wait, b)
	}
	if err != nil {
		reason := store.DropQueueFull
		if wait != nil || errors.Is(err, store.ErrClosed) {
			reason = store.DropShutdown
		}
		c.exporters.FlowsDropped(b.Flows, reason)
		if ok, suppressed := r.dropLog.allow(time.Now()); ok {
			c.log.Warn("the store's queue refused a batch, flows dropped", "flows", len(b.Flows),
				"reason", reason, "error", err, "suppressed", suppressed)
		}
		c.sink.PutBatch(b)
	}
	r.cur = c.newBatch()
}

// newBatch returns an empty batch from the sink, with room for a full one.
func (c *Collector) newBatch() *store.Batch {
	b := c.sink.GetBatch()
	if cap(b.Flows) < c.cfg.BatchSize {
		b.Flows = make([]store.Flow, 0, c.cfg.BatchSize+batchHeadroom)
	}
	b.Recv = time.Time{}
	return b
}

// batchHeadroom is the extra capacity of a batch beyond BatchSize, so that
// the last packet of a full batch rarely makes append reallocate.
const batchHeadroom = 512

// rateLimiter lets one event through per interval and counts the rest, for
// logs on the hot path. It is used by one goroutine.
type rateLimiter struct {
	last       time.Time
	suppressed int
}

const logInterval = 10 * time.Second

// allow reports whether to log now, and how many events were suppressed
// since the last one logged.
func (l *rateLimiter) allow(now time.Time) (bool, int) {
	if !l.last.IsZero() && now.Sub(l.last) < logInterval {
		l.suppressed++
		return false, 0
	}
	s := l.suppressed
	l.last, l.suppressed = now, 0
	return true, s
}
