package provision

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/flowbox/flowbox/store"
)

// Two routers behind one address.
//
// The collector tells exporters apart by their source address only: the
// UDP source port is ephemeral (it changes when the router reboots), and
// RouterOS exports IPFIX observation domain 0 on every router (v9 source
// id: unverified), so neither identifies a router. What RouterOS offers is
// the src-address of a traffic-flow target (v6.4x and v7; the default
// 0.0.0.0 means the address of the interface towards the collector). So
// before it points a router at flowbox, the provisioner predicts the
// address the router's flows will come from and, when another router may
// export from it (store.Router.Sources), pins the target's src-address to
// an address of the router's own that no other router claims, and records
// it as the router's ExporterAddr. Where no such address exists (routers
// behind one NAT address, whose NAT rewrites src-address too) or the
// router's targets have no src-address (old RouterOS 6), onboarding
// refuses, naming the other router. Flows are never merged silently.

// ExporterConflictError is returned when a router's flows would come from
// an address that another router may export from, and src-address cannot
// tell the two apart. It wraps store.ErrExporterConflict.
type ExporterConflictError struct {
	// Router is the router being provisioned, Other the router that may
	// already export from Addr.
	Router, Other string
	Addr          netip.Addr
	// Kind says why src-address cannot help: ConflictNAT,
	// ConflictNoAddress or ConflictLegacy.
	Kind string
	// Version is the router's RouterOS version (ConflictLegacy).
	Version string
}

// Kinds of ExporterConflictError.
const (
	// ConflictNAT: flowbox reaches the router at Addr, which is not one of
	// its own addresses: a NAT sits between them and rewrites the source
	// of the router's flows whatever its src-address.
	ConflictNAT = "nat"
	// ConflictNoAddress: the router has no address of its own that no
	// other router claims.
	ConflictNoAddress = "no-address"
	// ConflictLegacy: the router's traffic-flow targets have no
	// src-address (old `address=IP:port` syntax).
	ConflictLegacy = "legacy"
)

func (e *ExporterConflictError) Error() string {
	switch e.Kind {
	case ConflictNAT:
		return fmt.Sprintf("%s %s, the address flowbox reaches this router at: routers behind one NAT address cannot be told apart (the NAT rewrites src-address too): give this router its own address towards flowbox (a public address, a 1:1 NAT or a VPN)",
			e.exportsFrom(), e.Addr)
	case ConflictLegacy:
		return fmt.Sprintf("%s %s, where this router's flows would come from too, and this router (RouterOS %s) has no src-address on its traffic-flow targets: give it its own address towards flowbox, or upgrade RouterOS",
			e.exportsFrom(), e.Addr, e.Version)
	}
	return fmt.Sprintf("%s %s, where this router's flows would come from too, and this router has no address of its own that no other router uses; routers behind one NAT address cannot be told apart: give this router its own address towards flowbox, or set src-address on its traffic-flow target",
		e.exportsFrom(), e.Addr)
}

// exportsFrom is "router X already exports from", or "routers X and Y
// already export from" when Other names several.
func (e *ExporterConflictError) exportsFrom() string {
	if strings.Contains(e.Other, " and ") {
		return "routers " + e.Other + " already export from"
	}
	return "router " + e.Other + " already exports from"
}

// Unwrap makes errors.Is(err, store.ErrExporterConflict) true.
func (e *ExporterConflictError) Unwrap() error { return store.ErrExporterConflict }

// sourceInput is what the decision on a router's source address depends
// on, read from the router and the inventory.
type sourceInput struct {
	Router  string
	ID      int64 // 0 for a router not stored yet
	Version string
	// Addresses are the router's /ip/address entries.
	Addresses []netip.Prefix
	// Remote is the router's address as flowbox reaches it.
	Remote netip.Addr
	// Collector is the address the router sends flows to.
	Collector netip.Addr
	// Current is the src-address of the router's target for flowbox;
	// invalid when there is no target or it is 0.0.0.0.
	Current netip.Addr
	// Exporting is true when that target exists and is enabled.
	Exporting bool
	// Legacy is true when the router's targets have no src-address.
	Legacy bool
	// Pinned is the router's ExporterAddr.
	Pinned netip.Addr
}

// sourceDecision is what the target's src-address must be, and what to
// record as the router's ExporterAddr.
type sourceDecision struct {
	// Pin is the src-address flowbox's target must have; invalid when
	// flowbox leaves it as it is.
	Pin netip.Addr
	// Exporter is the router's ExporterAddr from now on.
	Exporter netip.Addr
	// Other may export from Shared, where the router's flows would come
	// from without Pin.
	Other  string
	Shared netip.Addr
}

// predictSources returns the addresses a router's flows will come from
// with its target as it is, and whether a NAT sits between flowbox and the
// router. RouterOS sends from the target's src-address, or else from the
// address of the interface towards the collector: the router's address
// on the collector's network when it has one, else (most likely) the
// address flowbox reaches it at. When flowbox reaches the router at an
// address that is not its own, a NAT is in between and the flows will come
// from the NAT's address, most likely that same one. When flowbox reaches
// it at a loopback address (a local tunnel, or the simulator), nothing is
// known: the result is empty and Verify tells later.
func predictSources(in sourceInput) (out []netip.Addr, nat bool) {
	if in.Current.IsValid() {
		return []netip.Addr{in.Current}, false
	}
	for _, p := range in.Addresses {
		if p.Contains(in.Collector) && !slices.Contains(out, p.Addr().Unmap()) {
			out = append(out, p.Addr().Unmap())
		}
	}
	switch {
	case len(out) > 0:
	case isOwn(in.Addresses, in.Remote):
		out = []netip.Addr{in.Remote}
	case in.Remote.IsValid() && !in.Remote.IsLoopback():
		out, nat = []netip.Addr{in.Remote}, true
	}
	return out, nat
}

func isOwn(addrs []netip.Prefix, a netip.Addr) bool {
	return a.IsValid() && slices.ContainsFunc(addrs, func(p netip.Prefix) bool { return p.Addr().Unmap() == a.Unmap() })
}

// decideSource decides the src-address of a router's target: nothing to
// change when no other router may export from where its flows will come
// from; else an address of its own that no other router claims; else an
// *ExporterConflictError.
func decideSource(in sourceInput, others []store.Router) (sourceDecision, error) {
	predicted, nat := predictSources(in)
	var d sourceDecision
	for _, a := range predicted {
		if name, ok := mayExportFrom(others, a); ok {
			d.Other, d.Shared = name, a
			break
		}
	}
	if d.Other == "" {
		// Keep the exporter address flowbox pinned while the target has it.
		if in.Current.IsValid() && in.Current == in.Pinned.Unmap() {
			d.Exporter = in.Current
		}
		return d, nil
	}
	conflict := &ExporterConflictError{Router: in.Router, Other: d.Other, Addr: d.Shared, Version: in.Version}
	switch {
	case nat:
		conflict.Kind = ConflictNAT
		return sourceDecision{}, conflict
	case in.Legacy:
		conflict.Kind = ConflictLegacy
		return sourceDecision{}, conflict
	}
	d.Pin = chooseSource(in, others)
	if !d.Pin.IsValid() {
		conflict.Kind = ConflictNoAddress
		return sourceDecision{}, conflict
	}
	d.Exporter = d.Pin
	if in.Exporting && in.Current != d.Pin {
		// The router exports to flowbox from elsewhere until the pin is
		// applied: until then, it may export from any of its addresses.
		d.Exporter = netip.Addr{}
	}
	return d, nil
}

// mayExportFrom returns the router (or routers) of others that may export
// from a, by the store's attribution rules.
func mayExportFrom(others []store.Router, a netip.Addr) (string, bool) {
	m, conflicts := store.Attribute(others)
	id, ok := m[a]
	if !ok {
		return "", false
	}
	if id == 0 {
		for _, c := range conflicts {
			if c.Addr == a {
				return strings.Join(c.Routers, " and "), true
			}
		}
		return "", false
	}
	for i := range others {
		if others[i].ID == id && slices.Contains(others[i].Sources(), a) {
			return others[i].Name, true
		}
	}
	return "", false
}

// chooseSource returns an address of the router's own, of the collector's
// family, that no other router claims (store.Router.Claims) and that can
// reach the collector: the one flowbox pinned before, the one flowbox
// reaches the router at, one on the collector's network, or another one of
// the same scope (loopback for a loopback collector, public for a public
// one). It returns the zero Addr when there is none.
func chooseSource(in sourceInput, others []store.Router) netip.Addr {
	claimed := map[netip.Addr]bool{}
	for i := range others {
		for _, a := range others[i].Claims() {
			claimed[a] = true
		}
	}
	coll := in.Collector.Unmap()
	usable := func(a netip.Addr) bool {
		a = a.Unmap()
		return isOwn(in.Addresses, a) && a.Is4() == coll.Is4() && !a.IsUnspecified() && !a.IsLinkLocalUnicast() &&
			!a.IsMulticast() && !claimed[a]
	}
	if usable(in.Pinned) {
		return in.Pinned.Unmap()
	}
	if usable(in.Remote) {
		return in.Remote
	}
	for _, p := range in.Addresses {
		if p.Contains(coll) && usable(p.Addr()) {
			return p.Addr().Unmap()
		}
	}
	for _, p := range in.Addresses {
		if a := p.Addr().Unmap(); usable(a) && sameScope(a, coll) {
			return a
		}
	}
	return netip.Addr{}
}

// sameScope reports whether a router address a can be the source of flows
// to collector c: loopback only to a loopback collector, and a private
// (RFC 1918, CGNAT, ULA) source to a private collector only, since a
// router's NAT would rewrite it on the way to a public one.
func sameScope(a, c netip.Addr) bool {
	switch {
	case c.IsLoopback() || a.IsLoopback():
		return c.IsLoopback() && a.IsLoopback()
	case isPrivate(c):
		return true
	}
	return !isPrivate(a)
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

func isPrivate(a netip.Addr) bool { return a.IsPrivate() || cgnat.Contains(a) }

// others returns the inventory's routers other than s.r.
func (p *Provisioner) others(ctx context.Context, r *store.Router) ([]store.Router, error) {
	all, err := p.store.ListRouters(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot list routers: %w", err)
	}
	return slices.DeleteFunc(all, func(o store.Router) bool {
		return (r.ID != 0 && o.ID == r.ID) || o.Name == r.Name
	}), nil
}

// sourceInput collects the decision's inputs from a session and our
// target row (nil when there is none).
func (s *session) sourceInput(ours map[string]string) sourceInput {
	in := sourceInput{Router: s.r.Name, ID: s.r.ID, Version: s.r.Version, Addresses: s.r.Addresses,
		Remote: s.remote, Collector: s.collector.Addr(), Legacy: s.legacy, Pinned: s.r.ExporterAddr}
	if ours != nil {
		in.Exporting = !parseBool(ours["disabled"])
		if a, err := netip.ParseAddr(ours["src-address"]); err == nil && !a.IsUnspecified() {
			in.Current = a.Unmap()
		}
	}
	return in
}
