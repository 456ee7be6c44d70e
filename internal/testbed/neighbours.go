package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// neighbourTimeout bounds how long Up waits for every pod's IPv6 addresses
// to answer the node.
const neighbourTimeout = 5 * time.Second

// waitIPv6Reachable pings every pod's IPv6 addresses from the node, every
// 100 ms, until each has answered once. A veth's IPv6 set-up finishes in
// kernel work queues after the link is up (joining the solicited-node
// multicast group among others); on a busy machine that can take longer
// than a probe's timeout, and neighbour discovery started before it ends
// fails for seconds. Node-to-pod traffic is not filtered by netfence (it
// leaves through the output hook), so waiting here measures the bed, not
// the policy; the pods' answers also resolve the neighbours both ways.
func (b *Bed) waitIPv6Reachable(ctx context.Context) error {
	pending := map[netip.Addr]string{}
	for _, ps := range b.pods {
		for _, ip := range ps.pod.IPs {
			if ip.Is6() && !ip.Is4In6() {
				pending[ip] = ps.key
			}
		}
	}
	if len(pending) == 0 {
		return nil
	}
	return b.InNode(func() error {
		conn, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return fmt.Errorf("open an ICMPv6 socket: %w", err)
		}
		defer conn.Close()
		id := os.Getpid() & 0xffff
		deadline := time.Now().Add(neighbourTimeout)
		buf := make([]byte, 1500)
		for seq := 0; len(pending) > 0; seq++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			if time.Now().After(deadline) {
				for ip, key := range pending {
					return fmt.Errorf("pod %s: %s does not answer the node after %v", key, ip, neighbourTimeout)
				}
			}
			for ip := range pending {
				msg := icmp.Message{Type: ipv6.ICMPTypeEchoRequest, Body: &icmp.Echo{ID: id, Seq: seq & 0xffff, Data: []byte("netfence-testbed")}}
				wb, err := msg.Marshal(nil)
				if err != nil {
					return err
				}
				if _, err := conn.WriteTo(wb, &net.IPAddr{IP: ip.AsSlice()}); err != nil {
					return fmt.Errorf("ping %s: %w", ip, err)
				}
			}
			// Collect answers for 100 ms.
			until := time.Now().Add(100 * time.Millisecond)
			for time.Now().Before(until) && len(pending) > 0 {
				if err := conn.SetReadDeadline(until); err != nil {
					return err
				}
				n, from, err := conn.ReadFrom(buf)
				if err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						break
					}
					return fmt.Errorf("read ICMPv6: %w", err)
				}
				m, err := icmp.ParseMessage(58, buf[:n])
				if err != nil || m.Type != ipv6.ICMPTypeEchoReply {
					continue
				}
				if a, ok := from.(*net.IPAddr); ok {
					if ip, ok := netip.AddrFromSlice(a.IP); ok {
						delete(pending, ip.Unmap())
					}
				}
			}
		}
		return nil
	})
}
