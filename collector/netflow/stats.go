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
	// decoded (including those of data sets decoded late, counted once,
	// when decoded), OptionsRecords the options data records.
	Packets, Flows, OptionsRecords uint64
	// Errors counts decode faults by Reason.
	Errors map[string]uint64

	// Data sets that arrived before their template are counted in sets,
	// never in records: a set's record count is unknown without its
	// template. NoTemplateSets counts them when they arrive; each is then,
	// exactly once, decoded when its template comes (PendingSetsDecoded;
	// its records are counted in PendingDecoded and in Flows), dropped
	// after waiting PendingTTL (PendingSetsExpired), dropped by a bound
	// (PendingSetsEvicted: MaxPending, MaxPendingBytes) or still waiting
	// (PendingSets):
	//
	//	NoTemplateSets = PendingSetsDecoded + PendingSetsExpired + PendingSetsEvicted + PendingSets
	NoTemplateSets     uint64
	PendingSetsDecoded uint64
	PendingSetsExpired uint64
	PendingSetsEvicted uint64
	PendingSets        int
	// PendingDecoded counts the records of waiting data sets decoded when
	// their template arrived.
	PendingDecoded uint64
	// PendingDropped is PendingSetsExpired + PendingSetsEvicted (sets).
	PendingDropped uint64
	// NoTemplateRecords is NoTemplateSets.
	//
	// Deprecated: it counts sets, not records; use NoTemplateSets.
	NoTemplateRecords uint64

	// LostFlows is estimated from sequence-number gaps per (exporter,
	// domain): v5 and IPFIX count records (exact), v9 counts packets
	// (multiplied by the long-run average of records per packet). Late
	// datagrams give back what their gap had counted; restarts and
	// implausible jumps resync without counting.
	LostFlows uint64
	// Restarts counts the exporter restarts detected: a new UDP source
	// port, a v5/v9 header sysUptime gone back while its unix seconds did
	// not, an IPFIX uptime base that moved (routeros.go), or a new
	// sequence (two datagrams following each other behind the expected
	// sequence number, or an implausible jump).
	Restarts uint64
	// SamplersDropped counts sampler table entries refused because the
	// table of a domain was full.
	SamplersDropped uint64
	// Templates is the number of templates currently cached.
	Templates int
	// TemplatesEvicted counts this exporter's templates that gave their
	// place to a new one: beyond MaxTemplatesPerDomain (its own new
	// template), or, the whole cache being full (MaxTemplates), because
	// this exporter held the most. TemplatesExpired counts those dropped
	// after TemplateTTL without a refresh.
	TemplatesEvicted, TemplatesExpired uint64
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
	// of those, PendingSets are still waiting, PendingSetsDecoded were
	// decoded (PendingDecoded records), PendingSetsExpired and
	// PendingSetsEvicted were dropped (PendingDropped is their sum). See
	// ExporterStats.
	NoTemplateSets     uint64
	PendingSets        int
	PendingSetsDecoded uint64
	PendingSetsExpired uint64
	PendingSetsEvicted uint64
	PendingDropped     uint64
	PendingDecoded     uint64
	// Errors counts decode faults, ErrorsByReason by Reason.
	Errors         uint64
	ErrorsByReason map[string]uint64
	LostFlows      uint64
	Restarts       uint64 // exporter restarts detected
	Exporters      int    // exporters currently tracked
	Templates      int    // templates currently cached
	// TemplatesEvicted and TemplatesExpired count templates dropped by a
	// quota and by TemplateTTL.
	TemplatesEvicted, TemplatesExpired uint64
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
		s.PendingSets = len(e.pending)
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
	s.Templates = d.templates
	return s
}
