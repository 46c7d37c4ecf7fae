package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/flowbox/flowbox/domains"
	"github.com/flowbox/flowbox/store"
)

// domainParts are the components behind the visited domains: the name
// history, the DNS cache poller and the reverse-DNS fallback (nil when
// domains.enabled is false).
type domainParts struct {
	hist *domains.History
	pol  *domains.Poller
	rev  *domains.Reverse
}

// newDomainParts builds the domain components over the inventory (the
// routers to poll, where the names are kept) and the flow database (the
// top remote hosts the reverse fallback names).
func newDomainParts(cfg domains.Config, st *storage, logger *slog.Logger) (*domainParts, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	log := logger.With("component", "domains")
	hist, err := domains.NewHistory(cfg, st.Inventory, log, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot build the domain history: %w", err)
	}
	pol, err := domains.New(cfg, domains.Deps{Logger: log, Routers: st.Inventory, Dial: domains.DialRouterOS, History: hist})
	if err != nil {
		return nil, fmt.Errorf("cannot build the DNS cache poller: %w", err)
	}
	top := cfg.Reverse.Top
	rev, err := domains.NewReverse(cfg, domains.ReverseDeps{Logger: log, History: hist,
		Top: func(ctx context.Context) ([]netip.Addr, error) { return topRemoteHosts(ctx, st, top, time.Now()) }})
	if err != nil {
		return nil, fmt.Errorf("cannot build the reverse-DNS fallback: %w", err)
	}
	return &domainParts{hist: hist, pol: pol, rev: rev}, nil
}

// topRemoteHosts returns the n busiest remote hosts of the last hour,
// largest first.
func topRemoteHosts(ctx context.Context, st *storage, n int, now time.Time) ([]netip.Addr, error) {
	res, err := st.FlowDB.Top(ctx, store.TopQuery{From: now.Add(-time.Hour), To: now, Dimension: store.DimRemoteHost, N: n})
	if err != nil {
		return nil, fmt.Errorf("cannot read the top remote hosts: %w", err)
	}
	out := make([]netip.Addr, 0, len(res.Entries))
	for _, e := range res.Entries {
		if e.Addr.IsValid() {
			out = append(out, e.Addr)
		}
	}
	return out, nil
}

// domainLabeler adapts the name history to the enrichment's labeler: the
// registrable domain of a name the routers' DNS caches gave the address
// during the flow (reverse DNS names are not visited domains).
type domainLabeler struct{ hist *domains.History }

// RemoteDomain implements enrich.DomainLabeler.
func (d domainLabeler) RemoteDomain(a netip.Addr, fromMs, toMs int64) string {
	dom, _ := d.hist.Domain(a, fromMs, toMs)
	return dom
}

// domainService is the console's view of the domain components.
type domainService struct{ p *domainParts }

// RemoteName implements web.DomainNamer.
func (d domainService) RemoteName(a netip.Addr, from, to time.Time, dom string) (string, bool) {
	l, ok := d.p.hist.LabelIn(a, from.UnixMilli(), to.UnixMilli(), dom)
	if !ok {
		return "", false
	}
	return l.Name, l.Reverse
}

// DomainStatus implements web.DomainNamer: per router, its DNS cache
// polls and whether it is its customers' resolver.
func (d domainService) DomainStatus() any { return d.p.pol.Status() }
