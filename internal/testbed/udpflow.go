package testbed

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/cluster"
)

// UDPFlow is one UDP socket in a pod, connected to a pod's UDP server:
// every datagram has the same addresses and ports, so conntrack sees one
// long-lived flow (unlike Probe, which uses a new socket each time).
type UDPFlow struct {
	conn *net.UDPConn
	n    int
}

// DialUDP opens a UDP flow from a pod to an address of a pod in the bed
// on port. The bed closes it on Down; the caller may close it earlier.
func (b *Bed) DialUDP(from *cluster.Pod, to netip.Addr, port int32) (*UDPFlow, error) {
	src, _, local, err := b.endpoints(from, to)
	if err != nil {
		return nil, fmt.Errorf("testbed: dial udp: %w", err)
	}
	if err := validPort(Port{Protocol: corev1.ProtocolUDP, Port: port}); err != nil {
		return nil, fmt.Errorf("testbed: dial udp: %w", err)
	}
	if !local.IsValid() {
		return nil, fmt.Errorf("testbed: dial udp %s: source pod %s has no IPv%d address", to, src.key, family(to))
	}
	var conn *net.UDPConn
	if err := InNamespace(src.nsName, func() error {
		var err error
		conn, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)),
			net.UDPAddrFromAddrPort(netip.AddrPortFrom(to.Unmap(), uint16(port))))
		return err
	}); err != nil {
		return nil, fmt.Errorf("testbed: dial udp %s from %s: %w", to, src.key, err)
	}
	if !b.trackConn(conn) {
		return nil, errors.New("testbed: dial udp: bed is down")
	}
	return &UDPFlow{conn: conn}, nil
}

// Exchange sends up to tries datagrams, each waiting up to wait for the
// server's answer to it, and reports whether one was answered.
func (f *UDPFlow) Exchange(tries int, wait time.Duration) (bool, error) {
	buf := make([]byte, 2048)
	for i := 0; i < tries; i++ {
		f.n++
		msg := fmt.Sprintf("dgram %d", f.n)
		if _, err := f.conn.Write([]byte(msg)); err != nil {
			return false, err
		}
		_ = f.conn.SetReadDeadline(time.Now().Add(wait))
		for {
			n, err := f.conn.Read(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return false, err
			}
			// The server answers with its token, a newline and the datagram.
			if bytes.HasSuffix(buf[:n], []byte("\n"+msg)) {
				return true, nil
			}
		}
	}
	return false, nil
}

// Close closes the socket.
func (f *UDPFlow) Close() error { return f.conn.Close() }
