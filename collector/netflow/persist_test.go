package netflow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

// TestTemplateFileRestart: a collector decodes the template message of the
// RouterOS 6.39.2 capture, saves its templates and stops; a new decoder
// loads the file and decodes the capture's first data message, as the
// first would have.
func TestTemplateFileRestart(t *testing.T) {
	dgs := readCapture(t, filepath.Join(testutil.CapturesDir(t), "logstash-codec-netflow", "ipfix-mikrotik-routeros-6-39-2.pcap"))
	before := New(DefaultConfig())
	if f, err := before.Decode(nil, dgs[0].from, dgs[0].payload, dgs[0].time); err != nil || len(f) != 0 {
		t.Fatalf("template message: %d flows, %v", len(f), err)
	}
	path := filepath.Join(t.TempDir(), "templates")
	if err := SaveTemplateFile(path, before); err != nil {
		t.Fatal(err)
	}
	after := New(DefaultConfig())
	n, err := LoadTemplateFile(path, dgs[1].time, after)
	if err != nil || n != 2 {
		t.Fatalf("loaded %d templates, %v; want 2", n, err)
	}
	got, err := after.Decode(nil, dgs[1].from, dgs[1].payload, dgs[1].time)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := before.Decode(nil, dgs[1].from, dgs[1].payload, dgs[1].time)
	if len(got) != 28 || len(got) != len(want) {
		t.Fatalf("after the restart: %d flows, want 28", len(got))
	}
	for i := range got {
		if toGolden(&got[i]) != toGolden(&want[i]) {
			t.Errorf("flow %d:\n got %+v\nwant %+v", i, toGolden(&got[i]), toGolden(&want[i]))
		}
	}
	s := statsOf(t, after, dgs[1].from)
	if s.Templates != 2 || s.Restarts != 0 || !s.LastTemplate.Equal(dgs[0].time.Truncate(time.Millisecond)) {
		t.Errorf("stats after loading %+v", s)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file %v, %v", fi, err)
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
}

var exporterV6 = netip.MustParseAddrPort("[2001:db8::7]:2055")

// withTemplates returns a decoder holding v9 and IPFIX templates and
// options templates (variable-length and enterprise fields included) of an
// IPv4 and an IPv6 exporter, in three domains, and a datagram of data for
// each data template.
func withTemplates(t *testing.T) (*Decoder, []datagram) {
	t.Helper()
	d := New(DefaultConfig())
	dec(t, d, exporterA, v9Packet(10, secs, 0, 0, set(0, 0, tmpl(300, v9Simple...)),
		set(1, 2, v9OptTmpl(257, []fld{{1, 4, 0}}, []fld{{48, 1, 0}, {34, 4, 0}}))), tNow)
	dec(t, d, exporterA, v9Packet(10, secs, 0, 5, set(0, 0, tmpl(300, routerOSv9Fields...))), tNow)
	dec(t, d, exporterV6, ipfixMessage(secs, 0, 3, set(2, 0, tmpl(258, mikrotikIPFIXFields...), tmpl(400, fld{1, 4, 0}, fld{82, varLen, 0}, fld{100, 4, 6871})),
		set(3, 0, ipfixOptTmpl(600, []fld{{143, 4, 0}}, []fld{{160, 8, 0}}))), tNow)
	data := []datagram{
		{exporterA, tNow, v9Packet(10, secs, 1, 0, set(300, 0, v9SimpleRec(1, 2, 3)))},
		{exporterA, tNow, v9Packet(10, secs, 1, 5, set(300, 0, routerOSv9Record(1, 10)))},
		{exporterV6, tNow, ipfixMessage(secs, 0, 3, set(258, 0, mikrotikIPFIXRecord(4)), set(400, 0, cat(u(4, 9), []byte{3}, []byte("eth"), u(4, 1))))},
	}
	return d, data
}

func TestTemplateFileRoundTrip(t *testing.T) {
	d, data := withTemplates(t)
	b := d.AppendTemplates(nil)
	e := New(DefaultConfig())
	n, err := e.LoadTemplates(b, tNow)
	if err != nil || n != 6 {
		t.Fatalf("loaded %d, %v; want 6", n, err)
	}
	if !bytes.Equal(e.AppendTemplates(nil), b) {
		t.Error("saving the loaded templates gives other bytes")
	}
	if err := e.checkInvariants(); err != nil {
		t.Error(err)
	}
	if n, err := e.LoadTemplates(b, tNow); err != nil || n != 0 {
		t.Errorf("loaded again: %d, %v; want 0 (nothing newer)", n, err)
	}
	for i, g := range data {
		want := dec(t, d, g.from, g.payload, g.time)
		got := dec(t, e, g.from, g.payload, g.time)
		if len(got) == 0 || len(got) != len(want) {
			t.Fatalf("datagram %d: %d flows, want %d", i, len(got), len(want))
		}
		for j := range got {
			if toGolden(&got[j]) != toGolden(&want[j]) {
				t.Errorf("datagram %d flow %d:\n got %+v\nwant %+v", i, j, toGolden(&got[j]), toGolden(&want[j]))
			}
		}
	}
}

// TestTemplateFileMerge: the collector's readers each save their decoder
// into one file, and each loads all of it; of one template saved twice,
// the most recent definition wins.
func TestTemplateFileMerge(t *testing.T) {
	r1 := New(DefaultConfig())
	r2 := New(DefaultConfig())
	dec(t, r1, exporterA, ipfixMessage(secs, 0, 0, set(2, 0, tmpl(256, fld{1, 4, 0}))), tNow)
	dec(t, r2, exporterB, ipfixMessage(secs, 0, 0, set(2, 0, tmpl(256, fld{2, 4, 0}))), tNow)
	// A's template 257 as r1 saw it, then redefined later as r2 saw it.
	dec(t, r1, exporterA, ipfixMessage(secs, 0, 0, set(2, 0, tmpl(257, fld{1, 4, 0}))), tNow)
	dec(t, r2, exporterA, ipfixMessage(secs, 0, 0, set(2, 0, tmpl(257, fld{2, 4, 0}))), tNow.Add(time.Second))
	path := filepath.Join(t.TempDir(), "templates")
	if err := SaveTemplateFile(path, r1, r2); err != nil {
		t.Fatal(err)
	}
	n1, n2 := New(DefaultConfig()), New(DefaultConfig())
	if n, err := LoadTemplateFile(path, tNow.Add(time.Minute), n1, n2); err != nil || n != 3 {
		t.Fatalf("loaded %d, %v; want 3", n, err)
	}
	for _, d := range []*Decoder{n1, n2} {
		if s := d.Summary(); s.Templates != 3 || s.Exporters != 2 {
			t.Errorf("summary %+v", s)
		}
		f := dec(t, d, exporterA, ipfixMessage(secs, 0, 0, set(256, 0, u(4, 5)), set(257, 0, u(4, 6))), tNow.Add(time.Minute))
		if len(f) != 2 || f[0].Bytes != 5 || f[1].Packets != 6 || f[1].Bytes != 0 {
			t.Errorf("exporter A: %+v", f)
		}
		f = dec(t, d, exporterB, ipfixMessage(secs, 0, 0, set(256, 0, u(4, 7))), tNow.Add(time.Minute))
		if len(f) != 1 || f[0].Packets != 7 {
			t.Errorf("exporter B: %+v", f)
		}
	}
}

// TestTemplateFileBad: a corrupted, truncated, unknown-version or foreign
// input is refused with an error saying so, and loads nothing, even when
// the fault is in a later block.
func TestTemplateFileBad(t *testing.T) {
	d, _ := withTemplates(t)
	good := d.AppendTemplates(nil)
	two := d.AppendTemplates(bytes.Clone(good))
	check := func(name string, b []byte, want string) {
		t.Helper()
		e := New(DefaultConfig())
		n, err := e.LoadTemplates(b, tNow)
		if !errors.Is(err, ErrTemplateFile) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want ErrTemplateFile saying %q", name, err, want)
		}
		if s := e.Summary(); n != 0 || s.Templates != 0 || s.Exporters != 0 {
			t.Errorf("%s: %d loaded, summary %+v", name, n, s)
		}
	}
	for i := range len(two) {
		b := bytes.Clone(two)
		b[i] ^= 0x40
		check("byte "+strconv.Itoa(i)+" changed", b, "block at byte")
	}
	for i := 1; i < len(two); i++ {
		if i == len(good) {
			continue // exactly one block: valid
		}
		check("cut at "+strconv.Itoa(i), two[:i], "block at byte")
	}
	v2 := bytes.Clone(good)
	v2[4] = 2
	binary.BigEndian.PutUint32(v2[len(v2)-4:], crc32.Checksum(v2[:len(v2)-4], castagnoli))
	check("version 2", v2, "unknown version 2")
	check("not templates", []byte("# flowbox configuration, not templates\n"), "not saved templates")
	check("checksum", append(bytes.Clone(good[:len(good)-4]), 0, 0, 0, 0), "corrupted")
	check("garbage after a block", append(bytes.Clone(good), 1, 2, 3), "block at byte "+strconv.Itoa(len(good)))

	// A file with such content: an error naming the file, nothing loaded.
	path := filepath.Join(t.TempDir(), "templates")
	if err := WriteTemplateFile(path, good[:len(good)-1]); err != nil {
		t.Fatal(err)
	}
	e := New(DefaultConfig())
	if n, err := LoadTemplateFile(path, tNow, e); n != 0 || !errors.Is(err, ErrTemplateFile) || !strings.Contains(err.Error(), path) {
		t.Errorf("load of a truncated file: %d, %v", n, err)
	}
	// No file yet: nothing to load, no error.
	if n, err := LoadTemplateFile(filepath.Join(t.TempDir(), "none"), tNow, e); n != 0 || err != nil {
		t.Errorf("load of a missing file: %d, %v", n, err)
	}
	if err := SaveTemplateFile(filepath.Join(t.TempDir(), "no", "such", "dir"), d); err == nil {
		t.Error("save into a missing directory succeeded")
	}
}

// TestTemplateFileExpiry: a saved template keeps its update time: loaded
// after TemplateTTL it is skipped; with NoExpiry it is kept; an update
// time after now (the saving host's clock was ahead) counts as now.
func TestTemplateFileExpiry(t *testing.T) {
	d, _ := withTemplates(t)
	b := d.AppendTemplates(nil)
	if n, err := New(DefaultConfig()).LoadTemplates(b, tNow.Add(31*time.Minute)); err != nil || n != 0 {
		t.Errorf("after the TTL: loaded %d, %v", n, err)
	}
	cfg := DefaultConfig()
	cfg.TemplateTTL = NoExpiry
	if n, err := New(cfg).LoadTemplates(b, tNow.Add(1000*time.Hour)); err != nil || n != 6 {
		t.Errorf("NoExpiry: loaded %d, %v", n, err)
	}
	e := New(DefaultConfig())
	if n, err := e.LoadTemplates(b, tNow.Add(-time.Hour)); err != nil || n != 6 {
		t.Fatalf("saved in the future: loaded %d, %v", n, err)
	}
	f := dec(t, e, exporterA, v9Packet(10, secs, 1, 0, set(300, 0, v9SimpleRec(1, 2, 3))), tNow.Add(-time.Hour+29*time.Minute))
	if len(f) != 1 {
		t.Errorf("29 min after loading: %d flows", len(f))
	}
	f = dec(t, e, exporterA, v9Packet(10, secs, 2, 0, set(300, 0, v9SimpleRec(1, 2, 3))), tNow.Add(-time.Hour+31*time.Minute))
	if len(f) != 0 {
		t.Errorf("31 min after loading: %d flows, the template should have expired", len(f))
	}
}

// FuzzLoadTemplates: arbitrary input either loads nothing and says why, or
// loads templates that keep the decoder consistent and that it saves back
// to a block loading the same.
func FuzzLoadTemplates(f *testing.F) {
	d := New(DefaultConfig())
	tp, _ := benchPackets(9)
	d.Decode(nil, exporterA, tp, tNow)
	tp, _ = benchPackets(10)
	d.Decode(nil, exporterB, tp, tNow)
	f.Add(d.AppendTemplates(nil))
	f.Add(d.AppendTemplates(d.AppendTemplates(nil)))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg := DefaultConfig()
		cfg.MaxTemplates, cfg.MaxTemplatesPerDomain, cfg.MaxExporters = 8, 3, 2
		d := New(cfg)
		n, err := d.LoadTemplates(b, tNow)
		if err != nil {
			if !errors.Is(err, ErrTemplateFile) || n != 0 || d.Summary().Templates != 0 {
				t.Fatalf("err %v, %d loaded, %+v", err, n, d.Summary())
			}
			return
		}
		if err := d.checkInvariants(); err != nil {
			t.Fatal(err)
		}
		e := New(cfg)
		if _, err := e.LoadTemplates(d.AppendTemplates(nil), tNow); err != nil {
			t.Fatal(err)
		}
		if e.Summary().Templates != d.Summary().Templates {
			t.Fatalf("%d templates, reloaded %d", d.Summary().Templates, e.Summary().Templates)
		}
		var flows []store.Flow
		for _, from := range []netip.AddrPort{exporterA, exporterB} {
			_, dp := benchPackets(9)
			flows, _ = d.Decode(flows[:0], from, dp, tNow)
		}
	})
}
