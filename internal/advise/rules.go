package advise

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// stableKeys name a pod's workload, in order of preference.
var stableKeys = []string{"app.kubernetes.io/name", "app", "k8s-app", "name"}

// volatileKeys are labels controllers put on single pods or revisions.
var volatileKeys = map[string]bool{
	"pod-template-hash": true, "controller-revision-hash": true, "pod-template-generation": true,
	"statefulset.kubernetes.io/pod-name": true, "apps.kubernetes.io/pod-index": true,
	"batch.kubernetes.io/controller-uid": true, "controller-uid": true,
}

// workloadLabels returns the labels that select a pod's workload: one
// stable key if the pod has one (with app.kubernetes.io/instance beside
// app.kubernetes.io/name), else every label but the volatile ones; empty
// for a pod without labels (its workload is then its namespace).
func workloadLabels(p *cluster.Pod) map[string]string {
	for _, k := range stableKeys {
		if v := p.Labels[k]; v != "" {
			out := map[string]string{k: v}
			if i := p.Labels["app.kubernetes.io/instance"]; k == "app.kubernetes.io/name" && i != "" {
				out["app.kubernetes.io/instance"] = i
			}
			return out
		}
	}
	out := map[string]string{}
	for k, v := range p.Labels {
		if !volatileKeys[k] {
			out[k] = v
		}
	}
	return out
}

func labelsKey(m map[string]string) string {
	keys := sortedKeys(m)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

type ruleKey struct {
	dir      policy.Direction
	ns       string
	workload string
}

type ruleAcc struct {
	selector map[string]string
	peers    map[string]*peerAcc
}

type peerAcc struct {
	peer  networkingv1.NetworkPolicyPeer
	ports map[string]networkingv1.NetworkPolicyPort
}

// addRule records that subject (a pod of a covered namespace) must allow
// peer in dir for the flow.
func addRule(rules map[ruleKey]*ruleAcc, dir policy.Direction, subject *cluster.Pod, peer policy.Endpoint, f policy.Flow) {
	sel := workloadLabels(subject)
	k := ruleKey{dir, subject.Namespace, labelsKey(sel)}
	acc := rules[k]
	if acc == nil {
		acc = &ruleAcc{selector: sel, peers: map[string]*peerAcc{}}
		rules[k] = acc
	}
	np, pk := peerOf(subject.Namespace, peer)
	pa := acc.peers[pk]
	if pa == nil {
		pa = &peerAcc{peer: np, ports: map[string]networkingv1.NetworkPolicyPort{}}
		acc.peers[pk] = pa
	}
	// The destination pod names the port, if it declares it.
	dst := f.To.Pod
	proto := f.Protocol
	port := networkingv1.NetworkPolicyPort{Protocol: &proto}
	val := intstr.FromInt32(f.Port)
	if dst != nil && !dst.HostNetwork {
		for _, cp := range dst.Ports {
			if cp.Protocol == f.Protocol && cp.Port == f.Port && cp.Name != "" {
				val = intstr.FromString(cp.Name)
				break
			}
		}
	}
	port.Port = &val
	pa.ports[fmt.Sprintf("%s/%s", proto, val.String())] = port
}

// peerOf returns the peer that names e from a policy of namespace ns, and
// a key for it.
func peerOf(ns string, e policy.Endpoint) (networkingv1.NetworkPolicyPeer, string) {
	if e.Pod == nil || e.Pod.HostNetwork {
		bits := 32
		if e.IP.Is6() {
			bits = 128
		}
		cidr := netip.PrefixFrom(e.IP, bits).String()
		return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr}}, "ip:" + cidr
	}
	sel := workloadLabels(e.Pod)
	peer := networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: sel}}
	key := "pods:" + labelsKey(sel)
	if len(sel) == 0 {
		peer.PodSelector = &metav1.LabelSelector{}
	}
	if e.Pod.Namespace != ns {
		peer.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{cluster.MetadataNameLabel: e.Pod.Namespace}}
		key = "ns:" + e.Pod.Namespace + ":" + key
	}
	return peer, key
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// policyName derives a name from a workload's labels and the direction.
func policyName(sel map[string]string, dir policy.Direction) string {
	base := "namespace"
	for _, k := range stableKeys {
		if v := sel[k]; v != "" {
			base = v
			break
		}
	}
	if base == "namespace" && len(sel) > 0 {
		base = labelsKey(sel)
	}
	base = strings.Trim(notDNS.ReplaceAllString(strings.ToLower(base), "-"), "-")
	if len(base) > 40 {
		base = strings.Trim(base[:40], "-")
	}
	if base == "" {
		base = "workload"
	}
	return fmt.Sprintf("allow-%s-%s", base, strings.ToLower(dir.String()))
}

// buildPolicies turns the rules into one policy per workload and
// direction, in a stable order.
func buildPolicies(rules map[ruleKey]*ruleAcc) []*networkingv1.NetworkPolicy {
	keys := make([]ruleKey, 0, len(rules))
	for k := range rules {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.ns != b.ns {
			return a.ns < b.ns
		}
		if a.workload != b.workload {
			return a.workload < b.workload
		}
		return a.dir < b.dir
	})
	names := map[string]int{}
	var out []*networkingv1.NetworkPolicy
	for _, k := range keys {
		acc := rules[k]
		name := policyName(acc.selector, k.dir)
		if n := names[k.ns+"/"+name]; n > 0 {
			names[k.ns+"/"+name] = n + 1
			name = fmt.Sprintf("%s-%d", name, n+1)
		} else {
			names[k.ns+"/"+name] = 1
		}
		np := newPolicy(k.ns, name)
		np.Spec.PodSelector = metav1.LabelSelector{MatchLabels: acc.selector}
		if len(acc.selector) == 0 {
			np.Spec.PodSelector = metav1.LabelSelector{}
		}
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyType(k.dir.String())}
		for _, pk := range sortedKeys(acc.peers) {
			pa := acc.peers[pk]
			var ports []networkingv1.NetworkPolicyPort
			for _, portKey := range sortedKeys(pa.ports) {
				ports = append(ports, pa.ports[portKey])
			}
			if k.dir == policy.Ingress {
				np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{pa.peer}, Ports: ports})
			} else {
				np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{pa.peer}, Ports: ports})
			}
		}
		out = append(out, np)
	}
	return out
}

// maxPairPods bounds the pods alsoAllowed compares pairwise.
const maxPairPods = 2000

// alsoAllowed counts the pod pairs and observed ports that final allows
// and base does not, beyond the observed flows, with a pod of a covered
// namespace at one end; -1 when the cluster is too big to compare.
func alsoAllowed(c *cluster.Cluster, base, final *policy.Set, fs []policy.Flow, covered map[string]bool) (int, []string) {
	active, _ := c.ActivePods()
	if len(active) > maxPairPods {
		return -1, nil
	}
	type svc struct {
		proto corev1.Protocol
		port  int32
	}
	var svcs []svc
	observed := map[string]bool{}
	for _, f := range fs {
		if s := (svc{f.Protocol, f.Port}); !slices.Contains(svcs, s) {
			svcs = append(svcs, s)
		}
		observed[fmt.Sprintf("%s|%s|%s|%d", f.From.IP, f.To.IP, f.Protocol, f.Port)] = true
	}
	n := 0
	var ex []string
	for _, src := range active {
		for _, dst := range active {
			if src == dst || !(covered[src.Namespace] || covered[dst.Namespace]) {
				continue
			}
			sip := src.IPFor(dst.IPs[0])
			for _, s := range svcs {
				if observed[fmt.Sprintf("%s|%s|%s|%d", sip, dst.IPs[0], s.proto, s.port)] {
					continue
				}
				f := final.AddrFlow(sip, dst.IPs[0], s.proto, s.port)
				if final.Evaluate(f).Allowed && !base.Evaluate(f).Allowed {
					n++
					if len(ex) < 5 {
						ex = append(ex, fmt.Sprintf("%s -> %s %s/%d", src.Key(), dst.Key(), s.proto, s.port))
					}
				}
			}
		}
	}
	return n, ex
}
