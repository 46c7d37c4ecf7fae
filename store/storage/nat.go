package storage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/flowbox/flowbox/store"
)

// DefaultNATWindow is the tolerance of an abuse lookup on both sides of
// the complaint's time: clocks and timeouts differ.
const DefaultNATWindow = store.NATDefaultWindow

// maxEvidenceFlows bounds the raw flows an abuse lookup returns.
const maxEvidenceFlows = 200

// NATLookup answers an abuse lookup: the mappings of the NAT store (flow
// database) that used the public address and port around the time, each
// with the customer who had the inside address then (the inventory's
// subscriber history, the router's own records first), the raw flows of
// those mappings while raw retention keeps them, and a sentence.
func (s *Storage) NATLookup(ctx context.Context, q store.NATQuery) (*store.NATAnswer, error) {
	if !q.Public.IsValid() {
		return nil, errors.New("cannot look up NAT: an address is required")
	}
	if q.At.IsZero() {
		return nil, errors.New("cannot look up NAT: a time is required")
	}
	if q.Window <= 0 {
		q.Window = DefaultNATWindow
	}
	if s.cfg.NATRetention == 0 {
		return nil, errors.New("cannot look up NAT: the NAT store is off (store.nat-retention: 0), flowbox keeps no NAT mappings")
	}
	q.Public = q.Public.Unmap()
	ms, err := s.FlowDB.LookupNAT(ctx, q)
	if err != nil {
		return nil, err
	}
	names, err := s.RouterNames(ctx)
	if err != nil {
		return nil, err
	}
	ans := &store.NATAnswer{Matches: ms}
	ans.Query.Address, ans.Query.Port, ans.Query.At, ans.Query.Window = q.Public.String(), q.Port, q.At.UTC(), q.Window.String()
	if q.Proto != 0 {
		ans.Query.Proto = store.ProtoName(q.Proto)
	}
	if ans.Matches == nil {
		ans.Matches = []store.NATMapping{}
	}
	for i := range ans.Matches {
		m := &ans.Matches[i]
		m.Router = names[m.RouterID]
		if m.Router == "" {
			m.Router = fmt.Sprintf("router %d (removed)", m.RouterID)
		}
		// The customer who had the inside address in the middle of the
		// mapping's use that is closest to the complaint's time.
		at := clampTime(q.At, m.FirstSeen, m.LastSeen)
		sub, err := s.Inventory.SubscriberOn(ctx, m.RouterID, m.InsideAddr, at)
		switch {
		case err == nil:
			m.Subscriber, m.SubscriberSource, m.CustomerID = sub.Name, sub.Source, sub.CustomerID
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
	}
	ans.FlowsKept = q.At.After(time.Now().Add(-s.cfg.RawRetention))
	if ans.FlowsKept && len(ans.Matches) > 0 {
		if ans.Flows, err = s.evidence(ctx, ans.Matches); err != nil {
			return nil, err
		}
	}
	since, err := s.FlowDB.NATKeptSince(ctx)
	if err != nil {
		return nil, err
	}
	if !since.IsZero() {
		ans.KeptSince = &since
	}
	ans.MappingsDropped = s.FlowDB.Health().NATMappingsDropped
	ans.Message = natMessage(q, ans, s.cfg.NATRetention, time.Now())
	return ans, nil
}

// evidence returns the raw flows of the mappings (both directions), at
// most maxEvidenceFlows.
func (s *Storage) evidence(ctx context.Context, ms []store.NATMapping) ([]store.Flow, error) {
	var out []store.Flow
	for _, m := range ms {
		if len(out) >= maxEvidenceFlows {
			break
		}
		page, err := s.FlowDB.SearchFlows(ctx, store.SearchQuery{
			From: m.FirstSeen.Add(-time.Minute), To: m.LastSeen.Add(2 * time.Minute), Ascending: true, Limit: 1000,
			Filter: store.Filter{Sources: []int64{m.RouterID}, Hosts: []netip.Prefix{netip.PrefixFrom(m.InsideAddr, m.InsideAddr.BitLen())},
				Ports: []uint16{m.InsidePort, m.PublicPort}, Protocols: []uint8{m.Proto}},
		})
		if err != nil {
			return nil, fmt.Errorf("cannot read the raw flows of the mapping: %w", err)
		}
		for _, f := range page.Flows {
			if len(out) < maxEvidenceFlows && usesMapping(&f, &m) {
				out = append(out, f)
			}
		}
	}
	return out, nil
}

// usesMapping reports whether a flow was translated by the mapping, in
// either direction.
func usesMapping(f *store.Flow, m *store.NATMapping) bool {
	if f.Proto != m.Proto {
		return false
	}
	up := f.SrcAddr == m.InsideAddr && f.SrcPort == m.InsidePort && f.PostNATSrcAddr == m.PublicAddr && f.PostNATSrcPort == m.PublicPort
	down := f.PostNATDstAddr == m.InsideAddr && f.PostNATDstPort == m.InsidePort && f.DstAddr == m.PublicAddr && f.DstPort == m.PublicPort
	return up || down
}

func clampTime(t, lo, hi time.Time) time.Time {
	if t.Before(lo) {
		return lo
	}
	if t.After(hi) {
		return hi
	}
	return t
}

// natMessage says what a lookup found at now, in one or two sentences.
func natMessage(q store.NATQuery, a *store.NATAnswer, retention time.Duration, now time.Time) string {
	what := q.Public.String()
	if q.Port != 0 {
		what += fmt.Sprintf(" port %d", q.Port)
	}
	if q.Proto != 0 {
		what += "/" + store.ProtoName(q.Proto)
	}
	when := fmt.Sprintf("%s (±%s)", q.At.UTC().Format(time.RFC3339), q.Window)
	dropped := ""
	if a.MappingsDropped > 0 {
		dropped = fmt.Sprintf(" Warning: %d NAT mappings could not be written since flowbox started (the database could not be written); the lookup may miss some.", a.MappingsDropped)
	}
	if len(a.Matches) == 0 {
		msg := fmt.Sprintf("No NAT mapping of %s was in use at %s.", what, when)
		switch {
		case a.KeptSince != nil && q.At.Add(q.Window).Before(*a.KeptSince):
			msg += fmt.Sprintf(" That time is before the oldest NAT mapping kept (since %s; store.nat-retention is %s).",
				a.KeptSince.UTC().Format(time.DateOnly), retention)
		case retention > 0 && q.At.Before(now.Add(-retention)):
			msg += fmt.Sprintf(" That time is older than the NAT store keeps (store.nat-retention, %s).", retention)
		default:
			msg += " Check the address (a public address of your routers, translated by their NAT), the port and the time zone of the complaint."
		}
		return msg + dropped
	}
	m := a.Matches[0]
	who := "no known subscriber"
	if m.Subscriber != "" {
		who = m.Subscriber
		if m.CustomerID != "" {
			who += " (customer " + m.CustomerID + ")"
		}
	}
	msg := fmt.Sprintf("%s was used by %s port %d, %s, on %s from %s to %s.", what, m.InsideAddr, m.InsidePort, who,
		m.Router, m.FirstSeen.UTC().Format(time.RFC3339), m.LastSeen.UTC().Format(time.RFC3339))
	if n := len(a.Matches); n > 1 {
		subs := map[string]bool{}
		for _, x := range a.Matches {
			subs[cmp.Or(x.Subscriber, x.InsideAddr.String())] = true
		}
		msg += fmt.Sprintf(" %d mappings match within the window (%d customers); the closest to the time is first.", n, len(subs))
	}
	return msg + dropped
}

// AddressHolder says who had an address at a time, from the subscriber
// history: an inside (CGNAT) address, or a public one given to a customer
// without NAT. An address nobody had is answered, not an error; when it is
// a router's own (its public NAT address), the answer says so.
func (s *Storage) AddressHolder(ctx context.Context, addr netip.Addr, at time.Time) (*store.AddressHolder, error) {
	if !addr.IsValid() {
		return nil, errors.New("cannot look up the address: invalid address")
	}
	addr = addr.Unmap()
	h := &store.AddressHolder{Address: addr.String(), At: at.UTC()}
	sub, err := s.Inventory.SubscriberAt(ctx, addr, at)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	routers, rerr := s.ListRouters(ctx)
	if rerr != nil {
		return nil, rerr
	}
	name := func(id int64) string {
		for _, r := range routers {
			if r.ID == id {
				return r.Name
			}
		}
		return ""
	}
	if err == nil {
		h.Found, h.Subscriber, h.CustomerID, h.Source, h.Router = true, sub.Name, sub.CustomerID, sub.Source, name(sub.RouterID)
		h.Prefix = sub.Prefix.String()
		from := sub.ValidFrom.UTC()
		h.From = &from
		if !sub.ValidTo.IsZero() {
			to := sub.ValidTo.UTC()
			h.To = &to
		}
		h.Message = fmt.Sprintf("%s had %s at %s (%s record %s", sub.Name, addr, at.UTC().Format(time.RFC3339), sub.Source, h.Prefix)
		if h.Router != "" {
			h.Message += " on " + h.Router
		}
		h.Message += ")."
		return h, nil
	}
	var owners []string
	for _, r := range routers {
		for _, p := range r.Addresses {
			if p.Addr() == addr {
				owners = append(owners, r.Name)
			}
		}
	}
	h.Message = fmt.Sprintf("Nobody had %s at %s in the subscriber history.", addr, at.UTC().Format(time.RFC3339))
	if len(owners) > 0 {
		h.Router = strings.Join(owners, ", ")
		h.Message += fmt.Sprintf(" It is an address of router %s: if it is its public (NAT) address, look up the port with the abuse lookup.", h.Router)
	}
	return h, nil
}
