package kube

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netfence/netfence/internal/cluster"
)

func TestOverlayReplacesByIdentity(t *testing.T) {
	np := func(ns, name, app string) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}}}
	}
	o := &Objects{Policies: []*networkingv1.NetworkPolicy{np("a", "p", "live"), np("a", "q", "live"), np("b", "p", "live")}}
	o.Overlay(nil, nil, []*networkingv1.NetworkPolicy{np("a", "p", "file"), np("c", "new", "file")})
	got := map[string]string{}
	for _, p := range o.Policies {
		got[p.Namespace+"/"+p.Name] = p.Spec.PodSelector.MatchLabels["app"]
	}
	want := map[string]string{"a/p": "file", "a/q": "live", "b/p": "live", "c/new": "file"}
	if len(got) != len(want) || len(o.Policies) != len(want) {
		t.Fatalf("policies %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s from %s, want %s", k, got[k], v)
		}
	}
}

func TestTrimKeepsWhatPolicyReads(t *testing.T) {
	in := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "a", Labels: map[string]string{"x": "y"}, Annotations: map[string]string{"big": "z"}},
		Spec:       corev1.PodSpec{NodeName: "n", HostNetwork: true, Containers: []corev1.Container{{Name: "c", Image: "img", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}}}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1", PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}}, Message: "m"},
	}
	out, err := trim(in)
	if err != nil {
		t.Fatal(err)
	}
	p := out.(*corev1.Pod)
	if p.Annotations != nil || p.Spec.Containers[0].Image != "" || p.Status.Message != "" {
		t.Error("trim kept fields netfence never reads")
	}
	if p.Labels["x"] != "y" || p.Spec.NodeName != "n" || !p.Spec.HostNetwork || p.Spec.Containers[0].Ports[0].Name != "http" ||
		p.Status.PodIP != "10.0.0.1" || p.Status.Phase != corev1.PodRunning {
		t.Errorf("trim dropped what policy reads: %+v", p)
	}
}

func TestTrimNodesAndClusterPolicies(t *testing.T) {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{"role": "w"}, Annotations: map[string]string{"big": "z"}},
		Spec:       corev1.NodeSpec{PodCIDR: "10.0.0.0/24"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.1"}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady}}, Images: []corev1.ContainerImage{{Names: []string{"x"}}}},
	}
	out, err := trim(n)
	if err != nil {
		t.Fatal(err)
	}
	tn := out.(*corev1.Node)
	if tn.Annotations != nil || tn.Spec.PodCIDR != "" || tn.Status.Conditions != nil || tn.Status.Images != nil {
		t.Error("trim kept node fields netfence never reads")
	}
	if tn.Labels["role"] != "w" || len(tn.Status.Addresses) != 1 || cluster.NodeFromAPI(tn).Addrs[0].String() != "192.0.2.1" {
		t.Errorf("trim dropped what policy reads: %+v", tn)
	}

	p := &v1beta1.ClusterNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"a": "b"}, Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec:   v1beta1.ClusterNetworkPolicySpec{Tier: v1beta1.AdminTier, Priority: 3},
		Status: v1beta1.ClusterNetworkPolicyStatus{Conditions: []metav1.Condition{{Type: "Ready"}}},
	}
	out, err = trim(p)
	if err != nil {
		t.Fatal(err)
	}
	tp := out.(*v1beta1.ClusterNetworkPolicy)
	if tp.Annotations != nil || tp.ManagedFields != nil || tp.Status.Conditions != nil || tp.Labels["a"] != "b" || tp.Spec.Priority != 3 {
		t.Errorf("trim of a ClusterNetworkPolicy: %+v", tp)
	}
}

// TestTrimKeepsStagedMode: the staged annotation decides enforcement, so
// the trim keeps it (and only it) on policies.
func TestTrimKeepsStagedMode(t *testing.T) {
	in := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "a",
		Annotations: map[string]string{"big": "z", cluster.ModeAnnotation: cluster.ModeStaged}}}
	out, err := trim(in)
	if err != nil {
		t.Fatal(err)
	}
	if a := out.(*networkingv1.NetworkPolicy).Annotations; len(a) != 1 || a[cluster.ModeAnnotation] != cluster.ModeStaged {
		t.Fatalf("annotations after trim: %v", a)
	}
}
