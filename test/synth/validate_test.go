package synth

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// This file re-implements the parts of Kubernetes API validation
// (k8s.io/kubernetes/pkg/apis/networking/validation and core validation)
// that apply to what the generator produces, so tests can check every
// object without depending on k8s.io/kubernetes.

func strErrs(p *field.Path, value any, msgs []string) field.ErrorList {
	var errs field.ErrorList
	for _, m := range msgs {
		errs = append(errs, field.Invalid(p, value, m))
	}
	return errs
}

func validateMeta(name, namespace string, labels map[string]string, nsName bool, namespaces sets.Set[string], p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	} else if nsName {
		errs = append(errs, strErrs(p.Child("name"), name, validation.IsDNS1123Label(name))...)
	} else {
		errs = append(errs, strErrs(p.Child("name"), name, validation.IsDNS1123Subdomain(name))...)
	}
	if namespaces != nil {
		if namespace == "" {
			errs = append(errs, field.Required(p.Child("namespace"), ""))
		} else if !namespaces.Has(namespace) {
			errs = append(errs, field.NotFound(p.Child("namespace"), namespace))
		}
	} else if namespace != "" {
		errs = append(errs, field.Forbidden(p.Child("namespace"), "namespaces are cluster-scoped"))
	}
	errs = append(errs, metav1validation.ValidateLabels(labels, p.Child("labels"))...)
	return errs
}

func validateNamespace(ns *corev1.Namespace) field.ErrorList {
	p := field.NewPath("metadata")
	errs := validateMeta(ns.Name, ns.Namespace, ns.Labels, true, nil, p)
	if ns.Labels[metadataName] != ns.Name {
		errs = append(errs, field.Invalid(p.Child("labels").Key(metadataName), ns.Labels[metadataName], "must be the namespace's name"))
	}
	if ns.APIVersion != "v1" || ns.Kind != "Namespace" {
		errs = append(errs, field.Invalid(field.NewPath("kind"), ns.Kind, "bad type meta"))
	}
	return errs
}

func validProto(p corev1.Protocol) bool {
	return p == corev1.ProtocolTCP || p == corev1.ProtocolUDP || p == corev1.ProtocolSCTP
}

// validatePod checks metadata, containers and their ports, and the status
// addresses. cfg says which node names and address families to expect.
func validatePod(pod *corev1.Pod, namespaces sets.Set[string], cfg Config) field.ErrorList {
	errs := validateMeta(pod.Name, pod.Namespace, pod.Labels, false, namespaces, field.NewPath("metadata"))
	if pod.APIVersion != "v1" || pod.Kind != "Pod" {
		errs = append(errs, field.Invalid(field.NewPath("kind"), pod.Kind, "bad type meta"))
	}
	sp := field.NewPath("spec")
	if len(pod.Spec.Containers) == 0 {
		errs = append(errs, field.Required(sp.Child("containers"), ""))
	}
	cnames := sets.New[string]()
	pnames := sets.New[string]()
	for i, c := range pod.Spec.Containers {
		cp := sp.Child("containers").Index(i)
		errs = append(errs, strErrs(cp.Child("name"), c.Name, validation.IsDNS1123Label(c.Name))...)
		if cnames.Has(c.Name) {
			errs = append(errs, field.Duplicate(cp.Child("name"), c.Name))
		}
		cnames.Insert(c.Name)
		if c.Image == "" {
			errs = append(errs, field.Required(cp.Child("image"), ""))
		}
		for j, port := range c.Ports {
			pp := cp.Child("ports").Index(j)
			errs = append(errs, strErrs(pp.Child("name"), port.Name, validation.IsValidPortName(port.Name))...)
			if pnames.Has(port.Name) {
				errs = append(errs, field.Duplicate(pp.Child("name"), port.Name))
			}
			pnames.Insert(port.Name)
			errs = append(errs, strErrs(pp.Child("containerPort"), port.ContainerPort, validation.IsValidPortNum(int(port.ContainerPort)))...)
			if !validProto(port.Protocol) {
				errs = append(errs, field.NotSupported(pp.Child("protocol"), port.Protocol, []string{"TCP", "UDP", "SCTP"}))
			}
		}
	}
	var node int
	if _, err := fmt.Sscanf(pod.Spec.NodeName, "node-%d", &node); err != nil || node < 0 || node >= max(cfg.Nodes, 1) ||
		pod.Spec.NodeName != fmt.Sprintf("node-%d", node) {
		errs = append(errs, field.Invalid(sp.Child("nodeName"), pod.Spec.NodeName, "not a generated node"))
	}
	st := field.NewPath("status")
	switch pod.Status.Phase {
	case corev1.PodPending:
		if pod.Status.PodIP != "" || len(pod.Status.PodIPs) != 0 {
			errs = append(errs, field.Invalid(st.Child("podIP"), pod.Status.PodIP, "pending pods have no address"))
		}
	case corev1.PodRunning:
		want := 1
		if cfg.IPv6 {
			want = 2
		}
		if pod.Spec.HostNetwork {
			// The node's addresses.
			if !equality.Semantic.DeepEqual(pod.Status.PodIPs, hostPodIPs(pod.Status.HostIPs)) || pod.Status.PodIP != pod.Status.HostIP {
				errs = append(errs, field.Invalid(st.Child("podIPs"), pod.Status.PodIPs, "host-network pods have their node's addresses"))
			}
			break
		}
		if len(pod.Status.PodIPs) != want {
			errs = append(errs, field.Invalid(st.Child("podIPs"), pod.Status.PodIPs, fmt.Sprintf("want %d addresses", want)))
			break
		}
		if pod.Status.PodIP != pod.Status.PodIPs[0].IP {
			errs = append(errs, field.Invalid(st.Child("podIP"), pod.Status.PodIP, "must be podIPs[0]"))
		}
		for i, ip := range pod.Status.PodIPs {
			ipp := st.Child("podIPs").Index(i)
			errs = append(errs, validation.IsValidIP(ipp, ip.IP)...)
			a, err := netip.ParseAddr(ip.IP)
			if err != nil {
				continue
			}
			if i == 0 && !pfx("10.0.0.0/8").Contains(a) {
				errs = append(errs, field.Invalid(ipp, ip.IP, "IPv4 address outside 10.0.0.0/8"))
			}
			if i == 1 && !podCIDRv6.Contains(a) {
				errs = append(errs, field.Invalid(ipp, ip.IP, "IPv6 address outside fd00:10:244::/48"))
			}
		}
	default:
		errs = append(errs, field.NotSupported(st.Child("phase"), pod.Status.Phase, []string{"Running", "Pending"}))
	}
	if len(pod.Status.HostIPs) == 0 || pod.Status.HostIP != pod.Status.HostIPs[0].IP {
		errs = append(errs, field.Invalid(st.Child("hostIP"), pod.Status.HostIP, "must be hostIPs[0]"))
	}
	return errs
}

// validateNode checks a Node: metadata, the labels node peers select, and
// that its InternalIP addresses are the host IPs its pods report
// (hostIPs, from the pods on the node).
func validateNode(n *corev1.Node, hostIPs []corev1.HostIP) field.ErrorList {
	errs := validateMeta(n.Name, n.Namespace, n.Labels, false, nil, field.NewPath("metadata"))
	if n.APIVersion != "v1" || n.Kind != "Node" {
		errs = append(errs, field.Invalid(field.NewPath("kind"), n.Kind, "bad type meta"))
	}
	if v, ok := n.Labels[workerRoleLabel]; n.Labels[hostnameLabel] != n.Name || !ok || v != "" {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "labels"), n.Labels, "want hostname and worker-role labels"))
	}
	var internal []corev1.HostIP
	for i, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			errs = append(errs, validation.IsValidIP(field.NewPath("status", "addresses").Index(i).Child("address"), a.Address)...)
			internal = append(internal, corev1.HostIP{IP: a.Address})
		}
	}
	if len(hostIPs) == 0 || !equality.Semantic.DeepEqual(internal, hostIPs) {
		errs = append(errs, field.Invalid(field.NewPath("status", "addresses"), internal, fmt.Sprintf("want the InternalIPs %v of the node's pods", hostIPs)))
	}
	return errs
}

// validatePolicy mirrors ValidateNetworkPolicy of Kubernetes (with strict
// CIDR validation, as for new objects).
func validatePolicy(np *networkingv1.NetworkPolicy, namespaces sets.Set[string]) field.ErrorList {
	errs := validateMeta(np.Name, np.Namespace, np.Labels, false, namespaces, field.NewPath("metadata"))
	if np.APIVersion != "networking.k8s.io/v1" || np.Kind != "NetworkPolicy" {
		errs = append(errs, field.Invalid(field.NewPath("kind"), np.Kind, "bad type meta"))
	}
	sp := field.NewPath("spec")
	opts := metav1validation.LabelSelectorValidationOptions{}
	errs = append(errs, metav1validation.ValidateLabelSelector(&np.Spec.PodSelector, opts, sp.Child("podSelector"))...)
	for i, r := range np.Spec.Ingress {
		rp := sp.Child("ingress").Index(i)
		for j := range r.Ports {
			errs = append(errs, validatePolicyPort(&r.Ports[j], rp.Child("ports").Index(j))...)
		}
		for j := range r.From {
			errs = append(errs, validatePeer(&r.From[j], rp.Child("from").Index(j))...)
		}
	}
	for i, r := range np.Spec.Egress {
		rp := sp.Child("egress").Index(i)
		for j := range r.Ports {
			errs = append(errs, validatePolicyPort(&r.Ports[j], rp.Child("ports").Index(j))...)
		}
		for j := range r.To {
			errs = append(errs, validatePeer(&r.To[j], rp.Child("to").Index(j))...)
		}
	}
	tp := sp.Child("policyTypes")
	if len(np.Spec.PolicyTypes) > 2 {
		errs = append(errs, field.Invalid(tp, np.Spec.PolicyTypes, "may not specify more than two policyTypes"))
	}
	seen := map[networkingv1.PolicyType]bool{}
	for i, t := range np.Spec.PolicyTypes {
		if t != networkingv1.PolicyTypeIngress && t != networkingv1.PolicyTypeEgress {
			errs = append(errs, field.NotSupported(tp.Index(i), t, []string{"Ingress", "Egress"}))
		}
		if seen[t] {
			errs = append(errs, field.Duplicate(tp.Index(i), t))
		}
		seen[t] = true
	}
	return errs
}

func validatePolicyPort(port *networkingv1.NetworkPolicyPort, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if port.Protocol != nil && !validProto(*port.Protocol) {
		errs = append(errs, field.NotSupported(p.Child("protocol"), *port.Protocol, []string{"TCP", "UDP", "SCTP"}))
	}
	if port.Port == nil {
		if port.EndPort != nil {
			errs = append(errs, field.Invalid(p.Child("endPort"), *port.EndPort, "may not be specified when `port` is not specified"))
		}
		return errs
	}
	if port.Port.Type == intstr.Int {
		errs = append(errs, strErrs(p.Child("port"), port.Port.IntVal, validation.IsValidPortNum(int(port.Port.IntVal)))...)
		if port.EndPort != nil {
			if *port.EndPort < port.Port.IntVal {
				errs = append(errs, field.Invalid(p.Child("endPort"), *port.EndPort, "must be greater than or equal to `port`"))
			}
			errs = append(errs, strErrs(p.Child("endPort"), *port.EndPort, validation.IsValidPortNum(int(*port.EndPort)))...)
		}
		return errs
	}
	if port.EndPort != nil {
		errs = append(errs, field.Invalid(p.Child("endPort"), *port.EndPort, "may not be specified when `port` is non-numeric"))
	}
	errs = append(errs, strErrs(p.Child("port"), port.Port.StrVal, validation.IsValidPortName(port.Port.StrVal))...)
	return errs
}

func validatePeer(peer *networkingv1.NetworkPolicyPeer, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	opts := metav1validation.LabelSelectorValidationOptions{}
	n := 0
	if peer.PodSelector != nil {
		n++
		errs = append(errs, metav1validation.ValidateLabelSelector(peer.PodSelector, opts, p.Child("podSelector"))...)
	}
	if peer.NamespaceSelector != nil {
		n++
		errs = append(errs, metav1validation.ValidateLabelSelector(peer.NamespaceSelector, opts, p.Child("namespaceSelector"))...)
	}
	if peer.IPBlock != nil {
		n++
		errs = append(errs, validateIPBlock(peer.IPBlock, p.Child("ipBlock"))...)
	}
	switch {
	case n == 0:
		errs = append(errs, field.Required(p, "must specify a peer"))
	case n > 1 && peer.IPBlock != nil:
		errs = append(errs, field.Forbidden(p, "may not specify both ipBlock and another peer"))
	}
	return errs
}

func validateIPBlock(b *networkingv1.IPBlock, p *field.Path) field.ErrorList {
	if b.CIDR == "" {
		return field.ErrorList{field.Required(p.Child("cidr"), "")}
	}
	errs := validation.IsValidCIDR(p.Child("cidr"), b.CIDR)
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		return append(errs, field.Invalid(p.Child("cidr"), b.CIDR, err.Error()))
	}
	if cidr != cidr.Masked() || cidr.String() != b.CIDR {
		errs = append(errs, field.Invalid(p.Child("cidr"), b.CIDR, "not canonical"))
	}
	for i, s := range b.Except {
		ep := p.Child("except").Index(i)
		errs = append(errs, validation.IsValidCIDR(ep, s)...)
		e, err := netip.ParsePrefix(s)
		if err != nil {
			errs = append(errs, field.Invalid(ep, s, err.Error()))
			continue
		}
		if e != e.Masked() || e.String() != s {
			errs = append(errs, field.Invalid(ep, s, "not canonical"))
		}
		if e.Addr().Is4() != cidr.Addr().Is4() || !cidr.Contains(e.Addr()) || e.Bits() <= cidr.Bits() {
			errs = append(errs, field.Invalid(ep, s, "must be a strict subset of `cidr`"))
		}
	}
	return errs
}
