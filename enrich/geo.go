package enrich

import (
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/flowbox/flowbox/enrich/geodata"
)

// GeoAttribution is the credit line for the built-in ASN and country
// tables, to show in the README and the web console (CC BY 4.0).
const GeoAttribution = geodata.Attribution

// fileStamp identifies a version of a file, to notice changes: a file
// replaced by a rename is another file even with the same size and time.
type fileStamp struct {
	info    os.FileInfo
	size    int64
	modTime time.Time
}

// same reports whether s and o describe the same version of a file.
func (s fileStamp) same(o fileStamp) bool {
	if s.info == nil || o.info == nil {
		return s.info == o.info
	}
	return os.SameFile(s.info, o.info) && s.size == o.size && s.modTime.Equal(o.modTime)
}

func stampOf(path string) (fileStamp, error) {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{st, st.Size(), st.ModTime()}, nil
}

// maxMMDBSize bounds the geoip files read into memory (GeoLite2-City, the
// largest file that has the fields we read, is about 70 MB).
const maxMMDBSize = 512 << 20

// mmdbASN is the record of GeoLite2-ASN and DB-IP ASN lite databases.
type mmdbASN struct {
	ASN uint32 `maxminddb:"autonomous_system_number"`
	Org string `maxminddb:"autonomous_system_organization"`
}

// mmdbCountry is the part of GeoLite2-Country / DB-IP country records we
// use (City databases have the same fields). RegisteredCountry is used
// when a network has no geolocated country (some anycast and satellite
// networks).
type mmdbCountry struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
}

func (c *mmdbCountry) code() string {
	if c.Country.ISOCode != "" {
		return c.Country.ISOCode
	}
	return c.RegisteredCountry.ISOCode
}

// asnFile is a loaded ASN database, turned at load into the same range
// tables as the built-in data (package geodata): a lookup is a short
// binary search with no decoding and no allocation, and the file's bytes
// are not kept.
type asnFile struct {
	db    *geodata.DB
	built time.Time
	stamp fileStamp
}

// countryFile is a loaded country database, kept like asnFile.
type countryFile struct {
	db    *geodata.DB
	built time.Time
	stamp fileStamp
}

// lookup returns the ASN of a, 0 when the file has none.
func (f *asnFile) lookup(a netip.Addr) uint32 { return f.db.ASN(a) }

// lookup returns the country code of a, "" when the file has none.
func (f *countryFile) lookup(a netip.Addr) string { return f.db.Country(a) }

// geoState is one immutable generation of the geo sources.
type geoState struct {
	builtin *geodata.DB
	asn     *asnFile     // nil: use builtin
	country *countryFile // nil: use builtin
}

// geo resolves ASNs, AS names and countries. Lookups are lock-free; reload
// swaps the whole state.
type geo struct {
	cfg   GeoIPConfig
	state atomic.Pointer[geoState]

	// Reload runs from one goroutine; the mutex keeps it safe anyway.
	mu                     sync.Mutex
	asnWatch, countryWatch fileWatch
}

// fileWatch remembers the failures of one file, so a broken or missing
// file is reported once, not at every check.
type fileWatch struct {
	failed  fileStamp // a version that could not be loaded
	missing bool      // the file could not be found at the last check
}

// newGeo loads the built-in tables and the configured mmdb files.
func newGeo(cfg GeoIPConfig) (*geo, error) {
	db, err := geodata.Embedded()
	if err != nil {
		return nil, err
	}
	g := &geo{cfg: cfg}
	st := &geoState{builtin: db}
	if cfg.ASNFile != "" {
		if st.asn, err = loadASNFile(cfg.ASNFile); err != nil {
			return nil, fmt.Errorf("geoip.asn-file: %w", err)
		}
	}
	if cfg.CountryFile != "" {
		if st.country, err = loadCountryFile(cfg.CountryFile); err != nil {
			return nil, fmt.Errorf("geoip.country-file: %w", err)
		}
	}
	g.state.Store(st)
	return g, nil
}

// readMMDB reads a whole .mmdb file into memory (not mmap: a reload must
// not unmap memory that a concurrent lookup still reads).
func readMMDB(path string) ([]byte, fileStamp, error) {
	stamp, err := stampOf(path)
	if err != nil {
		return nil, stamp, fmt.Errorf("cannot open %s: %w", path, err)
	}
	if !stamp.info.Mode().IsRegular() {
		return nil, stamp, fmt.Errorf("cannot open %s: not a regular file", path)
	}
	if stamp.size > maxMMDBSize {
		return nil, stamp, fmt.Errorf("cannot open %s: %d bytes, more than the %d MiB limit", path, stamp.size, maxMMDBSize>>20)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, stamp, fmt.Errorf("cannot read %s: %w", path, err)
	}
	return b, stamp, nil
}

// openMMDB opens a database held in b and verifies it, so that lookups
// never meet a corrupt tree or record.
func openMMDB(b []byte) (*maxminddb.Reader, error) {
	r, err := maxminddb.OpenBytes(b)
	if err != nil {
		return nil, fmt.Errorf("not a MaxMind DB file: %w", err)
	}
	if err := r.Verify(); err != nil {
		return nil, fmt.Errorf("corrupt MaxMind DB file: %w", err)
	}
	return r, nil
}

// loadASNFile reads and decodes an ASN database file.
func loadASNFile(path string) (*asnFile, error) {
	b, stamp, err := readMMDB(path)
	if err != nil {
		return nil, err
	}
	f, err := newASNFile(b)
	if err != nil {
		return nil, fmt.Errorf("cannot load %s: %w", path, err)
	}
	f.stamp = stamp
	return f, nil
}

// networkRange returns the first and last address of a network of a
// MaxMind DB. ok is false for IPv6 networks that hold IPv4-mapped
// addresses (::ffff:0:0/96, or one containing the IPv4 subtree ::/96):
// flows' addresses are unmapped before lookups, so IPv4 data comes from
// the IPv4 networks, and such a network would cover all of IPv4.
func networkRange(p netip.Prefix) (first, last netip.Addr, ok bool) {
	p = p.Masked()
	first, last = p.Addr(), lastAddr(p)
	return first, last, !first.Is4In6() && !last.Is4In6()
}

// newASNFile decodes an ASN database held in b. Each record is decoded
// once, however many networks share it.
func newASNFile(b []byte) (*asnFile, error) {
	r, err := openMMDB(b)
	if err != nil {
		return nil, err
	}
	bld := geodata.NewBuilder(r.Metadata.DatabaseType)
	records := map[uintptr]mmdbASN{}
	for res := range r.Networks() {
		if err := res.Err(); err != nil {
			return nil, fmt.Errorf("cannot read the search tree: %w", err)
		}
		rec, ok := records[res.Offset()]
		if !ok {
			if err := res.Decode(&rec); err != nil {
				return nil, fmt.Errorf("cannot decode the record of %s: %w", res.Prefix(), err)
			}
			records[res.Offset()] = rec
		}
		first, last, ok := networkRange(res.Prefix())
		if rec.ASN == 0 || !ok {
			continue
		}
		if err := bld.AddASN(first, last, rec.ASN, rec.Org); err != nil {
			return nil, fmt.Errorf("cannot add %s: %w", res.Prefix(), err)
		}
	}
	db, err := bld.Build()
	if err != nil {
		return nil, err
	}
	if _, _, _, _, names := db.Counts(); names == 0 {
		return nil, fmt.Errorf("no autonomous_system_number records in a %q database (is it an ASN database?)",
			r.Metadata.DatabaseType)
	}
	return &asnFile{db: db, built: r.Metadata.BuildTime()}, nil
}

// loadCountryFile reads and decodes a country database file.
func loadCountryFile(path string) (*countryFile, error) {
	b, stamp, err := readMMDB(path)
	if err != nil {
		return nil, err
	}
	f, err := newCountryFile(b)
	if err != nil {
		return nil, fmt.Errorf("cannot load %s: %w", path, err)
	}
	f.stamp = stamp
	return f, nil
}

// newCountryFile decodes a country database held in b, like newASNFile.
// Codes that are not two capital letters are ignored.
func newCountryFile(b []byte) (*countryFile, error) {
	r, err := openMMDB(b)
	if err != nil {
		return nil, err
	}
	bld := geodata.NewBuilder(r.Metadata.DatabaseType)
	records := map[uintptr]string{}
	for res := range r.Networks() {
		if err := res.Err(); err != nil {
			return nil, fmt.Errorf("cannot read the search tree: %w", err)
		}
		cc, ok := records[res.Offset()]
		if !ok {
			var rec mmdbCountry
			if err := res.Decode(&rec); err != nil {
				return nil, fmt.Errorf("cannot decode the record of %s: %w", res.Prefix(), err)
			}
			cc = rec.code()
			if geodata.CountryCode(cc) == 0 {
				cc = ""
			}
			records[res.Offset()] = cc
		}
		first, last, ok := networkRange(res.Prefix())
		if cc == "" || !ok {
			continue
		}
		if err := bld.AddCountry(first, last, cc); err != nil {
			return nil, fmt.Errorf("cannot add %s: %w", res.Prefix(), err)
		}
	}
	db, err := bld.Build()
	if err != nil {
		return nil, err
	}
	if _, cc4, _, cc6, _ := db.Counts(); cc4+cc6 == 0 {
		return nil, fmt.Errorf("no country.iso_code records in a %q database (is it a country database?)",
			r.Metadata.DatabaseType)
	}
	return &countryFile{db: db, built: r.Metadata.BuildTime()}, nil
}

// reloadResult is what one reload check did, per file.
type reloadResult struct {
	reloaded []string // "asn-file", "country-file"
	errs     []error
}

// reload re-reads the configured files that changed since they were
// loaded. On error the previous data stays in use; a file version that
// failed is not retried (nor reported again) until it changes, and a
// missing file is reported when it goes missing.
func (g *geo) reload() reloadResult {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.state.Load()
	next := *old
	var res reloadResult
	check := func(key, path string, current fileStamp, w *fileWatch, load func() error) {
		st, err := stampOf(path)
		if err != nil {
			if !w.missing {
				res.errs = append(res.errs, fmt.Errorf("geoip.%s: cannot check %s: %w", key, path, err))
				w.missing = true
			}
			return
		}
		w.missing = false
		if st.same(current) || st.same(w.failed) {
			return
		}
		if err := load(); err != nil {
			res.errs = append(res.errs, fmt.Errorf("geoip.%s: %w", key, err))
			w.failed = st
			return
		}
		w.failed = fileStamp{}
		res.reloaded = append(res.reloaded, key)
	}
	if g.cfg.ASNFile != "" {
		check("asn-file", g.cfg.ASNFile, old.asn.stamp, &g.asnWatch, func() error {
			f, err := loadASNFile(g.cfg.ASNFile)
			if err == nil {
				next.asn = f
			}
			return err
		})
	}
	if g.cfg.CountryFile != "" {
		check("country-file", g.cfg.CountryFile, old.country.stamp, &g.countryWatch, func() error {
			f, err := loadCountryFile(g.cfg.CountryFile)
			if err == nil {
				next.country = f
			}
			return err
		})
	}
	if len(res.reloaded) > 0 {
		g.state.Store(&next)
	}
	return res
}

// lookup returns the ASN and country of a public address.
func (st *geoState) lookup(a netip.Addr) (asn uint32, country string) {
	a = a.Unmap()
	if st.asn == nil || st.country == nil {
		r := st.builtin.Lookup(a)
		asn, country = r.ASN, r.Country
	}
	if st.asn != nil {
		asn = st.asn.lookup(a)
	}
	if st.country != nil {
		country = st.country.lookup(a)
	}
	return asn, country
}

// asName returns the name of an AS.
func (st *geoState) asName(asn uint32) string {
	if st.asn != nil {
		return st.asn.db.ASName(asn)
	}
	return st.builtin.ASName(asn)
}

// AddrInfo describes an address for the UI.
type AddrInfo struct {
	// Label is set instead of the rest for special addresses (private,
	// cgnat, loopback, link-local, multicast, broadcast, bogon).
	Label   string
	ASN     uint32
	ASName  string
	Country string
}
