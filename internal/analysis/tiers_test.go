package analysis_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netfence/netfence/internal/analysis"
	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
	"github.com/netfence/netfence/internal/randcluster"
)

// mutateTierCluster adds to a random cluster what randcluster does not
// make: pods sharing an address, a second node with a host-network pod
// declaring no port, AdminNetworkPolicy and BaselineAdminNetworkPolicy
// kinds (the latter ordered after every Baseline policy).
func mutateTierCluster(r *rand.Rand, c *cluster.Cluster) *cluster.Cluster {
	parts := c.Parts()
	parts.Pods, parts.ClusterPolicies = nil, nil
	for _, p := range c.Pods {
		cp := *p
		cp.IPs = append([]netip.Addr(nil), p.IPs...)
		parts.Pods = append(parts.Pods, &cp)
	}
	for _, p := range parts.Pods {
		if len(p.IPs) == 2 && !p.HostNetwork {
			switch r.IntN(3) {
			case 0: // IPv6 first
				p.IPs[0], p.IPs[1] = p.IPs[1], p.IPs[0]
			case 1: // IPv6 only
				p.IPs = p.IPs[1:]
			}
		}
	}
	if r.IntN(2) == 0 {
		var net []*cluster.Pod
		for _, p := range parts.Pods {
			if !p.HostNetwork {
				net = append(net, p)
			}
		}
		a, b := net[r.IntN(len(net))], net[r.IntN(len(net))]
		if a != b {
			b.IPs[0] = a.IPs[0]
		}
	}
	if r.IntN(2) == 0 {
		// A twin of the host-network pod on another node: only node
		// selectors tell the two apart.
		var host *cluster.Pod
		for _, p := range parts.Pods {
			if p.Name == "host" {
				host = p
			}
		}
		parts.Nodes = append(parts.Nodes, &cluster.Node{Name: "node-2", Labels: labels.Set{"role": "control-plane"},
			Addrs: []netip.Addr{netip.MustParseAddr("10.244.254.1"), netip.MustParseAddr("fd00:10:244:fe::1")}})
		parts.Pods = append(parts.Pods, &cluster.Pod{Namespace: host.Namespace, Name: "host2", Labels: host.Labels,
			Phase: corev1.PodRunning, NodeName: "node-2", HostNetwork: true, Ports: host.Ports,
			IPs: []netip.Addr{netip.MustParseAddr("10.244.254.1"), netip.MustParseAddr("fd00:10:244:fe::1")}})
	}
	for i, n := 0, r.IntN(3); i < n; i++ {
		// A twin of a pod, next to it, differing in its named ports only.
		orig := parts.Pods[r.IntN(len(parts.Pods))]
		if orig.HostNetwork || !orig.IPs[0].Is4() {
			continue
		}
		a := orig.IPs[0].As4()
		a[3] = byte(200 + i)
		twin := *orig
		twin.Name += fmt.Sprintf("-twin%d", i)
		twin.IPs = []netip.Addr{netip.AddrFrom4(a)}
		twin.Ports = nil
		for _, cp := range orig.Ports {
			switch {
			case cp.Name == "http" && cp.Port == 80:
				cp.Port = 8080
			case cp.Name == "http":
				cp.Port = 80
			case cp.Name == "dns":
				cp.Protocol = corev1.ProtocolTCP // D2: any protocol of the name
			}
			twin.Ports = append(twin.Ports, cp)
		}
		if len(twin.Ports) == 0 {
			twin.Ports = []cluster.ContainerPort{{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53}, {Name: "dns", Protocol: corev1.ProtocolTCP, Port: 53}}
		}
		parts.Pods = append(parts.Pods, &twin)
	}
	banp := false
	for _, cp := range c.ClusterPolicies {
		out := *cp
		switch {
		case cp.Spec.Tier == v1beta1.BaselineTier && !banp && r.IntN(3) == 0:
			out.Kind, out.Name, out.APIVersion, banp = cluster.KindBANP, "default", cluster.PolicyAPIGroup+"/v1alpha1", true
		case cp.Spec.Tier == v1beta1.AdminTier && r.IntN(3) == 0:
			out.Kind, out.APIVersion = cluster.KindANP, cluster.PolicyAPIGroup+"/v1alpha1"
		}
		parts.ClusterPolicies = append(parts.ClusterPolicies, &out)
	}
	return cluster.NewWith(parts)
}

func dumpTiers(c *cluster.Cluster) string {
	var b strings.Builder
	b.WriteString(dump(c))
	for _, n := range c.Nodes {
		fmt.Fprintf(&b, "node %s %v %v\n", n.Name, n.Labels, n.Addrs)
	}
	for _, p := range c.ClusterPolicies {
		j, _ := json.Marshal(p.Spec)
		fmt.Fprintf(&b, "%s %s\n", p.Key(), j)
	}
	return b.String()
}

// ruleOf returns "cnp/NAME spec.egress[0]" for the rule that decided a
// side in Evaluate, or "".
func ruleOf(s policy.Side) string {
	if s.DecidedBy == nil {
		return ""
	}
	return fmt.Sprintf("%s spec.%s[%d]", s.DecidedBy.ClusterPolicy.Key(), strings.ToLower(s.Direction.String()), s.DecidedBy.Rule)
}

// TestTierMatrixMatchesEvaluate is the key property: on random clusters
// with cluster policies of both tiers, every cell of the class-based
// matrix, and what decided each of its directions, equals Set.Evaluate on
// that pair.
func TestTierMatrixMatchesEvaluate(t *testing.T) {
	t.Parallel()
	const runs = 400
	basePorts := []analysis.Port{{Protocol: "TCP", Port: 80}, {Protocol: "TCP", Port: 8080}, {Protocol: "UDP", Port: 53}, {Protocol: "SCTP", Port: 9000}}
	extra := []analysis.Port{{Protocol: "TCP", Port: 79}, {Protocol: "SCTP", Port: 8999}, {Protocol: "UDP", Port: 5353}, {Protocol: "TCP", Port: 8100}, {Protocol: "TCP", Port: 53}}
	layers := map[string]int{}
	var policies, rejected, ties, passed, hostCells, conflicted, cells int
	var own ownNodeCells
	for seed := uint64(0); seed < runs; seed++ {
		r := rand.New(rand.NewPCG(seed, 0x71e5))
		c := randcluster.New(r, int(seed), randcluster.Options{ClusterPolicies: true})
		c = mutateTierCluster(r, c)
		if seed%2 == 1 {
			// Pods on several nodes.
			c = varyNodes(rand.New(rand.NewPCG(seed, 0x40de)), c)
		}
		set := policy.NewSet(c)
		rejected += len(set.Rejected)
		policies += len(set.ClusterPolicies)
		ports := append([]analysis.Port(nil), basePorts...)
		ports = append(ports, extra[r.IntN(len(extra))])
		m, err := analysis.ComputeMatrix(context.Background(), set, analysis.Options{Ports: ports})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		counts, err := analysis.ComputeMatrix(context.Background(), set, analysis.Options{Ports: ports, CountsOnly: true})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if m.Tiered() != (len(set.ClusterPolicies) > 0) {
			t.Fatalf("seed %d: Tiered() = %v with %d cluster policies", seed, m.Tiered(), len(set.ClusterPolicies))
		}
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d: %s\ncluster:\n%s", seed, fmt.Sprintf(format, args...), dumpTiers(c))
		}
		for k, port := range m.Ports {
			var allowed int64
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
						allowed++
					}
					eg, ing := m.Explain(i, j, k)
					for _, x := range []struct {
						got  analysis.Decision
						want policy.Side
					}{{eg, v.Egress}, {ing, v.Ingress}} {
						if string(x.got.Layer) != string(x.want.Layer) || x.got.Rule != ruleOf(x.want) {
							fail("%s -> %s on %s, %s: matrix decided by %q %q; Evaluate by %q %q (%s)",
								from.Key(), to.Key(), port, x.want.Direction, x.got.Layer, x.got.Rule, x.want.Layer, ruleOf(x.want), x.want.Reason)
						}
						if i != j {
							layers[string(x.want.Layer)]++
							cells++
						}
						if len(x.want.Ties) > 0 {
							ties++
						}
						if x.want.PassedBy != nil {
							passed++
						}
					}
					if from.HostNetwork || to.HostNetwork {
						hostCells++
					}
					own.add(set, from, to, v)
					if c.Conflicted(from) || c.Conflicted(to) {
						conflicted++
					}
				}
			}
			n := int64(len(m.Pods))
			want := analysis.PortSummary{Port: port, Allowed: allowed, Denied: n*n - allowed}
			if got := counts.Summary()[k]; got != want {
				fail("summary (counts only) %+v, want %+v", got, want)
			}
			if got := m.Summary()[k]; got != want {
				fail("summary %+v, want %+v", got, want)
			}
		}
	}
	t.Logf("%d runs, %d cluster policies (%d rejected), %d sides: layers %v; %d passed by Admin, %d with ties, %d host-network cells, %d cells with a shared address",
		runs, policies, rejected, cells, layers, passed, ties, hostCells, conflicted)
	for _, l := range []policy.Layer{policy.LayerAdmin, policy.LayerNetworkPolicy, policy.LayerBaseline, policy.LayerDefault} {
		if layers[string(l)] == 0 {
			t.Errorf("no side decided by layer %s: the generator covers too little", l)
		}
	}
	if passed == 0 || ties == 0 || hostCells == 0 || conflicted == 0 {
		t.Errorf("generator covers too little: %d passed, %d ties, %d host-network cells, %d conflicted", passed, ties, hostCells, conflicted)
	}
	own.check(t)
	if rejected > runs/10 {
		t.Errorf("%d random cluster policies rejected", rejected)
	}
}

// guardrails is a hand-written cluster whose verdicts are worked out from
// the API's words, independent of both evaluators.
func guardrails(t testing.TB) *policy.Set {
	t.Helper()
	ns := func(name string, kv ...string) *cluster.Namespace {
		return &cluster.Namespace{Name: name, Labels: lset(kv...), Defined: true}
	}
	pod := func(key, ip string, kv ...string) *cluster.Pod {
		nsName, name, _ := strings.Cut(key, "/")
		return &cluster.Pod{Namespace: nsName, Name: name, Labels: lset(kv...), Phase: corev1.PodRunning, NodeName: "node-1",
			IPs: []netip.Addr{netip.MustParseAddr(ip)}}
	}
	api := pod("payments/api", "10.244.0.10", "app", "api")
	api.Ports = []cluster.ContainerPort{{Name: "metrics", Protocol: corev1.ProtocolTCP, Port: 9090}}
	exporter := pod("monitoring/node-exporter", "172.18.0.2", "app", "node-exporter")
	exporter.HostNetwork = true
	exporter.Ports = []cluster.ContainerPort{{Name: "metrics", Protocol: corev1.ProtocolTCP, Port: 9100}}
	// The node exporter of another node.
	exporter2 := pod("monitoring/node-exporter-2", "172.18.0.3", "app", "node-exporter")
	exporter2.HostNetwork, exporter2.NodeName, exporter2.Ports = true, "node-2", exporter.Ports
	c := cluster.NewWith(cluster.Parts{
		Namespaces: []*cluster.Namespace{ns("payments", "security", "restricted"), ns("team-a", "tenant", "a"), ns("team-b", "tenant", "b"), ns("monitoring")},
		Pods: []*cluster.Pod{api, exporter, exporter2,
			pod("team-a/checkout", "10.244.0.20", "app", "checkout"),
			pod("team-b/client", "10.244.0.30", "app", "client"),
			pod("monitoring/prometheus", "10.244.0.40", "app", "prometheus"),
		},
		Nodes: []*cluster.Node{
			{Name: "node-1", Labels: lset("role", "worker"), Addrs: []netip.Addr{netip.MustParseAddr("172.18.0.2")}},
			{Name: "node-2", Labels: lset("role", "worker"), Addrs: []netip.Addr{netip.MustParseAddr("172.18.0.3")}},
		},
		ClusterPolicies: []*cluster.ClusterPolicy{
			cnpOf("protect-payments", v1beta1.AdminTier, 10, v1beta1.ClusterNetworkPolicySpec{
				Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: selOf("security", "restricted")},
				Ingress: []v1beta1.ClusterNetworkPolicyIngressRule{
					{Name: "checkout", Action: "Accept", From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Pods: &v1beta1.NamespacedPod{PodSelector: *selOf("app", "checkout")}}}},
					{Name: "scrape", Action: "Accept", From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: selOf(cluster.MetadataNameLabel, "monitoring")}},
						Protocols: []v1beta1.ClusterNetworkPolicyProtocol{{DestinationNamedPort: "metrics"}}},
					{Name: "rest", Action: "Deny", From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: selOf()}}},
				},
			}),
			cnpOf("monitoring-to-nodes", v1beta1.AdminTier, 30, v1beta1.ClusterNetworkPolicySpec{
				Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: selOf(cluster.MetadataNameLabel, "monitoring")},
				Egress: []v1beta1.ClusterNetworkPolicyEgressRule{
					{Name: "exporter", Action: "Accept", To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Nodes: selOf()}},
						Protocols: []v1beta1.ClusterNetworkPolicyProtocol{{TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Number: 9100}}}}},
					{Name: "other-host-ports", Action: "Deny", To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Nodes: selOf()}}},
				},
			}),
			cnpOf("tenant-baseline", v1beta1.BaselineTier, 100, v1beta1.ClusterNetworkPolicySpec{
				Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: selOf("tenant", "a")},
				Egress: []v1beta1.ClusterNetworkPolicyEgressRule{
					{Name: "deny-all", Action: "Deny", To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Networks: []v1beta1.CIDR{"0.0.0.0/0"}}}},
				},
			}),
		},
	})
	set := policy.NewSet(c)
	if len(set.Rejected) > 0 {
		t.Fatalf("rejected: %v", set.Rejected)
	}
	return set
}

func lset(kv ...string) labels.Set {
	out := labels.Set{}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func selOf(kv ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: lset(kv...)}
}

func cnpOf(name string, tier v1beta1.Tier, prio int32, spec v1beta1.ClusterNetworkPolicySpec) *cluster.ClusterPolicy {
	spec.Tier, spec.Priority = tier, prio
	return &cluster.ClusterPolicy{Kind: cluster.KindCNP, APIVersion: cluster.PolicyAPIGroup + "/v1beta1", Name: name, Spec: spec}
}

// TestTierMatrixGuardrails checks hand-derived cells and the JSON fields.
func TestTierMatrixGuardrails(t *testing.T) {
	t.Parallel()
	set := guardrails(t)
	ports := []analysis.Port{{Protocol: "TCP", Port: 9090}, {Protocol: "TCP", Port: 9100}, {Protocol: "TCP", Port: 22}}
	m, err := analysis.ComputeMatrix(context.Background(), set, analysis.Options{Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := m.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Results []struct {
			From, To                string
			Port                    int32
			Allowed                 bool
			EgressTier, IngressTier string
			EgressRule, IngressRule string
		}
	}
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	type cell struct {
		from, to string
		port     int32
	}
	got := map[cell]string{}
	for _, r := range out.Results {
		got[cell{r.From, r.To, r.Port}] = fmt.Sprintf("%v eg=%s|%s in=%s|%s", r.Allowed, r.EgressTier, r.EgressRule, r.IngressTier, r.IngressRule)
	}
	want := map[cell]string{
		// Checkout may reach the payments API on any port: Admin Accept
		// at ingress; but at checkout's egress Baseline denies 0.0.0.0/0.
		{"team-a/checkout", "payments/api", 9090}: "false eg=Baseline|cnp/tenant-baseline spec.egress[0] in=Admin|cnp/protect-payments spec.ingress[0]",
		// Prometheus scrapes the API's named port metrics (9090 only).
		{"monitoring/prometheus", "payments/api", 9090}: "true eg=Default| in=Admin|cnp/protect-payments spec.ingress[1]",
		{"monitoring/prometheus", "payments/api", 9100}: "false eg=Default| in=Admin|cnp/protect-payments spec.ingress[2]",
		// The node exporter is a node peer: 9100 accepted, other ports
		// denied; as a host-network pod it is no subject.
		{"monitoring/prometheus", "monitoring/node-exporter", 9100}: "true eg=Admin|cnp/monitoring-to-nodes spec.egress[0] in=|",
		{"monitoring/prometheus", "monitoring/node-exporter", 22}:   "false eg=Admin|cnp/monitoring-to-nodes spec.egress[1] in=|",
		// No ingress peer matches a host-network source (D6): the
		// API's Deny from namespaces {} does not apply to the exporter
		// of another node.
		{"monitoring/node-exporter-2", "payments/api", 22}: "true eg=| in=Default|",
		// The exporter of the API's own node is the node: its traffic
		// is always allowed, before any tier, and no layer decides.
		{"monitoring/node-exporter", "payments/api", 22}:               "true eg=| in=|",
		{"monitoring/node-exporter", "team-b/client", 22}:              "true eg=| in=|",
		{"monitoring/node-exporter-2", "monitoring/node-exporter", 22}: "true eg=| in=|",
		// team-b has no baseline; the payments API denies it.
		{"team-b/client", "payments/api", 22}:    "false eg=Default| in=Admin|cnp/protect-payments spec.ingress[2]",
		{"team-b/client", "team-a/checkout", 22}: "true eg=Default| in=Default|",
		{"team-b/client", "team-b/client", 22}:   "true eg=| in=|",
		{"team-a/checkout", "team-b/client", 22}: "false eg=Baseline|cnp/tenant-baseline spec.egress[0] in=Default|",
	}
	keys := make([]cell, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
	for _, k := range keys {
		if got[k] != want[k] {
			t.Errorf("%s -> %s TCP/%d: %q, want %q", k.from, k.to, k.port, got[k], want[k])
		}
	}
}

// TestTierConflictsMatchEvaluate holds TierConflicts to Set.Evaluate's
// Ties: every tie Evaluate reports between pods is found, and every
// conflict found comes with an example flow on which Evaluate reports it.
func TestTierConflictsMatchEvaluate(t *testing.T) {
	t.Parallel()
	ports := []analysis.Port{{Protocol: "TCP", Port: 80}, {Protocol: "TCP", Port: 8080}, {Protocol: "UDP", Port: 53}, {Protocol: "SCTP", Port: 9000}, {Protocol: "TCP", Port: 53}}
	type key struct {
		tier policy.Tier
		dir  policy.Direction
		a, b string
	}
	var total, external int
	for seed := uint64(0); seed < 300; seed++ {
		r := rand.New(rand.NewPCG(seed, 0xc0f1))
		c := randcluster.New(r, int(seed), randcluster.Options{ClusterPolicies: true})
		c = mutateTierCluster(r, c)
		set := policy.NewSet(c)
		conflicts, err := analysis.TierConflicts(context.Background(), set)
		if err != nil {
			t.Fatal(err)
		}
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d: %s\ncluster:\n%s", seed, fmt.Sprintf(format, args...), dumpTiers(c))
		}
		got := map[key]bool{}
		for _, cf := range conflicts {
			got[key{cf.Tier, cf.Direction, cf.A.Key(), cf.B.Key()}] = true
			total++
			// The example flow shows the tie.
			subj := policy.Endpoint{Pod: cf.Subject}
			var peer policy.Endpoint
			if p := c.Pod(cf.Peer); p != nil {
				peer = policy.Endpoint{Pod: p}
			} else {
				peer = policy.Endpoint{IP: netip.MustParseAddr(cf.Peer)}
				external++
			}
			f := policy.Flow{From: subj, To: peer, Protocol: cf.Port.Protocol, Port: cf.Port.Port}
			if cf.Direction == policy.Ingress {
				f.From, f.To = peer, subj
			}
			if f.To.Pod != nil {
				f.To.IP = f.To.Pod.IPs[0]
			}
			if f.From.Pod != nil {
				f.From.IP = f.From.Pod.IPFor(f.To.IP)
			}
			v := set.Evaluate(f)
			side := v.Egress
			if cf.Direction == policy.Ingress {
				side = v.Ingress
			}
			var seen int
			for _, tie := range side.Ties {
				if (tie.ClusterPolicy == cf.A && tie.Rule == cf.RuleA.Index && tie.Action == cf.RuleA.Action) ||
					(tie.ClusterPolicy == cf.B && tie.Rule == cf.RuleB.Index && tie.Action == cf.RuleB.Action) {
					seen++
				}
			}
			if seen != 2 || cf.RuleA.Action == cf.RuleB.Action || cf.Pods < 1 {
				fail("conflict %q: Evaluate of the example reports ties %v (%s)", cf, side.Ties, side.Reason)
			}
		}
		active, _ := c.ActivePods()
		for _, port := range ports {
			for _, from := range active {
				for _, to := range active {
					v := set.Evaluate(policy.Flow{From: policy.Endpoint{Pod: from, IP: from.IPFor(to.IPs[0])}, To: policy.Endpoint{Pod: to, IP: to.IPs[0]},
						Protocol: port.Protocol, Port: port.Port})
					for _, side := range []policy.Side{v.Egress, v.Ingress} {
						for i, a := range side.Ties {
							for _, b := range side.Ties[i+1:] {
								if a.Action == b.Action || a.ClusterPolicy == b.ClusterPolicy || a.ClusterPolicy.Tier != b.ClusterPolicy.Tier || a.ClusterPolicy.Priority != b.ClusterPolicy.Priority {
									continue
								}
								k := key{a.ClusterPolicy.Tier, side.Direction, a.ClusterPolicy.Key(), b.ClusterPolicy.Key()}
								if k.a > k.b {
									k.a, k.b = k.b, k.a
								}
								if !got[k] {
									fail("%s -> %s on %s: Evaluate reports a tie of %s and %s (%s); TierConflicts missed it: %v", from.Key(), to.Key(), port, k.a, k.b, side.Reason, conflicts)
								}
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d conflicts found, %d with an external example", total, external)
	if total == 0 || external == 0 {
		t.Errorf("the generator made no conflicts (%d) or none with an external peer (%d)", total, external)
	}
}

// TestTierConflictsQuietOnSameAction: policies of one priority that agree
// (the CNPAdminTierSamePriority conformance case) are no conflict.
func TestTierConflictsQuietOnSameAction(t *testing.T) {
	t.Parallel()
	set := guardrails(t)
	c := set.Cluster
	parts := c.Parts()
	parts.Policies = nil
	denyAll := func(name string, action v1beta1.ClusterNetworkPolicyRuleAction) *cluster.ClusterPolicy {
		return cnpOf(name, v1beta1.AdminTier, 10, v1beta1.ClusterNetworkPolicySpec{
			Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: selOf("tenant", "a")},
			Egress:  []v1beta1.ClusterNetworkPolicyEgressRule{{Action: action, To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Namespaces: selOf("tenant", "b")}}}},
		})
	}
	parts.ClusterPolicies = append(parts.ClusterPolicies, denyAll("same-a", "Deny"), denyAll("same-b", "Deny"))
	conflicts, err := analysis.TierConflicts(context.Background(), policy.NewSet(cluster.NewWith(parts)))
	if err != nil || len(conflicts) != 0 {
		t.Errorf("equal actions: conflicts %v, %v; want none", conflicts, err)
	}
	// A disagreement hidden by an earlier priority is no conflict either.
	shadowed := append(append([]*cluster.ClusterPolicy(nil), parts.ClusterPolicies...), denyAll("same-c", "Accept"))
	shadowed = append(shadowed, cnpOf("first", v1beta1.AdminTier, 9, v1beta1.ClusterNetworkPolicySpec{
		Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: selOf()},
		Egress:  []v1beta1.ClusterNetworkPolicyEgressRule{{Action: "Pass", To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Namespaces: selOf("tenant", "b")}}}},
	}))
	withShadow := parts
	withShadow.ClusterPolicies = shadowed
	conflicts, err = analysis.TierConflicts(context.Background(), policy.NewSet(cluster.NewWith(withShadow)))
	if err != nil || len(conflicts) != 0 {
		t.Errorf("a disagreement shadowed by an earlier priority: conflicts %v, %v; want none", conflicts, err)
	}
	parts.ClusterPolicies = append(parts.ClusterPolicies, denyAll("same-c", "Accept"))
	conflicts, err = analysis.TierConflicts(context.Background(), policy.NewSet(cluster.NewWith(parts)))
	if err != nil || len(conflicts) != 2 {
		t.Fatalf("Accept against two Denies: conflicts %v, %v; want 2", conflicts, err)
	}
	want := "cnp/same-a and cnp/same-c have the same priority (Admin tier, 10) and decide egress traffic of 1 pod differently, e.g. team-a/checkout -> team-b/client on SCTP/1: cnp/same-a spec.egress[0] Deny, cnp/same-c spec.egress[0] Accept; the most restrictive action applies (Deny)"
	if got := conflicts[0].String(); got != want {
		t.Errorf("conflict:\n%s\nwant\n%s", got, want)
	}
}

// TestTierMatrixManyRules covers policies with more rules than a walk can
// key (never after CRD validation, which allows 100 per direction): the
// matrix computes them uncached, still equal to Set.Evaluate.
func TestTierMatrixManyRules(t *testing.T) {
	t.Parallel()
	base := guardrails(t).Cluster
	parts := base.Parts()
	parts.Policies = nil
	var spec v1beta1.ClusterNetworkPolicySpec
	spec.Subject.Namespaces = selOf()
	for i := 0; i < 140; i++ {
		port := v1beta1.ClusterNetworkPolicyProtocol{TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Number: int32(9000 + i)}}}
		if i == 135 {
			port = v1beta1.ClusterNetworkPolicyProtocol{DestinationNamedPort: "metrics"}
		}
		action := v1beta1.ClusterNetworkPolicyRuleAction([]string{"Accept", "Deny", "Pass"}[i%3])
		spec.Ingress = append(spec.Ingress, v1beta1.ClusterNetworkPolicyIngressRule{Action: action,
			From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: selOf()}}, Protocols: []v1beta1.ClusterNetworkPolicyProtocol{port}})
	}
	parts.ClusterPolicies = append(parts.ClusterPolicies, cnpOf("many", v1beta1.AdminTier, 1, spec), cnpOf("many-too", v1beta1.AdminTier, 1, spec))
	set := policy.NewSet(cluster.NewWith(parts))
	ports := []analysis.Port{{Protocol: "TCP", Port: 9090}, {Protocol: "TCP", Port: 9135}, {Protocol: "TCP", Port: 9139}, {Protocol: "TCP", Port: 9001}}
	m, err := analysis.ComputeMatrix(context.Background(), set, analysis.Options{Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	for k, port := range m.Ports {
		for i, from := range m.Pods {
			for j, to := range m.Pods {
				v := set.Evaluate(policy.Flow{From: policy.Endpoint{Pod: from, IP: from.IPFor(to.IPs[0])}, To: policy.Endpoint{Pod: to, IP: to.IPs[0]},
					Protocol: port.Protocol, Port: port.Port})
				a, e, in := m.Result(i, j, k)
				_, ing := m.Explain(i, j, k)
				if a != v.Allowed || e != v.Egress.Allowed || in != v.Ingress.Allowed || ing.Rule != ruleOf(v.Ingress) {
					t.Errorf("%s -> %s on %s: matrix %v/%v/%v %q; Evaluate %v/%v/%v %q", from.Key(), to.Key(), port, a, e, in, ing.Rule,
						v.Allowed, v.Egress.Allowed, v.Ingress.Allowed, ruleOf(v.Ingress))
				}
			}
		}
	}
}
