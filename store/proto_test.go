package store

import "testing"

func TestProtoNames(t *testing.T) {
	for p := 0; p < 256; p++ {
		name := ProtoName(uint8(p))
		if got, ok := ParseProto(name); !ok || got != uint8(p) {
			t.Errorf("ParseProto(ProtoName(%d) = %q) = %d, %v", p, name, got, ok)
		}
	}
	for s, want := range map[string]uint8{"TCP": 6, "igmp": 2, "ipv6-icmp": 58, "icmpv6": 58, " udp ": 17, "47": 47} {
		if got, ok := ParseProto(s); !ok || got != want {
			t.Errorf("ParseProto(%q) = %d, %v; want %d", s, got, ok, want)
		}
	}
	for _, bad := range []string{"", "bogus", "256", "-1"} {
		if _, ok := ParseProto(bad); ok {
			t.Errorf("ParseProto(%q) accepted", bad)
		}
	}
	if ProtoName(2) != "igmp" || ProtoName(99) != "99" {
		t.Errorf("ProtoName(2) = %q, ProtoName(99) = %q", ProtoName(2), ProtoName(99))
	}
}
