package store

import (
	"fmt"
	"math"
	"time"
)

// MaxRateSpan is the longest period a RateQuery reads; MaxRateApps the
// most applications a summary lists.
const (
	MaxRateSpan = 400 * 24 * time.Hour
	MaxRateApps = 10
)

// Check validates the query as both flow stores do: a known kind, a
// period on 5-minute boundaries of at most MaxRateSpan, a percentile in
// (0, 100], and at most MaxRateApps applications.
func (q *RateQuery) Check() error {
	switch q.Kind {
	case ReportByRouter, ReportByInterface, ReportBySubscriber, ReportByFleet, "":
	default:
		return &QueryError{Field: "by", Msg: fmt.Sprintf("%q is not subscriber, router, interface or fleet", q.Kind)}
	}
	if err := CheckPeriod(q.From, q.To); err != nil {
		return err
	}
	if q.From.Unix()%RateSlot != 0 || q.To.Unix()%RateSlot != 0 {
		return &QueryError{Field: "from", Msg: "a report period must start and end on 5-minute boundaries"}
	}
	if q.To.Sub(q.From) > MaxRateSpan {
		return &QueryError{Field: "to", Msg: "a report period is at most 400 days"}
	}
	if !(q.Percentile > 0 && q.Percentile <= 100) {
		return &QueryError{Field: "percentile", Msg: fmt.Sprintf("%g is not within (0, 100]", q.Percentile)}
	}
	if q.Apps < 0 || q.Apps > MaxRateApps {
		return &QueryError{Field: "top_apps", Msg: fmt.Sprintf("%d is not within 0..%d", q.Apps, MaxRateApps)}
	}
	return nil
}

// RateSlot is the length of a rate sample (the 5-minute rates of
// reports), in seconds.
const RateSlot = 300

// SlotBPS is the rate, bits per second, of a sample of bytes.
func SlotBPS(bytes uint64) float64 { return float64(bytes) * 8 / RateSlot }

// SlotRate is the rate of a sample of bytes starting at unix t (the zero
// Rate for none).
func SlotRate(bytes uint64, t int64) Rate {
	if bytes == 0 {
		return Rate{}
	}
	return Rate{BPS: SlotBPS(bytes), At: time.Unix(t, 0).UTC()}
}

// SummarizeRates summarizes one entity's samples a (download, an
// interface's in) and b (upload, out) of the period that starts at unix f,
// one per RateSlot: totals, peaks, and the pct percentile (nearest rank)
// of the samples from start (the source's first sample) to end (the end of
// the last finished sample). tmp is scratch, returned for reuse.
func SummarizeRates(src int64, key string, f, end, start int64, a, b []uint64, pct float64, tmp []uint64) (RateSummary, []uint64) {
	r := RateSummary{Source: src, Key: key}
	var pa, pb uint64
	ia, ib := -1, -1
	for i := range a {
		r.A += a[i]
		r.B += b[i]
		if a[i] > pa {
			pa, ia = a[i], i
		}
		if b[i] > pb {
			pb, ib = b[i], i
		}
	}
	if ia >= 0 {
		r.PeakA = SlotRate(pa, f+int64(ia)*RateSlot)
	}
	if ib >= 0 {
		r.PeakB = SlotRate(pb, f+int64(ib)*RateSlot)
	}
	t := f + int64(len(a))*RateSlot
	lo := max(f, FloorDiv(start, RateSlot)*RateSlot)
	hi := min(t, end)
	if hi <= lo {
		return r, tmp
	}
	i0, i1 := int((lo-f)/RateSlot), int((hi-f)/RateSlot)
	r.Samples = i1 - i0
	// The nearest-rank percentile: the smallest sample with at least
	// pct % of the samples at or below it (the 95th of a 30-day month's
	// 8 640 samples is the 433rd largest: the top 5 %, 432, are not
	// billed).
	k := int(math.Ceil(pct/100*float64(r.Samples))) - 1
	k = min(max(k, 0), r.Samples-1)
	tmp = append(tmp[:0], a[i0:i1]...)
	r.PctA = SlotBPS(SelectKth(tmp, k))
	tmp = append(tmp[:0], b[i0:i1]...)
	r.PctB = SlotBPS(SelectKth(tmp, k))
	return r, tmp
}

// SelectKth returns the value that would be at index k of vals sorted in
// ascending order (vals is reordered). Quickselect: linear on average.
func SelectKth(vals []uint64, k int) uint64 {
	lo, hi := 0, len(vals)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		// Median of three as the pivot.
		if vals[mid] < vals[lo] {
			vals[mid], vals[lo] = vals[lo], vals[mid]
		}
		if vals[hi] < vals[lo] {
			vals[hi], vals[lo] = vals[lo], vals[hi]
		}
		if vals[hi] < vals[mid] {
			vals[hi], vals[mid] = vals[mid], vals[hi]
		}
		pivot := vals[mid]
		i, j := lo, hi
		for i <= j {
			for vals[i] < pivot {
				i++
			}
			for vals[j] > pivot {
				j--
			}
			if i <= j {
				vals[i], vals[j] = vals[j], vals[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return vals[k]
		}
	}
	return vals[k]
}
