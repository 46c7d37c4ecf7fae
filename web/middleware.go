package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/flowbox/flowbox/store"
)

// sessionCookie names the console session cookie.
const sessionCookie = "flowbox_session"

// contentSecurityPolicy allows only the console's own scripts, styles and
// API: no inline script, no third-party origin.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// wrap adds what every response gets: panic recovery, security headers, the
// Host check (DNS rebinding) and cross-origin (CSRF) protection of
// state-changing requests.
func (s *Server) wrap(h http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.metrics.requests.WithLabelValues("csrf", "403").Inc()
		writeError(w, http.StatusForbidden, "cross-origin request rejected")
	}))
	protected := cop.Handler(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic in handler", "path", r.URL.Path, "panic", fmt.Sprint(v))
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		hdr := w.Header()
		hdr.Set("Content-Security-Policy", contentSecurityPolicy)
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("X-Frame-Options", "DENY")
		hdr.Set("Referrer-Policy", "same-origin")
		if r.TLS != nil {
			hdr.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if !s.checkHost(w, r) {
			return
		}
		protected.ServeHTTP(w, r)
	})
}

// statusWriter records the status code of a response. It keeps
// http.Flusher working for streamed answers.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush forwards to the underlying writer.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument counts requests and their latency by route template (a
// bounded label set) and logs server errors.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := "unknown"
		if cr := mux.CurrentRoute(r); cr != nil {
			if t, err := cr.GetPathTemplate(); err == nil {
				route = t
			}
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		s.metrics.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		if sw.code >= 500 {
			s.log.Warn("request failed", "method", r.Method, "route", route, "code", sw.code)
		}
	})
}

// authenticate finds who makes the request: a bearer token or a session
// cookie. It returns ok false when neither is valid, and an error when the
// store cannot say.
func (s *Server) authenticate(r *http.Request) (principal, bool, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		secret, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || !strings.HasPrefix(secret, TokenPrefix) {
			return principal{}, false, nil
		}
		t, err := s.deps.Users.TokenByHash(r.Context(), HashToken(strings.TrimSpace(secret)))
		if errors.Is(err, store.ErrNotFound) {
			return principal{}, false, nil
		}
		if err != nil {
			return principal{}, false, fmt.Errorf("cannot read the token: %w", err)
		}
		now := s.now()
		role := t.EffectiveRole()
		// A token made before users existed has no owner; an expired one
		// is dead (it stays listed until revoked).
		if t.Owner == "" || role.Rank() == 0 || (!t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)) {
			return principal{}, false, nil
		}
		if now.Sub(t.LastUsed) > time.Minute {
			if err := s.deps.Users.TouchToken(r.Context(), t.ID, now); err != nil {
				s.log.Warn("cannot record token use", "token", t.Name, "err", err)
			}
		}
		return principal{User: "token:" + t.Name, TokenID: t.ID, Owner: t.Owner, Role: role}, true, nil
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return principal{}, false, nil
	}
	user, ok := s.sessions.lookup(c.Value, s.now())
	if !ok {
		return principal{}, false, nil
	}
	// The role is read at every request, so that a change (also by
	// `flowbox user set-role` or `user remove` while serve runs) applies
	// at once.
	u, err := s.deps.Users.UserByName(r.Context(), user)
	if errors.Is(err, store.ErrNotFound) {
		s.sessions.deleteUser(user, "")
		return principal{}, false, nil
	}
	if err != nil {
		return principal{}, false, fmt.Errorf("cannot read the session's user: %w", err)
	}
	return principal{User: user, Owner: user, Role: u.Role}, true, nil
}

// requireAPIAuth answers 401 with a JSON error to unauthenticated API calls.
func (s *Server) requireAPIAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok, err := s.authenticate(r)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="flowbox"`)
			writeError(w, http.StatusUnauthorized, "authentication required")
			return
		}
		next.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), p)))
	})
}

// requirePageAuth sends unauthenticated browsers to the setup page (no
// user yet) or the login page.
func (s *Server) requirePageAuth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok, err := s.authenticate(r)
		if err != nil {
			s.log.Error("cannot authenticate", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		if !ok {
			n, err := s.deps.Users.CountUsers(r.Context())
			if err != nil {
				s.log.Error("cannot count users", "err", err)
				http.Error(w, "internal error", http.StatusInternalServerError)
				return
			}
			if n == 0 {
				http.Redirect(w, r, "/setup", http.StatusSeeOther)
				return
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		next(w, r.WithContext(withPrincipal(r.Context(), p)))
	}
}

// isLoopback reports whether the request comes from a loopback address.
func isLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// loopbackOnly refuses every non-loopback client (pprof).
func loopbackOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isLoopback(r) {
			writeError(w, http.StatusForbidden, "only available from loopback")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// clientIP returns the request's client address: the peer, or, when the
// peer is one of the configured trusted proxies (web.trusted-proxies), the
// rightmost address of X-Forwarded-For that is not a trusted proxy.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !s.trustedProxy(peer) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return host // a malformed header: the proxy is the client
		}
		if !s.trustedProxy(a) {
			return a.Unmap().String()
		}
	}
	return host
}

// trustedProxy reports whether a is in web.trusted-proxies.
func (s *Server) trustedProxy(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// limitKey is the login rate limiter's key of a client address: the
// address for IPv4, its /64 for IPv6 (one subscriber line gets a whole
// /64, so a per-address limit would be no limit).
func limitKey(client string) string {
	a, err := netip.ParseAddr(client)
	if err != nil || a.Unmap().Is4() {
		return client
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}

// writeJSON replies with v as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client went away; nothing to do
}

// errorBody is every API error.
type errorBody struct {
	Error string `json:"error"`
}

// writeError replies with {"error": msg}.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

// badRequest is a validation error, reported as 400 with its message.
type badRequest struct{ msg string }

func (e badRequest) Error() string { return e.msg }

func badf(format string, args ...any) error { return badRequest{fmt.Sprintf(format, args...)} }

// writeErr maps an error to a status: 400 for validation errors, 404 for
// store.ErrNotFound, 409 for store.ErrExists, 504 for timeouts, 500 (with
// the details only in the log) otherwise.
func (s *Server) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	var br badRequest
	var qe *store.QueryError
	switch {
	case errors.As(err, &br):
		writeError(w, http.StatusBadRequest, br.msg)
	case errors.As(err, &qe) && qe.Field == "filter":
		// The store refused a filter that needs raw flows beyond the raw
		// window (checkRawWindow catches it first when the retention is
		// known).
		writeError(w, http.StatusBadRequest, s.rawWindowMsg(allRawFilters))
	case errors.Is(err, store.ErrBadQuery):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not found")
	case errors.Is(err, store.ErrExists):
		writeError(w, http.StatusConflict, "already exists")
	case errors.Is(err, errBusy):
		w.Header().Set("Retry-After", "2")
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, "the query took too long")
	default:
		// The details stay in the server's log: they may name files,
		// tables or addresses that are nobody's business over HTTP.
		id := incidentID()
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "incident", id, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error (incident "+id+" in the server log)")
	}
}

// incidentID returns a short random id that ties a 500 answer to its log
// line.
func incidentID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on Linux
	return hex.EncodeToString(b[:])
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
