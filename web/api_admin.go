package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/flowbox/flowbox/store"
)

// MeView is who the caller is and what it may do.
type MeView struct {
	User  string `json:"user"`
	Token bool   `json:"token"`
	// Owner is the user behind the session or the token.
	Owner string `json:"owner"`
	// Role is what the caller may do (a token's at most its owner's).
	Role store.Role `json:"role"`
}

// handleMe returns the authenticated principal.
func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	p, _ := principalFrom(r.Context())
	writeJSON(w, http.StatusOK, MeView{User: p.User, Token: p.TokenID != 0, Owner: p.Owner, Role: p.Role})
}

// handleSettings returns the read-only settings of the other components.
func (s *Server) handleSettings(w http.ResponseWriter, r *http.Request) {
	st := s.deps.Settings
	if st.CollectorListen == nil {
		st.CollectorListen = []string{}
	}
	writeJSON(w, http.StatusOK, st)
}

// UserView is a console user, without the password hash.
type UserView struct {
	Name      string     `json:"name"`
	Role      store.Role `json:"role"`
	CreatedAt time.Time  `json:"created_at"`
}

// TokenView is an API token, without its secret or hash.
type TokenView struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	Prefix string `json:"prefix"`
	// Owner is the user the token belongs to ("" for a token made before
	// users existed, which is refused).
	Owner string `json:"owner"`
	// Role is the token's role; it does at most what its owner may.
	Role      store.Role `json:"role"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Expired says the token no longer works.
	Expired  bool       `json:"expired,omitempty"`
	LastUsed *time.Time `json:"last_used,omitempty"`
	// Token is the secret, only in the answer to its creation.
	Token string `json:"token,omitempty"`
}

// TokenViewOf is the listing form of a token at now.
func TokenViewOf(t store.Token, now time.Time) TokenView {
	v := TokenView{ID: t.ID, Name: t.Name, Prefix: t.Prefix, Owner: t.Owner, Role: t.Role, CreatedAt: t.CreatedAt.UTC(),
		ExpiresAt: timePtr(t.ExpiresAt), LastUsed: timePtr(t.LastUsed)}
	v.Expired = !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
	return v
}

// handleListUsers lists the console users.
func (s *Server) handleListUsers(w http.ResponseWriter, r *http.Request) {
	users, err := s.deps.Users.Users(r.Context())
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := make([]UserView, 0, len(users))
	for _, u := range users {
		out = append(out, UserView{Name: u.Name, Role: u.Role, CreatedAt: u.CreatedAt.UTC()})
	}
	writeJSON(w, http.StatusOK, out)
}

// userRequest is the body of POST /users, PUT /users/{name}/password and
// PUT /users/{name}/role.
type userRequest struct {
	Name     string `json:"name"`
	Password string `json:"password"`
	// CurrentPassword is required to change one's own password.
	CurrentPassword string `json:"current_password"`
	Role            string `json:"role"`
}

// parseRoleField parses the role of a request; "" gives def.
func parseRoleField(v string, def store.Role) (store.Role, error) {
	if v == "" {
		return def, nil
	}
	role, err := store.ParseRole(v)
	if err != nil {
		return "", badf("role: %v", err)
	}
	return role, nil
}

// handleCreateUser adds a console user (a viewer unless the body gives
// another role).
func (s *Server) handleCreateUser(w http.ResponseWriter, r *http.Request) {
	var req userRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if !validUserName(req.Name) {
		s.writeErr(w, r, badf("name: 1 to 64 letters, digits or -_.@"))
		return
	}
	role, err := parseRoleField(req.Role, store.RoleViewer)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	hash, err := HashPassword(req.Password)
	if err != nil {
		s.writeErr(w, r, badf("password: %v", err))
		return
	}
	u, err := s.deps.Users.CreateUser(r.Context(), req.Name, hash, role)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	noteAudit(r, "user "+u.Name, "role "+string(role))
	writeJSON(w, http.StatusCreated, UserView{Name: u.Name, Role: u.Role, CreatedAt: u.CreatedAt.UTC()})
}

// handleSetPassword changes a password. Everybody changes their own,
// giving the current one: their other sessions end, their tokens stay. An
// admin resets another user's without it: all of that user's sessions end
// and all of that user's API tokens are revoked (a reset means the account
// may be in other hands).
func (s *Server) handleSetPassword(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	p, _ := principalFrom(r.Context())
	self := name == p.Owner
	if self && p.TokenID != 0 {
		writeError(w, http.StatusForbidden, "forbidden: change your own password after logging in, not with an API token")
		return
	}
	if !self && !p.Role.AtLeast(store.RoleAdmin) {
		forbidden(w, store.RoleAdmin, p.Role)
		return
	}
	var req userRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if req.Name != "" && req.Name != name {
		s.writeErr(w, r, badf("name: does not match the URL"))
		return
	}
	if req.Role != "" {
		s.writeErr(w, r, badf("role: not here (PUT /api/v1/users/{name}/role)"))
		return
	}
	if self {
		u, err := s.deps.Users.UserByName(r.Context(), name)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		if req.CurrentPassword == "" {
			s.writeErr(w, r, badf("current_password: required to change your own password"))
			return
		}
		if checkPassword(u, true, req.CurrentPassword) != nil {
			writeError(w, http.StatusForbidden, "current_password: wrong password")
			return
		}
	}
	hash, err := HashPassword(req.Password)
	if err != nil {
		s.writeErr(w, r, badf("password: %v", err))
		return
	}
	if err := s.deps.Users.SetPassword(r.Context(), name, hash); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if self {
		keep := ""
		if c, err := r.Cookie(sessionCookie); err == nil {
			keep = c.Value
		}
		s.sessions.deleteUser(name, keep)
		noteAudit(r, "user "+name, "own password changed")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.sessions.deleteUser(name, "")
	n, err := s.deps.Users.DeleteUserTokens(r.Context(), name)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	noteAudit(r, "user "+name, fmt.Sprintf("reset by an admin: sessions ended, %d API tokens revoked", n))
	w.WriteHeader(http.StatusNoContent)
}

// handleSetRole changes a user's role (never leaving no admin). The
// user's tokens do at most what the new role allows.
func (s *Server) handleSetRole(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	var req userRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if req.Password != "" || req.CurrentPassword != "" {
		s.writeErr(w, r, badf("password: not here (PUT /api/v1/users/{name}/password)"))
		return
	}
	if req.Role == "" {
		s.writeErr(w, r, badf("role: required (admin, operator or viewer)"))
		return
	}
	role, err := parseRoleField(req.Role, "")
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if err := s.deps.Users.SetRole(r.Context(), name, role); err != nil {
		if errors.Is(err, store.ErrLastAdmin) {
			writeError(w, http.StatusConflict, "the last admin cannot be demoted: make another admin first")
			return
		}
		s.writeErr(w, r, err)
		return
	}
	noteAudit(r, "user "+name, "role "+string(role))
	u, err := s.deps.Users.UserByName(r.Context(), name)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, UserView{Name: u.Name, Role: u.Role, CreatedAt: u.CreatedAt.UTC()})
}

// handleDeleteUser removes a user (never the last admin) with its sessions
// and API tokens.
func (s *Server) handleDeleteUser(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	s.setupMu.Lock()
	defer s.setupMu.Unlock()
	n, err := s.deps.Users.CountUsers(r.Context())
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if _, err := s.deps.Users.UserByName(r.Context(), name); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if n <= 1 {
		writeError(w, http.StatusConflict, "cannot delete the last user")
		return
	}
	if err := s.deps.Users.DeleteUser(r.Context(), name); err != nil {
		if errors.Is(err, store.ErrLastAdmin) {
			writeError(w, http.StatusConflict, "cannot delete the last admin: make another admin first")
			return
		}
		s.writeErr(w, r, err)
		return
	}
	s.sessions.deleteUser(name, "")
	noteAudit(r, "user "+name, "sessions ended, API tokens revoked")
	w.WriteHeader(http.StatusNoContent)
}

// ownsOrAdmin reports whether the caller may see and revoke token t.
func ownsOrAdmin(p principal, t store.Token) bool {
	return p.Role.AtLeast(store.RoleAdmin) || (t.Owner != "" && t.Owner == p.Owner)
}

// handleListTokens lists the API tokens (no secret): an admin's lists
// everybody's, anyone else's their own.
func (s *Server) handleListTokens(w http.ResponseWriter, r *http.Request) {
	p, _ := principalFrom(r.Context())
	ts, err := s.deps.Users.Tokens(r.Context())
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	now := s.now()
	out := make([]TokenView, 0, len(ts))
	for _, t := range ts {
		if ownsOrAdmin(p, t) {
			out = append(out, TokenViewOf(t, now))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// ParseExpiry parses a token lifetime: a Go duration ("720h", "90m") or a
// number of days ("30d"), positive.
func ParseExpiry(v string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || n > 36500 {
			return 0, fmt.Errorf("%q is not a number of days from 1 to 36500", v)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, fmt.Errorf("%q is not a duration such as 720h or 30d", v)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q is not positive", v)
	}
	return d, nil
}

// tokenRequest is the body of POST /tokens.
type tokenRequest struct {
	Name string `json:"name"`
	// User owns the token: the caller by default; only an admin makes
	// tokens for others.
	User string `json:"user"`
	// Role defaults to the owner's (at most the caller's).
	Role string `json:"role"`
	// ExpiresIn ("720h", "30d") or ExpiresAt (RFC 3339) bound the
	// token's life; neither means never.
	ExpiresIn string `json:"expires_in"`
	ExpiresAt string `json:"expires_at"`
}

// handleCreateToken creates an API token owned by the caller (or, for an
// admin, by another user), with a role at most its owner's and the
// caller's, and an optional expiry; the secret is in this answer only.
func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request) {
	p, _ := principalFrom(r.Context())
	var req tokenRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if !validUserName(req.Name) {
		s.writeErr(w, r, badf("name: 1 to 64 letters, digits or -_.@"))
		return
	}
	ownerName := req.User
	if ownerName == "" {
		ownerName = p.Owner
	}
	if ownerName != p.Owner && !p.Role.AtLeast(store.RoleAdmin) {
		writeError(w, http.StatusForbidden, "user: only an admin makes tokens for another user")
		return
	}
	owner, err := s.deps.Users.UserByName(r.Context(), ownerName)
	if errors.Is(err, store.ErrNotFound) {
		s.writeErr(w, r, badf("user: no such user %q", ownerName))
		return
	}
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	ceiling := store.MinRole(owner.Role, p.Role)
	role, err := parseRoleField(req.Role, ceiling)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if !ceiling.AtLeast(role) {
		s.writeErr(w, r, badf("role: at most %s (the owner's role, and yours)", ceiling))
		return
	}
	now := s.now()
	var expires time.Time
	switch {
	case req.ExpiresIn != "" && req.ExpiresAt != "":
		s.writeErr(w, r, badf("expires_in: give expires_in or expires_at, not both"))
		return
	case req.ExpiresIn != "":
		d, err := ParseExpiry(req.ExpiresIn)
		if err != nil {
			s.writeErr(w, r, badf("expires_in: %v", err))
			return
		}
		expires = now.Add(d)
	case req.ExpiresAt != "":
		t, err := time.Parse(time.RFC3339, req.ExpiresAt)
		if err != nil {
			s.writeErr(w, r, badf("expires_at: not an RFC 3339 time such as 2030-01-02T15:04:05Z"))
			return
		}
		if !t.After(now) {
			s.writeErr(w, r, badf("expires_at: in the past"))
			return
		}
		expires = t
	}
	secret, t, err := NewToken(req.Name, now)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	t.UserID, t.Role, t.ExpiresAt = owner.ID, role, expires
	t, err = s.deps.Users.CreateToken(r.Context(), t)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	t.Owner, t.OwnerRole = owner.Name, owner.Role
	detail := "role " + string(role)
	if !expires.IsZero() {
		detail += ", expires " + expires.UTC().Format(time.RFC3339)
	}
	noteAudit(r, "token "+t.Name+" of "+owner.Name, detail)
	v := TokenViewOf(t, now)
	v.Token = secret
	writeJSON(w, http.StatusCreated, v)
}

// handleDeleteToken revokes an API token: one's own, or anybody's for an
// admin (another's is "no such token" to anyone else).
func (s *Server) handleDeleteToken(w http.ResponseWriter, r *http.Request) {
	p, _ := principalFrom(r.Context())
	id, err := pathID(r, mux.Vars(r)["id"])
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	ts, err := s.deps.Users.Tokens(r.Context())
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	var found *store.Token
	for i := range ts {
		if ts[i].ID == id && ownsOrAdmin(p, ts[i]) {
			found = &ts[i]
		}
	}
	if found == nil {
		writeError(w, http.StatusNotFound, "no such token")
		return
	}
	if err := s.deps.Users.DeleteToken(r.Context(), id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusNotFound, "no such token")
			return
		}
		s.writeErr(w, r, err)
		return
	}
	noteAudit(r, "token "+found.Name+" of "+found.Owner, "")
	w.WriteHeader(http.StatusNoContent)
}
