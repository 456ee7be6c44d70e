package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
	"sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"
	informersv1alpha1 "sigs.k8s.io/network-policy-api/pkg/client/informers/externalversions/apis/v1alpha1"
	informersv1alpha2 "sigs.k8s.io/network-policy-api/pkg/client/informers/externalversions/apis/v1alpha2"
	informersv1beta1 "sigs.k8s.io/network-policy-api/pkg/client/informers/externalversions/apis/v1beta1"

	"github.com/netfence/netfence/internal/cluster"
)

// Resources of policy.networking.k8s.io netfence reads.
const (
	ResourceCNP  = "clusternetworkpolicies"
	ResourceANP  = "adminnetworkpolicies"
	ResourceBANP = "baselineadminnetworkpolicies"
)

// policyResources lists the cluster-scoped policy resources and the
// versions netfence reads each in, preferred first.
var policyResources = []struct {
	resource string
	versions []string
}{
	{ResourceCNP, []string{"v1beta1", "v1alpha2"}},
	{ResourceANP, []string{"v1alpha1"}},
	{ResourceBANP, []string{"v1alpha1"}},
}

// discoveryTimeout bounds one discovery request.
const discoveryTimeout = 15 * time.Second

// ServedPolicyResources asks the API server which cluster-scoped policy
// resources it serves (the CRDs installed) and returns, for each, the
// version netfence reads it in: clusternetworkpolicies in v1beta1, else
// v1alpha2; adminnetworkpolicies and baselineadminnetworkpolicies in
// v1alpha1. A resource not served is absent. An error means the answer is
// unknown (not that nothing is served).
func ServedPolicyResources(ctx context.Context, d discovery.DiscoveryInterface) (map[string]string, error) {
	served := map[string]map[string]bool{} // version -> resources
	out := map[string]string{}
	for _, pr := range policyResources {
		for _, v := range pr.versions {
			rs, ok := served[v]
			if !ok {
				var err error
				if rs, err = groupVersionResources(ctx, d, v); err != nil {
					return nil, err
				}
				served[v] = rs
			}
			if rs[pr.resource] {
				out[pr.resource] = v
				break
			}
		}
	}
	return out, nil
}

// groupVersionResources returns the resources the API server serves in
// policy.networking.k8s.io/version: none when the group version is not
// served.
func groupVersionResources(ctx context.Context, d discovery.DiscoveryInterface, version string) (map[string]bool, error) {
	gv := cluster.PolicyAPIGroup + "/" + version
	var list *metav1.APIResourceList
	var err error
	if rc := d.RESTClient(); rc != nil && !isNilRESTClient(rc) {
		ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
		defer cancel()
		var raw []byte
		if raw, err = rc.Get().AbsPath("/apis", cluster.PolicyAPIGroup, version).Do(ctx).Raw(); err == nil {
			list = &metav1.APIResourceList{}
			err = json.Unmarshal(raw, list)
		}
	} else {
		list, err = d.ServerResourcesForGroupVersion(gv) // fake discovery clients
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("discovery of %s: %w", gv, err)
	}
	out := map[string]bool{}
	for _, r := range list.APIResources {
		if !strings.Contains(r.Name, "/") {
			out[r.Name] = true
		}
	}
	return out, nil
}

func isNilRESTClient(rc rest.Interface) bool {
	c, ok := rc.(*rest.RESTClient)
	return ok && c == nil
}

// newPolicyInformer returns an informer of one cluster-scoped policy
// resource in one version, not started.
func newPolicyInformer(pc versioned.Interface, resource, version string) (cache.SharedIndexInformer, error) {
	switch resource + "/" + version {
	case ResourceCNP + "/v1beta1":
		return informersv1beta1.NewClusterNetworkPolicyInformer(pc, 0, cache.Indexers{}), nil
	case ResourceCNP + "/v1alpha2":
		return informersv1alpha2.NewClusterNetworkPolicyInformer(pc, 0, cache.Indexers{}), nil
	case ResourceANP + "/v1alpha1":
		return informersv1alpha1.NewAdminNetworkPolicyInformer(pc, 0, cache.Indexers{}), nil
	case ResourceBANP + "/v1alpha1":
		return informersv1alpha1.NewBaselineAdminNetworkPolicyInformer(pc, 0, cache.Indexers{}), nil
	}
	return nil, fmt.Errorf("no informer for %s in %s", resource, version)
}

// ClusterPolicyFromAPI converts a cluster-scoped policy object of any
// version netfence reads to the model. A v1alpha2 ClusterNetworkPolicy
// that cannot be converted (the schemas are identical, so this is not
// expected) becomes an unreadable policy: its kind, name, tier, priority
// and number of rules, with a subject that does not compile, so that the
// agent fails closed on it (last compiled version, else a deny stand-in
// in its tier and priority) instead of dropping it.
func ClusterPolicyFromAPI(obj any) (*cluster.ClusterPolicy, error) {
	switch o := obj.(type) {
	case *v1beta1.ClusterNetworkPolicy:
		return cluster.FromCNP(o), nil
	case *v1alpha2.ClusterNetworkPolicy:
		cp, err := cluster.FromCNPv1alpha2(o)
		if err != nil {
			return &cluster.ClusterPolicy{Kind: cluster.KindCNP, APIVersion: cluster.PolicyAPIGroup + "/v1alpha2", Name: o.Name, UID: string(o.UID),
				Spec: v1beta1.ClusterNetworkPolicySpec{Tier: v1beta1.Tier(o.Spec.Tier), Priority: o.Spec.Priority,
					Ingress: make([]v1beta1.ClusterNetworkPolicyIngressRule, len(o.Spec.Ingress)),
					Egress:  make([]v1beta1.ClusterNetworkPolicyEgressRule, len(o.Spec.Egress))}}, err
		}
		return cp, nil
	case *v1alpha1.AdminNetworkPolicy:
		return cluster.FromANP(o), nil
	case *v1alpha1.BaselineAdminNetworkPolicy:
		return cluster.FromBANP(o), nil
	}
	return nil, fmt.Errorf("not a cluster-scoped policy: %T", obj)
}

// usesNodes reports whether a cluster policy has a nodes peer.
func usesNodes(cp *cluster.ClusterPolicy) bool {
	for _, r := range cp.Spec.Egress {
		for _, p := range r.To {
			if p.Nodes != nil {
				return true
			}
		}
	}
	return false
}

// listClusterPolicies reads every cluster-scoped policy the API server
// serves, paginated.
func listClusterPolicies(ctx context.Context, d discovery.DiscoveryInterface, pc versioned.Interface) ([]*cluster.ClusterPolicy, error) {
	served, err := ServedPolicyResources(ctx, d)
	if err != nil {
		return nil, err
	}
	var out []*cluster.ClusterPolicy
	var errs []error
	add := func(obj any) {
		cp, err := ClusterPolicyFromAPI(obj)
		if err != nil {
			errs = append(errs, err)
			return
		}
		out = append(out, cp)
	}
	for _, pr := range policyResources {
		v, ok := served[pr.resource]
		if !ok {
			continue
		}
		err := paginate(ctx, pr.resource, func(ctx context.Context, opts metav1.ListOptions) (string, error) {
			switch pr.resource + "/" + v {
			case ResourceCNP + "/v1beta1":
				l, err := pc.PolicyV1beta1().ClusterNetworkPolicies().List(ctx, opts)
				if err != nil {
					return "", err
				}
				for i := range l.Items {
					add(&l.Items[i])
				}
				return l.Continue, nil
			case ResourceCNP + "/v1alpha2":
				l, err := pc.PolicyV1alpha2().ClusterNetworkPolicies().List(ctx, opts)
				if err != nil {
					return "", err
				}
				for i := range l.Items {
					add(&l.Items[i])
				}
				return l.Continue, nil
			case ResourceANP + "/v1alpha1":
				l, err := pc.PolicyV1alpha1().AdminNetworkPolicies().List(ctx, opts)
				if err != nil {
					return "", err
				}
				for i := range l.Items {
					add(&l.Items[i])
				}
				return l.Continue, nil
			case ResourceBANP + "/v1alpha1":
				l, err := pc.PolicyV1alpha1().BaselineAdminNetworkPolicies().List(ctx, opts)
				if err != nil {
					return "", err
				}
				for i := range l.Items {
					add(&l.Items[i])
				}
				return l.Continue, nil
			}
			return "", fmt.Errorf("no client for %s in %s", pr.resource, v)
		})
		if err != nil {
			return nil, err
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.SortFunc(out, func(a, b *cluster.ClusterPolicy) int { return strings.Compare(a.Key(), b.Key()) })
	return out, nil
}

// paginate calls list with a page size and the continue token of the
// previous page until a page has none.
func paginate(ctx context.Context, what string, list func(context.Context, metav1.ListOptions) (string, error)) error {
	opts := metav1.ListOptions{Limit: 500}
	for {
		cont, err := list(ctx, opts)
		if err != nil {
			return fmt.Errorf("list %s: %w", what, err)
		}
		if cont == "" {
			return nil
		}
		opts.Continue = cont
	}
}

// PolicyResourceNames returns the cluster-scoped policy resources of
// policy.networking.k8s.io that the informers and List read (list and
// watch: what RBAC must grant).
func PolicyResourceNames() []string {
	out := make([]string, len(policyResources))
	for i, pr := range policyResources {
		out[i] = pr.resource
	}
	return out
}

// DiscoveryPaths returns the discovery documents ServedPolicyResources
// reads (get on these non-resource URLs: what RBAC must grant; the
// default system:discovery role grants them too).
func DiscoveryPaths() []string {
	var out []string
	for _, pr := range policyResources {
		for _, v := range pr.versions {
			if p := "/apis/" + cluster.PolicyAPIGroup + "/" + v; !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}
