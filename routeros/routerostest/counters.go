package routerostest

import (
	"strconv"
	"strings"
)

// IfCounters are one interface's /interface counters (rx-byte, tx-byte,
// rx-packet, tx-packet), 64-bit as RouterOS prints them.
type IfCounters struct {
	RxBytes, TxBytes, RxPackets, TxPackets uint64
}

// FilterRule is one /ip/firewall/filter rule. Only what coverage reads is
// modelled: rules match nothing, their counters move with AddFilterHits.
type FilterRule struct {
	Chain  string // forward, input, output
	Action string // accept, drop, fasttrack-connection...
	// ConnectionState is e.g. "established,related".
	ConnectionState string
	// HWOffload is RouterOS 7's hw-offload=yes on a fasttrack rule.
	HWOffload bool
	Disabled  bool
	Comment   string
}

// Menus of interface counters, firewall filter and switch chip.
const (
	pathFilter = "/ip/firewall/filter"
	pathSwitch = "/interface/ethernet/switch"
)

// buildCounters adds the counter fields to /interface, the filter rules
// (RouterOS 7 prints hw-offload on fasttrack rules) and the switch chip
// (RouterOS 7 has l3-hw-offloading).
func (s *Server) buildCounters() {
	major, _, _, _ := ParseVersion(s.p.Version)
	v7 := major >= 7
	s.counters = map[uint32]*IfCounters{}
	for _, i := range s.p.Interfaces {
		s.counters[i.Index] = &IfCounters{}
	}
	if m := s.menus["/interface"]; m != nil {
		m.fields = append(m.fields, "rx-byte", "tx-byte", "rx-packet", "tx-packet", "slave")
	}
	f := &menu{canAdd: true, canSet: true, canDel: true,
		fields:   []string{"chain", "action", "connection-state", "disabled", "comment", "bytes", "packets"},
		kinds:    map[string]kind{"chain": kStr, "action": kStr, "connection-state": kStr, "disabled": kBool, "comment": kStr},
		required: []string{"chain"},
		defaults: map[string]string{"action": "accept", "disabled": "false", "bytes": "0", "packets": "0"}}
	if v7 {
		f.fields = append(f.fields, "hw-offload")
		f.kinds["hw-offload"] = kBool
	}
	for _, r := range s.p.FilterRules {
		action := r.Action
		if action == "" {
			action = "accept"
		}
		props := map[string]string{"chain": r.Chain, "action": action, "disabled": boolStr(r.Disabled), "bytes": "0", "packets": "0"}
		if r.ConnectionState != "" {
			props["connection-state"] = r.ConnectionState
		}
		if r.Comment != "" {
			props["comment"] = r.Comment
		}
		if v7 && action == "fasttrack-connection" {
			props["hw-offload"] = boolStr(r.HWOffload)
		}
		f.addRow(props)
	}
	s.menus[pathFilter] = f
	sw := &menu{canSet: true, fields: []string{"name", "type"}, kinds: map[string]kind{}}
	props := map[string]string{"name": "switch1", "type": "Atheros-8327"}
	if v7 {
		sw.fields = append(sw.fields, "l3-hw-offloading")
		sw.kinds["l3-hw-offloading"] = kBool
		props["l3-hw-offloading"] = boolStr(s.p.L3HWOffload)
		props["type"] = "Marvell-98DX3236"
	}
	sw.addRow(props)
	s.menus[pathSwitch] = sw
}

// countersLocked writes the live counters into /interface before a print.
func (s *Server) countersLocked(path string) {
	if path != "/interface" {
		return
	}
	m := s.menus[path]
	for _, r := range m.rows {
		n, err := strconv.ParseUint(strings.TrimPrefix(r.id, "*"), 16, 32)
		if err != nil {
			continue
		}
		c := s.counters[uint32(n)]
		if c == nil {
			c = &IfCounters{}
		}
		r.props["rx-byte"] = strconv.FormatUint(c.RxBytes, 10)
		r.props["tx-byte"] = strconv.FormatUint(c.TxBytes, 10)
		r.props["rx-packet"] = strconv.FormatUint(c.RxPackets, 10)
		r.props["tx-packet"] = strconv.FormatUint(c.TxPackets, 10)
		if _, ok := r.props["slave"]; !ok {
			r.props["slave"] = "false"
		}
	}
}

// AddInterfaceTraffic counts traffic on an interface (by ifIndex): rx is
// what entered it, tx what left it. Unknown interfaces are ignored.
func (s *Server) AddInterfaceTraffic(ifIndex uint32, c IfCounters) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.counters[ifIndex]
	if cur == nil {
		return
	}
	cur.RxBytes += c.RxBytes
	cur.TxBytes += c.TxBytes
	cur.RxPackets += c.RxPackets
	cur.TxPackets += c.TxPackets
}

// SetInterfaceCounters sets an interface's counters (a test of wraps).
func (s *Server) SetInterfaceCounters(ifIndex uint32, c IfCounters) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.counters[ifIndex]; cur != nil {
		*cur = c
	}
}

// InterfaceCounters returns an interface's counters.
func (s *Server) InterfaceCounters(ifIndex uint32) IfCounters {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.counters[ifIndex]; c != nil {
		return *c
	}
	return IfCounters{}
}

// AddFilterHits adds to the bytes and packets counters of the n-th (from
// 0) /ip/firewall/filter rule with the given action, as traffic matching
// it would.
func (s *Server) AddFilterHits(action string, n int, bytes, packets uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.menus[pathFilter]
	for _, r := range m.rows {
		if r.props["action"] != action {
			continue
		}
		if n > 0 {
			n--
			continue
		}
		b, _ := strconv.ParseUint(r.props["bytes"], 10, 64)
		p, _ := strconv.ParseUint(r.props["packets"], 10, 64)
		r.props["bytes"] = strconv.FormatUint(b+bytes, 10)
		r.props["packets"] = strconv.FormatUint(p+packets, 10)
		return
	}
}

// Reboot makes the router start again: its uptime from 0, its interface
// counters and filter rule counters from 0. Sessions are not closed (a
// real reboot would close them; pollers dial for each poll).
func (s *Server) Reboot() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = s.now()
	s.p.Uptime = 0
	for _, c := range s.counters {
		*c = IfCounters{}
	}
	for _, r := range s.menus[pathFilter].rows {
		r.props["bytes"], r.props["packets"] = "0", "0"
	}
}
