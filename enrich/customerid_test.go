package enrich

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

// TestDefaultCustomerIDPattern checks the forms the default pattern
// finds, and the host names, logins and comments it must leave alone.
func TestDefaultCustomerIDPattern(t *testing.T) {
	re, err := CompileCustomerIDPattern(DefaultCustomerIDPattern)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ text, name, id string }{
		{"Maria Lopez #1042", "Maria Lopez", "1042"},
		{"Maria Lopez # 1042", "Maria Lopez", "1042"},
		{"#1042 Maria Lopez", "Maria Lopez", "1042"},
		{"ID:1042 Maria Lopez", "Maria Lopez", "1042"},
		{"id: 1042 Maria Lopez", "Maria Lopez", "1042"},
		{"Maria Lopez ID=7", "Maria Lopez", "7"},
		{"1042 - Maria Lopez", "Maria Lopez", "1042"},
		{"1042: Maria Lopez", "Maria Lopez", "1042"},
		{"1042 | Maria Lopez", "Maria Lopez", "1042"},
		{"1042 – Maria Lopez", "Maria Lopez", "1042"},
		{"Maria Lopez - 1042", "Maria Lopez", "1042"},
		{"Maria Lopez (cust 1042)", "Maria Lopez", "1042"},
		{"Maria Lopez (Customer: 1042)", "Maria Lopez", "1042"},
		{"Maria Lopez [acct #1042]", "Maria Lopez", "1042"},
		{"Maria Lopez, account 1042", "Maria Lopez", "1042"},
		{"Cliente 88 Jose Perez", "Jose Perez", "88"},
		{"  Maria   Lopez   #1042  ", "Maria Lopez", "1042"},
		// Only an id: the name stays the text.
		{"#1042", "#1042", "1042"},
		{"ID: 1042", "ID: 1042", "1042"},
		// No id: the text is the name, unchanged.
		{"android-5f3a", "android-5f3a", ""},
		{"iPhone-12", "iPhone-12", ""},
		{"Galaxy-S21", "Galaxy-S21", ""},
		{"DESKTOP-1042AB", "DESKTOP-1042AB", ""},
		{"client-12", "client-12", ""},
		{"android_id:123", "android_id:123", ""},
		{"ESP_1042", "ESP_1042", ""},
		{"HP-LaserJet-1020", "HP-LaserJet-1020", ""},
		{"mgarcia2", "mgarcia2", ""},
		{"<pppoe-mgarcia>", "<pppoe-mgarcia>", ""},
		{"plan 20M", "plan 20M", ""},
		{"Maria Lopez", "Maria Lopez", ""},
		{"Tower 2 - 12", "Tower 2 - 12", ""}, // 2 digits alone: not an id
		{"12 - Maria", "12 - Maria", ""},
		{"1042-laptop", "1042-laptop", ""},
		{"123 Main St", "123 Main St", ""},
		{"#1042a", "#1042a", ""},
		{" padded ", " padded ", ""},
		{"", "", ""},
	} {
		name, id := SplitCustomerID(re, c.text)
		if name != c.name || id != c.id {
			t.Errorf("%q: name %q, id %q; want %q, %q", c.text, name, id, c.name, c.id)
		}
	}
	// Disabled: nothing is split.
	if name, id := SplitCustomerID(nil, "Maria Lopez #1042"); name != "Maria Lopez #1042" || id != "" {
		t.Errorf("no pattern: %q, %q", name, id)
	}
}

// TestCustomerIDPatternCustom: an operator's pattern with one group, the
// id is that group and the match leaves the name.
func TestCustomerIDPatternCustom(t *testing.T) {
	re, err := CompileCustomerIDPattern(`\bACC-(\w+)$`)
	if err != nil {
		t.Fatal(err)
	}
	if name, id := SplitCustomerID(re, "Maria Lopez ACC-X42"); name != "Maria Lopez" || id != "X42" {
		t.Errorf("%q, %q", name, id)
	}
	if re, err := CompileCustomerIDPattern(""); re != nil || err != nil {
		t.Errorf("empty pattern: %v, %v", re, err)
	}
}

// TestCustomerIDPatternConfig: a bad regexp and a pattern without a
// group are configuration errors that name the key.
func TestCustomerIDPatternConfig(t *testing.T) {
	for pattern, want := range map[string]string{
		`#(\d+`:  "customer-id-pattern: invalid regexp \"#(\\\\d+\": error parsing regexp: missing closing ): `#(\\d+`",
		`#\d+`:   "customer-id-pattern: regexp \"#\\\\d+\" has no capture group: put the id in one, as in \"#(\\\\d+)\"",
		`#(\d+)`: "",
		``:       "",
	} {
		cfg := DefaultConfig()
		cfg.CustomerIDPattern = pattern
		err := cfg.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("%q: error %q, want %q", pattern, got, want)
		}
	}
	if DefaultConfig().CustomerIDPattern != DefaultCustomerIDPattern {
		t.Error("the default pattern is not the default")
	}
	cfg := DefaultConfig()
	cfg.CustomerIDPattern = "(["
	if _, err := New(cfg, Deps{Logger: testLogger()}); err == nil || !strings.Contains(err.Error(), "customer-id-pattern:") {
		t.Errorf("New with a bad pattern: %v", err)
	}
}

// menuAPI is a RouterAPI answering prints from fixed rows by menu path;
// a path it lacks is unavailable, as on a router without that menu.
type menuAPI map[string][]map[string]string

func (m menuAPI) Print(_ context.Context, path string, _ []string, _ ...string) ([]map[string]string, error) {
	rows, ok := m[path]
	if !ok {
		return nil, fmt.Errorf("%s: %w", path, ErrUnavailable)
	}
	return rows, nil
}

func (menuAPI) Close() error { return nil }

// TestPollCustomerIDs polls a router whose texts carry customer ids: each
// source gives the id and the name without it; a queue's or PPP secret's
// comment gives the id of a name without one; host names and DUIDs are
// never split; with the pattern disabled, names are the texts.
func TestPollCustomerIDs(t *testing.T) {
	api := menuAPI{
		"/queue/simple": {
			{"name": "Maria Lopez #1042", "target": "10.0.0.10/32"},
			{"name": "<pppoe-jperez>", "target": "10.0.1.7/32", "comment": "Jose Perez (cust 2001)"},
			{"name": "plain", "target": "10.0.0.11/32", "comment": "plan 20M"},
		},
		"/ppp/active": {
			{"name": "jperez", "address": "10.0.1.7"},
			{"name": "acme", "address": "10.0.1.8"},
		},
		"/ppp/secret": {
			{"name": "jperez", "comment": "2001 - Jose Perez"},
			{"name": "acme", "comment": "ID:3003 Acme Corp"},
		},
		"/ip/dhcp-server/lease": {
			{"address": "10.0.0.12", "comment": "1042 - Maria Lopez", "host-name": "android-5f3a", "status": "bound"},
			{"address": "10.0.0.13", "host-name": "iPhone-12", "status": "bound"},
			{"address": "10.0.0.14", "host-name": "kiosk #12", "status": "bound"}, // a device's name: not split
		},
		"/ipv6/dhcp-server/binding": {
			{"address": "2001:db8:1:100::/56", "comment": "Maria Lopez - 1042", "status": "bound"},
			{"address": "2001:db8:1:200::/56", "duid": "0x0003#77", "status": "bound"},
		},
		"/ip/arp": {
			{"address": "10.0.0.15", "comment": "Bakery [acct 4004]"},
		},
	}
	type got struct{ Source, Prefix, Name, ID string }
	poll := func(pattern string) []got {
		cfg := DefaultConfig()
		cfg.CustomerIDPattern = pattern
		e, _, _ := newTestEnricher(t, cfg, Deps{})
		res, err := e.pollRouter(context.Background(), api)
		if err != nil {
			t.Fatal(err)
		}
		var out []got
		for _, o := range res.obs {
			out = append(out, got{o.source, o.prefix.String(), o.name, o.customerID})
		}
		slices.SortFunc(out, func(a, b got) int { return strings.Compare(a.Source+a.Prefix, b.Source+b.Prefix) })
		return out
	}
	want := []got{
		{store.SourceARP, "10.0.0.15/32", "Bakery", "4004"},
		{store.SourceDHCP, "10.0.0.12/32", "Maria Lopez", "1042"},
		{store.SourceDHCP, "10.0.0.13/32", "iPhone-12", ""},
		{store.SourceDHCP, "10.0.0.14/32", "kiosk #12", ""},
		{SourceDHCPv6, "2001:db8:1:100::/56", "Maria Lopez", "1042"},
		{SourceDHCPv6, "2001:db8:1:200::/56", "0x0003#77", ""},
		{store.SourcePPP, "10.0.1.7/32", "jperez", "2001"},
		{store.SourcePPP, "10.0.1.8/32", "acme", "3003"},
		{store.SourceQueue, "10.0.0.10/32", "Maria Lopez", "1042"},
		{store.SourceQueue, "10.0.0.11/32", "plain", ""},
		{store.SourceQueue, "10.0.1.7/32", "jperez", "2001"},
	}
	if diff := cmp.Diff(poll(DefaultCustomerIDPattern), want); diff != "" {
		t.Errorf("default pattern (-got +want):\n%s", diff)
	}
	off := poll("")
	for _, g := range off {
		if g.ID != "" {
			t.Errorf("disabled pattern: %+v has an id", g)
		}
	}
	if off[0].Name != "Bakery [acct 4004]" || off[1].Name != "1042 - Maria Lopez" {
		t.Errorf("disabled pattern: names %+v", off)
	}
}

// TestCustomerIDImportWins: a router's id and an imported one for the
// same address: the address's record (SubscriberAt) is the imported one,
// with its id, and the router's record keeps its own.
func TestCustomerIDImportWins(t *testing.T) {
	ctx := context.Background()
	st, err := storetest.Open(ctx, t.TempDir(), store.DefaultConfig(), testLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := DefaultConfig()
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	e, _, _ := newTestEnricher(t, cfg, Deps{Subscribers: st, Now: clk.Now})
	res, err := e.pollRouter(ctx, menuAPI{"/ip/dhcp-server/lease": {{"address": "10.0.0.12", "comment": "Maria Lopez #1042", "status": "bound"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.subs.apply(ctx, 4, res.sources, res.obs, clk.Now(), clk.Now(), false); err != nil {
		t.Fatal(err)
	}
	rows, err := ParseSubscriberCSV(stringsReader("ip,name,customer_id\n10.0.0.12,Maria Lopez,B-77\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ImportSubscribers(ctx, st, rows, false, clk.Now(), 1000); err != nil {
		t.Fatal(err)
	}
	sub, err := st.SubscriberAt(ctx, addr("10.0.0.12"), clk.Now().Add(1))
	if err != nil || sub.CustomerID != "B-77" || sub.Source != store.SourceCSV {
		t.Errorf("at the address: %+v, %v", sub, err)
	}
	ids, err := st.SubscriberCustomerIDs(ctx, clk.Now(), clk.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if ids[store.SubscriberRef{RouterID: 4, Name: "Maria Lopez"}] != "B-77" || ids[store.SubscriberRef{Name: "Maria Lopez"}] != "B-77" {
		t.Errorf("ids %v", ids)
	}
	hist, err := st.SubscriberHistory(ctx, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hist {
		if h.Source == store.SourceDHCP && (h.CustomerID != "1042" || h.Name != "Maria Lopez") {
			t.Errorf("router record %+v", h)
		}
	}
}

func TestParseSubscriberCSVHeader(t *testing.T) {
	p := netip.MustParsePrefix
	type row struct {
		Prefix   netip.Prefix
		Name, ID string
	}
	rowsOf := func(subs []store.Subscriber) []row {
		var out []row
		for _, s := range subs {
			if s.Source != store.SourceCSV {
				t.Errorf("source %q", s.Source)
			}
			out = append(out, row{s.Prefix, s.Name, s.CustomerID})
		}
		return out
	}
	for _, c := range []struct {
		what string
		csv  string
		cols CSVColumns
		want []row
	}{
		{"header-less", "10.0.0.1,alice,1\n10.0.0.0/30,bob\n",
			CSVColumns{}, []row{{p("10.0.0.1/32"), "alice", "1"}, {p("10.0.0.0/30"), "bob", ""}}},
		{"old header", "prefix,name,id\n10.0.0.1,alice,1\n",
			CSVColumns{}, []row{{p("10.0.0.1/32"), "alice", "1"}}},
		{"billing export, any order, extra columns, case and spaces",
			"Account Number,Plan,Customer Name,Status,IP Address\n" +
				"A-1,20M,Maria Lopez,active,100.64.0.10\n" +
				"A-2,50M,\"Perez, Jose\",active,2001:db8:1::/48\n",
			CSVColumns{}, []row{{p("100.64.0.10/32"), "Maria Lopez", "A-1"}, {p("2001:db8:1::/48"), "Perez, Jose", "A-2"}}},
		{"customer_id and customer", "customer,customer_id,ip\nMaria,7,10.0.0.1\n",
			CSVColumns{}, []row{{p("10.0.0.1/32"), "Maria", "7"}}},
		{"header only", "IP,Name\n", CSVColumns{}, nil},
		{"named columns", "cpe_ip,wan_ip,holder,ref\n10.0.0.1,203.0.113.1,Maria,R1\n",
			CSVColumns{Address: "WAN IP", Name: "holder", ID: "ref"}, []row{{p("203.0.113.1/32"), "Maria", "R1"}}},
		{"named name only", "ip,login,name\n10.0.0.1,mlopez,Maria\n",
			CSVColumns{Name: "login"}, []row{{p("10.0.0.1/32"), "mlopez", ""}}},
		{"customer named Name in a header-less file", "10.0.0.1,Name,1\n",
			CSVColumns{}, []row{{p("10.0.0.1/32"), "Name", "1"}}},
	} {
		subs, err := ParseSubscriberCSVColumns(stringsReader(c.csv), c.cols)
		if err != nil {
			t.Errorf("%s: %v", c.what, err)
			continue
		}
		if diff := cmp.Diff(rowsOf(subs), c.want, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
			t.Errorf("%s (-got +want):\n%s", c.what, diff)
		}
	}
}

func TestParseSubscriberCSVHeaderErrors(t *testing.T) {
	for _, c := range []struct {
		what string
		csv  string
		cols CSVColumns
		want string
	}{
		{"bad rows name line and column",
			"Account,Name,IP\nA-1,Maria,not-an-ip\nA-2,,10.0.0.2\nA-3,Bob\n",
			CSVColumns{},
			`line 2, column "IP": invalid address or prefix "not-an-ip"` + "\n" +
				`line 3, column "Name": customer name must not be empty` + "\n" +
				`line 4, column "IP": missing (the row has 2 fields)`},
		{"header-less rows name the column by position",
			"10.0.0.1,alice\n10.0.0.300,bob\n",
			CSVColumns{},
			`line 2, column 1 (address): invalid address or prefix "10.0.0.300"`},
		{"no address column",
			"Account,Name,Plan\nA-1,Maria,20M\n",
			CSVColumns{},
			`line 1: no address column in the header ("Account", "Name", "Plan"): want one of "address", "ip", "ip address", "ipv4", "ipv6", "prefix", "subnet", "network", "cidr"`},
		{"named column missing",
			"ip,name\n10.0.0.1,Maria\n",
			CSVColumns{ID: "account"},
			`line 1: no id column "account" in the header ("ip", "name")`},
		{"named columns without a header row",
			"10.0.0.1,Maria,1\n",
			CSVColumns{Address: "ip", ID: "id"},
			`line 1: columns are named (address "ip", id "id") but the file has no header row`},
		{"comment lines count", "# export\nip,name\n\n10.0.0.x,Maria\n", CSVColumns{},
			`line 4, column "ip": invalid address or prefix "10.0.0.x"`},
	} {
		_, err := ParseSubscriberCSVColumns(stringsReader(c.csv), c.cols)
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: error\n%v\nwant\n%s", c.what, err, c.want)
		}
	}
}
