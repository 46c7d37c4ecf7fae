package web

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/flowbox/flowbox/store"
)

// auditPruneEvery is how often writing the audit log also prunes it.
const auditPruneEvery = time.Hour

// auditNote lets an audited handler name its target more precisely and
// add a detail.
type auditNote struct {
	target string
	detail string
}

type auditKey struct{}

func withAuditNote(ctx context.Context, n *auditNote) context.Context {
	return context.WithValue(ctx, auditKey{}, n)
}

// noteAudit sets the target and detail of the request's audit entry (when
// its route is audited). Never pass a secret.
func noteAudit(r *http.Request, target, detail string) {
	if n, ok := r.Context().Value(auditKey{}).(*auditNote); ok {
		if target != "" {
			n.target = target
		}
		n.detail = detail
	}
}

// actorOf names who made a request in the audit log: the user, or
// "token:<name>" with its owner.
func actorOf(p principal) string {
	if p.TokenID != 0 {
		return p.User + " (" + p.Owner + ")"
	}
	return p.User
}

// audit writes one entry of the audit log for the request's principal.
func (s *Server) audit(r *http.Request, action, target, detail string, ok bool) {
	p, _ := principalFrom(r.Context())
	s.auditAs(r, actorOf(p), action, target, detail, ok)
}

// auditAs writes one entry of the audit log with an explicit actor (logins,
// where nobody is authenticated yet). A failed write is logged and counted:
// the change itself is done.
func (s *Server) auditAs(r *http.Request, actor, action, target, detail string, ok bool) {
	now := s.now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), sessionDBTimeout)
	defer cancel()
	e := store.AuditEntry{At: now, Actor: actor, Action: action, Target: target, Detail: detail, Client: s.clientIP(r), OK: ok}
	if err := s.deps.Users.AddAudit(ctx, e); err != nil {
		s.metrics.auditErrors.Inc()
		s.log.Warn("cannot write the audit log", "action", action, "actor", actor, "err", err)
		return
	}
	s.metrics.auditEntries.Inc()
	s.auditMu.Lock()
	prune := now.Sub(s.auditPruned) >= auditPruneEvery
	if prune {
		s.auditPruned = now
	}
	s.auditMu.Unlock()
	if prune {
		n, err := s.deps.Users.PruneAudit(ctx, now, s.auditRetention)
		if err != nil {
			s.metrics.auditErrors.Inc()
			s.log.Warn("cannot prune the audit log", "err", err)
			return
		}
		s.metrics.auditPruned.Add(float64(n))
	}
}

// AuditView is one entry of the audit log.
type AuditView struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Target string    `json:"target,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Client string    `json:"client,omitempty"`
	OK     bool      `json:"ok"`
}

// AuditPage is a page of the audit log, newest first.
type AuditPage struct {
	Entries []AuditView `json:"entries"`
	// Next is the before= of the next (older) page; 0 when this is the
	// last one.
	Next int64 `json:"next"`
	// MaxAge and MaxRows say how long entries are kept.
	MaxAge  Duration `json:"max_age"`
	MaxRows int      `json:"max_rows"`
}

// handleAudit returns a page of the audit log: ?limit= (1 to 500, default
// 100) entries before the id ?before= (default: the newest).
func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) {
	q := store.AuditQuery{Limit: 100}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			s.writeErr(w, r, badf("limit: a number from 1 to 500"))
			return
		}
		q.Limit = n
	}
	if v := r.URL.Query().Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			s.writeErr(w, r, badf("before: an entry id (a positive number)"))
			return
		}
		q.Before = n
	}
	es, err := s.deps.Users.AuditLog(r.Context(), q)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	page := AuditPage{Entries: make([]AuditView, 0, len(es)), MaxAge: Duration(s.auditRetention.MaxAge), MaxRows: s.auditRetention.MaxRows}
	for _, e := range es {
		page.Entries = append(page.Entries, AuditView{ID: e.ID, At: e.At.UTC(), Actor: e.Actor, Action: e.Action, Target: e.Target,
			Detail: e.Detail, Client: e.Client, OK: e.OK})
	}
	if len(es) == q.Limit {
		page.Next = es[len(es)-1].ID
	}
	writeJSON(w, http.StatusOK, page)
}
