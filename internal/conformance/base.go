package conformance

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netfence/netfence/internal/manifest"
)

// HostNetworkPortStart is the first of the HostNetworkPortCount ports the
// base manifests' host-network pods serve on: upstream's default
// (ConformanceTestSuite.Setup), so that the rendered manifests are those
// of a default run.
const (
	HostNetworkPortStart = 34345
	HostNetworkPortCount = 8
)

// HostNetworkPort returns upstream's s.HostNetworkPorts[i].
func HostNetworkPort(i int) int32 { return int32(HostNetworkPortStart + i) }

// hostNetworkPorts is the template data's HostNetworkPorts.
func hostNetworkPorts() []int {
	out := make([]int, HostNetworkPortCount)
	for i := range out {
		out[i] = HostNetworkPortStart + i
	}
	return out
}

// Stack is the address families of a base cluster.
type Stack int

// Stacks. Pod addresses are 10.244.N.M (IPv4) and fd00:10:244:N::M (IPv6),
// N the pod's node (1 or 2) and M from 10 in the order pods are placed on
// it; node addresses are 10.244.255.N and fd00:10:244:ff::N, shared by the
// node's host-network pods. A pod's status.podIP, which the upstream tests
// poke, is its first address.
const (
	// IPv4 is single-stack IPv4.
	IPv4 Stack = iota + 1
	// IPv6 is single-stack IPv6.
	IPv6
	// DualStack gives every pod and node an IPv4 address, first, and an
	// IPv6 address.
	DualStack
)

// Stacks returns every stack.
func Stacks() []Stack { return []Stack{IPv4, IPv6, DualStack} }

func (s Stack) String() string {
	switch s {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	case DualStack:
		return "DualStack"
	}
	return "Stack(" + strconv.Itoa(int(s)) + ")"
}

// addrs returns the addresses of host index h (from 10 for pods, node
// number for nodes) on network n (node number, or 255 for the node
// network), in the stack's order.
func (s Stack) addrs(n, h int) []netip.Addr {
	v4 := netip.AddrFrom4([4]byte{10, 244, byte(n), byte(h)})
	v6 := netip.MustParseAddr(fmt.Sprintf("fd00:10:244:%x::%x", n, h))
	switch s {
	case IPv4:
		return []netip.Addr{v4}
	case IPv6:
		return []netip.Addr{v6}
	}
	return []netip.Addr{v4, v6}
}

// nodeCount is the number of nodes of the base cluster: the StatefulSets'
// two replicas land on different nodes, as a scheduler spreading them
// would place them.
const nodeCount = 2

// nodeNetwork is the third octet of node addresses (and the fourth group
// of their IPv6 form).
const nodeNetwork = 255

// firstPodHost is the host part of the first pod address on a node.
const firstPodHost = 10

// baseManifests is upstream's default suite.BaseManifests.
const baseManifests = "base/manifests.yaml"

// Base returns the base cluster of the upstream suite: two Nodes, then
// conformance/base/manifests.yaml applied (namespaces, and pods for the
// StatefulSets). Replica i of every StatefulSet runs on node i % 2.
func Base(stack Stack) (*State, error) {
	if stack < IPv4 || stack > DualStack {
		return nil, fmt.Errorf("unknown stack %v", stack)
	}
	s := &State{stack: stack, loader: &manifest.Loader{}, placed: map[string]int{}}
	for i := range nodeCount {
		s.nodes = append(s.nodes, s.newNode(i))
	}
	if err := s.Apply(baseManifests); err != nil {
		return nil, err
	}
	return s, nil
}

// newNode returns node i as kind would label it: kind-worker,
// kind-worker2.
func (s *State) newNode(i int) *corev1.Node {
	name := "kind-worker"
	if i > 0 {
		name += strconv.Itoa(i + 1)
	}
	n := &corev1.Node{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"beta.kubernetes.io/arch": "amd64",
			"beta.kubernetes.io/os":   "linux",
			"kubernetes.io/arch":      "amd64",
			"kubernetes.io/hostname":  name,
			"kubernetes.io/os":        "linux",
		}},
	}
	for _, a := range s.stack.addrs(nodeNetwork, i+1) {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a.String()})
	}
	for _, a := range s.stack.addrs(i+1, 0) {
		bits := 24
		if a.Is6() {
			bits = 64
		}
		n.Spec.PodCIDRs = append(n.Spec.PodCIDRs, netip.PrefixFrom(a, bits).String())
	}
	n.Spec.PodCIDR = n.Spec.PodCIDRs[0]
	n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: name})
	return n
}

// statefulSetPods returns the pods a StatefulSet controller creates
// (<name>-<ordinal>, the template's labels plus the pod-name and
// pod-index labels the controller adds), scheduled and Running with their
// addresses.
func (s *State) statefulSetPods(sts *appsv1.StatefulSet) ([]*corev1.Pod, error) {
	replicas := int32(1)
	if sts.Spec.Replicas != nil {
		replicas = *sts.Spec.Replicas
	}
	var out []*corev1.Pod
	for i := range int(replicas) {
		name := fmt.Sprintf("%s-%d", sts.Name, i)
		labels := map[string]string{}
		for k, v := range sts.Spec.Template.Labels {
			labels[k] = v
		}
		labels["statefulset.kubernetes.io/pod-name"] = name
		labels["apps.kubernetes.io/pod-index"] = strconv.Itoa(i)
		node := s.nodes[i%len(s.nodes)]
		p := &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: sts.Namespace, Labels: labels},
			Spec:       *sts.Spec.Template.Spec.DeepCopy(),
		}
		p.Spec.NodeName = node.Name
		p.Status.Phase = corev1.PodRunning
		var nodeIPs []string
		for _, a := range node.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				nodeIPs = append(nodeIPs, a.Address)
			}
		}
		ips := nodeIPs
		if !p.Spec.HostNetwork {
			ips = nil
			n := i%len(s.nodes) + 1
			host := firstPodHost + s.placed[node.Name]
			s.placed[node.Name]++
			if host > 254 {
				return nil, fmt.Errorf("StatefulSet %s/%s: node %s is full", sts.Namespace, sts.Name, node.Name)
			}
			for _, a := range s.stack.addrs(n, host) {
				ips = append(ips, a.String())
			}
		}
		p.Status.HostIP = nodeIPs[0]
		p.Status.PodIP = ips[0]
		for _, ip := range nodeIPs {
			p.Status.HostIPs = append(p.Status.HostIPs, corev1.HostIP{IP: ip})
		}
		for _, ip := range ips {
			p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
		}
		out = append(out, p)
	}
	return out, nil
}

// PodRef names a pod of the base cluster: "namespace/name".
type PodRef string

// Pod returns the reference to namespace/name.
func Pod(namespace, name string) PodRef { return PodRef(namespace + "/" + name) }

// Namespace returns the pod's namespace.
func (r PodRef) Namespace() string { ns, _, _ := strings.Cut(string(r), "/"); return ns }

// Name returns the pod's name.
func (r PodRef) Name() string { _, name, _ := strings.Cut(string(r), "/"); return name }
