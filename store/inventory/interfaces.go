package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/flowbox/flowbox/store"
)

// msOrZero returns t in unix ms, 0 for the zero time.
func msOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// ApplyInterfaceChanges ends the given current records and inserts new
// ones, in one transaction, and returns the ids of the inserted records in
// order. Ending a record that is already ended leaves it unchanged.
func (s *Inventory) ApplyInterfaceChanges(ctx context.Context, ends []store.InterfaceEnd, opens []store.InterfaceName) ([]int64, error) {
	if err := s.writable(); err != nil {
		return nil, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot save interface names: %w", store.DescribeWriteError(err))
	}
	defer tx.Rollback()
	for _, e := range ends {
		if _, err := tx.ExecContext(ctx, "UPDATE interface_names SET valid_to = ? WHERE id = ? AND valid_to IS NULL",
			e.At.UnixMilli(), e.ID); err != nil {
			return nil, fmt.Errorf("cannot end interface name record %d: %w", e.ID, store.DescribeWriteError(err))
		}
	}
	ids := make([]int64, 0, len(opens))
	if len(opens) > 0 {
		stmt, err := tx.PrepareContext(ctx,
			"INSERT INTO interface_names (router_id, if_index, name, valid_from, valid_to) VALUES (?,?,?,?,?)")
		if err != nil {
			return nil, fmt.Errorf("cannot save interface names: %w", store.DescribeWriteError(err))
		}
		defer stmt.Close()
		for _, o := range opens {
			if o.Name == "" {
				return nil, fmt.Errorf("cannot save the name of router %d ifIndex %d: empty name", o.RouterID, o.Index)
			}
			var to any
			if !o.ValidTo.IsZero() {
				to = o.ValidTo.UnixMilli()
			}
			res, err := stmt.ExecContext(ctx, o.RouterID, int64(o.Index), o.Name, msOrZero(o.ValidFrom), to)
			if err != nil {
				return nil, fmt.Errorf("cannot save interface name %q: %w", o.Name, store.DescribeWriteError(err))
			}
			id, err := res.LastInsertId()
			if err != nil {
				return nil, fmt.Errorf("cannot save interface name %q: %w", o.Name, err)
			}
			ids = append(ids, id)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("cannot save interface names: %w", store.DescribeWriteError(err))
	}
	return ids, nil
}

const interfaceColumns = "id, router_id, if_index, name, valid_from, valid_to"

func scanInterfaceName(row rowScanner) (store.InterfaceName, error) {
	var (
		n     store.InterfaceName
		index int64
		from  int64
		to    sql.NullInt64
	)
	if err := row.Scan(&n.ID, &n.RouterID, &index, &n.Name, &from, &to); err != nil {
		return n, err
	}
	if index < 0 || index > 1<<32-1 {
		return n, fmt.Errorf("interface name record %d: ifIndex %d out of range", n.ID, index)
	}
	n.Index = uint32(index)
	if from != 0 {
		n.ValidFrom = time.UnixMilli(from).UTC()
	}
	if to.Valid {
		n.ValidTo = time.UnixMilli(to.Int64).UTC()
	}
	return n, nil
}

// InterfaceHistory returns the records that are current or ended at or
// after since, by router, ifIndex and time.
func (s *Inventory) InterfaceHistory(ctx context.Context, since time.Time) ([]store.InterfaceName, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+interfaceColumns+
		" FROM interface_names WHERE valid_to IS NULL OR valid_to >= ? ORDER BY router_id, if_index, valid_from, id",
		since.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("cannot load interface names: %w", err)
	}
	defer rows.Close()
	var out []store.InterfaceName
	for rows.Next() {
		n, err := scanInterfaceName(rows)
		if err != nil {
			return nil, fmt.Errorf("cannot load interface names: %w", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot load interface names: %w", err)
	}
	return out, nil
}

// InterfaceNameAt returns the name a router's ifIndex had at time at, for
// flows older than what enrichment keeps in memory. It returns
// ErrNotFound when no record covers that time.
func (s *Inventory) InterfaceNameAt(ctx context.Context, routerID int64, index uint32, at time.Time) (string, error) {
	ms := at.UnixMilli()
	var name string
	err := s.r.QueryRowContext(ctx, `SELECT name FROM interface_names
		WHERE router_id = ? AND if_index = ? AND valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)
		ORDER BY valid_from DESC, id DESC LIMIT 1`, routerID, int64(index), ms, ms).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", store.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("cannot look up interface name: %w", err)
	}
	return name, nil
}

// PruneInterfaceHistory deletes the records that ended before before and
// returns how many it deleted.
func (s *Inventory) PruneInterfaceHistory(ctx context.Context, before time.Time) (int64, error) {
	if err := s.writable(); err != nil {
		return 0, err
	}
	res, err := s.w.ExecContext(ctx, "DELETE FROM interface_names WHERE valid_to IS NOT NULL AND valid_to < ?", before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("cannot prune interface names: %w", store.DescribeWriteError(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("cannot prune interface names: %w", err)
	}
	return n, nil
}
