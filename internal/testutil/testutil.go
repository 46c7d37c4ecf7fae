// Package testutil holds the helpers that flowbox's tests share: where the
// capture corpus is, a log buffer safe for concurrent writes, a condition
// wait, a fake RouterOS router on loopback and a UDP sink. It is imported
// only by tests (*_test.go files), never by product code.
//
// A helper belongs here from its second copy on. TestNoCopiesOfSharedHelpers
// fails when a test file elsewhere declares its own capturesDir, syncBuffer,
// waitFor, startRouter or newSink, spells out the capture corpus path, or
// calls time.Sleep without a comment saying why (a fake clock in a
// testing/synctest bubble, pacing a real sender): waits for a condition use
// WaitFor.
package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// FunctionalEnv is the environment variable that turns the skip of a test
// missing an external resource (the capture corpus, a tool) into a failure
// when it is "1".
const FunctionalEnv = "FLOWBOX_FUNCTIONAL_TESTS"

// RepoRoot returns the repository root: the nearest directory holding
// go.mod, from the working directory (a package's directory under go test)
// upwards.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("cannot find the repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the repository root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// CapturesPath returns where the shared capture corpus is expected:
// ../shared/captures from the repository root, relative to the working
// directory when possible. It does not check that the corpus is there (fuzz
// targets, which only seed from it when present, use it directly); tests
// call CapturesDir.
func CapturesPath() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(filepath.Dir(root), "shared", "captures")
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, dir); err == nil {
			return rel, nil
		}
	}
	return dir, nil
}

// CapturesDir returns the shared capture corpus directory
// (../shared/captures from the repository root). When it is absent, or not
// a directory, the test is skipped with the reason, or fails when
// FLOWBOX_FUNCTIONAL_TESTS=1.
func CapturesDir(tb testing.TB) string {
	tb.Helper()
	dir, err := CapturesPath()
	if err == nil {
		var st os.FileInfo
		if st, err = os.Stat(dir); err == nil && !st.IsDir() {
			err = errors.New("not a directory")
		}
	}
	if err != nil {
		if os.Getenv(FunctionalEnv) == "1" {
			tb.Fatalf("capture corpus %s is missing (%s=1): %v", dir, FunctionalEnv, err)
		} else {
			tb.Skipf("capture corpus %s is absent (it lives beside the repository, never in it): %v", dir, err)
		}
	}
	return dir
}

// SyncBuffer is a bytes.Buffer that is safe for concurrent use: a log
// destination that the code under test writes while the test reads it. The
// zero value is ready to use.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// maxPoll is the longest pause between two polls of WaitFor.
const maxPoll = 500 * time.Millisecond

// pollCap is the longest pause between two polls of a WaitFor with this
// timeout: a hundredth of it, within 1 ms and maxPoll.
func pollCap(timeout time.Duration) time.Duration {
	return min(max(timeout/100, time.Millisecond), maxPoll)
}

// SkipOrFail skips the test with reason (an optional tool or permission
// is missing), or fails it when FLOWBOX_FUNCTIONAL_TESTS=1.
func SkipOrFail(tb testing.TB, reason string) {
	tb.Helper()
	if os.Getenv(FunctionalEnv) == "1" {
		tb.Fatalf("%s (%s=1)", reason, FunctionalEnv)
	}
	tb.Skip(reason)
}

// WaitFor polls cond until it reports true. When timeout passes first, the
// test fails, naming what it waited for and the state cond described on
// its last call (cond's second result, e.g. "3 of 5 datagrams"). Polls
// start 1 ms apart and back off to a hundredth of the timeout (at most
// 500 ms), so that a cond which runs a query is not run too often; inside
// a testing/synctest bubble they use the bubble's fake clock. It must be
// called from the test's goroutine.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	pause, longest := time.Millisecond, pollCap(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			tb.Fatalf("timed out after %v waiting for %s; last state: %s", timeout, what, state)
			return
		}
		time.Sleep(min(pause, left))
		pause = min(2*pause, longest)
	}
}
