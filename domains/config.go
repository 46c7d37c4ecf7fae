package domains

import (
	"errors"
	"net"
	"time"
)

// Config configures the domains component: the DNS cache poller, the name
// history and the reverse-DNS fallback (the `domains:` section). The zero
// value is not valid: start from DefaultConfig.
type Config struct {
	// Enabled polls the routers' DNS caches over the API.
	Enabled bool `yaml:"enabled"`
	// PollInterval is the time between two reads of a router's DNS cache.
	// Most cached answers live a few minutes: a minute keeps up with them.
	PollInterval time.Duration `yaml:"poll-interval"`
	// Timeout bounds one poll of one router (dial, login, every print).
	Timeout time.Duration `yaml:"timeout"`
	// Concurrency is the number of routers polled at once.
	Concurrency int `yaml:"concurrency"`
	// MaxEntriesPerPoll bounds the cache entries read from one router at
	// one poll; the rest are cut and counted.
	MaxEntriesPerPoll int `yaml:"max-entries-per-poll"`
	// MaxNames bounds the names kept in memory, over all addresses (an
	// address that had two names counts twice); beyond it new names are
	// dropped and counted.
	MaxNames int `yaml:"max-names"`
	// Retention is how long a name is kept after it last applied.
	Retention time.Duration `yaml:"retention"`
	// Linger is how long after its TTL ran out a name still labels flows
	// to its address: connections outlive the DNS answer that opened them.
	Linger time.Duration `yaml:"linger"`
	// Reverse is the reverse-DNS (PTR) fallback.
	Reverse ReverseConfig `yaml:"reverse"`
}

// ReverseConfig configures the reverse-DNS fallback: PTR lookups of the top
// remote hosts that no router's cache names.
type ReverseConfig struct {
	// Enabled turns the fallback on.
	Enabled bool `yaml:"enabled"`
	// Resolver is the DNS server asked (host:port); "" uses the system's
	// (/etc/resolv.conf).
	Resolver string `yaml:"resolver"`
	// Rate is the most lookups per second.
	Rate float64 `yaml:"rate"`
	// Cache bounds the answers kept (names and failures); beyond it new
	// answers are dropped and counted.
	Cache int `yaml:"cache"`
	// CacheTTL is how long an answer is kept before it is asked again.
	CacheTTL time.Duration `yaml:"cache-ttl"`
	// Top is how many of the top remote hosts are looked at each round.
	Top int `yaml:"top"`
	// Interval is the time between two rounds.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one lookup.
	Timeout time.Duration `yaml:"timeout"`
}

// DefaultConfig returns the defaults: a DNS cache poll a minute, 200 000
// names kept two days, reverse DNS of the top 200 hosts at 10 lookups/s.
func DefaultConfig() Config {
	return Config{
		Enabled:           true,
		PollInterval:      time.Minute,
		Timeout:           20 * time.Second,
		Concurrency:       4,
		MaxEntriesPerPoll: 20000,
		MaxNames:          200000,
		Retention:         48 * time.Hour,
		Linger:            time.Hour,
		Reverse: ReverseConfig{
			Enabled:  true,
			Rate:     10,
			Cache:    20000,
			CacheTTL: 24 * time.Hour,
			Top:      200,
			Interval: 5 * time.Minute,
			Timeout:  3 * time.Second,
		},
	}
}

// Validate returns every problem of the configuration, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	if c.PollInterval < 5*time.Second || c.PollInterval > time.Hour {
		errs = append(errs, errors.New("poll-interval: must be within 5s..1h"))
	}
	if c.Timeout < time.Second || c.Timeout > c.PollInterval {
		errs = append(errs, errors.New("timeout: must be within 1s..poll-interval"))
	}
	if c.Concurrency < 1 || c.Concurrency > 64 {
		errs = append(errs, errors.New("concurrency: must be within 1..64"))
	}
	if c.MaxEntriesPerPoll < 1 || c.MaxEntriesPerPoll > 1_000_000 {
		errs = append(errs, errors.New("max-entries-per-poll: must be within 1..1000000"))
	}
	if c.MaxNames < 1 || c.MaxNames > 10_000_000 {
		errs = append(errs, errors.New("max-names: must be within 1..10000000"))
	}
	if c.Retention < time.Hour || c.Retention > 366*24*time.Hour {
		errs = append(errs, errors.New("retention: must be within 1h..366d"))
	}
	if c.Linger < 0 || c.Linger > c.Retention {
		errs = append(errs, errors.New("linger: must be within 0..retention"))
	}
	r := &c.Reverse
	if r.Resolver != "" {
		if _, _, err := net.SplitHostPort(r.Resolver); err != nil {
			errs = append(errs, errors.New("reverse.resolver: must be host:port (e.g. 192.0.2.53:53), or empty for the system's"))
		}
	}
	if r.Rate <= 0 || r.Rate > 1000 {
		errs = append(errs, errors.New("reverse.rate: must be within (0, 1000] lookups per second"))
	}
	if r.Cache < 1 || r.Cache > 10_000_000 {
		errs = append(errs, errors.New("reverse.cache: must be within 1..10000000"))
	}
	if r.CacheTTL < time.Minute || r.CacheTTL > 30*24*time.Hour {
		errs = append(errs, errors.New("reverse.cache-ttl: must be within 1m..30d"))
	}
	if r.Top < 1 || r.Top > 100_000 {
		errs = append(errs, errors.New("reverse.top: must be within 1..100000"))
	}
	if r.Interval < 10*time.Second || r.Interval > 24*time.Hour {
		errs = append(errs, errors.New("reverse.interval: must be within 10s..24h"))
	}
	if r.Timeout < 100*time.Millisecond || r.Timeout > time.Minute {
		errs = append(errs, errors.New("reverse.timeout: must be within 100ms..1m"))
	}
	return errors.Join(errs...)
}
