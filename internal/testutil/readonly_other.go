//go:build !linux

package testutil

import (
	"os"
	"testing"
)

// RunReadOnly needs Linux mount namespaces: elsewhere the test is skipped,
// or fails when FLOWBOX_FUNCTIONAL_TESTS=1.
func RunReadOnly(tb testing.TB, dir, test string, env ...string) string {
	tb.Helper()
	if os.Getenv(FunctionalEnv) == "1" {
		tb.Fatalf("a read-only bind mount needs Linux (%s=1)", FunctionalEnv)
	}
	tb.Skip("a read-only bind mount needs Linux")
	return ""
}

// ReadOnlyDir only runs in the child of RunReadOnly, which needs Linux.
func ReadOnlyDir(tb testing.TB) string {
	tb.Helper()
	tb.Skip("runs only as the child of RunReadOnly (Linux)")
	return ""
}
