package cluster

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func randomSnapshot(r *rand.Rand) *Cluster {
	var nss []*Namespace
	for i := 0; i < 3; i++ {
		if r.IntN(4) > 0 {
			nss = append(nss, &Namespace{Name: fmt.Sprint("ns", i), Labels: map[string]string{"team": fmt.Sprint(r.IntN(2))}, Defined: true})
		}
	}
	var pods []*Pod
	for i := 0; i < 8; i++ {
		if r.IntN(5) == 0 {
			continue
		}
		p := &Pod{Namespace: fmt.Sprint("ns", i%3), Name: fmt.Sprint("p", i), Labels: map[string]string{"app": fmt.Sprint(r.IntN(2))},
			IPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 244, 0, byte(r.IntN(4))})}, Phase: corev1.PodRunning, NodeName: fmt.Sprint("n", r.IntN(2))}
		if r.IntN(4) == 0 {
			p.Ports = []ContainerPort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: int32(80 + r.IntN(2))}}
		}
		pods = append(pods, p)
	}
	var pols []*networkingv1.NetworkPolicy
	for i := 0; i < 5; i++ {
		if r.IntN(4) == 0 {
			continue
		}
		port := intstr.FromInt32(int32(80 + r.IntN(2)))
		pols = append(pols, &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprint("ns", i%3), Name: fmt.Sprint("np", i), ResourceVersion: fmt.Sprint(r.IntN(100)),
				Labels: map[string]string{"v": fmt.Sprint(r.IntN(2))}},
			Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: &port}}}}},
		})
	}
	return New(nss, pods, pols)
}

// bruteDiff is Diff by maps, as a reference.
func bruteDiff(a, b *Cluster) Changes {
	var ch Changes
	keys := func(m map[string]bool) []string {
		out := make([]string, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	pods := map[string]bool{}
	for _, p := range a.Pods {
		if q := b.Pod(p.Key()); q == nil || fmt.Sprint(*q) != fmt.Sprint(*p) {
			pods[p.Key()] = true
		}
	}
	for _, p := range b.Pods {
		if a.Pod(p.Key()) == nil {
			pods[p.Key()] = true
		}
	}
	pols := map[string]bool{}
	for _, p := range a.Policies {
		if q := b.Policy(p.Namespace, p.Name); q == nil || fmt.Sprint(q.Spec, q.Labels) != fmt.Sprint(p.Spec, p.Labels) {
			pols[p.Namespace+"/"+p.Name] = true
		}
	}
	for _, p := range b.Policies {
		if a.Policy(p.Namespace, p.Name) == nil {
			pols[p.Namespace+"/"+p.Name] = true
		}
	}
	nss := map[string]bool{}
	for _, c := range []*Cluster{a, b} {
		for name := range c.Namespaces {
			if fmt.Sprint(a.NamespaceLabels(name)) != fmt.Sprint(b.NamespaceLabels(name)) {
				nss[name] = true
			}
		}
	}
	ch.Pods, ch.Policies, ch.Namespaces = keys(pods), keys(pols), keys(nss)
	return ch
}

// TestDiffMatchesBrute: Diff equals a map-based reference on random
// snapshot pairs, and a snapshot has no changes against itself or a copy.
func TestDiffMatchesBrute(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	changed := 0
	for i := 0; i < 2000; i++ {
		a, b := randomSnapshot(r), randomSnapshot(r)
		if !a.Sorted() || !b.Sorted() {
			t.Fatal("New built an unsorted snapshot")
		}
		got, want := Diff(a, b), bruteDiff(a, b)
		if !slices.Equal(got.Pods, want.Pods) || !slices.Equal(got.Policies, want.Policies) || !slices.Equal(got.Namespaces, want.Namespaces) {
			t.Fatalf("step %d:\n got %+v\nwant %+v", i, got, want)
		}
		if !got.Empty() {
			changed++
		}
		if d := Diff(a, a); !d.Empty() {
			t.Fatalf("a snapshot differs from itself: %+v", d)
		}
	}
	if changed < 1000 {
		t.Fatalf("only %d of 2000 random pairs differ: the generator is too tame", changed)
	}
}
