package store

import (
	"errors"
	"time"
)

// Config configures the store. The database lives in the data directory,
// which the caller passes to Open.
type Config struct {
	// RawRetention is how long raw flows are kept.
	RawRetention time.Duration `yaml:"raw-retention"`
	// MinuteRetention is how long 1-minute rollups are kept.
	MinuteRetention time.Duration `yaml:"minute-retention"`
	// HourRetention is how long 1-hour rollups (and daily subscriber
	// usage) are kept.
	HourRetention time.Duration `yaml:"hour-retention"`
	// UsageHourRetention is how long hourly subscriber usage is kept
	// (usage reports of up to this range follow hour boundaries, so any
	// time zone's days and months; longer ones use UTC days).
	UsageHourRetention time.Duration `yaml:"usage-hour-retention"`
	// TopK is the number of entries per dimension kept in each rollup
	// bucket; the rest is summed into an "other" row.
	TopK int `yaml:"top-k"`
	// QueueSize bounds the batches waiting for the writer.
	QueueSize int `yaml:"queue-size"`
	// NATRetention is how long NAT mappings (public address and port to
	// inside address and port, for abuse lookups) are kept, independently
	// of raw flows; whole UTC days are dropped. 0 turns the NAT store off.
	NATRetention time.Duration `yaml:"nat-retention"`
	// NATCache bounds the NAT mapping records the writer holds in memory
	// while their flows keep coming (56 bytes each); when merging leaves
	// the buffer half full, all are written early (and counted).
	NATCache int `yaml:"nat-cache"`
}

// DefaultConfig returns the store defaults.
func DefaultConfig() Config {
	return Config{
		RawRetention:       48 * time.Hour,
		MinuteRetention:    14 * 24 * time.Hour,
		HourRetention:      400 * 24 * time.Hour,
		UsageHourRetention: 62 * 24 * time.Hour,
		TopK:               100,
		QueueSize:          32,
		NATRetention:       180 * 24 * time.Hour,
		NATCache:           200000,
	}
}

// Validate returns every problem of the configuration, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	if c.RawRetention < time.Hour {
		errs = append(errs, errors.New("raw-retention: must be at least 1h"))
	}
	if c.MinuteRetention < c.RawRetention {
		errs = append(errs, errors.New("minute-retention: must be at least raw-retention"))
	}
	if c.HourRetention < c.MinuteRetention {
		errs = append(errs, errors.New("hour-retention: must be at least minute-retention"))
	}
	if c.UsageHourRetention < 24*time.Hour || c.UsageHourRetention > c.HourRetention {
		errs = append(errs, errors.New("usage-hour-retention: must be within 24h and hour-retention"))
	}
	if c.TopK < 1 || c.TopK > 10000 {
		errs = append(errs, errors.New("top-k: must be within 1..10000"))
	}
	if c.QueueSize < 1 {
		errs = append(errs, errors.New("queue-size: must be at least 1"))
	}
	if c.NATRetention != 0 && c.NATRetention < 24*time.Hour {
		errs = append(errs, errors.New("nat-retention: must be at least 24h (or 0: no NAT store)"))
	}
	if c.NATCache < 100 || c.NATCache > 10000000 {
		errs = append(errs, errors.New("nat-cache: must be within 100..10000000"))
	}
	return errors.Join(errs...)
}
