package conformance_test

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/conformance"
	"github.com/netfence/netfence/internal/policy"
)

// TestAnalyzerConformance replays every upstream conformance test on the
// analyzer: per step, the state is read through netfence's loader, compiled
// (policy.NewSet), and every probe's flow, from the client's status.podIP
// to the server's, is evaluated; the verdict must be upstream's
// shouldConnect. One sub-test per stack, upstream test and upstream t.Run.
func TestAnalyzerConformance(t *testing.T) {
	t.Parallel()
	subtests, steps, probes := conformance.Counts(conformance.Scenarios())
	t.Logf("%d scenarios, %d sub-tests, %d steps, %d probes per stack", len(conformance.Scenarios()), subtests, steps, probes)
	for _, stack := range conformance.Stacks() {
		t.Run(stack.String(), func(t *testing.T) {
			t.Parallel()
			base, err := conformance.Base(stack)
			if err != nil {
				t.Fatal(err)
			}
			for _, sc := range conformance.Scenarios() {
				t.Run(sc.Name, func(t *testing.T) {
					t.Parallel()
					runScenario(t, base, sc)
				})
			}
		})
	}
}

func runScenario(t *testing.T, base *conformance.State, sc conformance.Scenario) {
	st, err := sc.Start(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range sc.Subtests {
		// Sub-tests share the state, as upstream's do: run them in
		// order, and go on after a failure as upstream does.
		t.Run(sub.Name, func(t *testing.T) {
			for _, step := range sub.Steps {
				for _, m := range step.Mutations {
					if err := st.Mutate(m); err != nil {
						t.Fatalf("%s: %v", sc.File, err)
					}
				}
				if len(step.Probes) == 0 {
					continue
				}
				c, err := st.Cluster()
				if err != nil {
					t.Fatalf("%s: %v", sc.File, err)
				}
				set := policy.NewSet(c)
				if len(set.Rejected) > 0 {
					t.Fatalf("rejected policies: %v", set.Rejected)
				}
				for _, p := range step.Probes {
					src, dst, err := st.Endpoints(p)
					if err != nil {
						t.Fatalf("%s:%d: %v", sc.File, p.Line, err)
					}
					v := set.Evaluate(set.AddrFlow(src, dst, p.Protocol, p.Port))
					if v.Allowed != p.ShouldConnect {
						t.Errorf("%s:%d: %s (%s -> %s): allowed %v\n  egress:  %s\n  ingress: %s", sc.File, p.Line, p, src, dst, v.Allowed, v.Egress.Reason, v.Ingress.Reason)
					}
				}
			}
		})
	}
}

// TestProbesNeedThePolicies: every probe upstream expects to be refused
// connects on the base cluster, which has no policy: each one fails
// TestAnalyzerConformance if the analyzer ignores the scenario's policies
// (and each expected connection fails it if the analyzer refuses too
// much), so the table can fail.
func TestProbesNeedThePolicies(t *testing.T) {
	t.Parallel()
	base, err := conformance.Base(conformance.DualStack)
	if err != nil {
		t.Fatal(err)
	}
	c, err := base.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	set := policy.NewSet(c)
	refused := 0
	for _, sc := range conformance.Scenarios() {
		for _, sub := range sc.Subtests {
			for _, step := range sub.Steps {
				for _, p := range step.Probes {
					src, dst, err := base.Endpoints(p)
					if err != nil {
						t.Fatal(err)
					}
					if !set.Evaluate(set.AddrFlow(src, dst, p.Protocol, p.Port)).Allowed {
						t.Errorf("%s:%d: %s: refused without any policy", sc.File, p.Line, p)
					}
					if !p.ShouldConnect {
						refused++
					}
				}
			}
		}
	}
	if refused == 0 {
		t.Error("no probe expects a refusal")
	}
}

// TestBase: the base cluster is conformance/base/manifests.yaml as a kind
// cluster runs it.
func TestBase(t *testing.T) {
	t.Parallel()
	for _, stack := range conformance.Stacks() {
		t.Run(stack.String(), func(t *testing.T) {
			t.Parallel()
			base, err := conformance.Base(stack)
			if err != nil {
				t.Fatal(err)
			}
			c, err := base.Cluster()
			if err != nil {
				t.Fatal(err)
			}
			houses := map[string]string{
				"network-policy-conformance-gryffindor":        "gryffindor",
				"network-policy-conformance-slytherin":         "slytherin",
				"network-policy-conformance-hufflepuff":        "hufflepuff",
				"network-policy-conformance-ravenclaw":         "ravenclaw",
				"network-policy-conformance-forbidden-forrest": "forbidden-forrest",
			}
			if len(c.Namespaces) != len(houses) {
				t.Errorf("namespaces %v", c.Namespaces)
			}
			for name, house := range houses {
				ns := c.Namespaces[name]
				if ns == nil || !ns.Defined || ns.Labels["conformance-house"] != house || ns.Labels[cluster.MetadataNameLabel] != name {
					t.Errorf("namespace %s: %+v", name, ns)
				}
			}
			if len(c.Nodes) != 2 || len(c.Pods) != 10 {
				t.Fatalf("%d nodes, %d pods, want 2 and 10", len(c.Nodes), len(c.Pods))
			}
			families := 1
			if stack == conformance.DualStack {
				families = 2
			}
			pod4 := netip.MustParsePrefix("10.244.0.0/16")
			pod6 := netip.MustParsePrefix("fd00:10:244::/48")
			for _, n := range c.Nodes {
				if n.Labels["kubernetes.io/os"] != "linux" || n.Labels["kubernetes.io/hostname"] != n.Name || len(n.Addrs) != families {
					t.Errorf("node %+v", n)
				}
			}
			seen := map[netip.Addr]string{}
			for _, p := range c.Pods {
				if ok, why := p.Active(); !ok {
					t.Errorf("%s %s", p.Key(), why)
				}
				if len(p.IPs) != families || (stack == conformance.IPv6) == p.IPs[0].Is4() {
					t.Errorf("%s: addresses %v", p.Key(), p.IPs)
				}
				for _, ip := range p.IPs {
					if !pod4.Contains(ip) && !pod6.Contains(ip) {
						t.Errorf("%s: address %s outside the pod networks", p.Key(), ip)
					}
				}
				wantHost := p.Namespace == "network-policy-conformance-forbidden-forrest"
				if p.HostNetwork != wantHost {
					t.Errorf("%s: hostNetwork %v", p.Key(), p.HostNetwork)
				}
				node := c.Node(p.NodeName)
				if node == nil {
					t.Fatalf("%s: no node %q", p.Key(), p.NodeName)
				}
				if p.HostNetwork {
					// A host-network pod's address is its node's.
					for _, ip := range p.IPs {
						if nodes := c.NodesWithAddr(ip); len(nodes) != 1 || nodes[0] != node {
							t.Errorf("%s: %s is not the address of its node %s", p.Key(), ip, node.Name)
						}
					}
					continue
				}
				if p.Labels["statefulset.kubernetes.io/pod-name"] != p.Name {
					t.Errorf("%s: labels %v", p.Key(), p.Labels)
				}
				for _, ip := range p.IPs {
					if other, dup := seen[ip]; dup {
						t.Errorf("%s and %s share %s", p.Key(), other, ip)
					}
					seen[ip] = p.Key()
				}
				if port, ok := p.NamedPort("web", corev1.ProtocolTCP); !ok || port != 80 {
					t.Errorf("%s: named port web = %d, %v", p.Key(), port, ok)
				}
				if port, ok := p.NamedPort("dns", corev1.ProtocolUDP); !ok || port != 53 {
					t.Errorf("%s: named port dns = %d, %v", p.Key(), port, ok)
				}
			}
			// The rendered template of the host-network pods.
			centaur := c.Pod("network-policy-conformance-forbidden-forrest/centaur-1")
			name := fmt.Sprintf("web-%d", conformance.HostNetworkPort(0))
			if port, ok := centaur.NamedPort(name, corev1.ProtocolTCP); !ok || port != conformance.HostNetworkPort(0) {
				t.Errorf("centaur-1: named port %s = %d, %v", name, port, ok)
			}
			if conformance.HostNetworkPort(7) != 34352 {
				t.Errorf("host network ports %d..%d, want upstream's default 34345..34352", conformance.HostNetworkPort(0), conformance.HostNetworkPort(7))
			}
		})
	}
}

// TestStateIsolation: a scenario's changes do not leak into the base
// state or into other scenarios.
func TestStateIsolation(t *testing.T) {
	t.Parallel()
	base, err := conformance.Base(conformance.IPv4)
	if err != nil {
		t.Fatal(err)
	}
	before, err := base.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range conformance.Scenarios() {
		st, err := sc.Start(base)
		if err != nil {
			t.Fatal(err)
		}
		for _, sub := range sc.Subtests {
			for _, step := range sub.Steps {
				for _, m := range step.Mutations {
					if err := st.Mutate(m); err != nil {
						t.Fatalf("%s: %v", sc.Name, err)
					}
				}
			}
		}
	}
	after, err := base.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Error("the scenarios changed the base state")
	}
}

// TestMutations: the changes do what the upstream code does, read back
// through the loader.
func TestMutations(t *testing.T) {
	t.Parallel()
	base, err := conformance.Base(conformance.IPv6)
	if err != nil {
		t.Fatal(err)
	}
	find := func(name string) conformance.Scenario {
		for _, sc := range conformance.Scenarios() {
			if sc.Name == name {
				return sc
			}
		}
		t.Fatalf("no scenario %s", name)
		return conformance.Scenario{}
	}
	// run applies every change of a scenario and returns the cluster.
	run := func(name string) *cluster.Cluster {
		sc := find(name)
		st, err := sc.Start(base)
		if err != nil {
			t.Fatal(err)
		}
		for _, sub := range sc.Subtests {
			for _, step := range sub.Steps {
				for _, m := range step.Mutations {
					if err := st.Mutate(m); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		c, err := st.Cluster()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// egress-tcp: swap 0,1 then 0,2 then 3,4.
	c := run("CNPAdminTierEgressTCP")
	var names []string
	for _, r := range c.ClusterPolicy("cnp/egress-tcp").Spec.Egress {
		names = append(names, r.Name)
	}
	want := []string{"pass-to-ravenclaw-everything", "allow-to-ravenclaw-everything", "deny-to-ravenclaw-everything",
		"pass-to-slytherin-at-port-80", "deny-to-slytherin-at-port-80", "allow-to-hufflepuff-at-port-8080", "deny-to-hufflepuff-everything-else"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("egress-tcp rules %v, want %v", names, want)
	}

	// The inserted CIDR rule: /128 of the IPv6 addresses of
	// luna-lovegood-0 and cedric-diggory-0; the namespace labels back
	// to slytherin.
	c = run("CNPAdminTierEgressInlineCIDRPeers")
	first := c.ClusterPolicy("cnp/inline-cidr-as-peers-example").Spec.Egress[0]
	var nets []string
	for _, ref := range []string{"network-policy-conformance-ravenclaw/luna-lovegood-0", "network-policy-conformance-hufflepuff/cedric-diggory-0"} {
		nets = append(nets, c.Pod(ref).IPs[0].String()+"/128")
	}
	if first.Name != "allow-egress-to-specific-podIPs" || first.Action != "Accept" || len(first.To) != 1 ||
		fmt.Sprint(first.To[0].Networks) != fmt.Sprint(nets) {
		t.Errorf("first egress rule %+v, want Accept to %v", first, nets)
	}
	if l := c.NamespaceLabels("network-policy-conformance-slytherin"); l["conformance-house"] != "slytherin" || l[cluster.MetadataNameLabel] != "network-policy-conformance-slytherin" {
		t.Errorf("slytherin labels %v", l)
	}

	// Integration: both actions Pass, the NetworkPolicy gone.
	c = run("CNPAdminTierIntegration")
	pe := c.ClusterPolicy("cnp/pass-example").Spec
	if pe.Ingress[0].Action != "Pass" || pe.Egress[0].Action != "Pass" || len(c.Policies) != 0 {
		t.Errorf("pass-example %+v, %d NetworkPolicies", pe, len(c.Policies))
	}

	// Priority, named port, labels after the cleanups.
	c = run("CNPAdminTierPriorityField")
	if p := c.ClusterPolicy("cnp/old-priority-60-new-priority-40-example").Spec.Priority; p != 40 {
		t.Errorf("priority %d", p)
	}
	c = run("CNPBaselineTierIngressNamedPort")
	if pr := c.ClusterPolicy("cnp/default").Spec.Ingress[3].Protocols; len(pr) != 1 || pr[0].DestinationNamedPort != "web" {
		t.Errorf("ingress[3] protocols %+v", pr)
	}
	c = run("CNPAdminTierPodSelector")
	for _, p := range c.Pods {
		if _, ok := p.Labels["conformance-role"]; ok {
			t.Errorf("%s keeps conformance-role after the cleanups", p.Key())
		}
	}
}
