package clickhouse

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/clickhouse/chtest"
)

// newTestClient returns a client of a ClickHouse with a database of its
// own: a chDB endpoint started for the test or, with
// FLOWBOX_CLICKHOUSE_URL (http[s]://user:password@host:port), a real
// server, where the test's database is dropped when it ends. With
// FLOWBOX_CLICKHOUSE_CLUSTER (chtest.ClusterEnv) its tables are those of
// that cluster (Distributed).
func newTestClient(tb testing.TB) *Client {
	tb.Helper()
	cfg := DefaultConfig()
	password := ""
	if raw := os.Getenv("FLOWBOX_CLICKHOUSE_URL"); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			tb.Fatalf("FLOWBOX_CLICKHOUSE_URL %q: want http[s]://user:password@host:port", raw)
		}
		cfg.Addresses = []string{u.Host}
		cfg.TLS.Enabled = u.Scheme == "https"
		if u.User != nil {
			cfg.User = u.User.Username()
			password, _ = u.User.Password()
		}
		cfg.Database = fmt.Sprintf("flowbox_test_%d_%d", os.Getpid(), rand.Uint32())
	} else {
		srv := chtest.Start(tb)
		cfg.Addresses = []string{srv.Addr}
		cfg.User, password = srv.User, srv.Password
		cfg.Database = "flowbox_test"
	}
	cfg.Cluster = os.Getenv(chtest.ClusterEnv)
	c := clientWith(tb, cfg, password)
	tb.Cleanup(func() {
		for _, db := range []string{cfg.Database, cfg.tablesDB()} {
			if err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); err != nil {
				tb.Errorf("cannot drop the test database: %v", err)
			}
		}
	})
	return c
}

// migratedWriter returns a client of a migrated test database (as
// newTestClient) and a writer of site's flows in it.
func migratedWriter(tb testing.TB, site string, exporters func(netip.Addr) int64) (*Client, *FlowWriter) {
	tb.Helper()
	c := newTestClient(tb)
	if _, err := Migrate(context.Background(), c); err != nil {
		tb.Fatal(err)
	}
	w, err := NewFlowWriter(c, site, exporters)
	if err != nil {
		tb.Fatal(err)
	}
	return c, w
}

// withPassword returns a client of c's server with another password.
func withPassword(tb testing.TB, c *Client, password string) *Client {
	return clientWith(tb, c.cfg, password)
}

// clientWith returns a client of cfg with password in its password file.
func clientWith(tb testing.TB, cfg Config, password string) *Client {
	tb.Helper()
	cfg.PasswordFile = filepath.Join(tb.TempDir(), "password")
	if err := os.WriteFile(cfg.PasswordFile, []byte(password+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	c, err := NewClient(cfg, testutil.Logger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, c := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no address", func(c *Config) { c.Addresses = nil }, "clickhouse.addresses: at least one host:port is needed"},
		{"no port", func(c *Config) { c.Addresses = []string{"ch1"} }, `clickhouse.addresses: "ch1" is not host:port`},
		{"database", func(c *Config) { c.Database = "flow-box; DROP" }, `clickhouse.database: "flow-box; DROP" is not a plain identifier (letters, digits, _)`},
		{"user", func(c *Config) { c.User = "" }, "clickhouse.user: empty"},
		{"ttl", func(c *Config) { c.RawTTL = time.Minute }, "clickhouse.raw-ttl: 1m0s is below the minimum of 1h"},
		{"hour ttl", func(c *Config) { c.HourTTL = 0 }, "clickhouse.hour-ttl: 0s is below the minimum of 1h"},
		{"timeout", func(c *Config) { c.Timeout = 0 }, "clickhouse.timeout: 0s must be positive"},
		{"ca without tls", func(c *Config) { c.TLS.CAFile = "/etc/ca.pem" }, "clickhouse.tls.ca-file: set, but tls.enabled is false"},
	} {
		cfg := DefaultConfig()
		c.edit(&cfg)
		err := cfg.Validate()
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if _, err := NewClient(cfg, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: NewClient: %v", c.name, err)
		}
	}
	cfg := DefaultConfig()
	cfg.PasswordFile = filepath.Join(t.TempDir(), "missing")
	if _, err := NewClient(cfg, nil); err == nil || !strings.Contains(err.Error(), "cannot read clickhouse.password-file") {
		t.Errorf("missing password file: %v", err)
	}
	cfg = DefaultConfig()
	cfg.TLS = TLSConfig{Enabled: true, CAFile: cfg.PasswordFile}
	cfg.TLS.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(cfg.TLS.CAFile, []byte("not a certificate"), 0o600)
	if _, err := NewClient(cfg, nil); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("bad CA file: %v", err)
	}
}

func TestSplitStatements(t *testing.T) {
	got := splitStatements("-- a comment\nCREATE TABLE a\n(x UInt8);\n\n-- another\nALTER TABLE a\n  ADD COLUMN y UInt8;\nSELECT 1\n")
	want := []string{"CREATE TABLE a\n(x UInt8)", "ALTER TABLE a\n  ADD COLUMN y UInt8", "SELECT 1"}
	if !slices.Equal(got, want) {
		t.Fatalf("%q, want %q", got, want)
	}
	cfg := DefaultConfig()
	ms, err := migrations(&cfg)
	if err != nil || len(ms) == 0 {
		t.Fatalf("%d migrations: %v", len(ms), err)
	}
	for _, m := range ms {
		for _, s := range m.stmts {
			if strings.Contains(s, "{{") || strings.Contains(s, "<no value>") {
				t.Fatalf("migration %d not rendered: %s", m.version, s)
			}
		}
	}
}

// TestMigrate runs the migrations on ClickHouse (chDB): once, then again
// (nothing to do), and refuses a database a newer flowbox migrated.
func TestMigrate(t *testing.T) {
	c := newTestClient(t)
	ctx := context.Background()
	n, err := Migrate(ctx, c)
	if err != nil || n == 0 {
		t.Fatalf("first run: %d applied, %v", n, err)
	}
	if n, err := Migrate(ctx, c); err != nil || n != 0 {
		t.Fatalf("second run: %d applied (want 0), %v", n, err)
	}
	out, err := c.Query(ctx, "SELECT engine, partition_key, sorting_key, create_table_query LIKE '%TTL%' FROM system.tables WHERE database = '"+c.cfg.tablesDB()+"' AND name = 'flows' FORMAT TabSeparated")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(out)), "MergeTree\ttoYYYYMMDD(t)\tsite, toStartOfFiveMinutes(t), src, dir, proto, local\t1"; got != want {
		t.Fatalf("flows: %q, want %q", got, want)
	}
	// The rollups: summed as they merge, each with its TTL.
	for table, ttl := range map[string]time.Duration{"tot_m": c.cfg.MinuteTTL, "tot_h": c.cfg.HourTTL, "if_m": c.cfg.MinuteTTL,
		"if_h": c.cfg.HourTTL, "usage_h": c.cfg.UsageHourTTL, "usage_d": c.cfg.HourTTL} {
		out, err := c.Query(ctx, "SELECT engine, create_table_query FROM system.tables WHERE database = '"+c.cfg.tablesDB()+"' AND name = '"+table+"' FORMAT TabSeparated")
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("toIntervalSecond(%d)", int64(ttl.Seconds()))
		if !strings.HasPrefix(string(out), "SummingMergeTree\t") || !strings.Contains(string(out), want) {
			t.Fatalf("%s: %s, want a SummingMergeTree with TTL %s", table, out, want)
		}
	}
	// Every column of flowColumns exists, in that order.
	out, err = c.Query(ctx, "SELECT name FROM system.columns WHERE database = '"+c.cfg.tablesDB()+"' AND table = 'flows' ORDER BY position FORMAT TabSeparated")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(strings.Fields(string(out)), ", "), flowColumns; got != want {
		t.Fatalf("columns:\n%s\nwant\n%s", got, want)
	}
	if err := c.Exec(ctx, "INSERT INTO "+c.Database()+".flowbox_migrations (version, name) VALUES (9999, 'future')"); err != nil {
		t.Fatal(err)
	}
	if _, err := Migrate(ctx, c); err == nil || !strings.Contains(err.Error(), "schema version 9999, newer than this flowbox knows") {
		t.Fatalf("newer schema: %v", err)
	}
}

// testFlows returns n flows with every stored field varied: IPv4 and
// IPv6, post-NAT addresses and ports, absent addresses, sampling, names
// (some empty, some not ASCII), the router's own interface 0.
func testFlows(n int, end time.Time) []store.Flow {
	rng := rand.New(rand.NewPCG(5, 6))
	subs := []string{"", "Ana Lucía", "customer-0042", "Łukasz", `O'Brien \ Co`}
	apps := []string{"", "youtube", "dns"}
	ccs := []string{"", "US", "private", "DE"}
	out := make([]store.Flow, n)
	for i := range out {
		f := &out[i]
		f.Exporter = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i%3)}), uint16(2055+i%2))
		f.Version = []uint16{5, 9, 10}[i%3]
		f.RouterID = int64(i % 4)
		f.End = end.UnixMilli() - rng.Int64N(3600_000)
		f.Start = f.End - rng.Int64N(120_000)
		f.Direction = store.Direction(rng.IntN(int(store.NumDirections)))
		f.Proto = []uint8{6, 17, 1, 58}[i%4]
		if i%5 == 0 {
			f.SrcAddr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)})
			f.DstAddr = netip.MustParseAddr("2606:4700::1111")
		} else {
			f.SrcAddr = netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)})
			f.DstAddr = netip.AddrFrom4([4]byte{byte(1 + rng.IntN(200)), 2, 3, 4})
		}
		if i%7 == 0 {
			f.PostNATSrcAddr = netip.MustParseAddr("203.0.113.9")
			f.PostNATSrcPort = uint16(1024 + rng.IntN(60000))
		}
		if i%11 == 0 {
			f.PostNATDstAddr = netip.MustParseAddr("10.0.0.5")
			f.PostNATDstPort = 443
		}
		f.SrcPort, f.DstPort = uint16(rng.IntN(65536)), uint16(rng.IntN(65536))
		f.InIf, f.OutIf = uint32(i%3), uint32(rng.IntN(1<<20))
		if i%13 == 0 {
			f.OutIf = 2
		}
		if i%17 == 0 {
			f.DstAddr = netip.Addr{} // absent (a template without it)
		}
		f.SrcAS, f.DstAS = uint32(rng.IntN(400000)), 4200000000
		f.Bytes, f.Packets = rng.Uint64()>>rng.IntN(64), uint64(rng.IntN(1<<30))
		if i%6 == 0 {
			f.SamplingRate = 1000
		}
		f.TCPFlags = uint8(rng.IntN(256))
		f.Subscriber, f.Application = subs[i%len(subs)], apps[i%len(apps)]
		f.SrcCountry, f.DstCountry = ccs[i%len(ccs)], ccs[(i+1)%len(ccs)]
		if i%3 == 0 {
			f.RemoteDomain = "googlevideo.com"
		}
	}
	return out
}

// testExporters gives the exporters of testFlows their ids.
func testExporters(a netip.Addr) int64 { return int64(a.As4()[3]) * 10 }

// testSource is the source of a flow of testFlows.
func testSource(f *store.Flow) int64 {
	if f.RouterID != 0 {
		return f.RouterID
	}
	return -testExporters(f.Exporter.Addr())
}

// TestInsertFlows writes flows in RowBinary through the HTTP interface
// and reads them back from ClickHouse (chDB) equal, field by field; flows
// older than the raw TTL are dropped.
func TestInsertFlows(t *testing.T) {
	c, w := migratedWriter(t, "wisp-north", testExporters)
	ctx := context.Background()
	// Recent flows: ClickHouse's TTL (its own clock) drops the others.
	flows := testFlows(3000, time.Now().Truncate(time.Minute))
	if err := w.Insert(ctx, flows[:1000]); err != nil {
		t.Fatal(err)
	}
	if err := w.Insert(ctx, flows[1000:]); err != nil {
		t.Fatal(err)
	}
	out, err := c.Query(ctx, "SELECT "+flowColumns+" FROM "+c.Database()+".flows FORMAT RowBinary")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := readFlows(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(flows) {
		t.Fatalf("%d flows read back, %d written", len(stored), len(flows))
	}
	var got []store.Flow
	for _, sf := range stored {
		if sf.site != "wisp-north" {
			t.Fatalf("site %q", sf.site)
		}
		if want := testSource(&sf.Flow); sf.src != want {
			t.Fatalf("source %d, want %d (router %d, exporter %v)", sf.src, want, sf.RouterID, sf.Exporter)
		}
		got = append(got, sf.Flow)
	}
	key := func(f store.Flow) string {
		return fmt.Sprintf("%d %v %v %d %d", f.End, f.SrcAddr, f.DstAddr, f.SrcPort, f.DstPort)
	}
	order := func(fs []store.Flow) {
		slices.SortFunc(fs, func(a, b store.Flow) int { return cmp.Compare(key(a), key(b)) })
	}
	order(got)
	order(flows)
	for i := range flows {
		if got[i] != flows[i] {
			t.Fatalf("flow %d:\n got %+v\nwant %+v", i, got[i], flows[i])
		}
	}
	// Flows older than the TTL go at the next merge.
	old := testFlows(10, time.Now().Add(-c.cfg.RawTTL-48*time.Hour))
	if err := w.Insert(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "OPTIMIZE TABLE "+c.cfg.tablesDB()+".flows FINAL"); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Query(ctx, "SELECT count() FROM "+c.Database()+".flows"); err != nil || strings.TrimSpace(string(n)) != fmt.Sprint(len(flows)) {
		t.Fatalf("after the TTL: %s flows (%v), want %d", n, err, len(flows))
	}
	// A truncated answer is an error, not a short list.
	if _, err := readFlows(out[:len(out)-3]); !errors.Is(err, errShortRow) {
		t.Fatalf("truncated answer: %v", err)
	}
	if _, err := NewFlowWriter(c, "", nil); err == nil {
		t.Fatal("empty site accepted")
	}
}

// TestClientErrors checks what ClickHouse's refusals and unreachable
// servers become: a ServerError with the exception's code, or the next
// address.
func TestClientErrors(t *testing.T) {
	c := newTestClient(t)
	ctx := context.Background()
	var se *ServerError
	if err := c.Exec(ctx, "SELEC 1"); !errors.As(err, &se) || se.Code != 62 || se.Status != 400 {
		t.Fatalf("syntax error: %v", err)
	}
	if _, err := c.Query(ctx, "SELECT * FROM system.no_such_table"); !errors.As(err, &se) || se.Code != 60 {
		t.Fatalf("unknown table: %v", err)
	}
	if err := c.Exec(ctx, "SELECT 1; SELECT 2"); !errors.As(err, &se) || se.Code != 62 {
		t.Fatalf("two statements: %v", err)
	}
	bad := withPassword(t, c, "wrong")
	if _, err := bad.Query(ctx, "SELECT 1"); !errors.As(err, &se) || se.Code != 516 || !strings.Contains(se.Message, "Authentication failed") {
		t.Fatalf("wrong password: %v", err)
	}
	// A first address that refuses connections: the second answers, and
	// is tried first from then on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	c.cfg.Addresses = []string{dead, c.cfg.Addresses[0]}
	fo, err := NewClient(c.cfg, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		out, err := fo.Query(ctx, "SELECT 40 + 2")
		if err != nil || strings.TrimSpace(string(out)) != "42" {
			t.Fatalf("failover: %q, %v", out, err)
		}
	}
	if fo.next.Load() != 1 {
		t.Fatalf("next address %d, want 1", fo.next.Load())
	}
	c.cfg.Addresses = []string{dead}
	none, err := NewClient(c.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := none.Query(ctx, "SELECT 1"); err == nil || !strings.Contains(err.Error(), "cannot reach clickhouse") || errors.As(err, &se) {
		t.Fatalf("unreachable: %v", err)
	}
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Query(ctx2, "SELECT 1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
}
