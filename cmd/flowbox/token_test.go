package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/flowbox/flowbox/web"
)

func TestTokenCommand(t *testing.T) {
	dir := t.TempDir()
	runCmd := func(args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		full := append([]string{args[0], args[1], "--data-dir", dir}, args[2:]...)
		err := run(context.Background(), e, full)
		return out.String(), errb.String(), err
	}
	out, _, err := runCmd("token", "create", "--name", "backup")
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSpace(out)
	if !strings.HasPrefix(secret, web.TokenPrefix) || len(secret) < 40 {
		t.Fatalf("create printed %q", out)
	}
	if _, _, err := runCmd("token", "create", "--name", "backup"); err == nil {
		t.Fatal("a duplicate name was accepted")
	}
	out, _, err = runCmd("token", "list")
	if err != nil || !strings.Contains(out, "backup") || strings.Contains(out, secret) || strings.Contains(out, web.HashToken(secret)) {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if _, _, err := runCmd("token", "revoke", "backup"); err != nil {
		t.Fatal(err)
	}
	out, _, _ = runCmd("token", "list")
	if strings.Contains(out, "backup") {
		t.Fatalf("revoked token still listed:\n%s", out)
	}
	if _, _, err := runCmd("token", "revoke", "backup"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("revoking twice: %v", err)
	}
	if _, _, err := runCmd("token", "frobnicate"); err == nil || exitCode(err) != 2 {
		t.Fatalf("unknown subcommand: %v", err)
	}
}
