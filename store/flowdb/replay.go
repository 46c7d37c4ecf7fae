package flowdb

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Rollup replay. The rollups are counted in memory and flushed once a
// minute; the raw rows are committed with every batch. A crash (kill -9,
// power loss) between two flushes thus loses up to a minute of rollups
// whose raw rows survive. Each flush records, in its own transaction, the
// last row id of every partition that its rollups include
// (raw_partitions.rolled, see flushRollups), and row ids are assigned
// without gaps, so the rows beyond that watermark are exactly those whose
// rollups were lost: at start the writer decodes them and adds them to the
// aggregator, and the next flush writes their rollups (tot_m, if_m, top_m,
// usage_h and usage_d; the hours and days follow) and moves the watermark.
//
// Exactness: a row is counted once. A crash before a flush commits leaves
// the watermark where it was, with the rollups: its rows are replayed. A
// crash after it leaves nothing to replay. A crash during a replay loses
// the replayed counts with the process, and the next start replays the
// same rows. A clean shutdown flushes, which leaves nothing to replay.
// What the watermark cannot restore is what the raw rows do not hold: the
// flows of a failed write (counted in the rollups but not stored) and
// names beyond the names table's bound (counted under their name before
// the crash, as unknown after).
//
// Cost: ingest pays nothing (one UPDATE per partition written to, once a
// minute, in the flush's transaction). The replay reads the rows of at most
// about a minute, in chunks, while the writer has no batch to write; a
// flush (at the minute tick, when the aggregator is full, or at shutdown)
// finishes it first, since its watermark says every row is counted.

// replayChunkRows is the number of rows the writer reads at a time when it
// counts rows again: a few milliseconds between two batches.
const replayChunkRows = 4096

// replayDicts turn the ids of raw rows back into the names and addresses
// of flows, from the writer's own dictionaries.
type replayDicts struct {
	names     map[int64]string
	addrs     map[uint64]netip.Addr
	exporters map[int64]netip.Addr
}

// replayStats are the numbers of the current replay, for its log line.
type replayStats struct {
	start   time.Time
	rows    int64 // counted again
	damaged int64 // rows that did not decode, skipped
}

// startReplay notes, for each raw partition, the rows written after its
// rollup watermark: their rollups were lost by an unclean stop, and
// replayStep counts them again. Partitions of an older flowbox, which have
// no watermark (its shutdown flushed everything), get one at once.
func (s *FlowDB) startReplay(ctx context.Context) {
	w := s.wr
	var unset []*partition
	var rows int64
	for _, p := range w.parts {
		last := p.nextID - 1
		switch {
		case p.rolled < 0:
			unset = append(unset, p)
		case p.rolled < last:
			p.replayNext, p.replayEnd = p.rolled+1, last
			w.replay = append(w.replay, p)
			rows += last - p.rolled
		}
	}
	if len(unset) > 0 {
		if err := s.setWatermarks(ctx, unset); err != nil {
			// The next flush records them.
			s.logger.Warn("cannot record the rollup watermarks of older partitions", "err", err)
		}
	}
	if len(w.replay) == 0 {
		return
	}
	slices.SortFunc(w.replay, func(a, b *partition) int { return cmp.Compare(a.start, b.start) })
	d := &replayDicts{
		names:     make(map[int64]string, len(w.names)),
		addrs:     make(map[uint64]netip.Addr, len(w.addrs)),
		exporters: make(map[int64]netip.Addr, len(w.exporters)),
	}
	for n, id := range w.names {
		d.names[id] = n
	}
	for a, id := range w.addrs {
		d.addrs[id] = a
	}
	for a, id := range w.exporters {
		d.exporters[id] = a
	}
	w.replayDicts = d
	w.replayStats = replayStats{start: time.Now()}
	s.logger.Info("counting into the rollups again the raw rows written after the last rollup flush (unclean stop)",
		"rows", rows, "partitions", len(w.replay))
}

// setWatermarks records every row of the partitions as rolled up.
func (s *FlowDB) setWatermarks(ctx context.Context, parts []*partition) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.DescribeWriteError(err)
	}
	defer tx.Rollback()
	for _, p := range parts {
		if _, err := tx.ExecContext(ctx, "UPDATE raw_partitions SET rolled = ? WHERE name = ?", p.nextID-1, p.name); err != nil {
			return store.DescribeWriteError(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return store.DescribeWriteError(err)
	}
	for _, p := range parts {
		p.rolled = p.nextID - 1
	}
	return nil
}

// finishReplay counts every row still to replay.
func (s *FlowDB) finishReplay(ctx context.Context) {
	for len(s.wr.replay) > 0 {
		s.replayStep(ctx)
	}
}

// replayStep counts the next chunk of rows to replay into the aggregator.
// A partition whose rows cannot be read is given up, with an error logged:
// its rows stay stored, their minute rollups incomplete (as without the
// replay).
func (s *FlowDB) replayStep(ctx context.Context) {
	w := s.wr
	p := w.replay[0]
	if err := s.replayRows(ctx, p); err != nil {
		s.logger.Error("cannot count raw rows into the rollups again; their minute rollups stay incomplete",
			"partition", p.name, "rows", p.replayEnd-p.replayNext+1, "err", err)
		p.replayNext = p.replayEnd + 1
	}
	if p.replaying() {
		return
	}
	p.replayNext, p.replayEnd = 0, 0
	w.replay = w.replay[1:]
	if len(w.replay) > 0 {
		return
	}
	st := w.replayStats
	s.logger.Info("counted the raw rows of the unclean stop into the rollups", "rows_read", st.rows,
		"damaged_rows", st.damaged, "took", time.Since(st.start).Round(time.Millisecond).String())
	w.replay, w.replayDicts, w.replayBuf = nil, nil, nil
}

// replayRows reads up to w.replayChunk rows of p from p.replayNext on,
// decodes them and adds them to the aggregator.
func (s *FlowDB) replayRows(ctx context.Context, p *partition) error {
	w := s.wr
	rows, err := s.w.QueryContext(ctx, "SELECT id, x FROM "+p.name+" WHERE id >= ? AND id <= ? ORDER BY id LIMIT ?",
		p.replayNext, p.replayEnd, w.replayChunk)
	if err != nil {
		return err
	}
	defer rows.Close()
	flows := w.replayBuf[:0]
	next := p.replayNext
	var r decodedRow
	for rows.Next() {
		var id int64
		var x sql.RawBytes
		if err := rows.Scan(&id, &x); err != nil {
			return err
		}
		if id != next {
			return fmt.Errorf("row %d is missing", next)
		}
		next++
		if err := decodeRaw(&r, id, p.start, x); err != nil || !w.replayDicts.resolve(&r) {
			w.replayStats.damaged++
			continue
		}
		flows = append(flows, r.Flow)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if next == p.replayNext {
		return fmt.Errorf("rows %d to %d are missing", p.replayNext, p.replayEnd)
	}
	w.agg.add(flows, w.exporters)
	w.replayStats.rows += next - p.replayNext
	p.replayNext = next
	clear(flows) // drop string references
	w.replayBuf = flows[:0]
	return nil
}

// resolve fills the names, interned addresses and exporter of a decoded
// row; false when an id is unknown (a damaged row).
func (d *replayDicts) resolve(r *decodedRow) bool {
	ok := true
	if r.dictMask != 0 {
		r.fillAddrs(func(id uint64) netip.Addr {
			a, found := d.addrs[id]
			ok = ok && found
			return a
		})
	}
	name := func(id uint64) string {
		n, found := d.names[int64(id)]
		ok = ok && found
		return n
	}
	r.Subscriber, r.Application = name(r.names.sub), name(r.names.app)
	r.SrcCountry, r.DstCountry = name(r.names.scc), name(r.names.dcc)
	r.RemoteDomain = name(r.names.dom)
	// Exporter id 0 is the overflow exporter (no address), as at ingest.
	r.Exporter = netip.AddrPortFrom(d.exporters[r.expID], 0)
	return ok
}
