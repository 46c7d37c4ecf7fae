package clickhouse

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowbox/flowbox/store"
)

// NAT lookups (table nat, filled at insert by nat_mv), answered as flowdb
// answers them: the mappings in use within the window, a mapping's rows
// joined while the gap between them is under natIdle, a port lookup's
// few mappings followed up to natFollow past the window, the closest to
// the time first.
const (
	natIdle      = 5 * time.Minute
	natFollow    = 24 * time.Hour
	natFollowMax = 100
	// natLongest bounds how long before its end a flow may have started
	// (the routers' active timeout is 30 minutes by default): rows of
	// buckets up to this long after the window are read.
	natLongest = 2 * time.Hour
)

// natKey is one mapping.
type natKey struct {
	router       int64
	proto        uint8
	pub, in      netip.Addr
	pport, iport uint16
}

// natRow is a mapping's use over one or more rows.
type natRow struct {
	key         natKey
	first, last int64 // unix ms, whole seconds
	flows       uint64
	remote      netip.Addr
	rport       uint16
	remotes     uint32
}

// LookupNAT returns the mappings of the public address (and port, and
// protocol) in use within q.Window of q.At.
func (r *Reader) LookupNAT(ctx context.Context, q store.NATQuery) ([]store.NATMapping, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	at := q.At.UnixMilli()
	lo, hi := at-q.Window.Milliseconds(), at+q.Window.Milliseconds()
	found, err := r.natRows(ctx, &q, nil, lo, hi)
	if err != nil {
		return nil, err
	}
	found = joinNAT(found, lo, hi)
	if q.Port != 0 && len(found) > 0 && len(found) <= natFollowMax {
		// Read the mappings' rows up to natFollow on either side: the
		// match then spans the whole use.
		keys := make([]natKey, len(found))
		for i := range found {
			keys[i] = found[i].key
		}
		if found, err = r.natRows(ctx, &q, keys, lo-natFollow.Milliseconds(), hi+natFollow.Milliseconds()); err != nil {
			return nil, err
		}
		found = joinNAT(found, lo, hi)
	}
	out := make([]store.NATMapping, len(found))
	for i := range found {
		m := &found[i]
		out[i] = store.NATMapping{
			RouterID: m.key.router, Proto: m.key.proto, ProtoName: store.ProtoName(m.key.proto),
			PublicAddr: m.key.pub, PublicPort: m.key.pport, InsideAddr: m.key.in, InsidePort: m.key.iport,
			RemoteAddr: m.remote, RemotePort: m.rport, Remotes: m.remotes,
			FirstSeen: time.UnixMilli(m.first).UTC(), LastSeen: time.UnixMilli(m.last).UTC(), Flows: m.flows,
		}
	}
	slices.SortFunc(out, func(a, b store.NATMapping) int { return store.CompareNATMatches(at, &a, &b) })
	out = out[:min(len(out), q.Limit)]
	return out, nil
}

// natRows reads the rows of q's public address (port, protocol; of keys
// when given) whose flows overlap [lo, hi] ms, one per mapping and bucket.
func (r *Reader) natRows(ctx context.Context, q *store.NATQuery, keys []natKey, lo, hi int64) ([]natRow, error) {
	where := fmt.Sprintf("site = %s AND public = toIPv6('%s')", quote(r.site), q.Public.Unmap())
	if q.Port != 0 {
		where += fmt.Sprintf(" AND public_port = %d", q.Port)
	}
	if q.Proto != 0 {
		where += fmt.Sprintf(" AND proto = %d", q.Proto)
	}
	where += fmt.Sprintf(" AND bucket >= toStartOfFiveMinutes(fromUnixTimestamp64Milli(%d)) AND bucket <= fromUnixTimestamp64Milli(%d)",
		lo, hi+natLongest.Milliseconds())
	if len(keys) > 0 {
		ks := make([]string, len(keys))
		for i, k := range keys {
			ks[i] = fmt.Sprintf("(%d, %d, toIPv6('%s'), %d)", k.router, k.proto, k.in, k.iport)
		}
		where += " AND (router, proto, inside, inside_port) IN (" + strings.Join(ks, ", ") + ")"
	}
	out, err := r.c.Query(ctx, fmt.Sprintf("SELECT router, proto, public_port, inside, inside_port, min(first) AS f, max(last) AS l,"+
		" sum(flows), min(remote), max(remotes) FROM %s.nat WHERE %s"+
		" GROUP BY router, proto, public_port, bucket, inside, inside_port HAVING f <= toDateTime(%d) AND l >= toDateTime(%d) FORMAT RowBinary",
		r.c.cfg.Database, where, (hi+natIdle.Milliseconds())/1000+1, (lo-natIdle.Milliseconds())/1000-1))
	if err != nil {
		return nil, fmt.Errorf("cannot look up NAT mappings in clickhouse: %w", err)
	}
	var rows []natRow
	rr := &rowReader{b: out}
	pub := q.Public.Unmap()
	for len(rr.b) > 0 && rr.err == nil {
		m := natRow{key: natKey{router: int64(rr.u64()), proto: rr.u8(), pub: pub, pport: rr.u16(), in: rr.addr(), iport: rr.u16()}}
		m.first, m.last = int64(rr.u32())*1000, int64(rr.u32())*1000
		m.flows = rr.u64()
		rr.u32() // the far end's start
		m.remote, m.rport, m.remotes = rr.addr(), rr.u16(), rr.u32()
		if !m.remote.IsValid() {
			m.rport = 0 // no far end (as flowdb keeps it)
		}
		if rr.err == nil {
			rows = append(rows, m)
		}
	}
	if rr.err != nil {
		return nil, fmt.Errorf("cannot look up NAT mappings in clickhouse: %w", rr.err)
	}
	return rows, nil
}

// joinNAT joins the rows of each mapping whose gap is under natIdle, and
// keeps the joined uses that overlap [lo, hi].
func joinNAT(ms []natRow, lo, hi int64) []natRow {
	slices.SortFunc(ms, func(a, b natRow) int {
		return cmp.Or(cmp.Compare(a.key.router, b.key.router), cmp.Compare(a.key.proto, b.key.proto),
			cmp.Compare(a.key.pport, b.key.pport), bytes.Compare(a.key.in.AsSlice(), b.key.in.AsSlice()),
			cmp.Compare(a.key.iport, b.key.iport), cmp.Compare(a.first, b.first))
	})
	out := ms[:0]
	for _, m := range ms {
		if n := len(out); n > 0 && out[n-1].key == m.key && m.first <= out[n-1].last+natIdle.Milliseconds() {
			p := &out[n-1]
			p.last = max(p.last, m.last)
			p.flows += m.flows
			p.remotes = max(p.remotes, m.remotes)
			continue
		}
		out = append(out, m)
	}
	return slices.DeleteFunc(out, func(m natRow) bool { return m.last < lo || m.first > hi })
}

// NATKeptSince returns the start of the oldest UTC day of NAT mappings
// kept (zero when none is).
func (r *Reader) NATKeptSince(ctx context.Context) (time.Time, error) {
	out, err := r.c.Query(ctx, fmt.Sprintf("SELECT count(), toUnixTimestamp(toStartOfDay(min(bucket))) FROM %s.nat WHERE site = %s FORMAT TabSeparated",
		r.c.cfg.Database, quote(r.site)))
	if err != nil {
		return time.Time{}, fmt.Errorf("cannot read the NAT mapping days from clickhouse: %w", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return time.Time{}, fmt.Errorf("cannot read the NAT mapping days from clickhouse: %q", out)
	}
	if f[0] == "0" {
		return time.Time{}, nil
	}
	s, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("cannot read the NAT mapping days from clickhouse: %w", err)
	}
	return time.Unix(s, 0).UTC(), nil
}

var _ store.NATMappings = (*Reader)(nil)
