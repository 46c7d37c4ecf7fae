package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func openExclusive(t *testing.T, dir string) (*DB, error) {
	t.Helper()
	return OpenExclusive(context.Background(), dir)
}

// TestLockOneWriterPerDataDir opens the data directory exclusively twice in
// one process: flock(2) locks belong to open file descriptions, so the
// second open conflicts even here. Short-lived writers and readers work
// beside the holder, and Close hands the directory over.
func TestLockOneWriterPerDataDir(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock(2)")
	}
	dir := t.TempDir()
	first, err := openExclusive(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	_, err = openExclusive(t, dir)
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("second OpenExclusive: %v, want a *LockedError", err)
	}
	want := fmt.Sprintf("data directory %s is in use by this process (pid %d): stop it first, or give this one another data-dir", dir, os.Getpid())
	if err.Error() != want {
		t.Errorf("error:\n got %s\nwant %s", err, want)
	}

	// flowbox router/token/subscribers and the readers do not take the lock.
	other, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatalf("Open beside the holder: %v", err)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(context.Background(), dir)
	if err != nil {
		t.Fatalf("OpenReadOnly beside the holder: %v", err)
	}
	ro.Close()

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, LockFile)); err != nil || len(b) != 0 {
		t.Errorf("lock file after Close: %q, %v; want it empty", b, err)
	}
	again, err := openExclusive(t, dir)
	if err != nil {
		t.Fatalf("OpenExclusive after Close: %v", err)
	}
	again.Close()
}

// lockDirEnv tells TestLockHolderChild which directory to hold.
const lockDirEnv = "FLOWBOX_TEST_LOCK_DIR"

// TestLockHeldByAnotherProcess holds the lock in a child process: the
// refusal names the child's pid, and killing the child with SIGKILL
// releases the lock (the kernel drops it with the process).
func TestLockHeldByAnotherProcess(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock(2)")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHolderChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), lockDirEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	locked := make(chan string, 1)
	go func() {
		var seen string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			seen += sc.Text() + "\n"
			if sc.Text() == "locked" {
				locked <- ""
				io.Copy(io.Discard, stdout)
				return
			}
		}
		locked <- seen
	}()
	select {
	case out := <-locked:
		if out != "" {
			t.Fatalf("the child did not take the lock:\n%s", out)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the child did not take the lock within 60s")
	}

	_, err = openExclusive(t, dir)
	var le *LockedError
	if !errors.As(err, &le) || le.PID != cmd.Process.Pid {
		t.Fatalf("OpenExclusive while the child holds the lock: %v, want a *LockedError with pid %d", err, cmd.Process.Pid)
	}
	want := fmt.Sprintf("data directory %s is in use by another flowbox (pid %d): stop it first, or give this one another data-dir", dir, cmd.Process.Pid)
	if err.Error() != want {
		t.Errorf("error:\n got %s\nwant %s", err, want)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true
	s, err := openExclusive(t, dir)
	if err != nil {
		t.Fatalf("OpenExclusive after the holder was killed: %v", err)
	}
	s.Close()
}

// TestLockHolderChild is the child of TestLockHeldByAnotherProcess: it
// holds the lock until its stdin closes.
func TestLockHolderChild(t *testing.T) {
	dir := os.Getenv(lockDirEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestLockHeldByAnotherProcess")
	}
	s, err := openExclusive(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
}
