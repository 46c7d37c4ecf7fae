package coverage

import (
	"errors"
	"time"
)

// Config configures the counter poller and the coverage reports. The zero
// value is not valid: start from DefaultConfig.
type Config struct {
	// Enabled polls the routers' interface counters over the API.
	Enabled bool `yaml:"enabled"`
	// Interval is the time between two counter polls of a router.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one poll of one router (dial, login, every print).
	Timeout time.Duration `yaml:"timeout"`
	// Concurrency is the number of routers polled at once.
	Concurrency int `yaml:"concurrency"`
	// Threshold is the coverage (percent) below which an interface is
	// low: a warning with its likely cause, and the coverage-low alert.
	Threshold float64 `yaml:"threshold"`
	// Window is how far back the health on Fleet, the router page's
	// default and the alert look.
	Window time.Duration `yaml:"window"`
	// Lag leaves the newest minutes out of every comparison: their flows
	// are still in the routers' caches or the store's queue.
	Lag time.Duration `yaml:"lag"`
	// MinBytes is the least traffic (counter bytes over the window, per
	// direction) an interface must carry to be judged.
	MinBytes uint64 `yaml:"min-bytes"`
	// MaxInterfaces bounds the interfaces tracked per router (a PPPoE
	// concentrator has one per session); beyond it they are dropped and
	// counted.
	MaxInterfaces int `yaml:"max-interfaces"`
}

// DefaultConfig returns the defaults: a poll a minute, 90 %, an hour.
func DefaultConfig() Config {
	return Config{
		Enabled:       true,
		Interval:      time.Minute,
		Timeout:       20 * time.Second,
		Concurrency:   4,
		Threshold:     90,
		Window:        time.Hour,
		Lag:           3 * time.Minute,
		MinBytes:      1 << 20,
		MaxInterfaces: 4096,
	}
}

// Validate returns every problem of the configuration, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	if c.Interval < time.Second || c.Interval > time.Hour {
		errs = append(errs, errors.New("interval: must be within 1s..1h"))
	}
	if c.Timeout < time.Second || c.Timeout > c.Interval {
		errs = append(errs, errors.New("timeout: must be within 1s..interval"))
	}
	if c.Concurrency < 1 || c.Concurrency > 64 {
		errs = append(errs, errors.New("concurrency: must be within 1..64"))
	}
	if c.Threshold <= 0 || c.Threshold > 100 {
		errs = append(errs, errors.New("threshold: must be within (0, 100] percent"))
	}
	if c.Window < 5*time.Minute || c.Window > 31*24*time.Hour {
		errs = append(errs, errors.New("window: must be within 5m..31d"))
	}
	if c.Lag < 0 || c.Lag >= c.Window {
		errs = append(errs, errors.New("lag: must be within 0..window"))
	}
	if c.MaxInterfaces < 1 || c.MaxInterfaces > 1_000_000 {
		errs = append(errs, errors.New("max-interfaces: must be within 1..1000000"))
	}
	return errors.Join(errs...)
}
