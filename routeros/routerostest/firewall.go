package routerostest

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowbox/flowbox/routeros"
)

// AddressListEntry is one /ip/firewall/address-list (or
// /ipv6/firewall/address-list) entry. In Personality.AddressLists the
// family follows the address, and Timeout, Dynamic and ID are ignored:
// seeded entries are static, like an operator's own.
type AddressListEntry struct {
	ID   string
	List string
	// Address as the router prints it: "192.0.2.7" or "192.0.2.0/24" for
	// IPv4, always a prefix ("2001:db8::7/128") for IPv6.
	Address string
	Comment string
	// Timeout is the time left before the entry expires (0: static);
	// entries with a timeout are dynamic.
	Timeout  time.Duration
	Dynamic  bool
	Disabled bool
}

// Route is one /ip/route (or /ipv6/route) entry. In Personality.Routes the
// family follows DstAddress; ID and Dynamic are ignored.
type Route struct {
	ID         string
	DstAddress netip.Prefix
	Gateway    string
	Distance   int
	// Blackhole is RouterOS 7's blackhole=yes, or RouterOS 6's
	// type=blackhole.
	Blackhole bool
	// Type is RouterOS 6's route type (unicast, blackhole, prohibit,
	// unreachable; IPv6: unicast, unreachable); "" on RouterOS 7, which has
	// no such property.
	Type     string
	Comment  string
	Dynamic  bool
	Disabled bool
}

// Menus of the firewall address lists and routes.
const (
	pathAddressList  = "/ip/firewall/address-list"
	pathAddressList6 = "/ipv6/firewall/address-list"
	pathRoute        = "/ip/route"
	pathRoute6       = "/ipv6/route"
)

// buildFirewall fills the address lists and the routes, with the
// personality's differences: RouterOS 7 prints creation-time on address
// lists and marks blackhole routes with the blackhole property; RouterOS 6
// has no creation-time and uses type=blackhole (IPv6: unicast or
// unreachable only, no blackhole). The /ipv6 menus exist only with the
// ipv6 package.
func (s *Server) buildFirewall() {
	major, _, _, _ := ParseVersion(s.p.Version)
	v7 := major >= 7
	families := []bool{false}
	if !s.p.NoIPv6 {
		families = append(families, true)
	}
	for _, v6 := range families {
		al := &menu{canAdd: true, canSet: true, canDel: true, timed: true,
			fields:   []string{"list", "address", "timeout", "dynamic", "disabled", "comment"},
			kinds:    map[string]kind{"list": kStr, "address": kListAddr4, "timeout": kDur, "comment": kStr, "disabled": kBool},
			required: []string{"list", "address"},
			defaults: map[string]string{"dynamic": "false", "disabled": "false"},
			unique: func(m *menu, r *row) *trap {
				for _, o := range m.rows {
					if o.id != r.id && o.props["list"] == r.props["list"] && o.props["address"] == r.props["address"] {
						return &trap{message: "failure: already have such entry"}
					}
				}
				return nil
			}}
		if v7 {
			al.fields = append(al.fields, "creation-time")
		}
		rt := &menu{canAdd: true, canSet: true, canDel: true,
			fields:   []string{"dst-address", "gateway", "distance", "active", "dynamic", "static", "disabled", "comment"},
			kinds:    map[string]kind{"dst-address": kPrefix4, "gateway": kStr, "distance": kInt, "comment": kStr, "disabled": kBool},
			required: []string{"dst-address"},
			defaults: map[string]string{"gateway": "", "distance": "1", "active": "true", "dynamic": "false", "static": "true", "disabled": "false"}}
		if v7 {
			rt.fields = append(rt.fields, "blackhole", "routing-table")
			rt.kinds["blackhole"], rt.kinds["routing-table"] = kBool, kStr
			rt.defaults["blackhole"], rt.defaults["routing-table"] = "false", "main"
		} else {
			rt.fields = append(rt.fields, "type", "routing-mark")
			rt.kinds["type"], rt.kinds["routing-mark"] = kRouteType4, kStr
			rt.defaults["type"] = "unicast"
		}
		alPath, rtPath := pathAddressList, pathRoute
		if v6 {
			alPath, rtPath = pathAddressList6, pathRoute6
			al.kinds["address"], rt.kinds["dst-address"] = kListAddr6, kPrefix6
			if !v7 {
				rt.kinds["type"] = kRouteType6
			}
		}
		for _, e := range s.p.AddressLists {
			if strings.Contains(e.Address, ":") != v6 {
				continue
			}
			addr, t := normalize(al.kinds["address"], "address", e.Address)
			if t != nil {
				addr = e.Address
			}
			props := map[string]string{"list": e.List, "address": addr, "dynamic": "false", "disabled": boolStr(e.Disabled)}
			if e.Comment != "" {
				props["comment"] = e.Comment
			}
			if v7 {
				props["creation-time"] = s.started.Format(time.DateTime)
			}
			al.addRow(props)
		}
		for _, r := range s.p.Routes {
			if r.DstAddress.Addr().Is6() != v6 {
				continue
			}
			props := map[string]string{"dst-address": r.DstAddress.Masked().String(), "gateway": r.Gateway,
				"distance": "1", "active": boolStr(!r.Disabled), "dynamic": "false", "static": "true",
				"disabled": boolStr(r.Disabled)}
			if r.Comment != "" {
				props["comment"] = r.Comment
			}
			if r.Distance > 0 {
				props["distance"] = strconv.Itoa(r.Distance)
			}
			if v7 {
				props["blackhole"], props["routing-table"] = boolStr(r.Blackhole), "main"
			} else {
				props["type"] = r.Type
				if props["type"] == "" {
					props["type"] = "unicast"
					if r.Blackhole {
						props["type"] = "blackhole"
					}
				}
			}
			rt.addRow(props)
		}
		s.menus[alPath], s.menus[rtPath] = al, rt
	}
}

// stampLocked runs after a successful add or set on a timed menu (the
// address lists): a timeout makes the entry dynamic and sets when it
// expires on the server's clock; RouterOS 7 records the creation time.
func (s *Server) stampLocked(m *menu, req *request, id string) {
	if !m.timed {
		return
	}
	r := m.find(id)
	if r == nil {
		return
	}
	now := s.now()
	if req.verb == "add" && slices.Contains(m.fields, "creation-time") {
		r.props["creation-time"] = now.Format(time.DateTime)
	}
	if _, ok := req.attrs["timeout"]; !ok {
		return
	}
	d, err := routeros.ParseDuration(r.props["timeout"])
	if err != nil || d <= 0 {
		r.expires = time.Time{}
		delete(r.props, "timeout")
		r.props["dynamic"] = "false"
		return
	}
	r.expires = now.Add(d)
	r.props["dynamic"] = "true"
}

// expireLocked drops the timed entries whose timeout has run out, and
// refreshes the time left of the others.
func (s *Server) expireLocked() {
	now := s.now()
	for _, m := range s.menus {
		if !m.timed {
			continue
		}
		m.rows = slices.DeleteFunc(m.rows, func(r *row) bool { return !r.expires.IsZero() && !now.Before(r.expires) })
		for _, r := range m.rows {
			if !r.expires.IsZero() {
				left := r.expires.Sub(now).Truncate(time.Second)
				r.props["timeout"] = routeros.FormatDuration(max(left, time.Second))
			}
		}
	}
}

// SetClock replaces the clock that address-list timeouts run on (default
// time.Now), so that tests can expire entries without waiting. Entries
// keep the expiry time they were given.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now == nil {
		now = time.Now
	}
	// The uptime goes on from where it was, on the new clock.
	s.started = now().Add(-s.now().Sub(s.started))
	s.now = now
}

// AddressList returns the entries of /ip/firewall/address-list (ipv6:
// /ipv6/firewall/address-list), without the expired ones.
func (s *Server) AddressList(ipv6 bool) []AddressListEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	path := pathAddressList
	if ipv6 {
		path = pathAddressList6
	}
	m := s.menus[path]
	if m == nil {
		return nil
	}
	var out []AddressListEntry
	for _, r := range m.rows {
		e := AddressListEntry{ID: r.id, List: r.props["list"], Address: r.props["address"], Comment: r.props["comment"],
			Dynamic: r.props["dynamic"] == "true", Disabled: r.props["disabled"] == "true"}
		if !r.expires.IsZero() {
			e.Timeout = r.expires.Sub(s.now())
		}
		out = append(out, e)
	}
	return out
}

// Routes returns the entries of /ip/route (ipv6: /ipv6/route).
func (s *Server) Routes(ipv6 bool) []Route {
	s.mu.Lock()
	defer s.mu.Unlock()
	path := pathRoute
	if ipv6 {
		path = pathRoute6
	}
	m := s.menus[path]
	if m == nil {
		return nil
	}
	var out []Route
	for _, r := range m.rows {
		rt := Route{ID: r.id, Gateway: r.props["gateway"], Type: r.props["type"], Comment: r.props["comment"],
			Dynamic: r.props["dynamic"] == "true", Disabled: r.props["disabled"] == "true",
			Blackhole: r.props["blackhole"] == "true" || r.props["type"] == "blackhole"}
		rt.DstAddress, _ = netip.ParsePrefix(r.props["dst-address"])
		rt.Distance, _ = strconv.Atoi(r.props["distance"])
		out = append(out, rt)
	}
	return out
}
