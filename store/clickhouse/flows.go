package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/flowbox/flowbox/store"
)

// maxSiteLen bounds a site name (it is in every row).
const maxSiteLen = 64

// FlowWriter inserts raw flows of one site into the flows table, a batch
// a request in RowBinary. It is safe for concurrent use.
type FlowWriter struct {
	c       *Client
	site    string
	stmt    string // the INSERT up to its SETTINGS
	sources func(netip.Addr) int64
	bufs    sync.Pool     // *[]byte, the RowBinary of a batch
	next    atomic.Uint32 // the id of the next flow (from a random start)
	nonce   uint64        // names this writer's inserts (with their ids)
}

// NewFlowWriter returns the writer of site's flows (site names this
// collector in a shared cluster; not empty). exporters gives the id of
// an exporter address, for the source of flows no router matched (-id;
// nil: 0).
func NewFlowWriter(c *Client, site string, exporters func(netip.Addr) int64) (*FlowWriter, error) {
	if site == "" || len(site) > maxSiteLen {
		return nil, fmt.Errorf("clickhouse site %q: want 1 to %d bytes", site, maxSiteLen)
	}
	w := &FlowWriter{c: c, site: site, sources: exporters, nonce: rand.Uint64(),
		stmt: "INSERT INTO " + c.cfg.Database + ".flows (" + flowColumns + ")"}
	w.next.Store(rand.Uint32())
	return w, nil
}

// reserve returns the first of n flow ids for one insert: a retry of the
// insert uses the same ids, hence the same deduplication token.
func (w *FlowWriter) reserve(n int) uint32 { return w.next.Add(uint32(n)) - uint32(n) }

// source returns the source of f: its router, or minus its exporter's id.
func (w *FlowWriter) source(f *store.Flow) int64 {
	if f.RouterID != 0 || w.sources == nil {
		return f.RouterID
	}
	return -w.sources(f.Exporter.Addr().Unmap())
}

// Insert writes flows in one request: all of them or, on error, none
// (ClickHouse inserts a block atomically).
func (w *FlowWriter) Insert(ctx context.Context, flows []store.Flow) error {
	id := w.reserve(len(flows))
	return w.insert(ctx, id, len(flows), func(b []byte) []byte {
		for i := range flows {
			b = appendFlow(b, w.site, w.source(&flows[i]), id+uint32(i), &flows[i])
		}
		return b
	})
}

// insertBatches writes the flows of batches in one request, their ids
// from first (reserve).
func (w *FlowWriter) insertBatches(ctx context.Context, batches []*store.Batch, first uint32) error {
	n := 0
	for _, bt := range batches {
		n += len(bt.Flows)
	}
	return w.insert(ctx, first, n, func(b []byte) []byte { return w.appendBatches(b, batches, first) })
}

// appendBatches appends the flows of batches in RowBinary, their ids from
// first.
func (w *FlowWriter) appendBatches(b []byte, batches []*store.Batch, first uint32) []byte {
	id := first
	for _, bt := range batches {
		for i := range bt.Flows {
			b = appendFlow(b, w.site, w.source(&bt.Flows[i]), id, &bt.Flows[i])
			id++
		}
	}
	return b
}

// insert sends the n flows that rows appends in RowBinary, their ids
// from first. The insert is named by the writer and its ids
// (insert_deduplication_token): sent again, ClickHouse stores it once, in
// the flows and in every rollup its views fill.
func (w *FlowWriter) insert(ctx context.Context, first uint32, n int, rows func([]byte) []byte) error {
	return w.insertNamed(ctx, first, n, w.groupName(first, n), rows)
}

// groupName is the name (deduplication token) of the insert of n flows
// whose ids start at first.
func (w *FlowWriter) groupName(first uint32, n int) string {
	return fmt.Sprintf("%016x-%d-%d", w.nonce, first, n)
}

// insertNamed is insert with the insert's name (its deduplication token).
func (w *FlowWriter) insertNamed(ctx context.Context, first uint32, n int, name string, rows func([]byte) []byte) error {
	if n == 0 {
		return nil
	}
	return w.withRows(rows, func(b []byte) error { return w.insertRows(ctx, name, n, b) })
}

// withRows calls use with the RowBinary that rows appends, in a buffer
// of the writer's pool.
func (w *FlowWriter) withRows(rows func([]byte) []byte, use func([]byte) error) error {
	bp, _ := w.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	b := rows((*bp)[:0])
	err := use(b)
	*bp = b
	if cap(b) <= 64<<20 {
		w.bufs.Put(bp)
	}
	return err
}

// insertRows sends n flows already in RowBinary (rows) as the insert
// named name.
func (w *FlowWriter) insertRows(ctx context.Context, name string, n int, rows []byte) error {
	stmt := fmt.Sprintf("%s SETTINGS insert_deduplication_token = '%s', deduplicate_blocks_in_dependent_materialized_views = 1, parallel_view_processing = 1 FORMAT RowBinary",
		w.stmt, name)
	if err := w.c.Insert(ctx, stmt, rows); err != nil {
		var se *ServerError
		if errors.As(err, &se) {
			return fmt.Errorf("clickhouse refused %d flows: %w", n, err)
		}
		return fmt.Errorf("cannot insert %d flows into clickhouse: %w", n, err)
	}
	return nil
}
