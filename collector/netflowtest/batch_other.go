//go:build !linux

package netflowtest

import (
	"net"
	"net/netip"
)

// batchWriter sends datagrams one by one where sendmmsg(2) is missing.
type batchWriter struct{ conn *net.UDPConn }

func newBatchWriter(conn *net.UDPConn, _ int) (*batchWriter, error) {
	return &batchWriter{conn: conn}, nil
}

// writeBatch sends pkts to addr and returns how many left.
func (w *batchWriter) writeBatch(pkts [][]byte, addr netip.AddrPort) (int, error) {
	for i, p := range pkts {
		if _, err := w.conn.WriteToUDPAddrPort(p, addr); err != nil {
			return i, err
		}
	}
	return len(pkts), nil
}
