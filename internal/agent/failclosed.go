package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
	"github.com/netfence/netfence/internal/validation"
)

// Fallback is what the agent enforces instead of a policy it cannot
// compile.
type Fallback struct {
	// Policy is "namespace/name".
	Policy string
	// Reason classifies why it did not compile: "invalid" (the API
	// server's validation rules, as netfence reads them) or "compile"
	// (anything else).
	Reason string
	// Action is "last-good" (its last compiled version stays in force) or
	// "deny" (it never compiled: the pods it selects are isolated in its
	// policyTypes with no allows).
	Action string
	// Rejection is the policy as read and why it did not compile.
	Rejection *policy.Rejection
}

// Fallback actions.
const (
	ActionLastGood = "last-good"
	ActionDeny     = "deny"
)

// failClosedAnnotation marks a DenyVersion stand-in.
const failClosedAnnotation = "netfence.io/fail-closed"

// DenyVersion returns the fail-closed stand-in of a policy that cannot be
// enforced as written: the same namespace and pod selector, isolating in
// the directions its policyTypes name, with no rules, so the pods it
// selects get nothing from it. It always compiles (unless its namespace is
// invalid, which no pod can be in): a pod selector netfence cannot
// evaluate is replaced by the empty selector (every pod of the namespace),
// policyTypes that name no known direction by both directions — when in
// doubt, more pods are isolated, never fewer — and it carries no labels
// and, when the name itself is invalid, a valid name derived from it.
func DenyVersion(np *networkingv1.NetworkPolicy) *networkingv1.NetworkPolicy {
	out := &networkingv1.NetworkPolicy{
		TypeMeta: np.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       np.Namespace,
			Name:            np.Name,
			UID:             np.UID,
			ResourceVersion: np.ResourceVersion,
			Annotations:     map[string]string{failClosedAnnotation: "deny: the policy as written is not enforced"},
		},
	}
	if out.Namespace == "" {
		out.Namespace = "default"
	}
	if len(utilvalidation.IsDNS1123Subdomain(out.Name)) > 0 {
		sum := sha256.Sum256([]byte(np.Name))
		out.Name = "netfence-deny-" + hex.EncodeToString(sum[:8])
	}
	if len(validation.NetworkPolicySpec(&networkingv1.NetworkPolicySpec{PodSelector: np.Spec.PodSelector}, field.NewPath("spec"))) == 0 {
		out.Spec.PodSelector = *np.Spec.PodSelector.DeepCopy()
	}
	types := policy.PolicyTypes(&np.Spec)
	if len(np.Spec.PolicyTypes) > 0 && !types[policy.Ingress] && !types[policy.Egress] {
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

// reason classifies a compile error.
func reason(err error) string {
	var agg utilerrors.Aggregate
	if errors.As(err, &agg) {
		return "invalid"
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
		fb := Fallback{Policy: key, Reason: reason(r.Err), Rejection: r}
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
		if !substituted[key] && p.Source.Annotations[failClosedAnnotation] == "" {
			a.lastCompiled[key] = p.Source
		}
	}
	for key := range a.lastCompiled {
		if !live[key] {
			delete(a.lastCompiled, key)
		}
	}
}
