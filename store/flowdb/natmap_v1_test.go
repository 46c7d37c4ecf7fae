package flowdb

import (
	"context"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// natV1Row is a mapping as a flowbox of format 1 wrote it.
type natV1Row struct {
	router             int64
	pub, in, remote    netip.Addr
	pport, iport, rprt uint16
	proto              uint8
	first, last        time.Time
	flows              uint64
	remotes            uint32
}

// writeNATV1 writes rows into a day table of format 1, as an older
// flowbox left it.
func writeNATV1(t *testing.T, s *FlowDB, day time.Time, rows []natV1Row) {
	t.Helper()
	ctx := context.Background()
	name := "nat_" + day.Format("20060102")
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE `+name+` (
	m INTEGER NOT NULL, pub BLOB NOT NULL, port INTEGER NOT NULL, off INTEGER NOT NULL, proto INTEGER NOT NULL,
	k BLOB NOT NULL, dur INTEGER NOT NULL, v BLOB NOT NULL,
	PRIMARY KEY (m, pub, port, off, proto, k)) WITHOUT ROWID`); err != nil {
		t.Fatal(err)
	}
	var maxSpan, maxLast int64
	for _, r := range rows {
		k := binary.AppendUvarint(nil, uint64(r.router))
		k = binary.BigEndian.AppendUint16(k, r.iport)
		k = append(k, r.in.AsSlice()...)
		v := binary.BigEndian.AppendUint16(nil, r.rprt)
		v = binary.AppendUvarint(v, uint64(r.remotes))
		v = binary.AppendUvarint(v, r.flows)
		if r.remote.IsValid() {
			v = append(v, r.remote.AsSlice()...)
		}
		rel := r.last.Sub(day).Milliseconds()
		dur := r.last.Sub(r.first).Milliseconds()
		if _, err := s.w.ExecContext(ctx, "INSERT INTO "+name+" (m, pub, port, off, proto, k, dur, v) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			rel/natMinuteMs, r.pub.AsSlice(), r.pport, rel%natMinuteMs, r.proto, k, dur, v); err != nil {
			t.Fatal(err)
		}
		maxSpan, maxLast = max(maxSpan, dur), max(maxLast, r.last.UnixMilli())
	}
	if _, err := s.w.ExecContext(ctx, "INSERT INTO nat_days (day, name, max_span, max_last, rows) VALUES (?, ?, ?, ?, ?)",
		day.Unix(), name, maxSpan, maxLast, len(rows)); err != nil {
		t.Fatal(err)
	}
}

// TestNATConvertV1: the day tables of an older flowbox (one row per
// mapping) are converted into blocks when the writer opens the store:
// every mapping still answers, the old tables are gone, and a read-only
// lookup before the conversion says what to do.
func TestNATConvertV1(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cfg := store.DefaultConfig()
	s, err := Open(ctx, dir, cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return testNow }
	day := testNow.Truncate(24 * time.Hour)
	prev := day.Add(-24 * time.Hour)
	pub, pub6 := netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("2001:db8:ff::1")
	t1 := testNow.Add(-time.Hour).Add(123 * time.Millisecond)
	t2 := prev.Add(23*time.Hour + 59*time.Minute + 59*time.Second + 500*time.Millisecond) // rounds up into the next second
	rows := []natV1Row{
		{1, pub, netip.MustParseAddr("100.64.1.20"), netip.MustParseAddr("142.250.1.10"), 51234, 40001, 443, 6, t1.Add(-10 * time.Minute), t1, 20, 1},
		{1, pub, netip.MustParseAddr("100.64.3.99"), netip.MustParseAddr("8.8.8.8"), 51234, 51234, 53, 17, t1.Add(-time.Second), t1, 1, 1},
		{2, pub6, netip.MustParseAddr("fd00::10"), netip.Addr{}, 6000, 5000, 0, 17, t1, t1, 1, 0},
	}
	writeNATV1(t, s, day, rows)
	writeNATV1(t, s, prev, []natV1Row{{3, pub, netip.MustParseAddr("100.64.9.9"), netip.MustParseAddr("1.1.1.1"), 1024, 1024, 853, 6, t2.Add(-time.Minute), t2, 2, 1}})
	if err := s.shutdown(); err != nil {
		t.Fatal(err)
	}
	closeAll(s)

	// A read-only store cannot read them yet, and says why.
	ro, err := OpenReadOnly(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.LookupNAT(ctx, store.NATQuery{Public: pub, At: t1}); err == nil || !strings.Contains(err.Error(), "start flowbox serve once to convert them") {
		t.Fatalf("read-only lookup of format 1: %v", err)
	}
	closeAll(ro)

	s, err = Open(ctx, dir, cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(s)
	s.now = func() time.Time { return testNow }
	var names []string
	r, err := s.r.Query("SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE 'nat%' ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var n string
		if err := r.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	r.Close()
	if want := []string{"nat_days", natTable(prev.UnixMilli()), natTable(day.UnixMilli())}; !slices.Equal(names, want) {
		t.Fatalf("tables %v, want %v", names, want)
	}
	if n := natRows(t, s); n != 4 {
		t.Fatalf("%d entries after the conversion, want 4", n)
	}
	ms := lookup(t, s, store.NATQuery{Public: pub, Port: 51234, At: t1.Add(-5 * time.Second)})
	if len(ms) != 2 {
		t.Fatalf("port 51234: %+v", ms)
	}
	for _, m := range ms {
		switch m.ProtoName {
		case "tcp":
			if m.InsideAddr != rows[0].in || m.InsidePort != 40001 || m.RemoteAddr != rows[0].remote || m.RemotePort != 443 || m.Flows != 20 || m.RouterID != 1 ||
				!m.FirstSeen.Equal(rows[0].first.Truncate(time.Second)) || !m.LastSeen.Equal(t1.Truncate(time.Second).Add(time.Second)) {
				t.Fatalf("tcp: %+v", m)
			}
		case "udp":
			if m.InsideAddr != rows[1].in || m.InsidePort != 51234 || m.RemotePort != 53 || m.Flows != 1 {
				t.Fatalf("udp: %+v", m)
			}
		default:
			t.Fatalf("%+v", m)
		}
	}
	if ms := lookup(t, s, store.NATQuery{Public: pub6, Port: 6000, At: t1}); len(ms) != 1 || ms[0].InsideAddr != rows[2].in || ms[0].RemoteAddr.IsValid() || ms[0].RouterID != 2 {
		t.Fatalf("IPv6: %+v", ms)
	}
	if ms := lookup(t, s, store.NATQuery{Public: pub, Port: 1024, At: t2}); len(ms) != 1 || ms[0].RouterID != 3 || !ms[0].LastSeen.Equal(day) {
		t.Fatalf("the previous day's last second: %+v", ms)
	}
	if st := s.NATStats(); st.Days != 2 {
		t.Fatalf("stats %+v", st)
	}
}
