package routeros

import "testing"

func TestDurations(t *testing.T) {
	for in, want := range map[string]string{"60s": "1m", "1m": "1m", "00:01:00": "1m", "90": "1m30s", "1d2h": "1d2h",
		"30m": "30m", "0s": "0s", "2w": "2w", "500ms": "500ms", "2d20h12m20s": "2d20h12m20s"} {
		d, err := ParseDuration(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := FormatDuration(d); got != want {
			t.Errorf("%s -> %s, want %s", in, got, want)
		}
	}
	for _, bad := range []string{"", "m", "1x", "1:2", "1m5", "h1"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestIfIndex(t *testing.T) {
	for _, c := range []struct {
		row  map[string]string
		want uint32
		ok   bool
	}{
		{map[string]string{"name.oid": ".1.3.6.1.2.1.2.2.1.2.7", ".id": "*9"}, 7, true},
		{map[string]string{".id": "*1A"}, 26, true},
		{map[string]string{"name.oid": ".1.3.6.1.2.1.2.2.1.2.0", ".id": "*0"}, 0, false}, // 0 is the router itself
		{map[string]string{".id": "bogus"}, 0, false},
		{map[string]string{}, 0, false},
	} {
		if got, ok := IfIndex(c.row); got != c.want || ok != c.ok {
			t.Errorf("IfIndex(%v) = %d, %v; want %d, %v", c.row, got, ok, c.want, c.ok)
		}
	}
}
