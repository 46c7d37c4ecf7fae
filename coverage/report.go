package coverage

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Source answers a coverage report: the store (flow rollups beside the
// counter series, the poller's states, the collector's saved counters)
// and the inventory. *storage.Storage implements it.
type Source interface {
	CounterTotals(ctx context.Context, routerID int64, from, to time.Time, hourly bool) ([]store.CounterTotals, error)
	CoverageStates(ctx context.Context) ([]store.CoverageState, error)
	ListRouters(ctx context.Context) ([]store.Router, error)
	ExporterStats(ctx context.Context) ([]store.ExporterStats, error)
}

// Options tune a report.
type Options struct {
	// Threshold is the percentage below which coverage is low.
	Threshold float64
	// MinBytes is the least counter traffic per direction to judge.
	MinBytes uint64
	// Lag leaves the newest minutes out (their flows are not in yet).
	Lag time.Duration
	// MinuteRetention decides minute or hour buckets.
	MinuteRetention time.Duration
	// Now is the report's time.
	Now time.Time
}

// Report compares flows with counters per router and interface over
// q.From..q.To (less the lag, rounded to whole minutes, or whole hours
// beyond the minute retention), and diagnoses the low ones.
func Report(ctx context.Context, src Source, q store.CoverageQuery, o Options) (*store.CoverageReport, error) {
	if o.Threshold <= 0 {
		o.Threshold = DefaultConfig().Threshold
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	to := q.To
	if to.IsZero() || to.After(o.Now.Add(-o.Lag)) {
		to = o.Now.Add(-o.Lag)
	}
	from := q.From
	if !from.Before(to) {
		return nil, fmt.Errorf("coverage: from %s is not before %s (the newest %s are left out: their flows are not in yet)",
			from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), o.Lag)
	}
	hourly := o.MinuteRetention > 0 && from.Before(o.Now.Add(-o.MinuteRetention))
	step := time.Minute
	if hourly {
		step = time.Hour
	}
	from, to = ceilTime(from, step), to.Truncate(step)
	rep := &store.CoverageReport{From: from.UTC(), To: to.UTC(), Resolution: "minute", Threshold: o.Threshold,
		Routers: []store.RouterCoverage{}, Interfaces: []store.InterfaceCoverage{}}
	if hourly {
		rep.Resolution = "hour"
	}
	routers, err := src.ListRouters(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot list routers: %w", err)
	}
	states, err := src.CoverageStates(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[int64]store.CoverageState{}
	for _, s := range states {
		byID[s.RouterID] = s
	}
	exps, err := src.ExporterStats(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot read the exporters' counters: %w", err)
	}
	lost := map[int64][2]uint64{} // lost, received
	for _, e := range exps {
		l := lost[e.RouterID]
		lost[e.RouterID] = [2]uint64{l[0] + e.LostFlows, l[1] + e.FlowsReceived}
	}
	var totals []store.CounterTotals
	if from.Before(to) {
		if totals, err = src.CounterTotals(ctx, q.RouterID, from, to, hourly); err != nil {
			return nil, err
		}
	}
	perRouter := map[int64][]store.CounterTotals{}
	for _, t := range totals {
		perRouter[t.RouterID] = append(perRouter[t.RouterID], t)
	}
	for _, r := range routers {
		if q.RouterID != 0 && r.ID != q.RouterID {
			continue
		}
		st, polled := byID[r.ID]
		rc := store.RouterCoverage{RouterID: r.ID, Router: r.Name, Health: store.CoverageUnknown, Causes: []string{},
			Polls: st.Polls, Failures: st.Failures, LastError: st.LastError, Resets: st.Resets, Wraps: st.Wraps, Reboots: st.Reboots}
		if !st.LastPoll.IsZero() {
			t := st.LastPoll.UTC()
			rc.LastPoll = &t
		}
		var sum store.CounterTotals
		judged := false
		for _, t := range perRouter[r.ID] {
			name, skip := InterfaceName(st.Interfaces[t.Index])
			if name == "" {
				name = fmt.Sprintf("ifIndex %d", t.Index)
			}
			ic := store.InterfaceCoverage{RouterID: r.ID, Router: r.Name, Index: t.Index, Interface: name,
				FlowBytesIn: t.FlowBytesIn, CounterBytesIn: t.CounterBytesIn, FlowBytesOut: t.FlowBytesOut, CounterBytesOut: t.CounterBytesOut,
				FlowPacketsIn: t.FlowPacketsIn, CounterPktsIn: t.CounterPacketsIn, FlowPacketsOut: t.FlowPacketsOut, CounterPktsOut: t.CounterPacketsOut,
				Minutes: t.Buckets * int(step/time.Minute)}
			ic.CoverageIn = percent(t.FlowBytesIn, t.CounterBytesIn, o.MinBytes)
			ic.CoverageOut = percent(t.FlowBytesOut, t.CounterBytesOut, o.MinBytes)
			if skip != "" {
				ic.Diagnosis = "not judged: " + skip
				rep.Interfaces = append(rep.Interfaces, ic)
				continue
			}
			if ic.CoverageIn != nil || ic.CoverageOut != nil {
				judged = true
				sum.FlowBytesIn += t.FlowBytesIn
				sum.FlowBytesOut += t.FlowBytesOut
				sum.CounterBytesIn += t.CounterBytesIn
				sum.CounterBytesOut += t.CounterBytesOut
			}
			low := (ic.CoverageIn != nil && *ic.CoverageIn < o.Threshold) || (ic.CoverageOut != nil && *ic.CoverageOut < o.Threshold)
			if low {
				ic.Low = true
				causes := Diagnose(st, polled, name, ic, lost[r.ID], rep.To.Sub(rep.From))
				ic.Diagnosis = strings.Join(causes, " ")
				for _, c := range causes {
					if !slices.Contains(rc.Causes, c) {
						rc.Causes = append(rc.Causes, c)
					}
				}
			} else if high := 100 + (100 - o.Threshold); (ic.CoverageIn != nil && *ic.CoverageIn > high) || (ic.CoverageOut != nil && *ic.CoverageOut > high) {
				ic.Diagnosis = "flows exceed the counters: two exporters for one router, a sampling rate applied twice, or flows of long connections reported late; compare over a longer --since"
			}
			rep.Interfaces = append(rep.Interfaces, ic)
		}
		if judged {
			rc.Health = store.CoverageOK
			rc.CoverageIn = percent(sum.FlowBytesIn, sum.CounterBytesIn, 1)
			rc.CoverageOut = percent(sum.FlowBytesOut, sum.CounterBytesOut, 1)
			if len(rc.Causes) > 0 {
				rc.Health = store.CoverageLow
			}
		}
		rep.Routers = append(rep.Routers, rc)
	}
	sort.Slice(rep.Interfaces, func(i, j int) bool {
		a, b := rep.Interfaces[i], rep.Interfaces[j]
		if a.Router != b.Router {
			return a.Router < b.Router
		}
		return a.Index < b.Index
	})
	sort.Slice(rep.Routers, func(i, j int) bool { return rep.Routers[i].Router < rep.Routers[j].Router })
	return rep, nil
}

// percent returns flow/counter x 100, rounded to 0.1, or nil when the
// counter is below min.
func percent(flow, counter, min uint64) *float64 {
	if counter == 0 || counter < min {
		return nil
	}
	v := math.Round(float64(flow)/float64(counter)*1000) / 10
	return &v
}

func ceilTime(t time.Time, d time.Duration) time.Time {
	if r := t.Truncate(d); !r.Equal(t) {
		return r.Add(d)
	}
	return t
}

// fixedFastTrack is the first RouterOS 6 release whose traffic-flow sees
// fast-tracked packets ("restriction removed in 6.33", IP/Fasttrack manual).
const fixedFastTrackMinor = 33

// Diagnose names the likely causes of an interface's low coverage, from
// the router's configuration, most likely first, each with what to change
// and its cost. lost is the router's flows lost on the way and received
// (sequence gaps); window the span compared.
func Diagnose(st store.CoverageState, polled bool, iface string, ic store.InterfaceCoverage, lost [2]uint64, window time.Duration) []string {
	if !polled || !st.ConfigRead {
		why := "the router's configuration could not be read"
		if st.ConfigError != "" {
			why += " (" + st.ConfigError + ")"
		}
		return []string{"cause unknown: " + why + "."}
	}
	var out []string
	if !st.TrafficFlowEnabled {
		out = append(out, "traffic-flow is disabled on the router: nothing is exported. Fix: flowbox router apply (or /ip traffic-flow set enabled=yes).")
	}
	if list := st.TrafficFlowInterfaces; list != "" && list != "all" {
		listed := false
		for _, n := range strings.Split(list, ",") {
			if strings.TrimSpace(n) == iface {
				listed = true
			}
		}
		if !listed {
			out = append(out, fmt.Sprintf("%s is not in /ip traffic-flow interfaces (%s): traffic entering it is not exported. "+
				"Fix: /ip traffic-flow set interfaces=all (or add %s); cost: more flows for the router to export and flowbox to store.", iface, list, iface))
		}
	}
	major, minor, ok := parseVersion(st.Version)
	var ftBytes uint64
	var ftRules []string
	var hwRules []string
	for _, r := range st.FastTrack {
		if r.Disabled {
			continue
		}
		if r.Bytes > 0 || r.Packets > 0 {
			ftBytes += r.Bytes
			ftRules = append(ftRules, fmt.Sprintf("%s in chain %s", r.ID, r.Chain))
		}
		if r.HWOffload {
			hwRules = append(hwRules, r.ID)
		}
	}
	if ok && major == 6 && minor < fixedFastTrackMinor && len(ftRules) > 0 {
		out = append(out, fmt.Sprintf("FastTrack: RouterOS %s does not export fast-tracked connections (fixed in 6.33); "+
			"the fasttrack-connection rule %s has passed %s. Fix: upgrade RouterOS to 6.33 or later (best), or disable the rule; "+
			"cost: without FastTrack every packet goes through the firewall again, which costs router CPU.",
			strings.Fields(st.Version)[0], strings.Join(ftRules, ", "), formatBytes(ftBytes)))
	}
	if ok && major >= 7 && st.L3HWOffload {
		what := "l3-hw-offloading=yes on the switch chip"
		if len(hwRules) > 0 {
			what += fmt.Sprintf(" with hw-offload=yes on the fasttrack rule %s", strings.Join(hwRules, ", "))
		}
		out = append(out, fmt.Sprintf("hardware offload: %s: connections routed by the switch chip never reach the CPU, so traffic-flow "+
			"does not see them (its counters do). Fix: /interface/ethernet/switch set [find] l3-hw-offloading=no, or hw-offload=no on the "+
			"fasttrack rule; cost: routing by the CPU, far below wire speed on switch-chip routers.", what))
	}
	if st.PacketSampling {
		n := 1.0
		if st.SamplingInterval > 0 {
			n = float64(st.SamplingInterval+st.SamplingSpace) / float64(st.SamplingInterval)
		}
		out = append(out, fmt.Sprintf("packet sampling is on (sampling-interval=%d, sampling-space=%d: 1 packet in %.3g): counts are scaled "+
			"estimates, and unscaled if the router does not send its rate. Fix: /ip traffic-flow set packet-sampling=no; cost: a flow record "+
			"per connection again (router CPU and export volume).", st.SamplingInterval, st.SamplingSpace, n))
	}
	if lost[0] > 0 && float64(lost[0]) >= 0.01*float64(lost[0]+lost[1]) {
		out = append(out, fmt.Sprintf("flow loss: %.1f%% of this router's flow records were lost on the way (sequence gaps). "+
			"Fix: a larger receive buffer on flowbox (flowbox stats shows kernel drops), or a cleaner path from the router; cost: memory.",
			100*float64(lost[0])/float64(lost[0]+lost[1])))
	}
	if st.ActiveFlowTimeout > 0 && window > 0 && st.ActiveFlowTimeout > window/4 {
		out = append(out, fmt.Sprintf("active-flow-timeout=%s: long connections are reported only when they end or every %s, so a window of %s misses part of them. "+
			"Fix: compare over a longer --since, or /ip traffic-flow set active-flow-timeout=1m (flowbox router apply can set it); cost: more flow records.",
			st.ActiveFlowTimeout, st.ActiveFlowTimeout, window))
	}
	if len(out) == 0 {
		out = append(out, "cause not found in the router's configuration: look for traffic the CPU never sees (bridge ports with hw=yes, "+
			"switch-chip rules) or for traffic counted on this interface but routed elsewhere.")
	}
	return out
}

// parseVersion reads "6.32.4 (stable)".
func parseVersion(v string) (major, minor int, ok bool) {
	f := strings.Fields(v)
	if len(f) == 0 {
		return 0, 0, false
	}
	if _, err := fmt.Sscanf(f[0], "%d.%d", &major, &minor); err != nil {
		return 0, 0, false
	}
	return major, minor, true
}

// formatBytes prints a byte count in SI units.
func formatBytes(b uint64) string {
	const units = "kMGTPE"
	if b < 1000 {
		return fmt.Sprintf("%d B", b)
	}
	v, i := float64(b)/1000, 0
	for v >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	return fmt.Sprintf("%.1f %cB", v, units[i])
}
