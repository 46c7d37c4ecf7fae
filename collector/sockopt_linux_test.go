//go:build linux

package collector

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flowbox/flowbox/internal/testutil"
)

// cmsg builds one control message as the kernel lays it out.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	if unix.SizeofCmsghdr == 16 {
		binary.NativeEndian.PutUint64(b[0:8], uint64(unix.CmsgLen(len(data))))
	} else {
		binary.NativeEndian.PutUint32(b[0:4], uint32(unix.CmsgLen(len(data))))
	}
	binary.NativeEndian.PutUint32(b[unix.SizeofCmsghdr-8:], uint32(level))
	binary.NativeEndian.PutUint32(b[unix.SizeofCmsghdr-4:], uint32(typ))
	copy(b[unix.SizeofCmsghdr:], data)
	return b
}

func TestParseRxqOvfl(t *testing.T) {
	drops := binary.NativeEndian.AppendUint32(nil, 1234)
	other := cmsg(unix.SOL_IP, unix.IP_TTL, []byte{64, 0, 0, 0})
	cases := []struct {
		name string
		oob  []byte
		want uint32
		ok   bool
	}{
		{"alone", cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, drops), 1234, true},
		{"after another", append(append([]byte(nil), other...), cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, drops)...), 1234, true},
		{"absent", other, 0, false},
		{"empty", nil, 0, false},
		{"truncated header", cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, drops)[:8], 0, false},
		{"truncated data", cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, drops)[:unix.SizeofCmsghdr+2], 0, false},
		{"length too small", func() []byte {
			b := cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, drops)
			b[0] = 1
			if unix.SizeofCmsghdr == 16 {
				binary.NativeEndian.PutUint64(b, 1)
			}
			return b
		}(), 0, false},
	}
	for _, c := range cases {
		got, ok := parseRxqOvfl(c.oob)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: parseRxqOvfl = %d, %v; want %d, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

func TestParseProcUDP(t *testing.T) {
	const proc = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 0100007F:0807 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17
  124: 0100007F:0808 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4343 2 0000000000000000 0
  125: garbage
  126: 0100007F:0809 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4444 2 0000000000000000 notanumber
`
	want := map[uint64]uint64{4242: 0, 4343: 5, 4444: 9, 9999: 3}
	if err := parseProcUDP(bufio.NewScanner(strings.NewReader(proc)), want); err != nil {
		t.Fatal(err)
	}
	for inode, v := range map[uint64]uint64{4242: 17, 4343: 0, 4444: 9, 9999: 3} {
		if want[inode] != v {
			t.Errorf("inode %d: drops %d, want %d", inode, want[inode], v)
		}
	}
}

// TestKernelDrops overflows a minimal socket buffer with a burst: every
// datagram sent is either received or counted as a kernel drop, on
// loopback where nothing else loses datagrams.
func TestKernelDrops(t *testing.T) {
	cfg := testConfig()
	cfg.Workers = 1
	cfg.ReceiveBuffer = 1 // the kernel minimum
	r := startCollector(t, cfg, &discardSink{})
	packets, _ := encodeV5(t, 3000)
	s := newSender(t, "127.0.0.2:0")
	dst := r.addr(t, 0)
	for _, p := range packets {
		if _, err := s.conn.WriteToUDP(p, dst); err != nil {
			t.Fatal(err)
		}
	}
	sent := uint64(len(packets))
	testutil.WaitFor(t, 10*time.Second, "every datagram received or dropped", func() (bool, string) {
		got, drops := r.c.receivedPackets(), r.c.kernelDrops()
		return got+drops >= sent, fmt.Sprintf("%d received, %d kernel drops, %d sent", got, drops, sent)
	})
	r.stop(t)
	got, drops := r.c.receivedPackets(), r.c.kernelDrops()
	if got+drops != sent {
		t.Errorf("received %d + kernel drops %d != sent %d", got, drops, sent)
	}
	if m := metric(t, r.reg, "flowbox_collector_kernel_drops_total", "listener", "127.0.0.1:0"); m != float64(drops) {
		t.Errorf("kernel drops metric = %v, want %d", m, drops)
	}
	t.Logf("sent %d, received %d, kernel drops %d", sent, got, drops)
}

func TestHasQueued(t *testing.T) {
	rx := newSender(t, "127.0.0.1:0")
	tx := newSender(t, "127.0.0.1:0")
	if hasQueued(rx.conn) {
		t.Fatal("empty socket reports a queued datagram")
	}
	if _, err := tx.conn.WriteToUDPAddrPort([]byte("x"), rx.addrPort()); err != nil {
		t.Fatal(err)
	}
	if !hasQueued(rx.conn) {
		t.Fatal("queued datagram not seen")
	}
	buf := make([]byte, 16)
	if _, _, err := rx.conn.ReadFromUDPAddrPort(buf); err != nil {
		t.Fatal(err)
	}
	if hasQueued(rx.conn) {
		t.Fatal("socket still reports a datagram after reading it")
	}
}
