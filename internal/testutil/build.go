package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BinaryEnv names an already built flowbox binary for BuildFlowbox to
// return instead of building one.
const BinaryEnv = "FLOWBOX_TEST_BINARY"

// BuildFlowbox builds the flowbox command (cmd/flowbox of the repository,
// with CGO_ENABLED=1 and without the race detector, whatever the test
// binary was built with) into a temporary directory of tb, and returns the
// binary's path: for tests that need a real process (kill -9, signals,
// speed). With the build cache warm it links in a few seconds. When the go
// command is missing the test is skipped, or fails when
// FLOWBOX_FUNCTIONAL_TESTS=1.
func BuildFlowbox(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv(BinaryEnv); p != "" {
		return p
	}
	return BuildCommand(tb, "./cmd/flowbox")
}

// BuildCommand builds the command of the repository's package dir (such
// as ./cmd/flowbox) as BuildFlowbox does, and returns the binary's path.
func BuildCommand(tb testing.TB, dir string) string {
	tb.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		SkipOrFail(tb, "building "+dir+" needs the go command: "+err.Error())
	}
	root, err := RepoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	out := filepath.Join(tb.TempDir(), filepath.Base(dir))
	cmd := exec.Command(goCmd, "build", "-o", out, dir)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if msg, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("cannot build %s: %v\n%s", dir, err, msg)
	}
	return out
}
