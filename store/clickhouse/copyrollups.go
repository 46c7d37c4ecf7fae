package clickhouse

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Rollups copied from another store (flowbox store copy): the rows of
// its rollups older than the raw flows copied, each insert named by the
// caller as CopyFlows' are. The views of the tables inserted into fill
// the coarser ones (tot_m fills tot_h, usage_h usage_d), as they do for
// rows made from raw flows.

// restPort marks the rest of a subscriber's day of applications copied
// (store.SubAppRow.Rest) in subapp_d: app '*' with this port, a row the
// views never make (a named application's port is 0).
const restPort = 65535

// insertCopy inserts rows into table (its columns cols, site first) as
// one RowBinary insert named name; row appends one row without the site.
func insertCopy[T any](ctx context.Context, s *Store, table, cols string, rows []T, name string, row func(b []byte, r *T) []byte) error {
	if len(rows) == 0 {
		return nil
	}
	var b []byte
	for i := range rows {
		b = appendString(b, s.c.cfg.Site)
		b = row(b, &rows[i])
	}
	stmt := fmt.Sprintf("INSERT INTO %s.%s (%s) SETTINGS insert_deduplication_token = 'copy-%s' FORMAT RowBinary", s.c.cfg.Database, table, cols, name)
	if err := s.c.Insert(ctx, stmt, b); err != nil {
		return fmt.Errorf("cannot copy %d rows into clickhouse table %s: %w", len(rows), table, err)
	}
	return nil
}

// grainTable returns base's table by minute (_m) or by hour (_h).
func grainTable(base string, hours bool) string {
	if hours {
		return base + "_h"
	}
	return base + "_m"
}

func appendU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

// CopyTotals inserts traffic totals by minute (tot_m, whose view adds
// them to tot_h) or by hour (tot_h) as one insert named name.
func (s *Store) CopyTotals(ctx context.Context, rows []store.TotalRow, hours bool, name string) error {
	return insertCopy(ctx, s, grainTable("tot", hours), "site, t, src, dir, bytes, packets, flows", rows, name, func(b []byte, r *store.TotalRow) []byte {
		b = appendU32(b, uint32(r.T))
		b = appendU64(b, uint64(r.Source))
		b = append(b, byte(r.Direction))
		return appendU64(appendU64(appendU64(b, r.Bytes), r.Packets), r.Flows)
	})
}

// CopyInterfaceTotals inserts interface totals by minute (if_m, whose
// view adds them to if_h) or by hour (if_h) as one insert named name.
func (s *Store) CopyInterfaceTotals(ctx context.Context, rows []store.InterfaceRow, hours bool, name string) error {
	return insertCopy(ctx, s, grainTable("if", hours), "site, t, src, side, ifx, bytes, packets, flows", rows, name, func(b []byte, r *store.InterfaceRow) []byte {
		b = appendU32(b, uint32(r.T))
		b = appendU64(b, uint64(r.Source))
		b = append(b, r.Side)
		b = appendU32(b, r.Interface)
		return appendU64(appendU64(appendU64(b, r.Bytes), r.Packets), r.Flows)
	})
}

// CopyUsage inserts subscriber usage by hour (usage_h, whose view adds
// it to usage_d) or by UTC day (usage_d) as one insert named name.
func (s *Store) CopyUsage(ctx context.Context, rows []store.UsageRow, days bool, name string) error {
	table := "usage_h"
	if days {
		table = "usage_d"
	}
	return insertCopy(ctx, s, table, "site, t, src, sub, down_bytes, up_bytes, down_packets, up_packets, flows", rows, name, func(b []byte, r *store.UsageRow) []byte {
		b = appendU32(b, uint32(r.T))
		b = appendU64(b, uint64(r.Source))
		b = appendString(b, r.Subscriber)
		b = appendU64(appendU64(b, r.DownloadBytes), r.UploadBytes)
		return appendU64(appendU64(appendU64(b, r.DownloadPackets), r.UploadPackets), r.Flows)
	})
}

// CopyRates inserts 5-minute samples (rate5) as one insert named name.
func (s *Store) CopyRates(ctx context.Context, rows []store.RateRow, name string) error {
	return insertCopy(ctx, s, "rate5", "site, kind, src, k, t, a, b", rows, name, func(b []byte, r *store.RateRow) []byte {
		b = append(b, r.Kind)
		b = appendU64(b, uint64(r.Source))
		b = appendString(b, r.Key)
		b = appendU32(b, uint32(r.T))
		return appendU64(appendU64(b, r.A), r.B)
	})
}

// CopyTop inserts top-N rollup rows by minute (top_m) or by hour (top_h)
// as one insert named name, each key in the columns (addr, peer, n, s)
// of its dimension as RollupTop fills them. Record the steps copied with
// FinishTopCopy.
func (s *Store) CopyTop(ctx context.Context, rows []store.TopRow, hours bool, name string) error {
	return insertCopy(ctx, s, grainTable("top", hours), "site, dim, t, src, dir, other, addr, peer, n, s, bytes, packets, flows", rows, name, func(b []byte, r *store.TopRow) []byte {
		e := &r.Entry
		b = append(b, byte(r.Dimension))
		b = appendU32(b, uint32(r.T))
		b = appendU64(b, uint64(r.Source))
		b = append(b, byte(r.Direction))
		var other byte
		var addr, peer []byte
		var n uint64
		var str string
		if r.Other {
			other = 1
		} else {
			switch r.Dimension {
			case store.DimLocalHost, store.DimRemoteHost:
				addr = appendAddr(nil, e.Addr)
			case store.DimConversation:
				addr, peer = appendAddr(nil, e.Addr), appendAddr(nil, e.Peer)
			case store.DimRemoteAS:
				n = uint64(e.AS)
			case store.DimApplication:
				str = e.Name
				if e.Name == "" {
					n = uint64(e.Proto)*65536 + uint64(e.Port)
				}
			case store.DimCountry, store.DimSubscriber, store.DimDomain:
				str = e.Name
			case store.DimProtocol:
				n = uint64(e.Proto)
			}
		}
		b = append(b, other)
		if addr == nil {
			addr = make([]byte, 16)
		}
		if peer == nil {
			peer = make([]byte, 16)
		}
		b = append(append(b, addr...), peer...)
		b = appendU64(b, n)
		b = appendString(b, str)
		return appendU64(appendU64(appendU64(b, e.Bytes), e.Packets), e.Flows)
	})
}

// FinishTopCopy completes the top-N rollups copied of the hours (or
// minutes) of [from, to): it fills their router and interface rows from
// the totals copied (tot_h and if_h, or tot_m and if_m: the other store
// answers those lists from its totals, every interface kept), then
// records each step as done, so that the lists read them and RollupTop
// goes on from to. name names its inserts.
func (s *Store) FinishTopCopy(ctx context.Context, hours bool, from, to time.Time, name string) error {
	if !from.Before(to) {
		return nil
	}
	g := topMinutes
	if hours {
		g = topHours
	}
	db, site := s.c.cfg.Database, quote(s.c.cfg.Site)
	where := fmt.Sprintf("site = %s AND t >= toDateTime(%d) AND t < toDateTime(%d)", site, from.Unix(), to.Unix())
	const cols = "site, dim, t, src, dir, other, addr, peer, n, s, bytes, packets, flows"
	for _, st := range []struct{ what, sel string }{
		{"router", fmt.Sprintf("SELECT site, %d, t, src, dir, 0, toIPv6('::'), toIPv6('::'), 0, '', sum(bytes), sum(packets), sum(flows) FROM %s.%s WHERE %s GROUP BY site, t, src, dir",
			store.DimRouter, db, grainTable("tot", hours), where)},
		{"interface", fmt.Sprintf("SELECT site, if(side = 0, %d, %d), t, src, 0, 0, toIPv6('::'), toIPv6('::'), ifx, '', sum(bytes), sum(packets), sum(flows) FROM %s.%s WHERE %s GROUP BY site, side, t, src, ifx",
			store.DimInInterface, store.DimOutInterface, db, grainTable("if", hours), where)},
	} {
		stmt := fmt.Sprintf("INSERT INTO %s.%s (%s) SETTINGS insert_deduplication_token = 'copy-%s-%s' %s", db, g.table, cols, name, st.what, st.sel)
		if err := s.c.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("cannot copy the %s rows of the top-N rollups into clickhouse: %w", st.what, err)
		}
	}
	steps := int64(to.Sub(from) / g.step)
	stmt := fmt.Sprintf("INSERT INTO %s.%s (site, t) SETTINGS insert_deduplication_token = 'copy-%s-done' SELECT %s, toDateTime(%d + number * %d) FROM numbers(%d)",
		db, g.done, name, site, from.Unix(), int64(g.step/time.Second), steps)
	if err := s.c.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("cannot record the top-N rollups copied into clickhouse: %w", err)
	}
	s.Reader.forgetDone()
	return nil
}

// CopySubDomains inserts subscriber domain rows (subdom_d) as one insert
// named name. The rest (store.DomainRest) counts in a list's Other, as
// in the store copied from (store.RankDomains).
func (s *Store) CopySubDomains(ctx context.Context, rows []store.SubDomainRow, name string) error {
	return insertCopy(ctx, s, "subdom_d", "site, sub, t, src, dom, down_bytes, up_bytes, flows", rows, name, func(b []byte, r *store.SubDomainRow) []byte {
		b = appendString(b, r.Subscriber)
		b = appendU32(b, uint32(r.T))
		b = appendU64(b, uint64(r.Source))
		b = appendString(b, r.Domain)
		return appendU64(appendU64(appendU64(b, r.DownloadBytes), r.UploadBytes), r.Flows)
	})
}

// CopySubApps inserts subscriber application rows (subapp_d) as one
// insert named name: a named application as app, else its protocol and
// service port; the rest as app '*' and port restPort, which the
// application lists leave out as the store copied from does.
func (s *Store) CopySubApps(ctx context.Context, rows []store.SubAppRow, name string) error {
	return insertCopy(ctx, s, "subapp_d", "site, t, src, sub, app, proto, port, bytes", rows, name, func(b []byte, r *store.SubAppRow) []byte {
		b = appendU32(b, uint32(r.T))
		b = appendU64(b, uint64(r.Source))
		b = appendString(b, r.Subscriber)
		app, proto, port := r.App, r.Proto, r.Port
		switch {
		case r.Rest:
			app, proto, port = store.DomainRest, 0, restPort
		case app != "":
			proto, port = 0, 0
		}
		b = appendString(b, app)
		b = append(b, proto)
		b = binary.LittleEndian.AppendUint16(b, port)
		return appendU64(b, r.Bytes)
	})
}

// DayShares sums what raw flows add, through the views, to the subscriber
// domains and applications of one UTC day (subdom_d, subapp_d), so that
// the rows of that day copied from another store, which counted the same
// flows, can leave them out (Minus*). It holds a key per subscriber,
// source and domain or application of the day's flows.
type DayShares struct {
	day    int64 // unix seconds
	source func(*store.Flow) int64
	doms   map[shareKey]*store.SubDomainRow
	apps   map[shareKey]*store.SubAppRow
}

// shareKey is a subscriber's domain or application on a source.
type shareKey struct {
	src         int64
	sub, v      string
	proto, port uint32
}

// NewDayShares returns the shares of the UTC day that starts at day.
func (s *Store) NewDayShares(day time.Time) *DayShares {
	return &DayShares{day: day.Unix(), source: s.Ingest.w.source, doms: map[shareKey]*store.SubDomainRow{}, apps: map[shareKey]*store.SubAppRow{}}
}

// Add counts the flows of the day among flows (the others are ignored),
// as subdom_d_mv and subapp_d_mv do: download and upload flows of a
// named subscriber.
func (d *DayShares) Add(flows []store.Flow) {
	for i := range flows {
		f := &flows[i]
		if f.Subscriber == "" || (f.Direction != store.DirDownload && f.Direction != store.DirUpload) ||
			store.FloorDiv(f.End, 86400_000)*86400 != d.day {
			continue
		}
		src, n := d.source(f), f.Scale(f.Bytes)
		dk := shareKey{src: src, sub: f.Subscriber, v: f.RemoteDomain}
		dom := d.doms[dk]
		if dom == nil {
			dom = &store.SubDomainRow{}
			d.doms[dk] = dom
		}
		if f.Direction == store.DirDownload {
			dom.DownloadBytes += n
		} else {
			dom.UploadBytes += n
		}
		dom.Flows++
		ak := shareKey{src: src, sub: f.Subscriber, v: f.Application}
		if f.Application == "" {
			ak.proto, ak.port = uint32(f.Proto), uint32(f.ServicePort())
		}
		app := d.apps[ak]
		if app == nil {
			app = &store.SubAppRow{}
			d.apps[ak] = app
		}
		app.Bytes += n
	}
}

// sub returns a - b, or 0 when b is larger.
func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

// MinusDomains returns the rows, every row of the day there is (its
// other days' rows pass unchanged), less the shares: each share from the
// row of its key, else (a domain the other store folded) from the
// subscriber's rest row (store.DomainRest), down to 0. Rows left empty
// are dropped.
func (d *DayShares) MinusDomains(rows []store.SubDomainRow) []store.SubDomainRow {
	at := map[shareKey]int{}
	for i, r := range rows {
		if r.T == d.day {
			at[shareKey{src: r.Source, sub: r.Subscriber, v: r.Domain}] = i
		}
	}
	for k, sh := range d.doms {
		i, ok := at[k]
		if !ok {
			if i, ok = at[shareKey{src: k.src, sub: k.sub, v: store.DomainRest}]; !ok {
				continue
			}
		}
		r := &rows[i]
		r.DownloadBytes, r.UploadBytes, r.Flows = sub(r.DownloadBytes, sh.DownloadBytes), sub(r.UploadBytes, sh.UploadBytes), sub(r.Flows, sh.Flows)
	}
	out := rows[:0]
	for _, r := range rows {
		if r.DownloadBytes|r.UploadBytes|r.Flows != 0 {
			out = append(out, r)
		}
	}
	return out
}

// MinusApps is MinusDomains for application rows (the rest: Rest). Rows
// of one key are summed first (a day both packed and open).
func (d *DayShares) MinusApps(rows []store.SubAppRow) []store.SubAppRow {
	at := map[shareKey]int{}
	var out []store.SubAppRow
	for _, r := range rows {
		k := shareKey{src: r.Source, sub: r.Subscriber, v: r.App, proto: uint32(r.Proto), port: uint32(r.Port)}
		if r.Rest {
			k = shareKey{src: r.Source, sub: r.Subscriber, v: store.DomainRest, port: restPort}
		}
		if r.T != d.day {
			out = append(out, r)
			continue
		}
		if i, ok := at[k]; ok {
			out[i].Bytes += r.Bytes
			continue
		}
		at[k] = len(out)
		out = append(out, r)
	}
	for k, sh := range d.apps {
		i, ok := at[k]
		if !ok {
			if i, ok = at[shareKey{src: k.src, sub: k.sub, v: store.DomainRest, port: restPort}]; !ok {
				continue
			}
		}
		out[i].Bytes = sub(out[i].Bytes, sh.Bytes)
	}
	kept := out[:0]
	for _, r := range out {
		if r.Bytes != 0 {
			kept = append(kept, r)
		}
	}
	return kept
}
