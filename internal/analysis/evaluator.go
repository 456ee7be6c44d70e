package analysis

import (
	"net/netip"
	"sort"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// addrVariant says which of a class's addresses a peer sees: its primary
// address (it is the destination) or its address of the destination's
// family (it is the source).
type addrVariant uint8

const (
	primaryAddr addrVariant = iota
	v4Addr
	v6Addr
)

func (v addrVariant) of(p *cluster.Pod) netip.Addr {
	switch v {
	case v4Addr:
		return p.IPFor(netip.IPv4Unspecified())
	case v6Addr:
		return p.IPFor(netip.IPv6Unspecified())
	}
	return p.IPs[0]
}

// addrs holds a class's address per variant.
type addrs [3]netip.Addr

func variantFor(ip netip.Addr) addrVariant {
	if ip.Is4() {
		return v4Addr
	}
	return v6Addr
}

// evaluator computes, per class, the sets of classes allowed in a
// direction, reusing the policy form's own matching functions on one
// representative pod per class.
type evaluator struct {
	set      *policy.Set
	classes  []*class
	n        int
	all      bitset
	nsIndex  map[string][]int
	nsNames  []string
	podPeer  map[string]bitset
	nsSel    map[string][]string
	ipPeer   map[ipPeerKey]bitset
	named    map[namedKey]bitset
	isolated [2][][]*policy.Policy
	// conflicted[i] is set when class i's pods hold a conflicted address:
	// they are denied everything, match no pod peer and have no named
	// ports.
	conflicted []bool
	addrs      []addrs
	// ownNode[c], when set, is the host-network source classes on class
	// c's own node (policy.Set.FromOwnNode): allowed at ingress before
	// any policy. It is nil when no class has such sources.
	ownNode []bitset
	// tiers is set when the policy set has cluster-scoped policies.
	tiers *tierState
}

type ipPeerKey struct {
	block   *policy.IPBlock
	variant addrVariant
}

type namedKey struct {
	name string
	port Port
}

func newEvaluator(set *policy.Set, classes []*class) *evaluator {
	ev := &evaluator{
		set: set, classes: classes, n: len(classes),
		nsIndex: map[string][]int{},
		podPeer: map[string]bitset{},
		nsSel:   map[string][]string{},
		ipPeer:  map[ipPeerKey]bitset{},
		named:   map[namedKey]bitset{},
	}
	ev.all = newBitset(ev.n)
	ev.all.fill(ev.n)
	ev.addrs = make([]addrs, ev.n)
	ev.conflicted = make([]bool, ev.n)
	for i, c := range classes {
		for _, v := range []addrVariant{primaryAddr, v4Addr, v6Addr} {
			ev.addrs[i][v] = v.of(c.rep)
		}
		ev.conflicted[i] = set.Cluster.Conflicted(c.rep)
		if !c.rep.HostNetwork && !ev.conflicted[i] {
			ev.nsIndex[c.rep.Namespace] = append(ev.nsIndex[c.rep.Namespace], i)
		}
	}
	ev.ownNode = ownNodeSets(set, classes, ev.addrs)
	for name := range set.Cluster.Namespaces {
		ev.nsNames = append(ev.nsNames, name)
	}
	sort.Strings(ev.nsNames)
	for _, dir := range policy.Directions {
		ev.isolated[dir] = make([][]*policy.Policy, ev.n)
		for i, c := range classes {
			ev.isolated[dir][i] = set.Isolating(c.rep, dir)
		}
	}
	if len(set.ClusterPolicies) > 0 {
		ev.tiers = newTierState(ev)
	}
	return ev
}

// ownNodeSets returns, per pod-network class, the host-network classes
// on its own node (policy.Set.FromOwnNode, judged on the source address a
// destination of the class sees: of its primary address's family), or
// nil when there are none at all.
func ownNodeSets(set *policy.Set, classes []*class, as []addrs) []bitset {
	var hosts []int
	for i, c := range classes {
		if c.rep.HostNetwork {
			hosts = append(hosts, i)
		}
	}
	if len(hosts) == 0 {
		return nil
	}
	var out []bitset
	for d, c := range classes {
		if c.rep.HostNetwork || c.rep.NodeName == "" {
			continue
		}
		v := variantFor(c.rep.IPs[0])
		for _, s := range hosts {
			if _, ok := set.FromOwnNode(policy.Endpoint{Pod: classes[s].rep, IP: as[s][v]}, c.rep); !ok {
				continue
			}
			if out == nil {
				out = make([]bitset, len(classes))
			}
			if out[d] == nil {
				out[d] = newBitset(len(classes))
			}
			out[d].set(s)
		}
	}
	return out
}

// fromOwnNode reports whether peer class peer is the own node of class c
// in dir: only at ingress, where it is allowed before any policy.
func (ev *evaluator) fromOwnNode(dir policy.Direction, c, peer int) bool {
	return dir == policy.Ingress && ev.ownNode != nil && ev.ownNode[c] != nil && ev.ownNode[c].has(peer)
}

// sideSets returns, for every class, the classes it may talk to in dir on
// port: for Egress the destinations a source may send to, for Ingress the
// sources a destination accepts.
func (ev *evaluator) sideSets(dir policy.Direction, port Port) []bitset {
	out := make([]bitset, ev.n)
	backing := make([]uint64, ev.n*len(ev.all))
	for i := range out {
		out[i] = backing[i*len(ev.all) : (i+1)*len(ev.all)]
	}
	if ev.tiers != nil {
		ev.tiers.forPort(port)
	}
	for c := range ev.classes {
		if ev.conflicted[c] {
			continue // denied everything
		}
		pols := ev.isolated[dir][c]
		var admin *actionSets
		if ev.tiers != nil {
			admin = ev.tierSets(policy.AdminTier, dir, c)
		}
		if len(pols) == 0 {
			copy(out[c], ev.all)
			if ev.tiers != nil {
				// Allowed: what Admin accepts, and what neither Admin
				// nor Baseline denies.
				base := ev.tierSets(policy.BaselineTier, dir, c)
				for w := range out[c] {
					var aAcc, aDeny, bDeny uint64
					if admin != nil {
						aAcc, aDeny = admin.acc[w], admin.deny[w]
					}
					if base != nil {
						bDeny = base.deny[w]
					}
					out[c][w] &^= aDeny | (bDeny &^ aAcc)
				}
			}
			continue
		}
		ev.networkPolicySet(out[c], dir, port, c)
		if admin != nil {
			// NetworkPolicy decides what Admin left undecided or
			// passed.
			out[c].andNot(admin.deny)
			out[c].or(admin.acc)
		}
	}
	if dir == policy.Ingress {
		// A pod's own node reaches it whatever the policies say, a pod
		// holding a conflicted address included.
		for c, own := range ev.ownNode {
			if own != nil {
				out[c].or(own)
			}
		}
	}
	return out
}

// networkPolicySet adds to out the peer classes the NetworkPolicies
// isolating class c in dir allow on port.
func (ev *evaluator) networkPolicySet(out bitset, dir policy.Direction, port Port, c int) {
	rep := ev.classes[c].rep
	for _, p := range ev.isolated[dir][c] {
		for ri := range p.Rules[dir] {
			r := &p.Rules[dir][ri]
			if dir == policy.Ingress {
				if _, ok := r.MatchingPort(port.Protocol, port.Port, rep); !ok {
					continue
				}
				out.or(ev.ruleSet(r, variantFor(rep.IPs[0])))
				continue
			}
			mask, ok := ev.portMask(r, port)
			if !ok {
				continue
			}
			peers := ev.ruleSet(r, primaryAddr)
			if mask == nil {
				out.or(peers)
			} else {
				out.orAnd(peers, mask)
			}
		}
	}
}

// portMask returns the destination classes at which the rule's ports match
// port: nil for all of them, ok false for none.
func (ev *evaluator) portMask(r *policy.Rule, port Port) (bitset, bool) {
	if r.AllPorts() {
		return nil, true
	}
	var mask bitset
	for _, pt := range r.Ports {
		if pt.Protocol != port.Protocol {
			continue
		}
		if pt.Name == "" {
			if pt.Matches(port.Protocol, port.Port, nil) {
				return nil, true
			}
			continue
		}
		nm := ev.namedSet(pt.Name, port)
		if mask == nil {
			mask = newBitset(ev.n)
		}
		mask.or(nm)
	}
	return mask, mask != nil
}

func (ev *evaluator) namedSet(name string, port Port) bitset {
	k := namedKey{name, port}
	if b, ok := ev.named[k]; ok {
		return b
	}
	b := newBitset(ev.n)
	for i, c := range ev.classes {
		if ev.conflicted[i] {
			continue
		}
		if n, ok := c.rep.NamedPort(name, port.Protocol); ok && n == port.Port {
			b.set(i)
		}
	}
	ev.named[k] = b
	return b
}

// ruleSet returns the classes a rule's peers match.
func (ev *evaluator) ruleSet(r *policy.Rule, v addrVariant) bitset {
	if r.AllPeers() {
		return ev.all
	}
	if len(r.Peers) == 1 {
		return ev.peerSet(&r.Peers[0], v)
	}
	b := newBitset(ev.n)
	for i := range r.Peers {
		b.or(ev.peerSet(&r.Peers[i], v))
	}
	return b
}

func (ev *evaluator) peerSet(p *policy.Peer, v addrVariant) bitset {
	if p.IPBlock != nil {
		k := ipPeerKey{p.IPBlock, v}
		if b, ok := ev.ipPeer[k]; ok {
			return b
		}
		b := newBitset(ev.n)
		for i, c := range ev.classes {
			if p.Matches(c.rep, ev.addrs[i][v], nil) {
				b.set(i)
			}
		}
		ev.ipPeer[k] = b
		return b
	}
	key := "ns=" + p.Namespace
	if p.NamespaceSelector != nil {
		key = "nssel=" + p.NamespaceSelector.String()
	}
	key += "\x00" + p.PodSelector.String()
	if b, ok := ev.podPeer[key]; ok {
		return b
	}
	b := newBitset(ev.n)
	for _, ns := range ev.namespaces(p) {
		nsLabels := ev.set.Cluster.NamespaceLabels(ns)
		for _, i := range ev.nsIndex[ns] {
			if p.MatchesPod(ev.classes[i].rep, nsLabels) {
				b.set(i)
			}
		}
	}
	ev.podPeer[key] = b
	return b
}

// namespaces returns the namespaces a pod peer reaches into.
func (ev *evaluator) namespaces(p *policy.Peer) []string {
	if p.NamespaceSelector == nil {
		return []string{p.Namespace}
	}
	key := p.NamespaceSelector.String()
	if out, ok := ev.nsSel[key]; ok {
		return out
	}
	var out []string
	for _, name := range ev.nsNames {
		if p.MatchesNamespace(name, ev.set.Cluster.NamespaceLabels(name)) {
			out = append(out, name)
		}
	}
	ev.nsSel[key] = out
	return out
}
