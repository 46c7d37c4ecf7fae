package store

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Report kinds: what one row of a traffic report is about.
const (
	// ReportBySubscriber is a row per subscriber and router: download is
	// to the subscriber, upload from it.
	ReportBySubscriber = "subscriber"
	// ReportByRouter is a row per router: download and upload are the
	// router's download and upload flows (to and from its customers).
	ReportByRouter = "router"
	// ReportByInterface is a row per router interface: download is what
	// the router received on it (in), upload what it sent (out).
	ReportByInterface = "interface"
	// ReportByFleet is one row for every router together.
	ReportByFleet = "fleet"
)

// DefaultPercentile is the billing percentile of reports.
const DefaultPercentile = 95

// ReportRequest asks for a traffic report: totals, peaks and percentiles
// of 5-minute rates per Kind over a period.
type ReportRequest struct {
	// From and To bound the period [From, To); both must fall on 5-minute
	// boundaries (every time zone's midnight does).
	From, To time.Time
	// Location is the time zone the period and the split are calendar
	// periods of; nil means UTC.
	Location *time.Location
	// Label names the period ("2026-11", "2026-11-15..2026-12-14").
	Label string
	// Kind is one of the ReportBy* kinds; empty means subscriber.
	Kind string
	// Percentile is in (0, 100]; 0 means DefaultPercentile.
	Percentile float64
	// Split is "month" for one row per entity and calendar month (in
	// Location), "none" for one row over the whole period; empty means
	// month when the period covers more than one calendar month.
	Split string
	// Sources keeps the rows of these router ids; empty keeps all.
	Sources []int64
	// Search keeps the subscribers (or interfaces) whose name contains it,
	// ignoring case.
	Search string
	// TopApps is how many applications each row lists (0: none, at most
	// 10).
	TopApps int
}

// Rate is a rate in bits per second at a time (the start of its 5-minute
// sample).
type Rate struct {
	BPS float64   `json:"bps"`
	At  time.Time `json:"at,omitzero"`
}

// AppShare is an application's bytes in a report row.
type AppShare struct {
	App   string `json:"app"`
	Bytes uint64 `json:"bytes"`
}

// ReportRow is one entity over one period of a report.
type ReportRow struct {
	// Period is the row's calendar period label ("2026-11") and its
	// bounds.
	Period   string    `json:"period"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	RouterID int64     `json:"router_id,omitempty"`
	Router   string    `json:"router,omitempty"`
	// Interface is the ifIndex and its name for ReportByInterface.
	Interface     uint32 `json:"if_index,omitempty"`
	InterfaceName string `json:"interface,omitempty"`
	Subscriber    string `json:"subscriber,omitempty"`
	CustomerID    string `json:"customer_id,omitempty"`
	DownloadBytes uint64 `json:"download_bytes"`
	UploadBytes   uint64 `json:"upload_bytes"`
	TotalBytes    uint64 `json:"total_bytes"`
	// PeakDown and PeakUp are the highest 5-minute rates and when.
	PeakDown Rate `json:"peak_download"`
	PeakUp   Rate `json:"peak_upload"`
	// PctDown and PctUp are the Percentile of the 5-minute rates of each
	// direction; PctBillable is the larger of the two (how transit is
	// billed).
	PctDown     float64 `json:"percentile_download_bps"`
	PctUp       float64 `json:"percentile_upload_bps"`
	PctBillable float64 `json:"percentile_billable_bps"`
	// Samples is how many 5-minute samples the percentiles read: the
	// period's, from the first flow flowbox stored and up to the last
	// finished 5 minutes.
	Samples int        `json:"samples"`
	TopApps []AppShare `json:"top_apps,omitempty"`
}

// Report is the answer to a ReportRequest.
type Report struct {
	Kind       string      `json:"by"`
	Label      string      `json:"period"`
	From       time.Time   `json:"from"`
	To         time.Time   `json:"to"`
	TimeZone   string      `json:"tz"`
	Percentile float64     `json:"percentile"`
	Rows       []ReportRow `json:"rows"`
	// Generated is when the report was made.
	Generated time.Time `json:"generated"`
	// Note says what the numbers cannot show (a period before the first
	// flow, after the kept samples), or is empty.
	Note string `json:"note,omitempty"`
}

// Reporter makes traffic reports (report.Builder implements it).
type Reporter interface {
	// Report makes the report q asks for.
	Report(ctx context.Context, q ReportRequest) (*Report, error)
}

// ParseReportPeriod reads a report period in loc: a calendar month
// (2026-11), a day (2026-11-05), or FROM..TO where each end is a month or
// a day and both ends are included (2026-01..2026-12 is the year 2026,
// 2026-11-15..2026-12-14 a billing cycle). An empty period is the
// previous calendar month of now. It returns [from, to) and a label.
func ParseReportPeriod(s string, loc *time.Location, now time.Time) (from, to time.Time, label string, err error) {
	if loc == nil {
		loc = time.UTC
	}
	s = strings.TrimSpace(s)
	if s == "" {
		n := now.In(loc)
		first := time.Date(n.Year(), n.Month(), 1, 0, 0, 0, 0, loc)
		from = first.AddDate(0, -1, 0)
		return from, first, from.Format("2006-01"), nil
	}
	parse := func(v string) (start, end time.Time, err error) {
		v = strings.TrimSpace(v)
		if t, err := time.ParseInLocation("2006-01", v, loc); err == nil {
			return t, t.AddDate(0, 1, 0), nil
		}
		if t, err := time.ParseInLocation("2006-01-02", v, loc); err == nil {
			return t, t.AddDate(0, 0, 1), nil
		}
		return time.Time{}, time.Time{}, fmt.Errorf("%q is not a month (YYYY-MM) or a day (YYYY-MM-DD)", v)
	}
	a, b, ok := strings.Cut(s, "..")
	from, to, err = parse(a)
	if err != nil {
		return time.Time{}, time.Time{}, "", err
	}
	if ok {
		var f2 time.Time
		if f2, to, err = parse(b); err != nil {
			return time.Time{}, time.Time{}, "", err
		}
		if f2.Before(from) {
			return time.Time{}, time.Time{}, "", fmt.Errorf("the period ends (%s) before it starts (%s)", strings.TrimSpace(b), strings.TrimSpace(a))
		}
		label = strings.TrimSpace(a) + ".." + strings.TrimSpace(b)
	} else {
		label = s
	}
	if to.Sub(from) > 400*24*time.Hour {
		return time.Time{}, time.Time{}, "", fmt.Errorf("the period %s is longer than 400 days", label)
	}
	return from, to, label, nil
}

// ReportCSVHeader returns the CSV header of a report of kind.
func ReportCSVHeader(kind string) []string {
	down, up := "download", "upload"
	if kind == ReportByInterface {
		down, up = "in", "out"
	}
	h := []string{"period", "from", "to"}
	switch kind {
	case ReportBySubscriber:
		h = append(h, "router_id", "router", "subscriber", "customer_id")
	case ReportByRouter:
		h = append(h, "router_id", "router")
	case ReportByInterface:
		h = append(h, "router_id", "router", "if_index", "interface")
	}
	return append(h, down+"_bytes", up+"_bytes", "total_bytes",
		"peak_"+down+"_bps", "peak_"+down+"_at", "peak_"+up+"_bps", "peak_"+up+"_at",
		"percentile", "percentile_"+down+"_bps", "percentile_"+up+"_bps", "percentile_billable_bps",
		"samples", "top_apps")
}

// WriteReportCSV writes r as CSV: ReportCSVHeader, then a record per row
// (times in UTC RFC 3339, rates in bits per second, top applications as
// "app=bytes" separated by semicolons). Text cells go through CSVText.
func WriteReportCSV(w io.Writer, r *Report) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(ReportCSVHeader(r.Kind)); err != nil {
		return fmt.Errorf("cannot write report: %w", err)
	}
	u64 := func(v uint64) string { return strconv.FormatUint(v, 10) }
	bps := func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
	at := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	pct := strconv.FormatFloat(r.Percentile, 'f', -1, 64)
	for i := range r.Rows {
		x := &r.Rows[i]
		rec := []string{x.Period, at(x.From), at(x.To)}
		switch r.Kind {
		case ReportBySubscriber:
			rec = append(rec, strconv.FormatInt(x.RouterID, 10), CSVText(x.Router), CSVText(x.Subscriber), CSVText(x.CustomerID))
		case ReportByRouter:
			rec = append(rec, strconv.FormatInt(x.RouterID, 10), CSVText(x.Router))
		case ReportByInterface:
			rec = append(rec, strconv.FormatInt(x.RouterID, 10), CSVText(x.Router), strconv.FormatUint(uint64(x.Interface), 10), CSVText(x.InterfaceName))
		}
		apps := make([]string, len(x.TopApps))
		for j, a := range x.TopApps {
			apps[j] = a.App + "=" + u64(a.Bytes)
		}
		rec = append(rec, u64(x.DownloadBytes), u64(x.UploadBytes), u64(x.TotalBytes),
			bps(x.PeakDown.BPS), at(x.PeakDown.At), bps(x.PeakUp.BPS), at(x.PeakUp.At),
			pct, bps(x.PctDown), bps(x.PctUp), bps(x.PctBillable), strconv.Itoa(x.Samples), CSVText(strings.Join(apps, ";")))
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("cannot write report: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("cannot write report: %w", err)
	}
	return nil
}

// ReportRun is one run of a scheduled report: which schedule, which
// period, when it ran and what became of each delivery.
type ReportRun struct {
	ID       int64     `json:"id"`
	Schedule string    `json:"schedule"`
	Period   string    `json:"period"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// OK is true when the report was made and every delivery succeeded.
	OK bool `json:"ok"`
	// CatchUp is true for a run of a period that closed while flowbox was
	// not running.
	CatchUp bool `json:"catch_up,omitempty"`
	Rows    int  `json:"rows"`
	// Deliveries say, per target ("folder /var/lib/...", "mail to
	// a@b", "webhook https://..."), what happened.
	Deliveries []ReportDelivery `json:"deliveries"`
	Error      string           `json:"error,omitempty"`
}

// ReportDelivery is what became of one target of a report run.
type ReportDelivery struct {
	Target string `json:"target"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// RateQuery asks for the 5-minute rate summary of every router,
// interface or subscriber (Kind, a ReportBy* kind; the fleet is every
// router summed) over [From, To), on 5-minute boundaries.
type RateQuery struct {
	Kind     string
	From, To time.Time
	// Percentile is in (0, 100].
	Percentile float64
	// Sources keeps these router ids (or -exporter ids); empty keeps all.
	Sources []int64
	// Keep stores the answer of a closed period (one that ended over an
	// hour ago) for the next asker of the same period and percentile:
	// reports set it for calendar months.
	Keep bool
	// Apps is how many of each subscriber's largest applications (read
	// by whole UTC days) the summaries list: 0..10, subscribers only.
	Apps int
}

// RateSummary is one entity's traffic over the period of a RateQuery:
// totals, peaks and percentiles of its 5-minute samples. A is download
// (an interface's in), B upload (out).
type RateSummary struct {
	Source int64
	// Key is the subscriber's name or the interface's ifIndex in decimal;
	// empty for a router and for the fleet.
	Key          string
	A, B         uint64
	PeakA, PeakB Rate
	PctA, PctB   float64 // bits per second
	// Samples is how many 5-minute samples were read: from the source's
	// first stored flow (or From) to the last finished 5 minutes (or To).
	Samples int
	// Apps are a subscriber's largest applications (RateQuery.Apps).
	Apps []AppShare
}
