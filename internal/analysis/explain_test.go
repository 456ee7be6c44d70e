package analysis

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/netfence/netfence/internal/policy"
	"github.com/netfence/netfence/internal/randcluster"
)

// TestExplainRowsMatchCells holds the two ways Matrix.Explain works
// together: rows of decisions (small matrices) and one cell at a time
// (large ones); the external tests hold the rows to Set.Evaluate.
func TestExplainRowsMatchCells(t *testing.T) {
	t.Parallel()
	ports := []Port{{Protocol: "TCP", Port: 80}, {Protocol: "TCP", Port: 8080}, {Protocol: "UDP", Port: 53}, {Protocol: "SCTP", Port: 9000}}
	cells := 0
	for seed := uint64(0); seed < 200; seed++ {
		r := rand.New(rand.NewPCG(seed, 0xe1))
		set := policy.NewSet(randcluster.New(r, int(seed), randcluster.Options{ClusterPolicies: true}))
		m, err := ComputeMatrix(context.Background(), set, Options{Ports: ports})
		if err != nil {
			t.Fatal(err)
		}
		if m.ev == nil {
			continue
		}
		for k := range m.Ports {
			m.ev.tiers.forPort(m.Ports[k])
			x := &explainer{port: k, rows: [2]map[int][]uint32{{}, {}}}
			for _, dir := range policy.Directions {
				for c := range m.classes {
					row := x.row(m.ev, dir, c)
					for d := range m.classes {
						if got, want := x.decision(row[d]), m.ev.decide(dir, c, d); got != want {
							t.Fatalf("seed %d, %s, %s, class %s -> class %s: row %+v, cell %+v", seed, m.Ports[k], dir, m.classes[c].rep.Key(), m.classes[d].rep.Key(), got, want)
						}
						cells++
					}
				}
			}
		}
	}
	if cells == 0 {
		t.Fatal("nothing compared")
	}
}
