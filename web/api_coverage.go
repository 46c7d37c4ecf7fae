package web

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/flowbox/flowbox/store"
)

// CoverageReporter compares the routers' flows with their interface
// counters (cmd/flowbox composes it from the coverage package and the
// store).
type CoverageReporter interface {
	// Coverage reports per router and interface over q.
	Coverage(ctx context.Context, q store.CoverageQuery) (*store.CoverageReport, error)
	// CounterSeries returns a router's counter bytes (rx, tx) per bucket
	// start (unix seconds) over [from, to), of interface ifx (0: all);
	// hourly says the buckets are hours.
	CounterSeries(ctx context.Context, routerID int64, ifx uint32, from, to time.Time) (map[int64][2]uint64, bool, error)
	// DefaultWindow is the span of a report without since.
	DefaultWindow() time.Duration
}

// errCoverageDisabled is the answer of the coverage routes when the server
// has no coverage reporter.
const errCoverageDisabled = "coverage is unavailable on this server: it does not poll interface counters"

// maxCoverageSince bounds the since parameter.
const maxCoverageSince = 400 * 24 * time.Hour

// handleCoverage answers GET /api/v1/coverage: per router and interface,
// flow bytes over counter bytes per direction, with the likely cause of a
// shortfall. Parameters: router (id), since (a Go duration, default the
// configured window).
func (s *Server) handleCoverage(w http.ResponseWriter, r *http.Request) {
	if s.deps.Coverage == nil {
		writeError(w, http.StatusServiceUnavailable, errCoverageDisabled)
		return
	}
	q := r.URL.Query()
	var cq store.CoverageQuery
	if v := q.Get("router"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id < 1 {
			writeError(w, http.StatusBadRequest, "router: "+strconv.Quote(v)+" is not a router id")
			return
		}
		cq.RouterID = id
	}
	since := s.deps.Coverage.DefaultWindow()
	if v := q.Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > maxCoverageSince {
			writeError(w, http.StatusBadRequest, "since: "+strconv.Quote(v)+" is not a duration within (0, 9600h] such as 1h or 24h")
			return
		}
		since = d
	}
	now := s.now()
	cq.From, cq.To = now.Add(-since), now
	ctx, cancel := contextWithTimeout(r, queryTimeout)
	defer cancel()
	rep, err := s.deps.Coverage.Coverage(ctx, cq)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// CounterLine is the counter overlay of the traffic chart: bytes per
// second per bucket, rx and tx summed over the interfaces.
type CounterLine struct {
	Times []int64   `json:"times"`
	RxBps []float64 `json:"rx_bps"`
	TxBps []float64 `json:"tx_bps"`
	Step  int64     `json:"step"`
}

// handleCoverageCounters answers GET /api/v1/coverage/counters: a router's
// interface counters as bits per second per minute (or hour), for the
// traffic chart's counter line. Parameters: router (id, required), since.
func (s *Server) handleCoverageCounters(w http.ResponseWriter, r *http.Request) {
	if s.deps.Coverage == nil {
		writeError(w, http.StatusServiceUnavailable, errCoverageDisabled)
		return
	}
	q := r.URL.Query()
	id, err := strconv.ParseInt(q.Get("router"), 10, 64)
	if err != nil || id < 1 {
		writeError(w, http.StatusBadRequest, "router: a router id is required")
		return
	}
	since := s.deps.Coverage.DefaultWindow()
	if v := q.Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > maxCoverageSince {
			writeError(w, http.StatusBadRequest, "since: "+strconv.Quote(v)+" is not a duration within (0, 9600h] such as 1h or 24h")
			return
		}
		since = d
	}
	now := s.now()
	ctx, cancel := contextWithTimeout(r, queryTimeout)
	defer cancel()
	m, hourly, err := s.deps.Coverage.CounterSeries(ctx, id, 0, now.Add(-since), now)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	step := int64(60)
	if hourly {
		step = 3600
	}
	line := CounterLine{Times: []int64{}, RxBps: []float64{}, TxBps: []float64{}, Step: step}
	from := now.Add(-since).Unix() / step * step
	for t := from; t <= now.Unix(); t += step {
		v, ok := m[t]
		if !ok {
			continue
		}
		line.Times = append(line.Times, t)
		line.RxBps = append(line.RxBps, float64(v[0])*8/float64(step))
		line.TxBps = append(line.TxBps, float64(v[1])*8/float64(step))
	}
	writeJSON(w, http.StatusOK, line)
}
