package validation_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/netfence/netfence/internal/validation"
)

func ptr[T any](v T) *T { return &v }

func numPort(n int32) *intstr.IntOrString   { return ptr(intstr.FromInt32(n)) }
func namePort(s string) *intstr.IntOrString { return ptr(intstr.FromString(s)) }
func proto(p string) *corev1.Protocol       { return ptr(corev1.Protocol(p)) }
func ipb(cidr string, except ...string) *networkingv1.IPBlock {
	return &networkingv1.IPBlock{CIDR: cidr, Except: except}
}

// errs renders an error list as sorted "Type field" strings, e.g.
// "FieldValueInvalid spec.ingress[0].ports[0].port".
func errs(list field.ErrorList) []string {
	out := make([]string, 0, len(list))
	for _, e := range list {
		out = append(out, fmt.Sprintf("%s %s", e.Type, e.Field))
	}
	sort.Strings(out)
	return out
}

const (
	invalid      = field.ErrorTypeInvalid
	required     = field.ErrorTypeRequired
	forbidden    = field.ErrorTypeForbidden
	notSupported = field.ErrorTypeNotSupported
)

func e(t field.ErrorType, path string) string { return fmt.Sprintf("%s %s", t, path) }

func policy(mod func(*networkingv1.NetworkPolicy)) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "db"}}
	mod(np)
	return np
}

func ingressPorts(ps ...networkingv1.NetworkPolicyPort) func(*networkingv1.NetworkPolicy) {
	return func(np *networkingv1.NetworkPolicy) {
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{Ports: ps}}
	}
}

func egressPorts(ps ...networkingv1.NetworkPolicyPort) func(*networkingv1.NetworkPolicy) {
	return func(np *networkingv1.NetworkPolicy) {
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{Ports: ps}}
	}
}

func from(peers ...networkingv1.NetworkPolicyPeer) func(*networkingv1.NetworkPolicy) {
	return func(np *networkingv1.NetworkPolicy) {
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: peers}}
	}
}

func to(peers ...networkingv1.NetworkPolicyPeer) func(*networkingv1.NetworkPolicy) {
	return func(np *networkingv1.NetworkPolicy) {
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{To: peers}}
	}
}

func podSel(s *metav1.LabelSelector) func(*networkingv1.NetworkPolicy) {
	return func(np *networkingv1.NetworkPolicy) { np.Spec.PodSelector = *s }
}

func expr(key string, op metav1.LabelSelectorOperator, values ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

func policyTypes(ts ...string) func(*networkingv1.NetworkPolicy) {
	return func(np *networkingv1.NetworkPolicy) {
		for _, t := range ts {
			np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyType(t))
		}
	}
}

func TestNetworkPolicy(t *testing.T) {
	t.Parallel()
	const (
		ip0 = "spec.ingress[0].from[0]"
		ep0 = "spec.egress[0].to[0]"
		ipt = "spec.ingress[0].ports[0]"
		ept = "spec.egress[0].ports[0]"
	)
	for _, tc := range []struct {
		name string
		mod  func(*networkingv1.NetworkPolicy)
		want []string // nil: valid
	}{
		{"empty spec", func(*networkingv1.NetworkPolicy) {}, nil},

		// Ports.
		{"port 1 and 65535", ingressPorts(networkingv1.NetworkPolicyPort{Port: numPort(1)}, networkingv1.NetworkPolicyPort{Port: numPort(65535)}), nil},
		{"port 0", ingressPorts(networkingv1.NetworkPolicyPort{Port: numPort(0)}), []string{e(invalid, ipt+".port")}},
		{"port 65536", egressPorts(networkingv1.NetworkPolicyPort{Port: numPort(65536)}), []string{e(invalid, ept+".port")}},
		{"port -1", ingressPorts(networkingv1.NetworkPolicyPort{Port: numPort(-1)}), []string{e(invalid, ipt+".port")}},
		{"second port entry", ingressPorts(networkingv1.NetworkPolicyPort{Port: numPort(80)}, networkingv1.NetworkPolicyPort{Port: numPort(0)}),
			[]string{e(invalid, "spec.ingress[0].ports[1].port")}},
		{"endPort range", ingressPorts(networkingv1.NetworkPolicyPort{Port: numPort(32000), EndPort: ptr(int32(32768))}), nil},
		{"endPort equal to port", ingressPorts(networkingv1.NetworkPolicyPort{Port: numPort(80), EndPort: ptr(int32(80))}), nil},
		{"endPort below port", ingressPorts(networkingv1.NetworkPolicyPort{Port: numPort(80), EndPort: ptr(int32(70))}), []string{e(invalid, ipt+".endPort")}},
		{"endPort 65536", egressPorts(networkingv1.NetworkPolicyPort{Port: numPort(80), EndPort: ptr(int32(65536))}), []string{e(invalid, ept+".endPort")}},
		{"endPort 0 and below port", ingressPorts(networkingv1.NetworkPolicyPort{Port: numPort(80), EndPort: ptr(int32(0))}),
			[]string{e(invalid, ipt+".endPort"), e(invalid, ipt+".endPort")}},
		{"endPort with a named port", ingressPorts(networkingv1.NetworkPolicyPort{Port: namePort("http"), EndPort: ptr(int32(90))}), []string{e(invalid, ipt+".endPort")}},
		{"endPort without port", egressPorts(networkingv1.NetworkPolicyPort{Protocol: proto("TCP"), EndPort: ptr(int32(90))}), []string{e(invalid, ept+".endPort")}},
		{"named ports", ingressPorts(networkingv1.NetworkPolicyPort{Port: namePort("http")}, networkingv1.NetworkPolicyPort{Port: namePort("dns-tcp")},
			networkingv1.NetworkPolicyPort{Port: namePort("abcdefghijklmno")}), nil},
		{"named port of digits only", ingressPorts(networkingv1.NetworkPolicyPort{Port: namePort("80")}), []string{e(invalid, ipt+".port")}},
		{"named port with underscore", ingressPorts(networkingv1.NetworkPolicyPort{Port: namePort("http_alt")}), []string{e(invalid, ipt+".port")}},
		{"named port too long", ingressPorts(networkingv1.NetworkPolicyPort{Port: namePort("abcdefghijklmnop")}), []string{e(invalid, ipt+".port")}},
		{"named port with leading hyphen", ingressPorts(networkingv1.NetworkPolicyPort{Port: namePort("-http")}), []string{e(invalid, ipt+".port")}},
		// Two messages: characters, and no lower-case letter.
		{"named port upper case", ingressPorts(networkingv1.NetworkPolicyPort{Port: namePort("HTTP")}), []string{e(invalid, ipt+".port"), e(invalid, ipt+".port")}},

		// Protocols.
		{"TCP UDP SCTP", ingressPorts(networkingv1.NetworkPolicyPort{Protocol: proto("TCP")}, networkingv1.NetworkPolicyPort{Protocol: proto("UDP")},
			networkingv1.NetworkPolicyPort{Protocol: proto("SCTP"), Port: numPort(7)}), nil},
		{"ICMP", ingressPorts(networkingv1.NetworkPolicyPort{Protocol: proto("ICMP")}), []string{e(notSupported, ipt+".protocol")}},
		{"lower-case tcp", egressPorts(networkingv1.NetworkPolicyPort{Protocol: proto("tcp"), Port: numPort(80)}), []string{e(notSupported, ept+".protocol")}},
		{"empty protocol", ingressPorts(networkingv1.NetworkPolicyPort{Protocol: proto("")}), []string{e(notSupported, ipt+".protocol")}},

		// Peers.
		{"empty peer", from(networkingv1.NetworkPolicyPeer{}), []string{e(required, ip0)}},
		{"pod and namespace selectors", from(networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}, NamespaceSelector: &metav1.LabelSelector{}}), nil},
		{"ipBlock and podSelector", from(networkingv1.NetworkPolicyPeer{IPBlock: ipb("10.0.0.0/8"), PodSelector: &metav1.LabelSelector{}}), []string{e(forbidden, ip0)}},
		{"ipBlock and namespaceSelector", to(networkingv1.NetworkPolicyPeer{IPBlock: ipb("10.0.0.0/8"), NamespaceSelector: &metav1.LabelSelector{}}), []string{e(forbidden, ep0)}},
		{"second empty peer", to(networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}}, networkingv1.NetworkPolicyPeer{}), []string{e(required, "spec.egress[0].to[1]")}},

		// CIDRs.
		{"IPv4 and IPv6 blocks", from(networkingv1.NetworkPolicyPeer{IPBlock: ipb("0.0.0.0/0", "10.0.0.0/8", "192.168.1.0/24")},
			networkingv1.NetworkPolicyPeer{IPBlock: ipb("2001:db8::/32", "2001:db8:1::/48")}, networkingv1.NetworkPolicyPeer{IPBlock: ipb("::/0")}), nil},
		{"host bits set (accepted, masked)", from(networkingv1.NetworkPolicyPeer{IPBlock: ipb("10.1.2.3/8", "10.1.0.0/16")}), nil},
		{"/32 and /128", to(networkingv1.NetworkPolicyPeer{IPBlock: ipb("10.0.0.1/32")}, networkingv1.NetworkPolicyPeer{IPBlock: ipb("fd00::1/128")}), nil},
		{"empty cidr", from(networkingv1.NetworkPolicyPeer{IPBlock: ipb("")}), []string{e(required, ip0+".ipBlock.cidr")}},
		{"address without prefix length", from(networkingv1.NetworkPolicyPeer{IPBlock: ipb("10.0.0.0")}), []string{e(invalid, ip0+".ipBlock.cidr")}},
		{"prefix too long", from(networkingv1.NetworkPolicyPeer{IPBlock: ipb("10.0.0.0/33")}), []string{e(invalid, ip0+".ipBlock.cidr")}},
		{"IPv6 prefix too long", to(networkingv1.NetworkPolicyPeer{IPBlock: ipb("fd00::/129")}), []string{e(invalid, ep0+".ipBlock.cidr")}},
		{"not a CIDR", from(networkingv1.NetworkPolicyPeer{IPBlock: ipb("everything")}), []string{e(invalid, ip0+".ipBlock.cidr")}},
		// Admitted by the API server with StrictIPCIDRValidation off (see TestIPBlockForms).
		{"IPv4-mapped IPv6 cidr", from(networkingv1.NetworkPolicyPeer{IPBlock: ipb("::ffff:10.0.0.0/104")}), nil},
		{"leading zeros", from(networkingv1.NetworkPolicyPeer{IPBlock: ipb("010.0.0.0/8")}), nil},
		{"except inside", from(networkingv1.NetworkPolicyPeer{IPBlock: ipb("10.0.0.0/8", "10.255.255.255/32")}), nil},
		{"except outside cidr", from(networkingv1.NetworkPolicyPeer{IPBlock: ipb("10.0.0.0/8", "11.0.0.0/16")}), []string{e(invalid, ip0+".ipBlock.except[0]")}},
		{"except equal to cidr", from(networkingv1.NetworkPolicyPeer{IPBlock: ipb("10.0.0.0/8", "10.0.0.0/16", "10.0.0.0/8")}), []string{e(invalid, ip0+".ipBlock.except[1]")}},
		{"except equal to cidr with host bits", to(networkingv1.NetworkPolicyPeer{IPBlock: ipb("10.0.0.0/8", "10.9.9.9/8")}), []string{e(invalid, ep0+".ipBlock.except[0]")}},
		{"except wider than cidr", from(networkingv1.NetworkPolicyPeer{IPBlock: ipb("10.0.0.0/16", "10.0.0.0/8")}), []string{e(invalid, ip0+".ipBlock.except[0]")}},
		{"except overlapping, not inside", from(networkingv1.NetworkPolicyPeer{IPBlock: ipb("10.0.0.0/16", "10.1.0.0/24")}), []string{e(invalid, ip0+".ipBlock.except[0]")}},
		{"IPv6 except outside", from(networkingv1.NetworkPolicyPeer{IPBlock: ipb("2001:db8::/32", "2001:db9::/48")}), []string{e(invalid, ip0+".ipBlock.except[0]")}},
		{"IPv6 except in IPv4 cidr", from(networkingv1.NetworkPolicyPeer{IPBlock: ipb("0.0.0.0/0", "fd00::/64")}), []string{e(invalid, ip0+".ipBlock.except[0]")}},
		{"IPv4 except in IPv6 cidr", to(networkingv1.NetworkPolicyPeer{IPBlock: ipb("::/0", "10.0.0.0/8")}), []string{e(invalid, ep0+".ipBlock.except[0]")}},
		{"except not a CIDR", from(networkingv1.NetworkPolicyPeer{IPBlock: ipb("10.0.0.0/8", "10.1.1.1")}), []string{e(invalid, ip0+".ipBlock.except[0]")}},

		// Selectors.
		{"every operator", podSel(&metav1.LabelSelector{
			MatchLabels: map[string]string{"app": "db", "example.com/tier": "a.b-c_d"},
			MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "a", Operator: metav1.LabelSelectorOpIn, Values: []string{"x", "y"}},
				{Key: "b", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"x"}},
				{Key: "c", Operator: metav1.LabelSelectorOpExists},
				{Key: "d", Operator: metav1.LabelSelectorOpDoesNotExist},
				{Key: "e", Operator: metav1.LabelSelectorOpIn, Values: []string{""}},
			},
		}), nil},
		{"unknown operator", podSel(expr("a", "Equals", "x")), []string{e(invalid, "spec.podSelector.matchExpressions[0].operator")}},
		{"lower-case operator", podSel(expr("a", "in", "x")), []string{e(invalid, "spec.podSelector.matchExpressions[0].operator")}},
		{"In without values", podSel(expr("a", metav1.LabelSelectorOpIn)), []string{e(required, "spec.podSelector.matchExpressions[0].values")}},
		{"NotIn without values", podSel(expr("a", metav1.LabelSelectorOpNotIn)), []string{e(required, "spec.podSelector.matchExpressions[0].values")}},
		{"Exists with values", podSel(expr("a", metav1.LabelSelectorOpExists, "x")), []string{e(forbidden, "spec.podSelector.matchExpressions[0].values")}},
		{"DoesNotExist with values", podSel(expr("a", metav1.LabelSelectorOpDoesNotExist, "x")), []string{e(forbidden, "spec.podSelector.matchExpressions[0].values")}},
		{"invalid key", podSel(expr("bad key", metav1.LabelSelectorOpExists)), []string{e(invalid, "spec.podSelector.matchExpressions[0].key")}},
		{"invalid value", podSel(expr("a", metav1.LabelSelectorOpIn, "ok", "not ok!")), []string{e(invalid, "spec.podSelector.matchExpressions[0].values[1]")}},
		{"invalid matchLabels value", podSel(&metav1.LabelSelector{MatchLabels: map[string]string{"app": "-db"}}), []string{e(invalid, "spec.podSelector.matchLabels")}},
		{"invalid matchLabels key", podSel(&metav1.LabelSelector{MatchLabels: map[string]string{"a/b/c": "x"}}), []string{e(invalid, "spec.podSelector.matchLabels")}},
		{"peer podSelector", from(networkingv1.NetworkPolicyPeer{PodSelector: expr("a", metav1.LabelSelectorOpIn)}),
			[]string{e(required, ip0+".podSelector.matchExpressions[0].values")}},
		{"peer namespaceSelector", to(networkingv1.NetworkPolicyPeer{NamespaceSelector: expr("a", "Equals", "x"), PodSelector: &metav1.LabelSelector{}}),
			[]string{e(invalid, ep0+".namespaceSelector.matchExpressions[0].operator")}},

		// policyTypes.
		{"Ingress and Egress", policyTypes("Egress", "Ingress"), nil},
		// The API server accepts a repeated type (the list is atomic).
		{"repeated type", policyTypes("Ingress", "Ingress"), nil},
		{"three types", policyTypes("Ingress", "Egress", "Ingress"), []string{e(invalid, "spec.policyTypes")}},
		{"unknown type", policyTypes("Sideways"), []string{e(notSupported, "spec.policyTypes[0]")}},
		{"lower-case type", policyTypes("Egress", "ingress"), []string{e(notSupported, "spec.policyTypes[1]")}},

		// Metadata.
		{"no name", func(np *networkingv1.NetworkPolicy) { np.Name = "" }, []string{e(required, "metadata.name")}},
		{"invalid name", func(np *networkingv1.NetworkPolicy) { np.Name = "Bad_Name" }, []string{e(invalid, "metadata.name")}},
		{"dotted name", func(np *networkingv1.NetworkPolicy) { np.Name = "allow.dns" }, nil},
		{"invalid namespace", func(np *networkingv1.NetworkPolicy) { np.Namespace = "a.b" }, []string{e(invalid, "metadata.namespace")}},
		{"invalid label", func(np *networkingv1.NetworkPolicy) { np.Labels = map[string]string{"a": "b c"} }, []string{e(invalid, "metadata.labels")}},

		// Errors add up.
		{"several", func(np *networkingv1.NetworkPolicy) {
			np.Spec.PolicyTypes = []networkingv1.PolicyType{"Sideways"}
			np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{
				{},
				{From: []networkingv1.NetworkPolicyPeer{{}}, Ports: []networkingv1.NetworkPolicyPort{{}, {Port: numPort(80), EndPort: ptr(int32(79))}}},
			}
		}, []string{e(invalid, "spec.ingress[1].ports[1].endPort"), e(notSupported, "spec.policyTypes[0]"), e(required, "spec.ingress[1].from[0]")}},
	} {
		got := errs(validation.NetworkPolicy(policy(tc.mod)))
		want := append([]string{}, tc.want...)
		sort.Strings(want)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: errors\n  %s\nwant\n  %s", tc.name, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	}
}

func TestEndPortMessage(t *testing.T) {
	t.Parallel()
	np := policy(func(np *networkingv1.NetworkPolicy) {
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: numPort(80)}, {Port: numPort(80), EndPort: ptr(int32(70))}}}}
	})
	list := validation.NetworkPolicy(np)
	if len(list) != 1 || list[0].Error() != "spec.ingress[0].ports[1].endPort: Invalid value: 70: must be greater than or equal to `port`" {
		t.Errorf("got %v", list)
	}
}

func TestNamespace(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   []string
	}{
		{"prod", map[string]string{"team": "a", "kubernetes.io/metadata.name": "prod"}, nil},
		{"y", nil, nil},
		{"", nil, []string{e(required, "metadata.name")}},
		{"a.b", nil, []string{e(invalid, "metadata.name")}}, // a DNS label, not a subdomain
		{"Prod", nil, []string{e(invalid, "metadata.name")}},
		{strings.Repeat("a", 64), nil, []string{e(invalid, "metadata.name")}},
		{"ok", map[string]string{"monitored": "true", "bad": "a b"}, []string{e(invalid, "metadata.labels")}},
	} {
		got := errs(validation.Namespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tc.name, Labels: tc.labels}}))
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("namespace %q: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPod(t *testing.T) {
	t.Parallel()
	base := func() *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "web-1.example", Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "init", Ports: []corev1.ContainerPort{{ContainerPort: 9000}}}},
				Containers: []corev1.Container{{Name: "main", Ports: []corev1.ContainerPort{
					{Name: "http", ContainerPort: 80, Protocol: "TCP"},
					{Name: "dns", ContainerPort: 53, Protocol: "UDP"},
				}}},
			},
			Status: corev1.PodStatus{PodIP: "10.0.0.1", PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}}},
		}
	}
	for _, tc := range []struct {
		name string
		mod  func(*corev1.Pod)
		want []string
	}{
		{"valid", func(*corev1.Pod) {}, nil},
		{"no name", func(p *corev1.Pod) { p.Name = "" }, []string{e(required, "metadata.name")}},
		{"invalid name", func(p *corev1.Pod) { p.Name = "web_1" }, []string{e(invalid, "metadata.name")}},
		{"invalid namespace", func(p *corev1.Pod) { p.Namespace = "Prod" }, []string{e(invalid, "metadata.namespace")}},
		{"invalid label", func(p *corev1.Pod) { p.Labels["app"] = "web!" }, []string{e(invalid, "metadata.labels")}},
		{"port 0", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[1].ContainerPort = 0 }, []string{e(invalid, "spec.containers[0].ports[1].containerPort")}},
		{"init port 70000", func(p *corev1.Pod) { p.Spec.InitContainers[0].Ports[0].ContainerPort = 70000 },
			[]string{e(invalid, "spec.initContainers[0].ports[0].containerPort")}},
		{"port name", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Name = "http_alt" }, []string{e(invalid, "spec.containers[0].ports[0].name")}},
		{"protocol", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Protocol = "ICMP" }, []string{e(notSupported, "spec.containers[0].ports[0].protocol")}},
		{"podIP", func(p *corev1.Pod) { p.Status.PodIP = "10.0.0.256" }, []string{e(invalid, "status.podIP")}},
		{"podIPs", func(p *corev1.Pod) { p.Status.PodIPs[1].IP = "fd00::g" }, []string{e(invalid, "status.podIPs[1].ip")}},
	} {
		p := base()
		tc.mod(p)
		got := errs(validation.Pod(p))
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
