// Package netflow decodes NetFlow v1, v5, v9 and IPFIX (v10) export
// datagrams into store.Flow records.
//
// It is a pure layer: no sockets, goroutines or logging. A Decoder keeps the
// state an exporter builds over time (templates and options templates per
// exporter address, observation domain and template id; sampling tables;
// sequence numbers and restarts; boot times; data sets waiting for their
// template), every piece of it bounded. No exporter can starve the others
// of template room: each (exporter, domain) has a quota, and a full cache
// takes room from the exporter holding the most; every eviction is O(1)
// and expiry never scans the cache. Faults are returned as *Error values
// whose Reason is one of a small fixed set, suitable as a metric label, and
// are counted per exporter.
//
// The decode path does not allocate in steady state (templates known): it
// appends into the caller's slice, looks templates up by struct keys and
// walks field decoders compiled once per template.
//
// Templates can be saved and loaded (persist.go, file.go) so that the first
// datagrams after a restart decode.
//
// RouterOS specifics are named code with named tests (routeros.go):
// uptime-relative IPFIX timestamps without systemInitTimeMilliseconds
// (placed on an estimated boot time), a little-endian sampling interval in
// data records, ifIndex 0 meaning the router itself, unpadded odd-length
// records, and template ids shared by every MikroTik (hence the
// per-exporter template keys).
package netflow

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Config bounds and tunes a Decoder. Zero fields take the DefaultConfig
// value.
type Config struct {
	// TemplateTTL is how long a template that is not refreshed is kept. A
	// negative value (NoExpiry) keeps templates until they are redefined,
	// withdrawn or evicted: for a capture file, whose packets may lie days
	// apart, a template lives for the whole file.
	TemplateTTL time.Duration
	// MaxTemplates bounds the whole template cache (templates and options
	// templates of every exporter). When it is full, a new template takes
	// the place of the oldest template of the exporter that holds the most,
	// so that no exporter can starve the others.
	MaxTemplates int
	// MaxTemplatesPerDomain bounds the templates of one exporter address and
	// observation domain (v9 source id): beyond it a new template takes the
	// place of that domain's oldest. Evictions are counted per exporter
	// (ExporterStats.TemplatesEvicted).
	MaxTemplatesPerDomain int
	// MaxPending bounds, per exporter, the data sets kept while waiting for
	// their template; the oldest is dropped (and counted) beyond it.
	MaxPending int
	// PendingTTL is how long such a data set waits before it is dropped. A
	// negative value (NoExpiry) lets it wait as long as the bounds allow.
	PendingTTL time.Duration
	// MaxPendingBytes bounds the bytes of all waiting data sets together.
	MaxPendingBytes int
	// MaxExporters bounds the exporters tracked; beyond it the one silent
	// the longest is forgotten (with its templates).
	MaxExporters int
	// SamplingOverride sets the sampling rate (1-in-N) per exporter
	// address, replacing whatever the exporter says.
	SamplingOverride map[netip.Addr]uint32
}

// NoExpiry, as Config.TemplateTTL or Config.PendingTTL, turns expiry off:
// `flowbox decode` uses it, because the packets of a capture file may have
// been captured days apart.
const NoExpiry time.Duration = -1

// DefaultConfig returns the decoder defaults.
func DefaultConfig() Config {
	return Config{
		TemplateTTL:           30 * time.Minute,
		MaxTemplates:          65536,
		MaxTemplatesPerDomain: 1024,
		MaxPending:            64,
		PendingTTL:            2 * time.Minute,
		MaxPendingBytes:       16 << 20,
		MaxExporters:          4096,
	}
}

// withDefaults fills the zero fields of c.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.TemplateTTL == 0 {
		c.TemplateTTL = d.TemplateTTL
	}
	if c.MaxTemplates <= 0 {
		c.MaxTemplates = d.MaxTemplates
	}
	if c.MaxTemplatesPerDomain <= 0 {
		c.MaxTemplatesPerDomain = d.MaxTemplatesPerDomain
	}
	if c.MaxPending <= 0 {
		c.MaxPending = d.MaxPending
	}
	if c.PendingTTL == 0 {
		c.PendingTTL = d.PendingTTL
	}
	if c.MaxPendingBytes <= 0 {
		c.MaxPendingBytes = d.MaxPendingBytes
	}
	if c.MaxExporters <= 0 {
		c.MaxExporters = d.MaxExporters
	}
	return c
}

// Reasons of decode errors, used as metric labels.
const (
	ReasonShortPacket     = "short_packet"     // shorter than its header
	ReasonBadVersion      = "bad_version"      // not NetFlow 1, 5, 9 or IPFIX
	ReasonBadLength       = "bad_length"       // header length/count disagrees with the datagram
	ReasonBadSet          = "bad_set"          // a set/flowset header is inconsistent
	ReasonBadTemplate     = "bad_template"     // a template definition is inconsistent
	ReasonTruncatedRecord = "truncated_record" // a data record runs past its set
	ReasonTemplateLimit   = "template_limit"   // a template quota evicted this exporter's own templates
)

// Reasons lists every Reason an *Error can carry, for metrics that are
// pre-registered.
var Reasons = []string{
	ReasonShortPacket, ReasonBadVersion, ReasonBadLength, ReasonBadSet,
	ReasonBadTemplate, ReasonTruncatedRecord, ReasonTemplateLimit,
}

// Error is a decode fault. Offset is the byte offset in the datagram where
// the fault was found.
type Error struct {
	Reason string
	Offset int
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("netflow: %s at offset %d: %v", e.Reason, e.Offset, e.Err)
	}
	return fmt.Sprintf("netflow: %s at offset %d", e.Reason, e.Offset)
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(reason string, off int, format string, args ...any) *Error {
	return &Error{Reason: reason, Offset: off, Err: fmt.Errorf(format, args...)}
}

// Decoder decodes export datagrams and keeps the per-exporter state they
// build. It is not safe for concurrent use: use one Decoder per reader
// goroutine.
type Decoder struct {
	cfg Config

	exporters map[netip.Addr]*exporter
	last      *exporter
	// lru lists the exporters, most recently heard first: the last one is
	// forgotten when MaxExporters is reached.
	lru exporterList
	// byTemplates is a max-heap of the exporters by number of templates:
	// its top pays when the whole cache is full.
	byTemplates []*exporter
	templates   int // templates cached, of every exporter

	pendingBytes int
	nextSweep    int64 // unix ns of the next expiry sweep

	fieldBuf []field // scratch for template parsing

	// totals, kept across exporter evictions
	sum Summary
}

// sweepInterval is how often (in decode time) expired templates and
// pending data sets are swept. A sweep visits every exporter once and pops
// only expired templates from the head of each exporter's age-ordered list.
const sweepInterval = time.Minute

// New returns a Decoder with cfg (zero fields take their default).
func New(cfg Config) *Decoder {
	return &Decoder{
		cfg:       cfg.withDefaults(),
		exporters: make(map[netip.Addr]*exporter),
	}
}

// Decode appends the flow records of one export datagram b, received from
// from at now, to dst. Options records are not flows: they update sampling
// and time state and are counted. Data sets that arrive before their
// template are kept (bounded, copied) and their records are appended to dst
// of the Decode call that brings the template. A malformed datagram returns
// the flows decoded before the fault and an *Error.
func (d *Decoder) Decode(dst []store.Flow, from netip.AddrPort, b []byte, now time.Time) ([]store.Flow, error) {
	nowNs := now.UnixNano()
	if nowNs >= d.nextSweep || nowNs < d.nextSweep-2*int64(sweepInterval) {
		// (The second test restarts sweeping when the clock went back.)
		d.sweep(nowNs)
		d.nextSweep = nowNs + int64(sweepInterval)
	}
	e := d.exporter(from, nowNs)
	e.stats.Packets++
	d.sum.Packets++
	if len(b) < 2 {
		return dst, d.fail(e, &Error{Reason: ReasonShortPacket, Offset: 0, Err: fmt.Errorf("%d bytes", len(b))})
	}
	version := binary.BigEndian.Uint16(b)
	if version < uint16(len(e.stats.Versions)) {
		e.stats.Versions[version]++
	}
	start := len(dst)
	var err *Error
	switch version {
	case 1, 5:
		dst, err = d.decodeLegacy(dst, e, from, b, version, nowNs)
	case 9:
		dst, err = d.decodeV9(dst, e, from, b, nowNs)
	case 10:
		dst, err = d.decodeIPFIX(dst, e, from, b, nowNs)
	default:
		err = &Error{Reason: ReasonBadVersion, Offset: 0, Err: fmt.Errorf("version %d", version)}
	}
	n := uint64(len(dst) - start)
	e.stats.Flows += n
	d.sum.Flows += n
	if err != nil {
		return dst, d.fail(e, err)
	}
	return dst, nil
}

// fail counts err for exporter e and returns it as an error value.
func (d *Decoder) fail(e *exporter, err *Error) error {
	d.count(e, err.Reason)
	return err
}

// count counts one fault of reason for exporter e.
func (d *Decoder) count(e *exporter, reason string) {
	if e.stats.Errors == nil {
		e.stats.Errors = make(map[string]uint64)
	}
	e.stats.Errors[reason]++
	d.sum.Errors++
	if d.sum.ErrorsByReason == nil {
		d.sum.ErrorsByReason = make(map[string]uint64)
	}
	d.sum.ErrorsByReason[reason]++
}
