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

	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
	"github.com/netfence/netfence/internal/validation"
)

// Fallback is what the agent enforces instead of a policy it cannot
// compile.
type Fallback struct {
	// Policy is the policy's key: "namespace/name" for a NetworkPolicy,
	// "cnp/NAME", "anp/NAME" or "banp/NAME" for a cluster policy
	// (policy.Rejection.Key).
	Policy string
	// Reason classifies why it did not compile: "invalid" (the API
	// server's validation rules, or the CRD's for a cluster policy read
	// from a file, as netfence reads them) or "compile" (anything else).
	Reason string
	// Action is "last-good" (its last compiled version stays in force) or
	// "deny" (it never compiled: for a NetworkPolicy, the pods it selects
	// are isolated in its policyTypes with no allows; for a cluster
	// policy, DenyClusterVersion stands in).
	Action string
	// Rejection is the policy as read and why it did not compile.
	Rejection *policy.Rejection
}

// Fallback actions.
const (
	ActionLastGood = "last-good"
	ActionDeny     = "deny"
)

// failClosedAnnotation marks a DenyVersion or DenyClusterVersion stand-in.
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
		return ReasonInvalid
	}
	return ReasonCompile
}

// Fallback reasons.
const (
	// ReasonInvalid: the API server's validation rules (a NetworkPolicy)
	// or the CRD's (a cluster policy read from a file) refuse it.
	ReasonInvalid = "invalid"
	// ReasonCompile: anything else netfence cannot compile.
	ReasonCompile = "compile"
)

// failClosed replaces every policy of set that did not compile, and every
// cluster policy of invalid (cluster policies the source found invalid,
// which are not in c): by its last compiled version when the agent has
// one, else by its DenyVersion or DenyClusterVersion. It returns the
// cluster to compile instead (nil when nothing was rejected) and what it
// did.
func (a *Agent) failClosed(c *cluster.Cluster, set *policy.Set, invalid []*policy.Rejection) (*cluster.Cluster, []Fallback) {
	if len(set.Rejected) == 0 && len(invalid) == 0 {
		return nil, nil
	}
	replace := make(map[string]*networkingv1.NetworkPolicy, len(set.Rejected))
	creplace := make(map[string]*cluster.ClusterPolicy)
	var out []Fallback
	for _, r := range set.Rejected {
		key := r.Key()
		fb := Fallback{Policy: key, Reason: reason(r.Err), Rejection: r}
		switch {
		case r.ClusterPolicy != nil:
			fb.Action = a.replaceCluster(creplace, r.ClusterPolicy)
		case a.lastCompiled[key] != nil:
			replace[key] = a.lastCompiled[key]
			fb.Action = ActionLastGood
		default:
			replace[key] = DenyVersion(r.Policy)
			fb.Action = ActionDeny
		}
		out = append(out, fb)
	}
	for _, r := range invalid {
		if r.ClusterPolicy == nil {
			continue
		}
		out = append(out, Fallback{Policy: r.Key(), Reason: ReasonInvalid, Rejection: r, Action: a.replaceCluster(creplace, r.ClusterPolicy)})
	}
	pols := make([]*networkingv1.NetworkPolicy, len(c.Policies))
	for i, np := range c.Policies {
		pols[i] = np
		if sub, ok := replace[np.Namespace+"/"+np.Name]; ok {
			pols[i] = sub
		}
	}
	cps := make([]*cluster.ClusterPolicy, 0, len(c.ClusterPolicies)+len(invalid))
	for _, cp := range c.ClusterPolicies {
		if sub, ok := creplace[cp.Key()]; ok {
			delete(creplace, cp.Key())
			cp = sub
		}
		cps = append(cps, cp)
	}
	for _, sub := range creplace { // the invalid ones, not in c
		cps = append(cps, sub)
	}
	nss := make([]*cluster.Namespace, 0, len(c.Namespaces))
	for _, ns := range c.Namespaces {
		nss = append(nss, ns)
	}
	return cluster.NewWith(cluster.Parts{Namespaces: nss, Pods: c.Pods, Policies: pols, ClusterPolicies: cps, Nodes: c.Nodes}), out
}

// replaceCluster records in replace what stands in for a cluster policy
// that cannot be enforced as written, and returns the fallback action.
func (a *Agent) replaceCluster(replace map[string]*cluster.ClusterPolicy, cp *cluster.ClusterPolicy) string {
	if prev, ok := a.lastCompiledCluster[cp.Key()]; ok {
		replace[cp.Key()] = prev
		return ActionLastGood
	}
	replace[cp.Key()] = DenyClusterVersion(cp)
	return ActionDeny
}

// remember records the policies of set that compiled as written, as the
// versions to keep if they later fail to compile.
func (a *Agent) remember(set *policy.Set, fallbacks []Fallback) {
	// Keys of the two kinds can coincide (a NetworkPolicy in namespace
	// "cnp" and a ClusterNetworkPolicy): one set each.
	substituted, csubstituted := map[string]bool{}, map[string]bool{}
	for _, fb := range fallbacks {
		if fb.Rejection.ClusterPolicy != nil {
			csubstituted[fb.Policy] = true
		} else {
			substituted[fb.Policy] = true
		}
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
	clive := make(map[string]bool, len(set.ClusterPolicies))
	for _, p := range set.ClusterPolicies {
		key := p.Key()
		clive[key] = true
		if !csubstituted[key] && !IsFailClosed(p.Source) {
			a.lastCompiledCluster[key] = p.Source
		}
	}
	for key := range a.lastCompiledCluster {
		if !clive[key] {
			delete(a.lastCompiledCluster, key)
		}
	}
}

// DenyClusterVersion returns the fail-closed stand-in of a cluster policy
// that cannot be enforced as written: the same kind, name, tier and
// priority; its subject as written when that compiles, else every pod;
// and, in each direction in which the policy has rules, one Deny rule
// matching everything the direction can match (ingress: every pod;
// egress: every IPv4 and IPv6 address and every pod), so that whatever
// the policy's rules would have matched is denied instead — never more
// open. A tier netfence does not know becomes Admin (it decides first).
// The stand-in carries the netfence.io/fail-closed annotation and always
// compiles.
func DenyClusterVersion(cp *cluster.ClusterPolicy) *cluster.ClusterPolicy {
	out := &cluster.ClusterPolicy{
		Kind:        cp.Kind,
		APIVersion:  cp.APIVersion,
		Name:        cp.Name,
		UID:         cp.UID,
		Annotations: map[string]string{failClosedAnnotation: "deny: the policy as written is not enforced; its subject is denied in every direction it has rules"},
	}
	out.Spec.Tier = cp.Spec.Tier
	if out.Spec.Tier != v1beta1.AdminTier && out.Spec.Tier != v1beta1.BaselineTier {
		out.Spec.Tier = v1beta1.AdminTier
	}
	out.Spec.Priority = cp.Spec.Priority
	out.Spec.Subject = v1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}}
	subjectOnly := &cluster.ClusterPolicy{Kind: out.Kind, Name: out.Name, Spec: v1beta1.ClusterNetworkPolicySpec{
		Tier: out.Spec.Tier, Priority: out.Spec.Priority, Subject: *cp.Spec.Subject.DeepCopy()}}
	if _, err := policy.CompileCluster(subjectOnly); err == nil {
		out.Spec.Subject = subjectOnly.Spec.Subject
	}
	const ruleName = "netfence-fail-closed"
	if len(cp.Spec.Ingress) > 0 {
		out.Spec.Ingress = []v1beta1.ClusterNetworkPolicyIngressRule{{
			Name: ruleName, Action: v1beta1.ClusterNetworkPolicyRuleActionDeny,
			From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{}}},
		}}
	}
	if len(cp.Spec.Egress) > 0 {
		out.Spec.Egress = []v1beta1.ClusterNetworkPolicyEgressRule{{
			Name: ruleName, Action: v1beta1.ClusterNetworkPolicyRuleActionDeny,
			To: []v1beta1.ClusterNetworkPolicyEgressPeer{
				{Networks: []v1beta1.CIDR{"0.0.0.0/0", "::/0"}},
				{Namespaces: &metav1.LabelSelector{}},
			},
		}}
	}
	return out
}

// IsFailClosed reports whether a cluster policy is a stand-in made by
// DenyClusterVersion.
func IsFailClosed(cp *cluster.ClusterPolicy) bool { return cp.Annotations[failClosedAnnotation] != "" }
