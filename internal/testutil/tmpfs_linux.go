package testutil

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
)

// tmpfsEnv carries the size of the tmpfs from RunOnTmpfs to its child.
const tmpfsEnv = "FLOWBOX_TEST_TMPFS_BYTES"

// RunOnTmpfs runs the test named test of this test binary again, in a
// child process with its own mount namespace, where TmpfsDir mounts a tmpfs
// of size bytes: a small file system to fill up (a full disk) without
// touching the machine's. env is added to the child's environment. The
// parent test fails when the child fails and gets the child's output.
// Mounting needs root (CAP_SYS_ADMIN): without it the test is skipped with
// the reason, or fails when FLOWBOX_FUNCTIONAL_TESTS=1.
func RunOnTmpfs(tb testing.TB, size int64, test string, env ...string) string {
	tb.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(tb, "a tmpfs mount in a private mount namespace needs root")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.v")
	cmd.Env = append(append(os.Environ(), tmpfsEnv+"="+strconv.FormatInt(size, 10)), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil {
		var exited *exec.ExitError
		if !errors.As(err, &exited) {
			SkipOrFail(tb, "cannot start a process in a private mount namespace: "+err.Error())
		}
		tb.Fatalf("%s on a tmpfs: %v\n%s", test, err, out)
	}
	return string(out)
}

// TmpfsDir, in the child started by RunOnTmpfs, mounts a tmpfs of the
// parent's size on a new temporary directory and returns it; the mount
// goes with the test (and with the namespace, when the child exits).
// Mounts are made private first, so that none propagates to the parent's
// namespace. Elsewhere it skips the test, which only runs as that child.
func TmpfsDir(tb testing.TB) string {
	tb.Helper()
	size := os.Getenv(tmpfsEnv)
	if size == "" {
		tb.Skip("runs only as the child of RunOnTmpfs")
	}
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		tb.Fatalf("cannot make the mounts private: %v", err)
	}
	dir := tb.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size="+size+",mode=0700"); err != nil {
		tb.Fatalf("cannot mount a tmpfs on %s: %v", dir, err)
	}
	tb.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			tb.Errorf("cannot unmount %s: %v", dir, err)
		}
	})
	return dir
}

// FillFS writes the file path until its file system is full (ENOSPC) and
// returns the bytes written; removing the file gives the space back.
func FillFS(tb testing.TB, path string) int64 {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var n int64
	// Big writes first, then pages, so the last free page is taken too.
	for _, size := range []int{1 << 20, 4096, 1} {
		buf := make([]byte, size)
		for {
			w, err := f.Write(buf)
			n += int64(w)
			if err == nil {
				continue
			}
			if !errors.Is(err, syscall.ENOSPC) {
				tb.Fatalf("cannot fill %s: %v", path, err)
			}
			break
		}
	}
	return n
}
