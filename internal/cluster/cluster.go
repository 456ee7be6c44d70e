// Package cluster holds netfence's model of a cluster: namespaces, pods and
// network policies, independent of where they were read from (manifest files
// or the Kubernetes API).
package cluster

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"

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

// Port is a protocol and a port number, such as TCP/80: what a probe or a
// matrix column names.
type Port struct {
	Protocol corev1.Protocol
	Port     int32
}

// String returns "PROTOCOL/PORT".
func (p Port) String() string { return fmt.Sprintf("%s/%d", p.Protocol, p.Port) }

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
	// ClusterPolicies are the cluster-scoped policies
	// (ClusterNetworkPolicy, AdminNetworkPolicy,
	// BaselineAdminNetworkPolicy), sorted by Key.
	ClusterPolicies []*ClusterPolicy
	// Nodes are sorted by name.
	Nodes []*Node

	byKey map[string]*Pod
	byIP  map[netip.Addr]*Pod
	// shared maps each conflicted address (see AddressConflict) to the
	// pods holding it, in cluster order.
	shared map[netip.Addr][]*Pod
	// nodeByIP maps each node address to the nodes that have it.
	nodeByIP map[netip.Addr][]*Node
}

// AddressConflict is an address held by two or more active (Running, with
// an address) pod-network pods. Which of them a packet from or to the
// address belongs to cannot be known, so netfence fails closed: every pod
// holding a conflicted address is isolated in both directions with nothing
// allowed (a pod may still talk to itself), is matched by no pod or
// namespace selector (ipBlocks still match its addresses), and no named
// port resolves against it. That is never more open than either pod alone.
type AddressConflict struct {
	Addr netip.Addr
	// Pods hold the address, in cluster order.
	Pods []*Pod
}

// SharedWith names the pods of the conflict other than p: "ns/b", "ns/b
// and ns/c", "ns/b, ns/c and ns/d".
func (a AddressConflict) SharedWith(p *Pod) string {
	var others []string
	for _, o := range a.Pods {
		if p == nil || o.Key() != p.Key() {
			others = append(others, o.Key())
		}
	}
	return wordList(others)
}

// wordList joins words as "a", "a and b", "a, b and c".
func wordList(ws []string) string {
	switch len(ws) {
	case 0:
		return ""
	case 1:
		return ws[0]
	}
	return strings.Join(ws[:len(ws)-1], ", ") + " and " + ws[len(ws)-1]
}

// New builds a cluster from its parts. Namespaces referenced by pods or
// policies but not given are added with only their name label; every
// namespace gets MetadataNameLabel, as the API server sets it.
func New(namespaces []*Namespace, pods []*Pod, policies []*networkingv1.NetworkPolicy) *Cluster {
	return NewWith(Parts{Namespaces: namespaces, Pods: pods, Policies: policies})
}

// Parts are what a cluster is built from.
type Parts struct {
	Namespaces      []*Namespace
	Pods            []*Pod
	Policies        []*networkingv1.NetworkPolicy
	ClusterPolicies []*ClusterPolicy
	Nodes           []*Node
}

// Parts returns the cluster's parts, namespaces sorted by name, for
// building a changed copy with NewWith (the slices are the cluster's own:
// replace them, do not modify them).
func (c *Cluster) Parts() Parts {
	parts := Parts{Pods: c.Pods, Policies: c.Policies, ClusterPolicies: c.ClusterPolicies, Nodes: c.Nodes}
	for _, name := range slices.Sorted(maps.Keys(c.Namespaces)) {
		parts.Namespaces = append(parts.Namespaces, c.Namespaces[name])
	}
	return parts
}

// NewWith builds a cluster from its parts, as New does, with cluster-scoped
// policies and nodes.
func NewWith(parts Parts) *Cluster {
	namespaces, pods, policies := parts.Namespaces, parts.Pods, parts.Policies
	c := &Cluster{
		Namespaces:      make(map[string]*Namespace, len(namespaces)),
		Pods:            append([]*Pod(nil), pods...),
		Policies:        append([]*networkingv1.NetworkPolicy(nil), policies...),
		ClusterPolicies: append([]*ClusterPolicy(nil), parts.ClusterPolicies...),
		Nodes:           append([]*Node(nil), parts.Nodes...),
	}
	slices.SortStableFunc(c.ClusterPolicies, compareClusterPolicies)
	slices.SortStableFunc(c.Nodes, compareNodes)
	for _, n := range c.Nodes {
		for _, ip := range n.Addrs {
			if c.nodeByIP == nil {
				c.nodeByIP = map[netip.Addr][]*Node{}
			}
			c.nodeByIP[ip.Unmap()] = append(c.nodeByIP[ip.Unmap()], n)
		}
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
	holders := map[netip.Addr][]*Pod{}
	for _, p := range c.Pods {
		if active, _ := p.Active(); !active || p.HostNetwork {
			continue
		}
		for _, ip := range p.IPs {
			ip = ip.Unmap()
			// Pods are sorted: a pod listed twice (a broken source)
			// comes twice in a row and is one holder.
			if hs := holders[ip]; len(hs) == 0 || hs[len(hs)-1].Key() != p.Key() {
				holders[ip] = append(hs, p)
			}
		}
	}
	for ip, hs := range holders {
		if len(hs) > 1 {
			if c.shared == nil {
				c.shared = map[netip.Addr][]*Pod{}
			}
			c.shared[ip] = hs
		}
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

// NodesWithAddr returns the nodes that have ip among their addresses, in
// name order.
func (c *Cluster) NodesWithAddr(ip netip.Addr) []*Node { return c.nodeByIP[ip.Unmap()] }

// Node returns the node of that name, or nil.
func (c *Cluster) Node(name string) *Node {
	i, ok := slices.BinarySearchFunc(c.Nodes, name, func(n *Node, name string) int { return strings.Compare(n.Name, name) })
	if !ok {
		return nil
	}
	return c.Nodes[i]
}

// ClusterPolicy returns the cluster policy of that key ("cnp/NAME",
// "anp/NAME", "banp/NAME"), or nil.
func (c *Cluster) ClusterPolicy(key string) *ClusterPolicy {
	i, ok := slices.BinarySearchFunc(c.ClusterPolicies, key, func(p *ClusterPolicy, key string) int { return strings.Compare(p.Key(), key) })
	if !ok {
		return nil
	}
	return c.ClusterPolicies[i]
}

// Pod returns the pod "namespace/name", or nil.
func (c *Cluster) Pod(key string) *Pod { return c.byKey[key] }

// PodByIP returns the pod owning an address, or nil when the address is
// external to the cluster's pods.
func (c *Cluster) PodByIP(ip netip.Addr) *Pod { return c.byIP[ip.Unmap()] }

// ActivePodByIP returns the active pod owning an address (PodByIP, when
// that pod is Running with an address), or nil: the dataplane renders only
// active pods, so the address of another is external to it.
func (c *Cluster) ActivePodByIP(ip netip.Addr) *Pod {
	p := c.PodByIP(ip)
	if p == nil {
		return nil
	}
	if ok, _ := p.Active(); !ok {
		return nil
	}
	return p
}

// Holders returns the pods holding ip when ip is a conflicted address (see
// AddressConflict), in cluster order, and nil otherwise.
func (c *Cluster) Holders(ip netip.Addr) []*Pod { return c.shared[ip.Unmap()] }

// Conflict returns the first conflicted address of p (in the order of
// p.IPs) and the pods holding it. It is false for a pod that holds no
// conflicted address, and for inactive and hostNetwork pods, which never
// do.
func (c *Cluster) Conflict(p *Pod) (AddressConflict, bool) {
	if len(c.shared) == 0 || p == nil || p.HostNetwork {
		return AddressConflict{}, false
	}
	if active, _ := p.Active(); !active {
		return AddressConflict{}, false
	}
	for _, ip := range p.IPs {
		if hs := c.shared[ip.Unmap()]; hs != nil {
			return AddressConflict{Addr: ip.Unmap(), Pods: hs}, true
		}
	}
	return AddressConflict{}, false
}

// Conflicted reports whether p holds a conflicted address (see
// AddressConflict): it is then denied all traffic but to itself.
func (c *Cluster) Conflicted(p *Pod) bool {
	_, ok := c.Conflict(p)
	return ok
}

// OwnedAddrs returns the addresses the cluster attributes to p (those
// PodByIP gives to p), sorted, each once. A pod holding a conflicted
// address owns it only if PodByIP picked it; use Conflicted to tell.
func (c *Cluster) OwnedAddrs(p *Pod) []netip.Addr {
	var out []netip.Addr
	for _, ip := range p.IPs {
		if ip = ip.Unmap(); c.PodByIP(ip) == p && !slices.Contains(out, ip) {
			out = append(out, ip)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Conflicts returns every conflicted address, sorted by address.
func (c *Cluster) Conflicts() []AddressConflict {
	out := make([]AddressConflict, 0, len(c.shared))
	for ip, hs := range c.shared {
		out = append(out, AddressConflict{Addr: ip, Pods: hs})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Less(out[j].Addr) })
	return out
}

// maxWarnPods bounds the pods named in one warning.
const maxWarnPods = 5

// Warnings lists what a user must know about the cluster model, in a fixed
// order: first, by namespace name, pods in a namespace that nothing defines
// (it is assumed to carry only MetadataNameLabel; this happens with
// manifest input only, as a live cluster defines every namespace); then, by
// address, the conflicted addresses (see AddressConflict).
func (c *Cluster) Warnings() []string {
	var out []string
	undefined := map[string][]string{}
	var names []string
	for _, p := range c.Pods {
		if ns := c.Namespaces[p.Namespace]; ns != nil && ns.Defined {
			continue
		}
		if _, ok := undefined[p.Namespace]; !ok {
			names = append(names, p.Namespace)
		}
		undefined[p.Namespace] = append(undefined[p.Namespace], p.Key())
	}
	sort.Strings(names)
	for _, ns := range names {
		pods := undefined[ns]
		what := "pod " + pods[0] + " is"
		if len(pods) > 1 {
			if len(pods) > maxWarnPods {
				pods = append(pods[:maxWarnPods:maxWarnPods], fmt.Sprintf("%d more", len(pods)-maxWarnPods))
			}
			what = "pods " + wordList(pods) + " are"
		}
		out = append(out, fmt.Sprintf("namespace %s is not defined, but %s in it: it is taken to have only the label %s=%s, so namespace selectors on other labels do not match it",
			ns, what, MetadataNameLabel, ns))
	}
	for _, a := range c.Conflicts() {
		keys := make([]string, len(a.Pods))
		for i, p := range a.Pods {
			keys[i] = p.Key()
		}
		if len(keys) == 2 {
			out = append(out, fmt.Sprintf("address %s is held by two running pods, %s: both are denied all traffic until one goes (fail closed)", a.Addr, wordList(keys)))
			continue
		}
		out = append(out, fmt.Sprintf("address %s is held by %d running pods, %s: all are denied all traffic until only one holds it (fail closed)", a.Addr, len(keys), wordList(keys)))
	}
	return out
}

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
	return APIObjects{Namespaces: namespaces, Pods: pods, Policies: policies}.Cluster()
}

// APIObjects are a cluster's objects as read (manifests, the API server):
// namespaces and pods as Kubernetes has them, the policies, and cluster
// policies and nodes already in the model's form.
type APIObjects struct {
	Namespaces      []*corev1.Namespace
	Pods            []*corev1.Pod
	Policies        []*networkingv1.NetworkPolicy
	ClusterPolicies []*ClusterPolicy
	Nodes           []*Node
}

// Cluster builds the model. Policies are taken as they are; the policy
// compiler validates them and rejects invalid ones.
func (o APIObjects) Cluster() *Cluster {
	parts := Parts{
		Namespaces:      make([]*Namespace, len(o.Namespaces)),
		Pods:            make([]*Pod, len(o.Pods)),
		Policies:        o.Policies,
		ClusterPolicies: o.ClusterPolicies,
		Nodes:           o.Nodes,
	}
	for i, ns := range o.Namespaces {
		parts.Namespaces[i] = NamespaceFromAPI(ns)
	}
	for i, p := range o.Pods {
		parts.Pods[i] = PodFromAPI(p)
	}
	return NewWith(parts)
}
