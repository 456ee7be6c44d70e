package nft

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// TestMain fails the run if a netfence table shows up in the root network
// namespace, which the tests must never touch.
func TestMain(m *testing.M) {
	code := m.Run()
	if os.Geteuid() == 0 {
		if out, err := exec.Command("nft", "list", "tables").Output(); err == nil && strings.Contains(string(out), TableName) {
			fmt.Fprintf(os.Stderr, "FAIL: a %s table exists in the root network namespace:\n%s", TableName, out)
			code = 1
		}
	}
	os.Exit(code)
}

func TestCheckKernel(t *testing.T) {
	ns := newNetNS(t)
	a := ns.applier(t)
	if err := a.CheckKernel(t.Context()); err != nil {
		t.Fatal(err)
	}
	if out := ns.nft(t, "", "list", "tables"); strings.TrimSpace(out) != "" {
		t.Fatalf("CheckKernel left tables behind:\n%s", out)
	}
}

func smallGen() genParams {
	return genParams{Namespaces: 3, Pods: 60, Nodes: 2, Policies: 15, DualStack: true}
}

func TestFullSync(t *testing.T) {
	ns := newNetNS(t)
	a := ns.applier(t)
	models := goldenModels()
	models["generated"] = render(genCluster(1, smallGen()), Options{Node: "node-0"})
	for _, name := range []string{"empty", "shop-node-a", "shop-node-b-reject", "shop-all", "generated", "guardrails"} {
		m := models[name]
		if err := a.FullSync(t.Context(), m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		compareListings(t, name, expected(m), ns.list(t))
		c, ok, err := a.Counts(t.Context())
		if err != nil || !ok {
			t.Fatalf("%s: Counts: %v %v", name, ok, err)
		}
		want := m.Counts()
		if fmt.Sprint(c) != fmt.Sprint(want) {
			t.Fatalf("%s: live counts %v, want %v", name, c, want)
		}
	}
}

// TestTextMatchesNetlink loads Text with nft in one namespace and applies
// the same model over netlink in another: nft must read back the same.
func TestTextMatchesNetlink(t *testing.T) {
	viaNft, viaNetlink := newNetNS(t), newNetNS(t)
	a := viaNetlink.applier(t)
	models := goldenModels()
	models["generated"] = render(genCluster(2, smallGen()), Options{Node: "node-1", Deny: DenyReject})
	for name, m := range models {
		viaNft.nft(t, m.Text(), "-f", "-")
		if err := a.FullSync(t.Context(), m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		compareListings(t, name, viaNft.list(t), viaNetlink.list(t))
	}
	// The script replaces whatever table was there.
	viaNft.nft(t, models["empty"].Text(), "-f", "-")
	compareListings(t, "empty after shop", expected(models["empty"]), viaNft.list(t))
}

// mutate changes a cluster the way a watch would: a label, a pod coming
// or going, an address, a policy coming or going.
func mutate(r *rand.Rand, c *cluster.Cluster, g genParams, step int) (*cluster.Cluster, string) {
	pods := append([]*cluster.Pod(nil), c.Pods...)
	nps := append([]*networkingv1.NetworkPolicy(nil), c.Policies...)
	var what string
	switch r.IntN(6) {
	case 0, 1:
		i := r.IntN(len(pods))
		cp := *pods[i]
		cp.Labels = labels.Set{}
		for k, v := range pods[i].Labels {
			cp.Labels[k] = v
		}
		cp.Labels["app"] = genApps[r.IntN(len(genApps))]
		pods[i] = &cp
		what = "relabel " + cp.Key()
	case 2:
		i := r.IntN(len(pods))
		what = "delete pod " + pods[i].Key()
		pods = append(pods[:i], pods[i+1:]...)
	case 3:
		p := genPodList(r, genParams{Namespaces: g.Namespaces, Pods: 1, Nodes: g.Nodes, DualStack: true})[0]
		p.Name = fmt.Sprintf("new-%d", step)
		p.IPs = []netip.Addr{netip.AddrFrom4([4]byte{10, 99, 0, byte(step)}), netip.MustParseAddr(fmt.Sprintf("fd00:99::%x", step))}
		pods = append(pods, p)
		what = "add pod " + p.Key()
	case 4:
		i := r.IntN(len(nps))
		what = "delete policy " + nps[i].Name
		nps = append(nps[:i], nps[i+1:]...)
	case 5:
		np := genPolicy(r, g, 1000+step)
		nps = append(nps, np)
		what = "add policy " + np.Name
	}
	var nss []*cluster.Namespace
	for _, ns := range c.Namespaces {
		nss = append(nss, ns)
	}
	return cluster.New(nss, pods, nps), what
}

// TestUpdateEqualsFullSync applies a chain of random changes with Apply in
// one namespace and with FullSync in another; after every step nft must
// read back the same ruleset, it must be the model's, and it must be the
// model a Fake holds after the same transactions (the Fake and the kernel
// agree).
func TestUpdateEqualsFullSync(t *testing.T) {
	steps := 40
	if testing.Short() {
		steps = 10
	}
	ctx := t.Context()
	incr, full := newNetNS(t), newNetNS(t)
	ai, af := incr.applier(t), full.applier(t)
	fake := NewFake()
	g := smallGen()
	r := rand.New(rand.NewPCG(3, 3))
	c := genCluster(3, g)
	opts := Options{Node: "node-0"}
	rend := NewRenderer(opts)
	prev := rend.Render(policy.NewSet(c))
	if err := ai.FullSync(ctx, prev); err != nil {
		t.Fatal(err)
	}
	if err := fake.FullSync(ctx, prev); err != nil {
		t.Fatal(err)
	}
	compareListings(t, "full sync: kernel vs fake", expected(fake.Model()), incr.list(t))
	nonEmpty := 0
	for step := 0; step < steps; step++ {
		var what string
		c, what = mutate(r, c, g, step)
		if step%9 == 4 {
			opts.Deny = 1 - opts.Deny
			what += ", deny " + opts.Deny.String()
			rend = NewRenderer(opts)
		}
		next := rend.Render(policy.NewSet(c))
		if want := render(c, opts); !reflect.DeepEqual(next, want) {
			t.Fatalf("step %d (%s): the renderer differs from Render:\n%s", step, what, lineDiff(want.Text(), next.Text()))
		}
		d := Diff(prev, next)
		if !d.Empty() {
			nonEmpty++
		}
		if err := ai.Apply(ctx, d); err != nil {
			t.Fatalf("step %d (%s): Apply: %v\ndelta: %s", step, what, err, d)
		}
		if err := fake.Apply(ctx, d); err != nil {
			t.Fatalf("step %d (%s): the kernel took the delta, the fake refused it: %v\ndelta: %s", step, what, err, d)
		}
		if err := af.FullSync(ctx, next); err != nil {
			t.Fatalf("step %d (%s): FullSync: %v", step, what, err)
		}
		got := incr.list(t)
		compareListings(t, fmt.Sprintf("step %d (%s): update vs full sync", step, what), full.list(t), got)
		compareListings(t, fmt.Sprintf("step %d (%s): update vs model", step, what), expected(next), got)
		compareListings(t, fmt.Sprintf("step %d (%s): kernel vs fake", step, what), expected(fake.Model()), got)
		prev = next
	}
	if nonEmpty < steps/2 {
		t.Fatalf("only %d of %d steps changed the ruleset", nonEmpty, steps)
	}
}

// TestUpdateMergesIntervals moves addresses into and out of merged
// intervals, so that Apply deletes and re-adds overlapping intervals in
// one transaction (rbtree and pipapo sets).
func TestUpdateMergesIntervals(t *testing.T) {
	ns := newNetNS(t)
	a := ns.applier(t)
	mk := func(addrs ...string) *Model {
		var pods []*cluster.Pod
		for i, ip := range addrs {
			pods = append(pods, pod("x", fmt.Sprintf("peer-%d", i), "n", map[string]string{"role": "peer"}, ip))
		}
		pods = append(pods, pod("x", "target", "n", map[string]string{"role": "target"}, "10.0.0.100", "fd00::100"))
		np := netpol("x", "allow", sel("role", "target"))
		ingress(np, peers(podPeer(sel("role", "peer"), nil)))
		ingress(np, peers(podPeer(sel("role", "peer"), nil)), npPort(tcp, 80))
		ingress(np, peers(blockPeer("10.0.0.0/29")), npPort(tcp, 81))
		return render(cluster.New(nil, pods, []*networkingv1.NetworkPolicy{np}), Options{AllLocal: true})
	}
	seq := []*Model{
		mk("10.0.0.1", "10.0.0.3", "fd00::1", "fd00::3"),
		mk("10.0.0.1", "10.0.0.2", "10.0.0.3", "fd00::1", "fd00::2", "fd00::3"), // merge into one interval
		mk("10.0.0.1", "10.0.0.3", "fd00::3"),                                   // split again
		mk("10.0.0.2", "10.0.0.3", "10.0.0.4", "fd00::2"),
		mk("255.255.255.255", "::"),
		mk(),
		mk("10.0.0.7", "10.0.0.8"),
	}
	if err := a.FullSync(t.Context(), seq[0]); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(seq); i++ {
		if err := a.Apply(t.Context(), Diff(seq[i-1], seq[i])); err != nil {
			t.Fatalf("step %d: %v\ndelta: %s", i, err, Diff(seq[i-1], seq[i]))
		}
		compareListings(t, fmt.Sprintf("step %d", i), expected(seq[i]), ns.list(t))
	}
}

func TestCleanup(t *testing.T) {
	ns := newNetNS(t)
	a := ns.applier(t)
	if err := a.Cleanup(t.Context()); err != nil {
		t.Fatalf("Cleanup without a table: %v", err)
	}
	if err := a.FullSync(t.Context(), goldenModels()["shop-all"]); err != nil {
		t.Fatal(err)
	}
	if err := a.Cleanup(t.Context()); err != nil {
		t.Fatal(err)
	}
	if out := ns.nft(t, "", "list", "ruleset"); strings.TrimSpace(out) != "" {
		t.Fatalf("Cleanup left:\n%s", out)
	}
	if _, ok, err := a.Counts(t.Context()); ok || err != nil {
		t.Fatalf("Counts after Cleanup: ok=%v err=%v", ok, err)
	}
}

// TestUpdateErrorIsAtomic checks that a failing transaction changes
// nothing: a delta whose old model is not what the kernel holds.
func TestUpdateErrorIsAtomic(t *testing.T) {
	ns := newNetNS(t)
	a := ns.applier(t)
	models := goldenModels()
	if err := a.FullSync(t.Context(), models["shop-node-a"]); err != nil {
		t.Fatal(err)
	}
	before := ns.list(t)
	// Pretend the kernel holds shop-node-b-reject: deleting its chains fails.
	err := a.Apply(t.Context(), Diff(models["shop-node-b-reject"], models["shop-all"]))
	if err == nil {
		t.Fatal("a delta from a wrong old model was applied")
	}
	t.Logf("expected error: %v", err)
	compareListings(t, "after failed update", before, ns.list(t))
	// The fake refuses it too.
	f := NewFake()
	if err := f.FullSync(t.Context(), models["shop-node-a"]); err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(t.Context(), Diff(models["shop-node-b-reject"], models["shop-all"])); err == nil {
		t.Fatal("the kernel refused the delta, the fake took it")
	}
	compareListings(t, "fake after failed update", before, expected(f.Model()))
}

// TestApplyChurnMatchesFake applies the deltas of the churn the Fake's
// property test uses (bursts that replace sets included) to the kernel
// and to a Fake: both must take every delta and hold the same ruleset
// after each.
func TestApplyChurnMatchesFake(t *testing.T) {
	seeds, steps := 2, 60
	if testing.Short() {
		steps = 25
	}
	ctx := t.Context()
	replaced, replacedMaps, mapChanges := 0, 0, 0
	for seed := uint64(0); seed < uint64(2*seeds); seed++ {
		ns := newNetNS(t)
		a := ns.applier(t)
		f := NewFake()
		ms, whats := churnModels(seed, steps)
		if seed >= uint64(seeds) {
			// With cluster policies and nodes: tier maps, Pass sets
			// and layer chains (TestTierMapsReplaced replaces them for
			// sure).
			ms, whats = tierChurnModels(seed+8, steps)
		}
		if err := a.FullSync(ctx, ms[0]); err != nil {
			t.Fatal(err)
		}
		if err := f.FullSync(ctx, ms[0]); err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(ms); i++ {
			what := fmt.Sprintf("seed %d step %d (%s)", seed, i, whats[i])
			d := Diff(ms[i-1], ms[i])
			replaced += len(d.ReplaceSets)
			for _, s := range d.ReplaceSets {
				if s.Map {
					replacedMaps++
				}
			}
			for _, sc := range d.SetChanges {
				if sc.Set.Map {
					mapChanges++
				}
			}
			kerr, ferr := a.Apply(ctx, d), f.Apply(ctx, d)
			if kerr != nil || ferr != nil {
				t.Fatalf("%s: kernel: %v; fake: %v\ndelta: %v", what, kerr, ferr, d.Names())
			}
			got := ns.list(t)
			compareListings(t, what+": kernel vs fake", expected(f.Model()), got)
			compareListings(t, what+": kernel vs model", expected(ms[i]), got)
		}
	}
	if !testing.Short() && (replaced == 0 || mapChanges == 0) {
		t.Errorf("sets replaced %d (tier maps %d); tier map element changes %d: not all exercised", replaced, replacedMaps, mapChanges)
	}
}

// TestApplierContext checks that the applier honours its context: a
// cancelled or expired context fails the call and changes nothing.
func TestApplierContext(t *testing.T) {
	ns := newNetNS(t)
	a := ns.applier(t)
	models := goldenModels()
	if err := a.FullSync(t.Context(), models["shop-node-a"]); err != nil {
		t.Fatal(err)
	}
	before := ns.list(t)
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel2 := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel2()
	for name, ctx := range map[string]context.Context{"cancelled": cancelled, "expired": expired} {
		if err := a.FullSync(ctx, models["shop-all"]); !errors.Is(err, ctx.Err()) {
			t.Errorf("%s: FullSync: %v", name, err)
		}
		if err := a.Apply(ctx, Diff(models["shop-node-a"], models["shop-all"])); !errors.Is(err, ctx.Err()) {
			t.Errorf("%s: Apply: %v", name, err)
		}
		if err := a.CheckKernel(ctx); !errors.Is(err, ctx.Err()) {
			t.Errorf("%s: CheckKernel: %v", name, err)
		}
		if _, _, err := a.Counts(ctx); !errors.Is(err, ctx.Err()) {
			t.Errorf("%s: Counts: %v", name, err)
		}
	}
	compareListings(t, "after cancelled calls", before, ns.list(t))
	if out := ns.nft(t, "", "list", "tables"); strings.Contains(out, ProbeTable) {
		t.Fatalf("a cancelled CheckKernel left its table:\n%s", out)
	}
	// A live context with a short deadline still works.
	short, cancel3 := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel3()
	if err := a.Apply(short, Diff(models["shop-node-a"], models["shop-all"])); err != nil {
		t.Fatal(err)
	}
	compareListings(t, "after apply", expected(models["shop-all"]), ns.list(t))
}

// TestApplierKeepsSocket checks that operations share one netlink socket
// while they succeed (closing it would make the kernel wait for an RCU
// grace period after every transaction that deletes something), and that
// a refused transaction or an interrupted operation drops it, the next
// one working on a fresh socket.
func TestApplierKeepsSocket(t *testing.T) {
	ns := newNetNS(t)
	a := ns.applier(t)
	models := goldenModels()
	ctx := t.Context()
	if err := a.FullSync(ctx, models["shop-all"]); err != nil {
		t.Fatal(err)
	}
	first := a.sock
	if first == nil {
		t.Fatal("no socket kept after a full sync")
	}
	// Deletes chains, sets and elements.
	if err := a.Apply(ctx, Diff(models["shop-all"], models["shop-node-a"])); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Counts(ctx); err != nil {
		t.Fatal(err)
	}
	if a.sock != first {
		t.Fatal("the socket was not reused")
	}
	if err := a.Apply(ctx, Diff(models["shop-node-b-reject"], models["shop-all"])); err == nil {
		t.Fatal("a delta from a wrong old model was applied")
	}
	if a.sock != nil {
		t.Fatal("the socket of a refused transaction was kept")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := a.Apply(cancelled, Diff(models["shop-node-a"], models["shop-all"])); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Apply: %v", err)
	}
	if err := a.Apply(ctx, Diff(models["shop-node-a"], models["shop-all"])); err != nil {
		t.Fatal(err)
	}
	if a.sock == nil || a.sock == first {
		t.Fatal("no fresh socket after a refused transaction")
	}
	compareListings(t, "after apply on a fresh socket", expected(models["shop-all"]), ns.list(t))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if a.sock != nil {
		t.Fatal("Close left the socket open")
	}
}

func TestApplierClosed(t *testing.T) {
	ns := newNetNS(t)
	a := ns.applier(t)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.FullSync(t.Context(), goldenModels()["empty"]); err == nil {
		t.Fatal("FullSync on a closed applier succeeded")
	}
}

// TestLargeSets applies sets that need several netlink messages each, and
// an update that replaces large concatenated sets.
func TestLargeSets(t *testing.T) {
	ns := newNetNS(t)
	a := ns.applier(t)
	g := genParams{Namespaces: 5, Pods: 2000, Nodes: 20, Policies: 60}
	c := genCluster(5, g)
	m := render(c, Options{Node: "node-0"})
	if err := a.FullSync(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	check := func(what string, m *Model) {
		t.Helper()
		live, ok, err := a.Counts(t.Context())
		if err != nil || !ok {
			t.Fatalf("%s: Counts: %v %v", what, ok, err)
		}
		if fmt.Sprint(live) != fmt.Sprint(m.Counts()) {
			t.Fatalf("%s: live counts differ from the model", what)
		}
	}
	check("full sync", m)
	t.Logf("%d chains, %d sets, %d elements", len(m.Chains), len(m.Sets), m.Counts().Elements())
	r := rand.New(rand.NewPCG(5, 5))
	replaced := 0
	for step := 0; step < 7; step++ {
		// The last step relabels many pods at once, so that large
		// concatenated interval sets lose enough elements to be
		// replaced (most peers are exact: their hash sets are not).
		for k := 0; k < 1 || (step == 6 && k < 200); k++ {
			p := c.Pods[r.IntN(len(c.Pods))]
			c = relabel(c, p.Key(), genApps[r.IntN(len(genApps))])
		}
		next := render(c, Options{Node: "node-0"})
		d := Diff(m, next)
		replaced += len(d.ReplaceSets)
		if err := a.Apply(t.Context(), d); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		check(fmt.Sprintf("step %d (%s)", step, d), next)
		m = next
	}
	if replaced == 0 {
		t.Error("no set was replaced")
	}
	compareListings(t, "after updates", expected(m), ns.list(t))
}

// TestUpdateSharedSets moves pods into and out of sets that several chains
// share, so that one transaction replaces a shared set while deleting a
// chain that looked it up, creates a set for several new chains, and
// deletes a set only its last chain dropped.
func TestUpdateSharedSets(t *testing.T) {
	ns := newNetNS(t)
	a := ns.applier(t)
	mk := func(targets, peerCount int, targetApp string) *Model {
		var pods []*cluster.Pod
		for i := 0; i < peerCount; i++ {
			pods = append(pods, pod("x", fmt.Sprintf("peer-%d", i), "n", map[string]string{"role": "peer"},
				fmt.Sprintf("10.0.0.%d", 2*i+1), fmt.Sprintf("fd00::%x", 2*i+1)))
		}
		for i := 0; i < targets; i++ {
			pods = append(pods, pod("x", fmt.Sprintf("target-%d", i), "n", map[string]string{"role": "target", "app": targetApp},
				fmt.Sprintf("10.0.1.%d", i+1), fmt.Sprintf("fd00:1::%x", i+1)))
		}
		np := netpol("x", "allow", sel("role", "target"))
		// A port range (interval ports sets, replaced when they lose
		// many elements) and a single port (exact ports sets).
		ingress(np, peers(podPeer(sel("role", "peer"), nil)), npPort(tcp, 80, 81), npPort(tcp, 8080))
		extra := netpol("x", "extra", sel("app", "b"))
		ingress(extra, peers(blockPeer("192.168.0.0/24")))
		return render(cluster.New(nil, pods, []*networkingv1.NetworkPolicy{np, extra}), Options{AllLocal: true})
	}
	seq := []*Model{
		mk(3, 12, "a"),
		mk(2, 3, "a"), // replaces the shared ports sets and deletes a chain that used them
		mk(4, 3, "a"),
		mk(4, 3, "b"), // every chain moves to new sets
		mk(1, 5, "b"),
		mk(0, 5, "b"),
		mk(3, 6, "a"),
	}
	shared := 0
	for _, m := range seq {
		refs := map[string]int{}
		for _, c := range m.Chains {
			for _, s := range m.ChainSets(c.Name) {
				refs[s.Name]++
			}
		}
		for _, n := range refs {
			if n > 1 {
				shared++
			}
		}
	}
	if shared == 0 {
		t.Fatal("no set is shared")
	}
	if err := a.FullSync(t.Context(), seq[0]); err != nil {
		t.Fatal(err)
	}
	compareListings(t, "full sync", expected(seq[0]), ns.list(t))
	for i := 1; i < len(seq); i++ {
		d := Diff(seq[i-1], seq[i])
		if err := a.Apply(t.Context(), d); err != nil {
			t.Fatalf("step %d: %v\ndelta: %v", i, err, d.Names())
		}
		compareListings(t, fmt.Sprintf("step %d", i), expected(seq[i]), ns.list(t))
	}
	if d := Diff(seq[0], seq[1]); len(d.ReplaceSets) == 0 || len(d.DelChains) == 0 {
		t.Errorf("step 1 replaces no set or deletes no chain: %v", d.Names())
	}
}

// TestTierKernelRefuses applies the deltas TestTierFakeRefuses has the
// Fake refuse to the kernel: it must refuse each, keeping the table as it
// was.
func TestTierKernelRefuses(t *testing.T) {
	ns := newNetNS(t)
	a := ns.applier(t)
	base := goldenModels()["guardrails"]
	if err := a.FullSync(t.Context(), base); err != nil {
		t.Fatal(err)
	}
	before := ns.list(t)
	compareListings(t, "full sync", expected(base), before)
	for _, tc := range tierRefusals(t, base) {
		err := a.Apply(t.Context(), tc.d)
		if tc.want == "" {
			// Taken by both: the kernel must hold what the Fake holds.
			f := NewFake()
			if err := f.FullSync(t.Context(), base); err != nil {
				t.Fatal(err)
			}
			if ferr := f.Apply(t.Context(), tc.d); err != nil || ferr != nil {
				t.Fatalf("%s: kernel: %v; fake: %v", tc.name, err, ferr)
			}
			compareListings(t, tc.name, expected(f.Model()), ns.list(t))
			if err := a.FullSync(t.Context(), base); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: the kernel took the delta", tc.name)
			if err := a.FullSync(t.Context(), base); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Logf("%s: %v", tc.name, err)
		compareListings(t, tc.name, before, ns.list(t))
	}
}

// TestTierMapsReplaced shrinks and grows tier maps and Pass sets enough
// that Diff replaces them (replaceThreshold), changes their verdicts, and
// moves pods between layers: the kernel and the Fake must take every
// delta and hold the model after each.
func TestTierMapsReplaced(t *testing.T) {
	ns := newNetNS(t)
	a := ns.applier(t)
	f := NewFake()
	mk := func(n int, action v1beta1.ClusterNetworkPolicyRuleAction, isolated bool) *Model {
		var pods []*cluster.Pod
		for i := 0; i < n; i++ {
			// Every other address, so that no two peers merge.
			pods = append(pods, pod("x", fmt.Sprintf("peer-%d", i), "n", map[string]string{"role": "peer"},
				fmt.Sprintf("10.0.0.%d", 2*i+1), fmt.Sprintf("fd00::%x", 2*i+1)))
		}
		pods = append(pods, pod("x", "target", "n", map[string]string{"role": "target"}, "10.0.1.1", "fd00:1::1"))
		p := cnp("guard", v1beta1.AdminTier, 1, v1beta1.ClusterNetworkPolicySubject{Pods: &v1beta1.NamespacedPod{PodSelector: *sel("role", "target")}})
		peer := []v1beta1.ClusterNetworkPolicyEgressPeer{{Pods: &v1beta1.NamespacedPod{PodSelector: *sel("role", "peer")}}}
		p.Spec.Egress = []v1beta1.ClusterNetworkPolicyEgressRule{
			{Action: action, To: peer, Protocols: []v1beta1.ClusterNetworkPolicyProtocol{tcpPort(80), {TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Range: &v1beta1.PortRange{Start: 8000, End: 8100}}}}}},
			{Action: v1beta1.ClusterNetworkPolicyRuleActionDeny, To: peer},
		}
		var nps []*networkingv1.NetworkPolicy
		if isolated {
			np := netpol("x", "allow", sel("role", "target"), typeOut)
			egress(np, peers(podPeer(sel("role", "peer"), nil)), npPort(tcp, 8080))
			nps = append(nps, np)
		}
		return render(cluster.NewWith(cluster.Parts{Pods: pods, Policies: nps, ClusterPolicies: []*cluster.ClusterPolicy{p}}), Options{AllLocal: true})
	}
	pass, accept := v1beta1.ClusterNetworkPolicyRuleActionPass, v1beta1.ClusterNetworkPolicyRuleActionAccept
	seq := []*Model{mk(12, accept, false), mk(3, accept, false), mk(12, pass, true), mk(3, pass, true), mk(12, pass, false), mk(12, accept, true), mk(0, accept, true)}
	if err := a.FullSync(t.Context(), seq[0]); err != nil {
		t.Fatal(err)
	}
	if err := f.FullSync(t.Context(), seq[0]); err != nil {
		t.Fatal(err)
	}
	replaced := map[string]bool{}
	for i := 1; i < len(seq); i++ {
		d := Diff(seq[i-1], seq[i])
		for _, s := range d.ReplaceSets {
			switch {
			case s.Map:
				replaced["map"] = true
			case s.Pass:
				replaced["pass set"] = true
			}
		}
		kerr, ferr := a.Apply(t.Context(), d), f.Apply(t.Context(), d)
		if kerr != nil || ferr != nil {
			t.Fatalf("step %d: kernel: %v; fake: %v\ndelta: %v", i, kerr, ferr, d.Names())
		}
		got := ns.list(t)
		compareListings(t, fmt.Sprintf("step %d: kernel vs model", i), expected(seq[i]), got)
		compareListings(t, fmt.Sprintf("step %d: kernel vs fake", i), expected(f.Model()), got)
	}
	if !replaced["map"] || !replaced["pass set"] {
		t.Errorf("replaced: %v, want a tier map and a Pass set", replaced)
	}
}
