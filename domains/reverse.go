package domains

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// TopHosts returns the top remote hosts of the last while, largest
// first; the reverse-DNS fallback looks at these only.
type TopHosts func(ctx context.Context) ([]netip.Addr, error)

// ReverseDeps are the reverse-DNS fallback's dependencies.
type ReverseDeps struct {
	Logger  *slog.Logger
	History *History
	Top     TopHosts
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Wait waits d unless ctx ends first (the rate limit); a timer when
	// nil.
	Wait func(ctx context.Context, d time.Duration) error
}

// ReverseStats are the fallback's counters since flowbox started.
type ReverseStats struct {
	Enabled bool `json:"enabled"`
	// Lookups counts the PTR queries, Named those that gave a name,
	// NoName those that gave none (NXDOMAIN, no PTR), Failures those that
	// failed (timeout, server failure); LastError is the latest failure.
	Lookups   uint64 `json:"lookups"`
	Named     uint64 `json:"named"`
	NoName    uint64 `json:"no_name"`
	Failures  uint64 `json:"failures"`
	LastError string `json:"last_error,omitempty"`
	// Cached is the number of answers kept, Dropped the answers not kept
	// because the cache was full.
	Cached  int    `json:"cached"`
	Dropped uint64 `json:"dropped"`
}

// ptrAnswer is a cached PTR answer ("" for none).
type ptrAnswer struct {
	name    string
	expires time.Time
}

// Reverse names the top remote hosts that no router's cache names with
// their PTR records, asynchronously and rate-limited, and adds them to the
// History marked Reverse: a reverse name says who runs the host (a CDN's
// machine), not which site the customer visited.
type Reverse struct {
	cfg      ReverseConfig
	deps     ReverseDeps
	log      *slog.Logger
	now      func() time.Time
	resolver *net.Resolver

	mu    sync.Mutex
	cache map[addrKey]ptrAnswer
	stats ReverseStats
}

// NewReverse builds the fallback from the reverse part of cfg.
func NewReverse(cfg Config, deps ReverseDeps) (*Reverse, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid domains configuration: %w", err)
	}
	if deps.Logger == nil || deps.History == nil || deps.Top == nil {
		return nil, errors.New("cannot build the reverse-DNS fallback: Logger, History and Top are required")
	}
	r := &Reverse{cfg: cfg.Reverse, deps: deps, log: deps.Logger, now: deps.Now, cache: map[addrKey]ptrAnswer{}}
	if r.now == nil {
		r.now = time.Now
	}
	if r.deps.Wait == nil {
		r.deps.Wait = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		}
	}
	r.resolver = &net.Resolver{PreferGo: true}
	if server := cfg.Reverse.Resolver; server != "" {
		r.resolver.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		}
	}
	r.stats.Enabled = cfg.Reverse.Enabled
	return r, nil
}

// Run looks up the top remote hosts every Interval until ctx ends; with
// the fallback off it only waits.
func (r *Reverse) Run(ctx context.Context) error {
	if !r.cfg.Enabled {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		r.Round(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// worthAsking reports whether a PTR lookup of a could name a remote host:
// public unicast addresses only.
func worthAsking(a netip.Addr) bool {
	if !a.IsValid() || a.IsUnspecified() || a.IsLoopback() || a.IsPrivate() || a.IsMulticast() ||
		a.IsLinkLocalUnicast() || a.IsInterfaceLocalMulticast() {
		return false
	}
	cgnat := netip.MustParsePrefix("100.64.0.0/10")
	return !cgnat.Contains(a)
}

// Round looks up, rate-limited, the top hosts that neither a router's
// cache nor an earlier PTR answer names, and returns how many it asked.
func (r *Reverse) Round(ctx context.Context) int {
	if !r.cfg.Enabled {
		return 0
	}
	top, err := r.deps.Top(ctx)
	if err != nil {
		r.log.Warn("cannot list the top remote hosts for reverse DNS", "error", err)
		return 0
	}
	if len(top) > r.cfg.Top {
		top = top[:r.cfg.Top]
	}
	now := r.now()
	r.mu.Lock()
	for k, a := range r.cache {
		if !now.Before(a.expires) {
			delete(r.cache, k)
		}
	}
	var ask []netip.Addr
	for _, a := range top {
		a = a.Unmap()
		if !worthAsking(a) {
			continue
		}
		if _, cached := r.cache[keyOf(a)]; cached {
			continue
		}
		if l, ok := r.deps.History.Label(a, now.UnixMilli()); ok && !l.Reverse {
			continue // a router's cache names it
		}
		ask = append(ask, a)
	}
	r.mu.Unlock()
	every := time.Duration(float64(time.Second) / r.cfg.Rate)
	for i, a := range ask {
		if i > 0 {
			if err := r.deps.Wait(ctx, every); err != nil {
				return i
			}
		}
		r.lookup(ctx, a)
	}
	return len(ask)
}

// lookup asks one PTR record and records the answer.
func (r *Reverse) lookup(ctx context.Context, a netip.Addr) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	names, err := r.resolver.LookupAddr(ctx, a.String())
	now := r.now()
	var dnsErr *net.DNSError
	notFound := errors.As(err, &dnsErr) && dnsErr.IsNotFound
	name := ""
	for _, n := range names {
		if nn, nerr := NormalizeName(n); nerr == nil {
			name = nn
			break
		}
	}
	r.mu.Lock()
	r.stats.Lookups++
	switch {
	case name != "":
		r.stats.Named++
	case err == nil || notFound:
		r.stats.NoName++
	default:
		r.stats.Failures++
		r.stats.LastError = fmt.Sprintf("cannot look up the PTR record of %s: %v", a, err)
		r.mu.Unlock()
		r.log.Debug("reverse DNS lookup failed", "addr", a, "error", err)
		return
	}
	if len(r.cache) >= r.cfg.Cache {
		r.stats.Dropped++
	} else {
		r.cache[keyOf(a)] = ptrAnswer{name: name, expires: now.Add(r.cfg.CacheTTL)}
	}
	r.mu.Unlock()
	if name == "" {
		return
	}
	if err := r.deps.History.Add(Sighting{Addr: a, Name: name, Reverse: true, From: now, Seen: now,
		Until: now.Add(r.cfg.CacheTTL)}); err != nil {
		r.log.Debug("reverse DNS name not kept", "addr", a, "name", name, "error", err)
	}
}

// Stats returns the fallback's counters.
func (r *Reverse) Stats() ReverseStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats
	st.Cached = len(r.cache)
	return st
}
