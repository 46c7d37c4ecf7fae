package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/gorilla/mux"

	"github.com/flowbox/flowbox/store"
)

// route is one route of the console with the least role that may use it.
// Every page and API route is declared as a route (web/routes.go), so no
// handler can forget its role: guard checks it before the handler runs.
type route struct {
	method string
	path   string
	// role is the least role that may use the route.
	role store.Role
	// audit names the action written to the audit log for this route
	// ("" for none: reads, and writes that audit themselves).
	audit string
	// fields are the JSON body fields (never a secret) that name the
	// target in the audit log, such as "name" or "prefix".
	fields []string
	h      http.HandlerFunc
}

// readRoute declares a route that changes nothing (GET), writeRoute one
// that does, with its audit action and the body fields naming its target.
func readRoute(path string, role store.Role, h http.HandlerFunc) route {
	return route{method: http.MethodGet, path: path, role: role, h: h}
}

func writeRoute(method, path string, role store.Role, audit string, h http.HandlerFunc, fields ...string) route {
	return route{method: method, path: path, role: role, audit: audit, fields: fields, h: h}
}

// routeKey names a route in Server.routeRoles: "POST /api/v1/routers".
func routeKey(method, tmpl string) string { return method + " " + tmpl }

// forbidden answers 403 to an API call the caller's role may not make.
func forbidden(w http.ResponseWriter, need store.Role, have store.Role) {
	writeError(w, http.StatusForbidden, fmt.Sprintf("forbidden: this needs the %s role (yours is %s)", need, have))
}

// guardAPI checks the caller's role before an API handler runs (403 with a
// JSON error) and writes the audit log of audited routes.
func (s *Server) guardAPI(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := principalFrom(r.Context())
		if !p.Role.AtLeast(rt.role) {
			if rt.audit != "" {
				s.audit(r, rt.audit, s.auditTarget(r, rt, nil), fmt.Sprintf("refused: needs the %s role", rt.role), false)
			}
			forbidden(w, rt.role, p.Role)
			return
		}
		if rt.audit == "" {
			rt.h(w, r)
			return
		}
		var body []byte
		if len(rt.fields) > 0 && r.Body != nil {
			// Read the body once to name the target, and hand it on.
			b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
			if err != nil {
				writeError(w, http.StatusBadRequest, "body: cannot read it")
				return
			}
			body = b
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b), r.Body))
		}
		target := s.auditTarget(r, rt, body)
		note := &auditNote{}
		sw := &statusWriter{ResponseWriter: w}
		rt.h(sw, r.WithContext(withAuditNote(r.Context(), note)))
		if note.target != "" {
			target = note.target
		}
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		detail := note.detail
		if code >= 400 {
			detail = strings.TrimSpace(fmt.Sprintf("%s (status %d)", detail, code))
		}
		s.audit(r, rt.audit, target, detail, code < 400)
	})
}

// guardPage checks the caller's role before a page handler runs (403 with
// an HTML page).
func (s *Server) guardPage(rt route) http.HandlerFunc {
	return s.requirePageAuth(func(w http.ResponseWriter, r *http.Request) {
		p, _ := principalFrom(r.Context())
		if !p.Role.AtLeast(rt.role) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, "<!doctype html>\n<title>Forbidden · flowbox</title>\n<h1>Forbidden</h1>\n<p>This page needs the %s role; yours is %s. <a href=\"/\">Back to the fleet</a>.</p>\n",
				template.HTMLEscapeString(string(rt.role)), template.HTMLEscapeString(string(p.Role)))
			return
		}
		rt.h(w, r)
	})
}

// auditTarget names what an audited request acts on: the router of
// /routers/{id} (by name), the other path variables, and the body fields
// the route lists (never a password).
func (s *Server) auditTarget(r *http.Request, rt route, body []byte) string {
	var parts []string
	vars := mux.Vars(r)
	if id, ok := vars["id"]; ok && strings.HasPrefix(rt.path, "/routers/") {
		name := id
		if n, err := pathID(r, id); err == nil {
			if rtr, err := s.deps.Routers.GetRouterByID(r.Context(), n); err == nil {
				name = rtr.Name + " (id " + id + ")"
			}
		}
		parts = append(parts, "router "+name)
	} else {
		keys := make([]string, 0, len(vars))
		for k := range vars {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			parts = append(parts, k+" "+vars[k])
		}
	}
	if q := r.URL.Query().Get("prefix"); q != "" {
		parts = append(parts, "prefix "+q)
	}
	if len(body) > 0 && len(rt.fields) > 0 {
		var m map[string]any
		if json.Unmarshal(body, &m) == nil {
			for _, f := range rt.fields {
				if v, ok := m[f]; ok && f != "password" {
					parts = append(parts, fmt.Sprintf("%s %v", f, v))
				}
			}
		}
	}
	t := strings.Join(parts, ", ")
	if len(t) > 200 {
		t = t[:200]
	}
	return t
}
