package cluster

import (
	"slices"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestDiffModeAnnotation: staging or unstaging a policy is a change (the
// renderer must re-render it); other annotations are not.
func TestDiffModeAnnotation(t *testing.T) {
	pol := func(ann map[string]string) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "deny", Annotations: ann}}
	}
	base := New(nil, nil, []*networkingv1.NetworkPolicy{pol(nil)})
	for _, tc := range []struct {
		name    string
		ann     map[string]string
		changed bool
	}{
		{"staged", map[string]string{ModeAnnotation: ModeStaged}, true},
		{"unknown mode", map[string]string{ModeAnnotation: "audit"}, true},
		{"other annotation", map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"}, false},
		{"none", map[string]string{}, false},
	} {
		next := New(nil, nil, []*networkingv1.NetworkPolicy{pol(tc.ann)})
		for _, pair := range [][2]*Cluster{{base, next}, {next, base}} {
			got := Diff(pair[0], pair[1]).Policies
			if want := tc.changed; slices.Equal(got, []string{"a/deny"}) != want {
				t.Errorf("%s: Diff policies = %v, want changed %v", tc.name, got, want)
			}
		}
	}
	if !Staged(map[string]string{ModeAnnotation: ModeStaged}) || Staged(map[string]string{ModeAnnotation: "Staged"}) || Staged(nil) {
		t.Error("Staged: only the exact value stages")
	}
	cp := func(ann map[string]string) *ClusterPolicy {
		return &ClusterPolicy{Kind: KindCNP, Name: "x", Annotations: ann}
	}
	if SameClusterPolicy(cp(nil), cp(map[string]string{ModeAnnotation: ModeStaged})) {
		t.Error("SameClusterPolicy ignores the mode annotation")
	}
}

func TestModeOnly(t *testing.T) {
	if got := ModeOnly(map[string]string{"a": "b"}); got != nil {
		t.Errorf("ModeOnly without the mode = %v", got)
	}
	got := ModeOnly(map[string]string{"a": "b", ModeAnnotation: ModeStaged})
	if len(got) != 1 || !Staged(got) {
		t.Errorf("ModeOnly = %v", got)
	}
}
