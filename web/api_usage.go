package web

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Bounds of the subscriber usage API.
const (
	// usagePageMax is the largest page of GET /subscribers/usage.
	usagePageMax = 1000
	// usageCSVPage is the page size the CSV export reads the store with.
	usageCSVPage = 10000
	// usageCSVMax caps the rows of one CSV export.
	usageCSVMax = 1_000_000
	// maxUsageRouters bounds the router= list.
	maxUsageRouters = 64
	// maxSubscriberName bounds the subscriber= and search= parameters
	// (the store refuses longer searches too).
	maxSubscriberName = 200
)

// UsageRow is one subscriber's traffic on one router over the period.
// Bytes and packets are scaled by the sampling rate.
type UsageRow struct {
	RouterID int64 `json:"router_id"`
	// Router is the router's name, or "router N (removed)" or "exporter
	// N" (flows of an exporter matched to no router): store.SourceName.
	Router          string `json:"router"`
	Subscriber      string `json:"subscriber"`
	DownloadBytes   uint64 `json:"download_bytes"`
	UploadBytes     uint64 `json:"upload_bytes"`
	DownloadPackets uint64 `json:"download_packets"`
	UploadPackets   uint64 `json:"upload_packets"`
	Flows           uint64 `json:"flows"`
	// LastSeen is the end of the last hour (or UTC day) with traffic, and
	// never after the answer's time (the hour under way ends later).
	LastSeen *time.Time `json:"last_seen,omitempty"`
}

// UsageTotal sums every row matching a usage query, not only one page.
type UsageTotal struct {
	DownloadBytes   uint64 `json:"download_bytes"`
	UploadBytes     uint64 `json:"upload_bytes"`
	DownloadPackets uint64 `json:"download_packets"`
	UploadPackets   uint64 `json:"upload_packets"`
	Flows           uint64 `json:"flows"`
}

// UsageResult is the answer to GET /api/v1/subscribers/usage. From and To
// are the period actually read (the query's, widened to hours or UTC
// days, as Resolution says); Count is the number of matching rows.
type UsageResult struct {
	From       time.Time  `json:"from"`
	To         time.Time  `json:"to"`
	Resolution string     `json:"resolution"`
	Count      int        `json:"count"`
	Total      UsageTotal `json:"total"`
	Rows       []UsageRow `json:"rows"`
}

// UsageSeries is the answer to GET /api/v1/subscribers/usage/series: one
// subscriber's bytes per step. Times are the step starts (unix seconds).
type UsageSeries struct {
	Subscriber    string   `json:"subscriber"`
	Resolution    string   `json:"resolution"`
	Step          int64    `json:"step"`
	Times         []int64  `json:"times"`
	DownloadBytes []uint64 `json:"download_bytes"`
	UploadBytes   []uint64 `json:"upload_bytes"`
}

// usageRange reads range= or from=/to= exactly as the flow queries do.
func (s *Server) usageRange(q url.Values) (from, to time.Time, err error) {
	rq := url.Values{}
	for _, k := range []string{"range", "from", "to"} {
		if v, ok := q[k]; ok {
			rq[k] = v
		}
	}
	f, err := parseFilter(rq, s.now())
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	return f.From, f.To, nil
}

// usageSources reads router=: ids, repeated or comma-separated; a negative
// -N is the unknown exporter N (as the rows' router_id says).
func usageSources(q url.Values) ([]int64, error) {
	var out []int64
	for _, v := range q["router"] {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			id, err := strconv.ParseInt(p, 10, 64)
			if err != nil || id == 0 {
				return nil, badf("router: %q is not a router id", p)
			}
			if len(out) == maxUsageRouters {
				return nil, badf("router: at most %d routers", maxUsageRouters)
			}
			out = append(out, id)
		}
	}
	return out, nil
}

// usageQuery parses the parameters of the usage list and its CSV export
// (without limit and offset).
func (s *Server) usageQuery(r *http.Request) (url.Values, store.UsageQuery, error) {
	q, err := queryValues(r)
	if err != nil {
		return nil, store.UsageQuery{}, err
	}
	var uq store.UsageQuery
	if uq.From, uq.To, err = s.usageRange(q); err != nil {
		return nil, uq, err
	}
	if uq.Sources, err = usageSources(q); err != nil {
		return nil, uq, err
	}
	uq.Search = strings.TrimSpace(q.Get("search"))
	if len(uq.Search) > maxSubscriberName {
		return nil, uq, badf("search: longer than %d characters", maxSubscriberName)
	}
	uq.Sort = q.Get("sort")
	switch uq.Sort {
	case "", store.UsageByTotal, store.UsageByDownload, store.UsageByUpload, store.UsageByName:
	default:
		return nil, uq, badf("sort: %q is not one of total, download, upload, name", uq.Sort)
	}
	return q, uq, nil
}

// routerNames maps router ids to names, for the rows.
func (s *Server) routerNames(ctx context.Context) (map[int64]string, error) {
	rs, err := s.deps.Routers.ListRouters(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot list routers: %w", err)
	}
	out := make(map[int64]string, len(rs))
	for _, rt := range rs {
		out[rt.ID] = rt.Name
	}
	return out, nil
}

// usageRow is the API's view of a usage row at time now.
func usageRow(names map[int64]string, u *store.SubscriberUsage, now time.Time) UsageRow {
	last := u.LastSeen
	if last.After(now) {
		last = now
	}
	return UsageRow{RouterID: u.Source, Router: store.SourceName(names, u.Source), Subscriber: u.Subscriber,
		DownloadBytes: u.DownloadBytes, UploadBytes: u.UploadBytes, DownloadPackets: u.DownloadPackets,
		UploadPackets: u.UploadPackets, Flows: u.Flows, LastSeen: timePtr(last)}
}

// handleSubscriberUsage returns the traffic of each subscriber per router
// over a period, sorted and paged, with the count and totals of every
// matching row.
func (s *Server) handleSubscriberUsage(w http.ResponseWriter, r *http.Request) {
	q, uq, err := s.usageQuery(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if uq.Limit, err = intParam(q, "limit", 100, 1, usagePageMax); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if uq.Offset, err = intParam(q, "offset", 0, 0, usageCSVMax); err != nil {
		s.writeErr(w, r, err)
		return
	}
	ctx, cancel := contextWithTimeout(r, queryTimeout)
	defer cancel()
	res, err := s.deps.Store.SubscriberUsage(ctx, uq)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	names, err := s.routerNames(ctx)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := UsageResult{From: res.From.UTC(), To: res.To.UTC(), Resolution: string(res.Resolution), Count: res.Count,
		Total: UsageTotal{DownloadBytes: res.Total.DownloadBytes, UploadBytes: res.Total.UploadBytes,
			DownloadPackets: res.Total.DownloadPackets, UploadPackets: res.Total.UploadPackets, Flows: res.Total.Flows},
		Rows: make([]UsageRow, 0, len(res.Rows))}
	for i := range res.Rows {
		out.Rows = append(out.Rows, usageRow(names, &res.Rows[i], s.now()))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleSubscriberUsageCSV streams every row of a usage query as CSV
// (at most usageCSVMax rows), reading the store a page at a time. The
// period actually read is in the file name and in the from and to
// columns.
func (s *Server) handleSubscriberUsageCSV(w http.ResponseWriter, r *http.Request) {
	_, uq, err := s.usageQuery(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	ctx := r.Context()
	uq.Limit = usageCSVPage
	// The first page is read before anything is sent, so that a refused
	// query is still a JSON error.
	first, err := s.deps.Store.SubscriberUsage(ctx, uq)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	names, err := s.routerNames(ctx)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	period := first.From.UTC().Format("20060102T1504Z") + "-" + first.To.UTC().Format("20060102T1504Z")
	cw := &csvWriter{w: w, rc: http.NewResponseController(w), timeout: s.cfg.ResponseTimeout, name: "subscriber-usage-" + period + ".csv"}
	out := csv.NewWriter(cw)
	_ = out.Write(store.UsageCSVHeader)
	res, written := first, 0
	for {
		for i := range res.Rows {
			if written == usageCSVMax {
				break
			}
			_ = out.Write(store.UsageCSVRecord(&res.Rows[i], names, first.From, first.To))
			written++
		}
		if out.Flush(); out.Error() != nil {
			return // the client went away
		}
		if len(res.Rows) < uq.Limit || written >= usageCSVMax {
			break
		}
		uq.Offset += len(res.Rows)
		if res, err = s.deps.Store.SubscriberUsage(ctx, uq); err != nil {
			if ctx.Err() == nil {
				id := incidentID()
				s.log.Error("usage export failed", "incident", id, "err", err)
				_, _ = cw.Write([]byte("# export failed (incident " + id + " in the server log)\n"))
			}
			return
		}
	}
	if written == usageCSVMax && first.Count > usageCSVMax {
		_, _ = cw.Write([]byte(fmt.Sprintf("# truncated: %d of %d rows; narrow the query\n", usageCSVMax, first.Count)))
	}
}

// parseUsageStep reads step=: 1h, 1d (or 24h), or empty for the store's
// choice.
func parseUsageStep(v string) (time.Duration, error) {
	switch v {
	case "":
		return 0, nil
	case "1h":
		return time.Hour, nil
	case "1d", "24h":
		return 24 * time.Hour, nil
	}
	return 0, badf("step: %q is not 1h or 1d", v)
}

// handleSubscriberUsageSeries returns one subscriber's download and upload
// bytes per hour or per day.
func (s *Server) handleSubscriberUsageSeries(w http.ResponseWriter, r *http.Request) {
	q, err := queryValues(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	var sq store.UsageSeriesQuery
	if sq.From, sq.To, err = s.usageRange(q); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if sq.Sources, err = usageSources(q); err != nil {
		s.writeErr(w, r, err)
		return
	}
	sq.Subscriber = q.Get("subscriber")
	switch {
	case sq.Subscriber == "":
		s.writeErr(w, r, badf("subscriber: required"))
		return
	case len(sq.Subscriber) > maxSubscriberName:
		s.writeErr(w, r, badf("subscriber: longer than %d characters", maxSubscriberName))
		return
	}
	if sq.Step, err = parseUsageStep(q.Get("step")); err != nil {
		s.writeErr(w, r, err)
		return
	}
	ctx, cancel := contextWithTimeout(r, queryTimeout)
	defer cancel()
	res, err := s.deps.Store.SubscriberUsageSeries(ctx, sq)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := UsageSeries{Subscriber: sq.Subscriber, Resolution: string(res.Resolution), Step: int64(res.Step / time.Second),
		Times: res.Times, DownloadBytes: res.DownloadBytes, UploadBytes: res.UploadBytes}
	if out.Times == nil {
		out.Times, out.DownloadBytes, out.UploadBytes = []int64{}, []uint64{}, []uint64{}
	}
	writeJSON(w, http.StatusOK, out)
}
