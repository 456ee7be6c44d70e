// Package testbed reproduces one Kubernetes node inside network namespaces,
// so that netfence's nftables dataplane can be tested with real traffic.
//
// # Topology
//
// Up creates a "node" network namespace (PREFIX-node) and one namespace per
// active, non-host-network pod (PREFIX-p0, PREFIX-p1, ...). Every pod is
// linked only to the node, Calico-style, by a veth pair:
//
//   - pod side: eth0 with the pod's addresses as /32 and /128, a default
//     route via the link-local gateway 169.254.1.1 (IPv4) and fe80::1 (IPv6);
//   - node side: a veth named "cali" plus 11 hex digits, with proxy_arp (and
//     proxy_delay 0) so it answers ARP for 169.254.1.1, the address fe80::1/64,
//     and a /32 or /128 route to each of the pod's addresses.
//
// The node forwards IPv4 and IPv6 (and only the node: the pods do not), with
// strict reverse-path filtering. It also has an "uplink", nfuplink0, holding
// the node's own address 169.254.0.1/32 and the route to 169.254.1.1 that
// proxy ARP needs; it is a veth whose peer (also in the node namespace)
// stays down, so anything routed to it is discarded. Pod-to-pod traffic
// therefore crosses the node's forward hook, where netfence's rules go
// (InNode runs code in the node namespace). IPv6 duplicate address detection
// is off, so addresses are usable at once.
//
// With Options.HostNetwork, the active host-network pods run too, in the
// node namespace itself, as on a real node: their addresses (the node's)
// are added to the node namespace's loopback, and their servers listen
// there. Traffic from pods to them is delivered locally and crosses the
// node's input hook; their own traffic leaves through its output hook. A
// host-network pod whose address an earlier pod of the bed holds (host-
// network pods of one node share its addresses) is left out: Skipped says
// which and why.
//
// Nothing is ever created in the root network namespace: namespaces are
// created by unsharing on a dedicated thread, veth pairs are created inside
// the node namespace with their peer placed directly in the pod namespace,
// and sysctls are written by a thread inside the target namespace. Probe and
// Dial refuse any destination that is not an address of a pod in the bed.
//
// # Servers
//
// Each pod serves, on each of its addresses, every container port it
// declares plus Options.ExtraPorts. A TCP server writes the pod's token
// (Token) and a newline, then echoes what it reads until EOF or until the
// connection is idle for Options.IdleTimeout. A UDP server answers every
// datagram with the token, a newline and the datagram. Servers run in this
// process: their sockets are created by a thread that temporarily enters the
// pod's namespace.
//
// # SCTP
//
// The kernel the bed is built for has no SCTP sockets, so SCTP is probed with
// raw packets: a raw IPPROTO_SCTP socket in the source pod's namespace sends
// an SCTP packet holding a single INIT chunk (verification tag 0, a random
// initiate tag unique to the probe, CRC32c checksum), and a raw socket for
// protocol 132 bound to the destination address in the destination pod's
// namespace watches for it, matching source address, ports and initiate
// tag. The INIT is resent a few times within the probe's timeout. A probe is
// reached when the INIT arrives and the destination pod serves that SCTP port;
// when it arrives at a pod that does not serve the port the outcome is
// refused (a real SCTP stack would answer with ABORT). Nothing answers the
// INIT, so no SCTP association is ever made and conntrack sees only the first
// packet of each flow; nftables matches such as "sctp dport" and conntrack
// treat it as a new SCTP flow. (Packets crossing veths are normally
// marked checksum-verified, so the kernel does not check the CRC32c here; it
// is computed as Linux does, least significant byte first.) Results carry
// Unprobed only when a probe cannot be made at all, such as from a pod with
// no address of the destination's family.
package testbed
