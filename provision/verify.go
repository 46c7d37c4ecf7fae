package provision

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/flowbox/flowbox/store"
)

// verifyPoll is how often Verify looks at the store.
const verifyPoll = time.Second

// VerifyResult says whether flows from a router arrive, and if not why.
type VerifyResult struct {
	Router string
	OK     bool
	// Exporter is the address the flows came from (when OK).
	Exporter netip.Addr
	// LastFlow is the time of the newest flow from the router.
	LastFlow time.Time
	// Diagnosis explains a failure in one or two sentences.
	Diagnosis string
	Waited    time.Duration
}

// Verify waits up to timeout (0: the configured verify-timeout) for flows
// from the router, attributed by exporter address (any of its
// /ip/address addresses or its API host). It returns a diagnosis when
// none arrive; the error is only for failures to run the check.
func (p *Provisioner) Verify(ctx context.Context, name string, timeout time.Duration) (*VerifyResult, error) {
	if timeout <= 0 {
		timeout = p.cfg.VerifyTimeout
	}
	res := &VerifyResult{Router: name}
	_, err := p.operation(ctx, name, "verify", func(r *store.Router, rec *recorder) error {
		start := time.Now()
		since := p.verifySince(ctx, r.ID, start)
		addrs := routerAddrs(r)
		deadline := time.NewTimer(timeout)
		defer deadline.Stop()
		tick := time.NewTicker(verifyPoll)
		defer tick.Stop()
		for {
			t, ok, err := p.store.LastFlowFrom(ctx, r.ID)
			if err != nil {
				return fmt.Errorf("cannot read last flow: %w", err)
			}
			if ok && !t.Before(since) {
				res.OK, res.LastFlow, res.Waited = true, t, time.Since(start)
				res.Exporter = p.exporterOf(r, addrs, since)
				rec.summary = fmt.Sprintf("flows arrive (after %v)", res.Waited.Round(time.Second))
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-deadline.C:
				res.Waited = time.Since(start)
				res.Diagnosis = p.diagnose(ctx, r, addrs, since, timeout)
				rec.summary = "no flows: " + res.Diagnosis
				return nil
			case <-tick.C:
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// verifySince returns the time from which flows prove that export works:
// flows of the last minute count (verify may start after the first export),
// but never flows from before the latest successful apply, which may come
// from an earlier configuration or an earlier run of the router.
func (p *Provisioner) verifySince(ctx context.Context, routerID int64, start time.Time) time.Time {
	since := start.Add(-time.Minute)
	runs, err := p.store.ProvisionRuns(ctx, routerID, 20)
	if err != nil {
		return since
	}
	for _, run := range runs {
		if run.Action == "apply" && run.OK {
			if run.Time.After(since) {
				since = run.Time
			}
			break
		}
	}
	return since
}

// routerAddrs returns the addresses flows from r may come from: its
// exporter address, its /ip/address addresses and its API host.
func routerAddrs(r *store.Router) []netip.Addr { return r.Claims() }

// exporterOf returns the address r's flows arrived from since then, as
// far as this process knows (the store's last-seen times, or the
// collector's counters).
func (p *Provisioner) exporterOf(r *store.Router, addrs []netip.Addr, since time.Time) netip.Addr {
	for _, a := range addrs {
		if seen, ok := p.store.ExporterLastSeen(a); ok && !seen.Before(since) {
			return a
		}
	}
	if p.collector != nil {
		for _, st := range p.collector.Exporters() {
			if st.RouterID == r.ID && !st.LastSeen.Before(since) {
				return st.Exporter.Unmap()
			}
		}
	}
	return netip.Addr{}
}

// seenSince returns the addresses of addrs that packets arrived from since
// then.
func (p *Provisioner) seenSince(addrs []netip.Addr, since time.Time) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		if t, ok := p.store.ExporterLastSeen(a); ok && !t.Before(since) {
			out = append(out, a)
		}
	}
	if p.collector != nil {
		for _, st := range p.collector.Exporters() {
			a := st.Exporter.Unmap()
			if !st.LastSeen.Before(since) && slices.Contains(addrs, a) && !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// attributionDiagnosis explains flows from r's addresses that are not
// r's: attributed to another router, or to none because several routers
// may export from the address. It returns "" when there are none.
func (p *Provisioner) attributionDiagnosis(ctx context.Context, r *store.Router, addrs []netip.Addr, since time.Time) string {
	seen := p.seenSince(addrs, since)
	if len(seen) == 0 {
		return ""
	}
	all, err := p.store.ListRouters(ctx)
	if err != nil {
		return ""
	}
	m, conflicts := store.Attribute(all)
	for _, a := range seen {
		id, ok := m[a]
		if !ok || id == r.ID {
			continue
		}
		if id == 0 {
			for _, c := range conflicts {
				if c.Addr == a {
					return fmt.Sprintf("flows arrive from %s, but routers %s may all export from that address, so flowbox cannot tell them apart and attributes its flows to none of them: give each its own address towards flowbox (provisioning sets the traffic-flow target's src-address where it can; routers behind one NAT address cannot be told apart)",
						a, strings.Join(c.Routers, ", "))
				}
			}
			continue
		}
		other := fmt.Sprintf("%d", id)
		for i := range all {
			if all[i].ID == id {
				other = all[i].Name
			}
		}
		if r.ExporterAddr.IsValid() {
			return fmt.Sprintf("flows arrive from %s, which is router %s's: %s must export from %s (the src-address of its traffic-flow target) to be told apart from it; provision %s again",
				a, other, r.Name, r.ExporterAddr, r.Name)
		}
		return fmt.Sprintf("flows arrive from %s, which is router %s's: flowbox cannot tell %s's flows apart from %s's; provision %s again to give it its own src-address, or give it its own address towards flowbox",
			a, other, r.Name, other, r.Name)
	}
	return ""
}

// diagnose explains why no flows arrived, in one message.
func (p *Provisioner) diagnose(ctx context.Context, r *store.Router, addrs []netip.Addr, since time.Time, timeout time.Duration) string {
	if msg := p.attributionDiagnosis(ctx, r, addrs, since); msg != "" {
		return msg
	}
	var seen []string
	for _, a := range addrs {
		if t, ok := p.store.ExporterLastSeen(a); ok && !t.Before(since) {
			seen = append(seen, a.String())
		}
	}
	if p.collector != nil {
		var unmatched []string
		for _, st := range p.collector.Exporters() {
			if st.LastSeen.Before(since) {
				continue
			}
			if slices.Contains(addrs, st.Exporter.Unmap()) {
				if st.Templates == 0 || st.LastTemplate.IsZero() {
					return fmt.Sprintf("packets arrive from %s but no template yet: the router resends templates every %d packets or %v (v9-template-refresh/v9-template-timeout); wait, or check the target's version",
						st.Exporter, p.cfg.TemplateRefresh, p.cfg.TemplateTimeout)
				}
				continue
			}
			if st.RouterID == 0 {
				unmatched = append(unmatched, st.Exporter.String())
			}
		}
		if len(unmatched) > 0 && len(seen) == 0 {
			return fmt.Sprintf("flows arrive from %s, which match no router: %s exports from an address that is not in its /ip/address list (NAT on the path?); set the target's src-address or re-run detect",
				strings.Join(unmatched, ", "), r.Name)
		}
	}
	if len(seen) > 0 {
		return fmt.Sprintf("packets arrive from %s but no flow was decoded yet: no template yet (the router resends it within %v) or the packets are malformed",
			strings.Join(seen, ", "), p.cfg.TemplateTimeout)
	}
	var list []string
	for _, a := range addrs {
		list = append(list, a.String())
	}
	return fmt.Sprintf("no packets at all from %s within %v: check that the router reaches the collector at its target address and UDP port %d (output firewall, routing, wrong collector address) and the target's src-address",
		strings.Join(list, ", "), timeout, p.cfg.CollectorPort)
}
