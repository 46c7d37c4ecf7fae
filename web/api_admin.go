package web

import (
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/flowbox/flowbox/store"
)

// MeView is who the caller is.
type MeView struct {
	User  string `json:"user"`
	Token bool   `json:"token"`
}

// handleMe returns the authenticated principal.
func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	p, _ := principalFrom(r.Context())
	writeJSON(w, http.StatusOK, MeView{User: p.User, Token: p.TokenID != 0})
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
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// TokenView is an API token, without its secret or hash.
type TokenView struct {
	ID        int64      `json:"id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	CreatedAt time.Time  `json:"created_at"`
	LastUsed  *time.Time `json:"last_used,omitempty"`
	// Token is the secret, only in the answer to its creation.
	Token string `json:"token,omitempty"`
}

func tokenView(t store.Token) TokenView {
	return TokenView{ID: t.ID, Name: t.Name, Prefix: t.Prefix, CreatedAt: t.CreatedAt.UTC(), LastUsed: timePtr(t.LastUsed)}
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
		out = append(out, UserView{Name: u.Name, CreatedAt: u.CreatedAt.UTC()})
	}
	writeJSON(w, http.StatusOK, out)
}

// userRequest is the body of POST /users and PUT /users/{name}/password.
type userRequest struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

// handleCreateUser adds a console user.
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
	hash, err := HashPassword(req.Password)
	if err != nil {
		s.writeErr(w, r, badf("password: %v", err))
		return
	}
	u, err := s.deps.Users.CreateUser(r.Context(), req.Name, hash)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, UserView{Name: u.Name, CreatedAt: u.CreatedAt.UTC()})
}

// handleSetPassword changes a user's password and ends the user's other
// sessions.
func (s *Server) handleSetPassword(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	var req userRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if req.Name != "" && req.Name != name {
		s.writeErr(w, r, badf("name: does not match the URL"))
		return
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
	keep := ""
	if c, err := r.Cookie(sessionCookie); err == nil {
		keep = c.Value
	}
	s.sessions.deleteUser(name, keep)
	w.WriteHeader(http.StatusNoContent)
}

// handleDeleteUser removes a user (never the last one) and its sessions.
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
		s.writeErr(w, r, err)
		return
	}
	s.sessions.deleteUser(name, "")
	w.WriteHeader(http.StatusNoContent)
}

// handleListTokens lists the API tokens (names and prefixes only).
func (s *Server) handleListTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := s.deps.Users.Tokens(r.Context())
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := make([]TokenView, 0, len(ts))
	for _, t := range ts {
		out = append(out, tokenView(t))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleCreateToken creates an API token; the secret is in this answer
// only.
func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if !validUserName(req.Name) {
		s.writeErr(w, r, badf("name: 1 to 64 letters, digits or -_.@"))
		return
	}
	secret, t, err := NewToken(req.Name, s.now())
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	t, err = s.deps.Users.CreateToken(r.Context(), t)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	v := tokenView(t)
	v.Token = secret
	writeJSON(w, http.StatusCreated, v)
}

// handleDeleteToken revokes an API token.
func (s *Server) handleDeleteToken(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, mux.Vars(r)["id"])
	if err != nil {
		s.writeErr(w, r, err)
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
	w.WriteHeader(http.StatusNoContent)
}
