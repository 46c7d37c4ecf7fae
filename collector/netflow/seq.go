package netflow

import "slices"

// Sequence tracking and restart detection.
//
// Loss is estimated per (exporter, domain) from sequence numbers: v5 and
// IPFIX number records, so their loss is exact (every record the sequence
// skips); v9 numbers packets, so a gap of k packets counts k times the
// long-run average of records per packet. A datagram that arrives late
// gives back what its gap had counted. An exporter that restarts starts a
// new sequence: that is detected from a new source port, from the header
// sysUptime going back while the unix seconds go on (v5, v9), from the
// uptime base of IPFIX records (routeros.go), or, for IPFIX without
// uptime, from two datagrams that follow each other on a sequence behind
// the expected one. A restart starts tracking over without counting loss.

// Bounds of a plausible forward sequence gap. A gap is loss when it is
// within the fixed bound, or when the export clock moved enough for the
// exporter to have sent that much at the given rate (a long stall of the
// collector loses much more than the fixed bound). Beyond both, the
// exporter jumped (restarted with another initial sequence number):
// tracking resyncs without counting loss.
const (
	maxGapRecords  = 1 << 22 // v5 and IPFIX: records
	maxGapPackets  = 1 << 16 // v9: packets
	maxRateRecords = 1 << 20 // v5 and IPFIX: records per second of export time
	maxRatePackets = 1 << 16 // v9: packets per second of export time
)

// restartToleranceMs is how far (ms) the v5/v9 header sysUptime may go
// back, while the unix seconds do not, before it is an exporter restart
// rather than jitter of a datagram sent in the same second.
const restartToleranceMs = 2000

// maxSeqGaps is how many recent gaps are remembered, so that a late
// datagram gives back only what a gap counted, once.
const maxSeqGaps = 8

// v9MeanWindow bounds the packets over which v9's records per packet are
// averaged: at this many, both sums are halved.
const v9MeanWindow = 1 << 14

// seqGap is a range [from, to) of sequence numbers counted lost, of which
// left units are still counted.
type seqGap struct {
	from, to uint32
	left     int64
}

// seqState tracks the sequence numbers of one (exporter, domain).
type seqState struct {
	next     uint32
	lastSecs uint32 // export time (unix s) of the datagram that set next
	valid    bool

	// newNext is, when newValid, what the next datagram's sequence number
	// is if the exporter restarted: a datagram behind the expected number
	// and outside every counted gap is either a duplicate or the first of
	// a new sequence, which the next datagram tells.
	newNext  uint32
	newValid bool

	gaps [maxSeqGaps]seqGap
	ngap int // next slot of gaps (a ring)
	// late holds the sequence numbers of the last late datagrams, so that
	// a duplicate of one gives nothing back twice.
	late  [maxSeqGaps]uint32
	nlate int // datagrams in late, up to maxSeqGaps

	// v9: records and packets seen, for the records-per-packet average.
	recs, pkts uint64
}

// reset forgets the sequence (the exporter restarted); the v9 average is
// kept.
func (s *seqState) reset() {
	recs, pkts := s.recs, s.pkts
	*s = seqState{recs: recs, pkts: pkts}
}

// observe checks sequence number seq of a datagram exported at secs (unix
// s) that carries n units (records, or one v9 packet). It returns the
// units lost (negative when a late datagram fills a gap counted before)
// and whether the exporter started a new sequence. known is false when
// the datagram's units could not all be counted (sets waiting for a
// template, a fault): tracking then resyncs on the next datagram.
func (s *seqState) observe(seq, n, secs uint32, known bool, maxGap, maxRate int64) (lost int64, restarted bool) {
	if !s.valid {
		s.sync(seq, n, secs, known)
		return 0, false
	}
	gap := int64(int32(seq - s.next))
	if s.newValid && gap != 0 && seq == s.newNext {
		// The second datagram of a new sequence.
		s.sync(seq, n, secs, known)
		return 0, true
	}
	switch {
	case gap == 0:
	case gap > 0:
		elapsed := max(int64(int32(secs-s.lastSecs)), 0)
		if gap > maxGap && gap > (elapsed+1)*maxRate {
			s.sync(seq, n, secs, known)
			return 0, true
		}
		lost = gap
		s.gaps[s.ngap] = seqGap{from: s.next, to: seq, left: gap}
		s.ngap = (s.ngap + 1) % maxSeqGaps
	default:
		for i := range s.gaps {
			g := &s.gaps[i]
			if g.left > 0 && seq-g.from < g.to-g.from {
				// A late datagram: it was counted lost when the gap
				// was seen. The expectation does not move back.
				if slices.Contains(s.late[:min(s.nlate, maxSeqGaps)], seq) {
					return 0, false // a duplicate of a late datagram
				}
				s.late[s.nlate%maxSeqGaps] = seq
				s.nlate++
				back := min(int64(n), g.left)
				g.left -= back
				return -back, false
			}
		}
		s.newNext, s.newValid = seq+n, true
		return 0, false
	}
	s.next = seq + n
	s.lastSecs = secs
	s.valid = known
	s.newValid = false
	return lost, false
}

// sync starts tracking at sequence number seq.
func (s *seqState) sync(seq, n, secs uint32, known bool) {
	recs, pkts := s.recs, s.pkts
	*s = seqState{next: seq + n, lastSecs: secs, valid: known, recs: recs, pkts: pkts}
}

// v9Records converts a v9 packet loss (negative: late packets) into records
// with the average records per packet before this packet, then adds this
// packet's n records to the average unless count is false (some of its
// sets wait for their template, so n is not its record count).
func (s *seqState) v9Records(lostPackets int64, n int, count bool) int64 {
	var mean16 int64 // records per packet, in 1/16
	if s.pkts > 0 {
		mean16 = int64(s.recs * 16 / s.pkts)
	} else {
		mean16 = int64(n) * 16
	}
	if count {
		s.recs += uint64(n)
		s.pkts++
		if s.pkts >= v9MeanWindow {
			s.recs /= 2
			s.pkts /= 2
		}
	}
	if lostPackets < 0 {
		return -((-lostPackets*mean16 + 8) >> 4)
	}
	return (lostPackets*mean16 + 8) >> 4
}

// headerClock is the sysUptime and unix seconds of the last v5/v9 header of
// a domain, to tell a restart from reordering.
type headerClock struct {
	uptime uint32 // ms
	secs   uint32
	valid  bool
}

// wentBack records a datagram's header clock and reports whether the
// exporter restarted: its sysUptime went back by more than
// restartToleranceMs while its unix seconds did not (a late datagram has
// older seconds, or the same second and an uptime at most about a second
// back). An uptime that wraps (every 49.7 days) goes forward modulo 2^32.
func (h *headerClock) wentBack(uptime, secs uint32) bool {
	if !h.valid {
		*h = headerClock{uptime: uptime, secs: secs, valid: true}
		return false
	}
	if int32(secs-h.secs) < 0 {
		return false // a late datagram
	}
	back := int32(h.uptime - uptime)
	h.uptime, h.secs = uptime, secs
	return back > restartToleranceMs
}

// addLost applies a loss estimate (possibly negative) to e's counter.
func (d *Decoder) addLost(e *exporter, lost int64) {
	switch {
	case lost > 0:
		e.stats.LostFlows += uint64(lost)
		d.sum.LostFlows += uint64(lost)
	case lost < 0:
		back := min(uint64(-lost), e.stats.LostFlows)
		e.stats.LostFlows -= back
		d.sum.LostFlows -= back
	}
}
