package flowdb

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Rollups read for a copy to another store (flowbox store copy): each
// table's rows of a time range, decoded (packed days unpacked, rollup keys
// described), read-only. Each Each* method stops at fn's first error.

// FirstRollup returns the start of the oldest bucket of a rollup table
// (tot_m, tot_h, if_m, if_h, usage_h, usage_d, top_m or top_h); ok is
// false when it is empty.
func (s *FlowDB) FirstRollup(ctx context.Context, table string) (t time.Time, ok bool, err error) {
	switch table {
	case "tot_m", "tot_h", "if_m", "if_h", "usage_h", "usage_d", "top_m", "top_h":
	default:
		return t, false, fmt.Errorf("cannot find the first rollup of %q: not a rollup table", table)
	}
	var first sql.NullInt64
	if table == "top_m" || table == "top_h" {
		// One seek per dimension (the key starts with it).
		for d := store.DimLocalHost; d < store.DimLocalHost+store.NumRollupDims; d++ {
			var v sql.NullInt64
			if err := s.r.QueryRowContext(ctx, "SELECT min(t) FROM "+table+" WHERE dim = ?", d).Scan(&v); err != nil {
				return t, false, fmt.Errorf("cannot find the first rollup of %s: %w", table, err)
			}
			if v.Valid && (!first.Valid || v.Int64 < first.Int64) {
				first = v
			}
		}
	} else if err := s.r.QueryRowContext(ctx, "SELECT min(t) FROM "+table).Scan(&first); err != nil {
		return t, false, fmt.Errorf("cannot find the first rollup of %s: %w", table, err)
	}
	if !first.Valid {
		return t, false, nil
	}
	return time.Unix(first.Int64, 0).UTC(), true, nil
}

// eachRow runs query and calls scan for each row.
func (s *FlowDB) eachRow(ctx context.Context, what, query string, args []any, scan func(*sql.Rows) error) error {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read %s: %w", what, err)
	}
	return nil
}

// grain returns the table of a rollup by minute (or by hour).
func grain(base string, hours bool) string {
	if hours {
		return base + "_h"
	}
	return base + "_m"
}

// EachTotal calls fn with each row of the traffic totals by minute
// (tot_m), or by hour (tot_h), of [from, to).
func (s *FlowDB) EachTotal(ctx context.Context, hours bool, from, to time.Time, fn func(*store.TotalRow) error) error {
	table := grain("tot", hours)
	var r store.TotalRow
	return s.eachRow(ctx, table, "SELECT t, src, dir, bytes, packets, flows FROM "+table+" WHERE t >= ? AND t < ?", []any{from.Unix(), to.Unix()}, func(rows *sql.Rows) error {
		var by, pk, fl int64
		if err := rows.Scan(&r.T, &r.Source, &r.Direction, &by, &pk, &fl); err != nil {
			return fmt.Errorf("cannot read %s: %w", table, err)
		}
		r.Bytes, r.Packets, r.Flows = uint64(by), uint64(pk), uint64(fl)
		return fn(&r)
	})
}

// EachInterfaceTotal calls fn with each row of the interface totals by
// minute (if_m), or by hour (if_h), of [from, to).
func (s *FlowDB) EachInterfaceTotal(ctx context.Context, hours bool, from, to time.Time, fn func(*store.InterfaceRow) error) error {
	table := grain("if", hours)
	var r store.InterfaceRow
	return s.eachRow(ctx, table, "SELECT t, src, side, ifx, bytes, packets, flows FROM "+table+" WHERE t >= ? AND t < ?", []any{from.Unix(), to.Unix()}, func(rows *sql.Rows) error {
		var ifx, by, pk, fl int64
		if err := rows.Scan(&r.T, &r.Source, &r.Side, &ifx, &by, &pk, &fl); err != nil {
			return fmt.Errorf("cannot read %s: %w", table, err)
		}
		r.Interface, r.Bytes, r.Packets, r.Flows = uint32(ifx), uint64(by), uint64(pk), uint64(fl)
		return fn(&r)
	})
}

// EachUsage calls fn with each row of the subscriber usage by hour
// (usage_h), or by UTC day (usage_d), of [from, to).
func (s *FlowDB) EachUsage(ctx context.Context, days bool, from, to time.Time, fn func(*store.UsageRow) error) error {
	table := "usage_h"
	if days {
		table = "usage_d"
	}
	var r store.UsageRow
	return s.eachRow(ctx, table, "SELECT t, src, sub, down_bytes, up_bytes, down_packets, up_packets, flows FROM "+table+" WHERE t >= ? AND t < ?",
		[]any{from.Unix(), to.Unix()}, func(rows *sql.Rows) error {
			var c [5]int64
			if err := rows.Scan(&r.T, &r.Source, &r.Subscriber, &c[0], &c[1], &c[2], &c[3], &c[4]); err != nil {
				return fmt.Errorf("cannot read %s: %w", table, err)
			}
			r.DownloadBytes, r.UploadBytes, r.DownloadPackets, r.UploadPackets, r.Flows = uint64(c[0]), uint64(c[1]), uint64(c[2]), uint64(c[3]), uint64(c[4])
			return fn(&r)
		})
}

// EachRate calls fn with each 5-minute sample before to: those of the
// open days (rate5) and those of the packed days (rate5_d, unpacked; the
// samples without traffic are left out).
func (s *FlowDB) EachRate(ctx context.Context, to time.Time, fn func(*store.RateRow) error) error {
	var r store.RateRow
	err := s.eachRow(ctx, "rate5", "SELECT kind, src, k, t, a, b FROM rate5 WHERE t < ?", []any{to.Unix()}, func(rows *sql.Rows) error {
		var a, b int64
		if err := rows.Scan(&r.Kind, &r.Source, &r.Key, &r.T, &a, &b); err != nil {
			return fmt.Errorf("cannot read rate5: %w", err)
		}
		r.A, r.B = uint64(a), uint64(b)
		return fn(&r)
	})
	if err != nil {
		return err
	}
	end := to.Unix()
	return s.eachRow(ctx, "rate5_d", "SELECT kind, src, k, d, x FROM rate5_d WHERE d < ?", []any{end}, func(rows *sql.Rows) error {
		var d int64
		var x []byte
		if err := rows.Scan(&r.Kind, &r.Source, &r.Key, &d, &x); err != nil {
			return fmt.Errorf("cannot read rate5_d: %w", err)
		}
		var ferr error
		if err := decodeRateDay(x, func(i int, a, b uint64) {
			if r.T = d + int64(i)*rateSlot; ferr == nil && r.T < end {
				r.A, r.B = a, b
				ferr = fn(&r)
			}
		}); err != nil {
			return fmt.Errorf("cannot read the 5-minute samples of %s on %s: %w", r.Key, time.Unix(d, 0).UTC().Format(time.DateOnly), err)
		}
		return ferr
	})
}

// EachTop calls fn with each row of the top-N rollups by minute (top_m),
// or by hour (top_h), of [from, to), its key described.
func (s *FlowDB) EachTop(ctx context.Context, hours bool, from, to time.Time, fn func(*store.TopRow) error) error {
	table := grain("top", hours)
	for d := store.DimLocalHost; d < store.DimLocalHost+store.NumRollupDims; d++ {
		r := store.TopRow{Dimension: d}
		err := s.eachRow(ctx, table, "SELECT t, src, dir, k, bytes, packets, flows FROM "+table+" WHERE dim = ? AND t >= ? AND t < ?",
			[]any{d, from.Unix(), to.Unix()}, func(rows *sql.Rows) error {
				var k []byte
				var by, pk, fl int64
				if err := rows.Scan(&r.T, &r.Source, &r.Direction, &k, &by, &pk, &fl); err != nil {
					return fmt.Errorf("cannot read %s: %w", table, err)
				}
				r.Entry = store.TopEntry{}
				if r.Other = len(k) == 0; !r.Other {
					describeKey(d, string(k), &r.Entry)
				}
				r.Entry.Bytes, r.Entry.Packets, r.Entry.Flows = uint64(by), uint64(pk), uint64(fl)
				return fn(&r)
			})
		if err != nil {
			return err
		}
	}
	return nil
}

// EachSubDomain calls fn with each row of the subscriber domains
// (subdom_d) of the UTC days in [from, to).
func (s *FlowDB) EachSubDomain(ctx context.Context, from, to time.Time, fn func(*store.SubDomainRow) error) error {
	var r store.SubDomainRow
	return s.eachRow(ctx, "subdom_d", "SELECT t, src, sub, dom, down_bytes, up_bytes, flows FROM subdom_d WHERE t >= ? AND t < ?",
		[]any{from.Unix(), to.Unix()}, func(rows *sql.Rows) error {
			var down, up, fl int64
			if err := rows.Scan(&r.T, &r.Source, &r.Subscriber, &r.Domain, &down, &up, &fl); err != nil {
				return fmt.Errorf("cannot read subdom_d: %w", err)
			}
			r.DownloadBytes, r.UploadBytes, r.Flows = uint64(down), uint64(up), uint64(fl)
			return fn(&r)
		})
}

// EachSubApp calls fn with each subscriber's traffic per application of
// the UTC days in [from, to): the open days' (subapp_d) and the packed
// days' (subapp_day, unpacked). A day packed then given late flows has
// rows in both: fn gets both.
func (s *FlowDB) EachSubApp(ctx context.Context, from, to time.Time, fn func(*store.SubAppRow) error) error {
	var r store.SubAppRow
	setApp := func(k string) {
		r.Rest = k == subDomainOther
		r.App, r.Proto, r.Port = "", 0, 0
		if !r.Rest {
			r.App, r.Proto, r.Port = appKey(k)
		}
	}
	err := s.eachRow(ctx, "subapp_d", "SELECT t, src, sub, app, down_bytes + up_bytes FROM subapp_d WHERE t >= ? AND t < ?",
		[]any{from.Unix(), to.Unix()}, func(rows *sql.Rows) error {
			var app []byte
			var n int64
			if err := rows.Scan(&r.T, &r.Source, &r.Subscriber, &app, &n); err != nil {
				return fmt.Errorf("cannot read subapp_d: %w", err)
			}
			setApp(string(app))
			r.Bytes = uint64(n)
			return fn(&r)
		})
	if err != nil {
		return err
	}
	return s.eachRow(ctx, "subapp_day", "SELECT t, src, sub, x FROM subapp_day WHERE t >= ? AND t < ?",
		[]any{from.Unix(), to.Unix()}, func(rows *sql.Rows) error {
			var x []byte
			if err := rows.Scan(&r.T, &r.Source, &r.Subscriber, &x); err != nil {
				return fmt.Errorf("cannot read subapp_day: %w", err)
			}
			apps, err := decodeApps(x)
			if err != nil {
				return fmt.Errorf("cannot read the applications of %s on %s: %w", r.Subscriber, time.Unix(r.T, 0).UTC().Format(time.DateOnly), err)
			}
			for _, a := range apps {
				setApp(a.App)
				r.Bytes = a.Bytes
				if err := fn(&r); err != nil {
					return err
				}
			}
			return nil
		})
}

// FirstWhole returns the start of the first step (an hour or a UTC day:
// step) whose rows of a fine rollup table (tot_m and if_m, kept
// minute-retention; usage_h, kept usage-hour-retention) are all still
// there: the step of the table's first row when retention deleted none
// of it, else the next one. ok is false when the table is empty.
func (s *FlowDB) FirstWhole(ctx context.Context, table string, step time.Duration) (t time.Time, ok bool, err error) {
	var keep time.Duration
	switch table {
	case "tot_m", "if_m":
		keep = s.cfg.MinuteRetention
	case "usage_h":
		keep = s.cfg.UsageHourRetention
	default:
		return t, false, fmt.Errorf("cannot find the first whole step of %q: not a minute or hourly rollup", table)
	}
	first, ok, err := s.FirstRollup(ctx, table)
	if err != nil || !ok {
		return t, ok, err
	}
	n := int64(step / time.Second)
	t = time.Unix(store.FloorDiv(first.Unix(), n)*n, 0).UTC()
	if t.Before(s.now().Add(-keep)) {
		t = t.Add(step) // retention may have deleted its first rows
	}
	return t, true, nil
}
