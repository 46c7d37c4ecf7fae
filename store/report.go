package store

import (
	"strconv"
	"time"
)

// SourceName names a flow source for reports, the same way in the console,
// the API and the command line: the router's name (names maps router ids
// to names), "router N (removed)" for a router no longer in the inventory,
// "exporter N" for the flows of an exporter matched to no router (negative
// source ids).
func SourceName(names map[int64]string, src int64) string {
	if n, ok := names[src]; ok && n != "" {
		return n
	}
	if src < 0 {
		return "exporter " + strconv.FormatInt(-src, 10)
	}
	return "router " + strconv.FormatInt(src, 10) + " (removed)"
}

// UsageCSVHeader is the header of every subscriber usage CSV (the
// console's export, the API's and `flowbox subscribers usage --format
// csv`); UsageCSVRecord writes its rows.
var UsageCSVHeader = []string{"subscriber", "router_id", "router", "download_bytes", "upload_bytes", "total_bytes",
	"download_packets", "upload_packets", "flows", "last_seen", "from", "to"}

// UsageCSVRecord returns the CSV record of one usage row: the columns of
// UsageCSVHeader, source named by SourceName, times in UTC RFC 3339, from
// and to being the period actually read.
func UsageCSVRecord(u *SubscriberUsage, names map[int64]string, from, to time.Time) []string {
	u64 := func(v uint64) string { return strconv.FormatUint(v, 10) }
	last := ""
	if !u.LastSeen.IsZero() {
		last = u.LastSeen.UTC().Format(time.RFC3339)
	}
	return []string{CSVText(u.Subscriber), strconv.FormatInt(u.Source, 10), CSVText(SourceName(names, u.Source)),
		u64(u.DownloadBytes), u64(u.UploadBytes), u64(u.DownloadBytes + u.UploadBytes),
		u64(u.DownloadPackets), u64(u.UploadPackets), u64(u.Flows), last,
		from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339)}
}

// CSVText makes a text cell of a CSV export safe to open in a spreadsheet:
// a value that starts with = + - @, a tab or a carriage return would be
// taken for a formula (subscriber names come from customers' own DHCP host
// names), so it gets a leading apostrophe, which spreadsheets hide. Use it
// for text columns only: numbers keep their sign.
func CSVText(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}
