package store

import (
	"context"
	"net/netip"
	"time"
)

// Visited domains (issue 18): the names remote addresses had, learned from
// the routers' DNS caches (and reverse lookups), with the time range each
// applied, so that a flow is named by what its remote address meant at
// the flow's time. The domains package keeps them in memory and saves
// them here so that a restart keeps them.

// DNSName is one period during which an address had a name.
type DNSName struct {
	Addr netip.Addr `json:"addr"`
	// Name is the name asked (the head of a CNAME chain), Domain its
	// registrable domain.
	Name   string `json:"name"`
	Domain string `json:"domain"`
	// RouterID is the router whose DNS cache held the name most recently;
	// 0 for a reverse (PTR) answer.
	RouterID int64 `json:"router_id"`
	// Reverse is set for names from PTR lookups.
	Reverse bool `json:"reverse"`
	// From is when the address had the name at the latest, To when its
	// TTL ran out (or runs out), Seen when it was last seen.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	Seen time.Time `json:"seen"`
}

// DNSNames keeps the name history (store/inventory implements it). A row
// is identified by its address, name, Reverse and From: saving it again
// extends To and Seen.
type DNSNames interface {
	// SaveDNSNames inserts or extends rows, in one transaction.
	SaveDNSNames(ctx context.Context, names []DNSName) error
	// DNSNameHistory returns the rows that end at or after since, oldest
	// first.
	DNSNameHistory(ctx context.Context, since time.Time) ([]DNSName, error)
	// PruneDNSNames deletes the rows that ended before before and returns
	// how many.
	PruneDNSNames(ctx context.Context, before time.Time) (int64, error)
}
