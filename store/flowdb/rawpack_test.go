package flowdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// packFlows are indexFlows with some UDP and DNS flows, so that the
// filters packed blocks test on their key column select something.
func packFlows(seed uint64, n int, now time.Time, span time.Duration) []store.Flow {
	flows := indexFlows(seed, n, now, span)
	for i := range flows {
		if i%5 == 0 {
			flows[i].Proto = 17
		}
		if i%7 == 0 {
			flows[i].DstPort = 53
		}
	}
	return flows
}

// rowsLeft counts the rows of the format 2 partitions not packed, and
// the packed blocks.
func rowsLeft(t *testing.T, s *FlowDB) (rows, blocks int) {
	t.Helper()
	parts, err := s.rawPartitions(context.Background(), 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		var n, b int
		var hi int64
		if err := s.r.QueryRow("SELECT count(*), coalesce(max(hi), 0) FROM "+packTable(p.name)).Scan(&b, &hi); err != nil && !isNoTable(err) {
			t.Fatal(err)
		}
		// The last packed row stays as a copy (see rawpack.go).
		if err := s.r.QueryRow("SELECT count(*) FROM "+p.name+" WHERE id > ?", hi).Scan(&n); err != nil {
			t.Fatal(err)
		}
		var copies int
		if err := s.r.QueryRow("SELECT count(*) FROM "+p.name+" WHERE id <= ?", hi).Scan(&copies); err != nil || copies > 1 {
			t.Fatalf("%s: %d packed rows still in the table (%v), want the last one at most", p.name, copies, err)
		}
		rows += n
		blocks += b
	}
	return rows, blocks
}

// packAll packs until nothing is left to pack at now.
func packAll(t *testing.T, s *FlowDB, now time.Time) int {
	t.Helper()
	total := 0
	for {
		n, err := s.packStep(context.Background(), now, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return total
		}
		total += n
	}
}

// checkPackFilters compares tops and series of the filters the key
// column answers (protocols, ports, directions, routers) with the
// reference.
func checkPackFilters(t *testing.T, s *FlowDB, flows []store.Flow, from, to time.Time, where string) {
	t.Helper()
	ctx := context.Background()
	filters := map[string]store.Filter{
		"udp":        {Protocols: []uint8{17}},
		"icmp":       {Protocols: []uint8{1}},
		"dns":        {Ports: []uint16{53}},
		"udp dns up": {Protocols: []uint8{17}, Ports: []uint16{53}, Directions: []store.Direction{store.DirUpload}},
		"router 1":   {Sources: []int64{1}, Ports: []uint16{443}},
		"router 2":   {Sources: []int64{2}},
		"exporter":   {Sources: []int64{-1}, Protocols: []uint8{6}},
	}
	for name, flt := range filters {
		var want uint64
		var n int
		for _, f := range brute(flows, from, to, flt, false) {
			want += f.Scale(f.Bytes)
			n++
		}
		top, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: store.DimRemoteHost, Filter: flt, Resolution: store.ResRaw})
		if err != nil || top.Total.Bytes != want {
			t.Fatalf("%s: %s: top total %d (%v), want %d", where, name, top.Total.Bytes, err, want)
		}
		ser, err := s.TimeSeries(ctx, store.SeriesQuery{From: from, To: to, Filter: flt, Resolution: store.ResRaw})
		if err != nil || seriesSum(ser).bytes != want {
			t.Fatalf("%s: %s: series %d (%v), want %d", where, name, seriesSum(ser).bytes, err, want)
		}
		got := searchAll(t, s, store.SearchQuery{From: from, To: to, Filter: flt, Limit: 97})
		sameFlows(t, where+": "+name+" search", got, brute(flows, from, to, flt, true))
		if (name == "udp" || name == "dns") && n == 0 {
			t.Fatalf("%s: %s selects no flow: the test data has none", where, name)
		}
	}
}

// TestPackedPartitions: rows moved into packed blocks answer every query
// as rows did (searches with and without the host index, paged both
// ways, CSV export in order, tops and series with the filters the key
// column tests): packed in part, wholly, with late flows after the
// blocks, after a restart (row ids continue after the packed ones), from
// a read-only store, and once retention drops the partitions.
func TestPackedPartitions(t *testing.T) {
	dir := t.TempDir()
	now := testNow
	s := openAt(t, dir, now)
	s.packRows = 128
	ctx := context.Background()
	from, to := now.Add(-40*time.Minute), now.Add(time.Minute)
	flows := packFlows(1, 6000, now, 30*time.Minute)
	writeDirect(t, s, flows[:4000])
	if err := s.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	// Packed once rolled up, before the partitions close: the host index
	// of these rows is still in the tails, in memory. Not settled: full
	// blocks only, the rest of each partition stays rows.
	if n := packAll(t, s, now); n == 0 {
		t.Fatal("nothing packed")
	}
	rows, blocks := rowsLeft(t, s)
	if rows == 0 || blocks == 0 {
		t.Fatalf("%d rows, %d blocks: want both", rows, blocks)
	}
	checkQueries(t, s, flows[:4000], from, to, "packed before the host index")
	checkPackFilters(t, s, flows[:4000], from, to, "packed before the host index")
	// A restart rebuilds the tails from the blocks and the rows.
	closeAll(s)
	s = openAt(t, dir, now)
	s.packRows = 128
	if s.wr.postings == 0 {
		t.Fatal("no tail rebuilt after restart")
	}
	checkQueries(t, s, flows[:4000], from, to, "tails rebuilt from blocks")
	if err := s.closePartitions(ctx, now); err != nil {
		t.Fatal(err)
	}
	checkQueries(t, s, flows[:4000], from, to, "packed in part")
	checkPackFilters(t, s, flows[:4000], from, to, "packed in part")

	// Settled: every row is packed.
	packAll(t, s, now.Add(time.Hour))
	if rows, blocks = rowsLeft(t, s); rows != 0 || blocks == 0 {
		t.Fatalf("settled: %d rows, %d blocks left, want every row packed", rows, blocks)
	}
	checkQueries(t, s, flows[:4000], from, to, "packed")
	checkPackFilters(t, s, flows[:4000], from, to, "packed")

	// Late flows go into the packed partitions as rows, after the blocks.
	writeDirect(t, s, flows[4000:5000])
	if rows, _ = rowsLeft(t, s); rows == 0 {
		t.Fatal("no late rows")
	}
	checkQueries(t, s, flows[:5000], from, to, "late rows after blocks")

	// A restart: row ids continue after the packed ones.
	closeAll(s)
	s = openAt(t, dir, now)
	s.packRows = 128
	writeDirect(t, s, flows[5000:])
	checkQueries(t, s, flows, from, to, "after restart")
	if err := s.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.closePartitions(ctx, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	packAll(t, s, now.Add(2*time.Hour))
	if rows, _ = rowsLeft(t, s); rows != 0 {
		t.Fatalf("%d rows left after packing the late ones", rows)
	}
	checkQueries(t, s, flows, from, to, "late rows packed")
	checkPackFilters(t, s, flows, from, to, "late rows packed")

	// Partitions read by several goroutines, whatever the machine's cores.
	s.scanSlots, s.parallelMin = make(chan struct{}, 3), 64
	checkQueries(t, s, flows, from, to, "parallel")
	checkPackFilters(t, s, flows, from, to, "parallel")
	if len(s.scanSlots) != 0 {
		t.Fatalf("%d scan slots still taken", len(s.scanSlots))
	}

	// Another process reads the blocks.
	ro, err := OpenReadOnly(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	ro.now = s.now
	checkQueries(t, ro, flows, from, to, "read-only")
	closeAll(ro)

	// Retention drops the blocks with their partitions.
	if err := s.applyRetention(ctx, now.Add(s.cfg.RawRetention+time.Hour)); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := s.r.QueryRow("SELECT count(*) FROM sqlite_master WHERE name LIKE 'rawk_%'").Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d packed tables left after retention (%v)", left, err)
	}
}

// TestPackBlockCodec: a block gives back every row's x, with ids in
// sequence or with gaps, and damaged blocks are errors, not panics.
func TestPackBlockCodec(t *testing.T) {
	s := openAt(t, t.TempDir(), testNow)
	flows := packFlows(3, 300, testNow, 4*time.Minute)
	var xs [][]byte
	for i := range flows {
		f := rowOf(flows[i])
		f.RouterID = int64(i % 3 * 40000) // 0, 40000 and 80000 (beyond the key's 16 bits)
		// Every optional part of a row, in turn.
		if i%4 == 1 {
			f.SamplingRate = uint32(i * 1000)
		}
		f.TCPFlags = byte(i)
		if i%6 == 2 {
			f.PostNATSrcPort, f.PostNATDstPort = uint16(1000+i), uint16(60000-i)
		}
		f.SrcAS, f.DstAS, f.InIf, f.OutIf = uint32(i*70000), uint32(i), uint32(i%7), uint32(i*3)
		names := rawNames{sub: uint64(i), app: uint64(i % 4), scc: uint64(i % 5), dcc: 300, dom: uint64(i % 3 * 200)}
		var dict addrDicter
		if i%5 == 4 {
			dict = testDict{f.PostNATSrcAddr: 77, f.DstAddr: 100000}
		}
		l, r := f.LocalRemote()
		xs = append(xs, encodeRaw(nil, &f, int64(i*997%maxRowT), l.Unmap(), r.Unmap(), int64(i%2), names, dict))
	}
	for _, c := range []struct {
		gaps    bool
		version byte
	}{{false, 2}, {true, 2}, {false, 1}, {true, 1}} {
		gaps := c.gaps
		e := packEncoder{version: c.version}
		e.reset(10)
		var ids []int64
		id := int64(10)
		for i, x := range xs {
			if gaps && i%4 == 3 {
				id += 3
			}
			if err := e.add(id, x); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
			id++
		}
		if err := e.add(ids[len(ids)-1], xs[0]); err == nil {
			t.Fatal("a row out of order was packed")
		}
		k, a, x := e.finish(s.zenc, s.zraw)
		decode := func(k, a, x []byte, pr *packedRows) error {
			if err := s.decodeBlock(k, 10, ids[len(ids)-1], pr); err != nil {
				return err
			}
			if err := s.keysReady(pr); err != nil {
				return err
			}
			pr.a.z, pr.x.z = a, x
			if err := pr.a.split(pr.n); err != nil {
				return err
			}
			if err := pr.x.split(pr.n); err != nil {
				return err
			}
			for i := range pr.n {
				if err := s.rowReady(pr, i, true); err != nil {
					return err
				}
			}
			return nil
		}
		var pr packedRows
		if err := decode(k, a, x, &pr); err != nil {
			t.Fatal(err)
		}
		if pr.n != len(xs) || pr.seq == gaps {
			t.Fatalf("gaps %v: %d rows (seq %v), want %d", gaps, pr.n, pr.seq, len(xs))
		}
		if pr.version != c.version {
			t.Fatalf("block version %d, want %d", pr.version, c.version)
		}
		var view colView
		all := needCounters | needRouter | needIfs | needAS | needNameIDs | needAddrs
		if c.version >= 2 {
			if err := view.load(s, &pr, all); err != nil {
				t.Fatal(err)
			}
		}
		for i, x := range xs {
			j, ok := pr.index(ids[i])
			got, err := s.rowX(&pr, j, nil)
			if !ok || j != i || err != nil || !bytes.Equal(got, x) {
				t.Fatalf("%+v: row %d (id %d): index %d %v, x differs (%v)\n got %x\nwant %x", c, i, ids[i], j, ok, err, got, x)
			}
			_, l, r, _ := rawHead(x)
			if gl, gr := pr.addrs(j); gl != l || gr != r {
				t.Fatalf("%+v: row %d: addresses %v %v, want %v %v", c, i, gl, gr, l, r)
			}
			if c.version < 2 {
				continue
			}
			// The columnar read gives the fields of the row as decodeRaw
			// does (all but the address fields, duration, TCP flags and
			// post-NAT ports, which only whole rows have).
			var want, light decodedRow
			if err := decodeRaw(&want, ids[i], 5000, x); err != nil {
				t.Fatal(err)
			}
			view.fill(&pr, j, 5000, all, &light)
			w, g := want.Flow, light.Flow
			w.Start, w.TCPFlags, w.PostNATSrcPort, w.PostNATDstPort = g.End, 0, 0, 0
			w.SrcAddr, w.DstAddr, w.PostNATSrcAddr, w.PostNATDstAddr = netip.Addr{}, netip.Addr{}, netip.Addr{}, netip.Addr{}
			if g != w || light.expID != want.expID || light.names != want.names || light.local != want.local || light.remote != want.remote || light.t != want.t || light.id != want.id {
				t.Fatalf("%+v: row %d: columnar %+v, want %+v", c, i, light, want)
			}
		}
		if _, ok := pr.index(ids[len(ids)-1] + 1); ok {
			t.Fatal("an id after the block was found")
		}
		// Every truncation of each blob is an error; flipped bytes never
		// panic.
		blobs := [][]byte{k, a, x}
		for b := range blobs {
			c := blobs[b]
			for cut := 0; cut < len(c); cut += max(1, len(c)/50) {
				bad := slices.Clone(blobs)
				bad[b] = c[:cut]
				if err := decode(bad[0], bad[1], bad[2], &packedRows{}); err == nil {
					t.Fatalf("blob %d cut at %d of %d decoded", b, cut, len(c))
				}
			}
			for at := 1; at < len(c); at += 7 {
				bad := slices.Clone(blobs)
				bad[b] = bytes.Clone(c)
				bad[b][at] ^= 0x5a
				_ = decode(bad[0], bad[1], bad[2], &packedRows{}) // may pass (zstd cannot see every flip): no panic is the test
			}
		}
	}
}

// TestPackedBlockDamaged: a damaged block fails the queries that read it
// with a clear error, and the other partitions' rows are untouched.
func TestPackedBlockDamaged(t *testing.T) {
	s := openAt(t, t.TempDir(), testNow)
	s.packRows = 64
	ctx := context.Background()
	flows := packFlows(4, 2000, testNow, 20*time.Minute)
	writeDirect(t, s, flows)
	if err := s.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.closePartitions(ctx, testNow.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	packAll(t, s, testNow.Add(2*time.Hour))
	parts, err := s.rawPartitions(ctx, 0, 1<<62)
	if err != nil || len(parts) < 2 {
		t.Fatalf("%d partitions (%v)", len(parts), err)
	}
	// The first block of the fullest partition.
	bad := parts[0]
	var most int
	for _, p := range parts {
		var n int
		if err := s.r.QueryRow("SELECT n FROM " + packTable(p.name) + " WHERE lo = 1").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > most {
			bad, most = p, n
		}
	}
	if _, err := s.w.Exec("UPDATE " + packTable(bad.name) + " SET x = substr(x, 1, length(x) - 5) WHERE lo = 1"); err != nil {
		t.Fatal(err)
	}
	from, to := testNow.Add(-time.Hour), testNow.Add(time.Hour)
	var buf bytes.Buffer
	if err := s.ExportCSV(ctx, store.SearchQuery{From: from, To: to}, &buf); err == nil || !errors.Is(err, errBadBlock) || !strings.Contains(err.Error(), bad.name) {
		t.Fatalf("export over a damaged block: %v, want a damaged packed block error naming %s", err, bad.name)
	}
	// A top-N list reads the columns it needs, not x.
	top := store.TopQuery{From: from, To: to, Dimension: store.DimRemoteHost, Filter: store.Filter{Ports: []uint16{53}}, Resolution: store.ResRaw}
	if _, err := s.Top(ctx, top); err != nil {
		t.Fatalf("top over a block whose x is damaged: %v", err)
	}
	if _, err := s.w.Exec("UPDATE " + packTable(bad.name) + " SET k = substr(k, 1, length(k) - 5) WHERE lo = 1"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Top(ctx, top)
	if err == nil || !errors.Is(err, errBadBlock) || !strings.Contains(err.Error(), bad.name) {
		t.Fatalf("top over a damaged block: %v, want a damaged packed block error naming %s", err, bad.name)
	}
	// The partitions after it still answer.
	later := time.UnixMilli(bad.start + partitionSpan.Milliseconds()).UTC()
	if _, err := s.Top(ctx, store.TopQuery{From: later, To: to, Dimension: store.DimRemoteHost, Filter: store.Filter{Ports: []uint16{53}}, Resolution: store.ResRaw}); err != nil {
		t.Fatalf("top after the damaged partition: %v", err)
	}
}

// TestPackDuringSearches: searches and tops running while the packer
// moves rows into blocks see every row once.
func TestPackDuringSearches(t *testing.T) {
	s := openAt(t, t.TempDir(), testNow)
	s.packRows = 256
	ctx := context.Background()
	flows := packFlows(5, 20000, testNow, 25*time.Minute)
	writeDirect(t, s, flows)
	if err := s.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.closePartitions(ctx, testNow.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	from, to := testNow.Add(-time.Hour), testNow.Add(time.Hour)
	host := store.Filter{Hosts: []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32")}}
	dns := store.Filter{Ports: []uint16{53}}
	wantHost := len(brute(flows, from, to, host, true))
	var wantDNS uint64
	for _, f := range brute(flows, from, to, dns, false) {
		wantDNS += f.Scale(f.Bytes)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if i == 0 {
					p, err := s.SearchFlows(ctx, store.SearchQuery{From: from, To: to, Filter: host, Limit: 10000})
					if err == nil && len(p.Flows) != wantHost {
						err = fmt.Errorf("search found %d flows, want %d", len(p.Flows), wantHost)
					}
					if err != nil {
						errs <- err
						return
					}
					continue
				}
				top, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: store.DimRemoteHost, Filter: dns, Resolution: store.ResRaw})
				if err == nil && top.Total.Bytes != wantDNS {
					err = fmt.Errorf("top counted %d bytes, want %d", top.Total.Bytes, wantDNS)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for {
		n, err := s.packStep(ctx, testNow.Add(2*time.Hour), 3)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if rows, _ := rowsLeft(t, s); rows != 0 {
		t.Fatalf("%d rows left", rows)
	}
}

// TestPackerInRun: the writer's Run packs closed partitions in the
// background, and queries answer the same meanwhile and after.
func TestPackerInRun(t *testing.T) {
	s := openAt(t, t.TempDir(), testNow.Add(2*time.Hour))
	s.packRows = 100
	ctx := context.Background()
	from, to := testNow.Add(-time.Hour), testNow.Add(time.Hour)
	flows := packFlows(6, 3000, testNow, 20*time.Minute)
	writeDirect(t, s, flows)
	if err := s.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	deadline := time.Now().Add(time.Minute)
	for {
		rows, blocks := rowsLeft(t, s)
		if rows == 0 && blocks > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the packer left %d rows (%d blocks) after a minute", rows, blocks)
		}
		checkPackFilters(t, s, flows, from, to, "while packing")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkPackFilters(t, s, flows, from, to, "packed by Run")
}

// TestBlockBloom: every address of a block is in its filter, and about
// 3 % of others are (8 bits an address, 3 hashes).
func TestBlockBloom(t *testing.T) {
	var e packEncoder
	e.reset(1)
	in := map[uint64]bool{}
	for i := range 3000 {
		k := bloomHash(hostKey(netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)})))
		e.hosts = append(e.hosts, k, k) // duplicates count once
		in[k] = true
	}
	h := e.bloom()
	if len(h)*8 < 8*len(in) || len(h)*8 >= 16*len(in) {
		t.Fatalf("filter of %d bits for %d addresses", len(h)*8, len(in))
	}
	for k := range in {
		if !bloomHas(h, k) {
			t.Fatal("an address of the block is not in its filter")
		}
	}
	var fp int
	const probes = 20000
	for i := range probes {
		if bloomHas(h, bloomHash(hostKey(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})))) {
			fp++
		}
	}
	if rate := float64(fp) / probes; rate > 0.06 {
		t.Fatalf("false positive rate %.3f, want about 0.03", rate)
	}
	if !bloomHas(h[:100], 1) {
		t.Fatal("a damaged filter must let everything through")
	}
}

// TestPackDamagedRow: a damaged row stops the packing of its partition
// only; the failure is counted and shown in Health until the partition is
// packed, and the partition is tried again after packRetry.
func TestPackDamagedRow(t *testing.T) {
	s := openAt(t, t.TempDir(), testNow)
	s.packRows = 64
	ctx := context.Background()
	flows := packFlows(7, 2000, testNow, 20*time.Minute)
	writeDirect(t, s, flows)
	if err := s.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.closePartitions(ctx, testNow.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	parts, err := s.rawPartitions(ctx, 0, 1<<62)
	if err != nil || len(parts) < 3 {
		t.Fatalf("%d partitions (%v)", len(parts), err)
	}
	bad := parts[1].name
	if _, err := s.w.Exec("UPDATE " + bad + " SET x = x'00' WHERE id = 5"); err != nil {
		t.Fatal(err)
	}
	now := testNow.Add(2 * time.Hour)
	n, err := s.packStep(ctx, now, 1000)
	if err == nil || !strings.Contains(err.Error(), bad) || n == 0 {
		t.Fatalf("packed %d blocks, error %v: want the others packed and an error naming %s", n, err, bad)
	}
	s.notePack(err)
	if h := s.Health(); h.PackErrors != 1 || !strings.Contains(h.PackError, bad) || !h.OK {
		t.Fatalf("health after a failed pack: %+v", h)
	}
	// Until its retry, the partition is left alone and its error shown.
	n, err = s.packStep(ctx, now.Add(time.Minute), 1000)
	s.notePack(err)
	if h := s.Health(); err != nil || n != 0 || h.PackErrors != 1 || h.PackError == "" {
		t.Fatalf("before the retry: %d blocks, %v, health %+v", n, err, s.Health())
	}
	// Repaired (here: the row deleted), it is packed at its retry and the
	// error goes.
	if _, err := s.w.Exec("DELETE FROM " + bad + " WHERE id = 5"); err != nil {
		t.Fatal(err)
	}
	n, err = s.packStep(ctx, now.Add(packRetry+time.Minute), 1000)
	s.notePack(err)
	if h := s.Health(); err != nil || n == 0 || h.PackError != "" || h.PackErrors != 1 {
		t.Fatalf("after the retry: %d blocks, %v, health %+v", n, err, h)
	}
	if rows, _ := rowsLeft(t, s); rows != 0 {
		t.Fatalf("%d rows left", rows)
	}
}

// testDict interns the addresses it holds.
type testDict map[netip.Addr]uint64

func (d testDict) addrID(a netip.Addr) (uint64, bool) {
	id, ok := d[a]
	return id, ok && a.IsValid()
}

// TestColumnarReads: series and top-N lists read from the columns of
// version 2 blocks (decoding only what they need) give exactly what whole
// rows give, for every dimension and grouping and with filters on every
// field, over partitions holding version 1 blocks (flowbox 0.7), version
// 2 blocks and rows together.
func TestColumnarReads(t *testing.T) {
	s := openAt(t, t.TempDir(), testNow)
	s.packRows = 128
	ctx := context.Background()
	flows := packFlows(11, 6000, testNow, 30*time.Minute)
	for i := range flows {
		f := &flows[i]
		f.InIf, f.OutIf = uint32(i%5), uint32(i%3+7)
		f.SrcAS, f.DstAS = uint32(64500+i%4), uint32(i%3*15169)
		if i%9 == 0 {
			f.SamplingRate = 100
		}
		if i%4 == 0 {
			f.RemoteDomain = "example.com"
		}
	}
	writeDirect(t, s, flows[:3000])
	if err := s.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	s.pk.enc.version = 1 // blocks as flowbox 0.7 wrote them
	if n := packAll(t, s, testNow); n == 0 {
		t.Fatal("nothing packed")
	}
	s.pk.enc.version = packVersion
	writeDirect(t, s, flows[3000:5000])
	if err := s.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	if n := packAll(t, s, testNow); n == 0 {
		t.Fatal("nothing packed in version 2")
	}
	writeDirect(t, s, flows[5000:]) // rows
	var v1, v2 int
	parts, err := s.rawPartitions(ctx, 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		var a, b int
		if err := s.r.QueryRow("SELECT count(*) FILTER (WHERE substr(k, 1, 1) = x'01'), count(*) FILTER (WHERE substr(k, 1, 1) = x'02') FROM "+packTable(p.name)).Scan(&a, &b); err != nil && !isNoTable(err) {
			t.Fatal(err)
		}
		v1, v2 = v1+a, v2+b
	}
	if rows, _ := rowsLeft(t, s); v1 == 0 || v2 == 0 || rows == 0 {
		t.Fatalf("%d version 1 blocks, %d version 2, %d rows: want all three", v1, v2, rows)
	}

	from, to := testNow.Add(-40*time.Minute), testNow.Add(time.Minute)
	one := func(s string) []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix(s)} }
	filters := map[string]store.Filter{
		"none":        {},
		"dns":         {Ports: []uint16{53}},
		"udp up":      {Protocols: []uint8{17}, Directions: []store.Direction{store.DirUpload}},
		"router":      {Sources: []int64{1}},
		"exporter":    {Sources: []int64{-1}},
		"interface":   {Interfaces: []uint32{3}},
		"as":          {AS: []uint32{15169}},
		"country":     {Countries: []string{"FR"}},
		"application": {Applications: []string{"netflix", ""}, Ports: []uint16{443}},
		"subscriber":  {Subscribers: []string{"sub-1"}},
		"domain":      {Domains: []string{"example.com"}},
		"host":        {Hosts: one("100.64.0.1/32")},
		"remote cidr": {RemoteHosts: one("1.0.0.0/8"), Protocols: []uint8{6}},
	}
	type answer struct {
		tops   []*store.TopResult
		series []*store.Series
	}
	run := func(flt store.Filter) answer {
		var a answer
		for _, d := range store.Dimensions() {
			for _, m := range []store.Metric{store.MetricBytes, store.MetricFlows} {
				top, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: d, Metric: m, N: 20, Filter: flt, Resolution: store.ResRaw})
				if err != nil {
					t.Fatal(err)
				}
				a.tops = append(a.tops, top)
			}
		}
		for _, g := range []store.Dimension{0, store.DimRouter, store.DimDirection, store.DimInInterface, store.DimOutInterface} {
			ser, err := s.TimeSeries(ctx, store.SeriesQuery{From: from, To: to, Step: time.Minute, GroupBy: g, Filter: flt, Resolution: store.ResRaw})
			if err != nil {
				t.Fatal(err)
			}
			a.series = append(a.series, ser)
		}
		return a
	}
	// Raw top-N lists of the dimensions with few keys (every key kept in
	// the rollups) agree with the rollups, which key flows their own way.
	if err := s.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range []store.Dimension{store.DimCountry, store.DimApplication, store.DimDomain, store.DimProtocol, store.DimRemoteAS} {
		raw, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: d, N: 50, Resolution: store.ResRaw})
		if err != nil {
			t.Fatal(err)
		}
		rolled, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: d, N: 50})
		if err != nil || rolled.Resolution == store.ResRaw {
			t.Fatalf("%s: rollup top %v (%v)", d, rolled.Resolution, err)
		}
		if len(raw.Entries) < 2 || len(raw.Entries) != len(rolled.Entries) {
			t.Fatalf("%s: %d raw entries, %d from the rollups", d, len(raw.Entries), len(rolled.Entries))
		}
		for i := range raw.Entries {
			if a, b := raw.Entries[i], rolled.Entries[i]; a.Label != b.Label || a.Bytes != b.Bytes || a.Flows != b.Flows {
				t.Fatalf("%s: raw entry %d %+v, rollups %+v", d, i, a, b)
			}
		}
	}
	for name, flt := range filters {
		s.wholeRows = true
		want := run(flt)
		s.wholeRows = false
		got := run(flt)
		if want.tops[0].Total.Flows == 0 && name != "exporter" {
			t.Fatalf("%s: no flow passes: the test data has none", name)
		}
		for i := range want.tops {
			if !reflect.DeepEqual(got.tops[i], want.tops[i]) {
				t.Fatalf("%s: top %s: columnar\n%+v\nwant\n%+v", name, want.tops[i].Dimension, got.tops[i], want.tops[i])
			}
		}
		for i := range want.series {
			if !reflect.DeepEqual(got.series[i], want.series[i]) {
				t.Fatalf("%s: series %d: columnar\n%+v\nwant\n%+v", name, i, got.series[i], want.series[i])
			}
		}
	}
}

// TestRowPreExact: a filter is exact on the key and address columns
// (rowPre.exact: its rows are not checked again) only when it has no
// field but those; a field added to store.Filter fails this test until
// rowPre knows it.
func TestRowPreExact(t *testing.T) {
	exact := map[string]bool{"Protocols": true, "Directions": true, "Ports": true, "Hosts": true, "LocalHosts": true, "RemoteHosts": true}
	known := map[string]bool{"Sources": true, "Interfaces": true, "AS": true, "Applications": true, "Countries": true, "Subscribers": true, "Domains": true}
	typ := reflect.TypeFor[store.Filter]()
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		if !exact[name] && !known[name] {
			t.Fatalf("store.Filter has a field %s that newRowPre does not know", name)
		}
		var f store.Filter
		v := reflect.ValueOf(&f).Elem().Field(i)
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		if got := newRowPre(&f, 0, 1, 0).exact; got != exact[name] {
			t.Errorf("a filter on %s: exact %v, want %v", name, got, exact[name])
		}
	}
	if !newRowPre(&store.Filter{}, 0, 1, 0).exact {
		t.Error("no filter is not exact")
	}
}
