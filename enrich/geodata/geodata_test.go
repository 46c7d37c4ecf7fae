package geodata

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"testing"
)

func TestEmbeddedWellKnown(t *testing.T) {
	db, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	a4, c4, a6, c6, names := db.Counts()
	if a4 < 100000 || c4 < 50000 || a6 < 10000 || c6 < 10000 || names < 10000 {
		t.Fatalf("tables look truncated: asn4=%d cc4=%d asn6=%d cc6=%d names=%d", a4, c4, a6, c6, names)
	}
	for _, tc := range []struct {
		addr    string
		asn     uint32
		country string
		name    string
	}{
		{"8.8.8.8", 15169, "US", "Google LLC"},
		{"1.1.1.1", 13335, "AU", "Cloudflare, Inc."},
		{"157.240.1.35", 32934, "US", ""},
		{"45.57.12.1", 2906, "US", "Netflix Streaming Services Inc."},
		{"2001:4860:4860::8888", 15169, "", "Google LLC"},
		{"::ffff:8.8.4.4", 15169, "US", ""},
	} {
		got := db.Lookup(netip.MustParseAddr(tc.addr))
		if got.ASN != tc.asn {
			t.Errorf("%s: ASN %d, want %d", tc.addr, got.ASN, tc.asn)
		}
		if tc.country != "" && got.Country != tc.country {
			t.Errorf("%s: country %q, want %q", tc.addr, got.Country, tc.country)
		}
		if tc.name != "" && db.ASName(got.ASN) != tc.name {
			t.Errorf("%s: AS name %q, want %q", tc.addr, db.ASName(got.ASN), tc.name)
		}
	}
	// Unallocated and private space has no data.
	for _, a := range []string{"10.1.2.3", "0.0.0.1", "fd00::1"} {
		if got := db.Lookup(netip.MustParseAddr(a)); got.ASN != 0 {
			t.Errorf("%s: unexpected ASN %d", a, got.ASN)
		}
	}
	if got := db.Lookup(netip.Addr{}); got != (Result{}) {
		t.Errorf("zero address: %+v", got)
	}
}

func TestBuilderRoundTrip(t *testing.T) {
	b := NewBuilder("test")
	add := func(s, e string, asn uint32, name string) {
		t.Helper()
		if err := b.AddASN(netip.MustParseAddr(s), netip.MustParseAddr(e), asn, name); err != nil {
			t.Fatal(err)
		}
	}
	add("10.0.0.0", "10.0.0.255", 64500, "first")
	add("10.0.1.0", "10.0.1.255", 64500, "") // adjacent, merged
	add("10.0.3.0", "10.0.3.255", 64501, "second")
	add("10.0.3.128", "10.0.4.255", 64502, "overlap") // overlaps: dropped
	add("255.255.255.0", "255.255.255.255", 64503, "top")
	add("2001:db8::", "2001:db8::ffff", 64510, "six")
	add("ffff::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 64511, "six top")
	if err := b.AddCountry(netip.MustParseAddr("10.0.0.0"), netip.MustParseAddr("10.0.3.255"), "NZ"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddCountry(netip.MustParseAddr("2001:db8::"), netip.MustParseAddr("2001:db8::1"), "DE"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddCountry(netip.MustParseAddr("10.0.0.0"), netip.MustParseAddr("10.0.0.1"), "nz"); err == nil {
		t.Error("lower-case country accepted")
	}
	if err := b.AddASN(netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("10.0.0.1"), 1, ""); err == nil {
		t.Error("reversed range accepted")
	}
	if err := b.AddASN(netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("::1"), 1, ""); err == nil {
		t.Error("mixed families accepted")
	}
	var buf bytes.Buffer
	if err := b.Write(&buf); err != nil {
		t.Fatal(err)
	}
	db, err := Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	built, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if db.Note != "test" {
		t.Errorf("note %q", db.Note)
	}
	if a4, _, _, _, _ := db.Counts(); a4 != 3 {
		t.Errorf("want 3 IPv4 ranges after merge and overlap removal, got %d", a4)
	}
	for _, tc := range []struct {
		addr string
		want Result
	}{
		{"9.255.255.255", Result{}},
		{"10.0.0.0", Result{64500, "NZ"}},
		{"10.0.1.255", Result{64500, "NZ"}},
		{"10.0.2.0", Result{0, "NZ"}},
		{"10.0.3.200", Result{64501, "NZ"}},
		{"10.0.4.1", Result{}},
		{"255.255.255.255", Result{64503, ""}},
		{"2001:db8::1", Result{64510, "DE"}},
		{"2001:db8::2", Result{64510, ""}},
		{"2001:db8::1:0", Result{}},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Result{64511, ""}},
	} {
		if got := db.Lookup(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.addr, got, tc.want)
		}
		if got := built.Lookup(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("%s: Build: got %+v, want %+v", tc.addr, got, tc.want)
		}
	}
	for _, d := range []*DB{db, built} {
		if d.ASName(64500) != "first" || d.ASName(64502) != "overlap" || d.ASName(1) != "" {
			t.Errorf("names: %q %q %q", d.ASName(64500), d.ASName(64502), d.ASName(1))
		}
	}
	if got, want := fmt.Sprint(built.Counts()), fmt.Sprint(db.Counts()); got != want {
		t.Errorf("Build counts %s, Read counts %s", got, want)
	}
}

func TestReadCorrupt(t *testing.T) {
	b := NewBuilder("x")
	b.AddASN(netip.MustParseAddr("10.0.0.0"), netip.MustParseAddr("10.0.0.255"), 64500, "a")
	var buf bytes.Buffer
	if err := b.Write(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	cases := map[string][]byte{
		"empty":     nil,
		"not gzip":  []byte("hello"),
		"truncated": good[:len(good)/2],
	}
	for name, in := range cases {
		if _, err := Read(bytes.NewReader(in)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err = %v, want ErrFormat", name, err)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	db, err := Embedded()
	if err != nil {
		b.Fatal(err)
	}
	addrs := []netip.Addr{
		netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("157.240.1.35"),
		netip.MustParseAddr("45.57.12.1"), netip.MustParseAddr("203.0.113.9"),
		netip.MustParseAddr("2001:4860:4860::8888"), netip.MustParseAddr("2a03:2880:f12f::1"),
		netip.MustParseAddr("1.1.1.1"), netip.MustParseAddr("185.60.216.35"),
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = db.Lookup(addrs[i&7])
		i++
	}
}

// BenchmarkLookupRandom looks up addresses spread over the whole space, so
// the binary search misses the CPU caches as it would on real traffic.
func BenchmarkLookupRandom(b *testing.B) {
	db, err := Embedded()
	if err != nil {
		b.Fatal(err)
	}
	addrs := make([]netip.Addr, 4096)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range addrs {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		if i%4 == 3 {
			var a [16]byte
			a[0], a[1] = 0x20, 0x01+byte(x>>56)%3
			for j := 2; j < 16; j++ {
				a[j] = byte(x >> (j * 4))
			}
			addrs[i] = netip.AddrFrom16(a)
		} else {
			addrs[i] = netip.AddrFrom4([4]byte{byte(x), byte(x >> 8), byte(x >> 16), byte(x >> 24)})
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = db.Lookup(addrs[i&4095])
		i++
	}
}

// TestBucketIndex checks the bucket index against a search of the whole
// table, on the embedded tables, at every range boundary of a sample and
// at random addresses.
func TestBucketIndex(t *testing.T) {
	db, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	x := uint64(0x9e3779b97f4a7c15)
	next := func() uint64 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return x
	}
	for _, r := range []*Ranges4{&db.asn4, &db.cc4} {
		if r.buckets == nil {
			t.Fatal("no bucket index after Read")
		}
		whole := Ranges4{Start: r.Start, End: r.End, Val: r.Val}
		probe := func(a uint32) {
			if got, want := r.Find(a), whole.Find(a); got != want {
				t.Fatalf("%#x: %d with the index, %d without", a, got, want)
			}
		}
		for i := 0; i < r.Len(); i += 1 + int(next()%64) {
			for _, a := range []uint32{r.Start[i], r.Start[i] - 1, r.End[i], r.End[i] + 1} {
				probe(a)
			}
		}
		for range 100000 {
			probe(uint32(next()))
		}
		probe(0)
		probe(^uint32(0))
	}
	for _, r := range []*Ranges6{&db.asn6, &db.cc6} {
		whole := Ranges6{Start: r.Start, End: r.End, Val: r.Val}
		probe := func(a U128) {
			if got, want := r.Find(a), whole.Find(a); got != want {
				t.Fatalf("%x: %d with the index, %d without", a, got, want)
			}
		}
		for i := 0; i < r.Len(); i += 1 + int(next()%64) {
			for _, a := range []U128{r.Start[i], r.Start[i].sub(one128), r.End[i], r.End[i].add(one128)} {
				probe(a)
			}
		}
		for range 100000 {
			probe(U128{0x2000<<48 | next()>>4, next()})
		}
		probe(U128{})
		probe(U128{^uint64(0), ^uint64(0)})
	}
}
