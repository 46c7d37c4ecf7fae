package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestZeroDurations: a duration written as a bare 0 (as the documentation
// says to turn the NAT store off) loads as 0; integers stay integers, and
// the lines of later errors keep their numbers.
func TestZeroDurations(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, err := LoadConfig(write("ok.yaml", "collector:\n  workers: 0\n  batch-age: 0\nstore:\n  nat-retention: 0 # off\n  raw-retention: 72h\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store.NATRetention != 0 || cfg.Store.RawRetention != 72*time.Hour || cfg.Collector.BatchAge != 0 || cfg.Collector.Workers != 0 {
		t.Fatalf("store %+v, collector workers %d batch-age %s", cfg.Store, cfg.Collector.Workers, cfg.Collector.BatchAge)
	}
	_, err = LoadConfig(write("bad.yaml", "store:\n  nat-retention: 0\n  raw-retention: soon\n"))
	if err == nil || !strings.Contains(err.Error(), `store.raw-retention: "soon" is not a duration (such as 500ms, 30s, 5m or 48h) (line 3)`) {
		t.Fatalf("error %v", err)
	}
}
