package cluster

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodFromAPI(t *testing.T) {
	p := PodFromAPI(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"app": "x"}},
		Spec: corev1.PodSpec{NodeName: "n", Containers: []corev1.Container{{Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: 80}, {Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1", PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}}},
	})
	if p.Namespace != "default" {
		t.Errorf("namespace %q, want default", p.Namespace)
	}
	if len(p.IPs) != 2 || p.IPs[0] != netip.MustParseAddr("10.0.0.1") || p.IPs[1] != netip.MustParseAddr("fd00::1") {
		t.Errorf("IPs %v: want the primary once, then the IPv6 address", p.IPs)
	}
	if n, ok := p.NamedPort("http", corev1.ProtocolTCP); !ok || n != 80 {
		t.Errorf("http/TCP = %d %v: an omitted protocol is TCP", n, ok)
	}
	if _, ok := p.NamedPort("dns", corev1.ProtocolTCP); ok {
		t.Error("dns is UDP only")
	}
	if got := p.IPFor(netip.MustParseAddr("fd00::9")); got != netip.MustParseAddr("fd00::1") {
		t.Errorf("IPFor(v6) = %v", got)
	}
	if ok, why := p.Active(); !ok {
		t.Errorf("running pod with an IP inactive: %s", why)
	}
	if ok, why := (&Pod{Phase: corev1.PodPending, IPs: p.IPs}).Active(); ok || why == "" {
		t.Error("a Pending pod must be inactive, with a reason")
	}
}

func TestNewNamespacesAndAddresses(t *testing.T) {
	ip := netip.MustParseAddr("10.0.0.5")
	host := &Pod{Namespace: "kube-system", Name: "proxy", HostNetwork: true, Phase: corev1.PodRunning, IPs: []netip.Addr{ip}}
	done := &Pod{Namespace: "app", Name: "old", Phase: corev1.PodSucceeded, IPs: []netip.Addr{ip}}
	live := &Pod{Namespace: "app", Name: "new", Phase: corev1.PodRunning, IPs: []netip.Addr{ip}}
	c := New([]*Namespace{{Name: "app", Labels: map[string]string{"team": "a"}}}, []*Pod{host, done, live}, nil)
	if got := c.PodByIP(ip); got != live {
		t.Errorf("address owner %v: an active pod-network pod wins over a finished or host-network one", got.Key())
	}
	if l := c.NamespaceLabels("app"); l[MetadataNameLabel] != "app" || l["team"] != "a" {
		t.Errorf("app labels %v", l)
	}
	if l := c.NamespaceLabels("kube-system"); len(l) != 1 || l[MetadataNameLabel] != "kube-system" {
		t.Errorf("a namespace only referenced by a pod has just its name label: %v", l)
	}
	if c.Pods[0].Key() != "app/new" || c.Pod("app/old") != done {
		t.Errorf("pods not sorted or not indexed: %v", c.Pods[0].Key())
	}
}
