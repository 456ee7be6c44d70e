package policy

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netfence/netfence/internal/cluster"
)

// Set is the compiled policies of a cluster: the one policy form that the
// analyzer evaluates and the dataplane renders.
type Set struct {
	Cluster  *cluster.Cluster
	Policies []*Policy
	// Rejected lists policies that failed to compile; they are left out.
	Rejected []*Rejection

	byNamespace map[string][]*Policy
}

// NewSet compiles every policy of the cluster. A policy that does not
// compile is rejected whole and reported in Rejected; the others apply.
func NewSet(c *cluster.Cluster) *Set { return (*Compiler)(nil).NewSet(c) }

// Compiler compiles policies and remembers the results, so that a long
// running agent recompiles only the policies that changed between
// snapshots. A nil *Compiler compiles everything afresh.
type Compiler struct {
	cache map[string]compiled
}

type compiled struct {
	source *networkingv1.NetworkPolicy
	policy *Policy
	err    error
}

// NewCompiler returns a caching compiler.
func NewCompiler() *Compiler { return &Compiler{cache: map[string]compiled{}} }

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
		if err != nil {
			s.Rejected = append(s.Rejected, &Rejection{Policy: np, Err: err})
			continue
		}
		s.Policies = append(s.Policies, p)
		s.byNamespace[p.Namespace] = append(s.byNamespace[p.Namespace], p)
	}
	for key := range cp.cacheKeys() {
		if !live[key] {
			delete(cp.cache, key)
		}
	}
	return s
}

func (cp *Compiler) cacheKeys() map[string]compiled {
	if cp == nil {
		return nil
	}
	return cp.cache
}

// Rejection is a policy left out because it does not compile.
type Rejection struct {
	Policy *networkingv1.NetworkPolicy
	Err    error
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
}

func (e Endpoint) String() string {
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

// RuleMatch names the part of a policy that allowed a flow.
type RuleMatch struct {
	Policy    *Policy
	Direction Direction
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
	s := fmt.Sprintf("%s spec.%s[%d]", m.Policy.Key(), dir, m.Rule)
	if m.Peer >= 0 {
		s += fmt.Sprintf(".%s[%d]", list, m.Peer)
	}
	if m.Port >= 0 {
		s += fmt.Sprintf(".ports[%d]", m.Port)
	}
	return s
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
	// AllowedBy lists every rule that allows the flow.
	AllowedBy []RuleMatch
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
// peer and has no named ports; only ipBlocks see it, by address.
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
func (s *Set) AddrFlow(src, dst netip.Addr, proto corev1.Protocol, port int32) Flow {
	return Flow{
		From:     Endpoint{Pod: s.Cluster.PodByIP(src), IP: src},
		To:       Endpoint{Pod: s.Cluster.PodByIP(dst), IP: dst},
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
	side.Isolating = s.Isolating(subject, dir)
	if conf, ok := s.Cluster.Conflict(subject); ok {
		side.Conflict = &conf
		side.Reason = fmt.Sprintf("address %s is shared with %s: denied (fail closed)", conf.Addr, conf.SharedWith(subject))
		return side
	}
	if len(side.Isolating) == 0 {
		side.Allowed = true
		side.Reason = fmt.Sprintf("%s is not isolated for %s: no policy of type %s selects it", subject.Key(), dir, dir)
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
	if side.Allowed {
		side.Reason = fmt.Sprintf("allowed by %s", side.AllowedBy[0])
	} else {
		side.Reason = fmt.Sprintf("%s is isolated for %s and no rule of its %d policies allows this flow", subject.Key(), dir, len(side.Isolating))
	}
	return side
}

func (s *Set) peerNamespaceLabels(e Endpoint) map[string]string {
	if e.Pod == nil {
		return nil
	}
	return s.Cluster.NamespaceLabels(e.Pod.Namespace)
}
