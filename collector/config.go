package collector

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Config configures the UDP collector.
type Config struct {
	// Listen lists the UDP addresses to receive NetFlow and IPFIX on.
	Listen []string `yaml:"listen"`
	// Workers is the number of reader goroutines (sockets with
	// SO_REUSEPORT) per listen address.
	Workers int `yaml:"workers"`
	// ReceiveBuffer is the requested socket receive buffer in bytes.
	ReceiveBuffer int `yaml:"receive-buffer"`
	// BatchSize is the number of flows handed to the store at once.
	BatchSize int `yaml:"batch-size"`
	// BatchAge is how long a partial batch may wait before it is handed over.
	BatchAge time.Duration `yaml:"batch-age"`
	// QueueSize is the number of batches that may wait for the store; more
	// are dropped and counted.
	QueueSize int `yaml:"queue-size"`
	// TemplateTTL is how long an unrefreshed template is kept.
	TemplateTTL time.Duration `yaml:"template-ttl"`
	// MaxTemplates bounds the template cache of each reader.
	MaxTemplates int `yaml:"max-templates"`
	// SamplingOverride sets the sampling rate (1-in-N) per exporter IP,
	// replacing whatever the exporter says.
	SamplingOverride map[string]uint32 `yaml:"sampling-override"`
}

// DefaultConfig returns the collector defaults.
func DefaultConfig() Config {
	return Config{
		Listen:        []string{":2055", ":4739"},
		Workers:       2,
		ReceiveBuffer: 8 << 20,
		BatchSize:     4096,
		BatchAge:      500 * time.Millisecond,
		QueueSize:     64,
		TemplateTTL:   30 * time.Minute,
		MaxTemplates:  4096,
	}
}

// Validate returns every problem of the configuration, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Listen) == 0 {
		errs = append(errs, errors.New("listen: at least one address is needed"))
	}
	for _, a := range c.Listen {
		if _, err := net.ResolveUDPAddr("udp", a); err != nil {
			errs = append(errs, fmt.Errorf("listen: %q is not a UDP address: %w", a, err))
		}
	}
	if c.Workers < 1 || c.Workers > 64 {
		errs = append(errs, fmt.Errorf("workers: %d is outside 1..64", c.Workers))
	}
	if c.ReceiveBuffer < 0 {
		errs = append(errs, errors.New("receive-buffer: must not be negative"))
	}
	if c.BatchSize < 1 || c.BatchSize > 1<<20 {
		errs = append(errs, fmt.Errorf("batch-size: %d is outside 1..1048576", c.BatchSize))
	}
	if c.BatchAge <= 0 {
		errs = append(errs, errors.New("batch-age: must be positive"))
	}
	if c.QueueSize < 1 {
		errs = append(errs, errors.New("queue-size: must be at least 1"))
	}
	if c.TemplateTTL <= 0 {
		errs = append(errs, errors.New("template-ttl: must be positive"))
	}
	if c.MaxTemplates < 1 {
		errs = append(errs, errors.New("max-templates: must be at least 1"))
	}
	for k := range c.SamplingOverride {
		if net.ParseIP(k) == nil {
			errs = append(errs, fmt.Errorf("sampling-override: key %q is not an IP address", k))
		}
	}
	return errors.Join(errs...)
}
