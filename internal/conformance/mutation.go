package conformance

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// Mutation is a change an upstream test makes between probes: a patch of
// a ClusterNetworkPolicy, a namespace or pod label change, a deletion.
// State.Mutate applies it.
type Mutation interface {
	// UpstreamLine is the line of the upstream test source that makes
	// the change (the Patch, SetPodLabel, RemovePodLabel or Delete call).
	UpstreamLine() int
	// String says what changes.
	String() string
	apply(*State) error
}

// Gress names a rule list of a ClusterNetworkPolicy.
type Gress string

// The rule lists.
const (
	Ingress Gress = "ingress"
	Egress  Gress = "egress"
)

// rules returns the length of the policy's rule list and a function
// swapping two of its rules.
func rules(p *v1beta1.ClusterNetworkPolicy, g Gress) (n int, swap func(i, j int), err error) {
	switch g {
	case Ingress:
		r := p.Spec.Ingress
		return len(r), func(i, j int) { r[i], r[j] = r[j], r[i] }, nil
	case Egress:
		r := p.Spec.Egress
		return len(r), func(i, j int) { r[i], r[j] = r[j], r[i] }, nil
	}
	return 0, nil, fmt.Errorf("unknown rule list %q", g)
}

// SwapRules swaps two rules of a policy: mutate.Spec.Egress[I],
// mutate.Spec.Egress[J] = mutate.Spec.Egress[J], mutate.Spec.Egress[I].
type SwapRules struct {
	Line   int
	Policy string
	Gress  Gress
	I, J   int
}

// UpstreamLine implements Mutation.
func (m SwapRules) UpstreamLine() int { return m.Line }

func (m SwapRules) String() string {
	return fmt.Sprintf("swap %s rules %d and %d of ClusterNetworkPolicy %s", m.Gress, m.I, m.J, m.Policy)
}

func (m SwapRules) apply(s *State) error {
	p, err := s.cnp(m.Policy)
	if err != nil {
		return err
	}
	n, swap, err := rules(p, m.Gress)
	if err != nil {
		return err
	}
	if m.I < 0 || m.J < 0 || m.I >= n || m.J >= n {
		return fmt.Errorf("%d %s rules", n, m.Gress)
	}
	swap(m.I, m.J)
	return nil
}

// SetRuleAction sets the action of a rule.
type SetRuleAction struct {
	Line   int
	Policy string
	Gress  Gress
	Index  int
	Action v1beta1.ClusterNetworkPolicyRuleAction
}

// UpstreamLine implements Mutation.
func (m SetRuleAction) UpstreamLine() int { return m.Line }

func (m SetRuleAction) String() string {
	return fmt.Sprintf("set the action of %s rule %d of ClusterNetworkPolicy %s to %s", m.Gress, m.Index, m.Policy, m.Action)
}

func (m SetRuleAction) apply(s *State) error {
	p, err := s.cnp(m.Policy)
	if err != nil {
		return err
	}
	switch {
	case m.Gress == Ingress && m.Index >= 0 && m.Index < len(p.Spec.Ingress):
		p.Spec.Ingress[m.Index].Action = m.Action
	case m.Gress == Egress && m.Index >= 0 && m.Index < len(p.Spec.Egress):
		p.Spec.Egress[m.Index].Action = m.Action
	default:
		return fmt.Errorf("no %s rule %d", m.Gress, m.Index)
	}
	return nil
}

// SetRuleNamedPort replaces the protocols of a rule with one
// destinationNamedPort.
type SetRuleNamedPort struct {
	Line   int
	Policy string
	Gress  Gress
	Index  int
	Port   string
}

// UpstreamLine implements Mutation.
func (m SetRuleNamedPort) UpstreamLine() int { return m.Line }

func (m SetRuleNamedPort) String() string {
	return fmt.Sprintf("set the protocols of %s rule %d of ClusterNetworkPolicy %s to destinationNamedPort %s", m.Gress, m.Index, m.Policy, m.Port)
}

func (m SetRuleNamedPort) apply(s *State) error {
	p, err := s.cnp(m.Policy)
	if err != nil {
		return err
	}
	protos := []v1beta1.ClusterNetworkPolicyProtocol{{DestinationNamedPort: m.Port}}
	switch {
	case m.Gress == Ingress && m.Index >= 0 && m.Index < len(p.Spec.Ingress):
		p.Spec.Ingress[m.Index].Protocols = protos
	case m.Gress == Egress && m.Index >= 0 && m.Index < len(p.Spec.Egress):
		p.Spec.Egress[m.Index].Protocols = protos
	default:
		return fmt.Errorf("no %s rule %d", m.Gress, m.Index)
	}
	return nil
}

// PrependPodNetworksRule inserts, before the egress rules of a policy, a
// rule whose one peer is networks: the status.podIP of each pod, with the
// mask /32 when the first pod's address is IPv4 and /128 otherwise (as
// upstream computes it).
type PrependPodNetworksRule struct {
	Line   int
	Policy string
	Name   string
	Action v1beta1.ClusterNetworkPolicyRuleAction
	Pods   []PodRef
}

// UpstreamLine implements Mutation.
func (m PrependPodNetworksRule) UpstreamLine() int { return m.Line }

func (m PrependPodNetworksRule) String() string {
	return fmt.Sprintf("insert egress rule %q (%s to the addresses of %v) first in ClusterNetworkPolicy %s", m.Name, m.Action, m.Pods, m.Policy)
}

func (m PrependPodNetworksRule) apply(s *State) error {
	p, err := s.cnp(m.Policy)
	if err != nil {
		return err
	}
	var ips []netip.Addr
	for _, ref := range m.Pods {
		ip, err := s.PodIP(ref)
		if err != nil {
			return err
		}
		ips = append(ips, ip)
	}
	if len(ips) == 0 {
		return fmt.Errorf("no pods")
	}
	mask := "/32"
	if !ips[0].Is4() {
		mask = "/128"
	}
	rule := v1beta1.ClusterNetworkPolicyEgressRule{Name: m.Name, Action: m.Action, To: []v1beta1.ClusterNetworkPolicyEgressPeer{{}}}
	for _, ip := range ips {
		rule.To[0].Networks = append(rule.To[0].Networks, v1beta1.CIDR(ip.String()+mask))
	}
	p.Spec.Egress = append([]v1beta1.ClusterNetworkPolicyEgressRule{rule}, p.Spec.Egress...)
	return nil
}

// SetPriority sets a policy's priority.
type SetPriority struct {
	Line     int
	Policy   string
	Priority int32
}

// UpstreamLine implements Mutation.
func (m SetPriority) UpstreamLine() int { return m.Line }

func (m SetPriority) String() string {
	return fmt.Sprintf("set the priority of ClusterNetworkPolicy %s to %d", m.Policy, m.Priority)
}

func (m SetPriority) apply(s *State) error {
	p, err := s.cnp(m.Policy)
	if err != nil {
		return err
	}
	p.Spec.Priority = m.Priority
	return nil
}

// SetNamespaceLabels replaces a namespace's labels (upstream's
// SetLabels and a merge patch; the API server then adds
// kubernetes.io/metadata.name back, as netfence's cluster model does).
type SetNamespaceLabels struct {
	Line      int
	Namespace string
	Labels    map[string]string
}

// UpstreamLine implements Mutation.
func (m SetNamespaceLabels) UpstreamLine() int { return m.Line }

func (m SetNamespaceLabels) String() string {
	return fmt.Sprintf("set the labels of namespace %s to %v", m.Namespace, m.Labels)
}

func (m SetNamespaceLabels) apply(s *State) error {
	ns, err := s.namespace(m.Namespace)
	if err != nil {
		return err
	}
	ns.Labels = maps.Clone(m.Labels)
	return nil
}

// SetPodLabel adds or updates a pod label.
type SetPodLabel struct {
	Line       int
	Pod        PodRef
	Key, Value string
}

// UpstreamLine implements Mutation.
func (m SetPodLabel) UpstreamLine() int { return m.Line }

func (m SetPodLabel) String() string {
	return fmt.Sprintf("label pod %s %s=%s", m.Pod, m.Key, m.Value)
}

func (m SetPodLabel) apply(s *State) error {
	p, err := s.pod(m.Pod)
	if err != nil {
		return err
	}
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	p.Labels[m.Key] = m.Value
	return nil
}

// RemovePodLabel removes a pod label; a no-op if the pod lacks it.
type RemovePodLabel struct {
	Line int
	Pod  PodRef
	Key  string
}

// UpstreamLine implements Mutation.
func (m RemovePodLabel) UpstreamLine() int { return m.Line }

func (m RemovePodLabel) String() string {
	return fmt.Sprintf("remove label %s of pod %s", m.Key, m.Pod)
}

func (m RemovePodLabel) apply(s *State) error {
	p, err := s.pod(m.Pod)
	if err != nil {
		return err
	}
	delete(p.Labels, m.Key)
	return nil
}

// DeleteNetworkPolicy deletes a NetworkPolicy.
type DeleteNetworkPolicy struct {
	Line            int
	Namespace, Name string
}

// UpstreamLine implements Mutation.
func (m DeleteNetworkPolicy) UpstreamLine() int { return m.Line }

func (m DeleteNetworkPolicy) String() string {
	return fmt.Sprintf("delete NetworkPolicy %s/%s", m.Namespace, m.Name)
}

func (m DeleteNetworkPolicy) apply(s *State) error {
	n := len(s.policies)
	s.policies = slices.DeleteFunc(s.policies, func(np *networkingv1.NetworkPolicy) bool {
		return np.Namespace == m.Namespace && np.Name == m.Name
	})
	if len(s.policies) == n {
		return fmt.Errorf("no NetworkPolicy %s/%s", m.Namespace, m.Name)
	}
	return nil
}
