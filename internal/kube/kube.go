// Package kube reads namespaces, pods, NetworkPolicies and, when the API
// server serves them, the cluster-scoped policies of
// policy.networking.k8s.io (ClusterNetworkPolicy, AdminNetworkPolicy,
// BaselineAdminNetworkPolicy) and the nodes from the Kubernetes API: a
// one-shot snapshot for the analyzer and client-go shared informers for
// the node agent. Both produce the same cluster model as the manifest
// reader.
package kube

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"

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
	// ClusterPolicies are the cluster-scoped policies, read when List is
	// given WithClusterPolicies and the API server serves them.
	ClusterPolicies []*cluster.ClusterPolicy
	// Nodes are read with the cluster policies when one of them has a
	// nodes peer.
	Nodes []*cluster.Node
}

// ListOption configures List.
type ListOption func(*listConfig)

type listConfig struct {
	policy versioned.Interface
}

// WithClusterPolicies makes List read the cluster-scoped policies
// (ClusterNetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy)
// that the API server serves, in the version the agent reads them in (see
// ServedPolicyResources), and the Nodes when one of them has a nodes peer
// (node peers select Node objects; a cluster without such peers needs no
// permission on nodes).
func WithClusterPolicies(pc versioned.Interface) ListOption {
	return func(c *listConfig) { c.policy = pc }
}

// List reads every namespace, pod and NetworkPolicy once, paginated, and
// with WithClusterPolicies the cluster-scoped policies and nodes.
func List(ctx context.Context, client kubernetes.Interface, opts ...ListOption) (*Objects, error) {
	var cfg listConfig
	for _, o := range opts {
		o(&cfg)
	}
	o := &Objects{}
	err := paginate(ctx, "namespaces", func(ctx context.Context, opts metav1.ListOptions) (string, error) {
		l, err := client.CoreV1().Namespaces().List(ctx, opts)
		if err != nil {
			return "", err
		}
		for i := range l.Items {
			o.Namespaces = append(o.Namespaces, &l.Items[i])
		}
		return l.Continue, nil
	})
	if err != nil {
		return nil, err
	}
	err = paginate(ctx, "pods", func(ctx context.Context, opts metav1.ListOptions) (string, error) {
		l, err := client.CoreV1().Pods("").List(ctx, opts)
		if err != nil {
			return "", err
		}
		for i := range l.Items {
			o.Pods = append(o.Pods, &l.Items[i])
		}
		return l.Continue, nil
	})
	if err != nil {
		return nil, err
	}
	err = paginate(ctx, "networkpolicies", func(ctx context.Context, opts metav1.ListOptions) (string, error) {
		l, err := client.NetworkingV1().NetworkPolicies("").List(ctx, opts)
		if err != nil {
			return "", err
		}
		for i := range l.Items {
			o.Policies = append(o.Policies, &l.Items[i])
		}
		return l.Continue, nil
	})
	if err != nil {
		return nil, err
	}
	if cfg.policy == nil {
		return o, nil
	}
	if o.ClusterPolicies, err = listClusterPolicies(ctx, client.Discovery(), cfg.policy); err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(o.ClusterPolicies, usesNodes) {
		return o, nil
	}
	err = paginate(ctx, "nodes", func(ctx context.Context, opts metav1.ListOptions) (string, error) {
		l, err := client.CoreV1().Nodes().List(ctx, opts)
		if err != nil {
			return "", err
		}
		for i := range l.Items {
			o.Nodes = append(o.Nodes, cluster.NodeFromAPI(&l.Items[i]))
		}
		return l.Continue, nil
	})
	if err != nil {
		return nil, err
	}
	return o, nil
}

// Cluster builds the model. Policies are taken as they are; the policy
// compiler validates them and rejects invalid ones.
func (o *Objects) Cluster() *cluster.Cluster {
	return cluster.APIObjects{Namespaces: o.Namespaces, Pods: o.Pods, Policies: o.Policies,
		ClusterPolicies: o.ClusterPolicies, Nodes: o.Nodes}.Cluster()
}

// Overlay adds objects read from elsewhere (manifests), each replacing the
// object of the same kind, namespace and name: the live cluster with a
// policy change applied, to judge it before it is applied.
func (o *Objects) Overlay(namespaces []*corev1.Namespace, pods []*corev1.Pod, policies []*networkingv1.NetworkPolicy) {
	o.Namespaces = overlay(o.Namespaces, namespaces, func(x *corev1.Namespace) string { return x.Name })
	o.Pods = overlay(o.Pods, pods, func(x *corev1.Pod) string { return x.Namespace + "/" + x.Name })
	o.Policies = overlay(o.Policies, policies, func(x *networkingv1.NetworkPolicy) string { return x.Namespace + "/" + x.Name })
}

// OverlayCluster adds cluster-scoped policies and nodes read from
// elsewhere, as Overlay does: each replaces the live one of the same kind
// and name.
func (o *Objects) OverlayCluster(policies []*cluster.ClusterPolicy, nodes []*cluster.Node) {
	o.ClusterPolicies = overlay(o.ClusterPolicies, policies, (*cluster.ClusterPolicy).Key)
	o.Nodes = overlay(o.Nodes, nodes, func(x *cluster.Node) string { return x.Name })
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
