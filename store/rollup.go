package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Dimension is what a top-N list ranks.
type Dimension uint8

// Dimensions kept in the rollups (top-K per router, direction and minute).
const (
	DimLocalHost    Dimension = iota + 1 // subscriber-side address (Flow.LocalRemote)
	DimRemoteHost                        // remote-side address
	DimRemoteAS                          // AS of the remote side
	DimApplication                       // application label, else protocol/service port
	DimCountry                           // country of the remote side
	DimConversation                      // local and remote address pair
	DimSubscriber                        // subscriber name
	numRollupDims   = iota
)

// Dimensions answered from the totals rollups or, for the last three, from
// raw flows only.
const (
	DimRouter       Dimension = iota + 16 // router (or unknown exporter)
	DimDirection                          // download, upload...
	DimInInterface                        // input interface (ifIndex)
	DimOutInterface                       // output interface (ifIndex)
	DimProtocol                           // IP protocol (raw only)
	DimSrcPort                            // source port (raw only)
	DimDstPort                            // destination port (raw only)
)

var dimNames = map[Dimension]string{
	DimLocalHost: "local-host", DimRemoteHost: "remote-host", DimRemoteAS: "remote-as",
	DimApplication: "application", DimCountry: "country", DimConversation: "conversation",
	DimSubscriber: "subscriber", DimRouter: "router", DimDirection: "direction",
	DimInInterface: "in-interface", DimOutInterface: "out-interface", DimProtocol: "protocol",
	DimSrcPort: "src-port", DimDstPort: "dst-port",
}

// String returns the name used in the API ("local-host"...).
func (d Dimension) String() string {
	if n, ok := dimNames[d]; ok {
		return n
	}
	return fmt.Sprintf("dimension(%d)", uint8(d))
}

// ParseDimension is the inverse of Dimension.String. Unknown names give a
// *QueryError.
func ParseDimension(s string) (Dimension, error) {
	for d, n := range dimNames {
		if n == s {
			return d, nil
		}
	}
	return 0, &QueryError{Field: "dimension", Msg: fmt.Sprintf("unknown dimension %q", s)}
}

// Dimensions returns every dimension, in API order.
func Dimensions() []Dimension {
	return []Dimension{DimLocalHost, DimRemoteHost, DimRemoteAS, DimApplication, DimCountry,
		DimConversation, DimSubscriber, DimRouter, DimDirection, DimInInterface, DimOutInterface,
		DimProtocol, DimSrcPort, DimDstPort}
}

func (d Dimension) inRollups() bool { return d >= DimLocalHost && d < DimLocalHost+numRollupDims }

// Rollup keys are byte strings. The "other" row has the empty key, so every
// real key is non-empty: an unknown string value is "\x00".
const otherKey = ""

func strKey(s string) string {
	if s == "" {
		return "\x00"
	}
	return s
}

func addrKey(a netip.Addr) string {
	if !a.IsValid() {
		return "\x00"
	}
	return string(a.Unmap().AsSlice())
}

// dimKeyOf returns the rollup key of f for dimension d.
func dimKeyOf(d Dimension, f *Flow, local, remote netip.Addr) string {
	switch d {
	case DimLocalHost:
		return addrKey(local)
	case DimRemoteHost:
		return addrKey(remote)
	case DimRemoteAS:
		as := f.DstAS
		if f.Direction == DirDownload {
			as = f.SrcAS
		}
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], as)
		return string(b[:])
	case DimApplication:
		if f.Application != "" {
			return "A" + f.Application
		}
		port := servicePort(f)
		return string([]byte{'P', f.Proto, byte(port >> 8), byte(port)})
	case DimCountry:
		if f.Direction == DirDownload {
			return strKey(f.SrcCountry)
		}
		return strKey(f.DstCountry)
	case DimConversation:
		l, r := addrKey(local), addrKey(remote)
		return string([]byte{byte(len(l))}) + l + r
	case DimSubscriber:
		return strKey(f.Subscriber)
	}
	return "\x00"
}

// servicePort is the remote side's port for downloads and uploads, else the
// lower port.
func servicePort(f *Flow) uint16 {
	switch f.Direction {
	case DirDownload:
		return f.SrcPort
	case DirUpload:
		return f.DstPort
	}
	if f.SrcPort != 0 && (f.DstPort == 0 || f.SrcPort < f.DstPort) {
		return f.SrcPort
	}
	return f.DstPort
}

// counters are scaled bytes and packets and a flow count.
type counters struct {
	bytes, packets, flows uint64
}

func (c *counters) add(o counters) {
	c.bytes += o.bytes
	c.packets += o.packets
	c.flows += o.flows
}

type totKey struct {
	t   int64 // minute, unix seconds
	src int64
	dir Direction
}

type ifKey struct {
	t    int64
	src  int64
	ifx  uint32
	side uint8
}

type dimKey struct {
	t   int64
	src int64
	dir Direction
	k   string
}

// Bounds of the aggregator's maps.
const (
	// maxIfKeys bounds interface entries; more go to interface otherIf.
	maxIfKeys = 20000
	otherIf   = ^uint32(0)
)

// aggregator accumulates the rollups of the flows written since the last
// flush. It is owned by the writer goroutine (and the one helper goroutine
// that writeGroup runs while the writer waits).
type aggregator struct {
	topK    int
	maxKeys int // per dimension, across buckets
	metrics *metrics
	tot     map[totKey]*counters
	ifs     map[ifKey]*counters
	dims    [numRollupDims]map[dimKey]*counters
}

func newAggregator(topK int, m *metrics) *aggregator {
	a := &aggregator{topK: topK, maxKeys: max(50000, 20*topK), metrics: m}
	a.reset()
	return a
}

func (a *aggregator) reset() {
	a.tot = map[totKey]*counters{}
	a.ifs = map[ifKey]*counters{}
	for i := range a.dims {
		a.dims[i] = map[dimKey]*counters{}
	}
}

func (a *aggregator) empty() bool { return len(a.tot) == 0 }

// sourceOf returns the rollup source of a flow: its router id, or minus its
// exporter id when the exporter belongs to no router.
func sourceOf(f *Flow, exporters map[netip.Addr]int64) int64 {
	if f.RouterID != 0 {
		return f.RouterID
	}
	return -exporters[f.Exporter.Addr().Unmap()]
}

// add accumulates flows (whose End is their filing time).
func (a *aggregator) add(flows []Flow, exporters map[netip.Addr]int64) {
	for i := range flows {
		f := &flows[i]
		c := counters{bytes: f.Scale(f.Bytes), packets: f.Scale(f.Packets), flows: 1}
		t := f.End / 60000 * 60
		src := sourceOf(f, exporters)
		bump(a.tot, totKey{t, src, f.Direction}, c)
		a.addIf(ifKey{t, src, f.InIf, 0}, c)
		a.addIf(ifKey{t, src, f.OutIf, 1}, c)
		local, remote := f.LocalRemote()
		for d := range a.dims {
			m := a.dims[d]
			bump(m, dimKey{t, src, f.Direction, dimKeyOf(Dimension(d+1), f, local, remote)}, c)
			if len(m) > a.maxKeys {
				a.prune(d)
			}
		}
	}
}

func bump[K comparable](m map[K]*counters, k K, c counters) {
	if p := m[k]; p != nil {
		p.add(c)
		return
	}
	m[k] = &c
}

func (a *aggregator) addIf(k ifKey, c counters) {
	if _, ok := a.ifs[k]; !ok && len(a.ifs) >= maxIfKeys {
		k.ifx = otherIf
	}
	bump(a.ifs, k, c)
}

// prune folds all but the largest quarter of dimension d's keys into their bucket's
// "other" row, keeping the map within its bound. Totals are unchanged.
func (a *aggregator) prune(d int) {
	m := a.dims[d]
	vals := make([]uint64, 0, len(m))
	for k, c := range m {
		if k.k != otherKey {
			vals = append(vals, c.bytes)
		}
	}
	keep := a.maxKeys / 4
	if len(vals) <= keep {
		return
	}
	slices.Sort(vals)
	threshold := vals[len(vals)-keep] // keys below it are folded
	for k, c := range m {
		if k.k == otherKey || c.bytes >= threshold {
			continue
		}
		delete(m, k)
		o := k
		o.k = otherKey
		bump(m, o, *c)
		a.metrics.rollupPruned.Inc()
	}
}

// flushRollups writes the accumulated minute rollups additively (so minutes
// flushed twice, e.g. for late flows, add up) and marks their hours for
// rebuilding. On error the rollups stay in memory for the next attempt.
func (s *Store) flushRollups(ctx context.Context) error {
	a := s.wr.agg
	if a.empty() {
		return nil
	}
	start := time.Now()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cannot begin rollup flush: %w", describeWriteError(err))
	}
	defer tx.Rollback()
	if err := a.write(ctx, tx); err != nil {
		return fmt.Errorf("cannot flush rollups: %w", describeWriteError(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cannot commit rollups: %w", describeWriteError(err))
	}
	a.reset()
	s.metrics.flushSeconds.Observe(time.Since(start).Seconds())
	return nil
}

func (a *aggregator) write(ctx context.Context, tx *sql.Tx) error {
	const upsert = " ON CONFLICT DO UPDATE SET bytes = bytes + excluded.bytes, packets = packets + excluded.packets, flows = flows + excluded.flows"
	tot, err := tx.PrepareContext(ctx, "INSERT INTO tot_m (t, src, dir, bytes, packets, flows) VALUES (?,?,?,?,?,?)"+upsert)
	if err != nil {
		return err
	}
	defer tot.Close()
	hours := map[int64]struct{}{}
	for k, c := range a.tot {
		hours[k.t/3600*3600] = struct{}{}
		if _, err := tot.ExecContext(ctx, k.t, k.src, k.dir, clampInt(c.bytes), clampInt(c.packets), clampInt(c.flows)); err != nil {
			return err
		}
	}
	ifs, err := tx.PrepareContext(ctx, "INSERT INTO if_m (t, src, ifx, side, bytes, packets, flows) VALUES (?,?,?,?,?,?,?)"+upsert)
	if err != nil {
		return err
	}
	defer ifs.Close()
	for k, c := range a.ifs {
		if _, err := ifs.ExecContext(ctx, k.t, k.src, int64(k.ifx), k.side, clampInt(c.bytes), clampInt(c.packets), clampInt(c.flows)); err != nil {
			return err
		}
	}
	top, err := tx.PrepareContext(ctx, "INSERT INTO top_m (dim, t, src, dir, k, bytes, packets, flows) VALUES (?,?,?,?,?,?,?,?)"+upsert)
	if err != nil {
		return err
	}
	defer top.Close()
	for d := range a.dims {
		type entry struct {
			k string
			c *counters
		}
		buckets := map[totKey][]entry{}
		for k, c := range a.dims[d] {
			bk := totKey{k.t, k.src, k.dir}
			buckets[bk] = append(buckets[bk], entry{k.k, c})
		}
		for bk, es := range buckets {
			slices.SortFunc(es, func(x, y entry) int {
				if (x.k == otherKey) != (y.k == otherKey) {
					if x.k == otherKey {
						return 1
					}
					return -1
				}
				return cmp.Compare(y.c.bytes, x.c.bytes)
			})
			var other counters
			for i, e := range es {
				if i >= a.topK || e.k == otherKey {
					other.add(*e.c)
					continue
				}
				if _, err := top.ExecContext(ctx, d+1, bk.t, bk.src, bk.dir, []byte(e.k),
					clampInt(e.c.bytes), clampInt(e.c.packets), clampInt(e.c.flows)); err != nil {
					return err
				}
			}
			if other.flows > 0 {
				if _, err := top.ExecContext(ctx, d+1, bk.t, bk.src, bk.dir, []byte{},
					clampInt(other.bytes), clampInt(other.packets), clampInt(other.flows)); err != nil {
					return err
				}
			}
		}
	}
	for h := range hours {
		if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO rollup_pending (hour) VALUES (?)", h); err != nil {
			return err
		}
	}
	return nil
}

// hourGrace is how long after its end an hour is rebuilt from its minutes.
const hourGrace = 2 * time.Minute

// rebuildHours (re)builds the hour rollups of every pending hour that is
// over, from its minute rollups, keeping the top-K per dimension.
func (s *Store) rebuildHours(ctx context.Context, now time.Time) error {
	rows, err := s.w.QueryContext(ctx, "SELECT hour FROM rollup_pending WHERE hour + 3600 <= ? ORDER BY hour",
		now.Add(-hourGrace).Unix())
	if err != nil {
		return fmt.Errorf("cannot list pending hours: %w", err)
	}
	var hours []int64
	for rows.Next() {
		var h int64
		if err := rows.Scan(&h); err != nil {
			rows.Close()
			return fmt.Errorf("cannot list pending hours: %w", err)
		}
		hours = append(hours, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot list pending hours: %w", err)
	}
	for _, h := range hours {
		if err := s.rebuildHour(ctx, h); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) rebuildHour(ctx context.Context, h int64) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cannot rebuild hour rollups: %w", describeWriteError(err))
	}
	defer tx.Rollback()
	stmts := []struct {
		q    string
		args []any
	}{
		{"DELETE FROM tot_h WHERE t = ?", []any{h}},
		{"DELETE FROM if_h WHERE t = ?", []any{h}},
		{`INSERT INTO tot_h (t, src, dir, bytes, packets, flows)
			SELECT ?1, src, dir, sum(bytes), sum(packets), sum(flows) FROM tot_m WHERE t >= ?1 AND t < ?1 + 3600 GROUP BY src, dir`, []any{h}},
		{`INSERT INTO if_h (t, src, ifx, side, bytes, packets, flows)
			SELECT ?1, src, ifx, side, sum(bytes), sum(packets), sum(flows) FROM if_m WHERE t >= ?1 AND t < ?1 + 3600 GROUP BY src, ifx, side`, []any{h}},
	}
	for d := DimLocalHost; d < DimLocalHost+numRollupDims; d++ {
		stmts = append(stmts,
			struct {
				q    string
				args []any
			}{"DELETE FROM top_h WHERE dim = ? AND t = ?", []any{d, h}},
			struct {
				q    string
				args []any
			}{`INSERT INTO top_h (dim, t, src, dir, k, bytes, packets, flows)
				SELECT ?1, ?2, src, dir, CASE WHEN rn <= ?3 AND k != x'' THEN k ELSE x'' END AS kk, sum(b), sum(p), sum(f)
				FROM (SELECT src, dir, k, b, p, f, row_number() OVER (PARTITION BY src, dir ORDER BY k = x'', b DESC) AS rn
					FROM (SELECT src, dir, k, sum(bytes) AS b, sum(packets) AS p, sum(flows) AS f FROM top_m
						WHERE dim = ?1 AND t >= ?2 AND t < ?2 + 3600 GROUP BY src, dir, k))
				GROUP BY src, dir, kk`, []any{d, h, s.cfg.TopK}})
	}
	stmts = append(stmts, struct {
		q    string
		args []any
	}{"DELETE FROM rollup_pending WHERE hour = ?", []any{h}})
	for _, st := range stmts {
		if _, err := tx.ExecContext(ctx, st.q, st.args...); err != nil {
			return fmt.Errorf("cannot rebuild hour rollups: %w", describeWriteError(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cannot rebuild hour rollups: %w", describeWriteError(err))
	}
	return nil
}
