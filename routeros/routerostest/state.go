package routerostest

import (
	"fmt"
	"github.com/flowbox/flowbox/routeros"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Default RouterOS groups and their policies (6.49.7 defaults).
var defaultGroups = []Group{
	{Name: "read", Policy: "local,telnet,ssh,reboot,read,test,winbox,password,web,sniff,sensitive,api,romon,rest-api"},
	{Name: "write", Policy: "local,telnet,ssh,reboot,read,write,test,winbox,password,web,sniff,sensitive,api,romon,rest-api"},
	{Name: "full", Policy: "local,telnet,ssh,ftp,reboot,read,write,policy,test,winbox,password,web,sniff,sensitive,api,romon,rest-api"},
}

func boolStr(b bool) string { return strconv.FormatBool(b) }

// buildMenus fills the in-memory RouterOS state from the personality.
func (s *Server) buildMenus() error {
	p := s.p
	major, _, _, _ := ParseVersion(p.Version)
	s.menus = map[string]*menu{}
	ro := func(fields ...string) *menu { return &menu{fields: fields} }

	id := s.single("/system/identity", []string{"name"}, map[string]kind{"name": kStr})
	id.rows[0].props["name"] = p.Identity

	res := s.single("/system/resource", []string{"uptime", "version", "build-time", "free-memory", "total-memory",
		"cpu", "cpu-count", "cpu-load", "architecture-name", "board-name", "platform"}, nil)
	for k, v := range map[string]string{"version": p.Version, "build-time": "2024-10-09 12:00:00", "free-memory": "800000000",
		"total-memory": "1073741824", "cpu": "ARM64", "cpu-count": "4", "cpu-load": "3", "architecture-name": p.Architecture,
		"board-name": p.BoardName, "platform": "MikroTik", "uptime": routeros.FormatDuration(p.Uptime)} {
		res.rows[0].props[k] = v
	}
	if !p.CHR {
		rb := s.single("/system/routerboard", []string{"routerboard", "board-name", "model", "revision", "serial-number",
			"firmware-type", "current-firmware", "upgrade-firmware"}, nil)
		ver, _, _ := strings.Cut(p.Version, " ")
		for k, v := range map[string]string{"routerboard": "true", "board-name": p.BoardName, "model": p.Model, "revision": "r2",
			"serial-number": p.Serial, "firmware-type": "fw", "current-firmware": ver, "upgrade-firmware": ver} {
			rb.rows[0].props[k] = v
		}
	}

	ifs := ro(".id", "name", "default-name", "type", "mtu", "mac-address", "running", "disabled", "comment")
	ifs.fields = ifs.fields[1:]
	ifs.oid = func(r *row, prop string) (string, bool) {
		if prop != "name" {
			return "", false
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(r.id, "*"), 16, 32)
		if err != nil {
			return "", false
		}
		return fmt.Sprintf(".1.3.6.1.2.1.2.2.1.2.%d", n), true
	}
	for _, i := range p.Interfaces {
		if i.Index == 0 {
			return fmt.Errorf("interface %s: ifIndex must not be 0", i.Name)
		}
		mtu := i.MTU
		if mtu == 0 {
			mtu = 1500
		}
		props := map[string]string{"name": i.Name, "type": i.Type, "mtu": strconv.Itoa(mtu),
			"running": boolStr(!i.Disabled), "disabled": boolStr(i.Disabled)}
		if i.MAC != "" {
			props["mac-address"] = i.MAC
		}
		if i.Comment != "" {
			props["comment"] = i.Comment
		}
		if i.Type == "ether" {
			props["default-name"] = i.Name
		}
		ifs.rows = append(ifs.rows, &row{id: "*" + strings.ToUpper(strconv.FormatUint(uint64(i.Index), 16)), props: props})
	}
	s.menus["/interface"] = ifs

	addrs := ro("address", "network", "interface", "actual-interface", "invalid", "dynamic", "disabled")
	for _, a := range p.Addresses {
		addrs.addRow(map[string]string{"address": a.Address.String(), "network": a.Address.Masked().Addr().String(),
			"interface": a.Interface, "actual-interface": a.Interface, "invalid": "false",
			"dynamic": boolStr(a.Dynamic), "disabled": boolStr(a.Disabled)})
	}
	s.menus["/ip/address"] = addrs

	leases := ro("address", "mac-address", "host-name", "server", "status", "comment", "dynamic", "disabled")
	for _, l := range p.Leases {
		leases.addRow(map[string]string{"address": l.Address.String(), "mac-address": l.MAC, "host-name": l.HostName,
			"server": l.Server, "status": l.Status, "comment": l.Comment, "dynamic": boolStr(l.Dynamic), "disabled": "false"})
	}
	s.menus["/ip/dhcp-server/lease"] = leases

	ppp := ro("name", "service", "caller-id", "address", "uptime", "encoding", "session-id", "radius")
	for i, a := range p.PPP {
		ppp.addRow(map[string]string{"name": a.Name, "service": a.Service, "caller-id": a.CallerID, "address": a.Address.String(),
			"uptime": routeros.FormatDuration(a.Uptime), "encoding": "", "session-id": fmt.Sprintf("0x%X", 0x81000000+i), "radius": "false"})
	}
	s.menus["/ppp/active"] = ppp

	queues := ro("name", "target", "parent", "max-limit", "limit-at", "comment", "disabled", "dynamic", "bytes", "packets", "rate")
	for _, q := range p.Queues {
		queues.addRow(map[string]string{"name": q.Name, "target": q.Target, "parent": "none", "max-limit": q.MaxLimit,
			"limit-at": "0/0", "comment": q.Comment, "disabled": "false", "dynamic": "false", "bytes": "0/0", "packets": "0/0", "rate": "0/0"})
	}
	s.menus["/queue/simple"] = queues

	arp := ro("address", "mac-address", "interface", "dynamic", "complete", "disabled")
	for _, a := range p.ARP {
		arp.addRow(map[string]string{"address": a.Address.String(), "mac-address": a.MAC, "interface": a.Interface,
			"dynamic": boolStr(a.Dynamic), "complete": "true", "disabled": "false"})
	}
	s.menus["/ip/arp"] = arp

	pools := ro("name", "ranges", "next-pool")
	for _, pl := range p.Pools {
		pools.addRow(map[string]string{"name": pl.Name, "ranges": pl.Ranges, "next-pool": "none"})
	}
	s.menus["/ip/pool"] = pools

	if !p.NoIPv6 {
		s.buildIPv6()
	}
	s.buildTrafficFlow()
	s.buildUsers()
	s.buildFirewall()
	s.buildCounters()
	s.buildDNS()

	svc := &menu{fields: []string{"name", "port", "address", "certificate", "disabled"}, canSet: true,
		kinds: map[string]kind{"port": kInt, "address": kStr, "certificate": kStr, "disabled": kBool}}
	if major >= 7 {
		svc.fields = append(svc.fields, "max-sessions")
		svc.kinds["max-sessions"] = kInt
	}
	for _, sv := range []struct {
		name string
		port int
		off  bool
	}{{"telnet", 23, false}, {"ftp", 21, false}, {"www", 80, false}, {"ssh", 22, false}, {"www-ssl", 443, true},
		{"api", 8728, p.TLS}, {"winbox", 8291, false}, {"api-ssl", 8729, !p.TLS}} {
		props := map[string]string{"name": sv.name, "port": strconv.Itoa(sv.port), "address": "", "disabled": boolStr(sv.off)}
		if strings.HasSuffix(sv.name, "-ssl") {
			props["certificate"] = "none"
			if p.TLS {
				props["certificate"] = "flowbox-test"
			}
		}
		if major >= 7 {
			props["max-sessions"] = strconv.Itoa(s.f.MaxSessions)
		}
		svc.addRow(props)
	}
	s.menus["/ip/service"] = svc
	return nil
}

// buildIPv6 fills the /ipv6 menus: addresses (the personality's, then a
// dynamic link-local address per interface with a MAC), pools and DHCPv6
// bindings.
func (s *Server) buildIPv6() {
	p := s.p
	addrs := &menu{fields: []string{"address", "from-pool", "interface", "actual-interface", "eui-64", "advertise",
		"no-dad", "invalid", "dynamic", "link-local", "disabled"}}
	for _, a := range p.IPv6Addresses {
		addrs.addRow(map[string]string{"address": a.Address.String(), "from-pool": "", "interface": a.Interface,
			"actual-interface": a.Interface, "eui-64": "false", "advertise": boolStr(a.Address.Bits() == 64),
			"no-dad": "false", "invalid": "false", "dynamic": boolStr(a.Dynamic),
			"link-local": boolStr(a.Address.Addr().IsLinkLocalUnicast()), "disabled": boolStr(a.Disabled)})
	}
	for _, i := range p.Interfaces {
		hw, err := net.ParseMAC(i.MAC)
		if err != nil || len(hw) != 6 {
			continue
		}
		ll := netip.AddrFrom16([16]byte{0xfe, 0x80, 8: hw[0] ^ 2, 9: hw[1], 10: hw[2], 11: 0xff, 12: 0xfe,
			13: hw[3], 14: hw[4], 15: hw[5]})
		addrs.addRow(map[string]string{"address": netip.PrefixFrom(ll, 64).String(), "from-pool": "", "interface": i.Name,
			"actual-interface": i.Name, "eui-64": "false", "advertise": "false", "no-dad": "false", "invalid": "false",
			"dynamic": "true", "link-local": "true", "disabled": boolStr(i.Disabled)})
	}
	s.menus["/ipv6/address"] = addrs

	pools := &menu{fields: []string{"name", "prefix", "prefix-length", "expire-after"}}
	for _, pl := range p.IPv6Pools {
		pools.addRow(map[string]string{"name": pl.Name, "prefix": pl.Prefix.String(),
			"prefix-length": strconv.Itoa(pl.PrefixLength), "expire-after": "never"})
	}
	s.menus["/ipv6/pool"] = pools

	bindings := &menu{fields: []string{"address", "duid", "iaid", "server", "life-time", "status", "comment", "dynamic", "disabled"}}
	for _, b := range p.DHCPv6Bindings {
		bindings.addRow(map[string]string{"address": b.Address, "duid": b.DUID, "iaid": strconv.FormatUint(uint64(b.IAID), 10),
			"server": b.Server, "life-time": "3d", "status": b.Status, "comment": b.Comment,
			"dynamic": boolStr(b.Dynamic), "disabled": boolStr(b.Disabled)})
	}
	s.menus["/ipv6/dhcp-server/binding"] = bindings
}

func (s *Server) single(path string, fields []string, kinds map[string]kind) *menu {
	m := &menu{single: true, fields: fields, kinds: kinds, canSet: kinds != nil,
		rows: []*row{{props: map[string]string{}}}}
	s.menus[path] = m
	return m
}

func (s *Server) buildTrafficFlow() {
	st := DefaultTrafficFlow()
	if s.p.TrafficFlow != nil {
		st = *s.p.TrafficFlow
	}
	fields := []string{"enabled", "interfaces", "cache-entries", "active-flow-timeout", "inactive-flow-timeout"}
	kinds := map[string]kind{"enabled": kBool, "interfaces": kStr, "cache-entries": kStr,
		"active-flow-timeout": kDur, "inactive-flow-timeout": kDur}
	if s.f.IPFIX {
		fields = append(fields, "packet-sampling", "sampling-interval", "sampling-space")
		kinds["packet-sampling"], kinds["sampling-interval"], kinds["sampling-space"] = kBool, kInt, kInt
	}
	tf := s.single("/ip/traffic-flow", fields, kinds)
	props := tf.rows[0].props
	props["enabled"] = boolStr(st.Enabled)
	props["interfaces"] = st.Interfaces
	props["cache-entries"] = st.CacheEntries
	props["active-flow-timeout"] = routeros.FormatDuration(st.ActiveFlowTimeout)
	props["inactive-flow-timeout"] = routeros.FormatDuration(st.InactiveFlowTimeout)
	if s.f.IPFIX {
		props["packet-sampling"] = boolStr(st.PacketSampling)
		props["sampling-interval"] = strconv.Itoa(st.SamplingInterval)
		props["sampling-space"] = strconv.Itoa(st.SamplingSpace)
	}

	tg := &menu{canAdd: true, canSet: true, canDel: true}
	if s.f.LegacyTargets {
		tg.fields = []string{"address", "version", "v9-template-refresh", "v9-template-timeout", "disabled"}
		tg.kinds = map[string]kind{"address": kAddrPort, "version": kVersion, "v9-template-refresh": kInt,
			"v9-template-timeout": kDur, "disabled": kBool}
		tg.required = []string{"address"}
		tg.defaults = map[string]string{"version": "9", "v9-template-refresh": "20", "v9-template-timeout": "30m", "disabled": "false"}
		tg.unique = func(m *menu, r *row) *trap {
			for _, o := range m.rows {
				if o.id != r.id && o.props["address"] == r.props["address"] {
					return &trap{message: "failure: already have such entry"}
				}
			}
			return nil
		}
	} else {
		tg.fields = []string{"disabled", "dst-address", "port", "src-address", "version", "v9-template-refresh", "v9-template-timeout"}
		tg.kinds = map[string]kind{"dst-address": kAddr, "port": kInt, "src-address": kAddr, "version": kVersion,
			"v9-template-refresh": kInt, "v9-template-timeout": kDur, "disabled": kBool}
		tg.required = []string{"dst-address"}
		tg.defaults = map[string]string{"port": "2055", "src-address": "0.0.0.0", "version": "9",
			"v9-template-refresh": "20", "v9-template-timeout": "30m", "disabled": "false"}
		tg.unique = func(m *menu, r *row) *trap {
			for _, o := range m.rows {
				if o.id != r.id && o.props["dst-address"] == r.props["dst-address"] && o.props["port"] == r.props["port"] &&
					o.props["src-address"] == r.props["src-address"] {
					return &trap{message: "failure: already have such entry"}
				}
			}
			return nil
		}
	}
	for _, t := range st.Targets {
		props := map[string]string{"version": t.Version, "v9-template-refresh": strconv.Itoa(t.TemplateRefresh),
			"v9-template-timeout": routeros.FormatDuration(t.TemplateTimeout), "disabled": boolStr(t.Disabled)}
		if props["version"] == "" {
			props["version"] = "9"
		}
		if s.f.LegacyTargets {
			props["address"] = fmt.Sprintf("%s:%d", t.DstAddress, t.Port)
		} else {
			props["dst-address"] = t.DstAddress.String()
			props["port"] = strconv.Itoa(int(t.Port))
			props["src-address"] = "0.0.0.0"
			if t.SrcAddress.IsValid() {
				props["src-address"] = t.SrcAddress.String()
			}
		}
		tg.addRow(props)
	}
	s.menus["/ip/traffic-flow/target"] = tg

	if s.f.IPFIX {
		names := []string{"bytes", "dst-address", "dst-address-mask", "dst-mac-address", "dst-port", "first-forwarded", "gateway",
			"icmp-code", "icmp-type", "igmp-type", "in-interface", "ip-header-length", "ip-total-length", "ipv6-flow-label",
			"is-multicast", "last-forwarded", "nat-dst-address", "nat-dst-port", "nat-events", "nat-src-address",
			"nat-src-port", "out-interface", "packets", "protocol", "src-address", "src-address-mask", "src-mac-address",
			"src-port", "sys-init-time", "tcp-ack-num", "tcp-flags", "tcp-seq-num", "tcp-window-size", "tos", "ttl", "udp-length"}
		kinds := map[string]kind{}
		for _, n := range names {
			kinds[n] = kBool
		}
		ipfix := s.single("/ip/traffic-flow/ipfix", names, kinds)
		for _, n := range names {
			ipfix.rows[0].props[n] = boolStr(n != "nat-events")
		}
	}
}

func (s *Server) buildUsers() {
	groups := &menu{fields: []string{"name", "policy", "skin", "comment"}, canAdd: true, canSet: true, canDel: true,
		policy: "policy", kinds: map[string]kind{"name": kStr, "policy": kStr, "skin": kStr, "comment": kStr},
		required: []string{"name", "policy"}, defaults: map[string]string{"skin": "default"}}
	groups.unique = func(m *menu, r *row) *trap {
		for _, o := range m.rows {
			if o.id != r.id && o.props["name"] == r.props["name"] {
				return &trap{message: "failure: group with the same name already exists"}
			}
		}
		return nil
	}
	for _, g := range append(append([]Group(nil), defaultGroups...), s.p.Groups...) {
		groups.addRow(map[string]string{"name": g.Name, "policy": g.Policy, "skin": "default"})
	}
	s.menus["/user/group"] = groups

	users := &menu{fields: []string{"name", "group", "address", "comment", "disabled"}, canAdd: true, canSet: true, canDel: true,
		policy: "policy", hidden: map[string]bool{"password": true},
		kinds:    map[string]kind{"name": kStr, "group": kStr, "password": kStr, "address": kStr, "comment": kStr, "disabled": kBool},
		required: []string{"name", "group"}, defaults: map[string]string{"address": "", "disabled": "false", "password": ""}}
	users.unique = func(m *menu, r *row) *trap {
		for _, o := range m.rows {
			if o.id != r.id && o.props["name"] == r.props["name"] {
				return &trap{message: "failure: user with the same name already exists"}
			}
		}
		if groups.find(r.props["group"]) == nil {
			return &trap{category: "1", message: "input does not match any value of group"}
		}
		return nil
	}
	list := s.p.Users
	if len(list) == 0 {
		list = []User{{Name: "admin", Group: "full"}}
	}
	for _, u := range list {
		users.addRow(map[string]string{"name": u.Name, "group": u.Group, "password": u.Password, "address": "", "disabled": "false"})
	}
	s.menus["/user"] = users
}
