package clickhouse

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// TestFilterSQL checks that the flows a filter selects in ClickHouse
// (chDB) are those store.Filter.Match passes, for every field of Filter,
// alone and together.
func TestFilterSQL(t *testing.T) {
	c, w := migratedWriter(t, "s", testExporters)
	ctx := context.Background()
	flows := testFlows(4000, time.Now().Truncate(time.Minute))
	if err := w.Insert(ctx, flows); err != nil {
		t.Fatal(err)
	}
	pfx := netip.MustParsePrefix
	filters := []store.Filter{
		{},
		{Sources: []int64{1, 3}},
		{Sources: []int64{-20, 2}},
		{Directions: []store.Direction{store.DirDownload, store.DirRouterIn}},
		{Interfaces: []uint32{0}},
		{Interfaces: []uint32{2, 77}},
		{AS: []uint32{4200000000}},
		{AS: []uint32{flows[3].SrcAS, flows[8].SrcAS}},
		{Ports: []uint16{flows[1].SrcPort, flows[2].DstPort}},
		{Protocols: []uint8{17, 58}},
		{Hosts: []netip.Prefix{pfx("100.64.0.0/24")}},
		{Hosts: []netip.Prefix{pfx("100.64.3.7/32"), pfx("2606:4700::/32")}},
		{LocalHosts: []netip.Prefix{pfx("2001:db8::/32")}},
		{RemoteHosts: []netip.Prefix{pfx("0.0.0.0/0")}},
		{RemoteHosts: []netip.Prefix{pfx("::/0")}},
		{LocalHosts: []netip.Prefix{pfx("::ffff:0:0/96")}}, // IPv6 only: none
		{LocalHosts: []netip.Prefix{pfx("100.64.0.0/16")}, RemoteHosts: []netip.Prefix{pfx("1.0.0.0/1")}},
		{LocalHosts: []netip.Prefix{pfx("10.0.0.5/32")}}, // the post-NAT local side of downloads
		{Applications: []string{""}},
		{Applications: []string{"youtube", "dns"}},
		{Countries: []string{"US", ""}},
		{Subscribers: []string{`O'Brien \ Co`, "Łukasz"}},
		{Subscribers: []string{""}},
		{Domains: []string{"googlevideo.com"}},
		{Domains: []string{""}, Protocols: []uint8{6}, Directions: []store.Direction{store.DirUpload}},
		{Sources: []int64{1}, Protocols: []uint8{17}, Countries: []string{"private", "DE"}},
	}
	from, to := flows[0].End, flows[0].End
	for i := range flows {
		from, to = min(from, flows[i].End), max(to, flows[i].End)
	}
	to -= 60_000 // a range that leaves some flows out
	for i, flt := range filters {
		var n, bytes uint64
		for j := range flows {
			f := &flows[j]
			local, remote := f.LocalRemote()
			if f.End >= from && f.End < to && flt.Match(f, testSource(f), local.Unmap(), remote.Unmap()) {
				n++
				bytes += f.Scale(f.Bytes) & (1<<32 - 1)
			}
		}
		q := fmt.Sprintf("SELECT count(), sum(bitAnd(bytes * if(sampling > 1, sampling, 1), 4294967295)) FROM %s.flows WHERE t >= fromUnixTimestamp64Milli(%d) AND t < fromUnixTimestamp64Milli(%d)%s",
			c.Database(), from, to, filterSQL(&flt))
		out, err := c.Query(ctx, q)
		if err != nil {
			t.Fatalf("filter %d %+v: %v", i, flt, err)
		}
		if got, want := strings.TrimSpace(string(out)), fmt.Sprintf("%d\t%d", n, bytes); got != want {
			t.Fatalf("filter %d %+v: clickhouse counts %s, Match %s\n%s", i, flt, got, want, q)
		}
		if i > 0 && n == 0 && !(len(flt.LocalHosts) == 1 && flt.LocalHosts[0].Addr().Is4In6()) {
			t.Errorf("filter %d %+v selects nothing: the test data misses it", i, flt)
		}
	}
}
