package cluster

import (
	"maps"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// Changes are the differences between two snapshots of a cluster: the one
// place where netfence decides what changed. The compiler recompiles the
// policies listed, the resolver and the renderer re-resolve what the pods
// and namespaces listed can affect.
type Changes struct {
	// Namespaces are the names of the namespaces whose labels differ
	// (added, removed or changed; a namespace only referenced has its name
	// label alone), sorted.
	Namespaces []string
	// Pods are the keys ("namespace/name") of the pods added, removed or
	// changed in anything policy looks at (SamePod), sorted.
	Pods []string
	// Policies are the keys of the policies added, removed or changed
	// (SamePolicy), sorted.
	Policies []string
	// ClusterPolicies are the keys (ClusterPolicy.Key) of the cluster
	// policies added, removed or changed (SameClusterPolicy), sorted.
	ClusterPolicies []string
	// Nodes are the names of the nodes added, removed or changed
	// (SameNode), sorted.
	Nodes []string
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool {
	return len(c.Namespaces)+len(c.Pods)+len(c.Policies)+len(c.ClusterPolicies)+len(c.Nodes) == 0
}

// Diff returns what changed from old to new. Both are snapshots as New
// builds them (pods and policies sorted, each once).
func Diff(old, new *Cluster) Changes {
	var ch Changes
	ch.Namespaces = changedNamespaces(old, new)
	ch.Pods = mergeDiff(old.Pods, new.Pods, comparePods, (*Pod).Key, SamePod)
	ch.Policies = mergeDiff(old.Policies, new.Policies, comparePolicies, policyKey, SamePolicy)
	ch.ClusterPolicies = mergeDiff(old.ClusterPolicies, new.ClusterPolicies, compareClusterPolicies, (*ClusterPolicy).Key, SameClusterPolicy)
	ch.Nodes = mergeDiff(old.Nodes, new.Nodes, compareNodes, func(n *Node) string { return n.Name }, SameNode)
	return ch
}

// SamePod reports whether two versions of a pod are equal in everything
// policy looks at: identity, labels, addresses, container ports, phase,
// node and host networking.
func SamePod(a, b *Pod) bool {
	return a == b || (a.Namespace == b.Namespace && a.Name == b.Name && a.NodeName == b.NodeName &&
		a.Phase == b.Phase && a.HostNetwork == b.HostNetwork && maps.Equal(a.Labels, b.Labels) &&
		slices.Equal(a.IPs, b.IPs) && slices.Equal(a.Ports, b.Ports))
}

// SamePolicy reports whether two versions of a policy mean the same: the
// same identity, labels (validation reads them: a policy can become invalid
// by its labels alone), mode (ModeAnnotation: staging or unstaging a
// policy changes what is enforced; other annotations do not count) and a
// semantically equal spec (apimachinery's equality, as the API server
// compares objects).
func SamePolicy(a, b *networkingv1.NetworkPolicy) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a == b || (a.Namespace == b.Namespace && a.Name == b.Name && maps.Equal(a.Labels, b.Labels) &&
		a.Annotations[ModeAnnotation] == b.Annotations[ModeAnnotation] && equality.Semantic.DeepEqual(a.Spec, b.Spec))
}

func policyKey(p *networkingv1.NetworkPolicy) string { return p.Namespace + "/" + p.Name }

func comparePods(a, b *Pod) int {
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

func comparePolicies(a, b *networkingv1.NetworkPolicy) int {
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// mergeDiff walks two sorted lists and returns the keys of the items only
// one has and of those both have that differ.
func mergeDiff[T any](old, new []T, compare func(a, b T) int, key func(T) string, same func(a, b T) bool) []string {
	var keys []string
	i, j := 0, 0
	for i < len(old) || j < len(new) {
		c := 0
		switch {
		case i == len(old):
			c = 1
		case j == len(new):
			c = -1
		default:
			c = compare(old[i], new[j])
		}
		switch {
		case c < 0:
			keys = append(keys, key(old[i]))
			i++
		case c > 0:
			keys = append(keys, key(new[j]))
			j++
		default:
			if !same(old[i], new[j]) {
				keys = append(keys, key(new[j]))
			}
			i++
			j++
		}
	}
	return keys
}

// changedNamespaces returns the namespaces whose labels differ.
func changedNamespaces(oc, nc *Cluster) []string {
	var out []string
	for name, ns := range nc.Namespaces {
		if !maps.Equal(oc.NamespaceLabels(name), ns.Labels) {
			out = append(out, name)
		}
	}
	for name, ns := range oc.Namespaces {
		if _, ok := nc.Namespaces[name]; !ok && !maps.Equal(ns.Labels, nc.NamespaceLabels(name)) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Sorted reports whether the pods and policies are sorted by key, each
// once, as New builds them (Diff needs it; a hand-made Cluster may not be).
func (c *Cluster) Sorted() bool {
	for i := 1; i < len(c.Pods); i++ {
		if comparePods(c.Pods[i-1], c.Pods[i]) >= 0 {
			return false
		}
	}
	for i := 1; i < len(c.Policies); i++ {
		if comparePolicies(c.Policies[i-1], c.Policies[i]) >= 0 {
			return false
		}
	}
	return true
}
