package web

import (
	"net/http"

	"github.com/flowbox/flowbox/store"
)

// errDomainsDisabled is the answer of the domains API without a namer.
const errDomainsDisabled = "domains are unavailable on this server: it reads no router's DNS cache (domains.enabled is false)"

// handleDomainStatus answers GET /api/v1/domains/status: per router, how
// its DNS cache is read (last poll, names, failures) and whether it is its
// customers' resolver, with what that means for the domains shown.
func (s *Server) handleDomainStatus(w http.ResponseWriter, r *http.Request) {
	if s.deps.Domains == nil {
		writeError(w, http.StatusServiceUnavailable, errDomainsDisabled)
		return
	}
	writeJSON(w, http.StatusOK, s.deps.Domains.DomainStatus())
}

// handleSubscriberDomains answers GET /api/v1/subscribers/domains: one
// subscriber's top remote domains over a period (whole UTC days), from the
// per-day subscriber-domain rollups.
func (s *Server) handleSubscriberDomains(w http.ResponseWriter, r *http.Request) {
	q, err := queryValues(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	var dq store.SubscriberDomainsQuery
	if dq.From, dq.To, err = s.usageRange(q); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if dq.Sources, err = usageSources(q); err != nil {
		s.writeErr(w, r, err)
		return
	}
	dq.Subscriber = q.Get("subscriber")
	switch {
	case dq.Subscriber == "":
		s.writeErr(w, r, badf("subscriber: required"))
		return
	case len(dq.Subscriber) > maxSubscriberName:
		s.writeErr(w, r, badf("subscriber: longer than %d characters", maxSubscriberName))
		return
	}
	if dq.N, err = intParam(q, "limit", 10, 1, 100); err != nil {
		s.writeErr(w, r, err)
		return
	}
	ctx, cancel := contextWithTimeout(r, queryTimeout)
	defer cancel()
	res, err := s.deps.Store.SubscriberDomains(ctx, dq)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
