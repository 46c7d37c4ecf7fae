//go:build unix

package store

import (
	"errors"
	"os"
	"syscall"
)

// flockExclusive takes an exclusive flock(2) on f without waiting. The
// lock belongs to the open file description: a second open of the file,
// even in this process, does not get it.
func flockExclusive(f *os.File) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
			if !errors.Is(ferr, syscall.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	if errors.Is(ferr, syscall.EWOULDBLOCK) {
		return errLocked
	}
	return ferr
}

// writable reports why path (a directory or a file) cannot be written by
// this process, or nil. It asks the kernel (access(2)), which also answers
// for a read-only file system, and writes nothing.
func writable(path string) error {
	if err := syscall.Access(path, 2 /* W_OK */); err != nil {
		return &os.PathError{Op: "access", Path: path, Err: err}
	}
	return nil
}
