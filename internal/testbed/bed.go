package testbed

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/cluster"
)

// Port is a port a pod serves.
type Port = cluster.Port

// Options configures Up.
type Options struct {
	// Prefix starts the name of every network namespace the bed creates.
	// Empty means "nf" followed by 8 random hex digits. It must be 1 to 32
	// letters, digits, '.', '_' or '-', starting with a letter or digit.
	Prefix string
	// ExtraPorts are ports every pod serves in addition to its container
	// ports.
	ExtraPorts []Port
	// IdleTimeout is how long a TCP server keeps an accepted connection on
	// which nothing arrives. Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// HostNetwork runs the active host-network pods too, in the node
	// namespace: their addresses (the node's) are the node namespace's
	// own, on its loopback, and their servers listen there, so that
	// traffic from pods to them crosses the node's input hook. A
	// host-network pod holding an address an earlier pod of the bed holds
	// is left out (see Skipped).
	HostNetwork bool
}

// DefaultIdleTimeout is the idle timeout of TCP server connections when
// Options.IdleTimeout is zero.
const DefaultIdleTimeout = 2 * time.Minute

// MaxPods is the largest number of pods a bed holds.
const MaxPods = 1000

const (
	// PodInterface is the name of the pod side of each veth pair.
	PodInterface = "eth0"
	// GatewayIPv4 is the link-local IPv4 gateway of every pod, answered by
	// proxy ARP on the node side of its veth.
	GatewayIPv4 = "169.254.1.1"
	// GatewayIPv6 is the link-local IPv6 gateway of every pod, an address of
	// the node side of its veth.
	GatewayIPv6 = "fe80::1"
	// NodeIPv4 is the node namespace's own address, on NodeUplinkInterface.
	NodeIPv4 = "169.254.0.1"
	// NodeUplinkInterface is a link in the node namespace that holds
	// NodeIPv4 and the route to GatewayIPv4 that proxy ARP needs. It is one
	// end of a veth pair whose other end (the same name with "p" appended)
	// is also in the node namespace and stays down, so the link has no
	// carrier and anything routed to it is dropped.
	NodeUplinkInterface = "nfuplink0"
)

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)

// Bed is a running test bed: a node namespace, pod namespaces linked to it,
// and the pods' servers. Its methods are safe for concurrent use.
type Bed struct {
	prefix   string
	idle     time.Duration
	nodeName string
	pods     []*podState
	// hosts are the host-network pods the bed runs in the node namespace
	// (Options.HostNetwork); skipped those it leaves out, and why.
	hosts   []*podState
	skipped map[string]string
	byKey   map[string]*podState
	byAddr  map[netip.Addr]*podState

	// downMu serialises Down.
	downMu sync.Mutex

	// mu guards everything below.
	mu     sync.Mutex
	closed bool
	node   netns.NsHandle
	nodeNL *netlink.Handle
	// nsCreated are the namespaces this bed created, in creation order.
	nsCreated []string
	listeners []io.Closer
	conns     map[net.Conn]struct{}

	// ops counts running Probe, Dial and InNode calls.
	ops sync.WaitGroup
	// servers counts server goroutines.
	servers sync.WaitGroup
}

// podState is one pod of the bed.
type podState struct {
	pod cluster.Pod
	key string
	// host is set for a host-network pod, which runs in the node
	// namespace: nsName and ns are the node's, and it has no veth.
	host   bool
	nsName string
	ns     netns.NsHandle
	// nl is a netlink handle in ns, open only during Up.
	nl     *netlink.Handle
	hostIf string
	token  string
	serves map[Port]bool
	ports  []Port // serves, sorted
}

// Token returns the text a pod's servers send to identify the pod:
// "netfence-testbed NAMESPACE/NAME".
func Token(p *cluster.Pod) string { return "netfence-testbed " + p.Key() }

// Up builds a bed for the active, non-host-network pods of c (and the
// host-network ones, with Options.HostNetwork). On failure it removes
// everything it created before returning the error. The caller must call
// Down when done.
func Up(ctx context.Context, c *cluster.Cluster, opts Options) (_ *Bed, err error) {
	if c == nil {
		return nil, errors.New("testbed: nil cluster")
	}
	prefix := opts.Prefix
	if prefix == "" {
		var r [4]byte
		if _, err := rand.Read(r[:]); err != nil {
			return nil, fmt.Errorf("testbed: random prefix: %w", err)
		}
		prefix = "nf" + hex.EncodeToString(r[:])
	}
	if !prefixRE.MatchString(prefix) {
		return nil, fmt.Errorf("testbed: invalid prefix %q: want 1-32 of [A-Za-z0-9._-], starting with a letter or digit", prefix)
	}
	for _, p := range opts.ExtraPorts {
		if err := validPort(p); err != nil {
			return nil, fmt.Errorf("testbed: extra port %s: %w", p, err)
		}
	}
	idle := opts.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	b := &Bed{
		prefix:   prefix,
		idle:     idle,
		nodeName: prefix + "-node",
		byKey:    map[string]*podState{},
		byAddr:   map[netip.Addr]*podState{},
		skipped:  map[string]string{},
		node:     netns.None(),
		conns:    map[net.Conn]struct{}{},
	}
	if err := b.plan(c, opts.ExtraPorts, opts.HostNetwork); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}

	defer func() {
		if err != nil {
			if derr := b.Down(); derr != nil {
				err = errors.Join(err, fmt.Errorf("testbed: clean up after failed setup: %w", derr))
			}
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	if err := b.setupNode(); err != nil {
		return nil, fmt.Errorf("testbed: set up node namespace %s: %w", b.nodeName, err)
	}
	for _, ps := range b.pods {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("testbed: %w", err)
		}
		if err := b.setupPod(ps); err != nil {
			return nil, fmt.Errorf("testbed: set up pod %s in %s: %w", ps.key, ps.nsName, err)
		}
	}
	if err := b.waitLinksUp(ctx); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	if err := b.waitIPv6Reachable(ctx); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	b.mu.Lock()
	for _, ps := range b.pods {
		ps.nl.Close()
		ps.nl = nil
	}
	b.mu.Unlock()
	for _, ps := range append(slices.Clone(b.pods), b.hosts...) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("testbed: %w", err)
		}
		if err := b.startServers(ps); err != nil {
			return nil, fmt.Errorf("testbed: start servers of pod %s: %w", ps.key, err)
		}
	}
	return b, nil
}

// plan selects and validates the pods of the bed, without creating
// anything: the active pod-network pods, and with hosts the active
// host-network pods after them.
func (b *Bed) plan(c *cluster.Cluster, extra []Port, hosts bool) error {
	hostIfs := map[string]string{}
	for _, host := range []bool{false, true} {
		if host && !hosts {
			break
		}
		for _, p := range c.Pods {
			if p == nil || p.HostNetwork != host {
				continue
			}
			if ok, _ := p.Active(); !ok {
				continue
			}
			if len(b.pods)+len(b.hosts) == MaxPods {
				return fmt.Errorf("more than %d pods", MaxPods)
			}
			ps := &podState{
				pod:    *p,
				key:    p.Key(),
				host:   host,
				nsName: fmt.Sprintf("%s-p%d", b.prefix, len(b.pods)),
				ns:     netns.None(),
				token:  Token(p),
				serves: map[Port]bool{},
			}
			if host {
				ps.nsName = b.nodeName
			} else {
				ps.hostIf = hostInterfaceName(p.Key())
			}
			ps.pod.IPs = nil
			ps.pod.Ports = append([]cluster.ContainerPort(nil), p.Ports...)
			if _, dup := b.byKey[ps.key]; dup {
				return fmt.Errorf("pod %s appears twice", ps.key)
			}
			if !host {
				if other, dup := hostIfs[ps.hostIf]; dup {
					return fmt.Errorf("pods %s and %s hash to the same interface name %s", other, ps.key, ps.hostIf)
				}
				hostIfs[ps.hostIf] = ps.key
			}
			var ips []netip.Addr
			taken := ""
			for _, ip := range p.IPs {
				ip = ip.Unmap()
				if err := validPodAddr(ip); err != nil {
					return fmt.Errorf("pod %s: address %s: %w", ps.key, ip, err)
				}
				if slices.Contains(ips, ip) {
					continue
				}
				if other, dup := b.byAddr[ip]; dup {
					if !host {
						return fmt.Errorf("pods %s and %s share address %s", other.key, ps.key, ip)
					}
					taken = fmt.Sprintf("address %s is %s's", ip, other.key)
				}
				ips = append(ips, ip)
			}
			if taken != "" {
				// Host-network pods of one node share its addresses: the
				// first runs.
				b.skipped[ps.key] = "host-network pod left out of the bed: " + taken
				continue
			}
			for _, ip := range ips {
				b.byAddr[ip] = ps
			}
			ps.pod.IPs = ips
			for _, cp := range p.Ports {
				port := Port{Protocol: cp.Protocol, Port: cp.Port}
				if port.Protocol == "" {
					port.Protocol = corev1.ProtocolTCP
				}
				if err := validPort(port); err != nil {
					return fmt.Errorf("pod %s: port %s: %w", ps.key, port, err)
				}
				ps.serves[port] = true
			}
			for _, port := range extra {
				ps.serves[port] = true
			}
			for port := range ps.serves {
				ps.ports = append(ps.ports, port)
			}
			sort.Slice(ps.ports, func(i, j int) bool {
				if ps.ports[i].Protocol != ps.ports[j].Protocol {
					return ps.ports[i].Protocol < ps.ports[j].Protocol
				}
				return ps.ports[i].Port < ps.ports[j].Port
			})
			b.byKey[ps.key] = ps
			if host {
				b.hosts = append(b.hosts, ps)
			} else {
				b.pods = append(b.pods, ps)
			}
		}
	}
	return nil
}

// hostInterfaceName names the node side of a pod's veth as Calico does:
// "cali" and 11 hex digits of a hash of the pod.
func hostInterfaceName(key string) string {
	sum := sha1.Sum([]byte(key))
	return "cali" + hex.EncodeToString(sum[:])[:11]
}

func validPort(p Port) error {
	switch p.Protocol {
	case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
	default:
		return fmt.Errorf("unsupported protocol %q", p.Protocol)
	}
	if p.Port < 1 || p.Port > 65535 {
		return fmt.Errorf("port %d out of range 1-65535", p.Port)
	}
	return nil
}

func validPodAddr(ip netip.Addr) error {
	switch {
	case !ip.IsValid():
		return errors.New("invalid address")
	case ip.IsUnspecified(), ip.IsLoopback(), ip.IsMulticast(), ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return errors.New("not usable as a pod address (unspecified, loopback, multicast or link-local)")
	case ip.Zone() != "":
		return errors.New("has a zone")
	}
	return nil
}

// createNetNS creates a namespace of the bed and records it for Down.
func (b *Bed) createNetNS(name string) (netns.NsHandle, error) {
	h, err := createNamedNetNS(name)
	if err != nil {
		return netns.None(), err
	}
	b.mu.Lock()
	b.nsCreated = append(b.nsCreated, name)
	b.mu.Unlock()
	return h, nil
}

func (b *Bed) setupNode() error {
	ns, err := b.createNetNS(b.nodeName)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.node = ns
	b.mu.Unlock()
	err = setSysctls(ns, []sysctl{
		{"ipv4/ip_forward", "1"},
		{"ipv6/conf/all/forwarding", "1"},
		{"ipv6/conf/default/forwarding", "1"},
		{"ipv6/conf/all/accept_dad", "0"},
		{"ipv6/conf/default/accept_dad", "0"},
		{"ipv4/conf/all/rp_filter", "1"},
		{"ipv4/conf/default/rp_filter", "1"},
		{"ipv4/conf/all/arp_ignore", "0"},
		{"ipv4/conf/default/arp_ignore", "0"},
	})
	if err != nil {
		return err
	}
	nl, err := netlinkHandleIn(ns)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.nodeNL = nl
	b.mu.Unlock()
	if err := setLoUp(nl); err != nil {
		return err
	}
	// The kernel may lack dummy links, so the node's "uplink" is a veth
	// pair with both ends in the node namespace and the far end left down:
	// it has no carrier, so nothing sent to it goes anywhere.
	uplink := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: NodeUplinkInterface, MTU: 1500},
		PeerName:  NodeUplinkInterface + "p",
	}
	if err := nl.LinkAdd(uplink); err != nil {
		return fmt.Errorf("add veth pair %s/%sp: %w", NodeUplinkInterface, NodeUplinkInterface, err)
	}
	link, err := nl.LinkByName(NodeUplinkInterface)
	if err != nil {
		return fmt.Errorf("look up %s: %w", NodeUplinkInterface, err)
	}
	if err := nl.AddrAdd(link, hostAddr(netip.MustParseAddr(NodeIPv4))); err != nil {
		return fmt.Errorf("add %s to %s: %w", NodeIPv4, NodeUplinkInterface, err)
	}
	if err := nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", NodeUplinkInterface, err)
	}
	gw := &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       hostPrefix(netip.MustParseAddr(GatewayIPv4)),
		Scope:     netlink.SCOPE_LINK,
	}
	if err := nl.RouteAdd(gw); err != nil {
		return fmt.Errorf("add route to %s via %s: %w", GatewayIPv4, NodeUplinkInterface, err)
	}
	// Host-network pods: the node's own addresses, on its loopback.
	lo, err := nl.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("look up lo: %w", err)
	}
	for _, ps := range b.hosts {
		b.mu.Lock()
		ps.ns = ns
		b.mu.Unlock()
		for _, ip := range ps.pod.IPs {
			if err := nl.AddrAdd(lo, hostAddr(ip)); err != nil {
				return fmt.Errorf("add %s of host-network pod %s to lo: %w", ip, ps.key, err)
			}
		}
	}
	return nil
}

func (b *Bed) setupPod(ps *podState) error {
	ns, err := b.createNetNS(ps.nsName)
	if err != nil {
		return err
	}
	b.mu.Lock()
	ps.ns = ns
	nodeNL := b.nodeNL
	b.mu.Unlock()
	// Set before eth0 exists, so that it inherits them.
	err = setSysctls(ns, []sysctl{
		{"ipv6/conf/all/accept_dad", "0"},
		{"ipv6/conf/default/accept_dad", "0"},
	})
	if err != nil {
		return err
	}
	podNL, err := netlinkHandleIn(ns)
	if err != nil {
		return err
	}
	b.mu.Lock()
	ps.nl = podNL
	b.mu.Unlock()
	if err := setLoUp(podNL); err != nil {
		return err
	}

	// The pair is created by the node namespace's netlink socket, with the
	// peer placed straight into the pod namespace: neither end ever exists
	// in the root namespace.
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: ps.hostIf, MTU: 1500},
		PeerName:      PodInterface,
		PeerNamespace: netlink.NsFd(int(ns)),
	}
	if err := nodeNL.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth pair %s/%s: %w", ps.hostIf, PodInterface, err)
	}

	// Node side.
	err = setSysctls(b.node, []sysctl{
		{"ipv4/conf/" + ps.hostIf + "/proxy_arp", "1"},
		{"ipv4/neigh/" + ps.hostIf + "/proxy_delay", "0"},
		{"ipv6/conf/" + ps.hostIf + "/accept_dad", "0"},
	})
	if err != nil {
		return err
	}
	host, err := nodeNL.LinkByName(ps.hostIf)
	if err != nil {
		return fmt.Errorf("look up %s: %w", ps.hostIf, err)
	}
	hasV4, hasV6 := false, false
	for _, ip := range ps.pod.IPs {
		hasV4 = hasV4 || ip.Is4()
		hasV6 = hasV6 || ip.Is6()
	}
	if hasV6 {
		ll := &netlink.Addr{
			IPNet: prefixToIPNet(netip.PrefixFrom(netip.MustParseAddr(GatewayIPv6), 64)),
			Flags: unix.IFA_F_NODAD,
		}
		if err := nodeNL.AddrAdd(host, ll); err != nil {
			return fmt.Errorf("add %s to %s: %w", GatewayIPv6, ps.hostIf, err)
		}
	}
	if err := nodeNL.LinkSetUp(host); err != nil {
		return fmt.Errorf("set %s up: %w", ps.hostIf, err)
	}
	for _, ip := range ps.pod.IPs {
		r := &netlink.Route{LinkIndex: host.Attrs().Index, Dst: hostPrefix(ip), Scope: netlink.SCOPE_LINK}
		if err := nodeNL.RouteAdd(r); err != nil {
			return fmt.Errorf("add route to %s via %s: %w", ip, ps.hostIf, err)
		}
	}

	// Pod side.
	eth0, err := podNL.LinkByName(PodInterface)
	if err != nil {
		return fmt.Errorf("look up %s: %w", PodInterface, err)
	}
	for _, ip := range ps.pod.IPs {
		if err := podNL.AddrAdd(eth0, hostAddr(ip)); err != nil {
			return fmt.Errorf("add %s to %s: %w", ip, PodInterface, err)
		}
	}
	if err := podNL.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("set %s up: %w", PodInterface, err)
	}
	idx := eth0.Attrs().Index
	if hasV4 {
		gw := netip.MustParseAddr(GatewayIPv4)
		routes := []*netlink.Route{
			{LinkIndex: idx, Dst: hostPrefix(gw), Scope: netlink.SCOPE_LINK},
			{LinkIndex: idx, Dst: prefixToIPNet(netip.MustParsePrefix("0.0.0.0/0")), Gw: gw.AsSlice()},
		}
		for _, r := range routes {
			if err := podNL.RouteAdd(r); err != nil {
				return fmt.Errorf("add IPv4 route %s: %w", r.Dst, err)
			}
		}
	}
	if hasV6 {
		r := &netlink.Route{
			LinkIndex: idx,
			Dst:       prefixToIPNet(netip.MustParsePrefix("::/0")),
			Gw:        netip.MustParseAddr(GatewayIPv6).AsSlice(),
		}
		if err := podNL.RouteAdd(r); err != nil {
			return fmt.Errorf("add IPv6 default route via %s: %w", GatewayIPv6, err)
		}
	}
	return nil
}

// linkUpTimeout bounds how long Up waits for the veths to become
// operational.
const linkUpTimeout = 5 * time.Second

// waitLinksUp waits until both ends of every pod's veth are operationally
// up. The kernel activates a link's queue asynchronously (linkwatch, which
// may wait up to a second), and drops what is sent before: without this wait
// the first packets after Up could be lost.
func (b *Bed) waitLinksUp(ctx context.Context) error {
	deadline := time.Now().Add(linkUpTimeout)
	pending := append([]*podState(nil), b.pods...)
	for polls := 0; ; polls++ {
		var still []*podState
		for _, ps := range pending {
			up, err := b.podLinksUp(ps)
			if err != nil {
				return fmt.Errorf("pod %s: %w", ps.key, err)
			}
			if !up {
				still = append(still, ps)
			}
		}
		pending = still
		if len(pending) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) || polls > 1000 {
			return fmt.Errorf("veth of pod %s not operational after %v", pending[0].key, linkUpTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (b *Bed) podLinksUp(ps *podState) (bool, error) {
	host, err := b.nodeNL.LinkByName(ps.hostIf)
	if err != nil {
		return false, fmt.Errorf("look up %s: %w", ps.hostIf, err)
	}
	eth0, err := ps.nl.LinkByName(PodInterface)
	if err != nil {
		return false, fmt.Errorf("look up %s: %w", PodInterface, err)
	}
	return host.Attrs().OperState == netlink.OperUp && eth0.Attrs().OperState == netlink.OperUp, nil
}

func setLoUp(nl *netlink.Handle) error {
	lo, err := nl.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("look up lo: %w", err)
	}
	if err := nl.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}

func hostPrefix(ip netip.Addr) *net.IPNet {
	return prefixToIPNet(netip.PrefixFrom(ip, ip.BitLen()))
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// hostAddr is ip as a /32 or /128 address, without duplicate address
// detection.
func hostAddr(ip netip.Addr) *netlink.Addr {
	a := &netlink.Addr{IPNet: hostPrefix(ip)}
	if ip.Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

// Down stops the servers, closes connections made by Dial, and deletes every
// link and namespace the bed created. It waits for running probes to end. It
// is idempotent: later calls retry whatever an earlier call failed to remove,
// and return nil when nothing is left.
func (b *Bed) Down() error {
	b.downMu.Lock()
	defer b.downMu.Unlock()

	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.ops.Wait()

	b.mu.Lock()
	listeners := b.listeners
	b.listeners = nil
	conns := make([]net.Conn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	b.conns = map[net.Conn]struct{}{}
	b.mu.Unlock()
	for _, l := range listeners {
		_ = l.Close()
	}
	for _, c := range conns {
		_ = c.Close()
	}
	b.servers.Wait()

	var errs []error
	b.mu.Lock()
	defer b.mu.Unlock()
	// Links need no deleting of their own: every link the bed made lives in
	// its namespaces, and goes when they go. (Deleting veths one by one
	// costs tens of milliseconds each; the kernel tears namespaces down in
	// batches.)
	if b.nodeNL != nil {
		b.nodeNL.Close()
		b.nodeNL = nil
	}
	for _, ps := range b.pods {
		if ps.nl != nil {
			ps.nl.Close()
			ps.nl = nil
		}
		if ps.ns.IsOpen() {
			_ = ps.ns.Close()
		}
		ps.ns = netns.None()
	}
	for _, ps := range b.hosts {
		ps.ns = netns.None() // the node's handle, closed below
	}
	if b.node.IsOpen() {
		_ = b.node.Close()
	}
	b.node = netns.None()
	var left []string
	for i := len(b.nsCreated) - 1; i >= 0; i-- {
		if err := deleteNamedNetNS(b.nsCreated[i]); err != nil {
			errs = append(errs, err)
			left = append([]string{b.nsCreated[i]}, left...)
		}
	}
	b.nsCreated = left
	if len(errs) > 0 {
		return fmt.Errorf("testbed: down: %w", errors.Join(errs...))
	}
	return nil
}

// NodeNamespace returns the name of the node's network namespace, as listed
// by `ip netns list`; `ip netns exec NAME nft -f -` installs rules there.
func (b *Bed) NodeNamespace() string { return b.nodeName }

// Prefix returns the prefix of the bed's namespace names.
func (b *Bed) Prefix() string { return b.prefix }

// Pods returns copies of the pod-network pods in the bed, in the
// cluster's order.
func (b *Bed) Pods() []*cluster.Pod { return copyPods(b.pods) }

// HostPods returns copies of the host-network pods the bed runs in the
// node namespace (Options.HostNetwork), in the cluster's order.
func (b *Bed) HostPods() []*cluster.Pod { return copyPods(b.hosts) }

func copyPods(pss []*podState) []*cluster.Pod {
	out := make([]*cluster.Pod, len(pss))
	for i, ps := range pss {
		p := ps.pod
		p.IPs = append([]netip.Addr(nil), ps.pod.IPs...)
		p.Ports = append([]cluster.ContainerPort(nil), ps.pod.Ports...)
		out[i] = &p
	}
	return out
}

// Skipped returns the host-network pods Up left out (Options.HostNetwork:
// their address is an earlier pod's), by key, and why.
func (b *Bed) Skipped() map[string]string { return maps.Clone(b.skipped) }

// PodNamespace returns the name of the network namespace of the pod with the
// given key ("namespace/name"), and whether the pod is in the bed; for a
// host-network pod, the node's.
func (b *Bed) PodNamespace(key string) (string, bool) {
	ps, ok := b.byKey[key]
	if !ok {
		return "", false
	}
	return ps.nsName, true
}

// HostInterface returns the name of the node side of the veth of the pod
// with the given key, and whether the pod is in the bed with a veth (a
// host-network pod has none).
func (b *Bed) HostInterface(key string) (string, bool) {
	ps, ok := b.byKey[key]
	if !ok || ps.host {
		return "", false
	}
	return ps.hostIf, true
}

// Serves reports whether the pod with the given key serves the port.
func (b *Bed) Serves(key string, p Port) bool {
	ps, ok := b.byKey[key]
	return ok && ps.serves[p]
}

// InNode runs fn on an OS thread that is in the node's network namespace,
// and returns its error. The thread is locked for the duration of fn and
// moved back afterwards (or discarded if that fails). Only fn's own thread
// is in the node namespace: goroutines fn starts are not, but sockets
// (netlink included) and processes (os/exec) fn creates belong to the node
// namespace.
func (b *Bed) InNode(fn func() error) error {
	node, err := b.beginOp()
	if err != nil {
		return err
	}
	defer b.ops.Done()
	if err := inNetNS(node, fn); err != nil {
		return fmt.Errorf("testbed: in node namespace %s: %w", b.nodeName, err)
	}
	return nil
}

// beginOp registers a running operation, failing once Down has started. It
// returns the node namespace handle, which stays open until the operation
// ends.
func (b *Bed) beginOp() (netns.NsHandle, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return netns.None(), errors.New("testbed: bed is down")
	}
	b.ops.Add(1)
	return b.node, nil
}
