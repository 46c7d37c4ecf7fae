package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestManPageAndREADMEDescribeEveryCommand: packaging/man/flowbox.1 has an
// entry (".B name") and README.md's command table a row ("| `flowbox
// name") for every command of `flowbox help`.
func TestManPageAndREADMEDescribeEveryCommand(t *testing.T) {
	man, err := os.ReadFile("../../packaging/man/flowbox.1")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commands() {
		name := strings.ReplaceAll(c.name, "-", `\\-`)
		if !regexp.MustCompile(`(?m)^\.B ` + name + `( |$)`).Match(man) {
			t.Errorf("the manual page does not describe the command %s (packaging/man/flowbox.1)", c.name)
		}
		if c.name == "help" {
			continue
		}
		if !strings.Contains(string(readme), "| `flowbox "+c.name) {
			t.Errorf("README.md's command table has no row for %s", c.name)
		}
	}
}
