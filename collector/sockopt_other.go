//go:build unix && !linux

package collector

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// oobSize is the control-message buffer of a reader. Outside Linux there is
// no SO_RXQ_OVFL, so none is needed.
const oobSize = 0

// setSocketOptions is the net.ListenConfig control hook: SO_REUSEPORT and
// the receive buffer. Kernel drops are not available outside Linux.
func setSocketOptions(rcvbuf int, _ bool) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var opErr error
		err := c.Control(func(fd uintptr) {
			s := int(fd)
			if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
				opErr = fmt.Errorf("cannot set SO_REUSEPORT: %w", err)
				return
			}
			if rcvbuf > 0 {
				if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
					opErr = fmt.Errorf("cannot set SO_RCVBUF to %d: %w", rcvbuf, err)
				}
			}
		})
		if err != nil {
			return fmt.Errorf("cannot reach socket: %w", err)
		}
		return opErr
	}
}

// socketInfo reads back the receive buffer the kernel granted.
func socketInfo(c syscall.RawConn) (rcvbuf int, inode uint64, err error) {
	var opErr error
	cerr := c.Control(func(fd uintptr) {
		rcvbuf, opErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	if cerr != nil {
		return 0, 0, fmt.Errorf("cannot reach socket: %w", cerr)
	}
	if opErr != nil {
		return 0, 0, fmt.Errorf("cannot read SO_RCVBUF: %w", opErr)
	}
	return rcvbuf, 0, nil
}

// grantedBufferShort reports whether the kernel granted less receive buffer
// than requested.
func grantedBufferShort(requested, granted int) bool {
	return requested > 0 && granted < requested
}

// rmemMax is Linux-only; -1 means unknown.
func rmemMax() int { return -1 }

// parseRxqOvfl: no SO_RXQ_OVFL outside Linux.
func parseRxqOvfl([]byte) (uint32, bool) { return 0, false }

// procUDPDrops: no /proc/net/udp outside Linux.
func procUDPDrops(map[uint64]uint64) error { return nil }

// hasQueued: not known outside Linux; the drain relies on its idle time.
func hasQueued(syscall.Conn) bool { return false }
