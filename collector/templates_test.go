package collector

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/internal/testutil"
)

// TestTemplatesSurviveRestart: a collector learns an exporter's v9
// templates and saves them when it stops; the next collector on the same
// template file decodes the exporter's first data packets (which carry no
// template) at once, none of them waiting.
func TestTemplatesSurviveRestart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "templates.bin")
	cfg := testConfig()
	cfg.BatchSize = 1
	cfg.BatchAge = 10 * time.Millisecond
	enc, err := netflowtest.NewEncoder(netflowtest.EncoderConfig{Version: netflowtest.V9, BootTime: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	enc.SetTemplateSchedule(1000, time.Hour) // templates in the first packet only
	first, n1 := encodePackets(t, enc, 2)
	later, n2 := encodePackets(t, enc, 3)

	start := func(sink *memSink) *running {
		t.Helper()
		r := startCollectorFile(t, cfg, sink, file)
		return r
	}
	sink1 := &memSink{}
	r1 := start(sink1)
	s := newSender(t, "127.0.0.2:0")
	s.send(t, r1.addr(t, 0), first)
	waitReceived(t, r1, len(first))
	r1.stop(t)
	if got := len(sink1.snapshot()); got != n1 {
		t.Fatalf("first run stored %d flows, want %d", got, n1)
	}

	sink2 := &memSink{}
	r2 := start(sink2)
	s.send(t, r2.addr(t, 0), later)
	testutil.WaitFor(t, 10*time.Second, "the data packets decoded with the saved templates", func() (bool, string) {
		return len(sink2.snapshot()) == n2, fmt.Sprintf("%d of %d flows, exporters %+v", len(sink2.snapshot()), n2, r2.c.Exporters())
	})
	if st := r2.c.Exporters(); len(st) != 1 || st[0].PendingNoTmpl != 0 {
		t.Errorf("data waited for a template after the restart: %+v", st)
	}
	r2.stop(t)
	if m := metric(t, r2.reg, "flowbox_collector_template_file_writes_total"); m < 1 {
		t.Errorf("template file writes = %v", m)
	}
}

// TestTemplateFileCorrupt: a damaged template file is reported and
// ignored; the collector starts and counts the error.
func TestTemplateFileCorrupt(t *testing.T) {
	file := filepath.Join(t.TempDir(), "templates.bin")
	if err := writeFile(file, []byte("not a template file")); err != nil {
		t.Fatal(err)
	}
	r := startCollectorFile(t, testConfig(), &memSink{}, file)
	if m := metric(t, r.reg, "flowbox_collector_template_file_errors_total"); m != 1 {
		t.Errorf("template file errors = %v, want 1", m)
	}
}

// startCollectorFile is startCollector with a template file.
func startCollectorFile(t testing.TB, cfg Config, ins inserter, file string) *running {
	t.Helper()
	return startCollectorWith(t, cfg, ins, Deps{TemplateFile: file})
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o600) }
