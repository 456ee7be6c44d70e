// Package analysis answers "who can reach whom, and why" from the policy
// form: the truth table over pod pairs and ports (computed over equivalence
// classes of pods, not pairs) and descriptions of policies and pods.
package analysis

import (
	"context"
	"fmt"
	"math/bits"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/iprange"
	"github.com/netfence/netfence/internal/policy"
)

// Port is a protocol and port number.
type Port = cluster.Port

// ParsePort parses "TCP/80" (the protocol is case-insensitive; a bare
// number means TCP).
func ParsePort(s string) (Port, error) {
	proto, num, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		proto, num = "TCP", proto
	}
	pr := corev1.Protocol(strings.ToUpper(proto))
	switch pr {
	case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
	default:
		return Port{}, fmt.Errorf("port %q: protocol must be TCP, UDP or SCTP", s)
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > 65535 {
		return Port{}, fmt.Errorf("port %q: must be PROTOCOL/NUMBER with a number from 1 to 65535", s)
	}
	return Port{Protocol: pr, Port: int32(n)}, nil
}

// DefaultPorts returns every port a policy or a pod's container ports name:
// numeric ports of NetworkPolicies and cluster policies (both ends of a
// range) and container ports. With none, it returns TCP/80.
func DefaultPorts(set *policy.Set) []Port {
	seen := map[Port]bool{}
	for _, p := range set.Policies {
		for _, dir := range policy.Directions {
			for _, r := range p.Rules[dir] {
				for _, pt := range r.Ports {
					if pt.Name == "" && pt.Port != 0 {
						seen[Port{Protocol: pt.Protocol, Port: pt.Port}] = true
						seen[Port{Protocol: pt.Protocol, Port: pt.EndPort}] = true
					}
				}
			}
		}
	}
	for _, p := range set.ClusterPolicies {
		for _, dir := range policy.Directions {
			for _, r := range p.Rules[dir] {
				for _, pt := range r.Ports {
					if pt.Name == "" && pt.From >= 1 {
						seen[Port{Protocol: pt.Protocol, Port: pt.From}] = true
					}
					if pt.Name == "" && pt.To >= 1 {
						seen[Port{Protocol: pt.Protocol, Port: pt.To}] = true
					}
				}
			}
		}
	}
	for _, pod := range set.Cluster.Pods {
		for _, cp := range pod.Ports {
			seen[Port{Protocol: cp.Protocol, Port: cp.Port}] = true
		}
	}
	if len(seen) == 0 {
		return []Port{{Protocol: corev1.ProtocolTCP, Port: 80}}
	}
	out := make([]Port, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	SortPorts(out)
	return out
}

// SortPorts sorts ports by protocol, then number.
func SortPorts(ps []Port) {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Protocol != ps[j].Protocol {
			return ps[i].Protocol < ps[j].Protocol
		}
		return ps[i].Port < ps[j].Port
	})
}

// InactivePod is a pod left out of the matrix and why.
type InactivePod struct {
	Pod    *cluster.Pod
	Reason string
}

// Matrix is the truth table of a cluster: for every ordered pair of active
// pods (a pod with itself included) and every port, whether a connection is
// allowed, with egress at the source and ingress at the destination
// separately.
type Matrix struct {
	Ports []Port
	// Pods are the active pods, sorted by namespace and name.
	Pods []*cluster.Pod
	// Inactive pods are left out.
	Inactive []InactivePod

	classOf []int32
	classes []*class
	// egress[k][s] is the set of destination classes class s may send to
	// on port k; ingress[k][d] the set of source classes class d accepts.
	egress, ingress [][]bitset
	// allowed[k][s] = egress[k][s] ∩ transpose(ingress[k])[s].
	allowed [][]bitset
	// summary is computed while building when CountsOnly is set.
	summary []PortSummary
	// ev is kept to explain cells when the set has cluster policies (and
	// CountsOnly is not set); explain holds the rows explained for one
	// port.
	ev      *evaluator
	explain *explainer

	// Warnings, when set, are written by WriteJSON as "warnings".
	Warnings []string
}

type class struct {
	rep  *cluster.Pod
	size int
}

// Options restricts a matrix.
type Options struct {
	Ports []Port
	// Namespaces, when set, restricts the pods to these namespaces (all
	// policies and pods still count as peers).
	Namespaces []string
	// CountsOnly keeps only the per-port counts (Summary): memory stays at
	// one port's tables instead of all of them. Result may not be called.
	CountsOnly bool
}

// ComputeMatrix evaluates the policy set over every pair of active pods.
// Pods that share namespace, the labels and named ports some policy looks
// at, the set of ipBlocks and cluster policy networks their addresses fall
// in, the node selectors matching the nodes that have their addresses,
// whether they hold a conflicted address (cluster.AddressConflict) and,
// when host-network pods are among them, their node (ingress from a pod's
// own node is always allowed: policy.Set.FromOwnNode) behave alike, so it
// evaluates classes of pods, not pairs.
func ComputeMatrix(ctx context.Context, set *policy.Set, opts Options) (*Matrix, error) {
	m := &Matrix{Ports: opts.Ports}
	if len(m.Ports) == 0 {
		m.Ports = DefaultPorts(set)
	}
	wantNS := map[string]bool{}
	for _, ns := range opts.Namespaces {
		wantNS[ns] = true
	}
	active, inactive := set.Cluster.ActivePods()
	for _, p := range inactive {
		if len(wantNS) > 0 && !wantNS[p.Namespace] {
			continue
		}
		_, why := p.Active()
		m.Inactive = append(m.Inactive, InactivePod{Pod: p, Reason: why})
	}
	for _, p := range active {
		if len(wantNS) == 0 || wantNS[p.Namespace] {
			m.Pods = append(m.Pods, p)
		}
	}
	m.classes, m.classOf = classify(set, m.Pods, newCellIndex(set))
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ev := newEvaluator(set, m.classes)
	if ev.tiers != nil && !opts.CountsOnly {
		m.ev = ev
	}
	m.egress = make([][]bitset, len(m.Ports))
	m.ingress = make([][]bitset, len(m.Ports))
	m.allowed = make([][]bitset, len(m.Ports))
	for k, port := range m.Ports {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m.egress[k] = ev.sideSets(policy.Egress, port)
		m.ingress[k] = ev.sideSets(policy.Ingress, port)
		in := transpose(m.ingress[k], len(m.classes))
		m.allowed[k] = in
		for s := range in {
			for w := range in[s] {
				in[s][w] &= m.egress[k][s][w]
			}
		}
		if opts.CountsOnly {
			m.summary = append(m.summary, m.countPort(k))
			m.egress[k], m.ingress[k], m.allowed[k] = nil, nil, nil
		}
	}
	return m, nil
}

// classify puts pods into classes of pods that behave alike (see
// ComputeMatrix) and returns the classes and each pod's class.
func classify(set *policy.Set, pods []*cluster.Pod, cells *cellIndex) ([]*class, []int32) {
	rel := newRelevance(set)
	trel := newTierRelevance(set)
	homes := nodeHomes(set.Cluster, pods)
	byKey := map[string]int32{}
	var classes []*class
	classOf := make([]int32, len(pods))
	var key strings.Builder
	for i, p := range pods {
		key.Reset()
		classKey(&key, p, rel, cells, set.Cluster.Conflicted(p))
		trel.writeKey(&key, p)
		homes.writeKey(&key, set.Cluster, p)
		c, ok := byKey[key.String()]
		if !ok {
			c = int32(len(classes))
			byKey[key.String()] = c
			classes = append(classes, &class{rep: p})
		}
		classes[c].size++
		classOf[i] = c
	}
	return classes, classOf
}

// Explain returns what decided each direction of the cell of pod index
// from to pod index to on port index k: the layer and the cluster policy
// rule. Both are empty when the set has no cluster policies (or the
// matrix was computed with CountsOnly) and for a pod with itself. Explain
// is not safe for concurrent use.
func (m *Matrix) Explain(from, to, k int) (egress, ingress Decision) {
	if m.ev == nil || from == to {
		return Decision{}, Decision{}
	}
	s, d := int(m.classOf[from]), int(m.classOf[to])
	m.ev.tiers.forPort(m.Ports[k])
	if len(m.classes) > maxExplainClasses {
		return m.ev.decide(policy.Egress, s, d), m.ev.decide(policy.Ingress, d, s)
	}
	x := m.explain
	if x == nil || x.port != k {
		x = &explainer{port: k, rows: [2]map[int][]uint32{{}, {}}}
		m.explain = x
	}
	return x.decision(x.row(m.ev, policy.Egress, s)[d]), x.decision(x.row(m.ev, policy.Ingress, d)[s])
}

// Tiered reports whether the matrix was computed with cluster policies
// (and can Explain its cells).
func (m *Matrix) Tiered() bool { return m.ev != nil }

// Classes returns the number of equivalence classes the pods fell into.
func (m *Matrix) Classes() int { return len(m.classes) }

// Result returns whether pod index from may connect to pod index to on
// port index k, and the two sides.
func (m *Matrix) Result(from, to, k int) (allowed, egress, ingress bool) {
	if from == to {
		return true, true, true
	}
	s, d := int(m.classOf[from]), int(m.classOf[to])
	egress = m.egress[k][s].has(d)
	ingress = m.ingress[k][d].has(s)
	return egress && ingress, egress, ingress
}

// PortSummary counts ordered pod pairs (a pod with itself included) for one
// port.
type PortSummary struct {
	Port    Port
	Allowed int64
	Denied  int64
}

// Summary counts allowed and denied pairs per port without visiting pairs.
func (m *Matrix) Summary() []PortSummary {
	if m.summary != nil {
		return m.summary
	}
	out := make([]PortSummary, len(m.Ports))
	for k := range m.Ports {
		out[k] = m.countPort(k)
	}
	return out
}

func (m *Matrix) countPort(k int) PortSummary {
	total := int64(len(m.Pods)) * int64(len(m.Pods))
	sizes := make([]int64, len(m.classes))
	for i, c := range m.classes {
		sizes[i] = int64(c.size)
	}
	var allowed int64
	for s, row := range m.allowed[k] {
		var sum int64
		for wi, w := range row {
			for w != 0 {
				sum += sizes[wi<<6+bits.TrailingZeros64(w)]
				w &= w - 1
			}
		}
		allowed += sizes[s] * sum
		if !row.has(s) {
			allowed += sizes[s] // a pod may always reach itself
		}
	}
	return PortSummary{Port: m.Ports[k], Allowed: allowed, Denied: total - allowed}
}

// cellIndex places addresses in the partition of the address space made by
// the boundaries of every ipBlock (CIDRs and exceptions), and names each cell
// by the set of ipBlocks containing it: addresses with the same signature are
// inside exactly the same ipBlocks.
type cellIndex struct {
	bounds []netip.Addr
	// sig[i] is the signature of cell i, the cell of addresses from
	// bounds[i-1] (inclusive) to bounds[i] (exclusive).
	sig []int
}

func newCellIndex(set *policy.Set) *cellIndex {
	// 0.0.0.0 and :: keep the families in separate cells.
	seen := map[netip.Addr]bool{netip.IPv4Unspecified(): true, netip.IPv6Unspecified(): true}
	var blocks []*policy.IPBlock
	add := func(p netip.Prefix) {
		seen[p.Addr()] = true
		if end := iprange.Last(p).Next(); end.IsValid() {
			seen[end] = true
		}
	}
	for _, p := range set.Policies {
		for _, dir := range policy.Directions {
			for _, r := range p.Rules[dir] {
				for _, peer := range r.Peers {
					if peer.IPBlock != nil {
						blocks = append(blocks, peer.IPBlock)
						add(peer.IPBlock.CIDR)
						for _, e := range peer.IPBlock.Except {
							add(e)
						}
					}
				}
			}
		}
	}
	for _, p := range set.ClusterPolicies {
		for _, dir := range policy.Directions {
			for _, r := range p.Rules[dir] {
				for _, peer := range r.Peers {
					for _, n := range peer.Networks {
						// A network is a block without exceptions.
						blocks = append(blocks, &policy.IPBlock{CIDR: n})
						add(n)
					}
				}
			}
		}
	}
	ci := &cellIndex{}
	for a := range seen {
		ci.bounds = append(ci.bounds, a)
	}
	sort.Slice(ci.bounds, func(i, j int) bool { return ci.bounds[i].Less(ci.bounds[j]) })
	// Cell 0 lies before 0.0.0.0 and holds no address; cell i > 0 starts at
	// bounds[i-1], which stands for the whole cell.
	ci.sig = make([]int, len(ci.bounds)+1)
	ids := map[string]int{"": 0}
	var key []byte
	for i := 1; i <= len(ci.bounds); i++ {
		key = key[:0]
		for bi, b := range blocks {
			if b.Contains(ci.bounds[i-1]) {
				key = strconv.AppendInt(key, int64(bi), 36)
				key = append(key, ',')
			}
		}
		id, ok := ids[string(key)]
		if !ok {
			id = len(ids)
			ids[string(key)] = id
		}
		ci.sig[i] = id
	}
	return ci
}

// signature returns the id of the set of ipBlocks containing ip.
func (ci *cellIndex) signature(ip netip.Addr) int {
	return ci.sig[sort.Search(len(ci.bounds), func(i int) bool { return ip.Less(ci.bounds[i]) })]
}

// relevance is what of a pod any policy can see: the label keys some pod
// selector mentions and the (name, protocol) of named ports some rule uses.
// Other labels and ports cannot change a verdict, so classes ignore them.
type relevance struct {
	keys  []string
	named []policy.Port
}

func newRelevance(set *policy.Set) *relevance {
	keys := map[string]bool{}
	named := map[policy.Port]bool{}
	addSel := func(sel labels.Selector) {
		reqs, _ := sel.Requirements()
		for _, r := range reqs {
			keys[r.Key()] = true
		}
	}
	for _, p := range set.ClusterPolicies {
		addSel(p.Pods)
		for _, dir := range policy.Directions {
			for _, r := range p.Rules[dir] {
				for _, peer := range r.Peers {
					if peer.Pod != nil {
						addSel(peer.Pod.PodSelector)
					}
				}
			}
		}
	}
	for _, p := range set.Policies {
		addSel(p.Selector)
		for _, dir := range policy.Directions {
			for _, r := range p.Rules[dir] {
				for _, peer := range r.Peers {
					if peer.PodSelector != nil {
						addSel(peer.PodSelector)
					}
				}
				for _, pt := range r.Ports {
					if pt.Name != "" {
						named[policy.Port{Protocol: pt.Protocol, Name: pt.Name}] = true
					}
				}
			}
		}
	}
	rel := &relevance{}
	for k := range keys {
		rel.keys = append(rel.keys, k)
	}
	sort.Strings(rel.keys)
	for n := range named {
		rel.named = append(rel.named, n)
	}
	sort.Slice(rel.named, func(i, j int) bool {
		if rel.named[i].Name != rel.named[j].Name {
			return rel.named[i].Name < rel.named[j].Name
		}
		return rel.named[i].Protocol < rel.named[j].Protocol
	})
	return rel
}

// classKey writes what decides a pod's behaviour: namespace, the relevant
// labels and named ports, the ipBlock signature of each address (in family
// order), hostNetwork, and whether it holds a conflicted address (such a
// pod is denied everything and is seen by ipBlocks only).
func classKey(b *strings.Builder, p *cluster.Pod, rel *relevance, cells *cellIndex, conflicted bool) {
	b.WriteString(p.Namespace)
	b.WriteByte(0)
	for _, k := range rel.keys {
		if v, ok := p.Labels[k]; ok {
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(v)
		}
		b.WriteByte(',')
	}
	b.WriteByte(0)
	for _, n := range rel.named {
		if port, ok := p.NamedPort(n.Name, n.Protocol); ok {
			b.WriteString(strconv.Itoa(int(port)))
		}
		b.WriteByte(',')
	}
	b.WriteByte(0)
	for _, ip := range p.IPs {
		if ip.Is4() {
			b.WriteString("4:")
		} else {
			b.WriteString("6:")
		}
		b.WriteString(strconv.Itoa(cells.signature(ip)))
		b.WriteByte(',')
	}
	if p.HostNetwork {
		b.WriteString("\x00host")
	}
	if conflicted {
		b.WriteString("\x00conflict")
	}
}

// homes are the nodes host-network pods belong to, by NodeName or by an
// address a Node object has (policy.Set.FromOwnNode): the nodes whose pods
// host-network sources reach whatever the policies say. Pods on other
// nodes, and every pod when no host-network pod is among the pods, are
// not split by node.
type homes map[string]bool

func nodeHomes(c *cluster.Cluster, pods []*cluster.Pod) homes {
	var h homes
	for _, p := range pods {
		if !p.HostNetwork {
			continue
		}
		if h == nil {
			h = homes{}
		}
		if p.NodeName != "" {
			h[p.NodeName] = true
		}
		for _, ip := range p.IPs {
			for _, n := range c.NodesWithAddr(ip) {
				h[n.Name] = true
			}
		}
	}
	return h
}

// writeKey adds to a class key the node of a pod-network pod when some
// host-network pod belongs to it, and for a host-network pod its node and,
// per address, the nodes that have it.
func (h homes) writeKey(b *strings.Builder, c *cluster.Cluster, p *cluster.Pod) {
	if len(h) == 0 {
		return
	}
	if !p.HostNetwork {
		if h[p.NodeName] {
			b.WriteString("\x00node=")
			b.WriteString(p.NodeName)
		}
		return
	}
	b.WriteString("\x00node=")
	b.WriteString(p.NodeName)
	for _, ip := range p.IPs {
		b.WriteByte(0)
		for _, n := range c.NodesWithAddr(ip) {
			b.WriteString(n.Name)
			b.WriteByte(',')
		}
	}
}
