package nft

import (
	"fmt"
	"slices"
	"strings"
)

// RevokedMark is the conntrack mark bit of flows revoked by a policy
// change: the base chains drop every packet of an entry that carries it,
// in both directions, before established traffic is accepted. The agent's
// conntrack revoker sets it on the entries of established flows that a
// sync denies.
const RevokedMark uint32 = 0x00200000

// baseRule is one rule of a base chain.
type baseRule struct {
	kind    baseKind
	fam     Family
	egress  bool  // for vmap rules: look up the source address
	icmp    uint8 // for baseND: the ICMPv6 type
	comment string
}

type baseKind uint8

const (
	baseRevoked baseKind = iota
	baseEstablished
	baseInvalid
	baseNewNotSYN
	baseND
	baseVMap
)

// ICMPv6 types of neighbour discovery.
const (
	icmpv6NeighborSolicit = 135
	icmpv6NeighborAdvert  = 136
)

func icmpv6Name(t uint8) string {
	if t == icmpv6NeighborSolicit {
		return "nd-neighbor-solicit"
	}
	return "nd-neighbor-advert"
}

// mapName returns the verdict map a vmap base rule looks up.
func (r baseRule) mapName() string {
	dir := "ingress"
	if r.egress {
		dir = "egress"
	}
	return fmt.Sprintf("%s%d", dir, r.fam)
}

// baseRules returns the rules of a base chain, in order.
func baseRules(chain string) []baseRule {
	rules := []baseRule{
		{kind: baseRevoked, comment: "netfence: flows revoked by a policy change"},
		{kind: baseEstablished, comment: "netfence: replies and related traffic of allowed connections"},
		{kind: baseInvalid, comment: "netfence: invalid packets"},
		{kind: baseVMap, fam: IPv4, egress: true, comment: "netfence: egress policy of local pods"},
		{kind: baseVMap, fam: IPv6, egress: true, comment: "netfence: egress policy of local pods"},
	}
	// Neighbour discovery is link-local signalling, not traffic policy
	// governs: a pod answers the node's neighbour solicitations (and
	// solicits the node) from its own address, which its egress policy
	// would drop, cutting all its IPv6 traffic (input). Routed pods never
	// forward it, but pods on one bridge resolve each other directly, and
	// with br_netfilter their bridged solicitations and advertisements
	// cross the forward hook, where an isolated pod's policy would drop
	// them (forward).
	rules = slices.Insert(rules, 3,
		baseRule{kind: baseND, icmp: icmpv6NeighborSolicit, comment: "netfence: IPv6 neighbour discovery"},
		baseRule{kind: baseND, icmp: icmpv6NeighborAdvert, comment: "netfence: IPv6 neighbour discovery"})
	if chain == ChainForward {
		// A TCP segment other than a SYN that conntrack would pick up as a
		// new flow is dropped: without this, a connection whose entry was
		// revoked (or never tracked) could be re-tracked mid-stream from
		// the side still allowed to initiate, and the revoked side's
		// packets would pass as its replies.
		rules = slices.Insert(rules, 3, baseRule{kind: baseNewNotSYN, comment: "netfence: TCP flows must start with a SYN"})
		rules = append(rules,
			baseRule{kind: baseVMap, fam: IPv4, comment: "netfence: ingress policy of local pods"},
			baseRule{kind: baseVMap, fam: IPv6, comment: "netfence: ingress policy of local pods"},
		)
	}
	return rules
}

func (r baseRule) text() string {
	var s string
	switch r.kind {
	case baseRevoked:
		s = fmt.Sprintf("ct mark & 0x%08x == 0x%08x drop", RevokedMark, RevokedMark)
	case baseEstablished:
		s = "ct state established,related accept"
	case baseInvalid:
		s = "ct state invalid drop"
	case baseNewNotSYN:
		s = "ct state new tcp flags != syn / fin,syn,rst,ack drop"
	case baseND:
		s = "icmpv6 type " + icmpv6Name(r.icmp) + " accept"
	default:
		field := "daddr"
		if r.egress {
			field = "saddr"
		}
		s = fmt.Sprintf("%s %s vmap @%s", r.fam.ip(), field, r.mapName())
	}
	return s + comment(r.comment)
}

func comment(c string) string {
	if c == "" {
		return ""
	}
	return fmt.Sprintf(" comment %q", c)
}

// text renders a per-pod rule in nft syntax.
func (r Rule) text(deny Deny) string {
	field, verdict := "saddr", "accept"
	if r.Egress {
		field, verdict = "daddr", "return"
	}
	var s string
	switch r.Kind {
	case RuleAddr:
		s = fmt.Sprintf("%s %s @%s %s", r.Family.ip(), field, r.Set, verdict)
	case RuleAddrPort:
		s = fmt.Sprintf("%s %s . meta l4proto . th dport @%s %s", r.Family.ip(), field, r.Set, verdict)
	case RuleVMapAddr:
		s = fmt.Sprintf("%s %s vmap @%s", r.Family.ip(), field, r.Set)
	case RuleVMapAddrPort:
		s = fmt.Sprintf("%s %s . meta l4proto . th dport vmap @%s", r.Family.ip(), field, r.Set)
	case RuleGoto:
		s = "goto " + r.Chain
	case RuleAddrPortGoto:
		s = fmt.Sprintf("%s %s . meta l4proto . th dport @%s goto %s", r.Family.ip(), field, r.Set, r.Chain)
	case RuleLogJump:
		s = fmt.Sprintf("limit rate %d/second burst %d packets jump %s", r.Rate, r.Burst, r.Chain)
	case RuleNFLog:
		s = fmt.Sprintf("log prefix %q group %d", r.Prefix, r.Group)
	case RuleDrop:
		s = "drop"
		if deny == DenyAudit {
			s = "return"
		}
	case RuleTCPReset:
		s = "meta l4proto tcp reject with tcp reset"
	case RuleDeny:
		switch deny {
		case DenyReject:
			s = "reject with icmpx admin-prohibited"
		case DenyAudit:
			s = "return"
		default:
			s = "drop"
		}
	}
	return s + comment(r.Comment)
}

// text renders a set or map element in nft syntax.
func (e Element) text(ports bool) string {
	s := e.Addrs.String()
	if ports {
		s += " . " + protoName(e.Proto) + " . " + fmt.Sprint(e.FromPort)
		if e.ToPort != e.FromPort {
			s += fmt.Sprintf("-%d", e.ToPort)
		}
	}
	s += comment(e.Comment)
	if e.Verdict.Kind != VerdictNone {
		s += " : " + e.Verdict.String()
	}
	return s
}

// Text renders the model as an `nft -f` script that replaces the table
// atomically: it creates the table if needed, deletes it and declares it
// anew. The output is deterministic.
func (m *Model) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\ntable inet %s {\n", TableName, TableName, TableName)
	// Sets and tier maps first, then the chains that use them, then the
	// maps that jump to the chains, then the base chains that use the
	// maps. (A tier map's element may go to a chain declared after it: nft
	// resolves references within the script.)
	for _, s := range m.Sets {
		kind, data := "set", ""
		if s.Map {
			kind, data = "map", " : verdict"
		}
		fmt.Fprintf(&b, "\t%s %s {\n", kind, s.Name)
		if s.Ports {
			fmt.Fprintf(&b, "\t\ttype %s . inet_proto . inet_service%s\n", s.Family.addrType(), data)
		} else {
			fmt.Fprintf(&b, "\t\ttype %s%s\n", s.Family.addrType(), data)
		}
		if !s.Exact {
			b.WriteString("\t\tflags interval\n")
		}
		if len(s.Elements) > 0 {
			b.WriteString("\t\telements = {\n")
			for i, e := range s.Elements {
				b.WriteString("\t\t\t" + e.text(s.Ports))
				if i+1 < len(s.Elements) {
					b.WriteString(",")
				}
				b.WriteString("\n")
			}
			b.WriteString("\t\t}\n")
		}
		b.WriteString("\t}\n")
	}
	for _, c := range m.Chains {
		fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
		for _, r := range c.Rules {
			b.WriteString("\t\t" + r.text(m.Deny) + "\n")
		}
		b.WriteString("\t}\n")
	}
	for _, vm := range m.Maps {
		fmt.Fprintf(&b, "\tmap %s {\n\t\ttype %s : verdict\n", vm.Name, vm.Family.addrType())
		if len(vm.Elements) > 0 {
			b.WriteString("\t\telements = {\n")
			for i, e := range vm.Elements {
				fmt.Fprintf(&b, "\t\t\t%s%s : jump %s", e.Addr, comment(e.Comment), e.Chain)
				if i+1 < len(vm.Elements) {
					b.WriteString(",")
				}
				b.WriteString("\n")
			}
			b.WriteString("\t\t}\n")
		}
		b.WriteString("\t}\n")
	}
	for _, name := range []string{ChainForward, ChainInput} {
		fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook %s priority filter; policy accept;\n", name, name)
		for _, r := range baseRules(name) {
			b.WriteString("\t\t" + r.text() + "\n")
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}
