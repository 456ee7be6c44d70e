package agent

import (
	"errors"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// Fallback is what the agent enforces instead of a policy it cannot
// compile.
type Fallback struct {
	// Policy is "namespace/name".
	Policy string
	// Reason classifies why it did not compile: "invalid" (the API
	// server's validation rules, as netfence reads them), "selector" (a
	// selector netfence cannot evaluate) or "compile".
	Reason string
	// Action is "last-good" (its last compiled version stays in force) or
	// "deny" (it never compiled: the pods it selects are isolated in its
	// policyTypes with no allows).
	Action string
	Err    error
}

// Fallback actions.
const (
	ActionLastGood = "last-good"
	ActionDeny     = "deny"
)

// DenyVersion returns the fail-closed stand-in of a policy that cannot be
// enforced as written: the same namespace, name and pod selector, isolating
// in the directions its policyTypes name, with no rules, so the pods it
// selects get nothing from it. A pod selector netfence cannot evaluate is
// replaced by the empty selector (every pod of the namespace), and
// policyTypes that name no known direction by both directions: when in
// doubt, more pods are isolated, never fewer.
func DenyVersion(np *networkingv1.NetworkPolicy) *networkingv1.NetworkPolicy {
	out := &networkingv1.NetworkPolicy{
		TypeMeta: np.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       np.Namespace,
			Name:            np.Name,
			UID:             np.UID,
			ResourceVersion: np.ResourceVersion,
			Labels:          np.Labels,
			Annotations:     map[string]string{"netfence.io/fail-closed": "deny: the policy as written is not enforced"},
		},
	}
	if out.Namespace == "" {
		out.Namespace = "default"
	}
	if _, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector); err == nil && selectorValid(np.Spec.PodSelector) {
		out.Spec.PodSelector = *np.Spec.PodSelector.DeepCopy()
	}
	types := policy.PolicyTypes(&np.Spec)
	known := false
	for _, t := range np.Spec.PolicyTypes {
		if t == networkingv1.PolicyTypeIngress || t == networkingv1.PolicyTypeEgress {
			known = true
		}
	}
	if len(np.Spec.PolicyTypes) > 0 && !known {
		types = [2]bool{true, true}
	}
	if types[policy.Ingress] {
		out.Spec.PolicyTypes = append(out.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
	}
	if types[policy.Egress] {
		out.Spec.PolicyTypes = append(out.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
	}
	return out
}

// selectorValid reports whether the deny stand-in may keep the selector:
// it must compile as part of a policy.
func selectorValid(sel metav1.LabelSelector) bool {
	probe := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "default"}}
	probe.Spec.PodSelector = sel
	_, err := policy.Compile(probe)
	return err == nil
}

// reason classifies a compile error.
func reason(err error) string {
	var agg utilerrors.Aggregate
	switch {
	case errors.As(err, &agg):
		return "invalid"
	case strings.Contains(err.Error(), "podSelector"), strings.Contains(err.Error(), "Selector"):
		return "selector"
	}
	return "compile"
}

// failClosed replaces every policy of set that did not compile: by its last
// compiled version when the agent has one, else by its DenyVersion. It
// returns the cluster to compile instead (nil when nothing was rejected)
// and what it did.
func (a *Agent) failClosed(c *cluster.Cluster, set *policy.Set) (*cluster.Cluster, []Fallback) {
	if len(set.Rejected) == 0 {
		return nil, nil
	}
	replace := make(map[string]*networkingv1.NetworkPolicy, len(set.Rejected))
	var out []Fallback
	for _, r := range set.Rejected {
		key := r.Policy.Namespace + "/" + r.Policy.Name
		fb := Fallback{Policy: key, Reason: reason(r.Err), Err: r.Err}
		if prev, ok := a.lastCompiled[key]; ok {
			replace[key] = prev
			fb.Action = ActionLastGood
		} else {
			replace[key] = DenyVersion(r.Policy)
			fb.Action = ActionDeny
		}
		out = append(out, fb)
	}
	pols := make([]*networkingv1.NetworkPolicy, len(c.Policies))
	for i, np := range c.Policies {
		pols[i] = np
		if sub, ok := replace[np.Namespace+"/"+np.Name]; ok {
			pols[i] = sub
		}
	}
	nss := make([]*cluster.Namespace, 0, len(c.Namespaces))
	for _, ns := range c.Namespaces {
		nss = append(nss, ns)
	}
	return cluster.New(nss, c.Pods, pols), out
}

// remember records the policies of set that compiled as written, as the
// versions to keep if they later fail to compile.
func (a *Agent) remember(set *policy.Set, fallbacks []Fallback) {
	substituted := make(map[string]bool, len(fallbacks))
	for _, fb := range fallbacks {
		substituted[fb.Policy] = true
	}
	live := make(map[string]bool, len(set.Policies))
	for _, p := range set.Policies {
		key := p.Key()
		live[key] = true
		if !substituted[key] {
			a.lastCompiled[key] = p.Source
		}
	}
	for key := range a.lastCompiled {
		if !live[key] {
			delete(a.lastCompiled, key)
		}
	}
}
