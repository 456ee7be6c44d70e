// Package policy compiles Kubernetes NetworkPolicies into netfence's one
// policy form and evaluates flows against it. The analyzer (matrix, check,
// describe) and the nftables renderer both read this form; nothing else in
// netfence interprets a NetworkPolicy.
package policy

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/validation"
)

// Direction is the direction of traffic as seen from a pod.
type Direction uint8

const (
	// Ingress is traffic towards the pod.
	Ingress Direction = iota
	// Egress is traffic leaving the pod.
	Egress
)

// Directions lists both directions, for loops.
var Directions = [2]Direction{Ingress, Egress}

func (d Direction) String() string {
	if d == Egress {
		return "Egress"
	}
	return "Ingress"
}

// Port is one entry of a rule's ports.
type Port struct {
	Protocol corev1.Protocol
	// Port..EndPort is the numeric range; both are 0 when the entry has no
	// port (every port of the protocol) or a named port.
	Port, EndPort int32
	// Name is a named port, resolved against the destination pod's
	// container ports.
	Name string
}

// AllPorts reports whether the entry matches every port of its protocol.
func (p Port) AllPorts() bool { return p.Name == "" && p.Port == 0 }

// Matches reports whether the entry matches traffic to proto/port on dst;
// dst is nil for an address outside the cluster's pods, where named ports
// never match.
func (p Port) Matches(proto corev1.Protocol, port int32, dst *cluster.Pod) bool {
	if p.Protocol != proto {
		return false
	}
	switch {
	case p.Name != "":
		if dst == nil {
			return false
		}
		n, ok := dst.NamedPort(p.Name, proto)
		return ok && n == port
	case p.Port == 0:
		return true
	}
	return p.Port <= port && port <= p.EndPort
}

func (p Port) String() string {
	switch {
	case p.Name != "":
		return fmt.Sprintf("%s/%s", p.Protocol, p.Name)
	case p.Port == 0:
		return fmt.Sprintf("%s/any", p.Protocol)
	case p.EndPort != p.Port:
		return fmt.Sprintf("%s/%d-%d", p.Protocol, p.Port, p.EndPort)
	}
	return fmt.Sprintf("%s/%d", p.Protocol, p.Port)
}

// IPBlock is a CIDR minus exceptions.
type IPBlock struct {
	CIDR   netip.Prefix
	Except []netip.Prefix
}

// Contains reports whether ip is in the block.
func (b *IPBlock) Contains(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !b.CIDR.Contains(ip) {
		return false
	}
	for _, e := range b.Except {
		if e.Contains(ip) {
			return false
		}
	}
	return true
}

func (b *IPBlock) String() string {
	s := b.CIDR.String()
	if len(b.Except) > 0 {
		ex := make([]string, len(b.Except))
		for i, e := range b.Except {
			ex[i] = e.String()
		}
		s += " except " + strings.Join(ex, ", ")
	}
	return s
}

// Peer is one entry of a rule's from or to: either pods (selected by
// namespace and pod labels) or an IPBlock.
type Peer struct {
	// IPBlock, when set, makes this an address peer; the other fields are
	// then unused.
	IPBlock *IPBlock
	// Namespace is the policy's own namespace, used when NamespaceSelector
	// is nil.
	Namespace string
	// NamespaceSelector selects namespaces; nil means the policy's own.
	NamespaceSelector labels.Selector
	// PodSelector selects pods in those namespaces; never nil.
	PodSelector labels.Selector
}

// MatchesNamespace reports whether the peer's namespace part accepts a
// namespace with the given name and labels.
func (p *Peer) MatchesNamespace(name string, nsLabels labels.Set) bool {
	if p.NamespaceSelector == nil {
		return name == p.Namespace
	}
	return p.NamespaceSelector.Matches(nsLabels)
}

// MatchesPod reports whether a pod is this peer, given its namespace's
// labels. hostNetwork pods are peers by address only.
func (p *Peer) MatchesPod(pod *cluster.Pod, nsLabels labels.Set) bool {
	if p.IPBlock != nil || pod.HostNetwork {
		return false
	}
	return p.MatchesNamespace(pod.Namespace, nsLabels) && p.PodSelector.Matches(pod.Labels)
}

// Matches reports whether an endpoint (a pod and the address it uses, or
// an external address with pod nil) is this peer.
func (p *Peer) Matches(pod *cluster.Pod, ip netip.Addr, nsLabels labels.Set) bool {
	if p.IPBlock != nil {
		if !ip.IsValid() {
			// An endpoint known by name only (a domain) could have any
			// address: only a block of a whole family without
			// exceptions surely holds it, as for cluster policies'
			// networks.
			return p.IPBlock.CIDR.Bits() == 0 && len(p.IPBlock.Except) == 0
		}
		return p.IPBlock.Contains(ip)
	}
	return pod != nil && p.MatchesPod(pod, nsLabels)
}

// Rule is one ingress or egress rule.
type Rule struct {
	// Index is the rule's position in spec.ingress or spec.egress.
	Index int
	// Peers are OR-ed; empty means every peer, inside or outside the cluster.
	Peers []Peer
	// Ports are OR-ed; empty means every port of every protocol.
	Ports []Port
}

// AllPeers reports whether the rule applies to every peer.
func (r *Rule) AllPeers() bool { return len(r.Peers) == 0 }

// AllPorts reports whether the rule applies to all traffic.
func (r *Rule) AllPorts() bool { return len(r.Ports) == 0 }

// MatchingPort returns the index of the first port entry that matches
// proto/port at dst, or -1; AllPorts rules return -1 with ok true.
func (r *Rule) MatchingPort(proto corev1.Protocol, port int32, dst *cluster.Pod) (index int, ok bool) {
	if r.AllPorts() {
		return -1, true
	}
	for i, p := range r.Ports {
		if p.Matches(proto, port, dst) {
			return i, true
		}
	}
	return -1, false
}

// Policy is a compiled NetworkPolicy.
type Policy struct {
	Namespace, Name string
	// Selector selects the pods of Namespace the policy applies to.
	Selector labels.Selector
	// Types says whether the policy isolates pods for Ingress and Egress.
	Types [2]bool
	// Rules are the ingress and egress rules, indexed by Direction.
	Rules [2][]Rule
	// Source is the policy as read.
	Source *networkingv1.NetworkPolicy
}

// Key returns "namespace/name".
func (p *Policy) Key() string { return p.Namespace + "/" + p.Name }

// Selects reports whether the policy applies to a pod (in any direction).
// hostNetwork pods are not subject to NetworkPolicy.
func (p *Policy) Selects(pod *cluster.Pod) bool {
	return !pod.HostNetwork && pod.Namespace == p.Namespace && p.Selector.Matches(pod.Labels)
}

// Compile turns a NetworkPolicy into the policy form. It validates the
// policy first and refuses an invalid one whole.
func Compile(np *networkingv1.NetworkPolicy) (*Policy, error) {
	if errs := validation.NetworkPolicy(np); len(errs) > 0 {
		return nil, fmt.Errorf("NetworkPolicy %s/%s: %w", np.Namespace, np.Name, errs.ToAggregate())
	}
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		return nil, fmt.Errorf("NetworkPolicy %s/%s: spec.podSelector: %w", np.Namespace, np.Name, err)
	}
	p := &Policy{Namespace: np.Namespace, Name: np.Name, Selector: sel, Source: np}
	p.Types = PolicyTypes(&np.Spec)
	for i, r := range np.Spec.Ingress {
		rule, err := compileRule(i, np.Namespace, r.From, r.Ports)
		if err != nil {
			return nil, fmt.Errorf("NetworkPolicy %s/%s: spec.ingress[%d]: %w", np.Namespace, np.Name, i, err)
		}
		p.Rules[Ingress] = append(p.Rules[Ingress], rule)
	}
	for i, r := range np.Spec.Egress {
		rule, err := compileRule(i, np.Namespace, r.To, r.Ports)
		if err != nil {
			return nil, fmt.Errorf("NetworkPolicy %s/%s: spec.egress[%d]: %w", np.Namespace, np.Name, i, err)
		}
		p.Rules[Egress] = append(p.Rules[Egress], rule)
	}
	return p, nil
}

// PolicyTypes returns the directions a policy spec isolates: as written in
// policyTypes, or when that is empty, Ingress always and Egress when the
// spec has egress rules (the API server's defaulting).
func PolicyTypes(spec *networkingv1.NetworkPolicySpec) [2]bool {
	var t [2]bool
	if len(spec.PolicyTypes) == 0 {
		t[Ingress] = true
		t[Egress] = len(spec.Egress) > 0
		return t
	}
	for _, pt := range spec.PolicyTypes {
		switch pt {
		case networkingv1.PolicyTypeIngress:
			t[Ingress] = true
		case networkingv1.PolicyTypeEgress:
			t[Egress] = true
		}
	}
	return t
}

func compileRule(index int, namespace string, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) (Rule, error) {
	r := Rule{Index: index}
	for _, np := range ports {
		p := Port{Protocol: corev1.ProtocolTCP}
		if np.Protocol != nil {
			p.Protocol = *np.Protocol
		}
		if np.Port != nil {
			if np.Port.Type == intstr.String {
				p.Name = np.Port.StrVal
			} else {
				p.Port, p.EndPort = np.Port.IntVal, np.Port.IntVal
				if np.EndPort != nil {
					p.EndPort = *np.EndPort
				}
			}
		}
		r.Ports = append(r.Ports, p)
	}
	for j, np := range peers {
		var peer Peer
		if np.IPBlock != nil {
			// validation.ParseCIDR reads legacy forms (leading zeros,
			// IPv4-mapped IPv6) as implementations do: the prefix has
			// net.IPNet.Contains semantics, IPv4 or IPv6, never mapped.
			b := &IPBlock{}
			var err error
			if b.CIDR, err = validation.ParseCIDR(np.IPBlock.CIDR); err != nil {
				return r, fmt.Errorf("peer %d: ipBlock.cidr: %w", j, err)
			}
			for k, e := range np.IPBlock.Except {
				ex, err := validation.ParseCIDR(e)
				if err != nil {
					return r, fmt.Errorf("peer %d: ipBlock.except[%d]: %w", j, k, err)
				}
				b.Except = append(b.Except, ex)
			}
			peer.IPBlock = b
		} else {
			peer.Namespace = namespace
			peer.PodSelector = labels.Everything()
			var err error
			if np.PodSelector != nil {
				if peer.PodSelector, err = metav1.LabelSelectorAsSelector(np.PodSelector); err != nil {
					return r, fmt.Errorf("peer %d: podSelector: %w", j, err)
				}
			}
			if np.NamespaceSelector != nil {
				if peer.NamespaceSelector, err = metav1.LabelSelectorAsSelector(np.NamespaceSelector); err != nil {
					return r, fmt.Errorf("peer %d: namespaceSelector: %w", j, err)
				}
			}
		}
		r.Peers = append(r.Peers, peer)
	}
	return r, nil
}
