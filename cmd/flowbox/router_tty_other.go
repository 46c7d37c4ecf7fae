//go:build !linux

package main

import "io"

// disableEcho is a no-op where flowbox does not manage the terminal.
func disableEcho(io.Reader) func() { return func() {} }
