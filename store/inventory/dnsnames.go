package inventory

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/flowbox/flowbox/store"
)

// The inventory keeps the DNS name history (issue 18).
var _ store.DNSNames = (*Inventory)(nil)

// SaveDNSNames inserts or extends rows of the DNS name history, in one
// transaction: a row already stored (same address, name, reverse and
// start) keeps the later end and sighting and takes the new router.
func (s *Inventory) SaveDNSNames(ctx context.Context, names []store.DNSName) error {
	if len(names) == 0 {
		return nil
	}
	if err := s.writable(); err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cannot save DNS names: %w", store.DescribeWriteError(err))
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO dns_names
		(addr, name, domain, reverse, valid_from, valid_to, seen, router_id) VALUES (?,?,?,?,?,?,?,?)
		ON CONFLICT (addr, name, reverse, valid_from) DO UPDATE SET
			valid_to = max(valid_to, excluded.valid_to), seen = max(seen, excluded.seen),
			router_id = CASE WHEN excluded.router_id != 0 THEN excluded.router_id ELSE router_id END,
			domain = excluded.domain`)
	if err != nil {
		return fmt.Errorf("cannot save DNS names: %w", store.DescribeWriteError(err))
	}
	defer stmt.Close()
	for _, n := range names {
		if !n.Addr.IsValid() || n.Name == "" {
			return fmt.Errorf("cannot save DNS name %q of %v: missing address or name", n.Name, n.Addr)
		}
		rev := 0
		if n.Reverse {
			rev = 1
		}
		if _, err := stmt.ExecContext(ctx, addr16(n.Addr), n.Name, n.Domain, rev, n.From.UnixMilli(), n.To.UnixMilli(),
			n.Seen.UnixMilli(), n.RouterID); err != nil {
			return fmt.Errorf("cannot save DNS name %q of %s: %w", n.Name, n.Addr, store.DescribeWriteError(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cannot save DNS names: %w", store.DescribeWriteError(err))
	}
	return nil
}

// DNSNameHistory returns the rows of the DNS name history that end at or
// after since, oldest first.
func (s *Inventory) DNSNameHistory(ctx context.Context, since time.Time) ([]store.DNSName, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT addr, name, domain, reverse, valid_from, valid_to, seen, router_id
		FROM dns_names WHERE valid_to >= ? ORDER BY valid_from, addr, name`, since.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("cannot load DNS names: %w", err)
	}
	defer rows.Close()
	var out []store.DNSName
	for rows.Next() {
		var (
			n              store.DNSName
			addr           []byte
			rev            int
			from, to, seen int64
		)
		if err := rows.Scan(&addr, &n.Name, &n.Domain, &rev, &from, &to, &seen, &n.RouterID); err != nil {
			return nil, fmt.Errorf("cannot load DNS names: %w", err)
		}
		if len(addr) != 16 {
			return nil, fmt.Errorf("cannot load DNS names: name %q has a %d-byte address", n.Name, len(addr))
		}
		n.Addr = netip.AddrFrom16([16]byte(addr)).Unmap()
		n.Reverse = rev != 0
		n.From, n.To, n.Seen = time.UnixMilli(from).UTC(), time.UnixMilli(to).UTC(), time.UnixMilli(seen).UTC()
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot load DNS names: %w", err)
	}
	return out, nil
}

// PruneDNSNames deletes the rows of the DNS name history that ended before
// before.
func (s *Inventory) PruneDNSNames(ctx context.Context, before time.Time) (int64, error) {
	if err := s.writable(); err != nil {
		return 0, err
	}
	res, err := s.w.ExecContext(ctx, "DELETE FROM dns_names WHERE valid_to < ?", before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("cannot prune DNS names: %w", store.DescribeWriteError(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("cannot prune DNS names: %w", err)
	}
	return n, nil
}
