package nft

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// The benchmark cluster: 10,000 pods in 50 namespaces on 100 nodes (so 100
// pods are local to node-0, half of them dual-stack), and 1,000 policies.
var bigGen = genParams{Namespaces: 50, Pods: 10000, Nodes: 100, Policies: 1000, DualStack: true}

var (
	bigOnce    sync.Once
	bigCluster *cluster.Cluster
)

func big() *cluster.Cluster {
	bigOnce.Do(func() { bigCluster = genCluster(42, bigGen) })
	return bigCluster
}

// cpuTime returns the user and system CPU time the process used so far:
// on a loaded machine it says more than the wall time. The kernel's work
// on a netlink transaction runs in the sending thread, so it counts as
// system time; waiting for an RCU grace period does not count.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportModel(b *testing.B, m *Model) {
	c := m.Counts()
	b.ReportMetric(float64(len(m.Chains)), "chains")
	b.ReportMetric(float64(len(m.Sets)), "sets")
	b.ReportMetric(float64(c.Elements()), "elements")
	b.ReportMetric(float64(c.Rules()), "rules")
}

// BenchmarkRender renders the benchmark cluster from scratch.
func BenchmarkRender(b *testing.B) {
	benchRender(b, policy.NewSet(big()))
}

// benchRender renders s for node-0 b.N times and reports the CPU time
// and the size of the model, which it returns.
func benchRender(b *testing.B, s *policy.Set) *Model {
	var m *Model
	cpu := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m = Render(s, Options{Node: "node-0"})
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/op")
	reportModel(b, m)
	return m
}

func BenchmarkFullSync(b *testing.B) {
	benchFullSync(b, big())
}

// benchFullSync loads the ruleset of c for node-0 into the kernel b.N
// times, reports the CPU time and the size of the model, and checks the
// live table against the model.
func benchFullSync(b *testing.B, c *cluster.Cluster) {
	ns := newNetNS(b)
	a := ns.applier(b)
	m := Render(policy.NewSet(c), Options{Node: "node-0"})
	cpu := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := a.FullSync(b.Context(), m); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/op")
	reportModel(b, m)
	live, ok, err := a.Counts(b.Context())
	if err != nil || !ok {
		b.Fatalf("Counts: %v %v", ok, err)
	}
	if fmt.Sprint(live) != fmt.Sprint(m.Counts()) {
		b.Fatal("live table differs from the model")
	}
}

// pct returns a percentile of durations, in milliseconds.
func pct(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return float64(ds[int(p*float64(len(ds)-1))].Microseconds()) / 1000
}

// BenchmarkRendererLabelChange changes the app label of one random pod
// per iteration and renders the new snapshot with a Renderer that
// rendered the previous one. It reports percentiles of Renderer.Render
// alone and of the whole path from a new cluster snapshot to the delta to
// apply (a caching policy.Compiler, Renderer.Render, Diff), as the agent
// takes it, and the median cost of building the snapshot (cluster.New,
// outside that path). It checks the result against Render now and then.
func BenchmarkRendererLabelChange(b *testing.B) {
	snapshot := benchRendererLabelChange(b, big(), relabel)
	b.ReportMetric(pct(snapshot, 0.5), "snapshot-p50-ms")
}

// benchRendererLabelChange is BenchmarkRendererLabelChange on c, relabel
// making each new snapshot; it returns the times relabel took.
func benchRendererLabelChange(b *testing.B, c *cluster.Cluster, relabel func(c *cluster.Cluster, key, app string) *cluster.Cluster) []time.Duration {
	opts := Options{Node: "node-0"}
	rend := NewRenderer(opts)
	compiler := policy.NewCompiler()
	prev := rend.Render(compiler.NewSet(c))
	r := rand.New(rand.NewPCG(7, 7))
	var snapshot, render, path []time.Duration
	resolved := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := c.Pods[r.IntN(len(c.Pods))]
		t0 := time.Now()
		c = relabel(c, p.Key(), genApps[r.IntN(len(genApps))])
		t1 := time.Now()
		set := compiler.NewSet(c)
		t2 := time.Now()
		next := rend.Render(set)
		t3 := time.Now()
		Diff(prev, next)
		t4 := time.Now()
		snapshot = append(snapshot, t1.Sub(t0))
		render = append(render, t3.Sub(t2))
		path = append(path, t4.Sub(t1))
		resolved += rend.Stats().Resolved
		if i%25 == 0 {
			b.StopTimer()
			if want := Render(policy.NewSet(c), opts); !reflect.DeepEqual(next, want) {
				b.Fatalf("change %d: the renderer differs from Render", i)
			}
			b.StartTimer()
		}
		prev = next
	}
	b.StopTimer()
	b.ReportMetric(pct(render, 0.5), "render-p50-ms")
	b.ReportMetric(pct(render, 0.99), "render-p99-ms")
	b.ReportMetric(pct(path, 0.5), "path-p50-ms")
	b.ReportMetric(pct(path, 0.99), "path-p99-ms")
	b.ReportMetric(float64(resolved)/float64(b.N), "resolved/change")
	return snapshot
}

// BenchmarkUpdateLabelChange changes the app label of one random pod per
// iteration (run with -benchtime=100x), renders it with a Renderer, and
// applies the difference (Diff, then Apply). Over the changes
// that touched the ruleset, it reports percentiles of Apply (the netlink
// transaction) and of the whole way from a new cluster snapshot to the
// enforced change (a caching policy.Compiler, Renderer.Render, Diff and
// Apply).
func BenchmarkUpdateLabelChange(b *testing.B) {
	ns := newNetNS(b)
	a := ns.applier(b)
	c := big()
	rend := NewRenderer(Options{Node: "node-0"})
	compiler := policy.NewCompiler()
	prev := rend.Render(compiler.NewSet(c))
	if err := a.FullSync(b.Context(), prev); err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 7))
	var apply, total []time.Duration
	var changed, elems, replaced int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := c.Pods[r.IntN(len(c.Pods))]
		c = relabel(c, p.Key(), genApps[r.IntN(len(genApps))])
		t0 := time.Now()
		next := rend.Render(compiler.NewSet(c))
		d := Diff(prev, next)
		t1 := time.Now()
		if err := a.Apply(b.Context(), d); err != nil {
			b.Fatalf("update %d: %v", i, err)
		}
		t2 := time.Now()
		if !d.Empty() {
			changed++
			total = append(total, t2.Sub(t0))
			apply = append(apply, t2.Sub(t1))
			for _, sc := range d.SetChanges {
				elems += len(sc.Add) + len(sc.Del)
			}
			for _, s := range append(d.ReplaceSets, d.AddSets...) {
				elems += len(s.Elements)
			}
			replaced += len(d.ReplaceSets)
		}
		prev = next
	}
	b.StopTimer()
	b.ReportMetric(float64(changed), "changes")
	b.ReportMetric(pct(apply, 0.5), "apply-p50-ms")
	b.ReportMetric(pct(apply, 0.99), "apply-p99-ms")
	b.ReportMetric(pct(total, 0.5), "enforce-p50-ms")
	b.ReportMetric(pct(total, 0.99), "enforce-p99-ms")
	b.ReportMetric(float64(replaced), "sets-replaced")
	if changed > 0 {
		b.ReportMetric(float64(elems)/float64(changed), "elements/change")
	}
	live, ok, err := a.Counts(b.Context())
	if err != nil || !ok {
		b.Fatalf("Counts: %v %v", ok, err)
	}
	if fmt.Sprint(live) != fmt.Sprint(prev.Counts()) {
		b.Fatal("live table differs from the model after the updates")
	}
}

// The benchmark cluster with cluster policies: bigGen's pods and 1,000
// NetworkPolicies, its 100 nodes, and 1,000 cluster policies (see
// genCNP).
var (
	bigTiersOnce    sync.Once
	bigTiersCluster *cluster.Cluster
)

func bigTiers() *cluster.Cluster {
	bigTiersOnce.Do(func() {
		c := big()
		r := rand.New(rand.NewPCG(43, 1))
		var nodes []*cluster.Node
		for i := 0; i < bigGen.Nodes; i++ {
			nodes = append(nodes, &cluster.Node{Name: fmt.Sprintf("node-%d", i), Labels: labels.Set{"pool": []string{"a", "b"}[i%2]},
				Addrs: []netip.Addr{netip.AddrFrom4([4]byte{172, 20, 0, byte(i)})}})
		}
		var cps []*cluster.ClusterPolicy
		for i := 0; i < 1000; i++ {
			cps = append(cps, genCNP(r, bigGen, i))
		}
		var nss []*cluster.Namespace
		for _, ns := range c.Namespaces {
			nss = append(nss, ns)
		}
		bigTiersCluster = cluster.NewWith(cluster.Parts{Namespaces: nss, Pods: c.Pods, Policies: c.Policies, ClusterPolicies: cps, Nodes: nodes})
	})
	return bigTiersCluster
}

// genCNP makes a cluster policy for a synthetic cluster: mostly for one
// namespace (70 %) or a workload in one (20 %), some for a team's
// namespaces (8 %), a few for every namespace (2 %); Admin (70 %) or
// Baseline, priorities 0-999 (ties happen); up to two ingress and two
// egress rules, Accept, Deny or Pass, to pods, namespaces, networks or
// nodes, on every protocol, a port, a range or a named port.
func genCNP(r *rand.Rand, g genParams, i int) *cluster.ClusterPolicy {
	tier := v1beta1.AdminTier
	if r.IntN(10) >= 7 {
		tier = v1beta1.BaselineTier
	}
	var subject v1beta1.ClusterNetworkPolicySubject
	ns := sel(cluster.MetadataNameLabel, fmt.Sprintf("ns-%d", r.IntN(g.Namespaces)))
	switch k := r.IntN(100); {
	case k < 70:
		subject.Namespaces = ns
	case k < 90:
		subject.Pods = &v1beta1.NamespacedPod{NamespaceSelector: *ns, PodSelector: *sel("app", genApps[r.IntN(len(genApps))])}
	case k < 98:
		subject.Namespaces = sel("team", fmt.Sprintf("t%d", r.IntN(5)))
	default:
		subject.Namespaces = &metav1.LabelSelector{}
	}
	p := cnp(fmt.Sprintf("cnp-%d", i), tier, int32(r.IntN(1000)), subject)
	actions := []v1beta1.ClusterNetworkPolicyRuleAction{v1beta1.ClusterNetworkPolicyRuleActionAccept, v1beta1.ClusterNetworkPolicyRuleActionAccept,
		v1beta1.ClusterNetworkPolicyRuleActionDeny, v1beta1.ClusterNetworkPolicyRuleActionDeny, v1beta1.ClusterNetworkPolicyRuleActionPass}
	protocols := func(named bool) []v1beta1.ClusterNetworkPolicyProtocol {
		switch r.IntN(6) {
		case 0:
			return []v1beta1.ClusterNetworkPolicyProtocol{tcpPort(8080)}
		case 1:
			return []v1beta1.ClusterNetworkPolicyProtocol{tcpPort(5432), tcpPort(6379)}
		case 2:
			return []v1beta1.ClusterNetworkPolicyProtocol{udpPort(53), tcpPort(53)}
		case 3:
			return []v1beta1.ClusterNetworkPolicyProtocol{{TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Range: &v1beta1.PortRange{Start: 30000, End: 32767}}}}}
		case 4:
			if named {
				return []v1beta1.ClusterNetworkPolicyProtocol{{DestinationNamedPort: "http"}}
			}
		}
		return nil
	}
	podsPeer := func() *v1beta1.NamespacedPod {
		nsSel := sel(cluster.MetadataNameLabel, fmt.Sprintf("ns-%d", r.IntN(g.Namespaces)))
		if r.IntN(3) == 0 {
			nsSel = sel("team", fmt.Sprintf("t%d", r.IntN(5)))
		}
		return &v1beta1.NamespacedPod{NamespaceSelector: *nsSel, PodSelector: *sel("app", genApps[r.IntN(len(genApps))])}
	}
	for k := r.IntN(3); k > 0; k-- {
		rule := v1beta1.ClusterNetworkPolicyIngressRule{Action: actions[r.IntN(len(actions))], Protocols: protocols(true)}
		if r.IntN(3) == 0 {
			rule.From = []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: sel("team", fmt.Sprintf("t%d", r.IntN(5)))}}
		} else {
			rule.From = []v1beta1.ClusterNetworkPolicyIngressPeer{{Pods: podsPeer()}}
		}
		p.Spec.Ingress = append(p.Spec.Ingress, rule)
	}
	for k := r.IntN(3); k > 0; k-- {
		rule := v1beta1.ClusterNetworkPolicyEgressRule{Action: actions[r.IntN(len(actions))]}
		switch r.IntN(5) {
		case 0:
			rule.To = []v1beta1.ClusterNetworkPolicyEgressPeer{{Networks: []v1beta1.CIDR{v1beta1.CIDR(fmt.Sprintf("10.64.%d.0/24", r.IntN(max(1, g.Pods/256)))), "172.16.0.0/12"}}}
			rule.Protocols = protocols(false)
		case 1:
			rule.To = []v1beta1.ClusterNetworkPolicyEgressPeer{{Nodes: sel("pool", []string{"a", "b"}[r.IntN(2)])}}
			rule.Protocols = protocols(false)
		case 2:
			rule.To = []v1beta1.ClusterNetworkPolicyEgressPeer{{Namespaces: sel("team", fmt.Sprintf("t%d", r.IntN(5)))}}
			rule.Protocols = protocols(true)
		default:
			rule.To = []v1beta1.ClusterNetworkPolicyEgressPeer{{Pods: podsPeer()}}
			rule.Protocols = protocols(true)
		}
		p.Spec.Egress = append(p.Spec.Egress, rule)
	}
	return p
}

// BenchmarkRenderTiers renders the benchmark cluster with 1,000 cluster
// policies from scratch (compiling excluded). tier-maps counts the tier
// maps and Pass sets.
func BenchmarkRenderTiers(b *testing.B) {
	s := policy.NewSet(bigTiers())
	for _, rj := range s.Rejected {
		if rj.ClusterPolicy != nil {
			b.Fatalf("rejected: %v", rj)
		}
	}
	m := benchRender(b, s)
	maps, mapElems := 0, 0
	for _, st := range m.Sets {
		if st.Map || st.Pass {
			maps++
			mapElems += len(st.Elements)
		}
	}
	b.ReportMetric(float64(maps), "tier-maps")
	b.ReportMetric(float64(mapElems), "tier-map-elements")
}

// BenchmarkRendererLabelChangeTiers is BenchmarkRendererLabelChange on
// the cluster with 1,000 cluster policies.
func BenchmarkRendererLabelChangeTiers(b *testing.B) {
	benchRendererLabelChange(b, bigTiers(), relabelWith)
}

// BenchmarkFullSyncTiers loads the ruleset of the cluster with 1,000
// cluster policies into the kernel.
func BenchmarkFullSyncTiers(b *testing.B) {
	benchFullSync(b, bigTiers())
}
