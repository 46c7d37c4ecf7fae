package testutil

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flowbox/flowbox/routeros/routerostest"
)

// fakeTB records what a helper reports instead of ending the test.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper()                        {}
func (f *fakeTB) Fatalf(format string, a ...any) { f.fatal = fmt.Sprintf(format, a...) }
func (f *fakeTB) Skipf(format string, a ...any)  { f.skip = fmt.Sprintf(format, a...) }

func TestCapturesDir(t *testing.T) {
	dir := CapturesDir(t) // the corpus is beside this repository
	if _, err := os.Stat(filepath.Join(dir, "logstash-codec-netflow", "netflow5-mikrotik.pcap")); err != nil {
		t.Errorf("CapturesDir = %s: %v", dir, err)
	}

	// From a module without the corpus beside it: a skip, or a failure
	// in functional mode.
	root := filepath.Join(t.TempDir(), "repo")
	if err := os.MkdirAll(filepath.Join(root, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(filepath.Join(root, "a", "b"))
	if p, err := CapturesPath(); err != nil || p != filepath.Join("..", "..", "..", "shared", "captures") {
		t.Errorf("CapturesPath = %q, %v", p, err)
	}
	t.Setenv(FunctionalEnv, "")
	f := &fakeTB{TB: t}
	CapturesDir(f)
	if f.fatal != "" || !strings.Contains(f.skip, "capture corpus ../../../shared/captures is absent") {
		t.Errorf("without the corpus: fatal %q, skip %q", f.fatal, f.skip)
	}
	t.Setenv(FunctionalEnv, "1")
	f = &fakeTB{TB: t}
	CapturesDir(f)
	if f.skip != "" || !strings.Contains(f.fatal, "FLOWBOX_FUNCTIONAL_TESTS=1") {
		t.Errorf("functional, without the corpus: fatal %q, skip %q", f.fatal, f.skip)
	}
	// A file in place of the directory is no corpus either.
	if err := os.MkdirAll(filepath.Join(root, "..", "shared"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "..", "shared", "captures"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f = &fakeTB{TB: t}
	CapturesDir(f)
	if !strings.Contains(f.fatal, "not a directory") {
		t.Errorf("a file for a corpus: fatal %q", f.fatal)
	}
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				fmt.Fprint(&b, "x")
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := len(b.String()); n != 800 {
		t.Errorf("%d bytes, want 800", n)
	}
}

func TestWaitFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		start := time.Now()
		WaitFor(t, time.Second, "the third call", func() (bool, string) {
			calls++
			return calls == 3, ""
		})
		if calls != 3 || time.Since(start) != 3*time.Millisecond {
			t.Errorf("%d calls over %v, want 3 over 3ms (1 ms, then 2)", calls, time.Since(start))
		}

		// On timeout it names what it waited for and the last state, and
		// polls up to the deadline.
		f := &fakeTB{TB: t}
		calls = 0
		start = time.Now()
		WaitFor(f, 10*time.Second, "five datagrams", func() (bool, string) {
			calls++
			return false, fmt.Sprintf("%d received", calls)
		})
		want := fmt.Sprintf("timed out after 10s waiting for five datagrams; last state: %d received", calls)
		if f.fatal != want || time.Since(start) != 10*time.Second {
			t.Errorf("failure %q after %v, want %q after 10s", f.fatal, time.Since(start), want)
		}
		if calls < 100 || calls > 110 {
			t.Errorf("%d polls in 10s, want about 100 (a pause of a hundredth of the timeout)", calls)
		}
		for timeout, want := range map[time.Duration]time.Duration{
			time.Second: 10 * time.Millisecond, 10 * time.Millisecond: time.Millisecond, time.Hour: maxPoll} {
			if got := pollCap(timeout); got != want {
				t.Errorf("pollCap(%v) = %v, want %v", timeout, got, want)
			}
		}
	})
}

func TestUDPSink(t *testing.T) {
	s := NewUDPSink(t)
	if !s.Addr().Addr().IsLoopback() || s.Addr().Port() == 0 {
		t.Fatalf("sink at %s", s.Addr())
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range []string{"one", "two", "three"} {
		if _, err := c.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	got := s.Wait(t, 3)
	from := c.LocalAddr().(*net.UDPAddr).AddrPort()
	if len(got) != 3 || string(got[0].Data) != "one" || string(got[2].Data) != "three" || got[1].From != from {
		t.Errorf("received %+v from %s", got, from)
	}
	if s.Len() != 3 || len(s.Datagrams()) != 3 {
		t.Errorf("Len %d, Datagrams %d", s.Len(), len(s.Datagrams()))
	}
}

func TestStartRouter(t *testing.T) {
	s := StartRouter(t, routerostest.V7("edge"))
	ap, err := netip.ParseAddrPort(s.Addr())
	if err != nil || !ap.Addr().IsLoopback() {
		t.Fatalf("router at %q: %v", s.Addr(), err)
	}
	c, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("router not listening: %v", err)
	}
	c.Close()
}
