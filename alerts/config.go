package alerts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the `alerts:` section of flowbox.yaml: the detectors'
// floors and thresholds, the evaluation interval and the history's
// retention. The defaults raise nothing on the simulated fleet's ordinary
// traffic (TestOrdinaryTrafficRaisesNothing) and catch its attack
// scenarios within a minute.
type Config struct {
	// Enabled turns detection on (default true).
	Enabled bool `yaml:"enabled"`
	// Interval is how often the detectors are evaluated (1s..10s;
	// default 10s).
	Interval time.Duration `yaml:"interval"`
	// ResolveAfter is the quiet period after which an alert whose
	// condition stopped is resolved (default 2m).
	ResolveAfter time.Duration `yaml:"resolve-after"`
	// Retention is how long resolved alerts and their logs are kept
	// (default 180 days).
	Retention time.Duration `yaml:"retention"`
	// MaxHosts bounds the (router, address) entries the detectors track;
	// flows of hosts that find no room are counted (hosts_dropped) and
	// still count in their router's totals (default 200000).
	MaxHosts int `yaml:"max-hosts"`
	// Inbound are the floors of attacks on one local address.
	Inbound InboundConfig `yaml:"inbound"`
	// Outbound are the thresholds of abuse by a customer's device.
	Outbound OutboundConfig `yaml:"outbound"`
	// Export are the thresholds of a router's export health.
	Export ExportConfig `yaml:"export"`
	// Collapse are the thresholds of a traffic collapse.
	Collapse CollapseConfig `yaml:"collapse"`
}

// InboundConfig are the floors of an inbound attack on one address: any
// rate at or above its floor and at or above Factor times the host's
// baseline opens an alert. The signatures of the common attacks (UDP
// from reflection ports, bare SYNs) are specific enough for low floors;
// the generic floors catch the rest and must stay above what one customer
// can legitimately receive (set inbound.bps to about half the uplink).
type InboundConfig struct {
	// BPS, PPS and FlowsPerS are the generic floors (defaults 2 Gbit/s,
	// 400 kpps, 2000 flows/s).
	BPS       Rate `yaml:"bps"`
	PPS       Rate `yaml:"pps"`
	FlowsPerS Rate `yaml:"flows-per-s"`
	// AmplificationBPS is the floor of UDP from reflection ports, when
	// it is most of the host's traffic (default 100 Mbit/s).
	AmplificationBPS Rate `yaml:"amplification-bps"`
	// SYNPPS is the floor of bare SYN packets (TCP, only SYN set, at most
	// 100 bytes), when they are most of the host's packets (default
	// 1000/s).
	SYNPPS Rate `yaml:"syn-pps"`
	// Factor is how far above its baseline a rate must be (default 4).
	Factor float64 `yaml:"factor"`
	// AmplificationPorts are the UDP source ports of reflection services;
	// when their bytes dominate, the kind is udp-amplification.
	AmplificationPorts []uint16 `yaml:"amplification-ports"`
}

// OutboundConfig are the thresholds of abuse by one inside address.
type OutboundConfig struct {
	// ScanTargets is the number of distinct destination hosts, or ports,
	// of mostly single-packet SYNs within 1-2 minutes that makes a
	// port-scan (default 200).
	ScanTargets int `yaml:"scan-targets"`
	// SMTPHosts is the number of distinct hosts on port 25 within 1-2
	// minutes that makes smtp-spam (default 40).
	SMTPHosts int `yaml:"smtp-hosts"`
	// FlowsPerS is the rate of new flows that makes a flow-flood
	// (default 2000).
	FlowsPerS Rate `yaml:"flows-per-s"`
}

// ExportConfig are the thresholds of a router's export health.
type ExportConfig struct {
	// StoppedAfter: a router that exported and has sent nothing for this
	// long raises export-stopped (default 3m).
	StoppedAfter time.Duration `yaml:"stopped-after"`
	// LossShare and MinLost: flow-loss when, over a minute, the flows
	// lost in sequence gaps are at least LossShare of the flows sent and
	// at least MinLost (defaults 0.05 and 100).
	LossShare float64 `yaml:"loss-share"`
	MinLost   uint64  `yaml:"min-lost"`
	// TemplateMissingAfter: template-missing when data sets have been
	// dropped for want of their template for this long (default 3m).
	TemplateMissingAfter time.Duration `yaml:"template-missing-after"`
	// ClockSkew: clock-skew when a router's freshest flows end this far
	// from the collector's clock, for a minute (default 2m).
	ClockSkew time.Duration `yaml:"clock-skew"`
}

// CollapseConfig are the thresholds of a traffic collapse on a router or
// one of its interfaces.
type CollapseConfig struct {
	// Ratio: the traffic fell below Ratio times its baseline (default
	// 0.1).
	Ratio float64 `yaml:"ratio"`
	// MinBPS: only baselines at or above this are watched (default
	// 5 Mbit/s).
	MinBPS Rate `yaml:"min-bps"`
	// After is how long the traffic must stay collapsed (default 2m).
	After time.Duration `yaml:"after"`
	// Learn is how long a baseline learns before it is trusted (default
	// 30m).
	Learn time.Duration `yaml:"learn"`
}

// DefaultAmplificationPorts are the UDP source ports of the common
// reflection services: chargen, DNS, NTP, SNMP, LDAP/CLDAP, SSDP, WS-Discovery,
// memcached, and others.
var DefaultAmplificationPorts = []uint16{19, 53, 111, 123, 137, 161, 389, 1900, 3702, 5353, 11211}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Enabled:      true,
		Interval:     10 * time.Second,
		ResolveAfter: 2 * time.Minute,
		Retention:    180 * 24 * time.Hour,
		MaxHosts:     200000,
		Inbound: InboundConfig{BPS: 2e9, PPS: 400e3, FlowsPerS: 2000, AmplificationBPS: 100e6, SYNPPS: 1000, Factor: 4,
			AmplificationPorts: DefaultAmplificationPorts},
		Outbound: OutboundConfig{ScanTargets: 200, SMTPHosts: 40, FlowsPerS: 2000},
		Export: ExportConfig{StoppedAfter: 3 * time.Minute, LossShare: 0.05, MinLost: 100,
			TemplateMissingAfter: 3 * time.Minute, ClockSkew: 2 * time.Minute},
		Collapse: CollapseConfig{Ratio: 0.1, MinBPS: 5e6, After: 2 * time.Minute, Learn: 30 * time.Minute},
	}
}

// Validate returns every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Interval < time.Second || c.Interval > 10*time.Second {
		bad("interval: %s is outside 1s..10s", c.Interval)
	}
	if c.ResolveAfter < c.Interval {
		bad("resolve-after: %s is shorter than the interval (%s)", c.ResolveAfter, c.Interval)
	}
	if c.Retention < time.Hour {
		bad("retention: %s is shorter than 1h", c.Retention)
	}
	if c.MaxHosts < 100 {
		bad("max-hosts: %d is below 100", c.MaxHosts)
	}
	if c.Inbound.BPS <= 0 || c.Inbound.PPS <= 0 || c.Inbound.FlowsPerS <= 0 || c.Inbound.AmplificationBPS <= 0 || c.Inbound.SYNPPS <= 0 {
		bad("inbound: bps, pps, flows-per-s, amplification-bps and syn-pps must be positive")
	}
	if c.Inbound.Factor < 1 {
		bad("inbound.factor: %g is below 1", c.Inbound.Factor)
	}
	if c.Outbound.ScanTargets < 10 || c.Outbound.ScanTargets > 1000 {
		bad("outbound.scan-targets: %d is outside 10..1000 (distinct counts are estimated up to about 1400)", c.Outbound.ScanTargets)
	}
	if c.Outbound.SMTPHosts < 5 || c.Outbound.SMTPHosts > 1000 {
		bad("outbound.smtp-hosts: %d is outside 5..1000", c.Outbound.SMTPHosts)
	}
	if c.Outbound.FlowsPerS <= 0 {
		bad("outbound.flows-per-s must be positive")
	}
	if c.Export.StoppedAfter < c.Interval {
		bad("export.stopped-after: %s is shorter than the interval", c.Export.StoppedAfter)
	}
	if c.Export.LossShare <= 0 || c.Export.LossShare >= 1 {
		bad("export.loss-share: %g is outside (0, 1)", c.Export.LossShare)
	}
	if c.Export.TemplateMissingAfter < c.Interval {
		bad("export.template-missing-after: %s is shorter than the interval", c.Export.TemplateMissingAfter)
	}
	if c.Export.ClockSkew < 10*time.Second {
		bad("export.clock-skew: %s is below 10s", c.Export.ClockSkew)
	}
	if c.Collapse.Ratio <= 0 || c.Collapse.Ratio >= 1 {
		bad("collapse.ratio: %g is outside (0, 1)", c.Collapse.Ratio)
	}
	if c.Collapse.MinBPS <= 0 {
		bad("collapse.min-bps must be positive")
	}
	if c.Collapse.After < c.Interval {
		bad("collapse.after: %s is shorter than the interval", c.Collapse.After)
	}
	return errors.Join(errs...)
}

// Rate is a rate per second in YAML: a number, or a number with a k, M or
// G suffix (powers of 1000), optionally followed by "bit/s", "bps", "pps"
// or "/s": 300M, 300Mbit/s, 60k.
type Rate float64

// UnmarshalYAML parses a Rate.
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseRate(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*r = v
	return nil
}

// MarshalYAML writes a Rate as a plain number.
func (r Rate) MarshalYAML() (any, error) { return float64(r), nil }

// ParseRate parses a Rate (see Rate).
func ParseRate(s string) (Rate, error) {
	t := strings.TrimSpace(s)
	for _, suffix := range []string{"bit/s", "bps", "pps", "/s"} {
		t = strings.TrimSuffix(t, suffix)
	}
	mult := 1.0
	if t != "" {
		switch t[len(t)-1] {
		case 'k', 'K':
			mult = 1e3
		case 'M':
			mult = 1e6
		case 'G':
			mult = 1e9
		}
		if mult != 1 {
			t = t[:len(t)-1]
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a rate (a number with an optional k, M or G: 300M, 60k)", s)
	}
	return Rate(v * mult), nil
}
