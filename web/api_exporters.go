package web

import (
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/flowbox/flowbox/store"
)

// StatusView is GET /api/v1/status: what the Fleet page shows above the
// routers: whether the store writes, and the exporters that send flows but
// are not trusted.
type StatusView struct {
	Store            StoreHealthView `json:"store"`
	UnknownExporters []ExporterView  `json:"unknown_exporters"`
}

// StoreHealthView is the store writer's health.
type StoreHealthView struct {
	OK bool `json:"ok"`
	// Error is the last write error while writes fail.
	Error          string     `json:"error,omitempty"`
	Since          *time.Time `json:"since,omitempty"`
	DroppedFlows   uint64     `json:"dropped_flows"`
	DroppedBatches uint64     `json:"dropped_batches"`
	QueueLength    int        `json:"queue_length"`
	QueueCapacity  int        `json:"queue_capacity"`
	// NATMappingsDropped counts NAT mappings that could not be written
	// (the abuse lookup misses them); NATEvicted those written early
	// because the NAT cache was full.
	NATMappingsDropped uint64 `json:"nat_mappings_dropped"`
	NATEvicted         uint64 `json:"nat_evicted"`
	// PackErrors counts failed attempts to pack closed raw partitions into
	// blocks; PackError is the last one while packing fails.
	PackErrors uint64 `json:"pack_errors"`
	PackError  string `json:"pack_error,omitempty"`
	// RollupErrors counts failed rounds of the rollups made from raw flows
	// (ClickHouse's top-N lists); RollupError is the last while they fail.
	RollupErrors uint64 `json:"rollup_errors"`
	RollupError  string `json:"rollup_error,omitempty"`
	// SpilledFlows and SpilledBytes wait on disk for ClickHouse (down or
	// slow); SpillCapacity is the spill's bound in bytes (0: none).
	SpilledFlows  uint64 `json:"spilled_flows"`
	SpilledBytes  int64  `json:"spilled_bytes"`
	SpillCapacity int64  `json:"spill_capacity"`
}

// handleStatus returns the store's health and the unknown exporters.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	out := StatusView{Store: StoreHealthView{OK: true}, UnknownExporters: []ExporterView{}}
	if s.deps.Health != nil {
		h := s.deps.Health.Health()
		out.Store = StoreHealthView{OK: h.OK, Error: h.Error, Since: timePtr(h.Since), DroppedFlows: h.DroppedFlows,
			DroppedBatches: h.DroppedBatches, QueueLength: h.QueueLength, QueueCapacity: h.QueueCapacity,
			NATMappingsDropped: h.NATMappingsDropped, NATEvicted: h.NATEvicted, PackErrors: h.PackErrors, PackError: h.PackError,
			RollupErrors: h.RollupErrors, RollupError: h.RollupError,
			SpilledFlows: h.SpilledFlows, SpilledBytes: h.SpilledBytes, SpillCapacity: h.SpillCapacity}
	}
	for _, e := range s.deps.Collector.Exporters() {
		if !e.Trusted {
			out.UnknownExporters = append(out.UnknownExporters, exporterView(e))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleAllowedExporters lists the trusted exporter prefixes.
func (s *Server) handleAllowedExporters(w http.ResponseWriter, r *http.Request) {
	if s.deps.Trust == nil {
		writeJSON(w, http.StatusOK, []AllowedPrefix{})
		return
	}
	list, err := s.deps.Trust.AllowedExporters(r.Context())
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if list == nil {
		list = []AllowedPrefix{}
	}
	writeJSON(w, http.StatusOK, list)
}

// parseExporterPrefix parses an address or CIDR prefix given by a user.
func parseExporterPrefix(v string) (netip.Prefix, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return netip.Prefix{}, badf("prefix: missing (an exporter address or CIDR prefix)")
	}
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return netip.Prefix{}, badf("prefix: %q is not a CIDR prefix", v)
		}
		a := p.Addr().Unmap()
		return netip.PrefixFrom(a, min(p.Bits(), a.BitLen())).Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, badf("prefix: %q is not an address or CIDR prefix", v)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// handleAllowExporter accepts an unknown exporter: {"prefix": "192.0.2.7"}.
func (s *Server) handleAllowExporter(w http.ResponseWriter, r *http.Request) {
	if s.deps.Trust == nil {
		writeError(w, http.StatusNotImplemented, "accepting exporters is not available")
		return
	}
	var req struct {
		Prefix string `json:"prefix"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	p, err := parseExporterPrefix(req.Prefix)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	by := ""
	if pr, ok := principalFrom(r.Context()); ok {
		by = pr.User
	}
	if err := s.deps.Trust.AllowExporter(r.Context(), p, by); err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.log.Info("exporter accepted", "prefix", p.String(), "by", by)
	writeJSON(w, http.StatusCreated, AllowedPrefix{Prefix: p.String(), Source: "console", AddedBy: by})
}

// handleDisallowExporter removes an accepted prefix: ?prefix=192.0.2.7/32.
func (s *Server) handleDisallowExporter(w http.ResponseWriter, r *http.Request) {
	if s.deps.Trust == nil {
		writeError(w, http.StatusNotImplemented, "accepting exporters is not available")
		return
	}
	p, err := parseExporterPrefix(r.URL.Query().Get("prefix"))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	ok, err := s.deps.Trust.DisallowExporter(r.Context(), p)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, "no such accepted prefix (prefixes from the configuration are changed there)")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// AllowedList merges configured and accepted prefixes, for ExporterTrust
// implementations.
func AllowedList(config []netip.Prefix, accepted []store.AllowedExporter) []AllowedPrefix {
	out := make([]AllowedPrefix, 0, len(config)+len(accepted))
	for _, p := range config {
		out = append(out, AllowedPrefix{Prefix: p.String(), Source: "config"})
	}
	for _, a := range accepted {
		out = append(out, AllowedPrefix{Prefix: a.Prefix.String(), Source: "console", AddedBy: a.AddedBy, AddedAt: timePtr(a.AddedAt)})
	}
	return out
}
