package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/flowbox/flowbox/store"
)

// isUnique reports whether err is a UNIQUE constraint violation.
func isUnique(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique
}

// CountUsers returns the number of console users.
func (s *Inventory) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil {
		return 0, fmt.Errorf("cannot count users: %w", err)
	}
	return n, nil
}

// CreateUser adds a console user with a bcrypt password hash and a role.
// It returns an error wrapping ErrExists when the name is taken.
func (s *Inventory) CreateUser(ctx context.Context, name, passwordHash string, role store.Role) (store.User, error) {
	if err := s.writable(); err != nil {
		return store.User{}, err
	}
	if name == "" || passwordHash == "" {
		return store.User{}, errors.New("cannot create user: name and password hash are required")
	}
	if _, err := store.ParseRole(string(role)); err != nil {
		return store.User{}, fmt.Errorf("cannot create user %q: %w", name, err)
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	res, err := s.w.ExecContext(ctx, "INSERT INTO users (name, password_hash, role, created_at, updated_at) VALUES (?,?,?,?,?)",
		name, passwordHash, string(role), now.UnixMilli(), now.UnixMilli())
	if err != nil {
		if isUnique(err) {
			return store.User{}, fmt.Errorf("cannot create user %q: %w", name, store.ErrExists)
		}
		return store.User{}, fmt.Errorf("cannot create user %q: %w", name, store.DescribeWriteError(err))
	}
	id, err := res.LastInsertId()
	if err != nil {
		return store.User{}, fmt.Errorf("cannot create user %q: %w", name, err)
	}
	return store.User{ID: id, Name: name, PasswordHash: passwordHash, Role: role, CreatedAt: now, UpdatedAt: now}, nil
}

const userColumns = "id, name, password_hash, role, created_at, updated_at"

func scanUser(row rowScanner) (store.User, error) {
	var u store.User
	var created, updated int64
	var role string
	if err := row.Scan(&u.ID, &u.Name, &u.PasswordHash, &role, &created, &updated); err != nil {
		return store.User{}, err
	}
	u.Role = store.Role(role)
	u.CreatedAt, u.UpdatedAt = store.FromMilli(created), store.FromMilli(updated)
	return u, nil
}

// UserByName returns a user, or an error wrapping ErrNotFound.
func (s *Inventory) UserByName(ctx context.Context, name string) (store.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return store.User{}, fmt.Errorf("user %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("cannot read user %q: %w", name, err)
	}
	return u, nil
}

// Users returns every console user, ordered by name.
func (s *Inventory) Users(ctx context.Context) ([]store.User, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+userColumns+" FROM users ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("cannot list users: %w", err)
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("cannot list users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot list users: %w", err)
	}
	return out, nil
}

// SetPassword replaces a user's password hash, or returns an error wrapping
// ErrNotFound. It neither ends sessions nor revokes tokens: the caller
// decides (DeleteUserSessions, DeleteUserTokens).
func (s *Inventory) SetPassword(ctx context.Context, name, passwordHash string) error {
	if err := s.writable(); err != nil {
		return err
	}
	if passwordHash == "" {
		return errors.New("cannot set password: empty hash")
	}
	res, err := s.w.ExecContext(ctx, "UPDATE users SET password_hash = ?, updated_at = ? WHERE name = ?",
		passwordHash, s.now().UTC().UnixMilli(), name)
	return affectedOne(res, err, "cannot set the password of user "+fmt.Sprintf("%q", name))
}

// SetRole changes a user's role. It returns an error wrapping ErrNotFound
// for an unknown user, and store.ErrLastAdmin when it would leave no
// admin. The user's tokens keep their role but do at most what the new
// role allows (store.Token.EffectiveRole).
func (s *Inventory) SetRole(ctx context.Context, name string, role store.Role) error {
	if err := s.writable(); err != nil {
		return err
	}
	if _, err := store.ParseRole(string(role)); err != nil {
		return fmt.Errorf("cannot set the role of user %q: %w", name, err)
	}
	what := fmt.Sprintf("cannot set the role of user %q", name)
	return s.inTx(ctx, what, func(tx *sql.Tx) error {
		if err := s.keepAnAdmin(ctx, tx, name, role); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		res, err := tx.ExecContext(ctx, "UPDATE users SET role = ?, updated_at = ? WHERE name = ?",
			string(role), s.now().UTC().UnixMilli(), name)
		return affectedOne(res, err, what)
	})
}

// keepAnAdmin returns store.ErrLastAdmin when giving user the role next
// ("" to remove it) would leave no admin.
func (s *Inventory) keepAnAdmin(ctx context.Context, tx *sql.Tx, user string, next store.Role) error {
	if next == store.RoleAdmin {
		return nil
	}
	var others, self int
	err := tx.QueryRowContext(ctx, `SELECT
			count(*) FILTER (WHERE name != ?1),
			count(*) FILTER (WHERE name = ?1)
		FROM users WHERE role = 'admin'`, user).Scan(&others, &self)
	if err != nil {
		return fmt.Errorf("cannot count admins: %w", store.DescribeWriteError(err))
	}
	if self > 0 && others == 0 {
		return store.ErrLastAdmin
	}
	return nil
}

// inTx runs f in a write transaction.
func (s *Inventory) inTx(ctx context.Context, what string, f func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, store.DescribeWriteError(err))
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", what, store.DescribeWriteError(err))
	}
	return nil
}

// DeleteUser removes a user with its sessions and API tokens, or returns
// an error wrapping ErrNotFound, or store.ErrLastAdmin for the last admin.
func (s *Inventory) DeleteUser(ctx context.Context, name string) error {
	if err := s.writable(); err != nil {
		return err
	}
	what := fmt.Sprintf("cannot delete user %q", name)
	return s.inTx(ctx, what, func(tx *sql.Tx) error {
		if err := s.keepAnAdmin(ctx, tx, name, ""); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM api_tokens WHERE user_id = (SELECT id FROM users WHERE name = ?)", name); err != nil {
			return fmt.Errorf("%s: %w", what, store.DescribeWriteError(err))
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM users WHERE name = ?", name)
		if err := affectedOne(res, err, what); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM console_sessions WHERE user_name = ?", name); err != nil {
			return fmt.Errorf("%s: %w", what, store.DescribeWriteError(err))
		}
		return nil
	})
}

// affectedOne turns an Exec result into nil, a write error or ErrNotFound.
func affectedOne(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, store.DescribeWriteError(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// CreateToken stores an API token (its hash and display prefix) for its
// owner (UserID) with its role and expiry, and returns it with its id. It
// returns an error wrapping ErrExists when the name is taken, and one
// wrapping ErrNotFound when the owner does not exist. A zero CreatedAt
// becomes now. The caller checks that the role is at most the owner's.
func (s *Inventory) CreateToken(ctx context.Context, t store.Token) (store.Token, error) {
	if err := s.writable(); err != nil {
		return store.Token{}, err
	}
	if t.Name == "" || len(t.Hash) != 64 {
		return store.Token{}, errors.New("cannot create token: a name and a hex SHA-256 hash are required")
	}
	if t.UserID <= 0 {
		return store.Token{}, fmt.Errorf("cannot create token %q: it needs an owner", t.Name)
	}
	if _, err := store.ParseRole(string(t.Role)); err != nil {
		return store.Token{}, fmt.Errorf("cannot create token %q: %w", t.Name, err)
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now()
	}
	t.CreatedAt = t.CreatedAt.UTC().Truncate(time.Millisecond)
	var expires int64
	if !t.ExpiresAt.IsZero() {
		t.ExpiresAt = t.ExpiresAt.UTC().Truncate(time.Millisecond)
		expires = t.ExpiresAt.UnixMilli()
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO api_tokens (name, hash, prefix, user_id, role, created_at, expires_at, last_used)
		SELECT ?, ?, ?, id, ?, ?, ?, 0 FROM users WHERE id = ?`,
		t.Name, t.Hash, t.Prefix, string(t.Role), t.CreatedAt.UnixMilli(), expires, t.UserID)
	if err != nil {
		if isUnique(err) {
			return store.Token{}, fmt.Errorf("cannot create token %q: %w", t.Name, store.ErrExists)
		}
		return store.Token{}, fmt.Errorf("cannot create token %q: %w", t.Name, store.DescribeWriteError(err))
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return store.Token{}, fmt.Errorf("cannot create token %q: owner %d: %w", t.Name, t.UserID, store.ErrNotFound)
	}
	if t.ID, err = res.LastInsertId(); err != nil {
		return store.Token{}, fmt.Errorf("cannot create token %q: %w", t.Name, err)
	}
	t.LastUsed = time.Time{}
	return t, nil
}

const tokenSelect = `SELECT t.id, t.name, t.hash, t.prefix, coalesce(t.user_id, 0), coalesce(u.name, ''), coalesce(u.role, ''),
	t.role, t.created_at, t.expires_at, t.last_used
	FROM api_tokens t LEFT JOIN users u ON u.id = t.user_id`

func scanToken(row rowScanner) (store.Token, error) {
	var t store.Token
	var created, expires, used int64
	var ownerRole, role string
	if err := row.Scan(&t.ID, &t.Name, &t.Hash, &t.Prefix, &t.UserID, &t.Owner, &ownerRole, &role, &created, &expires, &used); err != nil {
		return store.Token{}, err
	}
	t.OwnerRole, t.Role = store.Role(ownerRole), store.Role(role)
	t.CreatedAt, t.LastUsed = store.FromMilli(created), store.FromMilli(used)
	if expires != 0 {
		t.ExpiresAt = store.FromMilli(expires)
	}
	return t, nil
}

// TokenByHash returns the token with that hash, with its owner's name and
// current role, or an error wrapping ErrNotFound. It does not check the
// expiry.
func (s *Inventory) TokenByHash(ctx context.Context, hash string) (store.Token, error) {
	t, err := scanToken(s.r.QueryRowContext(ctx, tokenSelect+" WHERE t.hash = ?", hash))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Token{}, fmt.Errorf("token: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("cannot read token: %w", err)
	}
	return t, nil
}

// Tokens returns every API token with its owner, ordered by name.
func (s *Inventory) Tokens(ctx context.Context) ([]store.Token, error) {
	rows, err := s.r.QueryContext(ctx, tokenSelect+" ORDER BY t.name")
	if err != nil {
		return nil, fmt.Errorf("cannot list tokens: %w", err)
	}
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("cannot list tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot list tokens: %w", err)
	}
	return out, nil
}

// DeleteToken revokes a token, or returns an error wrapping ErrNotFound.
func (s *Inventory) DeleteToken(ctx context.Context, id int64) error {
	if err := s.writable(); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, "DELETE FROM api_tokens WHERE id = ?", id)
	return affectedOne(res, err, fmt.Sprintf("cannot delete token %d", id))
}

// DeleteUserTokens revokes every token of a user and returns how many.
func (s *Inventory) DeleteUserTokens(ctx context.Context, user string) (int64, error) {
	if err := s.writable(); err != nil {
		return 0, err
	}
	res, err := s.w.ExecContext(ctx, "DELETE FROM api_tokens WHERE user_id = (SELECT id FROM users WHERE name = ?)", user)
	if err != nil {
		return 0, fmt.Errorf("cannot revoke the tokens of %q: %w", user, store.DescribeWriteError(err))
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// TouchToken records when a token was last used.
func (s *Inventory) TouchToken(ctx context.Context, id int64, at time.Time) error {
	if err := s.writable(); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, "UPDATE api_tokens SET last_used = ? WHERE id = ?", at.UTC().UnixMilli(), id)
	return affectedOne(res, err, fmt.Sprintf("cannot record the use of token %d", id))
}
