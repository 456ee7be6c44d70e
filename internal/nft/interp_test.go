package nft

import (
	"fmt"
	"net/netip"

	"github.com/netfence/netfence/internal/policy"
)

// An interpreter of models: it runs a packet through the ruleset a Model
// describes as the kernel runs it (base chain, verdict map, jumps, gotos,
// set and map lookups), so that tests without root can hold the
// ruleset's meaning to the analyzer's. The kernel's own reading is held to
// the analyzer's with real traffic in internal/connectivity.

// packet is the first packet of a flow.
type packet struct {
	src, dst netip.Addr
	proto    uint8
	port     uint16
}

// hook is where a packet meets the table: forward (pod to pod, pod to
// outside, outside to pod) or input (pod to the node's own addresses).
type hook uint8

const (
	hookForward hook = iota
	hookInput
)

// interpVerdict is the outcome of running a chain.
type interpVerdict uint8

const (
	vContinue interpVerdict = iota // the chain ended or returned
	vAccept
	vDrop
)

// interp runs packets through a model.
type interp struct {
	m      *Model
	sets   map[string]*PeerSet
	chains map[string]*Chain
}

func newInterp(m *Model) *interp {
	in := &interp{m: m, sets: map[string]*PeerSet{}, chains: map[string]*Chain{}}
	for _, s := range m.Sets {
		in.sets[s.Name] = s
	}
	for _, c := range m.Chains {
		in.chains[c.Name] = c
	}
	return in
}

// allowed reports whether the packet passes, and a trace of the chains
// it went through.
func (in *interp) allowed(p packet, h hook) (bool, []string, error) {
	fam := familyOf(p.src)
	var trace []string
	lookupMap := func(egress bool) (string, bool) {
		name, addr := MapIngress4, p.dst
		switch {
		case egress && fam == IPv4:
			name, addr = MapEgress4, p.src
		case egress:
			name, addr = MapEgress6, p.src
		case fam == IPv6:
			name = MapIngress6
		}
		for _, e := range in.m.Map(name).Elements {
			if e.Addr == addr {
				return e.Chain, true
			}
		}
		return "", false
	}
	dirs := []bool{true, false}
	if h == hookInput {
		dirs = dirs[:1]
	}
	for _, egress := range dirs {
		chain, ok := lookupMap(egress)
		if !ok {
			continue
		}
		v, err := in.run(chain, p, egress, &trace, 0)
		if err != nil {
			return false, trace, err
		}
		switch v {
		case vDrop:
			return false, trace, nil
		case vAccept:
			return true, trace, nil
		}
	}
	return true, trace, nil
}

// run runs a chain (jumped to: a return comes back to the caller).
func (in *interp) run(name string, p packet, egress bool, trace *[]string, depth int) (interpVerdict, error) {
	if depth > 16 {
		return 0, fmt.Errorf("chains nest deeper than 16 at %s", name)
	}
	c := in.chains[name]
	if c == nil {
		return 0, fmt.Errorf("no chain %s", name)
	}
	*trace = append(*trace, name)
	fam := familyOf(p.src)
	peer := p.src
	if egress {
		peer = p.dst
	}
	for _, r := range c.Rules {
		if r.Egress != egress && r.Kind != RuleDeny && r.Kind != RuleTCPReset && r.Kind != RuleDrop && r.Kind != RuleLogJump && r.Kind != RuleNFLog {
			return 0, fmt.Errorf("chain %s: a rule of the other direction", name)
		}
		switch r.Kind {
		case RuleAddr, RuleAddrPort, RuleVMapAddr, RuleVMapAddrPort, RuleAddrPortGoto:
			if r.Family != fam {
				continue
			}
			s := in.sets[r.Set]
			if s == nil {
				return 0, fmt.Errorf("chain %s looks up missing set %s", name, r.Set)
			}
			e, ok := s.find(peer, p.proto, p.port)
			if !ok {
				continue
			}
			if r.Kind == RuleAddrPortGoto {
				return in.run(r.Chain, p, egress, trace, depth+1)
			}
			if r.Kind == RuleAddr || r.Kind == RuleAddrPort {
				if egress {
					return vContinue, nil
				}
				return vAccept, nil
			}
			switch e.Verdict.Kind {
			case VerdictAccept:
				return vAccept, nil
			case VerdictDrop:
				return vDrop, nil
			case VerdictReturn:
				return vContinue, nil
			case VerdictGoto:
				return in.run(e.Verdict.Chain, p, egress, trace, depth+1)
			}
			return 0, fmt.Errorf("set %s: element %s has no verdict", s.Name, e.text(s.Ports))
		case RuleGoto:
			return in.run(r.Chain, p, egress, trace, depth+1)
		case RuleTCPReset:
			if p.proto == 6 {
				return vDrop, nil
			}
		case RuleDeny, RuleDrop:
			if in.m.Deny == DenyAudit {
				return vContinue, nil
			}
			return vDrop, nil
		}
	}
	return vContinue, nil
}

// find returns the element holding the packet's peer (and protocol and
// port, for a ports set), as a lookup finds it.
func (s *PeerSet) find(peer netip.Addr, proto uint8, port uint16) (Element, bool) {
	for _, e := range s.Elements {
		if !e.Addrs.Contains(peer) {
			continue
		}
		if s.Ports && (e.Proto != proto || port < e.FromPort || port > e.ToPort) {
			continue
		}
		return e, true
	}
	return Element{}, false
}

// protoPort is a protocol and port a test probes.
type protoPort struct {
	proto uint8
	port  uint16
}

func (pp protoPort) String() string {
	return fmt.Sprintf("%s/%d", policy.ProtocolOf(pp.proto), pp.port)
}
