package agent

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/netfence/netfence/internal/kube"
	"github.com/netfence/netfence/internal/policy"
)

// KubeOptions configure RunKube.
type KubeOptions struct {
	// Retry is the wait before retrying a failed sync (default 1s).
	Retry time.Duration
	// Synced, when set, is called after every successful sync.
	Synced func(Stats)
	// Once returns after the first successful sync.
	Once bool
}

// RunKube enforces the cluster the informers see. It checks the kernel,
// waits for the informers' caches to fill (the previous run's rules stay
// in force meanwhile, so a restart has no open window), syncs, and then
// syncs again after every change until ctx ends. While the API server is
// unreachable the informers keep their caches and the kernel keeps the last
// state; after reconnecting, the informers relist and the agent catches up.
func RunKube(ctx context.Context, a *Agent, inf *kube.Informers, opts KubeOptions) error {
	if err := a.CheckKernel(ctx); err != nil {
		return err
	}
	if opts.Retry <= 0 {
		opts.Retry = time.Second
	}
	a.log.Info("waiting for informer caches")
	if !inf.Start(ctx) {
		return ctx.Err()
	}
	var retry <-chan time.Time
	for {
		st, err := a.Sync(ctx, inf.Snapshot())
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			a.log.Error("sync failed; last applied state stays in force", "error", err, "retry", opts.Retry)
			retry = time.After(opts.Retry)
		default:
			retry = nil
			if opts.Synced != nil {
				opts.Synced(st)
			}
			if opts.Once {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			a.log.Info("stopping; rules stay in place")
			return nil
		case <-inf.Changed():
		case <-retry:
		}
	}
}

// EventReporter returns a Config.Rejected callback that records a Warning
// Event on every policy the agent cannot compile (and enforces fail-closed
// instead), and a function that stops the event broadcaster.
func EventReporter(client kubernetes.Interface, node string) (func(*policy.Rejection), func()) {
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	rec := b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "netfence-agent", Host: node})
	// The agent reports each policy version once (Agent.Render); the
	// recorder's correlator folds any repeats.
	report := func(r *policy.Rejection) {
		rec.Eventf(r.Policy, corev1.EventTypeWarning, "InvalidNetworkPolicy",
			"netfence agent on %s cannot compile this policy: %v. It fails closed until fixed: its last compiled version stays in force, or, if it never compiled, the pods it selects are denied in its policyTypes; other policies stay enforced", node, r.Err)
	}
	return report, b.Shutdown
}
