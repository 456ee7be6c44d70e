package analysis

import (
	"math/rand/v2"
	"testing"
)

func TestTranspose(t *testing.T) {
	for _, n := range []int{1, 5, 63, 64, 65, 130, 200} {
		rng := rand.New(rand.NewPCG(uint64(n), 1))
		rows := make([]bitset, n)
		for i := range rows {
			rows[i] = newBitset(n)
			for j := 0; j < n; j++ {
				if rng.IntN(3) == 0 {
					rows[i].set(j)
				}
			}
		}
		tr := transpose(rows, n)
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				if rows[i].has(j) != tr[j].has(i) {
					t.Fatalf("n=%d: (%d,%d)=%v but transposed (%d,%d)=%v", n, i, j, rows[i].has(j), j, i, tr[j].has(i))
				}
			}
		}
	}
}
