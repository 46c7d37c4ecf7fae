// Package routerostest is a fake MikroTik router for tests and for
// `flowbox simulate`: Server speaks the real RouterOS API wire protocol over
// TCP (optionally API-SSL), keeps a RouterOS-like state in memory (identity,
// resource, routerboard, interfaces, addresses, traffic-flow and targets,
// DHCP leases, PPP sessions, queues, ARP, pools, IPv6 addresses, pools and
// DHCPv6 bindings, users and groups, services, firewall address lists
// whose entries expire on the server's clock, IPv4 and IPv6 routes)
// and answers like RouterOS: `!re`/`!done`/`!trap`/`!empty`, `=ret=` on add,
// `.proplist`, `?` queries with `?#` operators, `.tag`, and `!fatal` with a
// bare-word reason. Its Personality chooses a v6 or v7 behaviour (challenge
// or plain login, legacy `address=IP:port` targets, the ipfix menu,
// `!empty`, blackhole=yes or type=blackhole routes). Errors can be injected: silence, a connection dropped after N
// commands, the API service disabled.
//
// It writes replies with go-routeros's proto.Writer. Requests are read with
// a small word reader of its own, because proto.Reader rejects the `?` query
// words that clients send.
package routerostest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/md5" //nolint:gosec // RouterOS pre-6.43 login uses MD5
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/flowbox/flowbox/routeros"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-routeros/routeros/v3/proto"
)

// maxWord bounds one request word; longer words end the session.
const maxWord = 64 << 10

// maxWordsPerSentence bounds one request sentence.
const maxWordsPerSentence = 1024

// Server is one fake router. Build it with NewServer, start it with Listen,
// stop it with Close. All methods are safe for concurrent use.
type Server struct {
	p           Personality
	f           Features
	logger      *slog.Logger
	cert        *tls.Certificate
	fingerprint string
	started     time.Time
	now         func() time.Time // the clock of address-list timeouts

	mu        sync.Mutex
	menus     map[string]*menu
	hooks     []func(TrafficFlowState)
	silent    bool
	dropAfter int
	ln        net.Listener
	addr      string
	conns     map[net.Conn]struct{}
	closed    bool
	commands  int
	counters  map[uint32]*IfCounters // by ifIndex (counters.go)
	dns       *dnsState              // the resolver's cache (dns.go)
	wg        sync.WaitGroup
}

// NewServer builds a fake router from a personality. It opens no socket.
func NewServer(p Personality, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		return nil, errors.New("cannot build fake router: nil logger")
	}
	if p.Identity == "" {
		return nil, errors.New("cannot build fake router: empty identity")
	}
	if _, _, _, ok := ParseVersion(p.Version); !ok {
		return nil, fmt.Errorf("cannot build fake router %s: bad version %q", p.Identity, p.Version)
	}
	f := FeaturesFor(p.Version)
	if p.Features != nil {
		f = *p.Features
	}
	if f.MaxSessions <= 0 {
		f.MaxSessions = 20
	}
	s := &Server{p: p, f: f, logger: logger, started: time.Now(), now: time.Now, conns: map[net.Conn]struct{}{}}
	if err := s.buildMenus(); err != nil {
		return nil, fmt.Errorf("cannot build fake router %s: %w", p.Identity, err)
	}
	if p.TLS {
		cert, fp, err := selfSigned(p.Identity)
		if err != nil {
			return nil, fmt.Errorf("cannot build fake router %s: %w", p.Identity, err)
		}
		s.cert, s.fingerprint = cert, fp
	}
	return s, nil
}

// selfSigned makes a certificate like a router's own.
func selfSigned(cn string) (*tls.Certificate, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("cannot generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return nil, "", fmt.Errorf("cannot generate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, "", fmt.Errorf("cannot create certificate: %w", err)
	}
	sum := sha256.Sum256(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, hex.EncodeToString(sum[:]), nil
}

// Fingerprint returns the hex SHA-256 of the TLS certificate ("" without
// TLS).
func (s *Server) Fingerprint() string { return s.fingerprint }

// Personality returns the personality the server was built with.
func (s *Server) Personality() Personality { return s.p }

// Features returns the behaviours in effect.
func (s *Server) Features() Features { return s.f }

// Listen starts serving on addr (e.g. "127.0.0.1:0").
func (s *Server) Listen(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("cannot listen: fake router is closed")
	}
	if s.ln != nil {
		return errors.New("cannot listen: already listening")
	}
	return s.listenLocked(addr)
}

func (s *Server) listenLocked(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	if s.cert != nil {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*s.cert}, MinVersion: tls.VersionTLS12})
	}
	s.ln = ln
	s.addr = ln.Addr().String()
	s.wg.Add(1)
	go s.accept(ln)
	return nil
}

// Addr returns the listening address (host:port).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// SetAPIEnabled switches the API service: disabled closes the listener and
// every session (connections are then refused); enabled listens again on
// the same address.
func (s *Server) SetAPIEnabled(enabled bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("fake router is closed")
	}
	if !enabled {
		if s.ln != nil {
			_ = s.ln.Close()
			s.ln = nil
		}
		for c := range s.conns {
			_ = c.Close()
		}
		return nil
	}
	if s.ln != nil {
		return nil
	}
	if s.addr == "" {
		return errors.New("cannot enable API: never listened")
	}
	return s.listenLocked(s.addr)
}

// SetSilent makes the router accept connections and read requests but
// never answer (a hung router, a firewall eating replies).
func (s *Server) SetSilent(silent bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent = silent
}

// DropAfter arms a one-shot failure: the n-th command from now (n >= 1,
// counted over all sessions, login excluded) is executed, then the session
// is closed before the reply is sent: the client cannot know whether it
// took effect. n <= 0 disarms it.
func (s *Server) DropAfter(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropAfter = max(n, 0)
}

// Commands returns how many commands (login excluded) the router executed.
func (s *Server) Commands() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commands
}

// OnTrafficFlowChange registers fn, called with the new state after every
// change of /ip/traffic-flow or its targets (from the API goroutine, without
// locks held).
func (s *Server) OnTrafficFlowChange(fn func(TrafficFlowState)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, fn)
}

// Close stops the listener and ends every session.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.ln != nil {
		_ = s.ln.Close()
		s.ln = nil
	}
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed || len(s.conns) >= s.f.MaxSessions {
			s.mu.Unlock()
			_ = c.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serve(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			_ = c.Close()
		}()
	}
}

// session is the state of one API connection.
type session struct {
	user      string
	loggedIn  bool
	challenge []byte
}

func (s *Server) serve(c net.Conn) {
	br := bufio.NewReader(c)
	w := proto.NewWriter(c)
	defer w.Close()
	var sess session
	for {
		words, err := readSentence(br)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.logger.Debug("fake router session ended", "identity", s.p.Identity, "error", err)
			}
			return
		}
		if len(words) == 0 {
			continue
		}
		s.mu.Lock()
		silent := s.silent
		s.mu.Unlock()
		if silent {
			continue
		}
		req := parseRequest(words)
		replies, closeAfter, drop := s.handle(&sess, req)
		if drop {
			return
		}
		for _, r := range replies {
			w.BeginSentence()
			for _, word := range r {
				w.WriteWord(word)
			}
			if req.tag != "" && r[0] != "!fatal" {
				w.WriteWord(".tag=" + req.tag)
			}
			if err := w.EndSentence(); err != nil {
				return
			}
		}
		if closeAfter {
			return
		}
	}
}

// readSentence reads words up to the empty word.
func readSentence(r *bufio.Reader) ([]string, error) {
	var words []string
	for {
		n, err := readLength(r)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return words, nil
		}
		if n > maxWord || len(words) >= maxWordsPerSentence {
			return nil, fmt.Errorf("request too large")
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		words = append(words, string(b))
	}
}

func readLength(r *bufio.Reader) (int, error) {
	b, err := r.ReadByte()
	if err != nil {
		return 0, err
	}
	var extra int
	var n int
	switch {
	case b&0x80 == 0:
		return int(b), nil
	case b&0xC0 == 0x80:
		extra, n = 1, int(b&0x3F)
	case b&0xE0 == 0xC0:
		extra, n = 2, int(b&0x1F)
	case b&0xF0 == 0xE0:
		extra, n = 3, int(b&0x0F)
	case b == 0xF0:
		extra, n = 4, 0
	default:
		return 0, fmt.Errorf("reserved control byte %#x", b)
	}
	for range extra {
		c, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		n = n<<8 | int(c)
	}
	return n, nil
}

func parseRequest(words []string) *request {
	req := &request{attrs: map[string]string{}}
	cmd := words[0]
	if i := strings.LastIndex(cmd, "/"); i > 0 {
		req.path, req.verb = cmd[:i], cmd[i+1:]
	} else {
		req.path, req.verb = "", strings.TrimPrefix(cmd, "/")
	}
	for _, w := range words[1:] {
		switch {
		case strings.HasPrefix(w, ".tag="):
			req.tag = w[5:]
		case strings.HasPrefix(w, "?"):
			req.queries = append(req.queries, w)
		case strings.HasPrefix(w, "="):
			k, v, _ := strings.Cut(w[1:], "=")
			if _, dup := req.attrs[k]; !dup {
				req.order = append(req.order, k)
			}
			req.attrs[k] = v
		default:
			req.order = append(req.order, "\x00"+w) // marks a bad word
		}
	}
	return req
}

func trapReply(t *trap) [][]string {
	s := []string{"!trap"}
	if t.category != "" {
		s = append(s, "=category="+t.category)
	}
	s = append(s, "=message="+t.message)
	return [][]string{s, {"!done"}}
}

// handle executes one request. It returns the reply sentences, whether to
// close the session after them, and whether to drop it without replying.
func (s *Server) handle(sess *session, req *request) (replies [][]string, closeAfter, drop bool) {
	if req.path == "" && req.verb == "login" {
		return s.login(sess, req), false, false
	}
	if req.path == "" && req.verb == "quit" {
		return [][]string{{"!fatal", "session terminated on request"}}, true, false
	}
	if !sess.loggedIn {
		return [][]string{{"!fatal", "not logged in"}}, true, false
	}
	if req.path == "" && req.verb == "cancel" {
		return [][]string{{"!done"}}, false, false
	}
	s.mu.Lock()
	s.commands++
	if s.dropAfter > 0 {
		s.dropAfter--
		drop = s.dropAfter == 0
	}
	replies, changed := s.execLocked(sess, req)
	var hooks []func(TrafficFlowState)
	var state TrafficFlowState
	if changed {
		hooks = slices.Clone(s.hooks)
		state = s.trafficFlowLocked()
	}
	s.mu.Unlock()
	for _, h := range hooks {
		h(state)
	}
	return replies, false, drop
}

func (s *Server) login(sess *session, req *request) [][]string {
	name := req.attrs["name"]
	s.mu.Lock()
	defer s.mu.Unlock()
	fail := "invalid user name or password (6)"
	if s.f.ChallengeLogin {
		fail = "cannot log in"
		resp, ok := req.attrs["response"]
		if !ok {
			// Pre-6.43: ignore the password, hand out a challenge.
			sess.challenge = make([]byte, 16)
			_, _ = rand.Read(sess.challenge)
			return [][]string{{"!done", "=ret=" + hex.EncodeToString(sess.challenge)}}
		}
		u := s.userLocked(name)
		if u != nil && sess.challenge != nil && s.hasPolicyLocked(u, "api") {
			h := md5.New() //nolint:gosec
			h.Write([]byte{0})
			h.Write([]byte(u.props["password"]))
			h.Write(sess.challenge)
			if resp == "00"+hex.EncodeToString(h.Sum(nil)) {
				sess.loggedIn, sess.user = true, name
				return [][]string{{"!done"}}
			}
		}
		return trapReply(&trap{message: fail})
	}
	u := s.userLocked(name)
	if u != nil && u.props["password"] == req.attrs["password"] && s.hasPolicyLocked(u, "api") && u.props["disabled"] != "true" {
		sess.loggedIn, sess.user = true, name
		return [][]string{{"!done"}}
	}
	return trapReply(&trap{message: fail})
}

func (s *Server) userLocked(name string) *row {
	for _, r := range s.menus["/user"].rows {
		if r.props["name"] == name {
			return r
		}
	}
	return nil
}

func (s *Server) hasPolicyLocked(u *row, policy string) bool {
	for _, g := range s.menus["/user/group"].rows {
		if g.props["name"] == u.props["group"] {
			return slices.Contains(strings.Split(g.props["policy"], ","), policy)
		}
	}
	return false
}

// execLocked runs a logged-in command; changed reports a traffic-flow change.
func (s *Server) execLocked(sess *session, req *request) ([][]string, bool) {
	s.expireLocked()
	m, ok := s.menus[req.path]
	if !ok {
		return trapReply(&trap{category: "0", message: "no such command prefix"}), false
	}
	u := s.userLocked(sess.user)
	if u == nil {
		return trapReply(&trap{message: "user removed"}), false
	}
	for _, k := range req.order {
		if strings.HasPrefix(k, "\x00") {
			return trapReply(&trap{category: "0", message: "expected end of command"}), false
		}
	}
	if req.verb == "print" || req.verb == "getall" {
		if !s.hasPolicyLocked(u, "read") {
			return trapReply(errNoPermission), false
		}
		return s.printLocked(m, req), false
	}
	allowed := (req.verb == "add" && m.canAdd) || (req.verb == "set" && m.canSet) || (req.verb == "remove" && m.canDel)
	if !allowed {
		return trapReply(&trap{category: "0", message: "no such command"}), false
	}
	if !s.hasPolicyLocked(u, "write") || (m.policy != "" && !s.hasPolicyLocked(u, m.policy)) {
		return trapReply(errNoPermission), false
	}
	var (
		done = []string{"!done"}
		t    *trap
	)
	switch req.verb {
	case "add":
		var id string
		id, t = m.add(req)
		if t == nil {
			done = append(done, "=ret="+id)
			s.stampLocked(m, req, id)
		}
	case "set":
		t = m.set(req)
		if t == nil && !m.single {
			s.stampLocked(m, req, req.attrs[".id"])
		}
	case "remove":
		t = m.remove(req)
	}
	if t != nil {
		return trapReply(t), false
	}
	return [][]string{done}, strings.HasPrefix(req.path, "/ip/traffic-flow")
}

func (s *Server) printLocked(m *menu, req *request) [][]string {
	if req.path == "/system/resource" {
		up := s.now().Sub(s.started) + s.p.Uptime
		m.rows[0].props["uptime"] = routeros.FormatDuration(up.Truncate(time.Second))
	}
	s.countersLocked(req.path)
	s.dnsLocked(req.path)
	rows := selectRows(m.rows, req.queries)
	if _, ok := req.attrs["count-only"]; ok {
		return [][]string{{"!done", "=ret=" + strconv.Itoa(len(rows))}}
	}
	var props []string
	if pl, ok := req.attrs[".proplist"]; ok {
		props = strings.Split(pl, ",")
	} else {
		if !m.single {
			props = append(props, ".id")
		}
		props = append(props, m.fields...)
	}
	var out [][]string
	for _, r := range rows {
		sen := []string{"!re"}
		for _, p := range props {
			if m.hidden[p] || (m.single && p == ".id") {
				continue
			}
			if base, isOID := strings.CutSuffix(p, ".oid"); isOID {
				if s.f.OIDs && m.oid != nil {
					if v, ok := m.oid(r, base); ok {
						sen = append(sen, "="+p+"="+v)
					}
				}
				continue
			}
			if v, ok := r.get(p); ok {
				sen = append(sen, "="+p+"="+v)
			}
		}
		out = append(out, sen)
	}
	if len(out) == 0 && s.f.EmptyReply {
		out = append(out, []string{"!empty"})
	}
	return append(out, []string{"!done"})
}

// add creates a row from the request's attributes.
func (m *menu) add(req *request) (string, *trap) {
	props := map[string]string{}
	for k, v := range m.defaults {
		props[k] = v
	}
	if t := m.apply(props, req); t != nil {
		return "", t
	}
	for _, k := range m.required {
		if _, ok := req.attrs[k]; !ok {
			return "", &trap{category: "1", message: "missing value(s) of argument(s) " + k}
		}
	}
	r := &row{props: props}
	if m.unique != nil {
		if t := m.unique(m, r); t != nil {
			return "", t
		}
	}
	return m.addRow(props).id, nil
}

// apply writes the request's attributes into props after checking them.
func (m *menu) apply(props map[string]string, req *request) *trap {
	for _, k := range req.order {
		if k == ".id" {
			continue
		}
		kd, ok := m.kinds[k]
		if !ok {
			return &trap{category: "1", message: "unknown parameter " + k}
		}
		v, t := normalize(kd, k, req.attrs[k])
		if t != nil {
			return t
		}
		props[k] = v
	}
	return nil
}

func (m *menu) set(req *request) *trap {
	var target *row
	if m.single {
		target = m.rows[0]
	} else {
		id, ok := req.attrs[".id"]
		if !ok {
			return &trap{category: "1", message: "missing value(s) of argument(s) .id"}
		}
		if target = m.find(id); target == nil {
			return &trap{category: "0", message: "no such item"}
		}
	}
	props := make(map[string]string, len(target.props))
	for k, v := range target.props {
		props[k] = v
	}
	if t := m.apply(props, req); t != nil {
		return t
	}
	if m.unique != nil {
		if t := m.unique(m, &row{id: target.id, props: props}); t != nil {
			return t
		}
	}
	target.props = props
	return nil
}

func (m *menu) remove(req *request) *trap {
	id, ok := req.attrs[".id"]
	if !ok {
		return &trap{category: "1", message: "missing value(s) of argument(s) .id"}
	}
	var del []*row
	for _, one := range strings.Split(id, ",") {
		r := m.find(one)
		if r == nil {
			return &trap{category: "0", message: "no such item"}
		}
		del = append(del, r)
	}
	m.rows = slices.DeleteFunc(m.rows, func(r *row) bool { return slices.Contains(del, r) })
	return nil
}

// TrafficFlow returns the current /ip/traffic-flow state and targets.
func (s *Server) TrafficFlow() TrafficFlowState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.trafficFlowLocked()
}

func (s *Server) trafficFlowLocked() TrafficFlowState {
	tf := s.menus["/ip/traffic-flow"].rows[0].props
	st := TrafficFlowState{
		Enabled:        tf["enabled"] == "true",
		Interfaces:     tf["interfaces"],
		CacheEntries:   tf["cache-entries"],
		PacketSampling: tf["packet-sampling"] == "true",
	}
	st.ActiveFlowTimeout, _ = routeros.ParseDuration(tf["active-flow-timeout"])
	st.InactiveFlowTimeout, _ = routeros.ParseDuration(tf["inactive-flow-timeout"])
	st.SamplingInterval, _ = strconv.Atoi(tf["sampling-interval"])
	st.SamplingSpace, _ = strconv.Atoi(tf["sampling-space"])
	for _, r := range s.menus["/ip/traffic-flow/target"].rows {
		t := Target{ID: r.id, Version: r.props["version"], Disabled: r.props["disabled"] == "true"}
		if a, ok := r.props["address"]; ok {
			if ap, err := netip.ParseAddrPort(a); err == nil {
				t.DstAddress, t.Port = ap.Addr(), ap.Port()
			}
		} else {
			t.DstAddress, _ = netip.ParseAddr(r.props["dst-address"])
			p, _ := strconv.ParseUint(r.props["port"], 10, 16)
			t.Port = uint16(p)
			t.SrcAddress, _ = netip.ParseAddr(r.props["src-address"])
		}
		t.TemplateRefresh, _ = strconv.Atoi(r.props["v9-template-refresh"])
		t.TemplateTimeout, _ = routeros.ParseDuration(r.props["v9-template-timeout"])
		st.Targets = append(st.Targets, t)
	}
	return st
}
