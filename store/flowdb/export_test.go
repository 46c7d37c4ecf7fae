package flowdb

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Hooks for the benchmarks of package flowdb_test, which cannot be in
// package flowdb because they use collector/netflowtest (which imports
// store) and store/storetest (which imports flowdb).

// SetClock replaces the store's clock.
func SetClock(s *FlowDB, now func() time.Time) { s.now = now }

// Maintain runs the writer's periodic maintenance (rollup flush, hour
// rebuild, partition closing, retention) at the store's clock. Call it
// only while Run is not running.
func Maintain(ctx context.Context, s *FlowDB) { s.maintain(ctx) }

// WriteFlows writes flows as the writer does (raw rows, host index,
// rollups in memory), at once. Call it only while Run is not running.
func WriteFlows(ctx context.Context, s *FlowDB, flows []store.Flow) error {
	b := &store.Batch{Flows: append([]store.Flow(nil), flows...), Recv: s.now()}
	s.attribute(b.Flows)
	s.writeGroup(ctx, []*store.Batch{b})
	if h := s.Health(); !h.OK {
		return fmt.Errorf("cannot write flows: %s", h.Error)
	}
	return nil
}

// AggregateFlows counts flows into the in-memory rollups only (no raw
// rows), as if they had been written; the next Maintain flushes them.
// Call it only while Run is not running.
func AggregateFlows(s *FlowDB, flows []store.Flow) {
	s.wr.agg.add(flows, s.wr.exporters)
	if s.wr.agg.full() {
		s.flushRollups(context.Background())
	}
}

// PackAll packs the closed partitions into blocks as the packer does, at
// the store's clock, until nothing is left to pack; it returns the blocks
// written. Call it only while Run is not running.
func PackAll(ctx context.Context, s *FlowDB) (int, error) {
	total := 0
	for {
		n, err := s.packStep(ctx, s.now(), 1000)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// FileInUse returns the bytes of the database file's pages in use (the
// file less its free pages, which SQLite reuses before growing it).
func FileInUse(ctx context.Context, s *FlowDB) (int64, error) {
	if _, err := s.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return 0, fmt.Errorf("cannot checkpoint: %w", err)
	}
	var pages, free, size int64
	err := s.w.QueryRowContext(ctx, "SELECT (SELECT page_count FROM pragma_page_count), (SELECT freelist_count FROM pragma_freelist_count), (SELECT page_size FROM pragma_page_size)").
		Scan(&pages, &free, &size)
	return (pages - free) * size, err
}

// CloseAllPartitions writes the host index of every raw partition as if
// they had all ended. Call it only while Run is not running.
func CloseAllPartitions(ctx context.Context, s *FlowDB) error {
	return s.closePartitions(ctx, s.now().Add(24*time.Hour))
}

// DiskUsage measures the database: the bytes of the pages of the raw
// partitions (rows and host index, with their share of interior pages),
// of the host index alone, of the whole file, and the raw flows stored.
func DiskUsage(ctx context.Context, s *FlowDB) (raw, index, file, flows int64, err error) {
	raw, file, flows, err = s.diskUsage(ctx)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	rows, _, _, err := s.diskUsage(ctx, "rawx_[0-9]*", "raw_segments")
	return raw, raw - rows, file, flows, err
}

// diskUsage copies the checkpointed database and drops everything but the
// raw partitions (and the tables matching the globs also) from the copy:
// the pages left in use are theirs.
func (s *FlowDB) diskUsage(ctx context.Context, also ...string) (raw, file, flows int64, err error) {
	if _, err := s.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return 0, 0, 0, fmt.Errorf("cannot checkpoint: %w", err)
	}
	if err := s.r.QueryRowContext(ctx, "SELECT coalesce(sum(flows), 0) FROM exporters").Scan(&flows); err != nil {
		return 0, 0, 0, err
	}
	st, err := os.Stat(s.path)
	if err != nil {
		return 0, 0, 0, err
	}
	file = st.Size()
	dir, err := os.MkdirTemp("", "flowbox-diskusage-")
	if err != nil {
		return 0, 0, 0, err
	}
	defer os.RemoveAll(dir)
	cp := filepath.Join(dir, "copy.db")
	if err := copyFile(s.path, cp); err != nil {
		return 0, 0, 0, err
	}
	db, err := openDB(cp, "_journal_mode=DELETE")
	if err != nil {
		return 0, 0, 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT GLOB 'raw_[0-9]*'
		AND name NOT GLOB 'rawx_[0-9]*' AND name NOT GLOB 'rawk_[0-9]*' AND name NOT GLOB 'flows_[0-9]*' AND name != 'raw_segments' AND name NOT LIKE 'sqlite%'`)
	if err != nil {
		return 0, 0, 0, err
	}
	var drop []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return 0, 0, 0, err
		}
		drop = append(drop, n)
	}
	rows.Close()
	for _, g := range also {
		rows, err := db.QueryContext(ctx, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB ?", g)
		if err != nil {
			return 0, 0, 0, err
		}
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return 0, 0, 0, err
			}
			drop = append(drop, n)
		}
		rows.Close()
	}
	for _, n := range drop {
		if _, err := db.ExecContext(ctx, "DROP TABLE "+n); err != nil {
			return 0, 0, 0, fmt.Errorf("cannot drop %s: %w", n, err)
		}
	}
	var pages, free, size int64
	if err := db.QueryRowContext(ctx, "SELECT (SELECT page_count FROM pragma_page_count), (SELECT freelist_count FROM pragma_freelist_count), (SELECT page_size FROM pragma_page_size)").
		Scan(&pages, &free, &size); err != nil {
		return 0, 0, 0, err
	}
	// Page 1 holds the schema.
	return (pages - free - 1) * size, file, flows, nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
