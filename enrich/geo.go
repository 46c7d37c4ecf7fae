package enrich

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/flowbox/flowbox/enrich/geodata"
)

// GeoAttribution is the credit line for the built-in ASN and country
// tables, to show in the README and the web console (CC BY 4.0).
const GeoAttribution = geodata.Attribution

// fileStamp identifies a version of a file, to notice changes.
type fileStamp struct {
	size    int64
	modTime time.Time
}

func stampOf(path string) (fileStamp, error) {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{st.Size(), st.ModTime()}, nil
}

// mmdbASN is the record of GeoLite2-ASN and DB-IP ASN lite databases.
type mmdbASN struct {
	ASN uint32 `maxminddb:"autonomous_system_number"`
	Org string `maxminddb:"autonomous_system_organization"`
}

// mmdbCountry is the part of GeoLite2-Country / DB-IP country records we
// use.
type mmdbCountry struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
}

// geoState is one immutable generation of the geo sources.
type geoState struct {
	builtin      *geodata.DB
	asn          *maxminddb.Reader // nil: use builtin
	asnNames     map[uint32]string
	asnStamp     fileStamp
	country      *maxminddb.Reader // nil: use builtin
	countryStamp fileStamp
}

// geo resolves ASNs, AS names and countries. Lookups are lock-free; reload
// swaps the whole state.
type geo struct {
	cfg   GeoIPConfig
	state atomic.Pointer[geoState]
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
		if st.asn, st.asnNames, st.asnStamp, err = loadASNFile(cfg.ASNFile); err != nil {
			return nil, err
		}
	}
	if cfg.CountryFile != "" {
		if st.country, st.countryStamp, err = loadCountryFile(cfg.CountryFile); err != nil {
			return nil, err
		}
	}
	g.state.Store(st)
	return g, nil
}

// openMMDB reads a whole .mmdb file into memory (not mmap: a reload must
// not unmap memory that a concurrent lookup still reads).
func openMMDB(path string) (*maxminddb.Reader, fileStamp, error) {
	stamp, err := stampOf(path)
	if err != nil {
		return nil, stamp, fmt.Errorf("cannot open geoip file: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, stamp, fmt.Errorf("cannot read geoip file: %w", err)
	}
	r, err := maxminddb.OpenBytes(b)
	if err != nil {
		return nil, stamp, fmt.Errorf("cannot open geoip file %s: %w", path, err)
	}
	return r, stamp, nil
}

func loadASNFile(path string) (*maxminddb.Reader, map[uint32]string, fileStamp, error) {
	r, stamp, err := openMMDB(path)
	if err != nil {
		return nil, nil, stamp, err
	}
	names := map[uint32]string{}
	for res := range r.Networks() {
		var rec mmdbASN
		if err := res.Decode(&rec); err != nil {
			return nil, nil, stamp, fmt.Errorf("cannot read ASN database %s: %w", path, err)
		}
		if rec.ASN != 0 && rec.Org != "" {
			if _, ok := names[rec.ASN]; !ok {
				names[rec.ASN] = rec.Org
			}
		}
	}
	if len(names) == 0 {
		return nil, nil, stamp, fmt.Errorf("ASN database %s: no autonomous_system_number records (is it an ASN database?)", path)
	}
	return r, names, stamp, nil
}

func loadCountryFile(path string) (*maxminddb.Reader, fileStamp, error) {
	r, stamp, err := openMMDB(path)
	if err != nil {
		return nil, stamp, err
	}
	found := false
	for res := range r.Networks() {
		var rec mmdbCountry
		if err := res.Decode(&rec); err != nil {
			return nil, stamp, fmt.Errorf("cannot read country database %s: %w", path, err)
		}
		if rec.Country.ISOCode != "" {
			found = true
			break
		}
	}
	if !found {
		return nil, stamp, fmt.Errorf("country database %s: no country.iso_code records (is it a country database?)", path)
	}
	return r, stamp, nil
}

// reload re-reads the configured files that changed since they were
// loaded. It returns whether anything was reloaded; on error the previous
// state stays in use.
func (g *geo) reload() (bool, error) {
	old := g.state.Load()
	next := *old
	changed := false
	var errs []error
	if g.cfg.ASNFile != "" {
		if st, err := stampOf(g.cfg.ASNFile); err != nil {
			errs = append(errs, fmt.Errorf("cannot check geoip asn-file: %w", err))
		} else if st != old.asnStamp {
			r, names, stamp, err := loadASNFile(g.cfg.ASNFile)
			if err != nil {
				errs = append(errs, err)
			} else {
				next.asn, next.asnNames, next.asnStamp, changed = r, names, stamp, true
			}
		}
	}
	if g.cfg.CountryFile != "" {
		if st, err := stampOf(g.cfg.CountryFile); err != nil {
			errs = append(errs, fmt.Errorf("cannot check geoip country-file: %w", err))
		} else if st != old.countryStamp {
			r, stamp, err := loadCountryFile(g.cfg.CountryFile)
			if err != nil {
				errs = append(errs, err)
			} else {
				next.country, next.countryStamp, changed = r, stamp, true
			}
		}
	}
	if changed {
		g.state.Store(&next)
	}
	return changed, errors.Join(errs...)
}

// lookup returns the ASN and country of a public address.
func (st *geoState) lookup(a netip.Addr) (asn uint32, country string) {
	if st.asn == nil || st.country == nil {
		r := st.builtin.Lookup(a)
		asn, country = r.ASN, r.Country
	}
	if st.asn != nil {
		var rec mmdbASN
		if err := st.asn.Lookup(a).Decode(&rec); err == nil {
			asn = rec.ASN
		} else {
			asn = 0
		}
	}
	if st.country != nil {
		var rec mmdbCountry
		if err := st.country.Lookup(a).Decode(&rec); err == nil {
			country = rec.Country.ISOCode
		} else {
			country = ""
		}
	}
	return asn, country
}

// asName returns the name of an AS.
func (st *geoState) asName(asn uint32) string {
	if st.asn != nil {
		return st.asnNames[asn]
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
