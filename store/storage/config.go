package storage

import (
	"errors"
	"fmt"
	"strings"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/clickhouse"
)

// The flow backends of store.backend.
const (
	// BackendSQLite keeps flows in the data directory's database.
	BackendSQLite = "sqlite"
	// BackendClickHouse keeps flows in ClickHouse (store.clickhouse);
	// the inventory, the exporter and interface counters stay in SQLite.
	BackendClickHouse = "clickhouse"
)

// Config is the store section of the configuration: the SQLite flow
// database's settings (inline), and which backend keeps the flows.
type Config struct {
	store.Config `yaml:",inline"`
	// Backend is sqlite (the default) or clickhouse.
	Backend string `yaml:"backend"`
	// ClickHouse is the ClickHouse backend's connection and TTLs.
	ClickHouse clickhouse.Config `yaml:"clickhouse"`
}

// DefaultConfig returns the defaults: flows in SQLite.
func DefaultConfig() Config {
	return Config{Config: store.DefaultConfig(), Backend: BackendSQLite, ClickHouse: clickhouse.DefaultConfig()}
}

// SQLite returns cfg as the configuration of the default backend.
func SQLite(cfg store.Config) Config {
	c := DefaultConfig()
	c.Config = cfg
	return c
}

// Validate returns every problem of the configuration, each naming its
// key; the clickhouse section is checked when it is the backend.
func (c *Config) Validate() error {
	errs := []error{c.Config.Validate()}
	switch c.Backend {
	case BackendSQLite, "":
	case BackendClickHouse:
		errs = append(errs, c.ClickHouse.Validate())
	default:
		errs = append(errs, fmt.Errorf("backend: %q is not sqlite or clickhouse", c.Backend))
	}
	return errors.Join(errs...)
}

// Describe says where flows are kept, for operators: "sqlite", or
// "clickhouse" with the database, site and servers.
func (c *Config) Describe() string {
	if c.Backend != BackendClickHouse {
		return BackendSQLite
	}
	ch := &c.ClickHouse
	if ch.Cluster != "" {
		return fmt.Sprintf("clickhouse (database %s, site %s, cluster %s, through %s)", ch.Database, ch.Site, ch.Cluster, strings.Join(ch.Addresses, ", "))
	}
	return fmt.Sprintf("clickhouse (database %s, site %s, on %s)", ch.Database, ch.Site, strings.Join(ch.Addresses, ", "))
}

// Effective returns the flow database's settings as the backend applies
// them: with clickhouse, its TTLs stand for the retentions (raw, minute,
// hour, hourly usage, NAT).
func (c *Config) Effective() store.Config {
	e := c.Config
	if c.Backend == BackendClickHouse {
		ch := &c.ClickHouse
		e.RawRetention, e.MinuteRetention, e.HourRetention = ch.RawTTL, ch.MinuteTTL, ch.HourTTL
		e.UsageHourRetention, e.NATRetention = ch.UsageHourTTL, ch.NATTTL
	}
	return e
}
