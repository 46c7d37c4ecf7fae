package flowdb

import (
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
// (about 0.5 µs a row, which caps a scan near 1-2 M flows/s). Once a
// partition is closed, its host index written and its rows counted into
// the rollups, the packer (a goroutine of Run) moves its rows, a few
// thousand at a time, into blocks of table rawk_NAME:
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
//	k: version byte (1), uvarint n, then three sections, each a uvarint
//	   length and a zstd frame:
//	   ids: uvarint id - previous id (the first from lo - 1)
//	   t:   uvarint zigzag(t - previous t) (the first from 0)
//	   key: 8 bytes a row: protocol, x[3] (address kinds, direction),
//	        source and destination ports (big endian), router id
//	        (little endian, 0xffff for 65535 and above)
//	h: a Bloom filter of the rows' local and remote addresses (8 bits an
//	   address, 3 hashes, a power of two of 512 bits or more)
//	a: a zstd frame of x[3:6] and the a and b addresses of each row (their
//	   kinds in x[3] give their lengths)
//	x: a zstd frame of a uvarint length and the rest of x of each row
//
// A scan skips a block by its t range and summary without reading it. Of
// a block it reads, it decompresses k (a few bytes a flow) and tests the
// filter's time range, protocols, ports, directions and routers on it;
// with a host filter it first tests the Bloom filter (the host index's
// candidates are many: it keys buckets, not addresses), then reads a and
// tests the addresses; x is read
// and decompressed only when a row passes, and only the rows that pass
// are decoded whole. SQLite reads a row's blobs in order, so a block read
// for k only does not read x's pages. The host index still finds rows by
// id, in blocks as in rows.
//
// A move is one transaction (insert the block, delete its rows), and a
// reader reads a partition's blocks and rows in one read transaction, so
// it sees every row once, before or after a move. The last row of the
// newest block stays in the table as well (readers read only the rows
// above the blocks): SQLite numbers new rows after the largest id, and the
// writer's late flows must continue the partition's ids.

const (
	// packRowsDefault is the number of rows of a packed block.
	packRowsDefault = 4096
	// packSettle is how long after its end a partition's last rows, fewer
	// than a block, are packed too.
	packSettle = 30 * time.Minute
	// packRetry is how long the packer leaves a partition it failed to
	// pack.
	packRetry = 10 * time.Minute
	// packVersion is the version byte of c.
	packVersion = 1
	// packKeyLen is the size of a row of the key column.
	packKeyLen = 8
	// packMaxRows bounds the rows of a block a reader accepts.
	packMaxRows = 1 << 16
	// packSumLen is the size of s: 32 bytes of protocol bitmap, one of
	// directions.
	packSumLen = 33
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

// packEncoder builds the columns of one block.
type packEncoder struct {
	ids, ts, keys, as, xs []byte
	hosts                 []uint64 // hashes of the rows' addresses
	sum                   blockSummary
	n                     int
	prevID, prevT         int64
	tlo, thi              int64
	row                   decodedRow
}

func (e *packEncoder) reset(lo int64) {
	e.ids, e.ts, e.keys, e.as, e.xs = e.ids[:0], e.ts[:0], e.keys[:0], e.as[:0], e.xs[:0]
	e.hosts = e.hosts[:0]
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
	router := uint16(0xffff)
	if f.RouterID >= 0 && f.RouterID < 0xffff {
		router = uint16(f.RouterID)
	}
	e.keys = append(e.keys, f.Proto, x[3], byte(f.SrcPort>>8), byte(f.SrcPort), byte(f.DstPort>>8), byte(f.DstPort), byte(router), byte(router>>8))
	head := rawHeadLen + kindLen(x[3]&3) + kindLen(x[3]>>2&3) // checked by decodeRaw
	e.as = append(e.as, x[3:head]...)
	e.xs = binary.AppendUvarint(e.xs, uint64(len(x)-head))
	e.xs = append(e.xs, x[head:]...)
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

// finish returns the k, a and x blobs of the block.
func (e *packEncoder) finish(enc *zstd.Encoder) (k, a, x []byte) {
	k = []byte{packVersion}
	k = binary.AppendUvarint(k, uint64(e.n))
	var z []byte
	for _, sec := range [][]byte{e.ids, e.ts, e.keys} {
		z = enc.EncodeAll(sec, z[:0])
		k = binary.AppendUvarint(k, uint64(len(z)))
		k = append(k, z...)
	}
	return k, enc.EncodeAll(e.as, nil), enc.EncodeAll(e.xs, nil)
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
// once read and decompressed (loadA, loadX).
type packedRows struct {
	lo, hi int64
	n      int
	ids    []int64
	ts     []int64
	keys   []byte
	seq    bool   // ids are lo, lo+1, ...: row i has id lo+i
	az, xz []byte // the compressed a and x blobs, once read
	a      []byte // decompressed a column, valid when aok
	aoff   []int32
	aok    bool
	x      []byte  // decompressed x column, valid when xok
	xoff   []int32 // start and end of each row in x
	xok    bool
	buf    []byte
}

// decodeBlock decodes k (of the block lo..hi) into pr; its a and x
// columns are left to read.
func (s *FlowDB) decodeBlock(k []byte, lo, hi int64, pr *packedRows) error {
	pr.lo, pr.hi, pr.aok, pr.xok = lo, hi, false, false
	pr.az, pr.xz = pr.az[:0], pr.xz[:0]
	if len(k) < 2 || k[0] != packVersion {
		return errBadBlock
	}
	d := rawDecoder{b: k[1:]}
	n := d.uvarint()
	if d.err != nil || n > packMaxRows {
		return errBadBlock
	}
	pr.n = int(n)
	var secs [3][]byte
	for i := range secs {
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
	rd := rawDecoder{b: pr.buf}
	for range pr.n {
		id += int64(rd.uvarint())
		pr.ids = append(pr.ids, id)
	}
	if rd.err != nil || len(rd.b) != 0 || (pr.n > 0 && (pr.ids[0] < lo || id > hi || !slices.IsSorted(pr.ids))) {
		return errBadBlock
	}
	pr.seq = pr.n == 0 || (pr.ids[0] == lo && id == lo+int64(pr.n)-1)
	if pr.buf, err = s.zdec.DecodeAll(secs[1], pr.buf[:0]); err != nil {
		return fmt.Errorf("%w: %w", errBadBlock, err)
	}
	pr.ts = pr.ts[:0]
	var t int64
	rd = rawDecoder{b: pr.buf}
	for range pr.n {
		z := rd.uvarint()
		t += int64(z>>1) ^ -int64(z&1)
		if t < 0 || t > maxRowT {
			return errBadBlock
		}
		pr.ts = append(pr.ts, t)
	}
	if rd.err != nil || len(rd.b) != 0 {
		return errBadBlock
	}
	if pr.keys, err = s.zdec.DecodeAll(secs[2], pr.keys[:0]); err != nil {
		return fmt.Errorf("%w: %w", errBadBlock, err)
	}
	if len(pr.keys) != pr.n*packKeyLen {
		return errBadBlock
	}
	return nil
}

// decodeA decompresses the a column from pr.az.
func (s *FlowDB) decodeA(pr *packedRows) error {
	var err error
	if pr.a, err = s.zdec.DecodeAll(pr.az, pr.a[:0]); err != nil {
		return fmt.Errorf("%w: %w", errBadBlock, err)
	}
	pr.aoff = pr.aoff[:0]
	at := 0
	for range pr.n {
		if at+3 > len(pr.a) {
			return errBadBlock
		}
		pr.aoff = append(pr.aoff, int32(at))
		kinds := pr.a[at]
		if kinds&3 == 3 || kinds>>2&3 == 3 {
			return errBadBlock
		}
		at += 3 + kindLen(kinds&3) + kindLen(kinds>>2&3)
	}
	if at != len(pr.a) {
		return errBadBlock
	}
	pr.aoff = append(pr.aoff, int32(at))
	pr.aok = true
	return nil
}

// decodeX decompresses the x column from pr.xz.
func (s *FlowDB) decodeX(pr *packedRows) error {
	var err error
	if pr.x, err = s.zdec.DecodeAll(pr.xz, pr.x[:0]); err != nil {
		return fmt.Errorf("%w: %w", errBadBlock, err)
	}
	pr.xoff = pr.xoff[:0]
	rd := rawDecoder{b: pr.x}
	for range pr.n {
		l := rd.uvarint()
		if rd.err != nil || l > uint64(len(rd.b)) {
			return errBadBlock
		}
		at := int32(len(pr.x) - len(rd.b))
		pr.xoff = append(pr.xoff, at, at+int32(l))
		rd.b = rd.b[l:]
	}
	if len(rd.b) != 0 {
		return errBadBlock
	}
	pr.xok = true
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

// addrs returns the local and remote addresses of row i (the a column
// must be decoded).
func (pr *packedRows) addrs(i int) (local, remote netip.Addr) {
	r := pr.a[pr.aoff[i]:pr.aoff[i+1]]
	d := rawDecoder{b: r[3:]}
	local = d.kindAddr(r[0] & 3)
	remote = d.kindAddr(r[0] >> 2 & 3)
	return local, remote
}

// rowX returns the format 2 x of row i (its t, its a column, the rest) in
// dst's storage. Both columns must be decoded.
func (pr *packedRows) rowX(i int, dst []byte) []byte {
	t := pr.ts[i]
	dst = append(dst[:0], byte(t>>16), byte(t>>8), byte(t))
	dst = append(dst, pr.a[pr.aoff[i]:pr.aoff[i+1]]...)
	return append(dst, pr.x[pr.xoff[2*i]:pr.xoff[2*i+1]]...)
}

// blockReader reads the blocks of one partition in a read transaction,
// its statements prepared once.
type blockReader struct {
	s     *FlowDB
	tx    *sql.Tx
	part  string
	stmts [4]*sql.Stmt // by blob column: h, k, a, x
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
	if err := br.stmts[col].QueryRowContext(ctx, lo).Scan(dst); err != nil {
		return fmt.Errorf("cannot read packed raw flows of %s: block %d: %w", br.part, lo, err)
	}
	return nil
}

func (br *blockReader) close() {
	for _, st := range br.stmts {
		if st != nil {
			st.Close()
		}
	}
}

// blockCols reads what is missing of the a column, and of the x column
// when x, of block pr.
func (br *blockReader) blockCols(ctx context.Context, pr *packedRows, x bool) error {
	if !pr.aok {
		if err := br.blob(ctx, colA, pr.lo, &pr.az); err != nil {
			return err
		}
		if err := br.s.decodeA(pr); err != nil {
			return fmt.Errorf("cannot read packed raw flows of %s: block %d: %w", br.part, pr.lo, err)
		}
	}
	if x && !pr.xok {
		if err := br.blob(ctx, colX, pr.lo, &pr.xz); err != nil {
			return err
		}
		if err := br.s.decodeX(pr); err != nil {
			return fmt.Errorf("cannot read packed raw flows of %s: block %d: %w", br.part, pr.lo, err)
		}
	}
	return nil
}

// skipsHosts reports whether block b has none of the filter's hosts, by
// its Bloom filter.
func (br *blockReader) skipsHosts(ctx context.Context, b *packedBlock, pre *rowPre) (bool, error) {
	if pre == nil || len(pre.hostSets) == 0 {
		return false, nil
	}
	var h []byte
	if err := br.blob(ctx, colH, b.lo, &h); err != nil {
		return false, err
	}
	return pre.skipHosts(h), nil
}

// read reads and decodes the k column of block b into pr (blockCols
// reads the others when needed).
func (br *blockReader) read(ctx context.Context, b *packedBlock, pr *packedRows) error {
	var k []byte
	if err := br.blob(ctx, colK, b.lo, &k); err != nil {
		return err
	}
	if err := br.s.decodeBlock(k, b.lo, b.hi, pr); err != nil {
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

// pass tests row i of a block.
func (p *rowPre) pass(pr *packedRows, i int) bool {
	if t := pr.ts[i]; t < p.tfrom || t >= p.tto {
		return false
	}
	k := pr.keys[i*packKeyLen : i*packKeyLen+packKeyLen]
	if p.protos != nil && p.protos.protos[k[0]>>6]&(1<<(k[0]&63)) == 0 {
		return false
	}
	if p.dirs != 0 && p.dirs&(1<<(k[1]>>4&7)) == 0 {
		return false
	}
	if len(p.ports) > 0 {
		sp, dp := uint16(k[2])<<8|uint16(k[3]), uint16(k[4])<<8|uint16(k[5])
		if !slices.Contains(p.ports, sp) && !slices.Contains(p.ports, dp) {
			return false
		}
	}
	if p.routers != nil {
		r := int64(k[6]) | int64(k[7])<<8
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

// row reports whether row i of block pr may pass, and when it may,
// decodes its a and x columns (reading them with br): the key column
// first, then with a host filter the addresses.
func (p *rowPre) row(ctx context.Context, br *blockReader, pr *packedRows, i int) (bool, error) {
	if !p.pass(pr, i) {
		return false, nil
	}
	if p.hosts != nil {
		if err := br.blockCols(ctx, pr, false); err != nil {
			return false, err
		}
		local, remote := pr.addrs(i)
		if !p.hosts.Match(&store.Flow{}, 0, local.Unmap(), remote.Unmap()) {
			return false, nil
		}
	}
	return true, br.blockCols(ctx, pr, true)
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

// packedBlocks lists the blocks of the partition that hold ids lo..hi,
// in id order, with the statement st of packedBlocksQuery (none when the
// partition has no packed block).
func packedBlocks(ctx context.Context, st *sql.Stmt, part string, lo, hi int64) ([]packedBlock, error) {
	rows, err := st.QueryContext(ctx, lo, hi, lo)
	if err != nil {
		return nil, fmt.Errorf("cannot read packed raw flows of %s: %w", part, err)
	}
	defer rows.Close()
	var out []packedBlock
	for rows.Next() {
		var b packedBlock
		var sum []byte
		if err := rows.Scan(&b.lo, &b.hi, &b.tlo, &b.thi, &sum); err != nil {
			return nil, fmt.Errorf("cannot read packed raw flows of %s: %w", part, err)
		}
		var ok bool
		if b.sum, ok = decodeSummary(sum); !ok {
			return nil, fmt.Errorf("cannot read packed raw flows of %s: block %d: %w", part, b.lo, errBadBlock)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read packed raw flows of %s: %w", part, err)
	}
	return out, nil
}

// packedBlocksQuery is the query of packedBlocks on table t: the block
// holding lo starts at or before it, and the range is one of the primary
// key (in the covering index of the blocks' list).
func packedBlocksQuery(t string) string {
	return "SELECT lo, hi, tlo, thi, s FROM " + t + " WHERE lo >= coalesce((SELECT max(lo) FROM " + t + " WHERE lo <= ?1), 0) AND lo <= ?2 AND hi >= ?3 ORDER BY lo"
}

// maxRowID returns the last id of a partition, packed or not (0: none).
func maxRowID(ctx context.Context, q querier, part string) (int64, error) {
	var rowsMax, packMax int64
	if err := q.QueryRowContext(ctx, "SELECT coalesce(max(id), 0) FROM "+part).Scan(&rowsMax); err != nil {
		return 0, err
	}
	if err := q.QueryRowContext(ctx, "SELECT coalesce(max(hi), 0) FROM "+packTable(part)).Scan(&packMax); err != nil && !isNoTable(err) {
		return 0, err
	}
	return max(rowsMax, packMax), nil
}

// The packer.

// packCandidate is a closed partition with rows to pack.
type packCandidate struct {
	name   string
	start  int64 // unix ms
	limit  int64 // the last id both indexed and rolled up
	packed int64 // the last id packed
}

// packCandidates lists the closed format 2 partitions with rows that the
// host index covers and the rollups count but no block holds, oldest
// first.
func (s *FlowDB) packCandidates(ctx context.Context) ([]packCandidate, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT p.name, p.start, coalesce(p.rolled, -1),
		coalesce((SELECT max(g.last_id) FROM raw_segments g WHERE g.part = p.name), 0)
		FROM raw_partitions p WHERE p.format = ? AND p.closed = 1 ORDER BY p.start`, formatV2)
	if err != nil {
		return nil, fmt.Errorf("cannot list partitions to pack: %w", err)
	}
	var out []packCandidate
	for rows.Next() {
		var c packCandidate
		var rolled, covered int64
		if err := rows.Scan(&c.name, &c.start, &rolled, &covered); err != nil {
			rows.Close()
			return nil, fmt.Errorf("cannot list partitions to pack: %w", err)
		}
		c.start *= 1000
		c.limit = min(rolled, covered)
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot list partitions to pack: %w", err)
	}
	k := 0
	for _, c := range out {
		if err := s.r.QueryRowContext(ctx, "SELECT coalesce(max(hi), 0) FROM "+packTable(c.name)).Scan(&c.packed); err != nil && !isNoTable(err) {
			return nil, fmt.Errorf("cannot list partitions to pack: %w", err)
		}
		if c.packed < c.limit {
			out[k] = c
			k++
		}
	}
	return out[:k], nil
}

// packStep packs up to maxBlocks blocks of closed partitions, oldest
// first: full blocks, and the last rows of a partition that ended
// packSettle before now. It returns the number of blocks packed and the
// errors met: a partition that fails is left for packRetry (its rows stay
// rows, readable) and the others are packed.
func (s *FlowDB) packStep(ctx context.Context, now time.Time, maxBlocks int) (int, error) {
	cands, err := s.packCandidates(ctx)
	if err != nil {
		return 0, err
	}
	if s.packFailed == nil {
		s.packFailed = map[string]time.Time{}
	}
	live := make(map[string]bool, len(cands))
	var errs []error
	done := 0
	for i := range cands {
		c := &cands[i]
		live[c.name] = true
		if until, ok := s.packFailed[c.name]; ok && now.Before(until) {
			continue
		}
		settled := c.start+partitionSpan.Milliseconds()+packSettle.Milliseconds() <= now.UnixMilli()
		for done < maxBlocks && c.packed < c.limit {
			if err := ctx.Err(); err != nil {
				return done, err
			}
			hi, err := s.packChunk(ctx, c, settled)
			if err != nil {
				errs = append(errs, err)
				s.packFailed[c.name] = now.Add(packRetry)
				break
			}
			delete(s.packFailed, c.name)
			if hi == 0 {
				break
			}
			c.packed = hi
			done++
		}
		if done >= maxBlocks {
			break
		}
	}
	for name := range s.packFailed {
		if !live[name] {
			delete(s.packFailed, name) // dropped, or packed meanwhile
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
	if err == nil && len(s.packFailed) > 0 {
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
	e := &s.packEnc
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
	kb, ab, xb := e.finish(s.zenc)
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
