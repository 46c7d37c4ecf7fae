//go:build linux

package collector

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// oobSize is the control-message buffer of a reader: room for the
// SO_RXQ_OVFL message (a header and a uint32) with slack.
const oobSize = 64

// setSocketOptions is the net.ListenConfig control hook: SO_REUSEPORT so
// that several readers share an address, SO_RXQ_OVFL so that every datagram
// carries the socket's drop counter, and the receive buffer (SO_RCVBUFFORCE
// first when force is set, which lets a process with CAP_NET_ADMIN go past
// net.core.rmem_max, then SO_RCVBUF).
func setSocketOptions(rcvbuf int, force bool) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var opErr error
		err := c.Control(func(fd uintptr) {
			s := int(fd)
			if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
				opErr = fmt.Errorf("cannot set SO_REUSEPORT: %w", err)
				return
			}
			if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1); err != nil {
				opErr = fmt.Errorf("cannot set SO_RXQ_OVFL: %w", err)
				return
			}
			if rcvbuf <= 0 {
				return
			}
			if force {
				if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); err == nil {
					return
				}
			}
			if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
				opErr = fmt.Errorf("cannot set SO_RCVBUF to %d: %w", rcvbuf, err)
			}
		})
		if err != nil {
			return fmt.Errorf("cannot reach socket: %w", err)
		}
		return opErr
	}
}

// socketInfo reads back the receive buffer the kernel granted (Linux reports
// twice the usable size it accounts for) and the socket's inode, which
// identifies it in /proc/net/udp.
func socketInfo(c syscall.RawConn) (rcvbuf int, inode uint64, err error) {
	var opErr error
	cerr := c.Control(func(fd uintptr) {
		rcvbuf, opErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		if opErr != nil {
			opErr = fmt.Errorf("cannot read SO_RCVBUF: %w", opErr)
			return
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(fd), &st); err != nil {
			opErr = fmt.Errorf("cannot stat socket: %w", err)
			return
		}
		inode = st.Ino
	})
	if cerr != nil {
		return 0, 0, fmt.Errorf("cannot reach socket: %w", cerr)
	}
	return rcvbuf, inode, opErr
}

// grantedBufferShort reports whether the kernel granted less receive buffer
// than requested. Linux doubles the requested value for its own bookkeeping
// and reports the doubled value, so a request honoured in full reads back as
// at least twice the request.
func grantedBufferShort(requested, granted int) bool {
	return requested > 0 && granted < 2*requested
}

// rmemMax returns net.core.rmem_max, or -1 when it cannot be read.
func rmemMax() int {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		return -1
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return v
}

// parseRxqOvfl returns the SO_RXQ_OVFL drop counter carried in the control
// messages of one datagram. It does not allocate.
func parseRxqOvfl(oob []byte) (uint32, bool) {
	hdr := unix.SizeofCmsghdr
	for len(oob) >= hdr {
		// struct cmsghdr { size_t len; int level; int type; }
		var l int
		if hdr == 16 {
			l = int(binary.NativeEndian.Uint64(oob[0:8]))
		} else {
			l = int(binary.NativeEndian.Uint32(oob[0:4]))
		}
		level := int32(binary.NativeEndian.Uint32(oob[hdr-8 : hdr-4]))
		typ := int32(binary.NativeEndian.Uint32(oob[hdr-4 : hdr]))
		if l < hdr || l > len(oob) {
			return 0, false
		}
		if level == unix.SOL_SOCKET && typ == unix.SO_RXQ_OVFL && l >= hdr+4 {
			return binary.NativeEndian.Uint32(oob[hdr : hdr+4]), true
		}
		next := unix.CmsgSpace(l - hdr)
		if next > len(oob) {
			return 0, false
		}
		oob = oob[next:]
	}
	return 0, false
}

// procUDPDrops reads the drops column of /proc/net/udp and /proc/net/udp6
// for the sockets whose inodes are keys of want, and stores the values in
// it. Sockets not found keep their value.
func procUDPDrops(want map[uint64]uint64) error {
	var errs []error
	for _, p := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		if err := readProcUDP(p, want); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func readProcUDP(path string, want map[uint64]uint64) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // no IPv6 in this kernel
		}
		return fmt.Errorf("cannot read kernel drops: %w", err)
	}
	defer f.Close()
	return parseProcUDP(bufio.NewScanner(f), want)
}

// parseProcUDP parses the /proc/net/udp format: a header line, then
// "sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops".
func parseProcUDP(sc *bufio.Scanner, want map[uint64]uint64) error {
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		fields := strings.Fields(sc.Text())
		if len(fields) < 13 {
			continue
		}
		inode, err := strconv.ParseUint(fields[9], 10, 64)
		if err != nil {
			continue
		}
		if _, ok := want[inode]; !ok {
			continue
		}
		drops, err := strconv.ParseUint(fields[12], 10, 64)
		if err != nil {
			continue
		}
		want[inode] = drops
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("cannot read kernel drops: %w", err)
	}
	return nil
}

// hasQueued reports whether a datagram waits in the socket's receive queue
// (SIOCINQ), so that a shutdown drain does not stop early because its
// reader was descheduled past the idle deadline.
func hasQueued(c syscall.Conn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	if cerr := raw.Control(func(fd uintptr) {
		n, err = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	}); cerr != nil || err != nil {
		return false
	}
	return n > 0
}
