package flowdb

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/flowbox/flowbox/store"
)

// Packed raw blocks. The writer stores every flow as one row of its
// partition (codec.go): cheap to append and at once visible, but SQLite
// pays its row and B-tree costs per flow, on disk and again at every scan
// (about 0.5 µs a row, which caps a scan near 1-2 M flows/s). Once rows
// are counted into the rollups (raw_partitions.rolled, at most a minute
// after they are written; a crash replays the rows after it, which stay
// rows), the packer (a goroutine of Run) moves them, 4,096 at a time, into
// blocks of table rawk_NAME; a partition's last rows, fewer than a block,
// follow packSettle after it ends:
//
//	rawk_NAME (lo INTEGER PRIMARY KEY, hi, tlo, thi, n, s, h, k, a, x)
//
// A block holds the rows with ids lo..hi (the ranges of a partition's
// blocks follow each other from id 1: every row at or below the last hi is
// packed, every row above it is a row). tlo and thi are the range of the
// rows' t, s their summary (the protocols and directions present), and
// the rows are stored by column in blobs, the columns compressed with
// zstd:
//
//	k: version byte (2), uvarint n, then eleven sections, each a uvarint
//	   length and a zstd frame:
//	   ids: uvarint id - previous id (the first from lo - 1)
//	   t:   the column of t as cnt's columns below (version 1: uvarint
//	        zigzag(t - previous t), the first from 0)
//	   key: 8 bytes a row: protocol, x[3] (address kinds, direction),
//	        source and destination ports (big endian), router id
//	        (little endian, 0xffff for 65535 and above), stored by byte
//	        plane: the first byte of every row, then the second...
//	   cnt: the counters by column (bytes, packets, sampling rate, 0 for
//	        none), each a uvarint base (the column's least value), a
//	        width byte (0, 1, 2, 4 or 8) and each row's value less the
//	        base in that many bytes, little endian, by byte plane (the
//	        low bytes of every row, then the next...): a row's value is
//	        read in place, without decoding the column, and zstd finds
//	        the runs of zero high bytes, which it both packs and decodes
//	        faster than interleaved bytes; this section's zstd frame has
//	        no entropy coding (its literals are stored as they are), which
//	        costs 0.9 byte a flow and halves its decoding, the one every
//	        series and top-N list does
//	   dim: seven sections, of the dimensions by column the same way:
//	        the exporter and router ids; the in and out interfaces; the
//	        source and destination AS; the name ids of the subscriber; of
//	        the application; of the source and destination countries; of
//	        the remote domain (a query decompresses the groups it reads
//	        only)
//	h: a Bloom filter of the rows' local and remote addresses (8 bits an
//	   address, 3 hashes, a power of two of 512 bits or more)
//	a: x[3:6] and the a and b addresses of each row (their kinds in x[3]
//	   give their lengths)
//	x: a uvarint length and the rest of each row: the address fields
//	   x[4:6]'s modes do not give (name ids or literal addresses), the
//	   duration (uvarint zigzag), TCP flags, explicit post-NAT ports
//	   (a and x in frames of 256 rows, a uvarint count, then each frame's
//	   uvarint length and zstd frame: a search decompresses the frames of
//	   its rows only)
//
// Version 1 blocks (flowbox 0.7) have no cnt and dim sections: their x
// holds the whole rest of x. They are read as they are.
//
// A scan skips a block by its t range and summary without reading it. Of
// a block it reads, it decompresses k's sections as the query needs them
// (ids and t always, the keys for a filter that tests them, the counters
// and dimensions for the aggregations that read them) and tests the
// filter's time range, protocols, ports, directions and routers on the
// keys; with a host filter it first tests the Bloom filter (the host
// index's candidates are many: it keys buckets, not addresses), then reads
// a and tests the addresses. A series or top-N list reads its columns
// without building rows whole (columnar reads, rowNeed); x is read and
// decompressed only for the rows that pass a query that wants them whole
// (a search, the export). SQLite reads a row's blobs in order, so a block
// read for k only does not read x's pages. The host index still finds rows
// by id, in blocks as in rows.
//
// A move is one transaction (insert the block, delete its rows), and a
// reader reads a partition's blocks and rows in one read transaction, so
// it sees every row once, before or after a move. The last row of the
// newest block stays in the table as well (readers read only the rows
// above the blocks): SQLite numbers new rows after the largest id, and the
// writer's late flows must continue the partition's ids. A restart
// rebuilds the host index tail of the rows no segment covers from the
// blocks and rows alike (tailFromBlocks).

const (
	// packRowsDefault is the number of rows of a packed block.
	packRowsDefault = 4096
	// packSettle is how long after its end a partition's last rows, fewer
	// than a block, are packed too.
	packSettle = 30 * time.Minute
	// packRetry is how long the packer leaves a partition it failed to
	// pack.
	packRetry = 10 * time.Minute
	// packVersion is the version byte of k of the blocks written.
	packVersion = 2
	// packKeyLen is the size of a row of the key column.
	packKeyLen = 8
	// packMaxRows bounds the rows of a block a reader accepts.
	packMaxRows = 1 << 16
	// packSumLen is the size of s: 32 bytes of protocol bitmap, one of
	// directions.
	packSumLen = 33
	// packFrameRows is the number of rows of a frame of the a and x
	// columns (a host index block's): a search reads a few rows of a block,
	// and decompresses only their frames.
	packFrameRows = blockRows
)

// packTable returns the name of the packed-block table of a partition.
func packTable(part string) string { return "rawk_" + strings.TrimPrefix(part, "raw_") }

// blockSummary is what a packed block holds, for skipping it whole.
type blockSummary struct {
	protos [4]uint64
	dirs   uint8
}

func (b *blockSummary) add(proto byte, dir store.Direction) {
	b.protos[proto>>6] |= 1 << (proto & 63)
	b.dirs |= 1 << (dir & 7)
}

func (b *blockSummary) encode() []byte {
	out := make([]byte, 0, packSumLen)
	for _, w := range b.protos {
		out = binary.LittleEndian.AppendUint64(out, w)
	}
	return append(out, b.dirs)
}

func decodeSummary(s []byte) (blockSummary, bool) {
	var b blockSummary
	if len(s) != packSumLen {
		return b, false
	}
	for i := range b.protos {
		b.protos[i] = binary.LittleEndian.Uint64(s[8*i:])
	}
	b.dirs = s[32]
	return b, true
}

// Columns of the cnt and dim sections of a version 2 block.
const (
	cntBytes = iota
	cntPackets
	cntSampling
	numCntCols
)

const (
	dimExp = iota
	dimRouter
	dimInIf
	dimOutIf
	dimSrcAS
	dimDstAS
	dimSub
	dimApp
	dimSrcCC
	dimDstCC
	dimDom
	numDimCols
)

// packEncoder builds the columns of one block.
type packEncoder struct {
	// version is the block version written (packVersion; tests write 1,
	// as flowbox 0.7 did).
	version               byte
	ids, ts, keys, as, xs []byte
	tcol                  []uint64
	cnt                   [numCntCols][]uint64
	dim                   [numDimCols][]uint64
	rest                  []byte
	aEnd, xEnd            []int    // end of each row in as and xs
	hosts                 []uint64 // hashes of the rows' addresses
	sum                   blockSummary
	n                     int
	prevID, prevT         int64
	tlo, thi              int64
	row                   decodedRow
}

func (e *packEncoder) reset(lo int64) {
	if e.version == 0 {
		e.version = packVersion
	}
	e.ids, e.ts, e.keys, e.as, e.xs = e.ids[:0], e.ts[:0], e.keys[:0], e.as[:0], e.xs[:0]
	e.tcol = e.tcol[:0]
	for i := range e.cnt {
		e.cnt[i] = e.cnt[i][:0]
	}
	for i := range e.dim {
		e.dim[i] = e.dim[i][:0]
	}
	e.hosts = e.hosts[:0]
	e.aEnd, e.xEnd = e.aEnd[:0], e.xEnd[:0]
	e.sum = blockSummary{}
	e.n, e.prevID, e.prevT = 0, lo-1, 0
	e.tlo, e.thi = maxRowT, 0
}

// add appends a format 2 row; ids must ascend.
func (e *packEncoder) add(id int64, x []byte) error {
	if id <= e.prevID {
		return fmt.Errorf("raw flow %d out of order", id)
	}
	r := &e.row
	if err := decodeRaw(r, id, 0, x); err != nil {
		return fmt.Errorf("cannot pack raw flow %d: %w", id, err)
	}
	f := &r.Flow
	e.ids = binary.AppendUvarint(e.ids, uint64(id-e.prevID))
	d := r.t - e.prevT
	e.ts = binary.AppendUvarint(e.ts, uint64(d<<1)^uint64(d>>63))
	e.tcol = append(e.tcol, uint64(r.t))
	router := uint16(0xffff)
	if f.RouterID >= 0 && f.RouterID < 0xffff {
		router = uint16(f.RouterID)
	}
	e.keys = append(e.keys, f.Proto, x[3], byte(f.SrcPort>>8), byte(f.SrcPort), byte(f.DstPort>>8), byte(f.DstPort), byte(router), byte(router>>8))
	head := rawHeadLen + kindLen(x[3]&3) + kindLen(x[3]>>2&3) // checked by decodeRaw
	e.as = append(e.as, x[3:head]...)
	rest := x[head:]
	if e.version >= 2 {
		for i, v := range [numCntCols]uint64{f.Bytes, f.Packets, uint64(f.SamplingRate)} {
			e.cnt[i] = append(e.cnt[i], v)
		}
		for i, v := range [numDimCols]uint64{uint64(r.expID), uint64(f.RouterID), uint64(f.InIf), uint64(f.OutIf),
			uint64(f.SrcAS), uint64(f.DstAS), r.names.sub, r.names.app, r.names.scc, r.names.dcc, r.names.dom} {
			e.dim[i] = append(e.dim[i], v)
		}
		e.rest = appendRest(e.rest[:0], r)
		rest = e.rest
	}
	e.xs = binary.AppendUvarint(e.xs, uint64(len(rest)))
	e.xs = append(e.xs, rest...)
	e.aEnd, e.xEnd = append(e.aEnd, len(e.as)), append(e.xEnd, len(e.xs))
	for _, a := range [2]netip.Addr{r.local, r.remote} {
		if a.IsValid() {
			e.hosts = append(e.hosts, bloomHash(hostKey(a.Unmap())))
		}
	}
	e.sum.add(f.Proto, f.Direction)
	e.tlo, e.thi = min(e.tlo, r.t), max(e.thi, r.t)
	e.prevID, e.prevT = id, r.t
	e.n++
	return nil
}

// appendRest appends the x column's part of decoded row r (version 2):
// the address fields in modes addrDict, addrV4 and addrV6, the duration,
// the TCP flags and the explicit post-NAT ports.
func appendRest(dst []byte, r *decodedRow) []byte {
	for i := range r.lits {
		switch (r.modes >> (3 * i)) & 7 {
		case addrDict:
			dst = binary.AppendUvarint(dst, r.dictIDs[i])
		case addrV4, addrV6:
			dst = append(dst, r.lits[i].AsSlice()...)
		}
	}
	d := r.End - r.Start
	dst = binary.AppendUvarint(dst, uint64(d<<1)^uint64(d>>63))
	dst = append(dst, r.TCPFlags)
	if r.modes>>12&3 == portExplicit {
		dst = append(dst, byte(r.PostNATSrcPort>>8), byte(r.PostNATSrcPort))
	}
	if r.modes>>14&3 == portExplicit {
		dst = append(dst, byte(r.PostNATDstPort>>8), byte(r.PostNATDstPort))
	}
	return dst
}

// finish returns the k, a and x blobs of the block. raw compresses the
// sections whose reads must be fastest (the counters), without entropy
// coding.
func (e *packEncoder) finish(enc, raw *zstd.Encoder) (k, a, x []byte) {
	k = []byte{e.version}
	k = binary.AppendUvarint(k, uint64(e.n))
	secs := [][]byte{e.ids, e.ts, e.keys}
	if e.version >= 2 {
		secs = [][]byte{e.ids, joinCols([][]uint64{e.tcol}), toPlanes(nil, e.keys, packKeyLen), joinCols(e.cnt[:])}
		for _, g := range needCols {
			cols := make([][]uint64, len(g.cols))
			for i, c := range g.cols {
				cols[i] = e.dim[c]
			}
			secs = append(secs, joinCols(cols))
		}
	}
	var z []byte
	for i, sec := range secs {
		if i == 3 {
			z = raw.EncodeAll(sec, z[:0])
		} else {
			z = enc.EncodeAll(sec, z[:0])
		}
		k = binary.AppendUvarint(k, uint64(len(z)))
		k = append(k, z...)
	}
	return k, e.frames(enc, e.as, e.aEnd), e.frames(enc, e.xs, e.xEnd)
}

// joinCols returns columns of numbers as one section: each a uvarint
// base, a width byte and the values less the base in that width.
func joinCols(cols [][]uint64) []byte {
	var out []byte
	for _, c := range cols {
		lo, hi := uint64(0), uint64(0)
		if len(c) > 0 {
			lo, hi = slices.Min(c), slices.Max(c)
		}
		w := 0
		switch d := hi - lo; {
		case d == 0:
		case d <= 0xff:
			w = 1
		case d <= 0xffff:
			w = 2
		case d <= 0xffffffff:
			w = 4
		default:
			w = 8
		}
		out = binary.AppendUvarint(out, lo)
		out = append(out, byte(w))
		for j := range w {
			for _, v := range c {
				out = append(out, byte((v-lo)>>(8*j)))
			}
		}
	}
	return out
}

// toPlanes returns rows of w bytes each by byte plane (byte 0 of every
// row, then byte 1...), in dst's storage.
func toPlanes(dst, rows []byte, w int) []byte {
	n := len(rows) / w
	dst = slices.Grow(dst[:0], len(rows))[:len(rows)]
	for i := range n {
		for j := range w {
			dst[j*n+i] = rows[i*w+j]
		}
	}
	return dst
}

// frames returns column col (rows ending at ends) as frames of
// packFrameRows rows, each compressed on its own: a uvarint count, then
// each frame's uvarint length and zstd frame.
func (e *packEncoder) frames(enc *zstd.Encoder, col []byte, ends []int) []byte {
	nf := (e.n + packFrameRows - 1) / packFrameRows
	out := binary.AppendUvarint(nil, uint64(nf))
	var z []byte
	start := 0
	for f := range nf {
		end := ends[min(e.n, (f+1)*packFrameRows)-1]
		z = enc.EncodeAll(col[start:end], z[:0])
		out = binary.AppendUvarint(out, uint64(len(z)))
		out = append(out, z...)
		start = end
	}
	return out
}

// bloom returns the Bloom filter of the rows' addresses.
func (e *packEncoder) bloom() []byte {
	slices.Sort(e.hosts)
	keys := slices.Compact(e.hosts)
	m := 512
	for m < 8*len(keys) {
		m *= 2
	}
	h := make([]byte, m/8)
	for _, k := range keys {
		for _, b := range bloomBits(k, m) {
			h[b>>3] |= 1 << (b & 7)
		}
	}
	return h
}

// bloomHash hashes an address (hostKey) for the blocks' Bloom filters; it
// is stored, so it never changes.
func bloomHash(k [16]byte) uint64 {
	mix := func(z uint64) uint64 { // splitmix64's finalizer
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		return z ^ z>>31
	}
	return mix(binary.LittleEndian.Uint64(k[:8]) ^ mix(binary.LittleEndian.Uint64(k[8:])+0x9e3779b97f4a7c15))
}

// bloomBits returns the 3 bits of hash k in a filter of m bits (a power
// of two), by double hashing.
func bloomBits(k uint64, m int) [3]uint {
	h1, h2 := uint(k), uint(k>>32)|1
	mask := uint(m - 1)
	return [3]uint{h1 & mask, (h1 + h2) & mask, (h1 + 2*h2) & mask}
}

// bloomHas reports whether filter h may hold hash k; a damaged filter
// (not a power of two of 512 bits or more) may hold anything.
func bloomHas(h []byte, k uint64) bool {
	m := 8 * len(h)
	if m < 512 || m&(m-1) != 0 {
		return true
	}
	for _, b := range bloomBits(k, m) {
		if h[b>>3]&(1<<(b&7)) == 0 {
			return false
		}
	}
	return true
}

// kindLen is the length of an address of kind k (kindNone...).
func kindLen(k byte) int {
	switch k {
	case kindV4:
		return 4
	case kindV6:
		return 16
	}
	return 0
}

var errBadBlock = errors.New("damaged packed block")

// packedRows is a decoded block: its k columns, and its a and x columns
// once read (blockCols), each frame decompressed when a row of it is
// needed (rowReady).
type packedRows struct {
	lo, hi int64
	n      int
	ids    []int64
	ts     []int64
	keys   []byte // when keysOK (keysReady)
	keysZ  []byte
	planes []byte // scratch of a version 1 block's keys
	keysOK bool
	seq    bool // ids are lo, lo+1, ...: row i has id lo+i
	a, x   frameCol
	buf    []byte
	// version is the block's version (packVersion); cnt and dim are its
	// counters and dimensions (version 2), decompressed when read.
	version byte
	cnt     valSection
	dim     [len(needCols)]valSection
	tcol    []uint64 // scratch of t
}

// valSection is the cnt or the dim section of a version 2 block,
// decompressed when a query first reads one of its columns.
type valSection struct {
	z    []byte // compressed
	buf  []byte // decompressed
	cols []valCol
	ok   bool // buf is split into cols
}

// valCol is a column of a valSection: row i's value is base plus its w
// bytes, byte j at b[j*n+i].
type valCol struct {
	base uint64
	w, n int
	b    []byte
}

// at returns the value of row i (which the section's checks bound).
func (c *valCol) at(i int) uint64 {
	b, n := c.b, c.n
	switch c.w {
	case 0:
		return c.base
	case 1:
		return c.base + uint64(b[i])
	case 2:
		return c.base + (uint64(b[i]) | uint64(b[n+i])<<8)
	case 4:
		return c.base + (uint64(b[i]) | uint64(b[n+i])<<8 | uint64(b[2*n+i])<<16 | uint64(b[3*n+i])<<24)
	}
	v := uint64(0)
	for j := range 8 {
		v |= uint64(b[j*n+i]) << (8 * j)
	}
	return c.base + v
}

// decode returns the column's values in dst's storage.
func (c *valCol) decode(dst []uint64) []uint64 {
	dst = slices.Grow(dst[:0], c.n)[:c.n]
	b, n, base := c.b, c.n, c.base
	switch c.w {
	case 0:
		for i := range dst {
			dst[i] = base
		}
	case 1:
		for i, x := range b[:n] {
			dst[i] = base + uint64(x)
		}
	case 2:
		lo, hi := b[:n], b[n:2*n]
		for i := range dst {
			dst[i] = base + (uint64(lo[i]) | uint64(hi[i])<<8)
		}
	case 4:
		p0, p1, p2, p3 := b[:n], b[n:2*n], b[2*n:3*n], b[3*n:4*n]
		for i := range dst {
			dst[i] = base + (uint64(p0[i]) | uint64(p1[i])<<8 | uint64(p2[i])<<16 | uint64(p3[i])<<24)
		}
	default:
		for i := range dst {
			dst[i] = c.at(i)
		}
	}
	return dst
}

func (v *valSection) reset(z []byte) {
	v.z, v.ok = append(v.z[:0], z...), false
}

// ready decompresses the section (ncols columns of n rows) if not done
// yet.
func (v *valSection) ready(s *FlowDB, ncols, n int) error {
	if v.ok {
		return nil
	}
	var err error
	if v.buf, err = s.zdec.DecodeAll(v.z, v.buf[:0]); err != nil {
		return fmt.Errorf("%w: %w", errBadBlock, err)
	}
	return v.split(ncols, n)
}

// split splits the decompressed section into its ncols columns of n
// rows.
func (v *valSection) split(ncols, n int) error {
	d := rawDecoder{b: v.buf}
	v.cols = v.cols[:0]
	for range ncols {
		c := valCol{base: d.uvarint(), w: int(d.byte()), n: n}
		switch c.w {
		case 0, 1, 2, 4, 8:
		default:
			return errBadBlock
		}
		if d.err != nil || c.w*n > len(d.b) {
			return errBadBlock
		}
		c.b, d.b = d.b[:c.w*n], d.b[c.w*n:]
		v.cols = append(v.cols, c)
	}
	if len(d.b) != 0 {
		return errBadBlock
	}
	v.ok = true
	return nil
}

// frameCol is the a or the x column of a block, in frames.
type frameCol struct {
	z    []byte   // the blob, once read
	fr   [][]byte // its compressed frames, when ok
	dec  [][]byte // decompressed frames
	offs [][]int32
	done []bool // dec and offs hold frame f
	ok   bool   // z is read and split into frames
}

func (c *frameCol) reset() {
	c.z, c.fr, c.ok = c.z[:0], c.fr[:0], false
	clear(c.done)
}

// split splits the blob into the n rows' frames.
func (c *frameCol) split(n int) error {
	d := rawDecoder{b: c.z}
	nf := d.uvarint()
	if d.err != nil || nf != uint64((n+packFrameRows-1)/packFrameRows) {
		return errBadBlock
	}
	c.fr = c.fr[:0]
	for range nf {
		l := d.uvarint()
		if d.err != nil || l > uint64(len(d.b)) {
			return errBadBlock
		}
		c.fr, d.b = append(c.fr, d.b[:l]), d.b[l:]
	}
	if len(d.b) != 0 {
		return errBadBlock
	}
	for len(c.dec) < int(nf) {
		c.dec, c.offs, c.done = append(c.dec, nil), append(c.offs, nil), append(c.done, false)
	}
	clear(c.done)
	c.ok = true
	return nil
}

// decodeBlock decodes k (of the block lo..hi) into pr; its a and x
// columns are left to read.
func (s *FlowDB) decodeBlock(k []byte, lo, hi int64, pr *packedRows) error {
	pr.lo, pr.hi = lo, hi
	pr.a.reset()
	pr.x.reset()
	if len(k) < 2 || k[0] < 1 || k[0] > packVersion {
		return errBadBlock
	}
	pr.version = k[0]
	d := rawDecoder{b: k[1:]}
	n := d.uvarint()
	if d.err != nil || n > packMaxRows {
		return errBadBlock
	}
	pr.n = int(n)
	var secs [4 + len(needCols)][]byte
	nsec := 3
	if pr.version >= 2 {
		nsec = len(secs)
	}
	for i := range nsec {
		l := d.uvarint()
		if d.err != nil || l > uint64(len(d.b)) {
			return errBadBlock
		}
		secs[i], d.b = d.b[:l], d.b[l:]
	}
	if len(d.b) != 0 {
		return errBadBlock
	}
	var err error
	if pr.buf, err = s.zdec.DecodeAll(secs[0], pr.buf[:0]); err != nil {
		return fmt.Errorf("%w: %w", errBadBlock, err)
	}
	pr.ids = pr.ids[:0]
	id := lo - 1
	if len(pr.buf) == pr.n && bytes.Count(pr.buf, []byte{1}) == pr.n {
		// Ids in sequence (most blocks): every delta is 1.
		for range pr.n {
			id++
			pr.ids = append(pr.ids, id)
		}
	} else {
		b := pr.buf
		for range pr.n {
			d, ok := uvarintAt(&b)
			if !ok {
				return errBadBlock
			}
			id += int64(d)
			pr.ids = append(pr.ids, id)
		}
		if len(b) != 0 {
			return errBadBlock
		}
	}
	if pr.n > 0 && (pr.ids[0] < lo || id > hi || !slices.IsSorted(pr.ids)) {
		return errBadBlock
	}
	pr.seq = pr.n == 0 || (pr.ids[0] == lo && id == lo+int64(pr.n)-1)
	if pr.buf, err = s.zdec.DecodeAll(secs[1], pr.buf[:0]); err != nil {
		return fmt.Errorf("%w: %w", errBadBlock, err)
	}
	pr.ts = pr.ts[:0]
	if pr.version >= 2 {
		var tv valSection
		tv.buf = pr.buf
		if err := tv.split(1, pr.n); err != nil {
			return err
		}
		pr.tcol = tv.cols[0].decode(pr.tcol)
		for _, t := range pr.tcol {
			if t > maxRowT {
				return errBadBlock
			}
			pr.ts = append(pr.ts, int64(t))
		}
	} else {
		var t int64
		b := pr.buf
		for range pr.n {
			z, ok := uvarintAt(&b)
			if !ok {
				return errBadBlock
			}
			t += int64(z>>1) ^ -int64(z&1)
			if t < 0 || t > maxRowT {
				return errBadBlock
			}
			pr.ts = append(pr.ts, t)
		}
		if len(b) != 0 {
			return errBadBlock
		}
	}
	// The key column is decompressed when a filter tests it (keysReady),
	// the counters and dimensions when a query reads them.
	pr.keysZ, pr.keysOK = append(pr.keysZ[:0], secs[2]...), false
	pr.cnt.reset(secs[3])
	for g := range pr.dim {
		pr.dim[g].reset(secs[4+g])
	}
	return nil
}

// uvarintAt reads a uvarint at the start of *b and moves *b past it.
func uvarintAt(b *[]byte) (uint64, bool) {
	if c := *b; len(c) > 0 && c[0] < 0x80 {
		*b = c[1:]
		return uint64(c[0]), true
	}
	v, k := binary.Uvarint(*b)
	if k <= 0 {
		return 0, false
	}
	*b = (*b)[k:]
	return v, true
}

// cntCols returns the counter columns of a version 2 block.
func (s *FlowDB) cntCols(pr *packedRows) ([]valCol, error) {
	if err := pr.cnt.ready(s, numCntCols, pr.n); err != nil {
		return nil, err
	}
	return pr.cnt.cols, nil
}

// dimCols returns the dimension columns of a version 2 block, of the
// groups of need (needCols), the others zero.
func (s *FlowDB) dimCols(pr *packedRows, need rowNeed) ([numDimCols]valCol, error) {
	var out [numDimCols]valCol
	for g, nc := range needCols {
		if need&nc.need == 0 {
			continue
		}
		if err := pr.dim[g].ready(s, len(nc.cols), pr.n); err != nil {
			return out, err
		}
		for i, c := range nc.cols {
			out[c] = pr.dim[g].cols[i]
		}
	}
	return out, nil
}

// keysReady decompresses the key column of pr.
func (s *FlowDB) keysReady(pr *packedRows) error {
	if pr.keysOK {
		return nil
	}
	var err error
	if pr.keys, err = s.zdec.DecodeAll(pr.keysZ, pr.keys[:0]); err != nil {
		return fmt.Errorf("%w: %w", errBadBlock, err)
	}
	if len(pr.keys) != pr.n*packKeyLen {
		return errBadBlock
	}
	if pr.version < 2 {
		// Version 1 stores the keys row by row.
		pr.planes = toPlanes(pr.planes, pr.keys, packKeyLen)
		pr.keys, pr.planes = pr.planes, pr.keys
	}
	pr.keysOK = true
	return nil
}

// Fields of a row's key (keysReady first): the key column by byte plane.

func (pr *packedRows) proto(i int) uint8 { return pr.keys[i] }
func (pr *packedRows) kinds(i int) byte  { return pr.keys[pr.n+i] }
func (pr *packedRows) srcPort(i int) uint16 {
	return uint16(pr.keys[2*pr.n+i])<<8 | uint16(pr.keys[3*pr.n+i])
}
func (pr *packedRows) dstPort(i int) uint16 {
	return uint16(pr.keys[4*pr.n+i])<<8 | uint16(pr.keys[5*pr.n+i])
}
func (pr *packedRows) router(i int) int64 {
	return int64(pr.keys[6*pr.n+i]) | int64(pr.keys[7*pr.n+i])<<8
}

// rowReady decompresses the frames of row i: of the a column, and of the
// x column when x. The columns must have been read (blockCols).
func (s *FlowDB) rowReady(pr *packedRows, i int, x bool) error {
	f := i / packFrameRows
	if !pr.a.ok || (x && !pr.x.ok) {
		return errBadBlock
	}
	if !pr.a.done[f] {
		if err := s.frameA(pr, f); err != nil {
			return err
		}
	}
	if x && !pr.x.done[f] {
		return s.frameX(pr, f)
	}
	return nil
}

// frameRows returns the number of rows of frame f.
func (pr *packedRows) frameRows(f int) int {
	return min(pr.n-f*packFrameRows, packFrameRows)
}

// frameA decompresses frame f of the a column: x[3:6] and the addresses
// of each row, their kinds giving their lengths.
func (s *FlowDB) frameA(pr *packedRows, f int) error {
	c := &pr.a
	var err error
	if c.dec[f], err = s.zdec.DecodeAll(c.fr[f], c.dec[f][:0]); err != nil {
		return fmt.Errorf("%w: %w", errBadBlock, err)
	}
	b := c.dec[f]
	offs := c.offs[f][:0]
	at := 0
	rows := pr.frameRows(f)
	for range rows {
		if at+3 > len(b) {
			return errBadBlock
		}
		offs = append(offs, int32(at))
		kinds := b[at]
		if kinds&3 == 3 || kinds>>2&3 == 3 {
			return errBadBlock
		}
		at += 3 + kindLen(kinds&3) + kindLen(kinds>>2&3)
	}
	if at != len(b) {
		return errBadBlock
	}
	c.offs[f], c.done[f] = append(offs, int32(at)), true
	return nil
}

// frameX decompresses frame f of the x column: a uvarint length and the
// rest of x of each row.
func (s *FlowDB) frameX(pr *packedRows, f int) error {
	c := &pr.x
	var err error
	if c.dec[f], err = s.zdec.DecodeAll(c.fr[f], c.dec[f][:0]); err != nil {
		return fmt.Errorf("%w: %w", errBadBlock, err)
	}
	b := c.dec[f]
	offs := c.offs[f][:0]
	rd := rawDecoder{b: b}
	rows := pr.frameRows(f)
	for range rows {
		l := rd.uvarint()
		if rd.err != nil || l > uint64(len(rd.b)) {
			return errBadBlock
		}
		at := int32(len(b) - len(rd.b))
		offs = append(offs, at, at+int32(l))
		rd.b = rd.b[l:]
	}
	if len(rd.b) != 0 {
		return errBadBlock
	}
	c.offs[f], c.done[f] = offs, true
	return nil
}

// index returns the row of id in the block.
func (pr *packedRows) index(id int64) (int, bool) {
	if pr.seq {
		i := int(id - pr.lo)
		return i, i >= 0 && i < pr.n
	}
	return slices.BinarySearch(pr.ids, id)
}

// addrs returns the local and remote addresses of row i (rowReady
// first).
func (pr *packedRows) addrs(i int) (local, remote netip.Addr) {
	r := pr.aRow(i)
	d := rawDecoder{b: r[3:]}
	local = d.kindAddr(r[0] & 3)
	remote = d.kindAddr(r[0] >> 2 & 3)
	return local, remote
}

func (pr *packedRows) aRow(i int) []byte {
	f, j := i/packFrameRows, i%packFrameRows
	o := pr.a.offs[f]
	return pr.a.dec[f][o[j]:o[j+1]]
}

// rowX returns the format 2 x of row i (its t, its a column, the rest) in
// dst's storage (rowReady with x first). A version 2 block's row is
// rebuilt from its columns.
func (s *FlowDB) rowX(pr *packedRows, i int, dst []byte) ([]byte, error) {
	t := pr.ts[i]
	dst = append(dst[:0], byte(t>>16), byte(t>>8), byte(t))
	a := pr.aRow(i)
	dst = append(dst, a...)
	f, j := i/packFrameRows, i%packFrameRows
	o := pr.x.offs[f]
	rest := pr.x.dec[f][o[2*j]:o[2*j+1]]
	if pr.version < 2 {
		return append(dst, rest...), nil
	}
	if err := s.keysReady(pr); err != nil {
		return nil, err
	}
	cnt, err := s.cntCols(pr)
	if err != nil {
		return nil, err
	}
	dim, err := s.dimCols(pr, needDims)
	if err != nil {
		return nil, err
	}
	modes := uint16(a[1]) | uint16(a[2])<<8
	d := rawDecoder{b: rest}
	for fld := range 4 {
		switch modes >> (3 * fld) & 7 {
		case addrDict:
			d.uvarint()
		case addrV4:
			d.raw(4)
		case addrV6:
			d.raw(16)
		}
	}
	dst = append(dst, rest[:len(rest)-len(d.b)]...)
	dur := d.uvarint()
	flags := d.byte()
	nat := 0
	for _, m := range [2]uint16{modes >> 12 & 3, modes >> 14 & 3} {
		if m == portExplicit {
			nat += 2
		}
	}
	if d.err != nil || len(d.b) != nat {
		return nil, errBadBlock
	}
	dst = binary.AppendUvarint(dst, dur)
	dst = binary.AppendUvarint(dst, dim[dimExp].at(i))
	dst = binary.AppendUvarint(dst, dim[dimRouter].at(i))
	sp, dp := pr.srcPort(i), pr.dstPort(i)
	dst = append(dst, byte(sp>>8), byte(sp), byte(dp>>8), byte(dp), pr.proto(i), flags)
	for _, c := range []int{dimInIf, dimOutIf, dimSrcAS, dimDstAS} {
		dst = binary.AppendUvarint(dst, dim[c].at(i))
	}
	dst = binary.AppendUvarint(dst, cnt[cntBytes].at(i))
	dst = binary.AppendUvarint(dst, cnt[cntPackets].at(i))
	if a[0]&flagSampled != 0 {
		dst = binary.AppendUvarint(dst, cnt[cntSampling].at(i))
	}
	for _, c := range []int{dimSub, dimApp, dimSrcCC, dimDstCC} {
		dst = binary.AppendUvarint(dst, dim[c].at(i))
	}
	dst = append(dst, d.b...)
	if dom := dim[dimDom].at(i); dom != 0 {
		dst = append(dst, rawTagDomain)
		dst = binary.AppendUvarint(dst, dom)
	}
	return dst, nil
}

// blockReader reads the blocks of one partition in a read transaction,
// its statements prepared once.
type blockReader struct {
	s     *FlowDB
	tx    *sql.Tx
	part  string
	stmts [4]*sql.Stmt // by blob column: h, k, a, x
	k, h  []byte       // the last k and h read (decodeBlock copies what it keeps)
}

// Blob columns of a block.
const (
	colH = iota
	colK
	colA
	colX
)

var blobCols = [4]string{"h", "k", "a", "x"}

func newBlockReader(s *FlowDB, tx *sql.Tx, part string) *blockReader {
	return &blockReader{s: s, tx: tx, part: part}
}

// blob reads column col of block lo into *dst.
func (br *blockReader) blob(ctx context.Context, col int, lo int64, dst *[]byte) error {
	if br.stmts[col] == nil {
		st, err := br.tx.PrepareContext(ctx, "SELECT "+blobCols[col]+" FROM "+packTable(br.part)+" WHERE lo = ?")
		if err != nil {
			return fmt.Errorf("cannot read packed raw flows of %s: %w", br.part, err)
		}
		br.stmts[col] = st
	}
	// Scanned as RawBytes into *dst's storage: database/sql would copy
	// the blob (after the driver's copy) into a new slice each time.
	rows, err := br.stmts[col].QueryContext(ctx, lo)
	if err != nil {
		return fmt.Errorf("cannot read packed raw flows of %s: block %d: %w", br.part, lo, err)
	}
	defer rows.Close()
	if !rows.Next() {
		err := rows.Err()
		if err == nil {
			err = sql.ErrNoRows
		}
		return fmt.Errorf("cannot read packed raw flows of %s: block %d: %w", br.part, lo, err)
	}
	var raw sql.RawBytes
	if err := rows.Scan(&raw); err != nil {
		return fmt.Errorf("cannot read packed raw flows of %s: block %d: %w", br.part, lo, err)
	}
	*dst = append((*dst)[:0], raw...)
	return rows.Close()
}

func (br *blockReader) close() {
	for _, st := range br.stmts {
		if st != nil {
			st.Close()
		}
	}
}

// blockCols reads the a column, and the x column when x, of block pr if
// not read yet (rowReady decompresses a row's frames).
func (br *blockReader) blockCols(ctx context.Context, pr *packedRows, x bool) error {
	for _, c := range []struct {
		col  *frameCol
		id   int
		want bool
	}{{&pr.a, colA, true}, {&pr.x, colX, x}} {
		if !c.want || c.col.ok {
			continue
		}
		if err := br.blob(ctx, c.id, pr.lo, &c.col.z); err != nil {
			return err
		}
		if err := c.col.split(pr.n); err != nil {
			return fmt.Errorf("cannot read packed raw flows of %s: block %d: %w", br.part, pr.lo, err)
		}
	}
	return nil
}

// skipsHosts reports whether block b has none of the filter's hosts, by
// its Bloom filter.
func (br *blockReader) skipsHosts(ctx context.Context, b *packedBlock, pre *rowPre) (bool, error) {
	if len(pre.hostSets) == 0 {
		return false, nil
	}
	if err := br.blob(ctx, colH, b.lo, &br.h); err != nil {
		return false, err
	}
	return pre.skipHosts(br.h), nil
}

// bloomSkips reads in one query the Bloom filters of the packed blocks
// (of the list packed, in id order) that hold rows of blocks and that the
// filter's time range and summary do not skip, and returns those that
// have none of the filter's hosts, by lo (a block not in the map is read).
func (br *blockReader) bloomSkips(ctx context.Context, packed []packedBlock, blocks []rawBlock, pre *rowPre) (map[int64]bool, error) {
	var los []int64
	seen := make(map[int64]bool)
	add := func(i int) {
		b := &packed[i]
		if !seen[b.lo] && !pre.skipBlock(b.tlo, b.thi, &b.sum) {
			los = append(los, b.lo)
		}
		seen[b.lo] = true
	}
	// find returns the first packed block whose hi is at or after id.
	find := func(id int64) int {
		i, _ := slices.BinarySearchFunc(packed, id, func(b packedBlock, id int64) int { return cmp.Compare(b.hi, id) })
		return i
	}
	for bi := range blocks {
		b := &blocks[bi]
		if b.all {
			for i := find(b.lo); i < len(packed) && packed[i].lo <= b.hi; i++ {
				add(i)
			}
			continue
		}
		for _, id := range b.ids {
			if i := find(id); i < len(packed) && packed[i].lo <= id {
				add(i)
			}
		}
	}
	skip := make(map[int64]bool, len(seen))
	for lo := range seen {
		skip[lo] = true // skipped by time or summary, or read below
	}
	if len(los) == 0 {
		return skip, nil
	}
	rows, err := br.tx.QueryContext(ctx, "SELECT lo, h FROM "+packTable(br.part)+" WHERE lo IN (SELECT value FROM json_each(?))", jsonIDs(los))
	if err != nil {
		return nil, fmt.Errorf("cannot read packed raw flows of %s: %w", br.part, err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var lo int64
		var h sql.RawBytes
		if err := rows.Scan(&lo, &h); err != nil {
			return nil, fmt.Errorf("cannot read packed raw flows of %s: %w", br.part, err)
		}
		skip[lo] = pre.skipHosts(h)
		n++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read packed raw flows of %s: %w", br.part, err)
	}
	if n != len(los) {
		return nil, fmt.Errorf("cannot read packed raw flows of %s: %d of %d blocks listed: %w", br.part, n, len(los), errBadBlock)
	}
	return skip, nil
}

// read reads and decodes the k column of block b into pr (blockCols
// reads the others when needed).
func (br *blockReader) read(ctx context.Context, b *packedBlock, pr *packedRows) error {
	if err := br.blob(ctx, colK, b.lo, &br.k); err != nil {
		return err
	}
	if err := br.s.decodeBlock(br.k, b.lo, b.hi, pr); err != nil {
		return fmt.Errorf("cannot read packed raw flows of %s: block %d: %w", br.part, b.lo, err)
	}
	return nil
}

// rowPre is the part of a filter that the key column of packed blocks
// answers: a necessary condition, every row passing it is checked whole.
type rowPre struct {
	tfrom, tto int64 // t range, ms from the partition start
	protos     *blockSummary
	dirs       uint8
	ports      []uint16
	routers    []int64 // nil: any; the ids of Sources (negatives: unknown exporters)
	anyRouter0 bool    // Sources has an unknown exporter: router 0 passes
	// hosts is the filter's host part (nil: none), tested on the a column.
	hosts *store.Filter
	// hostSets are the hashes of the addresses of each host set of the
	// filter the host index answers (hostQuery): a block whose Bloom
	// filter has none of a set's is skipped.
	hostSets [][]uint64
	// keyed: pass tests the key column (protocols, directions, ports or
	// routers).
	keyed bool
	// exact: a row that passes (test) passes the whole filter: it has no
	// field but the time range, protocols, directions, ports and hosts.
	exact bool
}

func newRowPre(flt *store.Filter, from, to, partStart int64) *rowPre {
	p := &rowPre{tfrom: from - partStart, tto: to - partStart}
	if len(flt.Protocols) > 0 {
		p.protos = &blockSummary{}
		for _, pr := range flt.Protocols {
			p.protos.add(pr, 0)
		}
	}
	for _, d := range flt.Directions {
		p.dirs |= 1 << (d & 7)
	}
	p.ports = flt.Ports
	if len(flt.Hosts)+len(flt.LocalHosts)+len(flt.RemoteHosts) > 0 {
		p.hosts = &store.Filter{Hosts: flt.Hosts, LocalHosts: flt.LocalHosts, RemoteHosts: flt.RemoteHosts}
	}
	if hq := newHostQuery(flt); hq != nil {
		for _, set := range hq.sets {
			hs := make([]uint64, len(set))
			for i, k := range set {
				hs[i] = bloomHash(k)
			}
			p.hostSets = append(p.hostSets, hs)
		}
	}
	if len(flt.Sources) > 0 {
		p.routers = flt.Sources
		for _, s := range flt.Sources {
			if s < 0 {
				p.anyRouter0 = true
			}
		}
	}
	p.keyed = p.protos != nil || p.dirs != 0 || len(p.ports) > 0 || p.routers != nil
	// TestRowPreExact sets each field of Filter in turn.
	p.exact = len(flt.Sources)+len(flt.Interfaces)+len(flt.AS)+len(flt.Applications)+
		len(flt.Countries)+len(flt.Subscribers)+len(flt.Domains) == 0
	return p
}

// skipBlock reports whether no row of a block with this t range and
// summary can pass.
func (p *rowPre) skipBlock(tlo, thi int64, sum *blockSummary) bool {
	if thi < p.tfrom || tlo >= p.tto {
		return true
	}
	if p.protos != nil {
		hit := false
		for i := range sum.protos {
			hit = hit || sum.protos[i]&p.protos.protos[i] != 0
		}
		if !hit {
			return true
		}
	}
	return p.dirs != 0 && sum.dirs&p.dirs == 0
}

// skipHosts reports whether a block whose Bloom filter is h has no row
// of the filter's hosts.
func (p *rowPre) skipHosts(h []byte) bool {
	for _, set := range p.hostSets {
		hit := false
		for _, k := range set {
			if bloomHas(h, k) {
				hit = true
				break
			}
		}
		if !hit {
			return true
		}
	}
	return false
}

// needsKeys reports whether pass tests the key column.
func (p *rowPre) needsKeys() bool { return p.keyed }

// pass tests row i of a block (keysReady first when needsKeys).
func (p *rowPre) pass(pr *packedRows, i int) bool {
	if t := pr.ts[i]; t < p.tfrom || t >= p.tto {
		return false
	}
	if !p.needsKeys() {
		return true
	}
	if p.protos != nil {
		if pt := pr.proto(i); p.protos.protos[pt>>6]&(1<<(pt&63)) == 0 {
			return false
		}
	}
	if p.dirs != 0 && p.dirs&(1<<(pr.kinds(i)>>4&7)) == 0 {
		return false
	}
	if len(p.ports) > 0 {
		if sp, dp := pr.srcPort(i), pr.dstPort(i); !slices.Contains(p.ports, sp) && !slices.Contains(p.ports, dp) {
			return false
		}
	}
	if p.routers != nil {
		r := pr.router(i)
		switch {
		case r == 0xffff:
		case r == 0:
			if !p.anyRouter0 {
				return false
			}
		default:
			if !slices.Contains(p.routers, r) {
				return false
			}
		}
	}
	return true
}

// test reports whether row i of block pr may pass: the key column
// first, then with a host filter the addresses (reading the a column with
// br).
func (p *rowPre) test(ctx context.Context, br *blockReader, pr *packedRows, i int) (bool, error) {
	if p.needsKeys() {
		if err := br.s.keysReady(pr); err != nil {
			return false, fmt.Errorf("cannot read packed raw flows of %s: block %d: %w", br.part, pr.lo, err)
		}
	}
	if !p.pass(pr, i) {
		return false, nil
	}
	if p.hosts != nil {
		if err := br.rowCols(ctx, pr, i, false); err != nil {
			return false, err
		}
		local, remote := pr.addrs(i)
		if !p.hosts.Match(&store.Flow{}, 0, local.Unmap(), remote.Unmap()) {
			return false, nil
		}
	}
	return true, nil
}

// row is test, and when the row may pass, decodes its a and x columns.
func (p *rowPre) row(ctx context.Context, br *blockReader, pr *packedRows, i int) (bool, error) {
	if ok, err := p.test(ctx, br, pr, i); err != nil || !ok {
		return false, err
	}
	return true, br.rowCols(ctx, pr, i, true)
}

// rowNeed is what a query reads of the rows of version 2 blocks besides
// their id, time, protocol, direction and ports: their columns are read
// and decompressed only when needed, and the rows not built whole.
type rowNeed uint16

const (
	needCounters rowNeed = 1 << iota // bytes, packets, sampling rate
	needRouter                       // exporter and router ids
	needIfs                          // in and out interfaces
	needAS                           // source and destination AS
	needSubID                        // the subscriber's name id
	needAppID                        // the application's name id
	needCCIDs                        // the source and destination countries' name ids
	needDomID                        // the remote domain's name id
	needNames                        // the names of the name ids read
	needAddrs                        // the local and remote addresses
	// needWhole is every field: the row decoded whole (rowX).
	needWhole

	// needNameIDs is every name id.
	needNameIDs = needSubID | needAppID | needCCIDs | needDomID
	// needDims is every dimension column.
	needDims = needRouter | needIfs | needAS | needNameIDs
)

// filterNeed is what filter f tests of a row (its time, protocols,
// directions and ports are always read).
func filterNeed(f *store.Filter) rowNeed {
	var n rowNeed
	if len(f.Sources) > 0 {
		n |= needRouter
	}
	if len(f.Interfaces) > 0 {
		n |= needIfs
	}
	if len(f.AS) > 0 {
		n |= needAS
	}
	if len(f.Applications)+len(f.Countries)+len(f.Subscribers)+len(f.Domains) > 0 {
		n |= needNames
		for _, c := range []struct {
			n    int
			need rowNeed
		}{{len(f.Applications), needAppID}, {len(f.Countries), needCCIDs}, {len(f.Subscribers), needSubID}, {len(f.Domains), needDomID}} {
			if c.n > 0 {
				n |= c.need
			}
		}
	}
	if len(f.Hosts)+len(f.LocalHosts)+len(f.RemoteHosts) > 0 {
		n |= needAddrs
	}
	return n
}

// colView are the columns of a version 2 block a columnar read reads,
// each decoded once for the block.
type colView struct {
	cnt [numCntCols][]uint64
	dim [numDimCols][]uint64
}

// needCols are the dim columns of each need: the groups of columns of a
// version 2 block, each a section of k of its own, in this order.
var needCols = [...]struct {
	need rowNeed
	cols []int
}{
	{needRouter, []int{dimExp, dimRouter}},
	{needIfs, []int{dimInIf, dimOutIf}},
	{needAS, []int{dimSrcAS, dimDstAS}},
	{needSubID, []int{dimSub}},
	{needAppID, []int{dimApp}},
	{needCCIDs, []int{dimSrcCC, dimDstCC}},
	{needDomID, []int{dimDom}},
}

// load decodes the columns of need of block pr.
func (v *colView) load(s *FlowDB, pr *packedRows, need rowNeed) error {
	if err := s.keysReady(pr); err != nil {
		return err
	}
	if need&needCounters != 0 {
		cols, err := s.cntCols(pr)
		if err != nil {
			return err
		}
		for c := range v.cnt {
			v.cnt[c] = cols[c].decode(v.cnt[c])
		}
	}
	if need&needDims != 0 {
		cols, err := s.dimCols(pr, need)
		if err != nil {
			return err
		}
		for _, nc := range needCols {
			if need&nc.need != 0 {
				for _, c := range nc.cols {
					v.dim[c] = cols[c].decode(v.dim[c])
				}
			}
		}
	}
	return nil
}

// fill sets the fields of need of r (and its id, time, protocol,
// direction and ports) to those of row i of block pr (of the partition
// starting at partStart, unix ms; the columns loaded). It writes no other
// field: r starts zero, and a caller passing the same need each time has
// them stay zero. Name ids are not resolved.
func (v *colView) fill(pr *packedRows, i int, partStart int64, need rowNeed, r *decodedRow) {
	r.id, r.t = pr.ids[i], pr.ts[i]
	f := &r.Flow
	f.End = partStart + r.t
	f.Start = f.End
	f.Proto, f.Direction = pr.proto(i), store.Direction(pr.kinds(i)>>4&7)
	f.SrcPort, f.DstPort = pr.srcPort(i), pr.dstPort(i)
	if need&needCounters != 0 {
		f.Bytes, f.Packets, f.SamplingRate = v.cnt[cntBytes][i], v.cnt[cntPackets][i], uint32(v.cnt[cntSampling][i])
	}
	d := &v.dim
	if need&needRouter != 0 {
		r.expID, f.RouterID = int64(d[dimExp][i]), int64(d[dimRouter][i])
	}
	if need&needIfs != 0 {
		f.InIf, f.OutIf = uint32(d[dimInIf][i]), uint32(d[dimOutIf][i])
	}
	if need&needAS != 0 {
		f.SrcAS, f.DstAS = uint32(d[dimSrcAS][i]), uint32(d[dimDstAS][i])
	}
	if need&needSubID != 0 {
		r.names.sub = d[dimSub][i]
	}
	if need&needAppID != 0 {
		r.names.app = d[dimApp][i]
	}
	if need&needCCIDs != 0 {
		r.names.scc, r.names.dcc = d[dimSrcCC][i], d[dimDstCC][i]
	}
	if need&needDomID != 0 {
		r.names.dom = d[dimDom][i]
	}
	if need&needAddrs != 0 {
		r.local, r.remote = pr.addrs(i)
	}
}

// rowCols makes row i of block pr readable: its a frame, and its x frame
// when x (reading the columns first if needed).
func (br *blockReader) rowCols(ctx context.Context, pr *packedRows, i int, x bool) error {
	if err := br.blockCols(ctx, pr, x); err != nil {
		return err
	}
	if err := br.s.rowReady(pr, i, x); err != nil {
		return fmt.Errorf("cannot read packed raw flows of %s: block %d: %w", br.part, pr.lo, err)
	}
	return nil
}

// packedBlock is a block's row in rawk_NAME, without its columns.
type packedBlock struct {
	lo, hi, tlo, thi int64
	sum              blockSummary
}

// querier runs the read queries of a scan: a read transaction, so that a
// partition's blocks and rows are seen at one instant.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// maxRowID returns the last id of a partition, packed or not (0: none).
func maxRowID(ctx context.Context, q querier, part string) (int64, error) {
	var rowsMax int64
	if err := q.QueryRowContext(ctx, "SELECT coalesce(max(id), 0) FROM "+part).Scan(&rowsMax); err != nil {
		return 0, err
	}
	packMax, err := lastPacked(ctx, q, part)
	if err != nil {
		return 0, err
	}
	return max(rowsMax, packMax), nil
}

// lastPacked returns the last id packed of a partition (0: none): the hi
// of its last block, the blocks following each other.
func lastPacked(ctx context.Context, q querier, part string) (int64, error) {
	var hi int64
	err := q.QueryRowContext(ctx, "SELECT hi FROM "+packTable(part)+" ORDER BY lo DESC LIMIT 1").Scan(&hi)
	if errors.Is(err, sql.ErrNoRows) || isNoTable(err) {
		return 0, nil
	}
	return hi, err
}

// tailFromBlocks calls add with the id, t and addresses of the packed
// rows of partition part after id after (for the host index tail of a
// restart), in id order, and returns the last id packed (0: none).
func (s *FlowDB) tailFromBlocks(ctx context.Context, part string, after int64, add func(id, t int64, local, remote netip.Addr) error) (int64, error) {
	rows, err := s.w.QueryContext(ctx, "SELECT lo, hi, k, a FROM "+packTable(part)+" WHERE hi > ? ORDER BY lo", after)
	if err != nil {
		if isNoTable(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("cannot rebuild host index of %s: %w", part, err)
	}
	defer rows.Close()
	var pr packedRows
	var hi int64
	for rows.Next() {
		var lo int64
		var k, a []byte
		if err := rows.Scan(&lo, &hi, &k, &a); err != nil {
			return 0, fmt.Errorf("cannot rebuild host index of %s: %w", part, err)
		}
		if err := s.decodeBlock(k, lo, hi, &pr); err != nil {
			return 0, fmt.Errorf("cannot rebuild host index of %s: block %d: %w", part, lo, err)
		}
		pr.a.z = a
		if err := pr.a.split(pr.n); err != nil {
			return 0, fmt.Errorf("cannot rebuild host index of %s: block %d: %w", part, lo, err)
		}
		for i := range pr.n {
			if pr.ids[i] <= after {
				continue
			}
			if err := s.rowReady(&pr, i, false); err != nil {
				return 0, fmt.Errorf("cannot rebuild host index of %s: block %d: %w", part, lo, err)
			}
			local, remote := pr.addrs(i)
			if err := add(pr.ids[i], pr.ts[i], local, remote); err != nil {
				return 0, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("cannot rebuild host index of %s: %w", part, err)
	}
	return hi, nil
}

// The packer.

// packerState is what the packer goroutine keeps between its steps.
type packerState struct {
	enc packEncoder
	// packed is the last id packed of each partition, read from its table
	// once, then kept as the packer packs.
	packed map[string]int64
	// failed are the partitions the packer failed to pack, with when to
	// try again.
	failed map[string]time.Time
}

// packCandidate is a partition with rows to pack.
type packCandidate struct {
	name   string
	start  int64 // unix ms
	limit  int64 // the last id rolled up
	packed int64 // the last id packed
}

// packCandidates lists the format 2 partitions, the one being written
// too, with rows that the rollups count (raw_partitions.rolled: a crash
// replays the rows after it, which must still be rows) but no block
// holds, oldest first.
func (s *FlowDB) packCandidates(ctx context.Context) ([]packCandidate, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT p.name, p.start, coalesce(p.rolled, -1)
		FROM raw_partitions p WHERE p.format = ? ORDER BY p.start`, formatV2)
	if err != nil {
		return nil, fmt.Errorf("cannot list partitions to pack: %w", err)
	}
	var out []packCandidate
	for rows.Next() {
		var c packCandidate
		if err := rows.Scan(&c.name, &c.start, &c.limit); err != nil {
			rows.Close()
			return nil, fmt.Errorf("cannot list partitions to pack: %w", err)
		}
		c.start *= 1000
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot list partitions to pack: %w", err)
	}
	if s.pk.packed == nil {
		s.pk.packed = map[string]int64{}
	}
	listed := make(map[string]bool, len(out))
	for _, c := range out {
		listed[c.name] = true
	}
	for name := range s.pk.packed {
		if !listed[name] {
			delete(s.pk.packed, name) // dropped by retention
		}
	}
	k := 0
	for _, c := range out {
		hi, ok := s.pk.packed[c.name]
		if !ok {
			if hi, err = lastPacked(ctx, s.r, c.name); err != nil {
				return nil, fmt.Errorf("cannot list partitions to pack: %w", err)
			}
			s.pk.packed[c.name] = hi
		}
		if c.packed = hi; c.packed < c.limit {
			out[k] = c
			k++
		}
	}
	return out[:k], nil
}

// packStep packs up to maxBlocks blocks, oldest partitions first: full
// blocks, and the last rows of a partition that ended packSettle before
// now. It returns the number of blocks packed and the errors met: a
// partition that fails is left for packRetry (its rows stay rows,
// readable) and the others are packed.
func (s *FlowDB) packStep(ctx context.Context, now time.Time, maxBlocks int) (int, error) {
	cands, err := s.packCandidates(ctx)
	if err != nil {
		return 0, err
	}
	if s.pk.failed == nil {
		s.pk.failed = map[string]time.Time{}
	}
	live := make(map[string]bool, len(cands))
	var errs []error
	done := 0
	for i := range cands {
		c := &cands[i]
		live[c.name] = true
		if until, ok := s.pk.failed[c.name]; ok && now.Before(until) {
			continue
		}
		settled := c.start+partitionSpan.Milliseconds()+packSettle.Milliseconds() <= now.UnixMilli()
		// Ids follow each other: fewer ids than a block cannot fill one, and
		// are not read until the partition settles.
		for done < maxBlocks && c.packed < c.limit && (settled || c.limit-c.packed >= int64(s.packRows)) {
			if err := ctx.Err(); err != nil {
				return done, err
			}
			hi, err := s.packChunk(ctx, c, settled)
			if err != nil {
				errs = append(errs, err)
				s.pk.failed[c.name] = now.Add(packRetry)
				break
			}
			delete(s.pk.failed, c.name)
			if hi == 0 {
				break
			}
			c.packed, s.pk.packed[c.name] = hi, hi
			done++
		}
		if done >= maxBlocks {
			break
		}
	}
	for name := range s.pk.failed {
		if !live[name] {
			delete(s.pk.failed, name) // dropped, or packed meanwhile
		}
	}
	return done, errors.Join(errs...)
}

// notePack records the outcome of a packStep for Health: failures are
// counted, and the last one shown until no partition is left failed. It
// logs changes only. Only the packer calls it.
func (s *FlowDB) notePack(err error) {
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	if err == nil && len(s.pk.failed) > 0 {
		return // a failed partition waits for its retry: its error stays
	}
	if err == nil {
		if s.health.packError != "" {
			s.logger.Info("raw flows are packed into blocks again")
		}
		s.health.packError = ""
		return
	}
	s.health.packErrors++
	s.metrics.packErrors.Inc()
	if msg := err.Error(); msg != s.health.packError {
		s.logger.Warn("cannot pack raw flows into blocks; they stay rows (readable, larger, slower to scan) and are retried", "err", err)
		s.health.packError = msg
	}
}

// packChunk moves the next rows of c (a block's worth, or fewer when
// settled) into a block. It returns the block's last id, 0 when it packed
// nothing.
func (s *FlowDB) packChunk(ctx context.Context, c *packCandidate, settled bool) (int64, error) {
	// The rows are read outside the write transaction: rows at or below
	// the limit are never changed, only moved by this goroutine or dropped
	// with their partition (which the transaction checks).
	rows, err := s.r.QueryContext(ctx, "SELECT id, x FROM "+c.name+" WHERE id > ? AND id <= ? ORDER BY id LIMIT ?", c.packed, c.limit, s.packRows)
	if err != nil {
		if isNoTable(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("cannot pack raw flows of %s: %w", c.name, err)
	}
	e := &s.pk.enc
	e.reset(c.packed + 1)
	var x sql.RawBytes
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id, &x); err != nil {
			rows.Close()
			return 0, fmt.Errorf("cannot pack raw flows of %s: %w", c.name, err)
		}
		if err := e.add(id, x); err != nil {
			rows.Close()
			return 0, fmt.Errorf("cannot pack raw flows of %s: %w", c.name, err)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("cannot pack raw flows of %s: %w", c.name, err)
	}
	if e.n < s.packRows && !settled {
		return 0, nil // wait for a full block
	}
	if e.n == 0 {
		return 0, nil
	}
	hi := e.prevID
	kb, ab, xb := e.finish(s.zenc, s.zraw)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("cannot pack raw flows of %s: %w", c.name, store.DescribeWriteError(err))
	}
	defer tx.Rollback()
	var exists int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM raw_partitions WHERE name = ?", c.name).Scan(&exists); err != nil {
		return 0, fmt.Errorf("cannot pack raw flows of %s: %w", c.name, store.DescribeWriteError(err))
	}
	if exists == 0 {
		return 0, nil // dropped by retention meanwhile
	}
	for _, q := range []stmt{
		{"CREATE TABLE IF NOT EXISTS " + packTable(c.name) + " (lo INTEGER PRIMARY KEY, hi INTEGER NOT NULL, tlo INTEGER NOT NULL, thi INTEGER NOT NULL, n INTEGER NOT NULL, s BLOB NOT NULL, h BLOB NOT NULL, k BLOB NOT NULL, a BLOB NOT NULL, x BLOB NOT NULL)", nil},
		// The blocks' list without their blobs (a block's row spans pages).
		{"CREATE INDEX IF NOT EXISTS " + packTable(c.name) + "_m ON " + packTable(c.name) + " (lo, hi, tlo, thi, s)", nil},
		{"INSERT INTO " + packTable(c.name) + " (lo, hi, tlo, thi, n, s, h, k, a, x) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", []any{c.packed + 1, hi, e.tlo, e.thi, e.n, e.sum.encode(), e.bloom(), kb, ab, xb}},
		// The block's last row stays, a copy no reader reads (they read
		// rows above the blocks only): SQLite numbers the writer's next
		// rows after the table's largest id.
		{"DELETE FROM " + c.name + " WHERE id >= ? AND id < ?", []any{c.packed, hi}},
	} {
		if _, err := tx.ExecContext(ctx, q.q, q.args...); err != nil {
			return 0, fmt.Errorf("cannot pack raw flows of %s: %w", c.name, store.DescribeWriteError(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("cannot pack raw flows of %s: %w", c.name, store.DescribeWriteError(err))
	}
	s.metrics.packedRows.Add(float64(e.n))
	s.metrics.packedBlocks.Inc()
	return hi, nil
}

// wakePacker tells the packer that partitions may have rows to pack.
func (s *FlowDB) wakePacker() {
	select {
	case s.packWake <- struct{}{}:
	default: // already told
	}
}

// packLoop runs the packer until ctx ends: it packs while there is work
// and the writer's queue is not filling, then waits for the writer's
// maintenance (wakePacker) or a while.
func (s *FlowDB) packLoop(ctx context.Context) {
	const (
		idle    = 15 * time.Second
		backoff = time.Minute
		chunk   = 8
	)
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		case <-s.packWake: // the writer closed partitions or flushed rollups
		}
		return true
	}
	for ctx.Err() == nil {
		n, err := s.packStep(ctx, s.now(), chunk)
		if ctx.Err() != nil {
			return
		}
		s.notePack(err)
		switch {
		case n == 0 && err != nil:
			if !wait(backoff) {
				return
			}
		case n == 0:
			if !wait(idle) {
				return
			}
		case len(s.queue) > cap(s.queue)/4:
			// Flows are waiting: the writer goes first.
			if !wait(time.Second) {
				return
			}
		}
	}
}
