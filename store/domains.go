package store

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// SubscriberDomainsQuery asks for one subscriber's top remote domains over
// a range (read by whole UTC days).
type SubscriberDomainsQuery struct {
	From, To time.Time
	// Sources are router ids (and -N for unknown exporter N); empty: every
	// router.
	Sources []int64
	// Subscriber is the name, exactly as the usage tables keep it.
	Subscriber string
	// N bounds the rows (default 10, at most 100); the rest is Other.
	N int
}

// DomainUsage is the traffic of one subscriber with one remote domain.
// Domain "" is the traffic whose remote side had no known name.
type DomainUsage struct {
	Domain        string `json:"domain"`
	DownloadBytes uint64 `json:"download_bytes"`
	UploadBytes   uint64 `json:"upload_bytes"`
	Flows         uint64 `json:"flows"`
}

// SubscriberDomains is the answer to a SubscriberDomainsQuery: the
// largest domains first; Other sums the rest (beyond N, and the domains
// each day's top-K left out), Total everything. From and To are the range
// read.
type SubscriberDomains struct {
	From  time.Time     `json:"from"`
	To    time.Time     `json:"to"`
	Rows  []DomainUsage `json:"rows"`
	Other DomainUsage   `json:"other"`
	Total DomainUsage   `json:"total"`
}

// DomainRest is the domain under which a flow database may keep the
// traffic of the domains it did not keep one by one (a day's beyond its
// top-K): it always counts in Other.
const DomainRest = "*"

// Check checks the query, sets the default N (10), and returns the whole
// UTC days [f, t) it reads (unix seconds).
func (q *SubscriberDomainsQuery) Check() (f, t int64, err error) {
	if err := CheckPeriod(q.From, q.To); err != nil {
		return 0, 0, err
	}
	if q.Subscriber == "" {
		return 0, 0, &QueryError{Field: "subscriber", Msg: "a subscriber is required"}
	}
	switch {
	case q.N == 0:
		q.N = 10
	case q.N < 0 || q.N > 100:
		return 0, 0, &QueryError{Field: "limit", Msg: fmt.Sprintf("%d is not within 1..100", q.N)}
	}
	return FloorDiv(q.From.Unix(), 86400) * 86400, -FloorDiv(-q.To.Unix(), 86400) * 86400, nil
}

// RankDomains returns the answer over days [f, t) of the traffic of each
// domain (all, reordered): the n largest by bytes (ties by name), Other
// the rest and DomainRest, Total everything.
func RankDomains(f, t int64, all []DomainUsage, n int) *SubscriberDomains {
	res := &SubscriberDomains{From: time.Unix(f, 0).UTC(), To: time.Unix(t, 0).UTC(), Rows: []DomainUsage{}}
	add := func(dst, u *DomainUsage) {
		dst.DownloadBytes += u.DownloadBytes
		dst.UploadBytes += u.UploadBytes
		dst.Flows += u.Flows
	}
	k := 0
	for i := range all {
		add(&res.Total, &all[i])
		if all[i].Domain == DomainRest {
			add(&res.Other, &all[i])
			continue
		}
		all[k] = all[i]
		k++
	}
	all = all[:k]
	slices.SortFunc(all, func(x, y DomainUsage) int {
		if c := cmp.Compare(y.DownloadBytes+y.UploadBytes, x.DownloadBytes+x.UploadBytes); c != 0 {
			return c
		}
		return cmp.Compare(x.Domain, y.Domain)
	})
	for i := range all {
		if i >= n {
			add(&res.Other, &all[i])
			continue
		}
		res.Rows = append(res.Rows, all[i])
	}
	return res
}
