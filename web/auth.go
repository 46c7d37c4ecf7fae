package web

import (
	"container/list"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/flowbox/flowbox/store"
)

// TokenPrefix starts every API token, so that leaked tokens are easy to
// recognise (and to grep for).
const TokenPrefix = "fbx_"

// errBadCredentials is the one answer to a failed login, whatever failed.
var errBadCredentials = errors.New("invalid user name or password")

// HashPassword returns the bcrypt hash of a console password.
func HashPassword(pw string) (string, error) {
	if len(pw) < MinPasswordLength {
		return "", fmt.Errorf("password must be at least %d characters", MinPasswordLength)
	}
	if len(pw) > 72 {
		return "", errors.New("password must be at most 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("cannot hash password: %w", err)
	}
	return string(h), nil
}

// NewToken returns a fresh API token secret and its store record (hash and
// display prefix only). The secret is shown once and never stored.
func NewToken(name string, now time.Time) (secret string, t store.Token, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", t, fmt.Errorf("cannot generate token: %w", err)
	}
	secret = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, store.Token{
		Name:      name,
		Hash:      HashToken(secret),
		Prefix:    secret[:len(TokenPrefix)+6],
		CreatedAt: now,
	}, nil
}

// HashToken returns the hex SHA-256 of a token secret, as stored.
func HashToken(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// principal is who made a request.
type principal struct {
	User    string // user name, or "token:<name>"
	TokenID int64  // 0 for sessions
}

type ctxKey int

const principalKey ctxKey = 0

func withPrincipal(ctx context.Context, p principal) context.Context {
	return context.WithValue(ctx, principalKey, p)
}

func principalFrom(ctx context.Context) (principal, bool) {
	p, ok := ctx.Value(principalKey).(principal)
	return p, ok
}

// session is one console login.
type session struct {
	id      string
	user    string
	expires time.Time
	elem    *list.Element
}

// sessions keeps the live console sessions in memory, bounded: beyond max,
// the oldest session is evicted and counted. Sessions do not survive a
// restart, which logs everybody out.
type sessions struct {
	mu      sync.Mutex
	byID    map[string]*session
	order   *list.List // oldest first
	max     int
	ttl     time.Duration
	evicted func()
}

func newSessions(max int, ttl time.Duration, evicted func()) *sessions {
	return &sessions{byID: make(map[string]*session), order: list.New(), max: max, ttl: ttl, evicted: evicted}
}

// create starts a session for user and returns its id.
func (s *sessions) create(user string, now time.Time) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("cannot generate session id: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	for len(s.byID) >= s.max {
		oldest := s.order.Front().Value.(*session)
		s.removeLocked(oldest)
		s.evicted()
	}
	ss := &session{id: id, user: user, expires: now.Add(s.ttl)}
	ss.elem = s.order.PushBack(ss)
	s.byID[id] = ss
	return id, nil
}

// lookup returns the user of a live session.
func (s *sessions) lookup(id string, now time.Time) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.byID[id]
	if !ok {
		return "", false
	}
	if !now.Before(ss.expires) {
		s.removeLocked(ss)
		return "", false
	}
	return ss.user, true
}

// delete ends a session.
func (s *sessions) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss, ok := s.byID[id]; ok {
		s.removeLocked(ss)
	}
}

// deleteUser ends every session of a user (after a password change or a
// deletion).
func (s *sessions) deleteUser(user, except string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ss := range s.byID {
		if ss.user == user && id != except {
			s.removeLocked(ss)
		}
	}
}

func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID)
}

// expireLocked drops expired sessions; they are ordered by creation and all
// share one TTL, so the expired ones are at the front.
func (s *sessions) expireLocked(now time.Time) {
	for e := s.order.Front(); e != nil; e = s.order.Front() {
		ss := e.Value.(*session)
		if now.Before(ss.expires) {
			return
		}
		s.removeLocked(ss)
	}
}

func (s *sessions) removeLocked(ss *session) {
	s.order.Remove(ss.elem)
	delete(s.byID, ss.id)
}

// limiter rate-limits login attempts per client IP with a fixed window. Its
// table is bounded: when full, the least recently seen IP is evicted and
// counted.
type limiter struct {
	mu      sync.Mutex
	byIP    map[string]*list.Element
	lru     *list.List // least recently seen first
	max     int
	limit   int
	window  time.Duration
	evicted func()
}

type limiterEntry struct {
	ip    string
	start time.Time
	n     int
}

func newLimiter(max, limit int, window time.Duration, evicted func()) *limiter {
	return &limiter{byIP: make(map[string]*list.Element), lru: list.New(), max: max, limit: limit, window: window, evicted: evicted}
}

// allow records an attempt from ip and reports whether it may proceed, and
// if not, when the client may retry.
func (l *limiter) allow(ip string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.byIP[ip]; ok {
		l.lru.MoveToBack(e)
		ent := e.Value.(*limiterEntry)
		if now.Sub(ent.start) >= l.window {
			ent.start, ent.n = now, 0
		}
		if ent.n >= l.limit {
			return false, ent.start.Add(l.window).Sub(now)
		}
		ent.n++
		return true, 0
	}
	for len(l.byIP) >= l.max {
		oldest := l.lru.Front()
		l.lru.Remove(oldest)
		delete(l.byIP, oldest.Value.(*limiterEntry).ip)
		l.evicted()
	}
	l.byIP[ip] = l.lru.PushBack(&limiterEntry{ip: ip, start: now, n: 1})
	return true, 0
}

// size returns the number of tracked IPs.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byIP)
}

// checkPassword compares a password with a user's bcrypt hash. Unknown users
// still cost one bcrypt comparison, so timing does not reveal user names.
func checkPassword(u store.User, found bool, pw string) error {
	hash := u.PasswordHash
	if !found {
		hash = dummyHash
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)); err != nil || !found {
		return errBadCredentials
	}
	return nil
}

// dummyHash is a bcrypt hash (cost 10) of a random string, compared against
// when the user does not exist.
const dummyHash = "$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z6NVFQH6Ey3Ys6xKc5yOWu6e"

// validUserName reports whether a user or token name is acceptable.
func validUserName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == '@')
	}) < 0
}
