package web

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/flowbox/flowbox/store"
)

// pageData is what every page template receives.
type pageData struct {
	Title string
	// Page names the active navigation entry and the page script.
	Page string
	User string
	// Role is the user's role: layout.html puts it on <body data-role>,
	// and app.css hides the controls of the roles above it.
	Role  string
	Error string
	// Next is where the login form goes after success.
	Next string
	// RouterID is the router of the router page.
	RouterID int64
	// Name pre-fills the setup and login forms.
	Name string
	// AlertID is the alert of the alert page.
	AlertID int64
	// AlertKinds are the kinds the Alerts page filters by.
	AlertKinds []string
	// AlertsDisabled says the server has no alert store.
	AlertsDisabled bool
	// NATDisabled says the server has no NAT-mapping store (the Abuse
	// lookup page says the lookup is unavailable).
	NATDisabled bool
	// ReportsDisabled says the server has no report builder (the Reports
	// page says reports are unavailable).
	ReportsDisabled bool
}

// render executes a page into a buffer first, so that a template error
// becomes a clean 500 rather than half a page.
func (s *Server) render(w http.ResponseWriter, code int, page string, d pageData) {
	t, ok := s.pages[page]
	if !ok {
		http.Error(w, "unknown page", http.StatusInternalServerError)
		return
	}
	d.Page = page
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", d); err != nil {
		s.log.Error("cannot render page", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func userOf(r *http.Request) string {
	p, _ := principalFrom(r.Context())
	return p.User
}

func roleOf(r *http.Request) string {
	p, _ := principalFrom(r.Context())
	return string(p.Role)
}

// handleFleetPage shows every router and the "Add router" form.
func (s *Server) handleFleetPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "fleet", pageData{Title: "Fleet", User: userOf(r), Role: roleOf(r)})
}

// handleDashboardPage shows the landing page: the whole fleet's traffic
// stacked by router, fleet-wide top lists, routers by traffic and the
// alerts and health summary.
func (s *Server) handleDashboardPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "dashboard", pageData{Title: "Dashboard", User: userOf(r), Role: roleOf(r)})
}

// handleRouterPage shows one router's traffic, top-N tables, history and
// counters.
func (s *Server) handleRouterPage(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil || id < 1 {
		http.NotFound(w, r)
		return
	}
	rt, err := s.deps.Routers.GetRouterByID(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		s.log.Error("cannot read router", "id", id, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	s.render(w, http.StatusOK, "router", pageData{Title: rt.Name, User: userOf(r), Role: roleOf(r), RouterID: id})
}

// handleSubscribersPage shows the traffic of every subscriber over a
// period (the usage report).
func (s *Server) handleSubscribersPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "subscribers", pageData{Title: "Subscribers", User: userOf(r), Role: roleOf(r)})
}

// handleFlowsPage shows the flow search.
func (s *Server) handleFlowsPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "flows", pageData{Title: "Flows", User: userOf(r), Role: roleOf(r)})
}

// handleSettingsPage shows the settings, users and tokens.
func (s *Server) handleSettingsPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "settings", pageData{Title: "Settings", User: userOf(r), Role: roleOf(r)})
}

// handleAlertsPage shows the active and past alerts, and the state of
// detection, notification and mitigation.
func (s *Server) handleAlertsPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "alerts", pageData{Title: "Alerts", User: userOf(r), Role: roleOf(r), AlertKinds: store.AlertKinds,
		AlertsDisabled: s.deps.Alerts == nil})
}

// handleAlertPage shows one alert: its evidence, the target's traffic
// around it, its mitigation and notifications.
func (s *Server) handleAlertPage(w http.ResponseWriter, r *http.Request) {
	if s.deps.Alerts == nil {
		s.render(w, http.StatusOK, "alert", pageData{Title: "Alert", User: userOf(r), Role: roleOf(r), AlertsDisabled: true})
		return
	}
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil || id < 1 {
		http.NotFound(w, r)
		return
	}
	a, err := s.deps.Alerts.GetAlert(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		s.log.Error("cannot read alert", "id", id, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	s.render(w, http.StatusOK, "alert", pageData{Title: "Alert " + strconv.FormatInt(id, 10) + ": " + a.Kind + " on " + a.Target,
		User: userOf(r), Role: roleOf(r), AlertID: id})
}

// handleAbusePage shows the abuse lookup: a complaint's public address,
// port and time to the subscriber, with the evidence, printable and as
// CSV; and "who had this address?".
func (s *Server) handleAbusePage(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "abuse", pageData{Title: "Abuse lookup", User: userOf(r), Role: roleOf(r), NATDisabled: s.deps.NAT == nil})
}

// safeNext keeps a post-login redirect on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsRune(next, '\\') {
		return "/"
	}
	// Browsers drop tabs and newlines from URLs ("/\t/evil.example" is
	// "//evil.example" to them): no control character at all.
	for _, c := range next {
		if c < 0x20 || c == 0x7f {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") ||
		strings.HasPrefix(u.Path, "//") {
		return "/"
	}
	return next
}

// handleLoginPage shows the login form, or the setup page when no user
// exists yet.
func (s *Server) handleLoginPage(w http.ResponseWriter, r *http.Request) {
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
	s.render(w, http.StatusOK, "login", pageData{Title: "Log in", Next: safeNext(r.URL.Query().Get("next"))})
}

// setSession starts a session and sets its cookie.
func (s *Server) setSession(w http.ResponseWriter, r *http.Request, user string) error {
	id, err := s.sessions.create(user, s.now())
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    id,
		Path:     "/",
		MaxAge:   int(s.cfg.SessionTTL.Seconds()),
		HttpOnly: true,
		Secure:   s.secureCookies(r),
		SameSite: http.SameSiteLaxMode,
	})
	return nil
}

// handleLogin checks the login form, rate-limited per client IP.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	next := safeNext(r.PostFormValue("next"))
	name := r.PostFormValue("username")
	if ok, retry := s.limiter.allow(limitKey(s.clientIP(r)), s.now()); !ok {
		s.metrics.logins.WithLabelValues("rate_limited").Inc()
		w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())+1))
		s.render(w, http.StatusTooManyRequests, "login", pageData{Title: "Log in", Next: next, Name: name,
			Error: "Too many login attempts; wait a minute and try again."})
		return
	}
	if wait := s.backoff.wait(name, s.now()); wait > 0 {
		s.metrics.logins.WithLabelValues("rate_limited").Inc()
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		s.render(w, http.StatusTooManyRequests, "login", pageData{Title: "Log in", Next: next, Name: name,
			Error: "Too many failed logins for this account; wait a little and try again."})
		return
	}
	u, err := s.deps.Users.UserByName(r.Context(), name)
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Error("cannot read user", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := checkPassword(u, found, r.PostFormValue("password")); err != nil {
		s.metrics.logins.WithLabelValues("bad_credentials").Inc()
		s.backoff.failed(name, s.now())
		s.log.Info("login failed", "user", name, "client", s.clientIP(r))
		if found {
			s.auditAs(r, u.Name, "login", "", "wrong password", false)
		} else {
			// The name typed is not kept: it may be a password typed in
			// the wrong field.
			s.auditAs(r, "(unknown user)", "login", "", "unknown user name", false)
		}
		s.render(w, http.StatusUnauthorized, "login", pageData{Title: "Log in", Next: next, Name: name, Error: "Invalid user name or password."})
		return
	}
	if err := s.setSession(w, r, u.Name); err != nil {
		s.log.Error("cannot start session", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	s.metrics.logins.WithLabelValues("ok").Inc()
	s.backoff.succeeded(name)
	s.log.Info("login", "user", u.Name, "client", s.clientIP(r))
	s.auditAs(r, u.Name, "login", "", "role "+string(u.Role), true)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// handleLogout ends the session.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.sessions.delete(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: s.secureCookies(r), SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// handleSetupPage asks for the first admin password; once a user exists
// it sends to the login page.
func (s *Server) handleSetupPage(w http.ResponseWriter, r *http.Request) {
	n, err := s.deps.Users.CountUsers(r.Context())
	if err != nil {
		s.log.Error("cannot count users", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if n > 0 {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	s.render(w, http.StatusOK, "setup", pageData{Title: "Set up flowbox", Name: "admin"})
}

// handleSetup creates the first user and logs it in. It refuses once any
// user exists.
func (s *Server) handleSetup(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	name := strings.TrimSpace(r.PostFormValue("username"))
	pw, confirm := r.PostFormValue("password"), r.PostFormValue("confirm")
	fail := func(msg string) {
		s.render(w, http.StatusBadRequest, "setup", pageData{Title: "Set up flowbox", Name: name, Error: msg})
	}
	if ok, _ := s.limiter.allow(limitKey(s.clientIP(r)), s.now()); !ok {
		s.render(w, http.StatusTooManyRequests, "setup", pageData{Title: "Set up flowbox", Name: name, Error: "Too many attempts; wait a minute."})
		return
	}
	if n, err := s.deps.Users.CountUsers(r.Context()); err == nil && n > 0 {
		http.Redirect(w, r, "/login", http.StatusSeeOther) // set up already
		return
	}
	if !s.checkSetupToken(r.PostFormValue("token")) {
		s.log.Warn("setup refused: wrong setup token", "client", s.clientIP(r))
		s.render(w, http.StatusForbidden, "setup", pageData{Title: "Set up flowbox", Name: name,
			Error: "The setup token is wrong. It is in the server's log and in the data directory's setup-token file (flowbox setup-token prints it)."})
		return
	}
	if !validUserName(name) {
		fail("The user name must be 1 to 64 letters, digits or -_.@")
		return
	}
	if pw != confirm {
		fail("The two passwords differ.")
		return
	}
	hash, err := HashPassword(pw)
	if err != nil {
		fail("The password " + strings.TrimPrefix(err.Error(), "password ") + ".")
		return
	}
	s.setupMu.Lock()
	n, err := s.deps.Users.CountUsers(r.Context())
	if err == nil && n == 0 {
		if _, err = s.deps.Users.CreateUser(r.Context(), name, hash, store.RoleAdmin); err == nil {
			s.dropSetupTokenLocked()
		}
	}
	s.setupMu.Unlock()
	if err != nil {
		s.log.Error("cannot create the first user", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if n > 0 {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	s.log.Info("created the first user", "user", name, "client", s.clientIP(r))
	s.auditAs(r, name, "setup", "user "+name, "the first user, admin", true)
	if err := s.setSession(w, r, name); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
