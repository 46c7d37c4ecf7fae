package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/flowbox/flowbox/store"
)

// rateWindow is the window the fleet's "current" rates average over.
const rateWindow = 5 * time.Minute

// Router statuses shown on the fleet page.
const (
	StatusOnline    = "online"     // flows within stale-after
	StatusStale     = "stale"      // flows seen, but not recently
	StatusNeverSeen = "never-seen" // no flow ever
	StatusError     = "error"      // the last provisioning operation failed
)

// RouterView is a router as the API shows it: inventory, provisioning
// state, collector counters and current rates. It never carries the
// router's password.
type RouterView struct {
	ID             int64           `json:"id"`
	Name           string          `json:"name"`
	Address        string          `json:"address"`
	TLS            bool            `json:"tls"`
	Username       string          `json:"username"`
	Identity       string          `json:"identity"`
	Board          string          `json:"board"`
	Model          string          `json:"model"`
	Serial         string          `json:"serial"`
	Version        string          `json:"version"`
	Status         string          `json:"status"`
	State          string          `json:"state"`
	StateDetail    string          `json:"state_detail,omitempty"`
	LastContact    *time.Time      `json:"last_contact,omitempty"`
	LastFlow       *time.Time      `json:"last_flow,omitempty"`
	FlowsPerSec    float64         `json:"flows_per_sec"`
	BitsInPerSec   float64         `json:"bits_in_per_sec"`
	BitsOutPerSec  float64         `json:"bits_out_per_sec"`
	LostFlows      uint64          `json:"lost_flows"`
	TemplateState  string          `json:"template_state"`
	Templates      int             `json:"templates"`
	Exporters      []ExporterView  `json:"exporters"`
	Interfaces     []InterfaceView `json:"interfaces"`
	TLSFingerprint string          `json:"tls_fingerprint,omitempty"`
}

// InterfaceView is one router interface.
type InterfaceView struct {
	Index   uint32 `json:"index"`
	Name    string `json:"name"`
	Type    string `json:"type,omitempty"`
	Comment string `json:"comment,omitempty"`
}

// ExporterView is the collector's counters for one exporter address.
type ExporterView struct {
	Exporter      string            `json:"exporter"`
	RouterID      int64             `json:"router_id"`
	Packets       uint64            `json:"packets"`
	FlowsReceived uint64            `json:"flows_received"`
	FlowsStored   uint64            `json:"flows_stored"`
	FlowsDropped  map[string]uint64 `json:"flows_dropped"`
	DecodeErrors  map[string]uint64 `json:"decode_errors"`
	LostFlows     uint64            `json:"lost_flows"`
	Templates     int               `json:"templates"`
	PendingNoTmpl uint64            `json:"pending_no_template"`
	// Trusted is false for an unknown exporter: its flows are counted
	// (flows_received, flows_dropped.untrusted), not stored.
	Trusted bool `json:"trusted"`
	// SetsNoTemplate counts data sets dropped while waiting for their
	// template (sets, not flows).
	SetsNoTemplate uint64     `json:"sets_no_template"`
	FirstSeen      *time.Time `json:"first_seen,omitempty"`
	LastSeen       *time.Time `json:"last_seen,omitempty"`
	LastTemplate   *time.Time `json:"last_template,omitempty"`
}

// RunView is one provisioning run.
type RunView struct {
	ID         int64     `json:"id"`
	RouterID   int64     `json:"router_id"`
	Time       time.Time `json:"time"`
	Action     string    `json:"action"`
	OK         bool      `json:"ok"`
	Summary    string    `json:"summary"`
	Changes    []string  `json:"changes"`
	Transcript []string  `json:"transcript,omitempty"`
	Error      string    `json:"error,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func exporterView(e store.ExporterStats) ExporterView {
	v := ExporterView{
		RouterID: e.RouterID, Packets: e.Packets, FlowsReceived: e.FlowsReceived,
		FlowsStored: e.FlowsStored, FlowsDropped: e.FlowsDropped, DecodeErrors: e.DecodeErrors,
		LostFlows: e.LostFlows, Templates: e.Templates, PendingNoTmpl: e.PendingNoTmpl,
		Trusted: e.Trusted, SetsNoTemplate: e.SetsNoTemplate,
		FirstSeen: timePtr(e.FirstSeen), LastSeen: timePtr(e.LastSeen), LastTemplate: timePtr(e.LastTemplate),
	}
	if e.Exporter.IsValid() {
		v.Exporter = e.Exporter.String()
	}
	if v.FlowsDropped == nil {
		v.FlowsDropped = map[string]uint64{}
	}
	if v.DecodeErrors == nil {
		v.DecodeErrors = map[string]uint64{}
	}
	return v
}

func runView(r store.ProvisionRun) RunView {
	v := RunView{ID: r.ID, RouterID: r.RouterID, Time: r.Time.UTC(), Action: r.Action, OK: r.OK,
		Summary: r.Summary, Changes: r.Changes, Transcript: r.Transcript, Error: r.Error}
	if v.Changes == nil {
		v.Changes = []string{}
	}
	return v
}

// routerView combines a router with its exporters and current totals.
func (s *Server) routerView(rt store.Router, exps []store.ExporterStats, tot RouterTotal, now time.Time) RouterView {
	v := RouterView{
		ID: rt.ID, Name: rt.Name, Address: rt.Address, TLS: rt.TLS, Username: rt.Username,
		Identity: rt.Identity, Board: rt.Board, Model: rt.Model, Serial: rt.Serial, Version: rt.Version,
		State: rt.State, StateDetail: rt.StateDetail, LastContact: timePtr(rt.LastContact),
		TLSFingerprint: rt.TLSFingerprint,
		Exporters:      []ExporterView{}, Interfaces: []InterfaceView{},
	}
	for _, i := range rt.Interfaces {
		v.Interfaces = append(v.Interfaces, InterfaceView{Index: i.Index, Name: i.Name, Type: i.Type, Comment: i.Comment})
	}
	last := tot.LastFlow
	var pending uint64
	for _, e := range exps {
		if e.RouterID != rt.ID {
			continue
		}
		v.Exporters = append(v.Exporters, exporterView(e))
		v.LostFlows += e.LostFlows
		v.Templates += e.Templates
		pending += e.PendingNoTmpl
		if e.LastSeen.After(last) {
			last = e.LastSeen
		}
	}
	v.LastFlow = timePtr(last)
	secs := rateWindow.Seconds()
	if tot.Seconds > 0 {
		secs = tot.Seconds
	}
	v.FlowsPerSec = float64(tot.Flows) / secs
	v.BitsInPerSec = float64(tot.BytesIn) * 8 / secs
	v.BitsOutPerSec = float64(tot.BytesOut) * 8 / secs
	switch {
	case v.Templates > 0:
		v.TemplateState = "received"
	case pending > 0:
		v.TemplateState = "waiting"
	case len(v.Exporters) > 0:
		v.TemplateState = "none"
	default:
		v.TemplateState = "unknown"
	}
	switch {
	case rt.State == store.StateError:
		v.Status = StatusError
	case last.IsZero():
		v.Status = StatusNeverSeen
	case now.Sub(last) <= s.cfg.StaleAfter:
		v.Status = StatusOnline
	default:
		v.Status = StatusStale
	}
	return v
}

// fleet builds the view of every router.
func (s *Server) fleet(ctx context.Context) ([]RouterView, error) {
	routers, err := s.deps.Routers.ListRouters(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	totals, err := s.routerTotals(ctx, now)
	if err != nil {
		return nil, err
	}
	exps := s.deps.Collector.Exporters()
	out := make([]RouterView, 0, len(routers))
	for _, rt := range routers {
		tot := totals[rt.ID]
		if tot.LastFlow, _, err = s.deps.Store.LastFlowFrom(ctx, rt.ID); err != nil {
			return nil, err
		}
		out = append(out, s.routerView(rt, exps, tot, now))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// routerTotals sums each router's flows and bytes in and out over the
// last rateWindow, from the per-router totals rollups (three top-N queries
// by router: all traffic, in (downloads and traffic to the router), out
// (uploads and the router's own traffic out)).
func (s *Server) routerTotals(ctx context.Context, now time.Time) (map[int64]RouterTotal, error) {
	out := map[int64]RouterTotal{}
	q := store.TopQuery{From: now.Add(-rateWindow), To: now, Dimension: store.DimRouter, N: 1000}
	for i, dirs := range [][]store.Direction{nil, {store.DirDownload, store.DirRouterIn}, {store.DirUpload, store.DirRouterOut}} {
		q.Filter = store.Filter{Directions: dirs}
		res, err := s.deps.Store.Top(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("cannot sum router traffic: %w", err)
		}
		for _, e := range res.Entries {
			t := out[e.Source]
			t.RouterID = e.Source
			switch i {
			case 0:
				t.Flows = e.Flows
			case 1:
				t.BytesIn = e.Bytes
			case 2:
				t.BytesOut = e.Bytes
			}
			out[e.Source] = t
		}
	}
	// A router whose first flows arrived within the window, after an hour
	// without any, has rates over the minutes since then, not over the
	// whole window (its rates would climb for five minutes after it
	// starts).
	res, err := s.deps.Store.TimeSeries(ctx, store.SeriesQuery{From: q.From.Add(-time.Hour), To: now, Step: time.Minute, GroupBy: store.DimRouter})
	if err != nil {
		return nil, fmt.Errorf("cannot find the routers' first traffic: %w", err)
	}
	for _, l := range res.Lines {
		t, ok := out[l.Source]
		if !ok {
			continue
		}
		if i := slices.IndexFunc(l.Bytes, func(b uint64) bool { return b > 0 }); i >= 0 && !res.Times[i].Before(q.From) {
			t.Seconds = min(rateWindow.Seconds(), max(60, now.Sub(res.Times[i]).Seconds()))
			out[l.Source] = t
		}
	}
	return out, nil
}

// handleListRouters returns the fleet.
func (s *Server) handleListRouters(w http.ResponseWriter, r *http.Request) {
	f, err := s.fleet(r.Context())
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, f)
}

// oneRouter reads {id} and returns the router's view.
func (s *Server) oneRouter(r *http.Request) (RouterView, error) {
	id, err := pathID(r, mux.Vars(r)["id"])
	if err != nil {
		return RouterView{}, err
	}
	rt, err := s.deps.Routers.GetRouterByID(r.Context(), id)
	if err != nil {
		return RouterView{}, err
	}
	now := s.now()
	totals, err := s.routerTotals(r.Context(), now)
	if err != nil {
		return RouterView{}, err
	}
	tot := totals[id]
	if tot.LastFlow, _, err = s.deps.Store.LastFlowFrom(r.Context(), id); err != nil {
		return RouterView{}, err
	}
	return s.routerView(*rt, s.deps.Collector.Exporters(), tot, now), nil
}

// handleGetRouter returns one router.
func (s *Server) handleGetRouter(w http.ResponseWriter, r *http.Request) {
	v, err := s.oneRouter(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// maxBody bounds JSON request bodies.
const maxBody = 64 << 10

// decodeJSON reads a JSON body strictly into v.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return badf("body: Content-Type must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return badf("body: a JSON object is required")
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return badf("body: larger than %d bytes", maxBody)
		}
		return badf("body: %v", err)
	}
	if dec.More() {
		return badf("body: a single JSON object is required")
	}
	return nil
}

// validate checks an add-router request.
func (spec *RouterSpec) validate() error {
	spec.Name = strings.TrimSpace(spec.Name)
	spec.Address = strings.TrimSpace(spec.Address)
	if spec.Address == "" {
		return badf("address: required")
	}
	if _, _, err := net.SplitHostPort(spec.Address); err != nil {
		port := "8728"
		if spec.TLS {
			port = "8729"
		}
		if strings.Contains(spec.Address, ":") && !strings.HasPrefix(spec.Address, "[") && strings.Count(spec.Address, ":") == 1 {
			return badf("address: %q is not host or host:port", spec.Address)
		}
		spec.Address = net.JoinHostPort(strings.Trim(spec.Address, "[]"), port)
	}
	host, port, _ := net.SplitHostPort(spec.Address)
	if host == "" {
		return badf("address: the host is missing")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return badf("address: %q is not a TCP port", port)
	}
	if spec.Username == "" {
		return badf("username: required")
	}
	if len(spec.Name) > 64 || len(spec.Username) > 64 || len(spec.Password) > 256 {
		return badf("name, username or password: too long")
	}
	return nil
}

// routerCallTimeout bounds one provisioning call made from the console.
const routerCallTimeout = 60 * time.Second

// verifyCallTimeout bounds a verification, which waits for the router's
// first flows: longer than the provisioner's own wait (verify-timeout,
// 90 s by default), so that its diagnosis, not a timeout, is the answer.
const verifyCallTimeout = 150 * time.Second

// provisionErr reports a provisioning failure: validation and inventory
// errors keep their status, anything else is the router's fault (502). The
// router password never appears in the message.
func (s *Server) provisionErr(w http.ResponseWriter, r *http.Request, err error, password string) {
	var br badRequest
	if errors.As(err, &br) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExists) {
		s.writeErr(w, r, err)
		return
	}
	msg := firstLine(err.Error())
	if password != "" {
		msg = strings.ReplaceAll(msg, password, "<redacted>")
	}
	s.log.Warn("provisioning failed", "path", r.URL.Path, "err", msg)
	writeError(w, http.StatusBadGateway, msg)
}

// AddResult is the answer to POST /api/v1/routers.
type AddResult struct {
	Router RouterView `json:"router"`
	Plan   Plan       `json:"plan"`
}

// handleAddRouter onboards a router: connect, detect, store, and plan.
func (s *Server) handleAddRouter(w http.ResponseWriter, r *http.Request) {
	var spec RouterSpec
	if err := decodeJSON(w, r, &spec); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if err := spec.validate(); err != nil {
		s.writeErr(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), routerCallTimeout)
	defer cancel()
	rt, plan, err := s.deps.Provisioner.Add(ctx, spec)
	if errors.Is(err, store.ErrExporterConflict) {
		// Refused: the router could not be told apart from another one
		// (the message names it and says what to do).
		msg := err.Error()
		if spec.Password != "" {
			msg = strings.ReplaceAll(msg, spec.Password, "<redacted>")
		}
		writeError(w, http.StatusConflict, msg)
		return
	}
	if err != nil {
		s.provisionErr(w, r, err, spec.Password)
		return
	}
	if plan.Changes == nil {
		plan.Changes = []Change{}
	}
	writeJSON(w, http.StatusCreated, AddResult{Router: s.routerView(rt, s.deps.Collector.Exporters(), RouterTotal{}, s.now()), Plan: plan})
}

// provisionCall runs one provisioning operation on {id} within timeout.
func (s *Server) provisionCall(w http.ResponseWriter, r *http.Request, timeout time.Duration, op func(context.Context, int64) (store.ProvisionRun, error)) {
	id, err := pathID(r, mux.Vars(r)["id"])
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	run, err := op(ctx, id)
	if err != nil {
		s.provisionErr(w, r, err, "")
		return
	}
	writeJSON(w, http.StatusOK, runView(run))
}

// handleApply converges a router to the plan.
func (s *Server) handleApply(w http.ResponseWriter, r *http.Request) {
	s.provisionCall(w, r, routerCallTimeout, s.deps.Provisioner.Apply)
}

// handleVerify checks a router's settings and flows.
func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) {
	s.provisionCall(w, r, verifyCallTimeout, s.deps.Provisioner.Verify)
}

// handleUndo removes flowbox's settings from a router.
func (s *Server) handleUndo(w http.ResponseWriter, r *http.Request) {
	s.provisionCall(w, r, routerCallTimeout, s.deps.Provisioner.Undo)
}

// handlePlan returns what Apply would change.
func (s *Server) handlePlan(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, mux.Vars(r)["id"])
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), routerCallTimeout)
	defer cancel()
	plan, err := s.deps.Provisioner.Plan(ctx, id)
	if err != nil {
		s.provisionErr(w, r, err, "")
		return
	}
	if plan.Changes == nil {
		plan.Changes = []Change{}
	}
	writeJSON(w, http.StatusOK, plan)
}

// handleRemoveRouter deletes a router; ?undo=true first removes our
// settings from it.
func (s *Server) handleRemoveRouter(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, mux.Vars(r)["id"])
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	undo := false
	q, err := queryValues(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if v := q.Get("undo"); v != "" {
		if undo, err = strconv.ParseBool(v); err != nil {
			s.writeErr(w, r, badf("undo: %q is not a boolean", v))
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), routerCallTimeout)
	defer cancel()
	if err := s.deps.Provisioner.Remove(ctx, id, undo); err != nil {
		s.provisionErr(w, r, err, "")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleHistory returns a router's provisioning runs, newest first.
func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, mux.Vars(r)["id"])
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	q, err := queryValues(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	limit, err := intParam(q, "limit", 50, 1, 1000)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if _, err := s.deps.Routers.GetRouterByID(r.Context(), id); err != nil {
		s.writeErr(w, r, err)
		return
	}
	runs, err := s.deps.Routers.ProvisionRuns(r.Context(), id, limit)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := make([]RunView, 0, len(runs))
	for _, run := range runs {
		out = append(out, runView(run))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleExporters returns the collector's counters of every exporter,
// including the ones not matched to a router.
func (s *Server) handleExporters(w http.ResponseWriter, r *http.Request) {
	exps := s.deps.Collector.Exporters()
	out := make([]ExporterView, 0, len(exps))
	for _, e := range exps {
		out = append(out, exporterView(e))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Exporter < out[j].Exporter })
	writeJSON(w, http.StatusOK, out)
}
