package enrich

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// A minimal MaxMind DB writer for the tests, after the format
// specification (https://maxmind.github.io/MaxMind-DB/, version 2.0): an
// IPv6 search tree with 24-bit records in which IPv4 networks live under
// ::/96, then 16 zero bytes, the data section, and the metadata map after
// the "\xab\xcd\xefMaxMind.com" marker. Values are maps, strings, uint16,
// uint32, uint64 and arrays, which is what ASN and country databases use.
// Identical records are written once and shared by their networks, as the
// real databases do.

// mmdbMap is a map value; keys are written in sorted order.
type mmdbMap map[string]any

// mmdbNet is one network of a test database and its record.
type mmdbNet struct {
	prefix string
	rec    mmdbMap
}

// Data section types (the spec's numbering).
const (
	mmdbString = 2
	mmdbUint16 = 5
	mmdbUint32 = 6
	mmdbMapT   = 7
	mmdbUint64 = 9
	mmdbArray  = 11
)

// appendControl appends a control byte (with the extended type byte for
// types above 7) and the size's extra bytes.
func appendControl(b []byte, typ, size int) []byte {
	var sizeBits int
	var extra []byte
	switch {
	case size < 29:
		sizeBits = size
	case size < 29+256:
		sizeBits, extra = 29, []byte{byte(size - 29)}
	case size < 285+65536:
		sizeBits, extra = 30, binary.BigEndian.AppendUint16(nil, uint16(size-285))
	default:
		v := size - 65821
		sizeBits, extra = 31, []byte{byte(v >> 16), byte(v >> 8), byte(v)}
	}
	if typ <= 7 {
		b = append(b, byte(typ<<5|sizeBits))
	} else {
		b = append(b, byte(sizeBits), byte(typ-7))
	}
	return append(b, extra...)
}

// appendUint appends an unsigned integer in its shortest big-endian form.
func appendUint(b []byte, typ int, v uint64) []byte {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	n := 8
	for n > 0 && buf[8-n] == 0 {
		n--
	}
	return append(appendControl(b, typ, n), buf[8-n:]...)
}

// appendValue encodes v.
func appendValue(tb testing.TB, b []byte, v any) []byte {
	switch v := v.(type) {
	case string:
		return append(appendControl(b, mmdbString, len(v)), v...)
	case uint16:
		return appendUint(b, mmdbUint16, uint64(v))
	case uint32:
		return appendUint(b, mmdbUint32, uint64(v))
	case uint64:
		return appendUint(b, mmdbUint64, v)
	case []any:
		b = appendControl(b, mmdbArray, len(v))
		for _, e := range v {
			b = appendValue(tb, b, e)
		}
		return b
	case mmdbMap:
		b = appendControl(b, mmdbMapT, len(v))
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b = appendValue(tb, b, k)
			b = appendValue(tb, b, v[k])
		}
		return b
	}
	tb.Fatalf("mmdb writer: unsupported value %T", v)
	return nil
}

// treeNode is a search tree node; each side holds a child node, a record
// (data offset + 1) or nothing.
type treeNode struct {
	child [2]*treeNode
	data  [2]int
}

// insert places the record at off under the 128-bit path of p (IPv4
// networks under ::/96). A later, more specific network splits an earlier
// one; an equal or larger one replaces what was there.
func (n *treeNode) insert(p netip.Prefix, off int) {
	a := p.Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		a = [16]byte{12: a[12], 13: a[13], 14: a[14], 15: a[15]}
		bits += 96
	}
	for i := range bits {
		side := a[i/8] >> (7 - i%8) & 1
		if i == bits-1 {
			n.child[side], n.data[side] = nil, off+1
			return
		}
		if n.child[side] == nil {
			c := &treeNode{}
			c.data = [2]int{n.data[side], n.data[side]} // split an enclosing network
			n.child[side], n.data[side] = c, 0
		}
		n = n.child[side]
	}
}

// buildMMDB returns a database file of the given type holding nets.
func buildMMDB(tb testing.TB, dbType string, built time.Time, nets []mmdbNet) []byte {
	tb.Helper()
	var data []byte
	offsets := map[string]int{} // encoded record -> offset: shared records
	root := &treeNode{}
	for _, n := range nets {
		p := netip.MustParsePrefix(n.prefix)
		if p.Bits() == 0 {
			tb.Fatalf("mmdb writer: %s: a /0 network is not supported", p)
		}
		rec := appendValue(tb, nil, n.rec)
		off, ok := offsets[string(rec)]
		if !ok {
			off = len(data)
			offsets[string(rec)] = off
			data = append(data, rec...)
		}
		root.insert(p.Masked(), off)
	}
	// Number the nodes breadth first; the root is node 0.
	nodes := []*treeNode{root}
	ids := map[*treeNode]int{root: 0}
	for i := 0; i < len(nodes); i++ {
		for _, c := range nodes[i].child {
			if c != nil {
				ids[c] = len(nodes)
				nodes = append(nodes, c)
			}
		}
	}
	count := len(nodes)
	record := func(n *treeNode, side int) int {
		switch {
		case n.child[side] != nil:
			return ids[n.child[side]]
		case n.data[side] != 0:
			return count + 16 + n.data[side] - 1
		}
		return count // no data
	}
	var out []byte
	for _, n := range nodes {
		for side := range 2 {
			v := record(n, side)
			if v >= 1<<24 {
				tb.Fatalf("mmdb writer: record %d does not fit 24 bits", v)
			}
			out = append(out, byte(v>>16), byte(v>>8), byte(v))
		}
	}
	out = append(out, make([]byte, 16)...)
	out = append(out, data...)
	out = append(out, "\xab\xcd\xefMaxMind.com"...)
	return appendValue(tb, out, mmdbMap{
		"node_count":                  uint32(count),
		"record_size":                 uint16(24),
		"ip_version":                  uint16(6),
		"database_type":               dbType,
		"languages":                   []any{"en"},
		"binary_format_major_version": uint16(2),
		"binary_format_minor_version": uint16(0),
		"build_epoch":                 uint64(built.Unix()),
		"description":                 mmdbMap{"en": "flowbox test database"},
	})
}

// asnRecord is a GeoLite2-ASN record.
func asnRecord(asn uint32, org string) mmdbMap {
	return mmdbMap{"autonomous_system_number": asn, "autonomous_system_organization": org}
}

// countryRecord is a GeoLite2-Country record (with the fields flowbox
// ignores, as the real files have them).
func countryRecord(cc string, geonameID uint32) mmdbMap {
	return mmdbMap{
		"continent": mmdbMap{"code": "EU", "geoname_id": uint32(6255148), "names": mmdbMap{"en": "Europe"}},
		"country":   mmdbMap{"iso_code": cc, "geoname_id": geonameID, "names": mmdbMap{"en": "Country " + cc}},
		"registered_country": mmdbMap{"iso_code": cc, "geoname_id": geonameID,
			"names": mmdbMap{"en": "Country " + cc}},
	}
}

// writeFileAtomic replaces path with b the way a GeoIP updater should: a
// temporary file in the same directory, renamed over the old one.
func writeFileAtomic(tb testing.TB, path string, b []byte) {
	tb.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*.mmdb")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := tmp.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		tb.Fatal(err)
	}
}

// mmdbPath returns the path of a fresh database file in dir.
func mmdbPath(tb testing.TB, dir, name string, b []byte) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	writeFileAtomic(tb, p, b)
	return p
}

// largeASNNets returns n distinct /24 networks of about n/8 ASNs, for
// benchmarks.
func largeASNNets(n int) []mmdbNet {
	nets := make([]mmdbNet, n)
	for i := range nets {
		a := netip.AddrFrom4([4]byte{byte(1 + i>>16), byte(i >> 8), byte(i), 0})
		asn := uint32(64512 + i/8)
		nets[i] = mmdbNet{netip.PrefixFrom(a, 24).String(), asnRecord(asn, fmt.Sprintf("Org %d", asn))}
	}
	return nets
}
