package provision

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/routeros"
	"github.com/flowbox/flowbox/routeros/routerostest"
)

// TestRepin: a router whose certificate changed is re-pinned only to the
// certificate the operator confirmed, the check sends no password (it
// stops at the TLS handshake), and the history records both fingerprints.
func TestRepin(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, testConfig())
	var mu sync.Mutex
	var logins []string // the pinned fingerprint of each dial that may log in
	f.prov.dial = func(ctx context.Context, o routeros.Options) (*routeros.Conn, error) {
		mu.Lock()
		logins = append(logins, o.Fingerprint)
		mu.Unlock()
		return routeros.Dial(ctx, o)
	}
	p := routerostest.V7("r")
	p.TLS = true
	s := testutil.StartRouter(t, withUsers(p))
	r := f.mustAdd("r", s)
	stale := strings.Repeat("0f", 32)
	r.TLSFingerprint = stale // as if the router's certificate was replaced
	if err := f.inv.UpdateRouter(ctx, r); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	logins = nil
	mu.Unlock()
	check, err := f.prov.CheckRepin(ctx, "r")
	if err != nil || check.Old != stale || check.New != s.Fingerprint() {
		t.Fatalf("CheckRepin = %+v, %v; want old %s new %s", check, err, stale, s.Fingerprint())
	}
	mu.Lock()
	if len(logins) != 1 || logins[0] != unpinnable {
		t.Errorf("CheckRepin dialed with pins %q, want only the unpinnable one (no login)", logins)
	}
	mu.Unlock()
	// Another fingerprint than the router's is refused, and nothing changes.
	if _, err := f.prov.Repin(ctx, "r", strings.Repeat("ab", 32)); err == nil || !strings.Contains(err.Error(), "not the confirmed") {
		t.Fatalf("Repin to another fingerprint: %v", err)
	}
	if got, _ := f.inv.GetRouter(ctx, "r"); got.TLSFingerprint != stale {
		t.Fatalf("a refused re-pin changed the pin to %s", got.TLSFingerprint)
	}
	if _, err := f.prov.Repin(ctx, "r", "short"); err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Fatalf("Repin to a malformed fingerprint: %v", err)
	}
	// The confirmed one (as browsers show it: upper case, colons) is pinned.
	var colons []string
	for i := 0; i < 64; i += 2 {
		colons = append(colons, strings.ToUpper(check.New[i:i+2]))
	}
	got, err := f.prov.Repin(ctx, "r", strings.Join(colons, ":"))
	if err != nil || got.TLSFingerprint != s.Fingerprint() {
		t.Fatalf("Repin = %v, %v", got, err)
	}
	if stored, _ := f.inv.GetRouter(ctx, "r"); stored.TLSFingerprint != s.Fingerprint() {
		t.Fatalf("stored pin %s, want %s", stored.TLSFingerprint, s.Fingerprint())
	}
	if _, err := f.prov.Apply(ctx, "r"); err != nil {
		t.Fatalf("apply after re-pin: %v", err)
	}
	var found bool
	for _, run := range f.inv.allRuns() {
		if run.Action == "repin" && run.Error == "" && strings.Contains(run.Summary, s.Fingerprint()) && strings.Contains(run.Summary, stale) {
			found = true
		}
	}
	if !found {
		t.Error("no repin history entry naming the old and new fingerprints")
	}
	// A plain-API router has nothing to re-pin.
	got.TLS, got.TLSFingerprint = false, ""
	if err := f.inv.UpdateRouter(ctx, got); err != nil {
		t.Fatal(err)
	}
	if _, err := f.prov.CheckRepin(ctx, "r"); err == nil || !strings.Contains(err.Error(), "plain API") {
		t.Fatalf("CheckRepin of a plain router: %v", err)
	}
}

// TestAddTLSExplainsAPISSL: adding a router over API-SSL where nothing
// answers on the port says how to enable API-SSL with a certificate.
func TestAddTLSExplainsAPISSL(t *testing.T) {
	f := newFixture(t, testConfig())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, _, err = f.prov.Add(context.Background(), AddRequest{Name: "r", Address: addr, TLS: true, Username: "admin", Password: adminPassword})
	if !errors.Is(err, routeros.ErrRefused) || !strings.Contains(err.Error(), "/ip service set api-ssl certificate=") {
		t.Fatalf("err = %v, want the API-SSL how-to", err)
	}
	// The plain API gets no API-SSL advice.
	_, _, err = f.prov.Add(context.Background(), AddRequest{Name: "r", Address: addr, Username: "admin", Password: adminPassword})
	if err == nil || strings.Contains(err.Error(), "api-ssl") {
		t.Fatalf("plain err = %v", err)
	}
}
