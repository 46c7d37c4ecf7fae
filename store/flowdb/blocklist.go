package flowdb

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// maxListedBlocks bounds the packed blocks whose rows in rawk_NAME (lo,
// hi, time range and summary: 72 bytes each) blockLists keeps, all
// partitions together: 64 Ki blocks, about 270 M flows.
const maxListedBlocks = 1 << 16

// blockLists caches the lists of packed blocks of the raw partitions, so
// that a search or scan does not list them again with SQL (about 2.5 ms for
// the 12 partitions of an hour). A partition's blocks only grow, one
// after the other, until retention drops the partition: a reader uses the
// cached blocks its snapshot holds (lo at most the snapshot's last) and
// adds the newer ones it lists itself. Lists are never modified in place
// (an extension is a copy), so a reader's slice stays valid. Beyond
// maxListedBlocks, the partitions read least recently are evicted and
// their blocks counted (flowbox_store_block_list_evictions_total).
type blockLists struct {
	mu     sync.Mutex
	parts  map[string]*blockList
	blocks int    // listed, all partitions
	tick   uint64 // the clock of used
	max    int
	m      *metrics
}

// blockList is the list of one partition.
type blockList struct {
	gen    int64 // the partition's rowid in raw_partitions
	blocks []packedBlock
	used   uint64
}

func newBlockLists(m *metrics) *blockLists {
	return &blockLists{parts: map[string]*blockList{}, max: maxListedBlocks, m: m}
}

// get returns the blocks of partition part that the read transaction tx
// sees: gen is the partition's rowid and last the lo of its last block
// in tx (0: none).
func (c *blockLists) get(ctx context.Context, tx *sql.Tx, part string, gen, last int64) ([]packedBlock, error) {
	if last == 0 {
		return nil, nil
	}
	c.mu.Lock()
	var have []packedBlock
	if e := c.parts[part]; e != nil && e.gen == gen {
		c.tick++
		e.used = c.tick
		have = e.blocks
	}
	c.mu.Unlock()
	n := len(have)
	if n > 0 && have[n-1].lo >= last {
		i, _ := slices.BinarySearchFunc(have, last, func(b packedBlock, lo int64) int { return cmp.Compare(b.lo, lo) })
		if i < n && have[i].lo == last {
			return have[:i+1], nil
		}
		have, n = nil, 0 // not the blocks of this snapshot: listed again
	}
	after := int64(0)
	if n > 0 {
		after = have[n-1].lo
	}
	more, err := listBlocks(ctx, tx, part, after, last)
	if err != nil {
		return nil, err
	}
	list := make([]packedBlock, 0, n+len(more))
	list = append(append(list, have...), more...)
	c.put(part, gen, list)
	return list, nil
}

// put stores list as the blocks of part unless a longer list of the same
// generation is there, then evicts the least recently used partitions
// beyond the bound.
func (c *blockLists) put(part string, gen int64, list []packedBlock) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick++
	e := c.parts[part]
	switch {
	case e == nil:
		e = &blockList{gen: gen}
		c.parts[part] = e
	case e.gen == gen && len(e.blocks) >= len(list):
		e.used = c.tick
		return
	}
	c.blocks += len(list) - len(e.blocks)
	e.gen, e.blocks, e.used = gen, list, c.tick
	for c.blocks > c.max && len(c.parts) > 1 {
		var oldest string
		for name, o := range c.parts {
			if name != part && (oldest == "" || o.used < c.parts[oldest].used) {
				oldest = name
			}
		}
		c.evict(oldest)
	}
}

// drop forgets the list of a partition (dropped by retention).
func (c *blockLists) drop(part string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.parts[part]; e != nil {
		c.blocks -= len(e.blocks)
		delete(c.parts, part)
	}
}

func (c *blockLists) evict(part string) {
	e := c.parts[part]
	c.blocks -= len(e.blocks)
	c.m.blockListEvictions.Add(float64(len(e.blocks)))
	delete(c.parts, part)
}

// listBlocks lists the blocks of partition part with lo in (after, last],
// in lo order.
func listBlocks(ctx context.Context, tx *sql.Tx, part string, after, last int64) ([]packedBlock, error) {
	rows, err := tx.QueryContext(ctx, "SELECT lo, hi, tlo, thi, s FROM "+packTable(part)+" WHERE lo > ? AND lo <= ? ORDER BY lo", after, last)
	if err != nil {
		return nil, fmt.Errorf("cannot list packed raw flows of %s: %w", part, err)
	}
	defer rows.Close()
	var out []packedBlock
	for rows.Next() {
		var b packedBlock
		var sum sql.RawBytes
		if err := rows.Scan(&b.lo, &b.hi, &b.tlo, &b.thi, &sum); err != nil {
			return nil, fmt.Errorf("cannot list packed raw flows of %s: %w", part, err)
		}
		var ok bool
		if b.sum, ok = decodeSummary(sum); !ok {
			return nil, fmt.Errorf("cannot list packed raw flows of %s: block %d: %w", part, b.lo, errBadBlock)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot list packed raw flows of %s: %w", part, err)
	}
	return out, nil
}

// partBlocks returns the packed blocks of partition part that the read
// transaction tx sees, from s.lists. Its first read fixes tx's snapshot.
func (s *FlowDB) partBlocks(ctx context.Context, tx *sql.Tx, part string) ([]packedBlock, error) {
	var gen int64
	if err := tx.QueryRowContext(ctx, "SELECT coalesce(max(rowid), 0) FROM raw_partitions WHERE name = ?", part).Scan(&gen); err != nil {
		return nil, fmt.Errorf("cannot read raw flows: %w", err)
	}
	last, err := lastBlock(ctx, tx, part)
	if err != nil {
		return nil, err
	}
	return s.lists.get(ctx, tx, part, gen, last)
}

// lastBlock returns the lo of the last packed block of partition part in
// tx (0: none, or no block table).
func lastBlock(ctx context.Context, tx *sql.Tx, part string) (int64, error) {
	var lo sql.NullInt64
	err := tx.QueryRowContext(ctx, "SELECT max(lo) FROM "+packTable(part)).Scan(&lo)
	switch {
	case isNoTable(err):
		return 0, nil
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return 0, fmt.Errorf("cannot list packed raw flows of %s: %w", part, err)
	}
	return lo.Int64, nil
}

// blocksIn returns the blocks of list (in lo order) that hold ids lo..hi:
// from the one holding lo, or the last one starting before it, to the last
// one starting at or before hi.
func blocksIn(list []packedBlock, lo, hi int64) []packedBlock {
	// The first block starting after lo; the one before may hold lo.
	i, _ := slices.BinarySearchFunc(list, lo+1, func(b packedBlock, id int64) int { return cmp.Compare(b.lo, id) })
	if i > 0 && list[i-1].hi >= lo {
		i--
	}
	j := i
	for j < len(list) && list[j].lo <= hi {
		j++
	}
	return list[i:j]
}
