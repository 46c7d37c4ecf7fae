package clickhouse

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flowbox/flowbox/store"
)

// maxTrackedExporters bounds the writer's last-seen map of exporter
// addresses; beyond it new addresses are counted (Untracked), not kept.
const maxTrackedExporters = 4096

// seen is when this process last took flows of each exporter and router.
type seen struct {
	mu        sync.Mutex
	exporters map[netip.Addr]time.Time
	routers   map[int64]time.Time
	untracked uint64
}

// note records the exporters and routers of a batch at its time.
func (s *seen) note(b *store.Batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exporters == nil {
		s.exporters, s.routers = map[netip.Addr]time.Time{}, map[int64]time.Time{}
	}
	var last netip.Addr
	for i := range b.Flows {
		f := &b.Flows[i]
		if a := f.Exporter.Addr().Unmap(); i == 0 || a != last {
			if _, ok := s.exporters[a]; ok || len(s.exporters) < maxTrackedExporters {
				s.exporters[a] = b.Recv
			} else {
				s.untracked++
			}
			last = a
		}
		if f.RouterID != 0 && (i == 0 || f.RouterID != b.Flows[i-1].RouterID) {
			if _, ok := s.routers[f.RouterID]; ok || len(s.routers) < maxTrackedExporters {
				s.routers[f.RouterID] = b.Recv
			}
		}
	}
}

// ExporterLastSeen returns when this process last took flows from the
// exporter address (false when never since it started).
func (in *Ingest) ExporterLastSeen(addr netip.Addr) (time.Time, bool) {
	in.seen.mu.Lock()
	defer in.seen.mu.Unlock()
	t, ok := in.seen.exporters[addr.Unmap()]
	return t, ok
}

// Untracked counts the exporter addresses seen beyond maxTrackedExporters.
func (in *Ingest) Untracked() uint64 {
	in.seen.mu.Lock()
	defer in.seen.mu.Unlock()
	return in.seen.untracked
}

// routerLastSeen returns when this process last took flows of a router.
func (in *Ingest) routerLastSeen(id int64) (time.Time, bool) {
	in.seen.mu.Lock()
	defer in.seen.mu.Unlock()
	t, ok := in.seen.routers[id]
	return t, ok
}

// LastFlowFrom returns when a flow of the router was last taken by this
// process or, across restarts, the end of its newest flow in ClickHouse,
// whichever is later (false: neither).
func (s *Store) LastFlowFrom(ctx context.Context, routerID int64) (time.Time, bool, error) {
	mem, ok := s.Ingest.routerLastSeen(routerID)
	db, found, err := s.Reader.lastFlowEnd(ctx, routerID)
	if err != nil {
		return time.Time{}, false, err
	}
	if found && db.After(mem) {
		return db, true, nil
	}
	return mem, ok, nil
}

// lastFlowEnd returns the end of the newest flow of a router that
// ClickHouse holds for this site (false: none).
func (r *Reader) lastFlowEnd(ctx context.Context, routerID int64) (time.Time, bool, error) {
	out, err := r.c.Query(ctx, fmt.Sprintf("SELECT count(), toUnixTimestamp64Milli(max(t)) FROM %s.flows WHERE site = %s AND router = %d FORMAT TabSeparated",
		r.c.cfg.Database, quote(r.site), routerID))
	if err != nil {
		return time.Time{}, false, fmt.Errorf("cannot read the last flow of router %d from clickhouse: %w", routerID, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return time.Time{}, false, fmt.Errorf("cannot read the last flow of router %d from clickhouse: %q", routerID, out)
	}
	if f[0] == "0" {
		return time.Time{}, false, nil
	}
	ms, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("cannot read the last flow of router %d from clickhouse: %w", routerID, err)
	}
	return time.UnixMilli(ms).UTC(), true, nil
}
