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
	"log/slog"
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
// The caller sets the owner (UserID), the role and the expiry.
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
	// Owner is the user: the session's, or the token's owner.
	Owner string
	// Role is what the request may do: the user's role, or the token's
	// at most its owner's.
	Role store.Role
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

// session is one console login, known by the SHA-256 of its id
// (HashToken, as API tokens are).
type session struct {
	hash    string
	user    string
	created time.Time
	expires time.Time
	elem    *list.Element
}

// SessionStore keeps console sessions across restarts (implemented by
// *inventory.Inventory). Only hashes of session ids reach it.
type SessionStore interface {
	SaveSession(ctx context.Context, ss store.Session) error
	LiveSessions(ctx context.Context, now time.Time, limit int) ([]store.Session, error)
	DeleteSessions(ctx context.Context, hashes ...string) error
	DeleteUserSessions(ctx context.Context, user, except string) error
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error)
}

// sessionDBTimeout bounds each write of a session to the store.
const sessionDBTimeout = 5 * time.Second

// sessions keeps the live console sessions in memory, bounded: beyond max,
// the oldest session is evicted and counted. Every change is also written
// to the store (db), from which New reloads the live sessions, so a
// restart logs nobody out. Lookups only read memory. A failed store write
// is logged and counted; the session still works until the next restart.
type sessions struct {
	mu        sync.Mutex
	byHash    map[string]*session
	order     *list.List // oldest first
	max       int
	ttl       time.Duration
	evicted   func()
	db        SessionStore
	dbFailed  func()
	log       *slog.Logger
	lastPurge time.Time
}

func newSessions(max int, ttl time.Duration, evicted func(), db SessionStore, dbFailed func(), log *slog.Logger) *sessions {
	return &sessions{byHash: make(map[string]*session), order: list.New(), max: max, ttl: ttl, evicted: evicted,
		db: db, dbFailed: dbFailed, log: log}
}

// dbDo runs one store write with a timeout, logging and counting failures.
func (s *sessions) dbDo(what string, f func(ctx context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), sessionDBTimeout)
	defer cancel()
	if err := f(ctx); err != nil {
		s.dbFailed()
		s.log.Warn("cannot "+what+"; console sessions may not survive a restart", "err", err)
	}
}

// load reads the live sessions of the store into memory (at most max, the
// newest) and removes the expired ones from the store.
func (s *sessions) load(ctx context.Context, now time.Time) error {
	if _, err := s.db.DeleteExpiredSessions(ctx, now); err != nil {
		s.log.Warn("cannot delete expired sessions", "err", err)
	}
	live, err := s.db.LiveSessions(ctx, now, s.max)
	if err != nil {
		return fmt.Errorf("cannot load console sessions: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range live {
		if _, ok := s.byHash[l.Hash]; ok {
			continue
		}
		ss := &session{hash: l.Hash, user: l.User, created: l.CreatedAt, expires: l.ExpiresAt}
		ss.elem = s.order.PushBack(ss)
		s.byHash[ss.hash] = ss
	}
	s.lastPurge = now
	return nil
}

// create starts a session for user and returns its id.
func (s *sessions) create(user string, now time.Time) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("cannot generate session id: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(b)
	ss := &session{hash: HashToken(id), user: user, created: now, expires: now.Add(s.ttl)}
	s.mu.Lock()
	s.expireLocked(now)
	var gone []string
	for len(s.byHash) >= s.max {
		oldest := s.order.Front().Value.(*session)
		s.removeLocked(oldest)
		gone = append(gone, oldest.hash)
		s.evicted()
	}
	ss.elem = s.order.PushBack(ss)
	s.byHash[ss.hash] = ss
	purge := now.Sub(s.lastPurge) >= time.Hour
	if purge {
		s.lastPurge = now
	}
	s.mu.Unlock()
	s.dbDo("save the session", func(ctx context.Context) error {
		return s.db.SaveSession(ctx, store.Session{Hash: ss.hash, User: user, CreatedAt: ss.created, ExpiresAt: ss.expires})
	})
	if len(gone) > 0 {
		s.dbDo("delete evicted sessions", func(ctx context.Context) error { return s.db.DeleteSessions(ctx, gone...) })
	}
	if purge {
		s.dbDo("delete expired sessions", func(ctx context.Context) error {
			_, err := s.db.DeleteExpiredSessions(ctx, now)
			return err
		})
	}
	return id, nil
}

// lookup returns the user of a live session.
func (s *sessions) lookup(id string, now time.Time) (string, bool) {
	h := HashToken(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.byHash[h]
	if !ok {
		return "", false
	}
	if !now.Before(ss.expires) {
		s.removeLocked(ss) // the store forgets it at the next purge
		return "", false
	}
	return ss.user, true
}

// delete ends a session.
func (s *sessions) delete(id string) {
	h := HashToken(id)
	s.mu.Lock()
	if ss, ok := s.byHash[h]; ok {
		s.removeLocked(ss)
	}
	s.mu.Unlock()
	s.dbDo("delete the session", func(ctx context.Context) error { return s.db.DeleteSessions(ctx, h) })
}

// deleteUser ends every session of a user but the one with id except
// (after a password change or a deletion).
func (s *sessions) deleteUser(user, except string) {
	keep := ""
	if except != "" {
		keep = HashToken(except)
	}
	s.mu.Lock()
	for h, ss := range s.byHash {
		if ss.user == user && h != keep {
			s.removeLocked(ss)
		}
	}
	s.mu.Unlock()
	s.dbDo("delete the user's sessions", func(ctx context.Context) error { return s.db.DeleteUserSessions(ctx, user, keep) })
}

func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byHash)
}

// expireLocked drops expired sessions from memory; they are ordered by
// creation and all share one TTL, so the expired ones are at the front.
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
	delete(s.byHash, ss.hash)
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
