package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
	"sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"

	"github.com/netfence/netfence/internal/cluster"
)

// Options configure NewInformers.
type Options struct {
	// Policy is the client of policy.networking.k8s.io. When set, the
	// cluster-scoped policies the API server serves are watched too (see
	// Informers); nil reads none.
	Policy versioned.Interface
	// Recheck is how often discovery is asked again which cluster-scoped
	// policy resources are served (default 30s), so that CRDs installed
	// or removed while the agent runs are picked up or forgotten.
	Recheck time.Duration
	// Grace is how long a served cluster-scoped policy resource may take
	// to fill its cache, once the agent is running, before Err reports it
	// (default twice Recheck, at least 10s).
	Grace time.Duration
	// Log receives what the informers do; nil discards it.
	Log *slog.Logger
}

// Informers watches namespaces, pods, NetworkPolicies and nodes with shared
// informers and, with Options.Policy, the cluster-scoped policies
// (ClusterNetworkPolicy v1beta1, or v1alpha2 when v1beta1 is not served;
// AdminNetworkPolicy and BaselineAdminNetworkPolicy v1alpha1), and hands
// out consistent snapshots.
//
// Cluster-scoped policies are CRDs that may be missing: an informer runs
// for each resource only while discovery shows it served, asked at Start
// and again every Options.Recheck. A resource that appears is watched and
// enters the snapshots once its cache has filled; one that disappears (its
// CRD removed, which deletes its objects) is stopped and forgotten. At
// Start, the caches of every resource served then are waited for, as for
// the core resources, so that the first sync never enforces less than
// what the API holds (the previous rules stay in the kernel meanwhile).
type Informers struct {
	factory  informers.SharedInformerFactory
	ns       cache.SharedIndexInformer
	pods     cache.SharedIndexInformer
	pols     cache.SharedIndexInformer
	nodes    cache.SharedIndexInformer
	changed  chan struct{}
	discover func(context.Context) (map[string]string, error)
	opts     Options
	log      *slog.Logger

	mu sync.Mutex
	// running are the policy informers in the snapshots, pending those
	// started but not synced yet, by resource.
	running, pending map[string]*policyInformer
	// started is true once Start waited for the first caches.
	started bool

	// converted caches the model of each pod object: the informer hands out
	// the same pointer while an object is unchanged, so a snapshot converts
	// only pods that changed. convertedCP and convertedNodes do the same
	// for cluster policies and nodes. Only Snapshot uses them.
	converted      map[*corev1.Pod]*cluster.Pod
	convertedCP    map[any]*cluster.ClusterPolicy
	convertedNodes map[*corev1.Node]*cluster.Node
}

// policyInformer is the informer of one cluster-scoped policy resource in
// one version.
type policyInformer struct {
	resource, version string
	informer          cache.SharedIndexInformer
	cancel            context.CancelFunc
	since             time.Time
}

// NewInformers prepares informers; Start runs them.
func NewInformers(client kubernetes.Interface, opts Options) *Informers {
	if opts.Recheck <= 0 {
		opts.Recheck = 30 * time.Second
	}
	if opts.Grace <= 0 {
		opts.Grace = max(2*opts.Recheck, 10*time.Second)
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(trim))
	s := &Informers{
		factory:        f,
		ns:             f.Core().V1().Namespaces().Informer(),
		pods:           f.Core().V1().Pods().Informer(),
		pols:           f.Networking().V1().NetworkPolicies().Informer(),
		nodes:          f.Core().V1().Nodes().Informer(),
		changed:        make(chan struct{}, 1),
		opts:           opts,
		log:            log,
		running:        map[string]*policyInformer{},
		pending:        map[string]*policyInformer{},
		converted:      map[*corev1.Pod]*cluster.Pod{},
		convertedCP:    map[any]*cluster.ClusterPolicy{},
		convertedNodes: map[*corev1.Node]*cluster.Node{},
	}
	s.discover = func(ctx context.Context) (map[string]string, error) {
		return ServedPolicyResources(ctx, client.Discovery())
	}
	for _, inf := range []cache.SharedIndexInformer{s.ns, s.pods, s.pols} {
		_, _ = inf.AddEventHandler(s.handler())
	}
	// Nodes change their status often (conditions, heartbeats); only their
	// labels and addresses matter.
	_, _ = s.nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { s.poke() },
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*corev1.Node)
			n, ok2 := newObj.(*corev1.Node)
			if ok1 && ok2 && maps.Equal(o.Labels, n.Labels) && slices.Equal(o.Status.Addresses, n.Status.Addresses) {
				return
			}
			s.poke()
		},
		DeleteFunc: func(any) { s.poke() },
	})
	return s
}

func (s *Informers) handler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.poke() },
		UpdateFunc: func(oldObj, newObj any) { s.poke() },
		DeleteFunc: func(any) { s.poke() },
	}
}

// trim drops what netfence never reads (managed fields, annotations, most
// of the pod spec and status, node conditions, policy status), to keep the
// agent's memory small.
func trim(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		out := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
			Name: o.Name, Namespace: o.Namespace, UID: o.UID, ResourceVersion: o.ResourceVersion, Labels: o.Labels,
		}}
		out.Spec.NodeName = o.Spec.NodeName
		out.Spec.HostNetwork = o.Spec.HostNetwork
		for _, c := range o.Spec.InitContainers {
			if len(c.Ports) > 0 {
				out.Spec.InitContainers = append(out.Spec.InitContainers, corev1.Container{Name: c.Name, Ports: c.Ports})
			}
		}
		for _, c := range o.Spec.Containers {
			out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Name: c.Name, Ports: c.Ports})
		}
		out.Status.Phase = o.Status.Phase
		out.Status.PodIP = o.Status.PodIP
		out.Status.PodIPs = o.Status.PodIPs
		return out, nil
	case *corev1.Namespace:
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.Name, UID: o.UID, ResourceVersion: o.ResourceVersion, Labels: o.Labels}}, nil
	case *corev1.Node:
		out := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: o.Name, UID: o.UID, ResourceVersion: o.ResourceVersion, Labels: o.Labels}}
		out.Status.Addresses = o.Status.Addresses
		return out, nil
	case *networkingv1.NetworkPolicy:
		o.ManagedFields = nil
		o.Annotations = cluster.ModeOnly(o.Annotations) // staged policies are not enforced
		return o, nil
	case *v1beta1.ClusterNetworkPolicy:
		o.ManagedFields, o.Annotations, o.Status = nil, cluster.ModeOnly(o.Annotations), v1beta1.ClusterNetworkPolicyStatus{}
		return o, nil
	case *v1alpha2.ClusterNetworkPolicy:
		o.ManagedFields, o.Annotations, o.Status = nil, cluster.ModeOnly(o.Annotations), v1alpha2.ClusterNetworkPolicyStatus{}
		return o, nil
	case *v1alpha1.AdminNetworkPolicy:
		o.ManagedFields, o.Annotations, o.Status = nil, cluster.ModeOnly(o.Annotations), v1alpha1.AdminNetworkPolicyStatus{}
		return o, nil
	case *v1alpha1.BaselineAdminNetworkPolicy:
		o.ManagedFields, o.Annotations, o.Status = nil, cluster.ModeOnly(o.Annotations), v1alpha1.BaselineAdminNetworkPolicyStatus{}
		return o, nil
	}
	return obj, nil
}

func (s *Informers) poke() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Changed is signalled (coalesced) after any add, update or delete, after
// a cluster-scoped policy resource enters or leaves the snapshots, and
// when Err may have changed.
func (s *Informers) Changed() <-chan struct{} { return s.changed }

// Start runs the informers until ctx ends and waits for their caches to
// fill: the core ones and, with Options.Policy, those of every
// cluster-scoped policy resource discovery shows served (discovery is
// retried until it answers). It returns false when ctx ended first. While
// it waits, it logs every 10s what it waits for.
func (s *Informers) Start(ctx context.Context) bool {
	s.factory.Start(ctx.Done())
	if s.opts.Policy != nil {
		for {
			err := s.reconcile(ctx)
			if err == nil {
				break
			}
			s.log.Error("cannot tell which cluster-scoped policy resources are served; asking again (nothing is synced meanwhile)", "error", err, "retry", time.Second)
			select {
			case <-ctx.Done():
				return false
			case <-time.After(time.Second):
			}
		}
		go s.recheck(ctx)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	logAt := time.Now().Add(10 * time.Second)
	for {
		waiting := s.unsynced()
		if len(waiting) == 0 {
			s.mu.Lock()
			s.started = true
			s.mu.Unlock()
			return true
		}
		if time.Now().After(logAt) {
			s.log.Warn("waiting for informer caches (is the API server reachable, and may the agent list and watch them?)", "resources", strings.Join(waiting, ", "))
			logAt = time.Now().Add(10 * time.Second)
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// unsynced names the informers whose caches have not filled.
func (s *Informers) unsynced() []string {
	var out []string
	for name, inf := range map[string]cache.SharedIndexInformer{"namespaces": s.ns, "pods": s.pods, "networkpolicies": s.pols, "nodes": s.nodes} {
		if !inf.HasSynced() {
			out = append(out, name)
		}
	}
	s.mu.Lock()
	for _, p := range s.pending {
		out = append(out, p.resource+"."+cluster.PolicyAPIGroup+"/"+p.version)
	}
	s.mu.Unlock()
	slices.Sort(out)
	return out
}

// recheck asks discovery again every Options.Recheck until ctx ends.
func (s *Informers) recheck(ctx context.Context) {
	t := time.NewTicker(s.opts.Recheck)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.reconcile(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("discovery of cluster-scoped policy resources failed; the informers stay as they are", "error", err)
		}
		// Readiness follows Err: tell the consumer when it changes.
		errText := ""
		if err := s.Err(); err != nil {
			errText = err.Error()
		}
		if errText != lastErr {
			lastErr = errText
			s.poke()
		}
	}
}

// reconcile starts an informer for every cluster-scoped policy resource
// discovery shows served (in the version it is read in) that has none,
// and stops and forgets those of resources no longer served. An informer
// enters the snapshots once its cache has filled (replacing, for a
// version change, the previous one only then).
func (s *Informers) reconcile(ctx context.Context) error {
	served, err := s.discover(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	for _, pr := range policyResources {
		want := served[pr.resource]
		run, pend := s.running[pr.resource], s.pending[pr.resource]
		switch {
		case want == "":
			if run != nil {
				run.cancel()
				delete(s.running, pr.resource)
				changed = true
				s.log.Info("cluster-scoped policy resource no longer served (CRD removed): its policies are forgotten", "resource", pr.resource)
			}
			if pend != nil {
				pend.cancel()
				delete(s.pending, pr.resource)
			}
		case run != nil && run.version == want:
			if pend != nil {
				pend.cancel()
				delete(s.pending, pr.resource)
			}
		case pend != nil && pend.version == want:
			// Still filling its cache.
		default:
			if pend != nil {
				pend.cancel()
			}
			p, err := s.startPolicyInformer(ctx, pr.resource, want)
			if err != nil {
				return err
			}
			s.pending[pr.resource] = p
			s.log.Info("cluster-scoped policy resource served: watching it", "resource", pr.resource, "version", want)
		}
	}
	if changed {
		s.poke()
	}
	return nil
}

// startPolicyInformer starts the informer of a resource in a version, and
// a goroutine that moves it from pending to running once its cache has
// filled. Call with s.mu held.
func (s *Informers) startPolicyInformer(ctx context.Context, resource, version string) (*policyInformer, error) {
	inf, err := newPolicyInformer(s.opts.Policy, resource, version)
	if err != nil {
		return nil, err
	}
	if err := inf.SetTransform(trim); err != nil {
		return nil, fmt.Errorf("informer of %s: %w", resource, err)
	}
	if _, err := inf.AddEventHandler(s.handler()); err != nil {
		return nil, fmt.Errorf("informer of %s: %w", resource, err)
	}
	ictx, cancel := context.WithCancel(ctx)
	p := &policyInformer{resource: resource, version: version, informer: inf, cancel: cancel, since: time.Now()}
	go inf.RunWithContext(ictx)
	go func() {
		if !cache.WaitForCacheSync(ictx.Done(), inf.HasSynced) {
			return
		}
		s.promote(p)
	}()
	return p, nil
}

// promote puts a pending informer whose cache has filled into the
// snapshots, stopping the one it replaces.
func (s *Informers) promote(p *policyInformer) {
	s.mu.Lock()
	if s.pending[p.resource] != p {
		s.mu.Unlock()
		return
	}
	delete(s.pending, p.resource)
	old := s.running[p.resource]
	s.running[p.resource] = p
	s.mu.Unlock()
	if old != nil {
		old.cancel()
	}
	s.log.Info("cluster-scoped policies enforced", "resource", p.resource, "version", p.version, "objects", len(p.informer.GetStore().List()))
	s.poke()
}

// Err reports a cluster-scoped policy resource that the API server serves
// but whose cache has not filled within Options.Grace since it was seen
// (the agent may lack the permission to list it): its policies are not
// enforced. It is nil otherwise, and always while Start waits.
func (s *Informers) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return nil
	}
	var errs []error
	for _, p := range s.pending {
		if _, replacing := s.running[p.resource]; !replacing && time.Since(p.since) > s.opts.Grace {
			errs = append(errs, fmt.Errorf("%s.%s/%s is served but could not be read for %s (may the agent list and watch it?): its policies are not enforced",
				p.resource, cluster.PolicyAPIGroup, p.version, time.Since(p.since).Round(time.Second)))
		}
	}
	return errors.Join(errs...)
}

// PolicyResources returns the cluster-scoped policy resources in the
// snapshots, with the version each is read in.
func (s *Informers) PolicyResources() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.running))
	for r, p := range s.running {
		out[r] = p.version
	}
	return out
}

// Snapshot returns the cluster as the informers' caches hold it now. It is
// not safe for concurrent use (the agent takes snapshots from one loop).
func (s *Informers) Snapshot() *cluster.Cluster {
	var nss []*cluster.Namespace
	for _, x := range s.ns.GetStore().List() {
		nss = append(nss, cluster.NamespaceFromAPI(x.(*corev1.Namespace)))
	}
	var pods []*cluster.Pod
	pods, s.converted = convertAll(s.pods.GetStore().List(), s.converted, cluster.PodFromAPI)
	var pols []*networkingv1.NetworkPolicy
	for _, x := range s.pols.GetStore().List() {
		pols = append(pols, x.(*networkingv1.NetworkPolicy))
	}
	var nodes []*cluster.Node
	nodes, s.convertedNodes = convertAll(s.nodes.GetStore().List(), s.convertedNodes, cluster.NodeFromAPI)
	s.mu.Lock()
	running := slices.Collect(maps.Values(s.running))
	s.mu.Unlock()
	var cps []*cluster.ClusterPolicy
	nextCP := make(map[any]*cluster.ClusterPolicy, len(s.convertedCP))
	for _, p := range running {
		for _, x := range p.informer.GetStore().List() {
			m, ok := s.convertedCP[x]
			if !ok {
				var err error
				if m, err = ClusterPolicyFromAPI(x); err != nil {
					if m == nil {
						s.log.Error("cluster-scoped policy of an unknown type left out", "error", err)
						continue
					}
					s.log.Error("cluster-scoped policy cannot be converted: enforced fail-closed", "policy", m.Key(), "error", err)
				}
			}
			nextCP[x] = m
			cps = append(cps, m)
		}
	}
	s.convertedCP = nextCP
	return cluster.NewWith(cluster.Parts{Namespaces: nss, Pods: pods, Policies: pols, ClusterPolicies: cps, Nodes: nodes})
}

// convertAll converts the objects of an informer's store (of type A),
// reusing the conversion in last of an object the previous snapshot
// converted, and returns them with the conversions for the next snapshot
// to reuse.
func convertAll[A comparable, M any](objs []any, last map[A]M, convert func(A) M) ([]M, map[A]M) {
	out := make([]M, 0, len(objs))
	next := make(map[A]M, len(objs))
	for _, x := range objs {
		a := x.(A)
		m, ok := last[a]
		if !ok {
			m = convert(a)
		}
		next[a] = m
		out = append(out, m)
	}
	return out, next
}
