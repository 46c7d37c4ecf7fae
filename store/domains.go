package store

import "time"

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
