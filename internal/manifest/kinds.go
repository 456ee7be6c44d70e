package manifest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/netfence/netfence/internal/cluster"
)

// Kinds netfence reads, with the apiVersions it reads each in (the first
// is the one named when another group of the same kind is met).
var knownKinds = map[string][]string{
	"Namespace":     {"v1"},
	"Pod":           {"v1"},
	"NetworkPolicy": {"networking.k8s.io/v1"},
	"Node":          {"v1"},
	// sigs.k8s.io/network-policy-api: v1alpha2 and v1beta1 are one
	// resource with one schema.
	cluster.KindCNP:  {cluster.PolicyAPIGroup + "/v1beta1", cluster.PolicyAPIGroup + "/v1alpha2"},
	cluster.KindANP:  {cluster.PolicyAPIGroup + "/v1alpha1"},
	cluster.KindBANP: {cluster.PolicyAPIGroup + "/v1alpha1"},
}

// legacyPolicyAPIVersion is the NetworkPolicy apiVersion of Kubernetes
// before 1.16: the same schema as networking.k8s.io/v1.
const legacyPolicyAPIVersion = "extensions/v1beta1"

// kindsToSuggest are the kinds a near miss is compared with.
var kindsToSuggest = []string{"Namespace", "Pod", "NetworkPolicy", "List", "Node",
	cluster.KindCNP, cluster.KindANP, cluster.KindBANP}

// apiVerdict is what to do with a known kind given its apiVersion.
type apiVerdict int

const (
	apiRead       apiVerdict = iota // read it
	apiReadLegacy                   // read it as the current version, with a warning
	apiOtherGroup                   // skip it, with a warning: another resource
	apiUnknown                      // an error: a version of ours we cannot read
)

// checkAPIVersion classifies the apiVersion of an object of a known kind.
func checkAPIVersion(kind, apiVersion string) apiVerdict {
	switch {
	case slices.Contains(knownKinds[kind], apiVersion):
		return apiRead
	case kind == "NetworkPolicy" && apiVersion == legacyPolicyAPIVersion:
		return apiReadLegacy
	}
	group, version, hasGroup := strings.Cut(apiVersion, "/")
	if !hasGroup || version == "" || strings.Contains(version, "/") {
		return apiUnknown
	}
	if strings.Contains(group, ".") && !kubernetesGroup(group) {
		return apiOtherGroup
	}
	return apiUnknown
}

// kubernetesGroup reports whether an API group belongs to Kubernetes itself
// (k8s.io and kubernetes.io and their subdomains). Third-party groups (CRDs)
// are DNS names with at least one dot outside those domains.
func kubernetesGroup(group string) bool {
	for _, d := range []string{"k8s.io", "kubernetes.io"} {
		if group == d || strings.HasSuffix(group, "."+d) {
			return true
		}
	}
	return false
}

// apiGroup returns the API group of an apiVersion ("" for the core group).
func apiGroup(apiVersion string) string {
	group, _, ok := strings.Cut(apiVersion, "/")
	if !ok {
		return ""
	}
	return group
}

// suggestKind returns the known kind (or List) that kind is a near miss of,
// or "". A near miss differs only in case, is a plural, or is within a
// Damerau-Levenshtein distance, case-insensitive, of 2 (of 1 for the short
// Pod, Node and List, so that real kinds such as Job and Node are no near
// miss of Pod).
func suggestKind(kind string) string {
	if _, known := knownKinds[kind]; known || kind == "List" || kind == "" {
		return ""
	}
	lk := strings.ToLower(kind)
	for _, k := range kindsToSuggest {
		lw := strings.ToLower(k)
		if lk == lw || lk == pluralOf(lw) {
			return k
		}
		limit := 2
		if len(k) < 6 {
			limit = 1
		}
		if d := len(lk) - len(lw); d > limit || -d > limit {
			continue
		}
		if damerauLevenshtein(lk, lw) <= limit {
			return k
		}
	}
	return ""
}

// pluralOf returns the resource name of a lower-case kind.
func pluralOf(kind string) string {
	if strings.HasSuffix(kind, "y") {
		return strings.TrimSuffix(kind, "y") + "ies"
	}
	return kind + "s"
}

// damerauLevenshtein is the edit distance between a and b (bytes) counting
// insertions, deletions, substitutions and transpositions of adjacent
// characters (the unrestricted distance of Lowrance and Wagner).
func damerauLevenshtein(a, b string) int {
	la, lb := len(a), len(b)
	inf := la + lb
	// d is (la+2) x (lb+2); row and column 0 hold inf.
	w := lb + 2
	d := make([]int, (la+2)*w)
	at := func(i, j int) *int { return &d[i*w+j] }
	*at(0, 0) = inf
	for i := 0; i <= la; i++ {
		*at(i+1, 0), *at(i+1, 1) = inf, i
	}
	for j := 0; j <= lb; j++ {
		*at(0, j+1), *at(1, j+1) = inf, j
	}
	var lastRow [256]int
	for i := 1; i <= la; i++ {
		lastCol := 0
		for j := 1; j <= lb; j++ {
			i1, j1 := lastRow[b[j-1]], lastCol
			cost := 1
			if a[i-1] == b[j-1] {
				cost, lastCol = 0, j
			}
			v := min(
				*at(i, j)+cost, // substitution
				*at(i+1, j)+1,  // insertion
				*at(i, j+1)+1,  // deletion
				*at(i1, j1)+(i-i1-1)+1+(j-j1-1), // transposition
			)
			*at(i+1, j+1) = v
		}
		lastRow[a[i-1]] = i
	}
	return *at(la+1, lb+1)
}

// Warning messages.
func nearMissMessage(kind, known string) string {
	return fmt.Sprintf("kind %q is not a known kind; did you mean %s? The object is ignored", kind, known)
}

func otherGroupMessage(kind, apiVersion string) string {
	return fmt.Sprintf("apiVersion %q: a %s of API group %q is a different resource from the Kubernetes %s (%s), which netfence does not enforce; the object is ignored",
		apiVersion, kind, apiGroup(apiVersion), kind, knownKinds[kind][0])
}

// supportedValues lists apiVersions as field.NotSupported does: quoted,
// separated by ", ".
func supportedValues(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

func legacyMessage(apiVersion, readAs string) string {
	return fmt.Sprintf("apiVersion %q is deprecated (no longer served since Kubernetes 1.16); read as %s, which has the same schema", apiVersion, readAs)
}

// unenforcedPolicyKinds are policy kinds of other APIs that a user may
// expect netfence to read: the CNIs' own. They are skipped, and a warning
// says so, because every answer then leaves them out.
var unenforcedPolicyKinds = map[string]bool{
	"GlobalNetworkPolicy":            true, // Calico
	"StagedNetworkPolicy":            true,
	"StagedGlobalNetworkPolicy":      true,
	"StagedKubernetesNetworkPolicy":  true,
	"CiliumNetworkPolicy":            true,
	"CiliumClusterwideNetworkPolicy": true,
}

// unenforcedPolicyKind returns the warning for a policy kind netfence does
// not read yet.
func unenforcedPolicyKind(kind, apiVersion string) (string, bool) {
	if !unenforcedPolicyKinds[kind] {
		return "", false
	}
	return fmt.Sprintf("%s (%s) is not read by netfence yet: this answer leaves it out, and the agent does not enforce it", kind, apiVersion), true
}
