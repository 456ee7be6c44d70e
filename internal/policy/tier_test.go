package policy_test

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// ---- cluster policy builders ------------------------------------------------

type cnpOpt func(*v1beta1.ClusterNetworkPolicySpec)

func cnp(name string, tier v1beta1.Tier, prio int32, opts ...cnpOpt) *cluster.ClusterPolicy {
	spec := v1beta1.ClusterNetworkPolicySpec{Tier: tier, Priority: prio, Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}}}
	for _, o := range opts {
		o(&spec)
	}
	return &cluster.ClusterPolicy{Kind: cluster.KindCNP, APIVersion: "policy.networking.k8s.io/v1beta1", Name: name, Spec: spec}
}

func subjectNS(kv ...string) cnpOpt {
	return func(s *v1beta1.ClusterNetworkPolicySpec) {
		s.Subject = v1beta1.ClusterNetworkPolicySubject{Namespaces: sel(kv...)}
	}
}

func subjectPods(ns, pods *metav1.LabelSelector) cnpOpt {
	return func(s *v1beta1.ClusterNetworkPolicySpec) {
		s.Subject = v1beta1.ClusterNetworkPolicySubject{Pods: &v1beta1.NamespacedPod{NamespaceSelector: *ns, PodSelector: *pods}}
	}
}

func egress(action v1beta1.ClusterNetworkPolicyRuleAction, to []v1beta1.ClusterNetworkPolicyEgressPeer, protos ...v1beta1.ClusterNetworkPolicyProtocol) cnpOpt {
	return func(s *v1beta1.ClusterNetworkPolicySpec) {
		s.Egress = append(s.Egress, v1beta1.ClusterNetworkPolicyEgressRule{Action: action, To: to, Protocols: protos})
	}
}

func ingress(action v1beta1.ClusterNetworkPolicyRuleAction, from []v1beta1.ClusterNetworkPolicyIngressPeer, protos ...v1beta1.ClusterNetworkPolicyProtocol) cnpOpt {
	return func(s *v1beta1.ClusterNetworkPolicySpec) {
		s.Ingress = append(s.Ingress, v1beta1.ClusterNetworkPolicyIngressRule{Action: action, From: from, Protocols: protos})
	}
}

func toNS(kv ...string) []v1beta1.ClusterNetworkPolicyEgressPeer {
	return []v1beta1.ClusterNetworkPolicyEgressPeer{{Namespaces: sel(kv...)}}
}

func fromNS(kv ...string) []v1beta1.ClusterNetworkPolicyIngressPeer {
	return []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: sel(kv...)}}
}

func toNets(cidrs ...v1beta1.CIDR) []v1beta1.ClusterNetworkPolicyEgressPeer {
	return []v1beta1.ClusterNetworkPolicyEgressPeer{{Networks: cidrs}}
}

func tcpPort(port int32) v1beta1.ClusterNetworkPolicyProtocol {
	return v1beta1.ClusterNetworkPolicyProtocol{TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Number: port}}}
}

const (
	accept = v1beta1.ClusterNetworkPolicyRuleActionAccept
	deny   = v1beta1.ClusterNetworkPolicyRuleActionDeny
	pass   = v1beta1.ClusterNetworkPolicyRuleActionPass
	admin  = v1beta1.AdminTier
	base   = v1beta1.BaselineTier
)

// tierCluster: namespaces prod (env=prod) and dev, pods prod/a, prod/b,
// dev/c, a host-network pod on node-1 sharing the node's address.
func tierCluster(nps []*networkingv1.NetworkPolicy, cps ...*cluster.ClusterPolicy) *policy.Set {
	c := cluster.NewWith(cluster.Parts{
		Namespaces: []*cluster.Namespace{namespace("prod", l("env", "prod")), namespace("dev", l("env", "dev"))},
		Pods: []*cluster.Pod{
			withPorts(pod("prod/a", l("app", "a"), "10.244.0.2", "fd00:10:244::2"), cport("web", corev1.ProtocolTCP, 8080), cport("dns", corev1.ProtocolUDP, 5353)),
			withPorts(pod("prod/b", l("app", "b"), "10.244.0.3"), cport("web", corev1.ProtocolTCP, 80)),
			pod("dev/c", l("app", "c"), "10.244.1.2"),
			withPorts(hostNetwork(pod("dev/host", l("app", "host"), "172.18.0.2")), cport("http", corev1.ProtocolTCP, 80)),
		},
		Policies:        nps,
		ClusterPolicies: cps,
		Nodes:           []*cluster.Node{{Name: "node-1", Labels: l("role", "worker"), Addrs: []netip.Addr{netip.MustParseAddr("172.18.0.2")}}},
	})
	return policy.NewSet(c)
}

func tierFlow(s *policy.Set, src, dst string, proto corev1.Protocol, port int32) policy.Verdict {
	return s.Evaluate(s.AddrFlow(netip.MustParseAddr(src), netip.MustParseAddr(dst), proto, port))
}

func TestTierSemantics(t *testing.T) {
	denyNP := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "deny-ingress"},
		Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}
	allowNP := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "allow-all-ingress"},
		Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{}}}}
	cases := []struct {
		name     string
		nps      []*networkingv1.NetworkPolicy
		cps      []*cluster.ClusterPolicy
		src, dst string
		proto    corev1.Protocol
		port     int32
		allowed  bool
		// layer and reason words of the deciding side (egress if it
		// denies, else ingress).
		layer policy.Layer
		words string
	}{
		{name: "no policies: default allow", cps: []*cluster.ClusterPolicy{cnp("unrelated", admin, 1, subjectNS("env", "none"), egress(deny, toNS()))},
			src: "10.244.0.2", dst: "10.244.1.2", proto: "TCP", port: 80, allowed: true, layer: policy.LayerDefault, words: "allowed by default"},
		{name: "admin deny of 0.0.0.0/0 denies pod-to-pod too (API: networks match pod addresses)",
			cps: []*cluster.ClusterPolicy{cnp("deny-v4", admin, 5, subjectNS("env", "prod"), egress(deny, toNets("0.0.0.0/0")))},
			src: "10.244.0.2", dst: "10.244.1.2", proto: "TCP", port: 80, allowed: false, layer: policy.LayerAdmin, words: "cnp/deny-v4 spec.egress[0].to[0]"},
		{name: "IPv6 is another family: a v4 network does not match it",
			cps: []*cluster.ClusterPolicy{cnp("deny-v4", admin, 5, subjectNS("env", "prod"), egress(deny, toNets("0.0.0.0/0")))},
			src: "fd00:10:244::2", dst: "2001:db8::1", proto: "TCP", port: 80, allowed: true, layer: policy.LayerDefault},
		{name: "admin accept beats a NetworkPolicy that denies at the same side",
			nps: []*networkingv1.NetworkPolicy{denyNP},
			cps: []*cluster.ClusterPolicy{cnp("allow-dev", admin, 5, subjectNS("env", "prod"), ingress(accept, fromNS("env", "dev")))},
			src: "10.244.1.2", dst: "10.244.0.2", proto: "TCP", port: 80, allowed: true, layer: policy.LayerAdmin, words: "cnp/allow-dev"},
		{name: "egress accept does not open ingress at the destination",
			nps: []*networkingv1.NetworkPolicy{denyNP},
			cps: []*cluster.ClusterPolicy{cnp("egress-ok", admin, 5, subjectNS("env", "dev"), egress(accept, toNS("env", "prod")))},
			src: "10.244.1.2", dst: "10.244.0.2", proto: "TCP", port: 80, allowed: false, layer: policy.LayerNetworkPolicy, words: "isolated"},
		{name: "admin pass hands over to NetworkPolicy, which denies",
			nps: []*networkingv1.NetworkPolicy{denyNP},
			cps: []*cluster.ClusterPolicy{cnp("pass", admin, 5, subjectNS("env", "prod"), ingress(pass, fromNS())), cnp("late-accept", admin, 6, subjectNS("env", "prod"), ingress(accept, fromNS()))},
			src: "10.244.1.2", dst: "10.244.0.2", proto: "TCP", port: 80, allowed: false, layer: policy.LayerNetworkPolicy, words: "passed by cnp/pass"},
		{name: "admin pass skips the baseline only when NetworkPolicy isolates: here it does not, baseline denies",
			cps: []*cluster.ClusterPolicy{cnp("pass", admin, 5, subjectNS("env", "prod"), ingress(pass, fromNS())), cnp("baseline-deny", base, 1, subjectNS("env", "prod"), ingress(deny, fromNS()))},
			src: "10.244.1.2", dst: "10.244.0.2", proto: "TCP", port: 80, allowed: false, layer: policy.LayerBaseline, words: "cnp/baseline-deny"},
		{name: "NetworkPolicy isolation is final: the baseline is not reached",
			nps: []*networkingv1.NetworkPolicy{allowNP},
			cps: []*cluster.ClusterPolicy{cnp("baseline-deny", base, 1, subjectNS("env", "prod"), ingress(deny, fromNS()))},
			src: "10.244.1.2", dst: "10.244.0.2", proto: "TCP", port: 80, allowed: true, layer: policy.LayerNetworkPolicy, words: "allowed by prod/allow-all-ingress"},
		{name: "baseline pass goes to default allow and shadows later baseline rules",
			cps: []*cluster.ClusterPolicy{cnp("bpass", base, 1, subjectNS("env", "prod"), ingress(pass, fromNS("env", "dev")), ingress(deny, fromNS()))},
			src: "10.244.1.2", dst: "10.244.0.2", proto: "TCP", port: 80, allowed: true, layer: policy.LayerDefault, words: "passed to the default"},
		{name: "first matching rule wins within a policy",
			cps: []*cluster.ClusterPolicy{cnp("order", admin, 1, subjectNS("env", "prod"), egress(accept, toNS("env", "dev"), tcpPort(80)), egress(deny, toNS()))},
			src: "10.244.0.2", dst: "10.244.1.2", proto: "TCP", port: 80, allowed: true, layer: policy.LayerAdmin, words: "spec.egress[0]"},
		{name: "first matching rule wins within a policy: other port falls to the deny",
			cps: []*cluster.ClusterPolicy{cnp("order", admin, 1, subjectNS("env", "prod"), egress(accept, toNS("env", "dev"), tcpPort(80)), egress(deny, toNS()))},
			src: "10.244.0.2", dst: "10.244.1.2", proto: "TCP", port: 81, allowed: false, layer: policy.LayerAdmin, words: "spec.egress[1]"},
		{name: "lower priority number first",
			cps: []*cluster.ClusterPolicy{cnp("z-first", admin, 1, subjectNS("env", "prod"), egress(accept, toNS())), cnp("a-second", admin, 2, subjectNS("env", "prod"), egress(deny, toNS()))},
			src: "10.244.0.2", dst: "10.244.1.2", proto: "TCP", port: 80, allowed: true, layer: policy.LayerAdmin, words: "cnp/z-first"},
		{name: "equal priority: the most restrictive wins whatever the names",
			cps: []*cluster.ClusterPolicy{cnp("a-accept", admin, 3, subjectNS("env", "prod"), egress(accept, toNS())), cnp("b-deny", admin, 3, subjectNS("env", "prod"), egress(deny, toNS()))},
			src: "10.244.0.2", dst: "10.244.1.2", proto: "TCP", port: 80, allowed: false, layer: policy.LayerAdmin, words: "cnp/b-deny"},
		{name: "egress to a node peer reaches the host-network pod by the node's address",
			cps: []*cluster.ClusterPolicy{cnp("no-nodes", admin, 3, subjectNS("env", "prod"), egress(deny, []v1beta1.ClusterNetworkPolicyEgressPeer{{Nodes: sel("role", "worker")}}))},
			src: "10.244.0.2", dst: "172.18.0.2", proto: "TCP", port: 80, allowed: false, layer: policy.LayerAdmin, words: "to[0]"},
		{name: "a pods peer never matches a host-network pod",
			cps: []*cluster.ClusterPolicy{cnp("no-pods", admin, 3, subjectNS("env", "prod"), egress(deny, toNS()))},
			src: "10.244.0.2", dst: "172.18.0.2", proto: "TCP", port: 80, allowed: true, layer: policy.LayerDefault},
		{name: "a pods peer without namespaceSelector means all namespaces",
			cps: []*cluster.ClusterPolicy{cnp("pods-any-ns", admin, 3, subjectNS("env", "prod"), egress(deny, []v1beta1.ClusterNetworkPolicyEgressPeer{{Pods: &v1beta1.NamespacedPod{PodSelector: *sel("app", "c")}}}))},
			src: "10.244.0.2", dst: "10.244.1.2", proto: "TCP", port: 80, allowed: false, layer: policy.LayerAdmin},
		{name: "named port without protocol matches the port of that name, here UDP/5353",
			cps: []*cluster.ClusterPolicy{cnp("dns", admin, 3, subjectNS("env", "dev"), egress(deny, toNS("env", "prod"), v1beta1.ClusterNetworkPolicyProtocol{DestinationNamedPort: "dns"}))},
			src: "10.244.1.2", dst: "10.244.0.2", proto: "UDP", port: 5353, allowed: false, layer: policy.LayerAdmin},
		{name: "named port: another port of the pod does not match",
			cps: []*cluster.ClusterPolicy{cnp("dns", admin, 3, subjectNS("env", "dev"), egress(deny, toNS("env", "prod"), v1beta1.ClusterNetworkPolicyProtocol{DestinationNamedPort: "dns"}))},
			src: "10.244.1.2", dst: "10.244.0.2", proto: "TCP", port: 5353, allowed: true, layer: policy.LayerDefault},
		{name: "subject by pods: only the selected pod",
			cps: []*cluster.ClusterPolicy{cnp("only-b", admin, 3, subjectPods(sel(), sel("app", "b")), egress(deny, toNS()))},
			src: "10.244.0.2", dst: "10.244.1.2", proto: "TCP", port: 80, allowed: true, layer: policy.LayerDefault},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tierCluster(tc.nps, tc.cps...)
			if len(s.Rejected) > 0 {
				t.Fatalf("rejected: %v", s.Rejected)
			}
			v := tierFlow(s, tc.src, tc.dst, tc.proto, tc.port)
			if v.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v\negress: %s\ningress: %s", v.Allowed, tc.allowed, v.Egress.Reason, v.Ingress.Reason)
			}
			side := v.Ingress
			if !v.Egress.Allowed || (v.Egress.Layer != policy.LayerDefault && v.Egress.Layer != "" && v.Ingress.Layer == policy.LayerDefault) {
				side = v.Egress
			}
			if tc.layer != "" && side.Layer != tc.layer && v.Egress.Layer != tc.layer {
				t.Errorf("layer = %s/%s, want %s\negress: %s\ningress: %s", v.Egress.Layer, v.Ingress.Layer, tc.layer, v.Egress.Reason, v.Ingress.Reason)
			}
			if tc.words != "" && !strings.Contains(v.Egress.Reason+" | "+v.Ingress.Reason, tc.words) {
				t.Errorf("reasons do not say %q:\negress: %s\ningress: %s", tc.words, v.Egress.Reason, v.Ingress.Reason)
			}
		})
	}
}

func TestEqualPriorityTiesReported(t *testing.T) {
	s := tierCluster(nil,
		cnp("a-accept", admin, 3, subjectNS("env", "prod"), egress(accept, toNS())),
		cnp("b-deny", admin, 3, subjectNS("env", "prod"), egress(deny, toNS())),
		cnp("c-deny", admin, 3, subjectNS("env", "prod"), egress(deny, toNS("env", "nothing"))))
	v := tierFlow(s, "10.244.0.2", "10.244.1.2", "TCP", 80)
	if v.Allowed || v.Egress.DecidedBy == nil || v.Egress.DecidedBy.ClusterPolicy.Name != "b-deny" {
		t.Fatalf("want denied by b-deny, got %+v", v.Egress)
	}
	if len(v.Egress.Ties) != 2 {
		t.Fatalf("ties = %v, want a-accept and b-deny", v.Egress.Ties)
	}
	// Same actions: no tie reported.
	s = tierCluster(nil,
		cnp("a-deny", admin, 3, subjectNS("env", "prod"), egress(deny, toNS())),
		cnp("b-deny", admin, 3, subjectNS("env", "prod"), egress(deny, toNS())))
	if v := tierFlow(s, "10.244.0.2", "10.244.1.2", "TCP", 80); len(v.Egress.Ties) != 0 {
		t.Fatalf("ties = %v for equal actions", v.Egress.Ties)
	}
}

func TestV1alpha1Conversion(t *testing.T) {
	named := "web"
	anp := &v1alpha1.AdminNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "old"}, Spec: v1alpha1.AdminNetworkPolicySpec{
		Priority: 7, Subject: v1alpha1.AdminNetworkPolicySubject{Namespaces: sel("env", "prod")},
		Egress: []v1alpha1.AdminNetworkPolicyEgressRule{
			{Action: "Allow", To: []v1alpha1.AdminNetworkPolicyEgressPeer{{Namespaces: sel("env", "dev")}}, Ports: &[]v1alpha1.AdminNetworkPolicyPort{{PortRange: &v1alpha1.PortRange{Protocol: "UDP", Start: 50, End: 60}}}},
			{Action: "Deny", To: []v1alpha1.AdminNetworkPolicyEgressPeer{{Namespaces: sel()}}, Ports: &[]v1alpha1.AdminNetworkPolicyPort{{NamedPort: &named}}},
		}}}
	banp := &v1alpha1.BaselineAdminNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1alpha1.BaselineAdminNetworkPolicySpec{
		Subject: v1alpha1.AdminNetworkPolicySubject{Namespaces: sel()},
		Egress:  []v1alpha1.BaselineAdminNetworkPolicyEgressRule{{Action: "Deny", To: []v1alpha1.BaselineAdminNetworkPolicyEgressPeer{{Namespaces: sel()}}}}}}
	// A Baseline CNP with the highest priority still comes before the BANP.
	last := cnp("last", base, 1000, subjectNS(), egress(accept, toNS("env", "dev")))
	s := tierCluster(nil, cluster.FromANP(anp), cluster.FromBANP(banp), last)
	if len(s.Rejected) > 0 {
		t.Fatal(s.Rejected)
	}
	if v := tierFlow(s, "10.244.0.2", "10.244.1.2", "UDP", 55); !v.Allowed || v.Egress.DecidedBy.ClusterPolicy.Key() != "anp/old" {
		t.Errorf("UDP/55 from prod to dev: want allowed by anp/old, got %s", v.Egress.Reason)
	}
	if v := tierFlow(s, "10.244.1.2", "10.244.0.2", "TCP", 8080); v.Allowed {
		t.Errorf("TCP/8080 (named web on prod/a) from dev: want denied by banp/default, got %s", v.Egress.Reason)
	}
	if v := tierFlow(s, "10.244.0.3", "10.244.0.2", "TCP", 8080); v.Allowed || v.Egress.DecidedBy.ClusterPolicy.Key() != "anp/old" {
		t.Errorf("TCP/8080 from prod/b to prod/a: named port web, want denied by anp/old, got %s", v.Egress.Reason)
	}
	if v := tierFlow(s, "10.244.0.2", "10.244.1.2", "TCP", 9); !v.Allowed || v.Egress.DecidedBy.ClusterPolicy.Key() != "cnp/last" {
		t.Errorf("prod to dev TCP/9: want allowed by cnp/last (before banp/default), got %s", v.Egress.Reason)
	}
}

func TestDomainNames(t *testing.T) {
	if !policy.DomainMatches("*.example.com", "a.b.Example.COM.") || policy.DomainMatches("*.example.com", "example.com") || !policy.DomainMatches("example.com", "EXAMPLE.com.") {
		t.Fatal("domain matching")
	}
	allow := cnp("dns-allow", admin, 1, subjectNS("env", "prod"),
		egress(accept, []v1beta1.ClusterNetworkPolicyEgressPeer{{DomainNames: []v1beta1.DomainName{"*.example.com"}}}),
		egress(deny, toNets("0.0.0.0/0", "::/0")))
	s := tierCluster(nil, allow)
	if len(s.Rejected) > 0 || len(s.ClusterPolicies[0].Notes) == 0 {
		t.Fatalf("rejected %v, notes %v", s.Rejected, s.ClusterPolicies[0].Notes)
	}
	src := policy.Endpoint{Pod: s.Cluster.Pod("prod/a"), IP: netip.MustParseAddr("10.244.0.2")}
	v := s.Evaluate(policy.Flow{From: src, To: policy.Endpoint{Domain: "api.example.com"}, Protocol: "TCP", Port: 443})
	if !v.Allowed {
		t.Errorf("api.example.com: %s", v.Egress.Reason)
	}
	v = s.Evaluate(policy.Flow{From: src, To: policy.Endpoint{Domain: "evil.org"}, Protocol: "TCP", Port: 443})
	if v.Allowed {
		t.Errorf("evil.org: want denied by the 0.0.0.0/0 rule (holds every address), %s", v.Egress.Reason)
	}
	bad := cnp("dns-deny", admin, 1, egress(deny, []v1beta1.ClusterNetworkPolicyEgressPeer{{DomainNames: []v1beta1.DomainName{"example.com"}}}))
	if _, err := policy.CompileCluster(bad); err == nil || !strings.Contains(err.Error(), "spec.egress[0].to[0].domainNames") {
		t.Errorf("Deny with domainNames: err = %v", err)
	}
}

func TestUnknownPeerFailsClosed(t *testing.T) {
	p := cnp("future", admin, 1, egress(pass, []v1beta1.ClusterNetworkPolicyEgressPeer{{}}), egress(accept, []v1beta1.ClusterNetworkPolicyEgressPeer{{}}))
	cp, err := policy.CompileCluster(p)
	if err != nil {
		t.Fatal(err)
	}
	if r := cp.Rules[policy.Egress][0]; r.Action != policy.Deny || !r.Peers[0].Everything {
		t.Errorf("Pass rule with an unknown peer: %+v, want deny all", r)
	}
	s := tierCluster(nil, cnp("future", admin, 1, egress(accept, []v1beta1.ClusterNetworkPolicyEgressPeer{{}})))
	if v := tierFlow(s, "10.244.0.2", "10.244.1.2", "TCP", 80); v.Egress.Layer != policy.LayerDefault {
		t.Errorf("Accept rule with an unknown peer must match nothing: %s", v.Egress.Reason)
	}
}

func TestBadSelectorRejected(t *testing.T) {
	p := cnp("bad", admin, 1, subjectNS(), egress(deny, toNS()))
	p.Spec.Subject.Namespaces.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Foo"}}
	s := tierCluster(nil, p)
	if len(s.Rejected) != 1 || s.Rejected[0].Key() != "cnp/bad" || !strings.Contains(s.Rejected[0].Error(), "spec.subject.namespaces") {
		t.Fatalf("rejected = %v", s.Rejected)
	}
}
