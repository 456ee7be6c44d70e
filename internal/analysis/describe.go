package analysis

import (
	"fmt"
	"io"
	"strings"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// maxListed bounds the pods named in one line of a description.
const maxListed = 10

// DescribePolicy writes a policy in words, resolved against the cluster:
// which pods it selects and isolates and, rule by rule, whom it allows.
func DescribePolicy(w io.Writer, set *policy.Set, p *policy.Policy) {
	c := set.Cluster
	fmt.Fprintf(w, "NetworkPolicy %s\n", p.Key())
	stagedNote(w, set, p.Staged())
	selected := selectedPods(c, p)
	fmt.Fprintf(w, "  Selects %s in namespace %s: %s\n", selectorWords(p.Selector.String(), "every pod", "pods"), p.Namespace, podList(selected))
	var types []string
	for _, d := range policy.Directions {
		if p.Types[d] {
			types = append(types, d.String())
		}
	}
	how := "from spec.policyTypes"
	if len(p.Source.Spec.PolicyTypes) == 0 {
		how = "defaulted: Ingress always, Egress because spec.egress is set"
		if !p.Types[policy.Egress] {
			how = "defaulted: Ingress always, no Egress because spec.egress is empty"
		}
	}
	fmt.Fprintf(w, "  Isolates them for %s (%s)\n", strings.Join(types, " and "), how)
	for _, d := range policy.Directions {
		if !p.Types[d] {
			continue
		}
		fmt.Fprintf(w, "  %s rules:\n", d)
		if len(p.Rules[d]) == 0 {
			verb := "receive"
			if d == policy.Egress {
				verb = "send"
			}
			fmt.Fprintf(w, "    none: this policy lets the selected pods %s nothing (other policies may)\n", verb)
		}
		for _, r := range p.Rules[d] {
			fmt.Fprintf(w, "    [%d] %s\n", r.Index, RuleWords(set, &r, d))
		}
	}
}

// RuleWords says what a rule allows, with its peers resolved to pods.
func RuleWords(set *policy.Set, r *policy.Rule, d policy.Direction) string {
	var b strings.Builder
	b.WriteString("allows ")
	if r.AllPorts() {
		b.WriteString("all ports and protocols")
	} else {
		ps := make([]string, len(r.Ports))
		for i, p := range r.Ports {
			ps[i] = p.String()
		}
		b.WriteString(strings.Join(ps, ", "))
	}
	dir := " from "
	if d == policy.Egress {
		dir = " to "
	}
	b.WriteString(dir)
	if r.AllPeers() {
		b.WriteString("everywhere (every pod and every address)")
		return b.String()
	}
	for i := range r.Peers {
		if i > 0 {
			b.WriteString("; or ")
		}
		b.WriteString(PeerWords(set, &r.Peers[i]))
	}
	return b.String()
}

// PeerWords describes a peer and the pods it matches.
func PeerWords(set *policy.Set, p *policy.Peer) string {
	c := set.Cluster
	var matched []*cluster.Pod
	var head string
	if p.IPBlock != nil {
		head = "addresses " + p.IPBlock.String()
		for _, pod := range c.Pods {
			for _, ip := range pod.IPs {
				if p.IPBlock.Contains(ip) {
					matched = append(matched, pod)
					break
				}
			}
		}
		if len(matched) == 0 {
			return head + " (no pod inside)"
		}
		return head + ", pods inside: " + podList(matched)
	}
	nsWords := "in namespace " + p.Namespace
	if p.NamespaceSelector != nil {
		nsWords = "in " + selectorWords(p.NamespaceSelector.String(), "every namespace", "namespaces")
	}
	head = selectorWords(p.PodSelector.String(), "every pod", "pods") + " " + nsWords
	shared := 0
	for _, pod := range c.Pods {
		if p.MatchesPod(pod, c.NamespaceLabels(pod.Namespace)) {
			if c.Conflicted(pod) {
				shared++ // an address only: selectors never match it
				continue
			}
			matched = append(matched, pod)
		}
	}
	if shared > 0 {
		return fmt.Sprintf("%s: %s (and %d pods left out: their address is shared with another pod)", head, podList(matched), shared)
	}
	return head + ": " + podList(matched)
}

func selectorWords(sel, all, some string) string {
	if sel == "" {
		return all
	}
	return some + " " + sel
}

func selectedPods(c *cluster.Cluster, p *policy.Policy) []*cluster.Pod {
	var out []*cluster.Pod
	for _, pod := range c.Pods {
		if p.Selects(pod) {
			out = append(out, pod)
		}
	}
	return out
}

func podList(pods []*cluster.Pod) string {
	if len(pods) == 0 {
		return "no pods"
	}
	var parts []string
	for i, p := range pods {
		if i == maxListed {
			parts = append(parts, fmt.Sprintf("and %d more", len(pods)-maxListed))
			break
		}
		s := p.Key()
		if len(p.IPs) > 0 {
			ips := make([]string, len(p.IPs))
			for j, ip := range p.IPs {
				ips[j] = ip.String()
			}
			s += " (" + strings.Join(ips, ", ") + ")"
		} else {
			s += " (no IP)"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// DescribePod writes a pod's isolation in both directions and every policy
// that applies to it, rule by rule, and the cluster policies selecting it
// per direction and tier.
func DescribePod(w io.Writer, set *policy.Set, pod *cluster.Pod) {
	fmt.Fprintf(w, "Pod %s\n", pod.Key())
	ips := make([]string, len(pod.IPs))
	for i, ip := range pod.IPs {
		ips[i] = ip.String()
	}
	fmt.Fprintf(w, "  Addresses: %s; node %s; phase %s\n", orNone(strings.Join(ips, ", ")), orNone(pod.NodeName), orNone(string(pod.Phase)))
	fmt.Fprintf(w, "  Labels: %s\n", orNone(pod.Labels.String()))
	var named []string
	for _, cp := range pod.Ports {
		if cp.Name != "" {
			named = append(named, fmt.Sprintf("%s=%s/%d", cp.Name, cp.Protocol, cp.Port))
		}
	}
	fmt.Fprintf(w, "  Named ports: %s\n", orNone(strings.Join(named, ", ")))
	if ok, why := pod.Active(); !ok {
		fmt.Fprintf(w, "  Not in traffic: the pod %s\n", why)
	}
	if pod.HostNetwork {
		fmt.Fprintf(w, "  hostNetwork pod: not subject to NetworkPolicy; peers see it by address only\n")
		describePodTiers(w, set, pod)
		return
	}
	if conf, ok := set.Cluster.Conflict(pod); ok {
		fmt.Fprintf(w, "  Address %s is shared with %s: denied all traffic in both directions whatever its policies say, matched by no pod or namespace selector, no named ports (fail closed)\n",
			conf.Addr, conf.SharedWith(pod))
		for _, d := range policy.Directions {
			fmt.Fprintf(w, "  %s: isolated (shared address): all %s traffic denied\n", d, strings.ToLower(d.String()))
		}
	} else {
		for _, d := range policy.Directions {
			pols := set.Isolating(pod, d)
			if len(pols) == 0 && len(set.ClusterPolicies) > 0 {
				fmt.Fprintf(w, "  %s: not isolated by NetworkPolicy (no policy with type %s selects it): the cluster policies below decide, what they leave is allowed\n", d, d)
				continue
			}
			if len(pols) == 0 {
				fmt.Fprintf(w, "  %s: not isolated (no policy with type %s selects it): all %s traffic allowed\n", d, d, strings.ToLower(d.String()))
				continue
			}
			names := make([]string, len(pols))
			for i, p := range pols {
				names[i] = p.Key()
			}
			fmt.Fprintf(w, "  %s: isolated by %s; allowed is the union of:\n", d, strings.Join(names, ", "))
			n := 0
			for _, p := range pols {
				for _, r := range p.Rules[d] {
					n++
					fmt.Fprintf(w, "    %s spec.%s[%d]: %s\n", p.Key(), strings.ToLower(d.String()), r.Index, RuleWords(set, &r, d))
				}
			}
			if n == 0 {
				fmt.Fprintf(w, "    nothing: no rule allows %s traffic (default deny)\n", strings.ToLower(d.String()))
			}
		}
	}
	var sel []string
	for _, p := range set.InNamespace(pod.Namespace) {
		if p.Selects(pod) {
			sel = append(sel, p.Key())
		}
	}
	describePodTiers(w, set, pod)
	fmt.Fprintf(w, "  Policies selecting it: %s\n", orNone(strings.Join(sel, ", ")))
	describePodStaged(w, set, pod)
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
