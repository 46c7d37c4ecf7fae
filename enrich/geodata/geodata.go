// Package geodata holds flowbox's offline IP-to-ASN and IP-to-country
// tables and their compact binary format.
//
// The tables are built from the npm packages @ip-location-db/asn and
// @ip-location-db/asn-country, pinned by version and sha512 integrity in
// cmd/geodata-gen, which fetches them with `npm pack`, verifies them and
// writes ipdb.bin.gz next to this file (`go generate ./enrich/geodata`).
// The file is committed and embedded in the binary, so flowbox needs no
// network access at run time.
//
// Format (all integers unsigned LEB128 varints, the whole stream gzipped):
//
//	"FBGEO" 0x01                        magic and format version
//	len, bytes                          build note (package versions)
//	n, n × (Δasn, len, name)            AS name table, ascending ASN
//	n, n × (gap, span, asn)             IPv4 ASN ranges: start = prev end + 1 + gap
//	n, n × (gap, span, cc)              IPv4 country ranges, cc = 'A'<<8|'B'
//	n, n × (gapHi, gapLo, spanHi, spanLo, asn)      IPv6 ASN ranges (128-bit)
//	n, n × (gapHi, gapLo, spanHi, spanLo, cc)       IPv6 country ranges
//
// In memory the ranges are sorted, non-overlapping arrays searched by
// binary search, which a 65,536-bucket index of the first 16 address bits
// narrows to the few ranges under the same prefix; a lookup (ASN and
// country) costs about 20 ns even on addresses spread over the whole space
// (see BenchmarkLookupRandom). Builder.Build makes the same tables from
// other sources (flowbox loads MaxMind files this way).
package geodata

//go:generate go run ./cmd/geodata-gen -out ipdb.bin.gz -attribution ATTRIBUTION.md

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"sync"
)

// Attribution is the credit line the README and the web console show for
// the embedded tables (CC BY 4.0 requires it).
const Attribution = "IP to ASN and country data: ip-location-db (https://github.com/sapics/ip-location-db), " +
	"built from RouteViews (https://www.routeviews.org), DB-IP (https://db-ip.com) and the NRO (https://www.nro.net), " +
	"licensed under CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)."

// magic starts every table file.
var magic = []byte("FBGEO\x01")

//go:embed ipdb.bin.gz
var embedded []byte

// Embedded returns the tables compiled into the binary. They are decoded
// on the first call (about 0.3 s) and shared afterwards: a DB is immutable.
func Embedded() (*DB, error) {
	return embeddedOnce()
}

var embeddedOnce = sync.OnceValues(func() (*DB, error) {
	db, err := Read(bytes.NewReader(embedded))
	if err != nil {
		return nil, fmt.Errorf("cannot read embedded geo tables: %w", err)
	}
	return db, nil
})

// U128 is an IPv6 address as a 128-bit integer.
type U128 struct{ Hi, Lo uint64 }

// Less reports whether u < v.
func (u U128) Less(v U128) bool { return u.Hi < v.Hi || (u.Hi == v.Hi && u.Lo < v.Lo) }

// U128From returns the 128-bit integer of a 16-byte address.
func U128From(a netip.Addr) U128 {
	b := a.As16()
	return U128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// add returns u + v (mod 2^128).
func (u U128) add(v U128) U128 {
	lo := u.Lo + v.Lo
	c := uint64(0)
	if lo < u.Lo {
		c = 1
	}
	return U128{u.Hi + v.Hi + c, lo}
}

// sub returns u - v (mod 2^128).
func (u U128) sub(v U128) U128 {
	lo := u.Lo - v.Lo
	b := uint64(0)
	if u.Lo < v.Lo {
		b = 1
	}
	return U128{u.Hi - v.Hi - b, lo}
}

var one128 = U128{0, 1}

// Ranges4 is a sorted set of non-overlapping inclusive IPv4 ranges with a
// value each.
type Ranges4 struct {
	Start, End []uint32
	Val        []uint32
	// buckets[k] is the number of ranges starting below k<<16 (see
	// buildIndex); nil searches the whole table.
	buckets []uint32
}

// Ranges6 is the IPv6 counterpart of Ranges4.
type Ranges6 struct {
	Start, End []U128
	Val        []uint32
	// buckets[k] is the number of ranges starting below k<<112.
	buckets []uint32
}

// bucketBits is the number of leading address bits that index the
// buckets: a lookup binary-searches only the ranges that start under the
// same 16-bit prefix (a handful), instead of the whole table (20 steps
// and as many cache misses on a table of 500,000 ranges).
const bucketBits = 16

// buildBuckets returns, for each 16-bit prefix k (and k = 65536), the
// number of the sorted starts that are below k's first address; top(i) is
// the 16-bit prefix of the i-th start.
func buildBuckets(n int, top func(i int) uint32) []uint32 {
	b := make([]uint32, 1<<bucketBits+1)
	i := 0
	for k := range b {
		for i < n && top(i) < uint32(k) {
			i++
		}
		b[k] = uint32(i)
	}
	return b
}

// buildIndex builds the bucket index; the table must not change after.
func (r *Ranges4) buildIndex() {
	r.buckets = buildBuckets(len(r.Start), func(i int) uint32 { return r.Start[i] >> (32 - bucketBits) })
}

// buildIndex builds the bucket index; the table must not change after.
func (r *Ranges6) buildIndex() {
	r.buckets = buildBuckets(len(r.Start), func(i int) uint32 { return uint32(r.Start[i].Hi >> (64 - bucketBits)) })
}

// Len returns the number of ranges.
func (r *Ranges4) Len() int { return len(r.Start) }

// Len returns the number of ranges.
func (r *Ranges6) Len() int { return len(r.Start) }

// Find returns the value of the range holding a, or 0.
func (r *Ranges4) Find(a uint32) uint32 {
	// lo..hi bounds the number of ranges starting at or below a: every
	// range of an earlier bucket does, none of a later bucket does.
	lo, hi := 0, len(r.Start)
	if r.buckets != nil {
		k := a >> (32 - bucketBits)
		lo, hi = int(r.buckets[k]), int(r.buckets[k+1])
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.Start[m] <= a {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 || a > r.End[lo-1] {
		return 0
	}
	return r.Val[lo-1]
}

// Find returns the value of the range holding a, or 0.
func (r *Ranges6) Find(a U128) uint32 {
	lo, hi := 0, len(r.Start)
	if r.buckets != nil {
		k := a.Hi >> (64 - bucketBits)
		lo, hi = int(r.buckets[k]), int(r.buckets[k+1])
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if !a.Less(r.Start[m]) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 || r.End[lo-1].Less(a) {
		return 0
	}
	return r.Val[lo-1]
}

// DB is a loaded set of tables. It is immutable and safe for concurrent use.
type DB struct {
	// Note says what the tables were built from.
	Note      string
	asns      []uint32 // sorted
	names     []string // names[i] is the name of asns[i]
	asn4, cc4 Ranges4
	asn6, cc6 Ranges6
	// countries[i] is the code stored as i in the country tables (0: "").
	countries []string
}

// Result is what a lookup finds; zero fields mean unknown.
type Result struct {
	ASN     uint32
	Country string // ISO 3166 alpha-2, "" when unknown
}

// Lookup returns the ASN and country of a. IPv4-mapped IPv6 addresses are
// looked up as IPv4.
func (db *DB) Lookup(a netip.Addr) Result {
	a = a.Unmap()
	var asn, cc uint32
	if a.Is4() {
		b := a.As4()
		v := binary.BigEndian.Uint32(b[:])
		asn, cc = db.asn4.Find(v), db.cc4.Find(v)
	} else if a.Is6() {
		v := U128From(a)
		asn, cc = db.asn6.Find(v), db.cc6.Find(v)
	}
	return Result{ASN: asn, Country: db.countries[cc]}
}

// ASN returns the AS number of a, 0 when unknown.
func (db *DB) ASN(a netip.Addr) uint32 {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return db.asn4.Find(binary.BigEndian.Uint32(b[:]))
	}
	if a.Is6() {
		return db.asn6.Find(U128From(a))
	}
	return 0
}

// Country returns the country code of a, "" when unknown.
func (db *DB) Country(a netip.Addr) string {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return db.countries[db.cc4.Find(binary.BigEndian.Uint32(b[:]))]
	}
	if a.Is6() {
		return db.countries[db.cc6.Find(U128From(a))]
	}
	return ""
}

// ASName returns the organisation name of an AS, "" when unknown.
func (db *DB) ASName(asn uint32) string {
	i, ok := slices.BinarySearch(db.asns, asn)
	if !ok {
		return ""
	}
	return db.names[i]
}

// Counts returns the number of ranges per table (asn4, cc4, asn6, cc6) and
// the number of AS names.
func (db *DB) Counts() (asn4, cc4, asn6, cc6, names int) {
	return db.asn4.Len(), db.cc4.Len(), db.asn6.Len(), db.cc6.Len(), len(db.asns)
}

// CountryCode packs a two-letter code into the table representation; it
// returns 0 for anything that is not two ASCII letters.
func CountryCode(s string) uint32 {
	if len(s) != 2 || !isUpper(s[0]) || !isUpper(s[1]) {
		return 0
	}
	return uint32(s[0])<<8 | uint32(s[1])
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// Builder collects ranges (in any order) and writes a table file.
type Builder struct {
	Note  string
	names map[uint32]string
	a4    []r4
	c4    []r4
	a6    []r6
	c6    []r6
}

type r4 struct{ s, e, v uint32 }
type r6 struct {
	s, e U128
	v    uint32
}

// NewBuilder returns an empty builder.
func NewBuilder(note string) *Builder {
	return &Builder{Note: note, names: map[uint32]string{}}
}

// AddASN adds the inclusive range [start, end] announced by asn. The
// first non-empty name seen for an ASN is kept.
func (b *Builder) AddASN(start, end netip.Addr, asn uint32, name string) error {
	if asn == 0 {
		return nil
	}
	if name != "" {
		if _, ok := b.names[asn]; !ok {
			b.names[asn] = name
		}
	}
	return b.add(start, end, asn, &b.a4, &b.a6)
}

// AddCountry adds the inclusive range [start, end] located in country cc.
func (b *Builder) AddCountry(start, end netip.Addr, cc string) error {
	code := CountryCode(cc)
	if code == 0 {
		return fmt.Errorf("invalid country code %q", cc)
	}
	return b.add(start, end, code, &b.c4, &b.c6)
}

func (b *Builder) add(start, end netip.Addr, v uint32, d4 *[]r4, d6 *[]r6) error {
	start, end = start.Unmap(), end.Unmap()
	switch {
	case start.Is4() && end.Is4():
		s, e := start.As4(), end.As4()
		sv, ev := binary.BigEndian.Uint32(s[:]), binary.BigEndian.Uint32(e[:])
		if ev < sv {
			return fmt.Errorf("range %s-%s is reversed", start, end)
		}
		*d4 = append(*d4, r4{sv, ev, v})
	case start.Is6() && end.Is6():
		sv, ev := U128From(start), U128From(end)
		if ev.Less(sv) {
			return fmt.Errorf("range %s-%s is reversed", start, end)
		}
		*d6 = append(*d6, r6{sv, ev, v})
	default:
		return fmt.Errorf("range %s-%s mixes address families", start, end)
	}
	return nil
}

// normalize4 sorts the ranges, drops those overlapping an earlier one and
// merges adjacent ranges with the same value.
func normalize4(in []r4) []r4 {
	sort.Slice(in, func(i, j int) bool { return in[i].s < in[j].s })
	out := in[:0]
	for _, r := range in {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if r.s <= last.e {
				continue // overlap: keep the first
			}
			if last.v == r.v && last.e+1 == r.s {
				last.e = r.e
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

func normalize6(in []r6) []r6 {
	sort.Slice(in, func(i, j int) bool { return in[i].s.Less(in[j].s) })
	out := in[:0]
	for _, r := range in {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if !last.e.Less(r.s) {
				continue
			}
			if last.v == r.v && last.e.add(one128) == r.s {
				last.e = r.e
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// Write writes the gzipped table file.
func (b *Builder) Write(w io.Writer) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return fmt.Errorf("cannot start gzip: %w", err)
	}
	bw := bufio.NewWriter(zw)
	var buf [binary.MaxVarintLen64]byte
	put := func(v uint64) { bw.Write(buf[:binary.PutUvarint(buf[:], v)]) }
	putStr := func(s string) { put(uint64(len(s))); bw.WriteString(s) }

	bw.Write(magic)
	putStr(b.Note)

	asns := make([]uint32, 0, len(b.names))
	for a := range b.names {
		asns = append(asns, a)
	}
	slices.Sort(asns)
	put(uint64(len(asns)))
	prev := uint32(0)
	for _, a := range asns {
		put(uint64(a - prev))
		putStr(b.names[a])
		prev = a
	}
	for _, rs := range [][]r4{normalize4(b.a4), normalize4(b.c4)} {
		put(uint64(len(rs)))
		next := uint64(0)
		for _, r := range rs {
			put(uint64(r.s) - next)
			put(uint64(r.e - r.s))
			put(uint64(r.v))
			next = uint64(r.e) + 1
		}
	}
	for _, rs := range [][]r6{normalize6(b.a6), normalize6(b.c6)} {
		put(uint64(len(rs)))
		next := U128{}
		for i, r := range rs {
			gap := r.s.sub(next)
			if i == 0 {
				gap = r.s
			}
			span := r.e.sub(r.s)
			put(gap.Hi)
			put(gap.Lo)
			put(span.Hi)
			put(span.Lo)
			put(uint64(r.v))
			next = r.e.add(one128)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("cannot write geo tables: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("cannot write geo tables: %w", err)
	}
	return nil
}

// maxEntries bounds every count read from a file, so a corrupt file cannot
// make Read allocate without limit.
const maxEntries = 1 << 24

// ErrFormat is returned (wrapped) for files that are not table files or
// are corrupt.
var ErrFormat = errors.New("invalid geo table file")

// Read loads a gzipped table file written by Builder.Write.
func Read(r io.Reader) (*DB, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	defer zr.Close()
	br := bufio.NewReaderSize(zr, 1<<16)
	hdr := make([]byte, len(magic))
	if _, err := io.ReadFull(br, hdr); err != nil || !bytes.Equal(hdr, magic) {
		return nil, fmt.Errorf("%w: bad magic", ErrFormat)
	}
	var rerr error
	get := func() uint64 {
		if rerr != nil {
			return 0
		}
		v, err := binary.ReadUvarint(br)
		if err != nil {
			rerr = fmt.Errorf("%w: truncated: %w", ErrFormat, err)
		}
		return v
	}
	count := func() int {
		n := get()
		if n > maxEntries {
			rerr = fmt.Errorf("%w: count %d too large", ErrFormat, n)
			return 0
		}
		return int(n)
	}
	getStr := func() string {
		n := get()
		if n > 4096 {
			rerr = fmt.Errorf("%w: string of %d bytes", ErrFormat, n)
		}
		if rerr != nil {
			return ""
		}
		s := make([]byte, n)
		if _, err := io.ReadFull(br, s); err != nil {
			rerr = fmt.Errorf("%w: truncated string: %w", ErrFormat, err)
		}
		return string(s)
	}
	db := &DB{countries: []string{""}}
	db.Note = getStr()
	n := count()
	db.asns = make([]uint32, 0, n)
	db.names = make([]string, 0, n)
	prev := uint64(0)
	for i := 0; i < n && rerr == nil; i++ {
		prev += get()
		if prev > 1<<32-1 {
			return nil, fmt.Errorf("%w: ASN overflow", ErrFormat)
		}
		db.asns = append(db.asns, uint32(prev))
		db.names = append(db.names, getStr())
	}
	for _, dst := range []*Ranges4{&db.asn4, &db.cc4} {
		n := count()
		dst.Start, dst.End, dst.Val = make([]uint32, 0, n), make([]uint32, 0, n), make([]uint32, 0, n)
		next := uint64(0)
		for i := 0; i < n && rerr == nil; i++ {
			s := next + get()
			e := s + get()
			v := get()
			if e > 1<<32-1 || v > 1<<32-1 {
				return nil, fmt.Errorf("%w: IPv4 range out of bounds", ErrFormat)
			}
			dst.Start = append(dst.Start, uint32(s))
			dst.End = append(dst.End, uint32(e))
			dst.Val = append(dst.Val, uint32(v))
			next = e + 1
		}
	}
	for _, dst := range []*Ranges6{&db.asn6, &db.cc6} {
		n := count()
		dst.Start, dst.End, dst.Val = make([]U128, 0, n), make([]U128, 0, n), make([]uint32, 0, n)
		next := U128{}
		for i := 0; i < n && rerr == nil; i++ {
			gap := U128{get(), get()}
			span := U128{get(), get()}
			v := get()
			s := next.add(gap)
			e := s.add(span)
			if s.Less(next) || e.Less(s) || v > 1<<32-1 {
				return nil, fmt.Errorf("%w: IPv6 range out of bounds", ErrFormat)
			}
			dst.Start = append(dst.Start, s)
			dst.End = append(dst.End, e)
			dst.Val = append(dst.Val, uint32(v))
			next = e.add(one128)
		}
	}
	if rerr != nil {
		return nil, rerr
	}
	if err := db.finish(); err != nil {
		return nil, err
	}
	return db, nil
}

// finish replaces the packed country codes of the country tables by
// indexes into db.countries, so a lookup is an array access, and builds
// the bucket indexes.
func (db *DB) finish() error {
	db.countries = []string{""}
	index := map[uint32]uint32{}
	for _, vals := range [][]uint32{db.cc4.Val, db.cc6.Val} {
		for i, v := range vals {
			if CountryCode(string([]byte{byte(v >> 8), byte(v)})) != v {
				return fmt.Errorf("%w: bad country code %#x", ErrFormat, v)
			}
			x, ok := index[v]
			if !ok {
				x = uint32(len(db.countries))
				index[v] = x
				db.countries = append(db.countries, string([]byte{byte(v >> 8), byte(v)}))
			}
			vals[i] = x
		}
	}
	for _, r := range []*Ranges4{&db.asn4, &db.cc4} {
		r.buildIndex()
	}
	for _, r := range []*Ranges6{&db.asn6, &db.cc6} {
		r.buildIndex()
	}
	return nil
}

// Build returns the tables collected so far as a DB, as Read would return
// them after Write, without encoding them (flowbox loads MaxMind files
// this way). Overlapping ranges are resolved as Write does.
func (b *Builder) Build() (*DB, error) {
	db := &DB{Note: b.Note}
	db.asns = make([]uint32, 0, len(b.names))
	for a := range b.names {
		db.asns = append(db.asns, a)
	}
	slices.Sort(db.asns)
	db.names = make([]string, len(db.asns))
	for i, a := range db.asns {
		db.names[i] = b.names[a]
	}
	fill4 := func(dst *Ranges4, rs []r4) {
		dst.Start, dst.End, dst.Val = make([]uint32, len(rs)), make([]uint32, len(rs)), make([]uint32, len(rs))
		for i, r := range rs {
			dst.Start[i], dst.End[i], dst.Val[i] = r.s, r.e, r.v
		}
	}
	fill6 := func(dst *Ranges6, rs []r6) {
		dst.Start, dst.End, dst.Val = make([]U128, len(rs)), make([]U128, len(rs)), make([]uint32, len(rs))
		for i, r := range rs {
			dst.Start[i], dst.End[i], dst.Val[i] = r.s, r.e, r.v
		}
	}
	fill4(&db.asn4, normalize4(b.a4))
	fill4(&db.cc4, normalize4(b.c4))
	fill6(&db.asn6, normalize6(b.a6))
	fill6(&db.cc6, normalize6(b.c6))
	if err := db.finish(); err != nil {
		return nil, err
	}
	return db, nil
}
