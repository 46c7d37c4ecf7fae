package flowdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/flowbox/flowbox/store"
)

// maxTrackedExporters bounds the in-memory last-seen maps; addresses beyond
// it are not tracked (counted in flowbox_store_exporters_untracked_total).
const maxTrackedExporters = 4096

// noteSeen records that flows from addr (attributed to routerID) arrived now.
func (s *FlowDB) noteSeen(addr netip.Addr, routerID int64, now time.Time) {
	s.seenMu.Lock()
	defer s.seenMu.Unlock()
	if _, ok := s.exporterTS[addr]; ok || len(s.exporterTS) < maxTrackedExporters {
		s.exporterTS[addr] = now
	} else {
		s.metrics.untracked.Inc()
	}
	if routerID != 0 {
		s.routerTS[routerID] = now
	}
}

// ExporterLastSeen returns when this process last received flows from the
// exporter address (in memory only; false when never since start).
func (s *FlowDB) ExporterLastSeen(addr netip.Addr) (time.Time, bool) {
	s.seenMu.Lock()
	defer s.seenMu.Unlock()
	t, ok := s.exporterTS[addr.Unmap()]
	return t, ok
}

// LastFlowFrom returns the last time a flow attributed to the router was
// ingested, from memory or, across restarts, from the database.
func (s *FlowDB) LastFlowFrom(ctx context.Context, routerID int64) (time.Time, bool, error) {
	s.seenMu.Lock()
	mem, ok := s.routerTS[routerID]
	s.seenMu.Unlock()
	var ms int64
	if err := s.r.QueryRowContext(ctx, "SELECT coalesce(max(last_flow), 0) FROM exporters WHERE router_id = ?", routerID).Scan(&ms); err != nil {
		return time.Time{}, false, fmt.Errorf("cannot read last flow of router %d: %w", routerID, err)
	}
	if db := store.FromMilli(ms); !db.IsZero() && db.After(mem) {
		return db, true, nil
	}
	return mem, ok, nil
}

// SaveExporterStats upserts the collector's counters, one row per exporter
// address. `serve` calls it every few seconds.
func (s *FlowDB) SaveExporterStats(ctx context.Context, stats []store.ExporterStats) error {
	if err := s.writable(); err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cannot save exporter stats: %w", store.DescribeWriteError(err))
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO collector_stats (exporter, router_id, packets, flows_received,
		flows_stored, flows_dropped, decode_errors, lost_flows, templates, first_seen, last_seen, last_template,
		pending_no_tmpl, bytes, pkts_seen, updated_at, trusted, sets_no_template) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (exporter) DO UPDATE SET router_id=excluded.router_id, packets=excluded.packets,
		flows_received=excluded.flows_received, flows_stored=excluded.flows_stored, flows_dropped=excluded.flows_dropped,
		decode_errors=excluded.decode_errors, lost_flows=excluded.lost_flows, templates=excluded.templates,
		first_seen=excluded.first_seen, last_seen=excluded.last_seen, last_template=excluded.last_template,
		pending_no_tmpl=excluded.pending_no_tmpl, bytes=excluded.bytes, pkts_seen=excluded.pkts_seen,
		updated_at=excluded.updated_at, trusted=excluded.trusted, sets_no_template=excluded.sets_no_template`)
	if err != nil {
		return fmt.Errorf("cannot save exporter stats: %w", store.DescribeWriteError(err))
	}
	defer stmt.Close()
	now := s.now().UnixMilli()
	for _, e := range stats {
		if !e.Exporter.IsValid() {
			return fmt.Errorf("cannot save exporter stats: invalid exporter address")
		}
		dropped, err := json.Marshal(e.FlowsDropped)
		if err != nil {
			return fmt.Errorf("cannot encode exporter stats: %w", err)
		}
		decErr, err := json.Marshal(e.DecodeErrors)
		if err != nil {
			return fmt.Errorf("cannot encode exporter stats: %w", err)
		}
		if _, err := stmt.ExecContext(ctx, e.Exporter.Unmap().String(), e.RouterID, clampInt(e.Packets),
			clampInt(e.FlowsReceived), clampInt(e.FlowsStored), string(dropped), string(decErr), clampInt(e.LostFlows),
			e.Templates, store.UnixMilli(e.FirstSeen), store.UnixMilli(e.LastSeen), store.UnixMilli(e.LastTemplate),
			clampInt(e.PendingNoTmpl), clampInt(e.Bytes), clampInt(e.PktsSeen), now, e.Trusted, clampInt(e.SetsNoTemplate)); err != nil {
			return fmt.Errorf("cannot save exporter stats of %s: %w", e.Exporter, store.DescribeWriteError(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cannot save exporter stats: %w", store.DescribeWriteError(err))
	}
	return nil
}

// clampInt converts a counter to SQLite's signed 64-bit integer.
func clampInt(v uint64) int64 {
	if v > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(v)
}

// ExporterStats returns the collector counters last saved, ordered by
// exporter address.
func (s *FlowDB) ExporterStats(ctx context.Context) ([]store.ExporterStats, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT exporter, router_id, packets, flows_received, flows_stored,
		flows_dropped, decode_errors, lost_flows, templates, first_seen, last_seen, last_template,
		pending_no_tmpl, bytes, pkts_seen, trusted, sets_no_template FROM collector_stats`)
	if err != nil {
		return nil, fmt.Errorf("cannot read exporter stats: %w", err)
	}
	defer rows.Close()
	var out []store.ExporterStats
	for rows.Next() {
		var (
			e                              store.ExporterStats
			addr, dropped, decErr          string
			first, last, lastTmpl          int64
			pk, fr, fs, lost, pend, by, ps int64
			sets                           int64
		)
		if err := rows.Scan(&addr, &e.RouterID, &pk, &fr, &fs, &dropped, &decErr, &lost, &e.Templates,
			&first, &last, &lastTmpl, &pend, &by, &ps, &e.Trusted, &sets); err != nil {
			return nil, fmt.Errorf("cannot read exporter stats: %w", err)
		}
		if e.Exporter, err = netip.ParseAddr(addr); err != nil {
			return nil, fmt.Errorf("cannot read exporter stats: bad address %q: %w", addr, err)
		}
		if err := json.Unmarshal([]byte(dropped), &e.FlowsDropped); err != nil {
			return nil, fmt.Errorf("cannot read exporter stats of %s: %w", addr, err)
		}
		if err := json.Unmarshal([]byte(decErr), &e.DecodeErrors); err != nil {
			return nil, fmt.Errorf("cannot read exporter stats of %s: %w", addr, err)
		}
		e.Packets, e.FlowsReceived, e.FlowsStored, e.LostFlows = uint64(pk), uint64(fr), uint64(fs), uint64(lost)
		e.PendingNoTmpl, e.Bytes, e.PktsSeen = uint64(pend), uint64(by), uint64(ps)
		e.SetsNoTemplate = uint64(sets)
		e.FirstSeen, e.LastSeen, e.LastTemplate = store.FromMilli(first), store.FromMilli(last), store.FromMilli(lastTmpl)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read exporter stats: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Exporter.Less(out[j].Exporter) })
	return out, nil
}

// ExporterSummaries returns one summary per exporter known to the collector
// or to the store, ordered by address. names names the routers by id (the
// inventory's); RouterName is "" for an id it does not hold.
func (s *FlowDB) ExporterSummaries(ctx context.Context, names map[int64]string) ([]store.ExporterSummary, error) {
	coll, err := s.ExporterStats(ctx)
	if err != nil {
		return nil, err
	}
	by := map[netip.Addr]*store.ExporterSummary{}
	get := func(a netip.Addr) *store.ExporterSummary {
		if e, ok := by[a]; ok {
			return e
		}
		e := &store.ExporterSummary{Exporter: a, FlowsDropped: map[string]uint64{}, Trusted: true}
		by[a] = e
		return e
	}
	for _, c := range coll {
		e := get(c.Exporter)
		e.RouterID, e.Packets, e.FlowsReceived, e.LostFlows = c.RouterID, c.Packets, c.FlowsReceived, c.LostFlows
		e.Trusted, e.SetsNoTemplate, e.DecodeErrors = c.Trusted, c.SetsNoTemplate, c.DecodeErrors
		for k, v := range c.FlowsDropped {
			e.FlowsDropped[k] += v
		}
		e.FirstSeen, e.LastSeen = c.FirstSeen, c.LastSeen
	}
	rows, err := s.r.QueryContext(ctx, "SELECT addr, router_id, first_flow, last_flow, flows, bytes, packets, dropped FROM exporters")
	if err != nil {
		return nil, fmt.Errorf("cannot read exporters: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			raw                         []byte
			rid, first, last, f, by, pk int64
			dropped                     string
		)
		if err := rows.Scan(&raw, &rid, &first, &last, &f, &by, &pk, &dropped); err != nil {
			return nil, fmt.Errorf("cannot read exporters: %w", err)
		}
		a, ok := netip.AddrFromSlice(raw)
		if !ok {
			continue // the overflow exporter row has no address
		}
		e := get(a)
		if rid != 0 {
			e.RouterID = rid
		}
		e.FlowsStored, e.Bytes, e.PacketsSum = uint64(f), uint64(by), uint64(pk)
		var d map[string]uint64
		if err := json.Unmarshal([]byte(dropped), &d); err != nil {
			return nil, fmt.Errorf("cannot read exporter %s: %w", a, err)
		}
		for k, v := range d {
			e.FlowsDropped["store_"+k] += v
		}
		if ft := store.FromMilli(first); !ft.IsZero() && (e.FirstSeen.IsZero() || ft.Before(e.FirstSeen)) {
			e.FirstSeen = ft
		}
		if lt := store.FromMilli(last); lt.After(e.LastSeen) {
			e.LastSeen = lt
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read exporters: %w", err)
	}
	out := make([]store.ExporterSummary, 0, len(by))
	for _, e := range by {
		e.RouterName = names[e.RouterID]
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Exporter.Less(out[j].Exporter) })
	return out, nil
}

// ExporterID returns the id of an exporter address, adding the address
// (attributed to routerID, 0 for none) when the store has not seen it. A
// second flow store (ClickHouse) calls it to give the flows no router
// matched the source id these queries filter on (minus the id), so that
// ExporterSources and ExporterSummaries list its exporters too. At most
// maxExporters addresses get an id.
func (s *FlowDB) ExporterID(ctx context.Context, addr netip.Addr, routerID int64) (int64, error) {
	if err := s.writable(); err != nil {
		return 0, fmt.Errorf("cannot add exporter %s: %w", addr, err)
	}
	addr = addr.Unmap()
	var id int64
	err := s.w.QueryRowContext(ctx, "SELECT id FROM exporters WHERE addr = ?", addrBytes(addr)).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("cannot read exporter %s: %w", addr, err)
	}
	var n int64
	if err := s.w.QueryRowContext(ctx, "SELECT count(*) FROM exporters").Scan(&n); err != nil {
		return 0, fmt.Errorf("cannot count exporters: %w", err)
	}
	if n >= maxExporters {
		return 0, fmt.Errorf("cannot add exporter %s: the store has %d exporters, the most it keeps", addr, n)
	}
	if err := s.w.QueryRowContext(ctx, "INSERT INTO exporters (addr, router_id) VALUES (?, ?) RETURNING id",
		addrBytes(addr), routerID).Scan(&id); err != nil {
		return 0, fmt.Errorf("cannot add exporter %s: %w", addr, store.DescribeWriteError(err))
	}
	return id, nil
}
