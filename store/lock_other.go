//go:build !unix

package store

import "os"

// flockExclusive is a no-op where flock(2) does not exist: the data
// directory is not locked there.
func flockExclusive(*os.File) error { return nil }

// writable cannot ask the kernel here: it assumes path is writable and
// lets the first write report otherwise.
func writable(string) error { return nil }
