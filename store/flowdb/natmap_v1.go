package flowdb

// Format 1 of the NAT day tables (flowbox before blocks): one row per
// mapping in nat_YYYYMMDD,
//
//	m, pub, port, off, proto   minute of last seen, public address and
//	                           port, ms into the minute, protocol
//	k    router (uvarint), inside port (2 bytes), inside address
//	dur  last seen - first seen, ms
//	v    far end port (2 bytes), far ends (uvarint), flows (uvarint),
//	     far end address (0, 4 or 16 bytes)
//
// The writer converts such tables into blocks when it opens the store.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// natConvertV1 converts the day tables of format 1 into blocks, a day per
// transaction (a failure leaves that day as it was, and the store does not
// open: nothing is lost).
func (s *FlowDB) natConvertV1(ctx context.Context) error {
	c := s.nat
	var old []*natDay
	for _, d := range c.days {
		if d.format == 1 {
			old = append(old, d)
		}
	}
	slices.SortFunc(old, func(a, b *natDay) int { return int(a.start/1000 - b.start/1000) })
	for _, d := range old {
		t0 := time.Now()
		nd, err := s.natConvertDay(ctx, d)
		if err != nil {
			return fmt.Errorf("cannot convert the NAT mappings of %s: %w", d.name, err)
		}
		c.days[d.start] = nd
		s.logger.Info("converted NAT mappings to blocks", "from", d.name, "to", nd.name, "entries", nd.rows,
			"took", time.Since(t0).Round(time.Millisecond))
	}
	return nil
}

func (s *FlowDB) natConvertDay(ctx context.Context, d *natDay) (*natDay, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot begin: %w", err)
	}
	defer tx.Rollback()
	w := natDayWriter{tx: tx, days: map[int64]*natDay{}}
	defer w.close()
	q, err := tx.PrepareContext(ctx, "SELECT m, pub, port, off, proto, k, dur, v FROM "+d.name+" WHERE m = ?")
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", d.name, err)
	}
	defer q.Close()
	var entries []natStored
	for m := range int64(natDayMs / natMinuteMs) {
		entries = entries[:0]
		rows, err := q.QueryContext(ctx, m)
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", d.name, err)
		}
		for rows.Next() {
			var mm, off, port, proto, dur int64
			var pub, k, v []byte
			if err := rows.Scan(&mm, &pub, &port, &off, &proto, &k, &dur, &v); err != nil {
				rows.Close()
				return nil, fmt.Errorf("cannot read %s: %w", d.name, err)
			}
			var e natStored
			a, ok := natAddr16(pub)
			if !ok || a == ([16]byte{}) {
				rows.Close()
				return nil, fmt.Errorf("cannot read %s: invalid public address of %d bytes", d.name, len(pub))
			}
			if err := decodeNATKV(&e, k, v); err != nil {
				rows.Close()
				return nil, fmt.Errorf("cannot read %s: %w", d.name, err)
			}
			e.key.pub, e.key.pport, e.key.proto = a, uint16(port), uint8(proto)
			e.last = d.start + mm*natMinuteMs + off
			e.first = e.last - dur
			entries = append(entries, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", d.name, err)
		}
		slices.SortFunc(entries, func(a, b natStored) int { return cmpStored(&a, &b) })
		if err := s.nat.enc.blocks(entries, func(b *natBlock) error { return w.insert(ctx, b) }); err != nil {
			return nil, err
		}
	}
	nd := w.days[d.start]
	dw := w.open[d.start]
	if nd == nil {
		// No row: an empty table of the new format.
		if dw, err = w.day(ctx, d.start); err != nil {
			return nil, err
		}
		nd = dw.d
	}
	if _, err := tx.ExecContext(ctx, "DROP TABLE "+d.name); err != nil {
		return nil, fmt.Errorf("cannot drop %s: %w", d.name, err)
	}
	nd.maxSpan, nd.maxLast, nd.rows = dw.maxSpan, dw.maxLast, dw.rows
	if _, err := tx.ExecContext(ctx, "UPDATE nat_days SET name = ?, format = ?, max_span = ?, max_last = ?, rows = ? WHERE day = ?",
		nd.name, natFormat, nd.maxSpan, nd.maxLast, nd.rows, d.start/1000); err != nil {
		return nil, fmt.Errorf("cannot record %s: %w", nd.name, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("cannot commit: %w", err)
	}
	return nd, nil
}

// natAddr16 reads a 4- or 16-byte address (the zero array for none).
func natAddr16(b []byte) ([16]byte, bool) {
	if len(b) == 0 {
		return [16]byte{}, true
	}
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		return [16]byte{}, false
	}
	return a.As16(), true
}

// decodeNATKV decodes a format 1 row's k and v into r.
func decodeNATKV(r *natStored, k, v []byte) error {
	router, n := binary.Uvarint(k)
	if n <= 0 || len(k) < n+2 {
		return fmt.Errorf("invalid NAT row key of %d bytes", len(k))
	}
	r.key.router, r.key.iport = int64(router), binary.BigEndian.Uint16(k[n:])
	in, ok := natAddr16(k[n+2:])
	if !ok || len(k) == n+2 {
		return fmt.Errorf("invalid inside address of %d bytes", len(k)-n-2)
	}
	r.key.in = in
	if len(v) < 4 {
		return fmt.Errorf("invalid NAT row value of %d bytes", len(v))
	}
	r.rport = binary.BigEndian.Uint16(v)
	v = v[2:]
	remotes, n := binary.Uvarint(v)
	if n <= 0 {
		return errors.New("invalid NAT row value")
	}
	v = v[n:]
	flows, n := binary.Uvarint(v)
	if n <= 0 {
		return errors.New("invalid NAT row value")
	}
	if r.remote, ok = natAddr16(v[n:]); !ok {
		return fmt.Errorf("invalid far end address of %d bytes", len(v)-n)
	}
	r.remotes, r.flows = uint32(remotes), flows
	return nil
}
