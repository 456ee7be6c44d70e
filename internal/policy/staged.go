package policy

import (
	"slices"
	"strings"

	"github.com/netfence/netfence/internal/cluster"
)

// Staged reports whether the policy is staged (annotated
// netfence.io/mode: staged): compiled, evaluated on request, not enforced.
func (p *Policy) Staged() bool { return p.Source != nil && cluster.Staged(p.Source.Annotations) }

// Staged reports whether the cluster policy is staged (annotated
// netfence.io/mode: staged).
func (p *ClusterPolicy) Staged() bool { return p.Source != nil && cluster.Staged(p.Source.Annotations) }

// addStaged files a staged policy (by its annotations) under Staged,
// StagedCluster or StagedRejected and reports whether it did; an enforced
// policy is left to the caller.
func (s *Set) addStaged(annotations map[string]string, p *Policy, cp *ClusterPolicy, err error, rej *Rejection) bool {
	if !cluster.Staged(annotations) {
		return false
	}
	switch {
	case err != nil:
		s.StagedRejected = append(s.StagedRejected, rej)
	case p != nil:
		s.Staged = append(s.Staged, p)
		s.all = append(s.all, p)
	default:
		s.StagedCluster = append(s.StagedCluster, cp)
		s.allCluster = append(s.allCluster, cp)
	}
	return true
}

// WithStaged returns the set with its staged policies enforced, as if
// they had no netfence.io/mode annotation: what the cluster would enforce
// once they are. It compiles nothing (the staged policies are compiled
// with the set), so it is cheap: a pass over the policies and a sort of
// the cluster policies. Staged policies that do not compile are in its
// Rejected. It returns s itself when s stages nothing or is already such
// a set. s is not modified.
func (s *Set) WithStaged() *Set {
	if s.StagedApplied || len(s.Staged)+len(s.StagedCluster)+len(s.StagedRejected) == 0 {
		return s
	}
	out := &Set{Cluster: s.Cluster, StagedApplied: true, byNamespace: make(map[string][]*Policy, len(s.byNamespace))}
	out.Rejected = append(slices.Clip(s.Rejected), s.StagedRejected...)
	out.Policies = s.all
	if len(s.all) != len(s.Policies)+len(s.Staged) {
		// A set not made by NewSet (or changed since): in key order.
		out.Policies = append(slices.Clip(s.Policies), s.Staged...)
		slices.SortStableFunc(out.Policies, func(a, b *Policy) int {
			if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
				return c
			}
			return strings.Compare(a.Name, b.Name)
		})
	}
	out.Policies = slices.Clip(out.Policies)
	for _, p := range out.Policies {
		out.byNamespace[p.Namespace] = append(out.byNamespace[p.Namespace], p)
	}
	out.ClusterPolicies = s.allCluster
	if len(s.allCluster) != len(s.ClusterPolicies)+len(s.StagedCluster) {
		out.ClusterPolicies = append(slices.Clip(s.ClusterPolicies), s.StagedCluster...)
		slices.SortStableFunc(out.ClusterPolicies, func(a, b *ClusterPolicy) int { return strings.Compare(a.Key(), b.Key()) })
	}
	out.ClusterPolicies = slices.Clip(out.ClusterPolicies)
	out.Groups = groupTiers(out.ClusterPolicies)
	out.all, out.allCluster = out.Policies, out.ClusterPolicies
	return out
}

// StagedCount returns the number of staged policies, compiled or not, of
// both kinds.
func (s *Set) StagedCount() int { return len(s.Staged) + len(s.StagedCluster) + len(s.StagedRejected) }
