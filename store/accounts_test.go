package store

import (
	"context"
	"path/filepath"
	"testing"
)

func TestRoles(t *testing.T) {
	for _, tc := range []struct {
		have, min Role
		ok        bool
	}{
		{RoleAdmin, RoleAdmin, true}, {RoleAdmin, RoleViewer, true}, {RoleOperator, RoleAdmin, false},
		{RoleOperator, RoleOperator, true}, {RoleViewer, RoleOperator, false}, {"", RoleViewer, false}, {"root", RoleViewer, false},
	} {
		if got := tc.have.AtLeast(tc.min); got != tc.ok {
			t.Errorf("%q.AtLeast(%q) = %v", tc.have, tc.min, got)
		}
	}
	if MinRole(RoleAdmin, RoleViewer) != RoleViewer || MinRole(RoleOperator, RoleAdmin) != RoleOperator || MinRole(RoleAdmin, "") != "" {
		t.Error("MinRole")
	}
	if _, err := ParseRole("superuser"); err == nil {
		t.Error("ParseRole accepted superuser")
	}
	if r, err := ParseRole("operator"); err != nil || r != RoleOperator {
		t.Errorf("ParseRole(operator) = %q, %v", r, err)
	}
}

// TestRolesMigration: the users of an older database become admins, its
// tokens go to the oldest user as admin tokens, and a token made before
// any user existed has no owner.
func TestRolesMigration(t *testing.T) {
	ctx := context.Background()
	for _, withUsers := range []bool{true, false} {
		dir := t.TempDir()
		db, err := openConns(filepath.Join(dir, DBFile), "_journal_mode=WAL&_foreign_keys=on")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range migrationFiles()[:16] {
			if err := applyMigration(ctx, db, m); err != nil {
				t.Fatal(err)
			}
		}
		if withUsers {
			for _, q := range []string{
				"INSERT INTO users (name, password_hash, created_at, updated_at) VALUES ('first', 'h', 1, 1), ('second', 'h', 2, 2)",
			} {
				if _, err := db.Exec(q); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := db.Exec("INSERT INTO api_tokens (name, hash, prefix, created_at) VALUES ('ci', 'x', 'fbx_', 1)"); err != nil {
			t.Fatal(err)
		}
		if err := migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		var roles string
		if err := db.QueryRow("SELECT coalesce(group_concat(role), '') FROM users").Scan(&roles); err != nil {
			t.Fatal(err)
		}
		var owner, tokRole string
		if err := db.QueryRow("SELECT coalesce((SELECT name FROM users WHERE id = t.user_id), ''), t.role FROM api_tokens t").Scan(&owner, &tokRole); err != nil {
			t.Fatal(err)
		}
		want := "first"
		if !withUsers {
			want = ""
		} else if roles != "admin,admin" {
			t.Errorf("roles after the migration: %q, want admin,admin", roles)
		}
		if owner != want || tokRole != "admin" {
			t.Errorf("users %v: token owned by %q as %q, want %q as admin", withUsers, owner, tokRole, want)
		}
		// A new row without a role is a viewer; a bad role is refused.
		if _, err := db.Exec("INSERT INTO users (name, password_hash, created_at, updated_at) VALUES ('new', 'h', 3, 3)"); err != nil {
			t.Fatal(err)
		}
		var r string
		if err := db.QueryRow("SELECT role FROM users WHERE name = 'new'").Scan(&r); err != nil || r != "viewer" {
			t.Errorf("default role %q, %v", r, err)
		}
		if _, err := db.Exec("UPDATE users SET role = 'root' WHERE name = 'new'"); err == nil {
			t.Error("the role 'root' was accepted")
		}
		db.Close()
	}
}
