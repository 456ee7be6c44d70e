package nft

import (
	"slices"
	"testing"

	"github.com/netfence/netfence/internal/policy"
)

// diffByMaps is diffElements without the one-pass comparison.
func diffByMaps(old, new []Element) (del, add []Element) {
	in, was := map[Element]bool{}, map[Element]bool{}
	for _, e := range new {
		in[e] = true
	}
	for _, e := range old {
		was[e] = true
		if !in[e] {
			del = append(del, e)
		}
	}
	for _, e := range new {
		if !was[e] {
			add = append(add, e)
		}
	}
	return del, add
}

// TestDiffElements compares the sets of successive renderings of a
// changing cluster in one pass and by maps.
func TestDiffElements(t *testing.T) {
	ch := newChurn(42)
	var prev *Model
	compared, changed := 0, 0
	for step := 0; step < 150; step++ {
		ch.mutate()
		m := Render(policy.NewSet(ch.cluster()), Options{AllLocal: true})
		for _, s := range m.Sets {
			if !sortedElements(s.Elements) {
				t.Fatalf("step %d: set %s is not in compareElements order", step, s.Name)
			}
		}
		if prev != nil {
			for _, s := range m.Sets {
				o := prev.Set(s.Name)
				if o == nil {
					continue
				}
				del, add := diffElements(o.Elements, s.Elements)
				wdel, wadd := diffByMaps(o.Elements, s.Elements)
				if !slices.Equal(del, wdel) || !slices.Equal(add, wadd) {
					t.Fatalf("step %d set %s: got -%v +%v, want -%v +%v", step, s.Name, del, add, wdel, wadd)
				}
				compared++
				if len(del)+len(add) > 0 {
					changed++
				}
			}
		}
		prev = m
	}
	if changed < 20 {
		t.Fatalf("only %d of %d compared sets changed", changed, compared)
	}
	// Unsorted lists take the map path.
	a := []Element{{Addrs: rangeOf("10.0.0.2", "10.0.0.2")}, {Addrs: rangeOf("10.0.0.1", "10.0.0.1")}}
	b := []Element{{Addrs: rangeOf("10.0.0.1", "10.0.0.1")}}
	if del, add := diffElements(a, b); len(del) != 1 || len(add) != 0 || del[0] != a[0] {
		t.Fatalf("unsorted: -%v +%v", del, add)
	}
}
