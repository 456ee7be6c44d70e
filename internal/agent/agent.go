// Package agent is netfence's node agent: it keeps a node's nftables in
// step with the cluster. A source (FileSource for manifest files, RunKube
// for the Kubernetes API's informers) yields cluster snapshots; each is
// compiled into the policy form (a policy that does not compile is replaced
// by its last compiled version or a deny stand-in: it fails closed),
// rendered for the node's pods and handed to a Dataplane: a full
// transaction the first time, then only the differences, after which
// established flows the change denies are revoked.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/conntrack"
	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/policy"
)

// Dataplane is where the agent enforces, one transaction at a time: each
// call either takes effect whole or fails and leaves the ruleset as it
// was. *nft.Applier is the real one; *nft.Fake holds the ruleset in
// memory, for tests.
type Dataplane interface {
	// CheckKernel reports an error when the kernel lacks a feature the
	// ruleset needs.
	CheckKernel(ctx context.Context) error
	// FullSync replaces whatever ruleset there is with m.
	FullSync(ctx context.Context, m *nft.Model) error
	// Apply applies a delta made by nft.Diff; the dataplane must hold the
	// delta's old model.
	Apply(ctx context.Context, d *nft.Delta) error
}

// Config configures an Agent.
type Config struct {
	// Render says which pods are local and how denials end.
	Render nft.Options
	// Dataplane applies rendered models.
	Dataplane Dataplane
	// Log receives structured logs; nil discards them.
	Log *slog.Logger
	// Metrics, when set, are updated after every sync.
	Metrics *Metrics
	// Health, when set, records readiness.
	Health *Health
	// Rejected, when set, is called once per policy version for every
	// policy the agent cannot compile (NetworkPolicy or cluster policy),
	// with what it enforces instead.
	Rejected func(Fallback)
	// Noticed, when set, is called once per policy version for what the
	// agent reports about a cluster policy it enforces (see Notice).
	Noticed func(Notice)
	// Revoker, when set, deletes the conntrack entries of established
	// flows that a sync denies, in the same sync, so that an open
	// connection cannot outlive the policy that allowed it.
	Revoker Revoker
	// Applied, when set, is called after every successful sync with the
	// generation of the ruleset in the kernel (nft.Model.LogGen, with
	// Render.Log) and the policies it was compiled from.
	Applied func(gen uint64, set *policy.Set)
}

// Revoker deletes conntrack entries of flows the policy no longer allows;
// *conntrack.Revoker is the real one.
type Revoker interface {
	Revoke(ctx context.Context, local func(netip.Addr) bool, allowed func(conntrack.Flow) bool) ([]conntrack.Flow, error)
}

// Stats describes one sync.
type Stats struct {
	// Full is true for a full transaction, false for an incremental one.
	Full     bool
	Changed  bool
	Duration time.Duration
	// Diff is the time spent computing the delta of an incremental sync,
	// Apply the time spent in the dataplane's transaction; both are part
	// of Duration.
	Diff, Apply time.Duration
	Counts      nft.Counts
	// Rejected are policies that did not compile; Fallbacks say what is
	// enforced for each instead.
	Rejected  int
	Fallbacks []Fallback
	// Revoked are the established flows cut because the sync denies them.
	Revoked []conntrack.Flow
	// RevokeErr is set when revocation failed (the ruleset is in force).
	RevokeErr error
	// Conflicts counts addresses held by more than one running pod.
	Conflicts int
	// Policies, ClusterPolicies and LocalPods describe the input:
	// NetworkPolicies in force and cluster policies in force by tier
	// (indexed by policy.Tier; fail-closed stand-ins included).
	Policies        int
	ClusterPolicies [2]int
	LocalPods       int
}

// Agent applies cluster snapshots to the dataplane. Its methods are safe
// for concurrent use; syncs are serialised.
type Agent struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	compiler *policy.Compiler
	renderer *nft.Renderer
	current  *nft.Model
	// reported holds rejected policies and notices already logged, by
	// key@version@action (see report).
	reported map[string]bool
	// warned holds the address conflicts already logged; conflicts counts
	// those of the last render.
	warned    map[string]bool
	conflicts int
	// lastCompiled holds the last version of each policy that compiled,
	// lastCompiledCluster of each cluster policy, by key.
	lastCompiled        map[string]*networkingv1.NetworkPolicy
	lastCompiledCluster map[string]*cluster.ClusterPolicy
}

// New returns an agent. Call CheckKernel before the first Sync.
func New(cfg Config) *Agent {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Agent{cfg: cfg, log: log, compiler: policy.NewCompiler(), renderer: nft.NewRenderer(cfg.Render),
		lastCompiled: map[string]*networkingv1.NetworkPolicy{}, lastCompiledCluster: map[string]*cluster.ClusterPolicy{}}
}

// CheckKernel fails loudly when the kernel lacks what the ruleset needs:
// the agent must never run as a silent no-op.
func (a *Agent) CheckKernel(ctx context.Context) error {
	if err := a.cfg.Dataplane.CheckKernel(ctx); err != nil {
		return fmt.Errorf("kernel check failed, refusing to run without enforcement: %w", err)
	}
	return nil
}

// Render compiles and renders a cluster for this node. Compilation and
// rendering are incremental: only policies that changed are recompiled and
// only local pods whose allowances can differ are re-resolved. A policy
// that does not compile never opens a pod: its last compiled version stays
// in force, or, when it never compiled, the pods it selects are isolated in
// its policyTypes with no allows (see DenyVersion; for a cluster policy,
// DenyClusterVersion). The set returned lists the rejected policies as
// read.
func (a *Agent) Render(c *cluster.Cluster) (*nft.Model, *policy.Set) {
	return a.RenderWith(c, nil)
}

// RenderWith renders as Render does, with invalid: cluster policies the
// source read but found invalid (see Snapshot.InvalidClusterPolicies),
// which are not in c. Each is enforced as a policy that does not compile:
// its last compiled version, or its DenyClusterVersion.
func (a *Agent) RenderWith(c *cluster.Cluster, invalid []*policy.Rejection) (*nft.Model, *policy.Set) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m, set, _ := a.render(c, invalid)
	return m, set
}

// Model returns the ruleset the last sync put in force, or nil before the
// first sync and after a failed one (the next sync is then a full one).
// The model is shared with the agent and must not be modified.
func (a *Agent) Model() *nft.Model {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.current
}

func (a *Agent) render(c *cluster.Cluster, invalid []*policy.Rejection) (*nft.Model, *policy.Set, []Fallback) {
	set := a.compiler.NewSet(c)
	rejected := set.Rejected
	for _, r := range invalid {
		if r.ClusterPolicy != nil {
			rejected = append(slices.Clip(rejected), r)
		}
	}
	sub, fallbacks := a.failClosed(c, set, invalid)
	if sub != nil {
		// A last compiled version compiles again, a cluster policy's
		// stand-in always does, and a NetworkPolicy's deny stand-in does
		// unless its namespace is invalid — and no pod can be in such a
		// namespace, so leaving it out opens nothing.
		set = a.compiler.NewSet(sub)
		set.Rejected = rejected
	}
	a.remember(set, fallbacks)
	a.report(set, fallbacks)
	a.warnConflicts(c)
	return a.renderer.Render(set), set, fallbacks
}

// report logs, and hands to Config.Rejected and Config.Noticed, every
// fallback and notice not reported for the same policy version before.
func (a *Agent) report(set *policy.Set, fallbacks []Fallback) {
	seen := map[string]bool{}
	for _, fb := range fallbacks {
		r := fb.Rejection
		key := fb.Policy + "@" + rejectionVersion(r) + "@" + fb.Action
		seen[key] = true
		if a.reported[key] {
			continue
		}
		switch {
		case r.ClusterPolicy != nil && fb.Action == ActionLastGood:
			a.log.Warn("cluster policy rejected: its last compiled version stays in force; other policies still enforced", "policy", fb.Policy, "reason", fb.Reason, "error", r.Err)
		case r.ClusterPolicy != nil:
			a.log.Warn("cluster policy rejected: until it is fixed, a stand-in in its tier and priority denies its subject all traffic in every direction it has rules; other policies still enforced", "policy", fb.Policy, "reason", fb.Reason, "error", r.Err)
		case fb.Action == ActionLastGood:
			a.log.Warn("policy rejected: its last compiled version stays in force; other policies still enforced", "policy", fb.Policy, "reason", fb.Reason, "error", r.Err)
		default:
			a.log.Warn("policy rejected: the pods it selects are denied in its policyTypes until it is fixed; other policies still enforced", "policy", fb.Policy, "reason", fb.Reason, "error", r.Err)
		}
		if a.cfg.Rejected != nil {
			a.cfg.Rejected(fb)
		}
	}
	for _, n := range a.notices(set) {
		seen[n.key] = true
		if a.reported[n.key] {
			continue
		}
		a.log.Warn(n.Message, "policy", n.Policy.Key(), "reason", n.Reason)
		if a.cfg.Noticed != nil {
			a.cfg.Noticed(n)
		}
	}
	a.reported = seen
}

// warnConflicts logs, once each, addresses held by more than one running
// pod: every holder is denied all traffic until one goes.
func (a *Agent) warnConflicts(c *cluster.Cluster) {
	conflicts := c.Conflicts()
	a.conflicts = len(conflicts)
	seen := make(map[string]bool, len(conflicts))
	for _, cf := range conflicts {
		key := cf.Addr.String() + " " + cf.SharedWith(nil)
		seen[key] = true
		if !a.warned[key] {
			a.log.Warn("address held by more than one running pod: every holder is denied all traffic until one goes (fail closed)", "address", cf.Addr, "pods", cf.SharedWith(nil))
		}
	}
	a.warned = seen
}

// Sync brings the dataplane to the state the cluster asks for: the first
// sync is one full transaction, later ones carry only the differences.
// When a transaction fails, the kernel keeps its previous state (a
// transaction is atomic) and the next sync is a full one.
func (a *Agent) Sync(ctx context.Context, c *cluster.Cluster) (Stats, error) {
	return a.SyncWith(ctx, c, nil)
}

// SyncWith syncs as Sync does, with invalid: cluster policies the source
// read but found invalid, which are not in c (see RenderWith).
func (a *Agent) SyncWith(ctx context.Context, c *cluster.Cluster, invalid []*policy.Rejection) (st Stats, err error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	defer func() {
		a.cfg.Metrics.observe(st, err)
		if a.cfg.Health != nil {
			a.cfg.Health.record(err)
		}
	}()
	start := time.Now()
	m, set, fallbacks := a.render(c, invalid)
	st = Stats{Conflicts: a.conflicts, Counts: m.Counts(), Rejected: len(set.Rejected), Fallbacks: fallbacks, Policies: len(set.Policies), LocalPods: a.localPods(c)}
	for _, p := range set.ClusterPolicies {
		st.ClusterPolicies[p.Tier]++
	}
	narrows := true // whether the change can deny something it allowed
	if a.current == nil {
		st.Full, st.Changed = true, true
		t0 := time.Now()
		err = a.cfg.Dataplane.FullSync(ctx, m)
		st.Apply = time.Since(t0)
	} else {
		t0 := time.Now()
		d := nft.Diff(a.current, m)
		t1 := time.Now()
		st.Diff = t1.Sub(t0)
		if !d.Empty() {
			st.Changed, narrows = true, !d.OnlyWidens()
			err = a.cfg.Dataplane.Apply(ctx, d)
			st.Apply = time.Since(t1)
		}
	}
	if err != nil {
		st.Duration = time.Since(start)
		a.current = nil
		return st, fmt.Errorf("apply ruleset: %w", err)
	}
	a.current = m
	if a.cfg.Applied != nil {
		a.cfg.Applied(m.LogGen, set)
	}
	// Revocation dumps the conntrack table: only after a change that can
	// deny a flow (not, say, after a new pod's address joins its peers'
	// sets).
	if st.Changed && narrows && a.cfg.Revoker != nil {
		st.Revoked, st.RevokeErr = a.revoke(ctx, set)
		if st.RevokeErr != nil {
			a.log.Error("revoking established flows the new policy denies failed; they may go on until they end", "error", st.RevokeErr)
		} else if len(st.Revoked) > 0 {
			a.log.Info("revoked established flows the new policy denies", "flows", len(st.Revoked), "first", st.Revoked[0].String())
		}
	}
	st.Duration = time.Since(start)
	if st.Changed {
		a.log.Info("synced", "full", st.Full, "duration", st.Duration, "chains", len(m.Chains), "sets", len(m.Sets), "elements", st.Counts.Elements())
	}
	return st, nil
}

// revoke deletes the conntrack entries of flows involving a local pod that
// set denies, evaluated exactly as the analyzer evaluates them.
func (a *Agent) revoke(ctx context.Context, set *policy.Set) ([]conntrack.Flow, error) {
	c := set.Cluster
	local := func(ip netip.Addr) bool {
		p := c.PodByIP(ip)
		return p != nil && !p.HostNetwork && a.isLocal(p)
	}
	allowed := func(f conntrack.Flow) bool {
		return set.Evaluate(set.AddrFlow(f.Src, f.Dst, f.Protocol, int32(f.DstPort))).Allowed
	}
	return a.cfg.Revoker.Revoke(ctx, local, allowed)
}

func (a *Agent) isLocal(p *cluster.Pod) bool {
	if ok, _ := p.Active(); !ok {
		return false
	}
	return a.cfg.Render.AllLocal || p.NodeName == a.cfg.Render.Node
}

func (a *Agent) localPods(c *cluster.Cluster) int {
	n := 0
	for _, p := range c.Pods {
		if ok, _ := p.Active(); ok && !p.HostNetwork && (a.cfg.Render.AllLocal || p.NodeName == a.cfg.Render.Node) {
			n++
		}
	}
	return n
}
