package web

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

// weekFlowsPerMinute is the rate of the week dataset, per router. At this
// rate every minute fills the rollups' top-K (100 per dimension) for hosts,
// remote hosts and conversations, so the rollup tables the dashboard reads
// are as large as for a much busier router; only raw tables would grow
// with the rate, and unfiltered dashboards do not read them.
var weekFlowsPerMinute = [2]int{400, 100}

// weekCycle is how much time each store session of the generator ingests:
// the in-memory rollups are written when the store stops, and a session
// stays below their 50,000-keys-per-dimension bound so that nothing is
// folded into "other" before being written.
const weekCycle = 90 * time.Minute

// weekGen makes the flows of a small WISP: 1,000 subscribers whose
// activity follows an exponential popularity, remote hosts from a pool of
// 200,000 in 500 ASes, a few applications and countries, two thirds
// downloads.
type weekGen struct {
	rng  *rand.Rand
	subs []string
}

func newWeekGen() *weekGen {
	g := &weekGen{rng: rand.New(rand.NewPCG(7, 11))}
	for i := range 1000 {
		g.subs = append(g.subs, fmt.Sprintf("customer-%04d", i))
	}
	return g
}

// appendMinute appends n flows of router r (exporter 127.0.0.2+r) ending
// within the minute starting at m.
func (g *weekGen) appendMinute(dst []store.Flow, r, n int, m time.Time) []store.Flow {
	apps := []string{"", "", "", "youtube", "netflix", "dns", "whatsapp", "steam"}
	ccs := []string{"US", "FR", "DE", "BR", "NL", "private"}
	exp := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + r)}), 2055)
	for range n {
		sub := int(g.rng.ExpFloat64()*150) % len(g.subs)
		local := netip.AddrFrom4([4]byte{100, 64 + byte(r), byte(sub >> 8), byte(sub)})
		h := g.rng.IntN(200000)
		remote := netip.AddrFrom4([4]byte{byte(1 + h%200), byte(h >> 8), byte(h), 7})
		end := m.Add(time.Duration(g.rng.Int64N(int64(time.Minute)))).UnixMilli()
		f := store.Flow{
			Exporter: exp, Version: 10, Start: end - g.rng.Int64N(60000), End: end,
			Proto: 6, SrcPort: 443, DstPort: uint16(32768 + g.rng.IntN(28000)), InIf: 1, OutIf: 2,
			SrcAS: uint32(1 + h%500), Bytes: uint64(1 + g.rng.IntN(1<<20)), Packets: uint64(1 + g.rng.IntN(900)),
			Direction: store.DirDownload, Subscriber: g.subs[sub], Application: apps[g.rng.IntN(len(apps))],
			SrcCountry: ccs[h%len(ccs)], DstCountry: "private", SrcAddr: remote, DstAddr: local,
		}
		if g.rng.IntN(3) == 0 {
			f.Direction = store.DirUpload
			f.SrcAddr, f.DstAddr = local, remote
			f.SrcPort, f.DstPort = f.DstPort, f.SrcPort
			f.SrcAS, f.DstAS = 0, f.SrcAS
			f.SrcCountry, f.DstCountry = f.DstCountry, f.SrcCountry
			f.InIf, f.OutIf = 2, 1
		}
		dst = append(dst, f)
	}
	return dst
}

// weekStore fills a store in dir with a week of flows from two routers
// ending now, the way a running appliance would have: raw flows kept for
// the last 48 h, minute rollups for the week, hour rollups rebuilt. It
// returns the id of the busier router.
func weekStore(b *testing.B, dir string) int64 {
	b.Helper()
	ctx := context.Background()
	open := func(raw time.Duration) *storetest.Store {
		cfg := store.DefaultConfig()
		cfg.RawRetention = raw
		st, err := storetest.Open(ctx, dir, cfg, testLogger(b), prometheus.NewRegistry())
		if err != nil {
			b.Fatalf("cannot open store: %v", err)
		}
		return st
	}
	// Flows older than the raw retention are refused at ingest, so the
	// generator keeps raw flows for the whole week; the last session
	// applies the usual 48 h.
	st := open(8 * 24 * time.Hour)
	var gw1 store.Router
	for i, name := range []string{"gw1", "gw2"} {
		r := store.Router{Name: name, Address: fmt.Sprintf("127.0.0.%d:8728", 2+i), Username: "admin", State: store.StateConfigured,
			Interfaces: []store.Interface{{Index: 1, Name: "ether1-wan"}, {Index: 2, Name: "bridge-lan"}}}
		if err := st.AddRouter(ctx, &r); err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			gw1 = r
		}
	}
	st.Close()
	g := newWeekGen()
	end := time.Now().Truncate(time.Minute)
	start := end.Add(-7 * 24 * time.Hour)
	var flows []store.Flow
	total := 0
	began := time.Now()
	for c := start; c.Before(end); c = c.Add(weekCycle) {
		st := open(8 * 24 * time.Hour)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- st.Run(rctx) }()
		for m := c; m.Before(c.Add(weekCycle)) && m.Before(end); m = m.Add(time.Minute) {
			flows = flows[:0]
			for r, n := range weekFlowsPerMinute {
				flows = g.appendMinute(flows, r, n, m)
			}
			if err := st.InsertFlows(rctx, flows); err != nil {
				b.Fatal(err)
			}
			total += len(flows)
		}
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		st.Close()
	}
	// One more session with the usual retention: at start it rebuilds the
	// last finished hours and drops raw flows older than 48 h.
	st = open(48 * time.Hour)
	rctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := st.Run(rctx); err != nil {
		b.Fatal(err)
	}
	st.Close()
	b.Logf("week dataset: %d flows from 2 routers in %v", total, time.Since(began).Round(time.Second))
	return gw1.ID
}

// BenchmarkDashboardAPI measures the API calls of a router page over 24 h
// and over 7 days (the traffic series, the six top lists and the router's
// header) on a week of flows, each alone and all at once as the browser
// sends them ("page"). The target is under 200 ms per call for 24 h.
func BenchmarkDashboardAPI(b *testing.B) {
	dir := b.TempDir()
	id := weekStore(b, dir)
	st, err := storetest.Open(context.Background(), dir, store.DefaultConfig(), testLogger(b), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	srv, err := New(DefaultConfig(), Deps{
		Store: st, Routers: st, Provisioner: &fakeProv{st: st}, Collector: &fakeCollector{}, Users: st,
		Names: testASNames, Logger: testLogger(b), Settings: Settings{RawRetention: Duration(48 * time.Hour)},
	})
	if err != nil {
		b.Fatal(err)
	}
	owner, err := st.CreateUser(context.Background(), "bench", "x", store.RoleViewer)
	if err != nil {
		b.Fatal(err)
	}
	secret, tok, err := NewToken("bench", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	tok.UserID, tok.Role = owner.ID, store.RoleViewer
	if _, err := st.CreateToken(context.Background(), tok); err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	get := func(b *testing.B, path string) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Errorf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
	}
	for _, rng := range []string{"24h", "7d"} {
		calls := []struct{ name, path string }{
			{"traffic", fmt.Sprintf("/api/v1/traffic?router=%d&range=%s", id, rng)},
			{"router", fmt.Sprintf("/api/v1/routers/%d", id)},
		}
		for _, dim := range []string{DimLocal, DimAS, DimPort, DimProto, DimRemote, DimCountry, DimConversation} {
			calls = append(calls, struct{ name, path string }{"top-" + dim, fmt.Sprintf("/api/v1/top/%s?router=%d&range=%s&limit=10", dim, id, rng)})
		}
		for _, c := range calls {
			b.Run(rng+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					get(b, c.path)
				}
			})
		}
		b.Run(rng+"/page", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var wg sync.WaitGroup
				for _, c := range calls {
					wg.Add(1)
					go func() {
						defer wg.Done()
						get(b, c.path)
					}()
				}
				wg.Wait()
			}
		})
	}
}
