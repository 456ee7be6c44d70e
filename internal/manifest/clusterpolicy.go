package manifest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
	"github.com/netfence/netfence/internal/validation"
	"github.com/netfence/netfence/internal/validation/crd"
)

// lazyValidator builds the CRD validator once, on first use: building it
// compiles every CEL rule of the CRDs, which a load without cluster-scoped
// policies should not pay for.
type lazyValidator struct {
	once sync.Once
	v    *crd.Validator
	err  error
}

func (l *lazyValidator) get() (*crd.Validator, error) {
	l.once.Do(func() {
		l.v, l.err = crd.NewValidator()
		if l.err != nil {
			l.err = fmt.Errorf("building the CRD validator: %w", l.err)
		}
	})
	return l.v, l.err
}

// addClusterPolicy reads a ClusterNetworkPolicy, AdminNetworkPolicy or
// BaselineAdminNetworkPolicy: validated against its CRD as the API server
// would (defaulting, unknown fields, schema, CEL), decoded strictly from
// the defaulted object, converted to the v1beta1 form and compiled. An
// object that decodes but fails validation or compilation is kept in
// invalidCluster (for the agent to fail closed), never in the objects.
func (r *docResult) addClusterPolicy(loc Location, apiVersion string, data []byte) Errors {
	// The object is cluster-scoped: its identity has no namespace (a
	// namespace given is an error below).
	loc.Namespace = ""
	fail := func(detail string) Errors { return Errors{{Location: loc, Detail: detail}} }
	v, err := r.crd()
	if err != nil {
		return fail(err.Error())
	}
	obj, err := crd.DecodeJSON(data)
	if err != nil {
		return fail(err.Error())
	}
	defaulted, verrs := v.Validate(context.Background(), obj)
	if defaulted == nil {
		if len(verrs) == 0 {
			return fail("the CRD validator returned no object")
		}
		return fieldErrors(loc, verrs)
	}
	cp, err := decodeClusterPolicy(loc.Kind, apiVersion, defaulted)
	if err != nil {
		// A type error the schema reports too: its message names the
		// field. Report both only when validation said nothing.
		if len(verrs) > 0 {
			return fieldErrors(loc, verrs)
		}
		return fail(err.Error())
	}
	out := fieldErrors(loc, verrs)
	if len(out) == 0 {
		// What the CRD lets through but netfence cannot enforce as
		// written (selector operators, domain names in Deny rules).
		if _, err := policy.CompileCluster(cp); err != nil {
			if inner := errors.Unwrap(err); inner != nil {
				err = inner // drop the "Kind name: " prefix: loc names it
			}
			out = fail(err.Error())
		}
	}
	if len(out) > 0 {
		r.invalidCluster = append(r.invalidCluster, cp)
		return out
	}
	r.objects = append(r.objects, decoded{loc, loc.Kind + " " + cp.Name, cp})
	return nil
}

// decodeClusterPolicy decodes a defaulted, pruned object strictly into its
// typed form and converts it to a cluster.ClusterPolicy.
func decodeClusterPolicy(kind, apiVersion string, data []byte) (*cluster.ClusterPolicy, error) {
	switch {
	case kind == cluster.KindCNP && strings.HasSuffix(apiVersion, "/v1beta1"):
		p := &v1beta1.ClusterNetworkPolicy{}
		if err := decodeInto(data, p, true); err != nil {
			return nil, err
		}
		return cluster.FromCNP(p), nil
	case kind == cluster.KindCNP && strings.HasSuffix(apiVersion, "/v1alpha2"):
		p := &v1alpha2.ClusterNetworkPolicy{}
		if err := decodeInto(data, p, true); err != nil {
			return nil, err
		}
		return cluster.FromCNPv1alpha2(p)
	case kind == cluster.KindANP:
		p := &v1alpha1.AdminNetworkPolicy{}
		if err := decodeInto(data, p, true); err != nil {
			return nil, err
		}
		return cluster.FromANP(p), nil
	case kind == cluster.KindBANP:
		p := &v1alpha1.BaselineAdminNetworkPolicy{}
		if err := decodeInto(data, p, true); err != nil {
			return nil, err
		}
		return cluster.FromBANP(p), nil
	}
	return nil, fmt.Errorf("apiVersion: Unsupported value: %q", apiVersion)
}

func fieldErrors(loc Location, errs field.ErrorList) Errors {
	out := make(Errors, len(errs))
	for i, e := range errs {
		out[i] = &Error{Location: loc, Detail: e.Error()}
	}
	return out
}

// validateNode checks what netfence reads of a Node: its name and labels
// as the API server does, and that every InternalIP and ExternalIP
// address is an IP address. The API server leaves status.addresses alone,
// but an address netfence cannot read would make a node peer narrower
// than written (a Deny to nodes would miss it): fail closed.
func validateNode(n *corev1.Node) field.ErrorList {
	errs := validation.Meta(n.Name, "", false)
	errs = append(errs, validation.Labels(n.Labels, field.NewPath("metadata", "labels"))...)
	path := field.NewPath("status", "addresses")
	for i, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
			continue
		}
		if _, err := netip.ParseAddr(a.Address); err != nil {
			errs = append(errs, field.Invalid(path.Index(i).Child("address"), a.Address, fmt.Sprintf("must be a valid IP address for type %s", a.Type)))
		}
	}
	return errs
}
