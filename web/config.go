package web

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"
)

// EnvAdminPassword is the environment variable that sets the first admin
// password for unattended installs; ApplyEnv reads it.
const EnvAdminPassword = "FLOWBOX_ADMIN_PASSWORD"

// MinPasswordLength is the shortest accepted console password.
const MinPasswordLength = 8

// Config configures the web console and the JSON API.
type Config struct {
	// Listen is the TCP address of the console (":8080").
	Listen string `yaml:"listen"`
	// TLS enables HTTPS.
	TLS TLSConfig `yaml:"tls"`
	// AdminPassword, when set and no user exists yet, creates the user
	// "admin" with it at start (unattended installs). The environment
	// variable FLOWBOX_ADMIN_PASSWORD sets it too.
	AdminPassword string `yaml:"admin-password"`
	// AdminPasswordFile reads AdminPassword from a file.
	AdminPasswordFile string `yaml:"admin-password-file"`
	// SessionTTL is how long a console login lasts.
	SessionTTL time.Duration `yaml:"session-ttl"`
	// MaxSessions bounds the live sessions; the oldest is evicted beyond it.
	MaxSessions int `yaml:"max-sessions"`
	// LoginAttempts is how many login attempts one client IP may make per
	// LoginWindow.
	LoginAttempts int `yaml:"login-attempts"`
	// LoginWindow is the rate-limit window of LoginAttempts.
	LoginWindow time.Duration `yaml:"login-window"`
	// LoginTrackedIPs bounds the rate limiter's table of client IPs.
	LoginTrackedIPs int `yaml:"login-tracked-ips"`
	// StaleAfter is how long without flows turns a router from online to
	// stale.
	StaleAfter time.Duration `yaml:"stale-after"`
	// MetricsListen, when set, serves /metrics without login on this
	// address of its own (e.g. "127.0.0.1:9108" for a local Prometheus);
	// on the console's address /metrics always needs a login or a token.
	MetricsListen string `yaml:"metrics-listen"`
	// Pprof serves /debug/pprof/ to loopback clients.
	Pprof bool `yaml:"pprof"`
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration `yaml:"shutdown-timeout"`
	// RequestTimeout bounds reading one request, headers and body: a
	// client that sends them slowly is cut off (slowloris).
	RequestTimeout time.Duration `yaml:"request-timeout"`
	// ResponseTimeout bounds writing one answer; a CSV export gets it
	// again after each chunk it sends, so a long export that makes progress
	// runs on and a stalled one is cut off.
	ResponseTimeout time.Duration `yaml:"response-timeout"`
	// MaxConnections bounds the open connections; more wait to be
	// accepted.
	MaxConnections int `yaml:"max-connections"`
	// Hosts lists the extra host names the console answers to (the name
	// in the browser's address bar, e.g. "flowbox.example.net", or
	// "*.example.net" for every name under it). Addresses, localhost and
	// the machine's host name always work; a request for any other name
	// is refused (421), against DNS rebinding.
	Hosts []string `yaml:"hosts"`
	// TrustedProxies lists the reverse proxies (addresses or CIDR
	// prefixes) whose X-Forwarded-For names the client, for the login rate
	// limit and the logs; empty: the peer is the client.
	TrustedProxies []string `yaml:"trusted-proxies"`
	// DevAssetsDir serves templates and static files from this directory
	// (the source tree's web/) instead of the embedded copies.
	DevAssetsDir string `yaml:"dev-assets-dir"`
}

// TLS modes of the console (web.tls.mode).
const (
	// TLSModeHTTPS serves HTTPS (the default): with the files Cert and Key,
	// or else with a self-signed certificate generated once in the data
	// directory.
	TLSModeHTTPS = "https"
	// TLSModeProxy serves plain HTTP to a reverse proxy that terminates TLS
	// in front of the console: cookies are marked Secure.
	TLSModeProxy = "proxy"
	// TLSModeOff serves plain HTTP (a trusted network, or a loopback demo).
	TLSModeOff = "off"
)

// TLSConfig selects HTTPS. In mode "https" (the default) the console
// serves HTTPS with Cert and Key when they are given, else with a
// self-signed certificate kept in the data directory; "proxy" and "off"
// serve plain HTTP.
type TLSConfig struct {
	// Mode is https (default), proxy (plain HTTP behind a TLS proxy,
	// cookies marked Secure) or off (plain HTTP).
	Mode string `yaml:"mode"`
	// Cert and Key are the certificate and key files (PEM).
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// SelfSigned asks for the generated certificate; it is what mode https
	// does without Cert and Key anyway (kept for older configurations).
	SelfSigned bool `yaml:"self-signed"`
}

// Enabled reports whether the console's listener serves HTTPS.
func (t TLSConfig) Enabled() bool { return t.Mode == TLSModeHTTPS || t.Mode == "" }

// selfSigned reports whether the console serves the generated certificate.
func (t TLSConfig) selfSigned() bool { return t.Enabled() && t.Cert == "" }

// DefaultConfig returns the web defaults.
func DefaultConfig() Config {
	return Config{
		Listen:          ":8080",
		TLS:             TLSConfig{Mode: TLSModeHTTPS},
		SessionTTL:      12 * time.Hour,
		MaxSessions:     1000,
		LoginAttempts:   10,
		LoginWindow:     time.Minute,
		LoginTrackedIPs: 4096,
		StaleAfter:      5 * time.Minute,
		ShutdownTimeout: 10 * time.Second,
		RequestTimeout:  30 * time.Second,
		ResponseTimeout: 2 * time.Minute,
		MaxConnections:  512,
	}
}

// ApplyEnv takes the admin password from FLOWBOX_ADMIN_PASSWORD when it is
// set and the configuration has none.
func (c *Config) ApplyEnv(getenv func(string) string) {
	if v := getenv(EnvAdminPassword); v != "" && c.AdminPassword == "" && c.AdminPasswordFile == "" {
		c.AdminPassword = v
	}
}

// Redacted returns a copy with secrets replaced, for `flowbox check --dump`.
func (c Config) Redacted() Config {
	if c.AdminPassword != "" {
		c.AdminPassword = "<redacted>"
	}
	return c
}

// adminPassword returns the configured first admin password, reading the
// password file when one is set.
func (c *Config) adminPassword() (string, error) {
	if c.AdminPasswordFile == "" {
		return c.AdminPassword, nil
	}
	b, err := os.ReadFile(c.AdminPasswordFile)
	if err != nil {
		return "", fmt.Errorf("cannot read admin-password-file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// CheckFiles reads the files the configuration names, as Run and the first
// start will: the TLS certificate and key, which must be a pair, and the
// admin password file. Each error names the file's key. Validate leaves
// files alone, so that the commands which do not serve (stats, backup, ...)
// need no access to them; flowbox check calls both.
func (c *Config) CheckFiles() error {
	var errs []error
	read := func(key, path string) []byte {
		if path == "" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			errs = append(errs, fmt.Errorf("%s: %s: %w", key, path, err))
			return nil
		}
		return b
	}
	cert, key := read("tls.cert", c.TLS.Cert), read("tls.key", c.TLS.Key)
	if cert != nil && key != nil {
		if _, err := tls.X509KeyPair(cert, key); err != nil {
			errs = append(errs, fmt.Errorf("tls: %s and %s are not a certificate and its key: %w", c.TLS.Cert, c.TLS.Key, err))
		}
	}
	read("admin-password-file", c.AdminPasswordFile)
	return errors.Join(errs...)
}

// Validate returns every problem of the configuration, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %q is not a host:port address: %w", c.Listen, err))
	}
	switch c.TLS.Mode {
	case "", TLSModeHTTPS:
	case TLSModeProxy, TLSModeOff:
		if c.TLS.Cert != "" || c.TLS.Key != "" || c.TLS.SelfSigned {
			errs = append(errs, fmt.Errorf("tls: cert, key and self-signed need mode https, not %s", c.TLS.Mode))
		}
	default:
		errs = append(errs, fmt.Errorf("tls.mode: %q is not https, proxy or off", c.TLS.Mode))
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		errs = append(errs, errors.New("tls: cert and key must be given together"))
	}
	if c.TLS.SelfSigned && c.TLS.Cert != "" {
		errs = append(errs, errors.New("tls.self-signed: cannot be combined with cert and key"))
	}
	if c.AdminPassword != "" && c.AdminPasswordFile != "" {
		errs = append(errs, errors.New("admin-password-file: cannot be combined with admin-password"))
	}
	if c.AdminPassword != "" && len(c.AdminPassword) < MinPasswordLength {
		errs = append(errs, fmt.Errorf("admin-password: must be at least %d characters", MinPasswordLength))
	}
	if c.SessionTTL < time.Minute {
		errs = append(errs, errors.New("session-ttl: must be at least 1m"))
	}
	if c.MaxSessions < 1 {
		errs = append(errs, errors.New("max-sessions: must be at least 1"))
	}
	if c.LoginAttempts < 1 {
		errs = append(errs, errors.New("login-attempts: must be at least 1"))
	}
	if c.LoginWindow <= 0 {
		errs = append(errs, errors.New("login-window: must be positive"))
	}
	if c.LoginTrackedIPs < 1 {
		errs = append(errs, errors.New("login-tracked-ips: must be at least 1"))
	}
	if c.StaleAfter < 10*time.Second {
		errs = append(errs, errors.New("stale-after: must be at least 10s"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("shutdown-timeout: must be positive"))
	}
	if c.RequestTimeout < time.Second {
		errs = append(errs, errors.New("request-timeout: must be at least 1s"))
	}
	if c.ResponseTimeout < time.Second {
		errs = append(errs, errors.New("response-timeout: must be at least 1s"))
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("metrics-listen: %q is not a host:port address: %w", c.MetricsListen, err))
		} else if c.MetricsListen == c.Listen {
			errs = append(errs, errors.New("metrics-listen: must differ from listen"))
		}
	}
	if c.MaxConnections < 1 {
		errs = append(errs, errors.New("max-connections: must be at least 1"))
	}
	for i, h := range c.Hosts {
		if err := validateHost(h); err != nil {
			errs = append(errs, fmt.Errorf("hosts[%d]: %w", i, err))
		}
	}
	for i, v := range c.TrustedProxies {
		if _, err := parseProxy(v); err != nil {
			errs = append(errs, fmt.Errorf("trusted-proxies[%d]: %w", i, err))
		}
	}
	if c.DevAssetsDir != "" {
		if st, err := os.Stat(c.DevAssetsDir); err != nil || !st.IsDir() {
			errs = append(errs, fmt.Errorf("dev-assets-dir: %q is not a directory", c.DevAssetsDir))
		}
	}
	return errors.Join(errs...)
}

// parseProxy parses a trusted-proxies entry: an address or a CIDR prefix.
func parseProxy(v string) (netip.Prefix, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix", v)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix", v)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// trustedProxyPrefixes returns TrustedProxies parsed (valid entries only).
func (c *Config) trustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, v := range c.TrustedProxies {
		if p, err := parseProxy(v); err == nil {
			out = append(out, p)
		}
	}
	return out
}
