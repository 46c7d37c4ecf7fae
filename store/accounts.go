package store

import (
	"errors"
	"fmt"
	"time"
)

// Role is what a console user or an API token may do. Roles are ordered:
// each one may do everything the roles below it may.
type Role string

// The roles, from the least to the most trusted.
const (
	// RoleViewer reads everything (every GET) and changes nothing but its
	// own password.
	RoleViewer Role = "viewer"
	// RoleOperator also adds, provisions, verifies, undoes and removes
	// routers, acknowledges alerts, tests notifications, trusts exporters
	// and manages its own API tokens.
	RoleOperator Role = "operator"
	// RoleAdmin also manages users, everybody's tokens and the settings,
	// and reads the audit log.
	RoleAdmin Role = "admin"
)

// Roles lists the roles from the least to the most trusted.
func Roles() []Role { return []Role{RoleViewer, RoleOperator, RoleAdmin} }

// ParseRole returns the role called s, or an error naming the valid ones.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if r.Rank() == 0 {
		return "", fmt.Errorf("unknown role %q (admin, operator or viewer)", s)
	}
	return r, nil
}

// Rank orders the roles: 1 for viewer, 2 for operator, 3 for admin, 0 for
// anything else (which may do nothing).
func (r Role) Rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// AtLeast reports whether r may do what min may. An unknown role may do
// nothing.
func (r Role) AtLeast(min Role) bool { return r.Rank() > 0 && r.Rank() >= min.Rank() }

// MinRole returns the less trusted of a and b.
func MinRole(a, b Role) Role {
	if a.Rank() <= b.Rank() {
		return a
	}
	return b
}

// AuditEntry is one line of the audit log: who did what, when, from where,
// and whether it worked. It never holds a secret.
type AuditEntry struct {
	ID int64
	At time.Time
	// Actor is a user name, "token:<name>" for an API token, "cli" for a
	// local command, or the name given to a failed login.
	Actor string
	// Action names what was done, such as "login", "user.add" or
	// "router.apply".
	Action string
	// Target is what it was done to (a user, a router, a token), "" when
	// nothing in particular.
	Target string
	// Detail says more (the new role, the status of a refused request).
	Detail string
	// Client is the client's address, or "local" for the CLI.
	Client string
	// OK is false for failures and refusals.
	OK bool
}

// AuditQuery pages through the audit log, newest first.
type AuditQuery struct {
	// Before returns entries older than this id (0: from the newest).
	Before int64
	// Limit is the page size.
	Limit int
}

// AuditRetention bounds the audit log: entries older than MaxAge, and
// beyond the MaxRows newest, are pruned.
type AuditRetention struct {
	MaxAge  time.Duration
	MaxRows int
}

// DefaultAuditRetention keeps a year of changes, at most 100,000 entries
// (about 15 MB).
func DefaultAuditRetention() AuditRetention {
	return AuditRetention{MaxAge: 365 * 24 * time.Hour, MaxRows: 100_000}
}

// ErrLastAdmin is returned when a change would leave no admin: the last
// admin cannot be removed or given a lesser role.
var ErrLastAdmin = errors.New("the last admin cannot be removed or demoted")
