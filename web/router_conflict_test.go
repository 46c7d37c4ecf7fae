package web

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/flowbox/flowbox/store"
)

// TestAddRouterExporterConflict: a router that cannot be told apart from
// another one is refused with 409 and the provisioner's message, which
// names the other router (and never echoes the password).
func TestAddRouterExporterConflict(t *testing.T) {
	e := newEnv(t)
	e.login()
	e.prov.failAdd = fmt.Errorf("cannot add router gw2 (password hunter2): router gw1 already exports from 203.0.113.5, the address flowbox reaches gw2 at: routers behind one NAT address cannot be told apart: %w",
		store.ErrExporterConflict)
	code, body := e.do(http.MethodPost, "/api/v1/routers", RouterSpec{Address: "203.0.113.5:8729", Username: "admin", Password: "hunter2"})
	if code != http.StatusConflict || strings.Contains(string(body), "hunter2") ||
		!strings.Contains(string(body), "router gw1 already exports from 203.0.113.5") {
		t.Fatalf("conflicting router: %d %s", code, body)
	}
}
