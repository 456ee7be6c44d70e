package policy_test

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// ---- builders -------------------------------------------------------------

func pod(nsName string, lbls map[string]string, ips ...string) *cluster.Pod {
	ns, name, _ := strings.Cut(nsName, "/")
	p := &cluster.Pod{Namespace: ns, Name: name, Labels: lbls, Phase: corev1.PodRunning, NodeName: "node-1"}
	for _, s := range ips {
		p.IPs = append(p.IPs, netip.MustParseAddr(s))
	}
	return p
}

func withPorts(p *cluster.Pod, ports ...cluster.ContainerPort) *cluster.Pod {
	p.Ports = append(p.Ports, ports...)
	return p
}

func hostNetwork(p *cluster.Pod) *cluster.Pod {
	p.HostNetwork = true
	return p
}

func cport(name string, proto corev1.Protocol, port int32) cluster.ContainerPort {
	return cluster.ContainerPort{Name: name, Protocol: proto, Port: port}
}

func namespace(name string, lbls map[string]string) *cluster.Namespace {
	return &cluster.Namespace{Name: name, Labels: lbls, Defined: true}
}

func l(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func sel(kv ...string) *metav1.LabelSelector {
	if len(kv) == 0 {
		return &metav1.LabelSelector{}
	}
	return &metav1.LabelSelector{MatchLabels: l(kv...)}
}

func exprs(reqs ...metav1.LabelSelectorRequirement) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: reqs}
}

func req(key string, op metav1.LabelSelectorOperator, values ...string) metav1.LabelSelectorRequirement {
	return metav1.LabelSelectorRequirement{Key: key, Operator: op, Values: values}
}

func netpol(nsName string, podSelector *metav1.LabelSelector, mod func(*networkingv1.NetworkPolicySpec)) *networkingv1.NetworkPolicy {
	ns, name, _ := strings.Cut(nsName, "/")
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: *podSelector},
	}
	if mod != nil {
		mod(&np.Spec)
	}
	return np
}

func types(ts ...networkingv1.PolicyType) []networkingv1.PolicyType { return ts }

const (
	pIn  = networkingv1.PolicyTypeIngress
	pOut = networkingv1.PolicyTypeEgress
	tcp  = corev1.ProtocolTCP
	udp  = corev1.ProtocolUDP
	sctp = corev1.ProtocolSCTP
)

func peerPods(podSel *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: podSel}
}

func peerNS(nsSel *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: nsSel}
}

func peerNSPods(nsSel, podSel *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: nsSel, PodSelector: podSel}
}

func peerIP(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

func peers(ps ...networkingv1.NetworkPolicyPeer) []networkingv1.NetworkPolicyPeer { return ps }

// port builds a numeric port; proto "" leaves the protocol out (TCP by default).
func port(proto corev1.Protocol, n int32) networkingv1.NetworkPolicyPort {
	p := networkingv1.NetworkPolicyPort{Port: ptr(intstr.FromInt32(n))}
	if proto != "" {
		p.Protocol = ptr(proto)
	}
	return p
}

func portRange(proto corev1.Protocol, n, end int32) networkingv1.NetworkPolicyPort {
	p := port(proto, n)
	p.EndPort = ptr(end)
	return p
}

func namedPort(proto corev1.Protocol, name string) networkingv1.NetworkPolicyPort {
	p := networkingv1.NetworkPolicyPort{Port: ptr(intstr.FromString(name))}
	if proto != "" {
		p.Protocol = ptr(proto)
	}
	return p
}

// protoOnly is a ports entry with a protocol and no port: every port of it.
func protoOnly(proto corev1.Protocol) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: ptr(proto)}
}

func ports(ps ...networkingv1.NetworkPolicyPort) []networkingv1.NetworkPolicyPort { return ps }

func ptr[T any](v T) *T { return &v }

func ingressRule(from []networkingv1.NetworkPolicyPeer, ps []networkingv1.NetworkPolicyPort) networkingv1.NetworkPolicyIngressRule {
	return networkingv1.NetworkPolicyIngressRule{From: from, Ports: ps}
}

func egressRule(to []networkingv1.NetworkPolicyPeer, ps []networkingv1.NetworkPolicyPort) networkingv1.NetworkPolicyEgressRule {
	return networkingv1.NetworkPolicyEgressRule{To: to, Ports: ps}
}

// ---- the harness ------------------------------------------------------------

// side is what a test expects of one direction's verdict. by lists the
// AllowedBy rule matches in order; nil means none.
type side struct {
	isolated bool
	allowed  bool
	by       []string
	// subject is false for external endpoints and hostNetwork pods; a
	// pointer so most cases need not say it (default: true).
	subject *bool
	// reason, when set, must be contained in the side's Reason.
	reason string
}

var notSubject = ptr(false)

// open is a side of a pod that no policy isolates.
var open = side{allowed: true, reason: "is not isolated"}

func allowedBy(by ...string) side { return side{isolated: true, allowed: true, by: by} }

var deniedIsolated = side{isolated: true, reason: "is isolated for"}

type flowCase struct {
	from, to string // "ns/pod" or an address outside the cluster's pods
	proto    corev1.Protocol
	port     int32
	allowed  bool
	egress   side
	ingress  side
}

type scenario struct {
	name     string
	nss      []*cluster.Namespace
	pods     []*cluster.Pod
	policies []*networkingv1.NetworkPolicy
	cases    []flowCase
}

func endpoint(t *testing.T, c *cluster.Cluster, s string) policy.Endpoint {
	t.Helper()
	if strings.Contains(s, "/") {
		p := c.Pod(s)
		if p == nil {
			t.Fatalf("test bug: no pod %s", s)
		}
		return policy.Endpoint{Pod: p}
	}
	return policy.Endpoint{IP: netip.MustParseAddr(s)}
}

// flow builds a flow as the analyzer does: the destination's primary
// address, the source's address of the same family.
func flow(t *testing.T, c *cluster.Cluster, from, to string, proto corev1.Protocol, port int32) policy.Flow {
	t.Helper()
	f := policy.Flow{From: endpoint(t, c, from), To: endpoint(t, c, to), Protocol: proto, Port: port}
	if f.To.Pod != nil {
		f.To.IP = f.To.Pod.IPs[0]
	}
	if f.From.Pod != nil {
		f.From.IP = f.From.Pod.IPFor(f.To.IP)
	}
	return f
}

func checkSide(t *testing.T, what string, got policy.Side, want side) {
	t.Helper()
	wantSubject := want.subject == nil || *want.subject
	if got.Subject != wantSubject {
		t.Errorf("%s: Subject = %v, want %v", what, got.Subject, wantSubject)
	}
	if got.Isolated() != want.isolated {
		t.Errorf("%s: Isolated = %v, want %v (isolating: %v)", what, got.Isolated(), want.isolated, keys(got.Isolating))
	}
	if got.Allowed != want.allowed {
		t.Errorf("%s: Allowed = %v, want %v (reason %q)", what, got.Allowed, want.allowed, got.Reason)
	}
	var by []string
	for _, m := range got.AllowedBy {
		by = append(by, m.String())
	}
	if !reflect.DeepEqual(by, want.by) {
		t.Errorf("%s: AllowedBy = %q, want %q", what, by, want.by)
	}
	if want.reason != "" && !strings.Contains(got.Reason, want.reason) {
		t.Errorf("%s: Reason = %q, want it to contain %q", what, got.Reason, want.reason)
	}
	if len(want.by) > 0 && got.Reason != "allowed by "+want.by[0] {
		t.Errorf("%s: Reason = %q, want %q", what, got.Reason, "allowed by "+want.by[0])
	}
	if got.Reason == "" {
		t.Errorf("%s: empty Reason", what)
	}
}

func keys(ps []*policy.Policy) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Key())
	}
	return out
}

func runScenarios(t *testing.T, scenarios []scenario) {
	t.Helper()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			c := cluster.New(sc.nss, sc.pods, sc.policies)
			set := policy.NewSet(c)
			if len(set.Rejected) > 0 {
				t.Fatalf("policies rejected: %v", set.Rejected)
			}
			for _, fc := range sc.cases {
				name := fc.from + " -> " + fc.to + " " + string(fc.proto) + "/" + itoa(fc.port)
				v := set.Evaluate(flow(t, c, fc.from, fc.to, fc.proto, fc.port))
				if v.Allowed != fc.allowed {
					t.Errorf("%s: Allowed = %v, want %v (egress: %s; ingress: %s)", name, v.Allowed, fc.allowed, v.Egress.Reason, v.Ingress.Reason)
				}
				if v.Reason != "" {
					t.Errorf("%s: verdict Reason = %q, want none (not self traffic)", name, v.Reason)
				}
				if v.Egress.Direction != policy.Egress || v.Ingress.Direction != policy.Ingress {
					t.Errorf("%s: sides have directions %v, %v", name, v.Egress.Direction, v.Ingress.Direction)
				}
				checkSide(t, name+": egress", v.Egress, fc.egress)
				checkSide(t, name+": ingress", v.Ingress, fc.ingress)
			}
		})
	}
}

func itoa(n int32) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// ---- the rules ----------------------------------------------------------------

func TestEvaluateNoPolicies(t *testing.T) {
	t.Parallel()
	runScenarios(t, []scenario{{
		name: "nothing isolated",
		pods: []*cluster.Pod{pod("a/x", nil, "10.0.0.1"), pod("b/y", nil, "10.0.0.2")},
		cases: []flowCase{
			{from: "a/x", to: "b/y", proto: tcp, port: 80, allowed: true, egress: open, ingress: open},
			{from: "b/y", to: "a/x", proto: udp, port: 53, allowed: true, egress: open, ingress: open},
		},
	}})
}

func TestEvaluatePodSelector(t *testing.T) {
	t.Parallel()
	runScenarios(t, []scenario{
		{
			name: "matchLabels",
			pods: []*cluster.Pod{
				pod("a/api", l("app", "api"), "10.0.1.1"),
				pod("a/db", l("app", "db"), "10.0.1.2"),
				pod("a/web", l("app", "web"), "10.0.1.3"),
			},
			policies: []*networkingv1.NetworkPolicy{
				netpol("a/db-ingress", sel("app", "db"), func(s *networkingv1.NetworkPolicySpec) {
					s.Ingress = append(s.Ingress, ingressRule(peers(peerPods(sel("app", "api"))), nil))
				}),
			},
			cases: []flowCase{
				{from: "a/api", to: "a/db", proto: tcp, port: 5432, allowed: true, egress: open, ingress: allowedBy("a/db-ingress spec.ingress[0].from[0]")},
				{from: "a/web", to: "a/db", proto: tcp, port: 5432, egress: open, ingress: deniedIsolated},
				// Ingress-only policy: db's egress is not isolated, web is not selected.
				{from: "a/db", to: "a/web", proto: tcp, port: 80, allowed: true, egress: open, ingress: open},
				{from: "a/api", to: "a/web", proto: tcp, port: 80, allowed: true, egress: open, ingress: open},
			},
		},
		{
			name: "matchExpressions In NotIn Exists DoesNotExist",
			pods: []*cluster.Pod{
				pod("a/p1", l("tier", "db", "env", "prod"), "10.0.2.1"),
				pod("a/p2", l("tier", "cache"), "10.0.2.2"),
				pod("a/p3", l("tier", "web", "env", "dev"), "10.0.2.3"),
				pod("a/p4", nil, "10.0.2.4"),
			},
			policies: []*networkingv1.NetworkPolicy{
				netpol("a/pol", exprs(req("tier", metav1.LabelSelectorOpIn, "db", "cache")), func(s *networkingv1.NetworkPolicySpec) {
					s.Ingress = append(s.Ingress, ingressRule(peers(
						// NotIn matches pods without the key too.
						peerPods(exprs(req("env", metav1.LabelSelectorOpNotIn, "prod"), req("tier", metav1.LabelSelectorOpExists))),
						peerPods(exprs(req("tier", metav1.LabelSelectorOpDoesNotExist))),
					), nil))
				}),
			},
			cases: []flowCase{
				{from: "a/p3", to: "a/p1", proto: tcp, port: 80, allowed: true, egress: open, ingress: allowedBy("a/pol spec.ingress[0].from[0]")},
				{from: "a/p2", to: "a/p1", proto: tcp, port: 80, allowed: true, egress: open, ingress: allowedBy("a/pol spec.ingress[0].from[0]")},
				{from: "a/p4", to: "a/p2", proto: tcp, port: 80, allowed: true, egress: open, ingress: allowedBy("a/pol spec.ingress[0].from[1]")},
				{from: "a/p1", to: "a/p2", proto: tcp, port: 80, egress: open, ingress: deniedIsolated},
				// tier=web is not In (db, cache); p4 has no tier: neither is selected.
				{from: "a/p1", to: "a/p3", proto: tcp, port: 80, allowed: true, egress: open, ingress: open},
				{from: "a/p1", to: "a/p4", proto: tcp, port: 80, allowed: true, egress: open, ingress: open},
			},
		},
		{
			name: "empty podSelector selects every pod of the policy's namespace only",
			pods: []*cluster.Pod{
				pod("a/x", nil, "10.0.3.1"),
				pod("a/y", l("app", "y"), "10.0.3.2"),
				pod("b/z", nil, "10.0.3.3"),
			},
			policies: []*networkingv1.NetworkPolicy{netpol("a/deny", sel(), nil)},
			cases: []flowCase{
				{from: "a/x", to: "a/y", proto: tcp, port: 80, egress: open, ingress: deniedIsolated},
				{from: "b/z", to: "a/x", proto: tcp, port: 80, egress: open, ingress: deniedIsolated},
				{from: "a/x", to: "b/z", proto: tcp, port: 80, allowed: true, egress: open, ingress: open},
			},
		},
	})
}

func TestEvaluateNamespaceSelector(t *testing.T) {
	t.Parallel()
	runScenarios(t, []scenario{
		{
			name: "empty means all namespaces, absent means the policy's own",
			nss:  []*cluster.Namespace{namespace("a", l("team", "a")), namespace("b", l("team", "b")), namespace("c", nil)},
			pods: []*cluster.Pod{
				pod("a/srv", l("app", "srv"), "10.1.0.1"),
				pod("a/cli", l("app", "cli"), "10.1.0.2"),
				pod("b/cli", l("app", "cli"), "10.1.0.3"),
				pod("c/cli", l("app", "cli"), "10.1.0.4"),
				pod("c/other", l("app", "other"), "10.1.0.5"),
			},
			policies: []*networkingv1.NetworkPolicy{
				netpol("a/srv", sel("app", "srv"), func(s *networkingv1.NetworkPolicySpec) {
					s.Ingress = append(s.Ingress,
						ingressRule(peers(peerNSPods(sel(), sel("app", "cli"))), ports(port(tcp, 80))),
						ingressRule(peers(peerPods(sel())), ports(port(tcp, 81))),
						ingressRule(peers(peerNS(sel("team", "b"))), ports(port(tcp, 82))),
					)
				}),
			},
			cases: []flowCase{
				{from: "b/cli", to: "a/srv", proto: tcp, port: 80, allowed: true, egress: open, ingress: allowedBy("a/srv spec.ingress[0].from[0].ports[0]")},
				{from: "c/cli", to: "a/srv", proto: tcp, port: 80, allowed: true, egress: open, ingress: allowedBy("a/srv spec.ingress[0].from[0].ports[0]")},
				{from: "c/other", to: "a/srv", proto: tcp, port: 80, egress: open, ingress: deniedIsolated},
				{from: "b/cli", to: "a/srv", proto: tcp, port: 81, egress: open, ingress: deniedIsolated},
				{from: "a/cli", to: "a/srv", proto: tcp, port: 81, allowed: true, egress: open, ingress: allowedBy("a/srv spec.ingress[1].from[0].ports[0]")},
				{from: "a/cli", to: "a/srv", proto: tcp, port: 82, egress: open, ingress: deniedIsolated},
				{from: "b/cli", to: "a/srv", proto: tcp, port: 82, allowed: true, egress: open, ingress: allowedBy("a/srv spec.ingress[2].from[0].ports[0]")},
				{from: "c/cli", to: "a/srv", proto: tcp, port: 82, egress: open, ingress: deniedIsolated},
			},
		},
		{
			name: "podSelector AND namespaceSelector in one peer, OR across peers",
			nss:  []*cluster.Namespace{namespace("x", l("team", "x")), namespace("y", l("team", "y")), namespace("p", nil)},
			pods: []*cluster.Pod{
				pod("p/srv-and", l("app", "and"), "10.2.0.1"),
				pod("p/srv-or", l("app", "or"), "10.2.0.2"),
				pod("p/client", l("role", "client"), "10.2.0.3"),
				pod("x/client", l("role", "client"), "10.2.0.4"),
				pod("x/other", l("role", "other"), "10.2.0.5"),
				pod("y/client", l("role", "client"), "10.2.0.6"),
			},
			policies: []*networkingv1.NetworkPolicy{
				netpol("p/and", sel("app", "and"), func(s *networkingv1.NetworkPolicySpec) {
					s.Ingress = append(s.Ingress, ingressRule(peers(peerNSPods(sel("team", "x"), sel("role", "client"))), nil))
				}),
				netpol("p/or", sel("app", "or"), func(s *networkingv1.NetworkPolicySpec) {
					s.Ingress = append(s.Ingress, ingressRule(peers(peerNS(sel("team", "x")), peerPods(sel("role", "client"))), nil))
				}),
			},
			cases: []flowCase{
				{from: "x/client", to: "p/srv-and", proto: tcp, port: 80, allowed: true, egress: open, ingress: allowedBy("p/and spec.ingress[0].from[0]")},
				{from: "x/other", to: "p/srv-and", proto: tcp, port: 80, egress: open, ingress: deniedIsolated},
				{from: "y/client", to: "p/srv-and", proto: tcp, port: 80, egress: open, ingress: deniedIsolated},
				{from: "p/client", to: "p/srv-and", proto: tcp, port: 80, egress: open, ingress: deniedIsolated},

				{from: "x/client", to: "p/srv-or", proto: tcp, port: 80, allowed: true, egress: open, ingress: allowedBy("p/or spec.ingress[0].from[0]")},
				{from: "x/other", to: "p/srv-or", proto: tcp, port: 80, allowed: true, egress: open, ingress: allowedBy("p/or spec.ingress[0].from[0]")},
				{from: "y/client", to: "p/srv-or", proto: tcp, port: 80, egress: open, ingress: deniedIsolated},
				{from: "p/client", to: "p/srv-or", proto: tcp, port: 80, allowed: true, egress: open, ingress: allowedBy("p/or spec.ingress[0].from[1]")},
			},
		},
		{
			name: "name label on every namespace; undefined namespaces have only it",
			nss:  []*cluster.Namespace{namespace("prod", l("env", "prod"))},
			pods: []*cluster.Pod{
				pod("svc/srv", nil, "10.3.0.1"),
				pod("ghost/cli", nil, "10.3.0.2"),
				pod("prod/cli", nil, "10.3.0.3"),
			},
			policies: []*networkingv1.NetworkPolicy{
				netpol("svc/p", sel(), func(s *networkingv1.NetworkPolicySpec) {
					s.Ingress = append(s.Ingress,
						ingressRule(peers(peerNS(sel(cluster.MetadataNameLabel, "ghost"))), ports(port(tcp, 80))),
						ingressRule(peers(peerNS(exprs(req("env", metav1.LabelSelectorOpExists)))), ports(port(tcp, 81))),
						ingressRule(peers(peerNS(sel(cluster.MetadataNameLabel, "prod"))), ports(port(tcp, 82))),
						ingressRule(peers(peerNS(exprs(req("env", metav1.LabelSelectorOpDoesNotExist)))), ports(port(tcp, 83))),
					)
				}),
			},
			cases: []flowCase{
				{from: "ghost/cli", to: "svc/srv", proto: tcp, port: 80, allowed: true, egress: open, ingress: allowedBy("svc/p spec.ingress[0].from[0].ports[0]")},
				{from: "ghost/cli", to: "svc/srv", proto: tcp, port: 81, egress: open, ingress: deniedIsolated},
				{from: "ghost/cli", to: "svc/srv", proto: tcp, port: 83, allowed: true, egress: open, ingress: allowedBy("svc/p spec.ingress[3].from[0].ports[0]")},
				{from: "prod/cli", to: "svc/srv", proto: tcp, port: 80, egress: open, ingress: deniedIsolated},
				{from: "prod/cli", to: "svc/srv", proto: tcp, port: 81, allowed: true, egress: open, ingress: allowedBy("svc/p spec.ingress[1].from[0].ports[0]")},
				{from: "prod/cli", to: "svc/srv", proto: tcp, port: 82, allowed: true, egress: open, ingress: allowedBy("svc/p spec.ingress[2].from[0].ports[0]")},
				{from: "prod/cli", to: "svc/srv", proto: tcp, port: 83, egress: open, ingress: deniedIsolated},
			},
		},
	})
}

func TestNamespaceLabels(t *testing.T) {
	t.Parallel()
	c := cluster.New(
		[]*cluster.Namespace{namespace("prod", l("env", "prod"))},
		[]*cluster.Pod{pod("ghost/p", nil, "10.0.0.1")},
		[]*networkingv1.NetworkPolicy{netpol("polns/x", sel(), nil)},
	)
	want := map[string]map[string]string{
		"prod":  {"env": "prod", cluster.MetadataNameLabel: "prod"},
		"ghost": {cluster.MetadataNameLabel: "ghost"},
		"polns": {cluster.MetadataNameLabel: "polns"},
		"never": {cluster.MetadataNameLabel: "never"},
	}
	for ns, w := range want {
		if got := c.NamespaceLabels(ns); !reflect.DeepEqual(map[string]string(got), w) {
			t.Errorf("NamespaceLabels(%s) = %v, want %v", ns, got, w)
		}
	}
	if !c.Namespaces["prod"].Defined || c.Namespaces["ghost"].Defined || c.Namespaces["polns"].Defined {
		t.Errorf("Defined: prod %v ghost %v polns %v, want true false false",
			c.Namespaces["prod"].Defined, c.Namespaces["ghost"].Defined, c.Namespaces["polns"].Defined)
	}
}

func TestEvaluateIPBlock(t *testing.T) {
	t.Parallel()
	runScenarios(t, []scenario{
		{
			name: "IPv4 cidr with except, external and pod addresses",
			pods: []*cluster.Pod{
				pod("a/srv", l("app", "srv"), "10.1.0.5"),
				pod("a/inside", nil, "10.1.0.6"),
				pod("a/outside", nil, "10.2.0.7"),
			},
			policies: []*networkingv1.NetworkPolicy{
				netpol("a/p", sel("app", "srv"), func(s *networkingv1.NetworkPolicySpec) {
					s.Ingress = append(s.Ingress, ingressRule(peers(
						peerIP("192.168.0.0/16", "192.168.1.0/24"),
						peerIP("10.2.0.0/16"),
					), nil))
				}),
			},
			cases: []flowCase{
				{from: "192.168.2.9", to: "a/srv", proto: tcp, port: 80, allowed: true,
					egress:  side{subject: notSubject, allowed: true, reason: "external endpoint: not subject to NetworkPolicy"},
					ingress: allowedBy("a/p spec.ingress[0].from[0]")},
				{from: "192.168.1.9", to: "a/srv", proto: tcp, port: 80,
					egress: side{subject: notSubject, allowed: true, reason: "external endpoint"}, ingress: deniedIsolated},
				{from: "172.16.0.1", to: "a/srv", proto: tcp, port: 80,
					egress: side{subject: notSubject, allowed: true, reason: "external endpoint"}, ingress: deniedIsolated},
				// Pod addresses are matched by ipBlocks too.
				{from: "a/outside", to: "a/srv", proto: tcp, port: 80, allowed: true, egress: open, ingress: allowedBy("a/p spec.ingress[0].from[1]")},
				{from: "a/inside", to: "a/srv", proto: tcp, port: 80, egress: open, ingress: deniedIsolated},
			},
		},
		{
			name: "IPv6 cidr with except",
			pods: []*cluster.Pod{pod("a/srv6", nil, "fd00::5")},
			policies: []*networkingv1.NetworkPolicy{
				netpol("a/p6", sel(), func(s *networkingv1.NetworkPolicySpec) {
					s.Ingress = append(s.Ingress, ingressRule(peers(peerIP("2001:db8::/32", "2001:db8:0:1::/64")), nil))
				}),
			},
			cases: []flowCase{
				{from: "2001:db8:0:2::1", to: "a/srv6", proto: tcp, port: 443, allowed: true,
					egress: side{subject: notSubject, allowed: true}, ingress: allowedBy("a/p6 spec.ingress[0].from[0]")},
				{from: "2001:db8:0:1::9", to: "a/srv6", proto: tcp, port: 443,
					egress: side{subject: notSubject, allowed: true}, ingress: deniedIsolated},
				{from: "2001:db9::1", to: "a/srv6", proto: tcp, port: 443,
					egress: side{subject: notSubject, allowed: true}, ingress: deniedIsolated},
				{from: "10.0.0.1", to: "a/srv6", proto: tcp, port: 443,
					egress: side{subject: notSubject, allowed: true}, ingress: deniedIsolated},
			},
		},
		{
			name: "egress to ipBlock",
			pods: []*cluster.Pod{pod("a/cli", l("app", "cli"), "10.3.0.1"), pod("a/srv", nil, "10.3.0.2")},
			policies: []*networkingv1.NetworkPolicy{
				netpol("a/out", sel("app", "cli"), func(s *networkingv1.NetworkPolicySpec) {
					s.PolicyTypes = types(pOut)
					s.Egress = append(s.Egress, egressRule(peers(peerIP("0.0.0.0/0", "10.0.0.0/8")), nil))
				}),
			},
			cases: []flowCase{
				{from: "a/cli", to: "8.8.8.8", proto: udp, port: 53, allowed: true,
					egress:  allowedBy("a/out spec.egress[0].to[0]"),
					ingress: side{subject: notSubject, allowed: true, reason: "external endpoint: not subject to NetworkPolicy"}},
				{from: "a/cli", to: "10.9.9.9", proto: udp, port: 53,
					egress: deniedIsolated, ingress: side{subject: notSubject, allowed: true}},
				{from: "a/cli", to: "a/srv", proto: tcp, port: 80, egress: deniedIsolated, ingress: open},
				{from: "a/srv", to: "a/cli", proto: tcp, port: 80, allowed: true, egress: open, ingress: open},
			},
		},
		{
			name: "dual-stack: source address of the destination's family",
			pods: []*cluster.Pod{
				pod("a/src", l("app", "src"), "10.4.0.1", "fd00::4:1"),
				pod("a/dst4", l("app", "dst"), "10.4.0.2"),
				pod("a/dst6", l("app", "dst"), "fd00::4:2"),
				pod("a/dst64", l("app", "dst"), "fd00::4:3", "10.4.0.3"),
			},
			policies: []*networkingv1.NetworkPolicy{
				netpol("a/in6", sel("app", "dst"), func(s *networkingv1.NetworkPolicySpec) {
					s.Ingress = append(s.Ingress, ingressRule(peers(peerIP("fd00::/64")), nil))
				}),
				netpol("a/out4", sel("app", "src"), func(s *networkingv1.NetworkPolicySpec) {
					s.PolicyTypes = types(pOut)
					s.Egress = append(s.Egress, egressRule(peers(peerIP("10.4.0.0/24")), nil))
				}),
			},
			cases: []flowCase{
				// dst4: src uses 10.4.0.1, outside fd00::/64.
				{from: "a/src", to: "a/dst4", proto: tcp, port: 80, egress: allowedBy("a/out4 spec.egress[0].to[0]"), ingress: deniedIsolated},
				// dst6: src uses fd00::4:1; the destination fd00::4:2 is not in 10.4.0.0/24.
				{from: "a/src", to: "a/dst6", proto: tcp, port: 80, egress: deniedIsolated, ingress: allowedBy("a/in6 spec.ingress[0].from[0]")},
				// dst64: primary is IPv6, so both ends use IPv6.
				{from: "a/src", to: "a/dst64", proto: tcp, port: 80, egress: deniedIsolated, ingress: allowedBy("a/in6 spec.ingress[0].from[0]")},
				// From an IPv4-only pod to dst64 the source stays IPv4.
				{from: "a/dst4", to: "a/dst64", proto: tcp, port: 80, egress: open, ingress: deniedIsolated},
			},
		},
	})
}

func TestEvaluatePorts(t *testing.T) {
	t.Parallel()
	runScenarios(t, []scenario{
		{
			name: "protocols, numbers, ranges, protocol-only entries",
			pods: []*cluster.Pod{pod("a/cli", nil, "10.5.0.1"), pod("a/srv", l("app", "srv"), "10.5.0.2")},
			policies: []*networkingv1.NetworkPolicy{
				netpol("a/p", sel("app", "srv"), func(s *networkingv1.NetworkPolicySpec) {
					s.Ingress = append(s.Ingress,
						ingressRule(nil, ports(port("", 80))),
						ingressRule(nil, ports(port(udp, 53), port(sctp, 9000))),
						ingressRule(nil, ports(portRange(tcp, 8000, 8080))),
						ingressRule(nil, ports(protoOnly(sctp))),
					)
				}),
			},
			cases: []flowCase{
				{from: "a/cli", to: "a/srv", proto: tcp, port: 80, allowed: true, egress: open, ingress: allowedBy("a/p spec.ingress[0].ports[0]")},
				{from: "a/cli", to: "a/srv", proto: udp, port: 80, egress: open, ingress: deniedIsolated},
				{from: "a/cli", to: "a/srv", proto: udp, port: 53, allowed: true, egress: open, ingress: allowedBy("a/p spec.ingress[1].ports[0]")},
				{from: "a/cli", to: "a/srv", proto: tcp, port: 53, egress: open, ingress: deniedIsolated},
				{from: "a/cli", to: "a/srv", proto: sctp, port: 9000, allowed: true, egress: open,
					ingress: allowedBy("a/p spec.ingress[1].ports[1]", "a/p spec.ingress[3].ports[0]")},
				{from: "a/cli", to: "a/srv", proto: sctp, port: 1, allowed: true, egress: open, ingress: allowedBy("a/p spec.ingress[3].ports[0]")},
				{from: "a/cli", to: "a/srv", proto: tcp, port: 7999, egress: open, ingress: deniedIsolated},
				{from: "a/cli", to: "a/srv", proto: tcp, port: 8000, allowed: true, egress: open, ingress: allowedBy("a/p spec.ingress[2].ports[0]")},
				{from: "a/cli", to: "a/srv", proto: tcp, port: 8040, allowed: true, egress: open, ingress: allowedBy("a/p spec.ingress[2].ports[0]")},
				{from: "a/cli", to: "a/srv", proto: tcp, port: 8080, allowed: true, egress: open, ingress: allowedBy("a/p spec.ingress[2].ports[0]")},
				{from: "a/cli", to: "a/srv", proto: tcp, port: 8081, egress: open, ingress: deniedIsolated},
				{from: "a/cli", to: "a/srv", proto: udp, port: 8000, egress: open, ingress: deniedIsolated},
			},
		},
		{
			name: "empty ports allow every port and protocol; several ports OR",
			pods: []*cluster.Pod{pod("a/cli", l("app", "cli"), "10.5.1.1"), pod("a/srv", l("app", "srv"), "10.5.1.2")},
			policies: []*networkingv1.NetworkPolicy{
				netpol("a/p", sel("app", "srv"), func(s *networkingv1.NetworkPolicySpec) {
					s.Ingress = append(s.Ingress,
						ingressRule(peers(peerPods(sel("app", "nobody"))), ports(port(tcp, 22))),
						ingressRule(peers(peerPods(sel("app", "cli"))), nil),
						ingressRule(peers(peerPods(sel("app", "cli"))), ports(port(tcp, 80), port(tcp, 443))),
					)
				}),
			},
			cases: []flowCase{
				{from: "a/cli", to: "a/srv", proto: udp, port: 12345, allowed: true, egress: open, ingress: allowedBy("a/p spec.ingress[1].from[0]")},
				{from: "a/cli", to: "a/srv", proto: sctp, port: 1, allowed: true, egress: open, ingress: allowedBy("a/p spec.ingress[1].from[0]")},
				{from: "a/cli", to: "a/srv", proto: tcp, port: 443, allowed: true, egress: open,
					ingress: allowedBy("a/p spec.ingress[1].from[0]", "a/p spec.ingress[2].from[0].ports[1]")},
			},
		},
		{
			name: "named ports resolve per destination pod",
			pods: []*cluster.Pod{
				withPorts(pod("a/cli", nil, "10.5.2.1"), cport("http", tcp, 7777)),
				withPorts(pod("a/web1", l("app", "web"), "10.5.2.2"), cport("http", tcp, 8080)),
				withPorts(pod("a/web2", l("app", "web"), "10.5.2.3"), cport("http", tcp, 9090), cport("dns", udp, 53)),
				pod("a/web3", l("app", "web"), "10.5.2.4"),
			},
			policies: []*networkingv1.NetworkPolicy{
				netpol("a/p", sel("app", "web"), func(s *networkingv1.NetworkPolicySpec) {
					s.Ingress = append(s.Ingress,
						ingressRule(nil, ports(namedPort("", "http"))),
						ingressRule(nil, ports(namedPort(udp, "dns"))),
						ingressRule(nil, ports(namedPort(tcp, "dns"))),
					)
				}),
			},
			cases: []flowCase{
				{from: "a/cli", to: "a/web1", proto: tcp, port: 8080, allowed: true, egress: open, ingress: allowedBy("a/p spec.ingress[0].ports[0]")},
				{from: "a/cli", to: "a/web1", proto: tcp, port: 9090, egress: open, ingress: deniedIsolated},
				{from: "a/cli", to: "a/web2", proto: tcp, port: 9090, allowed: true, egress: open, ingress: allowedBy("a/p spec.ingress[0].ports[0]")},
				{from: "a/cli", to: "a/web2", proto: tcp, port: 8080, egress: open, ingress: deniedIsolated},
				// The source's own "http" port does not count.
				{from: "a/cli", to: "a/web2", proto: tcp, port: 7777, egress: open, ingress: deniedIsolated},
				{from: "a/cli", to: "a/web3", proto: tcp, port: 8080, egress: open, ingress: deniedIsolated},
				{from: "a/cli", to: "a/web2", proto: udp, port: 53, allowed: true, egress: open, ingress: allowedBy("a/p spec.ingress[1].ports[0]")},
				// "dns" is a UDP port; TCP/dns resolves to nothing.
				{from: "a/cli", to: "a/web2", proto: tcp, port: 53, egress: open, ingress: deniedIsolated},
				// "http" is TCP.
				{from: "a/cli", to: "a/web1", proto: udp, port: 8080, egress: open, ingress: deniedIsolated},
			},
		},
		{
			name: "named ports in egress resolve against the destination",
			pods: []*cluster.Pod{
				withPorts(pod("a/cli", l("app", "cli"), "10.5.3.1"), cport("metrics", tcp, 7777)),
				withPorts(pod("b/m1", nil, "10.5.3.2"), cport("metrics", tcp, 9102)),
				withPorts(pod("b/m2", nil, "10.5.3.3"), cport("metrics", tcp, 9103)),
			},
			policies: []*networkingv1.NetworkPolicy{
				netpol("a/p", sel("app", "cli"), func(s *networkingv1.NetworkPolicySpec) {
					s.PolicyTypes = types(pOut)
					s.Egress = append(s.Egress,
						egressRule(peers(peerNS(sel())), ports(namedPort(tcp, "metrics"))),
						egressRule(peers(peerIP("0.0.0.0/0")), ports(namedPort(tcp, "metrics"))),
					)
				}),
			},
			cases: []flowCase{
				{from: "a/cli", to: "b/m1", proto: tcp, port: 9102, allowed: true, ingress: open,
					egress: allowedBy("a/p spec.egress[0].to[0].ports[0]", "a/p spec.egress[1].to[0].ports[0]")},
				{from: "a/cli", to: "b/m1", proto: tcp, port: 9103, egress: deniedIsolated, ingress: open},
				{from: "a/cli", to: "b/m2", proto: tcp, port: 9103, allowed: true, ingress: open,
					egress: allowedBy("a/p spec.egress[0].to[0].ports[0]", "a/p spec.egress[1].to[0].ports[0]")},
				{from: "a/cli", to: "b/m2", proto: tcp, port: 7777, egress: deniedIsolated, ingress: open},
				// An address outside the cluster's pods has no named ports.
				{from: "a/cli", to: "1.2.3.4", proto: tcp, port: 9102, egress: deniedIsolated,
					ingress: side{subject: notSubject, allowed: true}},
			},
		},
	})
}

func TestEvaluateEmptyPeers(t *testing.T) {
	t.Parallel()
	runScenarios(t, []scenario{{
		name: "empty from/to allow every peer, inside or outside the cluster",
		pods: []*cluster.Pod{pod("a/cli", l("app", "cli"), "10.6.0.1"), pod("b/srv", l("app", "srv"), "10.6.0.2")},
		policies: []*networkingv1.NetworkPolicy{
			netpol("a/out", sel("app", "cli"), func(s *networkingv1.NetworkPolicySpec) {
				s.PolicyTypes = types(pOut)
				s.Egress = append(s.Egress, egressRule([]networkingv1.NetworkPolicyPeer{}, nil))
			}),
			netpol("b/in", sel("app", "srv"), func(s *networkingv1.NetworkPolicySpec) {
				s.Ingress = append(s.Ingress, ingressRule(nil, nil))
			}),
		},
		cases: []flowCase{
			{from: "a/cli", to: "b/srv", proto: sctp, port: 7, allowed: true, egress: allowedBy("a/out spec.egress[0]"), ingress: allowedBy("b/in spec.ingress[0]")},
			{from: "a/cli", to: "203.0.113.7", proto: udp, port: 9, allowed: true, egress: allowedBy("a/out spec.egress[0]"),
				ingress: side{subject: notSubject, allowed: true}},
			{from: "203.0.113.7", to: "b/srv", proto: tcp, port: 1, allowed: true, egress: side{subject: notSubject, allowed: true},
				ingress: allowedBy("b/in spec.ingress[0]")},
		},
	}})
}

func TestEvaluatePolicyTypes(t *testing.T) {
	t.Parallel()
	runScenarios(t, []scenario{{
		name: "defaulted and explicit policyTypes",
		pods: []*cluster.Pod{
			pod("a/x", l("app", "x"), "10.7.0.1"),
			pod("a/y", l("app", "y"), "10.7.0.2"),
			pod("a/z", l("app", "z"), "10.7.0.3"),
			pod("a/w", l("app", "w"), "10.7.0.4"),
		},
		policies: []*networkingv1.NetworkPolicy{
			// Defaulted: Ingress only.
			netpol("a/ing-only", sel("app", "x"), func(s *networkingv1.NetworkPolicySpec) {
				s.Ingress = append(s.Ingress, ingressRule(peers(peerPods(sel("app", "y"))), nil))
			}),
			// Defaulted: Ingress (with no rule: nothing allowed) and Egress.
			netpol("a/with-egress", sel("app", "y"), func(s *networkingv1.NetworkPolicySpec) {
				s.Egress = append(s.Egress, egressRule(peers(peerPods(sel("app", "z"))), nil))
			}),
			// Explicit Egress: the ingress rule is ignored, ingress not isolated.
			netpol("a/egress-explicit", sel("app", "z"), func(s *networkingv1.NetworkPolicySpec) {
				s.PolicyTypes = types(pOut)
				s.Ingress = append(s.Ingress, ingressRule(peers(peerPods(sel("app", "nobody"))), nil))
			}),
			// Explicit Ingress: the egress rule is ignored, egress not isolated.
			netpol("a/ingress-explicit", sel("app", "w"), func(s *networkingv1.NetworkPolicySpec) {
				s.PolicyTypes = types(pIn)
				s.Egress = append(s.Egress, egressRule(peers(peerPods(sel("app", "nobody"))), nil))
			}),
		},
		cases: []flowCase{
			{from: "a/y", to: "a/x", proto: tcp, port: 80, egress: deniedIsolated, ingress: allowedBy("a/ing-only spec.ingress[0].from[0]")},
			{from: "a/y", to: "a/z", proto: tcp, port: 80, allowed: true, egress: allowedBy("a/with-egress spec.egress[0].to[0]"), ingress: open},
			{from: "a/x", to: "a/z", proto: tcp, port: 80, allowed: true, egress: open, ingress: open},
			{from: "a/z", to: "a/x", proto: tcp, port: 80, egress: deniedIsolated, ingress: deniedIsolated},
			{from: "a/x", to: "a/y", proto: tcp, port: 80, egress: open, ingress: deniedIsolated},
			{from: "a/w", to: "a/z", proto: tcp, port: 80, allowed: true, egress: open, ingress: open},
			{from: "a/x", to: "a/w", proto: tcp, port: 80, egress: open, ingress: deniedIsolated},
		},
	}})
}

func TestPolicyTypes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		spec          networkingv1.NetworkPolicySpec
		ingress, egre bool
	}{
		{"empty spec", networkingv1.NetworkPolicySpec{}, true, false},
		{"ingress rules", networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{}}}, true, false},
		{"egress rules", networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{}}}, true, true},
		{"explicit Egress with ingress rules", networkingv1.NetworkPolicySpec{PolicyTypes: types(pOut), Ingress: []networkingv1.NetworkPolicyIngressRule{{}}}, false, true},
		{"explicit Ingress with egress rules", networkingv1.NetworkPolicySpec{PolicyTypes: types(pIn), Egress: []networkingv1.NetworkPolicyEgressRule{{}}}, true, false},
		{"explicit both, no rules", networkingv1.NetworkPolicySpec{PolicyTypes: types(pOut, pIn)}, true, true},
	} {
		got := policy.PolicyTypes(&tc.spec)
		if got[policy.Ingress] != tc.ingress || got[policy.Egress] != tc.egre {
			t.Errorf("%s: PolicyTypes = ingress %v egress %v, want %v %v", tc.name, got[policy.Ingress], got[policy.Egress], tc.ingress, tc.egre)
		}
	}
}

func TestEvaluateIsolation(t *testing.T) {
	t.Parallel()
	runScenarios(t, []scenario{
		{
			name: "only policies of the pod's namespace and of the direction isolate",
			pods: []*cluster.Pod{
				pod("a/x", l("app", "x"), "10.8.0.1"),
				pod("b/x", l("app", "x"), "10.8.0.2"),
				pod("a/c", nil, "10.8.0.3"),
			},
			policies: []*networkingv1.NetworkPolicy{
				netpol("a/p", sel("app", "x"), nil),
				netpol("b/e", sel("app", "x"), func(s *networkingv1.NetworkPolicySpec) {
					s.PolicyTypes = types(pOut)
					s.Egress = append(s.Egress, egressRule(nil, nil))
				}),
			},
			cases: []flowCase{
				{from: "a/c", to: "a/x", proto: tcp, port: 80, egress: open, ingress: deniedIsolated},
				{from: "a/c", to: "b/x", proto: tcp, port: 80, allowed: true, egress: open, ingress: open},
				{from: "b/x", to: "a/c", proto: tcp, port: 80, allowed: true, egress: allowedBy("b/e spec.egress[0]"), ingress: open},
				{from: "a/x", to: "a/c", proto: tcp, port: 80, allowed: true, egress: open, ingress: open},
			},
		},
		{
			name: "policies are OR-ed",
			pods: []*cluster.Pod{
				pod("a/db", l("app", "db"), "10.8.1.1"),
				pod("a/api", l("app", "api", "role", "ops"), "10.8.1.2"),
				pod("a/web", l("app", "web"), "10.8.1.3"),
			},
			policies: []*networkingv1.NetworkPolicy{
				netpol("a/db-from-ops", sel("app", "db"), func(s *networkingv1.NetworkPolicySpec) {
					s.Ingress = append(s.Ingress, ingressRule(peers(peerPods(sel("role", "ops"))), nil))
				}),
				netpol("a/db-from-api", sel("app", "db"), func(s *networkingv1.NetworkPolicySpec) {
					s.Ingress = append(s.Ingress, ingressRule(peers(peerPods(sel("app", "api"))), ports(port(tcp, 5432))))
				}),
			},
			cases: []flowCase{
				{from: "a/api", to: "a/db", proto: tcp, port: 5432, allowed: true, egress: open,
					ingress: allowedBy("a/db-from-api spec.ingress[0].from[0].ports[0]", "a/db-from-ops spec.ingress[0].from[0]")},
				{from: "a/api", to: "a/db", proto: tcp, port: 22, allowed: true, egress: open, ingress: allowedBy("a/db-from-ops spec.ingress[0].from[0]")},
				{from: "a/web", to: "a/db", proto: tcp, port: 5432, egress: open, ingress: deniedIsolated},
			},
		},
		{
			name: "a connection needs egress at the source and ingress at the destination",
			pods: []*cluster.Pod{pod("a/cli", l("app", "cli"), "10.8.2.1"), pod("a/srv", l("app", "srv"), "10.8.2.2")},
			policies: []*networkingv1.NetworkPolicy{
				netpol("a/cli", sel("app", "cli"), func(s *networkingv1.NetworkPolicySpec) {
					s.PolicyTypes = types(pOut, pIn)
					s.Egress = append(s.Egress, egressRule(peers(peerPods(sel("app", "srv"))), nil))
					s.Ingress = append(s.Ingress, ingressRule(peers(peerPods(sel("app", "srv"))), nil))
				}),
				netpol("a/srv", sel("app", "srv"), func(s *networkingv1.NetworkPolicySpec) {
					s.Ingress = append(s.Ingress, ingressRule(peers(peerPods(sel("app", "other"))), nil))
					s.Egress = append(s.Egress, egressRule(peers(peerPods(sel("app", "cli"))), ports(port(udp, 53))))
				}),
			},
			cases: []flowCase{
				{from: "a/cli", to: "a/srv", proto: tcp, port: 80, egress: allowedBy("a/cli spec.egress[0].to[0]"), ingress: deniedIsolated},
				{from: "a/srv", to: "a/cli", proto: tcp, port: 80, egress: deniedIsolated, ingress: allowedBy("a/cli spec.ingress[0].from[0]")},
				{from: "a/srv", to: "a/cli", proto: udp, port: 53, allowed: true,
					egress: allowedBy("a/srv spec.egress[0].to[0].ports[0]"), ingress: allowedBy("a/cli spec.ingress[0].from[0]")},
			},
		},
	})
}

func TestEvaluateIsolatingLists(t *testing.T) {
	t.Parallel()
	c := cluster.New(nil,
		[]*cluster.Pod{pod("a/db", l("app", "db"), "10.9.0.1"), pod("a/web", l("app", "web"), "10.9.0.2")},
		[]*networkingv1.NetworkPolicy{
			netpol("a/z-all", sel(), func(s *networkingv1.NetworkPolicySpec) { s.PolicyTypes = types(pIn, pOut) }),
			netpol("a/b-db", sel("app", "db"), nil),
			netpol("a/a-egress", sel("app", "db"), func(s *networkingv1.NetworkPolicySpec) { s.PolicyTypes = types(pOut) }),
		})
	set := policy.NewSet(c)
	v := set.Evaluate(flow(t, c, "a/web", "a/db", tcp, 80))
	if got, want := keys(v.Ingress.Isolating), []string{"a/b-db", "a/z-all"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ingress isolating = %v, want %v", got, want)
	}
	if got, want := keys(v.Egress.Isolating), []string{"a/z-all"}; !reflect.DeepEqual(got, want) {
		t.Errorf("egress isolating = %v, want %v", got, want)
	}
	if got, want := keys(set.Isolating(c.Pod("a/db"), policy.Egress)), []string{"a/a-egress", "a/z-all"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Isolating(db, Egress) = %v, want %v", got, want)
	}
}

func TestEvaluateHostNetwork(t *testing.T) {
	t.Parallel()
	hostSide := side{subject: notSubject, allowed: true, reason: "hostNetwork pod: not subject to NetworkPolicy"}
	runScenarios(t, []scenario{{
		name: "hostNetwork pods are never isolated and match only ipBlocks",
		pods: []*cluster.Pod{
			// On another node: from its own node, a pod's ingress is
			// always allowed (TestEvaluateFromOwnNode).
			onNode(hostNetwork(pod("a/agent", l("app", "agent"), "192.168.0.10")), "node-2"),
			pod("a/srv", l("app", "srv"), "10.10.0.2"),
			pod("a/cli", l("app", "cli"), "10.10.0.3"),
		},
		policies: []*networkingv1.NetworkPolicy{
			netpol("a/all", sel(), func(s *networkingv1.NetworkPolicySpec) {
				s.PolicyTypes = types(pIn, pOut)
				s.Ingress = append(s.Ingress,
					ingressRule(peers(peerPods(sel())), nil),
					ingressRule(peers(peerIP("192.168.0.0/24")), ports(port(tcp, 9100))),
				)
				s.Egress = append(s.Egress,
					egressRule(peers(peerNSPods(sel(), sel("app", "agent"))), nil),
					egressRule(peers(peerPods(sel())), nil),
				)
			}),
			netpol("a/agent", sel("app", "agent"), nil),
		},
		cases: []flowCase{
			{from: "a/agent", to: "a/srv", proto: tcp, port: 80, egress: hostSide, ingress: deniedIsolated},
			{from: "a/agent", to: "a/srv", proto: tcp, port: 9100, allowed: true, egress: hostSide, ingress: allowedBy("a/all spec.ingress[1].from[0].ports[0]")},
			{from: "a/srv", to: "a/agent", proto: tcp, port: 80, egress: deniedIsolated, ingress: hostSide},
			{from: "a/cli", to: "a/srv", proto: tcp, port: 80, allowed: true, egress: allowedBy("a/all spec.egress[1].to[0]"), ingress: allowedBy("a/all spec.ingress[0].from[0]")},
		},
	}})
}

func TestEvaluateSelfTraffic(t *testing.T) {
	t.Parallel()
	c := cluster.New(nil,
		[]*cluster.Pod{pod("a/x", nil, "10.11.0.1"), pod("a/y", nil, "10.11.0.2")},
		[]*networkingv1.NetworkPolicy{netpol("a/deny-all", sel(), func(s *networkingv1.NetworkPolicySpec) { s.PolicyTypes = types(pIn, pOut) })})
	set := policy.NewSet(c)
	v := set.Evaluate(flow(t, c, "a/x", "a/x", tcp, 80))
	if !v.Allowed || !v.Egress.Allowed || !v.Ingress.Allowed {
		t.Errorf("self traffic: Allowed %v, egress %v, ingress %v; want all true", v.Allowed, v.Egress.Allowed, v.Ingress.Allowed)
	}
	if !strings.Contains(v.Reason, "to itself") || !strings.Contains(v.Reason, "NetworkPolicy does not apply") {
		t.Errorf("self traffic reason = %q, want it to say the pod talks to itself and NetworkPolicy does not apply", v.Reason)
	}
	if v.Egress.Reason != v.Reason || v.Ingress.Reason != v.Reason {
		t.Errorf("self traffic side reasons = %q, %q, want %q", v.Egress.Reason, v.Ingress.Reason, v.Reason)
	}
	if len(v.Egress.AllowedBy)+len(v.Ingress.AllowedBy) != 0 {
		t.Errorf("self traffic AllowedBy = %v %v, want none", v.Egress.AllowedBy, v.Ingress.AllowedBy)
	}
	// Another pod of the same namespace is denied both ways.
	if v := set.Evaluate(flow(t, c, "a/x", "a/y", tcp, 80)); v.Allowed || v.Egress.Allowed || v.Ingress.Allowed {
		t.Errorf("x -> y under deny-all: allowed %v egress %v ingress %v, want all false", v.Allowed, v.Egress.Allowed, v.Ingress.Allowed)
	}
}

func TestCompileRejectsInvalid(t *testing.T) {
	t.Parallel()
	bad := netpol("a/bad", sel(), func(s *networkingv1.NetworkPolicySpec) {
		s.Ingress = append(s.Ingress, ingressRule(peers(peerIP("10.0.0.0/8", "11.0.0.0/16")), nil))
	})
	good := netpol("a/good", sel(), nil)
	if _, err := policy.Compile(bad); err == nil || !strings.Contains(err.Error(), "spec.ingress[0].from[0].ipBlock.except[0]") {
		t.Errorf("Compile(bad) error = %v, want one naming spec.ingress[0].from[0].ipBlock.except[0]", err)
	}
	c := cluster.New(nil, []*cluster.Pod{pod("a/x", nil, "10.0.0.1"), pod("a/y", nil, "10.0.0.2")}, []*networkingv1.NetworkPolicy{bad, good})
	set := policy.NewSet(c)
	if len(set.Rejected) != 1 || len(set.Policies) != 1 || set.Policies[0].Name != "good" {
		t.Fatalf("NewSet: %d rejected, policies %v; want bad rejected, good kept", len(set.Rejected), set.Policies)
	}
	if set.Policy("a", "bad") != nil || set.Policy("a", "good") == nil {
		t.Errorf("Policy lookups wrong")
	}
	// The good policy still applies (default deny ingress).
	if v := set.Evaluate(flow(t, c, "a/x", "a/y", tcp, 80)); v.Allowed {
		t.Errorf("x -> y allowed; want denied by a/good")
	}
}

func TestIPBlockContains(t *testing.T) {
	t.Parallel()
	np := netpol("a/p", sel(), func(s *networkingv1.NetworkPolicySpec) {
		s.Ingress = append(s.Ingress, ingressRule(peers(
			peerIP("10.1.2.3/8", "10.5.0.0/16"), // host bits set: the API server accepts and masks them
			peerIP("2001:db8::/32", "2001:db8:ffff::/48"),
		), nil))
	})
	p, err := policy.Compile(np)
	if err != nil {
		t.Fatal(err)
	}
	v4, v6 := p.Rules[policy.Ingress][0].Peers[0].IPBlock, p.Rules[policy.Ingress][0].Peers[1].IPBlock
	for _, tc := range []struct {
		b    *policy.IPBlock
		ip   string
		want bool
	}{
		{v4, "10.0.0.0", true},
		{v4, "10.255.255.255", true},
		{v4, "10.5.0.1", false},
		{v4, "10.4.255.255", true},
		{v4, "10.6.0.0", true},
		{v4, "11.0.0.0", false},
		{v4, "::ffff:10.1.1.1", true}, // IPv4-mapped is the IPv4 address
		{v4, "::a01:101", false},
		{v6, "2001:db8::1", true},
		{v6, "2001:db8:ffff::1", false},
		{v6, "2001:db9::", false},
		{v6, "10.1.1.1", false},
	} {
		if got := tc.b.Contains(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("%s contains %s = %v, want %v", tc.b, tc.ip, got, tc.want)
		}
	}
}

func TestEvaluateExternalBothEnds(t *testing.T) {
	t.Parallel()
	// Unisolated pod to an external address and back.
	runScenarios(t, []scenario{{
		name: "external endpoints are not subject to policy",
		pods: []*cluster.Pod{pod("a/x", nil, "10.12.0.1")},
		cases: []flowCase{
			{from: "a/x", to: "198.51.100.1", proto: tcp, port: 443, allowed: true, egress: open,
				ingress: side{subject: notSubject, allowed: true, reason: "external endpoint: not subject to NetworkPolicy"}},
			{from: "198.51.100.1", to: "a/x", proto: tcp, port: 443, allowed: true, ingress: open,
				egress: side{subject: notSubject, allowed: true, reason: "external endpoint: not subject to NetworkPolicy"}},
		},
	}})
}
