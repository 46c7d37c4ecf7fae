package flowdb

import (
	"context"
	"database/sql"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestBlockLists checks the cache of block lists against the database:
// a reader whose snapshot is older than the cache sees only its own
// blocks, a newer one extends the list, a partition recreated under the
// same name is listed again, and beyond the bound the least recently read
// partition is evicted and counted.
func TestBlockLists(t *testing.T) {
	s := openAt(t, t.TempDir(), testNow)
	s.packRows = 128
	ctx := context.Background()
	writeDirect(t, s, packFlows(1, 6000, testNow, 30*time.Minute))
	if err := s.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	// Pack block by block until a partition has two blocks and rows for
	// more.
	var part string
	for part == "" {
		if n, err := s.packStep(ctx, testNow, 1); err != nil || n == 0 {
			t.Fatalf("packed %d blocks (%v) before a partition had two and rows left", n, err)
		}
		rows, err := s.r.Query("SELECT name FROM raw_partitions")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				t.Fatal(err)
			}
			names = append(names, name)
		}
		rows.Close()
		for _, name := range names {
			var blocks, left int
			s.r.QueryRow("SELECT count(*) FROM " + packTable(name)).Scan(&blocks)
			if err := s.r.QueryRow("SELECT count(*) FROM " + name).Scan(&left); err != nil {
				t.Fatal(err)
			}
			if blocks >= 2 && left >= s.packRows {
				part = name
			}
		}
	}
	begin := func() *sql.Tx {
		tx, err := s.r.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tx.Rollback() })
		return tx
	}
	// check lists the blocks of tx through the cache and from the
	// database, and wants the same.
	check := func(tx *sql.Tx, name, where string) []packedBlock {
		t.Helper()
		got, err := s.partBlocks(ctx, tx, name)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		last, err := lastBlock(ctx, tx, name)
		if err != nil {
			t.Fatal(err)
		}
		want, err := listBlocks(ctx, tx, name, 0, last)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: cached %d blocks %v, the database has %d %v", where, len(got), got, len(want), want)
		}
		return got
	}
	old := begin()
	first := check(old, part, "first read")
	if len(first) == 0 {
		t.Fatal("no block packed")
	}
	packAll(t, s, testNow)
	now := begin()
	all := check(now, part, "after packing more")
	if len(all) <= len(first) {
		t.Fatalf("%d blocks after packing more, %d before", len(all), len(first))
	}
	if got := check(old, part, "older snapshot"); len(got) != len(first) {
		t.Fatalf("older snapshot: %d blocks, want %d", len(got), len(first))
	}
	// The same name, another partition (dropped and recreated): its
	// cached list is not used.
	s.lists.mu.Lock()
	s.lists.parts[part].gen++
	for i := range s.lists.parts[part].blocks {
		s.lists.parts[part].blocks[i].thi = -1
	}
	s.lists.mu.Unlock()
	check(now, part, "recreated")
	// Bound: listing a second partition evicts the first.
	var other string
	var otherBlocks int
	if err := s.r.QueryRow("SELECT name FROM raw_partitions WHERE name != ? ORDER BY start DESC LIMIT 1", part).Scan(&other); err != nil {
		t.Fatal(err)
	}
	if err := s.r.QueryRow("SELECT count(*) FROM " + packTable(other)).Scan(&otherBlocks); err != nil || otherBlocks == 0 {
		t.Fatalf("%s: %d blocks (%v)", other, otherBlocks, err)
	}
	s.lists.max = len(all) + otherBlocks - 1
	check(now, other, "second partition")
	if _, ok := s.lists.parts[part]; ok || s.lists.blocks > s.lists.max {
		t.Fatalf("%d blocks listed (bound %d), first partition kept: %v", s.lists.blocks, s.lists.max, ok)
	}
	if n := testutil.ToFloat64(s.metrics.blockListEvictions); n != float64(len(all)) {
		t.Fatalf("%v blocks evicted, want %d", n, len(all))
	}
	check(now, part, "evicted")
	// blocksIn: the blocks holding ids lo..hi, as SQL selected them.
	for lo := int64(0); lo <= all[len(all)-1].hi+2; lo += 7 {
		for hi := lo; hi <= lo+300; hi += 61 {
			var want []packedBlock
			for _, b := range all {
				if b.hi >= lo && b.lo <= hi {
					want = append(want, b)
				}
			}
			if got := blocksIn(all, lo, hi); !slices.Equal(got, want) {
				t.Fatalf("blocksIn(%d, %d): %v, want %v", lo, hi, got, want)
			}
		}
	}
}
