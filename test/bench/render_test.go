package bench

import (
	"testing"

	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/policy"
)

// BenchmarkRender times compiling and rendering the SynthConfig cluster
// (no kernel needed): compile is policy.NewSet, render is nft.Render.
func BenchmarkRender(b *testing.B) {
	for _, tc := range controlPlaneCases {
		b.Run(tc.name, func(b *testing.B) {
			skipSlow(b, tc.slow)
			c := bigCluster(b)
			var m *nft.Model
			b.ResetTimer()
			for range b.N {
				m = nft.Render(policy.NewSet(c), tc.opts)
			}
			b.StopTimer()
			reportModel(b, c, tc.opts, m)
		})
	}
}
