package enrich

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

var testBuilt = time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)

// testASNNets uses private-use AS numbers, so that an answer from the
// built-in tables cannot pass for one from the file.
var testASNNets = []mmdbNet{
	{"8.8.0.0/16", asnRecord(64502, "Wide Org")},
	{"8.8.8.0/24", asnRecord(64500, "Resolver Org")}, // splits the /16
	{"45.57.0.0/17", asnRecord(64501, "Video Org")},
	{"2001:4860::/32", asnRecord(64500, "Resolver Org")},
	{"2a03:2880::/32", asnRecord(4200000001, "Four Byte Org")},
	// Data under the IPv4-mapped prefix must not cover all of IPv4.
	{"::ffff:0:0/96", asnRecord(64999, "Mapped Org")},
}

var testCountryNets = []mmdbNet{
	{"8.8.8.0/24", countryRecord("NZ", 2186224)},
	{"45.57.0.0/17", countryRecord("JP", 1861060)},
	{"2001:4860::/32", countryRecord("NZ", 2186224)},
	// No geolocated country: the registered one is used.
	{"5.5.5.0/24", mmdbMap{"registered_country": mmdbMap{"iso_code": "SE", "geoname_id": uint32(2661886)}}},
}

// TestMMDBWriter checks the test writer against the reader's own
// verifier, so the files the other tests use are valid MaxMind DBs.
func TestMMDBWriter(t *testing.T) {
	r, err := maxminddb.OpenBytes(buildMMDB(t, "GeoLite2-ASN", testBuilt, testASNNets))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if r.Metadata.DatabaseType != "GeoLite2-ASN" || !r.Metadata.BuildTime().Equal(testBuilt) || r.Metadata.RecordSize != 24 {
		t.Errorf("metadata %+v", r.Metadata)
	}
	for a, want := range map[string]mmdbASN{
		"8.8.8.8": {64500, "Resolver Org"}, "8.8.4.4": {64502, "Wide Org"}, "8.9.0.1": {},
		"45.57.127.255": {64501, "Video Org"}, "45.57.128.0": {}, "2001:4860::8888": {64500, "Resolver Org"},
		"2a03:2880:f12f::1": {4200000001, "Four Byte Org"}, "::1": {}, "::ffff:9.9.9.9": {64999, "Mapped Org"},
	} {
		var got mmdbASN
		if err := r.Lookup(addr(a)).Decode(&got); err != nil || got != want {
			t.Errorf("%s: %+v, %v; want %+v", a, got, err, want)
		}
	}
	// 8.8.8.0/24 splits 8.8.0.0/16 into itself and 8 siblings
	// (8.8.128.0/17 .. 8.8.9.0/24), plus the 4 other networks.
	n := 0
	for res := range r.Networks() {
		if res.Err() != nil {
			t.Fatal(res.Err())
		}
		n++
	}
	if n != 13 {
		t.Errorf("%d networks, want 13", n)
	}
}

// geoConfig returns a config using the given files.
func geoConfig(asnFile, countryFile string) Config {
	cfg := DefaultConfig()
	cfg.Prefixes = []string{"100.64.0.0/10"}
	cfg.GeoIP.ASNFile, cfg.GeoIP.CountryFile = asnFile, countryFile
	return cfg
}

func TestGeoIPFiles(t *testing.T) {
	dir := t.TempDir()
	asnPath := mmdbPath(t, dir, "GeoLite2-ASN.mmdb", buildMMDB(t, "GeoLite2-ASN", testBuilt, testASNNets))
	ccPath := mmdbPath(t, dir, "GeoLite2-Country.mmdb", buildMMDB(t, "GeoLite2-Country", testBuilt, testCountryNets))

	e, sink, reg := newTestEnricher(t, geoConfig(asnPath, ccPath), Deps{})
	for a, want := range map[string]AddrInfo{
		"8.8.8.8":          {ASN: 64500, ASName: "Resolver Org", Country: "NZ"},
		"::ffff:8.8.8.8":   {ASN: 64500, ASName: "Resolver Org", Country: "NZ"},
		"8.8.4.4":          {ASN: 64502, ASName: "Wide Org"}, // no country record
		"45.57.12.1":       {ASN: 64501, ASName: "Video Org", Country: "JP"},
		"2001:4860::8888":  {ASN: 64500, ASName: "Resolver Org", Country: "NZ"},
		"2a03:2880::1":     {ASN: 4200000001, ASName: "Four Byte Org"},
		"5.5.5.5":          {Country: "SE"},
		"1.1.1.1":          {}, // in the built-in tables, not in the files: the files win
		"100.64.1.1":       {Label: LabelCGNAT},
		"2001:db8::1":      {Label: LabelBogon},
		"157.240.1.35":     {},
		"2600:1f18::1":     {},
		"203.0.113.255":    {Label: LabelBogon},
		"255.255.255.255":  {Label: LabelBroadcast},
		"2a03:2880:ffff::": {ASN: 4200000001, ASName: "Four Byte Org"},
	} {
		if got := e.LookupAddr(addr(a)); got != want {
			t.Errorf("%s: %+v, want %+v", a, got, want)
		}
	}
	if n := e.ASName(64501); n != "Video Org" {
		t.Errorf("AS64501 name %q", n)
	}
	if n := e.ASName(15169); n != "" {
		t.Errorf("AS15169 is not in the file but named %q", n)
	}

	flows := []store.Flow{
		{SrcAddr: addr("100.64.0.9"), DstAddr: addr("8.8.8.8"), Proto: 17, SrcPort: 40000, DstPort: 53},
		{SrcAddr: addr("45.57.1.1"), DstAddr: addr("100.64.0.9"), Proto: 6, SrcPort: 443, DstPort: 40001},
		// The exporter's AS numbers are kept.
		{SrcAddr: addr("45.57.1.1"), DstAddr: addr("100.64.0.9"), Proto: 6, SrcPort: 443, DstPort: 40001, SrcAS: 2906},
	}
	if err := e.InsertFlows(context.Background(), flows); err != nil {
		t.Fatal(err)
	}
	type labels struct {
		srcAS, dstAS uint32
		src, dst     string
	}
	for i, want := range []labels{{0, 64500, LabelCGNAT, "NZ"}, {64501, 0, "JP", LabelCGNAT}, {2906, 0, "JP", LabelCGNAT}} {
		f := sink.flows[i]
		if got := (labels{f.SrcAS, f.DstAS, f.SrcCountry, f.DstCountry}); got != want {
			t.Errorf("flow %d: %+v, want %+v", i, got, want)
		}
	}
	if v := promtestutil.ToFloat64(e.metrics.geoBuild.WithLabelValues("asn-file")); v != float64(testBuilt.Unix()) {
		t.Errorf("asn-file build time %v", v)
	}
	if n, _ := promtestutil.GatherAndCount(reg, "flowbox_enrich_geoip_build_timestamp_seconds"); n != 2 {
		t.Errorf("%d build time series", n)
	}

	// An ASN file alone: countries still come from the built-in tables.
	e2, _, _ := newTestEnricher(t, geoConfig(asnPath, ""), Deps{})
	if got := e2.LookupAddr(addr("8.8.8.8")); got != (AddrInfo{ASN: 64500, ASName: "Resolver Org", Country: "US"}) {
		t.Errorf("asn-file only: %+v", got)
	}
	if v := promtestutil.ToFloat64(e2.metrics.geoBuild.WithLabelValues("country-file")); v != 0 {
		t.Errorf("country-file build time %v with the built-in tables", v)
	}
	// A country file alone: AS numbers and names from the built-in tables.
	e3, _, _ := newTestEnricher(t, geoConfig("", ccPath), Deps{})
	if got := e3.LookupAddr(addr("8.8.8.8")); got != (AddrInfo{ASN: 15169, ASName: "Google LLC", Country: "NZ"}) {
		t.Errorf("country-file only: %+v", got)
	}
}

// TestGeoIPReload runs the Enricher and replaces its ASN file under it:
// a new file is served at the next check, a corrupt or truncated one is
// reported once and the previous data kept, a missing one too.
func TestGeoIPReload(t *testing.T) {
	dir := t.TempDir()
	asnPath := mmdbPath(t, dir, "GeoLite2-ASN.mmdb", buildMMDB(t, "GeoLite2-ASN", testBuilt, testASNNets))
	ccPath := mmdbPath(t, dir, "GeoLite2-Country.mmdb", buildMMDB(t, "GeoLite2-Country", testBuilt, testCountryNets))
	newer := testBuilt.Add(7 * 24 * time.Hour)
	renamed := buildMMDB(t, "GeoLite2-ASN", newer, []mmdbNet{
		{"8.8.8.0/24", asnRecord(64510, "Renamed Org")},
		{"9.9.9.0/24", asnRecord(64511, "New Org")},
	})

	synctest.Test(t, func(t *testing.T) {
		logs := &testutil.SyncBuffer{}
		cfg := geoConfig(asnPath, ccPath)
		cfg.GeoIP.ReloadInterval = 5 * time.Second
		e, err := New(cfg, Deps{Next: &captureSink{}, Logger: slog.New(slog.NewTextHandler(logs, nil)),
			Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		tick := func() {
			time.Sleep(cfg.GeoIP.ReloadInterval) // the bubble's fake clock: one reload check
			synctest.Wait()
		}
		reloads := func(result string) float64 {
			return promtestutil.ToFloat64(e.metrics.geoReloads.WithLabelValues(result))
		}
		check := func(step string, a string, want AddrInfo, ok, failed float64) {
			t.Helper()
			if got := e.LookupAddr(addr(a)); got != want {
				t.Errorf("%s: %s is %+v, want %+v", step, a, got, want)
			}
			if reloads("ok") != ok || reloads("error") != failed {
				t.Errorf("%s: reloads ok=%v error=%v, want %v and %v", step, reloads("ok"), reloads("error"), ok, failed)
			}
		}

		tick()
		check("unchanged", "8.8.8.8", AddrInfo{ASN: 64500, ASName: "Resolver Org", Country: "NZ"}, 0, 0)

		writeFileAtomic(t, asnPath, renamed)
		tick()
		check("replaced", "8.8.8.8", AddrInfo{ASN: 64510, ASName: "Renamed Org", Country: "NZ"}, 1, 0)
		check("replaced", "45.57.12.1", AddrInfo{Country: "JP"}, 1, 0)
		if v := promtestutil.ToFloat64(e.metrics.geoBuild.WithLabelValues("asn-file")); v != float64(newer.Unix()) {
			t.Errorf("build time after reload %v", v)
		}
		if !strings.Contains(logs.String(), `msg="geoip file reloaded" file=asn-file`) {
			t.Errorf("no reload log:\n%s", logs)
		}

		// Garbage: reported once, the previous data stays.
		writeFileAtomic(t, asnPath, []byte("this is not a MaxMind DB file"))
		tick()
		check("garbage", "8.8.8.8", AddrInfo{ASN: 64510, ASName: "Renamed Org", Country: "NZ"}, 1, 1)
		tick()
		check("garbage again", "8.8.8.8", AddrInfo{ASN: 64510, ASName: "Renamed Org", Country: "NZ"}, 1, 1)
		if want := "cannot reload geoip file, keeping the previous data\" error=\"geoip.asn-file: cannot load " + asnPath + ": not a MaxMind DB file"; !strings.Contains(logs.String(), want) {
			t.Errorf("log does not contain %q:\n%s", want, logs)
		}
		// A truncated download is another broken version.
		good := buildMMDB(t, "GeoLite2-ASN", newer, testASNNets)
		writeFileAtomic(t, asnPath, good[:len(good)/2])
		tick()
		check("truncated", "8.8.8.8", AddrInfo{ASN: 64510, ASName: "Renamed Org", Country: "NZ"}, 1, 2)
		// A country database in place of the ASN one.
		writeFileAtomic(t, asnPath, buildMMDB(t, "GeoLite2-Country", newer, testCountryNets))
		tick()
		check("wrong type", "8.8.8.8", AddrInfo{ASN: 64510, ASName: "Renamed Org", Country: "NZ"}, 1, 3)
		if !strings.Contains(logs.String(), "no autonomous_system_number records in a \\\"GeoLite2-Country\\\" database (is it an ASN database?)") {
			t.Errorf("no wrong-type log:\n%s", logs)
		}

		// A good file again.
		writeFileAtomic(t, asnPath, good)
		tick()
		check("fixed", "8.8.8.8", AddrInfo{ASN: 64500, ASName: "Resolver Org", Country: "NZ"}, 2, 3)

		// Removed: reported once, the data stays; back: reloaded.
		if err := os.Remove(asnPath); err != nil {
			t.Fatal(err)
		}
		tick()
		tick()
		check("removed", "8.8.8.8", AddrInfo{ASN: 64500, ASName: "Resolver Org", Country: "NZ"}, 2, 4)
		writeFileAtomic(t, asnPath, renamed)
		tick()
		check("restored", "9.9.9.9", AddrInfo{ASN: 64511, ASName: "New Org"}, 3, 4)

		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestGeoIPConfigErrors(t *testing.T) {
	dir := t.TempDir()
	asnDB := buildMMDB(t, "GeoLite2-ASN", testBuilt, testASNNets)
	ccDB := buildMMDB(t, "GeoLite2-Country", testBuilt, testCountryNets)
	good := mmdbPath(t, dir, "asn.mmdb", asnDB)
	missing := filepath.Join(dir, "missing.mmdb")
	garbage := mmdbPath(t, dir, "garbage.mmdb", []byte("GIF89a not a database"))
	// A valid file whose search tree points past the data section.
	badTree := append([]byte(nil), asnDB...)
	badTree[0], badTree[1], badTree[2] = 0xff, 0xff, 0xf0
	badTreePath := mmdbPath(t, dir, "bad-tree.mmdb", badTree)
	countryAsASN := mmdbPath(t, dir, "country.mmdb", ccDB)
	for _, tc := range []struct {
		name      string
		asn, cc   string
		wantError string
	}{
		{"missing", missing, "", "invalid enrich config: geoip.asn-file: " + missing + ": no such file or directory"},
		{"missing country", good, missing, "invalid enrich config: geoip.country-file: " + missing + ": no such file or directory"},
		{"directory", dir, "", "invalid enrich config: geoip.asn-file: " + dir + ": not a regular file"},
		{"garbage", garbage, "", "cannot build enricher: geoip.asn-file: cannot load " + garbage + ": not a MaxMind DB file: "},
		{"bad tree", badTreePath, "", "cannot build enricher: geoip.asn-file: cannot load " + badTreePath + ": corrupt MaxMind DB file: "},
		{"country as asn", countryAsASN, "", "cannot build enricher: geoip.asn-file: cannot load " + countryAsASN +
			`: no autonomous_system_number records in a "GeoLite2-Country" database (is it an ASN database?)`},
		{"asn as country", "", good, "cannot build enricher: geoip.country-file: cannot load " + good +
			`: no country.iso_code records in a "GeoLite2-ASN" database (is it a country database?)`},
	} {
		_, err := New(geoConfig(tc.asn, tc.cc), Deps{Next: &captureSink{}, Logger: testLogger(), Registerer: prometheus.NewRegistry()})
		if err == nil || !strings.HasPrefix(err.Error(), tc.wantError) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.wantError)
		}
	}
}

// TestGeoIPCorruptFiles damages databases byte by byte and by
// truncation: loading fails with an error or succeeds, and lookups in what
// loaded never panic.
func TestGeoIPCorruptFiles(t *testing.T) {
	probes := []netip.Addr{addr("8.8.8.8"), addr("8.8.4.4"), addr("45.57.1.1"), addr("2001:4860::1"),
		addr("2a03:2880::1"), addr("5.5.5.5"), addr("1.2.3.4")}
	for _, tc := range []struct {
		name string
		db   []byte
		load func(b []byte) (func(netip.Addr), error)
	}{
		{"asn", buildMMDB(t, "GeoLite2-ASN", testBuilt, testASNNets), func(b []byte) (func(netip.Addr), error) {
			f, err := newASNFile(b)
			if err != nil {
				return nil, err
			}
			return func(a netip.Addr) { f.lookup(a) }, nil
		}},
		{"country", buildMMDB(t, "GeoLite2-Country", testBuilt, testCountryNets), func(b []byte) (func(netip.Addr), error) {
			f, err := newCountryFile(b)
			if err != nil {
				return nil, err
			}
			return func(a netip.Addr) { f.lookup(a) }, nil
		}},
	} {
		loaded, failed := 0, 0
		for i := range tc.db {
			b := append([]byte(nil), tc.db...)
			b[i] ^= 0xa5
			lookup, err := tc.load(b)
			if err != nil {
				failed++
				continue
			}
			loaded++
			for _, a := range probes {
				lookup(a)
			}
		}
		for n := 0; n < len(tc.db); n++ {
			if _, err := tc.load(tc.db[:n]); err == nil {
				t.Errorf("%s: a file truncated to %d of %d bytes loaded", tc.name, n, len(tc.db))
			}
		}
		// Damage inside a string (a name) leaves a valid file; damage to the
		// tree, the separator or the metadata does not.
		if loaded == 0 || failed == 0 {
			t.Errorf("%s: %d damaged files loaded, %d refused: want some of each", tc.name, loaded, failed)
		}
	}
}

// TestEnrichAllocs checks that enrichment allocates nothing per batch,
// with the built-in tables and with MaxMind files.
func TestEnrichAllocs(t *testing.T) {
	for _, mmdb := range []bool{false, true} {
		fx := newWISPFixture(t, 300, 2000, discardSink{})
		if mmdb {
			fx = newWISPFixtureMMDB(t, 300, 2000)
		}
		work := make([]store.Flow, 1000)
		allocs := testing.AllocsPerRun(20, func() {
			copy(work, fx.flows[:1000])
			fx.e.Enrich(work)
		})
		if allocs != 0 {
			t.Errorf("mmdb=%v: %v allocations per batch", mmdb, allocs)
		}
	}
}
