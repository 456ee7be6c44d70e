package cluster

import (
	"net/netip"
	"slices"
	"strings"
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

func TestConflictsAndWarnings(t *testing.T) {
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	running := func(ns, name string, ips ...string) *Pod {
		p := &Pod{Namespace: ns, Name: name, Phase: corev1.PodRunning}
		for _, s := range ips {
			p.IPs = append(p.IPs, ip(s))
		}
		return p
	}
	a := running("shop", "a", "10.0.0.5", "fd00::5")
	b := running("shop", "b", "10.0.0.5")
	c := running("shop", "c", "10.0.0.6")
	d := running("ghost", "d", "10.0.0.6", "fd00::5")
	done := &Pod{Namespace: "shop", Name: "done", Phase: corev1.PodSucceeded, IPs: []netip.Addr{ip("10.0.0.7")}}
	e := running("shop", "e", "10.0.0.7")
	host := &Pod{Namespace: "kube-system", Name: "proxy", HostNetwork: true, Phase: corev1.PodRunning, IPs: []netip.Addr{ip("10.0.0.8")}}
	f := running("shop", "f", "10.0.0.8")
	cl := New([]*Namespace{{Name: "shop", Defined: true}, {Name: "kube-system", Defined: true}}, []*Pod{a, b, c, d, done, e, host, f}, nil)

	var got []string
	for _, conf := range cl.Conflicts() {
		s := conf.Addr.String() + ":"
		for _, p := range conf.Pods {
			s += " " + p.Key()
		}
		got = append(got, s)
	}
	want := []string{"10.0.0.5: shop/a shop/b", "10.0.0.6: ghost/d shop/c", "fd00::5: ghost/d shop/a"}
	if !slices.Equal(got, want) {
		t.Errorf("Conflicts = %q, want %q", got, want)
	}
	for _, p := range []*Pod{a, b, c, d} {
		if !cl.Conflicted(p) {
			t.Errorf("%s: not conflicted", p.Key())
		}
	}
	// An inactive pod and a hostNetwork pod share addresses harmlessly.
	for _, p := range []*Pod{done, e, host, f} {
		if cl.Conflicted(p) {
			t.Errorf("%s: conflicted", p.Key())
		}
	}
	if conf, ok := cl.Conflict(a); !ok || conf.Addr != ip("10.0.0.5") || conf.SharedWith(a) != "shop/b" {
		t.Errorf("Conflict(a) = %v %v, shared with %q", conf.Addr, ok, conf.SharedWith(a))
	}
	if hs := cl.Holders(ip("10.0.0.7")); hs != nil {
		t.Errorf("Holders(10.0.0.7) = %v, want none", hs)
	}
	if hs := cl.Holders(ip("::ffff:10.0.0.5")); len(hs) != 2 {
		t.Errorf("Holders of a mapped address: %v", hs)
	}

	wantWarnings := []string{
		"namespace ghost is not defined, but pod ghost/d is in it: it is taken to have only the label kubernetes.io/metadata.name=ghost, so namespace selectors on other labels do not match it",
		"address 10.0.0.5 is held by two running pods, shop/a and shop/b: both are denied all traffic until one goes (fail closed)",
		"address 10.0.0.6 is held by two running pods, ghost/d and shop/c: both are denied all traffic until one goes (fail closed)",
		"address fd00::5 is held by two running pods, ghost/d and shop/a: both are denied all traffic until one goes (fail closed)",
	}
	if w := cl.Warnings(); !slices.Equal(w, wantWarnings) {
		t.Errorf("Warnings:\n%s\nwant\n%s", strings.Join(w, "\n"), strings.Join(wantWarnings, "\n"))
	}

	// Three holders; a pod listed twice is one holder.
	three := New(nil, []*Pod{running("x", "p1", "10.1.0.1"), running("x", "p2", "10.1.0.1"), running("x", "p3", "10.1.0.1"),
		running("y", "dup", "10.2.0.1"), running("y", "dup", "10.2.0.1")}, nil)
	w := three.Warnings()
	if len(w) != 3 || w[2] != "address 10.1.0.1 is held by 3 running pods, x/p1, x/p2 and x/p3: all are denied all traffic until only one holds it (fail closed)" ||
		!strings.HasPrefix(w[0], "namespace x is not defined, but pods x/p1, x/p2 and x/p3 are in it") {
		t.Errorf("Warnings = %q", w)
	}
	if len(New([]*Namespace{{Name: "shop", Defined: true}}, []*Pod{c, e}, nil).Warnings()) != 0 {
		t.Error("warnings for a sound cluster")
	}
}
