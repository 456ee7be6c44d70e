// Package randcluster generates small random clusters that exercise every
// feature of NetworkPolicy and of cluster-scoped policy, for property tests
// (the analyzer against the normalised forms) and differential tests (the
// analyzer against real traffic through the dataplane).
package randcluster

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/validation"
)

// Options say what a random cluster holds besides pods and NetworkPolicies.
type Options struct {
	// ClusterPolicies adds 0-4 random cluster policies of both tiers, with
	// equal priorities at times, and a node with host-network pods.
	ClusterPolicies bool
}

// New returns random cluster number id (id appears in panics only).
func New(r *rand.Rand, id int, opts Options) *cluster.Cluster {
	nss, pods, pols := randomClusterV1(r, id)
	parts := cluster.Parts{Namespaces: nss, Pods: pods, Policies: pols}
	if opts.ClusterPolicies {
		parts.Nodes = []*cluster.Node{
			{Name: "node-1", Labels: labels.Set{"kubernetes.io/hostname": "node-1", "role": "worker"}, Addrs: []netip.Addr{netip.MustParseAddr("10.244.255.1"), netip.MustParseAddr("fd00:10:244:ff::1")}},
		}
		// A host-network pod on the node, serving on the node's address.
		parts.Pods = append(parts.Pods, &cluster.Pod{Namespace: nss[0].Name, Name: "host", Labels: labels.Set{"app": "a"}, Phase: corev1.PodRunning,
			NodeName: "node-1", HostNetwork: true, IPs: []netip.Addr{netip.MustParseAddr("10.244.255.1"), netip.MustParseAddr("fd00:10:244:ff::1")},
			Ports: []cluster.ContainerPort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}})
		for i, n := 0, r.IntN(5); i < n; i++ {
			parts.ClusterPolicies = append(parts.ClusterPolicies, randomCNP(r, i, pods))
		}
	}
	return cluster.NewWith(parts)
}

func randomCNP(r *rand.Rand, i int, pods []*cluster.Pod) *cluster.ClusterPolicy {
	spec := v1beta1.ClusterNetworkPolicySpec{Tier: v1beta1.AdminTier, Priority: int32(r.IntN(3))}
	if r.IntN(2) == 0 {
		spec.Tier = v1beta1.BaselineTier
	}
	if r.IntN(2) == 0 {
		spec.Subject.Namespaces = randomNamespaceSelector(r)
	} else {
		spec.Subject.Pods = &v1beta1.NamespacedPod{NamespaceSelector: *randomNamespaceSelector(r), PodSelector: *randomSelector(r)}
	}
	actions := []v1beta1.ClusterNetworkPolicyRuleAction{v1beta1.ClusterNetworkPolicyRuleActionAccept, v1beta1.ClusterNetworkPolicyRuleActionDeny, v1beta1.ClusterNetworkPolicyRuleActionPass}
	for j, n := 0, r.IntN(4); j < n; j++ {
		rule := v1beta1.ClusterNetworkPolicyIngressRule{Action: actions[r.IntN(3)], Protocols: randomProtocols(r, true)}
		for k, m := 0, 1+r.IntN(2); k < m; k++ {
			var p v1beta1.ClusterNetworkPolicyIngressPeer
			if r.IntN(2) == 0 {
				p.Namespaces = randomNamespaceSelector(r)
			} else {
				p.Pods = &v1beta1.NamespacedPod{NamespaceSelector: *randomNamespaceSelector(r), PodSelector: *randomSelector(r)}
			}
			rule.From = append(rule.From, p)
		}
		spec.Ingress = append(spec.Ingress, rule)
	}
	for j, n := 0, r.IntN(4); j < n; j++ {
		peers := randomEgressPeers(r, pods)
		named := true
		for _, p := range peers {
			if p.Networks != nil || p.Nodes != nil {
				named = false // the CRD forbids named ports with these peers
			}
		}
		spec.Egress = append(spec.Egress, v1beta1.ClusterNetworkPolicyEgressRule{Action: actions[r.IntN(3)], To: peers, Protocols: randomProtocols(r, named)})
	}
	return &cluster.ClusterPolicy{Kind: cluster.KindCNP, APIVersion: cluster.PolicyAPIGroup + "/v1beta1", Name: fmt.Sprintf("cnp%d", i), Spec: spec}
}

func randomEgressPeers(r *rand.Rand, pods []*cluster.Pod) []v1beta1.ClusterNetworkPolicyEgressPeer {
	var out []v1beta1.ClusterNetworkPolicyEgressPeer
	for k, m := 0, 1+r.IntN(2); k < m; k++ {
		var p v1beta1.ClusterNetworkPolicyEgressPeer
		switch r.IntN(6) {
		case 0:
			p.Namespaces = randomNamespaceSelector(r)
		case 1, 2:
			p.Pods = &v1beta1.NamespacedPod{NamespaceSelector: *randomNamespaceSelector(r), PodSelector: *randomSelector(r)}
		case 3:
			a := pods[r.IntN(len(pods))].IPs[0].As4()
			p.Networks = []v1beta1.CIDR{v1beta1.CIDR(netip.PrefixFrom(netip.AddrFrom4(a), 24+r.IntN(9)).Masked().String())}
			if r.IntN(3) == 0 {
				p.Networks = append(p.Networks, "fd00:10:244::/64")
			}
		case 4:
			p.Networks = []v1beta1.CIDR{[]v1beta1.CIDR{"0.0.0.0/0", "10.244.0.0/16", "::/0"}[r.IntN(3)]}
		case 5:
			p.Nodes = &metav1.LabelSelector{}
			if r.IntN(2) == 0 {
				p.Nodes.MatchLabels = map[string]string{"role": []string{"worker", "control-plane"}[r.IntN(2)]}
			}
		}
		out = append(out, p)
	}
	return out
}

func randomProtocols(r *rand.Rand, named bool) []v1beta1.ClusterNetworkPolicyProtocol {
	var out []v1beta1.ClusterNetworkPolicyProtocol
	for i, n := 0, r.IntN(3); i < n; i++ {
		var p v1beta1.ClusterNetworkPolicyProtocol
		switch r.IntN(6) {
		case 0:
			p.TCP = &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Number: 80}}
		case 1:
			p.TCP = &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Range: &v1beta1.PortRange{Start: 79, End: 8000 + r.Int32N(200)}}}
		case 2:
			p.UDP = &v1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &v1beta1.Port{Number: 53}}
		case 3:
			p.SCTP = &v1beta1.ClusterNetworkPolicyProtocolSCTP{DestinationPort: &v1beta1.Port{Range: &v1beta1.PortRange{Start: 8999, End: 9001}}}
		case 4:
			if named {
				p.DestinationNamedPort = []string{"http", "dns"}[r.IntN(2)]
			} else {
				p.TCP = &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Number: 8080}}
			}
		case 5:
			p.TCP = &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Number: 8080}}
		}
		out = append(out, p)
	}
	return out
}

// randomClusterV1 builds a small cluster exercising every NetworkPolicy
// feature: selectors with expressions, namespace selectors, both in one
// peer, ipBlocks with except (IPv4 and IPv6), named ports, endPort, UDP,
// SCTP, both directions, explicit and defaulted policyTypes.
func randomClusterV1(r *rand.Rand, id int) (nss []*cluster.Namespace, pods []*cluster.Pod, pols []*networkingv1.NetworkPolicy) {
	nsNames := []string{"alpha", "beta", "gamma"}[:2+r.IntN(2)]
	for _, n := range nsNames {
		l := labels.Set{}
		if r.IntN(2) == 0 {
			l["team"] = []string{"x", "y"}[r.IntN(2)]
		}
		if r.IntN(2) == 0 {
			l["env"] = []string{"prod", "dev"}[r.IntN(2)]
		}
		nss = append(nss, &cluster.Namespace{Name: n, Labels: l, Defined: true})
	}
	npods := 3 + r.IntN(4)
	for i := 0; i < npods; i++ {
		l := labels.Set{}
		if r.IntN(4) != 0 {
			l["app"] = []string{"a", "b", "c"}[r.IntN(3)]
		}
		if r.IntN(2) == 0 {
			l["role"] = []string{"x", "y"}[r.IntN(2)]
		}
		p := &cluster.Pod{
			Namespace: nsNames[r.IntN(len(nsNames))],
			Name:      fmt.Sprintf("p%d", i),
			Labels:    l,
			Phase:     corev1.PodRunning,
			NodeName:  "node-1",
			IPs:       []netip.Addr{netip.AddrFrom4([4]byte{10, 244, byte(i / 4), byte(2 + (i%4)*4 + r.IntN(3))})},
		}
		if r.IntN(4) == 0 {
			p.IPs = append(p.IPs, netip.MustParseAddr(fmt.Sprintf("fd00:10:244::%x", 0x10+i)))
		}
		// Named ports: "http" maps to different numbers on different pods.
		switch r.IntN(3) {
		case 0:
			p.Ports = append(p.Ports, cluster.ContainerPort{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80})
		case 1:
			p.Ports = append(p.Ports, cluster.ContainerPort{Name: "http", Protocol: corev1.ProtocolTCP, Port: 8080})
		}
		if r.IntN(2) == 0 {
			p.Ports = append(p.Ports, cluster.ContainerPort{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53})
		}
		pods = append(pods, p)
	}
	for i, n := 0, 1+r.IntN(4); i < n; i++ {
		np := &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: nsNames[r.IntN(len(nsNames))], Name: fmt.Sprintf("pol%d", i)},
			Spec:       networkingv1.NetworkPolicySpec{PodSelector: *randomSelector(r)},
		}
		switch r.IntN(4) {
		case 0:
			np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		case 1:
			np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
		case 2:
			np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
		}
		for j, m := 0, r.IntN(3); j < m; j++ {
			np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: randomPeers(r, pods), Ports: randomPorts(r)})
		}
		for j, m := 0, r.IntN(3); j < m; j++ {
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: randomPeers(r, pods), Ports: randomPorts(r)})
		}
		if errs := validation.NetworkPolicy(np); len(errs) > 0 {
			panic(fmt.Sprintf("cluster %d: generated an invalid policy: %v", id, errs))
		}
		pols = append(pols, np)
	}
	return nss, pods, pols
}

func randomSelector(r *rand.Rand) *metav1.LabelSelector {
	s := &metav1.LabelSelector{}
	switch r.IntN(5) {
	case 0: // empty: everything
	case 1, 2:
		s.MatchLabels = map[string]string{"app": []string{"a", "b", "c"}[r.IntN(3)]}
	case 3:
		op := []metav1.LabelSelectorOperator{metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn, metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist}[r.IntN(4)]
		req := metav1.LabelSelectorRequirement{Key: []string{"app", "role"}[r.IntN(2)], Operator: op}
		if op == metav1.LabelSelectorOpIn || op == metav1.LabelSelectorOpNotIn {
			req.Values = []string{"a", "x"}[:1+r.IntN(2)]
		}
		s.MatchExpressions = []metav1.LabelSelectorRequirement{req}
	case 4:
		s.MatchLabels = map[string]string{"role": []string{"x", "y"}[r.IntN(2)]}
	}
	return s
}

func randomNamespaceSelector(r *rand.Rand) *metav1.LabelSelector {
	s := &metav1.LabelSelector{}
	switch r.IntN(4) {
	case 0:
	case 1:
		s.MatchLabels = map[string]string{"team": []string{"x", "y"}[r.IntN(2)]}
	case 2:
		s.MatchLabels = map[string]string{cluster.MetadataNameLabel: []string{"alpha", "beta"}[r.IntN(2)]}
	case 3:
		s.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpExists}}
	}
	return s
}

func randomPeers(r *rand.Rand, pods []*cluster.Pod) []networkingv1.NetworkPolicyPeer {
	var out []networkingv1.NetworkPolicyPeer
	for i, n := 0, r.IntN(3); i < n; i++ {
		var p networkingv1.NetworkPolicyPeer
		switch r.IntN(5) {
		case 0:
			p.PodSelector = randomSelector(r)
		case 1:
			p.NamespaceSelector = randomNamespaceSelector(r)
		case 2:
			p.PodSelector, p.NamespaceSelector = randomSelector(r), randomNamespaceSelector(r)
		case 3:
			// A block around a random pod's v4 address, maybe with a hole.
			a := pods[r.IntN(len(pods))].IPs[0].As4()
			bits := 24 + r.IntN(7)
			cidr := netip.PrefixFrom(netip.AddrFrom4(a), bits).Masked()
			b := &networkingv1.IPBlock{CIDR: cidr.String()}
			if r.IntN(2) == 0 && bits < 30 {
				b.Except = []string{netip.PrefixFrom(netip.AddrFrom4(a), bits+1+r.IntN(32-bits)).Masked().String()}
			}
			p.IPBlock = b
		case 4:
			if r.IntN(2) == 0 {
				p.IPBlock = &networkingv1.IPBlock{CIDR: "fd00:10:244::/64", Except: []string{"fd00:10:244::10/126"}}
			} else {
				p.IPBlock = &networkingv1.IPBlock{CIDR: "10.244.0.0/16", Except: []string{"10.244.0.0/28"}}
			}
		}
		out = append(out, p)
	}
	return out
}

func randomPorts(r *rand.Rand) []networkingv1.NetworkPolicyPort {
	var out []networkingv1.NetworkPolicyPort
	tcp, udp, sctp := corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP
	for i, n := 0, r.IntN(3); i < n; i++ {
		var p networkingv1.NetworkPolicyPort
		switch r.IntN(7) {
		case 0:
			p.Port = ptr(intstr.FromInt32(80))
		case 1:
			p.Protocol, p.Port = &tcp, ptr(intstr.FromInt32(8080))
		case 2:
			p.Port = ptr(intstr.FromString("http"))
		case 3:
			p.Protocol, p.Port = &udp, ptr(intstr.FromInt32(53))
		case 4:
			p.Protocol, p.Port = &udp, ptr(intstr.FromString("dns"))
		case 5:
			p.Port, p.EndPort = ptr(intstr.FromInt32(79)), ptr(int32(8000+r.Int32N(200)))
		case 6:
			p.Protocol = []*corev1.Protocol{&sctp, &udp}[r.IntN(2)]
		}
		out = append(out, p)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// Describe writes out a cluster for a failing test's log: pods with their
// labels, addresses, ports and namespace labels, nodes, NetworkPolicies and
// cluster policies rule by rule.
func Describe(c *cluster.Cluster) string {
	var b strings.Builder
	for _, p := range c.Pods {
		fmt.Fprintf(&b, "pod %s labels=%v ips=%v ports=%v host=%v ns-labels=%v\n", p.Key(), p.Labels, p.IPs, p.Ports, p.HostNetwork, c.NamespaceLabels(p.Namespace))
	}
	for _, n := range c.Nodes {
		fmt.Fprintf(&b, "node %s labels=%v addrs=%v\n", n.Name, n.Labels, n.Addrs)
	}
	for _, np := range c.Policies {
		fmt.Fprintf(&b, "policy %s/%s: %+v\n", np.Namespace, np.Name, np.Spec)
	}
	for _, cp := range c.ClusterPolicies {
		fmt.Fprintf(&b, "%s tier=%s priority=%d subject=%+v\n", cp.Key(), cp.Spec.Tier, cp.Spec.Priority, cp.Spec.Subject)
		for i, r := range cp.Spec.Ingress {
			fmt.Fprintf(&b, "  ingress[%d] %s from=%+v protocols=%+v\n", i, r.Action, r.From, r.Protocols)
		}
		for i, r := range cp.Spec.Egress {
			fmt.Fprintf(&b, "  egress[%d] %s to=%+v protocols=%+v\n", i, r.Action, r.To, r.Protocols)
		}
	}
	return b.String()
}
