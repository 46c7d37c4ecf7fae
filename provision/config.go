package provision

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"time"
)

// Config configures onboarding and the drift checker. It is the
// `provision:` section of flowbox.yaml.
type Config struct {
	// CollectorAddress is the address routers send flows to; "" uses the
	// local address of the API connection (the address the router sees
	// flowbox at).
	CollectorAddress string `yaml:"collector-address"`
	// CollectorPort is the UDP port of the collector.
	CollectorPort int `yaml:"collector-port"`
	// Interfaces is the /ip/traffic-flow interfaces value ("all", or a
	// comma-separated list or interface list).
	Interfaces string `yaml:"interfaces"`
	// ActiveFlowTimeout and InactiveFlowTimeout are set on
	// /ip/traffic-flow (cache-entries is never touched).
	ActiveFlowTimeout   time.Duration `yaml:"active-flow-timeout"`
	InactiveFlowTimeout time.Duration `yaml:"inactive-flow-timeout"`
	// TemplateRefresh (packets) and TemplateTimeout are the target's
	// v9-template-refresh and v9-template-timeout: a short timeout lets a
	// restarted collector learn the templates within a minute.
	TemplateRefresh int           `yaml:"template-refresh"`
	TemplateTimeout time.Duration `yaml:"template-timeout"`
	// DriftInterval is how often Run re-reads every configured router; 0
	// disables the drift checker.
	DriftInterval time.Duration `yaml:"drift-interval"`
	// DriftReapply re-applies the plan when drift is found (otherwise it is
	// only reported).
	DriftReapply bool `yaml:"drift-reapply"`
	// VerifyTimeout is how long Verify waits for the first flows.
	VerifyTimeout time.Duration `yaml:"verify-timeout"`
	// DialTimeout bounds the TCP/TLS connect; CommandTimeout the login and
	// each API command.
	DialTimeout    time.Duration `yaml:"dial-timeout"`
	CommandTimeout time.Duration `yaml:"command-timeout"`
	// Attempts is how many times an operation is tried when the router
	// times out or drops the connection; RetryBackoff is the first pause,
	// doubled after each failure.
	Attempts     int           `yaml:"attempts"`
	RetryBackoff time.Duration `yaml:"retry-backoff"`
	// UserName and UserGroup are what --create-user creates on the router
	// (group policy api,read,write).
	UserName  string `yaml:"user-name"`
	UserGroup string `yaml:"user-group"`
}

// DefaultConfig returns the provisioning defaults.
func DefaultConfig() Config {
	return Config{
		CollectorPort:       2055,
		Interfaces:          "all",
		ActiveFlowTimeout:   time.Minute,
		InactiveFlowTimeout: 15 * time.Second,
		TemplateRefresh:     20,
		TemplateTimeout:     time.Minute,
		DriftInterval:       10 * time.Minute,
		VerifyTimeout:       90 * time.Second,
		DialTimeout:         5 * time.Second,
		CommandTimeout:      10 * time.Second,
		Attempts:            3,
		RetryBackoff:        time.Second,
		UserName:            "flowbox",
		UserGroup:           "flowbox",
	}
}

var rosName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate returns every problem of the configuration, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	if c.CollectorAddress != "" {
		if a, err := netip.ParseAddr(c.CollectorAddress); err != nil || a.IsUnspecified() {
			errs = append(errs, fmt.Errorf("collector-address: %q is not an IP address (leave empty to use the API connection's local address)", c.CollectorAddress))
		}
	}
	if c.CollectorPort < 1 || c.CollectorPort > 65535 {
		errs = append(errs, errors.New("collector-port: must be within 1..65535"))
	}
	if c.Interfaces == "" {
		errs = append(errs, errors.New(`interfaces: must not be empty (use "all")`))
	}
	if c.ActiveFlowTimeout < time.Second {
		errs = append(errs, errors.New("active-flow-timeout: must be at least 1s"))
	}
	if c.InactiveFlowTimeout < time.Second {
		errs = append(errs, errors.New("inactive-flow-timeout: must be at least 1s"))
	}
	if c.TemplateRefresh < 1 || c.TemplateRefresh > 65535 {
		errs = append(errs, errors.New("template-refresh: must be within 1..65535"))
	}
	if c.TemplateTimeout < time.Second {
		errs = append(errs, errors.New("template-timeout: must be at least 1s"))
	}
	if c.DriftInterval != 0 && c.DriftInterval < 10*time.Second {
		errs = append(errs, errors.New("drift-interval: must be 0 (off) or at least 10s"))
	}
	if c.VerifyTimeout < time.Second {
		errs = append(errs, errors.New("verify-timeout: must be at least 1s"))
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, errors.New("dial-timeout: must be positive"))
	}
	if c.CommandTimeout <= 0 {
		errs = append(errs, errors.New("command-timeout: must be positive"))
	}
	if c.Attempts < 1 || c.Attempts > 10 {
		errs = append(errs, errors.New("attempts: must be within 1..10"))
	}
	if c.RetryBackoff < 0 {
		errs = append(errs, errors.New("retry-backoff: must not be negative"))
	}
	if !rosName.MatchString(c.UserName) {
		errs = append(errs, fmt.Errorf("user-name: %q is not a valid RouterOS user name", c.UserName))
	}
	if !rosName.MatchString(c.UserGroup) {
		errs = append(errs, fmt.Errorf("user-group: %q is not a valid RouterOS group name", c.UserGroup))
	}
	return errors.Join(errs...)
}
