// Package advise turns observed flows into the NetworkPolicies that allow
// exactly them at the granularity of workloads, and proves the result with
// the analyzer: every observed flow allowed, and what else the new policies
// allow.
//
// Pods are grouped into workloads by stable labels (app.kubernetes.io/name,
// app, k8s-app, else every label but the ones controllers put on single
// pods); a namespace the advice covers gets a default deny for both
// directions (unless a policy already isolates everything there), and then,
// for each flow that the existing policies plus that default deny would
// deny, an ingress rule at the destination's workload and an egress rule
// at the source's, naming the peer workload (pod selector, and the
// namespace by its name label when it differs) or, for an address outside
// the cluster's pods, the address itself, and the port by its name when
// the destination pod declares one. Only what is missing is generated:
// directions the existing policies already allow get nothing.
package advise

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// Flow is an observed flow: the fields of a flow record (netfence monitor,
// agent --flow-log, connectivity --flows) that advice reads.
type Flow struct {
	From     string          `json:"from"`
	To       string          `json:"to"`
	SrcIP    string          `json:"srcIP"`
	DstIP    string          `json:"dstIP"`
	Protocol corev1.Protocol `json:"protocol"`
	Port     int32           `json:"port"`
	Verdict  string          `json:"verdict"`
}

// ReadFlows reads NDJSON flow records; blank lines are skipped.
func ReadFlows(r io.Reader) ([]Flow, error) {
	var out []Flow
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for line := 1; sc.Scan(); line++ {
		b := strings.TrimSpace(sc.Text())
		if b == "" {
			continue
		}
		var f Flow
		if err := json.Unmarshal([]byte(b), &f); err != nil {
			return nil, fmt.Errorf("flow record on line %d: %w", line, err)
		}
		if f.Protocol == "" || f.Port == 0 {
			return nil, fmt.Errorf("flow record on line %d: protocol and port are required", line)
		}
		out = append(out, f)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read flows: %w", err)
	}
	return out, nil
}

// Options say what to advise.
type Options struct {
	// Namespaces limits the advice to these namespaces (flows whose source
	// or destination is a pod in one of them); empty: every namespace of a
	// pod seen in the flows.
	Namespaces []string
}

// Advice is the generated policies and their proof.
type Advice struct {
	Policies []*networkingv1.NetworkPolicy
	// Flows are the distinct observed flows considered, Covered how many
	// of them the existing and generated policies allow together (all, or
	// the advisor has a bug: the proof says so), Uncovered the others.
	Flows, Covered int
	Uncovered      []string
	// Unresolved are flows whose endpoints are neither a pod of the
	// cluster nor an address.
	Unresolved []string
	// AlsoAllowed counts the ordered pod pairs, per observed port, that the
	// generated policies allow in the covered namespaces beyond the
	// observed flows (workload granularity widens), with examples.
	AlsoAllowed int
	Examples    []string
}

type endpoint struct {
	pod *cluster.Pod
	ip  netip.Addr
}

type flowKey struct {
	from, to netip.Addr
	proto    corev1.Protocol
	port     int32
}

// Advise computes the policies that allow the observed flows in c.
func Advise(c *cluster.Cluster, flows []Flow, opts Options) (*Advice, error) {
	adv := &Advice{}
	seen := map[flowKey]bool{}
	var fs []policy.Flow
	covered := map[string]bool{}
	for _, ns := range opts.Namespaces {
		covered[ns] = true
	}
	for _, f := range flows {
		src, err1 := resolve(c, f.From, f.SrcIP)
		dst, err2 := resolve(c, f.To, f.DstIP)
		if err1 != nil || err2 != nil {
			adv.Unresolved = append(adv.Unresolved, fmt.Sprintf("%s -> %s %s/%d", f.From, f.To, f.Protocol, f.Port))
			continue
		}
		k := flowKey{src.ip, dst.ip, f.Protocol, f.Port}
		if seen[k] {
			continue
		}
		seen[k] = true
		pf := policy.Flow{From: policy.Endpoint{Pod: src.pod, IP: src.ip}, To: policy.Endpoint{Pod: dst.pod, IP: dst.ip}, Protocol: f.Protocol, Port: f.Port}
		if len(opts.Namespaces) == 0 {
			for _, p := range []*cluster.Pod{src.pod, dst.pod} {
				if p != nil && !p.HostNetwork {
					covered[p.Namespace] = true
				}
			}
		}
		fs = append(fs, pf)
	}
	adv.Flows = len(fs)

	// The existing policies plus a default deny per covered namespace.
	existing := c.Policies
	var gen []*networkingv1.NetworkPolicy
	for _, ns := range sortedKeys(covered) {
		if !deniesAll(c, ns) {
			gen = append(gen, defaultDeny(ns))
		}
	}
	// Staged policies count as enforced: advice is for the rollout.
	base := policy.NewSet(withPolicies(c, append(slices.Clone(existing), gen...))).WithStaged()

	// Rules for what the base set denies, per workload and direction.
	rules := map[ruleKey]*ruleAcc{}
	for _, f := range fs {
		v := base.Evaluate(f)
		if !v.Egress.Allowed && f.From.Pod != nil && covered[f.From.Pod.Namespace] {
			addRule(rules, policy.Egress, f.From.Pod, f.To, f)
		}
		if !v.Ingress.Allowed && f.To.Pod != nil && covered[f.To.Pod.Namespace] {
			addRule(rules, policy.Ingress, f.To.Pod, f.From, f)
		}
	}
	gen = append(gen, buildPolicies(rules)...)
	adv.Policies = gen

	// The proof: the analyzer with the existing and generated policies.
	final := policy.NewSet(withPolicies(c, append(slices.Clone(existing), gen...))).WithStaged()
	if len(final.Rejected) > 0 {
		return nil, fmt.Errorf("advise: generated policies do not compile: %v", final.Rejected)
	}
	for _, f := range fs {
		if final.Evaluate(f).Allowed {
			adv.Covered++
		} else {
			adv.Uncovered = append(adv.Uncovered, fmt.Sprintf("%s -> %s %s/%d", f.From, f.To, f.Protocol, f.Port))
		}
	}
	adv.AlsoAllowed, adv.Examples = alsoAllowed(c, base, final, fs, covered)
	return adv, nil
}

func resolve(c *cluster.Cluster, name, addr string) (endpoint, error) {
	if ip, err := netip.ParseAddr(addr); err == nil {
		ip = ip.Unmap()
		return endpoint{pod: c.ActivePodByIP(ip), ip: ip}, nil
	}
	if p := c.Pod(name); p != nil && len(p.IPs) > 0 {
		return endpoint{pod: p, ip: p.IPs[0]}, nil
	}
	if ip, err := netip.ParseAddr(name); err == nil {
		ip = ip.Unmap()
		return endpoint{pod: c.ActivePodByIP(ip), ip: ip}, nil
	}
	return endpoint{}, fmt.Errorf("%q: no such pod and no address", name)
}

func withPolicies(c *cluster.Cluster, nps []*networkingv1.NetworkPolicy) *cluster.Cluster {
	nss := make([]*cluster.Namespace, 0, len(c.Namespaces))
	for _, ns := range c.Namespaces {
		nss = append(nss, ns)
	}
	return cluster.NewWith(cluster.Parts{Namespaces: nss, Pods: c.Pods, Policies: nps, ClusterPolicies: c.ClusterPolicies, Nodes: c.Nodes})
}

// deniesAll reports whether a policy of ns selects every pod there for
// both directions already.
func deniesAll(c *cluster.Cluster, ns string) bool {
	var in, eg bool
	for _, np := range c.Policies {
		if np.Namespace != ns || len(np.Spec.PodSelector.MatchLabels)+len(np.Spec.PodSelector.MatchExpressions) > 0 {
			continue
		}
		t := policy.PolicyTypes(&np.Spec)
		in = in || t[policy.Ingress]
		eg = eg || t[policy.Egress]
	}
	return in && eg
}

func defaultDeny(ns string) *networkingv1.NetworkPolicy {
	np := newPolicy(ns, "default-deny")
	np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	return np
}

func newPolicy(ns, name string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "netfence-advise"}},
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
