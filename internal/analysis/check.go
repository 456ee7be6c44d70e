package analysis

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// Endpoint names a flow's end as given on the command line: "ns/pod", an
// IP address, or a domain name (optionally with its address).
type Endpoint = policy.Endpoint

// ResolveEndpoint resolves "ns/pod" (or "pod" in namespace default) or an
// address. An address owned by an active pod is that pod; any other is
// external, as the dataplane (and policy.Set.AddrFlow) sees it.
func ResolveEndpoint(c *cluster.Cluster, s string) (Endpoint, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		ip = ip.Unmap()
		return Endpoint{Pod: c.ActivePodByIP(ip), IP: ip}, nil
	}
	key := s
	if !strings.Contains(key, "/") {
		key = "default/" + key
	}
	p := c.Pod(key)
	if p == nil {
		return Endpoint{}, fmt.Errorf("%q: no such pod and not an IP address", s)
	}
	return Endpoint{Pod: p}, nil
}

// domainPattern is the API's DomainName pattern without the wildcard: a
// host name of two or more labels, optionally ending in a dot.
var domainPattern = regexp.MustCompile(`^([a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.)+[a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.?$`)

// ResolveDestination resolves a destination as ResolveEndpoint does, and
// also a domain name outside the cluster, "example.com" or
// "example.com=203.0.113.7" (what cluster policies' domainNames peers
// match; see policy.Endpoint.Domain). A name that is a pod of namespace
// default is that pod. The address of a domain may not be a pod-network
// pod's.
func ResolveDestination(c *cluster.Cluster, s string) (Endpoint, error) {
	name, addr, withIP := strings.Cut(s, "=")
	if !withIP {
		if e, err := ResolveEndpoint(c, s); err == nil || !domainPattern.MatchString(s) || !strings.Contains(strings.TrimSuffix(s, "."), ".") {
			return e, err
		}
	}
	if !domainPattern.MatchString(name) {
		return Endpoint{}, fmt.Errorf("%q: not a domain name (NAME or NAME=IP)", s)
	}
	e := Endpoint{Domain: strings.TrimSuffix(strings.ToLower(name), ".")}
	if withIP {
		ip, err := netip.ParseAddr(addr)
		if err != nil {
			return Endpoint{}, fmt.Errorf("%q: %q is not an IP address", s, addr)
		}
		e.IP = ip.Unmap()
		// A node's address (host-network pods share it) may have a
		// name; a pod-network pod's may not.
		if p := c.PodByIP(e.IP); p != nil && !p.HostNetwork {
			return Endpoint{}, fmt.Errorf("%q: %s is the address of pod %s; a domain endpoint is outside the cluster", s, e.IP, p.Key())
		}
	}
	return e, nil
}

// CheckRequest is a question "can From reach To on Port?". Port is
// "PROTO/NUMBER" or "PROTO/NAME" (a named port of the destination pod).
type CheckRequest struct {
	From, To string
	Port     string
}

// CheckResult is the answer, in the JSON form of `netfence check -o json`.
type CheckResult struct {
	Allowed  bool       `json:"allowed"`
	From     FlowEnd    `json:"from"`
	To       FlowEnd    `json:"to"`
	Protocol string     `json:"protocol"`
	Port     int32      `json:"port"`
	PortName string     `json:"portName,omitempty"`
	Reason   string     `json:"reason,omitempty"`
	Egress   SideResult `json:"egress"`
	Ingress  SideResult `json:"ingress"`
	// Pending is the verdict with the staged policies enforced
	// (policy.Set.WithStaged), set when the input stages policies that
	// the verdict above does not enforce.
	Pending *PendingResult `json:"pending,omitempty"`
	// Notes are remarks, such as an inactive pod.
	Notes []string `json:"notes,omitempty"`
	// Warnings are the input's warnings (manifests and cluster), set by
	// the caller.
	Warnings []string `json:"warnings,omitempty"`
}

// FlowEnd is one end of a checked flow.
type FlowEnd struct {
	Pod string `json:"pod,omitempty"`
	IP  string `json:"ip,omitempty"`
	// Domain is set for a destination named by a domain name.
	Domain string `json:"domain,omitempty"`
}

// SideResult is one direction's verdict.
type SideResult struct {
	// Subject is false for external endpoints and hostNetwork pods.
	Subject   bool     `json:"subject"`
	Isolated  bool     `json:"isolated"`
	Policies  []string `json:"policies"`
	Allowed   bool     `json:"allowed"`
	AllowedBy []string `json:"allowedBy"`
	Reason    string   `json:"reason"`
	// The fields below are set only when the cluster has cluster-scoped
	// policies.

	// Layer is what decided: Admin, NetworkPolicy, Baseline or Default
	// (empty for an endpoint not subject to policy, a pod holding a
	// shared address, and ingress from the pod's own node).
	Layer string `json:"layer,omitempty"`
	// DecidedBy is the cluster policy rule that decided (Admin or
	// Baseline; a Baseline Pass leads to the default).
	DecidedBy *TierRuleResult `json:"decidedBy,omitempty"`
	// PassedBy is the Admin Pass rule that handed the flow on to
	// NetworkPolicy and the Baseline tier.
	PassedBy *TierRuleResult `json:"passedBy,omitempty"`
	// Ties are the rules of policies of the deciding tier and priority
	// when their actions differ (the most restrictive wins: Deny, Pass,
	// Accept).
	Ties []TierRuleResult `json:"ties,omitempty"`
}

// TierRuleResult names a rule of a cluster-scoped policy that matched.
type TierRuleResult struct {
	// Policy is "cnp/NAME", "anp/NAME" or "banp/NAME".
	Policy string `json:"policy"`
	Kind   string `json:"kind"`
	Tier   string `json:"tier"`
	// Priority is absent for a BaselineAdminNetworkPolicy, which has none
	// (it comes after every Baseline ClusterNetworkPolicy).
	Priority *int32 `json:"priority,omitempty"`
	// Rule is the rule's index in spec.ingress or spec.egress.
	Rule     int    `json:"rule"`
	RuleName string `json:"ruleName,omitempty"`
	Action   string `json:"action"`
	// Match is the matching part: "cnp/x spec.egress[0].to[1].protocols[0]".
	Match string `json:"match"`
}

func tierRuleResult(m *policy.TierMatch) *TierRuleResult {
	if m == nil {
		return nil
	}
	out := &TierRuleResult{Policy: m.ClusterPolicy.Key(), Kind: m.ClusterPolicy.Kind, Tier: m.ClusterPolicy.Tier.String(),
		Rule: m.Rule, Action: m.Action.String(), Match: m.RuleMatch.String()}
	if m.ClusterPolicy.Kind != cluster.KindBANP {
		prio := m.ClusterPolicy.Priority
		out.Priority = &prio
	}
	if r := m.TierRule(); r != nil {
		out.RuleName = r.Name
	}
	return out
}

// describe says the rule in words, as policy.TierMatch.Describe does.
func (r *TierRuleResult) describe() string {
	s := r.Match
	if r.RuleName != "" {
		s += fmt.Sprintf(" %q", r.RuleName)
	}
	if r.Kind == cluster.KindBANP {
		return s + fmt.Sprintf(" (%s tier, after every Baseline ClusterNetworkPolicy): %s", r.Tier, r.Action)
	}
	return s + fmt.Sprintf(" (%s tier, priority %d): %s", r.Tier, *r.Priority, r.Action)
}

// Check answers a request.
func Check(set *policy.Set, req CheckRequest) (*CheckResult, error) {
	c := set.Cluster
	from, err := ResolveEndpoint(c, req.From)
	if err != nil {
		return nil, fmt.Errorf("--from: %w", err)
	}
	to, err := ResolveDestination(c, req.To)
	if err != nil {
		return nil, fmt.Errorf("--to: %w", err)
	}
	byIP := [2]bool{from.IP.IsValid(), to.IP.IsValid()}
	// An address several running pods hold (see cluster.AddressConflict)
	// is the pod at the other end when that pod holds it: a pod sending
	// to its own address talks to itself.
	if byIP[1] && from.Pod != nil && to.Pod != nil && holds(c.Holders(to.IP), from.Pod) {
		to.Pod = from.Pod
	} else if byIP[0] && from.Pod != nil && to.Pod != nil && holds(c.Holders(from.IP), to.Pod) {
		from.Pod = to.Pod
	}
	protoS, portS, ok := strings.Cut(req.Port, "/")
	if !ok {
		protoS, portS = "TCP", req.Port
	}
	proto := corev1.Protocol(strings.ToUpper(protoS))
	switch proto {
	case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
	default:
		return nil, fmt.Errorf("--port %q: protocol must be TCP, UDP or SCTP", req.Port)
	}
	res := &CheckResult{Protocol: string(proto)}
	if n, err := strconv.Atoi(portS); err == nil {
		if n < 1 || n > 65535 {
			return nil, fmt.Errorf("--port %q: port must be from 1 to 65535", req.Port)
		}
		res.Port = int32(n)
	} else {
		if to.Pod == nil {
			return nil, fmt.Errorf("--port %q: a named port needs a destination pod, and %s is not one", req.Port, req.To)
		}
		n, ok := to.Pod.NamedPort(portS, proto)
		if !ok {
			return nil, fmt.Errorf("--port %q: pod %s has no container port named %q for %s", req.Port, to.Pod.Key(), portS, proto)
		}
		res.Port, res.PortName = n, portS
	}
	// Addresses: the destination's primary address unless given, the
	// source's address of the same family.
	if !to.IP.IsValid() && to.Pod != nil && len(to.Pod.IPs) > 0 {
		to.IP = to.Pod.IPs[0]
	}
	if !from.IP.IsValid() && from.Pod != nil {
		from.IP = from.Pod.IPFor(to.IP)
		if !to.IP.IsValid() && len(from.Pod.IPs) > 0 {
			from.IP = from.Pod.IPs[0] // a domain of unknown address
		}
	}
	for i, e := range []Endpoint{from, to} {
		if hs := c.Holders(e.IP); byIP[i] && len(hs) > 0 && e.Pod != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("address %s is held by %d running pods; it is taken as %s here, and every one of them is denied all traffic (fail closed)", e.IP, len(hs), e.Pod.Key()))
		}
	}
	for _, e := range []Endpoint{from, to} {
		if e.Pod != nil {
			if ok, why := e.Pod.Active(); !ok {
				res.Notes = append(res.Notes, fmt.Sprintf("pod %s %s: it takes part in no traffic now; the verdict is what policy says once it runs", e.Pod.Key(), why))
			}
		}
	}
	if to.Domain != "" && !to.IP.IsValid() && from.Pod != nil {
		if peers := undeterminedPeers(set, from.Pod, proto, res.Port); len(peers) > 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("%s was given without an address: the verdict takes it to be outside %s; give --to %s=IP to decide them",
				to.Domain, strings.Join(peers, "; "), to.Domain))
		}
	}
	f := policy.Flow{
		From:     policy.Endpoint{Pod: from.Pod, IP: from.IP},
		To:       policy.Endpoint{Pod: to.Pod, IP: to.IP, Domain: to.Domain},
		Protocol: proto,
		Port:     res.Port,
	}
	v := set.Evaluate(f)
	res.Pending = pending(set, f)
	res.Allowed, res.Reason = v.Allowed, v.Reason
	res.From, res.To = flowEnd(from), flowEnd(to)
	res.Egress, res.Ingress = sideResult(v.Egress), sideResult(v.Ingress)
	return res, nil
}

// holds reports whether p is one of pods.
func holds(pods []*cluster.Pod, p *cluster.Pod) bool {
	for _, h := range pods {
		if h.Key() == p.Key() {
			return true
		}
	}
	return false
}

func flowEnd(e Endpoint) FlowEnd {
	out := FlowEnd{}
	if e.Pod != nil {
		out.Pod = e.Pod.Key()
	}
	if e.IP.IsValid() {
		out.IP = e.IP.String()
	}
	out.Domain = e.Domain
	return out
}

func sideResult(s policy.Side) SideResult {
	out := SideResult{Subject: s.Subject, Isolated: s.Isolated(), Allowed: s.Allowed, Reason: s.Reason, Policies: []string{}, AllowedBy: []string{},
		Layer: string(s.Layer), DecidedBy: tierRuleResult(s.DecidedBy), PassedBy: tierRuleResult(s.PassedBy)}
	for i := range s.Ties {
		out.Ties = append(out.Ties, *tierRuleResult(&s.Ties[i]))
	}
	for _, p := range s.Isolating {
		out.Policies = append(out.Policies, p.Key())
	}
	for _, m := range s.AllowedBy {
		out.AllowedBy = append(out.AllowedBy, m.String())
	}
	return out
}

// WriteJSON writes the result as JSON.
func (r *CheckResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the result in words.
func (r *CheckResult) WriteText(w io.Writer) {
	verdict := "DENIED"
	if r.Allowed {
		verdict = "ALLOWED"
	}
	port := fmt.Sprintf("%s/%d", r.Protocol, r.Port)
	if r.PortName != "" {
		port += " (" + r.PortName + ")"
	}
	fmt.Fprintf(w, "%s: %s -> %s on %s\n", verdict, endWords(r.From), endWords(r.To), port)
	if r.Reason != "" {
		fmt.Fprintf(w, "  %s\n", r.Reason)
	}
	for _, s := range []struct {
		name string
		side SideResult
		end  FlowEnd
	}{{"egress at source", r.Egress, r.From}, {"ingress at destination", r.Ingress, r.To}} {
		mark := "denied"
		if s.side.Allowed {
			mark = "allowed"
		}
		if s.side.Layer != "" {
			fmt.Fprintf(w, "  %s (%s): %s\n", s.name, endWords(s.end), mark)
			s.side.writeTierText(w)
			continue
		}
		fmt.Fprintf(w, "  %s (%s): %s\n", s.name, endWords(s.end), mark)
		if s.side.Isolated && len(s.side.Policies) > 0 {
			fmt.Fprintf(w, "    isolated by: %s\n", strings.Join(s.side.Policies, ", "))
		}
		if len(s.side.AllowedBy) > 0 {
			for _, a := range s.side.AllowedBy {
				fmt.Fprintf(w, "    allowed by: %s\n", a)
			}
		} else {
			fmt.Fprintf(w, "    %s\n", s.side.Reason)
		}
	}
	if r.Pending != nil {
		r.Pending.writeText(w)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

// writeTierText writes a side decided with cluster policies in the
// picture: the layers in evaluation order, as far as they went.
func (s *SideResult) writeTierText(w io.Writer) {
	if s.PassedBy != nil {
		fmt.Fprintf(w, "    Admin tier: passed by %s\n", s.PassedBy.describe())
	}
	switch policy.Layer(s.Layer) {
	case policy.LayerAdmin, policy.LayerBaseline:
		fmt.Fprintf(w, "    %s tier: decided by %s\n", s.Layer, s.DecidedBy.describe())
	case policy.LayerNetworkPolicy:
		fmt.Fprintf(w, "    NetworkPolicy: isolated by %s\n", strings.Join(s.Policies, ", "))
		if len(s.AllowedBy) == 0 {
			fmt.Fprintf(w, "      no rule allows this flow\n")
		}
		for _, a := range s.AllowedBy {
			fmt.Fprintf(w, "      allowed by: %s\n", a)
		}
	case policy.LayerDefault:
		if s.DecidedBy != nil {
			fmt.Fprintf(w, "    Baseline tier: passed by %s\n", s.DecidedBy.describe())
			fmt.Fprintf(w, "    default allow: a Baseline Pass leads to the default\n")
		} else {
			what := "not isolated by NetworkPolicy and no cluster policy matched"
			if s.PassedBy != nil {
				what = "not isolated by NetworkPolicy and no Baseline policy matched"
			}
			fmt.Fprintf(w, "    default allow: %s\n", what)
		}
	}
	if len(s.Ties) > 0 {
		fmt.Fprintf(w, "    equal priority, different actions (the most restrictive wins):\n")
		for _, t := range s.Ties {
			fmt.Fprintf(w, "      %s\n", t.describe())
		}
	}
}

// undeterminedPeers lists the address peers that could match a domain
// destination whose address is not known, for a flow from pod on
// proto/port: networks of cluster policies selecting the pod that do not
// hold a whole family, node peers, and ipBlocks of NetworkPolicies
// isolating it for egress.
func undeterminedPeers(set *policy.Set, pod *cluster.Pod, proto corev1.Protocol, port int32) []string {
	var out []string
	nsLabels := set.Cluster.NamespaceLabels(pod.Namespace)
	for _, p := range set.ClusterPolicies {
		if !p.Selects(pod, nsLabels) {
			continue
		}
		for _, r := range p.Rules[policy.Egress] {
			if len(r.Ports) > 0 && !slices.ContainsFunc(r.Ports, func(tp policy.TierPort) bool { return tp.Matches(proto, port, nil) }) {
				continue
			}
			for i, peer := range r.Peers {
				where := fmt.Sprintf("%s spec.egress[%d].to[%d]", p.Key(), r.Index, i)
				switch {
				case peer.Nodes != nil:
					out = append(out, where+" (nodes)")
				case len(peer.Networks) > 0 && !slices.ContainsFunc(peer.Networks, func(n netip.Prefix) bool { return n.Bits() == 0 }):
					nets := make([]string, len(peer.Networks))
					for k, n := range peer.Networks {
						nets[k] = n.String()
					}
					out = append(out, where+" ("+strings.Join(nets, ", ")+")")
				}
			}
		}
	}
	for _, p := range set.Isolating(pod, policy.Egress) {
		for _, r := range p.Rules[policy.Egress] {
			if _, ok := r.MatchingPort(proto, port, nil); !ok {
				continue
			}
			for i, peer := range r.Peers {
				if peer.IPBlock != nil {
					out = append(out, fmt.Sprintf("%s spec.egress[%d].to[%d] (ipBlock %s)", p.Key(), r.Index, i, peer.IPBlock))
				}
			}
		}
	}
	return out
}

func endWords(e FlowEnd) string {
	switch {
	case e.Domain != "" && e.IP != "":
		return e.Domain + " (" + e.IP + ")"
	case e.Domain != "":
		return e.Domain
	case e.Pod != "" && e.IP != "":
		return e.Pod + " (" + e.IP + ")"
	case e.Pod != "":
		return e.Pod
	}
	return e.IP
}
