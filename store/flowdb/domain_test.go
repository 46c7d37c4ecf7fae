package flowdb

import (
	"context"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// TestRemoteDomain: the remote domain a flow was labelled with at ingest
// is kept in its raw row, ranked by the domain dimension from the minute
// rollups and from raw flows alike, and filters a search; flows without
// one are the unknown row.
func TestRemoteDomain(t *testing.T) {
	s := openAt(t, t.TempDir(), testNow)
	ctx := context.Background()
	flows := indexFlows(11, 2000, testNow, 20*time.Minute)
	domains := []string{"", "googlevideo.com", "netflix.net", "whatsapp.net"}
	want := map[string]uint64{}
	nflows := map[string]int{}
	for i := range flows {
		f := &flows[i]
		f.RemoteDomain = domains[i%len(domains)]
		want[f.RemoteDomain] += f.Scale(f.Bytes)
		nflows[f.RemoteDomain]++
	}
	writeDirect(t, s, flows)
	if err := s.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	from, to := testNow.Add(-time.Hour), testNow.Add(time.Minute)
	for _, raw := range []bool{false, true} {
		q := store.TopQuery{From: from, To: to, Dimension: store.DimDomain, N: 10}
		if raw {
			q.Filter.Protocols = []uint8{6} // a raw-only filter every flow passes: the ranking from raw flows
			for i := range flows {
				if flows[i].Proto != 6 {
					t.Fatal("the data set changed: every flow is TCP")
				}
			}
		}
		top, err := s.Top(ctx, q)
		if err != nil {
			t.Fatalf("raw %v: %v", raw, err)
		}
		got := map[string]uint64{}
		for _, e := range top.Entries {
			got[e.Name] += e.Bytes
			if e.Name == "" && e.Label != "unknown" {
				t.Errorf("raw %v: the row without a domain is labelled %q", raw, e.Label)
			}
		}
		for d, b := range want {
			if got[d] != b {
				t.Errorf("raw %v: %q: %d bytes, want %d (top %+v)", raw, d, got[d], b, top.Entries)
			}
		}
	}
	page, err := s.SearchFlows(ctx, store.SearchQuery{From: from, To: to, Filter: store.Filter{Domains: []string{"netflix.net"}}, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Flows) != nflows["netflix.net"] {
		t.Fatalf("search by domain: %d flows, want %d", len(page.Flows), nflows["netflix.net"])
	}
	for _, f := range page.Flows {
		if f.RemoteDomain != "netflix.net" {
			t.Fatalf("search by domain returned %+v", f)
		}
	}
	if d, err := store.ParseDimension("domain"); err != nil || d != store.DimDomain || !d.InRollups() {
		t.Fatalf("dimension %v %v", d, err)
	}
}
