package inventory

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

func hexHash(c byte) string { return strings.Repeat(string(c), 64) }

func TestUsersRolesAndTokenOwners(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	if _, err := s.CreateUser(ctx, "x", "h", "root"); err == nil {
		t.Fatal("a user with the role root was created")
	}
	a, err := s.CreateUser(ctx, "alice", "h", store.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateUser(ctx, "bob", "h", store.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	if u, err := s.UserByName(ctx, "bob"); err != nil || u.Role != store.RoleOperator {
		t.Fatalf("bob: %+v %v", u, err)
	}
	// The last admin cannot be demoted or removed.
	if err := s.SetRole(ctx, "alice", store.RoleViewer); !errors.Is(err, store.ErrLastAdmin) {
		t.Fatalf("demote the last admin: %v", err)
	}
	if err := s.DeleteUser(ctx, "alice"); !errors.Is(err, store.ErrLastAdmin) {
		t.Fatalf("delete the last admin: %v", err)
	}
	if err := s.SetRole(ctx, "ghost", store.RoleViewer); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("set the role of a missing user: %v", err)
	}
	// Tokens need an existing owner and a valid role.
	if _, err := s.CreateToken(ctx, store.Token{Name: "t0", Hash: hexHash('0'), Role: store.RoleViewer}); err == nil {
		t.Fatal("a token without an owner was stored")
	}
	if _, err := s.CreateToken(ctx, store.Token{Name: "t0", Hash: hexHash('0'), Role: store.RoleViewer, UserID: 999}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a token of a missing owner: %v", err)
	}
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := s.CreateToken(ctx, store.Token{Name: "bob-ci", Hash: hexHash('1'), Prefix: "fbx_1", Role: store.RoleOperator, UserID: b.ID, ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateToken(ctx, store.Token{Name: "alice-ci", Hash: hexHash('2'), Prefix: "fbx_2", Role: store.RoleAdmin, UserID: a.ID}); err != nil {
		t.Fatal(err)
	}
	tok, err := s.TokenByHash(ctx, hexHash('1'))
	if err != nil || tok.Owner != "bob" || tok.OwnerRole != store.RoleOperator || tok.Role != store.RoleOperator || !tok.ExpiresAt.Equal(exp) {
		t.Fatalf("token %+v %v", tok, err)
	}
	// A demoted owner's token does what the owner still may.
	if err := s.SetRole(ctx, "bob", store.RoleViewer); err != nil {
		t.Fatal(err)
	}
	if tok, _ := s.TokenByHash(ctx, hexHash('1')); tok.EffectiveRole() != store.RoleViewer {
		t.Fatalf("effective role of a demoted owner's token: %s", tok.EffectiveRole())
	}
	// Revoking a user's tokens, and removing a user, revoke theirs only.
	if n, err := s.DeleteUserTokens(ctx, "bob"); err != nil || n != 1 {
		t.Fatalf("DeleteUserTokens: %d %v", n, err)
	}
	if _, err := s.CreateToken(ctx, store.Token{Name: "bob-2", Hash: hexHash('3'), Prefix: "fbx_3", Role: store.RoleViewer, UserID: b.ID}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveSession(ctx, store.Session{Hash: hexHash('9'), User: "bob", CreatedAt: time.Unix(1, 0), ExpiresAt: time.Unix(1<<40, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	ts, err := s.Tokens(ctx)
	if err != nil || len(ts) != 1 || ts[0].Name != "alice-ci" || ts[0].Owner != "alice" {
		t.Fatalf("tokens after removing bob: %+v %v", ts, err)
	}
	if live, _ := s.LiveSessions(ctx, time.Unix(2, 0), 10); len(live) != 0 {
		t.Fatalf("bob's session survived: %+v", live)
	}
	// With two admins, one may go.
	if _, err := s.CreateUser(ctx, "carol", "h", store.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRole(ctx, "alice", store.RoleOperator); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "carol"); !errors.Is(err, store.ErrLastAdmin) {
		t.Fatalf("delete carol, now the last admin: %v", err)
	}
}

func TestAuditLogPagesAndRetention(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		e := store.AuditEntry{At: base.Add(time.Duration(i) * 24 * time.Hour), Actor: "alice", Action: "router.apply", Target: "r" + string(rune('0'+i)), Client: "192.0.2.1", OK: i%2 == 0}
		if err := s.AddAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddAudit(ctx, store.AuditEntry{Actor: "x"}); err == nil {
		t.Fatal("an entry without an action was written")
	}
	page, err := s.AuditLog(ctx, store.AuditQuery{Limit: 4})
	if err != nil || len(page) != 4 || page[0].Target != "r9" || page[0].OK || !page[1].OK || page[0].Client != "192.0.2.1" {
		t.Fatalf("first page %+v %v", page, err)
	}
	next, err := s.AuditLog(ctx, store.AuditQuery{Limit: 4, Before: page[3].ID})
	if err != nil || len(next) != 4 || next[0].Target != "r5" {
		t.Fatalf("second page %+v %v", next, err)
	}
	if _, err := s.AuditLog(ctx, store.AuditQuery{Limit: 0}); !errors.Is(err, store.ErrBadQuery) {
		t.Fatalf("limit 0: %v", err)
	}
	// Older than 5 days at day 9: days 0 to 3 go; then 3 rows are kept.
	n, err := s.PruneAudit(ctx, base.Add(9*24*time.Hour), store.AuditRetention{MaxAge: 5*24*time.Hour + time.Hour, MaxRows: 1000})
	if err != nil || n != 4 {
		t.Fatalf("pruned by age %d, %v; want 4", n, err)
	}
	n, err = s.PruneAudit(ctx, base.Add(9*24*time.Hour), store.AuditRetention{MaxRows: 3})
	if err != nil || n != 3 {
		t.Fatalf("pruned by rows %d, %v; want 3", n, err)
	}
	left, _ := s.AuditLog(ctx, store.AuditQuery{Limit: 100})
	if len(left) != 3 || left[0].Target != "r9" || left[2].Target != "r7" {
		t.Fatalf("left %+v", left)
	}
}
