package flowdb

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Reading raw flows. A query lists the partitions overlapping its range
// and, for each format 2 partition, plans the blocks of rows to read: every
// block of the segments, of the in-memory tail and of rows no index covers
// yet (another process's writes), less the blocks outside the time range,
// and with a host filter only the blocks holding candidate rows of the host
// index, with those rows' ids. Rows are then fetched by id, decoded and
// checked against the whole filter in Go.
//
// Three ways to read:
//   - visitRaw: every matching row, in no particular order (tops and
//     series);
//   - searchRaw: the first rows in (t, id) order after a cursor (a page of
//     a search): blocks are read best first and reading stops when no block
//     left can beat the rows found, which the block t ranges tell;
//   - scanRawOrdered: every matching row in (t, id) order (CSV export),
//     sorted by SQLite one partition at a time.

// rawPartition is a partition as seen by readers.
type rawPartition struct {
	start  int64 // unix ms
	name   string
	format int
}

// key orders partitions in cursors: the start in ms, plus one for format 2
// (which sorts after the format 1 partition of the same start, if any).
func (p *rawPartition) key() int64 {
	if p.format == formatV2 {
		return p.start + 1
	}
	return p.start
}

// rawPartitions lists the partitions overlapping [from, to) (unix ms),
// oldest first.
func (s *FlowDB) rawPartitions(ctx context.Context, from, to int64) ([]rawPartition, error) {
	span := partitionSpan.Milliseconds()
	rows, err := s.r.QueryContext(ctx, "SELECT start, name, format FROM raw_partitions WHERE start >= ? AND start <= ? ORDER BY start, format",
		store.FloorDiv(from-span, 1000), to/1000+1)
	if err != nil {
		return nil, fmt.Errorf("cannot list raw partitions: %w", err)
	}
	defer rows.Close()
	var out []rawPartition
	for rows.Next() {
		var p rawPartition
		if err := rows.Scan(&p.start, &p.name, &p.format); err != nil {
			return nil, fmt.Errorf("cannot list raw partitions: %w", err)
		}
		p.start *= 1000
		if p.start < to && p.start+span > from && (p.format == formatV1 || p.format == formatV2) {
			out = append(out, p)
		}
	}
	return out, rows.Err()
}

// maxExpand bounds the addresses a prefix of a host filter may cover to be
// looked up in the host index; a larger prefix reads every row.
const maxExpand = 256

// hostQuery is what the host index can answer of a filter: for each of
// Hosts, LocalHosts and RemoteHosts that is set and small enough, the
// addresses it covers. A row is a candidate when it has an address of
// every set.
type hostQuery struct {
	sets [][][16]byte
}

func newHostQuery(f *store.Filter) *hostQuery {
	var q hostQuery
	for _, ps := range [][]netip.Prefix{f.Hosts, f.LocalHosts, f.RemoteHosts} {
		if len(ps) == 0 {
			continue
		}
		var set [][16]byte
		ok := true
		for _, p := range ps {
			p = p.Masked()
			bits := p.Addr().BitLen() - p.Bits()
			if bits > 8 || len(set)+(1<<bits) > 4*maxExpand {
				ok = false
				break
			}
			for a, i := p.Addr(), 0; i < 1<<bits; a, i = a.Next(), i+1 {
				set = append(set, hostKey(a.Unmap()))
			}
		}
		if ok {
			slices.SortFunc(set, func(x, y [16]byte) int { return strings.Compare(string(x[:]), string(y[:])) })
			q.sets = append(q.sets, slices.Compact(set))
		}
	}
	if len(q.sets) == 0 {
		return nil
	}
	return &q
}

func (q *hostQuery) matchers() []func([16]byte) bool {
	out := make([]func([16]byte) bool, len(q.sets))
	for i, set := range q.sets {
		if len(set) <= 8 {
			out[i] = func(k [16]byte) bool { return slices.Contains(set, k) }
			continue
		}
		m := make(map[[16]byte]bool, len(set))
		for _, k := range set {
			m[k] = true
		}
		out[i] = func(k [16]byte) bool { return m[k] }
	}
	return out
}

// intersect returns the ids present in every list (each ascending).
func intersect(lists [][]int64) []int64 {
	if len(lists) == 0 {
		return nil
	}
	out := slices.Clone(lists[0])
	for _, l := range lists[1:] {
		k, j := 0, 0
		for _, id := range out {
			for j < len(l) && l[j] < id {
				j++
			}
			if j < len(l) && l[j] == id {
				out[k] = id
				k++
			}
		}
		out = out[:k]
	}
	return out
}

// rawBlock is a run of rows of a format 2 partition to read.
type rawBlock struct {
	lo, hi   int64   // ids
	tlo, thi int64   // t range of its rows (ms from the partition start)
	all      bool    // read every row of lo..hi
	ids      []int64 // else only these (ascending)
}

func (b *rawBlock) rows() int {
	if b.all {
		return int(b.hi - b.lo + 1)
	}
	return len(b.ids)
}

// planV2 returns the blocks of a format 2 partition that may hold rows of
// [tfrom, tto) (ms from the partition start) passing the host query (nil:
// no host filter), in id order.
func (s *FlowDB) planV2(ctx context.Context, p *rawPartition, hq *hostQuery, tfrom, tto int64) ([]rawBlock, error) {
	// The tail first, then the segments: a tail spilled in between is found
	// in its segment (see hostindex.go).
	var tv tailView
	var tailIDs [][]int64
	if h := s.tailOf(p.name); h != nil {
		var ms []func([16]byte) bool
		if hq != nil {
			ms = hq.matchers()
		}
		tv, tailIDs = h.view(ms)
	}
	segs, err := s.readSegments(ctx, p.name)
	if err != nil {
		return nil, err
	}
	var out []rawBlock
	keep := func(b rawBlock) {
		if b.thi >= tfrom && b.tlo < tto && b.hi >= b.lo {
			out = append(out, b)
		}
	}
	var covered int64
	for i := range segs {
		g := &segs[i]
		var cand []int64
		if hq != nil {
			var lists [][]int64
			for _, set := range hq.sets {
				ids, err := s.segmentCandidates(ctx, p.name, g, set)
				if err != nil {
					return nil, fmt.Errorf("cannot read host index of %s: %w", p.name, err)
				}
				lists = append(lists, ids)
			}
			cand = intersect(lists)
		}
		for j, sp := range g.spans {
			lo := g.first + int64(j)*g.blockRows
			b := rawBlock{lo: lo, hi: min(lo+g.blockRows-1, g.last), tlo: int64(sp.lo), thi: int64(sp.hi), all: hq == nil}
			if hq != nil {
				if b.ids = idsIn(cand, b.lo, b.hi); len(b.ids) == 0 {
					continue
				}
			}
			keep(b)
		}
		covered = max(covered, g.last)
	}
	if tv.n > 0 {
		cand := intersect(tailIDs)
		for j, sp := range tv.spans {
			lo := tv.firstID + int64(j)*blockRows
			b := rawBlock{lo: max(lo, covered+1), hi: min(lo+blockRows-1, tv.firstID+tv.n-1), tlo: int64(sp.lo), thi: int64(sp.hi), all: hq == nil}
			if b.lo > b.hi {
				continue // in a segment written since the tail was read
			}
			if hq != nil {
				if b.ids = idsIn(cand, b.lo, b.hi); len(b.ids) == 0 {
					continue
				}
			}
			keep(b)
		}
		covered = max(covered, tv.firstID+tv.n-1)
	}
	// Rows no index covers: written by another process (this one is
	// read-only) or committed after the tail was read.
	var maxID int64
	if err := s.r.QueryRowContext(ctx, "SELECT coalesce(max(id), 0) FROM "+p.name).Scan(&maxID); err != nil {
		if isNoTable(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("cannot read raw flows: %w", err)
	}
	if maxID > covered {
		keep(rawBlock{lo: covered + 1, hi: maxID, tlo: 0, thi: maxRowT, all: true})
	}
	return out, nil
}

// idsIn returns the ids of the ascending list within [lo, hi].
func idsIn(ids []int64, lo, hi int64) []int64 {
	i, _ := slices.BinarySearch(ids, lo)
	j, _ := slices.BinarySearch(ids, hi+1)
	if i >= j {
		return nil
	}
	return ids[i:j:j]
}

func isNoTable(err error) bool { return err != nil && strings.Contains(err.Error(), "no such table") }

// rowReader decodes and filters the rows of one query.
type rowReader struct {
	s        *FlowDB
	from, to int64 // unix ms
	flt      *store.Filter
	row      decodedRow
	// need is what the query reads of the rows, its filter included
	// (needWhole: every field).
	need rowNeed
}

// light returns the columnar read of rows for fn (nil when the query
// reads rows whole): the rows that pass go to fn.
func (rr *rowReader) light(ctx context.Context, fn func(r *decodedRow) (bool, error)) *lightRows {
	if rr.need&needWhole != 0 {
		return nil
	}
	return &lightRows{need: rr.need, fn: fn, check: func(r *decodedRow) (bool, error) {
		return rr.checkRow(ctx, r, rr.need&needNames != 0)
	}}
}

// accept decodes a format 2 row and reports whether it passes the range
// and the filter; the row is then in rr.row.
func (rr *rowReader) accept(ctx context.Context, p *rawPartition, id int64, x []byte) (bool, error) {
	r := &rr.row
	if err := decodeRaw(r, id, p.start, x); err != nil {
		return false, fmt.Errorf("cannot read raw flow %d of %s: %w", id, p.name, err)
	}
	return rr.check(ctx, r)
}

// acceptV1 is accept for a format 1 row.
func (rr *rowReader) acceptV1(ctx context.Context, p *rawPartition, id, t int64, a, b, x []byte) (bool, error) {
	r := &rr.row
	if err := decodeRawV1(r, id, p.start+t, a, b, x); err != nil {
		return false, fmt.Errorf("cannot read raw flow %d of %s: %w", id, p.name, err)
	}
	r.t = t
	return rr.check(ctx, r)
}

func (rr *rowReader) check(ctx context.Context, r *decodedRow) (bool, error) {
	return rr.checkRow(ctx, r, true)
}

// checkRow reports whether r passes the range and the filter, looking up
// its names (and interned addresses) first when names.
func (rr *rowReader) checkRow(ctx context.Context, r *decodedRow, names bool) (bool, error) {
	if r.End < rr.from || r.End >= rr.to || !rr.flt.MatchNumbers(&r.Flow) {
		return false, nil
	}
	if names {
		if err := rr.s.lookupNames(ctx, r); err != nil {
			return false, err
		}
	}
	src := r.RouterID
	if src == 0 {
		src = -r.expID
	}
	return rr.flt.Match(&r.Flow, src, r.local.Unmap(), r.remote.Unmap()), nil
}

// partReader reads one format 2 partition in a read transaction: its
// rows and its packed blocks (rawpack.go), so that every row is seen
// once, as a row or in a block.
type partReader struct {
	tx     *sql.Tx
	br     *blockReader
	packed []packedBlock // the partition's blocks in tx (s.lists): shared, read-only
}

func (s *FlowDB) openPart(ctx context.Context, p *rawPartition) (*partReader, error) {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot read raw flows: %w", err)
	}
	r := &partReader{tx: tx, br: newBlockReader(s, tx, p.name)}
	// This first read fixes the transaction's snapshot, its schema
	// included: the packer may create the table and move rows into it at
	// any time before, not after.
	if r.packed, err = s.partBlocks(ctx, tx, p.name); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// blocks lists the packed blocks holding ids lo..hi.
func (r *partReader) blocks(lo, hi int64) []packedBlock { return blocksIn(r.packed, lo, hi) }

func (r *partReader) close() {
	r.br.close()
	r.tx.Rollback()
}

// fetchBatch calls fn with the id and x of the rows of blocks (format 2),
// each block in id order, whether they are rows or in packed blocks,
// read with pr. pre skips packed rows that cannot pass the filter without
// decoding them; fn checks the rows it gets whole. fn returns false to
// stop. fetchBatch returns the number of rows it looked
// at.
//
// With light, the rows of version 2 blocks that may pass go instead to
// light.fn, decoded in part (light.need, from the columns; not checked).
func (s *FlowDB) fetchBatch(ctx context.Context, pr *partReader, p *rawPartition, blocks []rawBlock, pre *rowPre, fn func(id int64, x []byte) (bool, error), light *lightRows) (int64, error) {
	if len(blocks) == 0 {
		return 0, nil
	}
	lo, hi := blocks[0].lo, blocks[0].hi
	for i := range blocks {
		lo, hi = min(lo, blocks[i].lo), max(hi, blocks[i].hi)
	}
	packed := pr.blocks(lo, hi)
	var err error
	f := &fetcher{s: s, q: pr.tx, br: pr.br, p: p, pre: pre, fn: fn, light: light, packed: packed}
	if len(pre.hostSets) > 0 && len(packed) > 0 {
		// The Bloom filters of the blocks the rows are in, in one query.
		if f.bloomSkip, err = pr.br.bloomSkips(ctx, packed, blocks, pre); err != nil {
			return 0, err
		}
	}
	more, err := f.blocks(ctx, blocks)
	if err == nil && more {
		_, err = f.flushIDs(ctx)
	}
	return f.scanned, err
}

// fetcher reads the rows of a fetchBatch.
type fetcher struct {
	s       *FlowDB
	q       querier
	br      *blockReader
	p       *rawPartition
	pre     *rowPre
	fn      func(id int64, x []byte) (bool, error)
	light   *lightRows
	packed  []packedBlock
	pi      int     // the first packed block that may hold the next ids
	ids     []int64 // ids of rows (not packed) to fetch together
	cur     packedRows
	curOK   bool
	x       []byte
	scanned int64
	view    colView // of cur, when viewOK
	viewOK  bool
	// bloomSkip are the packed blocks (by lo) whose Bloom filter has none
	// of the filter's hosts, read for the batch when the filter has hosts.
	bloomSkip map[int64]bool
	row       decodedRow
}

// lightRows is the columnar read of a fetchBatch: the rows of version 2
// blocks decoded in part (need), checked against the filter (check, its
// names looked up: skipped when the key and address columns answer the
// filter exactly), and handed to fn.
type lightRows struct {
	need  rowNeed
	check func(r *decodedRow) (bool, error)
	fn    func(r *decodedRow) (bool, error)
}

func (f *fetcher) blocks(ctx context.Context, blocks []rawBlock) (bool, error) {
	for i := 0; i < len(blocks); i++ {
		b := &blocks[i]
		// A block mostly made of candidates is read whole.
		if b.all || len(b.ids) > blockRows/4 {
			lo, hi := b.lo, b.hi
			// Merge the following whole blocks that continue this one.
			for i+1 < len(blocks) && blocks[i+1].all && blocks[i+1].lo == hi+1 {
				i++
				hi = blocks[i].hi
			}
			if more, err := f.span(ctx, lo, hi, nil); err != nil || !more {
				return false, err
			}
			continue
		}
		if more, err := f.span(ctx, b.lo, b.hi, b.ids); err != nil || !more {
			return false, err
		}
	}
	return true, nil
}

// span reads the rows lo..hi (all of them when ids is nil, else those of
// ids), from packed blocks where they are packed.
func (f *fetcher) span(ctx context.Context, lo, hi int64, ids []int64) (bool, error) {
	for lo <= hi {
		for f.pi < len(f.packed) && f.packed[f.pi].hi < lo {
			f.pi++
		}
		if f.pi < len(f.packed) && f.packed[f.pi].lo <= lo {
			b := &f.packed[f.pi]
			end := min(hi, b.hi)
			if more, err := f.fromBlock(ctx, b, lo, end, ids); err != nil || !more {
				return false, err
			}
			lo = end + 1
			continue
		}
		end := hi
		if f.pi < len(f.packed) {
			end = min(hi, f.packed[f.pi].lo-1)
		}
		if ids == nil {
			if more, err := f.flushIDs(ctx); err != nil || !more {
				return false, err
			}
			more, err := f.s.fetchRows(ctx, f.q, f.p, "id BETWEEN ? AND ?", []any{lo, end}, f.counted)
			if err != nil || !more {
				return false, err
			}
		} else {
			f.ids = append(f.ids, idsIn(ids, lo, end)...)
			if len(f.ids) >= 8192 {
				if more, err := f.flushIDs(ctx); err != nil || !more {
					return false, err
				}
			}
		}
		lo = end + 1
	}
	return true, nil
}

func (f *fetcher) counted(id int64, x []byte) (bool, error) {
	f.scanned++
	return f.fn(id, x)
}

func (f *fetcher) flushIDs(ctx context.Context) (bool, error) {
	for len(f.ids) > 0 {
		n := min(len(f.ids), 8192)
		more, err := f.s.fetchRows(ctx, f.q, f.p, "id IN (SELECT value FROM json_each(?))", []any{jsonIDs(f.ids[:n])}, f.counted)
		if err != nil || !more {
			return false, err
		}
		f.ids = f.ids[n:]
	}
	return true, nil
}

// fromBlock reads the rows lo..hi (or those of ids) of packed block b.
func (f *fetcher) fromBlock(ctx context.Context, b *packedBlock, lo, hi int64, ids []int64) (bool, error) {
	if f.pre.skipBlock(b.tlo, b.thi, &b.sum) {
		return true, nil
	}
	if ids != nil {
		if ids = idsIn(ids, lo, hi); len(ids) == 0 {
			return true, nil
		}
	}
	pr := &f.cur
	if !f.curOK || pr.lo != b.lo {
		f.curOK, f.viewOK = false, false
		// With hosts to find, fetchBatch read the Bloom filters first.
		if f.bloomSkip[b.lo] {
			return true, nil
		}
		if err := f.br.read(ctx, b, pr); err != nil {
			return false, err
		}
		f.curOK = true
	}
	if f.light != nil && pr.version >= 2 {
		return f.lightRows(ctx, pr, lo, hi, ids)
	}
	row := func(i int) (bool, error) {
		f.scanned++
		if ok, err := f.pre.row(ctx, f.br, pr, i); err != nil || !ok {
			return err == nil, err
		}
		var err error
		if f.x, err = f.s.rowX(pr, i, f.x); err != nil {
			return false, fmt.Errorf("cannot read packed raw flows of %s: block %d: %w", f.p.name, pr.lo, err)
		}
		return f.fn(pr.ids[i], f.x)
	}
	if ids != nil {
		for _, id := range ids {
			if i, ok := pr.index(id); ok {
				if more, err := row(i); err != nil || !more {
					return false, err
				}
			}
		}
		return true, nil
	}
	i, _ := pr.index(lo)
	for ; i < pr.n && pr.ids[i] <= hi; i++ {
		if more, err := row(i); err != nil || !more {
			return false, err
		}
	}
	return true, nil
}

// lightRows hands the rows lo..hi (or those of ids) of version 2 block
// pr that pass to the columnar read, decoded from the columns it needs.
func (f *fetcher) lightRows(ctx context.Context, pr *packedRows, lo, hi int64, ids []int64) (bool, error) {
	if err := f.s.keysReady(pr); err != nil {
		return false, fmt.Errorf("cannot read packed raw flows of %s: block %d: %w", f.p.name, pr.lo, err)
	}
	if ids != nil {
		for _, id := range ids {
			if i, ok := pr.index(id); ok {
				if more, err := f.lightRow(ctx, pr, i); err != nil || !more {
					return false, err
				}
			}
		}
		return true, nil
	}
	i, _ := pr.index(lo)
	for ; i < pr.n && pr.ids[i] <= hi; i++ {
		if more, err := f.lightRow(ctx, pr, i); err != nil || !more {
			return false, err
		}
	}
	return true, nil
}

// lightRow is lightRows' for row i (keysReady done).
func (f *fetcher) lightRow(ctx context.Context, pr *packedRows, i int) (bool, error) {
	f.scanned++
	pre := f.pre
	if ok, err := pre.test(ctx, f.br, pr, i); err != nil || !ok {
		return err == nil, err
	}
	need := f.light.need
	if need&needAddrs != 0 {
		if err := f.br.rowCols(ctx, pr, i, false); err != nil {
			return false, err
		}
	}
	if !f.viewOK {
		if err := f.view.load(f.s, pr, need); err != nil {
			return false, fmt.Errorf("cannot read packed raw flows of %s: block %d: %w", f.p.name, pr.lo, err)
		}
		f.viewOK = true
	}
	r := &f.row
	f.view.fill(pr, i, f.p.start, need, r)
	if !pre.exact {
		if ok, err := f.light.check(r); err != nil || !ok {
			return err == nil, err
		}
	} else if need&needNames != 0 {
		if err := f.s.lookupNames(ctx, r); err != nil {
			return false, err
		}
	}
	return f.light.fn(r)
}

func jsonIDs(ids []int64) string {
	b := make([]byte, 0, 8*len(ids)+2)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, ']'))
}

// fetchRows runs SELECT id, x on partition p with the condition cond and
// calls fn for each row. It reports whether fn wanted more.
func (s *FlowDB) fetchRows(ctx context.Context, q querier, p *rawPartition, cond string, args []any, fn func(id int64, x []byte) (bool, error)) (bool, error) {
	rows, err := q.QueryContext(ctx, "SELECT id, x FROM "+p.name+" WHERE "+cond, args...)
	if err != nil {
		if isNoTable(err) {
			return true, nil // dropped by retention meanwhile
		}
		return false, fmt.Errorf("cannot read raw flows: %w", err)
	}
	defer rows.Close()
	var x sql.RawBytes // fn keeps nothing of x: no copy per row
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id, &x); err != nil {
			return false, fmt.Errorf("cannot read raw flows: %w", err)
		}
		more, err := fn(id, x)
		if err != nil || !more {
			return false, err
		}
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("cannot read raw flows: %w", err)
	}
	return true, nil
}

// visitRaw calls fn for every raw flow in [from, to) (unix ms) that passes
// the filter, in no particular order. fn returns false to stop.
func (s *FlowDB) visitRaw(ctx context.Context, from, to int64, flt *store.Filter, fn func(*decodedRow) bool) error {
	_, _, err := s.visitRawWithin(ctx, from, to, flt, 0, needWhole, fn)
	return err
}

// visitRawWithin is visitRaw with a time budget (0: none) and what fn
// reads of the rows (need: a columnar read of the packed blocks fills the
// fields of need and of the filter, and leaves the others zero). It visits the
// partitions newest first and, once the budget is spent, stops. It returns
// the start of the range it covered (unix ms, from when it covered
// everything) and whether it stopped early (partial): a slow scan answers
// with its newest part rather than time out.
//
// A partition too big for what is left of the budget (at 150,000 flows/s
// one holds 45 million rows) is read in part: its blocks whose newest row
// is the newest, as many as the scan's measured rate reads in the time
// left (one at least), and of their rows only those at or after the
// newest time of the blocks left out. Every row after that time is in a
// block read, so the answer counts exactly the flows after the point
// where it stopped, inside a partition too.
func (s *FlowDB) visitRawWithin(ctx context.Context, from, to int64, flt *store.Filter, budget time.Duration, need rowNeed, fn func(*decodedRow) bool) (scannedFrom int64, partial bool, err error) {
	parts, err := s.rawPartitions(ctx, from, to)
	if err != nil {
		return from, false, err
	}
	if s.wholeRows {
		need = needWhole
	}
	rr := &rowReader{s: s, from: from, to: to, flt: flt, need: need | filterNeed(flt)}
	hq := newHostQuery(flt)
	began := time.Now()
	deadline := began.Add(budget)
	var rowsRead int64
	scannedFrom = to
	for i := len(parts) - 1; i >= 0; i-- {
		p := &parts[i]
		if err := ctx.Err(); err != nil {
			return scannedFrom, false, err
		}
		if budget > 0 && i < len(parts)-1 && time.Now().After(deadline) {
			return scannedFrom, true, nil
		}
		maxRows := int64(-1)
		if budget > 0 {
			// The rows the time left reads at this scan's rate so far
			// (a first guess of a million rows a second).
			rate := 1e6
			if el := time.Since(began).Seconds(); rowsRead > 0 && el > 0 {
				rate = float64(rowsRead) / el
			}
			maxRows = int64(max(0, time.Until(deadline).Seconds()) * rate)
		}
		more, read, cut, err := s.visitPartition(ctx, rr, hq, p, from, to, maxRows, fn)
		rowsRead += read
		if err != nil || !more {
			return max(from, p.start), false, err
		}
		if cut > from {
			return cut, true, nil
		}
		scannedFrom = max(from, p.start)
	}
	return from, false, ctx.Err()
}

// visitPartition calls fn for the rows of one partition that pass the
// filter; it reports whether fn wanted more and how many rows it read.
// With maxRows >= 0 and more rows planned, it reads only the newest
// blocks (see visitRawWithin) and returns cut, the time (unix ms) from
// which it read every row; cut is math.MinInt64 when it read them all.
func (s *FlowDB) visitPartition(ctx context.Context, rr *rowReader, hq *hostQuery, p *rawPartition, from, to, maxRows int64, fn func(*decodedRow) bool) (more bool, read, cut int64, err error) {
	cut = math.MinInt64
	if p.format == formatV1 {
		more, err := s.scanV1(ctx, rr, p, false, false, nil, fn)
		return more, 0, cut, err
	}
	blocks, err := s.planV2(ctx, p, hq, from-p.start, to-p.start)
	if err != nil {
		return false, 0, cut, err
	}
	if maxRows >= 0 {
		var t int64
		if blocks, t = newestBlocks(blocks, maxRows); t != math.MinInt64 {
			cut = p.start + t
			saved := rr.from
			rr.from = max(rr.from, cut)
			defer func() { rr.from = saved }()
		}
	}
	pre := newRowPre(rr.flt, rr.from, rr.to, p.start)
	if chunks := s.splitScan(blocks); len(chunks) > 1 {
		more, read, err = s.visitParallel(ctx, rr, p, chunks, pre, fn)
		return more, read, cut, err
	}
	stopped := false
	pr, err := s.openPart(ctx, p)
	if err != nil {
		return false, 0, cut, err
	}
	defer pr.close()
	emit := func(r *decodedRow) (bool, error) {
		if !fn(r) {
			stopped = true
			return false, nil
		}
		return true, nil
	}
	read, err = s.fetchBatch(ctx, pr, p, blocks, pre, func(id int64, x []byte) (bool, error) {
		ok, err := rr.accept(ctx, p, id, x)
		if err != nil || !ok {
			return err == nil, err
		}
		return emit(&rr.row)
	}, rr.light(ctx, emit))
	return !stopped && err == nil, read, cut, err
}

// parallelMinRows is the fewest rows of a partition read by more than
// one goroutine (FlowDB.parallelMin, a field for tests).
const parallelMinRows = 64 * 1024

// splitScan splits the blocks of a partition's scan into one chunk per
// core it may use: its own, and those of scanSlots free at this moment (a
// busy machine scans on one core). Each chunk is a run of blocks with
// about as many rows as the others. With one chunk, nothing is taken.
func (s *FlowDB) splitScan(blocks []rawBlock) [][]rawBlock {
	var rows int
	for i := range blocks {
		rows += blocks[i].rows()
	}
	if rows < s.parallelMin {
		return nil
	}
	n := 1
	for n < 1+cap(s.scanSlots) && rows/(n+1) >= s.parallelMin/2 {
		select {
		case s.scanSlots <- struct{}{}:
			n++
			continue
		default:
		}
		break
	}
	if n == 1 {
		return nil
	}
	chunks := make([][]rawBlock, 0, n)
	per, acc, start := (rows+n-1)/n, 0, 0
	for i := range blocks {
		acc += blocks[i].rows()
		if acc >= per && len(chunks) < n-1 {
			chunks = append(chunks, blocks[start:i+1])
			start, acc = i+1, 0
		}
	}
	if start < len(blocks) {
		chunks = append(chunks, blocks[start:])
	}
	// Slots taken beyond the chunks made are given back.
	for range n - len(chunks) {
		<-s.scanSlots
	}
	return chunks
}

// visitParallel is visitPartition's read of chunks (from splitScan) by
// one goroutine each, the calling one included: each decodes and checks
// its rows in its own read transaction (the chunks' ids are disjoint, so
// every row is still seen once) and hands them to fn in batches, one
// goroutine at a time. It gives back the slots of splitScan.
func (s *FlowDB) visitParallel(ctx context.Context, rr *rowReader, p *rawPartition, chunks [][]rawBlock, pre *rowPre, fn func(*decodedRow) bool) (more bool, read int64, err error) {
	var (
		mu      sync.Mutex // serializes fn
		stopped atomic.Bool
		wg      sync.WaitGroup
		reads   = make([]int64, len(chunks))
		errs    = make([]error, len(chunks))
	)
	work := func(i int) {
		wrr := &rowReader{s: s, from: rr.from, to: rr.to, flt: rr.flt, need: rr.need}
		batch := make([]decodedRow, 0, 256)
		flush := func() bool {
			mu.Lock()
			defer mu.Unlock()
			for j := range batch {
				if stopped.Load() {
					break
				}
				if !fn(&batch[j]) {
					stopped.Store(true)
				}
			}
			batch = batch[:0]
			return !stopped.Load()
		}
		pr, err := s.openPart(ctx, p)
		if err != nil {
			errs[i] = err
			return
		}
		defer pr.close()
		add := func(r *decodedRow) (bool, error) {
			if stopped.Load() {
				return false, nil
			}
			batch = append(batch, *r)
			if len(batch) == cap(batch) {
				return flush(), nil
			}
			return true, nil
		}
		reads[i], errs[i] = s.fetchBatch(ctx, pr, p, chunks[i], pre, func(id int64, x []byte) (bool, error) {
			if stopped.Load() {
				return false, nil
			}
			ok, err := wrr.accept(ctx, p, id, x)
			if err != nil || !ok {
				return err == nil, err
			}
			return add(&wrr.row)
		}, wrr.light(ctx, add))
		if errs[i] == nil {
			flush()
		}
	}
	for i := 1; i < len(chunks); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-s.scanSlots }()
			work(i)
		}()
	}
	work(0)
	wg.Wait()
	for i := range chunks {
		read += reads[i]
	}
	if err := errors.Join(errs...); err != nil {
		return false, read, err
	}
	return !stopped.Load(), read, nil
}

// newestBlocks keeps the blocks with the newest rows, up to maxRows rows
// (one block at least), in id order, and returns t, the time (ms from the
// partition start) from which the kept blocks hold every row: the newest
// time of the blocks left out, plus one. t is math.MinInt64 when every
// block is kept.
func newestBlocks(blocks []rawBlock, maxRows int64) ([]rawBlock, int64) {
	var total int64
	for i := range blocks {
		total += int64(blocks[i].rows())
	}
	if total <= maxRows || len(blocks) <= 1 {
		return blocks, math.MinInt64
	}
	slices.SortFunc(blocks, func(a, b rawBlock) int { return cmp.Compare(b.thi, a.thi) })
	n, rows := 1, int64(blocks[0].rows())
	for n < len(blocks) && rows+int64(blocks[n].rows()) <= maxRows {
		rows += int64(blocks[n].rows())
		n++
	}
	if n == len(blocks) {
		return blocks, math.MinInt64
	}
	t := blocks[n].thi + 1
	kept := blocks[:n]
	slices.SortFunc(kept, func(a, b rawBlock) int { return cmp.Compare(a.lo, b.lo) })
	return kept, t
}

// scanV1 reads a format 1 partition, in (t, id) order when ordered (desc
// or not), after the cursor cur when it is in this partition. It reports
// whether fn wanted more.
func (s *FlowDB) scanV1(ctx context.Context, rr *rowReader, p *rawPartition, ordered, desc bool, cur *cursor, fn func(*decodedRow) bool) (bool, error) {
	q := "SELECT id, t, a, b, x FROM " + p.name + " WHERE t >= ? AND t < ?"
	args := []any{rr.from - p.start, rr.to - p.start}
	for _, c := range []struct {
		col string
		ps  []netip.Prefix
	}{{"", rr.flt.Hosts}, {"a", rr.flt.LocalHosts}, {"b", rr.flt.RemoteHosts}} {
		hc, hargs := hostCond(c.col, c.ps)
		q += hc
		args = append(args, hargs...)
	}
	if ordered {
		order, op := "ASC", ">"
		if desc {
			order, op = "DESC", "<"
		}
		if cur != nil && cur.part == p.key() {
			q += fmt.Sprintf(" AND (t %s ? OR (t = ? AND id %s ?))", op, op)
			args = append(args, cur.t, cur.t, cur.id)
		}
		q += fmt.Sprintf(" ORDER BY t %s, id %s", order, order)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		if isNoTable(err) {
			return true, nil
		}
		return false, fmt.Errorf("cannot read raw flows: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, t int64
		var a, b, x []byte
		if err := rows.Scan(&id, &t, &a, &b, &x); err != nil {
			return false, fmt.Errorf("cannot read raw flows: %w", err)
		}
		ok, err := rr.acceptV1(ctx, p, id, t, a, b, x)
		if err != nil {
			return false, err
		}
		if ok && !fn(&rr.row) {
			return false, nil
		}
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("cannot read raw flows: %w", err)
	}
	return true, nil
}

// hostCond returns the SQL condition of a format 1 partition for a host
// filter on column col ("a" or "b"; "" for either). Rows it admits are
// re-checked exactly in Go.
func hostCond(col string, hosts []netip.Prefix) (string, []any) {
	if len(hosts) == 0 {
		return "", nil
	}
	cols := []string{"a", "b"}
	if col != "" {
		cols = []string{col}
	}
	var parts []string
	var args []any
	for _, p := range hosts {
		lo := p.Masked().Addr()
		hi := lastAddr(p)
		for _, c := range cols {
			if lo == hi {
				parts = append(parts, c+" = ?")
				args = append(args, addrBytes(lo))
				continue
			}
			parts = append(parts, c+" BETWEEN ? AND ?")
			args = append(args, addrBytes(lo), addrBytes(hi))
		}
	}
	return " AND (" + strings.Join(parts, " OR ") + ")", args
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := 0; j < 8; j++ {
			if i*8+j >= bits {
				b[i] |= 0x80 >> j
			}
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// rowKey is the (t, id) order of the rows of one partition.
type rowKey struct{ t, id int64 }

func (a rowKey) less(b rowKey) bool { return a.t < b.t || (a.t == b.t && a.id < b.id) }

// found is a row of a search with its order key.
type found struct {
	key rowKey
	f   store.Flow
}

// topRows keeps the n best rows: the greatest keys when desc, else the
// smallest. It is a binary heap with the worst kept row on top.
type topRows struct {
	n    int
	desc bool
	h    []found
}

// worse reports whether a sorts after b in the search order.
func (t *topRows) worse(a, b rowKey) bool {
	if t.desc {
		return a.less(b)
	}
	return b.less(a)
}

func (t *topRows) full() bool { return len(t.h) >= t.n }

func (t *topRows) push(k rowKey, f *store.Flow) {
	if t.full() {
		if !t.worse(t.h[0].key, k) {
			return
		}
		t.h[0] = found{k, *f}
		t.down(0)
		return
	}
	t.h = append(t.h, found{k, *f})
	for i := len(t.h) - 1; i > 0; {
		p := (i - 1) / 2
		if !t.worse(t.h[i].key, t.h[p].key) {
			break
		}
		t.h[i], t.h[p] = t.h[p], t.h[i]
		i = p
	}
}

func (t *topRows) down(i int) {
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(t.h) && t.worse(t.h[l].key, t.h[m].key) {
			m = l
		}
		if r < len(t.h) && t.worse(t.h[r].key, t.h[m].key) {
			m = r
		}
		if m == i {
			return
		}
		t.h[i], t.h[m] = t.h[m], t.h[i]
		i = m
	}
}

// sorted returns the kept rows in search order.
func (t *topRows) sorted() []found {
	out := slices.Clone(t.h)
	slices.SortFunc(out, func(a, b found) int {
		switch {
		case t.worse(a.key, b.key):
			return 1
		case t.worse(b.key, a.key):
			return -1
		}
		return 0
	})
	return out
}

// searchRaw returns up to limit flows in [from, to) (unix ms) passing the
// filter, newest first when desc, after the cursor cur (nil: from the
// start), the cursor of the last one, and whether more rows follow.
func (s *FlowDB) searchRaw(ctx context.Context, from, to int64, flt *store.Filter, desc bool, cur *cursor, limit int) ([]store.Flow, cursor, bool, error) {
	parts, err := s.rawPartitions(ctx, from, to)
	if err != nil {
		return nil, cursor{}, false, err
	}
	if desc {
		slices.Reverse(parts)
	}
	rr := &rowReader{s: s, from: from, to: to, flt: flt}
	hq := newHostQuery(flt)
	var out []store.Flow
	var last cursor
	want := limit + 1 // one more tells whether a next page exists
	for i := range parts {
		p := &parts[i]
		if cur != nil && ((desc && p.key() > cur.part) || (!desc && p.key() < cur.part)) {
			continue
		}
		var pcur *rowKey
		if cur != nil && cur.part == p.key() {
			pcur = &rowKey{cur.t, cur.id}
		}
		rows, err := s.searchPartition(ctx, rr, p, hq, desc, pcur, want-len(out))
		if err != nil {
			return nil, cursor{}, false, err
		}
		for _, r := range rows {
			if len(out) == limit {
				return out, last, true, nil
			}
			out = append(out, r.f)
			last = cursor{part: p.key(), t: r.key.t, id: r.key.id}
		}
	}
	return out, last, false, ctx.Err()
}

// searchPartition returns the first n rows of one partition in search
// order after pcur (nil: from the start).
func (s *FlowDB) searchPartition(ctx context.Context, rr *rowReader, p *rawPartition, hq *hostQuery, desc bool, pcur *rowKey, n int) ([]found, error) {
	top := &topRows{n: n, desc: desc}
	if p.format == formatV1 {
		var c *cursor
		if pcur != nil {
			c = &cursor{part: p.key(), t: pcur.t, id: pcur.id}
		}
		_, err := s.scanV1(ctx, rr, p, true, desc, c, func(r *decodedRow) bool {
			top.push(rowKey{r.t, r.id}, &r.Flow)
			return !top.full()
		})
		return top.sorted(), err
	}
	blocks, err := s.planV2(ctx, p, hq, rr.from-p.start, rr.to-p.start)
	if err != nil {
		return nil, err
	}
	pre := newRowPre(rr.flt, rr.from, rr.to, p.start)
	pr, err := s.openPart(ctx, p)
	if err != nil {
		return nil, err
	}
	defer pr.close()
	// best is the best key a block's rows can have, worst the worst.
	best := func(b *rawBlock) rowKey {
		if desc {
			return rowKey{b.thi, b.hi}
		}
		return rowKey{b.tlo, b.lo}
	}
	worst := func(b *rawBlock) rowKey {
		if desc {
			return rowKey{b.tlo, b.lo}
		}
		return rowKey{b.thi, b.hi}
	}
	if pcur != nil {
		// Blocks whose rows all come before or at the cursor are done.
		k := 0
		for i := range blocks {
			if w := worst(&blocks[i]); top.worse(w, *pcur) {
				blocks[k] = blocks[i]
				k++
			}
		}
		blocks = blocks[:k]
	}
	slices.SortFunc(blocks, func(a, b rawBlock) int {
		switch ka, kb := best(&a), best(&b); {
		case top.worse(kb, ka):
			return -1
		case top.worse(ka, kb):
			return 1
		}
		return 0
	})
	for len(blocks) > 0 {
		if top.full() && !top.worse(top.h[0].key, best(&blocks[0])) {
			break // no block left can beat the rows found
		}
		// Read a batch of blocks at once: at least n rows, or a few
		// hundred candidates.
		j, rows := 0, 0
		for j < len(blocks) && (j == 0 || rows < max(n, 256)) && j < 1024 {
			if top.full() && !top.worse(top.h[0].key, best(&blocks[j])) {
				break
			}
			rows += blocks[j].rows()
			j++
		}
		batch := slices.Clone(blocks[:j])
		blocks = blocks[j:]
		slices.SortFunc(batch, func(a, b rawBlock) int { return cmp.Compare(a.lo, b.lo) })
		_, err := s.fetchBatch(ctx, pr, p, batch, pre, func(id int64, x []byte) (bool, error) {
			ok, err := rr.accept(ctx, p, id, x)
			if err != nil || !ok {
				return err == nil, err
			}
			k := rowKey{rr.row.t, id}
			if pcur == nil || top.worse(k, *pcur) {
				top.push(k, &rr.row.Flow)
			}
			return true, nil
		}, nil)
		if err != nil {
			return nil, err
		}
	}
	return top.sorted(), nil
}

// scanRawOrdered calls fn for every raw flow in [from, to) (unix ms) that
// passes the filter, in (t, id) order within partitions taken oldest
// first, or the reverse when desc. fn returns false to stop.
func (s *FlowDB) scanRawOrdered(ctx context.Context, from, to int64, flt *store.Filter, desc bool, fn func(*decodedRow) bool) error {
	parts, err := s.rawPartitions(ctx, from, to)
	if err != nil {
		return err
	}
	if desc {
		slices.Reverse(parts)
	}
	rr := &rowReader{s: s, from: from, to: to, flt: flt}
	hq := newHostQuery(flt)
	for i := range parts {
		p := &parts[i]
		if err := ctx.Err(); err != nil {
			return err
		}
		var more bool
		if p.format == formatV1 {
			more, err = s.scanV1(ctx, rr, p, true, desc, nil, fn)
		} else {
			more, err = s.orderedPartition(ctx, rr, p, hq, desc, fn)
		}
		if err != nil || !more {
			return err
		}
	}
	return ctx.Err()
}

// ordRow is a row of a sorted run of orderedPartition.
type ordRow struct {
	key rowKey
	x   []byte
}

// ordRun is a sorted run: the passing rows of a packed block, or the rows
// not packed as SQLite returns them sorted (rows non-nil).
type ordRun struct {
	buf  []ordRow
	i    int
	rows *sql.Rows
	head ordRow
}

func (r *ordRun) done() bool {
	if r.rows != nil {
		return false
	}
	return r.i >= len(r.buf)
}

func (r *ordRun) peek() *ordRow {
	if r.rows != nil {
		return &r.head
	}
	return &r.buf[r.i]
}

// next advances the run; a SQL run reads its next row.
func (r *ordRun) next() error {
	if r.rows == nil {
		r.i++
		return nil
	}
	if !r.rows.Next() {
		err := r.rows.Err()
		r.rows.Close()
		r.rows = nil
		if err != nil {
			return fmt.Errorf("cannot read raw flows: %w", err)
		}
		return nil
	}
	var x sql.RawBytes
	if err := r.rows.Scan(&r.head.key.id, &x); err != nil {
		return fmt.Errorf("cannot read raw flows: %w", err)
	}
	if len(x) < 3 {
		return fmt.Errorf("cannot read raw flow %d: %w", r.head.key.id, errBadRow)
	}
	r.head.key.t = int64(x[0])<<16 | int64(x[1])<<8 | int64(x[2])
	r.head.x = append(r.head.x[:0], x...)
	return nil
}

// orderedPartition calls fn for the rows of format 2 partition p that
// pass the filter, in (t, id) order (desc: the reverse). It merges sorted
// runs: the passing rows of each packed block, sorted in memory, and the
// rows not packed, sorted by SQLite. A block is read only when the merge
// reaches its t range, so memory holds the blocks whose t ranges overlap
// the current time (a few), not the partition. It reports whether fn
// wanted more.
func (s *FlowDB) orderedPartition(ctx context.Context, rr *rowReader, p *rawPartition, hq *hostQuery, desc bool, fn func(*decodedRow) bool) (bool, error) {
	tfrom, tto := max(rr.from-p.start, 0), min(rr.to-p.start, maxRowT+1)
	if tfrom >= tto {
		return true, nil
	}
	// With a host filter, the host index's candidates, and where the rows
	// no index covers start (scanFrom).
	var cand []int64
	scanFrom := int64(-1)
	if hq != nil {
		blocks, err := s.planV2(ctx, p, hq, tfrom, tto)
		if err != nil {
			return false, err
		}
		for _, b := range blocks {
			if b.all {
				scanFrom = b.lo // only the uncovered rows at the end are read whole
				continue
			}
			cand = append(cand, b.ids...)
		}
		if len(cand) == 0 && scanFrom < 0 {
			return true, nil
		}
		slices.Sort(cand)
	}
	part, err := s.openPart(ctx, p)
	if err != nil {
		return false, err
	}
	defer part.close()
	tx, br := part.tx, part.br
	var packedHi int64
	if n := len(part.packed); n > 0 {
		packedHi = part.packed[n-1].hi
	}
	pre := newRowPre(rr.flt, rr.from, rr.to, p.start)
	// With a host filter, a packed row is read when it is a candidate or
	// no index covers it (from scanFrom on: the packer moves rows before
	// their segment is written).
	wanted := func(lo, hi int64) bool {
		return hq == nil || (scanFrom >= 0 && hi >= scanFrom) || len(idsIn(cand, lo, hi)) > 0
	}
	var packed []packedBlock // a copy: part.packed is shared (blockLists)
	for _, b := range part.packed {
		if !pre.skipBlock(b.tlo, b.thi, &b.sum) && wanted(b.lo, b.hi) {
			packed = append(packed, b)
		}
	}
	// Blocks in the order the merge needs them: by their best time.
	if desc {
		slices.SortFunc(packed, func(a, b packedBlock) int { return cmp.Compare(b.thi, a.thi) })
	} else {
		slices.SortFunc(packed, func(a, b packedBlock) int { return cmp.Compare(a.tlo, b.tlo) })
	}
	better := func(a, b rowKey) bool {
		if desc {
			return b.less(a)
		}
		return a.less(b)
	}

	// The rows not packed, sorted by SQLite.
	order := "ASC"
	if desc {
		order = "DESC"
	}
	cond := "id > ? AND substr(x, 1, 3) >= ? AND substr(x, 1, 3) < ?"
	args := []any{packedHi, t24(tfrom), t24(tto)}
	if tto > maxRowT {
		cond, args = "id > ? AND substr(x, 1, 3) >= ?", []any{packedHi, t24(tfrom)}
	}
	if hq != nil {
		cond += " AND (id IN (SELECT value FROM json_each(?)) OR id >= ?)"
		if scanFrom < 0 {
			scanFrom = 1 << 62
		}
		args = append(args, jsonIDs(idsIn(cand, packedHi+1, 1<<62)), scanFrom)
	}
	var runs []*ordRun
	rows, err := tx.QueryContext(ctx, "SELECT id, x FROM "+p.name+" WHERE "+cond+" ORDER BY substr(x, 1, 3) "+order+", id "+order, args...)
	switch {
	case isNoTable(err):
		return true, nil // dropped by retention meanwhile
	case err != nil:
		return false, fmt.Errorf("cannot read raw flows: %w", err)
	}
	sqlRun := &ordRun{rows: rows}
	defer func() {
		if sqlRun.rows != nil {
			sqlRun.rows.Close()
		}
	}()
	if err := sqlRun.next(); err != nil {
		return false, err
	}
	if !sqlRun.done() {
		runs = append(runs, sqlRun)
	}

	var pr packedRows
	load := func(b *packedBlock) error {
		if skip, err := br.skipsHosts(ctx, b, pre); err != nil || skip {
			return err
		}
		if err := br.read(ctx, b, &pr); err != nil {
			return err
		}
		run := &ordRun{}
		for i := range pr.n {
			if !wanted(pr.ids[i], pr.ids[i]) {
				continue
			}
			if ok, err := pre.row(ctx, br, &pr, i); err != nil || !ok {
				if err != nil {
					return err
				}
				continue
			}
			x, err := s.rowX(&pr, i, nil)
			if err != nil {
				return fmt.Errorf("cannot read packed raw flows of %s: block %d: %w", p.name, pr.lo, err)
			}
			run.buf = append(run.buf, ordRow{rowKey{pr.ts[i], pr.ids[i]}, x})
		}
		if len(run.buf) == 0 {
			return nil
		}
		slices.SortFunc(run.buf, func(a, b ordRow) int {
			switch {
			case better(a.key, b.key):
				return -1
			case better(b.key, a.key):
				return 1
			}
			return 0
		})
		runs = append(runs, run)
		return nil
	}
	bi := 0
	for {
		// The run with the best head.
		best := -1
		for i, r := range runs {
			if best < 0 || better(r.peek().key, runs[best].peek().key) {
				best = i
			}
		}
		// Blocks that may hold a better row are read first.
		if bi < len(packed) {
			b := &packed[bi]
			reach := best < 0
			if !reach {
				t := runs[best].peek().key.t
				reach = (!desc && b.tlo <= t) || (desc && b.thi >= t)
			}
			if reach {
				bi++
				if err := load(b); err != nil {
					return false, err
				}
				continue
			}
		}
		if best < 0 {
			return true, nil
		}
		r := runs[best]
		h := r.peek()
		ok, err := rr.accept(ctx, p, h.key.id, h.x)
		if err != nil {
			return false, err
		}
		if ok && !fn(&rr.row) {
			return false, nil
		}
		if err := r.next(); err != nil {
			return false, err
		}
		if r.done() {
			runs = slices.Delete(runs, best, best+1)
		}
	}
}

// t24 is the 3-byte big-endian form of t that starts x.
func t24(t int64) []byte { return []byte{byte(t >> 16), byte(t >> 8), byte(t)} }
