package simulator

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/routeros/routerostest"
	"github.com/flowbox/flowbox/store"
)

// personality builds the API state of a router from its traffic model, so
// that what provisioning and enrichment read (interfaces with ifIndex,
// addresses, DHCP leases, PPPoE sessions, simple queues, ARP, IPv6
// addresses, the prefix-delegation pool and DHCPv6 bindings) matches the
// flows the router exports. Three customers in four have a customer id
// (CustomerID) in their comments, as WISPs write the account number there:
// the DHCP lease and DHCPv6 binding comments of DHCP customers (which
// keep their name: the comment without the id is the name), and the
// simple queue comments of all of them.
func personality(m *netflowtest.Model, major int, seed uint64, user, password string) routerostest.Personality {
	var p routerostest.Personality
	if major == 6 {
		p = routerostest.V6(m.Identity())
		p.BoardName, p.Model, p.Architecture = "CCR1009-7G-1C-1S+", "CCR1009-7G-1C-1S+", "tile"
	} else {
		p = routerostest.V7(m.Identity())
		p.BoardName, p.Model, p.Architecture = "CCR2004-16G-2S+", "CCR2004-16G-2S+", "arm64"
	}
	p.Serial = fmt.Sprintf("HE%08X", uint32(seed))
	p.Uptime = 2*24*time.Hour + time.Duration(seed%(40*24))*time.Hour + time.Duration(seed%3600)*time.Second
	p.Users = []routerostest.User{{Name: user, Group: "full", Password: password}}
	p.Interfaces, p.Addresses, p.Leases, p.PPP, p.Queues, p.ARP, p.Pools = nil, nil, nil, nil, nil, nil, nil

	for _, i := range m.Interfaces() {
		mtu := 1500
		mac := strings.ToUpper(store.FormatMAC(i.MAC))
		if i.Type == "pppoe-in" {
			mtu, mac = 1480, ""
		}
		p.Interfaces = append(p.Interfaces, routerostest.Interface{Index: i.Index, Name: i.Name, Type: i.Type,
			MAC: mac, Comment: i.Comment, MTU: mtu})
	}
	for _, a := range m.Addresses() {
		ra := routerostest.Address{Address: a.Prefix, Interface: a.Interface, Dynamic: a.Dynamic}
		if a.Prefix.Addr().Is4() {
			p.Addresses = append(p.Addresses, ra)
		} else {
			p.IPv6Addresses = append(p.IPv6Addresses, ra)
		}
	}
	p.IPv6Pools = []routerostest.IPv6Pool{{Name: "pd-customers", Prefix: m.IPv6Pool(), PrefixLength: netflowtest.Prefix6Bits}}
	sectors := map[string]bool{}
	for i, s := range m.Subscribers() {
		id := CustomerID(m.Config().Index, i)
		comment, queueComment := withCustomerID(s.Name, id, i), s.Login
		if id != "" {
			queueComment += " #" + id
		}
		mac := strings.ToUpper(store.FormatMAC(s.MAC))
		server := "dhcp-" + s.Sector
		target := netip.PrefixFrom(s.Addr, 32).String()
		if pd := s.Prefix6(); pd.IsValid() {
			// The customer's delegated prefix: over its PPPoE session, or
			// from its sector's DHCPv6 server with its name as comment.
			b := routerostest.DHCPv6Binding{Address: pd.String(), Status: "bound",
				DUID: "0x00030001" + strings.ReplaceAll(strings.ToLower(mac), ":", ""), IAID: uint32(s.MAC)}
			if s.Kind == netflowtest.KindPPPoE {
				b.Server, b.Dynamic = s.Interface, true
			} else {
				b.Server, b.Comment = "dhcp6-"+s.Sector, comment
			}
			p.DHCPv6Bindings = append(p.DHCPv6Bindings, b)
		}
		switch s.Kind {
		case netflowtest.KindDHCP:
			sectors[s.Sector] = true
			p.Leases = append(p.Leases, routerostest.Lease{Address: s.Addr, MAC: mac, HostName: s.HostName,
				Server: server, Status: "bound", Comment: comment})
			p.ARP = append(p.ARP, routerostest.ARPEntry{Address: s.Addr, MAC: mac, Interface: s.Interface, Dynamic: true})
			p.Queues = append(p.Queues, routerostest.Queue{Name: s.Name, Target: target, MaxLimit: s.Plan,
				Comment: queueComment})
		case netflowtest.KindPPPoE:
			up := time.Duration(1+int(s.SessionID)%240) * time.Hour / 4
			p.PPP = append(p.PPP, routerostest.PPPSession{Name: s.Login, Service: "pppoe", CallerID: mac,
				Address: s.Addr, Uptime: up})
			p.Queues = append(p.Queues, routerostest.Queue{Name: s.Interface, Target: target, MaxLimit: s.Plan,
				Comment: comment})
		}
	}
	for _, a := range m.Addresses() {
		if sectors[a.Interface] && a.Prefix.Addr().Is4() {
			n := a.Prefix.Masked()
			first := n.Addr().Next().Next()
			last := lastHost(n)
			p.Pools = append(p.Pools, routerostest.Pool{Name: "dhcp-" + a.Interface,
				Ranges: first.String() + "-" + last.String()})
		}
	}
	return p
}

// CustomerID returns the customer id of the i-th customer (in
// netflowtest.Model.Subscribers order) of the router at index in a fleet:
// "" for one customer in four, else a number unique in the fleet
// (100001 for the first customer of the first router).
func CustomerID(index, i int) string {
	if i%4 == 3 {
		return ""
	}
	return strconv.Itoa((index+1)*100000 + i + 1)
}

// withCustomerID writes a customer id into a comment beside the name, in
// the forms WISPs use (and enrich's default customer-id-pattern finds):
// "Maria Garcia #100001", "100002 - Maria Garcia", "Maria Garcia (cust
// 100003)". Without an id the comment is the name.
func withCustomerID(name, id string, i int) string {
	switch {
	case id == "":
		return name
	case i%4 == 1:
		return id + " - " + name
	case i%4 == 2:
		return name + " (cust " + id + ")"
	}
	return name + " #" + id
}

// lastHost returns the last usable address of an IPv4 network.
func lastHost(n netip.Prefix) netip.Addr {
	a := n.Addr().As4()
	host := uint32(1)<<(32-n.Bits()) - 1
	v := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) | host
	v--
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
