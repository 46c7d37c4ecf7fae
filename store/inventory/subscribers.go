package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/flowbox/flowbox/store"
)

// addr16 returns the 16-byte form of a (IPv4 mapped) for range columns.
func addr16(a netip.Addr) []byte {
	b := a.Unmap().As16() // IPv4 comes back as ::ffff:a.b.c.d
	return b[:]
}

func prefixBounds(p netip.Prefix) (first, last []byte) {
	p = p.Masked()
	f := addr16(p.Addr())
	l := append([]byte(nil), f...)
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	for i := bits; i < 128; i++ {
		l[i/8] |= 1 << (7 - i%8)
	}
	return f, l
}

// ApplySubscriberChanges ends the given current records and inserts new
// ones, in one transaction, and returns the ids of the inserted records in
// order. Ending a record that is already ended leaves it unchanged.
func (s *Inventory) ApplySubscriberChanges(ctx context.Context, ends []store.SubscriberEnd, opens []store.Subscriber) ([]int64, error) {
	if err := s.writable(); err != nil {
		return nil, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot save subscribers: %w", store.DescribeWriteError(err))
	}
	defer tx.Rollback()
	for _, e := range ends {
		if _, err := tx.ExecContext(ctx, "UPDATE subscribers SET valid_to = ? WHERE id = ? AND valid_to IS NULL",
			e.At.UnixMilli(), e.ID); err != nil {
			return nil, fmt.Errorf("cannot end subscriber record %d: %w", e.ID, store.DescribeWriteError(err))
		}
	}
	ids := make([]int64, 0, len(opens))
	if len(opens) > 0 {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO subscribers
			(router_id, prefix, first_addr, last_addr, name, customer_id, mac, source, valid_from, valid_to)
			VALUES (?,?,?,?,?,?,?,?,?,?)`)
		if err != nil {
			return nil, fmt.Errorf("cannot save subscribers: %w", store.DescribeWriteError(err))
		}
		defer stmt.Close()
		for _, o := range opens {
			if !o.Prefix.IsValid() {
				return nil, fmt.Errorf("cannot save subscriber %q: invalid prefix", o.Name)
			}
			p := netip.PrefixFrom(o.Prefix.Addr().Unmap(), min(o.Prefix.Bits(), o.Prefix.Addr().Unmap().BitLen())).Masked()
			first, last := prefixBounds(p)
			var to any
			if !o.ValidTo.IsZero() {
				to = o.ValidTo.UnixMilli()
			}
			res, err := stmt.ExecContext(ctx, o.RouterID, p.String(), first, last, o.Name, o.CustomerID,
				int64(o.MAC&0xffffffffffff), o.Source, o.ValidFrom.UnixMilli(), to)
			if err != nil {
				return nil, fmt.Errorf("cannot save subscriber %q: %w", o.Name, store.DescribeWriteError(err))
			}
			id, err := res.LastInsertId()
			if err != nil {
				return nil, fmt.Errorf("cannot save subscriber %q: %w", o.Name, err)
			}
			ids = append(ids, id)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("cannot save subscribers: %w", store.DescribeWriteError(err))
	}
	return ids, nil
}

const subscriberColumns = "id, router_id, prefix, name, customer_id, mac, source, valid_from, valid_to"

func scanSubscriber(row rowScanner) (store.Subscriber, error) {
	var (
		sub    store.Subscriber
		prefix string
		mac    int64
		from   int64
		to     sql.NullInt64
	)
	if err := row.Scan(&sub.ID, &sub.RouterID, &prefix, &sub.Name, &sub.CustomerID, &mac, &sub.Source, &from, &to); err != nil {
		return sub, err
	}
	p, err := netip.ParsePrefix(prefix)
	if err != nil {
		return sub, fmt.Errorf("subscriber record %d: %w", sub.ID, err)
	}
	sub.Prefix, sub.MAC, sub.ValidFrom = p, uint64(mac), time.UnixMilli(from).UTC()
	if to.Valid {
		sub.ValidTo = time.UnixMilli(to.Int64).UTC()
	}
	return sub, nil
}

// SubscriberHistory returns the records that are current or ended at or
// after since, oldest first.
func (s *Inventory) SubscriberHistory(ctx context.Context, since time.Time) ([]store.Subscriber, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+subscriberColumns+
		" FROM subscribers WHERE valid_to IS NULL OR valid_to >= ? ORDER BY valid_from, id", since.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("cannot load subscribers: %w", err)
	}
	defer rows.Close()
	var out []store.Subscriber
	for rows.Next() {
		sub, err := scanSubscriber(rows)
		if err != nil {
			return nil, fmt.Errorf("cannot load subscribers: %w", err)
		}
		out = append(out, sub)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot load subscribers: %w", err)
	}
	return out, nil
}

// SubscriberAt returns the record naming addr at time at: imported records
// first (the most specific prefix wins), then learned ones by SourceRank.
// It returns ErrNotFound when no record covers addr at that time.
func (s *Inventory) SubscriberAt(ctx context.Context, addr netip.Addr, at time.Time) (store.Subscriber, error) {
	if !addr.IsValid() {
		return store.Subscriber{}, errors.New("cannot look up subscriber: invalid address")
	}
	a := addr16(addr)
	ms := at.UnixMilli()
	rows, err := s.r.QueryContext(ctx, "SELECT "+subscriberColumns+` FROM subscribers
		WHERE first_addr <= ? AND last_addr >= ? AND valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)`, a, a, ms, ms)
	if err != nil {
		return store.Subscriber{}, fmt.Errorf("cannot look up subscriber: %w", err)
	}
	defer rows.Close()
	var (
		best  store.Subscriber
		found bool
	)
	for rows.Next() {
		sub, err := scanSubscriber(rows)
		if err != nil {
			return store.Subscriber{}, fmt.Errorf("cannot look up subscriber: %w", err)
		}
		if !found || subscriberBetter(sub, best) {
			best, found = sub, true
		}
	}
	if err := rows.Err(); err != nil {
		return store.Subscriber{}, fmt.Errorf("cannot look up subscriber: %w", err)
	}
	if !found {
		return store.Subscriber{}, fmt.Errorf("no subscriber for %s at %s: %w", addr, at.UTC().Format(time.RFC3339), store.ErrNotFound)
	}
	return best, nil
}

// SubscriberOn is SubscriberAt for an address seen through one router:
// CGNAT pools of different routers may overlap, so the records the router
// taught (and imported ones, of no router) win over other routers'; when
// only another router's record covers the address, it answers.
func (s *Inventory) SubscriberOn(ctx context.Context, routerID int64, addr netip.Addr, at time.Time) (store.Subscriber, error) {
	if !addr.IsValid() {
		return store.Subscriber{}, errors.New("cannot look up subscriber: invalid address")
	}
	a := addr16(addr)
	ms := at.UnixMilli()
	rows, err := s.r.QueryContext(ctx, "SELECT "+subscriberColumns+` FROM subscribers
		WHERE first_addr <= ? AND last_addr >= ? AND valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)`, a, a, ms, ms)
	if err != nil {
		return store.Subscriber{}, fmt.Errorf("cannot look up subscriber: %w", err)
	}
	defer rows.Close()
	var (
		best  store.Subscriber
		found bool
	)
	mine := func(x store.Subscriber) bool { return x.RouterID == routerID || x.RouterID == 0 }
	for rows.Next() {
		sub, err := scanSubscriber(rows)
		if err != nil {
			return store.Subscriber{}, fmt.Errorf("cannot look up subscriber: %w", err)
		}
		switch {
		case !found:
			best, found = sub, true
		case mine(sub) != mine(best):
			if mine(sub) {
				best = sub
			}
		case subscriberBetter(sub, best):
			best = sub
		}
	}
	if err := rows.Err(); err != nil {
		return store.Subscriber{}, fmt.Errorf("cannot look up subscriber: %w", err)
	}
	if !found {
		return store.Subscriber{}, fmt.Errorf("no subscriber for %s at %s: %w", addr, at.UTC().Format(time.RFC3339), store.ErrNotFound)
	}
	return best, nil
}

// subscriberBetter reports whether a should name an address rather than b
// when both cover it at the same time.
func subscriberBetter(a, b store.Subscriber) bool {
	ra, rb := store.SourceRank(a.Source), store.SourceRank(b.Source)
	if ra != rb {
		return ra < rb
	}
	if a.Prefix.Bits() != b.Prefix.Bits() {
		return a.Prefix.Bits() > b.Prefix.Bits()
	}
	return a.ValidFrom.After(b.ValidFrom)
}
