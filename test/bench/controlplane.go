package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/netfence/netfence/internal/agent"
	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/policy"
	"github.com/netfence/netfence/internal/testbed"
	"github.com/netfence/netfence/test/synth"
)

// SynthConfig is the control-plane cluster: 10,000 pods in 50 namespaces
// on 100 nodes (so about 100 on node-0) and 1,000 policies.
var SynthConfig = synth.Config{Pods: 10000, Namespaces: 50, Policies: 1000, Nodes: 100, Seed: 1}

// SynthNode is the node whose pods are local in the control-plane runs.
const SynthNode = "node-0"

// SynthCluster generates a cluster with test/synth.
func SynthCluster(cfg synth.Config) (*cluster.Cluster, error) {
	objs, err := synth.Generate(cfg)
	if err != nil {
		return nil, err
	}
	nss := make([]*cluster.Namespace, len(objs.Namespaces))
	for i, ns := range objs.Namespaces {
		nss[i] = cluster.NamespaceFromAPI(ns)
	}
	pods := make([]*cluster.Pod, len(objs.Pods))
	for i, p := range objs.Pods {
		pods[i] = cluster.PodFromAPI(p)
	}
	return cluster.New(nss, pods, objs.Policies), nil
}

// LocalPods counts the active pod-network pods that opts renders.
func LocalPods(c *cluster.Cluster, opts nft.Options) int {
	n := 0
	for _, p := range c.Pods {
		if ok, _ := p.Active(); ok && !p.HostNetwork && (opts.AllLocal || p.NodeName == opts.Node) {
			n++
		}
	}
	return n
}

// Relabel returns a copy of c in which pod i (an index into c.Pods) has
// the given labels; other pods, namespaces and policies are shared.
func Relabel(c *cluster.Cluster, i int, lbls labels.Set) *cluster.Cluster {
	pods := make([]*cluster.Pod, len(c.Pods))
	copy(pods, c.Pods)
	p := *c.Pods[i]
	p.Labels = lbls
	pods[i] = &p
	nss := make([]*cluster.Namespace, 0, len(c.Namespaces))
	for _, ns := range c.Namespaces {
		nss = append(nss, ns)
	}
	return cluster.New(nss, pods, c.Policies)
}

// RandomRelabel picks a random active pod and gives it the labels of
// another pod of its namespace with different labels (as if it moved to
// another workload). It returns the pod's index and new labels; ok is false
// when no such pair turned up in a bounded number of tries.
func RandomRelabel(c *cluster.Cluster, r *rand.Rand) (i int, lbls labels.Set, ok bool) {
	for range 1000 {
		i = r.IntN(len(c.Pods))
		p := c.Pods[i]
		if active, _ := p.Active(); !active || p.HostNetwork {
			continue
		}
		j := r.IntN(len(c.Pods))
		q := c.Pods[j]
		if q.Namespace != p.Namespace || labels.Equals(p.Labels, q.Labels) {
			continue
		}
		lbls = make(labels.Set, len(q.Labels))
		for k, v := range q.Labels {
			lbls[k] = v
		}
		return i, lbls, true
	}
	return 0, nil, false
}

// Timing is the duration of the steps of one agent sync.
type Timing struct {
	// Total is the whole Agent.Sync: from the new snapshot to the kernel.
	Total time.Duration
	// Render is compiling and rendering: Total less Diff and Apply.
	Render time.Duration
	// Diff is the agent's comparison of the old and new rulesets (see
	// agent.Stats), which decides whether there is a transaction and
	// makes it.
	Diff time.Duration
	// Apply is the netlink transaction (zero when nothing changed).
	Apply time.Duration
	// Full is whether the sync was a full one; Changed whether the
	// ruleset changed.
	Full, Changed bool
	// Elements counts the set and map elements the transaction added,
	// deleted or reloaded (for a full sync, all of them).
	Elements int
}

// NodeNS is a bare node namespace (a testbed without pods) with an applier
// bound to it, for control-plane measurements.
type NodeNS struct {
	bed     *testbed.Bed
	Applier *nft.Applier
}

// UpNode creates the namespace, PREFIX-node (prefix as for
// testbed.Options; empty means random); the caller must Close it.
func UpNode(ctx context.Context, prefix string) (*NodeNS, error) {
	bed, err := testbed.Up(ctx, cluster.New(nil, nil, nil), testbed.Options{Prefix: prefix})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	n := &NodeNS{bed: bed}
	if err := bed.InNode(func() error {
		var err error
		n.Applier, err = nft.NewApplier(0)
		return err
	}); err != nil {
		return nil, errors.Join(err, n.Close())
	}
	return n, nil
}

// Close removes the table and the namespace.
func (n *NodeNS) Close() error {
	var errs []error
	if n.Applier != nil {
		errs = append(errs, n.Applier.Cleanup(context.Background()), n.Applier.Close())
		n.Applier = nil
	}
	if n.bed != nil {
		errs = append(errs, n.bed.Down())
		n.bed = nil
	}
	return errors.Join(errs...)
}

// TimedAgent is the node agent (internal/agent, exactly as it runs)
// enforcing in a NodeNS, with its transactions timed apart.
type TimedAgent struct {
	agent *agent.Agent
	dp    *timedDataplane
}

// NewAgent returns a fresh agent for the node: its first Sync is a full
// one.
func (n *NodeNS) NewAgent(opts nft.Options) *TimedAgent {
	dp := &timedDataplane{a: n.Applier}
	return &TimedAgent{agent: agent.New(agent.Config{Render: opts, Dataplane: dp}), dp: dp}
}

// Sync runs Agent.Sync on the snapshot c and times it.
func (t *TimedAgent) Sync(ctx context.Context, c *cluster.Cluster) (Timing, error) {
	t.dp.elements = 0
	t0 := time.Now()
	st, err := t.agent.Sync(ctx, c)
	total := time.Since(t0)
	if err != nil {
		return Timing{}, err
	}
	return Timing{Total: total, Render: total - st.Diff - st.Apply, Diff: st.Diff, Apply: st.Apply,
		Full: st.Full, Changed: st.Changed, Elements: t.dp.elements}, nil
}

// Model returns the ruleset the agent last loaded.
func (t *TimedAgent) Model() *nft.Model { return t.agent.Model() }

// timedDataplane is the agent's dataplane: the applier, counting the
// elements each transaction carries.
type timedDataplane struct {
	a        *nft.Applier
	elements int
}

func (t *timedDataplane) CheckKernel(ctx context.Context) error { return t.a.CheckKernel(ctx) }

func (t *timedDataplane) FullSync(ctx context.Context, m *nft.Model) error {
	t.elements = m.Counts().Elements()
	return t.a.FullSync(ctx, m)
}

func (t *timedDataplane) Apply(ctx context.Context, d *nft.Delta) error {
	t.elements = 0
	for _, sc := range d.SetChanges {
		t.elements += len(sc.Add) + len(sc.Del)
	}
	for _, s := range d.ReplaceSets {
		t.elements += len(s.Elements)
	}
	for _, s := range d.AddSets {
		t.elements += len(s.Elements)
	}
	for _, mc := range d.MapChanges {
		t.elements += len(mc.Add) + len(mc.Del)
	}
	return t.a.Apply(ctx, d)
}

// ChangingRelabel is RandomRelabel restricted to changes that alter the
// ruleset opts renders: either the pod is local and its new labels change
// which policies select it, or they change whether a pod peer of a policy
// selecting a local pod matches it and, checked by resolving the local
// pods concerned before and after, what one of them may exchange. ok is
// false when no such change turned up in a bounded number of tries. The
// check costs a compile of the policies and a few resolutions, far less
// than a render of the node.
func ChangingRelabel(c *cluster.Cluster, opts nft.Options, r *rand.Rand) (i int, lbls labels.Set, ok bool) {
	set := policy.NewSet(c)
	isLocal := func(p *cluster.Pod) bool {
		active, _ := p.Active()
		return active && !p.HostNetwork && (opts.AllLocal || p.NodeName == opts.Node)
	}
	localByNS := map[string][]*cluster.Pod{}
	for _, p := range c.Pods {
		if isLocal(p) {
			localByNS[p.Namespace] = append(localByNS[p.Namespace], p)
		}
	}
	var relevant []*policy.Policy
	for _, p := range set.Policies {
		for _, pod := range localByNS[p.Namespace] {
			if p.Selects(pod) {
				relevant = append(relevant, p)
				break
			}
		}
	}
	res := policy.NewResolver(set)
	type podDir struct {
		pod *cluster.Pod
		dir policy.Direction
	}
	for range 200 {
		i, lbls, ok = RandomRelabel(c, r)
		if !ok {
			return 0, nil, false
		}
		old := c.Pods[i]
		nw := *old
		nw.Labels = lbls
		if isLocal(old) {
			for _, p := range set.InNamespace(old.Namespace) {
				if p.Selects(old) != p.Selects(&nw) {
					return i, lbls, true
				}
			}
		}
		nsl := c.NamespaceLabels(old.Namespace)
		affected := map[podDir]bool{}
		for _, p := range relevant {
			for dir, rules := range p.Rules {
				for _, rule := range rules {
					for k := range rule.Peers {
						peer := &rule.Peers[k]
						if peer.IPBlock != nil || peer.MatchesPod(old, nsl) == peer.MatchesPod(&nw, nsl) {
							continue
						}
						for _, pod := range localByNS[p.Namespace] {
							if p.Selects(pod) {
								affected[podDir{pod, policy.Direction(dir)}] = true
							}
						}
					}
				}
			}
		}
		if len(affected) == 0 {
			continue
		}
		c2 := Relabel(c, i, lbls)
		res2 := policy.NewResolver(policy.NewSet(c2))
		for pd := range affected {
			if !sameAllowance(res.Resolve(pd.pod, pd.dir), res2.Resolve(c2.Pod(pd.pod.Key()), pd.dir)) {
				return i, lbls, true
			}
		}
	}
	return 0, nil, false
}

// sameAllowance reports whether two allowances cover the same traffic in
// the same pieces (sources aside).
func sameAllowance(a, b *policy.Allowance) bool {
	if a == nil || b == nil {
		return a == b
	}
	na, nb := a.Normalize(), b.Normalize()
	if len(na.All) != len(nb.All) || len(na.Ports) != len(nb.Ports) {
		return false
	}
	for _, pair := range [][2][]policy.Rect{{na.All, nb.All}, {na.Ports, nb.Ports}} {
		for k := range pair[0] {
			x, y := pair[0][k], pair[1][k]
			x.Sources, y.Sources = 0, 0
			if x != y {
				return false
			}
		}
	}
	return true
}
