package enrich

import (
	"context"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/flowbox/flowbox/store"
)

// TestApplicationIANANames pins the labels of common ports to their IANA
// service names (Service Name and Transport Protocol Port Number
// Registry), so that an edit of applications.yaml cannot drift from them.
func TestApplicationIANANames(t *testing.T) {
	e, _, _ := newTestEnricher(t, DefaultConfig(), Deps{})
	const tcp, udp = 6, 17
	for _, tc := range []struct {
		proto uint8
		port  uint16
		name  string
	}{
		{tcp, 20, "ftp-data"}, {tcp, 21, "ftp"}, {tcp, 22, "ssh"}, {tcp, 23, "telnet"}, {tcp, 25, "smtp"},
		{tcp, 43, "nicname"}, {tcp, 53, "domain"}, {udp, 53, "domain"}, {udp, 67, "bootps"}, {udp, 68, "bootpc"},
		{udp, 69, "tftp"}, {tcp, 80, "http"}, {tcp, 88, "kerberos"}, {udp, 88, "kerberos"}, {tcp, 110, "pop3"},
		{udp, 123, "ntp"}, {udp, 137, "netbios-ns"}, {udp, 138, "netbios-dgm"}, {tcp, 139, "netbios-ssn"},
		{tcp, 143, "imap"}, {udp, 161, "snmp"}, {udp, 162, "snmptrap"}, {tcp, 179, "bgp"}, {tcp, 389, "ldap"},
		{tcp, 443, "https"}, {tcp, 445, "microsoft-ds"}, {tcp, 465, "submissions"}, {udp, 500, "isakmp"},
		{udp, 514, "syslog"}, {udp, 546, "dhcpv6-client"}, {udp, 547, "dhcpv6-server"}, {tcp, 554, "rtsp"},
		{tcp, 587, "submission"}, {tcp, 636, "ldaps"}, {tcp, 853, "domain-s"}, {udp, 853, "domain-s"},
		{tcp, 873, "rsync"}, {tcp, 993, "imaps"}, {tcp, 995, "pop3s"}, {udp, 1194, "openvpn"}, {tcp, 1433, "ms-sql-s"},
		{udp, 1701, "l2tp"}, {tcp, 1723, "pptp"}, {udp, 1812, "radius"}, {udp, 1813, "radius-acct"},
		{tcp, 1883, "mqtt"}, {udp, 1900, "ssdp"}, {tcp, 3074, "xbox"}, {udp, 3074, "xbox"}, {tcp, 3306, "mysql"},
		{tcp, 3389, "ms-wbt-server"}, {udp, 3478, "stun"}, {udp, 4500, "ipsec-nat-t"}, {udp, 4739, "ipfix"},
		{udp, 5060, "sip"}, {tcp, 5061, "sips"}, {tcp, 5222, "xmpp-client"}, {udp, 5353, "mdns"}, {udp, 5355, "llmnr"},
		{tcp, 5432, "postgresql"}, {tcp, 5900, "rfb"}, {udp, 6343, "sflow"}, {tcp, 6667, "ircu"}, {tcp, 8080, "http-alt"},
		{tcp, 8883, "secure-mqtt"},
	} {
		if got := e.apps.Classify(tc.proto, 50000, tc.port, addr("192.0.2.1"), 0); got != tc.name {
			t.Errorf("%d/%d: %q, want IANA's %q", tc.port, tc.proto, got, tc.name)
		}
	}
}

// TestApplicationsFromConfig extends and overrides the built-in table the
// way a user does, through the YAML of the configuration file.
func TestApplicationsFromConfig(t *testing.T) {
	const doc = `
prefixes: ["100.64.0.0/10"]
applications:
  - {name: speedtest, category: tools, prefixes: ["198.51.100.0/24", "2001:db8:5::/48"]}
  - {name: billing, category: business, protocols: [tcp], ports: ["8443"]}
  - {name: my-game, category: gaming, protocols: [udp], ports: ["40000-40010"]}
  - {name: my-cdn, category: cdn, asns: [2906]}
  - {name: netflix, category: streaming, asns: [64500]}
  - {name: tunnel, category: vpn, protocols: [ipip]}
`
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	e, sink, _ := newTestEnricher(t, cfg, Deps{})
	local := addr("100.64.1.2")
	flows := []store.Flow{
		{SrcAddr: local, DstAddr: addr("198.51.100.9"), Proto: 6, SrcPort: 50000, DstPort: 443},   // prefix beats generic https
		{SrcAddr: local, DstAddr: addr("2001:db8:5::1"), Proto: 6, SrcPort: 50000, DstPort: 8080}, // IPv6 prefix
		{SrcAddr: local, DstAddr: addr("192.0.2.1"), Proto: 6, SrcPort: 50000, DstPort: 8443},     // replaces https-alt
		{SrcAddr: addr("192.0.2.1"), DstAddr: local, Proto: 17, SrcPort: 40010, DstPort: 50000},   // range, reverse direction
		{SrcAddr: local, DstAddr: addr("45.57.1.1"), Proto: 6, SrcPort: 50000, DstPort: 443},      // AS2906 now my-cdn
		{SrcAddr: local, DstAddr: addr("192.0.2.1"), Proto: 6, SrcPort: 50000, DstPort: 443, DstAS: 64500},
		{SrcAddr: local, DstAddr: addr("192.0.2.1"), Proto: 6, SrcPort: 50000, DstPort: 443, DstAS: 40027}, // built-in netflix ASN kept
		{SrcAddr: local, DstAddr: addr("192.0.2.1"), Proto: 4},
		{SrcAddr: local, DstAddr: addr("192.0.2.1"), Proto: 17, SrcPort: 50000, DstPort: 53}, // built-in entries stay
	}
	if err := e.InsertFlows(context.Background(), flows); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"speedtest", "speedtest", "billing", "my-game", "my-cdn", "netflix", "netflix", "tunnel", "domain"} {
		if got := sink.flows[i].Application; got != want {
			t.Errorf("flow %d: %q, want %q", i, got, want)
		}
	}
	for label, want := range map[string]string{"netflix": "streaming", "billing": "business", "my-cdn": "cdn", "domain": "infrastructure"} {
		if got := e.ApplicationCategory(label); got != want {
			t.Errorf("category of %s: %q, want %q", label, got, want)
		}
	}

	// Mistakes are reported with their position, and unknown keys refused.
	for doc, want := range map[string]string{
		"applications:\n  - {name: x, ports: [\"70000\"]}\n":               `applications[0]: x: ports: invalid port or port range "70000"`,
		"applications:\n  - {name: x, protocols: [tcp]}\n  - {}\n":         "applications[1]: name: must not be empty",
		"applications:\n  - {name: x, asns: [0]}\n":                        "applications[0]: x: asns: 0 is not an AS number",
		"applications:\n  - {name: x, prefixes: [\"10.0.0.0/40\"]}\n":      `applications[0]: x: prefixes: netip.ParsePrefix("10.0.0.0/40")`,
		"applications:\n  - {name: x, protocols: [gre], ports: [\"1\"]}\n": `applications[0]: x: protocols: ports need tcp or udp, not "gre"`,
	} {
		cfg := DefaultConfig()
		dec := yaml.NewDecoder(strings.NewReader(doc))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", doc, err, want)
		}
	}
	dec = yaml.NewDecoder(strings.NewReader("applications:\n  - {name: x, port: [\"80\"]}\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err == nil || !strings.Contains(err.Error(), "field port not found") {
		t.Errorf("unknown key: %v", err)
	}
}
