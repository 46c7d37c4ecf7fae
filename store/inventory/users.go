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

// CreateUser adds a console user with a bcrypt password hash. It returns an
// error wrapping ErrExists when the name is taken.
func (s *Inventory) CreateUser(ctx context.Context, name, passwordHash string) (store.User, error) {
	if err := s.writable(); err != nil {
		return store.User{}, err
	}
	if name == "" || passwordHash == "" {
		return store.User{}, errors.New("cannot create user: name and password hash are required")
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	res, err := s.w.ExecContext(ctx, "INSERT INTO users (name, password_hash, created_at, updated_at) VALUES (?,?,?,?)",
		name, passwordHash, now.UnixMilli(), now.UnixMilli())
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
	return store.User{ID: id, Name: name, PasswordHash: passwordHash, CreatedAt: now, UpdatedAt: now}, nil
}

// UserByName returns a user, or an error wrapping ErrNotFound.
func (s *Inventory) UserByName(ctx context.Context, name string) (store.User, error) {
	var u store.User
	var created, updated int64
	err := s.r.QueryRowContext(ctx, "SELECT id, name, password_hash, created_at, updated_at FROM users WHERE name = ?", name).
		Scan(&u.ID, &u.Name, &u.PasswordHash, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return store.User{}, fmt.Errorf("user %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("cannot read user %q: %w", name, err)
	}
	u.CreatedAt, u.UpdatedAt = store.FromMilli(created), store.FromMilli(updated)
	return u, nil
}

// Users returns every console user, ordered by name.
func (s *Inventory) Users(ctx context.Context) ([]store.User, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT id, name, password_hash, created_at, updated_at FROM users ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("cannot list users: %w", err)
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		var u store.User
		var created, updated int64
		if err := rows.Scan(&u.ID, &u.Name, &u.PasswordHash, &created, &updated); err != nil {
			return nil, fmt.Errorf("cannot list users: %w", err)
		}
		u.CreatedAt, u.UpdatedAt = store.FromMilli(created), store.FromMilli(updated)
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot list users: %w", err)
	}
	return out, nil
}

// SetPassword replaces a user's password hash, or returns an error wrapping
// ErrNotFound.
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

// DeleteUser removes a user, or returns an error wrapping ErrNotFound.
func (s *Inventory) DeleteUser(ctx context.Context, name string) error {
	if err := s.writable(); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, "DELETE FROM users WHERE name = ?", name)
	if err := affectedOne(res, err, fmt.Sprintf("cannot delete user %q", name)); err != nil {
		return err
	}
	return s.DeleteUserSessions(ctx, name, "")
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

// CreateToken stores an API token (its hash and display prefix) and
// returns it with its id. It returns an error wrapping ErrExists when the
// name is taken. A zero CreatedAt becomes now.
func (s *Inventory) CreateToken(ctx context.Context, t store.Token) (store.Token, error) {
	if err := s.writable(); err != nil {
		return store.Token{}, err
	}
	if t.Name == "" || len(t.Hash) != 64 {
		return store.Token{}, errors.New("cannot create token: a name and a hex SHA-256 hash are required")
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now()
	}
	t.CreatedAt = t.CreatedAt.UTC().Truncate(time.Millisecond)
	res, err := s.w.ExecContext(ctx, "INSERT INTO api_tokens (name, hash, prefix, created_at, last_used) VALUES (?,?,?,?,0)",
		t.Name, t.Hash, t.Prefix, t.CreatedAt.UnixMilli())
	if err != nil {
		if isUnique(err) {
			return store.Token{}, fmt.Errorf("cannot create token %q: %w", t.Name, store.ErrExists)
		}
		return store.Token{}, fmt.Errorf("cannot create token %q: %w", t.Name, store.DescribeWriteError(err))
	}
	if t.ID, err = res.LastInsertId(); err != nil {
		return store.Token{}, fmt.Errorf("cannot create token %q: %w", t.Name, err)
	}
	t.LastUsed = time.Time{}
	return t, nil
}

const tokenColumns = "id, name, hash, prefix, created_at, last_used"

func scanToken(row rowScanner) (store.Token, error) {
	var t store.Token
	var created, used int64
	if err := row.Scan(&t.ID, &t.Name, &t.Hash, &t.Prefix, &created, &used); err != nil {
		return store.Token{}, err
	}
	t.CreatedAt, t.LastUsed = store.FromMilli(created), store.FromMilli(used)
	return t, nil
}

// TokenByHash returns the token with that hash, or an error wrapping
// ErrNotFound.
func (s *Inventory) TokenByHash(ctx context.Context, hash string) (store.Token, error) {
	t, err := scanToken(s.r.QueryRowContext(ctx, "SELECT "+tokenColumns+" FROM api_tokens WHERE hash = ?", hash))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Token{}, fmt.Errorf("token: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("cannot read token: %w", err)
	}
	return t, nil
}

// Tokens returns every API token, ordered by name.
func (s *Inventory) Tokens(ctx context.Context) ([]store.Token, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+tokenColumns+" FROM api_tokens ORDER BY name")
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

// TouchToken records when a token was last used.
func (s *Inventory) TouchToken(ctx context.Context, id int64, at time.Time) error {
	if err := s.writable(); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, "UPDATE api_tokens SET last_used = ? WHERE id = ?", at.UTC().UnixMilli(), id)
	return affectedOne(res, err, fmt.Sprintf("cannot record the use of token %d", id))
}
