package policy_test

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// onNode puts a pod on a node.
func onNode(p *cluster.Pod, node string) *cluster.Pod {
	p.NodeName = node
	return p
}

// ownNodeCluster: node-1 runs the host-network pod a/agent and the
// pod-network pods a/srv, a/open and the two pods sharing 10.10.0.9;
// node-2 runs a/agent2 and a/far; a/nonode has no node; a/stray is a
// host-network pod with no node whose address is node-1's; c/liar is a
// pod-network pod holding one of node-1's addresses. Every pod-network
// pod but a/open is isolated in both directions with nothing allowed; an
// Admin tier policy denies all ingress to a/open (a peer with no field
// this version knows: it matches every source, host-network ones too).
func ownNodeCluster(t *testing.T, tiers bool) *policy.Set {
	t.Helper()
	parts := cluster.Parts{
		Pods: []*cluster.Pod{
			hostNetwork(pod("a/agent", l("app", "agent"), "192.168.0.10", "fd00:ff::10")),
			onNode(hostNetwork(pod("a/agent2", l("app", "agent"), "192.168.0.20")), "node-2"),
			onNode(hostNetwork(pod("a/stray", l("app", "agent"), "192.168.0.10")), ""),
			pod("a/srv", l("app", "srv"), "10.10.0.2", "fd00::2"),
			onNode(pod("a/nonode", l("app", "srv"), "10.10.0.3"), ""),
			onNode(pod("a/far", l("app", "srv"), "10.10.0.4"), "node-2"),
			pod("c/liar", l("app", "cli"), "192.168.0.30"),
			pod("a/twin1", l("app", "srv"), "10.10.0.9"),
			pod("a/twin2", l("app", "srv"), "10.10.0.9"),
			pod("b/open", l("app", "open"), "10.10.0.5"),
		},
		Policies: []*networkingv1.NetworkPolicy{
			netpol("a/deny-all", sel(), func(s *networkingv1.NetworkPolicySpec) { s.PolicyTypes = types(pIn, pOut) }),
		},
		Nodes: []*cluster.Node{
			{Name: "node-1", Addrs: []netip.Addr{netip.MustParseAddr("192.168.0.10"), netip.MustParseAddr("192.168.0.30"), netip.MustParseAddr("fd00:ff::10")}},
			{Name: "node-2", Addrs: []netip.Addr{netip.MustParseAddr("192.168.0.20")}},
		},
	}
	if tiers {
		parts.ClusterPolicies = []*cluster.ClusterPolicy{{Kind: cluster.KindCNP, APIVersion: cluster.PolicyAPIGroup + "/v1beta1", Name: "deny-in",
			Spec: v1beta1.ClusterNetworkPolicySpec{Tier: v1beta1.AdminTier, Priority: 1,
				Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: sel(cluster.MetadataNameLabel, "b")},
				Ingress: []v1beta1.ClusterNetworkPolicyIngressRule{{Action: v1beta1.ClusterNetworkPolicyRuleActionDeny, From: []v1beta1.ClusterNetworkPolicyIngressPeer{{}}}},
			}}}
	}
	set := policy.NewSet(cluster.NewWith(parts))
	if len(set.Rejected) > 0 {
		t.Fatalf("rejected: %v", set.Rejected)
	}
	return set
}

// TestEvaluateFromOwnNode: ingress at a pod from its own node (a
// host-network pod of its node, or an address of its Node object, from
// anything but a pod-network pod) is allowed before any tier or
// NetworkPolicy, a pod holding a shared address included; from another
// node, a pod with no node, or a pod-network pod holding a node's
// address, policy decides. Egress to the node stays filtered.
func TestEvaluateFromOwnNode(t *testing.T) {
	t.Parallel()
	for _, tiers := range []bool{false, true} {
		set := ownNodeCluster(t, tiers)
		c := set.Cluster
		ep := func(s string) policy.Endpoint {
			if p := c.Pod(s); p != nil {
				return policy.Endpoint{Pod: p}
			}
			ip := netip.MustParseAddr(s)
			return policy.Endpoint{Pod: c.PodByIP(ip), IP: ip}
		}
		for _, tc := range []struct {
			from, to string
			own      string // the node named, "" for not from its own node
			allowed  bool
		}{
			{"a/agent", "a/srv", "node-1", true},
			{"a/agent2", "a/srv", "", false},
			{"a/agent2", "a/far", "node-2", true},
			{"a/agent", "a/far", "", false},
			{"a/agent", "a/nonode", "", false},
			{"a/stray", "a/srv", "node-1", true},
			{"a/stray", "a/far", "", false},
			{"192.168.0.10", "a/srv", "node-1", true}, // the host-network pod's address
			{"fd00:ff::10", "a/srv", "node-1", true},
			{"192.168.0.20", "a/srv", "", false},
			{"192.168.0.20", "a/far", "node-2", true},
			{"c/liar", "a/srv", "", false}, // a pod, whatever its address
			{"192.168.0.30", "a/srv", "", false},
			{"a/agent", "a/twin1", "node-1", true},
			{"a/agent2", "a/twin1", "", false},
			{"a/agent", "b/open", "node-1", true},
			{"a/agent2", "b/open", "", !tiers},
		} {
			f := policy.Flow{From: ep(tc.from), To: ep(tc.to), Protocol: corev1.ProtocolTCP, Port: 80}
			f.To.IP = f.To.Pod.IPs[0]
			if !f.From.IP.IsValid() {
				f.From.IP = f.From.Pod.IPFor(f.To.IP)
			}
			name := tc.from + " -> " + tc.to
			if tiers {
				name += " (tiers)"
			}
			v := set.Evaluate(f)
			node, own := set.FromOwnNode(f.From, f.To.Pod)
			if node != tc.own || own != (tc.own != "") {
				t.Errorf("%s: FromOwnNode = %q, %v; want %q", name, node, own, tc.own)
			}
			if v.Allowed != tc.allowed || v.Ingress.Allowed != tc.allowed || !v.Egress.Allowed || v.Reason != "" {
				t.Errorf("%s: allowed %v (egress %v, ingress %v: %s), want %v", name, v.Allowed, v.Egress.Allowed, v.Ingress.Allowed, v.Ingress.Reason, tc.allowed)
			}
			in := v.Ingress
			if tc.own == "" {
				if strings.Contains(in.Reason, "own node") {
					t.Errorf("%s: ingress reason %q", name, in.Reason)
				}
				continue
			}
			want := "from its own node (" + tc.own + "): always allowed; policy does not apply to traffic the node originates"
			if !in.Subject || in.Reason != want || in.Layer != "" || in.Isolated() || in.DecidedBy != nil || in.PassedBy != nil || len(in.AllowedBy) > 0 {
				t.Errorf("%s: ingress %+v, want subject, allowed, no layer, no policy, reason %q", name, in, want)
			}
		}
		// Egress from a pod to its node is the pod's traffic (the input
		// hook): policy decides.
		for _, to := range []string{"a/agent", "192.168.0.10"} {
			f := policy.Flow{From: ep("a/srv"), To: ep(to), Protocol: corev1.ProtocolTCP, Port: 80}
			f.To.IP = netip.MustParseAddr("192.168.0.10")
			f.From.IP = netip.MustParseAddr("10.10.0.2")
			if v := set.Evaluate(f); v.Allowed || v.Egress.Allowed {
				t.Errorf("a/srv -> %s: allowed %v (egress %s), want denied", to, v.Allowed, v.Egress.Reason)
			}
		}
	}
	// AddrFlow, as the dataplane sees packets: from the node's address.
	set := ownNodeCluster(t, false)
	if v := set.Evaluate(set.AddrFlow(netip.MustParseAddr("192.168.0.10"), netip.MustParseAddr("10.10.0.2"), corev1.ProtocolUDP, 53)); !v.Allowed {
		t.Errorf("192.168.0.10 -> 10.10.0.2: denied (%s)", v.Ingress.Reason)
	}
	if v := set.Evaluate(set.AddrFlow(netip.MustParseAddr("fd00:ff::10"), netip.MustParseAddr("fd00::2"), corev1.ProtocolSCTP, 9)); !v.Allowed {
		t.Errorf("fd00:ff::10 -> fd00::2: denied (%s)", v.Ingress.Reason)
	}
}

// TestAddrFlowInactivePodIsExternal: the dataplane renders only active
// pods, so an address held by a Pending pod is judged as external.
func TestAddrFlowInactivePodIsExternal(t *testing.T) {
	pending := pod("ns/pending", l("app", "db"), "10.7.0.1")
	pending.Phase = corev1.PodPending
	c := cluster.New([]*cluster.Namespace{namespace("ns", nil)},
		[]*cluster.Pod{pending, pod("ns/client", l("app", "c"), "10.7.0.21")},
		[]*networkingv1.NetworkPolicy{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "deny"},
			Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}})
	s := policy.NewSet(c)
	f := s.AddrFlow(netip.MustParseAddr("10.7.0.21"), netip.MustParseAddr("10.7.0.1"), "TCP", 80)
	if f.To.Pod != nil {
		t.Fatalf("the pending pod's address resolved to %s", f.To.Pod.Key())
	}
	if v := s.Evaluate(f); !v.Allowed {
		t.Fatalf("flow to a pending pod's address: %s", v.Ingress.Reason)
	}
}
