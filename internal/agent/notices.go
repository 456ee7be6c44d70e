package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// Notice reasons.
const (
	// ReasonDomainNamesNotEnforced: a cluster policy has domainNames
	// peers, which the dataplane does not enforce (an Accept rule's
	// domainNames peer matches no traffic there: never more open).
	ReasonDomainNamesNotEnforced = "DomainNamesNotEnforced"
	// ReasonEqualPriorityConflict: two cluster policies of one tier and
	// priority give different actions to the same traffic of a local pod;
	// the most restrictive action wins (Deny, then Pass, then Accept).
	ReasonEqualPriorityConflict = "EqualPriorityConflict"
)

// Notice is something the agent reports about a cluster policy it
// enforces, once per version of the policies concerned: that it enforces
// it differently from what it reads (ReasonDomainNamesNotEnforced), or
// that it conflicts with a policy of the same tier and priority on some
// local pod's traffic (ReasonEqualPriorityConflict).
type Notice struct {
	Reason string
	// Policy is the policy the notice is about.
	Policy  *cluster.ClusterPolicy
	Message string

	// key identifies the notice and the versions it is about, for
	// reporting each once.
	key string
}

// Bounds of the equal-priority conflict search per sync: it looks at no
// more than maxConflictPods local pods per priority group and direction,
// and compares no more than maxConflictPairs pairs of rule items in all.
const (
	maxConflictPods  = 16
	maxConflictPairs = 20000
)

// rejectionVersion names the version of a rejected policy: its
// resourceVersion for a NetworkPolicy, a digest of what it means for a
// cluster policy (whose model has no resourceVersion).
func rejectionVersion(r *policy.Rejection) string {
	if r.ClusterPolicy != nil {
		return clusterPolicyVersion(r.ClusterPolicy)
	}
	return r.Policy.ResourceVersion
}

// clusterPolicyVersion returns a digest of a cluster policy's meaning:
// its kind, name, labels and spec.
func clusterPolicyVersion(cp *cluster.ClusterPolicy) string {
	b, _ := json.Marshal(struct {
		Kind, Name string
		Labels     map[string]string
		Spec       any
	}{cp.Kind, cp.Name, cp.Labels, cp.Spec})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// notices returns what to report about the cluster policies of set:
// domainNames it does not enforce and equal-priority conflicts on local
// pods. Fail-closed stand-ins are left out.
func (a *Agent) notices(set *policy.Set) []Notice {
	var out []Notice
	for _, p := range set.ClusterPolicies {
		if IsFailClosed(p.Source) {
			continue
		}
		var notes []string
		for _, n := range p.Notes {
			if strings.Contains(n, "domainNames") {
				notes = append(notes, n)
			}
		}
		if len(notes) == 0 {
			continue
		}
		out = append(out, Notice{
			Reason:  ReasonDomainNamesNotEnforced,
			Policy:  p.Source,
			Message: fmt.Sprintf("domainNames are not enforced by netfence: %s", strings.Join(notes, "; ")),
			key:     ReasonDomainNamesNotEnforced + " " + p.Key() + "@" + clusterPolicyVersion(p.Source),
		})
	}
	return append(out, a.priorityConflicts(set)...)
}

// priorityConflicts finds policies of one tier and priority that give
// different actions to the same traffic of a local pod (decision D1 of
// the design: the most restrictive action wins, which may not be what
// their authors meant). Only priority groups whose policies have rules of
// different actions in a direction are examined; for each, up to
// maxConflictPods local pods selected by two or more of them are resolved
// (policy.Resolver.ResolveTier) and their rule items compared pairwise;
// an overlap is confirmed at one point with Set.Evaluate, so a rule
// shadowed by an earlier rule of its own policy or by an earlier priority
// is not reported. Each conflicting pair yields a notice on each of its
// two policies.
func (a *Agent) priorityConflicts(set *policy.Set) []Notice {
	var res *policy.Resolver
	found := map[[2]string]bool{}
	pairs := 0
	var out []Notice
	for _, t := range policy.Tiers {
		for _, g := range set.Groups[t] {
			if len(g.Policies) < 2 {
				continue
			}
			for _, dir := range policy.Directions {
				if !mixedActions(g.Policies, dir) {
					continue
				}
				checked := 0
				for _, pod := range set.Cluster.Pods {
					if pod.HostNetwork || !a.isLocal(pod) || set.Cluster.Conflicted(pod) {
						continue
					}
					nsLabels := set.Cluster.NamespaceLabels(pod.Namespace)
					var sel []*policy.ClusterPolicy
					for _, p := range g.Policies {
						if len(p.Rules[dir]) > 0 && p.Selects(pod, nsLabels) {
							sel = append(sel, p)
						}
					}
					if len(sel) < 2 || !mixedActions(sel, dir) {
						continue
					}
					if checked++; checked > maxConflictPods {
						break
					}
					if res == nil {
						res = policy.NewResolver(set)
					}
					ta := res.ResolveTier(pod, dir, t)
					if ta == nil {
						continue
					}
					var items []policy.TierItem
					for _, it := range ta.Items {
						if it.Source.ClusterPolicy.Priority == g.Priority {
							items = append(items, it)
						}
					}
					for i := range items {
						for j := i + 1; j < len(items); j++ {
							x, y := &items[i], &items[j]
							px, py := x.Source.ClusterPolicy, y.Source.ClusterPolicy
							if px == py || x.Action == y.Action {
								continue
							}
							pair := [2]string{px.Key(), py.Key()}
							if pair[0] > pair[1] {
								pair[0], pair[1] = pair[1], pair[0]
							}
							if found[pair] {
								continue
							}
							if pairs++; pairs > maxConflictPairs {
								return out
							}
							f, what, ok := overlapFlow(set, pod, dir, x, y)
							if !ok {
								continue
							}
							v := set.Evaluate(f)
							side := v.Ingress
							if dir == policy.Egress {
								side = v.Egress
							}
							mx, my := tieOf(side.Ties, px), tieOf(side.Ties, py)
							if mx == nil || my == nil || mx.Action == my.Action {
								continue
							}
							found[pair] = true
							out = append(out, conflictNotices(pod, dir, f, what, *mx, *my)...)
						}
					}
				}
			}
		}
	}
	return out
}

// mixedActions reports whether the policies' rules in dir have more than
// one action between them.
func mixedActions(ps []*policy.ClusterPolicy, dir policy.Direction) bool {
	seen := -1
	for _, p := range ps {
		for _, r := range p.Rules[dir] {
			switch {
			case seen < 0:
				seen = int(r.Action)
			case seen != int(r.Action):
				return true
			}
		}
	}
	return false
}

// tieOf returns the match of p among ties, or nil.
func tieOf(ties []policy.TierMatch, p *policy.ClusterPolicy) *policy.TierMatch {
	for i := range ties {
		if ties[i].ClusterPolicy == p {
			return &ties[i]
		}
	}
	return nil
}

// overlapFlow returns a flow of pod in dir that both items cover: the
// first peer address they share (other than the pod's own) on a service
// they share, and the service in words ("TCP/80", or "all traffic" when
// both items cover every protocol).
func overlapFlow(set *policy.Set, pod *cluster.Pod, dir policy.Direction, x, y *policy.TierItem) (policy.Flow, string, bool) {
	proto, port, ok := overlapService(x.Service, y.Service)
	if !ok {
		return policy.Flow{}, "", false
	}
	addr, ok := overlapAddr(x.Addrs, y.Addrs, pod)
	if !ok {
		return policy.Flow{}, "", false
	}
	what := fmt.Sprintf("%s/%d", proto, port)
	if x.Service.AllProtocols && y.Service.AllProtocols {
		what = "all traffic"
	}
	if dir == policy.Ingress {
		return set.AddrFlow(addr, pod.IPFor(addr), proto, port), what, true
	}
	return set.AddrFlow(pod.IPFor(addr), addr, proto, port), what, true
}

// overlapService returns a protocol and port both services cover.
func overlapService(a, b policy.Service) (corev1.Protocol, int32, bool) {
	switch {
	case a.AllProtocols && b.AllProtocols:
		return corev1.ProtocolTCP, 1, true
	case a.AllProtocols:
		return b.Protocol, max(b.FromPort, 1), b.ToPort >= 1
	case b.AllProtocols:
		return a.Protocol, max(a.FromPort, 1), a.ToPort >= 1
	case a.Protocol != b.Protocol:
		return "", 0, false
	}
	from, to := max(a.FromPort, b.FromPort, 1), min(a.ToPort, b.ToPort)
	return a.Protocol, from, from <= to
}

// overlapAddr returns an address both sorted, disjoint range lists hold,
// other than the pod's own addresses (traffic to itself is never judged).
func overlapAddr(xs, ys []policy.AddrRange, pod *cluster.Pod) (netip.Addr, bool) {
	own := func(ip netip.Addr) bool {
		for _, p := range pod.IPs {
			if p.Unmap() == ip {
				return true
			}
		}
		return false
	}
	for i, j := 0, 0; i < len(xs) && j < len(ys); {
		x, y := xs[i], ys[j]
		if x.Overlaps(y) {
			from, to := x.From, x.To
			if y.From.Compare(from) > 0 {
				from = y.From
			}
			if y.To.Compare(to) < 0 {
				to = y.To
			}
			for ip, n := from, 0; ip.IsValid() && ip.Compare(to) <= 0 && n < len(pod.IPs)+1; ip, n = ip.Next(), n+1 {
				if !own(ip) {
					return ip, true
				}
			}
		}
		if x.To.Compare(y.To) < 0 {
			i++
		} else {
			j++
		}
	}
	return netip.Addr{}, false
}

// conflictNotices returns the two notices of a conflicting pair.
func conflictNotices(pod *cluster.Pod, dir policy.Direction, f policy.Flow, what string, mx, my policy.TierMatch) []Notice {
	px, py := mx.ClusterPolicy, my.ClusterPolicy
	peer, way := f.From.String(), "from"
	if dir == policy.Egress {
		peer, way = f.To.String(), "to"
	}
	msg := func(self, other policy.TierMatch) string {
		return fmt.Sprintf("%s and %s, both priority %d in the %s tier, disagree on %s traffic of pod %s (e.g. %s %s %s): %s says %s, %s says %s; netfence applies the most restrictive (Deny, then Pass, then Accept). Give them different priorities to say which wins",
			self.ClusterPolicy.Key(), other.ClusterPolicy.Key(), px.Priority, px.Tier, strings.ToLower(dir.String()), pod.Key(), what, way, peer,
			self.RuleMatch.String(), self.Action, other.RuleMatch.String(), other.Action)
	}
	versions := clusterPolicyVersion(px.Source) + "+" + clusterPolicyVersion(py.Source)
	return []Notice{
		{Reason: ReasonEqualPriorityConflict, Policy: px.Source, Message: msg(mx, my),
			key: ReasonEqualPriorityConflict + " " + px.Key() + " " + py.Key() + "@" + versions},
		{Reason: ReasonEqualPriorityConflict, Policy: py.Source, Message: msg(my, mx),
			key: ReasonEqualPriorityConflict + " " + py.Key() + " " + px.Key() + "@" + versions},
	}
}
