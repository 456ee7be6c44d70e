package policy

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netfence/netfence/internal/cluster"
)

func TestCompilerReusesOnlyUnchanged(t *testing.T) {
	mk := func(app string) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "p"},
			Spec:       networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}},
		}
	}
	cp := NewCompiler()
	v1 := mk("web")
	s1 := cp.NewSet(cluster.New(nil, nil, []*networkingv1.NetworkPolicy{v1}))
	s2 := cp.NewSet(cluster.New(nil, nil, []*networkingv1.NetworkPolicy{v1}))
	if s1.Policies[0] != s2.Policies[0] {
		t.Error("the same object was compiled twice")
	}
	s3 := cp.NewSet(cluster.New(nil, nil, []*networkingv1.NetworkPolicy{mk("web")}))
	if s3.Policies[0].Source.Spec.PodSelector.MatchLabels["app"] != "web" || s3.Policies[0].Source == v1 {
		t.Error("an equal copy must keep its own Source")
	}
	s4 := cp.NewSet(cluster.New(nil, nil, []*networkingv1.NetworkPolicy{mk("db")}))
	pod := &cluster.Pod{Namespace: "a", Name: "x", Labels: map[string]string{"app": "db"}}
	if !s4.Policies[0].Selects(pod) {
		t.Error("a changed spec was not recompiled")
	}
	cp.NewSet(cluster.New(nil, nil, nil))
	if len(cp.cache) != 0 {
		t.Errorf("deleted policies stay cached: %d", len(cp.cache))
	}
}
