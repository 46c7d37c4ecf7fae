package netflowtest

import (
	"fmt"
	"net/netip"
	"time"
)

// The DNS cache of a simulated router (issue 18). The router is its
// customers' resolver: every remote host a customer reaches by name was
// resolved through it just before the conversation started, so its cache
// holds the names of the hosts the model's flows go to, with CNAME chains
// (www.youtube.com -> youtube-ui.l.google.com) and TTLs that count down.
// Hosts reached by address (peer-to-peer, game servers, calls) have no
// name. Names are a deterministic function of the address.

// DNSRecord is one entry of a router's DNS cache.
type DNSRecord struct {
	Name string
	Type string // A, AAAA or CNAME
	Data string // the address, or the CNAME's target
	TTL  time.Duration
}

// maxResolved bounds the remote hosts whose resolution the model keeps
// (the most recent ones); older ones leave the cache early and are
// counted.
const maxResolved = 8192

// resolved is a remote host resolved by a customer.
type resolved struct {
	addr   netip.Addr
	app    string
	netIdx int
	at     int64 // unix ms of the resolution
}

// dnsCache is the model's resolutions, a ring of the most recent distinct
// hosts.
type dnsCache struct {
	ring    []resolved
	next    int
	idx     map[netip.Addr]int
	evicted uint64
}

// nameSet is a set of CNAME chains (asked name first) that hosts of a
// network serve for an application, with their TTL. %d and %s in the
// first name are filled from the address.
type nameSet struct {
	ttl    time.Duration
	chains [][]string
}

// dnsNames are the names per application and network.
var dnsNames = map[string]map[int]nameSet{
	"video": {
		netNetflix: {5 * time.Minute, [][]string{{"ipv4-c%03d-%s-ix.1.oca.nflxvideo.net"}}},
		netGoogle: {5 * time.Minute, [][]string{{"rr%d---sn-%s.googlevideo.com"}, {"rr%d---sn-%s.googlevideo.com"},
			{"manifest.googlevideo.com", "manifest.l.google.com"}}},
		netAkamai: {time.Minute, [][]string{{"vod-bgc-na-east-%d.media.dssott.com", "vod-bgc-na-east-1.media.dssott.com.akamaized.net", "a1964.dscg.akamai.net"}}},
		netMeta:   {time.Minute, [][]string{{"video.f%s-1.fna.fbcdn.net"}}},
		netAmazon: {time.Minute, [][]string{{"s3-%s.aiv-cdn.net", "d25xi40x97liuc.cloudfront.net"}}},
	},
	"web": {
		netGoogle: {5 * time.Minute, [][]string{{"www.google.com"}, {"www.youtube.com", "youtube-ui.l.google.com"},
			{"fonts.gstatic.com", "gstaticadssl.l.google.com"}, {"mail.google.com", "googlemail.l.google.com"},
			{"play.googleapis.com"}, {"www.gstatic.com"}}},
		netCloudflare: {5 * time.Minute, [][]string{{"discord.com"}, {"www.canva.com", "www.canva.com.cdn.cloudflare.net"},
			{"cdnjs.cloudflare.com"}, {"chatgpt.com"}}},
		netMeta: {time.Minute, [][]string{{"www.facebook.com", "star-mini.c10r.facebook.com"},
			{"www.instagram.com", "z-p42-instagram.c10r.instagram.com"}, {"web.whatsapp.com", "mmx-ds.cdn.whatsapp.net"},
			{"scontent.xx.fbcdn.net"}}},
		netAkamai: {time.Minute, [][]string{{"www.ebay.com", "slot9428.ebay.com.edgekey.net", "e9428.a.akamaiedge.net"},
			{"www.bbc.co.uk", "www.bbc.co.uk.pri.bbc.co.uk", "e3891.dscf.akamaiedge.net"},
			{"www.playstation.com", "www.playstation.com.edgekey.net", "e1234.dscb.akamaiedge.net"}}},
		netAmazon: {time.Minute, [][]string{{"www.amazon.com", "tp.47cf2c8c9-frontier.amazon.com", "d1elgm1ww0d6wo.cloudfront.net"},
			{"m.media-amazon.com", "m.media-amazon.com.cdn.cloudfront.net"}, {"images-na.ssl-images-amazon.com"}}},
		netMicrosoft: {5 * time.Minute, [][]string{{"www.bing.com", "www-bing-com.dual-a-0001.a-msedge.net"},
			{"outlook.office365.com", "outlook.ms-acdc.office.com"}, {"login.microsoftonline.com"}, {"www.microsoft.com"}}},
		netApple: {5 * time.Minute, [][]string{{"www.icloud.com"}, {"gateway.icloud.com"}, {"www.apple.com"}, {"api.apple-cloudkit.com"}}},
	},
	"update": {
		netMicrosoftUpdate: {5 * time.Minute, [][]string{{"tlu.dl.delivery.mp.microsoft.com"}, {"dl.delivery.mp.microsoft.com"}}},
		netAkamai:          {time.Minute, [][]string{{"download.windowsupdate.com", "download.windowsupdate.com.edgesuite.net", "a767.dspw65.akamai.net"}}},
		netApple:           {5 * time.Minute, [][]string{{"updates.cdn-apple.com"}, {"swcdn.apple.com"}}},
		netValve:           {5 * time.Minute, [][]string{{"cache%d-fra1.steamcontent.com"}}},
	},
	"ntp": {
		netGoogleNTP:     {time.Hour, [][]string{{"time.google.com"}}},
		netCloudflareNTP: {time.Hour, [][]string{{"time.cloudflare.com"}}},
		netAppleNTP:      {time.Hour, [][]string{{"time.apple.com", "time-osx.g.aaplimg.com"}}},
	},
	"dns": {
		netGoogleDNS:     {time.Hour, [][]string{{"dns.google"}}},
		netCloudflareDNS: {time.Hour, [][]string{{"one.one.one.one"}}},
		netQuad9:         {time.Hour, [][]string{{"dns.quad9.net"}}},
	},
	"voip": {
		netZoom:           {5 * time.Minute, [][]string{{"zoomfra%d.fra.zoom.us"}}},
		netMicrosoftTeams: {5 * time.Minute, [][]string{{"worldaz.relay.teams.microsoft.com"}}},
	},
}

// dnsSites are the CDN site codes of templated names.
var dnsSites = [...]string{"fra", "ams", "lhr", "gru", "mia", "dfw", "iad", "scl", "bog", "mex"}

// hostNames returns the CNAME chain (asked name first, the address's own
// name last) and TTL of a host of network netIdx serving app; ok is false
// for hosts reached by address.
func hostNames(addr netip.Addr, app string, netIdx int) (chain []string, ttl time.Duration, ok bool) {
	set, ok := dnsNames[app][netIdx]
	if !ok {
		return nil, 0, false
	}
	b := addr.As16()
	h := uint64(14695981039346656037)
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	c := set.chains[h%uint64(len(set.chains))]
	chain = append([]string(nil), c...)
	switch first := chain[0]; {
	case first == "ipv4-c%03d-%s-ix.1.oca.nflxvideo.net":
		family := "ipv4"
		if addr.Is6() {
			family = "ipv6"
		}
		chain[0] = fmt.Sprintf("%s-c%03d-%s%d-ix.1.oca.nflxvideo.net", family, 1+h>>8%120, dnsSites[h>>16%10], 1+h>>20%3)
	case first == "rr%d---sn-%s.googlevideo.com":
		chain[0] = fmt.Sprintf("rr%d---sn-%x.googlevideo.com", 1+h>>8%8, h>>12&0xffffff)
	case first == "video.f%s-1.fna.fbcdn.net", first == "s3-%s.aiv-cdn.net":
		chain[0] = fmt.Sprintf(first, fmt.Sprintf("%s%d", dnsSites[h>>8%10], 1+h>>12%4))
	case first == "vod-bgc-na-east-%d.media.dssott.com", first == "cache%d-fra1.steamcontent.com", first == "zoomfra%d.fra.zoom.us":
		chain[0] = fmt.Sprintf(first, 1+h>>8%12)
	}
	return chain, set.ttl, true
}

// noteRemote records that a customer resolved remote (of network netIdx,
// for app) for a conversation starting at start (relative to the export
// instant m.genNow). An answer that would have left the cache before the
// router's next poll is taken as resolved again for a later connection.
// Called with m.mu held; it draws no random number, so the flows do not
// change.
func (m *Model) noteRemote(remote netip.Addr, app string, netIdx int, start int64) {
	_, ttl, ok := hostNames(remote, app, netIdx)
	if !ok {
		return
	}
	at := m.genNow + start - 100
	if at+ttl.Milliseconds() < m.genNow+2*time.Minute.Milliseconds() {
		at = m.genNow - 100
	}
	c := &m.dns
	if c.idx == nil {
		c.idx = map[netip.Addr]int{}
	}
	if i, ok := c.idx[remote]; ok {
		c.ring[i].at = max(c.ring[i].at, at)
		return
	}
	r := resolved{addr: remote, app: app, netIdx: netIdx, at: at}
	if len(c.ring) < maxResolved {
		c.idx[remote] = len(c.ring)
		c.ring = append(c.ring, r)
		return
	}
	delete(c.idx, c.ring[c.next].addr)
	c.evicted++
	c.ring[c.next] = r
	c.idx[remote] = c.next
	c.next = (c.next + 1) % maxResolved
}

// DNSCache returns the router's DNS cache at now: for each host the
// model's customers resolved whose answer has not expired, the CNAME
// chain and the address record, with the time left.
func (m *Model) DNSCache(now time.Time) []DNSRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	nowMs := now.UnixMilli()
	var out []DNSRecord
	seen := map[DNSRecord]bool{}
	for _, r := range m.dns.ring {
		chain, ttl, ok := hostNames(r.addr, r.app, r.netIdx)
		left := time.Duration(r.at+ttl.Milliseconds()-nowMs) * time.Millisecond
		if !ok || left < time.Second || r.at > nowMs {
			continue
		}
		left = left.Truncate(time.Second)
		for i := 0; i+1 < len(chain); i++ {
			rec := DNSRecord{Name: chain[i], Type: "CNAME", Data: chain[i+1], TTL: left}
			key := rec
			key.TTL = 0
			if !seen[key] {
				seen[key] = true
				out = append(out, rec)
			}
		}
		typ := "A"
		if r.addr.Is6() {
			typ = "AAAA"
		}
		out = append(out, DNSRecord{Name: chain[len(chain)-1], Type: typ, Data: r.addr.String(), TTL: left})
	}
	return out
}
