package web

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
)

// hostChecker decides which Host headers the console answers, against DNS
// rebinding: a web page on evil.example whose name is made to resolve to
// the console's address reaches it from the victim's browser, but with
// "Host: evil.example". The console answers only its own names: an
// address (any IP literal: a rebinding attack needs a name, and a literal
// is what the operator typed, also through NAT or a published container
// port), localhost and its subdomains, the machine's host name, and the
// names of web.hosts.
type hostChecker struct {
	names    map[string]bool // lower case, no trailing dot
	suffixes []string        // ".example.net" from "*.example.net"
}

// newHostChecker builds the checker from web.hosts and the machine's host
// name (hostname may be empty).
func newHostChecker(hosts []string, hostname string) *hostChecker {
	c := &hostChecker{names: map[string]bool{"localhost": true}}
	c.suffixes = append(c.suffixes, ".localhost")
	if h := normalizeHost(hostname); h != "" {
		c.names[h] = true
		if short, _, ok := strings.Cut(h, "."); ok && short != "" {
			c.names[short] = true
		}
	}
	for _, h := range hosts {
		h = normalizeHost(h)
		if rest, ok := strings.CutPrefix(h, "*."); ok {
			c.suffixes = append(c.suffixes, "."+rest)
			continue
		}
		c.names[h] = true
	}
	return c
}

// normalizeHost lower-cases a host name and drops a trailing dot.
func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// allowed reports whether the request's Host (with or without port) is one
// of the console's names.
func (c *hostChecker) allowed(hostport string) bool {
	if hostport == "" {
		return true // HTTP/1.0 without Host: not a browser
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if i := strings.IndexByte(host, '%'); i >= 0 {
		host = host[:i] // IPv6 zone
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	host = normalizeHost(host)
	if c.names[host] {
		return true
	}
	for _, s := range c.suffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

// validateHost checks one web.hosts entry: a host name, "*." and a domain,
// or an address; no scheme, port or path.
func validateHost(h string) error {
	if h == "" {
		return fmt.Errorf("empty host name")
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	name := strings.TrimSuffix(strings.TrimPrefix(h, "*."), ".")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("%q is not a host name", h)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%q is not a host name (give a name like console.example.net, without scheme or port)", h)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("%q is not a host name (give a name like console.example.net, without scheme or port)", h)
			}
		}
	}
	return nil
}

// checkHost refuses requests for a Host that is not one of the console's
// names with 421 Misdirected Request; /healthz stays open to local health
// checks whatever name they use.
func (s *Server) checkHost(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path == "/healthz" || s.hosts.allowed(r.Host) {
		return true
	}
	s.metrics.requests.WithLabelValues("host", "421").Inc()
	msg := fmt.Sprintf("%q is not a name of this console: open it by its address or add the name to web.hosts", r.Host)
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeError(w, http.StatusMisdirectedRequest, msg)
	} else {
		http.Error(w, msg, http.StatusMisdirectedRequest)
	}
	return false
}

// machineHostname returns the machine's host name, or "" when it cannot be
// read.
func machineHostname() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return h
}
