package web

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/flowbox/flowbox/store"
)

// queryTimeout bounds one dashboard query.
const queryTimeout = 30 * time.Second

// rawScanBudget bounds a top-N or a series that scans raw flows: past
// it, the answer is what the scan read (the newest part of the range),
// marked partial, well before queryTimeout.
const rawScanBudget = 10 * time.Second

// quickScanBudget bounds the raw scan of a request with quick=1: the
// console asks a filtered view quickly first (its newest part within 2 s,
// with a note), then whole.
const quickScanBudget = 2 * time.Second

// scanBudget returns the raw scan budget of a request: quickScanBudget
// with quick=1 (or true), else rawScanBudget.
func (s *Server) scanBudget(q url.Values) (time.Duration, error) {
	v := q.Get("quick")
	if v == "" {
		return cmp.Or(s.rawBudget, rawScanBudget), nil
	}
	quick, err := strconv.ParseBool(v)
	if err != nil {
		return 0, badf("quick: %q is not a boolean", v)
	}
	if quick {
		return cmp.Or(s.quickBudget, quickScanBudget), nil
	}
	return cmp.Or(s.rawBudget, rawScanBudget), nil
}

// markPartial sets the partial answer of a series whose raw scan stopped
// at scanned (the latest of its scans).
func markPartial(out *Series, from, scanned, to time.Time) {
	if out.ScannedFrom == nil || scanned.After(*out.ScannedFrom) {
		out.Partial, out.ScannedFrom, out.Note = true, &scanned, partialNote(from, scanned, to)
	}
}

// contextWithTimeout bounds a request's work.
func contextWithTimeout(r *http.Request, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), d)
}

// rates turns per-bucket byte counts into bits per second.
func rates(bytes []uint64, step time.Duration, n int) []float64 {
	out := make([]float64, n)
	secs := step.Seconds()
	for i := 0; i < n && i < len(bytes); i++ {
		out[i] = float64(bytes[i]) * 8 / secs
	}
	return out
}

// addRates adds the bits/s of bytes per step to out.
func addRates(out []float64, bytes []uint64, step time.Duration) {
	secs := step.Seconds()
	for i := 0; i < len(out) && i < len(bytes); i++ {
		out[i] += float64(bytes[i]) * 8 / secs
	}
}

// handleTraffic returns bits/s in and out over time, or per interface
// (interfaces=true, needs router).
func (s *Server) handleTraffic(w http.ResponseWriter, r *http.Request) {
	q, f, err := s.requestFilter(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	ctx, cancel := contextWithTimeout(r, queryTimeout)
	defer cancel()
	// A router (or a fleet) newer than the range is drawn from its first
	// minute with traffic, in buckets small enough to show its first
	// minutes, instead of an empty range with the data in its last bucket.
	// (Not when the range is refused for a filter beyond the raw window:
	// the answer stays that refusal.)
	var since time.Time
	if q.Get("step") == "" && q.Get("from") == "" && s.checkRawWindow(&f, false) == nil && s.checkRawWindow(&f, true) == nil {
		var sources []int64
		if f.RouterID != 0 {
			sources = []int64{f.RouterID}
		}
		start, ok, err := s.dataStart(ctx, sources, f.From, f.To)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		if ok && start.After(f.From) {
			newer, err := s.newerThan(ctx, sources, f.From, f.To)
			if err != nil {
				s.writeErr(w, r, err)
				return
			}
			if newer {
				f.From, since = start, start
			}
		}
	}
	step, err := chooseStep(q, f)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	byIf := false
	if v := q.Get("interfaces"); v != "" {
		if byIf, err = strconv.ParseBool(v); err != nil {
			s.writeErr(w, r, badf("interfaces: %q is not a boolean", v))
			return
		}
		if byIf && f.RouterID == 0 {
			s.writeErr(w, r, badf("interfaces: needs router"))
			return
		}
	}
	// Beyond the raw window a filter the rollups rank (a protocol, a
	// country, an application, a subscriber) may still be answered from
	// them: the store tries, and its refusal is this one.
	var beyondRaw error
	if err := s.checkRawWindow(&f, byIf); err != nil {
		sf := f.storeFilter()
		if byIf || !sf.RollupKeyed() {
			s.writeErr(w, r, err)
			return
		}
		beyondRaw = err
	}
	budget, err := s.scanBudget(q)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	sq := store.SeriesQuery{From: f.From, To: f.To, Step: step, Filter: f.storeFilter(), GroupBy: store.DimDirection, Budget: budget}
	if !byIf {
		res, err := s.deps.Store.TimeSeries(ctx, sq)
		var qe *store.QueryError
		if beyondRaw != nil && errors.As(err, &qe) && qe.Field == "filter" {
			err = beyondRaw
		}
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		out := seriesHead(res)
		out.Now, out.Since = s.now().Unix(), unixOrZero(since)
		if res.Partial {
			markPartial(&out, f.From, res.ScannedFrom, f.To)
		}
		out.BitsIn, out.BitsOut = make([]float64, len(out.Times)), make([]float64, len(out.Times))
		// In and out are the router's traffic each way: its customers'
		// downloads and uploads, and its own traffic.
		for _, l := range res.Lines {
			switch l.Direction {
			case store.DirDownload, store.DirRouterIn:
				addRates(out.BitsIn, l.Bytes, res.Step)
			case store.DirUpload, store.DirRouterOut:
				addRates(out.BitsOut, l.Bytes, res.Step)
			}
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	rt, err := s.deps.Routers.GetRouterByID(ctx, f.RouterID)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	sq.GroupBy = store.DimInInterface
	in, err := s.deps.Store.TimeSeries(ctx, sq)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	sq.GroupBy = store.DimOutInterface
	outS, err := s.deps.Store.TimeSeries(ctx, sq)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := seriesHead(in)
	out.Now, out.Since = s.now().Unix(), unixOrZero(since)
	for _, res := range []*store.Series{in, outS} {
		if res.Partial {
			markPartial(&out, f.From, res.ScannedFrom, f.To)
		}
	}
	n := len(out.Times)
	out.BitsIn, out.BitsOut = make([]float64, n), make([]float64, n)
	byIdx := map[uint32]*InterfaceSeries{}
	get := func(idx uint32) *InterfaceSeries {
		if x, ok := byIdx[idx]; ok {
			return x
		}
		x := &InterfaceSeries{Index: idx, Name: interfaceName(rt.Interfaces, idx), BitsIn: make([]float64, n), BitsOut: make([]float64, n)}
		byIdx[idx] = x
		return x
	}
	for _, l := range in.Lines {
		get(l.Interface).BitsIn = rates(l.Bytes, in.Step, n)
	}
	for _, l := range outS.Lines {
		get(l.Interface).BitsOut = rates(l.Bytes, outS.Step, n)
	}
	for _, x := range byIdx {
		out.Interfaces = append(out.Interfaces, *x)
	}
	slices.SortFunc(out.Interfaces, func(a, b InterfaceSeries) int { return int(a.Index) - int(b.Index) })
	writeJSON(w, http.StatusOK, out)
}

// unixOrZero is t in unix seconds, 0 for the zero time.
func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// seriesHead copies the time axis of a store series.
func seriesHead(res *store.Series) Series {
	out := Series{Step: int64(res.Step / time.Second), Resolution: string(res.Resolution), Times: make([]int64, len(res.Times))}
	for i, t := range res.Times {
		out.Times[i] = t.Unix()
	}
	return out
}

// interfaceName names an ifIndex from the router's inventory.
func interfaceName(ifs []store.Interface, idx uint32) string {
	if idx == 0 {
		return "router"
	}
	for _, i := range ifs {
		if i.Index == idx {
			return i.Name
		}
	}
	return "if" + strconv.FormatUint(uint64(idx), 10)
}

// storeDims maps the API's top-N dimensions to the store's.
var storeDims = map[string]store.Dimension{
	DimLocal: store.DimLocalHost, DimRemote: store.DimRemoteHost, DimAS: store.DimRemoteAS,
	DimPort: store.DimApplication, DimProto: store.DimProtocol, DimCountry: store.DimCountry,
	DimConversation: store.DimConversation, DimInterface: store.DimInInterface, DimDomain: store.DimDomain,
}

// TopResult is the answer to GET /api/v1/top/{dimension}.
type TopResult struct {
	Dimension string `json:"dimension"`
	// Seconds is the time with data within the range: from the first
	// minute of traffic of the router (or of the fleet) when it is newer
	// than the range, else the whole range; rates are bytes * 8 / Seconds.
	Seconds    float64  `json:"seconds"`
	Resolution string   `json:"resolution"`
	Rows       []TopRow `json:"rows"`
	// Other sums everything not in Rows; Total everything.
	Other TopRow `json:"other"`
	Total TopRow `json:"total"`
	// Partial is true when a raw scan ran out of time: only the flows
	// since ScannedFrom were read; Note says so in a sentence.
	Partial     bool       `json:"partial,omitempty"`
	ScannedFrom *time.Time `json:"scanned_from,omitempty"`
	Note        string     `json:"note,omitempty"`
}

// partialNote says how much of a range a partial scan read.
func partialNote(from, scanned, to time.Time) string {
	return fmt.Sprintf("scanned the last %s of %s; narrow the filter or the range for a complete answer",
		humanDuration(to.Sub(scanned).Round(time.Minute)), humanDuration(to.Sub(from).Round(time.Minute)))
}

// topRow converts a store entry; Key is the click filter.
func topRow(dim string, e *store.TopEntry) TopRow {
	row := TopRow{Label: e.Label, Name: e.Name, Bytes: e.Bytes, Packets: e.Packets, Flows: e.Flows}
	switch dim {
	case DimLocal, DimRemote:
		if e.Addr.IsValid() {
			row.Key = e.Addr.String()
		}
	case DimAS:
		row.Key = strconv.FormatUint(uint64(e.AS), 10)
	case DimPort:
		// A named application filters by its name, a port by protocol
		// and port: "youtube", "tcp/443".
		row.Key = e.Name
		if e.Name == "" {
			row.Key = store.ProtoName(e.Proto) + "/" + strconv.Itoa(int(e.Port))
		}
	case DimCountry, DimDomain:
		row.Key = e.Name
		if e.Name == "" {
			row.Key = "unknown"
		}
	case DimProto:
		row.Key = strconv.Itoa(int(e.Proto))
		row.Name = store.ProtoName(e.Proto)
	case DimConversation:
		if e.Addr.IsValid() && e.Peer.IsValid() {
			row.Key = e.Addr.String() + "|" + e.Peer.String()
		}
	case DimInterface:
		row.Key = strconv.FormatUint(uint64(e.Interface), 10)
	}
	return row
}

// handleTop returns the top entries of one dimension by bytes.
func (s *Server) handleTop(w http.ResponseWriter, r *http.Request) {
	dim := mux.Vars(r)["dimension"]
	sd, ok := storeDims[dim]
	if !ok {
		s.writeErr(w, r, badf("dimension: %q is not one of %v", dim, ValidDimensions()))
		return
	}
	q, f, err := s.requestFilter(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	limit, err := intParam(q, "limit", 10, 1, 100)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if err := s.checkRawWindow(&f, dim == DimInterface); err != nil {
		s.writeErr(w, r, err)
		return
	}
	budget, err := s.scanBudget(q)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	ctx, cancel := contextWithTimeout(r, queryTimeout)
	defer cancel()
	res, err := s.deps.Store.Top(ctx, store.TopQuery{From: f.From, To: f.To, Dimension: sd, N: limit, Filter: f.storeFilter(), Budget: budget})
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	// Rates divide by the time that has data (a router added an hour ago
	// has one hour of traffic in a 24-hour range), not the whole range.
	var sources []int64
	if f.RouterID != 0 {
		sources = []int64{f.RouterID}
	}
	secs, err := s.coveredSeconds(ctx, sources, f.From, f.To)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := TopResult{Dimension: dim, Seconds: secs, Resolution: string(res.Resolution),
		Rows: make([]TopRow, 0, len(res.Entries)), Other: topRow("", &res.Other), Total: topRow("", &res.Total)}
	if res.Partial {
		// The scan read the newest part of the range only: rates over it.
		scanned := res.From
		out.Partial, out.ScannedFrom, out.Note = true, &scanned, partialNote(f.From, scanned, f.To)
		out.Seconds = min(out.Seconds, f.To.Sub(scanned).Seconds())
	}
	var rt *store.Router
	if dim == DimInterface && f.RouterID != 0 {
		rt, _ = s.deps.Routers.GetRouterByID(ctx, f.RouterID)
	}
	for i := range res.Entries {
		e := &res.Entries[i]
		row := topRow(dim, e)
		switch {
		case dim == DimLocal && e.Addr.IsValid():
			if sub, err := s.deps.Store.SubscriberAt(ctx, e.Addr, f.To); err == nil {
				row.Name = sub.Name
			} else if s.deps.Names != nil {
				if rt := s.deps.Names.RouterOf(e.Addr); rt != "" {
					row.Name, row.Router = rt, true
				}
			}
		case dim == DimRemote && e.Addr.IsValid():
			if s.deps.Names != nil {
				if rt := s.deps.Names.RouterOf(e.Addr); rt != "" {
					row.Name, row.Router = rt, true
					break
				}
			}
			if s.deps.Domains != nil {
				row.Name, row.Reverse = s.deps.Domains.RemoteName(e.Addr, f.From, f.To, "")
			}
		case dim == DimInterface && rt != nil:
			row.Name = interfaceName(rt.Interfaces, e.Interface)
		case dim == DimAS:
			row.Name = s.asName(e.AS)
		}
		out.Rows = append(out.Rows, row)
	}
	writeJSON(w, http.StatusOK, out)
}

// asNameUnknown names AS 0: private, CGNAT or unrouted addresses, or
// addresses the ASN data does not cover.
const asNameUnknown = "private or unknown"

// asName names an AS from the offline ASN data; "" when it is not known
// (or no data is loaded).
func (s *Server) asName(asn uint32) string {
	if asn == 0 {
		return asNameUnknown
	}
	if s.deps.Names == nil {
		return ""
	}
	return s.deps.Names.ASName(asn)
}

// FlowView is one raw flow as the API shows it. Bytes and packets are
// scaled by the sampling rate.
type FlowView struct {
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	RouterID    int64     `json:"router_id"`
	Exporter    string    `json:"exporter"`
	Src         string    `json:"src"`
	Dst         string    `json:"dst"`
	SrcPort     uint16    `json:"src_port"`
	DstPort     uint16    `json:"dst_port"`
	Proto       string    `json:"proto"`
	Bytes       uint64    `json:"bytes"`
	Packets     uint64    `json:"packets"`
	InIf        uint32    `json:"in_if"`
	OutIf       uint32    `json:"out_if"`
	SrcAS       uint32    `json:"src_as"`
	DstAS       uint32    `json:"dst_as"`
	SrcASName   string    `json:"src_as_name,omitempty"`
	DstASName   string    `json:"dst_as_name,omitempty"`
	Direction   string    `json:"direction"`
	Subscriber  string    `json:"subscriber,omitempty"`
	Application string    `json:"application,omitempty"`
	SrcCountry  string    `json:"src_country,omitempty"`
	DstCountry  string    `json:"dst_country,omitempty"`
	// Domain is the remote side's registrable domain (from the routers'
	// DNS caches); RemoteName the remote address's full name then,
	// RemoteNameReverse true when it came from reverse DNS.
	Domain            string `json:"domain,omitempty"`
	RemoteName        string `json:"remote_name,omitempty"`
	RemoteNameReverse bool   `json:"remote_name_reverse,omitempty"`
	// PostNATDst (and its port) is the destination after the router's
	// NAT, when the flow carries it: for a download, the customer's inside
	// address (Dst is then the router's public address).
	PostNATDst     string `json:"post_nat_dst,omitempty"`
	PostNATDstPort uint16 `json:"post_nat_dst_port,omitempty"`
}

// namedFlowView is flowView with the names the console knows: the
// ASes', and the remote address's during the flow.
func (s *Server) namedFlowView(f *store.Flow) FlowView {
	v := flowView(f)
	if v.SrcAS != 0 {
		v.SrcASName = s.asName(v.SrcAS)
	}
	if v.DstAS != 0 {
		v.DstASName = s.asName(v.DstAS)
	}
	if s.deps.Domains == nil || f.Direction == store.DirInternal {
		return v
	}
	if _, remote := f.LocalRemote(); remote.IsValid() {
		v.RemoteName, v.RemoteNameReverse = s.deps.Domains.RemoteName(remote.Unmap(), time.UnixMilli(cmp.Or(f.Start, f.End)), time.UnixMilli(f.End), f.RemoteDomain)
	}
	return v
}

func flowView(f *store.Flow) FlowView {
	v := FlowView{
		Start: time.UnixMilli(f.Start).UTC(), End: time.UnixMilli(f.End).UTC(), RouterID: f.RouterID,
		SrcPort: f.SrcPort, DstPort: f.DstPort, Proto: store.ProtoName(f.Proto),
		Bytes: f.Scale(f.Bytes), Packets: f.Scale(f.Packets), InIf: f.InIf, OutIf: f.OutIf,
		SrcAS: f.SrcAS, DstAS: f.DstAS, Direction: f.Direction.String(), Subscriber: f.Subscriber,
		Application: f.Application, SrcCountry: f.SrcCountry, DstCountry: f.DstCountry, Domain: f.RemoteDomain,
	}
	if f.Exporter.IsValid() {
		v.Exporter = f.Exporter.Addr().String()
	}
	if f.SrcAddr.IsValid() {
		v.Src = f.SrcAddr.String()
	}
	if f.DstAddr.IsValid() {
		v.Dst = f.DstAddr.String()
	}
	if a := f.PostNATDstAddr; a.IsValid() && !a.IsUnspecified() && a != f.DstAddr {
		v.PostNATDst, v.PostNATDstPort = a.String(), f.PostNATDstPort
	}
	return v
}

// FlowsResult is one page of a flow search. Next is the cursor of the next
// page, "" on the last one.
type FlowsResult struct {
	Flows []FlowView `json:"flows"`
	Next  string     `json:"next"`
}

// handleFlows searches raw flows, newest first, one page at a time.
func (s *Server) handleFlows(w http.ResponseWriter, r *http.Request) {
	q, f, err := s.requestFilter(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	limit, err := intParam(q, "limit", 100, 1, 1000)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if err := s.checkFlowWindow(&f); err != nil {
		s.writeErr(w, r, err)
		return
	}
	cursor := q.Get("cursor")
	if len(cursor) > 128 {
		s.writeErr(w, r, badf("cursor: too long"))
		return
	}
	ctx, cancel := contextWithTimeout(r, queryTimeout)
	defer cancel()
	page, err := s.deps.Store.SearchFlows(ctx, store.SearchQuery{From: f.From, To: f.To, Filter: f.storeFilter(), Limit: limit, Cursor: cursor})
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	res := FlowsResult{Flows: make([]FlowView, 0, len(page.Flows)), Next: page.Next}
	for i := range page.Flows {
		res.Flows = append(res.Flows, s.namedFlowView(&page.Flows[i]))
	}
	writeJSON(w, http.StatusOK, res)
}

// csvWriter sends the CSV headers on the first write, so that a query the
// store refuses before writing can still be answered with a JSON error.
type csvWriter struct {
	w       http.ResponseWriter
	name    string
	started bool
	rc      *http.ResponseController
	n       int
	timeout time.Duration // the write deadline each chunk gets
}

func (c *csvWriter) Write(b []byte) (int, error) {
	if !c.started {
		// A long export runs on while it makes progress: each chunk
		// gets the response timeout anew (withDeadlines set the first).
		_ = c.rc.SetWriteDeadline(time.Now().Add(c.timeout))
		c.started = true
		h := c.w.Header()
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", `attachment; filename="`+c.name+`"`)
		h.Set("Cache-Control", "no-store")
		c.w.WriteHeader(http.StatusOK)
	}
	n, err := c.w.Write(b)
	c.n += n
	if c.n >= 256<<10 {
		c.n = 0
		_ = c.rc.Flush()
		_ = c.rc.SetWriteDeadline(time.Now().Add(c.timeout))
	}
	return n, err
}

// handleFlowsCSV streams every flow of the search as CSV, without paging
// and without holding the result in memory. Counters are raw (not scaled),
// with the sampling rate in its own column.
func (s *Server) handleFlowsCSV(w http.ResponseWriter, r *http.Request) {
	_, f, err := s.requestFilter(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if err := s.checkFlowWindow(&f); err != nil {
		s.writeErr(w, r, err)
		return
	}
	cw := &csvWriter{w: w, rc: http.NewResponseController(w), timeout: s.cfg.ResponseTimeout, name: "flows-" + f.From.UTC().Format("20060102T1504") + ".csv"}
	err = s.deps.Store.ExportCSV(r.Context(), store.SearchQuery{From: f.From, To: f.To, Filter: f.storeFilter()}, cw)
	if err == nil {
		if !cw.started {
			_, _ = cw.Write(nil)
		}
		return
	}
	if !cw.started {
		s.writeErr(w, r, err)
		return
	}
	if r.Context().Err() == nil {
		// The status is sent already: end the CSV with a marker line so
		// that a truncated export is not mistaken for a complete one.
		id := incidentID()
		s.log.Error("flow export failed", "incident", id, "err", err)
		_, _ = w.Write([]byte("# export failed (incident " + id + " in the server log)\n"))
	}
}

// requestFilter parses the query string of a flow query and its filter.
func (s *Server) requestFilter(r *http.Request) (url.Values, Filter, error) {
	q, err := queryValues(r)
	if err != nil {
		return nil, Filter{}, err
	}
	f, err := parseFilter(q, s.now())
	if err != nil {
		return nil, Filter{}, err
	}
	return q, f, nil
}
