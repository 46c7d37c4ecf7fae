package testutil

import (
	"log/slog"
	"testing"

	"github.com/flowbox/flowbox/routeros/routerostest"
)

// StartRouter runs a fake RouterOS router with personality p on a free
// 127.0.0.1 port and closes it when the test ends. Its log is discarded.
// Without p.Users the router has the one user "admin" with an empty
// password (see routerostest.Personality).
func StartRouter(tb testing.TB, p routerostest.Personality) *routerostest.Server {
	tb.Helper()
	s, err := routerostest.NewServer(p, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("cannot build fake router: %v", err)
	}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		tb.Fatalf("cannot start fake router: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}
