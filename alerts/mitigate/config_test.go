package mitigate

import (
	"strings"
	"testing"
	"time"
)

// TestPolicy: built-in defaults, then the default block, then the
// router's keys; routers not listed get the default block.
func TestPolicy(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	want := Policy{AttackedList: "flowbox-attacked", AbuseList: "flowbox-abuse", Timeout: time.Hour, MaxEntries: 50}
	if got := cfg.Policy("wisp-1"); got != want {
		t.Errorf("default policy = %+v, want %+v (off)", got, want)
	}
	yes := true
	cfg.Default.DryRun, cfg.Default.MaxEntries = &yes, 20
	rc := policy("blackhole")
	rc.AbuseList, rc.Timeout = "limit-25", 10*time.Minute
	cfg.Routers["wisp-1"] = rc
	cfg.Routers["wisp-2"] = policy("off")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Policy("wisp-1"), (Policy{Enabled: true, DryRun: true, Blackhole: true, AttackedList: "flowbox-attacked",
		AbuseList: "limit-25", Timeout: 10 * time.Minute, MaxEntries: 20}); got != want {
		t.Errorf("wisp-1 = %+v, want %+v", got, want)
	}
	if got := cfg.Policy("wisp-3"); got.Enabled || !got.DryRun || got.MaxEntries != 20 {
		t.Errorf("a router not listed = %+v", got)
	}
}

// TestValidate names each bad key by its YAML path.
func TestValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.QueueSize = 0
	cfg.CommandTimeout = 0
	cfg.RetryInterval = time.Millisecond
	cfg.Default.Timeout = 30 * time.Second
	bad := policy()
	bad.AttackedList, bad.MaxEntries, bad.Timeout = "has space", -1, 1500*time.Millisecond+time.Hour
	cfg.Routers["wisp-1"] = bad
	cfg.Routers["bad name"] = policy()
	err := cfg.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	want := []string{
		"queue-size: must be within 1..65536",
		"command-timeout: must be positive",
		"retry-interval: must be at least 1s",
		"default.timeout: must be whole seconds within 1m0s..672h0m0s",
		`routers: "bad name" is not a router name`,
		`routers.wisp-1.attacked-list: "has space" must be`,
		"routers.wisp-1.timeout: must be whole seconds",
		"routers.wisp-1.max-entries: must be within 1..10000",
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Errorf("%d errors, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if i < len(lines) && !strings.HasPrefix(lines[i], w) {
			t.Errorf("error %d = %q, want %q...", i, lines[i], w)
		}
	}
	if _, err := New(cfg, Deps{Routers: &inventory{}, Audit: &auditLog{}}); err == nil {
		t.Error("New accepted a bad config")
	}
	if _, err := New(DefaultConfig(), Deps{Audit: &auditLog{}}); err == nil {
		t.Error("New accepted no router source")
	}
	if _, err := New(DefaultConfig(), Deps{Routers: &inventory{}}); err == nil {
		t.Error("New accepted no audit log")
	}
}
