package collector

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
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
	// QueueSize is no longer used by serve: the ingest pipeline has one
	// queue, the store's (store.queue-size). It is still accepted so that
	// older configurations load.
	QueueSize int `yaml:"queue-size"`
	// AllowedExporters lists the CIDR prefixes (or addresses) whose flows
	// are stored besides the onboarded routers' addresses; flows from any
	// other source are counted per source, not decoded or stored. Empty by
	// default: only onboarded routers are trusted.
	AllowedExporters []string `yaml:"allowed-exporters"`
	// TemplateTTL is how long an unrefreshed template is kept.
	TemplateTTL time.Duration `yaml:"template-ttl"`
	// MaxTemplates bounds the template cache of each reader; when it is
	// full, the exporter holding the most templates loses its oldest.
	MaxTemplates int `yaml:"max-templates"`
	// MaxTemplatesPerDomain bounds the templates of one exporter and
	// observation domain: a new one replaces that domain's oldest, so no
	// sender can starve the others.
	MaxTemplatesPerDomain int `yaml:"max-templates-per-domain"`
	// SamplingOverride sets the sampling rate (1-in-N) per exporter IP,
	// replacing whatever the exporter says.
	SamplingOverride map[string]uint32 `yaml:"sampling-override"`
	// MaxPending bounds, per exporter, the data sets kept while they wait
	// for their template; beyond it the oldest is dropped and counted.
	MaxPending int `yaml:"max-pending"`
	// PendingTTL is how long a data set may wait for its template.
	PendingTTL time.Duration `yaml:"pending-ttl"`
	// MaxExporters bounds the exporters tracked one by one: per reader for
	// the decoder state (templates, sequence numbers) and in the
	// collector's per-exporter statistics. Beyond it, the exporter silent
	// the longest is forgotten (its counts stay in the metric totals).
	MaxExporters int `yaml:"max-exporters"`
	// FlushTimeout bounds how long shutdown waits for the sink to take the
	// batches still queued; what is left after it is dropped and counted
	// (reason shutdown).
	FlushTimeout time.Duration `yaml:"flush-timeout"`
}

// DefaultConfig returns the collector defaults.
func DefaultConfig() Config {
	return Config{
		Listen:                []string{":2055", ":4739"},
		Workers:               2,
		ReceiveBuffer:         8 << 20,
		BatchSize:             4096,
		BatchAge:              500 * time.Millisecond,
		QueueSize:             64,
		TemplateTTL:           30 * time.Minute,
		MaxTemplates:          65536,
		MaxTemplatesPerDomain: 1024,
		MaxPending:            64,
		PendingTTL:            2 * time.Minute,
		MaxExporters:          4096,
		FlushTimeout:          10 * time.Second,
	}
}

// Validate returns every problem of the configuration, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Listen) == 0 {
		errs = append(errs, errors.New("listen: at least one address is needed"))
	}
	for i, a := range c.Listen {
		if strings.TrimSpace(a) == "" {
			// net.ResolveUDPAddr takes "" for a random port on every address.
			errs = append(errs, fmt.Errorf("listen[%d]: empty address", i))
			continue
		}
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
	if c.MaxTemplatesPerDomain < 1 {
		errs = append(errs, errors.New("max-templates-per-domain: must be at least 1"))
	}
	for k, v := range c.SamplingOverride {
		if _, err := netip.ParseAddr(k); err != nil {
			errs = append(errs, fmt.Errorf("sampling-override: key %q is not an IP address", k))
		}
		if v == 0 {
			errs = append(errs, fmt.Errorf("sampling-override: rate for %q must be at least 1", k))
		}
	}
	if c.MaxPending < 1 {
		errs = append(errs, errors.New("max-pending: must be at least 1"))
	}
	if c.PendingTTL <= 0 {
		errs = append(errs, errors.New("pending-ttl: must be positive"))
	}
	if c.MaxExporters < 1 {
		errs = append(errs, errors.New("max-exporters: must be at least 1"))
	}
	if c.FlushTimeout <= 0 {
		errs = append(errs, errors.New("flush-timeout: must be positive"))
	}
	for i, p := range c.AllowedExporters {
		if _, err := ParsePrefix(p); err != nil {
			errs = append(errs, fmt.Errorf("allowed-exporters[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// ParsePrefix parses an allowed-exporters entry: a CIDR prefix
// ("192.0.2.0/24", "2001:db8::/32") or an address (a /32 or /128).
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Prefix{}, errors.New("empty prefix")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix", s)
		}
		a := p.Addr().Unmap()
		return netip.PrefixFrom(a, min(p.Bits(), a.BitLen())).Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// AllowedPrefixes returns AllowedExporters parsed (valid entries only: call
// Validate first).
func (c *Config) AllowedPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(c.AllowedExporters))
	for _, s := range c.AllowedExporters {
		if p, err := ParsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}
