package bench

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netfence/netfence/internal/cluster"
)

// The measured cluster. The client and the server run in the bed, on node
// Node; the remote pods are on other nodes and exist only as addresses.
const (
	// Node is the NodeName of the two real pods; render with
	// nft.Options{Node: Node}.
	Node = "bench-node"
	// Namespace holds the client, the server and every policy.
	Namespace = "bench"
	// ServerPort is the TCP port the server listens on.
	ServerPort int32 = 8080
	// Groups is the number of peer groups the remote pods are split into
	// (label "group": g0 .. g99).
	Groups = 100
	// DefaultRemotePods is Scenario.RemotePods when it is 0.
	DefaultRemotePods = 5000
	// MaxRemotePods is the largest Scenario.RemotePods.
	MaxRemotePods = 128 * 256
	// extraPorts is how many other TCP ports (9000 ..) the port-restricted
	// policies allow besides ServerPort.
	extraPorts = 10
)

var (
	// ClientAddr and ServerAddr are the addresses of the real pods.
	ClientAddr = netip.MustParseAddr("10.99.0.10")
	ServerAddr = netip.MustParseAddr("10.99.0.20")
)

// Scenario describes a measured cluster.
type Scenario struct {
	// Policies is the number of policies in Namespace (N).
	Policies int
	// Selecting is how many of them select the server (M); 0 means
	// DefaultSelecting(Policies).
	Selecting int
	// RemotePods is the number of pods on other nodes; 0 means
	// DefaultRemotePods.
	RemotePods int
	// DenyClient leaves the client out of every policy, so the server's
	// ingress denies it.
	DenyClient bool
	// ClusterPolicies is the number of cluster policies
	// (ClusterNetworkPolicy, Admin and Baseline tiers alternating); a
	// fifth select the client and the server (see Build).
	ClusterPolicies int
	// Monitor runs the agent's flow monitor for allowed connections
	// (conntrack events, explained, drained by a subscriber) during the
	// measurement.
	Monitor bool
	// MonitorVia is the monitor's source of allowed connections
	// (flow.AllowedReader.Via; empty: conntrack events). With "nflog",
	// a table logs the first packet of each allowed connection (see
	// allowedLogTable).
	MonitorVia string
}

// DefaultSelecting is a fifth of n, at least 1 (and at most n).
func DefaultSelecting(n int) int { return min(n, max(1, n/5)) }

func (s Scenario) normalized() (Scenario, error) {
	if s.Selecting == 0 {
		s.Selecting = DefaultSelecting(s.Policies)
	}
	if s.RemotePods == 0 {
		s.RemotePods = DefaultRemotePods
	}
	switch {
	case s.Policies < 1:
		return s, fmt.Errorf("bench: scenario needs at least 1 policy, got %d", s.Policies)
	case s.Selecting < 1 || s.Selecting > s.Policies:
		return s, fmt.Errorf("bench: %d selecting policies out of %d", s.Selecting, s.Policies)
	case s.RemotePods < Groups || s.RemotePods > MaxRemotePods:
		return s, fmt.Errorf("bench: remote pods %d out of range %d..%d", s.RemotePods, Groups, MaxRemotePods)
	}
	return s, nil
}

// String names the scenario, e.g. "policies=5000 selecting=1000 remote=5000".
func (s Scenario) String() string {
	n, err := s.normalized()
	if err != nil {
		return fmt.Sprintf("invalid scenario (policies=%d selecting=%d remote=%d)", s.Policies, s.Selecting, s.RemotePods)
	}
	out := fmt.Sprintf("policies=%d selecting=%d remote=%d", n.Policies, n.Selecting, n.RemotePods)
	if n.ClusterPolicies > 0 {
		out += fmt.Sprintf(" cluster-policies=%d", n.ClusterPolicies)
	}
	if n.Monitor {
		out += " monitor"
		if n.MonitorVia != "" {
			out += "-" + n.MonitorVia
		}
	}
	if n.DenyClient {
		out += " deny-client"
	}
	return out
}

// ClientPod and ServerPod return the two real pods as the full cluster
// holds them. The server declares ServerPort; BedCluster leaves it out, so
// that the testbed starts no server of its own on it.
func ClientPod() *cluster.Pod {
	return &cluster.Pod{
		Namespace: Namespace, Name: "client", NodeName: Node, Phase: corev1.PodRunning,
		Labels: labels.Set{"app": "client"},
		IPs:    []netip.Addr{ClientAddr},
	}
}

// ServerPod: see ClientPod.
func ServerPod() *cluster.Pod {
	return &cluster.Pod{
		Namespace: Namespace, Name: "server", NodeName: Node, Phase: corev1.PodRunning,
		Labels: labels.Set{"app": "server", "role": "api", "tier": "backend"},
		IPs:    []netip.Addr{ServerAddr},
		Ports:  []cluster.ContainerPort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: ServerPort}},
	}
}

// BedCluster is the cluster the testbed is built from: the client and the
// server only, without container ports.
func BedCluster() *cluster.Cluster {
	srv := ServerPod()
	srv.Ports = nil
	return cluster.New([]*cluster.Namespace{{Name: Namespace, Defined: true}}, []*cluster.Pod{ClientPod(), srv}, nil)
}

// RemoteAddr returns the address of remote pod k: hosts are odd, so that
// no two remote addresses are adjacent and interval sets cannot merge them.
func RemoteAddr(k int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 200, byte(k / 128), byte(2*(k%128) + 1)})
}

// Build returns the full cluster of a scenario.
//
// Remote pod k has label group=g(k%Groups); a tenth of them live in
// Namespace (labelled app=svc-X, selected by the policies that do not
// select the server), the rest in remote-0 .. remote-7. Selecting policy j
// allows, from any namespace, the groups g with g%M == j%M (or group j%100
// when M > 100), so that together the selecting policies name every remote
// pod, whatever M. Even j also allow the client and restrict ports to
// TCP/8080 and TCP/(9000 + j%10); odd j allow every port but add an ipBlock
// and never the client. The client is therefore allowed only through the
// server's address . protocol . port set, after a miss in its address set:
// the longest path through the ruleset.
func Build(s Scenario) (*cluster.Cluster, error) {
	s, err := s.normalized()
	if err != nil {
		return nil, err
	}
	nss := []*cluster.Namespace{{Name: Namespace, Labels: labels.Set{"team": "bench"}, Defined: true}}
	for i := range 8 {
		nss = append(nss, &cluster.Namespace{Name: fmt.Sprintf("remote-%d", i), Labels: labels.Set{"team": fmt.Sprintf("t%d", i%3)}, Defined: true})
	}
	pods := []*cluster.Pod{ClientPod(), ServerPod()}
	for k := range s.RemotePods {
		p := &cluster.Pod{
			Name: fmt.Sprintf("remote-%d", k), NodeName: fmt.Sprintf("remote-node-%d", k%50), Phase: corev1.PodRunning,
			Labels: labels.Set{"group": fmt.Sprintf("g%d", k%Groups), "app": fmt.Sprintf("app-%d", k%7)},
			IPs:    []netip.Addr{RemoteAddr(k)},
		}
		if k%10 == 0 {
			p.Namespace = Namespace
			p.Labels["app"] = fmt.Sprintf("svc-%d", (k/10)%50)
		} else {
			p.Namespace = fmt.Sprintf("remote-%d", k%8)
		}
		pods = append(pods, p)
	}
	var nps []*networkingv1.NetworkPolicy
	for j := range s.Selecting {
		nps = append(nps, selectingPolicy(s, j))
	}
	for i := range s.Policies - s.Selecting {
		nps = append(nps, otherPolicy(i))
	}
	var cps []*cluster.ClusterPolicy
	for j := range s.ClusterPolicies {
		cps = append(cps, clusterPolicy(j))
	}
	return cluster.NewWith(cluster.Parts{Namespaces: nss, Pods: pods, Policies: nps, ClusterPolicies: cps}), nil
}

// clusterPolicy returns cluster policy j. Every fifth selects the client
// and the server, in the Admin tier for even j/5 and the Baseline tier
// for odd: its ingress denies a group of remote pods on ServerPort and
// accepts a team of namespaces; its egress denies an external /24 and
// passes traffic to the server on ServerPort. The client's connection is
// therefore passed on by the Admin tier at its egress, and reaches the
// NetworkPolicy layer at the server's ingress (which the NetworkPolicies
// isolate, so the Baseline tier does not decide there), after a miss in
// the Admin tier's maps: it pays for every tier. The others select the
// remote namespaces of a team and deny a group.
func clusterPolicy(j int) *cluster.ClusterPolicy {
	tier := v1beta1.AdminTier
	if (j/5)%2 == 1 {
		tier = v1beta1.BaselineTier
	}
	spec := v1beta1.ClusterNetworkPolicySpec{Tier: tier, Priority: int32(j % 1000)}
	group := &metav1.LabelSelector{MatchLabels: map[string]string{"group": fmt.Sprintf("g%d", j%Groups)}}
	if j%5 != 0 {
		spec.Subject.Namespaces = &metav1.LabelSelector{MatchLabels: map[string]string{"team": fmt.Sprintf("t%d", j%3)}}
		spec.Ingress = []v1beta1.ClusterNetworkPolicyIngressRule{{Action: v1beta1.ClusterNetworkPolicyRuleActionDeny,
			From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Pods: &v1beta1.NamespacedPod{PodSelector: *group}}}}}
	} else {
		spec.Subject.Pods = &v1beta1.NamespacedPod{
			NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{"team": "bench"}},
			PodSelector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"client", "server"}}}},
		}
		onServerPort := []v1beta1.ClusterNetworkPolicyProtocol{{TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Number: ServerPort}}}}
		spec.Ingress = []v1beta1.ClusterNetworkPolicyIngressRule{
			{Action: v1beta1.ClusterNetworkPolicyRuleActionDeny, Protocols: onServerPort,
				From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Pods: &v1beta1.NamespacedPod{PodSelector: *group}}}},
			{Action: v1beta1.ClusterNetworkPolicyRuleActionAccept,
				From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"team": fmt.Sprintf("t%d", j%3)}}}}},
		}
		spec.Egress = []v1beta1.ClusterNetworkPolicyEgressRule{
			{Action: v1beta1.ClusterNetworkPolicyRuleActionDeny,
				To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Networks: []v1beta1.CIDR{v1beta1.CIDR(fmt.Sprintf("172.17.%d.0/24", j%256))}}}},
			{Action: v1beta1.ClusterNetworkPolicyRuleActionPass, Protocols: onServerPort,
				To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Pods: &v1beta1.NamespacedPod{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "server"}}}}}},
		}
	}
	return &cluster.ClusterPolicy{Kind: cluster.KindCNP, APIVersion: cluster.PolicyAPIGroup + "/v1beta1", Name: fmt.Sprintf("cnp-%05d", j), Spec: spec}
}

// groupsOf returns the groups selecting policy j allows.
func groupsOf(m, j int) []string {
	var out []string
	if m > Groups {
		return []string{fmt.Sprintf("g%d", j%Groups)}
	}
	for g := range Groups {
		if g%m == j%m {
			out = append(out, fmt.Sprintf("g%d", g))
		}
	}
	return out
}

func selectingPolicy(s Scenario, j int) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: fmt.Sprintf("server-%05d", j)},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
	// Vary how the server is selected.
	switch j % 3 {
	case 0:
		np.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": "server"}}
	case 1:
		np.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"role": "api"}}
	default:
		np.Spec.PodSelector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"backend", fmt.Sprintf("tier-%d", j%7)}},
		}}
	}
	groups := networkingv1.NetworkPolicyPeer{
		NamespaceSelector: &metav1.LabelSelector{},
		PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "group", Operator: metav1.LabelSelectorOpIn, Values: groupsOf(s.Selecting, j)},
		}},
	}
	rule := networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{groups}}
	if j%2 == 0 {
		if !s.DenyClient {
			rule.From = append(rule.From, networkingv1.NetworkPolicyPeer{
				PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}},
			})
		}
		rule.Ports = []networkingv1.NetworkPolicyPort{tcpPort(ServerPort), tcpPort(9000 + int32(j%extraPorts))}
	} else {
		rule.From = append(rule.From, networkingv1.NetworkPolicyPeer{
			IPBlock: &networkingv1.IPBlock{CIDR: fmt.Sprintf("172.16.%d.0/24", 2*((j/2)%64))},
		})
	}
	np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{rule}
	return np
}

// otherPolicy is a policy of Namespace that selects only remote pods there.
func otherPolicy(i int) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: fmt.Sprintf("other-%05d", i)},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("svc-%d", i%50)}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: &metav1.LabelSelector{},
					PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"group": fmt.Sprintf("g%d", i%Groups)}},
				}},
				Ports: []networkingv1.NetworkPolicyPort{tcpPort(80)},
			}},
		},
	}
}

func tcpPort(n int32) networkingv1.NetworkPolicyPort {
	proto := corev1.ProtocolTCP
	port := intstr.FromInt32(n)
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &port}
}
