// Package agent is netfence's node agent: it keeps a node's nftables in
// step with the cluster. A source (manifest files here; the Kubernetes API
// later) yields cluster snapshots; each is compiled into the policy form,
// rendered for the node's pods and applied: a full transaction the first
// time, then only the differences.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/policy"
)

// Dataplane is where the agent enforces; *nft.Applier is the real one.
type Dataplane interface {
	CheckKernel() error
	FullSync(m *nft.Model) error
	Update(old, new *nft.Model) error
}

// deltaApplier is a Dataplane that applies a ready-made diff.
type deltaApplier interface {
	Apply(d *nft.Delta) error
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
	// Rejected, when set, is called for every policy rejected as invalid.
	Rejected func(*policy.Rejection)
}

// Stats describes one sync.
type Stats struct {
	// Full is true for a full transaction, false for an incremental one.
	Full     bool
	Changed  bool
	Duration time.Duration
	Counts   nft.Counts
	// Rejected are policies left out because they did not compile.
	Rejected int
	// Policies and LocalPods describe the input.
	Policies  int
	LocalPods int
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
	// reported holds rejected policies already logged, by ns/name@version.
	reported map[string]bool
}

// New returns an agent. Call CheckKernel before the first Sync.
func New(cfg Config) *Agent {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Agent{cfg: cfg, log: log, compiler: policy.NewCompiler(), renderer: nft.NewRenderer(cfg.Render)}
}

// CheckKernel fails loudly when the kernel lacks what the ruleset needs:
// the agent must never run as a silent no-op.
func (a *Agent) CheckKernel() error {
	if err := a.cfg.Dataplane.CheckKernel(); err != nil {
		return fmt.Errorf("kernel check failed, refusing to run without enforcement: %w", err)
	}
	return nil
}

// Render compiles and renders a cluster for this node. Compilation and
// rendering are incremental: only policies that changed are recompiled and
// only local pods whose allowances can differ are re-resolved.
func (a *Agent) Render(c *cluster.Cluster) (*nft.Model, *policy.Set) {
	set := a.compiler.NewSet(c)
	seen := map[string]bool{}
	for _, r := range set.Rejected {
		key := r.Policy.Namespace + "/" + r.Policy.Name + "@" + r.Policy.ResourceVersion
		seen[key] = true
		if a.reported[key] {
			continue
		}
		a.log.Warn("policy rejected, others still enforced", "policy", r.Policy.Namespace+"/"+r.Policy.Name, "error", r.Err)
		if a.cfg.Rejected != nil {
			a.cfg.Rejected(r)
		}
	}
	a.reported = seen
	return a.renderer.Render(set), set
}

// Sync brings the dataplane to the state the cluster asks for: the first
// sync is one full transaction, later ones carry only the differences.
// When a transaction fails, the kernel keeps its previous state (a
// transaction is atomic) and the next sync is a full one.
func (a *Agent) Sync(ctx context.Context, c *cluster.Cluster) (st Stats, err error) {
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
	m, set := a.Render(c)
	st = Stats{Counts: m.Counts(), Rejected: len(set.Rejected), Policies: len(set.Policies), LocalPods: a.localPods(c)}
	if a.current == nil {
		st.Full, st.Changed = true, true
		err = a.cfg.Dataplane.FullSync(m)
	} else if d := nft.Diff(a.current, m); !d.Empty() {
		st.Changed = true
		if ap, ok := a.cfg.Dataplane.(deltaApplier); ok {
			err = ap.Apply(d) // the diff is already made
		} else {
			err = a.cfg.Dataplane.Update(a.current, m)
		}
	}
	st.Duration = time.Since(start)
	if err != nil {
		a.current = nil
		return st, fmt.Errorf("apply ruleset: %w", err)
	}
	a.current = m
	if st.Changed {
		a.log.Info("synced", "full", st.Full, "duration", st.Duration, "chains", len(m.Chains), "sets", len(m.Sets), "elements", st.Counts.Elements())
	}
	return st, nil
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
