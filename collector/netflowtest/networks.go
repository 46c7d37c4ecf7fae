package netflowtest

import "net/netip"

// Network is a real network of the Internet that the model's subscribers
// talk to, with prefixes its autonomous system really announces (checked
// against public BGP prefix lists: cidr-report aggregates and the operators'
// published ranges). The model picks remote addresses inside these prefixes
// only, so enrichment with real ASN data maps them to the right network.
type Network struct {
	// Name is the operator's short name ("Netflix").
	Name string
	// ASN is the origin autonomous system.
	ASN uint32
	// Prefixes are announced IPv4 and IPv6 prefixes.
	Prefixes []netip.Prefix
}

// Indexes into Networks, used by the application table.
const (
	netNetflix = iota
	netGoogle
	netMeta
	netAkamai
	netCloudflare
	netValve
	netMicrosoft
	netApple
	netAmazon
	netZoom
	netQuad9
	netComcast
	netDTAG
	netOrange
	netDigitalOcean
	// Service subsets of the networks above (same ASN): single well-known
	// service addresses, so DNS goes to resolvers and NTP to time servers.
	netGoogleDNS
	netCloudflareDNS
	netGoogleNTP
	netCloudflareNTP
	netAppleNTP
	netGoogleMail
	netMicrosoftMail
	netMicrosoftUpdate
	netMicrosoftTeams
)

func pfx(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Networks returns the table of remote networks the model uses. The result
// is a fresh copy on each call.
func Networks() []Network {
	return []Network{
		netNetflix: {"Netflix", 2906, pfx("45.57.0.0/17", "198.38.96.0/19", "23.246.0.0/18",
			"108.175.32.0/20", "69.53.224.0/19", "37.77.184.0/21", "64.120.128.0/17", "192.173.64.0/18",
			"2a00:86c0::/32")},
		netGoogle: {"Google", 15169, pfx("142.250.0.0/15", "172.217.0.0/16", "216.58.192.0/19",
			"74.125.0.0/16", "173.194.0.0/16", "64.233.160.0/19", "172.253.0.0/16",
			"2607:f8b0::/32", "2001:4860::/32")},
		netMeta: {"Meta", 32934, pfx("157.240.0.0/17", "157.240.192.0/18", "31.13.64.0/18",
			"129.134.0.0/17", "69.171.224.0/19", "173.252.64.0/18", "179.60.192.0/22", "185.60.216.0/22",
			"2a03:2880::/32")},
		netAkamai: {"Akamai", 20940, pfx("23.32.0.0/11", "23.192.0.0/11", "2.16.0.0/13",
			"104.64.0.0/10", "184.24.0.0/13", "96.16.0.0/15", "95.100.0.0/15", "92.122.0.0/15",
			"2a02:26f0::/32")},
		netCloudflare: {"Cloudflare", 13335, pfx("104.16.0.0/13", "172.64.0.0/13",
			"162.158.0.0/15", "188.114.96.0/20", "141.101.64.0/18", "108.162.192.0/18",
			"2606:4700::/32")},
		netValve: {"Valve", 32590, pfx("155.133.224.0/23", "155.133.232.0/23", "155.133.246.0/23",
			"162.254.192.0/23", "162.254.196.0/24", "185.25.180.0/23", "208.64.200.0/22",
			"208.78.164.0/23", "146.66.156.0/23")},
		netMicrosoft: {"Microsoft", 8075, pfx("13.64.0.0/11", "20.33.0.0/16", "40.76.0.0/14",
			"52.96.0.0/12", "13.107.4.0/22", "204.79.197.0/24", "20.64.0.0/10")},
		netApple: {"Apple", 714, pfx("17.0.0.0/8")},
		netAmazon: {"Amazon", 16509, pfx("13.32.0.0/15", "52.84.0.0/15", "99.84.0.0/16",
			"205.251.192.0/19")},
		netZoom:         {"Zoom", 30103, pfx("170.114.0.0/16")},
		netQuad9:        {"Quad9", 19281, pfx("9.9.9.0/24")},
		netComcast:      {"Comcast", 7922, pfx("73.0.0.0/8")},
		netDTAG:         {"Deutsche Telekom", 3320, pfx("79.192.0.0/10")},
		netOrange:       {"Orange", 3215, pfx("90.0.0.0/9")},
		netDigitalOcean: {"DigitalOcean", 14061, pfx("167.99.0.0/16")},

		netGoogleDNS:       {"Google", 15169, pfx("8.8.8.8/32", "8.8.4.4/32", "2001:4860:4860::8888/128")},
		netCloudflareDNS:   {"Cloudflare", 13335, pfx("1.1.1.1/32", "1.0.0.1/32", "2606:4700:4700::1111/128")},
		netGoogleNTP:       {"Google", 15169, pfx("216.239.35.0/30", "216.239.35.4/30", "216.239.35.8/30")},
		netCloudflareNTP:   {"Cloudflare", 13335, pfx("162.159.200.1/32", "162.159.200.123/32")},
		netAppleNTP:        {"Apple", 714, pfx("17.253.0.0/16")},
		netGoogleMail:      {"Google", 15169, pfx("209.85.128.0/17", "142.250.0.0/15")},
		netMicrosoftMail:   {"Microsoft", 8075, pfx("52.96.0.0/12")},
		netMicrosoftUpdate: {"Microsoft", 8075, pfx("13.107.4.0/22")},
		netMicrosoftTeams:  {"Microsoft", 8075, pfx("52.112.0.0/14")},
	}
}
