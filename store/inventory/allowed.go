package inventory

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/flowbox/flowbox/store"
)

// AllowedExporters returns the accepted exporter prefixes, in prefix order.
func (s *Inventory) AllowedExporters(ctx context.Context) ([]store.AllowedExporter, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT prefix, added_by, added_at FROM allowed_exporters ORDER BY prefix")
	if err != nil {
		return nil, fmt.Errorf("cannot read allowed exporters: %w", err)
	}
	defer rows.Close()
	var out []store.AllowedExporter
	for rows.Next() {
		var (
			p, by string
			at    int64
		)
		if err := rows.Scan(&p, &by, &at); err != nil {
			return nil, fmt.Errorf("cannot read allowed exporters: %w", err)
		}
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("cannot read allowed exporters: bad prefix %q: %w", p, err)
		}
		out = append(out, store.AllowedExporter{Prefix: pfx, AddedBy: by, AddedAt: store.FromMilli(at)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read allowed exporters: %w", err)
	}
	return out, nil
}

// AllowExporter accepts the exporter prefix p (masked); by names who did
// it. Accepting a prefix again is a no-op.
func (s *Inventory) AllowExporter(ctx context.Context, p netip.Prefix, by string) error {
	if err := s.writable(); err != nil {
		return err
	}
	if !p.IsValid() {
		return fmt.Errorf("cannot allow exporter: invalid prefix")
	}
	p = p.Masked()
	if _, err := s.w.ExecContext(ctx, "INSERT INTO allowed_exporters (prefix, added_by, added_at) VALUES (?,?,?) ON CONFLICT DO NOTHING",
		p.String(), by, s.now().UnixMilli()); err != nil {
		return fmt.Errorf("cannot allow exporter %s: %w", p, store.DescribeWriteError(err))
	}
	return nil
}

// DisallowExporter removes an accepted prefix; it reports whether it was
// there.
func (s *Inventory) DisallowExporter(ctx context.Context, p netip.Prefix) (bool, error) {
	if err := s.writable(); err != nil {
		return false, err
	}
	res, err := s.w.ExecContext(ctx, "DELETE FROM allowed_exporters WHERE prefix = ?", p.Masked().String())
	if err != nil {
		return false, fmt.Errorf("cannot remove allowed exporter %s: %w", p, store.DescribeWriteError(err))
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}
