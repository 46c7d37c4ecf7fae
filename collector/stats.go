package collector

import (
	"github.com/flowbox/flowbox/collector/netflow"
	"github.com/flowbox/flowbox/store"
)

// ReasonNoTemplateSets was the key of store.ExporterStats.FlowsDropped that
// counted data sets dropped while they waited for their template; they are
// now store.ExporterStats.SetsNoTemplate (sets are not flows). Counters
// saved under this key by older versions are read into SetsNoTemplate.
const ReasonNoTemplateSets = "no_template_sets"

// decoderTotals are the sums of the readers' latest decoder summaries.
type decoderTotals struct {
	errors         map[string]uint64
	noTemplateSets uint64 // data sets that arrived before their template
	pendingDropped uint64 // of those, data sets dropped while waiting
	pendingDecoded uint64 // records of waiting data sets decoded later
	pendingSets    int    // data sets waiting now
	options        uint64
	lost           uint64
	templates      int
	forgotten      uint64 // exporters evicted by the decoders' bound
	restarts       uint64 // exporter restarts detected
}

// decoderTotals sums the readers' latest decoder summaries.
func (c *Collector) decoderTotals() decoderTotals {
	t := decoderTotals{errors: make(map[string]uint64)}
	for _, r := range c.runningReaders() {
		r.mu.Lock()
		s := &r.summary
		for k, v := range s.ErrorsByReason {
			t.errors[k] += v
		}
		t.noTemplateSets += s.NoTemplateSets
		t.pendingDropped += s.PendingDropped
		t.pendingDecoded += s.PendingDecoded
		t.pendingSets += s.PendingSets
		t.options += s.OptionsRecords
		t.lost += s.LostFlows
		t.templates += s.Templates
		t.forgotten += s.ExportersForgotten
		t.restarts += s.Restarts
		r.mu.Unlock()
	}
	return t
}

// mergeDecoderStats adds one reader's decoder statistics of an exporter to
// the collector's view of it (an exporter whose datagrams come from several
// source ports may be seen by several readers).
func mergeDecoderStats(e *store.ExporterStats, s *netflow.ExporterStats) {
	e.Packets += s.Packets
	e.FlowsReceived += s.Flows
	for k, v := range s.Errors {
		e.DecodeErrors[k] += v
	}
	e.LostFlows += s.LostFlows
	e.Templates += s.Templates
	e.PendingNoTmpl += s.NoTemplateSets
	e.SetsNoTemplate += s.PendingDropped
	if s.LastTemplate.After(e.LastTemplate) {
		e.LastTemplate = s.LastTemplate
	}
}
