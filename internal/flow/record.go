// Package flow explains the packets the dataplane denies: the kernel logs
// each (rate limited) to an NFLOG group with the generation of the
// ruleset that dropped it (nft.LogOptions); a Reader decodes the packet,
// evaluates its flow against the policy.Set of that generation exactly as
// `netfence check` does, and publishes a Record to a Hub, which fans
// records out to subscribers (the monitor socket, Serve) without ever
// blocking on a slow one.
package flow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/netfence/netfence/internal/analysis"
	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// Record is one explained flow, the NDJSON contract of `netfence monitor
// -o json`. Egress and Ingress are the side objects of `netfence check -o
// json` for the same flow.
type Record struct {
	Time     time.Time `json:"time"`
	Node     string    `json:"node"`
	Verdict  string    `json:"verdict"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	SrcIP    string    `json:"srcIP"`
	DstIP    string    `json:"dstIP"`
	SrcPort  int       `json:"srcPort"`
	Protocol string    `json:"protocol"`
	Port     int       `json:"port"`
	// DeniedAt is where the kernel denied the packet: "egress" (at the
	// source) or "ingress" (at the destination); empty when allowed.
	DeniedAt string              `json:"deniedAt"`
	Egress   analysis.SideResult `json:"egress"`
	Ingress  analysis.SideResult `json:"ingress"`
	// Pending, present when the snapshot stages policies
	// (netfence.io/mode: staged), is the verdict with them enforced.
	Pending *Pending `json:"pending,omitempty"`
	Count   int      `json:"count"`
}

// Pending is a record's verdict with the staged policies enforced.
type Pending struct {
	Verdict  string              `json:"verdict"`
	DeniedAt string              `json:"deniedAt,omitempty"`
	Egress   analysis.SideResult `json:"egress"`
	Ingress  analysis.SideResult `json:"ingress"`
}

// Verdicts of a record.
const (
	Denied  = "denied"
	Allowed = "allowed"
)

// Packet is what a record needs of a logged packet.
type Packet struct {
	Src, Dst         netip.Addr
	Proto            uint8
	SrcPort, DstPort uint16
}

var errShort = errors.New("truncated packet")

// Decode reads the network and transport headers of an IPv4 or IPv6
// packet; ports are set for TCP, UDP and SCTP (the first fragment).
func Decode(b []byte) (Packet, error) {
	var p Packet
	if len(b) < 1 {
		return p, errShort
	}
	var l4 []byte
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return p, errShort
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl {
			return p, errShort
		}
		p.Src = netip.AddrFrom4([4]byte(b[12:16]))
		p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
		p.Proto = b[9]
		if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
			return p, nil // a later fragment: no ports
		}
		l4 = b[ihl:]
	case 6:
		if len(b) < 40 {
			return p, errShort
		}
		p.Src = netip.AddrFrom16([16]byte(b[8:24]))
		p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
		next, rest := b[6], b[40:]
		// Skip the extension headers (hop-by-hop, routing, destination
		// options; a fragment header's first fragment), at most a few.
		for i := 0; i < 8; i++ {
			switch next {
			case 0, 43, 60:
				if len(rest) < 8 {
					return p, errShort
				}
				n := (int(rest[1]) + 1) * 8
				if len(rest) < n {
					return p, errShort
				}
				next, rest = rest[0], rest[n:]
				continue
			case 44:
				if len(rest) < 8 {
					return p, errShort
				}
				if binary.BigEndian.Uint16(rest[2:4])&0xfff8 != 0 {
					p.Proto = rest[0]
					return p, nil
				}
				next, rest = rest[0], rest[8:]
				continue
			}
			break
		}
		p.Proto, l4 = next, rest
	default:
		return p, fmt.Errorf("not an IP packet (version %d)", b[0]>>4)
	}
	switch p.Proto {
	case 6, 17, 132:
		if len(l4) < 4 {
			return p, errShort
		}
		p.SrcPort = binary.BigEndian.Uint16(l4[0:2])
		p.DstPort = binary.BigEndian.Uint16(l4[2:4])
	}
	return p, nil
}

// protoName names a protocol as Kubernetes does (TCP, UDP, SCTP), or
// ICMP, ICMPv6, or its number.
func protoName(n uint8) string {
	switch n {
	case 6:
		return "TCP"
	case 17:
		return "UDP"
	case 132:
		return "SCTP"
	case 1:
		return "ICMP"
	case 58:
		return "ICMPv6"
	}
	return strconv.Itoa(int(n))
}

// Explain builds the record of a packet that the ruleset of set decided:
// denied (in direction dir) or allowed. The sides are what `netfence check
// --from SRC --to DST --port PROTO/PORT -o json` says; a protocol
// NetworkPolicy does not name (ICMP, ...) has empty sides.
func Explain(set *policy.Set, node string, at time.Time, p Packet, denied bool, dir policy.Direction) Record {
	r := Record{Time: at, Node: node, Verdict: Allowed, From: p.Src.String(), To: p.Dst.String(),
		SrcIP: p.Src.String(), DstIP: p.Dst.String(), SrcPort: int(p.SrcPort), Protocol: protoName(p.Proto), Port: int(p.DstPort), Count: 1}
	if denied {
		r.Verdict = Denied
		r.DeniedAt = dirWord(dir)
	}
	if set == nil {
		return r
	}
	if pod := set.Cluster.PodByIP(p.Src); pod != nil {
		r.From = pod.Key()
	}
	if pod := set.Cluster.PodByIP(p.Dst); pod != nil {
		r.To = pod.Key()
	}
	switch p.Proto {
	case 6, 17, 132:
	default:
		return r
	}
	if p.DstPort == 0 {
		return r
	}
	res, err := analysis.Check(set, analysis.CheckRequest{From: p.Src.String(), To: p.Dst.String(),
		Port: r.Protocol + "/" + strconv.Itoa(int(p.DstPort))})
	if err != nil {
		return r
	}
	r.Egress, r.Ingress = res.Egress, res.Ingress
	if pr := res.Pending; pr != nil {
		r.Pending = &Pending{Verdict: Denied, DeniedAt: pr.DeniedAt, Egress: pr.Egress, Ingress: pr.Ingress}
		if pr.Allowed {
			r.Pending.Verdict = Allowed
		}
	}
	return r
}

// Audited is the record of a packet the ruleset audited instead of
// denying (agent --audit, nft.DenyAudit: logged, then let through): the
// verdict is what happened, allowed, and Pending says what enforcing
// would do: denied, and where, with the sides of r. When the snapshot
// stages policies, Pending already holds the verdict with them enforced
// as well, and is kept.
func (r Record) Audited() Record {
	if r.Verdict != Denied {
		return r
	}
	if r.Pending == nil {
		r.Pending = &Pending{Verdict: Denied, DeniedAt: r.DeniedAt, Egress: r.Egress, Ingress: r.Ingress}
	}
	r.Verdict, r.DeniedAt = Allowed, ""
	return r
}

// isLocal reports whether ip is the address of an active pod-network pod
// of node (of any node with allLocal), as nft.Options picks the pods it
// renders.
func isLocal(c *cluster.Cluster, ip netip.Addr, node string, allLocal bool) bool {
	pod := c.PodByIP(ip)
	if pod == nil || pod.HostNetwork {
		return false
	}
	if ok, _ := pod.Active(); !ok {
		return false
	}
	return allLocal || pod.NodeName == node
}

func dirWord(d policy.Direction) string {
	if d == policy.Egress {
		return "egress"
	}
	return "ingress"
}
