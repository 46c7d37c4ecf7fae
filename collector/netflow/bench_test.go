package netflow

import (
	"testing"

	"github.com/flowbox/flowbox/store"
)

const benchRecords = 25

// benchPackets returns a template datagram and a data datagram of 25
// records for the RouterOS-shaped v9 and IPFIX templates.
func benchPackets(version int) (tmplPkt, dataPkt []byte) {
	const uptime, secs = 100_000_000, 1_700_000_000
	var recs [][]byte
	if version == 9 {
		for i := range benchRecords {
			recs = append(recs, routerOSv9Record(i, uptime))
		}
		return v9Packet(uptime, secs, 1, 0, set(0, 0, tmpl(256, routerOSv9Fields...))),
			v9Packet(uptime, secs, 2, 0, set(256, 0, recs...))
	}
	for i := range benchRecords {
		recs = append(recs, mikrotikIPFIXRecord(i))
	}
	return ipfixMessage(secs, 0, 0, set(2, 0, tmpl(258, mikrotikIPFIXFields...))),
		ipfixMessage(secs, 0, 0, set(258, 0, recs...))
}

// BenchmarkDecode measures decoding RouterOS-shaped datagrams of 25 records
// with the template known (steady state).
func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct {
		name    string
		version int
	}{{"routeros-v9", 9}, {"mikrotik-ipfix", 10}} {
		b.Run(c.name, func(b *testing.B) {
			tp, dp := benchPackets(c.version)
			d := New(DefaultConfig())
			flows, err := d.Decode(nil, exporterA, tp, tNow)
			if err != nil {
				b.Fatal(err)
			}
			flows, err = d.Decode(flows[:0], exporterA, dp, tNow)
			if err != nil || len(flows) != benchRecords {
				b.Fatalf("%d flows, %v", len(flows), err)
			}
			b.SetBytes(int64(len(dp)))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				flows, _ = d.Decode(flows[:0], exporterA, dp, tNow)
				n += len(flows)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// TestDecodeZeroAlloc checks the steady-state decode path allocates
// nothing (the benchmark reports it; this makes it a test).
func TestDecodeZeroAlloc(t *testing.T) {
	for _, v := range []int{9, 10} {
		tp, dp := benchPackets(v)
		d := New(DefaultConfig())
		var flows []store.Flow
		flows, _ = d.Decode(flows, exporterA, tp, tNow)
		flows, _ = d.Decode(flows[:0], exporterA, dp, tNow)
		allocs := testing.AllocsPerRun(100, func() {
			flows, _ = d.Decode(flows[:0], exporterA, dp, tNow)
			// Refreshing an unchanged template is steady state too.
			flows, _ = d.Decode(flows[:0], exporterA, tp, tNow)
		})
		if allocs != 0 {
			t.Errorf("v%d: %.1f allocations per datagram pair, want 0", v, allocs)
		}
	}
}
