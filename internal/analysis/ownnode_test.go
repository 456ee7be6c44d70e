package analysis_test

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netfence/netfence/internal/analysis"
	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// varyNodes spreads a random cluster's pods over nodes: pod-network pods
// on node-1, node-2, a node with no Node object or none; host-network
// pods on their node, another or none; Node objects (added when the
// cluster has none) holding random subsets of the host-network pods'
// addresses. Ingress from a pod's own node (policy.Set.FromOwnNode) then
// meets every case: same node by name, by address only, neither.
func varyNodes(r *rand.Rand, c *cluster.Cluster) *cluster.Cluster {
	parts := c.Parts()
	parts.Pods, parts.Nodes = nil, nil
	names := []string{"node-1", "node-2", "node-x", ""}
	var hostAddrs []netip.Addr
	for _, p := range c.Pods {
		cp := *p
		cp.IPs = slices.Clone(p.IPs)
		switch n := r.IntN(10); {
		case cp.HostNetwork && n < 6:
			// Stays on its node (node-1 in randcluster).
			if cp.NodeName == "node" || cp.NodeName == "" {
				cp.NodeName = "node-1"
			}
		case n < 5:
			cp.NodeName = "node-1"
		default:
			cp.NodeName = names[r.IntN(len(names))]
		}
		if cp.HostNetwork {
			for _, ip := range cp.IPs {
				if !slices.Contains(hostAddrs, ip) {
					hostAddrs = append(hostAddrs, ip)
				}
			}
		}
		parts.Pods = append(parts.Pods, &cp)
	}
	parts.Nodes = c.Nodes
	if len(parts.Nodes) == 0 {
		for _, name := range names[:2] {
			n := &cluster.Node{Name: name, Labels: labels.Set{"kubernetes.io/hostname": name}}
			for _, ip := range hostAddrs {
				if r.IntN(3) == 0 {
					n.Addrs = append(n.Addrs, ip)
				}
			}
			parts.Nodes = append(parts.Nodes, n)
		}
	}
	return cluster.NewWith(parts)
}

// ownNodeCells counts the cells of a flow where the destination's own
// node is the source, and of those the ones policy would deny.
type ownNodeCells struct{ own, overriding, hostDenied int }

func (o *ownNodeCells) add(set *policy.Set, from, to *cluster.Pod, v policy.Verdict) {
	if !from.HostNetwork || to.HostNetwork || from == to {
		return
	}
	if strings.HasPrefix(v.Ingress.Reason, "from its own node") {
		o.own++
		if len(set.Isolating(to, policy.Ingress)) > 0 || set.Cluster.Conflicted(to) {
			o.overriding++
		}
	} else if !v.Ingress.Allowed {
		o.hostDenied++
	}
}

func (o ownNodeCells) check(t *testing.T) {
	t.Helper()
	t.Logf("host-network sources: %d cells from the destination's own node (%d of them isolated or conflicted), %d denied at ingress from another node", o.own, o.overriding, o.hostDenied)
	if o.own == 0 || o.overriding == 0 || o.hostDenied == 0 {
		t.Errorf("the generator does not cover ingress from a pod's own node and from other nodes")
	}
}

// TestMatrixFromOwnNode: a host-network pod reaches the pods of its node
// whatever their policies, not those of other nodes; pods are split by
// node only when a host-network pod belongs to it, and the ingress of
// such cells is decided by no layer.
func TestMatrixFromOwnNode(t *testing.T) {
	t.Parallel()
	mk := func(key, node string, ip string, host bool) *cluster.Pod {
		ns, name, _ := strings.Cut(key, "/")
		return &cluster.Pod{Namespace: ns, Name: name, Labels: labels.Set{"app": "web"}, Phase: corev1.PodRunning, NodeName: node, HostNetwork: host,
			IPs: []netip.Addr{netip.MustParseAddr(ip)}}
	}
	denyIn := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "deny-in"},
		Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}
	web := []*cluster.Pod{mk("a/web-1", "node-1", "10.0.0.1", false), mk("a/web-2", "node-2", "10.0.0.2", false), mk("a/web-3", "", "10.0.0.3", false)}
	port := []analysis.Port{{Protocol: corev1.ProtocolTCP, Port: 80}}

	// Without host-network pods, nodes do not split classes.
	m, err := analysis.ComputeMatrix(context.Background(), policy.NewSet(cluster.New(nil, web, []*networkingv1.NetworkPolicy{denyIn})), analysis.Options{Ports: port})
	if err != nil {
		t.Fatal(err)
	}
	if m.Classes() != 1 {
		t.Errorf("no host-network pods: %d classes, want 1", m.Classes())
	}

	nodes := []*cluster.Node{{Name: "node-1", Addrs: []netip.Addr{netip.MustParseAddr("192.168.0.1")}}, {Name: "node-2", Addrs: []netip.Addr{netip.MustParseAddr("192.168.0.2")}}}
	pods := append(slices.Clone(web),
		mk("h/agent-1", "node-1", "192.168.0.1", true),
		mk("h/stray", "", "192.168.0.2", true), // node-2's address, no node name
		mk("h/agent-9", "node-9", "192.168.0.9", true),
	)
	set := policy.NewSet(cluster.NewWith(cluster.Parts{Pods: pods, Nodes: nodes, Policies: []*networkingv1.NetworkPolicy{denyIn}}))
	m, err = analysis.ComputeMatrix(context.Background(), set, analysis.Options{Ports: port})
	if err != nil {
		t.Fatal(err)
	}
	// web-1, web-2 and web-3 apart; three host-network pods of three
	// homes.
	if m.Classes() != 6 {
		t.Errorf("%d classes, want 6", m.Classes())
	}
	index := map[string]int{}
	for i, p := range m.Pods {
		index[p.Key()] = i
	}
	for _, tc := range []struct {
		from, to string
		allowed  bool
	}{
		{"h/agent-1", "a/web-1", true},
		{"h/agent-1", "a/web-2", false},
		{"h/agent-1", "a/web-3", false},
		{"h/stray", "a/web-2", true},
		{"h/stray", "a/web-1", false},
		{"h/agent-9", "a/web-1", false},
		{"a/web-2", "a/web-1", false},
		{"a/web-1", "h/agent-1", true},
	} {
		i, j := index[tc.from], index[tc.to]
		a, _, in := m.Result(i, j, 0)
		if a != tc.allowed || in != tc.allowed {
			t.Errorf("%s -> %s: allowed %v ingress %v, want %v", tc.from, tc.to, a, in, tc.allowed)
		}
	}

	// With cluster policies, the ingress of a cell from the own node is
	// decided by no layer, as in Set.Evaluate.
	baseline := &cluster.ClusterPolicy{Kind: cluster.KindCNP, APIVersion: cluster.PolicyAPIGroup + "/v1beta1", Name: "b"}
	baseline.Spec.Tier, baseline.Spec.Priority = v1beta1.BaselineTier, 1
	baseline.Spec.Subject.Namespaces = &metav1.LabelSelector{}
	baseline.Spec.Ingress = append(baseline.Spec.Ingress, cnpIngressDenyAll())
	set = policy.NewSet(cluster.NewWith(cluster.Parts{Pods: pods, Nodes: nodes, ClusterPolicies: []*cluster.ClusterPolicy{baseline}}))
	if len(set.Rejected) > 0 {
		t.Fatal(set.Rejected)
	}
	m, err = analysis.ComputeMatrix(context.Background(), set, analysis.Options{Ports: port})
	if err != nil {
		t.Fatal(err)
	}
	for i, from := range m.Pods {
		for j, to := range m.Pods {
			if i == j {
				continue
			}
			v := set.Evaluate(policy.Flow{From: policy.Endpoint{Pod: from, IP: from.IPFor(to.IPs[0])}, To: policy.Endpoint{Pod: to, IP: to.IPs[0]}, Protocol: corev1.ProtocolTCP, Port: 80})
			a, _, _ := m.Result(i, j, 0)
			_, ing := m.Explain(i, j, 0)
			if a != v.Allowed || ing.Layer != v.Ingress.Layer || ing.Rule != ruleOf(v.Ingress) {
				t.Errorf("%s -> %s: matrix %v %q %q, Evaluate %v %q %q (%s)", from.Key(), to.Key(), a, ing.Layer, ing.Rule, v.Allowed, v.Ingress.Layer, ruleOf(v.Ingress), v.Ingress.Reason)
			}
			// The baseline denies all ingress to pod-network pods but
			// from their own node.
			own := from.Key()+" "+to.Key() == "h/agent-1 a/web-1" || from.Key()+" "+to.Key() == "h/stray a/web-2"
			if !to.HostNetwork && (a != own || own && v.Ingress.Layer != "") {
				t.Errorf("%s -> %s: allowed %v, layer %q", from.Key(), to.Key(), a, v.Ingress.Layer)
			}
		}
	}
}

// cnpIngressDenyAll is a rule denying ingress from every source, host
// networked ones included (a peer with no field this version knows).
func cnpIngressDenyAll() v1beta1.ClusterNetworkPolicyIngressRule {
	return v1beta1.ClusterNetworkPolicyIngressRule{Action: v1beta1.ClusterNetworkPolicyRuleActionDeny, From: []v1beta1.ClusterNetworkPolicyIngressPeer{{}}}
}
