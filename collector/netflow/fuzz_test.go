package netflow

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

// FuzzDecode feeds arbitrary datagrams to a decoder with small bounds. The
// seed corpus is every UDP payload of the capture corpus plus hand-built
// datagrams. Each input is decoded three times (from two exporters, with
// time moving on) so that templates it defines meet its data sets.
// Invariants: no panic, errors are *Error with a known reason, the template
// cache and the pending queues stay within their bounds, and the flows are
// bounded by the input size.
func FuzzDecode(f *testing.F) {
	// Seeds from the corpus only when it is there.
	if dir, err := testutil.CapturesPath(); err == nil {
		_ = filepath.WalkDir(dir, func(path string, de os.DirEntry, err error) error {
			if err != nil || !strings.HasSuffix(path, ".pcap") {
				return err
			}
			for _, g := range readCapture(f, path) {
				f.Add(g.payload)
			}
			return nil
		})
	}
	for _, v := range []int{9, 10} {
		tp, dp := benchPackets(v)
		f.Add(tp)
		f.Add(dp)
		f.Add(append(slices.Clone(tp), dp[ipfixHeaderLen:]...))
	}
	f.Add(ipfixMessage(secs, 0, 0, set(2, 0, tmpl(256, fld{1, 4, 0}, fld{82, varLen, 0}, fld{100, 4, 6871})), set(256, 0, cat(u(4, 1), []byte{255, 0, 3}, []byte("abc"), u(4, 0)))))
	f.Add(ipfixMessage(secs, 0, 0, set(3, 0, ipfixOptTmpl(300, []fld{{302, 2, 0}}, []fld{{305, 4, 0}, {306, 4, 0}, {160, 8, 0}}))))
	f.Add(v9Packet(10, secs, 0, 0, set(1, 2, v9OptTmpl(257, []fld{{1, 4, 0}}, []fld{{48, 1, 0}, {34, 4, 0}}))))

	cfg := Config{TemplateTTL: time.Minute, MaxTemplates: 8, MaxTemplatesPerDomain: 3, MaxPending: 4, PendingTTL: time.Minute, MaxPendingBytes: 4096, MaxExporters: 2}
	f.Fuzz(func(t *testing.T, b []byte) {
		d := New(cfg)
		var flows []store.Flow
		for i, from := range []struct {
			e   int
			now time.Duration
		}{{0, 0}, {1, 0}, {0, 30 * time.Second}} {
			exp := exporterA
			if from.e == 1 {
				exp = exporterB
			}
			before := len(flows)
			var err error
			flows, err = d.Decode(flows, exp, b, tNow.Add(from.now))
			if err != nil {
				var de *Error
				if !errors.As(err, &de) || !slices.Contains(Reasons, de.Reason) || de.Offset < 0 || de.Offset > len(b) {
					t.Fatalf("decode %d: bad error %#v", i, err)
				}
			}
			// Every record takes at least one byte of this datagram or of
			// a waiting copy (bounded by MaxPendingBytes).
			if n := len(flows) - before; n > len(b)+cfg.MaxPendingBytes {
				t.Fatalf("decode %d: %d flows from %d bytes", i, n, len(b))
			}
			if err := d.checkInvariants(); err != nil {
				t.Fatalf("decode %d: %v", i, err)
			}
			if d.templates > cfg.MaxTemplates {
				t.Fatalf("%d templates, bound %d", d.templates, cfg.MaxTemplates)
			}
			total := 0
			for _, e := range d.exporters {
				if len(e.pending) > cfg.MaxPending {
					t.Fatalf("%d pending sets, bound %d", len(e.pending), cfg.MaxPending)
				}
				for _, p := range e.pending {
					total += len(p.data)
				}
			}
			if total != d.pendingBytes || total > cfg.MaxPendingBytes {
				t.Fatalf("pending bytes %d (accounted %d), bound %d", total, d.pendingBytes, cfg.MaxPendingBytes)
			}
			if len(d.exporters) > cfg.MaxExporters {
				t.Fatalf("%d exporters", len(d.exporters))
			}
		}
		for i := range flows {
			if flows[i].End < flows[i].Start {
				t.Fatalf("flow %d ends before it starts", i)
			}
		}
	})
}
