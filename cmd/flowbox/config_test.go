package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestShippedConfig checks that the shipped configuration, whose keys are
// all commented out, is exactly the defaults, and that the dev config is
// valid.
func TestShippedConfig(t *testing.T) {
	got, err := LoadConfig(filepath.Join("..", "..", "configs", "flowbox.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	effective := got
	effective.reconcile()
	if err := effective.Validate(); err != nil {
		t.Fatalf("shipped config is invalid: %v", err)
	}
	if effective.Provision.CollectorPort != 2055 {
		t.Errorf("routers would be pointed at port %d, want the collector's 2055", effective.Provision.CollectorPort)
	}
	if diff := cmp.Diff(DefaultConfig(), got); diff != "" {
		t.Errorf("shipped config differs from the defaults (-want +got):\n%s", diff)
	}
	dev, err := LoadConfig(filepath.Join("..", "..", "configs", "dev.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dev.reconcile()
	if err := dev.Validate(); err != nil {
		t.Fatalf("dev config is invalid: %v", err)
	}
}

// TestShippedConfigUncommented uncomments every key of the shipped file
// and checks that it still loads: the documented keys exist.
func TestShippedConfigUncommented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "configs", "flowbox.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// A commented key is "#key:" or "#  nested-key:" or "#  - item";
	// prose comments are "# Words ...".
	key := regexp.MustCompile(`^(\s*)#(\s*)(- |[A-Za-z0-9_."-]+:(\s|$))`)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		out = append(out, key.ReplaceAllString(line, "$1$2$3"))
	}
	path := filepath.Join(t.TempDir(), "all.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("uncommented shipped config does not load: %v", err)
	}
	cfg.reconcile()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("uncommented shipped config is invalid: %v", err)
	}
	if cfg.Collector.SamplingOverride["192.0.2.1"] != 100 || len(cfg.Enrich.Applications) != 1 {
		t.Errorf("examples were not loaded: %+v %+v", cfg.Collector.SamplingOverride, cfg.Enrich.Applications)
	}
}

// TestBadConfigs runs `flowbox check` on each file of testdata/bad and
// compares the whole error with the expected text: every problem is
// reported, by YAML path (and line, for parse errors), never by Go type.
func TestBadConfigs(t *testing.T) {
	const durations = "a duration (such as 500ms, 30s, 5m or 48h)"
	want := map[string]string{
		"unknown-key.yaml": "cannot parse config testdata/bad/unknown-key.yaml:\n" +
			"collector.listne: unknown key (line 2)",
		"unknown-keys.yaml": "cannot parse config testdata/bad/unknown-keys.yaml:\n" +
			"collector.workerz: unknown key (line 4)\n" +
			"web.tls.crt: unknown key (line 7)\n" +
			"enrich.applications[0].prot: unknown key (line 11)",
		"wrong-types.yaml": "cannot parse config testdata/bad/wrong-types.yaml:\n" +
			`collector.workers: "many" is not an integer (line 2)` + "\n" +
			`collector.batch-age: "soon" is not ` + durations + " (line 3)\n" +
			"collector.listen: a mapping is not a list (line 4)\n" +
			`web.pprof: "maybe" is not true or false (line 6)`,
		"duplicate-key.yaml": "cannot parse config testdata/bad/duplicate-key.yaml:\n" +
			"collector.workers: duplicate key, first given at line 2 (line 3)",
		"not-yaml.yaml": "cannot parse config testdata/bad/not-yaml.yaml:\n" +
			"yaml: line 1: did not find expected ',' or ']'",
		"bad-listen.yaml": "invalid config:\n" +
			`collector.listen: "not an address" is not a UDP address: address not an address: missing port in address`,
		"empty-listen.yaml": "invalid config:\n" +
			"collector.listen[1]: empty address",
		"retention.yaml": "invalid config:\n" +
			"store.raw-retention: must be at least 1h",
		"log-level.yaml": "invalid config:\n" +
			`log.level: "loud" is not one of debug, info, warn, error`,
		"tls-missing.yaml": "check failed:\n" +
			"web.tls.cert: testdata/bad/no-such-cert.pem: no such file or directory\n" +
			"web.tls.key: testdata/bad/no-such-key.pem: no such file or directory",
		"tls-not-pem.yaml": "check failed:\n" +
			"web.tls: testdata/bad/not-pem.txt and testdata/bad/not-pem.txt are not a certificate and its key: " +
			"tls: failed to find any PEM data in certificate input",
	}
	files, err := filepath.Glob(filepath.Join("testdata", "bad", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := want[filepath.Base(f)]; !ok {
			t.Errorf("%s has no expected error in this test", f)
		}
	}
	for file, msg := range want {
		t.Run(file, func(t *testing.T) {
			var stderr bytes.Buffer
			e := &env{stdout: &bytes.Buffer{}, stderr: &stderr, getenv: func(string) string { return "" }}
			err := run(context.Background(), e, []string{"check", "--config", filepath.Join("testdata", "bad", file), "--data-dir", t.TempDir()})
			if err == nil || err.Error() != msg {
				t.Fatalf("flowbox check:\n got %v\nwant %s", err, msg)
			}
		})
	}
}

// TestCheckBuildsEverything runs `flowbox check` on a fresh data directory:
// the whole component graph is built without starting anything.
func TestCheckBuildsEverything(t *testing.T) {
	var stdout, stderr bytes.Buffer
	e := &env{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	if err := run(context.Background(), e, []string{"check", "--data-dir", t.TempDir()}); err != nil {
		t.Fatalf("check: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "configuration OK") {
		t.Errorf("check printed %q", stdout.String())
	}
	stdout.Reset()
	e.getenv = func(k string) string {
		if k == "FLOWBOX_ADMIN_PASSWORD" {
			return "s3cret-admin-pw"
		}
		return ""
	}
	if err := run(context.Background(), e, []string{"check", "--dump", "--data-dir", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stdout.String(), "s3cret-admin-pw") || !strings.Contains(stdout.String(), "listen:") {
		t.Errorf("--dump leaks the password or prints nothing:\n%s", stdout.String())
	}
}
