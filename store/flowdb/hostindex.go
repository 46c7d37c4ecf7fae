package flowdb

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flowbox/flowbox/store"
)

// The host index finds the rows of a format 2 partition that involve a
// given address (on the local or the remote side) without an SQL index,
// whose random inserts would slow ingest down and whose entries cost about
// 13 bytes per flow and side.
//
// The writer appends, after each commit, one posting (address, row id) per
// side of each row to the partition's in-memory tail, and keeps the t range
// of every block of blockRows rows. When the tails of all partitions hold
// more than maxTailPostings postings, or when a partition closes, it
// "spills" a tail as a segment: one row per frequent address (at least
// frequentPostings postings) with its row ids, one row per hash bucket for
// the other addresses (a search then re-checks the rows of the bucket), and
// a raw_segments row with the segment's id range, bucket count and block
// t ranges. Row ids are delta-coded uvarints: a segment costs about 2 bytes
// per posting. Searches read the tail (under its lock) first and the
// segments (SQL) next, so that a tail spilled meanwhile is found in its
// segment: candidates may repeat, never go missing.

const (
	// blockRows is the number of consecutive rows whose t range is kept.
	blockRows = 256
	// maxTailPostings bounds the postings held in memory by all tails (20
	// bytes each, and as much again to build a segment): beyond it the
	// largest tail is spilled.
	maxTailPostings = 1 << 19
	// frequentPostings is the number of postings from which an address of a
	// segment gets a row of its own instead of sharing its hash bucket.
	frequentPostings = 8
	// postingsPerBucket sizes the hash buckets of a segment: the rows a
	// search for a rare address reads per segment.
	postingsPerBucket = 64
	// maxBuckets bounds the buckets of a segment (2-byte keys).
	maxBuckets = 1 << 16
	// lateSpillAge is how long the tail of a closed partition (late flows)
	// may wait before it is spilled; bigger tails are spilled at once.
	lateSpillAge = time.Hour
	// lateSpillPostings is the tail size from which a closed partition's
	// tail is spilled at the next maintenance.
	lateSpillPostings = 4096
)

// tspan is the t range (ms from the partition start) of a block of rows;
// lo > hi for an empty block.
type tspan struct{ lo, hi int32 }

func (s *tspan) add(t int32) {
	if s.lo > s.hi {
		s.lo, s.hi = t, t
		return
	}
	s.lo, s.hi = min(s.lo, t), max(s.hi, t)
}

var emptySpan = tspan{lo: 1, hi: 0}

// tailChunk is the number of postings of one chunk of a tail.
const tailChunk = 1 << 15

// postingChunk holds postings of a tail: fixed-size chunks, so that a tail
// grows without copying and spilled chunks are reused (chunkPool).
type postingChunk struct {
	hosts [tailChunk][16]byte // posting i: address
	rel   [tailChunk]uint32   // posting i: row id - the tail's firstID
	n     int
}

// chunkPool is the writer's free list of posting chunks, bounded.
type chunkPool struct {
	free []*postingChunk
}

// maxFreeChunks bounds the chunks kept for reuse: the tails' bound.
const maxFreeChunks = maxTailPostings/tailChunk + 2

func (p *chunkPool) get() *postingChunk {
	if n := len(p.free); n > 0 {
		c := p.free[n-1]
		p.free = p.free[:n-1]
		c.n = 0
		return c
	}
	return new(postingChunk)
}

func (p *chunkPool) put(cs []*postingChunk) {
	for _, c := range cs {
		if len(p.free) < maxFreeChunks {
			p.free = append(p.free, c)
		}
	}
}

// hostTail indexes the rows of one format 2 partition that no segment
// covers: rows firstID .. firstID+n-1. Only the writer changes it, under
// its lock; readers copy what they need under the read lock.
type hostTail struct {
	mu       sync.RWMutex
	firstID  int64
	n        int64
	chunks   []*postingChunk // postings in id order
	postings int
	spans    []tspan   // block i: rows firstID + i*blockRows ...
	since    time.Time // arrival of the first row of the tail
}

func newHostTail(firstID int64) *hostTail { return &hostTail{firstID: firstID} }

// hostKey is the 16-byte form of an address (IPv4 mapped), the unit of the
// host index.
func hostKey(a netip.Addr) [16]byte { return a.As16() }

// tailRow is what the writer adds to a tail for one committed row.
type tailRow struct {
	t             int32
	local, remote netip.Addr
}

// add appends committed rows firstID+n ... to the tail.
func (h *hostTail) add(rows []tailRow, now time.Time, pool *chunkPool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		h.since = now
	}
	post := func(a netip.Addr, rel uint32) {
		if len(h.chunks) == 0 || h.chunks[len(h.chunks)-1].n == tailChunk {
			h.chunks = append(h.chunks, pool.get())
		}
		c := h.chunks[len(h.chunks)-1]
		c.hosts[c.n], c.rel[c.n] = hostKey(a), rel
		c.n++
		h.postings++
	}
	for _, r := range rows {
		rel := uint32(h.n)
		b := int(h.n / blockRows)
		if b == len(h.spans) {
			h.spans = append(h.spans, emptySpan)
		}
		h.spans[b].add(r.t)
		if r.local.IsValid() {
			post(r.local, rel)
		}
		if r.remote.IsValid() && r.remote != r.local {
			post(r.remote, rel)
		}
		h.n++
	}
}

func (h *hostTail) size() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.postings
}

// reset empties the tail after it was spilled, giving its chunks back to
// the pool; the next row is firstID.
func (h *hostTail) reset(firstID int64, pool *chunkPool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	pool.put(h.chunks)
	clear(h.chunks)
	h.firstID, h.n, h.chunks, h.postings, h.spans = firstID, 0, h.chunks[:0], 0, h.spans[:0]
}

// tailView is what a reader copies out of a tail.
type tailView struct {
	firstID, n int64
	spans      []tspan
}

// view copies the tail's extent and block spans and, for each matcher, the
// ascending ids of the rows with an address it accepts.
func (h *hostTail) view(matchers []func([16]byte) bool) (tailView, [][]int64) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	v := tailView{firstID: h.firstID, n: h.n, spans: slices.Clone(h.spans)}
	ids := make([][]int64, len(matchers))
	for m, match := range matchers {
		list := []int64{}
		for _, c := range h.chunks {
			for i := range c.n {
				if match(c.hosts[i]) {
					list = append(list, h.firstID+int64(c.rel[i]))
				}
			}
		}
		// Postings are in id order; a row repeats when both its sides match.
		ids[m] = slices.Compact(list)
	}
	return v, ids
}

// hostHash is the bucket hash of an address. It is part of the on-disk
// format: never change it.
func hostHash(k [16]byte) uint32 {
	x := binary.LittleEndian.Uint64(k[0:8])*0x9E3779B97F4A7C15 ^ binary.LittleEndian.Uint64(k[8:16])
	x ^= x >> 31
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 29
	return uint32(x >> 32)
}

// bucketsFor returns the bucket count of a segment of n postings: a power
// of two within [16, maxBuckets].
func bucketsFor(n int) int {
	b := 16
	for b < maxBuckets && b*postingsPerBucket < n {
		b *= 2
	}
	return b
}

func bucketKey(k [16]byte, buckets int) []byte {
	b := hostHash(k) & uint32(buckets-1)
	return []byte{byte(b >> 8), byte(b)}
}

// exactKey is the key of an address's own segment row: 4 bytes for IPv4,
// 16 for IPv6.
func exactKey(k [16]byte) []byte {
	a := netip.AddrFrom16(k)
	if a.Is4In6() {
		v := a.Unmap().As4()
		return v[:]
	}
	return k[:]
}

// segRow is one posting row of a segment.
type segRow struct {
	k, v []byte
}

// buildSegment turns the postings of chunks (in ascending id order) into
// segment rows sorted by key, the row ids coded relative to the segment's
// first row. It is linear: a radix sort by bucket, then, per bucket, a
// small hash table counts the postings of each address.
func buildSegment(sc *segScratch, chunks []*postingChunk, buckets int) []segRow {
	n := 0
	for _, c := range chunks {
		n += c.n
	}
	mask := uint32(buckets - 1)
	// Sort the postings by bucket, stably (ids stay ascending within a
	// bucket), in two passes of at most 256 streams each so that the
	// writes stay in cache: into the scratch by the high bits of the
	// bucket, then, in place, each of those groups by the low byte.
	shift := uint(0)
	for buckets>>shift > 256 {
		shift++
	}
	groups := buckets >> shift
	ps := grow(&sc.p, n)
	var pos [257]int
	for _, c := range chunks {
		for i := range c.n {
			pos[(hostHash(c.hosts[i])&mask)>>shift+1]++
		}
	}
	for i := 1; i <= groups; i++ {
		pos[i] += pos[i-1]
	}
	starts := pos
	for _, c := range chunks {
		for i := range c.n {
			h := hostHash(c.hosts[i])
			g := (h & mask) >> shift
			ps[pos[g]] = sortedPosting{c.hosts[i], c.rel[i], h}
			pos[g]++
		}
	}
	if shift > 0 {
		low := uint32(1)<<shift - 1
		cnt := grow(&sc.cnt, int(low)+2)
		for g := range groups {
			group := ps[starts[g]:starts[g+1]]
			tmp := grow(&sc.tmp, len(group))
			clear(cnt)
			for _, p := range group {
				cnt[p.hash&low+1]++
			}
			for i := 1; i < len(cnt); i++ {
				cnt[i] += cnt[i-1]
			}
			for _, p := range group {
				k := p.hash & low
				tmp[cnt[k]] = p
				cnt[k]++
			}
			copy(group, tmp)
		}
	}
	arena := sc.arena[:0]
	rows, exact := sc.rows[:0], sc.exact[:0]
	tab := &sc.counter
	for start := 0; start < n; {
		b := ps[start].hash & mask
		end := start + 1
		for end < n && ps[end].hash&mask == b {
			end++
		}
		bucket := ps[start:end]
		start = end
		frequent := sc.frequent[:0]
		if len(bucket) >= frequentPostings {
			tab.reset(len(bucket))
			for i := range bucket {
				if tab.inc(bucket[i].host, bucket[i].hash) == frequentPostings {
					frequent = append(frequent, bucket[i].host)
				}
			}
		}
		// The bucket row: the postings of the other addresses, in id order.
		o := len(arena)
		arena = append(arena, byte(b>>8), byte(b))
		prev, first := uint32(0), true
		for i := range bucket {
			if len(frequent) > 0 && slices.Contains(frequent, bucket[i].host) {
				continue
			}
			arena, prev, first = appendPosting(arena, bucket[i].rel, prev, first)
		}
		if len(arena) > o+2 {
			rows = append(rows, segRow{k: arena[o : o+2 : o+2], v: arena[o+2 : len(arena) : len(arena)]})
		} else {
			arena = arena[:o]
		}
		for _, h := range frequent {
			o := len(arena)
			prev, first := uint32(0), true
			for i := range bucket {
				if bucket[i].host == h {
					arena, prev, first = appendPosting(arena, bucket[i].rel, prev, first)
				}
			}
			exact = append(exact, segRow{k: exactKey(h), v: arena[o:len(arena):len(arena)]})
		}
		sc.frequent = frequent
	}
	sc.arena = arena
	// Bucket rows are in key order already: merge the few exact rows in.
	slices.SortFunc(exact, func(x, y segRow) int { return bytes.Compare(x.k, y.k) })
	sc.rows, sc.exact = rows, exact
	out := sc.out[:0]
	i, j := 0, 0
	for i < len(rows) || j < len(exact) {
		if j == len(exact) || (i < len(rows) && bytes.Compare(rows[i].k, exact[j].k) < 0) {
			out = append(out, rows[i])
			i++
		} else {
			out = append(out, exact[j])
			j++
		}
	}
	sc.out = out
	return out
}

// sortedPosting is a posting with its hash, as buildSegment sorts them.
type sortedPosting struct {
	host [16]byte
	rel  uint32
	hash uint32
}

// segScratch is the memory buildSegment reuses from spill to spill.
type segScratch struct {
	p, tmp   []sortedPosting
	rows     []segRow
	exact    []segRow
	out      []segRow
	cnt      []int
	arena    []byte
	frequent [][16]byte
	counter  hostCounter
}

// grow returns (*s)[:n], reallocated with some headroom when too small.
func grow[T any](s *[]T, n int) []T {
	if cap(*s) < n {
		*s = make([]T, n, n+n/4)
	}
	return (*s)[:n]
}

// appendPosting appends id to a delta-coded posting list whose last id is
// prev (first: the list is empty); a repeated id is written once.
func appendPosting(dst []byte, id, prev uint32, first bool) ([]byte, uint32, bool) {
	switch {
	case first:
		dst = binary.AppendUvarint(dst, uint64(id))
	case id == prev:
		return dst, prev, false
	default:
		dst = binary.AppendUvarint(dst, uint64(id-prev))
	}
	return dst, id, false
}

// appendPostings appends ascending ids, delta-coded, to dst (equal ids
// are written once).
func appendPostings(dst []byte, ids []uint32) []byte {
	prev, first := uint32(0), true
	for _, id := range ids {
		dst, prev, first = appendPosting(dst, id, prev, first)
	}
	return dst
}

// hostCounter counts the postings of each address of one bucket: an open
// addressing table, reused from bucket to bucket.
type hostCounter struct {
	keys   [][16]byte
	counts []int32
	used   []int32 // slots in use, to reset them
	mask   uint32
	shift  uint32
}

func (c *hostCounter) reset(n int) {
	for _, u := range c.used {
		c.counts[u] = 0
	}
	c.used = c.used[:0]
	size, bits := 16, uint32(4)
	for size < 2*n {
		size, bits = size*2, bits+1
	}
	c.shift = 32 - bits
	if size > len(c.keys) {
		c.keys, c.counts = make([][16]byte, size), make([]int32, size)
	}
	c.mask = uint32(size - 1)
}

// inc counts one posting of k (whose hostHash is h) and returns its count.
func (c *hostCounter) inc(k [16]byte, h uint32) int32 {
	// The bucket used the low bits of h: start from a remix of all.
	for i := (h * 2654435761) >> c.shift & c.mask; ; i = (i + 1) & c.mask {
		switch {
		case c.counts[i] == 0:
			c.keys[i], c.counts[i] = k, 1
			c.used = append(c.used, int32(i))
			return 1
		case c.keys[i] == k:
			c.counts[i]++
			return c.counts[i]
		}
	}
}

// readPostings appends the ids of v (relative to first) to dst.
func readPostings(dst []int64, v []byte, first int64) ([]int64, error) {
	id := first
	for i := 0; len(v) > 0; i++ {
		d, n := binary.Uvarint(v)
		if n <= 0 {
			return dst, errBadRow
		}
		v = v[n:]
		if i == 0 {
			id = first + int64(d)
		} else {
			id += int64(d)
		}
		dst = append(dst, id)
	}
	return dst, nil
}

func appendSpans(dst []byte, spans []tspan) []byte {
	for _, s := range spans {
		if s.lo > s.hi {
			s = tspan{0, maxRowT} // no row: never happens for committed ids
		}
		dst = binary.AppendUvarint(dst, uint64(s.lo))
		dst = binary.AppendUvarint(dst, uint64(s.hi-s.lo))
	}
	return dst
}

func readSpans(v []byte) ([]tspan, error) {
	var out []tspan
	for len(v) > 0 {
		lo, n := binary.Uvarint(v)
		if n <= 0 {
			return nil, errBadRow
		}
		v = v[n:]
		d, n := binary.Uvarint(v)
		if n <= 0 || lo+d > maxRowT {
			return nil, errBadRow
		}
		v = v[n:]
		out = append(out, tspan{int32(lo), int32(lo + d)})
	}
	return out, nil
}

// indexTable is the name of a partition's host index table.
func indexTable(part string) string { return "rawx_" + strings.TrimPrefix(part, "raw_") }

// spill writes the tail of p as its next segment, in a transaction of its
// own, then empties the tail.
func (s *FlowDB) spill(ctx context.Context, p *partition) error {
	h := p.tail
	// Only the writer (this goroutine) changes the tail: no lock needed to
	// read it here.
	first, n, chunks, postings, spans := h.firstID, h.n, h.chunks, h.postings, h.spans
	if n == 0 {
		return nil
	}
	start := time.Now()
	buckets := bucketsFor(postings)
	rows := buildSegment(&s.wr.segScratch, chunks, buckets)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cannot write host index of %s: %w", p.name, store.DescribeWriteError(err))
	}
	defer tx.Rollback()
	seg := p.segs
	if err := insertSegRows(ctx, tx, indexTable(p.name), seg, rows); err != nil {
		return fmt.Errorf("cannot write host index of %s: %w", p.name, store.DescribeWriteError(err))
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO raw_segments (part, seg, first_id, last_id, buckets, block_rows, blocks) VALUES (?,?,?,?,?,?,?)",
		p.name, seg, first, first+n-1, buckets, blockRows, appendSpans(nil, spans)); err != nil {
		return fmt.Errorf("cannot write host index of %s: %w", p.name, store.DescribeWriteError(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cannot write host index of %s: %w", p.name, store.DescribeWriteError(err))
	}
	p.segs++
	h.reset(first+n, &s.wr.chunks)
	s.metrics.segments.Inc()
	s.metrics.spillSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// segRowsPerInsert is the number of rows of one multi-row INSERT of
// segment rows.
const segRowsPerInsert = 64

func insertSegRows(ctx context.Context, tx *sql.Tx, table string, seg int, rows []segRow) error {
	vals := strings.TrimSuffix(strings.Repeat("(?,?,?),", segRowsPerInsert), ",")
	many, err := tx.PrepareContext(ctx, "INSERT INTO "+table+" (seg, k, v) VALUES "+vals)
	if err != nil {
		return err
	}
	defer many.Close()
	args := make([]any, 0, 3*segRowsPerInsert)
	for len(rows) >= segRowsPerInsert {
		args = args[:0]
		for _, r := range rows[:segRowsPerInsert] {
			args = append(args, seg, r.k, r.v)
		}
		if _, err := many.ExecContext(ctx, args...); err != nil {
			return err
		}
		rows = rows[segRowsPerInsert:]
	}
	for _, r := range rows {
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+table+" (seg, k, v) VALUES (?,?,?)", seg, r.k, r.v); err != nil {
			return err
		}
	}
	return nil
}

// hixSegment is one segment of a partition's host index, as readers see it.
type hixSegment struct {
	seg         int64
	first, last int64
	buckets     int
	blockRows   int64
	spans       []tspan
}

// readSegments returns the segments of a format 2 partition, in id order.
func (s *FlowDB) readSegments(ctx context.Context, part string) ([]hixSegment, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT seg, first_id, last_id, buckets, block_rows, blocks FROM raw_segments WHERE part = ? ORDER BY seg", part)
	if err != nil {
		return nil, fmt.Errorf("cannot read host index of %s: %w", part, err)
	}
	defer rows.Close()
	var out []hixSegment
	for rows.Next() {
		var g hixSegment
		var blocks []byte
		if err := rows.Scan(&g.seg, &g.first, &g.last, &g.buckets, &g.blockRows, &blocks); err != nil {
			return nil, fmt.Errorf("cannot read host index of %s: %w", part, err)
		}
		g.spans, err = readSpans(blocks)
		if err != nil || g.buckets < 1 || g.buckets > maxBuckets || g.last < g.first || g.blockRows < 1 ||
			int64(len(g.spans)) != (g.last-g.first)/g.blockRows+1 {
			return nil, fmt.Errorf("cannot read host index of %s: damaged segment %d", part, g.seg)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read host index of %s: %w", part, err)
	}
	return out, nil
}

// segmentCandidates returns the ascending ids of the rows of segment g that
// may involve one of hosts: the rows of each address's own entry, else of
// its bucket.
func (s *FlowDB) segmentCandidates(ctx context.Context, part string, g *hixSegment, hosts [][16]byte) ([]int64, error) {
	keys := make([]any, 0, 2*len(hosts))
	seen := map[string]bool{}
	for _, h := range hosts {
		for _, k := range [][]byte{exactKey(h), bucketKey(h, g.buckets)} {
			if !seen[string(k)] {
				seen[string(k)] = true
				keys = append(keys, k)
			}
		}
	}
	found := map[string][]byte{}
	const chunk = 500
	for i := 0; i < len(keys); i += chunk {
		ks := keys[i:min(i+chunk, len(keys))]
		rows, err := s.r.QueryContext(ctx, "SELECT k, v FROM "+indexTable(part)+" WHERE seg = ? AND k IN ("+
			strings.TrimSuffix(strings.Repeat("?,", len(ks)), ",")+")", append([]any{g.seg}, ks...)...)
		if isNoTable(err) {
			return nil, nil // dropped by retention meanwhile
		}
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var k, v []byte
			if err := rows.Scan(&k, &v); err != nil {
				rows.Close()
				return nil, err
			}
			found[string(k)] = v
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	var ids []int64
	used := map[string]bool{}
	for _, h := range hosts {
		k := exactKey(h)
		if _, ok := found[string(k)]; !ok {
			k = bucketKey(h, g.buckets)
		}
		if used[string(k)] {
			continue
		}
		used[string(k)] = true
		var err error
		if ids, err = readPostings(ids, found[string(k)], g.first); err != nil {
			return nil, fmt.Errorf("damaged host index segment %d", g.seg)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if n := len(ids); n > 0 && (ids[0] < g.first || ids[n-1] > g.last) {
		return nil, fmt.Errorf("damaged host index segment %d", g.seg)
	}
	return ids, nil
}
