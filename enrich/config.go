package enrich

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// Config configures enrichment. The zero value is not valid: start from
// DefaultConfig.
type Config struct {
	// Prefixes are customer prefixes (CIDR or a single address) added to
	// those learned from the routers; they decide the local side of flows.
	Prefixes []string `yaml:"prefixes"`
	// UpstreamInterfaces names router interfaces that face the internet
	// (e.g. "ether1"): their /ip/address networks are not customer
	// networks (only the router's own address there is local). The
	// interface of the default route is detected too, when the router
	// answers /ip/route.
	UpstreamInterfaces []string `yaml:"upstream-interfaces"`
	// Poll enables polling the routers' API for subscribers and prefixes.
	Poll bool `yaml:"poll"`
	// PollInterval is the time between two polls of a router.
	PollInterval time.Duration `yaml:"poll-interval"`
	// PollTimeout bounds one poll of one router (dial, login, every print).
	PollTimeout time.Duration `yaml:"poll-timeout"`
	// PollConcurrency is the number of routers polled at once.
	PollConcurrency int `yaml:"poll-concurrency"`
	// HistoryWindow is how long ended subscriber records stay in memory for
	// late flows (the store keeps them all).
	HistoryWindow time.Duration `yaml:"history-window"`
	// MaxSubscribers bounds the subscriber records held in memory; records
	// beyond it are dropped and counted.
	MaxSubscribers int `yaml:"max-subscribers"`
	// CustomerIDPattern is a Go regexp that finds a customer id (account
	// number) in what the routers say of a subscriber: DHCP lease, ARP and
	// DHCPv6 binding comments, simple queue names and comments, PPP logins
	// and PPP secret comments. Its capture group is the id (with
	// alternatives, the first group that matched), and the subscriber's
	// name is the text without the matched part ("Maria Lopez #1042" is
	// Maria Lopez, customer 1042). "" takes no ids from the routers.
	// Default: DefaultCustomerIDPattern.
	CustomerIDPattern string `yaml:"customer-id-pattern"`
	// GeoIP selects the ASN and country databases.
	GeoIP GeoIPConfig `yaml:"geoip"`
	// Applications are extra application entries, checked before the
	// built-in table (enrich/data/applications.yaml).
	Applications []AppEntry `yaml:"applications"`
}

// GeoIPConfig points at MaxMind-format databases that replace the
// built-in tables. Empty paths use the built-in (embedded) tables.
type GeoIPConfig struct {
	// ASNFile is a GeoLite2-ASN or DB-IP ASN lite .mmdb file. It must
	// exist at start; it is read again when it changes (replace it with a
	// rename), and a version that cannot be read is reported and skipped,
	// keeping the previous data.
	ASNFile string `yaml:"asn-file"`
	// CountryFile is a GeoLite2-Country or DB-IP country lite .mmdb file
	// (City databases work too), handled like ASNFile.
	CountryFile string `yaml:"country-file"`
	// ReloadInterval is how often the files are checked for changes.
	ReloadInterval time.Duration `yaml:"reload-interval"`
}

// DefaultConfig returns the enrichment defaults.
func DefaultConfig() Config {
	return Config{
		Poll:              true,
		PollInterval:      5 * time.Minute,
		PollTimeout:       30 * time.Second,
		PollConcurrency:   4,
		HistoryWindow:     24 * time.Hour,
		MaxSubscribers:    200000,
		CustomerIDPattern: DefaultCustomerIDPattern,
		GeoIP:             GeoIPConfig{ReloadInterval: time.Minute},
	}
}

// Validate returns every problem of the configuration, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	for i, p := range c.Prefixes {
		if _, err := parseRange(p); err != nil {
			errs = append(errs, fmt.Errorf("prefixes[%d]: %w", i, err))
		}
	}
	for i, n := range c.UpstreamInterfaces {
		if n == "" {
			errs = append(errs, fmt.Errorf("upstream-interfaces[%d]: must not be empty", i))
		}
	}
	if c.PollInterval < 10*time.Second {
		errs = append(errs, errors.New("poll-interval: must be at least 10s"))
	}
	if c.PollTimeout < time.Second || c.PollTimeout > c.PollInterval {
		errs = append(errs, errors.New("poll-timeout: must be within 1s..poll-interval"))
	}
	if c.PollConcurrency < 1 || c.PollConcurrency > 64 {
		errs = append(errs, errors.New("poll-concurrency: must be within 1..64"))
	}
	if c.HistoryWindow < c.PollInterval {
		errs = append(errs, errors.New("history-window: must be at least poll-interval"))
	}
	if c.MaxSubscribers < 1 || c.MaxSubscribers > 10_000_000 {
		errs = append(errs, errors.New("max-subscribers: must be within 1..10000000"))
	}
	if _, err := CompileCustomerIDPattern(c.CustomerIDPattern); err != nil {
		errs = append(errs, fmt.Errorf("customer-id-pattern: %w", err))
	}
	for _, f := range []struct{ key, path string }{{"asn-file", c.GeoIP.ASNFile}, {"country-file", c.GeoIP.CountryFile}} {
		if f.path == "" {
			continue
		}
		st, err := os.Stat(f.path)
		var pe *fs.PathError
		switch {
		case errors.As(err, &pe):
			errs = append(errs, fmt.Errorf("geoip.%s: %s: %w", f.key, f.path, pe.Err))
		case err != nil:
			errs = append(errs, fmt.Errorf("geoip.%s: %s: %w", f.key, f.path, err))
		case !st.Mode().IsRegular():
			errs = append(errs, fmt.Errorf("geoip.%s: %s: not a regular file", f.key, f.path))
		}
	}
	if c.GeoIP.ReloadInterval < time.Second {
		errs = append(errs, errors.New("geoip.reload-interval: must be at least 1s"))
	}
	for i, a := range c.Applications {
		if err := a.validate(); err != nil {
			errs = append(errs, fmt.Errorf("applications[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}
