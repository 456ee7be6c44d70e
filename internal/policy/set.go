package policy

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/netfence/netfence/internal/cluster"
)

// Set is the compiled policies of a cluster: the one policy form that the
// analyzer evaluates and the dataplane renders.
type Set struct {
	Cluster  *cluster.Cluster
	Policies []*Policy
	// Rejected lists policies that failed to compile; they are left out.
	Rejected []*Rejection
	// ClusterPolicies are the compiled cluster-scoped policies, sorted by
	// key; Groups holds them per tier by priority.
	ClusterPolicies []*ClusterPolicy
	Groups          [2][]PriorityGroup
	// Staged are the compiled policies annotated netfence.io/mode: staged
	// (cluster.Staged): not enforced, so not in Policies; StagedCluster
	// the staged cluster policies, not in ClusterPolicies or Groups;
	// StagedRejected the staged policies that do not compile (not in
	// Rejected: a staged policy never fails closed). WithStaged returns
	// the set with them enforced.
	Staged         []*Policy
	StagedCluster  []*ClusterPolicy
	StagedRejected []*Rejection
	// StagedApplied is set on the set WithStaged returns: Policies and
	// ClusterPolicies hold the staged policies too.
	StagedApplied bool

	byNamespace map[string][]*Policy
	// all and allCluster are the compiled policies, staged or not, in
	// the cluster's order (what WithStaged enforces).
	all        []*Policy
	allCluster []*ClusterPolicy
}

// NewSet compiles every policy of the cluster. A policy that does not
// compile is rejected whole and reported in Rejected; the others apply.
func NewSet(c *cluster.Cluster) *Set { return (*Compiler)(nil).NewSet(c) }

// Compiler compiles policies and remembers the results, so that a long
// running agent recompiles only the policies that changed between
// snapshots. A nil *Compiler compiles everything afresh.
type Compiler struct {
	cache  map[string]compiled
	ccache map[string]compiledCluster
}

type compiledCluster struct {
	source *cluster.ClusterPolicy
	policy *ClusterPolicy
	err    error
}

type compiled struct {
	source *networkingv1.NetworkPolicy
	policy *Policy
	err    error
}

// NewCompiler returns a caching compiler.
func NewCompiler() *Compiler {
	return &Compiler{cache: map[string]compiled{}, ccache: map[string]compiledCluster{}}
}

// compileCluster returns the compiled cluster policy, reusing the
// previous result when the policy is the same (cluster.SameClusterPolicy).
func (cp *Compiler) compileCluster(c *cluster.ClusterPolicy) (*ClusterPolicy, error) {
	if cp == nil {
		return CompileCluster(c)
	}
	if prev, ok := cp.ccache[c.Key()]; ok && cluster.SameClusterPolicy(prev.source, c) {
		if prev.policy != nil && prev.source != c {
			p := *prev.policy
			p.Source = c
			prev = compiledCluster{source: c, policy: &p, err: prev.err}
			cp.ccache[c.Key()] = prev
		}
		return prev.policy, prev.err
	}
	p, err := CompileCluster(c)
	cp.ccache[c.Key()] = compiledCluster{source: c, policy: p, err: err}
	return p, err
}

// compile returns the compiled policy, reusing the previous result when the
// policy is the same (cluster.SamePolicy: the one equality netfence uses
// for "changed").
func (cp *Compiler) compile(np *networkingv1.NetworkPolicy) (*Policy, error) {
	if cp == nil {
		return Compile(np)
	}
	key := np.Namespace + "/" + np.Name
	if prev, ok := cp.cache[key]; ok && cluster.SamePolicy(prev.source, np) {
		if prev.policy != nil && prev.source != np {
			p := *prev.policy
			p.Source = np
			prev = compiled{source: np, policy: &p, err: prev.err}
			cp.cache[key] = prev
		}
		return prev.policy, prev.err
	}
	p, err := Compile(np)
	cp.cache[key] = compiled{source: np, policy: p, err: err}
	return p, err
}

// NewSet compiles the cluster's policies, reusing unchanged ones, and
// forgets policies that are gone.
func (cp *Compiler) NewSet(c *cluster.Cluster) *Set {
	s := &Set{Cluster: c, byNamespace: map[string][]*Policy{}}
	var live map[string]bool
	if cp != nil {
		live = make(map[string]bool, len(c.Policies))
	}
	for _, np := range c.Policies {
		if live != nil {
			live[np.Namespace+"/"+np.Name] = true
		}
		p, err := cp.compile(np)
		if s.addStaged(np.Annotations, p, nil, err, &Rejection{Policy: np, Err: err}) {
			continue
		}
		if err != nil {
			s.Rejected = append(s.Rejected, &Rejection{Policy: np, Err: err})
			continue
		}
		s.all = append(s.all, p)
		s.Policies = append(s.Policies, p)
		s.byNamespace[p.Namespace] = append(s.byNamespace[p.Namespace], p)
	}
	for key := range cp.cacheKeys() {
		if !live[key] {
			delete(cp.cache, key)
		}
	}
	var clive map[string]bool
	if cp != nil {
		clive = make(map[string]bool, len(c.ClusterPolicies))
	}
	for _, src := range c.ClusterPolicies {
		if clive != nil {
			clive[src.Key()] = true
		}
		p, err := cp.compileCluster(src)
		if s.addStaged(src.Annotations, nil, p, err, &Rejection{ClusterPolicy: src, Err: err}) {
			continue
		}
		if err != nil {
			s.Rejected = append(s.Rejected, &Rejection{ClusterPolicy: src, Err: err})
			continue
		}
		s.allCluster = append(s.allCluster, p)
		s.ClusterPolicies = append(s.ClusterPolicies, p)
	}
	if cp != nil {
		for key := range cp.ccache {
			if !clive[key] {
				delete(cp.ccache, key)
			}
		}
	}
	s.Groups = groupTiers(s.ClusterPolicies)
	return s
}

// groupTiers sorts cluster policies into tiers and priority groups.
func groupTiers(ps []*ClusterPolicy) [2][]PriorityGroup {
	var out [2][]PriorityGroup
	sorted := slices.Clone(ps)
	slices.SortStableFunc(sorted, func(a, b *ClusterPolicy) int {
		if c := cmp.Compare(a.Tier, b.Tier); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
			return c
		}
		return strings.Compare(a.Key(), b.Key())
	})
	for _, p := range sorted {
		gs := out[p.Tier]
		if n := len(gs); n > 0 && gs[n-1].Priority == p.Priority {
			gs[n-1].Policies = append(gs[n-1].Policies, p)
			continue
		}
		out[p.Tier] = append(gs, PriorityGroup{Tier: p.Tier, Priority: p.Priority, Policies: []*ClusterPolicy{p}})
	}
	return out
}

// ClusterPolicy returns the compiled cluster policy of that key, or nil.
func (s *Set) ClusterPolicy(key string) *ClusterPolicy {
	for _, p := range s.ClusterPolicies {
		if p.Key() == key {
			return p
		}
	}
	return nil
}

func (cp *Compiler) cacheKeys() map[string]compiled {
	if cp == nil {
		return nil
	}
	return cp.cache
}

// Rejection is a policy left out because it does not compile: a
// NetworkPolicy (Policy) or a cluster-scoped policy (ClusterPolicy).
type Rejection struct {
	Policy        *networkingv1.NetworkPolicy
	ClusterPolicy *cluster.ClusterPolicy
	Err           error
}

// Key returns the rejected policy's key: "namespace/name" for a
// NetworkPolicy, "cnp/NAME" (anp, banp) for a cluster policy.
func (r *Rejection) Key() string {
	if r.ClusterPolicy != nil {
		return r.ClusterPolicy.Key()
	}
	return r.Policy.Namespace + "/" + r.Policy.Name
}

func (r *Rejection) Error() string { return r.Err.Error() }

// InNamespace returns the policies of a namespace.
func (s *Set) InNamespace(ns string) []*Policy { return s.byNamespace[ns] }

// Policy returns the compiled policy "namespace/name", or nil.
func (s *Set) Policy(namespace, name string) *Policy {
	for _, p := range s.byNamespace[namespace] {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Isolating returns the policies that select pod and isolate it in dir.
// The pod is isolated in dir iff the result is non-empty.
func (s *Set) Isolating(pod *cluster.Pod, dir Direction) []*Policy {
	var out []*Policy
	for _, p := range s.byNamespace[pod.Namespace] {
		if p.Types[dir] && p.Selects(pod) {
			out = append(out, p)
		}
	}
	return out
}

// Endpoint is one end of a flow: a pod and the address it uses, or an
// address outside the cluster's pods (Pod nil).
type Endpoint struct {
	Pod *cluster.Pod
	IP  netip.Addr
	// Domain is set for an external endpoint named by a domain name (IP
	// may then be unset): what domainNames peers of cluster policies
	// match.
	Domain string
}

func (e Endpoint) String() string {
	if e.Domain != "" {
		if e.IP.IsValid() {
			return fmt.Sprintf("%s (%s)", e.Domain, e.IP)
		}
		return e.Domain
	}
	if e.Pod == nil {
		return e.IP.String()
	}
	if e.IP.IsValid() {
		return fmt.Sprintf("%s (%s)", e.Pod.Key(), e.IP)
	}
	return e.Pod.Key()
}

// Flow is a connection attempt.
type Flow struct {
	From, To Endpoint
	Protocol corev1.Protocol
	Port     int32
}

// RuleMatch names the part of a policy that allowed a flow: of a
// NetworkPolicy (Policy) or of a cluster policy (ClusterPolicy; Port then
// indexes the rule's protocols).
type RuleMatch struct {
	Policy        *Policy
	ClusterPolicy *ClusterPolicy
	Direction     Direction
	// Rule is the index in spec.ingress or spec.egress.
	Rule int
	// Peer is the index in the rule's from/to, or -1 when the rule has
	// none (every peer).
	Peer int
	// Port is the index in the rule's ports, or -1 when it has none (all
	// ports).
	Port int
}

func (m RuleMatch) String() string {
	dir := "ingress"
	list := "from"
	if m.Direction == Egress {
		dir, list = "egress", "to"
	}
	ports := "ports"
	var key string
	if m.ClusterPolicy != nil {
		key, ports = m.ClusterPolicy.Key(), "protocols"
	} else {
		key = m.Policy.Key()
	}
	s := fmt.Sprintf("%s spec.%s[%d]", key, dir, m.Rule)
	if m.Peer >= 0 {
		s += fmt.Sprintf(".%s[%d]", list, m.Peer)
	}
	if m.Port >= 0 {
		s += fmt.Sprintf(".%s[%d]", ports, m.Port)
	}
	return s
}

// TierMatch is the rule of a cluster policy that matched a flow, and its
// action.
type TierMatch struct {
	RuleMatch
	Action Action
}

// TierRule returns the matched rule.
func (m TierMatch) TierRule() *TierRule {
	for i := range m.ClusterPolicy.Rules[m.Direction] {
		if r := &m.ClusterPolicy.Rules[m.Direction][i]; r.Index == m.Rule {
			return r
		}
	}
	return nil
}

// Describe says what matched, in words: `cnp/x spec.egress[0].to[1]
// "rule name" (Admin tier, priority 10): Deny`.
func (m TierMatch) Describe() string {
	p := m.ClusterPolicy
	s := m.RuleMatch.String()
	if r := m.TierRule(); r != nil && r.Name != "" {
		s += fmt.Sprintf(" %q", r.Name)
	}
	if p.Kind == cluster.KindBANP {
		s += " (Baseline tier, after every Baseline ClusterNetworkPolicy)"
	} else {
		s += fmt.Sprintf(" (%s tier, priority %d)", p.Tier, p.Priority)
	}
	return s + ": " + m.Action.String()
}

// Side is the verdict of one direction: egress at the source or ingress
// at the destination.
type Side struct {
	Direction Direction
	// Subject is false when the endpoint is not subject to NetworkPolicy
	// (an external address or a hostNetwork pod).
	Subject bool
	// Isolating are the policies that isolate the pod in this direction.
	Isolating []*Policy
	// Conflict is set when the pod holds an address another active pod
	// holds too: it is then denied everything, whatever its policies say
	// (see cluster.AddressConflict).
	Conflict *cluster.AddressConflict
	Allowed  bool
	// AllowedBy lists every NetworkPolicy rule that allows the flow.
	AllowedBy []RuleMatch
	// Layer is what decided: a tier of cluster policy, NetworkPolicy or
	// the default (allow). It is empty for an endpoint that is not subject
	// to policy, for a pod holding a conflicted address and for ingress
	// from the pod's own node (see Set.FromOwnNode).
	Layer Layer
	// DecidedBy is the cluster policy rule that decided, when Layer is
	// Admin or Baseline (and Pass in Baseline, which leads to the
	// default).
	DecidedBy *TierMatch
	// PassedBy is the Admin tier Pass rule that handed the flow on to
	// NetworkPolicy and Baseline, if one did.
	PassedBy *TierMatch
	// Ties lists, when policies of the deciding priority disagreed, the
	// rule each of them matched; the most restrictive action won (Deny,
	// then Pass, then Accept).
	Ties []TierMatch
	// Reason says why, in words.
	Reason string
}

// Isolated reports whether the pod is isolated in this direction: a
// policy isolates it, or it holds a conflicted address.
func (s *Side) Isolated() bool { return len(s.Isolating) > 0 || s.Conflict != nil }

// Verdict is the decision on a flow.
type Verdict struct {
	Allowed bool
	// Reason is set when the decision needs no policy (a pod talking to
	// itself).
	Reason  string
	Egress  Side
	Ingress Side
}

// Evaluate decides a flow: it needs egress allowed at its source and
// ingress allowed at its destination. Replies of an allowed connection are
// allowed (the dataplane is stateful), so only the initiating direction is
// evaluated. A pod holding a conflicted address (see
// cluster.AddressConflict) is denied in both directions, matches no pod
// peer and has no named ports; only ipBlocks see it, by address. Ingress
// from the destination's own node (Set.FromOwnNode) is allowed before
// any tier or NetworkPolicy, conflicted address or not: Kubernetes always
// allows it, and the node's own traffic is never filtered.
func (s *Set) Evaluate(f Flow) Verdict {
	if f.From.Pod != nil && f.From.Pod == f.To.Pod {
		v := Verdict{Allowed: true, Reason: "traffic from a pod to itself never leaves the pod; NetworkPolicy does not apply"}
		v.Egress = Side{Direction: Egress, Subject: true, Allowed: true, Reason: v.Reason}
		v.Ingress = Side{Direction: Ingress, Subject: true, Allowed: true, Reason: v.Reason}
		return v
	}
	v := Verdict{
		Egress:  s.side(Egress, f.From.Pod, f.To, f),
		Ingress: s.side(Ingress, f.To.Pod, f.From, f),
	}
	v.Allowed = v.Egress.Allowed && v.Ingress.Allowed
	return v
}

// AddrFlow returns the flow between two addresses, each end the pod that
// owns the address (Cluster.PodByIP) or external: how a packet's flow is
// judged, as the dataplane sees it.
//
// An address of a pod that is not active (not Running, or without an
// address in its status) is external: the dataplane renders only active
// pods, so such a pod is neither isolated nor a pod peer.
func (s *Set) AddrFlow(src, dst netip.Addr, proto corev1.Protocol, port int32) Flow {
	return Flow{
		From:     Endpoint{Pod: s.Cluster.ActivePodByIP(src), IP: src},
		To:       Endpoint{Pod: s.Cluster.ActivePodByIP(dst), IP: dst},
		Protocol: proto,
		Port:     port,
	}
}

func (s *Set) side(dir Direction, subject *cluster.Pod, peer Endpoint, f Flow) Side {
	side := Side{Direction: dir}
	switch {
	case subject == nil:
		side.Allowed, side.Reason = true, "external endpoint: not subject to NetworkPolicy"
		return side
	case subject.HostNetwork:
		side.Allowed, side.Reason = true, "hostNetwork pod: not subject to NetworkPolicy"
		return side
	}
	side.Subject = true
	if dir == Ingress {
		if node, ok := s.FromOwnNode(peer, subject); ok {
			side.Allowed = true
			side.Reason = fmt.Sprintf("from its own node (%s): always allowed; policy does not apply to traffic the node originates", node)
			return side
		}
	}
	side.Isolating = s.Isolating(subject, dir)
	if conf, ok := s.Cluster.Conflict(subject); ok {
		side.Conflict = &conf
		side.Reason = fmt.Sprintf("address %s is shared with %s: denied (fail closed)", conf.Addr, conf.SharedWith(subject))
		return side
	}
	// A pod holding a conflicted address is an address only: no pod peer
	// matches it and no named port resolves against it.
	if s.Cluster.Conflicted(peer.Pod) {
		peer.Pod = nil
	}
	dst := f.To.Pod
	if dir == Egress {
		dst = peer.Pod
	}
	tiers := len(s.ClusterPolicies) > 0
	if tiers {
		if m, ties := s.decideTier(AdminTier, subject, dir, peer, dst, f); m != nil {
			side.Ties = ties
			switch m.Action {
			case Accept, Deny:
				side.Layer, side.DecidedBy, side.Allowed = LayerAdmin, m, m.Action == Accept
				side.Reason = "decided by " + m.Describe()
				return side
			case Pass:
				side.PassedBy = m
			}
		}
	}
	if len(side.Isolating) == 0 {
		if tiers {
			if m, ties := s.decideTier(BaselineTier, subject, dir, peer, dst, f); m != nil {
				side.Ties = append(side.Ties, ties...)
				side.Layer, side.DecidedBy, side.Allowed = LayerBaseline, m, m.Action != Deny
				side.Reason = s.passedWords(side.PassedBy) + "decided by " + m.Describe()
				if m.Action == Pass {
					side.Layer = LayerDefault
					side.Reason += ": passed to the default, allow"
				}
				return side
			}
			side.Layer, side.Allowed = LayerDefault, true
			side.Reason = s.passedWords(side.PassedBy) + fmt.Sprintf("%s is not isolated for %s by NetworkPolicy and no cluster policy matched: allowed by default", subject.Key(), dir)
			return side
		}
		side.Allowed = true
		side.Reason = fmt.Sprintf("%s is not isolated for %s: no policy of type %s selects it", subject.Key(), dir, dir)
		return side
	}
	var peerNS = s.peerNamespaceLabels(peer)
	for _, p := range side.Isolating {
		for _, r := range p.Rules[dir] {
			port, ok := r.MatchingPort(f.Protocol, f.Port, dst)
			if !ok {
				continue
			}
			if r.AllPeers() {
				side.AllowedBy = append(side.AllowedBy, RuleMatch{Policy: p, Direction: dir, Rule: r.Index, Peer: -1, Port: port})
				continue
			}
			for i := range r.Peers {
				if r.Peers[i].Matches(peer.Pod, peer.IP, peerNS) {
					side.AllowedBy = append(side.AllowedBy, RuleMatch{Policy: p, Direction: dir, Rule: r.Index, Peer: i, Port: port})
					break
				}
			}
		}
	}
	side.Allowed = len(side.AllowedBy) > 0
	if tiers {
		side.Layer = LayerNetworkPolicy
	}
	if side.Allowed {
		side.Reason = s.passedWords(side.PassedBy) + fmt.Sprintf("allowed by %s", side.AllowedBy[0])
	} else {
		side.Reason = s.passedWords(side.PassedBy) + fmt.Sprintf("%s is isolated for %s and no rule of its %d policies allows this flow", subject.Key(), dir, len(side.Isolating))
	}
	return side
}

// FromOwnNode reports whether src is the node dst runs on, and names
// it: src is a host-network pod of dst's node (same non-empty NodeName),
// or its address is one of the addresses of the Node object named
// dst.NodeName, and src is not a pod-network pod (a pod-network pod's
// traffic is a pod's, whatever its address). Such traffic is the node's
// own (kubelet probes, host-network pods): Kubernetes always allows it at
// the pod, and the dataplane never filters it, as it leaves the node
// through the output hook. That holds for a pod holding a conflicted
// address too: the replies of the node's connections are established
// traffic.
func (s *Set) FromOwnNode(src Endpoint, dst *cluster.Pod) (string, bool) {
	if dst == nil || dst.NodeName == "" || (src.Pod != nil && !src.Pod.HostNetwork) {
		return "", false
	}
	if src.Pod != nil && src.Pod.NodeName == dst.NodeName {
		return dst.NodeName, true
	}
	if !src.IP.IsValid() {
		return "", false
	}
	if n := s.Cluster.Node(dst.NodeName); n != nil {
		ip := src.IP.Unmap()
		for _, a := range n.Addrs {
			if a.Unmap() == ip {
				return n.Name, true
			}
		}
	}
	return "", false
}

func (s *Set) passedWords(m *TierMatch) string {
	if m == nil {
		return ""
	}
	return "passed by " + m.Describe() + "; "
}

// decideTier returns the rule of the tier that decides a flow for the
// subject in dir, or nil when no policy of the tier matches; ties lists
// the matches of the deciding priority group when their actions differ.
func (s *Set) decideTier(t Tier, subject *cluster.Pod, dir Direction, peer Endpoint, dst *cluster.Pod, f Flow) (*TierMatch, []TierMatch) {
	nsLabels := s.Cluster.NamespaceLabels(subject.Namespace)
	peerNS := s.peerNamespaceLabels(peer)
	for _, g := range s.Groups[t] {
		best := -1
		var matches []TierMatch
		for _, p := range g.Policies {
			if len(p.Rules[dir]) == 0 || !p.Selects(subject, nsLabels) {
				continue
			}
			if m, ok := s.firstMatch(p, dir, peer, peerNS, dst, f); ok {
				matches = append(matches, m)
				if best < 0 || m.Action.Restrictiveness() > matches[best].Action.Restrictiveness() {
					best = len(matches) - 1
				}
			}
		}
		if best < 0 {
			continue
		}
		out := matches[best]
		for _, m := range matches[1:] {
			if m.Action != matches[0].Action {
				return &out, matches
			}
		}
		return &out, nil
	}
	return nil, nil
}

// firstMatch returns the first rule of p in dir that matches the flow.
func (s *Set) firstMatch(p *ClusterPolicy, dir Direction, peer Endpoint, peerNS labels.Set, dst *cluster.Pod, f Flow) (TierMatch, bool) {
	for ri := range p.Rules[dir] {
		r := &p.Rules[dir][ri]
		port := -1
		if len(r.Ports) > 0 {
			port = slices.IndexFunc(r.Ports, func(tp TierPort) bool { return tp.Matches(f.Protocol, f.Port, dst) })
			if port < 0 {
				continue
			}
		}
		for pi := range r.Peers {
			if s.TierPeerMatches(&r.Peers[pi], peer, peerNS) {
				return TierMatch{RuleMatch: RuleMatch{ClusterPolicy: p, Direction: dir, Rule: r.Index, Peer: pi, Port: port}, Action: r.Action}, true
			}
		}
	}
	return TierMatch{}, false
}

// TierPeerMatches reports whether an endpoint is the peer: pods by their
// labels (pod-network pods only, never host-network ones), networks by
// address (pod addresses too), nodes by the addresses of the Node
// objects selected, domains by name. A domain endpoint without an address
// is in a network only when the network holds a whole family (it could
// resolve to any address).
func (s *Set) TierPeerMatches(p *TierPeer, e Endpoint, nsLabels labels.Set) bool {
	switch {
	case p.Everything:
		return true
	case p.Pod != nil:
		return e.Pod != nil && e.Domain == "" && p.Pod.MatchesPod(e.Pod, nsLabels)
	case len(p.Networks) > 0:
		for _, n := range p.Networks {
			if e.IP.IsValid() && n.Contains(e.IP.Unmap()) {
				return true
			}
			if !e.IP.IsValid() && e.Domain != "" && n.Bits() == 0 {
				return true
			}
		}
	case p.Nodes != nil:
		if !e.IP.IsValid() {
			return false
		}
		for _, n := range s.Cluster.NodesWithAddr(e.IP) {
			if p.Nodes.Matches(n.Labels) {
				return true
			}
		}
	case len(p.Domains) > 0:
		for _, d := range p.Domains {
			if e.Domain != "" && DomainMatches(d, e.Domain) {
				return true
			}
		}
	}
	return false
}

func (s *Set) peerNamespaceLabels(e Endpoint) map[string]string {
	if e.Pod == nil {
		return nil
	}
	return s.Cluster.NamespaceLabels(e.Pod.Namespace)
}
