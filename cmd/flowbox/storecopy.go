package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/clickhouse"
	"github.com/flowbox/flowbox/store/flowdb"
	storagepkg "github.com/flowbox/flowbox/store/storage"
)

// copyBatch is the flows, NAT mappings or rollup rows of one insert of a
// copy.
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
	// The raw flows are copied from the first whole hour of the raw
	// window on (start), and the rollups before it: no hour, day or
	// 5 minutes is then made of both.
	start := from.Truncate(time.Hour)
	if start.Before(from) {
		start = start.Add(time.Hour)
	}
	flows, mappings, rollups, err := ch.Held(ctx, from, now)
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	site := cfg.Store.ClickHouse.Site
	if flows > 0 || mappings > 0 || rollups > 0 {
		return fmt.Errorf("store copy: clickhouse database %s already holds %d flows since %s, %d NAT mappings and %d hour totals of site %s: a copy would store them twice (copy into another database or site)",
			cfg.Store.ClickHouse.Database, flows, from.UTC().Format(time.RFC3339), mappings, rollups, site)
	}
	name := func(table string, batch int) string {
		return fmt.Sprintf("%s-%s-%d-%d", site, table, now.Unix(), batch)
	}
	// Raw flows, oldest first; their views fill the totals, usage, rates,
	// domains and NAT mappings of [start, now). What they add to the
	// domains and applications of start's day is counted (shares): that
	// day's rows copied leave it out.
	day0 := time.Unix(store.FloorDiv(start.Unix(), 86400)*86400, 0).UTC()
	shares := ch.NewDayShares(day0)
	var n, batches int
	q := store.SearchQuery{From: start, To: now, Ascending: true, Limit: 10000}
	var pending []store.Flow
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if err := ch.CopyFlows(ctx, pending, name("flows", batches)); err != nil {
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
		shares.Add(page.Flows)
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
	// NAT mappings, every day kept (those of [start, now) were made again
	// from its flows above: only the older ones are copied).
	var ms []store.NATMapping
	var copiedNAT int
	nb := 0
	flushNAT := func() error {
		if err := ch.CopyNAT(ctx, ms, name("nat", nb)); err != nil {
			return err
		}
		nb++
		copiedNAT += len(ms)
		ms = ms[:0]
		return nil
	}
	err = sq.SQL.EachNATMapping(ctx, func(m *store.NATMapping) error {
		if !m.LastSeen.Before(start) {
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
	// The rollups before start (before the top-N lists are rolled up:
	// RollupTop goes on from the steps they record as done).
	rows, err := copyRollups(ctx, e.stdout, sq.SQL, ch, start, shares, name)
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
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
	fmt.Fprintf(e.stdout, "copied %d raw flows since %s (with their totals, usage, rates, domains and NAT mappings), %d older NAT mappings and %d rollup rows before %s into clickhouse database %s, site %s; rolled up %d hours and days of top-N lists\n",
		n, start.UTC().Format(time.RFC3339), copiedNAT, rows, start.UTC().Format(time.RFC3339), cfg.Store.ClickHouse.Database, site, hours)
	if start.After(from) {
		fmt.Fprintf(e.stdout, "not copied: the raw flows of %s to %s, before the first whole hour of the raw window (their traffic is in the rollups copied; searches there find nothing on clickhouse)\n",
			from.UTC().Format(time.RFC3339), start.UTC().Format(time.RFC3339))
	}
	return nil
}

// copyRollups copies the rollups of src before start into dst, every
// bucket made of flows that were not copied raw: the minute totals from
// the first hour SQLite keeps whole (dst's views make their hours) and
// the hour totals before; the hourly usage from the first UTC day it
// keeps whole (the views make the days) and the daily usage before; the
// 5-minute rates; the top-N rollups by hour, and by minute where the
// minute totals are copied, each step recorded as done; the subscriber
// domains and applications of the days before start's, and of start's
// day less what the raw flows copied add to it (shares). It prints the
// rows of each table and returns their sum.
func copyRollups(ctx context.Context, w io.Writer, src *flowdb.FlowDB, dst *clickhouse.Store, start time.Time, shares *clickhouse.DayShares, name func(string, int) string) (int, error) {
	// whole returns the first step whose rows of table are all kept
	// (flowdb.FirstWhole), at most start (start when it is empty).
	whole := func(table string, step time.Duration) (time.Time, error) {
		t, ok, err := src.FirstWhole(ctx, table, step)
		if err != nil || !ok || t.After(start) {
			return start, err
		}
		return t, nil
	}
	var mcut time.Time // the minutes copied: [mcut, start)
	for _, table := range []string{"tot_m", "if_m"} {
		c, err := whole(table, time.Hour)
		if err != nil {
			return 0, err
		}
		if c.After(mcut) {
			mcut = c
		}
	}
	day0 := time.Unix(store.FloorDiv(start.Unix(), 86400)*86400, 0).UTC()
	ucut, err := whole("usage_h", 24*time.Hour)
	if err != nil {
		return 0, err
	}
	if ucut.After(day0) {
		// The hours of start's day before start are not all kept
		// (usage-hour-retention under raw-retention and a day): that
		// day's usage on clickhouse is what is left of them.
		fmt.Fprintf(w, "not copied: the hourly subscriber usage of %s before %s (deleted by store.usage-hour-retention): that day's usage is short on clickhouse\n",
			day0.Format(time.DateOnly), ucut.Format(time.RFC3339))
		ucut = day0 // the days copied whole are those before start's
	}
	var h0 time.Time // the first hour of the top-N lists
	hasHours := false
	for _, table := range []string{"top_h", "tot_h", "tot_m"} {
		t, ok, err := src.FirstRollup(ctx, table)
		if err != nil {
			return 0, err
		}
		if t = t.Truncate(time.Hour); ok && (!hasHours || t.Before(h0)) {
			h0, hasHours = t, true
		}
	}
	var begin time.Time // before every row
	total := 0
	report := func(table string, n int, err error) error {
		if err != nil {
			return err
		}
		total += n
		fmt.Fprintf(w, "copied %d %s rows\n", n, table)
		return nil
	}
	steps := []func() error{
		func() error {
			n, err := copyTable(ctx, "tot_h", name, func(fn func(*store.TotalRow) error) error { return src.EachTotal(ctx, true, begin, mcut, fn) },
				func(rows []store.TotalRow, token string) error { return dst.CopyTotals(ctx, rows, true, token) })
			return report("tot_h", n, err)
		},
		func() error {
			n, err := copyTable(ctx, "tot_m", name, func(fn func(*store.TotalRow) error) error { return src.EachTotal(ctx, false, mcut, start, fn) },
				func(rows []store.TotalRow, token string) error { return dst.CopyTotals(ctx, rows, false, token) })
			return report("tot_m", n, err)
		},
		func() error {
			n, err := copyTable(ctx, "if_h", name, func(fn func(*store.InterfaceRow) error) error {
				return src.EachInterfaceTotal(ctx, true, begin, mcut, fn)
			},
				func(rows []store.InterfaceRow, token string) error {
					return dst.CopyInterfaceTotals(ctx, rows, true, token)
				})
			return report("if_h", n, err)
		},
		func() error {
			n, err := copyTable(ctx, "if_m", name, func(fn func(*store.InterfaceRow) error) error {
				return src.EachInterfaceTotal(ctx, false, mcut, start, fn)
			},
				func(rows []store.InterfaceRow, token string) error {
					return dst.CopyInterfaceTotals(ctx, rows, false, token)
				})
			return report("if_m", n, err)
		},
		func() error {
			n, err := copyTable(ctx, "usage_d", name, func(fn func(*store.UsageRow) error) error { return src.EachUsage(ctx, true, begin, ucut, fn) },
				func(rows []store.UsageRow, token string) error { return dst.CopyUsage(ctx, rows, true, token) })
			return report("usage_d", n, err)
		},
		func() error {
			n, err := copyTable(ctx, "usage_h", name, func(fn func(*store.UsageRow) error) error { return src.EachUsage(ctx, false, ucut, start, fn) },
				func(rows []store.UsageRow, token string) error { return dst.CopyUsage(ctx, rows, false, token) })
			return report("usage_h", n, err)
		},
		func() error {
			n, err := copyTable(ctx, "rate5", name, func(fn func(*store.RateRow) error) error { return src.EachRate(ctx, start, fn) },
				func(rows []store.RateRow, token string) error { return dst.CopyRates(ctx, rows, token) })
			return report("rate5", n, err)
		},
		func() error {
			n, err := copyTable(ctx, "top_h", name, func(fn func(*store.TopRow) error) error { return src.EachTop(ctx, true, begin, start, fn) },
				func(rows []store.TopRow, token string) error { return dst.CopyTop(ctx, rows, true, token) })
			if err == nil && hasHours {
				err = dst.FinishTopCopy(ctx, true, h0, start, name("top_h-done", 0))
			}
			return report("top_h", n, err)
		},
		func() error {
			n, err := copyTable(ctx, "top_m", name, func(fn func(*store.TopRow) error) error { return src.EachTop(ctx, false, mcut, start, fn) },
				func(rows []store.TopRow, token string) error { return dst.CopyTop(ctx, rows, false, token) })
			if err == nil {
				err = dst.FinishTopCopy(ctx, false, mcut, start, name("top_m-done", 0))
			}
			return report("top_m", n, err)
		},
		func() error {
			n, err := copyTable(ctx, "subdom_d", name, func(fn func(*store.SubDomainRow) error) error { return src.EachSubDomain(ctx, begin, day0, fn) },
				func(rows []store.SubDomainRow, token string) error { return dst.CopySubDomains(ctx, rows, token) })
			if err == nil && day0.Before(start) {
				var m int
				m, err = copyTable(ctx, "subdom_d-day0", name, func(fn func(*store.SubDomainRow) error) error {
					var day []store.SubDomainRow
					if err := src.EachSubDomain(ctx, day0, day0.Add(24*time.Hour), func(r *store.SubDomainRow) error { day = append(day, *r); return nil }); err != nil {
						return err
					}
					return each(shares.MinusDomains(day), fn)
				}, func(rows []store.SubDomainRow, token string) error { return dst.CopySubDomains(ctx, rows, token) })
				n += m
			}
			return report("subdom_d", n, err)
		},
		func() error {
			n, err := copyTable(ctx, "subapp_d", name, func(fn func(*store.SubAppRow) error) error { return src.EachSubApp(ctx, begin, day0, fn) },
				func(rows []store.SubAppRow, token string) error { return dst.CopySubApps(ctx, rows, token) })
			if err == nil && day0.Before(start) {
				var m int
				m, err = copyTable(ctx, "subapp_d-day0", name, func(fn func(*store.SubAppRow) error) error {
					var day []store.SubAppRow
					if err := src.EachSubApp(ctx, day0, day0.Add(24*time.Hour), func(r *store.SubAppRow) error { day = append(day, *r); return nil }); err != nil {
						return err
					}
					return each(shares.MinusApps(day), fn)
				}, func(rows []store.SubAppRow, token string) error { return dst.CopySubApps(ctx, rows, token) })
				n += m
			}
			return report("subapp_d", n, err)
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return total, err
		}
	}
	return total, nil
}

// each calls fn with each row, up to its first error.
func each[T any](rows []T, fn func(*T) error) error {
	for i := range rows {
		if err := fn(&rows[i]); err != nil {
			return err
		}
	}
	return nil
}

// copyTable copies one table's rows: read calls its argument with each
// row, and insert writes them copyBatch at a time, each insert named
// after the table and its number. It returns the rows copied.
func copyTable[T any](ctx context.Context, table string, name func(string, int) string, read func(func(*T) error) error, insert func([]T, string) error) (int, error) {
	var rows []T
	n, batch := 0, 0
	flush := func() error {
		if len(rows) == 0 {
			return nil
		}
		if err := insert(rows, name(table, batch)); err != nil {
			return err
		}
		batch++
		n += len(rows)
		rows = rows[:0]
		return ctx.Err()
	}
	err := read(func(r *T) error {
		rows = append(rows, *r)
		if len(rows) >= copyBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return n, fmt.Errorf("cannot copy %s: %w", table, err)
	}
	return n, nil
}
