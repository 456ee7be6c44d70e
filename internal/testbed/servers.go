package testbed

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
)

const (
	// maxAcceptErrors stops a TCP server after this many consecutive
	// failed accepts other than the listener being closed.
	maxAcceptErrors = 100
	// maxUDPPayload bounds the part of a datagram a UDP server echoes.
	maxUDPPayload = 1024
)

// startServers opens the listeners of a pod inside its namespace and starts
// their goroutines.
func (b *Bed) startServers(ps *podState) error {
	for _, port := range ps.ports {
		for _, ip := range ps.pod.IPs {
			ap := netip.AddrPortFrom(ip, uint16(port.Port))
			switch port.Protocol {
			case corev1.ProtocolTCP:
				var ln *net.TCPListener
				err := inNetNS(ps.ns, func() error {
					var err error
					ln, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(ap))
					return err
				})
				if err != nil {
					return fmt.Errorf("listen on TCP %s: %w", ap, err)
				}
				if !b.addListener(ln) {
					return errors.New("bed is down")
				}
				b.servers.Add(1)
				go b.serveTCP(ln, ps.token)
			case corev1.ProtocolUDP:
				var pc *net.UDPConn
				err := inNetNS(ps.ns, func() error {
					var err error
					pc, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
					return err
				})
				if err != nil {
					return fmt.Errorf("listen on UDP %s: %w", ap, err)
				}
				if !b.addListener(pc) {
					return errors.New("bed is down")
				}
				b.servers.Add(1)
				go b.serveUDP(pc, ps.token)
			case corev1.ProtocolSCTP:
				// Observed with raw sockets by each probe; see the package doc.
			}
		}
	}
	return nil
}

// addListener records a listener for Down, or closes it and returns false
// if Down has started.
func (b *Bed) addListener(l io.Closer) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		_ = l.Close()
		return false
	}
	b.listeners = append(b.listeners, l)
	return true
}

// trackConn records a connection for Down, or closes it and returns false
// if Down has started.
func (b *Bed) trackConn(c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		_ = c.Close()
		return false
	}
	b.conns[c] = struct{}{}
	return true
}

func (b *Bed) untrackConn(c net.Conn) {
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
}

// serveTCP accepts connections until the listener is closed.
func (b *Bed) serveTCP(ln *net.TCPListener, token string) {
	defer b.servers.Done()
	failures := 0
	for failures < maxAcceptErrors {
		c, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			failures++
			time.Sleep(10 * time.Millisecond)
			continue
		}
		failures = 0
		if !b.trackConn(c) {
			continue
		}
		b.servers.Add(1)
		go b.handleTCP(c, token)
	}
}

// handleTCP writes the token and a newline, then echoes until EOF, error or
// the idle timeout.
func (b *Bed) handleTCP(c *net.TCPConn, token string) {
	defer b.servers.Done()
	defer b.untrackConn(c)
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(b.idle))
	if _, err := io.WriteString(c, token+"\n"); err != nil {
		return
	}
	buf := make([]byte, 4096)
	for {
		_ = c.SetDeadline(time.Now().Add(b.idle))
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			// EOF, idle timeout, reset or closed by Down.
			return
		}
	}
}

// serveUDP answers each datagram with the token, a newline and the datagram,
// until the socket is closed.
func (b *Bed) serveUDP(pc *net.UDPConn, token string) {
	defer b.servers.Done()
	buf := make([]byte, 64*1024)
	failures := 0
	for failures < maxAcceptErrors {
		n, from, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ICMP errors caused by earlier replies surface here.
			failures++
			time.Sleep(10 * time.Millisecond)
			continue
		}
		failures = 0
		if n > maxUDPPayload {
			n = maxUDPPayload
		}
		reply := make([]byte, 0, len(token)+1+n)
		reply = append(reply, token...)
		reply = append(reply, '\n')
		reply = append(reply, buf[:n]...)
		_, _ = pc.WriteToUDPAddrPort(reply, from)
	}
}
