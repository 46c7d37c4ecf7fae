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

// SubscriberCustomerIDs returns, for each subscriber (router, name) whose
// records overlap [from, to), the customer id of its latest such record
// that has one (ids come from the CSV import and from
// enrich.customer-id-pattern). Imported records are keyed with RouterID
// 0. As for addresses (SubscriberAt), an imported record wins over the
// routers': when an imported record with an id names the same subscriber
// at an address of a router's record, at an overlapping time, the
// router's key gets the imported id. Subscribers without any id are
// absent.
func (s *Inventory) SubscriberCustomerIDs(ctx context.Context, from, to time.Time) (map[store.SubscriberRef]string, error) {
	f, t := from.UnixMilli(), to.UnixMilli()
	overlap := "valid_from < ? AND (valid_to IS NULL OR valid_to > ?)"
	rows, err := s.r.QueryContext(ctx, "SELECT "+subscriberColumns+" FROM subscribers WHERE "+overlap+
		" AND (customer_id <> '' OR (router_id <> 0 AND name IN (SELECT name FROM subscribers"+
		" WHERE router_id = 0 AND customer_id <> '' AND "+overlap+")))", t, f, t, f)
	if err != nil {
		return nil, fmt.Errorf("cannot read subscriber customer ids: %w", err)
	}
	defer rows.Close()
	var recs []store.Subscriber
	for rows.Next() {
		sub, err := scanSubscriber(rows)
		if err != nil {
			return nil, fmt.Errorf("cannot read subscriber customer ids: %w", err)
		}
		recs = append(recs, sub)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read subscriber customer ids: %w", err)
	}
	return customerIDs(recs, from, to), nil
}

// customerIDs computes SubscriberCustomerIDs from the records that
// overlap [from, to).
func customerIDs(recs []store.Subscriber, from, to time.Time) map[store.SubscriberRef]string {
	// later reports whether a is a later record than b.
	later := func(a, b *store.Subscriber) bool {
		if !a.ValidFrom.Equal(b.ValidFrom) {
			return a.ValidFrom.After(b.ValidFrom)
		}
		return a.ID > b.ID
	}
	// within clips a record's validity to [from, to).
	within := func(r *store.Subscriber) (time.Time, time.Time) {
		start, end := r.ValidFrom, r.ValidTo
		if start.Before(from) {
			start = from
		}
		if end.IsZero() || end.After(to) {
			end = to
		}
		return start, end
	}
	imported := map[string][]*store.Subscriber{} // imported records with an id, by name
	for i := range recs {
		if r := &recs[i]; r.RouterID == 0 && r.CustomerID != "" {
			imported[r.Name] = append(imported[r.Name], r)
		}
	}
	type pick struct {
		own, csv *store.Subscriber // the latest own record with an id; the latest imported one that wins
	}
	picks := map[store.SubscriberRef]*pick{}
	for i := range recs {
		r := &recs[i]
		key := store.SubscriberRef{RouterID: r.RouterID, Name: r.Name}
		p := picks[key]
		if p == nil {
			p = &pick{}
			picks[key] = p
		}
		if r.CustomerID != "" && (p.own == nil || later(r, p.own)) {
			p.own = r
		}
		if r.RouterID == 0 {
			continue
		}
		rs, re := within(r)
		for _, c := range imported[r.Name] {
			cs, ce := within(c)
			if c.Prefix.Overlaps(r.Prefix) && cs.Before(re) && rs.Before(ce) && (p.csv == nil || later(c, p.csv)) {
				p.csv = c
			}
		}
	}
	out := make(map[store.SubscriberRef]string, len(picks))
	for key, p := range picks {
		switch {
		case p.csv != nil:
			out[key] = p.csv.CustomerID
		case p.own != nil:
			out[key] = p.own.CustomerID
		}
	}
	return out
}
