package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/flowbox/flowbox/store"
)

// setPresented sets the fingerprint of the certificate the fake's routers
// present.
func (f *fakeProv) setPresented(fp string) {
	f.mu.Lock()
	f.presented = fp
	f.mu.Unlock()
}

// spec returns the last spec Add got.
func (f *fakeProv) spec() RouterSpec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastSpec
}

// CheckRepin is the fake provisioner's: the router presents f.presented.
func (f *fakeProv) CheckRepin(ctx context.Context, id int64) (CertificateView, error) {
	r, err := f.st.GetRouterByID(ctx, id)
	if err != nil {
		return CertificateView{}, err
	}
	if !r.TLS {
		return CertificateView{}, errors.New("router uses the plain API")
	}
	f.mu.Lock()
	presented := f.presented
	f.mu.Unlock()
	return CertificateView{Pinned: r.TLSFingerprint, Presented: presented, Changed: r.TLSFingerprint != presented}, nil
}

// Repin is the fake provisioner's: it pins f.presented when confirmed.
func (f *fakeProv) Repin(ctx context.Context, id int64, fingerprint string) (store.Router, error) {
	r, err := f.st.GetRouterByID(ctx, id)
	if err != nil {
		return store.Router{}, err
	}
	f.mu.Lock()
	presented := f.presented
	f.mu.Unlock()
	if fingerprint != presented {
		return store.Router{}, fmt.Errorf("the router presents the certificate %s, not the confirmed %s", presented, fingerprint)
	}
	r.TLSFingerprint = fingerprint
	return *r, f.st.UpdateRouter(ctx, r)
}

// TestRepinAPI: the certificate route shows the pinned and presented
// fingerprints; the re-pin route pins only a well-formed, confirmed one,
// needs the operator role, and is audited.
func TestRepinAPI(t *testing.T) {
	e := newEnv(t)
	e.login()
	old, presented := strings.Repeat("aa", 32), strings.Repeat("bb", 32)
	e.prov.setPresented(presented)
	id := e.addRouter(store.Router{Name: "gw", Address: "192.0.2.1:8729", TLS: true, TLSFingerprint: old}).ID
	var c CertificateView
	e.getJSON(fmt.Sprintf("/api/v1/routers/%d/certificate", id), &c)
	if c != (CertificateView{Pinned: old, Presented: presented, Changed: true}) {
		t.Fatalf("certificate = %+v", c)
	}
	path := fmt.Sprintf("/api/v1/routers/%d/repin", id)
	for _, tc := range []struct {
		fp   string
		code int
	}{
		{"", http.StatusBadRequest},
		{"zz" + presented[2:], http.StatusBadRequest},
		{strings.Repeat("cc", 32), http.StatusBadGateway},
	} {
		if code, b := e.do(http.MethodPost, path, RepinRequest{Fingerprint: tc.fp}); code != tc.code {
			t.Errorf("repin to %q: %d %s, want %d", tc.fp, code, b, tc.code)
		}
	}
	if r, _ := e.st.GetRouterByID(context.Background(), id); r.TLSFingerprint != old {
		t.Fatalf("a refused re-pin changed the pin to %s", r.TLSFingerprint)
	}
	// As browsers show it: upper case with colons.
	var pairs []string
	for i := 0; i < 64; i += 2 {
		pairs = append(pairs, strings.ToUpper(presented[i:i+2]))
	}
	code, b := e.do(http.MethodPost, path, RepinRequest{Fingerprint: strings.Join(pairs, ":")})
	var v RouterView
	if code != http.StatusOK || json.Unmarshal(b, &v) != nil || v.TLSFingerprint != presented {
		t.Fatalf("repin: %d %s", code, b)
	}
	if r, _ := e.st.GetRouterByID(context.Background(), id); r.TLSFingerprint != presented {
		t.Fatalf("stored pin %s, want %s", r.TLSFingerprint, presented)
	}
	// A viewer may not re-pin, nor make the console dial the router.
	e.addUser("eve", store.RoleViewer)
	viewer := e.clientAs("eve")
	if code, _ := e.doWith(viewer, "", http.MethodPost, path, RepinRequest{Fingerprint: presented}); code != http.StatusForbidden {
		t.Errorf("viewer repin: %d, want 403", code)
	}
	if code, _ := e.doWith(viewer, "", http.MethodGet, fmt.Sprintf("/api/v1/routers/%d/certificate", id), nil); code != http.StatusForbidden {
		t.Errorf("viewer certificate: %d, want 403", code)
	}
}

// TestAddRouterCreateUser: the add-router API passes create_user on.
func TestAddRouterCreateUser(t *testing.T) {
	e := newEnv(t)
	e.login()
	code, b := e.do(http.MethodPost, "/api/v1/routers", map[string]any{"address": "192.0.2.9", "username": "admin", "password": "pw", "tls": true, "create_user": true})
	if code != http.StatusCreated {
		t.Fatalf("add: %d %s", code, b)
	}
	if sp := e.prov.spec(); !sp.CreateUser || !sp.TLS || sp.Address != "192.0.2.9:8729" {
		t.Fatalf("spec = %+v", sp)
	}
}
