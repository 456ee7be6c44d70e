package cluster

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// Kinds of cluster-scoped policy netfence reads, and their API group.
const (
	PolicyAPIGroup    = "policy.networking.k8s.io"
	KindCNP           = "ClusterNetworkPolicy"
	KindANP           = "AdminNetworkPolicy"
	KindBANP          = "BaselineAdminNetworkPolicy"
	baselineANPOffset = 1001
)

// Node is the part of a Node object cluster-scoped policy looks at: its
// labels (node peers select them) and its addresses.
type Node struct {
	Name   string
	Labels labels.Set
	// Addrs are the node's InternalIP and ExternalIP addresses, sorted,
	// each once; host-network pods share them.
	Addrs []netip.Addr
}

// NodeFromAPI converts a Kubernetes node to the model: InternalIP and
// ExternalIP entries of status.addresses that parse as addresses
// (Hostname and DNS entries name no address).
func NodeFromAPI(n *corev1.Node) *Node {
	out := &Node{Name: n.Name, Labels: labels.Set(n.Labels)}
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil && !slices.Contains(out.Addrs, ip.Unmap()) {
			out.Addrs = append(out.Addrs, ip.Unmap())
		}
	}
	slices.SortFunc(out.Addrs, netip.Addr.Compare)
	return out
}

// SameNode reports whether two versions of a node are equal in what
// policy looks at.
func SameNode(a, b *Node) bool {
	return a == b || (a.Name == b.Name && maps.Equal(a.Labels, b.Labels) && slices.Equal(a.Addrs, b.Addrs))
}

// ClusterPolicy is a cluster-scoped policy as read: a
// ClusterNetworkPolicy (policy.networking.k8s.io v1beta1 or v1alpha2,
// identical schemas), or an AdminNetworkPolicy or
// BaselineAdminNetworkPolicy (v1alpha1) converted to the v1beta1 form.
type ClusterPolicy struct {
	// Kind and APIVersion are what the policy was read as.
	Kind, APIVersion string
	Name             string
	Labels           labels.Set
	Annotations      map[string]string
	UID              string
	// Spec is the policy in ClusterNetworkPolicy v1beta1 form. An
	// AdminNetworkPolicy is an Admin policy of its priority; a
	// BaselineAdminNetworkPolicy a Baseline policy ordered after every
	// Baseline ClusterNetworkPolicy (see Priority).
	Spec v1beta1.ClusterNetworkPolicySpec
}

// ShortKind returns the kind's short name: cnp, anp or banp.
func ShortKind(kind string) string {
	switch kind {
	case KindANP:
		return "anp"
	case KindBANP:
		return "banp"
	}
	return "cnp"
}

// Key returns "cnp/NAME", "anp/NAME" or "banp/NAME": names are unique per
// kind, not across kinds.
func (p *ClusterPolicy) Key() string { return ShortKind(p.Kind) + "/" + p.Name }

// Priority returns the policy's place in its tier, lower first: the
// spec's priority, and 1001 (after every ClusterNetworkPolicy, whose
// priorities stop at 1000) for a BaselineAdminNetworkPolicy, which has
// none.
func (p *ClusterPolicy) Priority() int32 {
	if p.Kind == KindBANP {
		return baselineANPOffset
	}
	return p.Spec.Priority
}

// SameClusterPolicy reports whether two versions of a cluster policy mean
// the same: identity, labels, annotations and a semantically equal spec.
// The version it was read as does not matter (v1alpha2 and v1beta1 are one
// resource).
func SameClusterPolicy(a, b *ClusterPolicy) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a == b || (a.Kind == b.Kind && a.Name == b.Name && maps.Equal(a.Labels, b.Labels) &&
		maps.Equal(a.Annotations, b.Annotations) && equality.Semantic.DeepEqual(a.Spec, b.Spec))
}

func compareClusterPolicies(a, b *ClusterPolicy) int { return strings.Compare(a.Key(), b.Key()) }

func compareNodes(a, b *Node) int { return strings.Compare(a.Name, b.Name) }

func meta(kind, apiVersion string, m *metav1.ObjectMeta) ClusterPolicy {
	return ClusterPolicy{Kind: kind, APIVersion: apiVersion, Name: m.Name, Labels: labels.Set(m.Labels),
		Annotations: m.Annotations, UID: string(m.UID)}
}

// FromCNP converts a v1beta1 ClusterNetworkPolicy.
func FromCNP(p *v1beta1.ClusterNetworkPolicy) *ClusterPolicy {
	out := meta(KindCNP, PolicyAPIGroup+"/v1beta1", &p.ObjectMeta)
	out.Spec = *p.Spec.DeepCopy()
	return &out
}

// FromCNPv1alpha2 converts a v1alpha2 ClusterNetworkPolicy: the schema is
// v1beta1's, field for field.
func FromCNPv1alpha2(p *v1alpha2.ClusterNetworkPolicy) (*ClusterPolicy, error) {
	out := meta(KindCNP, PolicyAPIGroup+"/v1alpha2", &p.ObjectMeta)
	if err := convertJSON(&p.Spec, &out.Spec); err != nil {
		return nil, fmt.Errorf("ClusterNetworkPolicy %s: converting v1alpha2 to v1beta1: %w", p.Name, err)
	}
	return &out, nil
}

// FromANP converts a v1alpha1 AdminNetworkPolicy: an Admin tier policy
// with its priority; action Allow is Accept.
func FromANP(p *v1alpha1.AdminNetworkPolicy) *ClusterPolicy {
	out := meta(KindANP, PolicyAPIGroup+"/v1alpha1", &p.ObjectMeta)
	out.Spec = v1beta1.ClusterNetworkPolicySpec{Tier: v1beta1.AdminTier, Priority: p.Spec.Priority, Subject: subjectFromV1alpha1(p.Spec.Subject)}
	for _, r := range p.Spec.Ingress {
		out.Spec.Ingress = append(out.Spec.Ingress, v1beta1.ClusterNetworkPolicyIngressRule{
			Name: r.Name, Action: actionFromV1alpha1(string(r.Action)), From: ingressPeersFromV1alpha1(r.From), Protocols: portsFromV1alpha1(r.Ports)})
	}
	for _, r := range p.Spec.Egress {
		rule := v1beta1.ClusterNetworkPolicyEgressRule{Name: r.Name, Action: actionFromV1alpha1(string(r.Action)), Protocols: portsFromV1alpha1(r.Ports)}
		for _, peer := range r.To {
			rule.To = append(rule.To, v1beta1.ClusterNetworkPolicyEgressPeer{
				Namespaces: peer.Namespaces.DeepCopy(), Pods: podsFromV1alpha1(peer.Pods), Nodes: peer.Nodes.DeepCopy(),
				Networks: cidrsFromV1alpha1(peer.Networks), DomainNames: domainsFromV1alpha1(peer.DomainNames)})
		}
		out.Spec.Egress = append(out.Spec.Egress, rule)
	}
	return &out
}

// FromBANP converts a v1alpha1 BaselineAdminNetworkPolicy: a Baseline
// tier policy after every Baseline ClusterNetworkPolicy.
func FromBANP(p *v1alpha1.BaselineAdminNetworkPolicy) *ClusterPolicy {
	out := meta(KindBANP, PolicyAPIGroup+"/v1alpha1", &p.ObjectMeta)
	out.Spec = v1beta1.ClusterNetworkPolicySpec{Tier: v1beta1.BaselineTier, Subject: subjectFromV1alpha1(p.Spec.Subject)}
	for _, r := range p.Spec.Ingress {
		out.Spec.Ingress = append(out.Spec.Ingress, v1beta1.ClusterNetworkPolicyIngressRule{
			Name: r.Name, Action: actionFromV1alpha1(string(r.Action)), From: ingressPeersFromV1alpha1(r.From), Protocols: portsFromV1alpha1(r.Ports)})
	}
	for _, r := range p.Spec.Egress {
		rule := v1beta1.ClusterNetworkPolicyEgressRule{Name: r.Name, Action: actionFromV1alpha1(string(r.Action)), Protocols: portsFromV1alpha1(r.Ports)}
		for _, peer := range r.To {
			rule.To = append(rule.To, v1beta1.ClusterNetworkPolicyEgressPeer{
				Namespaces: peer.Namespaces.DeepCopy(), Pods: podsFromV1alpha1(peer.Pods), Nodes: peer.Nodes.DeepCopy(),
				Networks: cidrsFromV1alpha1(peer.Networks)})
		}
		out.Spec.Egress = append(out.Spec.Egress, rule)
	}
	return &out
}

func actionFromV1alpha1(a string) v1beta1.ClusterNetworkPolicyRuleAction {
	if a == string(v1alpha1.AdminNetworkPolicyRuleActionAllow) {
		return v1beta1.ClusterNetworkPolicyRuleActionAccept
	}
	return v1beta1.ClusterNetworkPolicyRuleAction(a)
}

func subjectFromV1alpha1(s v1alpha1.AdminNetworkPolicySubject) v1beta1.ClusterNetworkPolicySubject {
	return v1beta1.ClusterNetworkPolicySubject{Namespaces: s.Namespaces.DeepCopy(), Pods: podsFromV1alpha1(s.Pods)}
}

func podsFromV1alpha1(p *v1alpha1.NamespacedPod) *v1beta1.NamespacedPod {
	if p == nil {
		return nil
	}
	return &v1beta1.NamespacedPod{NamespaceSelector: *p.NamespaceSelector.DeepCopy(), PodSelector: *p.PodSelector.DeepCopy()}
}

func ingressPeersFromV1alpha1(ps []v1alpha1.AdminNetworkPolicyIngressPeer) []v1beta1.ClusterNetworkPolicyIngressPeer {
	out := make([]v1beta1.ClusterNetworkPolicyIngressPeer, len(ps))
	for i, p := range ps {
		out[i] = v1beta1.ClusterNetworkPolicyIngressPeer{Namespaces: p.Namespaces.DeepCopy(), Pods: podsFromV1alpha1(p.Pods)}
	}
	return out
}

func cidrsFromV1alpha1(cs []v1alpha1.CIDR) []v1beta1.CIDR {
	if cs == nil {
		return nil
	}
	out := make([]v1beta1.CIDR, len(cs))
	for i, c := range cs {
		out[i] = v1beta1.CIDR(c)
	}
	return out
}

func domainsFromV1alpha1(ds []v1alpha1.DomainName) []v1beta1.DomainName {
	if ds == nil {
		return nil
	}
	out := make([]v1beta1.DomainName, len(ds))
	for i, d := range ds {
		out[i] = v1beta1.DomainName(d)
	}
	return out
}

// portsFromV1alpha1 converts v1alpha1 ports (nil: all traffic) to
// protocols. A protocol other than TCP, UDP and SCTP (the v1alpha1 CRD has
// no enum for it) becomes an entry with no protocol set, which
// policy.CompileCluster refuses: never read as another protocol.
func portsFromV1alpha1(ps *[]v1alpha1.AdminNetworkPolicyPort) []v1beta1.ClusterNetworkPolicyProtocol {
	if ps == nil {
		return nil
	}
	out := make([]v1beta1.ClusterNetworkPolicyProtocol, 0, len(*ps))
	for _, p := range *ps {
		switch {
		case p.NamedPort != nil:
			out = append(out, v1beta1.ClusterNetworkPolicyProtocol{DestinationNamedPort: *p.NamedPort})
		case p.PortNumber != nil:
			out = append(out, protocolPort(p.PortNumber.Protocol, &v1beta1.Port{Number: p.PortNumber.Port}))
		case p.PortRange != nil:
			out = append(out, protocolPort(p.PortRange.Protocol, &v1beta1.Port{Range: &v1beta1.PortRange{Start: p.PortRange.Start, End: p.PortRange.End}}))
		}
	}
	return out
}

func protocolPort(proto corev1.Protocol, port *v1beta1.Port) v1beta1.ClusterNetworkPolicyProtocol {
	switch proto {
	case corev1.ProtocolUDP:
		return v1beta1.ClusterNetworkPolicyProtocol{UDP: &v1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: port}}
	case corev1.ProtocolSCTP:
		return v1beta1.ClusterNetworkPolicyProtocol{SCTP: &v1beta1.ClusterNetworkPolicyProtocolSCTP{DestinationPort: port}}
	case corev1.ProtocolTCP, "":
		return v1beta1.ClusterNetworkPolicyProtocol{TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: port}}
	}
	return v1beta1.ClusterNetworkPolicyProtocol{}
}

func convertJSON(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}
