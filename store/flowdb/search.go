package flowdb

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/flowbox/flowbox/store"
)

// cursor is a position in the raw flows: partition start (ms), t and id.
type cursor struct {
	part, t, id int64
}

func (c cursor) encode() string {
	var b []byte
	b = binary.AppendVarint(b, c.part)
	b = binary.AppendVarint(b, c.t)
	b = binary.AppendVarint(b, c.id)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseCursor(s string) (*cursor, error) {
	bad := &store.QueryError{Field: "cursor", Msg: "malformed cursor"}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad
	}
	var c cursor
	for _, p := range []*int64{&c.part, &c.t, &c.id} {
		v, n := binary.Varint(b)
		if n <= 0 {
			return nil, bad
		}
		*p, b = v, b[n:]
	}
	if len(b) != 0 {
		return nil, bad
	}
	return &c, nil
}

func (s *FlowDB) checkSearch(q *store.SearchQuery) error {
	if err := s.checkRange(q.From, q.To); err != nil {
		return err
	}
	if err := q.Filter.Validate(); err != nil {
		return err
	}
	if q.To.Before(s.rawWindowStart()) {
		return &store.QueryError{Field: "from", Msg: fmt.Sprintf("raw flows are kept for %s only (since %s): choose a range within the last %s",
			s.cfg.RawRetention, s.rawWindowStart().UTC().Format(time.RFC3339), s.cfg.RawRetention)}
	}
	return nil
}

// SearchFlows returns one page of raw flows matching the query.
func (s *FlowDB) SearchFlows(ctx context.Context, q store.SearchQuery) (*store.FlowPage, error) {
	if err := s.checkSearch(&q); err != nil {
		return nil, err
	}
	if err := q.CheckLimit(); err != nil {
		return nil, err
	}
	var cur *cursor
	if q.Cursor != "" {
		var err error
		if cur, err = parseCursor(q.Cursor); err != nil {
			return nil, err
		}
	}
	flows, last, more, err := s.searchRaw(ctx, q.From.UnixMilli(), q.To.UnixMilli(), &q.Filter, !q.Ascending, cur, q.Limit)
	if err != nil {
		return nil, err
	}
	page := &store.FlowPage{Resolution: store.ResRaw, Flows: flows}
	if more {
		page.Next = last.encode()
	}
	return page, nil
}

// ExportCSV streams every flow matching the query (Limit and Cursor are
// ignored) as CSV with a header row. Counters are raw (not scaled).
func (s *FlowDB) ExportCSV(ctx context.Context, q store.SearchQuery, w io.Writer) error {
	if err := s.checkSearch(&q); err != nil {
		return err
	}
	cw, err := store.NewFlowCSV(w)
	if err != nil {
		return err
	}
	var werr error
	err = s.scanRawOrdered(ctx, q.From.UnixMilli(), q.To.UnixMilli(), &q.Filter, !q.Ascending, func(r *decodedRow) bool {
		werr = cw.Write(&r.Flow)
		return werr == nil
	})
	if err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	return cw.Flush()
}
