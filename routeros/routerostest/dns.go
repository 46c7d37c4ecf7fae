package routerostest

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowbox/flowbox/routeros"
)

// DNSRecord is one entry of the router's DNS cache.
type DNSRecord struct {
	Name string
	// Type is the record type as RouterOS prints it: A, AAAA, CNAME...
	Type string
	// Data is the address of an A or AAAA record, the target of a CNAME.
	Data string
	// TTL is the time left when the record is given; it counts down on the
	// server's clock, and the record leaves the cache at 0.
	TTL time.Duration
}

// Menus of the DNS resolver.
const (
	pathDNS         = "/ip/dns"
	pathDNSCache    = "/ip/dns/cache"
	pathDNSCacheAll = "/ip/dns/cache/all"
)

// dnsState is the resolver's cache: records with their expiry, or a
// source that gives the cache at a time (the simulator's).
type dnsState struct {
	records []dnsEntry
	source  func(now time.Time) []DNSRecord
}

type dnsEntry struct {
	rec     DNSRecord
	expires time.Time
}

// buildDNS adds /ip/dns (allow-remote-requests on, as RouterOS's default
// configuration of home and small ISP routers sets it; RouterOS 7 has the
// DoH settings too) and the cache menus: /ip/dns/cache/all with name,
// type, data, ttl on both versions; /ip/dns/cache with name, address, ttl
// (A records) on RouterOS 6 and name, type, data, ttl (A and AAAA) on
// RouterOS 7.
func (s *Server) buildDNS() {
	major, _, _, _ := ParseVersion(s.p.Version)
	fields := []string{"servers", "dynamic-servers", "allow-remote-requests", "max-udp-packet-size", "cache-size",
		"cache-max-ttl", "cache-used"}
	kinds := map[string]kind{"servers": kStr, "allow-remote-requests": kBool, "cache-size": kStr, "cache-max-ttl": kDur}
	if major >= 7 {
		fields = append(fields, "use-doh-server", "verify-doh-cert", "max-concurrent-queries")
		kinds["use-doh-server"], kinds["verify-doh-cert"] = kStr, kBool
	}
	d := s.single(pathDNS, fields, kinds)
	for k, v := range map[string]string{"servers": "", "dynamic-servers": "203.0.113.53", "allow-remote-requests": "true",
		"max-udp-packet-size": "4096", "cache-size": "2048KiB", "cache-max-ttl": "1w", "cache-used": "0KiB",
		"use-doh-server": "", "verify-doh-cert": "false", "max-concurrent-queries": "100"} {
		if slices.Contains(fields, k) {
			d.rows[0].props[k] = v
		}
	}
	s.dns = &dnsState{}
	all := &menu{fields: []string{"name", "type", "data", "ttl"}}
	s.menus[pathDNSCacheAll] = all
	cache := &menu{fields: []string{"name", "address", "ttl"}}
	if major >= 7 {
		cache.fields = []string{"name", "type", "data", "ttl"}
	}
	s.menus[pathDNSCache] = cache
}

// dnsLocked fills the cache menus before a print: the source's records,
// or the stored ones not yet expired, with the time left.
func (s *Server) dnsLocked(path string) {
	if path != pathDNSCache && path != pathDNSCacheAll || s.dns == nil {
		return
	}
	now := s.now()
	var recs []DNSRecord
	if s.dns.source != nil {
		recs = s.dns.source(now)
	} else {
		s.dns.records = slices.DeleteFunc(s.dns.records, func(e dnsEntry) bool { return !now.Before(e.expires) })
		for _, e := range s.dns.records {
			r := e.rec
			r.TTL = e.expires.Sub(now)
			recs = append(recs, r)
		}
	}
	major, _, _, _ := ParseVersion(s.p.Version)
	all, cache := s.menus[pathDNSCacheAll], s.menus[pathDNSCache]
	all.rows, cache.rows, all.nextID, cache.nextID = nil, nil, 0, 0
	used := 0
	for _, r := range recs {
		if r.TTL < time.Second {
			continue // expired
		}
		ttl := routeros.FormatDuration(r.TTL.Truncate(time.Second))
		typ := strings.ToUpper(r.Type)
		all.addRow(map[string]string{"name": r.Name, "type": typ, "data": r.Data, "ttl": ttl})
		used += len(r.Name) + len(r.Data) + 32
		switch {
		case major >= 7 && (typ == "A" || typ == "AAAA"):
			cache.addRow(map[string]string{"name": r.Name, "type": typ, "data": r.Data, "ttl": ttl})
		case major < 7 && typ == "A":
			cache.addRow(map[string]string{"name": r.Name, "address": r.Data, "ttl": ttl})
		}
	}
	s.menus[pathDNS].rows[0].props["cache-used"] = strconv.Itoa((used+1023)/1024) + "KiB"
}

// AddDNSRecords adds records to the router's DNS cache (they expire after
// their TTL on the server's clock). Without a source set, this is the
// cache.
func (s *Server) AddDNSRecords(recs ...DNSRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, r := range recs {
		s.dns.records = append(s.dns.records, dnsEntry{rec: r, expires: now.Add(r.TTL)})
	}
}

// SetDNSCacheSource makes the DNS cache what fn returns at each print
// (given the server's clock), instead of the records added: the simulator
// derives it from its traffic. nil goes back to the added records.
func (s *Server) SetDNSCacheSource(fn func(now time.Time) []DNSRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dns.source = fn
}

// SetAllowRemoteRequests sets /ip/dns allow-remote-requests: whether the
// router answers its customers' DNS queries.
func (s *Server) SetAllowRemoteRequests(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.menus[pathDNS].rows[0].props["allow-remote-requests"] = boolStr(on)
}

// DNSCache returns the records of the DNS cache now, with their time left.
func (s *Server) DNSCache() []DNSRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dnsLocked(pathDNSCacheAll)
	var out []DNSRecord
	for _, r := range s.menus[pathDNSCacheAll].rows {
		ttl, _ := routeros.ParseDuration(r.props["ttl"])
		out = append(out, DNSRecord{Name: r.props["name"], Type: r.props["type"], Data: r.props["data"], TTL: ttl})
	}
	return out
}
