package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/web"
)

// cliRunner runs flowbox commands in-process on one data directory.
func cliRunner(t *testing.T, dir string) func(args ...string) (string, string, error) {
	return func(args ...string) (string, string, error) {
		t.Helper()
		var out, errb bytes.Buffer
		e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		full := append([]string{args[0], args[1], "--data-dir", dir}, args[2:]...)
		err := run(context.Background(), e, full)
		return out.String(), errb.String(), err
	}
}

// writePassword writes a password file and returns its path.
func writePassword(t *testing.T, pw string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(p, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTokenCommand(t *testing.T) {
	dir := t.TempDir()
	runCmd := cliRunner(t, dir)
	// A token belongs to a user: none yet.
	if _, _, err := runCmd("token", "create", "--name", "early"); err == nil || !strings.Contains(err.Error(), "user add") {
		t.Fatalf("token create without users: %v", err)
	}
	pw := writePassword(t, "long enough password")
	for _, u := range [][2]string{{"root", "admin"}, {"noc", "operator"}} {
		if _, _, err := runCmd("user", "add", "--name", u[0], "--role", u[1], "--password-file", pw); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, err := runCmd("token", "create", "--name", "backup")
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSpace(out)
	if !strings.HasPrefix(secret, web.TokenPrefix) || len(secret) < 40 || !strings.Contains(errOut, "root (admin)") {
		t.Fatalf("create printed %q, %q", out, errOut)
	}
	if _, _, err := runCmd("token", "create", "--name", "backup"); err == nil {
		t.Fatal("a duplicate name was accepted")
	}
	// --json, an owner, a role at most the owner's, an expiry.
	if _, _, err := runCmd("token", "create", "--user", "noc", "--name", "x", "--role", "admin"); err == nil || !strings.Contains(err.Error(), "owner noc's role") {
		t.Fatalf("an admin token of an operator: %v", err)
	}
	if _, _, err := runCmd("token", "create", "--user", "ghost", "--name", "x"); err == nil || !strings.Contains(err.Error(), "no user") {
		t.Fatalf("a token of a missing user: %v", err)
	}
	if _, _, err := runCmd("token", "create", "--user", "noc", "--name", "x", "--expires", "soon"); err == nil || exitCode(err) != 2 {
		t.Fatalf("a bad --expires: %v", err)
	}
	out, _, err = runCmd("token", "create", "--user", "noc", "--name", "grafana", "--role", "viewer", "--expires", "30d", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var tv web.TokenView
	if err := json.Unmarshal([]byte(out), &tv); err != nil || !strings.HasPrefix(tv.Token, web.TokenPrefix) || tv.Owner != "noc" ||
		tv.Role != store.RoleViewer || tv.ExpiresAt == nil || tv.ExpiresAt.Sub(tv.CreatedAt) != 30*24*time.Hour {
		t.Fatalf("create --json: %v %+v from %s", err, tv, out)
	}
	out, _, err = runCmd("token", "list")
	if err != nil || !strings.Contains(out, "backup") || strings.Contains(out, secret) || strings.Contains(out, web.HashToken(secret)) ||
		!strings.Contains(out, "OWNER") || !strings.Contains(out, "grafana  noc    viewer") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	out, _, err = runCmd("token", "list", "--json")
	var list []web.TokenView
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 || strings.Contains(out, tv.Token) {
		t.Fatalf("list --json: %v\n%s", err, out)
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
	// Removing the owner revokes the token.
	if _, _, err := runCmd("user", "remove", "--name", "noc"); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := runCmd("token", "list"); strings.Contains(out, "grafana") {
		t.Fatalf("the token of a removed user is still listed:\n%s", out)
	}
}

func TestUserCommand(t *testing.T) {
	dir := t.TempDir()
	runCmd := cliRunner(t, dir)
	pw := writePassword(t, "long enough password")
	if _, _, err := runCmd("user", "add", "--name", "ann", "--role", "admin", "--password-file", writePassword(t, "short")); err == nil ||
		!strings.Contains(err.Error(), "at least 8") {
		t.Fatalf("a short password: %v", err)
	}
	for _, bad := range [][]string{
		{"user", "add", "--name", "ann", "--password-file", pw},                   // no role
		{"user", "add", "--name", "ann", "--role", "root", "--password-file", pw}, // bad role
		{"user", "add", "--role", "admin", "--password-file", pw},                 // no name
		{"user", "add", "--name", "ann", "--role", "admin"},                       // no password
		{"user", "set-role", "--name", "ann"},                                     // no role
		{"user", "frobnicate"},
	} {
		if _, _, err := runCmd(bad...); err == nil || exitCode(err) != 2 {
			t.Errorf("%v: %v, want a usage error", bad, err)
		}
	}
	if _, _, err := runCmd("user", "add", "--name", "ann", "--role", "admin", "--password-file", pw); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCmd("user", "add", "--name", "ann", "--role", "viewer", "--password-file", pw); err == nil {
		t.Fatal("a duplicate user was added")
	}
	if _, _, err := runCmd("user", "add", "--name", "bo", "--role", "viewer", "--password-file", pw); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCmd("user", "set-role", "--name", "ann", "--role", "viewer"); err == nil || !strings.Contains(err.Error(), "last admin") {
		t.Fatalf("demoting the last admin: %v", err)
	}
	if _, _, err := runCmd("user", "remove", "--name", "ann"); err == nil || !strings.Contains(err.Error(), "last admin") {
		t.Fatalf("removing the last admin: %v", err)
	}
	if _, _, err := runCmd("user", "set-role", "--name", "bo", "--role", "operator"); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCmd("user", "list", "--json")
	var users []web.UserView
	if err != nil || json.Unmarshal([]byte(out), &users) != nil || len(users) != 2 || users[0].Role != store.RoleAdmin || users[1].Role != store.RoleOperator ||
		strings.Contains(out, "$2a$") {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	out, _, err = runCmd("user", "list")
	if err != nil || !strings.Contains(out, "bo    operator") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if _, _, err := runCmd("user", "remove", "--name", "bo"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCmd("user", "remove", "--name", "bo"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("removing twice: %v", err)
	}
	// The changes are in the audit log, as the CLI's, without a secret.
	st, err := openInventory(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	es, err := st.AuditLog(context.Background(), store.AuditQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range es {
		if a.Actor != "cli" || a.Client != "local" {
			t.Errorf("audit entry %+v", a)
		}
		actions = append(actions, a.Action+" "+a.Target)
	}
	if got := strings.Join(actions, ", "); got != "user.remove user bo, user.role user bo, user.add user bo, user.add user ann" {
		t.Fatalf("audit log: %s", got)
	}
}
