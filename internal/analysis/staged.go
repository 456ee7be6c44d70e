package analysis

import (
	"fmt"
	"io"
	"strings"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// PendingResult is the verdict on a flow with the staged policies
// enforced (policy.Set.WithStaged): what the flow will meet once they are.
// It is the "pending" of `check -o json`, in the shape the agent's flow
// records use.
type PendingResult struct {
	Allowed bool `json:"allowed"`
	// DeniedAt is "egress" or "ingress" (egress first, as a packet meets
	// them), empty when allowed.
	DeniedAt string     `json:"deniedAt,omitempty"`
	Egress   SideResult `json:"egress"`
	Ingress  SideResult `json:"ingress"`

	// staged are the keys of the staged policies, to mark them in words.
	staged map[string]bool
}

// pending returns the verdict on f with the staged policies of set
// enforced, or nil when set stages nothing or already enforces them.
func pending(set *policy.Set, f policy.Flow) *PendingResult {
	if set.StagedApplied || set.StagedCount() == 0 {
		return nil
	}
	v := set.WithStaged().Evaluate(f)
	out := &PendingResult{Allowed: v.Allowed, Egress: sideResult(v.Egress), Ingress: sideResult(v.Ingress), staged: map[string]bool{}}
	switch {
	case !v.Egress.Allowed:
		out.DeniedAt = "egress"
	case !v.Ingress.Allowed:
		out.DeniedAt = "ingress"
	}
	for _, p := range set.Staged {
		out.staged[p.Key()] = true
	}
	for _, p := range set.StagedCluster {
		out.staged[p.Key()] = true
	}
	return out
}

// writeText writes the pending verdict in one line:
// "pending (with staged policies): DENIED at ingress by ns/p (staged): ...".
func (r *PendingResult) writeText(w io.Writer) {
	if r.Allowed {
		fmt.Fprintf(w, "  pending (with staged policies): ALLOWED\n")
		return
	}
	var parts []string
	for _, s := range []struct {
		name string
		side SideResult
	}{{"egress", r.Egress}, {"ingress", r.Ingress}} {
		if !s.side.Allowed {
			parts = append(parts, "at "+s.name+r.deniedWords(s.side))
		}
	}
	fmt.Fprintf(w, "  pending (with staged policies): DENIED %s\n", strings.Join(parts, "; "))
}

// deniedWords says what denied one side: " by POLICIES: why".
func (r *PendingResult) deniedWords(s SideResult) string {
	mark := func(key string) string {
		if r.staged[key] {
			return key + " (staged)"
		}
		return key
	}
	switch {
	case s.DecidedBy != nil:
		return " by " + strings.Replace(s.DecidedBy.describe(), s.DecidedBy.Policy, mark(s.DecidedBy.Policy), 1)
	case len(s.Policies) > 0:
		names := make([]string, len(s.Policies))
		for i, k := range s.Policies {
			names[i] = mark(k)
		}
		return " by " + strings.Join(names, ", ") + ": no rule allows this flow"
	}
	return ": " + s.Reason
}

// StagedWarning returns the warning of the analyzer commands about the
// staged policies set does not enforce, or "" when there are none (or
// set enforces them: --with-staged).
func StagedWarning(set *policy.Set) string {
	n := set.StagedCount()
	if n == 0 || set.StagedApplied {
		return ""
	}
	keys := make([]string, 0, n)
	for _, p := range set.Staged {
		keys = append(keys, p.Key())
	}
	for _, p := range set.StagedCluster {
		keys = append(keys, p.Key())
	}
	for _, r := range set.StagedRejected {
		keys = append(keys, r.Key())
	}
	what := "1 staged policy is"
	if n > 1 {
		what = fmt.Sprintf("%d staged policies are", n)
	}
	return fmt.Sprintf("%s not enforced (use --with-staged to evaluate them): %s", what, strings.Join(keys, ", "))
}

// UnknownModeWarnings warns about policies whose netfence.io/mode
// annotation has a value netfence does not know: they are enforced.
func UnknownModeWarnings(c *cluster.Cluster) []string {
	var out []string
	for _, np := range c.Policies {
		if v, ok := cluster.UnknownMode(np.Annotations); ok {
			out = append(out, fmt.Sprintf("NetworkPolicy %s/%s: %s %q is not a mode netfence knows (%q): the policy is enforced", np.Namespace, np.Name, cluster.ModeAnnotation, v, cluster.ModeStaged))
		}
	}
	for _, cp := range c.ClusterPolicies {
		if v, ok := cluster.UnknownMode(cp.Annotations); ok {
			out = append(out, fmt.Sprintf("%s %s: %s %q is not a mode netfence knows (%q): the policy is enforced", cp.Kind, cp.Key(), cluster.ModeAnnotation, v, cluster.ModeStaged))
		}
	}
	return out
}

// FindPolicy returns the NetworkPolicy namespace/name of set, enforced or
// staged, or nil.
func FindPolicy(set *policy.Set, namespace, name string) *policy.Policy {
	if p := set.Policy(namespace, name); p != nil {
		return p
	}
	for _, p := range set.Staged {
		if p.Namespace == namespace && p.Name == name {
			return p
		}
	}
	return nil
}

// stagedNote writes, under a staged policy's heading, that it is staged
// and whether this description enforces it.
func stagedNote(w io.Writer, set *policy.Set, staged bool) {
	if !staged {
		return
	}
	if set.StagedApplied {
		fmt.Fprintf(w, "  staged (%s: %s): evaluated as enforced (--with-staged)\n", cluster.ModeAnnotation, cluster.ModeStaged)
		return
	}
	fmt.Fprintf(w, "  staged (%s: %s): not enforced; evaluated with --with-staged\n", cluster.ModeAnnotation, cluster.ModeStaged)
}

// describePodStaged writes the staged policies that select pod, apart
// from the enforced ones (or, with --with-staged, which of them are
// staged).
func describePodStaged(w io.Writer, set *policy.Set, pod *cluster.Pod) {
	nsLabels := set.Cluster.NamespaceLabels(pod.Namespace)
	var keys []string
	pols, cps := set.Staged, set.StagedCluster
	if set.StagedApplied {
		pols, cps = nil, nil
		for _, p := range set.InNamespace(pod.Namespace) {
			if p.Staged() {
				pols = append(pols, p)
			}
		}
		for _, p := range set.ClusterPolicies {
			if p.Staged() {
				cps = append(cps, p)
			}
		}
	}
	for _, p := range pols {
		if p.Selects(pod) {
			keys = append(keys, p.Key())
		}
	}
	for _, p := range cps {
		if p.Selects(pod, nsLabels) {
			keys = append(keys, p.Key())
		}
	}
	if len(keys) == 0 {
		return
	}
	how := "not enforced, not above; evaluated with --with-staged"
	if set.StagedApplied {
		how = "evaluated above as enforced, --with-staged"
	}
	fmt.Fprintf(w, "  Staged policies selecting it (%s: %s; %s): %s\n", cluster.ModeAnnotation, cluster.ModeStaged, how, strings.Join(keys, ", "))
}
