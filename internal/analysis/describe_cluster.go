package analysis

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// FindClusterPolicy returns the cluster policy a name stands for:
// "cnp/NAME", "anp/NAME", "banp/NAME" (also with the kind spelled out, as
// "clusternetworkpolicy/NAME"), or a bare NAME when exactly one kind has a
// policy of that name. The error lists the candidates when a bare name is
// ambiguous.
func FindClusterPolicy(set *policy.Set, name string) (*policy.ClusterPolicy, error) {
	if kind, n, ok := strings.Cut(name, "/"); ok {
		short := ""
		switch strings.ToLower(kind) {
		case "cnp", "clusternetworkpolicy", "clusternetworkpolicies":
			short = "cnp"
		case "anp", "adminnetworkpolicy", "adminnetworkpolicies":
			short = "anp"
		case "banp", "baselineadminnetworkpolicy", "baselineadminnetworkpolicies":
			short = "banp"
		default:
			return nil, fmt.Errorf("%q: the kind must be cnp, anp or banp", name)
		}
		for _, p := range slices.Concat(set.ClusterPolicies, set.StagedCluster) {
			if p.Key() == short+"/"+n {
				return p, nil
			}
		}
		return nil, fmt.Errorf("no cluster policy %s/%s", short, n)
	}
	var found []*policy.ClusterPolicy
	for _, p := range slices.Concat(set.ClusterPolicies, set.StagedCluster) {
		if p.Name == name {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no cluster policy named %q", name)
	case 1:
		return found[0], nil
	}
	keys := make([]string, len(found))
	for i, p := range found {
		keys[i] = p.Key()
	}
	return nil, fmt.Errorf("cluster policy name %q is ambiguous: %s; give one of them", name, strings.Join(keys, ", "))
}

// DescribeClusterPolicy writes a cluster-scoped policy in words, resolved
// against the cluster: its tier and place in it, the pods it selects and,
// rule by rule in evaluation order, the action and the peers it matches;
// then the policies sharing its priority (and the conflicts found with
// them, from TierConflicts) and what netfence does differently from what
// the policy reads.
func DescribeClusterPolicy(w io.Writer, set *policy.Set, p *policy.ClusterPolicy, conflicts []TierConflict) {
	src := p.Source
	fmt.Fprintf(w, "%s %s (%s)\n", p.Kind, p.Key(), src.APIVersion)
	stagedNote(w, set, p.Staged())
	switch {
	case p.Kind == cluster.KindBANP:
		fmt.Fprintf(w, "  Tier: Baseline, after every Baseline ClusterNetworkPolicy (a BaselineAdminNetworkPolicy has no priority): evaluated after NetworkPolicy, for pods NetworkPolicy does not isolate\n")
	case p.Tier == policy.AdminTier:
		fmt.Fprintf(w, "  Tier: Admin, priority %d (lower first): evaluated before NetworkPolicy; Accept and Deny are final, Pass hands the traffic on to NetworkPolicy\n", p.Priority)
	default:
		fmt.Fprintf(w, "  Tier: Baseline, priority %d (lower first): evaluated after NetworkPolicy, for pods NetworkPolicy does not isolate; Pass leads to the default (allow)\n", p.Priority)
	}
	c := set.Cluster
	var subj string
	if s := src.Spec.Subject; s.Pods != nil {
		subj = selectorWords(p.Pods.String(), "every pod", "pods") + " in " + namespaceWords(p.Namespaces.String())
	} else {
		subj = "every pod in " + namespaceWords(p.Namespaces.String())
	}
	var selected []*cluster.Pod
	host := 0
	for _, pod := range c.Pods {
		ns := c.NamespaceLabels(pod.Namespace)
		if p.Selects(pod, ns) {
			selected = append(selected, pod)
		} else if pod.HostNetwork && p.Namespaces.Matches(ns) && p.Pods.Matches(pod.Labels) {
			host++
		}
	}
	fmt.Fprintf(w, "  Subject: %s: %s\n", subj, podList(selected))
	if host > 0 {
		fmt.Fprintf(w, "    (and %d host-network pods the selectors match: host-network pods are never subjects)\n", host)
	}
	for _, d := range []policy.Direction{policy.Ingress, policy.Egress} {
		rules := p.Rules[d]
		if len(rules) == 0 {
			fmt.Fprintf(w, "  %s: no rules: the policy does not affect %s traffic\n", d, strings.ToLower(d.String()))
			continue
		}
		fmt.Fprintf(w, "  %s rules, in order (for each flow the first matching rule decides):\n", d)
		for i := range rules {
			fmt.Fprintf(w, "    %s\n", TierRuleWords(set, p, &rules[i], d))
		}
		if d == policy.Ingress {
			fmt.Fprintf(w, "    Ingress peers are pods only: no rule matches nodes, host-network pods or sources outside the cluster; their traffic goes on to NetworkPolicy and the default (but a pod's own node: always allowed, before any tier)\n")
		}
	}
	var group *policy.PriorityGroup
	for i := range set.Groups[p.Tier] {
		if slices.Contains(set.Groups[p.Tier][i].Policies, p) {
			group = &set.Groups[p.Tier][i]
		}
	}
	var others []string
	if group != nil {
		for _, o := range group.Policies {
			if o != p {
				others = append(others, o.Key())
			}
		}
	}
	if len(others) == 0 {
		fmt.Fprintf(w, "  Same tier and priority: none\n")
	} else {
		fmt.Fprintf(w, "  Same tier and priority: %s: where they match the same traffic differently, the most restrictive action applies (Deny, then Pass, then Accept)\n", strings.Join(others, ", "))
		n := 0
		for _, cf := range conflicts {
			if cf.A == p || cf.B == p {
				fmt.Fprintf(w, "    conflict: %s\n", cf)
				n++
			}
		}
		if n == 0 {
			fmt.Fprintf(w, "    no conflict found: on the pods and addresses of the cluster they agree wherever both match\n")
		}
	}
	notes := slices.Clone(p.Notes)
	if exp := experimentalFields(p); len(exp) > 0 {
		notes = append(notes, fmt.Sprintf("uses experimental-channel fields (%s): an API server with the standard-channel CRD prunes them (a peer left with no field then matches nothing in an Accept rule and everything in a Deny or Pass rule)", strings.Join(exp, ", ")))
	}
	if len(notes) == 0 {
		fmt.Fprintf(w, "  Notes: none\n")
		return
	}
	fmt.Fprintf(w, "  Notes:\n")
	for _, n := range notes {
		fmt.Fprintf(w, "    %s\n", n)
	}
}

// experimentalFields lists the experimental-channel fields a policy uses.
func experimentalFields(p *policy.ClusterPolicy) []string {
	var nodes, domains, named bool
	for _, d := range policy.Directions {
		for _, r := range p.Rules[d] {
			for _, peer := range r.Peers {
				nodes = nodes || peer.Nodes != nil
				domains = domains || len(peer.Domains) > 0
			}
			for _, pt := range r.Ports {
				named = named || pt.Name != ""
			}
		}
	}
	var out []string
	if nodes {
		out = append(out, "nodes")
	}
	if domains {
		out = append(out, "domainNames")
	}
	if named {
		out = append(out, "destinationNamedPort")
	}
	return out
}

// TierRuleWords says what a rule of a cluster policy does: its index and
// name, its action, its protocols, and its peers resolved.
func TierRuleWords(set *policy.Set, p *policy.ClusterPolicy, r *policy.TierRule, d policy.Direction) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%d] ", r.Index)
	if r.Name != "" {
		fmt.Fprintf(&b, "%q ", r.Name)
	}
	b.WriteString(r.Action.String())
	b.WriteByte(' ')
	if len(r.Ports) == 0 {
		b.WriteString("all traffic (every protocol and port, ICMP too)")
	} else {
		ps := make([]string, len(r.Ports))
		for i, pt := range r.Ports {
			ps[i] = pt.String()
		}
		b.WriteString(strings.Join(ps, ", "))
	}
	if d == policy.Egress {
		b.WriteString(" to ")
	} else {
		b.WriteString(" from ")
	}
	for i := range r.Peers {
		if i > 0 {
			b.WriteString("; or ")
		}
		b.WriteString(tierPeerWords(set, p, r, i, d))
	}
	return b.String()
}

// tierPeerWords describes a peer of a cluster policy rule and what it
// matches in the cluster.
func tierPeerWords(set *policy.Set, p *policy.ClusterPolicy, r *policy.TierRule, i int, d policy.Direction) string {
	c := set.Cluster
	peer := &r.Peers[i]
	switch {
	case peer.Everything:
		return "everything (a peer with no field netfence knows, in a Deny or Pass rule: the rule denies all traffic)"
	case peer.Pod != nil:
		var head string
		if podsPeer(p, r, i, d) {
			head = selectorWords(peer.Pod.PodSelector.String(), "every pod", "pods")
			if peer.Pod.NamespaceSelector.Empty() {
				head += " in all namespaces (a pods peer without namespaceSelector selects every namespace, unlike NetworkPolicy)"
			} else {
				head += " in " + namespaceWords(peer.Pod.NamespaceSelector.String())
			}
		} else {
			head = "every pod in " + namespaceWords(peer.Pod.NamespaceSelector.String())
		}
		var matched []*cluster.Pod
		shared := 0
		for _, pod := range c.Pods {
			if peer.Pod.MatchesPod(pod, c.NamespaceLabels(pod.Namespace)) {
				if c.Conflicted(pod) {
					shared++
					continue
				}
				matched = append(matched, pod)
			}
		}
		if shared > 0 {
			return fmt.Sprintf("%s: %s (and %d pods left out: their address is shared with another pod)", head, podList(matched), shared)
		}
		return head + ": " + podList(matched)
	case len(peer.Networks) > 0:
		nets := make([]string, len(peer.Networks))
		for k, n := range peer.Networks {
			nets[k] = n.String()
		}
		in := func(ip netip.Addr) bool {
			return slices.ContainsFunc(peer.Networks, func(n netip.Prefix) bool { return n.Contains(ip.Unmap()) })
		}
		var pods []*cluster.Pod
		for _, pod := range c.Pods {
			if slices.ContainsFunc(pod.IPs, in) {
				pods = append(pods, pod)
			}
		}
		s := "networks " + strings.Join(nets, ", ") + " (pod and node addresses too): pods inside: " + podList(pods)
		var nodes []*cluster.Node
		for _, n := range c.Nodes {
			if slices.ContainsFunc(n.Addrs, in) {
				nodes = append(nodes, n)
			}
		}
		if len(nodes) > 0 {
			s += "; nodes inside: " + nodeList(c, nodes)
		}
		return s
	case peer.Nodes != nil:
		var nodes []*cluster.Node
		for _, n := range c.Nodes {
			if peer.Nodes.Matches(n.Labels) {
				nodes = append(nodes, n)
			}
		}
		head := selectorWords(peer.Nodes.String(), "every node", "nodes")
		if len(c.Nodes) == 0 {
			return head + ": no nodes (the input has no Node objects)"
		}
		return head + " (their addresses, host-network pods included): " + nodeList(c, nodes)
	case len(peer.Domains) > 0:
		return "domain names " + strings.Join(peer.Domains, ", ") + " (not enforced by the dataplane, where the peer matches no traffic; `check --to NAME` evaluates it)"
	}
	return "nothing (a peer with no field netfence knows, in an Accept rule)"
}

// podsPeer reports whether peer i of the rule is a pods peer (not a
// namespaces peer), as written.
func podsPeer(p *policy.ClusterPolicy, r *policy.TierRule, i int, d policy.Direction) bool {
	spec := &p.Source.Spec
	if d == policy.Ingress {
		return r.Index < len(spec.Ingress) && i < len(spec.Ingress[r.Index].From) && spec.Ingress[r.Index].From[i].Pods != nil
	}
	return r.Index < len(spec.Egress) && i < len(spec.Egress[r.Index].To) && spec.Egress[r.Index].To[i].Pods != nil
}

func namespaceWords(sel string) string {
	if sel == "" {
		return "every namespace"
	}
	return "namespaces " + sel
}

// nodeList names nodes with their addresses and the host-network pods on
// them.
func nodeList(c *cluster.Cluster, nodes []*cluster.Node) string {
	if len(nodes) == 0 {
		return "no nodes"
	}
	var parts []string
	for i, n := range nodes {
		if i == maxListed {
			parts = append(parts, fmt.Sprintf("and %d more", len(nodes)-maxListed))
			break
		}
		addrs := make([]string, len(n.Addrs))
		for k, a := range n.Addrs {
			addrs[k] = a.String()
		}
		s := n.Name + " (" + orNone(strings.Join(addrs, ", "))
		var host []string
		for _, pod := range c.Pods {
			if pod.HostNetwork && pod.NodeName == n.Name {
				host = append(host, pod.Key())
			}
		}
		if len(host) > 0 {
			s += "; host-network pods " + strings.Join(host, ", ")
		}
		parts = append(parts, s+")")
	}
	return strings.Join(parts, ", ")
}

// describePodTiers writes the cluster policies that select a pod, per
// direction and tier.
func describePodTiers(w io.Writer, set *policy.Set, pod *cluster.Pod) {
	if len(set.ClusterPolicies) == 0 {
		return
	}
	switch {
	case pod.HostNetwork:
		fmt.Fprintf(w, "  Cluster policies: never a subject (host-network); networks and node peers match it by address (node %s)\n", orNone(pod.NodeName))
		return
	case set.Cluster.Conflicted(pod):
		fmt.Fprintf(w, "  Cluster policies: none apply: the shared address denies everything first (fail closed)\n")
		return
	}
	fmt.Fprintf(w, "  Cluster policies selecting it (per direction: Admin tier, then NetworkPolicy, then the Baseline tier if NetworkPolicy does not isolate it, then allow):\n")
	for _, d := range policy.Directions {
		var parts []string
		for _, t := range policy.Tiers {
			var names []string
			for _, p := range set.TierPolicies(pod, d, t) {
				names = append(names, fmt.Sprintf("%s (%s)", p.Key(), priorityWords(p)))
			}
			parts = append(parts, fmt.Sprintf("%s tier: %s", t, orNone(strings.Join(names, ", "))))
		}
		fmt.Fprintf(w, "    %s: %s\n", d, strings.Join(parts, "; "))
	}
}

// priorityWords says a cluster policy's place in its tier.
func priorityWords(p *policy.ClusterPolicy) string {
	if p.Kind == cluster.KindBANP {
		return "after every Baseline ClusterNetworkPolicy"
	}
	return fmt.Sprintf("priority %d", p.Priority)
}
