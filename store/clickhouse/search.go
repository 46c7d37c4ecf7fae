package clickhouse

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/flowbox/flowbox/store"
)

// exportPage is the number of flows ExportCSV reads a request.
const exportPage = 10000

// searchCursor is a position in the raw flows of a search: a flow's t (ms)
// and id.
type searchCursor struct {
	t  int64
	id uint32
}

func (c searchCursor) encode() string {
	b := binary.AppendVarint(nil, c.t)
	b = binary.AppendUvarint(b, uint64(c.id))
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseSearchCursor(s string) (*searchCursor, error) {
	bad := &store.QueryError{Field: "cursor", Msg: "malformed cursor"}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad
	}
	var c searchCursor
	var n int
	if c.t, n = binary.Varint(b); n <= 0 {
		return nil, bad
	}
	b = b[n:]
	id, n := binary.Uvarint(b)
	if n <= 0 || n != len(b) || id > 1<<32-1 {
		return nil, bad
	}
	c.id = uint32(id)
	return &c, nil
}

func (r *Reader) checkSearch(q *store.SearchQuery) error {
	if err := store.CheckRange(q.From, q.To, r.now()); err != nil {
		return err
	}
	if err := q.Filter.Validate(); err != nil {
		return err
	}
	if start := r.now().Add(-r.c.cfg.RawTTL); q.To.Before(start) {
		return &store.QueryError{Field: "from", Msg: fmt.Sprintf("raw flows are kept for %s only (since %s): choose a range within the last %s",
			r.c.cfg.RawTTL, start.UTC().Format(time.RFC3339), r.c.cfg.RawTTL)}
	}
	return nil
}

// page reads up to limit flows of the search after cur (nil: from the
// start), in the search's order: t then id, descending unless asc.
func (r *Reader) page(ctx context.Context, q *store.SearchQuery, cur *searchCursor, limit int) ([]storedFlow, error) {
	order, cmp := "DESC", "<"
	if q.Ascending {
		order, cmp = "ASC", ">"
	}
	after := ""
	if cur != nil {
		after = fmt.Sprintf(" AND (t, id) %s (fromUnixTimestamp64Milli(%d), %d)", cmp, cur.t, cur.id)
	}
	stmt := fmt.Sprintf("SELECT %s FROM %s.flows WHERE site = %s AND t >= fromUnixTimestamp64Milli(%d) AND t < fromUnixTimestamp64Milli(%d)%s%s"+
		" ORDER BY t %s, id %s LIMIT %d FORMAT RowBinary",
		flowColumns, r.c.cfg.Database, quote(r.site), q.From.UnixMilli(), q.To.UnixMilli(), filterSQL(&q.Filter), after, order, order, limit)
	out, err := r.c.Query(ctx, stmt)
	if err != nil {
		return nil, fmt.Errorf("cannot search flows in clickhouse: %w", err)
	}
	flows, err := readFlows(out)
	if err != nil {
		return nil, err
	}
	for i := range flows {
		// What a search answers of a flow (store.FlowPage): the
		// exporter's address without its port, no version.
		f := &flows[i].Flow
		f.Exporter, f.Version = netip.AddrPortFrom(f.Exporter.Addr(), 0), 0
	}
	return flows, nil
}

// SearchFlows returns one page of the raw flows matching the query,
// newest first unless Ascending.
func (r *Reader) SearchFlows(ctx context.Context, q store.SearchQuery) (*store.FlowPage, error) {
	if err := r.checkSearch(&q); err != nil {
		return nil, err
	}
	if err := q.CheckLimit(); err != nil {
		return nil, err
	}
	var cur *searchCursor
	if q.Cursor != "" {
		var err error
		if cur, err = parseSearchCursor(q.Cursor); err != nil {
			return nil, err
		}
	}
	flows, err := r.page(ctx, &q, cur, q.Limit+1) // one more tells whether a next page exists
	if err != nil {
		return nil, err
	}
	page := &store.FlowPage{Resolution: store.ResRaw}
	if len(flows) > q.Limit {
		last := flows[q.Limit-1]
		page.Next = searchCursor{t: last.End, id: last.id}.encode()
		flows = flows[:q.Limit]
	}
	for i := range flows {
		page.Flows = append(page.Flows, flows[i].Flow)
	}
	return page, nil
}

// ExportCSV writes every raw flow matching the query (Limit and Cursor
// are ignored) as CSV with a header row, reading exportPage flows a
// request.
func (r *Reader) ExportCSV(ctx context.Context, q store.SearchQuery, w io.Writer) error {
	if err := r.checkSearch(&q); err != nil {
		return err
	}
	cw, err := store.NewFlowCSV(w)
	if err != nil {
		return err
	}
	var cur *searchCursor
	for {
		flows, err := r.page(ctx, &q, cur, exportPage)
		if err != nil {
			return err
		}
		for i := range flows {
			if err := cw.Write(&flows[i].Flow); err != nil {
				return err
			}
		}
		if len(flows) < exportPage {
			return cw.Flush()
		}
		last := flows[len(flows)-1]
		cur = &searchCursor{t: last.End, id: last.id}
	}
}
