package alerts

import (
	"fmt"
	"strings"

	"github.com/flowbox/flowbox/store"
)

// detectCoverage raises coverage-low for every monitored router whose
// flows fall short of its interface counters (the counter poller's last
// health, over coverage.window): the summary names the likely cause. It
// resolves like the other health alerts, once the router is back within
// the threshold (or cannot be judged) for resolve-after.
func (d *Detector) detectCoverage() []signal {
	if d.coverage == nil {
		return nil
	}
	var sigs []signal
	for _, rc := range d.coverage() {
		if rc.Health != store.CoverageLow {
			continue
		}
		rt, ok := d.monitored(rc.RouterID)
		if !ok {
			continue
		}
		measures := map[string]float64{}
		worst := 100.0
		for k, p := range map[string]*float64{"coverage_in": rc.CoverageIn, "coverage_out": rc.CoverageOut} {
			if p != nil {
				measures[k] = *p
				worst = min(worst, *p)
			}
		}
		cause := "cause unknown"
		if len(rc.Causes) > 0 {
			cause = rc.Causes[0]
			if i := strings.Index(cause, ". "); i > 0 {
				cause = cause[:i] // the cause itself; the fix is on the router page
			}
		}
		sigs = append(sigs, signal{key: alertKey{rc.RouterID, rt.Name, store.AlertCoverageLow}, kind: store.AlertCoverageLow,
			severity: store.SeverityWarning, measures: measures,
			summary: fmt.Sprintf("coverage-low: the flows of %s count %.0f%% of what its interfaces count; likely cause: %s (flowbox coverage --router %s)",
				rt.Name, worst, cause, rt.Name)})
	}
	return sigs
}
