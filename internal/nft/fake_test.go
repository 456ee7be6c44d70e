package nft

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/netfence/netfence/internal/policy"
)

// churnModels renders successive snapshots of a churning cluster (see
// churn) as the agent does: a caching compiler and an incremental
// Renderer, whose models share unchanged sets and chains. Every seventh
// step applies a burst of changes at once, so that concatenated sets lose
// enough elements to be replaced (replaceThreshold); every eleventh flips
// the final verdict.
func churnModels(seed uint64, steps int) (models []*Model, whats []string) {
	return churnModelsOf(newChurn(seed), seed, steps)
}

// tierChurnModels are churnModels of a churn with cluster policies and
// nodes (newTierChurn).
func tierChurnModels(seed uint64, steps int) (models []*Model, whats []string) {
	return churnModelsOf(newTierChurn(seed), seed, steps)
}

func churnModelsOf(ch *churn, seed uint64, steps int) (models []*Model, whats []string) {
	opts := []Options{{Node: "node-0"}, {AllLocal: true, Deny: DenyReject}}[seed%2]
	rend := NewRenderer(opts)
	compiler := policy.NewCompiler()
	for step := 0; step < steps; step++ {
		what := "initial"
		if step > 0 {
			n := 1
			if step%7 == 0 {
				n = 6 + ch.r.IntN(10)
			}
			var parts []string
			for k := 0; k < n; k++ {
				parts = append(parts, ch.mutate())
			}
			what = strings.Join(parts, "; ")
			if step%11 == 0 {
				opts.Deny = 1 - opts.Deny
				rend = NewRenderer(opts)
				what += "; deny " + opts.Deny.String()
			}
		}
		models = append(models, rend.Render(compiler.NewSet(ch.cluster())))
		whats = append(whats, what)
	}
	return models, whats
}

// sameModel fails the test unless got and want describe the same
// ruleset.
func sameModel(t *testing.T, what string, want, got *Model) {
	t.Helper()
	cw, cg := canonical(want), canonical(got)
	if wt, gt := cw.Text(), cg.Text(); wt != gt {
		t.Fatalf("%s: models differ:\n%s", what, lineDiff(wt, gt))
	}
	if !reflect.DeepEqual(cw, cg) {
		t.Fatalf("%s: models have the same text but differ (chain metadata?)", what)
	}
}

// TestFakeApplyEqualsFullSync is the dataplane transaction property,
// without root: over random cluster changes, FullSync(A) then
// Apply(Diff(A, B)) holds what FullSync(B) holds, both for one step from
// a fresh Fake and for a Fake that took every delta since the first
// snapshot. It also checks that Render's models are already in canonical
// order, so that Text compares rulesets.
func TestFakeApplyEqualsFullSync(t *testing.T) {
	seeds, steps := 6, 100
	if testing.Short() {
		seeds, steps = 2, 60
	}
	ctx := context.Background()
	var total, nonEmpty int
	var seen struct {
		addSets, delSets, replaceSets, addChains, delChains, replaceChains, elemAdds, elemDels, mapAdds, mapDels, denyFlips int
	}
	var maps struct{ added, deleted, replaced, elemChanges int }
	for seed := 0; seed < 2*seeds; seed++ {
		// The second half with cluster policies and nodes.
		models, whats := churnModels(uint64(seed), steps)
		if seed >= seeds {
			models, whats = tierChurnModels(uint64(seed), steps)
		}
		running := NewFake()
		if err := running.FullSync(ctx, models[0]); err != nil {
			t.Fatalf("seed %d: full sync: %v", seed, err)
		}
		for i, m := range models {
			if got := canonical(m); !reflect.DeepEqual(got, canonical(got)) || got.Text() != m.Text() {
				t.Fatalf("seed %d step %d: Render's model is not in canonical order", seed, i)
			}
		}
		for i := 1; i < len(models); i++ {
			a, b := models[i-1], models[i]
			what := fmt.Sprintf("seed %d step %d (%s)", seed, i, whats[i])
			d := Diff(a, b)
			total++
			if !d.Empty() {
				nonEmpty++
			}
			seen.addSets += len(d.AddSets)
			seen.delSets += len(d.DelSets)
			seen.replaceSets += len(d.ReplaceSets)
			for _, s := range d.AddSets {
				if s.Map {
					maps.added++
				}
			}
			for _, s := range d.DelSets {
				if s.Map {
					maps.deleted++
				}
			}
			for _, s := range d.ReplaceSets {
				if s.Map {
					maps.replaced++
				}
			}
			for _, sc := range d.SetChanges {
				if sc.Set.Map {
					maps.elemChanges++
				}
			}
			seen.addChains += len(d.AddChains)
			seen.delChains += len(d.DelChains)
			seen.replaceChains += len(d.ReplaceChains)
			for _, sc := range d.SetChanges {
				seen.elemAdds += len(sc.Add)
				seen.elemDels += len(sc.Del)
			}
			for _, mc := range d.MapChanges {
				seen.mapAdds += len(mc.Add)
				seen.mapDels += len(mc.Del)
			}
			if a.Deny != b.Deny {
				seen.denyFlips++
			}

			fresh, full := NewFake(), NewFake()
			if err := fresh.FullSync(ctx, a); err != nil {
				t.Fatalf("%s: full sync of A: %v", what, err)
			}
			if err := fresh.Apply(ctx, d); err != nil {
				t.Fatalf("%s: Apply(Diff(A, B)) refused: %v\ndelta: %v", what, err, d.Names())
			}
			if err := full.FullSync(ctx, b); err != nil {
				t.Fatalf("%s: full sync of B: %v", what, err)
			}
			sameModel(t, what+": FullSync(A), Apply(Diff(A, B)) vs FullSync(B)", full.Model(), fresh.Model())
			sameModel(t, what+": FullSync(B) vs B", b, full.Model())
			if err := running.Apply(ctx, d); err != nil {
				t.Fatalf("%s: the running fake refused the delta: %v\ndelta: %v", what, err, d.Names())
			}
			sameModel(t, what+": running fake vs B", b, running.Model())
		}
		if c := running.Calls(); c.FullSyncs != 1 || c.Applies != steps-1 || c.Failed != 0 {
			t.Fatalf("seed %d: calls %+v", seed, c)
		}
	}
	t.Logf("%d steps, %d deltas not empty; %+v; tier maps %+v", total, nonEmpty, seen, maps)
	if maps.added == 0 || maps.deleted == 0 || maps.replaced == 0 || maps.elemChanges == 0 {
		t.Errorf("tier maps not exercised: %+v", maps)
	}
	if nonEmpty < total/2 {
		t.Errorf("only %d of %d deltas change anything", nonEmpty, total)
	}
	for name, n := range map[string]int{
		"set added": seen.addSets, "set deleted": seen.delSets, "set replaced": seen.replaceSets,
		"chain added": seen.addChains, "chain deleted": seen.delChains, "chain replaced": seen.replaceChains,
		"element added": seen.elemAdds, "element deleted": seen.elemDels,
		"map element added": seen.mapAdds, "map element deleted": seen.mapDels, "verdict changed": seen.denyFlips,
	} {
		if n == 0 {
			t.Errorf("no step exercised %q", name)
		}
	}
}

// TestFakeRefusesWrongOldModel applies deltas to a Fake that holds another
// model than the one they were made against: the fake must refuse most of
// them (changing nothing), and hardly any may reach the delta's new model
// (which is right only when the delta happens to overwrite the whole
// difference between the two old models).
func TestFakeRefusesWrongOldModel(t *testing.T) {
	ctx := context.Background()
	models := goldenModels()
	f := NewFake()
	if err := f.FullSync(ctx, models["shop-node-a"]); err != nil {
		t.Fatal(err)
	}
	before := f.Text()
	// The kernel refuses this one too (TestUpdateErrorIsAtomic).
	if err := f.Apply(ctx, Diff(models["shop-node-b-reject"], models["shop-all"])); err == nil {
		t.Fatal("a delta from shop-node-b-reject was applied to shop-node-a")
	} else {
		t.Logf("expected error: %v", err)
	}
	if f.Text() != before {
		t.Fatal("a refused delta changed the model")
	}
	if err := NewFake().Apply(ctx, Diff(models["empty"], models["shop-all"])); err == nil {
		t.Fatal("a delta was applied without a table")
	}

	tried, refused, reachedNew := 0, 0, 0
	for seed := uint64(0); seed < 4; seed++ {
		ms, _ := churnModels(seed, 60)
		for i := 4; i < len(ms); i++ {
			for _, j := range []int{i - 4, i - 2} {
				a, b, c := ms[i-1], ms[i], ms[j]
				d := Diff(a, b)
				if d.Empty() || canonical(c).Text() == canonical(a).Text() {
					continue
				}
				f := NewFake()
				if err := f.FullSync(ctx, c); err != nil {
					t.Fatal(err)
				}
				tried++
				if err := f.Apply(ctx, d); err != nil {
					refused++
					if f.Text() != canonical(c).Text() {
						t.Fatalf("seed %d: a refused delta changed the model", seed)
					}
					continue
				}
				if f.Text() == canonical(b).Text() {
					reachedNew++
				}
			}
		}
	}
	t.Logf("%d deltas applied to another model than theirs: %d refused, %d taken and reaching the delta's new model", tried, refused, reachedNew)
	if tried < 100 || refused < tried/2 || reachedNew > tried/20 {
		t.Fatalf("of %d deltas made against another model, the fake refused only %d, and %d reached the delta's new model as if nothing were wrong", tried, refused, reachedNew)
	}
}

// TestFakeRefuses checks each refusal of the kernel the Fake imitates:
// the transaction fails and the model stays as it was.
func TestFakeRefuses(t *testing.T) {
	ctx := context.Background()
	base := goldenModels()["shop-all"]
	// A chain and its sets, and a map element jumping to the chain.
	var chain *Chain
	var addrSet, portSet, exactSet *PeerSet
	for _, c := range base.Chains {
		s := base.ChainSet(c.Name, IPv4, false, false)
		if s == nil {
			s = base.ChainSet(c.Name, IPv4, false, true)
		}
		if p := base.ChainSet(c.Name, IPv4, true, false); s != nil && p != nil && len(p.Elements) > 0 {
			chain, addrSet, portSet = c, s, p
			break
		}
	}
	if chain == nil {
		t.Fatal("shop-all has no chain with an IPv4 address set and interval ports set")
	}
	for _, s := range base.Sets {
		if s.Exact && s.Ports && s.Family == IPv4 {
			exactSet = s
			break
		}
	}
	if exactSet == nil {
		t.Fatal("shop-all has no IPv4 exact ports set")
	}
	var vm *VMap
	var jump VMapElement
	for _, m := range base.Maps {
		for _, e := range m.Elements {
			if e.Chain == chain.Name {
				vm, jump = m, e
			}
		}
	}
	if vm == nil {
		t.Fatalf("no map element jumps to %s", chain.Name)
	}
	stranger := netip.MustParseAddr("10.99.99.99") // no pod's address
	if vm.Family == IPv6 {
		stranger = netip.MustParseAddr("fd00:99::99")
	}
	elem := portSet.Elements[0]
	other := elem
	other.FromPort, other.ToPort = 1, 1
	other.Addrs = rangeOf("192.0.2.1", "192.0.2.1")
	overlapping := elem
	overlapping.ToPort = elem.ToPort + 1
	if overlapping.ToPort < elem.ToPort {
		overlapping.FromPort, overlapping.ToPort = elem.FromPort-1, elem.ToPort
	}
	v6 := other
	v6.Addrs = rangeOf("fd00::1", "fd00::1")
	ghost := &Chain{Name: "in-ghost", Rules: []Rule{{Kind: RuleAddr, Family: IPv4, Set: "a4-ghost"}, {Kind: RuleDeny}}}
	for _, tc := range []struct {
		name string
		d    *Delta
		want string
	}{
		{"delete an element that is not there", &Delta{SetChanges: []SetChange{{Set: portSet, Del: []Element{other}}}}, "no such element"},
		{"add an element that is there", &Delta{SetChanges: []SetChange{{Set: portSet, Add: []Element{elem}}}}, "it exists"},
		{"add an element that is there, with another comment", &Delta{SetChanges: []SetChange{{Set: portSet, Add: []Element{{Addrs: elem.Addrs, Proto: elem.Proto, FromPort: elem.FromPort, ToPort: elem.ToPort, Comment: "x"}}}}}, "it exists"},
		{"add an overlapping element", &Delta{SetChanges: []SetChange{{Set: portSet, Add: []Element{overlapping}}}}, "overlaps"},
		{"add a range to a hash set", &Delta{SetChanges: []SetChange{{Set: exactSet, Add: []Element{{Addrs: rangeOf("192.0.2.1", "192.0.2.2"), Proto: 6, FromPort: 1, ToPort: 1}}}}}, "a range"},
		{"add a port range to a hash set", &Delta{SetChanges: []SetChange{{Set: exactSet, Add: []Element{{Addrs: rangeOf("192.0.2.1", "192.0.2.1"), Proto: 6, FromPort: 1, ToPort: 2}}}}}, "a range"},
		{"add an element of the other family", &Delta{SetChanges: []SetChange{{Set: portSet, Add: []Element{v6}}}}, "not an IPv4 range"},
		{"change a set that is not there", &Delta{SetChanges: []SetChange{{Set: &PeerSet{Name: "p4-ghost", Family: IPv4, Ports: true}, Add: []Element{other}}}}, "no such set"},
		{"add a set that is there", &Delta{AddSets: []*PeerSet{addrSet}}, "it exists"},
		{"delete a set that is not there", &Delta{DelSets: []*PeerSet{{Name: "a4-ghost", Family: IPv4}}}, "no such set"},
		{"delete a set a chain looks up", &Delta{DelSets: []*PeerSet{addrSet}}, "still looks it up"},
		{"replace a set without emptying its chains", &Delta{ReplaceSets: []*PeerSet{addrSet}}, "still looks it up"},
		{"add a chain that is there", &Delta{AddChains: []*Chain{chain}}, "it exists"},
		{"add a chain looking up a set that is not there", &Delta{AddChains: []*Chain{ghost}}, "does not exist"},
		{"add a chain looking up a set of another type", &Delta{AddChains: []*Chain{{Name: "in-ghost", Rules: []Rule{{Kind: RuleAddr, Family: IPv4, Set: portSet.Name}}}}}, "another type"},
		{"replace a chain that is not there", &Delta{ReplaceChains: []*Chain{ghost}}, "no such chain"},
		{"delete a chain that is not there", &Delta{DelChains: []*Chain{ghost}}, "no such chain"},
		{"delete a chain a map element jumps to", &Delta{DelChains: []*Chain{chain}}, "still jumps to it"},
		{"add a map element jumping to a chain that is not there", &Delta{MapChanges: []MapChange{{Map: vm, Add: []VMapElement{{Addr: stranger, Chain: "in-ghost"}}}}}, "does not exist"},
		{"add a map element that is there", &Delta{MapChanges: []MapChange{{Map: vm, Add: []VMapElement{jump}}}}, "it exists"},
		{"delete a map element that is not there", &Delta{MapChanges: []MapChange{{Map: vm, Del: []VMapElement{{Addr: stranger, Chain: chain.Name}}}}}, "no such element"},
		{"change a map that is not there", &Delta{MapChanges: []MapChange{{Map: &VMap{Name: "ghost4", Family: IPv4}, Del: []VMapElement{jump}}}}, "no such map"},
		{"change the verdict of some chains only", &Delta{Deny: DenyReject, ReplaceChains: []*Chain{chain}}, "final verdict"},
		// The last step is refused after the others succeeded: nothing
		// of them stays.
		{"a good step, then a refused one", &Delta{SetChanges: []SetChange{{Set: portSet, Del: []Element{elem}}}, DelSets: []*PeerSet{{Name: "a4-ghost"}}}, "no such set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFake()
			if err := f.FullSync(ctx, base); err != nil {
				t.Fatal(err)
			}
			before := f.Model()
			err := f.Apply(ctx, tc.d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply: %v, want an error saying %q", err, tc.want)
			}
			if after := f.Model(); !reflect.DeepEqual(after, before) {
				t.Fatalf("a refused delta changed the model:\n%s", lineDiff(before.Text(), after.Text()))
			}
			if c := f.Calls(); c.Applies != 0 || c.Failed != 1 {
				t.Fatalf("calls %+v", c)
			}
		})
	}
	// FullSync refuses models the kernel would refuse, and keeps the
	// table it has.
	broken := func(edit func(m *Model)) *Model {
		m := canonical(base)
		edit(m)
		return m
	}
	for name, m := range map[string]*Model{
		"a chain looking up a missing set": broken(func(m *Model) {
			m.Sets = slices.DeleteFunc(m.Sets, func(s *PeerSet) bool { return s.Name == addrSet.Name })
		}),
		"a map jumping to a missing chain": broken(func(m *Model) {
			m.Chains = slices.DeleteFunc(m.Chains, func(c *Chain) bool { return c.Name == chain.Name })
		}),
		"a set twice":           broken(func(m *Model) { m.Sets = append(m.Sets, m.Sets[0]) }),
		"overlapping elements":  broken(func(m *Model) { s := m.Set(portSet.Name); s.Elements = append(s.Elements, overlapping) }),
		"a missing verdict map": broken(func(m *Model) { m.Maps = m.Maps[1:] }),
	} {
		f := NewFake()
		if err := f.FullSync(ctx, base); err != nil {
			t.Fatal(err)
		}
		if err := f.FullSync(ctx, m); err == nil {
			t.Errorf("FullSync of a model with %s succeeded", name)
		}
		sameModel(t, name, base, f.Model())
	}
}

// TestFakeCopies checks that the Fake keeps its own copy of what it is
// given and gives out copies.
func TestFakeCopies(t *testing.T) {
	ctx := context.Background()
	m := canonical(goldenModels()["shop-all"])
	want := m.Text()
	f := NewFake()
	if err := f.FullSync(ctx, m); err != nil {
		t.Fatal(err)
	}
	m.Sets[0].Elements[0].Comment = "changed"
	m.Chains[0].Rules[0].Set = "changed"
	m.Maps[0].Elements = nil
	m.Chains = m.Chains[:1]
	if got := f.Text(); got != want {
		t.Fatalf("changing the model given to FullSync changed the fake:\n%s", lineDiff(want, got))
	}
	out := f.Model()
	out.Sets[0].Elements[0].Comment = "changed"
	out.Chains[0].Rules = nil
	if got := f.Text(); got != want {
		t.Fatal("changing the model the fake gave out changed the fake")
	}
}

// TestFakeFailures checks the injected failure and cancellation: the call
// fails, nothing changes, and the next call works.
func TestFakeFailures(t *testing.T) {
	models := goldenModels()
	ctx := context.Background()
	f := NewFake()
	if f.Model() != nil || f.Text() != "" {
		t.Fatal("a new fake holds a table")
	}
	boom := errors.New("kernel says no")
	f.FailNext(boom)
	if err := f.FullSync(ctx, models["shop-all"]); !errors.Is(err, boom) {
		t.Fatalf("FullSync after FailNext: %v", err)
	}
	if f.Model() != nil {
		t.Fatal("a failed full sync created a table")
	}
	if err := f.FullSync(ctx, models["shop-all"]); err != nil {
		t.Fatal(err)
	}
	f.FailNext(boom)
	if err := f.Apply(ctx, Diff(models["shop-all"], models["shop-node-a"])); !errors.Is(err, boom) {
		t.Fatalf("Apply after FailNext: %v", err)
	}
	f.FailNext(boom)
	if err := f.CheckKernel(ctx); !errors.Is(err, boom) {
		t.Fatalf("CheckKernel after FailNext: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := f.Apply(cancelled, Diff(models["shop-all"], models["shop-node-a"])); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with a cancelled context: %v", err)
	}
	if err := f.FullSync(cancelled, models["empty"]); !errors.Is(err, context.Canceled) {
		t.Fatalf("FullSync with a cancelled context: %v", err)
	}
	sameModel(t, "after failures", models["shop-all"], f.Model())
	if err := f.Apply(ctx, Diff(models["shop-all"], models["shop-node-a"])); err != nil {
		t.Fatal(err)
	}
	sameModel(t, "after recovery", models["shop-node-a"], f.Model())
	if c := f.Calls(); c != (FakeCalls{FullSyncs: 1, Applies: 1, Failed: 5}) {
		t.Fatalf("calls %+v", c)
	}
}
