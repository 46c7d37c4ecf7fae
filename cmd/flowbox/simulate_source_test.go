package main

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestSimulateSource checks that load mode sends from --source (what a
// container's published port needs: NAT drops 127.0.0.2 and up) and from
// 127.0.0.2 without it.
func TestSimulateSource(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	target := conn.LocalAddr().String()

	sources := func(args ...string) map[netip.Addr]int {
		t.Helper()
		full := append([]string{"simulate", "--target", target, "--routers", "1", "--rate", "500", "--duration", "2s"}, args...)
		if out, err := runWithEnv(nil, full...); err != nil {
			t.Fatalf("simulate %v: %v\n%s", args, err, out)
		}
		seen := map[netip.Addr]int{}
		buf := make([]byte, 9000)
		for {
			_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			_, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return seen
			}
			seen[from.Addr()]++
		}
	}
	if got := sources("--source", "127.0.0.1"); len(got) != 1 || got[netip.MustParseAddr("127.0.0.1")] == 0 {
		t.Errorf("--source 127.0.0.1: packets came from %v", got)
	}
	if got := sources(); len(got) != 1 || got[netip.MustParseAddr("127.0.0.2")] == 0 {
		t.Errorf("default source: packets came from %v", got)
	}
	for _, bad := range []string{"nope", "::1"} {
		if _, err := runWithEnv(nil, "simulate", "--target", target, "--source", bad, "--duration", "10ms"); err == nil || exitCode(err) != 2 {
			t.Errorf("--source %q: %v, want a usage error", bad, err)
		}
	}
}
