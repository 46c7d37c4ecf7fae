package main

import (
	"context"

	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/clickhouse"
	storagepkg "github.com/flowbox/flowbox/store/storage"
)

// copyBatch is the flows or NAT mappings of one insert of a copy.
const copyBatch = 65536

// runStore implements `flowbox store copy --to clickhouse`.
func runStore(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "copy" {
		return usageError{"store: want `store copy --to clickhouse`"}
	}
	fs := newFlagSet(e, "store copy")
	load := commonFlags(fs)
	to := fs.String("to", "", "the store to copy to: clickhouse (store.clickhouse of the configuration)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{"store copy: unexpected argument " + strconv.Quote(fs.Arg(0))}
	}
	if *to != storagepkg.BackendClickHouse {
		return usageError{fmt.Sprintf("store copy: --to %q: only clickhouse", *to)}
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	if err := cfg.Store.ClickHouse.Validate(); err != nil {
		return fmt.Errorf("store copy: store.clickhouse: %w", err)
	}
	logger := newLogger(e.stderr, cfg.Log)
	// The SQLite flows, read-only (serve may run: what it writes during
	// the copy, after its start, is not copied).
	src := cfg.Store
	src.Backend = storagepkg.BackendSQLite
	sq, err := storagepkg.Open(ctx, cfg.DataDir, src, storagepkg.ReadOnly, nil, nil)
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	defer sq.Close()
	sources, err := sq.ExporterSources(ctx)
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	ch, err := clickhouse.Open(ctx, cfg.Store.ClickHouse, func(a netip.Addr) int64 { return -sources[a] }, 1, logger)
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	defer ch.Close()
	now := time.Now()
	from := now.Add(-cfg.Store.RawRetention)
	flows, mappings, err := ch.Held(ctx, from, now)
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	site := cfg.Store.ClickHouse.Site
	if flows > 0 || mappings > 0 {
		return fmt.Errorf("store copy: clickhouse database %s already holds %d flows since %s and %d NAT mappings of site %s: a copy would store them twice (copy into another database or site)",
			cfg.Store.ClickHouse.Database, flows, from.UTC().Format(time.RFC3339), mappings, site)
	}
	// Raw flows, oldest first; their views fill the totals, usage, rates,
	// domains and NAT mappings of the raw window.
	var n, batches int
	q := store.SearchQuery{From: from, To: now, Ascending: true, Limit: 10000}
	var pending []store.Flow
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if err := ch.CopyFlows(ctx, pending, fmt.Sprintf("%s-flows-%d-%d", site, now.Unix(), batches)); err != nil {
			return err
		}
		batches++
		n += len(pending)
		pending = pending[:0]
		fmt.Fprintf(e.stdout, "copied %d raw flows\n", n)
		return nil
	}
	for {
		page, err := sq.SearchFlows(ctx, q)
		if err != nil {
			return fmt.Errorf("store copy: cannot read the raw flows: %w", err)
		}
		pending = append(pending, page.Flows...)
		if len(pending) >= copyBatch {
			if err := flush(); err != nil {
				return fmt.Errorf("store copy: %w", err)
			}
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	if err := flush(); err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	// NAT mappings, every day kept (the raw window's were made again from
	// its flows above: only the older ones are copied).
	var ms []store.NATMapping
	var copiedNAT int
	nb := 0
	flushNAT := func() error {
		if err := ch.CopyNAT(ctx, ms, fmt.Sprintf("%s-nat-%d-%d", site, now.Unix(), nb)); err != nil {
			return err
		}
		nb++
		copiedNAT += len(ms)
		ms = ms[:0]
		return nil
	}
	err = sq.SQL.EachNATMapping(ctx, func(m *store.NATMapping) error {
		if !m.LastSeen.Before(from) {
			return nil
		}
		ms = append(ms, *m)
		if len(ms) >= copyBatch {
			return flushNAT()
		}
		return nil
	})
	if err == nil {
		err = flushNAT()
	}
	if err != nil {
		return fmt.Errorf("store copy: NAT mappings: %w", err)
	}
	// The top-N lists of the hours copied.
	hours := 0
	for {
		h, err := ch.RollupTop(ctx, time.Now())
		if err != nil {
			return fmt.Errorf("store copy: %w", err)
		}
		if h == 0 {
			break
		}
		hours += h
	}
	fmt.Fprintf(e.stdout, "copied %d raw flows since %s (with their totals, usage, rates, domains and NAT mappings) and %d older NAT mappings into clickhouse database %s, site %s; rolled up %d hours of top-N lists\n",
		n, from.UTC().Format(time.RFC3339), copiedNAT, cfg.Store.ClickHouse.Database, site, hours)
	fmt.Fprintln(e.stdout, "not copied: the hour totals, usage, rates and domains older than the raw window (they stay in SQLite; switching store.backend shows them no more)")
	return nil
}
