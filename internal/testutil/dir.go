package testutil

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// DirListing returns the names, sizes and modification times of the files
// in dir, to prove that a command wrote nothing there (compare two
// listings).
func DirListing(tb testing.TB, dir string) []string {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %d %s", e.Name(), info.Size(), info.ModTime().Format(time.RFC3339Nano)))
	}
	return out
}
