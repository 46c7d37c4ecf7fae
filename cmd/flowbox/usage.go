package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	// The container image (FROM scratch) has no zoneinfo: --tz needs the
	// embedded copy.
	_ "time/tzdata"

	"github.com/flowbox/flowbox/store"
	storagepkg "github.com/flowbox/flowbox/store/storage"
)

// usageJSON is one row of `flowbox subscribers usage --format json`.
type usageJSON struct {
	Subscriber      string    `json:"subscriber"`
	RouterID        int64     `json:"router_id"`
	Router          string    `json:"router"`
	DownloadBytes   uint64    `json:"download_bytes"`
	UploadBytes     uint64    `json:"upload_bytes"`
	DownloadPackets uint64    `json:"download_packets"`
	UploadPackets   uint64    `json:"upload_packets"`
	Flows           uint64    `json:"flows"`
	LastSeen        time.Time `json:"last_seen"`
}

// runSubscribersUsage implements `flowbox subscribers usage`: the traffic
// of every subscriber over a month or a period, per router, as a table,
// CSV or JSON, read from the data directory (read-only: it works while
// `flowbox serve` runs, e.g. from cron at the start of a month).
func runSubscribersUsage(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "subscribers usage")
	load := commonFlags(fs)
	month := fs.String("month", "", "calendar `YYYY-MM` in the time zone of --tz (default: this month so far, unless --from is given)")
	fromS := fs.String("from", "", "start `DATE` (YYYY-MM-DD in --tz, or RFC 3339)")
	toS := fs.String("to", "", "end `DATE`, exclusive (YYYY-MM-DD in --tz, or RFC 3339; default now)")
	tz := fs.String("tz", "Local", "time `ZONE` of months and dates (IANA name, e.g. America/Mexico_City)")
	router := fs.String("router", "", "only this router (`NAME` or id)")
	search := fs.String("search", "", "only subscribers whose name contains `TEXT` (any case)")
	sortBy := fs.String("sort", store.UsageByTotal, "order: total, download, upload or name")
	format := fs.String("format", "table", "output: table, csv or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{"subscribers usage: unexpected argument " + strconv.Quote(fs.Arg(0))}
	}
	if *format != "table" && *format != "csv" && *format != "json" {
		return usageError{fmt.Sprintf("subscribers usage: --format %q is not table, csv or json", *format)}
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return usageError{fmt.Sprintf("subscribers usage: --tz: %v", err)}
	}
	from, to, err := usagePeriod(*month, *fromS, *toS, loc, time.Now())
	if err != nil {
		return usageError{"subscribers usage: " + err.Error()}
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	st, err := storagepkg.Open(ctx, cfg.DataDir, cfg.Store, storagepkg.ReadOnly, nil, nil)
	if err != nil {
		return fmt.Errorf("cannot open the data directory %s: %w", cfg.DataDir, err)
	}
	defer st.Close()
	routers, err := st.ListRouters(ctx)
	if err != nil {
		return err
	}
	names := map[int64]string{}
	q := store.UsageQuery{From: from, To: to, Search: *search, Sort: *sortBy, Limit: 10000}
	for _, r := range routers {
		names[r.ID] = r.Name
		if *router != "" && (r.Name == *router || strconv.FormatInt(r.ID, 10) == *router) {
			q.Sources = []int64{r.ID}
		}
	}
	if *router != "" && q.Sources == nil {
		return fmt.Errorf("subscribers usage: no router %q (flowbox router list shows them)", *router)
	}
	var rows []usageJSON
	var all []store.SubscriberUsage
	var res *store.UsageResult
	for {
		if res, err = st.SubscriberUsage(ctx, q); err != nil {
			return err
		}
		for _, u := range res.Rows {
			all = append(all, u)
			rows = append(rows, usageJSON{Subscriber: u.Subscriber, RouterID: u.Source, Router: store.SourceName(names, u.Source),
				DownloadBytes: u.DownloadBytes, UploadBytes: u.UploadBytes, DownloadPackets: u.DownloadPackets,
				UploadPackets: u.UploadPackets, Flows: u.Flows, LastSeen: u.LastSeen})
		}
		if q.Offset += len(res.Rows); len(res.Rows) < q.Limit || q.Offset >= res.Count {
			break
		}
	}
	switch *format {
	case "json":
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		out := struct {
			From       time.Time   `json:"from"`
			To         time.Time   `json:"to"`
			Resolution string      `json:"resolution"`
			Rows       []usageJSON `json:"rows"`
		}{res.From, res.To, string(res.Resolution), rows}
		if out.Rows == nil {
			out.Rows = []usageJSON{}
		}
		if err := enc.Encode(out); err != nil {
			return fmt.Errorf("cannot write JSON: %w", err)
		}
	case "csv":
		w := csv.NewWriter(e.stdout)
		_ = w.Write(store.UsageCSVHeader)
		for i := range all {
			_ = w.Write(store.UsageCSVRecord(&all[i], names, res.From, res.To))
		}
		w.Flush()
		if err := w.Error(); err != nil {
			return fmt.Errorf("cannot write CSV: %w", err)
		}
	default:
		fmt.Fprintf(e.stdout, "%s to %s (%s, read by %s)\n", res.From.In(loc).Format("2006-01-02 15:04"),
			res.To.In(loc).Format("2006-01-02 15:04"), loc, resolutionWord(res.Resolution))
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "SUBSCRIBER\tROUTER\tDOWNLOAD\tUPLOAD\tTOTAL\t")
		var down, up uint64
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", r.Subscriber, r.Router, humanBytes(r.DownloadBytes),
				humanBytes(r.UploadBytes), humanBytes(r.DownloadBytes+r.UploadBytes))
			down += r.DownloadBytes
			up += r.UploadBytes
		}
		fmt.Fprintf(tw, "%s\t\t%s\t%s\t%s\t\n", fmt.Sprintf("total (%d)", len(rows)), humanBytes(down), humanBytes(up), humanBytes(down+up))
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("cannot write the table: %w", err)
		}
	}
	return nil
}

// usagePeriod turns --month or --from/--to into a period; dates are
// midnights in loc.
func usagePeriod(month, fromS, toS string, loc *time.Location, now time.Time) (time.Time, time.Time, error) {
	if month != "" {
		if fromS != "" || toS != "" {
			return time.Time{}, time.Time{}, fmt.Errorf("--month excludes --from and --to")
		}
		m, err := time.ParseInLocation("2006-01", month, loc)
		if err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("--month %q is not YYYY-MM", month)
		}
		return m, m.AddDate(0, 1, 0), nil
	}
	parse := func(name, s string) (time.Time, error) {
		if t, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
			return t, nil
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("--%s %q is neither YYYY-MM-DD nor RFC 3339", name, s)
		}
		return t, nil
	}
	n := now.In(loc)
	from, to := time.Date(n.Year(), n.Month(), 1, 0, 0, 0, 0, loc), now
	var err error
	if fromS != "" {
		if from, err = parse("from", fromS); err != nil {
			return from, to, err
		}
	}
	if toS != "" {
		if to, err = parse("to", toS); err != nil {
			return from, to, err
		}
	}
	if !from.Before(to) {
		return from, to, fmt.Errorf("the period %s to %s is empty", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return from, to, nil
}

func resolutionWord(r store.Resolution) string {
	if r == store.ResDay {
		return "UTC day"
	}
	return "hour"
}

// humanBytes formats a byte count with SI units ("1.2 GB").
func humanBytes(b uint64) string {
	const unit = 1000
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	v, i := float64(b), 0
	units := []string{"kB", "MB", "GB", "TB", "PB", "EB"}
	for v /= unit; v >= unit && i < len(units)-1; v /= unit {
		i++
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0") + " " + units[i]
}
