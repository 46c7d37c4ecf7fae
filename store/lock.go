package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the data directory's lock: the long-running writer
// (OpenExclusive) holds an exclusive flock(2) on it until Close, and
// writes its process id into it.
const LockFile = "flowbox.lock"

// LockedError is returned by OpenExclusive when another process (or another
// store of this process) holds the data directory's lock.
type LockedError struct {
	// Dir is the data directory.
	Dir string
	// PID is the process id written by the holder, 0 when unknown.
	PID int
}

func (e *LockedError) Error() string {
	holder := "another flowbox"
	switch {
	case e.PID == os.Getpid():
		holder = fmt.Sprintf("this process (pid %d)", e.PID)
	case e.PID > 0:
		holder = fmt.Sprintf("another flowbox (pid %d)", e.PID)
	}
	return fmt.Sprintf("data directory %s is in use by %s: stop it first, or give this one another data-dir", e.Dir, holder)
}

// dirLock is a held data directory lock.
type dirLock struct {
	f *os.File
}

// lockDataDir takes the exclusive lock of dir without waiting and writes
// the process id into the lock file. The lock is released by unlock, or by
// the kernel when the process exits, however it exits.
func lockDataDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("cannot open lock file: %w", describeDirError(dir, err))
	}
	if err := flockExclusive(f); err != nil {
		pid := readPID(f)
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, &LockedError{Dir: dir, PID: pid}
		}
		return nil, fmt.Errorf("cannot lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot write lock file %s: %w", path, err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot write lock file %s: %w", path, err)
	}
	return &dirLock{f: f}, nil
}

// unlock empties the lock file (so a stale process id is never shown) and
// releases the lock.
func (l *dirLock) unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	terr := l.f.Truncate(0)
	cerr := l.f.Close()
	l.f = nil
	if err := errors.Join(terr, cerr); err != nil {
		return fmt.Errorf("cannot release the data directory lock: %w", err)
	}
	return nil
}

// readPID returns the process id written in the lock file, 0 when there is
// none (the holder has not written it yet, or is not flowbox).
func readPID(f *os.File) int {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// errLocked is what flockExclusive returns when the lock is held.
var errLocked = errors.New("locked")

// describeDirError turns the errors of a data directory that cannot be
// written into messages an operator can act on.
func describeDirError(dir string, err error) error {
	switch {
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("data directory %s is on a read-only file system (flowbox stats and backup can read it; serve needs it writable): %w", dir, err)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("data directory %s is not writable by this user (uid %d; run as the user that owns it): %w", dir, os.Getuid(), err)
	}
	return err
}
