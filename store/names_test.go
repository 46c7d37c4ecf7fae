package store

import (
	"strings"
	"testing"
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
