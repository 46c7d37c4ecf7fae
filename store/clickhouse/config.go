// Package clickhouse is flowbox's second flow store: ClickHouse, for WISPs
// that outgrow one box. It talks to ClickHouse over its HTTP interface
// (no driver: requests of SQL and RowBinary data), manages its schema with
// numbered migrations (migrations/), on one server or on every server of
// a cluster behind Distributed tables (cluster.go), writes raw flows in
// batches from a bounded queue (Ingest), rolls up the top-N lists
// (RollupTop), and answers every query of the console and the API as the
// SQLite store answers them (Reader).
package clickhouse

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"time"
)

// Config is how flowbox reaches ClickHouse and what it keeps there.
type Config struct {
	// Addresses are the host:port of the servers' HTTP interface (8123,
	// or 8443 with TLS), tried in turn when one cannot be reached.
	Addresses []string `yaml:"addresses"`
	// Database is the database flowbox owns (created if missing).
	Database string `yaml:"database"`
	// Site names this collector's flows (a column of every table), so
	// that several flowbox collectors can share one database.
	Site string `yaml:"site"`
	// User is the ClickHouse user, PasswordFile the file holding its
	// password (its first line; empty: no password).
	User         string `yaml:"user"`
	PasswordFile string `yaml:"password-file"`
	// TLS turns HTTPS on.
	TLS TLSConfig `yaml:"tls"`
	// Cluster, when set, names the ClickHouse cluster (remote_servers)
	// the flows are spread over: the tables are created in the database
	// Database+"_local" of every server in Addresses, and flowbox reads
	// and writes them through Distributed tables of the same names in
	// Database. Empty: one server, plain tables.
	Cluster string `yaml:"cluster"`
	// RawTTL is how long ClickHouse keeps raw flows, MinuteTTL the
	// minute totals, HourTTL the hour totals and the daily usage, and
	// UsageHourTTL the hourly subscriber usage.
	RawTTL       time.Duration `yaml:"raw-ttl"`
	MinuteTTL    time.Duration `yaml:"minute-ttl"`
	HourTTL      time.Duration `yaml:"hour-ttl"`
	UsageHourTTL time.Duration `yaml:"usage-hour-ttl"`
	// NATTTL is how long NAT mappings are kept (for abuse lookups).
	NATTTL time.Duration `yaml:"nat-ttl"`
	// TopK is the number of keys per hour, dimension, source and
	// direction the top-N rollups keep (the rest is one "other" row).
	TopK int `yaml:"top-k"`
	// Timeout bounds one request (a query or a batch insert).
	Timeout time.Duration `yaml:"timeout"`
	// SpillDir is where serve's writer puts the inserts ClickHouse
	// cannot take (down or slow) until it can, SpillMaxMB their bound
	// in MiB (0: no spill; the queue alone waits). Empty SpillDir:
	// clickhouse-spill in the data directory.
	SpillDir   string `yaml:"spill-dir"`
	SpillMaxMB int    `yaml:"spill-max-mb"`
}

// TLSConfig is the HTTPS setup of the connection to ClickHouse.
type TLSConfig struct {
	// Enabled turns HTTPS on.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM file of the CAs to trust (empty: the system's).
	CAFile string `yaml:"ca-file"`
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `yaml:"server-name"`
}

// DefaultConfig returns the defaults: a local server, database flowbox.
func DefaultConfig() Config {
	return Config{
		Addresses:    []string{"127.0.0.1:8123"},
		Database:     "flowbox",
		Site:         "default",
		User:         "default",
		RawTTL:       30 * 24 * time.Hour,
		MinuteTTL:    30 * 24 * time.Hour,
		HourTTL:      400 * 24 * time.Hour,
		UsageHourTTL: 62 * 24 * time.Hour,
		NATTTL:       180 * 24 * time.Hour,
		TopK:         100,
		Timeout:      30 * time.Second,
		SpillMaxMB:   1024,
	}
}

var (
	identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	siteName   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	// clusterName is what a remote_servers entry can be called (an XML
	// element name, kept to the plain ones).
	clusterName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,127}$`)
)

// localSuffix ends the name of the database that holds the tables of a
// cluster's servers (Config.Cluster).
const localSuffix = "_local"

// tablesDB returns the database the tables (and their views) live in:
// Database, or with a cluster its local one.
func (c *Config) tablesDB() string {
	if c.Cluster != "" {
		return c.Database + localSuffix
	}
	return c.Database
}

// Validate checks the configuration and says what is wrong with it.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Addresses) == 0 {
		errs = append(errs, errors.New("clickhouse.addresses: at least one host:port is needed"))
	}
	for _, a := range c.Addresses {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("clickhouse.addresses: %q is not host:port", a))
		}
	}
	if !identifier.MatchString(c.Database) {
		errs = append(errs, fmt.Errorf("clickhouse.database: %q is not a plain identifier (letters, digits, _)", c.Database))
	}
	if !siteName.MatchString(c.Site) {
		errs = append(errs, fmt.Errorf("clickhouse.site: %q: want 1 to %d letters, digits, '.', '-' or '_'", c.Site, maxSiteLen))
	}
	if c.Cluster != "" && !clusterName.MatchString(c.Cluster) {
		errs = append(errs, fmt.Errorf("clickhouse.cluster: %q is not a cluster name (letters, digits, '_', '.', '-')", c.Cluster))
	}
	if c.User == "" {
		errs = append(errs, errors.New("clickhouse.user: empty"))
	}
	for _, ttl := range []struct {
		key string
		d   time.Duration
	}{{"raw-ttl", c.RawTTL}, {"minute-ttl", c.MinuteTTL}, {"hour-ttl", c.HourTTL}, {"usage-hour-ttl", c.UsageHourTTL}, {"nat-ttl", c.NATTTL}} {
		if ttl.d < time.Hour {
			errs = append(errs, fmt.Errorf("clickhouse.%s: %s is below the minimum of 1h", ttl.key, ttl.d))
		}
	}
	if c.TopK < 1 || c.TopK > 10000 {
		errs = append(errs, fmt.Errorf("clickhouse.top-k: %d is not within 1..10000", c.TopK))
	}
	if c.SpillMaxMB < 0 {
		errs = append(errs, fmt.Errorf("clickhouse.spill-max-mb: %d is negative", c.SpillMaxMB))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("clickhouse.timeout: %s must be positive", c.Timeout))
	}
	if c.TLS.CAFile != "" && !c.TLS.Enabled {
		errs = append(errs, errors.New("clickhouse.tls.ca-file: set, but tls.enabled is false"))
	}
	return errors.Join(errs...)
}
