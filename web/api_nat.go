package web

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	// The tz parameter names IANA zones: the zone data is embedded, so a
	// box without /usr/share/zoneinfo still reads "America/Sao_Paulo".
	_ "time/tzdata"

	"github.com/flowbox/flowbox/store"
)

// Bounds of the abuse lookup.
const (
	// defaultNATWindow is the tolerance around the complaint's time when
	// the query gives none: clocks and NAT timeouts differ.
	defaultNATWindow = 2 * time.Minute
	// maxNATWindow bounds the window on each side.
	maxNATWindow = time.Hour
	// maxTimeParam bounds the at and tz parameters.
	maxTimeParam = 64
)

// errNATDisabled is the answer of the lookup routes when the server has no
// NAT-mapping store.
const errNATDisabled = "the abuse lookup is unavailable on this server: it keeps no NAT mappings or subscriber history"

// NATLookupResult is the answer of GET /api/v1/nat/lookup: the lookup's
// answer (query, matches with their subscribers, message) and the raw
// flows still kept that match, rendered like the flow search's.
type NATLookupResult struct {
	store.NATAnswer
	Flows []FlowView `json:"flows"`
}

// natRequest is a parsed lookup query.
type natRequest struct {
	q store.NATQuery
	// loc is the zone of the tz parameter (nil when absent): the zone a
	// local time was read in, and the one the CSV states the time in.
	loc *time.Location
}

// natEnabled answers 503 and returns false when the server has no
// NAT-mapping store.
func (s *Server) natEnabled(w http.ResponseWriter) bool {
	if s.deps.NAT == nil {
		writeError(w, http.StatusServiceUnavailable, errNATDisabled)
		return false
	}
	return true
}

// natSlot takes a dashboard query slot for a lookup: lookups share the
// store's few readers with the dashboard's queries (New always wraps
// Deps.Store in the limiter).
func (s *Server) natSlot(ctx context.Context) (func(), error) {
	if lq, ok := s.deps.Store.(*limitedQuerier); ok {
		return lq.dashboard.acquire(ctx)
	}
	return func() {}, nil
}

// parseAt reads the complaint's time (store.ParseComplaintTime, the same
// rules as `flowbox nat lookup --at`), read in loc when it has no offset.
func parseAt(v string, loc *time.Location) (time.Time, error) {
	if len(strings.TrimSpace(v)) > maxTimeParam {
		return time.Time{}, badf("at: longer than %d characters", maxTimeParam)
	}
	t, err := store.ParseComplaintTime(v, loc, "tz")
	if err != nil {
		return time.Time{}, badf("at: %v", err)
	}
	return t, nil
}

// parseTZ reads the optional tz parameter, an IANA zone name or UTC.
func parseTZ(q url.Values) (*time.Location, error) {
	v := strings.TrimSpace(q.Get("tz"))
	if v == "" {
		return nil, nil
	}
	if len(v) > maxTimeParam || strings.HasPrefix(v, "/") || strings.Contains(v, "..") {
		return nil, badf("tz: %q is not a time zone (an IANA name such as America/Sao_Paulo, or UTC)", v)
	}
	if strings.EqualFold(v, "utc") || strings.EqualFold(v, "z") {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(v)
	if err != nil || v == "Local" {
		return nil, badf("tz: %q is not a time zone (an IANA name such as America/Sao_Paulo, or UTC)", v)
	}
	return loc, nil
}

// parseAddrParam reads a required IP address parameter.
func parseAddrParam(q url.Values, name string) (netip.Addr, error) {
	v := strings.TrimSpace(q.Get(name))
	if v == "" {
		return netip.Addr{}, badf("%s: required (an IPv4 or IPv6 address)", name)
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, badf("%s: %q is not an IP address", name, truncate(v, 64))
	}
	return a.Unmap(), nil
}

// truncate shortens s to n bytes for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// parseNATQuery reads the query of the lookup: address, port, proto, at,
// tz and window.
func parseNATQuery(r *http.Request) (natRequest, error) {
	var nr natRequest
	q, err := queryValues(r)
	if err != nil {
		return nr, err
	}
	if nr.q.Public, err = parseAddrParam(q, "address"); err != nil {
		return nr, err
	}
	if v := strings.TrimSpace(q.Get("port")); v != "" {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || n < 1 {
			return nr, badf("port: %q is not a port number (1-65535)", truncate(v, 32))
		}
		nr.q.Port = uint16(n)
	}
	if v := strings.TrimSpace(q.Get("proto")); v != "" {
		p, ok := store.ParseProto(v)
		if !ok || p == 0 {
			return nr, badf("proto: %q is not a protocol (tcp, udp or a number 1-255)", truncate(v, 32))
		}
		nr.q.Proto = p
	}
	if nr.loc, err = parseTZ(q); err != nil {
		return nr, err
	}
	if nr.q.At, err = parseAt(q.Get("at"), nr.loc); err != nil {
		return nr, err
	}
	nr.q.Window = defaultNATWindow
	if v := strings.TrimSpace(q.Get("window")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > maxNATWindow {
			return nr, badf("window: %q is not a duration from 1s to %s (such as 2m)", truncate(v, 32), humanDuration(maxNATWindow))
		}
		nr.q.Window = d
	}
	return nr, nil
}

// lookupNAT runs a parsed lookup and completes the answer: the query as
// the server read it, times in UTC, empty lists rather than null, and a
// sentence when the lookup gave none.
func (s *Server) lookupNAT(ctx context.Context, nr natRequest) (*store.NATAnswer, error) {
	release, err := s.natSlot(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	ans, err := s.deps.NAT.LookupNAT(ctx, nr.q)
	if err != nil {
		return nil, fmt.Errorf("cannot look up %s: %w", nr.q.Public, err)
	}
	if ans == nil {
		ans = &store.NATAnswer{}
	}
	ans.Query.Address = nr.q.Public.String()
	ans.Query.Port = nr.q.Port
	ans.Query.Proto = ""
	if nr.q.Proto != 0 {
		ans.Query.Proto = store.ProtoName(nr.q.Proto)
	}
	ans.Query.At = nr.q.At.UTC()
	ans.Query.Window = nr.q.Window.String()
	if ans.Matches == nil {
		ans.Matches = []store.NATMapping{}
	}
	for i := range ans.Matches {
		m := &ans.Matches[i]
		m.FirstSeen, m.LastSeen = m.FirstSeen.UTC(), m.LastSeen.UTC()
		if m.ProtoName == "" && m.Proto != 0 {
			m.ProtoName = store.ProtoName(m.Proto)
		}
	}
	if ans.Message == "" {
		ans.Message = natSentence(nr.q, ans.Matches)
	}
	return ans, nil
}

// natSentence says what a lookup found when the lookup itself did not.
func natSentence(q store.NATQuery, matches []store.NATMapping) string {
	what := q.Public.String()
	if q.Port != 0 {
		what += " port " + strconv.Itoa(int(q.Port))
	}
	if q.Proto != 0 {
		what += "/" + store.ProtoName(q.Proto)
	}
	at := q.At.UTC().Format("2006-01-02 15:04:05") + " UTC"
	switch len(matches) {
	case 0:
		return fmt.Sprintf("No NAT mapping of %s within ±%s of %s.", what, q.Window, at)
	case 1:
		m := matches[0]
		who := m.Subscriber
		if who == "" {
			who = "an unknown subscriber"
		}
		return fmt.Sprintf("%s at %s was %s port %d on %s, used by %s.", what, at, m.InsideAddr, m.InsidePort, m.Router, who)
	}
	return fmt.Sprintf("%d NAT mappings of %s within ±%s of %s.", len(matches), what, q.Window, at)
}

// handleNATLookup answers an abuse lookup: which inside address and port
// used a public address and port around a time, who the subscriber was,
// and the raw flows still kept.
func (s *Server) handleNATLookup(w http.ResponseWriter, r *http.Request) {
	_, ans := s.natAnswerFor(w, r)
	if ans == nil {
		return
	}
	res := NATLookupResult{NATAnswer: *ans, Flows: make([]FlowView, 0, len(ans.Flows))}
	res.NATAnswer.Flows = nil
	for i := range ans.Flows {
		res.Flows = append(res.Flows, s.namedFlowView(&ans.Flows[i]))
	}
	writeJSON(w, http.StatusOK, res)
}

// natAnswerFor runs the abuse lookup a request asks for and returns it
// with the parsed request; on failure it writes the error and the answer
// is nil.
func (s *Server) natAnswerFor(w http.ResponseWriter, r *http.Request) (natRequest, *store.NATAnswer) {
	if !s.natEnabled(w) {
		return natRequest{}, nil
	}
	nr, err := parseNATQuery(r)
	if err != nil {
		s.writeErr(w, r, err)
		return nr, nil
	}
	ctx, cancel := contextWithTimeout(r, queryTimeout)
	defer cancel()
	ans, err := s.lookupNAT(ctx, nr)
	if err != nil {
		s.writeErr(w, r, err)
		return nr, nil
	}
	return nr, ans
}

// natCSVHeader is the column row of GET /api/v1/nat/lookup.csv.
var natCSVHeader = []string{"router", "proto", "public_address", "public_port", "inside_address", "inside_port",
	"remote_address", "remote_port", "first_seen", "last_seen", "subscriber", "customer_id"}

// natCSVRecord is one match as a CSV row (times in UTC RFC 3339).
func natCSVRecord(m *store.NATMapping) []string {
	port := func(p uint16) string {
		if p == 0 {
			return ""
		}
		return strconv.Itoa(int(p))
	}
	addr := func(a netip.Addr) string {
		if !a.IsValid() {
			return ""
		}
		return a.String()
	}
	return []string{store.CSVText(m.Router), m.ProtoName, addr(m.PublicAddr), port(m.PublicPort), addr(m.InsideAddr), port(m.InsidePort),
		addr(m.RemoteAddr), port(m.RemotePort), m.FirstSeen.UTC().Format(time.RFC3339), m.LastSeen.UTC().Format(time.RFC3339),
		store.CSVText(m.Subscriber), store.CSVText(m.CustomerID)}
}

// commentLine makes s one line of a CSV comment.
func commentLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

// natCSVFilename names the CSV file of a lookup: address, port and time.
func natCSVFilename(q store.NATQuery) string {
	name := "abuse-" + strings.ReplaceAll(q.Public.String(), ":", "-")
	if q.Port != 0 {
		name += "-" + strconv.Itoa(int(q.Port))
	}
	return name + "-" + q.At.UTC().Format("20060102T150405Z") + ".csv"
}

// handleNATLookupCSV answers the lookup as CSV for the reply to the abuse
// desk: comment lines (#) stating the query, the answer and when it was
// made, then a header row and one row per match.
func (s *Server) handleNATLookupCSV(w http.ResponseWriter, r *http.Request) {
	nr, ans := s.natAnswerFor(w, r)
	if ans == nil {
		return
	}
	var b strings.Builder
	b.WriteString("# flowbox abuse lookup\n")
	query := "address=" + ans.Query.Address
	if ans.Query.Port != 0 {
		query += " port=" + strconv.Itoa(int(ans.Query.Port))
	}
	if ans.Query.Proto != "" {
		query += " proto=" + ans.Query.Proto
	}
	query += " at=" + ans.Query.At.Format(time.RFC3339)
	if nr.loc != nil && nr.loc != time.UTC {
		query += " (" + nr.q.At.In(nr.loc).Format(time.RFC3339) + " " + nr.loc.String() + ")"
	}
	query += " window=±" + ans.Query.Window
	fmt.Fprintf(&b, "# query: %s\n", commentLine(query))
	fmt.Fprintf(&b, "# answer: %s\n", commentLine(ans.Message))
	fmt.Fprintf(&b, "# matches: %d; generated %s by %s\n", len(ans.Matches), s.now().UTC().Format(time.RFC3339), commentLine(userOf(r)))
	cw := csv.NewWriter(&b)
	_ = cw.Write(natCSVHeader) // a strings.Builder does not fail
	for i := range ans.Matches {
		_ = cw.Write(natCSVRecord(&ans.Matches[i]))
	}
	cw.Flush()
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="`+natCSVFilename(nr.q)+`"`)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(b.String()))
}

// handleAddressHolder answers "who had this address?" at a time, from the
// subscriber history: 200 with found=false and why when nobody had it.
func (s *Server) handleAddressHolder(w http.ResponseWriter, r *http.Request) {
	if !s.natEnabled(w) {
		return
	}
	q, err := queryValues(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	addr, err := parseAddrParam(q, "address")
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	loc, err := parseTZ(q)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	at, err := parseAt(q.Get("at"), loc)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	ctx, cancel := contextWithTimeout(r, queryTimeout)
	defer cancel()
	release, err := s.natSlot(ctx)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	h, err := s.deps.NAT.AddressHolder(ctx, addr, at)
	release()
	switch {
	case errors.Is(err, store.ErrNotFound):
		h, err = nil, nil
	case err != nil:
		s.writeErr(w, r, fmt.Errorf("cannot look up who had %s: %w", addr, err))
		return
	}
	if h == nil {
		h = &store.AddressHolder{}
	}
	h.Address, h.At = addr.String(), at.UTC()
	if h.Message == "" {
		when := at.UTC().Format("2006-01-02 15:04:05") + " UTC"
		if h.Found {
			h.Message = fmt.Sprintf("%s had %s at %s.", h.Subscriber, addr, when)
		} else {
			h.Message = fmt.Sprintf("Nobody had %s at %s in the subscriber history.", addr, when)
		}
	}
	writeJSON(w, http.StatusOK, h)
}
