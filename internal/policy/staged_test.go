package policy_test

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

func staged[T interface{ SetAnnotations(map[string]string) }](o T) T {
	o.SetAnnotations(map[string]string{cluster.ModeAnnotation: cluster.ModeStaged})
	return o
}

func stagedCNP(cp *cluster.ClusterPolicy) *cluster.ClusterPolicy {
	cp.Annotations = map[string]string{cluster.ModeAnnotation: cluster.ModeStaged}
	return cp
}

// TestStagedNotEnforced: a staged default-deny leaves the pod
// non-isolated in Evaluate and in Resolve (what the renderer reads); the
// set WithStaged returns enforces it.
func TestStagedNotEnforced(t *testing.T) {
	denyAll := staged(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "default-deny"},
		Spec: networkingv1.NetworkPolicySpec{PolicyTypes: types(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress)}})
	allowB := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "allow-b"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: *sel("app", "b"), Ingress: []networkingv1.NetworkPolicyIngressRule{{}}}}
	s := tierCluster([]*networkingv1.NetworkPolicy{denyAll, allowB})
	if got := keys(s.Policies); !slices.Equal(got, []string{"prod/allow-b"}) {
		t.Fatalf("Policies = %v, want only the enforced one", got)
	}
	if got := keys(s.Staged); !slices.Equal(got, []string{"prod/default-deny"}) || !s.Staged[0].Staged() {
		t.Fatalf("Staged = %v", got)
	}
	if s.StagedCount() != 1 || len(s.Rejected)+len(s.StagedRejected) != 0 {
		t.Fatalf("StagedCount %d, rejected %v %v", s.StagedCount(), s.Rejected, s.StagedRejected)
	}
	a := s.Cluster.Pod("prod/a")
	if v := tierFlow(s, "10.244.1.2", "10.244.0.2", corev1.ProtocolTCP, 8080); !v.Allowed || v.Ingress.Isolated() {
		t.Errorf("staged default-deny enforced by Evaluate: %+v", v.Ingress)
	}
	for _, dir := range []policy.Direction{policy.Ingress, policy.Egress} {
		if al := policy.NewResolver(s).Resolve(a, dir); al != nil {
			t.Errorf("staged default-deny isolates prod/a for %s in Resolve: %+v", dir, al)
		}
	}

	w := s.WithStaged()
	if !w.StagedApplied || s.StagedApplied || w == s {
		t.Fatal("WithStaged did not return a new set marked StagedApplied")
	}
	if got := keys(w.Policies); !slices.Equal(got, []string{"prod/allow-b", "prod/default-deny"}) {
		t.Errorf("WithStaged Policies = %v", got)
	}
	if got := keys(w.InNamespace("prod")); len(got) != 2 || w.Policy("prod", "default-deny") == nil {
		t.Errorf("WithStaged InNamespace = %v", got)
	}
	if v := tierFlow(w, "10.244.1.2", "10.244.0.2", corev1.ProtocolTCP, 8080); v.Allowed || !v.Ingress.Isolated() {
		t.Errorf("with staged: %+v, want denied at ingress", v.Ingress)
	}
	if v := tierFlow(w, "10.244.1.2", "10.244.0.3", corev1.ProtocolTCP, 80); !v.Allowed {
		t.Errorf("with staged: the enforced allow no longer allows: %+v", v.Ingress)
	}
	for _, dir := range []policy.Direction{policy.Ingress, policy.Egress} {
		al := policy.NewResolver(w).Resolve(w.Cluster.Pod("prod/a"), dir)
		if al == nil || len(al.Items) != 0 {
			t.Errorf("with staged, prod/a for %s: %+v, want isolated, nothing allowed", dir, al)
		}
	}
	// The original set is untouched.
	if len(s.Policies) != 1 || len(s.InNamespace("prod")) != 1 {
		t.Error("WithStaged modified its receiver")
	}
	if w.WithStaged() != w {
		t.Error("WithStaged of a with-staged set must be itself")
	}
	plain := tierCluster([]*networkingv1.NetworkPolicy{allowB})
	if plain.WithStaged() != plain {
		t.Error("WithStaged of a set without staged policies must be itself")
	}
}

// TestStagedCluster: a staged cluster policy is out of ClusterPolicies and
// Groups until WithStaged.
func TestStagedCluster(t *testing.T) {
	guard := stagedCNP(cnp("deny-dev", admin, 5, subjectNS("env", "prod"), ingress(deny, fromNS("env", "dev"))))
	other := cnp("allow-all", base, 5, subjectNS("env", "prod"), ingress(accept, fromNS()))
	s := tierCluster(nil, guard, other)
	if len(s.ClusterPolicies) != 1 || len(s.Groups[policy.AdminTier]) != 0 || len(s.StagedCluster) != 1 || !s.StagedCluster[0].Staged() {
		t.Fatalf("staged cluster policy enforced: %d policies, %d admin groups, %d staged", len(s.ClusterPolicies), len(s.Groups[policy.AdminTier]), len(s.StagedCluster))
	}
	if v := tierFlow(s, "10.244.1.2", "10.244.0.2", corev1.ProtocolTCP, 8080); !v.Allowed {
		t.Errorf("staged Deny enforced: %+v", v.Ingress)
	}
	w := s.WithStaged()
	if len(w.ClusterPolicies) != 2 || w.ClusterPolicies[0].Key() != "cnp/allow-all" || len(w.Groups[policy.AdminTier]) != 1 {
		t.Fatalf("WithStaged cluster policies: %d, admin groups %d", len(w.ClusterPolicies), len(w.Groups[policy.AdminTier]))
	}
	if v := tierFlow(w, "10.244.1.2", "10.244.0.2", corev1.ProtocolTCP, 8080); v.Allowed || v.Ingress.Layer != policy.LayerAdmin {
		t.Errorf("with staged: %+v, want denied by the Admin tier", v.Ingress)
	}
}

// TestStagedRejected: a staged policy that does not compile is reported
// in StagedRejected, never in Rejected (it must not fail closed).
func TestStagedRejected(t *testing.T) {
	bad := staged(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "bad"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: *exprs(req("app", "Bogus", "x"))}})
	s := tierCluster([]*networkingv1.NetworkPolicy{bad})
	if len(s.Rejected) != 0 || len(s.StagedRejected) != 1 || s.StagedRejected[0].Key() != "prod/bad" {
		t.Fatalf("Rejected %v, StagedRejected %v", s.Rejected, s.StagedRejected)
	}
	if w := s.WithStaged(); len(w.Rejected) != 1 || len(w.Policies) != 0 {
		t.Errorf("WithStaged: Rejected %v, Policies %v", w.Rejected, keys(w.Policies))
	}
}

// TestCompilerStaging: staging and unstaging a policy moves it between
// Policies and Staged with a caching compiler.
func TestCompilerStaging(t *testing.T) {
	np := func(ann map[string]string) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "p", Annotations: ann}}
	}
	cp := policy.NewCompiler()
	for i, ann := range []map[string]string{nil, {cluster.ModeAnnotation: cluster.ModeStaged}, {cluster.ModeAnnotation: "enforced"}, {cluster.ModeAnnotation: cluster.ModeStaged}} {
		s := cp.NewSet(cluster.New(nil, nil, []*networkingv1.NetworkPolicy{np(ann)}))
		wantStaged := cluster.Staged(ann)
		if (len(s.Staged) == 1) != wantStaged || (len(s.Policies) == 1) == wantStaged {
			t.Errorf("step %d (%v): Policies %v, Staged %v", i, ann, keys(s.Policies), keys(s.Staged))
		}
		if wantStaged && !s.Staged[0].Staged() {
			t.Errorf("step %d: a reused compilation keeps the old Source", i)
		}
	}
}
