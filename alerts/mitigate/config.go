package mitigate

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Built-in defaults of a router's mitigation policy.
const (
	DefaultAttackedList = "flowbox-attacked"
	DefaultAbuseList    = "flowbox-abuse"
	DefaultTimeout      = time.Hour
	DefaultMaxEntries   = 50
)

// Bounds of the configuration values.
const (
	minTimeout    = time.Minute
	maxTimeout    = 4 * 7 * 24 * time.Hour
	maxMaxEntries = 10000
	maxQueueSize  = 1 << 16
)

// Config is the `mitigation:` section of flowbox.yaml. Mitigation is
// opt-in per router: a router is left alone unless its entry under
// routers (or the default block) says enabled: true.
//
//	mitigation:
//	  queue-size: 256
//	  default: {enabled: false, dry-run: false, blackhole: false, timeout: 1h, max-entries: 50}
//	  routers:
//	    wisp-1: {enabled: true, dry-run: true, attacked-list: flowbox-attacked, abuse-list: flowbox-abuse}
type Config struct {
	// Default applies to every router; a router's entry under Routers
	// overrides the keys it sets.
	Default RouterConfig `yaml:"default"`
	// Routers holds the per-router policies, by flowbox router name.
	Routers map[string]RouterConfig `yaml:"routers"`
	// QueueSize bounds the alert events waiting for the worker; a full
	// queue drops events and counts them (resolutions are kept aside so
	// that entries are still removed).
	QueueSize int `yaml:"queue-size"`
	// DialTimeout bounds the TCP/TLS connect to a router; CommandTimeout
	// the login and each API command.
	DialTimeout    time.Duration `yaml:"dial-timeout"`
	CommandTimeout time.Duration `yaml:"command-timeout"`
	// RetryInterval is how often failed changes are retried (doubling
	// after each failure, up to 32 times it) and entries are renewed.
	RetryInterval time.Duration `yaml:"retry-interval"`
}

// RouterConfig is one router's mitigation policy as written in the YAML;
// unset keys (nil, "" or 0) take the default block's value.
type RouterConfig struct {
	// Enabled opts the router in (default false).
	Enabled *bool `yaml:"enabled,omitempty"`
	// DryRun logs and audits what would be done without changing the
	// router.
	DryRun *bool `yaml:"dry-run,omitempty"`
	// Blackhole also adds a blackhole route (/32 or /128) for the victim
	// of an inbound attack: the victim becomes unreachable, its uplink is
	// spared.
	Blackhole *bool `yaml:"blackhole,omitempty"`
	// AttackedList is the address list for victims of inbound attacks.
	AttackedList string `yaml:"attacked-list,omitempty"`
	// AbuseList is the address list for customers sending abuse (port
	// scans, spam, flow floods).
	AbuseList string `yaml:"abuse-list,omitempty"`
	// Timeout is the address-list entries' timeout on the router: they
	// disappear by themselves if flowbox stops renewing them.
	Timeout time.Duration `yaml:"timeout,omitempty"`
	// MaxEntries caps the addresses flowbox lists on the router at once;
	// beyond it new alerts are skipped and counted.
	MaxEntries int `yaml:"max-entries,omitempty"`
}

// Policy is a router's effective mitigation policy: the built-in defaults,
// then the default block, then the router's own keys.
type Policy struct {
	Enabled      bool
	DryRun       bool
	Blackhole    bool
	AttackedList string
	AbuseList    string
	Timeout      time.Duration
	MaxEntries   int
}

// DefaultConfig returns the mitigation defaults: every router off.
func DefaultConfig() Config {
	no := func() *bool { b := false; return &b }
	return Config{
		Default: RouterConfig{Enabled: no(), DryRun: no(), Blackhole: no(), AttackedList: DefaultAttackedList,
			AbuseList: DefaultAbuseList, Timeout: DefaultTimeout, MaxEntries: DefaultMaxEntries},
		Routers:        map[string]RouterConfig{},
		QueueSize:      256,
		DialTimeout:    5 * time.Second,
		CommandTimeout: 10 * time.Second,
		RetryInterval:  time.Minute,
	}
}

// Policy returns the effective policy of a router.
func (c Config) Policy(router string) Policy {
	p := Policy{AttackedList: DefaultAttackedList, AbuseList: DefaultAbuseList, Timeout: DefaultTimeout, MaxEntries: DefaultMaxEntries}
	p.overlay(c.Default)
	if rc, ok := c.Routers[router]; ok {
		p.overlay(rc)
	}
	return p
}

func (p *Policy) overlay(rc RouterConfig) {
	if rc.Enabled != nil {
		p.Enabled = *rc.Enabled
	}
	if rc.DryRun != nil {
		p.DryRun = *rc.DryRun
	}
	if rc.Blackhole != nil {
		p.Blackhole = *rc.Blackhole
	}
	if rc.AttackedList != "" {
		p.AttackedList = rc.AttackedList
	}
	if rc.AbuseList != "" {
		p.AbuseList = rc.AbuseList
	}
	if rc.Timeout != 0 {
		p.Timeout = rc.Timeout
	}
	if rc.MaxEntries != 0 {
		p.MaxEntries = rc.MaxEntries
	}
}

// listName is what an address-list name may be: RouterOS takes any
// string, flowbox keeps to names that need no quoting.
var listName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate returns every problem of the configuration, each naming its key.
func (c Config) Validate() error {
	var errs []error
	if c.QueueSize < 1 || c.QueueSize > maxQueueSize {
		errs = append(errs, fmt.Errorf("queue-size: must be within 1..%d", maxQueueSize))
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, errors.New("dial-timeout: must be positive"))
	}
	if c.CommandTimeout <= 0 {
		errs = append(errs, errors.New("command-timeout: must be positive"))
	}
	if c.RetryInterval < time.Second {
		errs = append(errs, errors.New("retry-interval: must be at least 1s"))
	}
	errs = append(errs, c.Default.validate("default"))
	names := make([]string, 0, len(c.Routers))
	for n := range c.Routers {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if !store.ValidRouterName(n) {
			errs = append(errs, fmt.Errorf("routers: %q is not a router name (%s)", n, store.RouterNameRule))
			continue
		}
		errs = append(errs, c.Routers[n].validate("routers."+n))
	}
	return errors.Join(errs...)
}

func (rc RouterConfig) validate(path string) error {
	var errs []error
	for _, l := range []struct{ key, v string }{{"attacked-list", rc.AttackedList}, {"abuse-list", rc.AbuseList}} {
		if l.v != "" && !listName.MatchString(l.v) {
			errs = append(errs, fmt.Errorf("%s.%s: %q must be letters, digits, '.', '_' and '-', up to 64", path, l.key, l.v))
		}
	}
	if rc.Timeout != 0 && (rc.Timeout < minTimeout || rc.Timeout > maxTimeout || rc.Timeout%time.Second != 0) {
		errs = append(errs, fmt.Errorf("%s.timeout: must be whole seconds within %v..%v", path, minTimeout, maxTimeout))
	}
	if rc.MaxEntries < 0 || rc.MaxEntries > maxMaxEntries {
		errs = append(errs, fmt.Errorf("%s.max-entries: must be within 1..%d", path, maxMaxEntries))
	}
	return errors.Join(errs...)
}
