package mitigate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/flowbox/flowbox/routeros"
	"github.com/flowbox/flowbox/store"
)

// commentPrefix starts the comment of every entry flowbox adds: what Undo
// and Cleanup recognise as flowbox's. The whole comment is
// "flowbox alert <id>: <kind>".
const commentPrefix = "flowbox alert "

// comment is the comment of an alert's entries.
func comment(alertID int64, kind string) string {
	return fmt.Sprintf("%s%d: %s", commentPrefix, alertID, kind)
}

// commentAlert returns the alert id in a flowbox comment.
func commentAlert(c string) (int64, bool) {
	rest, ok := strings.CutPrefix(c, commentPrefix)
	if !ok {
		return 0, false
	}
	id, _, _ := strings.Cut(rest, ":")
	n, err := strconv.ParseInt(id, 10, 64)
	return n, err == nil
}

// listMenu and routeMenu are the menus of an address's family.
func listMenu(a netip.Addr) string {
	if a.Is6() {
		return "/ipv6/firewall/address-list"
	}
	return "/ip/firewall/address-list"
}

func routeMenu(a netip.Addr) string {
	if a.Is6() {
		return "/ipv6/route"
	}
	return "/ip/route"
}

// hostPrefix is a's /32 or /128.
func hostPrefix(a netip.Addr) string { return netip.PrefixFrom(a, a.BitLen()).String() }

// listAddress is a as flowbox writes it into an address list: bare for
// IPv4, a /128 prefix for IPv6 (the IPv6 list holds prefixes).
func listAddress(a netip.Addr) string {
	if a.Is6() {
		return hostPrefix(a)
	}
	return a.String()
}

// printedAddr reads an address as a router prints it in an address list
// or a route ("192.0.2.7", "192.0.2.7/32", "2001:db8::7/128"); ok only for
// a single address.
func printedAddr(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.IsSingleIP() {
		return netip.Addr{}, false
	}
	return p.Addr().Unmap(), true
}

// session is one logged-in API session with a router, used by one
// goroutine for one change (or one maintenance round) and then closed.
type session struct {
	api     API
	router  *store.Router
	major   int
	timeout time.Duration
}

var versionRe = regexp.MustCompile(`^(\d+)\.\d+`)

// majorVersion returns the RouterOS major version of "7.16.2 (stable)".
func majorVersion(v string) (int, bool) {
	m := versionRe.FindStringSubmatch(strings.TrimSpace(v))
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	return n, err == nil
}

// run sends one command with its own deadline.
func (s *session) run(ctx context.Context, words ...string) (*routeros.Reply, error) {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rep, err := s.api.Run(cctx, words...)
	if err != nil {
		return rep, err
	}
	if rep == nil {
		rep = &routeros.Reply{Done: routeros.Row{}}
	}
	return rep, nil
}

// detectVersion reads the major version from /system/resource when the
// stored one does not parse.
func (s *session) detectVersion(ctx context.Context) error {
	if n, ok := majorVersion(s.router.Version); ok {
		s.major = n
		return nil
	}
	rep, err := s.run(ctx, "/system/resource/print", "=.proplist=version")
	if err != nil {
		return fmt.Errorf("cannot read the RouterOS version: %w", err)
	}
	if len(rep.Re) > 0 {
		if n, ok := majorVersion(rep.Re[0]["version"]); ok {
			s.major = n
			return nil
		}
	}
	return errors.New("cannot read the RouterOS version: /system/resource has no version")
}

// ownAddress reports whether a is one of the router's own addresses (its
// interfaces' or the API address flowbox reaches it at).
func (s *session) ownAddress(a netip.Addr) bool {
	for _, p := range s.router.Addresses {
		if p.Addr().Unmap() == a {
			return true
		}
	}
	host := s.router.Address
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if h, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil && h.Unmap() == a {
		return true
	}
	return false
}

// isMissing reports whether err says the item is gone (expired, removed
// by someone else).
func isMissing(err error) bool {
	return errors.Is(err, routeros.ErrUnknown) || strings.Contains(strings.ToLower(err.Error()), "no such item")
}

// listEntry is an address-list entry found on the router.
type listEntry struct {
	id, list, comment string
	addr              netip.Addr
}

// addListEntry adds a to list. When the list already has a, it returns
// that entry instead (nil error, existing set).
func (s *session) addListEntry(ctx context.Context, list string, a netip.Addr, timeout time.Duration, cmt string) (existing *listEntry, err error) {
	_, err = s.run(ctx, listMenu(a)+"/add", "=list="+list, "=address="+listAddress(a),
		"=timeout="+routeros.FormatDuration(timeout), "=comment="+cmt)
	if err == nil || !errors.Is(err, routeros.ErrExists) {
		return nil, err
	}
	found, ferr := s.findListEntries(ctx, a, list)
	if ferr != nil {
		return nil, fmt.Errorf("%w; then %w", err, ferr)
	}
	if len(found) == 0 {
		return nil, err
	}
	return &found[0], nil
}

// findListEntries returns list's entries for a.
func (s *session) findListEntries(ctx context.Context, a netip.Addr, list string) ([]listEntry, error) {
	rep, err := s.run(ctx, listMenu(a)+"/print", "=.proplist=.id,list,address,comment", "?list="+list)
	if err != nil {
		return nil, err
	}
	var out []listEntry
	for _, r := range rep.Re {
		if got, ok := printedAddr(r["address"]); ok && got == a {
			out = append(out, listEntry{id: r[".id"], list: r["list"], comment: r["comment"], addr: got})
		}
	}
	return out, nil
}

// setListEntry gives an entry a new timeout (from now) and comment.
func (s *session) setListEntry(ctx context.Context, a netip.Addr, id string, timeout time.Duration, cmt string) error {
	words := []string{listMenu(a) + "/set", "=.id=" + id, "=timeout=" + routeros.FormatDuration(timeout)}
	if cmt != "" {
		words = append(words, "=comment="+cmt)
	}
	_, err := s.run(ctx, words...)
	return err
}

// removeListEntries removes flowbox's entries for a from list; it returns
// how many it removed (0 when they had expired).
func (s *session) removeListEntries(ctx context.Context, a netip.Addr, list string) (int, error) {
	found, err := s.findListEntries(ctx, a, list)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range found {
		if !strings.HasPrefix(e.comment, commentPrefix) {
			continue
		}
		if err := s.remove(ctx, listMenu(a), e.id); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// remove removes one item; an item already gone is no error.
func (s *session) remove(ctx context.Context, menu, id string) error {
	if _, err := s.run(ctx, menu+"/remove", "=.id="+id); err != nil && !isMissing(err) {
		return err
	}
	return nil
}

// errNoIPv6Blackhole says RouterOS 6 cannot blackhole an IPv6 address:
// its IPv6 routes are unicast or unreachable (which answers every packet
// with an ICMP error) only.
var errNoIPv6Blackhole = errors.New("RouterOS 6 has no IPv6 blackhole route")

// addBlackhole adds a blackhole route for a: `blackhole=yes` on RouterOS
// 7, `type=blackhole` on RouterOS 6.
func (s *session) addBlackhole(ctx context.Context, a netip.Addr, cmt string) error {
	words := []string{routeMenu(a) + "/add", "=dst-address=" + hostPrefix(a), "=comment=" + cmt}
	switch {
	case s.major >= 7:
		words = append(words, "=blackhole=yes")
	case a.Is6():
		return errNoIPv6Blackhole
	default:
		words = append(words, "=type=blackhole")
	}
	_, err := s.run(ctx, words...)
	return err
}

// routeEntry is a route found on the router.
type routeEntry struct {
	id, comment string
	addr        netip.Addr
}

// findRoutes returns the routes to a's /32 (/128) with a flowbox comment.
func (s *session) findRoutes(ctx context.Context, a netip.Addr) ([]routeEntry, error) {
	rep, err := s.run(ctx, routeMenu(a)+"/print", "=.proplist=.id,dst-address,comment", "?dst-address="+hostPrefix(a))
	if err != nil {
		return nil, err
	}
	var out []routeEntry
	for _, r := range rep.Re {
		if strings.HasPrefix(r["comment"], commentPrefix) {
			out = append(out, routeEntry{id: r[".id"], comment: r["comment"], addr: a})
		}
	}
	return out, nil
}

// removeBlackholes removes flowbox's routes to a; it returns how many.
func (s *session) removeBlackholes(ctx context.Context, a netip.Addr) (int, error) {
	found, err := s.findRoutes(ctx, a)
	if err != nil {
		return 0, err
	}
	for i, r := range found {
		if err := s.remove(ctx, routeMenu(a), r.id); err != nil {
			return i, err
		}
	}
	return len(found), nil
}

// scan lists every entry flowbox added on the router: address-list
// entries (dynamic ones, or in lists, since flowbox always sets a
// timeout) and routes with a comment, of both families; a family whose
// menus the router lacks (no ipv6 package) is skipped.
func (s *session) scan(ctx context.Context, lists []string) ([]listEntry, []routeEntry, error) {
	var (
		entries []listEntry
		routes  []routeEntry
	)
	for _, fam := range []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()} {
		words := []string{listMenu(fam) + "/print", "=.proplist=.id,list,address,comment", "?dynamic=true"}
		for _, l := range lists {
			words = append(words, "?list="+l, "?#|")
		}
		rep, err := s.run(ctx, words...)
		if fam.Is6() && err != nil && errors.Is(err, routeros.ErrUnknown) {
			continue // no ipv6 package
		}
		if err != nil {
			return nil, nil, fmt.Errorf("cannot read %s: %w", listMenu(fam), err)
		}
		for _, r := range rep.Re {
			a, ok := printedAddr(r["address"])
			if ok && strings.HasPrefix(r["comment"], commentPrefix) {
				entries = append(entries, listEntry{id: r[".id"], list: r["list"], comment: r["comment"], addr: a})
			}
		}
		rep, err = s.run(ctx, routeMenu(fam)+"/print", "=.proplist=.id,dst-address,comment", "?comment")
		if err != nil {
			return nil, nil, fmt.Errorf("cannot read %s: %w", routeMenu(fam), err)
		}
		for _, r := range rep.Re {
			a, ok := printedAddr(r["dst-address"])
			if ok && strings.HasPrefix(r["comment"], commentPrefix) {
				routes = append(routes, routeEntry{id: r[".id"], comment: r["comment"], addr: a})
			}
		}
	}
	return entries, routes, nil
}
