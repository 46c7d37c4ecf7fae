package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/flowbox/flowbox/internal/testutil"
	storagepkg "github.com/flowbox/flowbox/store/storage"
)

// TestClickHouseComposeExample checks the compose example of the README
// ("Flows in ClickHouse"): its flowbox configuration is valid and puts
// flows in the clickhouse service's database, as the user the service
// creates, with the password file the flowbox service mounts.
func TestClickHouseComposeExample(t *testing.T) {
	root, err := testutil.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "packaging", "container", "clickhouse")
	cfg, err := LoadConfig(filepath.Join(dir, "flowbox.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.reconcile()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the example configuration: %v", err)
	}
	ch := cfg.Store.ClickHouse
	if cfg.Store.Backend != storagepkg.BackendClickHouse || cfg.Store.Effective().NATRetention != 365*24*time.Hour {
		t.Fatalf("backend %q, NAT kept %s", cfg.Store.Backend, cfg.Store.Effective().NATRetention)
	}
	b, err := os.ReadFile(filepath.Join(dir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			Ports       []string          `yaml:"ports"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	chs, fb := compose.Services["clickhouse"], compose.Services["flowbox"]
	if len(ch.Addresses) != 1 || ch.Addresses[0] != "clickhouse:8123" || chs.Image == "" {
		t.Errorf("addresses %v, clickhouse image %q", ch.Addresses, chs.Image)
	}
	if chs.Environment["CLICKHOUSE_USER"] != ch.User || chs.Environment["CLICKHOUSE_DB"] != ch.Database {
		t.Errorf("clickhouse service creates %q in %q; flowbox uses %q in %q",
			chs.Environment["CLICKHOUSE_USER"], chs.Environment["CLICKHOUSE_DB"], ch.User, ch.Database)
	}
	if !slices.Contains(fb.Volumes, "./clickhouse.password:"+ch.PasswordFile+":ro") || !slices.Contains(fb.Volumes, "./flowbox.yaml:/etc/flowbox/flowbox.yaml:ro") {
		t.Errorf("flowbox mounts %v; want the configuration and %s", fb.Volumes, ch.PasswordFile)
	}
	if len(chs.Ports) != 0 || !strings.Contains(strings.Join(fb.Ports, " "), "2055:2055/udp") {
		t.Errorf("ports: clickhouse %v (want none published), flowbox %v", chs.Ports, fb.Ports)
	}
}
