package agent

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/kube"
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
// Readiness also follows the informers' Err: a cluster-scoped policy
// resource that is served but cannot be read makes the agent not ready.
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
	var lastSrcErr string
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
			srcErr := inf.Err()
			a.cfg.Health.recordSource(srcErr)
			a.cfg.Metrics.kubeSource(srcErr)
			if text := errText(srcErr); text != lastSrcErr {
				lastSrcErr = text
				if srcErr != nil {
					a.log.Error("not ready: a policy source cannot be read", "error", srcErr)
				} else {
					a.log.Info("every policy source is read again")
				}
			}
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

// EventReporter records Kubernetes Events about policies: a Warning on
// every policy the agent cannot compile and enforces fail-closed instead
// (InvalidNetworkPolicy, InvalidClusterNetworkPolicy,
// InvalidAdminNetworkPolicy, InvalidBaselineAdminNetworkPolicy), and a
// Warning for every Notice (DomainNamesNotEnforced,
// EqualPriorityConflict). Events about cluster-scoped policies go to the
// default namespace, as for every cluster-scoped object.
type EventReporter struct {
	b    record.EventBroadcaster
	rec  record.EventRecorder
	node string
}

// NewEventReporter starts an event broadcaster; Stop stops it.
func NewEventReporter(client kubernetes.Interface, node string) *EventReporter {
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return &EventReporter{b: b, rec: b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "netfence-agent", Host: node}), node: node}
}

// Stop stops the broadcaster.
func (e *EventReporter) Stop() { e.b.Shutdown() }

// Rejected records the Event of a policy the agent cannot compile; use it
// as Config.Rejected. The agent reports each policy version once
// (Agent.Render); the recorder's correlator folds any repeats.
func (e *EventReporter) Rejected(fb Fallback) {
	r := fb.Rejection
	if r.ClusterPolicy == nil {
		e.rec.Eventf(r.Policy, corev1.EventTypeWarning, "InvalidNetworkPolicy",
			"netfence agent on %s cannot compile this policy: %v. It fails closed until fixed: its last compiled version stays in force, or, if it never compiled, the pods it selects are denied in its policyTypes; other policies stay enforced", e.node, r.Err)
		return
	}
	instead := "its last compiled version stays in force"
	if fb.Action == ActionDeny {
		instead = fmt.Sprintf("it never compiled, so a stand-in (annotated %s) in its tier and priority denies its subject all traffic in every direction it has rules", failClosedAnnotation)
	}
	e.rec.Eventf(clusterPolicyRef(r.ClusterPolicy), corev1.EventTypeWarning, "Invalid"+r.ClusterPolicy.Kind,
		"netfence agent on %s cannot enforce this policy as written (%s): %v. It fails closed until fixed: %s; other policies stay enforced", e.node, fb.Reason, r.Err, instead)
}

// Noticed records the Event of a notice; use it as Config.Noticed.
func (e *EventReporter) Noticed(n Notice) {
	e.rec.Eventf(clusterPolicyRef(n.Policy), corev1.EventTypeWarning, n.Reason, "netfence agent on %s: %s", e.node, n.Message)
}

// clusterPolicyRef refers to a cluster-scoped policy in an Event.
func clusterPolicyRef(cp *cluster.ClusterPolicy) *corev1.ObjectReference {
	return &corev1.ObjectReference{Kind: cp.Kind, APIVersion: cp.APIVersion, Name: cp.Name, UID: types.UID(cp.UID)}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
