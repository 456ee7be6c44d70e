package policy

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/validation"
)

// This file compiles cluster-scoped policies (ClusterNetworkPolicy, and
// AdminNetworkPolicy and BaselineAdminNetworkPolicy converted to it; see
// cluster.ClusterPolicy) into ordered tiers. Per direction, a pod's
// traffic is decided by the Admin tier, then by NetworkPolicy, then by the
// Baseline tier, then allowed by default; see Set.Evaluate.

// Tier is a tier of cluster-scoped policy.
type Tier uint8

const (
	// AdminTier is evaluated before NetworkPolicy.
	AdminTier Tier = iota
	// BaselineTier is evaluated after NetworkPolicy, for traffic that no
	// NetworkPolicy decided.
	BaselineTier
)

// Tiers lists both tiers in evaluation order.
var Tiers = [2]Tier{AdminTier, BaselineTier}

func (t Tier) String() string {
	if t == BaselineTier {
		return "Baseline"
	}
	return "Admin"
}

const (
	// Deny drops the traffic.
	Deny Action = 1
	// Pass skips the rest of the tier: from the Admin tier to
	// NetworkPolicy, from the Baseline tier to the default (allow).
	Pass Action = 2
)

func (a Action) String() string {
	switch a {
	case Deny:
		return "Deny"
	case Pass:
		return "Pass"
	}
	return "Accept"
}

// Restrictiveness orders actions for policies of equal priority: Deny
// beats Pass beats Accept.
func (a Action) Restrictiveness() int {
	switch a {
	case Deny:
		return 2
	case Pass:
		return 1
	}
	return 0
}

// Layer names what decided one direction of a flow.
type Layer string

// Layers, in evaluation order.
const (
	LayerAdmin         Layer = "Admin"
	LayerNetworkPolicy Layer = "NetworkPolicy"
	LayerBaseline      Layer = "Baseline"
	LayerDefault       Layer = "Default"
)

// ClusterPolicy is a compiled cluster-scoped policy.
type ClusterPolicy struct {
	// Kind is the kind it was read as (cluster.KindCNP, KindANP, KindBANP).
	Kind string
	Name string
	Tier Tier
	// Priority orders policies within the tier, lower first (see
	// cluster.ClusterPolicy.Priority).
	Priority int32
	// Namespaces selects the subject's namespaces; Pods its pods in them
	// (Everything for a namespaces subject).
	Namespaces, Pods labels.Selector
	// Rules are the ingress and egress rules in order, indexed by
	// Direction.
	Rules [2][]TierRule
	// Source is the policy as read.
	Source *cluster.ClusterPolicy
	// Notes say what netfence does differently from what the policy
	// reads: rules it cannot enforce, fields it interprets.
	Notes []string
}

// Key returns "cnp/NAME", "anp/NAME" or "banp/NAME".
func (p *ClusterPolicy) Key() string { return cluster.ShortKind(p.Kind) + "/" + p.Name }

// Selects reports whether the policy's subject is the pod. Host-network
// pods are never subjects.
func (p *ClusterPolicy) Selects(pod *cluster.Pod, nsLabels labels.Set) bool {
	return !pod.HostNetwork && p.Namespaces.Matches(nsLabels) && p.Pods.Matches(pod.Labels)
}

// TierRule is one rule of a cluster policy.
type TierRule struct {
	// Index is the rule's position in spec.ingress or spec.egress.
	Index  int
	Name   string
	Action Action
	// Peers are OR-ed; never empty.
	Peers []TierPeer
	// Ports are OR-ed; empty means all traffic.
	Ports []TierPort
}

// TierPeer is one peer of a rule: pods (Pod set), networks, nodes or
// domain names; exactly one is set.
type TierPeer struct {
	// Pod is set for namespaces and pods peers (the pods peer's
	// namespace selector absent means every namespace; a namespaces peer
	// selects every pod of its namespaces).
	Pod *Peer
	// Networks are CIDRs; they match pod addresses too.
	Networks []netip.Prefix
	// Nodes selects Node objects by label; the peer is their addresses.
	Nodes labels.Selector
	// Domains are domain names, lower case, without a trailing dot; "*."
	// prefixes match one or more labels.
	Domains []string
	// Everything is set for a peer that matches every endpoint: a peer
	// with no field netfence knows in a Deny or Pass rule (the API's
	// rule for peers of a newer API version).
	Everything bool
}

// TierPort is one entry of a rule's protocols.
type TierPort struct {
	Protocol corev1.Protocol
	// From..To is the port range; for a named port both are 0.
	From, To int32
	// Name is a destination named port: every container port of that
	// name on the destination pod, whatever its protocol.
	Name string
}

func (p TierPort) String() string {
	switch {
	case p.Name != "":
		return "named port " + p.Name
	case p.From == p.To:
		return fmt.Sprintf("%s/%d", p.Protocol, p.From)
	}
	return fmt.Sprintf("%s/%d-%d", p.Protocol, p.From, p.To)
}

// Matches reports whether the entry matches proto/port at dst (nil for a
// destination that is not a pod-network pod, where named ports never
// match).
func (p TierPort) Matches(proto corev1.Protocol, port int32, dst *cluster.Pod) bool {
	if p.Name != "" {
		if dst == nil || dst.HostNetwork {
			return false
		}
		for _, cp := range dst.Ports {
			if cp.Name == p.Name && cp.Protocol == proto && cp.Port == port {
				return true
			}
		}
		return false
	}
	return p.Protocol == proto && p.From <= port && port <= p.To
}

// CompileCluster turns a cluster-scoped policy into the policy form. The
// policy must have passed CRD validation (the loader and the API server
// do that); CompileCluster refuses what the CRD lets through but netfence
// cannot enforce as written: selectors with unknown operators, domain
// names in Deny or Pass rules.
func CompileCluster(cp *cluster.ClusterPolicy) (*ClusterPolicy, error) {
	p := &ClusterPolicy{Kind: cp.Kind, Name: cp.Name, Priority: cp.Priority(), Source: cp}
	wrap := func(err error) error { return fmt.Errorf("%s %s: %w", cp.Kind, cp.Name, err) }
	switch cp.Spec.Tier {
	case v1beta1.AdminTier:
		p.Tier = AdminTier
	case v1beta1.BaselineTier:
		p.Tier = BaselineTier
	default:
		return nil, wrap(fmt.Errorf("spec.tier: unsupported value %q: must be Admin or Baseline", cp.Spec.Tier))
	}
	var err error
	switch s := cp.Spec.Subject; {
	case s.Namespaces != nil && s.Pods == nil:
		if p.Namespaces, err = selector(s.Namespaces); err != nil {
			return nil, wrap(fmt.Errorf("spec.subject.namespaces: %w", err))
		}
		p.Pods = labels.Everything()
	case s.Pods != nil && s.Namespaces == nil:
		if p.Namespaces, err = selector(&s.Pods.NamespaceSelector); err != nil {
			return nil, wrap(fmt.Errorf("spec.subject.pods.namespaceSelector: %w", err))
		}
		if p.Pods, err = selector(&s.Pods.PodSelector); err != nil {
			return nil, wrap(fmt.Errorf("spec.subject.pods.podSelector: %w", err))
		}
	default:
		return nil, wrap(fmt.Errorf("spec.subject: exactly one of namespaces and pods must be set"))
	}
	for i, r := range cp.Spec.Ingress {
		peers := make([]v1beta1.ClusterNetworkPolicyEgressPeer, len(r.From))
		for j, f := range r.From {
			peers[j] = v1beta1.ClusterNetworkPolicyEgressPeer{Namespaces: f.Namespaces, Pods: f.Pods}
		}
		rule, err := compileTierRule(p, i, r.Name, r.Action, peers, r.Protocols, Ingress)
		if err != nil {
			return nil, wrap(fmt.Errorf("spec.ingress[%d].%w", i, err))
		}
		p.Rules[Ingress] = append(p.Rules[Ingress], rule)
	}
	for i, r := range cp.Spec.Egress {
		rule, err := compileTierRule(p, i, r.Name, r.Action, r.To, r.Protocols, Egress)
		if err != nil {
			return nil, wrap(fmt.Errorf("spec.egress[%d].%w", i, err))
		}
		p.Rules[Egress] = append(p.Rules[Egress], rule)
	}
	return p, nil
}

func selector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(s)
}

func compileTierRule(p *ClusterPolicy, index int, name string, action v1beta1.ClusterNetworkPolicyRuleAction,
	peers []v1beta1.ClusterNetworkPolicyEgressPeer, protos []v1beta1.ClusterNetworkPolicyProtocol, dir Direction) (TierRule, error) {
	r := TierRule{Index: index, Name: name}
	switch action {
	case v1beta1.ClusterNetworkPolicyRuleActionAccept:
		r.Action = Accept
	case v1beta1.ClusterNetworkPolicyRuleActionDeny:
		r.Action = Deny
	case v1beta1.ClusterNetworkPolicyRuleActionPass:
		r.Action = Pass
	default:
		return r, fmt.Errorf("action: unsupported value %q: must be Accept, Deny or Pass", action)
	}
	list := "from"
	if dir == Egress {
		list = "to"
	}
	for j, peer := range peers {
		var tp TierPeer
		var err error
		switch {
		case peer.Namespaces != nil:
			sel, err := selector(peer.Namespaces)
			if err != nil {
				return r, fmt.Errorf("%s[%d].namespaces: %w", list, j, err)
			}
			tp.Pod = &Peer{NamespaceSelector: sel, PodSelector: labels.Everything()}
		case peer.Pods != nil:
			nsSel, err := selector(&peer.Pods.NamespaceSelector)
			if err != nil {
				return r, fmt.Errorf("%s[%d].pods.namespaceSelector: %w", list, j, err)
			}
			podSel, err := selector(&peer.Pods.PodSelector)
			if err != nil {
				return r, fmt.Errorf("%s[%d].pods.podSelector: %w", list, j, err)
			}
			tp.Pod = &Peer{NamespaceSelector: nsSel, PodSelector: podSel}
		case peer.Nodes != nil:
			if tp.Nodes, err = selector(peer.Nodes); err != nil {
				return r, fmt.Errorf("%s[%d].nodes: %w", list, j, err)
			}
		case len(peer.Networks) > 0:
			for k, c := range peer.Networks {
				pfx, err := validation.ParseCIDR(string(c))
				if err != nil {
					return r, fmt.Errorf("%s[%d].networks[%d]: %w", list, j, k, err)
				}
				tp.Networks = append(tp.Networks, pfx)
			}
		case len(peer.DomainNames) > 0:
			if r.Action != Accept {
				return r, fmt.Errorf("%s[%d].domainNames: domain names are only supported in Accept rules, not %s", list, j, r.Action)
			}
			for _, d := range peer.DomainNames {
				tp.Domains = append(tp.Domains, normalizeDomain(string(d)))
			}
			p.Notes = append(p.Notes, fmt.Sprintf("spec.egress[%d].%s[%d]: domainNames are not enforced by the dataplane: the peer matches no traffic there (never more open than the policy); the analyzer evaluates it for domain endpoints", index, list, j))
		default:
			// A peer whose field this version does not know.
			if r.Action == Accept {
				p.Notes = append(p.Notes, fmt.Sprintf("spec.%s[%d].%s[%d]: no peer field netfence knows: matches no traffic (Accept rule)", strings.ToLower(dir.String()), index, list, j))
				tp.Pod = nil
				tp.Networks = nil
				r.Peers = append(r.Peers, tp) // matches nothing
				continue
			}
			p.Notes = append(p.Notes, fmt.Sprintf("spec.%s[%d].%s[%d]: no peer field netfence knows: the rule denies all traffic (%s rule)", strings.ToLower(dir.String()), index, list, j, r.Action))
			r.Action = Deny
			tp.Everything = true
		}
		r.Peers = append(r.Peers, tp)
	}
	for k, pr := range protos {
		var tp TierPort
		var port *v1beta1.Port
		switch {
		case pr.TCP != nil:
			tp.Protocol, port = corev1.ProtocolTCP, pr.TCP.DestinationPort
		case pr.UDP != nil:
			tp.Protocol, port = corev1.ProtocolUDP, pr.UDP.DestinationPort
		case pr.SCTP != nil:
			tp.Protocol, port = corev1.ProtocolSCTP, pr.SCTP.DestinationPort
		case pr.DestinationNamedPort != "":
			tp.Name = pr.DestinationNamedPort
			r.Ports = append(r.Ports, tp)
			continue
		default:
			return r, fmt.Errorf("protocols[%d]: exactly one of tcp, udp, sctp and destinationNamedPort must be set", k)
		}
		switch {
		case port == nil:
			tp.From, tp.To = 0, 65535
		case port.Range != nil:
			tp.From, tp.To = port.Range.Start, port.Range.End
		default:
			tp.From, tp.To = port.Number, port.Number
		}
		if tp.From > tp.To || tp.To > 65535 || tp.From < 0 {
			return r, fmt.Errorf("protocols[%d]: port range %d-%d is empty or out of 1-65535", k, tp.From, tp.To)
		}
		r.Ports = append(r.Ports, tp)
	}
	return r, nil
}

// normalizeDomain lower-cases a domain name and drops a trailing dot.
func normalizeDomain(d string) string { return strings.TrimSuffix(strings.ToLower(d), ".") }

// DomainMatches reports whether a domain name pattern (as in a peer's
// domainNames, normalised) matches a host name: exactly, or for "*.rest"
// any name with one or more labels before ".rest".
func DomainMatches(pattern, host string) bool {
	host = normalizeDomain(host)
	if rest, ok := strings.CutPrefix(pattern, "*."); ok {
		prefix, found := strings.CutSuffix(host, "."+rest)
		return found && prefix != ""
	}
	return pattern == host
}

// PriorityGroup is the policies of one tier with one priority. Each
// policy decides by its first matching rule; the group's decision is the
// most restrictive of its policies' (Deny, then Pass, then Accept).
type PriorityGroup struct {
	Tier     Tier
	Priority int32
	// Policies are sorted by key.
	Policies []*ClusterPolicy
}
