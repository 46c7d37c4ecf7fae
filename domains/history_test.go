package domains

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ms(t time.Time) int64 { return t.UnixMilli() }

func newTestHistory(t testing.TB, mod func(*Config), st DNSNameStore) *History {
	t.Helper()
	cfg := DefaultConfig()
	if mod != nil {
		mod(&cfg)
	}
	h, err := NewHistory(cfg, st, testutil.Logger(t), func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustAdd(t *testing.T, h *History, s Sighting) {
	t.Helper()
	if err := h.Add(s); err != nil {
		t.Fatalf("Add(%+v): %v", s, err)
	}
}

// TestHistoryByTime: an address that changed name is labelled by the name
// it had at the flow's time; a name extends while it is seen again; past
// TTL plus linger it no longer labels, but stays in the history.
func TestHistoryByTime(t *testing.T) {
	h := newTestHistory(t, func(c *Config) { c.Linger = 10 * time.Minute }, nil)
	a := netip.MustParseAddr("23.45.67.89")
	mustAdd(t, h, Sighting{Addr: a, Name: "www.Example.com.", RouterID: 1, From: t0.Add(-time.Minute), Seen: t0, Until: t0.Add(5 * time.Minute)})
	mustAdd(t, h, Sighting{Addr: a, Name: "www.example.com", RouterID: 2, From: t0, Seen: t0.Add(time.Minute), Until: t0.Add(6 * time.Minute)})
	if h.Len() != 1 {
		t.Fatalf("Len = %d after a name seen twice, want 1", h.Len())
	}
	// An hour later the address serves another site.
	t1 := t0.Add(time.Hour)
	mustAdd(t, h, Sighting{Addr: a, Name: "cdn.other.co.uk", RouterID: 1, From: t1.Add(-time.Minute), Seen: t1, Until: t1.Add(2 * time.Minute)})
	for _, c := range []struct {
		at   time.Time
		want string
	}{
		{t0.Add(-2 * time.Minute), ""},
		{t0, "www.example.com"},
		{t0.Add(6*time.Minute + 9*time.Minute), "www.example.com"}, // within linger
		{t0.Add(17 * time.Minute), ""},
		{t1, "cdn.other.co.uk"},
		{t1.Add(13 * time.Minute), ""},
	} {
		l, ok := h.Label(a, ms(c.at))
		if l.Name != c.want || ok != (c.want != "") {
			t.Errorf("Label at %v = %+v, %v; want %q", c.at.Sub(t0), l, ok, c.want)
		}
		// The flow path's Domain agrees with Label.
		if d, dok := h.Domain(a, ms(c.at), ms(c.at)); d != l.Domain || dok != ok {
			t.Errorf("Domain at %v = %q, %v; Label's %q, %v", c.at.Sub(t0), d, dok, l.Domain, ok)
		}
	}
	// A reverse DNS name is no visited domain.
	hr := newTestHistory(t, nil, nil)
	r := netip.MustParseAddr("8.8.4.4")
	mustAdd(t, hr, Sighting{Addr: r, Name: "dns.google", Reverse: true, From: t0, Seen: t0, Until: t0.Add(time.Hour)})
	if d, ok := hr.Domain(r, ms(t0), ms(t0)); ok || d != "" {
		t.Errorf("Domain of a reverse name: %q, %v", d, ok)
	}
	if l, ok := hr.Label(r, ms(t0)); !ok || !l.Reverse || l.Domain != "dns.google" {
		t.Errorf("Label of a reverse name: %+v, %v", l, ok)
	}
	if l, _ := h.Label(a, ms(t1)); l.Domain != "other.co.uk" || l.Reverse {
		t.Errorf("label %+v: want domain other.co.uk from the cache", l)
	}
	if l, _ := h.Label(a, ms(t0)); l.Domain != "example.com" {
		t.Errorf("label %+v: want domain example.com", l)
	}
	// The current view at t1 holds only the new name; the history both.
	cur := h.Current(t1, 0)
	if len(cur) != 1 || cur[0].Name != "cdn.other.co.uk" || cur[0].RouterID != 1 {
		t.Errorf("Current = %+v", cur)
	}
	names := h.Names(a)
	if len(names) != 2 || names[0].Name != "www.example.com" || !names[0].To.Equal(t0.Add(6*time.Minute)) ||
		names[0].RouterID != 2 || !names[0].From.Equal(t0.Add(-time.Minute)) {
		t.Errorf("Names = %+v", names)
	}
	// A flow lasting from before the second name to after: LabelRange
	// takes the most recently seen of the names it overlaps.
	if l, ok := h.LabelRange(a, ms(t0), ms(t1)); !ok || l.Name != "cdn.other.co.uk" {
		t.Errorf("LabelRange = %+v", l)
	}
	// A flow stored with the first name's domain is shown with that name;
	// with a domain the address never had, with the latest.
	if l, ok := h.LabelIn(a, ms(t0), ms(t1), "example.com"); !ok || l.Name != "www.example.com" {
		t.Errorf("LabelIn example.com = %+v", l)
	}
	if l, ok := h.LabelIn(a, ms(t0), ms(t1), "nowhere.net"); !ok || l.Name != "cdn.other.co.uk" {
		t.Errorf("LabelIn nowhere.net = %+v", l)
	}
	// IPv4-mapped form of the address is the same address.
	if _, ok := h.Label(netip.AddrFrom16(a.As16()), ms(t0)); !ok {
		t.Error("the IPv4-mapped address is not labelled")
	}
}

// TestHistorySeveralNames: an address with several names at once is
// labelled with the most recently seen; a cache name wins over a PTR
// answer seen at the same time.
func TestHistorySeveralNames(t *testing.T) {
	h := newTestHistory(t, nil, nil)
	a := netip.MustParseAddr("2a02:26f0::1")
	mustAdd(t, h, Sighting{Addr: a, Name: "a.akamaized.net", Seen: t0, Until: t0.Add(time.Hour)})
	mustAdd(t, h, Sighting{Addr: a, Name: "www.ebay.com", Seen: t0.Add(time.Minute), Until: t0.Add(10 * time.Minute)})
	if l, _ := h.Label(a, ms(t0.Add(2*time.Minute))); l.Name != "www.ebay.com" {
		t.Errorf("label = %+v, want the most recently seen", l)
	}
	mustAdd(t, h, Sighting{Addr: a, Name: "a2-16-0-1.deploy.static.akamaitechnologies.com", Reverse: true, Seen: t0.Add(time.Minute), Until: t0.Add(24 * time.Hour)})
	if l, _ := h.Label(a, ms(t0.Add(2*time.Minute))); l.Name != "www.ebay.com" {
		t.Errorf("label = %+v, want the cache's name over the PTR answer seen at once", l)
	}
	if l, _ := h.Label(a, ms(t0.Add(3*time.Hour))); !l.Reverse || l.Domain != "akamaitechnologies.com" {
		t.Errorf("label = %+v, want the PTR answer once the others ended", l)
	}
}

// TestHistoryBounds: beyond MaxNames new names are dropped and counted;
// invalid names are skipped and counted; Prune frees room.
func TestHistoryBounds(t *testing.T) {
	h := newTestHistory(t, func(c *Config) { c.MaxNames = 3; c.Retention = time.Hour; c.Linger = 0 }, nil)
	for i := range 5 {
		err := h.Add(Sighting{Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), Name: fmt.Sprintf("h%d.example.net", i),
			Seen: t0.Add(time.Duration(i) * time.Hour), Until: t0.Add(time.Duration(i)*time.Hour + time.Minute)})
		if (i < 3) != (err == nil) || (i >= 3 && !errors.Is(err, ErrFull)) {
			t.Errorf("Add %d: %v", i, err)
		}
	}
	if h.Len() != 3 || h.Dropped() != 2 {
		t.Errorf("Len %d, Dropped %d; want 3, 2", h.Len(), h.Dropped())
	}
	for _, bad := range []string{"", "a..b", "-x-.example\x00", "bad name.com", "ünï.example", string(make([]byte, 300))} {
		if err := h.Add(Sighting{Addr: netip.MustParseAddr("192.0.2.99"), Name: bad, Seen: t0}); !errors.Is(err, ErrBadName) {
			t.Errorf("Add(%q) = %v, want ErrBadName", bad, err)
		}
	}
	if st := h.Stats(); st.BadNames != 6 || st.Dropped != 2 || st.Names != 3 || st.MaxNames != 3 {
		t.Errorf("Stats = %+v", st)
	}
	// At t0+1h30, with an hour of retention, the first name (ended at
	// t0+1m) goes; the others stay.
	if n := h.Prune(t0.Add(time.Hour + 30*time.Minute)); n != 1 || h.Len() != 2 {
		t.Errorf("Prune = %d, Len %d; want 1, 2", n, h.Len())
	}
	if _, ok := h.Label(netip.MustParseAddr("192.0.2.1"), ms(t0)); ok {
		t.Error("a pruned name still labels")
	}
	if err := h.Add(Sighting{Addr: netip.MustParseAddr("192.0.2.50"), Name: "new.example.net", Seen: t0.Add(3 * time.Hour)}); err != nil {
		t.Errorf("Add after Prune: %v", err)
	}
}

// memStore is an in-memory DNSNameStore that can fail.
type memStore struct {
	mu    sync.Mutex
	rows  map[pendKey]store.DNSName
	fail  error
	saves int
}

func (m *memStore) SaveDNSNames(_ context.Context, ns []store.DNSName) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.saves++
	for _, n := range ns {
		m.rows[pendKey{n.Addr.As16(), n.Name, n.Reverse, n.From.UnixMilli()}] = n
	}
	return nil
}

func (m *memStore) DNSNameHistory(_ context.Context, since time.Time) ([]store.DNSName, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.DNSName
	for _, n := range m.rows {
		if !n.To.Before(since) {
			out = append(out, n)
		}
	}
	return out, nil
}

func (m *memStore) PruneDNSNames(_ context.Context, before time.Time) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for k, r := range m.rows {
		if r.To.Before(before) {
			delete(m.rows, k)
			n++
		}
	}
	return n, nil
}

// TestHistoryFlushFailure: a failed save is counted and retried by the
// next Flush, with the latest state of each row.
func TestHistoryFlushFailure(t *testing.T) {
	st := &memStore{rows: map[pendKey]store.DNSName{}, fail: errors.New("disk full")}
	h := newTestHistory(t, nil, st)
	a := netip.MustParseAddr("198.51.100.7")
	mustAdd(t, h, Sighting{Addr: a, Name: "x.example.org", Seen: t0, Until: t0.Add(time.Minute)})
	if err := h.Flush(context.Background()); err == nil {
		t.Fatal("Flush succeeded on a failing store")
	}
	mustAdd(t, h, Sighting{Addr: a, Name: "x.example.org", Seen: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)})
	st.fail = nil
	if err := h.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := h.Stats(); s.WriteFailures != 1 || s.Pending != 0 {
		t.Errorf("Stats = %+v", s)
	}
	if len(st.rows) != 1 {
		t.Fatalf("stored rows %+v", st.rows)
	}
	for _, r := range st.rows {
		if !r.To.Equal(t0.Add(3*time.Minute)) || r.Domain != "example.org" {
			t.Errorf("stored %+v, want the extended row", r)
		}
	}
}

// TestHistoryPersistence: what one History saved, a new one (a restart)
// loads, and labels flows the same.
func TestHistoryPersistence(t *testing.T) {
	st := &memStore{rows: map[pendKey]store.DNSName{}}
	h := newTestHistory(t, nil, st)
	a, b := netip.MustParseAddr("142.250.1.10"), netip.MustParseAddr("2607:f8b0::1")
	mustAdd(t, h, Sighting{Addr: a, Name: "www.youtube.com", RouterID: 4, Seen: t0, Until: t0.Add(5 * time.Minute)})
	mustAdd(t, h, Sighting{Addr: b, Name: "dns.google", Reverse: true, Seen: t0, Until: t0.Add(24 * time.Hour)})
	if err := h.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	h2 := newTestHistory(t, nil, st)
	if err := h2.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h2.Len() != 2 {
		t.Fatalf("loaded %d names, want 2", h2.Len())
	}
	for _, c := range []struct {
		a    netip.Addr
		want Label
	}{{a, Label{"www.youtube.com", "youtube.com", false}}, {b, Label{"dns.google", "dns.google", true}}} {
		if l, ok := h2.Label(c.a, ms(t0.Add(time.Minute))); !ok || l != c.want {
			t.Errorf("Label(%v) after restart = %+v, want %+v", c.a, l, c.want)
		}
	}
	if s := h2.Stats(); s.Pending != 0 {
		t.Errorf("loaded rows queued for saving again: %+v", s)
	}
}

// benchHistory fills a history with n names of distinct addresses.
func benchHistory(b *testing.B, n int) (*History, []netip.Addr) {
	cfg := DefaultConfig()
	cfg.MaxNames = n
	h, err := NewHistory(cfg, nil, testutil.Logger(b), func() time.Time { return t0 })
	if err != nil {
		b.Fatal(err)
	}
	addrs := make([]netip.Addr, n)
	for i := range n {
		a := netip.AddrFrom4([4]byte{byte(20 + i>>16), byte(i >> 8), byte(i), 7})
		if i%5 == 0 {
			a = netip.AddrFrom16([16]byte{0x26, 0x07, 0xf8, 0xb0, 8: byte(i >> 16), 9: byte(i >> 8), 10: byte(i), 15: 1})
		}
		addrs[i] = a
		name := fmt.Sprintf("rr%d---sn-%x.googlevideo.com", i%20, i%5000)
		if err := h.Add(Sighting{Addr: a, Name: name, RouterID: 1, Seen: t0, Until: t0.Add(5 * time.Minute)}); err != nil {
			b.Fatal(err)
		}
	}
	return h, addrs
}

// BenchmarkLabel labels flows against a history of 200 000 names, with
// remote addresses drawn uniformly (every lookup misses the CPU caches)
// and as real traffic is, concentrated on few hosts; it reports the heap
// bytes per cached name.
func BenchmarkLabel(b *testing.B) {
	const n = 200_000
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	h, addrs := benchHistory(b, n)
	runtime.GC()
	runtime.ReadMemStats(&after)
	perName := float64(after.HeapAlloc-before.HeapAlloc) / n
	at := ms(t0.Add(time.Minute))
	order := func(skewed bool) []netip.Addr {
		out := make([]netip.Addr, 1<<16)
		x := uint64(1)
		for i := range out {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			j := x % n
			if skewed {
				j = j % (1 + x>>40%2000) // mostly the first few thousand
			}
			out[i] = addrs[j]
		}
		return out
	}
	for _, c := range []struct {
		name   string
		skewed bool
		domain bool // the flow path: Domain
	}{{"uniform", false, false}, {"skewed", true, false}, {"domain/uniform", false, true}, {"domain/skewed", true, true}} {
		b.Run(c.name, func(b *testing.B) {
			as := order(c.skewed)
			b.ReportAllocs()
			i, hits := 0, 0
			for b.Loop() {
				a := as[i&(len(as)-1)]
				var ok bool
				if c.domain {
					_, ok = h.Domain(a, at, at)
				} else {
					_, ok = h.Label(a, at)
				}
				if ok {
					hits++
				}
				i++
			}
			if hits != i {
				b.Fatalf("%d of %d labelled", hits, i)
			}
			b.ReportMetric(perName, "B/name")
		})
	}
	runtime.KeepAlive(h)
}
