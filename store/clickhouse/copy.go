package clickhouse

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Copies from another store (flowbox store copy): raw flows and NAT
// mappings (and the older rollups: copyrollups.go), each insert named by the caller (its deduplication token), so
// that a copy that failed half way can be run again for what it had not
// finished without storing twice what ClickHouse still remembers (its
// last 1000 inserts a table).

// CopyFlows inserts flows now (not through the queue), as one insert
// named name; their views fill the rollups.
func (s *Store) CopyFlows(ctx context.Context, flows []store.Flow, name string) error {
	w := s.Ingest.w
	first := w.reserve(len(flows))
	return w.insertNamed(ctx, first, len(flows), "copy-"+name, func(b []byte) []byte {
		for i := range flows {
			b = appendFlow(b, w.site, w.source(&flows[i]), first+uint32(i), &flows[i])
		}
		return b
	})
}

// natColumns are the columns of a NAT mapping copied (appendNAT).
const natColumns = "site, public, public_port, proto, bucket, router, inside, inside_port, first, last, flows, remote, remotes"

// CopyNAT inserts NAT mappings into the nat table as one insert named
// name, each in the 5 minutes of its last flow.
func (s *Store) CopyNAT(ctx context.Context, ms []store.NATMapping, name string) error {
	if len(ms) == 0 {
		return nil
	}
	var b []byte
	for i := range ms {
		b = appendNAT(b, s.c.cfg.Site, &ms[i])
	}
	stmt := fmt.Sprintf("INSERT INTO %s.nat (%s) SETTINGS insert_deduplication_token = 'copy-%s' FORMAT RowBinary", s.c.cfg.Database, natColumns, name)
	if err := s.c.Insert(ctx, stmt, b); err != nil {
		return fmt.Errorf("cannot copy %d NAT mappings into clickhouse: %w", len(ms), err)
	}
	return nil
}

// appendNAT appends m as a RowBinary row of natColumns.
func appendNAT(b []byte, site string, m *store.NATMapping) []byte {
	last := m.LastSeen.Unix()
	b = appendString(b, site)
	b = appendAddr(b, m.PublicAddr)
	b = binary.LittleEndian.AppendUint16(b, m.PublicPort)
	b = append(b, m.Proto)
	b = binary.LittleEndian.AppendUint32(b, uint32(store.FloorDiv(last, 300)*300))
	b = binary.LittleEndian.AppendUint64(b, uint64(m.RouterID))
	b = appendAddr(b, m.InsideAddr)
	b = binary.LittleEndian.AppendUint16(b, m.InsidePort)
	b = binary.LittleEndian.AppendUint32(b, uint32(m.FirstSeen.Unix()))
	b = binary.LittleEndian.AppendUint32(b, uint32(last))
	b = binary.LittleEndian.AppendUint64(b, m.Flows)
	b = binary.LittleEndian.AppendUint32(b, uint32(m.FirstSeen.Unix()))
	b = appendAddr(b, m.RemoteAddr)
	b = binary.LittleEndian.AppendUint16(b, m.RemotePort)
	return binary.LittleEndian.AppendUint32(b, m.Remotes)
}

// Held counts what ClickHouse holds of this site: the flows in [from, to),
// the NAT mappings, and the rows of the hour totals (any time: those a
// copy of older rollups would add to).
func (r *Reader) Held(ctx context.Context, from, to time.Time) (flows, mappings, rollups uint64, err error) {
	out, err := r.c.Query(ctx, fmt.Sprintf("SELECT (SELECT count() FROM %[1]s.flows WHERE site = %[2]s AND t >= fromUnixTimestamp64Milli(%[3]d) AND t < fromUnixTimestamp64Milli(%[4]d)),"+
		" (SELECT count() FROM %[1]s.nat WHERE site = %[2]s), (SELECT count() FROM %[1]s.tot_h WHERE site = %[2]s) FORMAT TabSeparated", r.c.cfg.Database, quote(r.site), from.UnixMilli(), to.UnixMilli()))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("cannot count what clickhouse holds: %w", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		return 0, 0, 0, fmt.Errorf("cannot count what clickhouse holds: %q", out)
	}
	var counts [3]uint64
	for i := range counts {
		if counts[i], err = strconv.ParseUint(f[i], 10, 64); err != nil {
			return 0, 0, 0, fmt.Errorf("cannot count what clickhouse holds: %w", err)
		}
	}
	return counts[0], counts[1], counts[2], nil
}
