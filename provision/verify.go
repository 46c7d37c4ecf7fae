package provision

import (
	"context"
	"fmt"
	"net"
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
				for _, a := range addrs {
					if seen, ok := p.store.ExporterLastSeen(a); ok && !seen.Before(since) {
						res.Exporter = a
						break
					}
				}
				rec.summary = fmt.Sprintf("flows arrive (after %v)", res.Waited.Round(time.Second))
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-deadline.C:
				res.Waited = time.Since(start)
				res.Diagnosis = p.diagnose(r, addrs, since, timeout)
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

// routerAddrs returns the addresses flows from r may come from.
func routerAddrs(r *store.Router) []netip.Addr {
	var out []netip.Addr
	for _, pf := range r.Addresses {
		out = append(out, pf.Addr().Unmap())
	}
	if host, _, err := net.SplitHostPort(r.Address); err == nil {
		if a, err := netip.ParseAddr(host); err == nil && !slices.Contains(out, a.Unmap()) {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// diagnose explains why no flows arrived.
func (p *Provisioner) diagnose(r *store.Router, addrs []netip.Addr, since time.Time, timeout time.Duration) string {
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
