package alerts

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Groups of alert keys: every inbound attack on a host is one alert.
const groupInbound = "inbound"

// detectHost runs the host detectors; it returns their signals and how
// close the host is to a threshold (1 = at it).
//
// A host opens an alert when its slow rates reach a floor, or, for the
// measures that long flows cannot inflate (flows/s, bare SYNs, reflection
// UDP), when its fast rates do: an attack is seen in its first tick. An
// alert stays true while the fast rates stay above half the floors, so it
// resolves soon after the attack's last flows, not after the slow rates
// have decayed.
func (d *Detector) detectHost(k hostKey, h *hostState, dt time.Duration) ([]signal, float64) {
	target := k.addr.String()
	sub := h.sub
	if h.routerOwn {
		sub = ""
	}
	shown := maxRates(h.slow, h.fast)
	bps, pps, fps := shown.bytes*8, shown.pkts, shown.flows
	who := target
	if sub != "" {
		who += " (" + sub + ")"
	} else if h.routerOwn {
		who += " (the router's own address)"
	}
	if !k.out {
		in := d.cfg.Inbound
		// Bare SYNs dominate when they are most of the packets or most of
		// the flows.
		synShareOf := func(r rates) float64 { return max(share(r.syn, r.pkts), share(r.singleSyn, r.flows)) }
		ampShare, synShare := share(shown.amp, shown.bytes), synShareOf(shown)
		ratio := max(bps/float64(in.BPS), pps/float64(in.PPS), fps/float64(in.FlowsPerS))
		if ampShare >= 0.5 {
			ratio = max(ratio, shown.amp*8/float64(in.AmplificationBPS))
		}
		if synShare >= 0.5 {
			ratio = max(ratio, shown.syn/float64(in.SYNPPS))
		}
		over := func(rate float64, floor Rate, base, mult float64) bool {
			return rate >= mult*float64(floor) && rate >= in.Factor*base
		}
		// generic: bytes and packets; signature: what long flows cannot
		// inflate.
		generic := func(r rates, mult float64) bool {
			return over(r.bytes*8, in.BPS, h.base.bytes*8, mult) || over(r.pkts, in.PPS, h.base.pkts, mult)
		}
		signature := func(r rates, mult float64) bool {
			return over(r.flows, in.FlowsPerS, h.base.flows, mult) ||
				(share(r.amp, r.bytes) >= 0.5 && over(r.amp*8, in.AmplificationBPS, h.base.amp*8, mult)) ||
				(synShareOf(r) >= 0.5 && over(r.syn, in.SYNPPS, h.base.syn, mult))
		}
		// The slow rates open an alert only while the traffic goes on (a
		// decaying tail does not reopen one).
		going := generic(h.fast, 0.5) || signature(h.fast, 0.5)
		hit := going && (generic(h.slow, 1) || signature(h.slow, 1) || signature(h.fast, 1))
		if h.alerting {
			hit = going
		}
		if !hit {
			return nil, ratio
		}
		kind := store.AlertVolumetric
		switch {
		case ampShare >= 0.5:
			kind = store.AlertUDPAmplification
		case synShare >= 0.5:
			kind = store.AlertSYNFlood
		}
		sev := store.SeverityWarning
		if ratio >= 2 {
			sev = store.SeverityCritical
		}
		s := signal{key: alertKey{k.router, target, groupInbound}, host: &k, kind: kind, severity: sev, direction: "in",
			sub: sub, bps: bps, pps: pps, fps: fps, ev: h.ev,
			measures: map[string]float64{"baseline_bps": h.base.bytes * 8, "baseline_pps": h.base.pkts,
				"baseline_flows_per_s": h.base.flows, "amplification_share": ampShare, "syn_share": synShare}}
		// The summary follows the alert's kind, which keeps the first
		// signature seen (see apply).
		s.summary = fmt.Sprintf("%s, %s, %s to %s at %s", FormatBits(bps), FormatCount(pps, "pps"),
			FormatCount(fps, "flows/s"), who, d.routerName(k.router))
		if ampShare >= 0.2 {
			s.summary += fmt.Sprintf("; %.0f%% of the bytes from UDP reflection ports", 100*ampShare)
		}
		if synShare >= 0.2 {
			s.summary += fmt.Sprintf("; bare SYNs are %.0f%% of the packets, %.0f%% of the flows",
				100*share(shown.syn, shown.pkts), 100*share(shown.singleSyn, shown.flows))
		}
		s.kindPrefix = true
		return []signal{s}, ratio
	}

	out := d.cfg.Outbound
	var sigs []signal
	ratio := fps / float64(out.FlowsPerS)
	base := func(kind, sev string, measures map[string]float64, summary string) signal {
		return signal{key: alertKey{k.router, target, kind}, host: &k, kind: kind, severity: sev, direction: "out",
			sub: sub, bps: bps, pps: pps, fps: fps, ev: h.ev, measures: measures, summary: summary}
	}
	if h.win != nil {
		hosts := h.win.estimate(func(x *distinct) *bitmap { return &x.hosts })
		ports := h.win.estimate(func(x *distinct) *bitmap { return &x.ports })
		smtp := h.win.estimate(func(x *distinct) *bitmap { return &x.smtp })
		synShare := share(shown.singleSyn, shown.flows)
		ratio = max(ratio, max(hosts, ports)/float64(out.ScanTargets)*math.Min(1, 2*synShare), smtp/float64(out.SMTPHosts))
		// While alerting, the last tick's distinct counts must stay above
		// half the threshold's share of a tick.
		var tickHosts, tickPorts, tickSMTP float64
		if h.tickX != nil {
			tickHosts, tickPorts, tickSMTP = h.tickX.hosts.estimate(), h.tickX.ports.estimate(), h.tickX.smtp.estimate()
		}
		// The minute's counts open an alert only while the last tick's go
		// on (the minute outlives the scan by up to two).
		perTick := 0.5 * dt.Seconds() / 60
		scanGoing := max(tickHosts, tickPorts) >= perTick*float64(out.ScanTargets) && share(h.fast.singleSyn, h.fast.flows) >= 0.5
		spamGoing := tickSMTP >= perTick*float64(out.SMTPHosts)
		scan := scanGoing && (hosts >= float64(out.ScanTargets) || ports >= float64(out.ScanTargets)) && synShare >= 0.5
		spam := spamGoing && smtp >= float64(out.SMTPHosts)
		if h.alerting {
			scan, spam = scanGoing, spamGoing
		}
		if scan {
			sigs = append(sigs, base(store.AlertPortScan, store.SeverityWarning,
				map[string]float64{"distinct_hosts": math.Round(hosts), "distinct_ports": math.Round(ports), "single_syn_share": synShare},
				fmt.Sprintf("port-scan: %s at %s probes about %.0f hosts and %.0f ports a minute (%.0f%% single-packet SYNs, %s)",
					who, d.routerName(k.router), hosts, ports, 100*synShare, FormatCount(fps, "flows/s"))))
		}
		if spam {
			sigs = append(sigs, base(store.AlertSMTPSpam, store.SeverityWarning,
				map[string]float64{"distinct_smtp_hosts": math.Round(smtp)},
				fmt.Sprintf("smtp-spam: %s at %s sends to about %.0f mail servers (port 25) a minute", who, d.routerName(k.router), smtp)))
		}
	}
	flood := h.fast.flows >= 0.5*float64(out.FlowsPerS) && fps >= float64(out.FlowsPerS) && fps >= d.cfg.Inbound.Factor*h.base.flows
	if h.alerting {
		flood = h.fast.flows >= 0.5*float64(out.FlowsPerS)
	}
	if flood {
		sigs = append(sigs, base(store.AlertFlowFlood, store.SeverityWarning,
			map[string]float64{"baseline_flows_per_s": h.base.flows},
			fmt.Sprintf("flow-flood: %s at %s opens %s", who, d.routerName(k.router), FormatCount(fps, "flows/s"))))
	}
	return sigs, ratio
}

func share(part, whole float64) float64 {
	if whole <= 0 {
		return 0
	}
	return math.Min(1, part/whole)
}

// monitored reports whether a router's export is watched: it exists and
// flowbox's settings were not undone.
func (d *Detector) monitored(id int64) (store.Router, bool) {
	r, ok := d.names[id]
	return r, ok && r.State != store.StateUndone
}

// detectRouters runs the export-health and router-collapse detectors.
func (d *Detector) detectRouters(now time.Time, dt time.Duration, minLag, maxLead map[int64]int64) []signal {
	var sigs []signal
	ecfg := d.cfg.Export
	if d.exporters != nil {
		type agg struct{ lost, recv, noTmpl uint64 }
		byRouter := map[int64]*agg{}
		for _, e := range d.exporters() {
			if e.RouterID == 0 || !e.Trusted {
				continue
			}
			a := byRouter[e.RouterID]
			if a == nil {
				a = &agg{}
				byRouter[e.RouterID] = a
			}
			a.lost += e.LostFlows
			a.recv += e.FlowsReceived
			a.noTmpl += e.SetsNoTemplate
		}
		for id, a := range byRouter {
			r := d.router(id)
			// A router known from the collector's counters (kept across
			// restarts) that sends no flows is stopped; a restart is not
			// an outage: its clock starts with the detector.
			if r.lastFlow.IsZero() {
				r.lastFlow = d.started
			}
			var delta exportDelta
			if r.counted {
				delta = exportDelta{sub0(a.lost, r.prevLost), sub0(a.recv, r.prevRecv), sub0(a.noTmpl, r.prevNoTmpl)}
			}
			r.ring[r.ringAt] = delta
			r.ringAt = (r.ringAt + 1) % len(r.ring)
			r.prevLost, r.prevRecv, r.prevNoTmpl, r.counted = a.lost, a.recv, a.noTmpl, true
		}
	}
	for id, r := range d.rstate {
		rt, ok := d.monitored(id)
		if !ok {
			continue
		}
		name := rt.Name
		health := func(kind, sev string, measures map[string]float64, summary string) signal {
			return signal{key: alertKey{id, name, kind}, kind: kind, severity: sev, sub: "", measures: measures, summary: summary}
		}
		// Flows, not datagrams: an exporter that sends only templates
		// exports nothing.
		stopped := !r.lastFlow.IsZero() && now.Sub(r.lastFlow) >= ecfg.StoppedAfter
		if stopped {
			sigs = append(sigs, health(store.AlertExportStopped, store.SeverityCritical,
				map[string]float64{"silent_seconds": math.Round(now.Sub(r.lastFlow).Seconds())},
				fmt.Sprintf("export-stopped: %s has sent no flows since %s (%s)", name,
					r.lastFlow.UTC().Format(time.RFC3339), now.Sub(r.lastFlow).Round(time.Second))))
		}
		m := r.minute()
		if lostShare := share(float64(m.lost), float64(m.lost+m.recv)); lostShare >= ecfg.LossShare && m.lost >= ecfg.MinLost {
			sigs = append(sigs, health(store.AlertFlowLoss, store.SeverityWarning,
				map[string]float64{"lost_share": lostShare, "lost_per_minute": float64(m.lost)},
				fmt.Sprintf("flow-loss: %d flows in the last minute (%.1f%%) from %s were lost on the way (sequence gaps)",
					m.lost, 100*lostShare, name)))
		}
		if m.noTmpl > 0 {
			if r.noTmplFrom.IsZero() {
				r.noTmplFrom = now
			}
		} else {
			r.noTmplFrom = time.Time{}
		}
		if !r.noTmplFrom.IsZero() && now.Sub(r.noTmplFrom) >= ecfg.TemplateMissingAfter {
			sigs = append(sigs, health(store.AlertTemplateMissing, store.SeverityWarning,
				map[string]float64{"sets_per_minute": float64(m.noTmpl)},
				fmt.Sprintf("template-missing: %s sends data sets whose template never came, for %s (%d sets dropped in the last minute)",
					name, now.Sub(r.noTmplFrom).Round(time.Second), m.noTmpl)))
		}
		if lag, ok := minLag[id]; ok {
			lead := maxLead[id]
			switch {
			case lag > ecfg.ClockSkew.Milliseconds():
				r.skew = -time.Duration(lag) * time.Millisecond
			case lead > ecfg.ClockSkew.Milliseconds():
				r.skew = time.Duration(lead) * time.Millisecond
			default:
				r.skew, r.skewFrom = 0, time.Time{}
			}
			if r.skew != 0 && r.skewFrom.IsZero() {
				r.skewFrom = now
			}
		}
		if r.skew != 0 && !r.skewFrom.IsZero() && now.Sub(r.skewFrom) >= time.Minute && !stopped {
			way := "behind"
			if r.skew > 0 {
				way = "ahead of"
			}
			sigs = append(sigs, health(store.AlertClockSkew, store.SeverityWarning,
				map[string]float64{"skew_seconds": r.skew.Seconds()},
				fmt.Sprintf("clock-skew: the flows of %s are %s %s flowbox's clock; check its NTP client",
					name, absDur(r.skew).Round(time.Second), way)))
		}
		if s, ok := d.collapse(&collapseState{&r.bps, &r.fast, &r.base, &r.learned, &r.lowSince}, now, dt, stopped, true); ok {
			s.key = alertKey{id, name, store.AlertTrafficCollapse}
			s.summary = fmt.Sprintf("traffic-collapse: %s carries %s, %.0f%% of its usual %s", name,
				FormatBits(r.fast*8), 100*share(r.fast, r.base), FormatBits(r.base*8))
			sigs = append(sigs, s)
		}
	}
	return sigs
}

// detectInterfaces runs the collapse detector on every interface.
func (d *Detector) detectInterfaces(now time.Time, dt time.Duration) []signal {
	var sigs []signal
	for k, s := range d.ifstate {
		rt, ok := d.monitored(k.router)
		if !ok {
			continue
		}
		r := d.rstate[k.router]
		stopped := r == nil || (!r.lastFlow.IsZero() && now.Sub(r.lastFlow) >= d.cfg.Export.StoppedAfter)
		if now.Sub(s.seen) > 24*time.Hour && s.base*8 < float64(d.cfg.Collapse.MinBPS) {
			delete(d.ifstate, k)
			continue
		}
		// Only the interfaces that carry a good share of the router's
		// traffic (uplinks, sectors) are watched, not a customer's own
		// PPPoE interface going quiet.
		major := r != nil && s.base >= 0.1*r.base
		sig, ok := d.collapse(&collapseState{&s.bps, &s.fast, &s.base, &s.learned, &s.lowSince}, now, dt, stopped, major)
		if !ok {
			continue
		}
		name := ""
		if d.ifName != nil {
			name = d.ifName(k.router, k.index, now)
		}
		if name == "" {
			name = fmt.Sprintf("ifIndex %d", k.index)
		}
		target := rt.Name + "/" + name
		sig.key = alertKey{k.router, target, store.AlertTrafficCollapse}
		sig.summary = fmt.Sprintf("traffic-collapse: interface %s of %s carries %s, %.0f%% of its usual %s", name, rt.Name,
			FormatBits(s.fast*8), 100*share(s.fast, s.base), FormatBits(s.base*8))
		sigs = append(sigs, sig)
	}
	return sigs
}

type collapseState struct {
	bps, fast, base *float64
	learned         *time.Duration
	lowSince        *time.Time
}

// collapse runs the collapse detector on one rate. While the router's
// export is stopped nothing happens (export-stopped covers it, and the
// baseline does not learn the silence); a rate that is not major (a
// customer's own interface) learns but is not watched.
func (d *Detector) collapse(c *collapseState, now time.Time, dt time.Duration, stopped, major bool) (signal, bool) {
	cfg := d.cfg.Collapse
	if stopped {
		*c.lowSince = time.Time{}
		return signal{}, false
	}
	watched := major && *c.learned >= cfg.Learn && *c.base*8 >= float64(cfg.MinBPS)
	// The last tick says it (a router's ticks hold many flows): the
	// collapse is seen, and its end, without waiting for the decay.
	low := watched && *c.fast < cfg.Ratio**c.base
	if !low {
		*c.lowSince = time.Time{}
		// Learn at the baseline's pace (half an hour), not while low.
		*c.base += (*c.bps - *c.base) * (1 - math.Exp(-dt.Seconds()/(30*time.Minute).Seconds()))
		*c.learned += dt
		return signal{}, false
	}
	if c.lowSince.IsZero() {
		*c.lowSince = now
	}
	if now.Sub(*c.lowSince) < cfg.After {
		return signal{}, false
	}
	return signal{kind: store.AlertTrafficCollapse, severity: store.SeverityCritical, bps: *c.fast * 8,
		measures: map[string]float64{"baseline_bps": *c.base * 8, "ratio": share(*c.bps, *c.base)}}, true
}

func sub0(a, b uint64) uint64 {
	if a < b {
		return 0 // counters restarted
	}
	return a - b
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// lifecycle opens, updates and resolves alerts from an evaluation's
// signals.
func (d *Detector) lifecycle(ctx context.Context, now time.Time, signals []signal) {
	seen := make(map[alertKey]bool, len(signals))
	for i := range signals {
		s := &signals[i]
		if seen[s.key] {
			continue // one signal per key and evaluation (the first)
		}
		seen[s.key] = true
		act := d.active[s.key]
		if act == nil {
			act = &activeAlert{host: s.host, a: store.Alert{Kind: s.kind, Severity: s.severity, RouterID: s.key.router,
				Router: d.routerName(s.key.router), Target: s.key.target, Subscriber: s.sub, Direction: s.direction,
				Started: now, Updated: now}}
			act.apply(s, now, true)
			if err := d.st.OpenAlert(ctx, &act.a); err != nil {
				d.storeError("cannot store a new alert", err)
			} else {
				act.stored = true
			}
			d.active[s.key] = act
			d.setAlerting(s.host, true)
			d.log.Warn("alert opened", "id", act.a.ID, "kind", act.a.Kind, "router", act.a.Router, "target", act.a.Target,
				"summary", act.a.Summary)
			d.publish(store.AlertOpened, act.a)
			continue
		}
		act.lastTrue = now
		escalated := severityRank(s.severity) > severityRank(act.a.Severity)
		act.apply(s, now, false)
		d.save(ctx, act)
		if escalated {
			d.publish(store.AlertUpdated, act.a)
		}
	}
	for k, act := range d.active {
		if seen[k] {
			continue
		}
		if now.Sub(act.lastTrue) < d.cfg.ResolveAfter {
			act.a.Updated = now
			continue
		}
		end := now
		act.a.Ended, act.a.Updated = &end, now
		d.save(ctx, act)
		delete(d.active, k)
		d.setAlerting(act.host, false)
		d.log.Info("alert resolved", "id", act.a.ID, "kind", act.a.Kind, "router", act.a.Router, "target", act.a.Target)
		d.publish(store.AlertResolved, act.a)
	}
}

// apply updates an alert from a signal: peaks, evidence, kind, severity.
func (act *activeAlert) apply(s *signal, now time.Time, first bool) {
	a := &act.a
	act.lastTrue = now
	a.Updated = now
	if s.sub != "" {
		a.Subscriber = s.sub
	}
	if severityRank(s.severity) > severityRank(a.Severity) {
		a.Severity = s.severity
	}
	// A volumetric attack that turns out to have a signature takes its
	// name; a named one keeps it.
	if a.Kind == store.AlertVolumetric && s.kind != store.AlertVolumetric {
		a.Kind = s.kind
	}
	peak := first || s.bps > a.PeakBps || (s.bps == 0 && s.fps > a.PeakFlowsPerS)
	a.PeakPps = math.Max(a.PeakPps, s.pps)
	a.PeakFlowsPerS = math.Max(a.PeakFlowsPerS, s.fps)
	if peak {
		a.PeakBps = math.Max(a.PeakBps, s.bps)
		a.PeakAt = now
		a.Summary = s.summary
		if s.kindPrefix {
			a.Summary = a.Kind + ": " + s.summary
		}
		a.Evidence.Measures = s.measures
	}
	if s.ev != nil && (peak || len(a.Evidence.TopSources) == 0) {
		a.Evidence.TopSources, a.Evidence.TopPorts = s.ev.tops()
	}
}

func severityRank(s string) int {
	switch s {
	case store.SeverityCritical:
		return 3
	case store.SeverityWarning:
		return 2
	case store.SeverityInfo:
		return 1
	}
	return 0
}

// save writes an alert (opening it if the first write failed).
func (d *Detector) save(ctx context.Context, act *activeAlert) {
	var err error
	if act.stored {
		err = d.st.UpdateAlert(ctx, &act.a)
	} else if err = d.st.OpenAlert(ctx, &act.a); err == nil {
		act.stored = true
	}
	if err != nil {
		d.storeError("cannot store an alert", err)
	}
}

func (d *Detector) storeError(msg string, err error) {
	d.log.Warn(msg, "err", err)
	d.mu.Lock()
	d.status.StoreErrors++
	d.mu.Unlock()
}

func (d *Detector) setAlerting(k *hostKey, on bool) {
	if k == nil {
		return
	}
	if h := d.hosts[*k]; h != nil {
		if on {
			h.alerting = true
			return
		}
		// Still alerting if another alert of the host is active.
		for _, act := range d.active {
			if act.host != nil && *act.host == *k {
				return
			}
		}
		h.alerting = false
	}
}

// publish tells the listeners.
func (d *Detector) publish(t store.AlertEventType, a store.Alert) {
	for _, l := range d.listeners {
		l.AlertChanged(store.AlertEvent{Type: t, Alert: a})
	}
}

// FormatBits formats a bit rate: 740 Mbit/s.
func FormatBits(bps float64) string {
	return FormatCount(bps, "bit/s")
}

// FormatCount formats a rate with a k, M or G prefix: 75.2 kpps.
func FormatCount(v float64, unit string) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.1f G%s", v/1e9, unit)
	case v >= 1e6:
		return fmt.Sprintf("%.1f M%s", v/1e6, unit)
	case v >= 1e3:
		return fmt.Sprintf("%.1f k%s", v/1e3, unit)
	}
	return fmt.Sprintf("%.0f %s", v, unit)
}
