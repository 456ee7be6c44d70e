// Package validation checks Namespaces, Pods and NetworkPolicies with the
// rules the Kubernetes API server applies (pkg/apis/networking/validation
// and friends), built on apimachinery's validation helpers. netfence reads
// manifests that never went through an API server, so it must refuse what
// the API server would refuse.
package validation

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var labelSelectorOpts = metav1validation.LabelSelectorValidationOptions{}

// Meta validates the name and namespace of an object. namespaced says
// whether the kind lives in a namespace.
func Meta(name, namespace string, namespaced bool) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("metadata")
	if name == "" {
		errs = append(errs, field.Required(p.Child("name"), "name is required"))
	} else {
		for _, msg := range utilvalidation.IsDNS1123Subdomain(name) {
			errs = append(errs, field.Invalid(p.Child("name"), name, msg))
		}
	}
	if namespaced && namespace != "" {
		for _, msg := range utilvalidation.IsDNS1123Label(namespace) {
			errs = append(errs, field.Invalid(p.Child("namespace"), namespace, msg))
		}
	}
	return errs
}

// Labels validates a label map at path.
func Labels(l map[string]string, path *field.Path) field.ErrorList {
	return metav1validation.ValidateLabels(l, path)
}

// Namespace validates a Namespace.
func Namespace(ns *corev1.Namespace) field.ErrorList {
	errs := field.ErrorList{}
	p := field.NewPath("metadata")
	if ns.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), "name is required"))
	} else {
		for _, msg := range utilvalidation.IsDNS1123Label(ns.Name) {
			errs = append(errs, field.Invalid(p.Child("name"), ns.Name, msg))
		}
	}
	errs = append(errs, Labels(ns.Labels, p.Child("labels"))...)
	return errs
}

// Pod validates the parts of a Pod netfence uses: metadata, labels,
// container ports and status addresses.
func Pod(pod *corev1.Pod) field.ErrorList {
	errs := Meta(pod.Name, pod.Namespace, true)
	errs = append(errs, Labels(pod.Labels, field.NewPath("metadata", "labels"))...)
	check := func(ctrs []corev1.Container, path *field.Path) {
		for i, c := range ctrs {
			for j, cp := range c.Ports {
				pp := path.Index(i).Child("ports").Index(j)
				if cp.Name != "" {
					for _, msg := range utilvalidation.IsValidPortName(cp.Name) {
						errs = append(errs, field.Invalid(pp.Child("name"), cp.Name, msg))
					}
				}
				for _, msg := range utilvalidation.IsValidPortNum(int(cp.ContainerPort)) {
					errs = append(errs, field.Invalid(pp.Child("containerPort"), cp.ContainerPort, msg))
				}
				errs = append(errs, protocol(cp.Protocol, true, pp.Child("protocol"))...)
			}
		}
	}
	spec := field.NewPath("spec")
	check(pod.Spec.InitContainers, spec.Child("initContainers"))
	check(pod.Spec.Containers, spec.Child("containers"))
	status := field.NewPath("status")
	if pod.Status.PodIP != "" {
		if _, err := netip.ParseAddr(pod.Status.PodIP); err != nil {
			errs = append(errs, field.Invalid(status.Child("podIP"), pod.Status.PodIP, "must be a valid IP address"))
		}
	}
	for i, ip := range pod.Status.PodIPs {
		if _, err := netip.ParseAddr(ip.IP); err != nil {
			errs = append(errs, field.Invalid(status.Child("podIPs").Index(i).Child("ip"), ip.IP, "must be a valid IP address"))
		}
	}
	return errs
}

var supportedProtocols = sets.New(string(corev1.ProtocolTCP), string(corev1.ProtocolUDP), string(corev1.ProtocolSCTP))

func protocol(p corev1.Protocol, optional bool, path *field.Path) field.ErrorList {
	if p == "" && optional {
		return nil
	}
	if !supportedProtocols.Has(string(p)) {
		return field.ErrorList{field.NotSupported(path, p, sets.List(supportedProtocols))}
	}
	return nil
}

// NetworkPolicy validates a NetworkPolicy as the API server does.
func NetworkPolicy(np *networkingv1.NetworkPolicy) field.ErrorList {
	errs := Meta(np.Name, np.Namespace, true)
	errs = append(errs, Labels(np.Labels, field.NewPath("metadata", "labels"))...)
	errs = append(errs, NetworkPolicySpec(&np.Spec, field.NewPath("spec"))...)
	return errs
}

// NetworkPolicySpec validates a NetworkPolicy's spec.
func NetworkPolicySpec(spec *networkingv1.NetworkPolicySpec, path *field.Path) field.ErrorList {
	errs := metav1validation.ValidateLabelSelector(&spec.PodSelector, labelSelectorOpts, path.Child("podSelector"))
	for i, rule := range spec.Ingress {
		rp := path.Child("ingress").Index(i)
		for j, port := range rule.Ports {
			errs = append(errs, policyPort(&port, rp.Child("ports").Index(j))...)
		}
		for j, peer := range rule.From {
			errs = append(errs, policyPeer(&peer, rp.Child("from").Index(j))...)
		}
	}
	for i, rule := range spec.Egress {
		rp := path.Child("egress").Index(i)
		for j, port := range rule.Ports {
			errs = append(errs, policyPort(&port, rp.Child("ports").Index(j))...)
		}
		for j, peer := range rule.To {
			errs = append(errs, policyPeer(&peer, rp.Child("to").Index(j))...)
		}
	}
	// As the API server: at most two entries, each Ingress or Egress; a
	// repeated entry is accepted (the list is atomic, not a set).
	allowed := sets.New(string(networkingv1.PolicyTypeIngress), string(networkingv1.PolicyTypeEgress))
	tp := path.Child("policyTypes")
	if len(spec.PolicyTypes) > len(allowed) {
		errs = append(errs, field.Invalid(tp, spec.PolicyTypes, "may not specify more than two policyTypes"))
	}
	for i, t := range spec.PolicyTypes {
		if !allowed.Has(string(t)) {
			errs = append(errs, field.NotSupported(tp.Index(i), t, sets.List(allowed)))
		}
	}
	return errs
}

func policyPort(port *networkingv1.NetworkPolicyPort, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if port.Protocol != nil {
		errs = append(errs, protocol(*port.Protocol, false, path.Child("protocol"))...)
	}
	if port.Port != nil {
		if port.Port.Type == intstr.Int {
			for _, msg := range utilvalidation.IsValidPortNum(int(port.Port.IntVal)) {
				errs = append(errs, field.Invalid(path.Child("port"), port.Port.IntVal, msg))
			}
			if port.EndPort != nil {
				if *port.EndPort < port.Port.IntVal {
					errs = append(errs, field.Invalid(path.Child("endPort"), *port.EndPort, "must be greater than or equal to `port`"))
				}
				for _, msg := range utilvalidation.IsValidPortNum(int(*port.EndPort)) {
					errs = append(errs, field.Invalid(path.Child("endPort"), *port.EndPort, msg))
				}
			}
		} else {
			if port.EndPort != nil {
				errs = append(errs, field.Invalid(path.Child("endPort"), *port.EndPort, "may not be specified when `port` is non-numeric"))
			}
			for _, msg := range utilvalidation.IsValidPortName(port.Port.StrVal) {
				errs = append(errs, field.Invalid(path.Child("port"), port.Port.StrVal, msg))
			}
		}
	} else if port.EndPort != nil {
		errs = append(errs, field.Invalid(path.Child("endPort"), *port.EndPort, "may not be specified when `port` is not specified"))
	}
	return errs
}

func policyPeer(peer *networkingv1.NetworkPolicyPeer, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	if peer.PodSelector != nil {
		n++
		errs = append(errs, metav1validation.ValidateLabelSelector(peer.PodSelector, labelSelectorOpts, path.Child("podSelector"))...)
	}
	if peer.NamespaceSelector != nil {
		n++
		errs = append(errs, metav1validation.ValidateLabelSelector(peer.NamespaceSelector, labelSelectorOpts, path.Child("namespaceSelector"))...)
	}
	if peer.IPBlock != nil {
		n++
		errs = append(errs, ipBlock(peer.IPBlock, path.Child("ipBlock"))...)
	}
	switch {
	case n == 0:
		errs = append(errs, field.Required(path, "must specify a peer"))
	case n > 1 && peer.IPBlock != nil:
		errs = append(errs, field.Forbidden(path, "may not specify both ipBlock and another peer"))
	}
	return errs
}
