package netflowtest

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchWriter sends several datagrams to one address with a single
// sendmmsg(2) call. Its buffers are allocated once.
type batchWriter struct {
	rc   syscall.RawConn
	msgs []unix.Mmsghdr
	iovs []unix.Iovec
	sa4  unix.RawSockaddrInet4
	sa6  unix.RawSockaddrInet6
	// arguments and results of the call in progress, so that write (a
	// method value made once) captures nothing per call.
	n, sent int
	errno   syscall.Errno
	write   func(fd uintptr) bool
}

func newBatchWriter(conn *net.UDPConn, size int) (*batchWriter, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("cannot get raw socket: %w", err)
	}
	w := &batchWriter{rc: rc, msgs: make([]unix.Mmsghdr, size), iovs: make([]unix.Iovec, size)}
	w.write = w.sendmmsg
	return w, nil
}

func (w *batchWriter) sendmmsg(fd uintptr) bool {
	r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.msgs[0])), uintptr(w.n),
		unix.MSG_DONTWAIT, 0, 0)
	if errno == unix.EAGAIN {
		return false // wait until the socket is writable
	}
	w.sent, w.errno = int(r), errno
	return true
}

// writeBatch sends pkts to addr and returns how many left; err explains why
// the rest did not.
func (w *batchWriter) writeBatch(pkts [][]byte, addr netip.AddrPort) (int, error) {
	if len(pkts) == 0 {
		return 0, nil
	}
	var name *byte
	var namelen uint32
	if a := addr.Addr(); a.Is4() {
		w.sa4.Family = unix.AF_INET
		w.sa4.Addr = a.As4()
		p := (*[2]byte)(unsafe.Pointer(&w.sa4.Port))
		p[0], p[1] = byte(addr.Port()>>8), byte(addr.Port())
		name, namelen = (*byte)(unsafe.Pointer(&w.sa4)), unix.SizeofSockaddrInet4
	} else {
		w.sa6.Family = unix.AF_INET6
		w.sa6.Addr = a.As16()
		p := (*[2]byte)(unsafe.Pointer(&w.sa6.Port))
		p[0], p[1] = byte(addr.Port()>>8), byte(addr.Port())
		name, namelen = (*byte)(unsafe.Pointer(&w.sa6)), unix.SizeofSockaddrInet6
	}
	total := 0
	for len(pkts) > 0 {
		n := min(len(pkts), len(w.msgs))
		for i := range n {
			w.iovs[i].Base = &pkts[i][0]
			w.iovs[i].SetLen(len(pkts[i]))
			w.msgs[i] = unix.Mmsghdr{}
			w.msgs[i].Hdr.Name, w.msgs[i].Hdr.Namelen = name, namelen
			w.msgs[i].Hdr.Iov = &w.iovs[i]
			w.msgs[i].Hdr.SetIovlen(1)
		}
		w.n, w.sent, w.errno = n, 0, 0
		if err := w.rc.Write(w.write); err != nil {
			return total, fmt.Errorf("sendmmsg: %w", err)
		}
		if w.errno != 0 {
			return total, fmt.Errorf("sendmmsg: %w", w.errno)
		}
		total += w.sent
		pkts = pkts[w.sent:]
		if w.sent == 0 {
			return total, fmt.Errorf("sendmmsg sent nothing")
		}
	}
	return total, nil
}
