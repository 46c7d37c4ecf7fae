package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
	storagepkg "github.com/flowbox/flowbox/store/storage"
)

// natLookup runs `flowbox nat lookup --json` and returns the matches and
// the message (on stderr).
func natLookup(t *testing.T, cfgPath string, args ...string) ([]store.NATMapping, string) {
	t.Helper()
	var out, errOut testutil.SyncBuffer
	e := &env{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	if err := run(context.Background(), e, append([]string{"nat", "lookup", "--json", "--config", cfgPath}, args...)); err != nil {
		t.Fatalf("nat lookup %v: %v\n%s", args, err, errOut.String())
	}
	var ms []store.NATMapping
	if err := json.Unmarshal([]byte(out.String()), &ms); err != nil {
		t.Fatalf("nat lookup --json printed %q: %v", out.String(), err)
	}
	return ms, errOut.String()
}

// natSample is a stored flow translated by a router's NAT, and what a
// lookup of its public side must answer.
type natSample struct {
	public, inside netip.AddrPort
	proto          uint8
	at             time.Time
	subscriber     string
	upload         bool
}

// TestNATLookupThroughServe runs `flowbox serve` and a simulated CGNAT
// router onboarded over the API, then looks up sampled stored flows of
// both directions by their public (post-NAT) address, port and time with
// `flowbox nat lookup`: each maps back to its inside address and port and
// to the subscriber enrichment named, whatever time zone the time is given
// in; a time with no mapping answers none with a message. After serve
// stops and the raw flows of that time are gone, the lookups still answer
// from the NAT store.
func TestNATLookupThroughServe(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	srv := startServeInProcess(t, "  batch-age: 50ms\n")
	cfgPath := srv.cfgPath
	onboardCGNATRouter(t, srv, 15)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Sample stored NAT flows of both directions whose subscriber is known.
	var samples []natSample
	testutil.WaitFor(t, 60*time.Second, "named NAT flows of both directions", func() (bool, string) {
		st, err := storagepkg.Open(ctx, srv.dataDir, storagepkg.DefaultConfig(), storagepkg.ReadOnly, nil, nil)
		if err != nil {
			return false, err.Error()
		}
		defer st.Close()
		page, err := st.SearchFlows(ctx, store.SearchQuery{From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Minute), Limit: 5000})
		if err != nil {
			return false, err.Error()
		}
		samples = samples[:0]
		ups, downs := 0, 0
		for _, f := range page.Flows {
			if f.Subscriber == "" || (f.Proto != 6 && f.Proto != 17) {
				continue
			}
			at := time.UnixMilli((f.Start + f.End) / 2)
			switch {
			case f.Direction == store.DirUpload && f.PostNATSrcAddr.IsValid() && f.PostNATSrcAddr != f.SrcAddr && ups < 10:
				samples = append(samples, natSample{public: netip.AddrPortFrom(f.PostNATSrcAddr, f.PostNATSrcPort),
					inside: netip.AddrPortFrom(f.SrcAddr, f.SrcPort), proto: f.Proto, at: at, subscriber: f.Subscriber, upload: true})
				ups++
			case f.Direction == store.DirDownload && f.PostNATDstAddr.IsValid() && f.PostNATDstAddr != f.DstAddr && downs < 10:
				samples = append(samples, natSample{public: netip.AddrPortFrom(f.DstAddr, f.DstPort),
					inside: netip.AddrPortFrom(f.PostNATDstAddr, f.PostNATDstPort), proto: f.Proto, at: at, subscriber: f.Subscriber})
				downs++
			}
		}
		return ups == 10 && downs == 10, fmt.Sprintf("%d uploads, %d downloads of %d flows", ups, downs, len(page.Flows))
	})
	saoPaulo, err := time.LoadLocation("America/Sao_Paulo")
	if err != nil {
		t.Fatal(err)
	}
	c := login(t, srv.base, "admin", "e2e-admin-pw")
	// viaAPI looks up through the console's API (serve's own process: it
	// sees the mappings still in the writer's cache).
	viaAPI := func(address, port, proto, at string) ([]store.NATMapping, string) {
		var ans struct {
			Matches []store.NATMapping `json:"matches"`
			Message string             `json:"message"`
			Flows   []json.RawMessage  `json:"flows"`
		}
		q := url.Values{"address": {address}, "port": {port}, "proto": {proto}, "at": {at}}
		if code := c.get("/api/v1/nat/lookup?"+q.Encode(), &ans); code != http.StatusOK {
			t.Fatalf("GET /api/v1/nat/lookup?%s: %d", q.Encode(), code)
		}
		return ans.Matches, fmt.Sprintf("%s (%d evidence flows)", ans.Message, len(ans.Flows))
	}
	viaCLI := func(address, port, proto, at string) ([]store.NATMapping, string) {
		return natLookup(t, cfgPath, "--address", address, "--port", port, "--proto", proto, "--at", at)
	}
	check := func(stage string, lookup func(address, port, proto, at string) ([]store.NATMapping, string)) {
		t.Helper()
		for i, s := range samples {
			// Every other lookup gives the time in São Paulo's offset.
			at := s.at.UTC().Format(time.RFC3339)
			if i%2 == 1 {
				at = s.at.In(saoPaulo).Format(time.RFC3339)
			}
			ms, msg := lookup(s.public.Addr().String(), strconv.Itoa(int(s.public.Port())), store.ProtoName(s.proto), at)
			var found *store.NATMapping
			for j := range ms {
				if ms[j].InsideAddr == s.inside.Addr() && ms[j].InsidePort == s.inside.Port() {
					found = &ms[j]
				}
			}
			if found == nil {
				t.Errorf("%s: lookup of %s/%s at %s (upload %v): no match for %s in %+v (%s)", stage, s.public,
					store.ProtoName(s.proto), at, s.upload, s.inside, ms, msg)
				continue
			}
			if found.Router != "tower1" || found.Subscriber != s.subscriber || found.ProtoName != store.ProtoName(s.proto) ||
				found.FirstSeen.After(s.at) || found.LastSeen.Before(s.at.Add(-time.Second)) {
				t.Errorf("%s: lookup of %s at %s = %+v, want router tower1, subscriber %q, covering the time", stage, s.public, at, *found, s.subscriber)
			}
			if len(ms) != 1 {
				t.Logf("%s: %d matches for %s (%s)", stage, len(ms), s.public, msg)
			}
		}
	}
	// Mappings still in the writer's cache are answered by serve.
	check("while serving (API)", viaAPI)
	// A time with no mapping: none, with a message, not an error.
	ms, msg := natLookup(t, cfgPath, "--address", samples[0].public.Addr().String(), "--at", samples[0].at.Add(-24*time.Hour).Format(time.RFC3339))
	if len(ms) != 0 || !strings.Contains(msg, "No NAT mapping") {
		t.Errorf("a day earlier: %d matches, message %q; want none and a clear message", len(ms), msg)
	}

	// Stop serve (its NAT cache is flushed), drop every raw flow as
	// retention would, and look up again: the NAT store answers alone.
	if err := srv.stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	dropRawFlows(t, filepath.Join(srv.dataDir, "flowbox.db"))
	check("after the raw flows are gone (CLI)", viaCLI)

	// "Who had this address?": the inside address at that time, and
	// nobody before the router was onboarded.
	holder := func(addr string, at time.Time) store.AddressHolder {
		t.Helper()
		var out testutil.SyncBuffer
		e := &env{stdout: &out, stderr: &testutil.SyncBuffer{}, getenv: func(string) string { return "" }}
		if err := run(context.Background(), e, []string{"subscribers", "at", "--json", "--config", cfgPath, "--address", addr,
			"--at", at.In(saoPaulo).Format("2006-01-02 15:04:05"), "--tz", "America/Sao_Paulo"}); err != nil {
			t.Fatalf("subscribers at: %v", err)
		}
		var h store.AddressHolder
		if err := json.Unmarshal([]byte(out.String()), &h); err != nil {
			t.Fatalf("subscribers at --json printed %q: %v", out.String(), err)
		}
		return h
	}
	s0 := samples[0]
	if h := holder(s0.inside.Addr().String(), s0.at); !h.Found || h.Subscriber != s0.subscriber || h.Router != "tower1" {
		t.Errorf("who had %s at %v: %+v, want %s on tower1", s0.inside.Addr(), s0.at, h, s0.subscriber)
	}
	if h := holder(s0.inside.Addr().String(), s0.at.Add(-48*time.Hour)); h.Found || !strings.Contains(h.Message, "Nobody had") {
		t.Errorf("who had %s two days earlier: %+v, want nobody", s0.inside.Addr(), h)
	}
	if h := holder(s0.public.Addr().String(), s0.at); h.Found || !strings.Contains(h.Message, "tower1") {
		t.Errorf("who had the public address %s: %+v, want nobody, and that it is tower1's", s0.public.Addr(), h)
	}
}

// dropRawFlows deletes every raw flow partition as raw retention does.
func dropRawFlows(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT name FROM raw_partitions")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	rows.Close()
	if len(names) == 0 {
		t.Fatal("no raw partition to drop")
	}
	for _, n := range names {
		for _, q := range []string{"DROP TABLE IF EXISTS " + n, "DROP TABLE IF EXISTS rawx_" + strings.TrimPrefix(n, "raw_"),
			"DELETE FROM raw_segments WHERE part = '" + n + "'", "DELETE FROM raw_partitions WHERE name = '" + n + "'"} {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	var left int
	if err := db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name GLOB 'raw_2*' OR name GLOB 'rawx_*'").Scan(&left); err != nil || left != 0 {
		t.Fatalf("raw tables left: %d, %v", left, err)
	}
}
