//go:build !linux

package testutil

import (
	"os"
	"testing"
)

// RunOnTmpfs needs Linux mount namespaces: elsewhere the test is skipped,
// or fails when FLOWBOX_FUNCTIONAL_TESTS=1.
func RunOnTmpfs(tb testing.TB, size int64, test string, env ...string) string {
	tb.Helper()
	if os.Getenv(FunctionalEnv) == "1" {
		tb.Fatalf("a tmpfs in a private mount namespace needs Linux (%s=1)", FunctionalEnv)
	}
	tb.Skip("a tmpfs in a private mount namespace needs Linux")
	return ""
}

// TmpfsDir only runs in the child of RunOnTmpfs, which needs Linux.
func TmpfsDir(tb testing.TB) string {
	tb.Helper()
	tb.Skip("runs only as the child of RunOnTmpfs (Linux)")
	return ""
}

// FillFS is only used with TmpfsDir, which needs Linux.
func FillFS(tb testing.TB, path string) int64 {
	tb.Helper()
	tb.Skip("filling a file system runs only on a tmpfs of RunOnTmpfs (Linux)")
	return 0
}
