package cluster

// ModeAnnotation is the annotation that stages a policy: with the value
// ModeStaged, a NetworkPolicy or cluster policy (ClusterNetworkPolicy,
// AdminNetworkPolicy, BaselineAdminNetworkPolicy) is compiled and
// evaluated on request ("what would it change?") but not enforced.
const ModeAnnotation = "netfence.io/mode"

// ModeStaged is the ModeAnnotation value of a staged policy. Any other
// value, or none, means enforced (a misspelt value enforces: never more
// open than the policy).
const ModeStaged = "staged"

// Staged reports whether annotations stage a policy.
func Staged(annotations map[string]string) bool { return annotations[ModeAnnotation] == ModeStaged }

// UnknownMode returns the ModeAnnotation value when it is set to
// something netfence does not know (the policy is then enforced), or "".
func UnknownMode(annotations map[string]string) (string, bool) {
	v, ok := annotations[ModeAnnotation]
	if !ok || v == ModeStaged {
		return "", false
	}
	return v, true
}

// ModeOnly returns annotations reduced to ModeAnnotation (nil when it is
// absent): what a source that drops annotations to save memory (the
// agent's informers) must keep.
func ModeOnly(annotations map[string]string) map[string]string {
	v, ok := annotations[ModeAnnotation]
	if !ok {
		return nil
	}
	return map[string]string{ModeAnnotation: v}
}
