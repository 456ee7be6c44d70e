// Package cluster holds netfence's model of a cluster: namespaces, pods and
// network policies, independent of where they were read from (manifest files
// or the Kubernetes API).
package cluster

import (
	"fmt"
	"net/netip"
	"sort"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// MetadataNameLabel is the label the API server puts on every namespace,
// holding the namespace's name.
const MetadataNameLabel = "kubernetes.io/metadata.name"

// Namespace is a namespace and its labels.
type Namespace struct {
	Name   string
	Labels labels.Set
	// Defined is false for namespaces that are only referenced by other
	// objects; such namespaces carry only MetadataNameLabel.
	Defined bool
}

// ContainerPort is a port a pod's container declares.
type ContainerPort struct {
	Name     string
	Protocol corev1.Protocol
	Port     int32
}

// Pod is the part of a pod that network policy looks at.
type Pod struct {
	Namespace string
	Name      string
	Labels    labels.Set
	// IPs are the pod's addresses, status.podIPs (or status.podIP) in order;
	// the first is the primary address.
	IPs         []netip.Addr
	Ports       []ContainerPort
	HostNetwork bool
	NodeName    string
	Phase       corev1.PodPhase
}

// Key returns "namespace/name".
func (p *Pod) Key() string { return p.Namespace + "/" + p.Name }

// Active reports whether the pod takes part in traffic: it is Running and has
// an address. The reason is empty when it is active.
func (p *Pod) Active() (bool, string) {
	switch {
	case len(p.IPs) == 0:
		return false, "has no IP"
	case p.Phase != corev1.PodRunning:
		return false, fmt.Sprintf("is %s, not Running", phaseOrUnknown(p.Phase))
	}
	return true, ""
}

func phaseOrUnknown(p corev1.PodPhase) string {
	if p == "" {
		return "in no phase"
	}
	return string(p)
}

// NamedPort resolves a named container port for a protocol.
func (p *Pod) NamedPort(name string, proto corev1.Protocol) (int32, bool) {
	for _, cp := range p.Ports {
		if cp.Name == name && cp.Protocol == proto {
			return cp.Port, true
		}
	}
	return 0, false
}

// IPFor returns the pod's address of the same family as want, or its
// primary address when it has none of that family.
func (p *Pod) IPFor(want netip.Addr) netip.Addr {
	for _, ip := range p.IPs {
		if ip.Is4() == want.Is4() {
			return ip
		}
	}
	if len(p.IPs) > 0 {
		return p.IPs[0]
	}
	return netip.Addr{}
}

// Cluster is a consistent snapshot of namespaces, pods and policies.
type Cluster struct {
	Namespaces map[string]*Namespace
	// Pods are sorted by namespace and name.
	Pods []*Pod
	// Policies are valid NetworkPolicies, sorted by namespace and name.
	Policies []*networkingv1.NetworkPolicy

	byKey map[string]*Pod
	byIP  map[netip.Addr]*Pod
}

// New builds a cluster from its parts. Namespaces referenced by pods or
// policies but not given are added with only their name label; every
// namespace gets MetadataNameLabel, as the API server sets it.
func New(namespaces []*Namespace, pods []*Pod, policies []*networkingv1.NetworkPolicy) *Cluster {
	c := &Cluster{
		Namespaces: make(map[string]*Namespace, len(namespaces)),
		Pods:       append([]*Pod(nil), pods...),
		Policies:   append([]*networkingv1.NetworkPolicy(nil), policies...),
	}
	for _, ns := range namespaces {
		c.Namespaces[ns.Name] = withNameLabel(ns)
	}
	for _, p := range c.Pods {
		c.ensureNamespace(p.Namespace)
	}
	for _, np := range c.Policies {
		c.ensureNamespace(np.Namespace)
	}
	sort.Slice(c.Pods, func(i, j int) bool {
		if c.Pods[i].Namespace != c.Pods[j].Namespace {
			return c.Pods[i].Namespace < c.Pods[j].Namespace
		}
		return c.Pods[i].Name < c.Pods[j].Name
	})
	sort.Slice(c.Policies, func(i, j int) bool {
		a, b := c.Policies[i], c.Policies[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	c.byKey = make(map[string]*Pod, len(c.Pods))
	c.byIP = make(map[netip.Addr]*Pod, len(c.Pods))
	for _, p := range c.Pods {
		c.byKey[p.Key()] = p
	}
	// Active pods win an address over inactive ones, and pod-network pods
	// over host-network pods sharing the node's address.
	for pass := 0; pass < 3; pass++ {
		for _, p := range c.Pods {
			active, _ := p.Active()
			if (pass == 0) != (active && !p.HostNetwork) || (pass == 1 && !active) {
				continue
			}
			for _, ip := range p.IPs {
				if _, taken := c.byIP[ip]; !taken {
					c.byIP[ip] = p
				}
			}
		}
	}
	return c
}

func withNameLabel(ns *Namespace) *Namespace {
	out := *ns
	out.Labels = make(labels.Set, len(ns.Labels)+1)
	for k, v := range ns.Labels {
		out.Labels[k] = v
	}
	out.Labels[MetadataNameLabel] = ns.Name
	return &out
}

func (c *Cluster) ensureNamespace(name string) {
	if _, ok := c.Namespaces[name]; !ok {
		c.Namespaces[name] = &Namespace{Name: name, Labels: labels.Set{MetadataNameLabel: name}}
	}
}

// NamespaceLabels returns the labels of a namespace; an unknown namespace
// has only its name label.
func (c *Cluster) NamespaceLabels(name string) labels.Set {
	if ns, ok := c.Namespaces[name]; ok {
		return ns.Labels
	}
	return labels.Set{MetadataNameLabel: name}
}

// Pod returns the pod "namespace/name", or nil.
func (c *Cluster) Pod(key string) *Pod { return c.byKey[key] }

// PodByIP returns the pod owning an address, or nil when the address is
// external to the cluster's pods.
func (c *Cluster) PodByIP(ip netip.Addr) *Pod { return c.byIP[ip.Unmap()] }

// Policy returns the policy "namespace/name", or nil.
func (c *Cluster) Policy(namespace, name string) *networkingv1.NetworkPolicy {
	i := sort.Search(len(c.Policies), func(i int) bool {
		p := c.Policies[i]
		return p.Namespace > namespace || (p.Namespace == namespace && p.Name >= name)
	})
	if i < len(c.Policies) && c.Policies[i].Namespace == namespace && c.Policies[i].Name == name {
		return c.Policies[i]
	}
	return nil
}

// ActivePods returns the pods that take part in traffic, and the others.
func (c *Cluster) ActivePods() (active, inactive []*Pod) {
	for _, p := range c.Pods {
		if ok, _ := p.Active(); ok {
			active = append(active, p)
		} else {
			inactive = append(inactive, p)
		}
	}
	return active, inactive
}

// PodFromAPI converts a Kubernetes pod to the model.
func PodFromAPI(p *corev1.Pod) *Pod {
	out := &Pod{
		Namespace:   p.Namespace,
		Name:        p.Name,
		Labels:      labels.Set(p.Labels),
		HostNetwork: p.Spec.HostNetwork,
		NodeName:    p.Spec.NodeName,
		Phase:       p.Status.Phase,
	}
	if out.Namespace == "" {
		out.Namespace = corev1.NamespaceDefault
	}
	seen := map[netip.Addr]bool{}
	add := func(s string) {
		if ip, err := netip.ParseAddr(s); err == nil && !seen[ip.Unmap()] {
			seen[ip.Unmap()] = true
			out.IPs = append(out.IPs, ip.Unmap())
		}
	}
	add(p.Status.PodIP)
	for _, ip := range p.Status.PodIPs {
		add(ip.IP)
	}
	for _, ctr := range append(append([]corev1.Container(nil), p.Spec.InitContainers...), p.Spec.Containers...) {
		for _, cp := range ctr.Ports {
			proto := cp.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			out.Ports = append(out.Ports, ContainerPort{Name: cp.Name, Protocol: proto, Port: cp.ContainerPort})
		}
	}
	return out
}

// NamespaceFromAPI converts a Kubernetes namespace to the model.
func NamespaceFromAPI(ns *corev1.Namespace) *Namespace {
	return &Namespace{Name: ns.Name, Labels: labels.Set(ns.Labels), Defined: true}
}

// FromAPI builds a cluster from Kubernetes objects.
func FromAPI(namespaces []*corev1.Namespace, pods []*corev1.Pod, policies []*networkingv1.NetworkPolicy) *Cluster {
	nss := make([]*Namespace, len(namespaces))
	for i, ns := range namespaces {
		nss[i] = NamespaceFromAPI(ns)
	}
	ps := make([]*Pod, len(pods))
	for i, p := range pods {
		ps[i] = PodFromAPI(p)
	}
	return New(nss, ps, policies)
}
