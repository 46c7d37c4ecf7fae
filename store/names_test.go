package store

import (
	"strings"
	"testing"
	"time"
)

func TestRouterNames(t *testing.T) {
	for name, want := range map[string]bool{"tower-1": true, "T.2_b": true, "": false, "-x": false, ".x": false,
		"a b": false, "ñ": false, strings.Repeat("a", 64): true, strings.Repeat("a", 65): false} {
		if got := ValidRouterName(name); got != want {
			t.Errorf("ValidRouterName(%q) = %v", name, got)
		}
	}
	for in, want := range map[string]string{"MikroTik": "MikroTik", "Tower 3 (north)": "Tower-3--north", "  ": "fallback",
		"ñandú": "and", "127.0.0.1:8728": "127.0.0.1-8728", strings.Repeat("a", 70): strings.Repeat("a", 64)} {
		got := RouterNameFrom(in, "fallback")
		if got != want || !ValidRouterName(got) {
			t.Errorf("RouterNameFrom(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCSVText(t *testing.T) {
	for in, want := range map[string]string{"alice": "alice", "": "", "=HYPERLINK(\"x\")": "'=HYPERLINK(\"x\")",
		"+1": "'+1", "-2+3": "'-2+3", "@SUM(A1)": "'@SUM(A1)", "\tx": "'\tx", "\rx": "'\rx", "a=b": "a=b"} {
		if got := CSVText(in); got != want {
			t.Errorf("CSVText(%q) = %q, want %q", in, got, want)
		}
	}
	u := &SubscriberUsage{Subscriber: "=cmd|' /C calc'!A0", Source: -2}
	rec := UsageCSVRecord(u, nil, time.Unix(0, 0), time.Unix(3600, 0))
	if rec[0] != "'=cmd|' /C calc'!A0" || rec[1] != "-2" {
		t.Errorf("usage record %q", rec)
	}
}
