package web

import (
	"context"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/flowbox/flowbox/store"
)

// Repinner re-pins the TLS certificate of routers onboarded over API-SSL,
// after the operator compared the fingerprints (implemented by the
// provisioner's adapter; without it the routes answer 501).
type Repinner interface {
	// CheckRepin returns the pinned fingerprint of a router's certificate
	// and the one it presents now, without logging in.
	CheckRepin(ctx context.Context, id int64) (CertificateView, error)
	// Repin pins the certificate the router presents now, which must have
	// the confirmed fingerprint, and returns the router.
	Repin(ctx context.Context, id int64, fingerprint string) (store.Router, error)
}

// CertificateView answers GET /api/v1/routers/{id}/certificate: the pinned
// and the presented SHA-256 fingerprints (hex) of the router's API-SSL
// certificate.
type CertificateView struct {
	Pinned    string `json:"pinned"`
	Presented string `json:"presented"`
	// Changed is true when the router presents another certificate than
	// the pinned one (a re-pin is needed, if the change is expected).
	Changed bool `json:"changed"`
}

// RepinRequest is the body of POST /api/v1/routers/{id}/repin: the
// fingerprint the operator confirmed, as GET .../certificate returned it.
type RepinRequest struct {
	Fingerprint string `json:"fingerprint"`
}

// repinner returns the Repinner, or answers 501.
func (s *Server) repinner(w http.ResponseWriter) (Repinner, bool) {
	rp, ok := s.deps.Provisioner.(Repinner)
	if !ok {
		writeError(w, http.StatusNotImplemented, "re-pinning is not available")
	}
	return rp, ok
}

// handleCertificate shows a router's pinned certificate fingerprint and the
// one it presents now.
func (s *Server) handleCertificate(w http.ResponseWriter, r *http.Request) {
	rp, ok := s.repinner(w)
	if !ok {
		return
	}
	id, err := pathID(r, mux.Vars(r)["id"])
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), routerCallTimeout)
	defer cancel()
	c, err := rp.CheckRepin(ctx, id)
	if err != nil {
		s.provisionErr(w, r, err, "")
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// handleRepin pins the certificate a router presents now, once the
// operator confirmed its fingerprint.
func (s *Server) handleRepin(w http.ResponseWriter, r *http.Request) {
	rp, ok := s.repinner(w)
	if !ok {
		return
	}
	id, err := pathID(r, mux.Vars(r)["id"])
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	var req RepinRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	fp := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(req.Fingerprint), ":", ""))
	if len(fp) != 64 || strings.Trim(fp, "0123456789abcdef") != "" {
		s.writeErr(w, r, badf("fingerprint: want the SHA-256 of the certificate, 64 hex digits"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), routerCallTimeout)
	defer cancel()
	rt, err := rp.Repin(ctx, id, fp)
	if err != nil {
		s.provisionErr(w, r, err, "")
		return
	}
	writeJSON(w, http.StatusOK, s.routerView(rt, s.deps.Collector.Exporters(), RouterTotal{}, s.now()))
}
