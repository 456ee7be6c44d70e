// Package synth generates synthetic Kubernetes clusters (namespaces, pods
// and NetworkPolicies, and optionally nodes and ClusterNetworkPolicies) for
// testing and benchmarking netfence.
//
// The clusters are shaped like real ones, because the analyzer's cost
// depends on how many equivalence classes the pods fall into: namespaces
// carry team/env labels, pods come from Deployments and StatefulSets with
// skewed replica counts and share their workload's labels and named ports,
// addresses come from per-node /24 blocks, and the policies mix every
// feature of the NetworkPolicy API (default deny, namespace and pod
// selectors with all operators, ipBlocks with except, named and numeric
// ports, endPort ranges, UDP and SCTP, egress rules, explicit and implicit
// policyTypes). With Config.ClusterPolicies, Node objects, host-network
// node exporters and ClusterNetworkPolicies of both tiers are added (see
// clusterpolicies.go). Every generated object passes Kubernetes API
// validation (and the ClusterNetworkPolicies their CRD's).
//
// Generation is deterministic: the same Config always gives the same
// objects and the same YAML bytes.
package synth

import (
	"fmt"
	"math"
	"math/rand/v2"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// Config says what to generate.
type Config struct {
	// Pods is the number of pods, kube-system's included.
	Pods int
	// Namespaces is the number of namespaces, kube-system included (and,
	// when there are at least 4, monitoring and ingress-nginx; the rest are
	// application namespaces). It must be at least 1 when Pods or Policies
	// is not 0.
	Namespaces int
	// Policies is the number of NetworkPolicies.
	Policies int
	// Seed seeds the random source; the same Config gives the same output.
	Seed int64
	// Nodes is the number of nodes, named node-0 .. node-(Nodes-1), that the
	// pods are spread over. 0 means 1.
	Nodes int
	// IPv6 makes pods dual-stack (an IPv4 and an IPv6 address each) and
	// adds IPv6 ipBlocks to policies.
	IPv6 bool
	// ClusterPolicies is the number of ClusterNetworkPolicies
	// (policy.networking.k8s.io/v1beta1). When it is not 0 the output also
	// has a Node object per node and, in monitoring (kube-system when
	// there is no monitoring namespace), a host-network node-exporter pod
	// per node, in addition to Pods; it then needs at least 1 namespace.
	// The namespaces, the other pods and the NetworkPolicies do not depend
	// on it.
	ClusterPolicies int
}

// MaxNodes is the largest Config.Nodes that Generate accepts.
const MaxNodes = 10000

// Objects is a generated cluster. Namespaces starts with kube-system; pods
// and policies are grouped by namespace, in the order of Namespaces. Nodes
// (node-0, node-1, ...) and ClusterPolicies are only generated when
// Config.ClusterPolicies is not 0.
type Objects struct {
	Namespaces      []*corev1.Namespace
	Pods            []*corev1.Pod
	Policies        []*networkingv1.NetworkPolicy
	Nodes           []*corev1.Node
	ClusterPolicies []*v1beta1.ClusterNetworkPolicy
}

// Generate builds a cluster as described by cfg.
func Generate(cfg Config) (*Objects, error) {
	if cfg.Pods < 0 || cfg.Namespaces < 0 || cfg.Policies < 0 || cfg.Nodes < 0 || cfg.ClusterPolicies < 0 {
		return nil, fmt.Errorf("synth: counts must not be negative: %+v", cfg)
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = 1
	}
	if cfg.Nodes > MaxNodes {
		return nil, fmt.Errorf("synth: at most %d nodes, got %d", MaxNodes, cfg.Nodes)
	}
	if cfg.Namespaces == 0 && (cfg.Pods > 0 || cfg.Policies > 0 || cfg.ClusterPolicies > 0) {
		return nil, fmt.Errorf("synth: pods and policies need at least 1 namespace")
	}
	if cfg.Pods > maxPodsWithIPs-cfg.Nodes*hostsPerBlock {
		return nil, fmt.Errorf("synth: %d pods do not fit in 10.0.0.0/8", cfg.Pods)
	}
	seed := uint64(cfg.Seed)
	g := &gen{
		cfg:  cfg,
		r:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		ipam: newIPAM(cfg.Nodes),
		out:  &Objects{},
	}
	g.namespaces()
	if err := g.pods(); err != nil {
		return nil, err
	}
	g.policies()
	if cfg.ClusterPolicies > 0 {
		// Last, so that nothing before depends on it.
		g.nodeObjects()
		g.clusterPolicies()
	}
	return g.out, nil
}

// gen is the state of one Generate call.
type gen struct {
	cfg  Config
	r    *rand.Rand
	ipam *ipam
	out  *Objects

	ns       []*nsInfo
	appNS    []*nsInfo // namespaces that get application workloads
	promNS   *nsInfo
	ingNS    *nsInfo
	podNames map[string]bool // namespace/name of every pod, for uniqueness
}

// nsKind says what a namespace is for.
type nsKind int

const (
	nsApp nsKind = iota
	nsKubeSystem
	nsMonitoring
	nsIngress
)

// nsInfo is a generated namespace and what the policy generator needs to
// know about it.
type nsInfo struct {
	idx       int
	name      string
	kind      nsKind
	team, env string
	labels    map[string]string
	istio     bool
	weight    float64
	workloads []*workload
	wlNames   map[string]bool
	policies  []*networkingv1.NetworkPolicy
	polNames  map[string]bool
	// denyIngress and denyEgress record a default-deny policy.
	denyIngress, denyEgress bool
}

// workload is a Deployment or StatefulSet whose pods the generator emits.
type workload struct {
	ns       *nsInfo
	name     string
	app      string // value of the app label (shared by canaries)
	tier     string
	tmpl     *template
	stateful bool
	replicas int
	labels   map[string]string // labels common to all replicas
	ports    []port            // main container ports
	image    string
	hash     string
}

// pick returns one of the weighted choices.
func pick[T any](r *rand.Rand, choices []weighted[T]) T {
	total := 0
	for _, c := range choices {
		total += c.w
	}
	n := r.IntN(total)
	for _, c := range choices {
		if n < c.w {
			return c.v
		}
		n -= c.w
	}
	panic("unreachable")
}

// oneOf returns a random element of s.
func oneOf[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// chance reports true with probability p.
func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

// safeAlphabet is the alphabet Kubernetes uses for generated name suffixes
// and pod-template-hash values.
const safeAlphabet = "bcdfghjklmnpqrstvwxz2456789"

// randString returns n characters of safeAlphabet.
func (g *gen) randString(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = safeAlphabet[g.r.IntN(len(safeAlphabet))]
	}
	return string(b)
}

// namespaces creates the namespaces: kube-system, then monitoring and
// ingress-nginx when there is room for an application namespace too, then
// application namespaces named <team>-<product>-<env>.
func (g *gen) namespaces() {
	n := g.cfg.Namespaces
	used := map[string]bool{}
	add := func(ni *nsInfo) {
		ni.idx = len(g.ns)
		ni.polNames = map[string]bool{}
		ni.labels[metadataName] = ni.name
		used[ni.name] = true
		g.ns = append(g.ns, ni)
		g.out.Namespaces = append(g.out.Namespaces, &corev1.Namespace{
			TypeMeta:   typeMeta("v1", "Namespace"),
			ObjectMeta: objectMeta(ni.name, "", ni.labels),
			Status:     corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
		})
	}
	if n == 0 {
		return
	}
	add(&nsInfo{name: "kube-system", kind: nsKubeSystem, labels: map[string]string{}})
	if n >= 4 {
		g.promNS = &nsInfo{name: "monitoring", kind: nsMonitoring, team: "platform", env: "prod",
			labels: map[string]string{"team": "platform", "env": "prod", "purpose": "monitoring"}}
		add(g.promNS)
		g.ingNS = &nsInfo{name: "ingress-nginx", kind: nsIngress, team: "platform", env: "prod",
			labels: map[string]string{"team": "platform", "env": "prod", "purpose": "ingress"}}
		add(g.ingNS)
	}
	for len(g.ns) < n {
		team := pick(g.r, teams)
		env := pick(g.r, envs)
		name := team + "-" + oneOf(g.r, products) + "-" + env
		for i := 2; used[name]; i++ {
			name = fmt.Sprintf("%s-%s-%s-%d", team, oneOf(g.r, products), env, i)
		}
		ni := &nsInfo{name: name, kind: nsApp, team: team, env: env,
			labels: map[string]string{"team": team, "env": env}}
		if g.chance(0.25) {
			ni.istio = true
			ni.labels["istio-injection"] = "enabled"
		}
		if g.chance(0.3) {
			ni.labels["pod-security.kubernetes.io/enforce"] = oneOf(g.r, []string{"baseline", "restricted"})
		}
		if team == "payments" && g.chance(0.4) {
			ni.labels["compliance"] = "pci"
		}
		// Skewed sizes: a lognormal weight, doubled for prod.
		ni.weight = math.Exp(g.r.NormFloat64())
		if env == "prod" {
			ni.weight *= 2
		}
		add(ni)
	}
	for _, ni := range g.ns {
		if ni.kind == nsApp {
			g.appNS = append(g.appNS, ni)
		}
	}
	if len(g.appNS) == 0 {
		// Only kube-system: applications live there too.
		g.ns[0].weight = 1
		g.appNS = g.ns[:1]
	}
}

// collectPolicies lists the policies grouped by namespace, in generation
// order within a namespace.
func (g *gen) collectPolicies() {
	for _, ni := range g.ns {
		g.out.Policies = append(g.out.Policies, ni.policies...)
	}
}
