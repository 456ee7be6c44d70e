// Package kube reads namespaces, pods and NetworkPolicies from the
// Kubernetes API: a one-shot snapshot for the analyzer and client-go shared
// informers for the node agent. Both produce the same cluster model as the
// manifest reader.
package kube

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/netfence/netfence/internal/cluster"
)

// ConfigOptions say how to reach the API server.
type ConfigOptions struct {
	// Kubeconfig is a kubeconfig file; empty uses KUBECONFIG and
	// ~/.kube/config, as kubectl does.
	Kubeconfig string
	// Context is the kubeconfig context; empty uses the current one.
	Context string
	// InCluster uses the pod's service account.
	InCluster bool
}

// RESTConfig builds a client configuration.
func RESTConfig(o ConfigOptions) (*rest.Config, error) {
	if o.InCluster {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config: %w", err)
		}
		return cfg, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if o.Kubeconfig != "" {
		rules.ExplicitPath = o.Kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: o.Context}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
}

// Objects are the API objects netfence reads.
type Objects struct {
	Namespaces []*corev1.Namespace
	Pods       []*corev1.Pod
	Policies   []*networkingv1.NetworkPolicy
}

// List reads every namespace, pod and NetworkPolicy once, paginated.
func List(ctx context.Context, client kubernetes.Interface) (*Objects, error) {
	o := &Objects{}
	opts := metav1.ListOptions{Limit: 500}
	for {
		l, err := client.CoreV1().Namespaces().List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list namespaces: %w", err)
		}
		for i := range l.Items {
			o.Namespaces = append(o.Namespaces, &l.Items[i])
		}
		if opts.Continue = l.Continue; opts.Continue == "" {
			break
		}
	}
	opts.Continue = ""
	for {
		l, err := client.CoreV1().Pods("").List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list pods: %w", err)
		}
		for i := range l.Items {
			o.Pods = append(o.Pods, &l.Items[i])
		}
		if opts.Continue = l.Continue; opts.Continue == "" {
			break
		}
	}
	opts.Continue = ""
	for {
		l, err := client.NetworkingV1().NetworkPolicies("").List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list networkpolicies: %w", err)
		}
		for i := range l.Items {
			o.Policies = append(o.Policies, &l.Items[i])
		}
		if opts.Continue = l.Continue; opts.Continue == "" {
			break
		}
	}
	return o, nil
}

// Cluster builds the model. Policies are taken as they are; the policy
// compiler validates them and rejects invalid ones.
func (o *Objects) Cluster() *cluster.Cluster {
	return cluster.FromAPI(o.Namespaces, o.Pods, o.Policies)
}

// Overlay adds objects read from elsewhere (manifests), each replacing the
// object of the same kind, namespace and name: the live cluster with a
// policy change applied, to judge it before it is applied.
func (o *Objects) Overlay(namespaces []*corev1.Namespace, pods []*corev1.Pod, policies []*networkingv1.NetworkPolicy) {
	o.Namespaces = overlay(o.Namespaces, namespaces, func(x *corev1.Namespace) string { return x.Name })
	o.Pods = overlay(o.Pods, pods, func(x *corev1.Pod) string { return x.Namespace + "/" + x.Name })
	o.Policies = overlay(o.Policies, policies, func(x *networkingv1.NetworkPolicy) string { return x.Namespace + "/" + x.Name })
}

// overlay returns base with every object of top added, replacing the base
// object of the same key.
func overlay[T any](base, top []T, key func(T) string) []T {
	replaced := make(map[string]bool, len(top))
	for _, x := range top {
		replaced[key(x)] = true
	}
	out := make([]T, 0, len(base)+len(top))
	for _, x := range base {
		if !replaced[key(x)] {
			out = append(out, x)
		}
	}
	return append(out, top...)
}

// Informers watches namespaces, pods and NetworkPolicies with shared
// informers and hands out consistent snapshots.
type Informers struct {
	factory informers.SharedInformerFactory
	ns      cache.SharedIndexInformer
	pods    cache.SharedIndexInformer
	pols    cache.SharedIndexInformer
	changed chan struct{}

	// converted caches the model of each pod object: the informer hands out
	// the same pointer while an object is unchanged, so a snapshot converts
	// only pods that changed. Only Snapshot uses it.
	converted map[*corev1.Pod]*cluster.Pod
}

// NewInformers prepares informers; Start runs them.
func NewInformers(client kubernetes.Interface) *Informers {
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(trim))
	s := &Informers{
		factory:   f,
		ns:        f.Core().V1().Namespaces().Informer(),
		pods:      f.Core().V1().Pods().Informer(),
		pols:      f.Networking().V1().NetworkPolicies().Informer(),
		changed:   make(chan struct{}, 1),
		converted: map[*corev1.Pod]*cluster.Pod{},
	}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.poke() },
		UpdateFunc: func(oldObj, newObj any) { s.poke() },
		DeleteFunc: func(any) { s.poke() },
	}
	for _, inf := range []cache.SharedIndexInformer{s.ns, s.pods, s.pols} {
		_, _ = inf.AddEventHandler(h)
	}
	return s
}

// trim drops what netfence never reads (managed fields, annotations, most
// of the pod spec and status), to keep the agent's memory small.
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
	case *networkingv1.NetworkPolicy:
		o.ManagedFields = nil
		o.Annotations = nil
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

// Changed is signalled (coalesced) after any add, update or delete.
func (s *Informers) Changed() <-chan struct{} { return s.changed }

// Start runs the informers until ctx ends and waits for their caches to
// fill. It returns false when ctx ended first.
func (s *Informers) Start(ctx context.Context) bool {
	s.factory.Start(ctx.Done())
	return cache.WaitForCacheSync(ctx.Done(), s.ns.HasSynced, s.pods.HasSynced, s.pols.HasSynced)
}

// Snapshot returns the cluster as the informers' caches hold it now. It is
// not safe for concurrent use (the agent takes snapshots from one loop).
func (s *Informers) Snapshot() *cluster.Cluster {
	var nss []*cluster.Namespace
	for _, x := range s.ns.GetStore().List() {
		nss = append(nss, cluster.NamespaceFromAPI(x.(*corev1.Namespace)))
	}
	objs := s.pods.GetStore().List()
	pods := make([]*cluster.Pod, 0, len(objs))
	next := make(map[*corev1.Pod]*cluster.Pod, len(objs))
	for _, x := range objs {
		p := x.(*corev1.Pod)
		m, ok := s.converted[p]
		if !ok {
			m = cluster.PodFromAPI(p)
		}
		next[p] = m
		pods = append(pods, m)
	}
	s.converted = next
	var pols []*networkingv1.NetworkPolicy
	for _, x := range s.pols.GetStore().List() {
		pols = append(pols, x.(*networkingv1.NetworkPolicy))
	}
	return cluster.New(nss, pods, pols)
}
