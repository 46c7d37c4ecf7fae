package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/clickhouse"
	storagepkg "github.com/flowbox/flowbox/store/storage"
)

// statsRow is one exporter in `flowbox stats --json`.
type statsRow struct {
	Exporter        string            `json:"exporter"`
	Router          string            `json:"router"`
	RouterID        int64             `json:"router_id"`
	PacketsReceived uint64            `json:"packets_received"`
	FlowsReceived   uint64            `json:"flows_received"`
	FlowsStored     uint64            `json:"flows_stored"`
	FlowsDropped    uint64            `json:"flows_dropped"`
	DroppedByReason map[string]uint64 `json:"flows_dropped_by_reason"`
	Bytes           uint64            `json:"bytes"`
	Packets         uint64            `json:"packets"`
	FirstSeen       *time.Time        `json:"first_seen"`
	LastSeen        *time.Time        `json:"last_seen"`
	LostFlows       uint64            `json:"lost_flows"`
	// Trusted is false for a source that is neither an onboarded router
	// nor allowed (collector.allowed-exporters, `flowbox exporters
	// allow`): its flows are counted, not stored.
	Trusted bool `json:"trusted"`
	// SetsNoTemplate counts data sets dropped while waiting for their
	// template (sets, not flows).
	SetsNoTemplate uint64            `json:"sets_no_template"`
	DecodeErrors   map[string]uint64 `json:"decode_errors"`
}

// runStats prints, per exporter, what the collector received and what the
// store kept. It opens the database read-only, so it works while `flowbox
// serve` runs.
func runStats(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "stats")
	load := commonFlags(fs)
	asJSON := fs.Bool("json", false, "print a JSON list instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	st, err := storagepkg.Open(ctx, cfg.DataDir, storagepkg.DefaultConfig(), storagepkg.ReadOnly, nil, nil)
	if err != nil {
		return fmt.Errorf("cannot open the data directory %s: %w", cfg.DataDir, err)
	}
	defer st.Close()
	sums, err := st.ExporterSummaries(ctx)
	if err != nil {
		return err
	}
	rows := make([]statsRow, 0, len(sums))
	for _, s := range sums {
		r := statsRow{
			Exporter: s.Exporter.String(), Router: s.RouterName, RouterID: s.RouterID,
			PacketsReceived: s.Packets, FlowsReceived: s.FlowsReceived, FlowsStored: s.FlowsStored,
			DroppedByReason: s.FlowsDropped, Bytes: s.Bytes, Packets: s.PacketsSum, LostFlows: s.LostFlows,
			Trusted: s.Trusted, SetsNoTemplate: s.SetsNoTemplate, DecodeErrors: s.DecodeErrors,
		}
		if r.DecodeErrors == nil {
			r.DecodeErrors = map[string]uint64{}
		}
		for _, n := range s.FlowsDropped {
			r.FlowsDropped += n
		}
		if !s.FirstSeen.IsZero() {
			t := s.FirstSeen.UTC()
			r.FirstSeen = &t
		}
		if !s.LastSeen.IsZero() {
			t := s.LastSeen.UTC()
			r.LastSeen = &t
		}
		rows = append(rows, r)
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return fmt.Errorf("cannot write JSON: %w", err)
		}
		return nil
	}
	if err := printStatsTable(e.stdout, rows); err != nil {
		return err
	}
	// What serve's ClickHouse writer holds on disk (ClickHouse down or
	// slow): received, neither stored nor dropped yet.
	if ch := &cfg.Store.ClickHouse; cfg.Store.Backend == storagepkg.BackendClickHouse && ch.SpillMaxMB > 0 {
		dir := ch.SpillDir
		if dir == "" {
			dir = filepath.Join(cfg.DataDir, storagepkg.DefaultSpillDir)
		}
		files, flows, bytes, bad, err := clickhouse.SpillState(dir)
		if err != nil {
			return err
		}
		if files > 0 || bad > 0 {
			fmt.Fprintf(e.stdout, "waiting for clickhouse in %s: %d flows in %d files (%.1f of %d MiB)", dir, flows, files, float64(bytes)/(1<<20), ch.SpillMaxMB)
			if bad > 0 {
				fmt.Fprintf(e.stdout, "; %d damaged files set aside (their flows are lost)", bad)
			}
			fmt.Fprintln(e.stdout)
		}
	}
	// The interface counter polls (flowbox coverage has the details).
	states, err := st.CoverageStates(ctx)
	if err != nil {
		return err
	}
	for _, c := range states {
		line := fmt.Sprintf("counter polls of %s: %d, failed %d", c.Router, c.Polls, c.Failures)
		if c.LastError != "" {
			line += " (last error: " + c.LastError + ")"
		}
		fmt.Fprintln(e.stdout, line)
	}
	// The scheduled reports that failed (reportsched.go).
	return printReportFailures(ctx, e.stdout, st.Inventory)
}

func printStatsTable(w io.Writer, rows []statsRow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EXPORTER\tROUTER\tPACKETS\tFLOWS RCVD\tSTORED\tDROPPED\tLOST\tBYTES\tFLOW PKTS\tFIRST SEEN\tLAST SEEN")
	ts := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Format(time.RFC3339)
	}
	for _, r := range rows {
		router := r.Router
		switch {
		case router == "" && r.RouterID != 0:
			router = store.SourceName(nil, r.RouterID)
		case router == "" && !r.Trusted:
			router = "untrusted (not stored)"
		case router == "":
			router = "allowed exporter"
		}
		dropped := fmt.Sprint(r.FlowsDropped)
		if r.FlowsDropped > 0 {
			dropped += " ("
			first := true
			for _, k := range sortedKeys(r.DroppedByReason) {
				if r.DroppedByReason[k] == 0 {
					continue
				}
				if !first {
					dropped += ", "
				}
				dropped += fmt.Sprintf("%s %d", k, r.DroppedByReason[k])
				first = false
			}
			dropped += ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%s\t%s\n", r.Exporter, router, r.PacketsReceived,
			r.FlowsReceived, r.FlowsStored, dropped, r.LostFlows, r.Bytes, r.Packets, ts(r.FirstSeen), ts(r.LastSeen))
	}
	if len(rows) == 0 {
		fmt.Fprintln(tw, "(no exporter seen yet)")
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("cannot write table: %w", err)
	}
	return nil
}

func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}
