package analysis

import (
	"context"
	"fmt"
	"testing"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
	"github.com/netfence/netfence/test/synth"
)

func synthSet(tb testing.TB, pods, namespaces, policies int) *policy.Set {
	tb.Helper()
	objs, err := synth.Generate(synth.Config{Pods: pods, Namespaces: namespaces, Policies: policies, Seed: 1, Nodes: 10})
	if err != nil {
		tb.Fatal(err)
	}
	set := policy.NewSet(cluster.FromAPI(objs.Namespaces, objs.Pods, objs.Policies))
	if len(set.Rejected) > 0 {
		tb.Fatalf("synthetic policies rejected: %v", set.Rejected)
	}
	return set
}

var benchPorts = []Port{{Protocol: "TCP", Port: 80}, {Protocol: "TCP", Port: 8080}, {Protocol: "UDP", Port: 53}, {Protocol: "TCP", Port: 5432}}

// BenchmarkMatrix measures the class-based truth table and its summary
// (without reading manifests; `hack/bench-analyzer` times the whole command).
func BenchmarkMatrix(b *testing.B) {
	for _, size := range []struct{ pods, ns, pols int }{{1000, 20, 10}, {5000, 100, 1000}, {50000, 500, 5000}} {
		b.Run(fmt.Sprintf("pods=%d/policies=%d", size.pods, size.pols), func(b *testing.B) {
			if size.pods > 5000 && testing.Short() {
				b.Skip("large size skipped in -short mode")
			}
			set := synthSet(b, size.pods, size.ns, size.pols)
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
