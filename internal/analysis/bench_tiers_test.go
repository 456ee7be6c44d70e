package analysis

import (
	"context"
	"fmt"
	"testing"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
	"github.com/netfence/netfence/test/synth"
)

// synthTierSet is a synthetic cluster (test/synth) on 10 nodes with cnps
// cluster policies: test/synth's Node objects, host-network node exporters
// and random but realistic ClusterNetworkPolicies of both tiers
// (guardrails around pci namespaces, a cloud-metadata block, Pass between
// tenants, node access, CIDR egress rules, tenant baselines, pod subjects,
// domain names, some equal priorities).
func synthTierSet(tb testing.TB, pods, namespaces, policies, cnps int) *policy.Set {
	tb.Helper()
	objs, err := synth.Generate(synth.Config{Pods: pods, Namespaces: namespaces, Policies: policies, Seed: 1, Nodes: 10, ClusterPolicies: cnps})
	if err != nil {
		tb.Fatal(err)
	}
	base := cluster.FromAPI(objs.Namespaces, objs.Pods, objs.Policies)
	parts := cluster.Parts{Pods: base.Pods, Policies: base.Policies}
	for _, ns := range objs.Namespaces {
		parts.Namespaces = append(parts.Namespaces, cluster.NamespaceFromAPI(ns))
	}
	for _, n := range objs.Nodes {
		parts.Nodes = append(parts.Nodes, cluster.NodeFromAPI(n))
	}
	for _, p := range objs.ClusterPolicies {
		parts.ClusterPolicies = append(parts.ClusterPolicies, cluster.FromCNP(p))
	}
	set := policy.NewSet(cluster.NewWith(parts))
	if len(set.Rejected) > 0 {
		tb.Fatalf("synthetic policies rejected: %v", set.Rejected)
	}
	return set
}

// BenchmarkMatrixTiers measures the truth table's summary with cluster
// policies: 4 ports, as `matrix -o summary` computes it.
func BenchmarkMatrixTiers(b *testing.B) {
	for _, size := range []struct{ pods, ns, pols, cnps int }{{1000, 20, 10, 50}, {5000, 100, 1000, 200}} {
		b.Run(fmt.Sprintf("pods=%d/policies=%d/cnps=%d", size.pods, size.pols, size.cnps), func(b *testing.B) {
			set := synthTierSet(b, size.pods, size.ns, size.pols, size.cnps)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m, err := ComputeMatrix(context.Background(), set, Options{Ports: benchPorts, CountsOnly: true})
				if err != nil {
					b.Fatal(err)
				}
				m.Summary()
				b.ReportMetric(float64(m.Classes()), "classes")
			}
		})
	}
}

// BenchmarkTierConflicts measures the equal-priority check every analyzer
// command runs on load.
func BenchmarkTierConflicts(b *testing.B) {
	set := synthTierSet(b, 5000, 100, 1000, 200)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cs, err := TierConflicts(context.Background(), set)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(cs)), "conflicts")
	}
}
