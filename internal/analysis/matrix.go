// Package analysis answers "who can reach whom, and why" from the policy
// form: the truth table over pod pairs and ports (computed over equivalence
// classes of pods, not pairs) and descriptions of policies and pods.
package analysis

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// Port is a protocol and port number.
type Port struct {
	Protocol corev1.Protocol
	Port     int32
}

func (p Port) String() string { return fmt.Sprintf("%s/%d", p.Protocol, p.Port) }

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
// numeric policy ports (both ends of a range) and container ports. With
// none, it returns TCP/80.
func DefaultPorts(set *policy.Set) []Port {
	seen := map[Port]bool{}
	for _, p := range set.Policies {
		for _, dir := range policy.Directions {
			for _, r := range p.Rules[dir] {
				for _, pt := range r.Ports {
					if pt.Name == "" && pt.Port != 0 {
						seen[Port{pt.Protocol, pt.Port}] = true
						seen[Port{pt.Protocol, pt.EndPort}] = true
					}
				}
			}
		}
	}
	for _, pod := range set.Cluster.Pods {
		for _, cp := range pod.Ports {
			seen[Port{cp.Protocol, cp.Port}] = true
		}
	}
	if len(seen) == 0 {
		return []Port{{corev1.ProtocolTCP, 80}}
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
}

// ComputeMatrix evaluates the policy set over every pair of active pods.
// Pods that share namespace, labels, named ports and their position in the
// partition of the address space by all ipBlocks behave alike, so it
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
	cells := newCellIndex(set)
	byKey := map[string]int32{}
	m.classOf = make([]int32, len(m.Pods))
	var key strings.Builder
	for i, p := range m.Pods {
		key.Reset()
		classKey(&key, p, cells)
		c, ok := byKey[key.String()]
		if !ok {
			c = int32(len(m.classes))
			byKey[key.String()] = c
			m.classes = append(m.classes, &class{rep: p})
		}
		m.classes[c].size++
		m.classOf[i] = c
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ev := newEvaluator(set, m.classes)
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
	}
	return m, nil
}

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
	out := make([]PortSummary, len(m.Ports))
	total := int64(len(m.Pods)) * int64(len(m.Pods))
	for k, port := range m.Ports {
		var allowed int64
		for s, row := range m.allowed[k] {
			ss := int64(m.classes[s].size)
			var sum int64
			row.each(func(d int) { sum += int64(m.classes[d].size) })
			allowed += ss * sum
			if !row.has(s) {
				allowed += ss // a pod may always reach itself
			}
		}
		out[k] = PortSummary{Port: port, Allowed: allowed, Denied: total - allowed}
	}
	return out
}

// cellIndex places addresses in the partition of the address space made by
// the boundaries of every ipBlock (CIDRs and exceptions): addresses in the
// same cell are inside exactly the same ipBlocks.
type cellIndex struct{ bounds []netip.Addr }

func newCellIndex(set *policy.Set) *cellIndex {
	seen := map[netip.Addr]bool{}
	add := func(p netip.Prefix) {
		seen[p.Addr()] = true
		if end := lastAddr(p).Next(); end.IsValid() {
			seen[end] = true
		}
	}
	for _, p := range set.Policies {
		for _, dir := range policy.Directions {
			for _, r := range p.Rules[dir] {
				for _, peer := range r.Peers {
					if peer.IPBlock != nil {
						add(peer.IPBlock.CIDR)
						for _, e := range peer.IPBlock.Except {
							add(e)
						}
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
	return ci
}

func (ci *cellIndex) cell(ip netip.Addr) int {
	return sort.Search(len(ci.bounds), func(i int) bool { return ip.Less(ci.bounds[i]) })
}

// lastAddr returns the last address of a prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().AsSlice()
	bitsLeft := p.Bits()
	for i := range a {
		switch {
		case bitsLeft >= 8:
			bitsLeft -= 8
		case bitsLeft > 0:
			a[i] |= byte(0xff >> uint(bitsLeft))
			bitsLeft = 0
		default:
			a[i] = 0xff
		}
	}
	out, _ := netip.AddrFromSlice(a)
	return out
}

// classKey writes what decides a pod's behaviour: namespace, labels, named
// ports, address cells (with family order) and hostNetwork.
func classKey(b *strings.Builder, p *cluster.Pod, cells *cellIndex) {
	b.WriteString(p.Namespace)
	b.WriteByte(0)
	b.WriteString(labels.Set(p.Labels).String())
	b.WriteByte(0)
	named := make([]string, 0, len(p.Ports))
	for _, cp := range p.Ports {
		if cp.Name != "" {
			named = append(named, fmt.Sprintf("%s/%s=%d", cp.Name, cp.Protocol, cp.Port))
		}
	}
	sort.Strings(named)
	b.WriteString(strings.Join(named, ","))
	b.WriteByte(0)
	for _, ip := range p.IPs {
		if ip.Is4() {
			b.WriteString("4:")
		} else {
			b.WriteString("6:")
		}
		b.WriteString(strconv.Itoa(cells.cell(ip)))
		b.WriteByte(',')
	}
	if p.HostNetwork {
		b.WriteString("\x00host")
	}
}
