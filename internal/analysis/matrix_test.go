package analysis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netfence/netfence/internal/analysis"
	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// ---- random clusters --------------------------------------------------------

// gen makes random clusters in one of three modes. In modeIPBlocks pods
// differ only in namespace and addresses and policies lean on ipBlocks whose
// boundaries fall among the pod addresses; in modeNamedPorts pods share their
// labels and differ in named ports, which policies lean on. Both make pods
// that only those features tell apart, where a class-based matrix can go
// wrong.
type gen struct {
	r    *rand.Rand
	mode int
}

const (
	modeRandom = iota
	modeIPBlocks
	modeNamedPorts
)

func (g gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }
func (g gen) chance(p float64) bool    { return g.r.Float64() < p }

var (
	podKeys   = []string{"app", "tier", "env"}
	podValues = []string{"a", "b", "c"}
	nsKeys    = []string{"team", "env", cluster.MetadataNameLabel}
	nsValues  = []string{"x", "y", "n0", "n1", "ghost"}
	nsNames   = []string{"n0", "n1", "n2"}
	portNames = []string{"http", "dns", "metrics", "nope"}
	numPorts  = []int32{7, 53, 80, 81, 8080, 9100}
)

func ptr[T any](v T) *T { return &v }

func (g gen) labels(keys, values []string, p float64) map[string]string {
	m := map[string]string{}
	for _, k := range keys {
		if g.chance(p) {
			m[k] = values[g.r.IntN(len(values))]
		}
	}
	return m
}

func (g gen) selector(keys, values []string) *metav1.LabelSelector {
	s := &metav1.LabelSelector{}
	switch g.r.IntN(4) {
	case 0: // empty: everything
	case 1:
		s.MatchLabels = map[string]string{g.pick(keys...): g.pick(values...)}
	default:
		if g.chance(0.3) {
			s.MatchLabels = map[string]string{g.pick(keys...): g.pick(values...)}
		}
		for n := 1 + g.r.IntN(2); n > 0; n-- {
			r := metav1.LabelSelectorRequirement{Key: g.pick(keys...)}
			switch g.r.IntN(4) {
			case 0:
				r.Operator = metav1.LabelSelectorOpIn
				r.Values = []string{g.pick(values...)}
				if g.chance(0.5) {
					r.Values = append(r.Values, g.pick(values...))
				}
			case 1:
				r.Operator = metav1.LabelSelectorOpNotIn
				r.Values = []string{g.pick(values...)}
			case 2:
				r.Operator = metav1.LabelSelectorOpExists
			default:
				r.Operator = metav1.LabelSelectorOpDoesNotExist
			}
			s.MatchExpressions = append(s.MatchExpressions, r)
		}
	}
	return s
}

// Pod addresses: 10.0.0.0/28 and fd00::/124; nodes 192.168.0.1-2, fd01::1.
func (g gen) prefix(v6 bool) string {
	if g.chance(0.1) {
		if v6 {
			return "::/0"
		}
		return "0.0.0.0/0"
	}
	var base netip.Addr
	var bits int
	if v6 {
		base = netip.AddrFrom16([16]byte{0: 0xfd, 15: byte(g.r.IntN(16))})
		bits = 120 + g.r.IntN(9)
	} else {
		base = netip.AddrFrom4([4]byte{10, 0, 0, byte(g.r.IntN(16))})
		bits = 24 + g.r.IntN(9)
	}
	if g.mode == modeIPBlocks && g.chance(0.7) { // boundaries among the pod addresses
		if !v6 {
			bits = 28 + g.r.IntN(5)
		} else {
			bits = 124 + g.r.IntN(5)
		}
	}
	if g.chance(0.1) { // the node range
		if v6 {
			base, bits = netip.MustParseAddr("fd01::"), 64
		} else {
			base, bits = netip.MustParseAddr("192.168.0.0"), 30
		}
	}
	return netip.PrefixFrom(base, bits).Masked().String()
}

func (g gen) ipBlock() *networkingv1.IPBlock {
	v6 := g.chance(0.3)
	cidr := netip.MustParsePrefix(g.prefix(v6))
	b := &networkingv1.IPBlock{CIDR: cidr.String()}
	maxBits := 32
	if v6 {
		maxBits = 128
	}
	for n := g.r.IntN(3); n > 0 && cidr.Bits() < maxBits; n-- {
		// A strict subset of cidr, around a pod address when possible.
		bits := cidr.Bits() + 1 + g.r.IntN(maxBits-cidr.Bits())
		a := cidr.Addr().As16()
		if cidr.Bits() < 120 && v6 || cidr.Bits() < 24 && !v6 {
			// a wide block: carve around the pod range
			if v6 {
				a = netip.AddrFrom16([16]byte{0: 0xfd, 15: byte(g.r.IntN(16))}).As16()
			} else {
				a = netip.AddrFrom4([4]byte{10, 0, 0, byte(g.r.IntN(16))}).As16()
			}
		} else {
			a[15] |= byte(g.r.IntN(256)) & byte(0xff>>uint(8-min(8, maxBits-cidr.Bits())))
		}
		addr := netip.AddrFrom16(a)
		if !v6 {
			addr = addr.Unmap()
		}
		ex := netip.PrefixFrom(addr, bits).Masked()
		if !cidr.Contains(ex.Addr()) {
			continue
		}
		b.Except = append(b.Except, ex.String())
	}
	return b
}

// podSelector selects pods; outside modeRandom, where every pod has the
// labels app=a, mostly one that selects them all.
func (g gen) podSelector() *metav1.LabelSelector {
	if g.mode != modeRandom && g.chance(0.8) {
		if g.chance(0.5) {
			return &metav1.LabelSelector{}
		}
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}}
	}
	return g.selector(podKeys, podValues)
}

func (g gen) peer() networkingv1.NetworkPolicyPeer {
	if g.mode == modeIPBlocks && g.chance(0.6) {
		return networkingv1.NetworkPolicyPeer{IPBlock: g.ipBlock()}
	}
	if g.mode != modeRandom && g.chance(0.5) {
		return networkingv1.NetworkPolicyPeer{PodSelector: g.podSelector(), NamespaceSelector: g.selector(nsKeys, nsValues)}
	}
	switch g.r.IntN(5) {
	case 0:
		return networkingv1.NetworkPolicyPeer{IPBlock: g.ipBlock()}
	case 1:
		return networkingv1.NetworkPolicyPeer{PodSelector: g.selector(podKeys, podValues)}
	case 2:
		return networkingv1.NetworkPolicyPeer{NamespaceSelector: g.selector(nsKeys, nsValues)}
	default:
		return networkingv1.NetworkPolicyPeer{PodSelector: g.selector(podKeys, podValues), NamespaceSelector: g.selector(nsKeys, nsValues)}
	}
}

func (g gen) port() networkingv1.NetworkPolicyPort {
	var p networkingv1.NetworkPolicyPort
	switch g.r.IntN(4) {
	case 0:
	case 1:
		p.Protocol = ptr(corev1.ProtocolTCP)
	case 2:
		p.Protocol = ptr(corev1.ProtocolUDP)
	default:
		p.Protocol = ptr(corev1.ProtocolSCTP)
	}
	named := 1
	if g.mode == modeNamedPorts {
		named = 3
	}
	switch n := g.r.IntN(4 + named); {
	case n == 0: // every port of the protocol
	case n <= named:
		p.Port = ptr(intstr.FromString(g.pick(portNames...)))
	default:
		n := numPorts[g.r.IntN(len(numPorts))]
		p.Port = ptr(intstr.FromInt32(n))
		if g.chance(0.3) {
			p.EndPort = ptr(n + int32(g.r.IntN(100)))
		}
	}
	return p
}

func (g gen) rulePeers() []networkingv1.NetworkPolicyPeer {
	if g.chance(0.2) {
		return nil
	}
	var out []networkingv1.NetworkPolicyPeer
	for n := 1 + g.r.IntN(2); n > 0; n-- {
		out = append(out, g.peer())
	}
	return out
}

func (g gen) rulePorts() []networkingv1.NetworkPolicyPort {
	if g.chance(0.25) {
		return nil
	}
	var out []networkingv1.NetworkPolicyPort
	for n := 1 + g.r.IntN(2); n > 0; n-- {
		out = append(out, g.port())
	}
	return out
}

func (g gen) policy(i int, namespaces []string) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: g.pick(namespaces...), Name: fmt.Sprintf("p%d", i)},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: *g.podSelector()},
	}
	switch g.r.IntN(8) {
	case 0: // allow from the same namespace (often in several namespaces at once)
		np.Spec.PodSelector = metav1.LabelSelector{}
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}}}
		return np
	case 1: // named ports only, from anywhere / to anywhere
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: ptr(intstr.FromString(g.pick(portNames...)))}}}}
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{
			{Protocol: ptr(corev1.Protocol(g.pick("TCP", "UDP", "SCTP"))), Port: ptr(intstr.FromString(g.pick(portNames...)))},
		}}}
		return np
	}
	switch g.r.IntN(4) {
	case 0:
	case 1:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	case 2:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	default:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	}
	for n := g.r.IntN(3); n > 0; n-- {
		np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: g.rulePeers(), Ports: g.rulePorts()})
	}
	for n := g.r.IntN(3); n > 0; n-- {
		np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: g.rulePeers(), Ports: g.rulePorts()})
	}
	return np
}

func (g gen) pod(i int, namespaces []string, v4, v6 *[]netip.Addr) *cluster.Pod {
	p := &cluster.Pod{
		Namespace: g.pick(namespaces...),
		Name:      fmt.Sprintf("pod%d", i),
		Labels:    g.labels(podKeys, podValues, 0.5),
		Phase:     corev1.PodRunning,
		NodeName:  "node",
	}
	take := func(pool *[]netip.Addr) netip.Addr {
		a := (*pool)[0]
		*pool = (*pool)[1:]
		return a
	}
	switch {
	case g.chance(0.12):
		p.HostNetwork = true
		p.IPs = []netip.Addr{netip.MustParseAddr(g.pick("192.168.0.1", "192.168.0.2"))}
		if g.chance(0.3) {
			p.IPs = append(p.IPs, netip.MustParseAddr("fd01::1"))
		}
	default:
		switch f := g.r.IntN(10); {
		case f < 5:
			p.IPs = []netip.Addr{take(v4)}
		case f < 7:
			p.IPs = []netip.Addr{take(v6)}
		case f < 9:
			p.IPs = []netip.Addr{take(v4), take(v6)}
		default:
			p.IPs = []netip.Addr{take(v6), take(v4)}
		}
	}
	if g.chance(0.1) {
		switch g.r.IntN(3) {
		case 0:
			p.IPs = nil
			p.Phase = corev1.PodPending
		case 1:
			p.Phase = corev1.PodSucceeded
		default:
			p.Phase = ""
		}
	}
	if g.chance(0.5) {
		p.Ports = append(p.Ports, cluster.ContainerPort{Name: "http", Protocol: corev1.ProtocolTCP, Port: []int32{80, 8080}[g.r.IntN(2)]})
	}
	if g.chance(0.3) {
		p.Ports = append(p.Ports, cluster.ContainerPort{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53})
	}
	if g.chance(0.3) {
		p.Ports = append(p.Ports, cluster.ContainerPort{Name: "metrics", Protocol: corev1.ProtocolTCP, Port: []int32{9100, 81}[g.r.IntN(2)]})
	}
	if g.chance(0.2) {
		p.Ports = append(p.Ports, cluster.ContainerPort{Name: "http", Protocol: corev1.ProtocolSCTP, Port: 7})
	}
	if g.chance(0.2) {
		p.Ports = append(p.Ports, cluster.ContainerPort{Protocol: corev1.ProtocolTCP, Port: 81})
	}
	return p
}

func (g gen) cluster() *cluster.Cluster {
	var nss []*cluster.Namespace
	for _, n := range nsNames {
		if g.chance(0.8) {
			nss = append(nss, &cluster.Namespace{Name: n, Labels: g.labels(nsKeys[:2], nsValues[:2], 0.6), Defined: true})
		}
	}
	podNS := append([]string{"ghost"}, nsNames...) // ghost is never defined
	var v4, v6 []netip.Addr
	for i := 0; i < 16; i++ {
		v4 = append(v4, netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}))
		v6 = append(v6, netip.AddrFrom16([16]byte{0: 0xfd, 15: byte(i)}))
	}
	g.r.Shuffle(len(v4), func(i, j int) { v4[i], v4[j] = v4[j], v4[i] })
	g.r.Shuffle(len(v6), func(i, j int) { v6[i], v6[j] = v6[j], v6[i] })
	var pods []*cluster.Pod
	nPods := 2 + g.r.IntN(8)
	if g.mode != modeRandom {
		nPods = 6 + g.r.IntN(8)
		podNS = podNS[1:3]
	}
	for i := 0; i < nPods; i++ {
		p := g.pod(i, podNS, &v4, &v6)
		if g.mode != modeRandom {
			p.Labels = map[string]string{"app": "a"}
		}
		if g.mode == modeIPBlocks {
			p.Ports = nil
		}
		pods = append(pods, p)
	}
	// Now and then pods share an address (a broken CNI, a stale status):
	// running pod-network ones are then denied everything and seen by
	// ipBlocks only.
	for n := g.r.IntN(3); n > 0 && len(pods) > 1 && g.chance(0.5); n-- {
		from, to := pods[g.r.IntN(len(pods))], pods[g.r.IntN(len(pods))]
		if from == to || len(from.IPs) == 0 || len(to.IPs) == 0 || to.HostNetwork {
			continue
		}
		ip := from.IPs[g.r.IntN(len(from.IPs))]
		replaced := false
		for i, old := range to.IPs {
			if old.Is4() == ip.Is4() {
				to.IPs[i], replaced = ip, true
				break
			}
		}
		if !replaced {
			to.IPs = append(to.IPs, ip)
		}
	}
	var pols []*networkingv1.NetworkPolicy
	for i, n := 0, g.r.IntN(6); i < n; i++ {
		pols = append(pols, g.policy(i, nsNames))
	}
	return cluster.New(nss, pods, pols)
}

var allPorts = []analysis.Port{
	{Protocol: "SCTP", Port: 7}, {Protocol: "TCP", Port: 53}, {Protocol: "TCP", Port: 80}, {Protocol: "TCP", Port: 81},
	{Protocol: "TCP", Port: 120}, {Protocol: "TCP", Port: 8080}, {Protocol: "TCP", Port: 9100}, {Protocol: "UDP", Port: 53},
	{Protocol: "UDP", Port: 80},
}

func dump(c *cluster.Cluster) string {
	var b strings.Builder
	for _, name := range sortedKeys(c.Namespaces) {
		fmt.Fprintf(&b, "ns %s %v defined=%v\n", name, c.Namespaces[name].Labels, c.Namespaces[name].Defined)
	}
	for _, p := range c.Pods {
		fmt.Fprintf(&b, "pod %s labels=%v ips=%v host=%v phase=%q ports=%v\n", p.Key(), p.Labels, p.IPs, p.HostNetwork, p.Phase, p.Ports)
	}
	for _, np := range c.Policies {
		j, _ := json.Marshal(np.Spec)
		fmt.Fprintf(&b, "policy %s/%s %s\n", np.Namespace, np.Name, j)
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ---- the property --------------------------------------------------------------

// TestMatrixMatchesEvaluate checks the class-based truth table against
// Evaluate on every pair and port of random small clusters.
func TestMatrixMatchesEvaluate(t *testing.T) {
	t.Parallel()
	const runs = 600
	rejected, hostNet, dual, inactive, isolatedPairs, deniedCells, conflicted := 0, 0, 0, 0, 0, 0, 0
	var own ownNodeCells
	for seed := uint64(0); seed < runs; seed++ {
		g := gen{r: rand.New(rand.NewPCG(seed, 0x5eed)), mode: int(seed % 3)}
		c := g.cluster()
		if seed%2 == 1 {
			// Pods on several nodes, Node objects with addresses.
			c = varyNodes(rand.New(rand.NewPCG(seed, 0x40de)), c)
		}
		set := policy.NewSet(c)
		rejected += len(set.Rejected)
		var opts analysis.Options
		if seed%4 != 0 {
			for _, p := range allPorts {
				if g.chance(0.6) {
					opts.Ports = append(opts.Ports, p)
				}
			}
		}
		if seed%5 == 0 {
			opts.Namespaces = []string{g.pick(append([]string{"ghost"}, nsNames...)...)}
		}
		m, err := analysis.ComputeMatrix(context.Background(), set, opts)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d: %s\ncluster:\n%s", seed, fmt.Sprintf(format, args...), dump(c))
		}

		// Pods: the active ones (of the namespaces asked for), in order;
		// the others left out with a reason.
		var wantPods, wantInactive []string
		for _, p := range c.Pods {
			if len(opts.Namespaces) > 0 && p.Namespace != opts.Namespaces[0] {
				continue
			}
			if p.Phase == corev1.PodRunning && len(p.IPs) > 0 {
				wantPods = append(wantPods, p.Key())
				if p.HostNetwork {
					hostNet++
				}
				if len(p.IPs) > 1 {
					dual++
				}
				if c.Conflicted(p) {
					conflicted++
				}
			} else {
				wantInactive = append(wantInactive, p.Key())
				inactive++
			}
		}
		var gotPods, gotInactive []string
		for _, p := range m.Pods {
			gotPods = append(gotPods, p.Key())
		}
		for _, p := range m.Inactive {
			gotInactive = append(gotInactive, p.Pod.Key())
			if p.Reason == "" {
				fail("inactive pod %s has no reason", p.Pod.Key())
			}
		}
		if !reflect.DeepEqual(gotPods, wantPods) || !reflect.DeepEqual(gotInactive, wantInactive) {
			fail("pods %v inactive %v, want %v and %v", gotPods, gotInactive, wantPods, wantInactive)
		}
		wantPorts := opts.Ports
		if len(wantPorts) == 0 {
			wantPorts = analysis.DefaultPorts(set)
		}
		if !reflect.DeepEqual(m.Ports, wantPorts) {
			fail("ports %v, want %v", m.Ports, wantPorts)
		}

		n := len(m.Pods)
		summary := m.Summary()
		if len(summary) != len(m.Ports) {
			fail("summary has %d ports, want %d", len(summary), len(m.Ports))
		}
		for k, port := range m.Ports {
			var allowedCount int64
			for i, from := range m.Pods {
				for j, to := range m.Pods {
					v := set.Evaluate(policy.Flow{
						From:     policy.Endpoint{Pod: from, IP: from.IPFor(to.IPs[0])},
						To:       policy.Endpoint{Pod: to, IP: to.IPs[0]},
						Protocol: port.Protocol,
						Port:     port.Port,
					})
					a, e, in := m.Result(i, j, k)
					if a != v.Allowed || e != v.Egress.Allowed || in != v.Ingress.Allowed {
						fail("%s -> %s on %s: matrix allowed=%v egress=%v ingress=%v; Evaluate allowed=%v egress=%v (%s) ingress=%v (%s)",
							from.Key(), to.Key(), port, a, e, in, v.Allowed, v.Egress.Allowed, v.Egress.Reason, v.Ingress.Allowed, v.Ingress.Reason)
					}
					if v.Allowed {
						allowedCount++
					} else {
						deniedCells++
					}
					if v.Egress.Isolated() || v.Ingress.Isolated() {
						isolatedPairs++
					}
					own.add(set, from, to, v)
				}
			}
			want := analysis.PortSummary{Port: port, Allowed: allowedCount, Denied: int64(n*n) - allowedCount}
			if summary[k] != want {
				fail("summary[%d] = %+v, want %+v", k, summary[k], want)
			}
		}
	}
	// The generator must exercise what it claims to.
	t.Logf("%d runs: %d policies rejected, %d hostNetwork, %d dual-stack, %d inactive, %d with a shared address; %d isolated pairs, %d denied cells",
		runs, rejected, hostNet, dual, inactive, conflicted, isolatedPairs, deniedCells)
	if hostNet == 0 || dual == 0 || inactive == 0 || conflicted == 0 || isolatedPairs == 0 || deniedCells == 0 {
		t.Errorf("generator covers too little")
	}
	own.check(t)
	if rejected > runs/10 {
		t.Errorf("%d random policies rejected: the generator makes invalid policies", rejected)
	}
}

// ---- classes -------------------------------------------------------------------

func replicas(ns, app string, n int, firstIP netip.Addr, ports ...cluster.ContainerPort) []*cluster.Pod {
	var out []*cluster.Pod
	ip := firstIP
	for i := 0; i < n; i++ {
		out = append(out, &cluster.Pod{
			Namespace: ns, Name: fmt.Sprintf("%s-%03d", app, i),
			Labels: map[string]string{"app": app}, IPs: []netip.Addr{ip},
			Ports: ports, Phase: corev1.PodRunning,
		})
		ip = ip.Next()
	}
	return out
}

func TestMatrixClassesOfReplicas(t *testing.T) {
	t.Parallel()
	http := cluster.ContainerPort{Name: "http", Protocol: corev1.ProtocolTCP, Port: 8080}
	var pods []*cluster.Pod
	pods = append(pods, replicas("shop", "web", 100, netip.MustParseAddr("10.0.0.0"), http)...)
	pods = append(pods, replicas("shop", "api", 100, netip.MustParseAddr("10.0.1.0"), http)...)
	pods = append(pods, replicas("data", "db", 50, netip.MustParseAddr("10.0.2.0"))...)
	pols := []*networkingv1.NetworkPolicy{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "api"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: ptr(intstr.FromString("http"))}},
			}},
		},
	}}
	ports := []analysis.Port{{Protocol: "TCP", Port: 8080}}
	m, err := analysis.ComputeMatrix(context.Background(), policy.NewSet(cluster.New(nil, pods, pols)), analysis.Options{Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	if m.Classes() != 3 {
		t.Errorf("250 pods of 3 deployments fell into %d classes, want 3", m.Classes())
	}
	// api accepts web and itself only: each of the 100 api pods refuses
	// the 50 db pods and the 99 other api pods. Nothing else is isolated.
	sum := m.Summary()[0]
	wantDenied := int64(100 * (50 + 99))
	if sum.Denied != wantDenied || sum.Allowed != 250*250-wantDenied {
		t.Errorf("summary %+v, want %d denied", sum, wantDenied)
	}

	// An ipBlock that covers half the web replicas splits them in two.
	pols = append(pols, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "data", Name: "db"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/26"}}},
			}},
		},
	})
	m, err = analysis.ComputeMatrix(context.Background(), policy.NewSet(cluster.New(nil, pods, pols)), analysis.Options{Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	if m.Classes() != 4 {
		t.Errorf("with an ipBlock splitting web: %d classes, want 4", m.Classes())
	}
	// db accepts web-000..web-063 (10.0.0.0/26) and itself: each of the 50
	// db pods refuses 250-64-1 sources; api as before.
	sum = m.Summary()[0]
	wantDenied = 100*(50+99) + 50*(250-64-1)
	if sum.Denied != wantDenied {
		t.Errorf("summary %+v, want %d denied", sum, wantDenied)
	}
}

// ---- ports ---------------------------------------------------------------------

func TestDefaultPorts(t *testing.T) {
	t.Parallel()
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "p"},
		Spec: networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{
				{Port: ptr(intstr.FromInt32(80))},
				{Protocol: ptr(corev1.ProtocolUDP), Port: ptr(intstr.FromInt32(53))},
				{Port: ptr(intstr.FromInt32(8000)), EndPort: ptr(int32(8080))},
				{Port: ptr(intstr.FromString("http"))},
				{Protocol: ptr(corev1.ProtocolSCTP)},
			}}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{
				{Protocol: ptr(corev1.ProtocolTCP), Port: ptr(intstr.FromInt32(443))},
			}}},
		},
	}
	pods := []*cluster.Pod{
		{Namespace: "a", Name: "x", Phase: corev1.PodRunning, IPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}, Ports: []cluster.ContainerPort{
			{Name: "http", Protocol: corev1.ProtocolTCP, Port: 9100},
			{Protocol: corev1.ProtocolUDP, Port: 5353},
			{Protocol: corev1.ProtocolTCP, Port: 80},
			{Name: "x", Protocol: corev1.ProtocolSCTP, Port: 7},
		}},
	}
	got := analysis.DefaultPorts(policy.NewSet(cluster.New(nil, pods, []*networkingv1.NetworkPolicy{np})))
	want := []analysis.Port{
		{Protocol: "SCTP", Port: 7},
		{Protocol: "TCP", Port: 80}, {Protocol: "TCP", Port: 443}, {Protocol: "TCP", Port: 8000}, {Protocol: "TCP", Port: 8080}, {Protocol: "TCP", Port: 9100},
		{Protocol: "UDP", Port: 53}, {Protocol: "UDP", Port: 5353},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DefaultPorts = %v, want %v", got, want)
	}

	// Nothing names a port: TCP/80.
	empty := policy.NewSet(cluster.New(nil, []*cluster.Pod{{Namespace: "a", Name: "x", Phase: corev1.PodRunning}}, nil))
	if got := analysis.DefaultPorts(empty); !reflect.DeepEqual(got, []analysis.Port{{Protocol: "TCP", Port: 80}}) {
		t.Errorf("DefaultPorts(nothing) = %v, want [TCP/80]", got)
	}

	// ComputeMatrix uses them when no ports are given.
	m, err := analysis.ComputeMatrix(context.Background(), policy.NewSet(cluster.New(nil, pods, []*networkingv1.NetworkPolicy{np})), analysis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m.Ports, want) {
		t.Errorf("matrix ports = %v, want %v", m.Ports, want)
	}
}

func TestParsePort(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]analysis.Port{
		"TCP/80":    {Protocol: "TCP", Port: 80},
		"udp/53":    {Protocol: "UDP", Port: 53},
		"Sctp/7":    {Protocol: "SCTP", Port: 7},
		"8080":      {Protocol: "TCP", Port: 8080},
		" TCP/1 ":   {Protocol: "TCP", Port: 1},
		"TCP/65535": {Protocol: "TCP", Port: 65535},
	} {
		got, err := analysis.ParsePort(in)
		if err != nil || got != want {
			t.Errorf("ParsePort(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "TCP/0", "TCP/65536", "ICMP/1", "TCP/http", "TCP/", "/80", "TCP/-1"} {
		if got, err := analysis.ParsePort(in); err == nil {
			t.Errorf("ParsePort(%q) = %v, want an error", in, got)
		}
	}
}

func TestMatrixContextCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	set := policy.NewSet(cluster.New(nil, replicas("a", "x", 3, netip.MustParseAddr("10.0.0.1")), nil))
	if _, err := analysis.ComputeMatrix(ctx, set, analysis.Options{}); err == nil {
		t.Errorf("ComputeMatrix with a cancelled context succeeded")
	}
}
