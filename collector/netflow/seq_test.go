package netflow

import (
	"slices"
	"testing"
	"time"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/store"
)

// v9Data returns a v9 data packet of n records of template 300 (v9Simple),
// with the template when withTemplate.
func v9Data(uptime, secs, seq uint32, n int, withTemplate bool) []byte {
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = v9SimpleRec(uptime-100, uptime-10, 1)
	}
	if withTemplate {
		return v9Packet(uptime, secs, seq, 0, set(0, 0, tmpl(300, v9Simple...)), set(300, 0, recs...))
	}
	return v9Packet(uptime, secs, seq, 0, set(300, 0, recs...))
}

// TestV9RestartSamePort: a v9 exporter restarts on the same source port:
// its sequence and sysUptime start over. The uptime reset is a restart,
// not reordering: losses before and after it are both counted (200 + 400
// = 600, where the restart used to be taken for late packets and the
// estimate fell to 0).
func TestV9RestartSamePort(t *testing.T) {
	d := New(DefaultConfig())
	const recs = 20
	uptime, unix := uint32(5_000_000), uint32(secs)
	send := func(seq uint32) {
		t.Helper()
		dec(t, d, exporterA, v9Data(uptime, unix, seq, recs, seq == 0), tNow)
	}
	for seq := range uint32(100) {
		if seq >= 40 && seq < 50 {
			continue // 10 packets (200 records) lost
		}
		send(seq)
		uptime += 50
		if seq%20 == 0 {
			unix++
		}
	}
	if s := statsOf(t, d, exporterA); s.LostFlows != 200 || s.Restarts != 0 {
		t.Fatalf("before the restart: lost %d, %d restarts", s.LostFlows, s.Restarts)
	}
	// The router reboots: 40 s later, uptime 30 s, sequence from 0.
	uptime, unix = 30_000, unix+40
	for seq := range uint32(100) {
		if seq >= 60 && seq < 80 {
			continue // 20 packets (400 records) lost
		}
		send(seq)
		uptime += 50
		if seq%20 == 0 {
			unix++
		}
	}
	if s := statsOf(t, d, exporterA); s.LostFlows != 600 || s.Restarts != 1 {
		t.Errorf("after the restart: lost %d (want 600), %d restarts (want 1)", s.LostFlows, s.Restarts)
	}
	// A late packet (older uptime, same second) is reordering, not a
	// restart: it gives back what its gap counted.
	uptime -= 20 * 50
	send(70)
	if s := statsOf(t, d, exporterA); s.LostFlows != 580 || s.Restarts != 1 {
		t.Errorf("after a late packet: lost %d (want 580), %d restarts (want 1)", s.LostFlows, s.Restarts)
	}
	// Again: a duplicate gives nothing back twice.
	send(70)
	if s := statsOf(t, d, exporterA); s.LostFlows != 580 {
		t.Errorf("after a duplicate: lost %d (want 580)", s.LostFlows)
	}
}

// TestIPFIXSequenceReset: IPFIX headers carry no uptime; a sequence that
// starts over on the same port shows as two datagrams that follow each
// other behind the expected number. A single datagram behind it outside
// every counted gap (a duplicate) changes nothing.
func TestIPFIXSequenceReset(t *testing.T) {
	d := New(DefaultConfig())
	data := func(seq uint32, n int) []byte {
		recs := make([][]byte, n)
		for i := range recs {
			recs[i] = u(4, 1)
		}
		return ipfixMessage(secs, seq, 0, set(256, 0, recs...))
	}
	dec(t, d, exporterA, ipfixMessage(secs, 0, 0, set(2, 0, tmpl(256, fld{1, 4, 0}))), tNow)
	for seq := uint32(0); seq < 5000; seq += 10 {
		dec(t, d, exporterA, data(seq, 10), tNow)
	}
	dec(t, d, exporterA, data(4000, 10), tNow) // a duplicate
	dec(t, d, exporterA, data(5000, 10), tNow)
	if s := statsOf(t, d, exporterA); s.LostFlows != 0 || s.Restarts != 0 {
		t.Fatalf("after a duplicate: lost %d, %d restarts", s.LostFlows, s.Restarts)
	}
	// Restart: 0, 10, then 30 (10 records lost).
	dec(t, d, exporterA, data(0, 10), tNow)
	dec(t, d, exporterA, data(10, 10), tNow)
	dec(t, d, exporterA, data(30, 10), tNow)
	if s := statsOf(t, d, exporterA); s.LostFlows != 10 || s.Restarts != 1 {
		t.Errorf("after the restart: lost %d (want 10), %d restarts (want 1)", s.LostFlows, s.Restarts)
	}
}

// TestLossAfterStall: the collector stops reading for 3 s (the kernel drops
// every datagram meanwhile) while RouterOS-shaped exporters send 50,000
// flows/s, IPv4 and IPv6 records in packets of different sizes. IPFIX and
// v5 number records: the loss is exact. v9 numbers packets: the loss is
// the lost packets times the long-run average of records per packet
// (within 1 %, where the average of the last few packets was 13 % low).
func TestLossAfterStall(t *testing.T) {
	for _, c := range []struct {
		v       int
		stall   time.Duration
		exactly bool
	}{{netflowtest.V9, 3 * time.Second, false}, {netflowtest.IPFIX, 3 * time.Second, true}, {netflowtest.V5, 3 * time.Second, true}} {
		model, err := netflowtest.NewModel(netflowtest.ModelConfig{Seed: 9, Subscribers: 300, IPv6Share: 0.3})
		if err != nil {
			t.Fatal(err)
		}
		enc, err := netflowtest.NewEncoder(netflowtest.EncoderConfig{Version: c.v, BootTime: tNow.Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		d := New(DefaultConfig())
		const rate, tick = 50_000, 10 * time.Millisecond
		stallFrom, stallTo := tNow.Add(2*time.Second), tNow.Add(2*time.Second+c.stall)
		var lost uint64
		var flows, out []store.Flow
		for now := tNow; now.Before(stallTo.Add(2 * time.Second)); now = now.Add(tick) {
			flows = model.AppendFlows(flows[:0], rate*int(tick)/int(time.Second), now)
			// Like a router's flow cache: IPv4 records first, then IPv6.
			slices.SortStableFunc(flows, func(a, b store.Flow) int {
				return boolInt(a.SrcAddr.Is6()) - boolInt(b.SrcAddr.Is6())
			})
			for rest := flows; len(rest) > 0; {
				before := enc.Stats().Flows
				pkt, n := enc.AppendPacket(nil, rest, now)
				rest = rest[n:]
				if len(pkt) == 0 {
					continue // IPv6 flows v5 cannot carry
				}
				if !now.Before(stallFrom) && now.Before(stallTo) {
					lost += enc.Stats().Flows - before
					continue
				}
				out, err = d.Decode(out[:0], exporterA, pkt, now)
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		s := statsOf(t, d, exporterA)
		diff := float64(s.LostFlows)/float64(lost) - 1
		t.Logf("v%d, %v stall: lost %d, estimated %d (%+.2f %%)", c.v, c.stall, lost, s.LostFlows, 100*diff)
		if c.exactly && s.LostFlows != lost || diff < -0.01 || diff > 0.01 || s.Restarts != 0 {
			t.Errorf("v%d, %v stall: %d records lost, estimated %d, %d restarts", c.v, c.stall, lost, s.LostFlows, s.Restarts)
		}
	}
}

// TestLongStallIsLoss: a gap beyond the fixed bound (4 Mi records) is
// still loss when the export clock moved enough for the exporter to send
// that much (here 60 s at 100,000 records/s); a jump the clock cannot
// explain is a new sequence, not loss.
func TestLongStallIsLoss(t *testing.T) {
	d := New(DefaultConfig())
	data := func(export, seq uint32) []byte {
		return ipfixMessage(export, seq, 0, set(256, 0, u(4, 1), u(4, 1)))
	}
	dec(t, d, exporterA, ipfixMessage(secs, 0, 0, set(2, 0, tmpl(256, fld{1, 4, 0}))), tNow)
	dec(t, d, exporterA, data(secs, 0), tNow)
	dec(t, d, exporterA, data(secs+60, 2+6_000_000), tNow)
	if s := statsOf(t, d, exporterA); s.LostFlows != 6_000_000 || s.Restarts != 0 {
		t.Errorf("60 s stall: lost %d (want 6000000), %d restarts", s.LostFlows, s.Restarts)
	}
	dec(t, d, exporterA, data(secs+61, 2_000_000_000), tNow)
	dec(t, d, exporterA, data(secs+61, 2_000_000_002), tNow)
	if s := statsOf(t, d, exporterA); s.LostFlows != 6_000_000 || s.Restarts != 1 {
		t.Errorf("jump: lost %d (want 6000000), %d restarts (want 1)", s.LostFlows, s.Restarts)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestPendingSetsNotFlows: data sets that wait for their template are
// counted as sets, apart from flows: one whose template arrives is decoded
// once (its records in Flows and PendingDecoded, the set in
// PendingSetsDecoded), one that expires or is evicted by the bound only in
// PendingSetsExpired or PendingSetsEvicted; none is counted twice, and
// none counts as lost by the sequence.
func TestPendingSetsNotFlows(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPending = 2
	d := New(cfg)
	rec := u(4, 1)
	msg := func(seq uint32, id uint16, n int) []byte {
		recs := make([][]byte, n)
		for i := range recs {
			recs[i] = rec
		}
		return ipfixMessage(secs, seq, 0, set(id, 0, recs...))
	}
	// Four sets wait; the bound (2) evicts 256's and 257's.
	dec(t, d, exporterA, msg(0, 256, 5), tNow)
	dec(t, d, exporterA, msg(5, 257, 7), tNow)
	dec(t, d, exporterA, msg(12, 258, 3), tNow)
	dec(t, d, exporterA, msg(15, 259, 3), tNow)
	s := statsOf(t, d, exporterA)
	if s.NoTemplateSets != 4 || s.PendingSetsEvicted != 2 || s.PendingSets != 2 || s.Flows != 0 {
		t.Fatalf("stats %+v", s)
	}
	// 258's template arrives: its 3 records are decoded, once.
	f := dec(t, d, exporterA, ipfixMessage(secs, 18, 0, set(2, 0, tmpl(258, fld{1, 4, 0}))), tNow)
	if len(f) != 3 {
		t.Fatalf("%d flows decoded late, want 3", len(f))
	}
	// 259 expires.
	dec(t, d, exporterA, ipfixMessage(secs, 18, 0, set(2, 0, tmpl(300, fld{1, 4, 0}))), tNow.Add(cfg.PendingTTL+time.Second))
	s = statsOf(t, d, exporterA)
	if s.Flows != 3 || s.PendingDecoded != 3 || s.PendingSetsDecoded != 1 || s.PendingSetsExpired != 1 ||
		s.PendingSetsEvicted != 2 || s.PendingDropped != 3 || s.PendingSets != 0 || s.NoTemplateSets != 4 || s.LostFlows != 0 {
		t.Errorf("stats %+v", s)
	}
	if err := d.checkInvariants(); err != nil {
		t.Error(err)
	}
	sum := d.Summary()
	if sum.Flows != 3 || sum.PendingSetsDecoded != 1 || sum.PendingSetsExpired != 1 || sum.PendingSetsEvicted != 2 {
		t.Errorf("summary %+v", sum)
	}
}
