package main

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestEnvOverrides(t *testing.T) {
	vars := map[string]string{
		EnvListenWeb:        " 127.0.0.1:9090 ",
		EnvListenNetflow:    "127.0.0.1:12055, ,127.0.0.1:14739",
		EnvAllowedExporters: "10.88.0.0/16, 192.0.2.7",
	}
	getenv := func(k string) string { return vars[k] }

	cfg := DefaultConfig()
	cfg.Collector.AllowedExporters = []string{"198.51.100.0/24"}
	envOverrides(getenv, nil)(&cfg)
	if want := []string{"198.51.100.0/24", "10.88.0.0/16", "192.0.2.7"}; !slices.Equal(cfg.Collector.AllowedExporters, want) {
		t.Errorf("collector.allowed-exporters = %q, want %q", cfg.Collector.AllowedExporters, want)
	}
	if cfg.Web.Listen != "127.0.0.1:9090" {
		t.Errorf("web.listen = %q", cfg.Web.Listen)
	}
	if want := []string{"127.0.0.1:12055", "127.0.0.1:14739"}; !slices.Equal(cfg.Collector.Listen, want) {
		t.Errorf("collector.listen = %q, want %q", cfg.Collector.Listen, want)
	}

	// A flag given on the command line wins over its variable.
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("listen-web", "", "")
	fs.String("listen-netflow", "", "")
	if err := fs.Parse([]string{"--listen-web", ":7070"}); err != nil {
		t.Fatal(err)
	}
	cfg = DefaultConfig()
	cfg.Web.Listen = ":7070" // what the flag mutator set
	envOverrides(getenv, fs)(&cfg)
	if cfg.Web.Listen != ":7070" {
		t.Errorf("flag lost to the environment: web.listen = %q", cfg.Web.Listen)
	}
	if len(cfg.Collector.Listen) != 2 {
		t.Errorf("collector.listen = %q, want the environment's", cfg.Collector.Listen)
	}

	// Unset or blank variables change nothing.
	cfg = DefaultConfig()
	want := DefaultConfig()
	envOverrides(func(string) string { return " " }, nil)(&cfg)
	if cfg.Web.Listen != want.Web.Listen || !slices.Equal(cfg.Collector.Listen, want.Collector.Listen) {
		t.Errorf("blank variables changed the config: %q %q", cfg.Web.Listen, cfg.Collector.Listen)
	}
}

// TestEnvOverridesInCheck runs `flowbox check --dump` with the variables set:
// the effective configuration shows them, the admin password from
// FLOWBOX_ADMIN_PASSWORD is redacted, and a bad address is reported.
func TestEnvOverridesInCheck(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{
		EnvListenWeb:             "127.0.0.1:9090",
		EnvListenNetflow:         "127.0.0.1:12055,127.0.0.1:14739",
		"FLOWBOX_ADMIN_PASSWORD": "container-secret",
	}
	out, err := runWithEnv(vars, "check", "--dump", "--data-dir", dir)
	if err != nil {
		t.Fatalf("check --dump: %v\n%s", err, out)
	}
	for _, want := range []string{"listen: 127.0.0.1:9090", "- 127.0.0.1:12055", "- 127.0.0.1:14739", "collector-port: 12055", "<redacted>"} {
		if !strings.Contains(out, want) {
			t.Errorf("dump lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "container-secret") {
		t.Error("dump shows the admin password")
	}
	vars[EnvListenNetflow] = "not-an-address"
	if out, err := runWithEnv(vars, "check", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "collector.listen") {
		t.Fatalf("bad %s: %v\n%s", EnvListenNetflow, err, out)
	}
}
