package connectivity

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/utils/ptr"

	"github.com/netfence/netfence/internal/analysis"
	"github.com/netfence/netfence/internal/policy"
	"github.com/netfence/netfence/internal/probe"
)

// LiveLabel marks what a live run creates (namespaces), so that a run
// interrupted before its cleanup can be found: netfence.io/connectivity.
const LiveLabel = "netfence.io/connectivity"

// LiveOptions configure a live connectivity test (RunLive).
type LiveOptions struct {
	Client kubernetes.Interface
	// Config is the REST config of Client, for exec.
	Config *rest.Config
	// Image runs the probe pods: netfence's (`netfence probe serve`).
	Image string
	// Namespaces are created for the probe pods (default
	// netfence-probe-x and netfence-probe-y); each gets the pods Pods.
	Namespaces []string
	// Pods are the probe pods' names in each namespace (default a, b,
	// c); each is labelled pod=NAME.
	Pods []string
	// Ports the probe pods serve and are probed on (default TCP/80,
	// TCP/81, UDP/53). Container ports are named serve-PORT-PROTO.
	Ports []analysis.Port
	// Policies are applied in the probe namespaces once the pods run
	// (each must name one of Namespaces); none: the cluster's own
	// policies decide.
	Policies []*networkingv1.NetworkPolicy
	// Load reads the live cluster for the analyzer (after the probe pods
	// and policies exist).
	Load func(context.Context) (*policy.Set, error)
	// Settle is how long to wait, once everything exists, for the nodes'
	// agents to enforce it (default 3s).
	Settle   time.Duration
	Timeout  time.Duration
	Parallel int
	// Keep leaves the namespaces in place (for debugging, or for a later
	// run with Reuse).
	Keep bool
	// Reuse keeps what a previous run (with Keep) left: only missing
	// namespaces, pods and policies are created, so that a run after an
	// edit (a label changed, a pod deleted and so re-created with a new
	// address, an agent restarted) probes the edited cluster.
	Reuse bool
	Log   *slog.Logger
}

func (o *LiveOptions) defaults() {
	if len(o.Namespaces) == 0 {
		o.Namespaces = []string{"netfence-probe-x", "netfence-probe-y"}
	}
	if len(o.Pods) == 0 {
		o.Pods = []string{"a", "b", "c"}
	}
	if len(o.Ports) == 0 {
		o.Ports = []analysis.Port{{Protocol: "TCP", Port: 80}, {Protocol: "TCP", Port: 81}, {Protocol: "UDP", Port: 53}}
	}
	if o.Settle <= 0 {
		o.Settle = 3 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Parallel <= 0 {
		o.Parallel = 16
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// RunLive is the connectivity test of a live cluster: it creates the
// probe namespaces and pods (netfence's image serving the ports), applies
// the policies, waits for the pods and the agents, probes every ordered
// pair of probe pods on every port and address family with real
// connections made inside the source pod (exec `netfence probe dial`),
// and compares with the analyzer's verdicts on the live cluster as read
// by Load. It deletes what it created on every path (unless Keep).
func RunLive(ctx context.Context, opts LiveOptions) (_ *Report, err error) {
	opts.defaults()
	start := time.Now()
	for _, p := range opts.Policies {
		if !slices.Contains(opts.Namespaces, p.Namespace) {
			return nil, fmt.Errorf("policy %s/%s: not in a probe namespace (%s)", p.Namespace, p.Name, strings.Join(opts.Namespaces, ", "))
		}
	}
	if !opts.Reuse {
		if err := cleanupLive(ctx, opts); err != nil {
			return nil, err
		}
	}
	if !opts.Keep {
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
			defer cancel()
			if cerr := cleanupLive(cctx, opts); cerr != nil && err == nil {
				err = cerr
			}
		}()
	}
	if err := createProbePods(ctx, opts); err != nil {
		return nil, err
	}
	for _, p := range opts.Policies {
		if _, err := opts.Client.NetworkingV1().NetworkPolicies(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil && !(opts.Reuse && apierrors.IsAlreadyExists(err)) {
			return nil, fmt.Errorf("create policy %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
	opts.Log.Info("probe pods running; waiting for the agents", "settle", opts.Settle)
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(opts.Settle):
	}
	set, err := opts.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the live cluster: %w", err)
	}
	rep, err := probeLive(ctx, opts, set)
	if err != nil {
		return nil, err
	}
	rep.Duration = time.Since(start).Round(time.Millisecond).String()
	return rep, nil
}

// cleanupLive deletes the probe namespaces and waits until they are gone.
func cleanupLive(ctx context.Context, opts LiveOptions) error {
	for _, ns := range opts.Namespaces {
		err := opts.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete namespace %s: %w", ns, err)
		}
	}
	return wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, ns := range opts.Namespaces {
			_, err := opts.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if err == nil {
				return false, nil
			}
			if !apierrors.IsNotFound(err) {
				return false, err
			}
		}
		return true, nil
	})
}

func portName(p analysis.Port) string {
	return fmt.Sprintf("serve-%d-%s", p.Port, strings.ToLower(string(p.Protocol)))
}

func createProbePods(ctx context.Context, opts LiveOptions) error {
	var ports []corev1.ContainerPort
	var spec []string
	for _, p := range opts.Ports {
		ports = append(ports, corev1.ContainerPort{Name: portName(p), ContainerPort: p.Port, Protocol: p.Protocol})
		spec = append(spec, p.String())
	}
	for _, ns := range opts.Namespaces {
		_, err := opts.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: ns, Labels: map[string]string{LiveLabel: "probe"}}}, metav1.CreateOptions{})
		if err != nil && !(opts.Reuse && apierrors.IsAlreadyExists(err)) {
			return fmt.Errorf("create namespace %s: %w", ns, err)
		}
		// The API server creates the default service account lazily;
		// pods are refused until it exists.
		if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := opts.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
			return err == nil, nil
		}); err != nil {
			return fmt.Errorf("namespace %s: no default service account: %w", ns, err)
		}
		for _, name := range opts.Pods {
			grace := int64(1)
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"pod": name, LiveLabel: "probe"}},
				Spec: corev1.PodSpec{
					// The image's non-privileged default user, allowed to
					// serve ports below 1024 (a safe, namespaced sysctl).
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot: ptr.To(true),
						Sysctls:      []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}},
					},
					TerminationGracePeriodSeconds: &grace,
					AutomountServiceAccountToken:  new(bool),
					Containers: []corev1.Container{{
						Name:            "probe",
						Image:           opts.Image,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Args:            []string{"probe", "serve", "--token", probe.Token(ns + "/" + name), "--ports", strings.Join(spec, ",")},
						Ports:           ports,
					}},
				},
			}
			if _, err := opts.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil && !(opts.Reuse && apierrors.IsAlreadyExists(err)) {
				return fmt.Errorf("create pod %s/%s: %w", ns, name, err)
			}
		}
	}
	opts.Log.Info("waiting for the probe pods", "pods", len(opts.Namespaces)*len(opts.Pods))
	var notReady []string
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		notReady = notReady[:0]
		for _, ns := range opts.Namespaces {
			pods, err := opts.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			if len(pods.Items) < len(opts.Pods) {
				notReady = append(notReady, fmt.Sprintf("%s: %d of %d pods", ns, len(pods.Items), len(opts.Pods)))
			}
			for _, p := range pods.Items {
				if why := podNotReady(&p); why != "" {
					notReady = append(notReady, ns+"/"+p.Name+": "+why)
				}
			}
		}
		return len(notReady) == 0, nil
	})
	if err != nil && len(notReady) > 0 {
		return fmt.Errorf("probe pods not ready: %s: %w", strings.Join(notReady, "; "), err)
	}
	return err
}

// podNotReady says why a probe pod cannot be probed yet ("" when it can):
// being deleted, not running, no address, or its container not ready (with
// the container's waiting reason, e.g. CrashLoopBackOff).
func podNotReady(p *corev1.Pod) string {
	switch {
	case p.DeletionTimestamp != nil:
		return "being deleted"
	case p.Status.Phase != corev1.PodRunning:
		return "phase " + string(p.Status.Phase)
	case p.Status.PodIP == "":
		return "no address"
	}
	for _, cs := range p.Status.ContainerStatuses {
		if !cs.Ready {
			why := "container not ready"
			if w := cs.State.Waiting; w != nil {
				why += ": " + w.Reason
			}
			if t := cs.LastTerminationState.Terminated; t != nil {
				why += fmt.Sprintf(" (last exit %d: %s)", t.ExitCode, strings.TrimSpace(t.Message))
			}
			return why
		}
	}
	return ""
}

// probeLive probes every ordered pair of probe pods and compares with set.
func probeLive(ctx context.Context, opts LiveOptions, set *policy.Set) (*Report, error) {
	c := set.Cluster
	var pods []string
	for _, ns := range opts.Namespaces {
		for _, name := range opts.Pods {
			key := ns + "/" + name
			if p := c.Pod(key); p == nil || len(p.IPs) == 0 {
				return nil, fmt.Errorf("probe pod %s is not in the live cluster read, or has no address", key)
			}
			pods = append(pods, key)
		}
	}
	rep := &Report{Pods: pods}
	for _, p := range opts.Ports {
		rep.Ports = append(rep.Ports, p.String())
	}
	// Per source pod: its targets and where their results go.
	targets := map[string][]probe.Target{}
	refs := map[string][]int{}
	var extra []Result
	var extraFrom []string
	var extraTargets []probe.Target
	for _, port := range opts.Ports {
		for _, fk := range pods {
			from := c.Pod(fk)
			for _, tk := range pods {
				to := c.Pod(tk)
				for ai, dst := range distinctFamilies(to.IPs) {
					src := from.IPFor(dst)
					r := Result{From: fk, To: tk, Protocol: string(port.Protocol), Port: port.Port, FromAddress: src.String(), ToAddress: dst.String()}
					switch {
					case from == to:
						r.Allowed, r.Expected, r.Ingress, r.Egress = true, true, true, true
						r.Reason = "same pod: traffic never leaves the pod"
					case !src.IsValid() || src.Is4() != dst.Is4():
						r.Reason = fmt.Sprintf("unprobed: %s has no IPv%d address", fk, family(dst))
						r.FromAddress = ""
					case port.Protocol == corev1.ProtocolSCTP:
						r.Reason = "unprobed: SCTP (the probe pods have no SCTP sockets)"
					default:
						r.Probed = true
					}
					if from != to {
						v := set.Evaluate(set.AddrFlow(src, dst, port.Protocol, port.Port))
						r.Allowed, r.Expected, r.Egress, r.Ingress = v.Allowed, v.Allowed, v.Egress.Allowed, v.Ingress.Allowed
					}
					t := probe.Target{To: dst.String(), Protocol: string(port.Protocol), Port: port.Port, Expect: probe.Token(tk)}
					switch {
					case ai == 0 && r.Probed:
						refs[fk] = append(refs[fk], len(rep.Results))
						targets[fk] = append(targets[fk], t)
						rep.Results = append(rep.Results, r)
					case ai == 0:
						rep.Results = append(rep.Results, r)
					case r.Probed:
						extra = append(extra, r)
						extraFrom = append(extraFrom, fk)
						extraTargets = append(extraTargets, t)
					}
				}
			}
		}
	}
	for i := range extra {
		refs[extraFrom[i]] = append(refs[extraFrom[i]], len(rep.Results))
		targets[extraFrom[i]] = append(targets[extraFrom[i]], extraTargets[i])
		rep.Results = append(rep.Results, extra[i])
	}
	if err := dialRound(ctx, opts, pods, targets, refs, rep, true); err != nil {
		return nil, err
	}
	// The agents enforce asynchronously: a mismatch right after the pods
	// and policies appeared may be an agent still syncing. Mismatched
	// probes are made again after the settle time, at most twice;
	// Report.Reprobed says how many were, and the final verdicts stand.
	for try := 0; try < liveRetries && rep.Mismatches > 0; try++ {
		again, againRefs := map[string][]probe.Target{}, map[string][]int{}
		for _, fk := range pods {
			for i, ri := range refs[fk] {
				if rep.Results[ri].Mismatch {
					again[fk] = append(again[fk], targets[fk][i])
					againRefs[fk] = append(againRefs[fk], ri)
					rep.Reprobed++
				}
			}
		}
		opts.Log.Info("mismatches; probing them again after the settle time", "mismatches", rep.Mismatches, "settle", opts.Settle)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(opts.Settle):
		}
		if err := dialRound(ctx, opts, pods, again, againRefs, rep, false); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// liveRetries bounds how often RunLive probes a mismatch again.
const liveRetries = 2

// dialRound makes the probes of targets (per source pod, results going to
// rep.Results[refs[pod][i]]) and records their outcomes; first is the
// first round, which counts the probes.
func dialRound(ctx context.Context, opts LiveOptions, pods []string, targets map[string][]probe.Target, refs map[string][]int, rep *Report, first bool) error {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	for _, fk := range pods {
		if len(targets[fk]) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results, err := execDial(ctx, opts, fk, targets[fk])
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			for i, res := range results {
				r := &rep.Results[refs[fk][i]]
				if r.Mismatch {
					rep.Mismatches--
				}
				r.Outcome, r.Reason = res.Outcome, ""
				if res.Outcome == probe.Unprobed {
					r.Probed, r.Reason = false, "unprobed: "+res.Detail
					continue
				}
				if first {
					rep.Probes++
				}
				r.Allowed = res.Reached()
				if res.Outcome == probe.Failed || res.Outcome == probe.WrongReply {
					r.Reason = res.Detail
				}
				r.Mismatch = r.Allowed != r.Expected
				if r.Mismatch {
					rep.Mismatches++
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// execDial runs `netfence probe dial` in the probe pod key with targets and
// returns its results, in order.
func execDial(ctx context.Context, opts LiveOptions, key string, targets []probe.Target) ([]probe.Result, error) {
	ns, name, _ := strings.Cut(key, "/")
	js, err := json.Marshal(targets)
	if err != nil {
		return nil, err
	}
	cmd := []string{"/usr/local/bin/netfence", "probe", "dial", "--targets", string(js),
		"--timeout", opts.Timeout.String(), "--parallel", fmt.Sprint(opts.Parallel)}
	req := opts.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(name).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: "probe", Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(opts.Config, "POST", req.URL())
	if err != nil {
		return nil, fmt.Errorf("exec in %s: %w", key, err)
	}
	var stdout, stderr bytes.Buffer
	budget := time.Duration(len(targets)/max(opts.Parallel, 1)+2)*opts.Timeout*2 + 30*time.Second
	ectx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	if err := ex.StreamWithContext(ectx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}); err != nil {
		return nil, fmt.Errorf("exec in %s: %w (stderr: %s)", key, err, strings.TrimSpace(stderr.String()))
	}
	var out []probe.Result
	dec := json.NewDecoder(&stdout)
	for dec.More() {
		var r probe.Result
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("exec in %s: reading results: %w", key, err)
		}
		out = append(out, r)
	}
	if len(out) != len(targets) {
		return nil, fmt.Errorf("exec in %s: %d results for %d targets", key, len(out), len(targets))
	}
	for i := range out {
		if out[i].Target != targets[i] {
			return nil, fmt.Errorf("exec in %s: result %d is for %+v, want %+v", key, i, out[i].Target, targets[i])
		}
	}
	return out, nil
}
