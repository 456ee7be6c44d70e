package connectivity

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netfence/netfence/internal/analysis"
	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/policy"
	"github.com/netfence/netfence/internal/validation"
)

var clusters = flag.Int("clusters", 200, "random clusters in TestDifferential")

// needRoot skips unless the test can create network namespaces.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and nftables rules (CI runs as root)")
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		t.Skipf("no network namespace support: %v", err)
	}
}

// randomCluster builds a small cluster exercising every NetworkPolicy
// feature: selectors with expressions, namespace selectors, both in one
// peer, ipBlocks with except (IPv4 and IPv6), named ports, endPort, UDP,
// SCTP, both directions, explicit and defaulted policyTypes.
func randomCluster(r *rand.Rand, id int) *cluster.Cluster {
	nsNames := []string{"alpha", "beta", "gamma"}[:2+r.IntN(2)]
	var nss []*cluster.Namespace
	for _, n := range nsNames {
		l := labels.Set{}
		if r.IntN(2) == 0 {
			l["team"] = []string{"x", "y"}[r.IntN(2)]
		}
		if r.IntN(2) == 0 {
			l["env"] = []string{"prod", "dev"}[r.IntN(2)]
		}
		nss = append(nss, &cluster.Namespace{Name: n, Labels: l, Defined: true})
	}
	var pods []*cluster.Pod
	npods := 3 + r.IntN(4)
	for i := 0; i < npods; i++ {
		l := labels.Set{}
		if r.IntN(4) != 0 {
			l["app"] = []string{"a", "b", "c"}[r.IntN(3)]
		}
		if r.IntN(2) == 0 {
			l["role"] = []string{"x", "y"}[r.IntN(2)]
		}
		p := &cluster.Pod{
			Namespace: nsNames[r.IntN(len(nsNames))],
			Name:      fmt.Sprintf("p%d", i),
			Labels:    l,
			Phase:     corev1.PodRunning,
			NodeName:  "node-1",
			IPs:       []netip.Addr{netip.AddrFrom4([4]byte{10, 244, byte(i / 4), byte(2 + (i%4)*4 + r.IntN(3))})},
		}
		if r.IntN(4) == 0 {
			p.IPs = append(p.IPs, netip.MustParseAddr(fmt.Sprintf("fd00:10:244::%x", 0x10+i)))
		}
		// Named ports: "http" maps to different numbers on different pods.
		switch r.IntN(3) {
		case 0:
			p.Ports = append(p.Ports, cluster.ContainerPort{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80})
		case 1:
			p.Ports = append(p.Ports, cluster.ContainerPort{Name: "http", Protocol: corev1.ProtocolTCP, Port: 8080})
		}
		if r.IntN(2) == 0 {
			p.Ports = append(p.Ports, cluster.ContainerPort{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53})
		}
		pods = append(pods, p)
	}
	var pols []*networkingv1.NetworkPolicy
	for i, n := 0, 1+r.IntN(4); i < n; i++ {
		np := &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: nsNames[r.IntN(len(nsNames))], Name: fmt.Sprintf("pol%d", i)},
			Spec:       networkingv1.NetworkPolicySpec{PodSelector: *randomSelector(r)},
		}
		switch r.IntN(4) {
		case 0:
			np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		case 1:
			np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
		case 2:
			np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
		}
		for j, m := 0, r.IntN(3); j < m; j++ {
			np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: randomPeers(r, pods), Ports: randomPorts(r)})
		}
		for j, m := 0, r.IntN(3); j < m; j++ {
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: randomPeers(r, pods), Ports: randomPorts(r)})
		}
		if errs := validation.NetworkPolicy(np); len(errs) > 0 {
			panic(fmt.Sprintf("cluster %d: generated an invalid policy: %v", id, errs))
		}
		pols = append(pols, np)
	}
	return cluster.New(nss, pods, pols)
}

func randomSelector(r *rand.Rand) *metav1.LabelSelector {
	s := &metav1.LabelSelector{}
	switch r.IntN(5) {
	case 0: // empty: everything
	case 1, 2:
		s.MatchLabels = map[string]string{"app": []string{"a", "b", "c"}[r.IntN(3)]}
	case 3:
		op := []metav1.LabelSelectorOperator{metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn, metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist}[r.IntN(4)]
		req := metav1.LabelSelectorRequirement{Key: []string{"app", "role"}[r.IntN(2)], Operator: op}
		if op == metav1.LabelSelectorOpIn || op == metav1.LabelSelectorOpNotIn {
			req.Values = []string{"a", "x"}[:1+r.IntN(2)]
		}
		s.MatchExpressions = []metav1.LabelSelectorRequirement{req}
	case 4:
		s.MatchLabels = map[string]string{"role": []string{"x", "y"}[r.IntN(2)]}
	}
	return s
}

func randomNamespaceSelector(r *rand.Rand) *metav1.LabelSelector {
	s := &metav1.LabelSelector{}
	switch r.IntN(4) {
	case 0:
	case 1:
		s.MatchLabels = map[string]string{"team": []string{"x", "y"}[r.IntN(2)]}
	case 2:
		s.MatchLabels = map[string]string{cluster.MetadataNameLabel: []string{"alpha", "beta"}[r.IntN(2)]}
	case 3:
		s.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpExists}}
	}
	return s
}

func randomPeers(r *rand.Rand, pods []*cluster.Pod) []networkingv1.NetworkPolicyPeer {
	var out []networkingv1.NetworkPolicyPeer
	for i, n := 0, r.IntN(3); i < n; i++ {
		var p networkingv1.NetworkPolicyPeer
		switch r.IntN(5) {
		case 0:
			p.PodSelector = randomSelector(r)
		case 1:
			p.NamespaceSelector = randomNamespaceSelector(r)
		case 2:
			p.PodSelector, p.NamespaceSelector = randomSelector(r), randomNamespaceSelector(r)
		case 3:
			// A block around a random pod's v4 address, maybe with a hole.
			a := pods[r.IntN(len(pods))].IPs[0].As4()
			bits := 24 + r.IntN(7)
			cidr := netip.PrefixFrom(netip.AddrFrom4(a), bits).Masked()
			b := &networkingv1.IPBlock{CIDR: cidr.String()}
			if r.IntN(2) == 0 && bits < 30 {
				b.Except = []string{netip.PrefixFrom(netip.AddrFrom4(a), bits+1+r.IntN(32-bits)).Masked().String()}
			}
			p.IPBlock = b
		case 4:
			if r.IntN(2) == 0 {
				p.IPBlock = &networkingv1.IPBlock{CIDR: "fd00:10:244::/64", Except: []string{"fd00:10:244::10/126"}}
			} else {
				p.IPBlock = &networkingv1.IPBlock{CIDR: "10.244.0.0/16", Except: []string{"10.244.0.0/28"}}
			}
		}
		out = append(out, p)
	}
	return out
}

func randomPorts(r *rand.Rand) []networkingv1.NetworkPolicyPort {
	var out []networkingv1.NetworkPolicyPort
	tcp, udp, sctp := corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP
	for i, n := 0, r.IntN(3); i < n; i++ {
		var p networkingv1.NetworkPolicyPort
		switch r.IntN(7) {
		case 0:
			p.Port = ptr(intstr.FromInt32(80))
		case 1:
			p.Protocol, p.Port = &tcp, ptr(intstr.FromInt32(8080))
		case 2:
			p.Port = ptr(intstr.FromString("http"))
		case 3:
			p.Protocol, p.Port = &udp, ptr(intstr.FromInt32(53))
		case 4:
			p.Protocol, p.Port = &udp, ptr(intstr.FromString("dns"))
		case 5:
			p.Port, p.EndPort = ptr(intstr.FromInt32(79)), ptr(int32(8000+r.Int32N(200)))
		case 6:
			p.Protocol = []*corev1.Protocol{&sctp, &udp}[r.IntN(2)]
		}
		out = append(out, p)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

var diffPorts = []analysis.Port{{Protocol: "TCP", Port: 80}, {Protocol: "TCP", Port: 8080}, {Protocol: "UDP", Port: 53}, {Protocol: "SCTP", Port: 9000}}

// TestDifferential is the proof that the analyzer and the dataplane are one
// reading of NetworkPolicy: on random clusters, real traffic through the
// enforced nftables ruleset must equal the analyzer's matrix, pair by pair.
func TestDifferential(t *testing.T) {
	needRoot(t)
	r := rand.New(rand.NewPCG(2026, 11))
	probes, mismatched := 0, 0
	start := time.Now()
	for i := 0; i < *clusters; i++ {
		c := randomCluster(r, i)
		set := policy.NewSet(c)
		if len(set.Rejected) > 0 {
			t.Fatalf("cluster %d: rejected %v", i, set.Rejected)
		}
		opts := Options{Ports: diffPorts, Deny: nft.DenyReject, Timeout: 500 * time.Millisecond, Prefix: fmt.Sprintf("nfd%d-%d", os.Getpid()%10000, i)}
		if i%10 == 0 {
			// Every tenth cluster with the default drop verdict.
			opts.Deny, opts.Timeout = nft.DenyDrop, 400*time.Millisecond
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		rep, err := Run(ctx, set, opts)
		cancel()
		if err != nil {
			t.Fatalf("cluster %d: %v", i, err)
		}
		probes += rep.Probes
		for _, res := range rep.Results {
			if res.Probed && res.Outcome == "error" {
				t.Errorf("cluster %d: %s -> %s %s/%d: probe error: %s", i, res.From, res.To, res.Protocol, res.Port, res.Reason)
			}
			if res.Mismatch {
				mismatched++
				t.Errorf("cluster %d: %s -> %s %s/%d: traffic %s (%s), analyzer %s", i, res.From, res.To, res.Protocol, res.Port,
					word(res.Allowed), res.Outcome, word(res.Expected))
			}
		}
		if t.Failed() {
			dumpCluster(t, c)
			t.FailNow()
		}
	}
	t.Logf("%d clusters, %d probes, %d mismatches in %s", *clusters, probes, mismatched, time.Since(start).Round(time.Millisecond))
}

func dumpCluster(t *testing.T, c *cluster.Cluster) {
	for _, p := range c.Pods {
		t.Logf("pod %s labels=%v ips=%v ports=%v ns-labels=%v", p.Key(), p.Labels, p.IPs, p.Ports, c.NamespaceLabels(p.Namespace))
	}
	for _, np := range c.Policies {
		t.Logf("policy %s/%s: %+v", np.Namespace, np.Name, np.Spec)
	}
}
