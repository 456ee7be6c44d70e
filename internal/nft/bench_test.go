package nft

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

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

func reportModel(b *testing.B, m *Model) {
	c := m.Counts()
	b.ReportMetric(float64(len(m.Chains)), "chains")
	b.ReportMetric(float64(len(m.Sets)), "sets")
	b.ReportMetric(float64(c.Elements()), "elements")
	b.ReportMetric(float64(c.Rules()), "rules")
}

func BenchmarkRender(b *testing.B) {
	c := big()
	s := policy.NewSet(c)
	var m *Model
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m = Render(s, Options{Node: "node-0"})
	}
	b.StopTimer()
	reportModel(b, m)
}

func BenchmarkFullSync(b *testing.B) {
	ns := newNetNS(b)
	a := ns.applier(b)
	m := Render(policy.NewSet(big()), Options{Node: "node-0"})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := a.FullSync(m); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportModel(b, m)
	live, ok, err := a.Counts()
	if err != nil || !ok {
		b.Fatalf("Counts: %v %v", ok, err)
	}
	if fmt.Sprint(live) != fmt.Sprint(m.Counts()) {
		b.Fatal("live table differs from the model")
	}
}

// BenchmarkUpdateLabelChange changes the app label of one random pod per
// iteration (run with -benchtime=100x), re-renders, and applies the
// difference (Update is Diff then Apply). It reports percentiles of Apply
// (the netlink transaction) over the changes that touched the ruleset, and
// of the re-render that precedes it (cluster snapshot, policy compilation,
// Render, Diff) over all iterations.
func BenchmarkUpdateLabelChange(b *testing.B) {
	ns := newNetNS(b)
	a := ns.applier(b)
	c := big()
	opts := Options{Node: "node-0"}
	prev := Render(policy.NewSet(c), opts)
	if err := a.FullSync(prev); err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 7))
	var apply, rerender []time.Duration
	var changed, elems int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := c.Pods[r.IntN(len(c.Pods))]
		t0 := time.Now()
		c = relabel(c, p.Key(), genApps[r.IntN(len(genApps))])
		next := Render(policy.NewSet(c), opts)
		d := Diff(prev, next)
		t1 := time.Now()
		if err := a.Apply(d); err != nil {
			b.Fatalf("update %d: %v", i, err)
		}
		t2 := time.Now()
		rerender = append(rerender, t1.Sub(t0))
		if !d.Empty() {
			changed++
			apply = append(apply, t2.Sub(t1))
			for _, sc := range d.SetChanges {
				elems += len(sc.Add) + len(sc.Del)
			}
		}
		prev = next
	}
	b.StopTimer()
	pct := func(ds []time.Duration, p float64) float64 {
		if len(ds) == 0 {
			return 0
		}
		ds = slices.Clone(ds)
		slices.Sort(ds)
		return float64(ds[int(p*float64(len(ds)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(changed), "changes")
	b.ReportMetric(pct(apply, 0.5), "apply-p50-ms")
	b.ReportMetric(pct(apply, 0.99), "apply-p99-ms")
	b.ReportMetric(pct(rerender, 0.5), "rerender-p50-ms")
	b.ReportMetric(pct(rerender, 0.99), "rerender-p99-ms")
	if changed > 0 {
		b.ReportMetric(float64(elems)/float64(changed), "elements/change")
	}
	live, ok, err := a.Counts()
	if err != nil || !ok {
		b.Fatalf("Counts: %v %v", ok, err)
	}
	if fmt.Sprint(live) != fmt.Sprint(prev.Counts()) {
		b.Fatal("live table differs from the model after the updates")
	}
}
