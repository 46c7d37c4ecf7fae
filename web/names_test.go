package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeNames names a few autonomous systems, as the enrichment's offline
// ASN data does.
type fakeNames map[uint32]string

func (n fakeNames) ASName(asn uint32) string { return n[asn] }

// RouterOf knows no router addresses (routerNames does).
func (n fakeNames) RouterOf(netip.Addr) string { return "" }

var testASNames = fakeNames{15169: "Google LLC", 13335: "Cloudflare, Inc.", 15133: "Edgecast Inc."}

func TestASNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(_ *Config, d *Deps) { d.Names = testASNames })
	e.login()
	gw1 := e.addRouter(datasetRouter())
	e.ingest(dataset(e.now))
	var top TopResult
	e.getJSON(fmt.Sprintf("/api/v1/top/as?router=%d&range=24h", gw1.ID), &top)
	got := map[string]string{}
	for _, r := range top.Rows {
		got[r.Label] = r.Name
	}
	for asn, name := range testASNames {
		if got[fmt.Sprintf("AS%d", asn)] != name {
			t.Errorf("top AS rows %+v: AS%d is not named %q", top.Rows, asn, name)
		}
	}
	// The flow search names the AS of both sides; AS 0 stays unnamed.
	var page FlowsResult
	e.getJSON(fmt.Sprintf("/api/v1/flows?router=%d&range=1h&host=8.8.8.8&limit=50", gw1.ID), &page)
	if len(page.Flows) == 0 {
		t.Fatal("no flow of 8.8.8.8")
	}
	for _, f := range page.Flows {
		switch f.Direction {
		case "download":
			if f.SrcAS != 15169 || f.SrcASName != "Google LLC" || f.DstASName != "" {
				t.Errorf("download flow AS names %q / %q", f.SrcASName, f.DstASName)
			}
		case "upload":
			if f.DstAS != 15169 || f.DstASName != "Google LLC" || f.SrcASName != "" {
				t.Errorf("upload flow AS names %q / %q", f.SrcASName, f.DstASName)
			}
		}
	}
}

// TestRawWindowMessage checks the answer when the store itself refuses a
// raw-only query (the console's own check is off when the retention is not
// configured): the same sentence the page shows, not the store's wording.
func TestRawWindowMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(_ *Config, d *Deps) { d.Settings.RawRetention = 0 })
	e.login()
	code, body := e.do(http.MethodGet, "/api/v1/top/local?range=7d&host=10.0.0.5", nil)
	if onClickHouse() {
		// ClickHouse keeps raw flows for its raw-ttl (30 days): answered.
		if code != http.StatusOK {
			t.Errorf("a 7-day host filter on ClickHouse: %d %s", code, body)
		}
		return
	}
	var eb errorBody
	_ = json.Unmarshal(body, &eb)
	if code != http.StatusBadRequest || !strings.HasPrefix(eb.Error, "filters on hosts, ports, protocols, AS, interfaces, applications, countries, subscribers and domains work on the last raw window") {
		t.Errorf("store refusal: %d %s", code, body)
	}
}

func TestHumanDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		48 * time.Hour: "48 h", 7 * 24 * time.Hour: "7 d", 90 * time.Minute: "90 min", time.Hour: "1 h",
		36 * time.Hour: "36 h", 90 * time.Second: "1m30s",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestOpenAPISchemasMatchTypes keeps the OpenAPI schemas in step with the
// JSON the handlers write: each schema lists exactly the fields of its Go
// type.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	t.Parallel()
	schemas := buildOpenAPI()["components"].(openAPI)["schemas"].(openAPI)
	for name, v := range map[string]any{
		"Me": MeView{}, "User": UserView{}, "Token": TokenView{}, "UserRequest": userRequest{},
		"RouterSpec": RouterSpec{}, "Change": Change{}, "Plan": Plan{}, "AddResult": AddResult{},
		"Interface": InterfaceView{}, "Exporter": ExporterView{}, "Router": RouterView{}, "Run": RunView{},
		"IfSeries": InterfaceSeries{}, "Series": Series{}, "TopRow": TopRow{}, "Top": TopResult{},
		"Flow": FlowView{}, "FlowPage": FlowsResult{}, "Settings": Settings{}, "Error": errorBody{},
		"AuditEntry": AuditView{}, "AuditPage": AuditPage{},
	} {
		sc, ok := schemas[name].(openAPI)
		if !ok {
			t.Errorf("no schema %s", name)
			continue
		}
		var props []string
		for p := range sc["properties"].(openAPI) {
			props = append(props, p)
		}
		slices.Sort(props)
		var fields []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			tag, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			if tag != "" && tag != "-" {
				fields = append(fields, tag)
			}
		}
		slices.Sort(fields)
		if !slices.Equal(props, fields) {
			t.Errorf("schema %s has %v, the Go type %T writes %v", name, props, v, fields)
		}
	}
}
