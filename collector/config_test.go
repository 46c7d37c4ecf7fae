package collector

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigValid(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DefaultConfig is invalid: %v", err)
	}
	if cfg.ReceiveBuffer != 8<<20 || len(cfg.Listen) != 2 {
		t.Errorf("defaults: receive-buffer %d, listen %v; want 8 MiB on :2055 and :4739", cfg.ReceiveBuffer, cfg.Listen)
	}
}

// TestConfigValidate: each bad value gives one error naming its key.
func TestConfigValidate(t *testing.T) {
	cases := []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.Listen = nil }, "listen: at least one address is needed"},
		{func(c *Config) { c.Listen = []string{"nowhere"} }, `listen: "nowhere" is not a UDP address`},
		{func(c *Config) { c.Workers = 0 }, "workers: 0 is outside 1..64"},
		{func(c *Config) { c.ReceiveBuffer = -1 }, "receive-buffer: must not be negative"},
		{func(c *Config) { c.BatchSize = 0 }, "batch-size: 0 is outside 1..1048576"},
		{func(c *Config) { c.BatchAge = 0 }, "batch-age: must be positive"},
		{func(c *Config) { c.QueueSize = 0 }, "queue-size: must be at least 1"},
		{func(c *Config) { c.TemplateTTL = -time.Second }, "template-ttl: must be positive"},
		{func(c *Config) { c.MaxTemplates = 0 }, "max-templates: must be at least 1"},
		{func(c *Config) { c.SamplingOverride = map[string]uint32{"router1": 10} }, `sampling-override: key "router1" is not an IP address`},
		{func(c *Config) { c.SamplingOverride = map[string]uint32{"192.0.2.1": 0} }, `sampling-override: rate for "192.0.2.1" must be at least 1`},
		{func(c *Config) { c.MaxPending = 0 }, "max-pending: must be at least 1"},
		{func(c *Config) { c.PendingTTL = 0 }, "pending-ttl: must be positive"},
		{func(c *Config) { c.MaxExporters = 0 }, "max-exporters: must be at least 1"},
		{func(c *Config) { c.FlushTimeout = 0 }, "flush-timeout: must be positive"},
	}
	for _, tc := range cases {
		cfg := DefaultConfig()
		tc.mutate(&cfg)
		err := cfg.Validate()
		if err == nil {
			t.Errorf("no error, want %q", tc.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("error %q, want exactly one starting with %q", err, tc.want)
		}
	}
}
