package testutil

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// readOnlyEnv carries the directory to mount read-only from RunReadOnly to
// its child.
const readOnlyEnv = "FLOWBOX_TEST_READONLY_DIR"

// RunReadOnly runs the test named test of this test binary again, in a
// child process with its own mount namespace in which dir is bind-mounted
// read-only, as on a read-only file system: permissions do not stop root,
// a read-only mount does. The child test starts with ReadOnlyDir; env is
// added to its environment. The parent test fails when the child fails and
// gets the child's output. Creating the namespace needs root
// (CAP_SYS_ADMIN): without it the test is skipped with the reason, or
// fails when FLOWBOX_FUNCTIONAL_TESTS=1.
func RunReadOnly(tb testing.TB, dir, test string, env ...string) string {
	tb.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(tb, "a read-only bind mount in a private mount namespace needs root")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.v")
	cmd.Env = append(append(os.Environ(), readOnlyEnv+"="+dir), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil {
		var exited *exec.ExitError
		if !errors.As(err, &exited) {
			SkipOrFail(tb, "cannot start a process in a private mount namespace: "+err.Error())
		}
		tb.Fatalf("%s in a read-only mount of %s: %v\n%s", test, dir, err, out)
	}
	return string(out)
}

// ReadOnlyDir, in the child started by RunReadOnly, bind-mounts the
// directory read-only over itself and returns it. Elsewhere it skips the
// test, which only runs as that child.
func ReadOnlyDir(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv(readOnlyEnv)
	if dir == "" {
		tb.Skip("runs only as the child of RunReadOnly")
	}
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		tb.Fatalf("cannot bind-mount %s: %v", dir, err)
	}
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		tb.Fatalf("cannot remount %s read-only: %v", dir, err)
	}
	return dir
}
