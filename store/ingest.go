package store

import "errors"

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
