package netflow

import (
	"maps"
	"net/netip"
	"slices"
	"time"
)

// ExporterStats are the counters of one exporter address, updated by Decode.
type ExporterStats struct {
	Exporter netip.Addr
	// Packets counts the datagrams received, Flows the flow records
	// decoded (including those of data sets decoded late), OptionsRecords
	// the options data records.
	Packets, Flows, OptionsRecords uint64
	// Errors counts decode faults by Reason.
	Errors map[string]uint64
	// NoTemplateRecords counts the data sets (not records: a set's record
	// count is unknown until its template is known) that arrived before
	// their template and had to wait, or were dropped.
	NoTemplateRecords uint64
	// PendingDecoded counts the records of waiting data sets that were
	// decoded when their template arrived; PendingDropped counts the
	// waiting data sets dropped (expired, over the bound, or exporter
	// forgotten).
	PendingDecoded, PendingDropped uint64
	// LostFlows is estimated from sequence-number gaps per (exporter,
	// domain): v5 and IPFIX count records, v9 counts packets (multiplied
	// by the average records per packet). Reordered datagrams give back
	// what their gap had counted; restarts and implausible jumps resync
	// without counting.
	LostFlows uint64
	// SamplersDropped counts sampler table entries refused because the
	// table of a domain was full.
	SamplersDropped uint64
	// Templates is the number of templates currently cached.
	Templates int
	// LastTemplate is when a template was last received (zero if never).
	LastTemplate time.Time
	// Versions counts datagrams per NetFlow version (index 1, 5, 9, 10).
	Versions [11]uint64
}

// Summary holds the totals of a Decoder over its whole life, for
// `flowbox decode`.
type Summary struct {
	Packets        uint64 // datagrams
	Flows          uint64 // flow records
	OptionsRecords uint64 // options data records
	// NoTemplateSets counts data sets that arrived before their template;
	// of those, PendingSets are still waiting, PendingDropped were dropped
	// and the rest were decoded (PendingDecoded records).
	NoTemplateSets uint64
	PendingSets    int
	PendingDropped uint64
	PendingDecoded uint64
	// Errors counts decode faults, ErrorsByReason by Reason.
	Errors         uint64
	ErrorsByReason map[string]uint64
	LostFlows      uint64
	Exporters      int // exporters currently tracked
	Templates      int // templates currently cached
	// ExportersForgotten counts exporters evicted by the MaxExporters bound.
	ExportersForgotten uint64
}

// Stats returns a snapshot of the counters of every tracked exporter,
// sorted by address. Call it from the goroutine that calls Decode.
func (d *Decoder) Stats() []ExporterStats {
	out := make([]ExporterStats, 0, len(d.exporters))
	for _, e := range d.exporters {
		s := e.stats
		s.Errors = maps.Clone(e.stats.Errors)
		if e.lastTemplate != 0 {
			s.LastTemplate = time.Unix(0, e.lastTemplate).UTC()
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b ExporterStats) int { return a.Exporter.Compare(b.Exporter) })
	return out
}

// Summary returns the decoder's totals. Call it from the goroutine that
// calls Decode.
func (d *Decoder) Summary() Summary {
	s := d.sum
	s.ErrorsByReason = maps.Clone(d.sum.ErrorsByReason)
	s.PendingSets = 0
	for _, e := range d.exporters {
		s.PendingSets += len(e.pending)
	}
	s.Exporters = len(d.exporters)
	s.Templates = len(d.templates)
	return s
}
