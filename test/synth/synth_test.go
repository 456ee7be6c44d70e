package synth

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

var testConfigs = []Config{
	{},
	{Pods: 1, Namespaces: 1, Policies: 1},
	{Pods: 5, Namespaces: 1, Policies: 20, Seed: 3},
	{Pods: 10, Namespaces: 2, Policies: 15, Seed: 4, IPv6: true},
	{Pods: 100, Namespaces: 3, Policies: 5, Seed: 5},
	{Pods: 0, Namespaces: 10, Policies: 50, Seed: 6, IPv6: true},
	{Pods: 300, Namespaces: 40, Policies: 0, Seed: 7, Nodes: 4},
	{Pods: 2000, Namespaces: 50, Policies: 400, Seed: 8, Nodes: 7, IPv6: true},
	{Pods: 5000, Namespaces: 100, Policies: 1000, Seed: 1, Nodes: 10},
	{Pods: 0, Namespaces: 1, ClusterPolicies: 5, Seed: 2},
	{Pods: 10, Namespaces: 3, Policies: 5, Seed: 3, Nodes: 2, ClusterPolicies: 20},
	{Pods: 300, Namespaces: 40, Policies: 30, Seed: 7, Nodes: 4, ClusterPolicies: 40, IPv6: true},
	{Pods: 5000, Namespaces: 100, Policies: 1000, Seed: 1, Nodes: 10, ClusterPolicies: 200},
}

// testName names a test config.
func testName(cfg Config) string {
	if cfg.ClusterPolicies == 0 {
		return fmt.Sprintf("%d/%d/%d", cfg.Pods, cfg.Namespaces, cfg.Policies)
	}
	return fmt.Sprintf("%d/%d/%d/%d", cfg.Pods, cfg.Namespaces, cfg.Policies, cfg.ClusterPolicies)
}

// wantNodes is how many Node objects (and node exporters) cfg gives.
func wantNodes(cfg Config) int {
	if cfg.ClusterPolicies == 0 {
		return 0
	}
	return max(cfg.Nodes, 1)
}

func mustGenerate(t testing.TB, cfg Config) *Objects {
	t.Helper()
	o, err := Generate(cfg)
	if err != nil {
		t.Fatalf("Generate(%+v): %v", cfg, err)
	}
	return o
}

func yamlBytes(t testing.TB, o *Objects) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := o.WriteYAML(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDeterministic(t *testing.T) {
	cfg := Config{Pods: 3000, Namespaces: 60, Policies: 600, Seed: 42, Nodes: 5, IPv6: true, ClusterPolicies: 100}
	a := yamlBytes(t, mustGenerate(t, cfg))
	b := yamlBytes(t, mustGenerate(t, cfg))
	if !bytes.Equal(a, b) {
		t.Fatal("same config gave different YAML")
	}
	// The output does not depend on how many CPUs convert it.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	if b := yamlBytes(t, mustGenerate(t, cfg)); !bytes.Equal(a, b) {
		t.Fatal("GOMAXPROCS=1 gave different YAML")
	}
	cfg.Seed++
	c := yamlBytes(t, mustGenerate(t, cfg))
	if bytes.Equal(a, c) {
		t.Fatal("different seeds gave the same YAML")
	}
}

func TestCounts(t *testing.T) {
	for _, cfg := range testConfigs {
		t.Run(testName(cfg), func(t *testing.T) {
			o := mustGenerate(t, cfg)
			nodes := wantNodes(cfg)
			if len(o.Pods) != cfg.Pods+nodes || len(o.Namespaces) != cfg.Namespaces || len(o.Policies) != cfg.Policies ||
				len(o.Nodes) != nodes || len(o.ClusterPolicies) != cfg.ClusterPolicies {
				t.Fatalf("got %d pods, %d namespaces, %d policies, %d nodes, %d cluster policies; want %d, %d, %d, %d, %d",
					len(o.Pods), len(o.Namespaces), len(o.Policies), len(o.Nodes), len(o.ClusterPolicies),
					cfg.Pods+nodes, cfg.Namespaces, cfg.Policies, nodes, cfg.ClusterPolicies)
			}
			if cfg.Namespaces > 0 && o.Namespaces[0].Name != "kube-system" {
				t.Errorf("first namespace is %q, want kube-system", o.Namespaces[0].Name)
			}
		})
	}
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Pods: -1, Namespaces: 1},
		{Pods: 1, Namespaces: -1},
		{Policies: -1, Namespaces: 1},
		{Nodes: -1},
		{Nodes: MaxNodes + 1, Namespaces: 1},
		{Pods: 1},
		{Policies: 1},
		{Pods: maxPodsWithIPs, Namespaces: 1},
		{ClusterPolicies: -1, Namespaces: 1},
		{ClusterPolicies: 1},
	} {
		if _, err := Generate(cfg); err == nil {
			t.Errorf("Generate(%+v) succeeded", cfg)
		}
	}
}

func TestValid(t *testing.T) {
	for _, cfg := range testConfigs {
		t.Run(testName(cfg), func(t *testing.T) {
			o := mustGenerate(t, cfg)
			namespaces := sets.New[string]()
			for _, ns := range o.Namespaces {
				if namespaces.Has(ns.Name) {
					t.Errorf("duplicate namespace %s", ns.Name)
				}
				namespaces.Insert(ns.Name)
				for _, e := range validateNamespace(ns) {
					t.Errorf("namespace %s: %v", ns.Name, e)
				}
			}
			names := sets.New[string]()
			for _, p := range o.Pods {
				key := p.Namespace + "/" + p.Name
				if names.Has(key) {
					t.Errorf("duplicate pod %s", key)
				}
				names.Insert(key)
				for _, e := range validatePod(p, namespaces, cfg) {
					t.Errorf("pod %s: %v", key, e)
				}
			}
			names = sets.New[string]()
			for _, np := range o.Policies {
				key := np.Namespace + "/" + np.Name
				if names.Has(key) {
					t.Errorf("duplicate policy %s", key)
				}
				names.Insert(key)
				for _, e := range validatePolicy(np, namespaces) {
					t.Errorf("policy %s: %v", key, e)
				}
			}
			// Nodes have the host IPs of their pods. (The cluster
			// policies are validated against their CRD in
			// TestLoaderReadsClusterPolicies.)
			hostIPs := map[string][]corev1.HostIP{}
			for _, p := range o.Pods {
				hostIPs[p.Spec.NodeName] = p.Status.HostIPs
			}
			names = sets.New[string]()
			for _, n := range o.Nodes {
				if names.Has(n.Name) {
					t.Errorf("duplicate node %s", n.Name)
				}
				names.Insert(n.Name)
				for _, e := range validateNode(n, hostIPs[n.Name]) {
					t.Errorf("node %s: %v", n.Name, e)
				}
			}
			names = sets.New[string]()
			for _, cnp := range o.ClusterPolicies {
				if names.Has(cnp.Name) {
					t.Errorf("duplicate cluster policy %s", cnp.Name)
				}
				names.Insert(cnp.Name)
				for _, e := range validateMeta(cnp.Name, cnp.Namespace, cnp.Labels, false, nil, field.NewPath("metadata")) {
					t.Errorf("cluster policy %s: %v", cnp.Name, e)
				}
			}
		})
	}
}

// TestValidatorCatchesErrors makes sure the validator used above is not
// vacuous.
func TestValidatorCatchesErrors(t *testing.T) {
	ns := sets.New("a")
	port := intstr.FromString("http")
	bad := []networkingv1.NetworkPolicySpec{
		{PodSelector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: metav1.LabelSelectorOpIn}}}},
		{PodSelector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: metav1.LabelSelectorOpExists, Values: []string{"x"}}}}},
		{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{}}}}},
		{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{IPBlock: ipBlock(pfx("10.0.0.0/8")), PodSelector: &metav1.LabelSelector{}}}}}},
		{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.1/8"}}}}}},
		{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{IPBlock: ipBlock(pfx("10.0.0.0/8"), pfx("10.0.0.0/8"))}}}}},
		{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{IPBlock: ipBlock(pfx("10.0.0.0/16"), pfx("10.1.0.0/24"))}}}}},
		{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{IPBlock: ipBlock(pfx("::/0"), pfx("10.1.0.0/24"))}}}}},
		{Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{rangePort(corev1.ProtocolTCP, 100, 99)}}}},
		{Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: &port, EndPort: new(int32(90))}}}}},
		{Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{namedPort(corev1.ProtocolTCP, "Not_Valid")}}}},
		{Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{numPort("ICMP", 1)}}}},
		{PolicyTypes: []networkingv1.PolicyType{"Ingress", "Ingress"}},
		{PolicyTypes: []networkingv1.PolicyType{"Sideways"}},
	}
	for i, spec := range bad {
		np := &networkingv1.NetworkPolicy{TypeMeta: typeMeta("networking.k8s.io/v1", "NetworkPolicy"),
			ObjectMeta: objectMeta("p", "a", nil), Spec: spec}
		if len(validatePolicy(np, ns)) == 0 {
			t.Errorf("bad spec %d passed validation: %+v", i, spec)
		}
	}
}

func TestUniqueIPs(t *testing.T) {
	for _, cfg := range []Config{
		// One node overflows its /24 many times.
		{Pods: 4000, Namespaces: 20, Seed: 1, Nodes: 1, IPv6: true},
		// More nodes than /24s in 10.244.0.0/16.
		{Pods: 3000, Namespaces: 20, Seed: 2, Nodes: 400, IPv6: true},
	} {
		o := mustGenerate(t, cfg)
		seen := map[string]string{}
		blockNode := map[netip.Prefix]string{}
		pending := 0
		for _, p := range o.Pods {
			if p.Status.Phase == corev1.PodPending {
				pending++
			}
			for _, ip := range p.Status.PodIPs {
				if other, dup := seen[ip.IP]; dup {
					t.Fatalf("pods %s and %s/%s share %s", other, p.Namespace, p.Name, ip.IP)
				}
				seen[ip.IP] = p.Namespace + "/" + p.Name
				a := netip.MustParseAddr(ip.IP)
				bits := 24
				if a.Is6() {
					bits = 64
				}
				b, _ := a.Prefix(bits)
				if n, ok := blockNode[b]; ok && n != p.Spec.NodeName {
					t.Fatalf("block %s used by %s and %s", b, n, p.Spec.NodeName)
				}
				blockNode[b] = p.Spec.NodeName
			}
		}
		running := cfg.Pods - pending
		want := running
		if cfg.IPv6 {
			want *= 2
		}
		if len(seen) != want {
			t.Errorf("%d addresses for %d running pods", len(seen), running)
		}
		if pending == 0 || pending > cfg.Pods/20 {
			t.Errorf("%d of %d pods pending, want a few", pending, cfg.Pods)
		}
	}
	// The block arithmetic wraps round inside 10.0.0.0/8.
	for b, want := range map[int]string{0: "10.244.0.0/24", 255: "10.244.255.0/24", 256: "10.245.0.0/24",
		12*256 - 1: "10.255.255.0/24", 12 * 256: "10.0.0.0/24", maxBlocks - 1: "10.243.255.0/24"} {
		if got := blockPrefix4(b).String(); got != want {
			t.Errorf("blockPrefix4(%d) = %s, want %s", b, got, want)
		}
	}
	if got := blockPrefix6(0x1234).String(); got != "fd00:10:244:1234::/64" {
		t.Errorf("blockPrefix6 = %s", got)
	}
}

// splitDocs splits a YAML stream into documents.
func splitDocs(t testing.TB, data []byte) [][]byte {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		d, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
}

// unmarshalInto decodes the YAML document d strictly into a new T appended
// to list.
func unmarshalInto[T any](d []byte, list *[]*T) error {
	x := new(T)
	*list = append(*list, x)
	return yaml.UnmarshalStrict(d, x)
}

func TestYAMLRoundTrip(t *testing.T) {
	for _, cfg := range []Config{
		{Pods: 800, Namespaces: 30, Policies: 400, Seed: 9, Nodes: 3, IPv6: true},
		{Pods: 200, Namespaces: 5, Policies: 100, Seed: 10},
		{Pods: 300, Namespaces: 10, Policies: 50, Seed: 11, Nodes: 3, IPv6: true, ClusterPolicies: 60},
	} {
		o := mustGenerate(t, cfg)
		data := yamlBytes(t, o)
		docs := splitDocs(t, data)
		if want := len(o.Namespaces) + len(o.Pods) + len(o.Policies) + len(o.Nodes) + len(o.ClusterPolicies); len(docs) != want {
			t.Fatalf("%d documents, want %d", len(docs), want)
		}
		var back Objects
		for i, d := range docs {
			// WriteYAML puts the kind first; that saves a second parse.
			kind, _, _ := strings.Cut(string(d), "\n")
			var err error
			switch strings.TrimPrefix(kind, "kind: ") {
			case "Namespace":
				err = unmarshalInto(d, &back.Namespaces)
			case "Node":
				err = unmarshalInto(d, &back.Nodes)
			case "Pod":
				err = unmarshalInto(d, &back.Pods)
			case "NetworkPolicy":
				err = unmarshalInto(d, &back.Policies)
			case "ClusterNetworkPolicy":
				err = unmarshalInto(d, &back.ClusterPolicies)
			default:
				t.Fatalf("document %d starts with %q", i, kind)
			}
			if err != nil {
				t.Fatalf("document %d: %v\n%s", i, err, d)
			}
		}
		if !equality.Semantic.DeepEqual(o.Namespaces, back.Namespaces) {
			t.Error("namespaces differ after YAML round trip")
		}
		if !equality.Semantic.DeepEqual(o.Pods, back.Pods) {
			t.Error("pods differ after YAML round trip")
		}
		if !equality.Semantic.DeepEqual(o.Nodes, back.Nodes) {
			t.Error("nodes differ after YAML round trip")
		}
		if !equality.Semantic.DeepEqual(o.ClusterPolicies, back.ClusterPolicies) {
			t.Error("cluster policies differ after YAML round trip")
		}
		for i := range o.Policies {
			if !equality.Semantic.DeepEqual(o.Policies[i], back.Policies[i]) {
				a, _ := yaml.Marshal(o.Policies[i])
				b, _ := yaml.Marshal(back.Policies[i])
				t.Fatalf("policy %d differs after YAML round trip:\n%s\nvs\n%s", i, a, b)
			}
		}
		// Documents are separated by "---" lines.
		if n := strings.Count(string(data), "\n---\n"); n != len(docs)-1 {
			t.Errorf("%d separators for %d documents", n, len(docs))
		}
	}
}

// TestRealism checks the structure the analyzer's performance depends on.
func TestRealism(t *testing.T) {
	cfg := Config{Pods: 5000, Namespaces: 100, Policies: 1000, Seed: 1, Nodes: 10, IPv6: true}
	o := mustGenerate(t, cfg)

	// Workloads: replica counts are skewed.
	sizes := map[string]int{}
	for _, p := range o.Pods {
		app := p.Labels["app"]
		if app == "" {
			app = p.Labels["k8s-app"] + p.Labels["app.kubernetes.io/name"]
		}
		sizes[p.Namespace+"/"+app+"/"+p.Labels["version"]]++
	}
	single, large := 0, 0
	for _, n := range sizes {
		if n == 1 {
			single++
		}
		if n >= 13 {
			large++
		}
	}
	t.Logf("%d workloads: %d with 1 pod, %d with 13+", len(sizes), single, large)
	if single < len(sizes)/4 || large == 0 {
		t.Errorf("replica counts not skewed: %d single, %d large of %d", single, large, len(sizes))
	}

	// The same port name maps to several numbers.
	nums := map[string]sets.Set[int32]{}
	nodes := sets.New[string]()
	tiers := sets.New[string]()
	for _, p := range o.Pods {
		nodes.Insert(p.Spec.NodeName)
		tiers.Insert(p.Labels["tier"])
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				if nums[cp.Name] == nil {
					nums[cp.Name] = sets.New[int32]()
				}
				nums[cp.Name].Insert(cp.ContainerPort)
			}
		}
	}
	if nums["http"].Len() < 3 || nums["grpc"].Len() < 2 || nums["metrics"].Len() < 3 {
		t.Errorf("port names do not map to several numbers: http %v grpc %v metrics %v",
			sets.List(nums["http"]), sets.List(nums["grpc"]), sets.List(nums["metrics"]))
	}
	if nodes.Len() != cfg.Nodes {
		t.Errorf("pods on %d nodes, want %d", nodes.Len(), cfg.Nodes)
	}
	if tiers.Len() < 8 {
		t.Errorf("only tiers %v", sets.List(tiers))
	}

	// Namespace labels.
	teamsSeen, envsSeen := sets.New[string](), sets.New[string]()
	for _, ns := range o.Namespaces[3:] {
		teamsSeen.Insert(ns.Labels["team"])
		envsSeen.Insert(ns.Labels["env"])
	}
	if teamsSeen.Len() < 8 || envsSeen.Len() != 3 {
		t.Errorf("teams %v envs %v", sets.List(teamsSeen), sets.List(envsSeen))
	}
	// kube-dns pods.
	dns := 0
	for _, p := range o.Pods {
		if p.Namespace == "kube-system" && p.Labels["k8s-app"] == "kube-dns" {
			dns++
		}
	}
	if dns != 2 {
		t.Errorf("%d kube-dns pods", dns)
	}

	// Policies use every feature.
	f := policyFeatures(o.Policies)
	for _, want := range []string{
		"default-deny-ingress", "default-deny-egress", "default-deny-all", "same-namespace",
		"port:named", "port:numeric", "port:endPort", "port:all", "proto:UDP", "proto:SCTP", "proto:TCP", "proto:default",
		"op:In", "op:NotIn", "op:Exists", "op:DoesNotExist", "nsSel:matchLabels", "nsSel:empty",
		"peer:pod+ns", "peer:pod", "peer:ns", "peer:multiple", "ipBlock:except", "ipBlock:plain", "ipBlock:v6", "ipBlock:podspace",
		"types:implicit", "types:explicit", "egress", "egress:dns", "rule:allow-all", "rule:ports-only", "rules:multiple",
	} {
		if f[want] == 0 {
			t.Errorf("no policy has feature %s", want)
		}
	}
	t.Logf("features: %v", f)
	nsWithPolicies := sets.New[string]()
	for _, p := range o.Policies {
		nsWithPolicies.Insert(p.Namespace)
	}
	if nsWithPolicies.Len() < cfg.Namespaces/2 {
		t.Errorf("policies in only %d namespaces", nsWithPolicies.Len())
	}
}

// policyFeatures counts the policies using each feature.
func policyFeatures(pols []*networkingv1.NetworkPolicy) map[string]int {
	f := map[string]int{}
	sel := func(s *metav1.LabelSelector, kind string) {
		if s == nil {
			return
		}
		if len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0 {
			f[kind+":empty"]++
		}
		if len(s.MatchLabels) > 0 {
			f[kind+":matchLabels"]++
		}
		for _, r := range s.MatchExpressions {
			f["op:"+string(r.Operator)]++
		}
	}
	ports := func(ps []networkingv1.NetworkPolicyPort) {
		if len(ps) == 0 {
			f["port:all"]++
		}
		for _, p := range ps {
			if p.Protocol == nil {
				f["proto:default"]++
			} else {
				f["proto:"+string(*p.Protocol)]++
			}
			switch {
			case p.Port == nil:
			case p.Port.Type == intstr.String:
				f["port:named"]++
			case p.EndPort != nil:
				f["port:endPort"]++
			default:
				f["port:numeric"]++
			}
		}
	}
	peers := func(ps []networkingv1.NetworkPolicyPeer) {
		if len(ps) > 1 {
			f["peer:multiple"]++
		}
		for _, p := range ps {
			switch {
			case p.PodSelector != nil && p.NamespaceSelector != nil:
				f["peer:pod+ns"]++
			case p.PodSelector != nil:
				f["peer:pod"]++
			case p.NamespaceSelector != nil:
				f["peer:ns"]++
			}
			sel(p.PodSelector, "podSel")
			sel(p.NamespaceSelector, "nsSel")
			if b := p.IPBlock; b != nil {
				if len(b.Except) > 0 {
					f["ipBlock:except"]++
				} else {
					f["ipBlock:plain"]++
				}
				c := netip.MustParsePrefix(b.CIDR)
				if c.Addr().Is6() {
					f["ipBlock:v6"]++
				} else if c.Overlaps(pfx("10.0.0.0/8")) {
					f["ipBlock:podspace"]++
				}
			}
			if p.NamespaceSelector != nil && p.NamespaceSelector.MatchLabels[metadataName] == "kube-system" {
				f["egress:dns"]++
			}
		}
	}
	for _, p := range pols {
		s := p.Spec
		if len(s.PolicyTypes) == 0 {
			f["types:implicit"]++
		} else {
			f["types:explicit"]++
		}
		empty := len(s.PodSelector.MatchLabels) == 0 && len(s.PodSelector.MatchExpressions) == 0
		if empty && len(s.Ingress) == 0 && len(s.Egress) == 0 {
			types := fmt.Sprint(s.PolicyTypes)
			switch types {
			case "[]", "[Ingress]":
				f["default-deny-ingress"]++
			case "[Egress]":
				f["default-deny-egress"]++
			case "[Ingress Egress]":
				f["default-deny-all"]++
			}
		}
		sel(&s.PodSelector, "podSel")
		if len(s.Ingress) > 1 || len(s.Egress) > 1 {
			f["rules:multiple"]++
		}
		if len(s.Egress) > 0 {
			f["egress"]++
		}
		for _, r := range s.Ingress {
			if len(r.From) == 0 && len(r.Ports) == 0 {
				f["rule:allow-all"]++
			} else if len(r.From) == 0 {
				f["rule:ports-only"]++
			}
			if len(r.From) == 1 && r.From[0].PodSelector != nil && r.From[0].NamespaceSelector == nil &&
				len(r.From[0].PodSelector.MatchLabels) == 0 && len(r.From[0].PodSelector.MatchExpressions) == 0 {
				f["same-namespace"]++
			}
			ports(r.Ports)
			peers(r.From)
		}
		for _, r := range s.Egress {
			if len(r.To) == 0 && len(r.Ports) == 0 {
				f["rule:allow-all"]++
			}
			ports(r.Ports)
			peers(r.To)
		}
	}
	return f
}

// TestTiming reports how long generating and writing takes (see also the
// benchmarks, which also cover 50,000 pods).
func TestTiming(t *testing.T) {
	cfg := Config{Pods: 5000, Namespaces: 100, Policies: 1000, Seed: 1, Nodes: 10}
	start := time.Now()
	o := mustGenerate(t, cfg)
	gen := time.Since(start)
	var n countWriter
	if err := o.WriteYAML(&n); err != nil {
		t.Fatal(err)
	}
	t.Logf("5000 pods/1000 policies: generate %v, write %v, %.1f MB", gen, time.Since(start)-gen, float64(n)/1e6)
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

func benchmarkGenerateWrite(b *testing.B, cfg Config) {
	var size int64
	for b.Loop() {
		o, err := Generate(cfg)
		if err != nil {
			b.Fatal(err)
		}
		var n countWriter
		if err := o.WriteYAML(&n); err != nil {
			b.Fatal(err)
		}
		size = int64(n)
	}
	b.ReportMetric(float64(size)/1e6, "MB")
}

func BenchmarkGenerateWrite5k(b *testing.B) {
	benchmarkGenerateWrite(b, Config{Pods: 5000, Namespaces: 100, Policies: 1000, Seed: 1, Nodes: 10})
}

func BenchmarkGenerateWrite50k(b *testing.B) {
	benchmarkGenerateWrite(b, Config{Pods: 50000, Namespaces: 500, Policies: 5000, Seed: 1, Nodes: 100})
}

func BenchmarkGenerateWrite50kIPv6(b *testing.B) {
	benchmarkGenerateWrite(b, Config{Pods: 50000, Namespaces: 500, Policies: 5000, Seed: 1, Nodes: 100, IPv6: true})
}

func BenchmarkGenerate50k(b *testing.B) {
	for b.Loop() {
		if _, err := Generate(Config{Pods: 50000, Namespaces: 500, Policies: 5000, Seed: 1, Nodes: 100}); err != nil {
			b.Fatal(err)
		}
	}
}
