package synth

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// Cluster-scoped policy (Config.ClusterPolicies > 0): the nodes as Node
// objects, a host-network node exporter per node, and ClusterNetworkPolicies
// (sigs.k8s.io/network-policy-api v1beta1) of both tiers.

// Node labels the kubelet and cluster tooling set, which node peers select.
const (
	hostnameLabel   = "kubernetes.io/hostname"
	workerRoleLabel = "node-role.kubernetes.io/worker"
)

// The node exporter DaemonSet: host network, metrics on TCP/9100.
const (
	nodeExporterName  = "node-exporter"
	nodeExporterImage = "quay.io/prometheus/node-exporter:v1.8.2"
	nodeExporterPort  = 9100
)

// cnpAPIVersion is the apiVersion of the generated ClusterNetworkPolicies.
const cnpAPIVersion = "policy.networking.k8s.io/v1beta1"

// nodeName returns node i's name.
func nodeName(i int) string { return fmt.Sprintf("node-%d", i) }

// nodeObjects emits a Node per node: its hostname and worker-role labels
// and, as InternalIP addresses, the host IPs its pods report.
func (g *gen) nodeObjects() {
	for i := range g.cfg.Nodes {
		name := nodeName(i)
		var addrs []corev1.NodeAddress
		for _, h := range g.nodeHostIPs(i) {
			addrs = append(addrs, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: h.IP})
		}
		addrs = append(addrs, corev1.NodeAddress{Type: corev1.NodeHostName, Address: name})
		g.out.Nodes = append(g.out.Nodes, &corev1.Node{
			TypeMeta: typeMeta("v1", "Node"),
			ObjectMeta: objectMeta(name, "", map[string]string{
				"kubernetes.io/arch": "amd64",
				"kubernetes.io/os":   "linux",
				hostnameLabel:        name,
				workerRoleLabel:      "",
			}),
			Status: corev1.NodeStatus{
				Addresses:       addrs,
				DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
				NodeInfo: corev1.NodeSystemInfo{
					MachineID:               nodeID(i, 1),
					SystemUUID:              nodeID(i, 2),
					BootID:                  nodeID(i, 3),
					KernelVersion:           "6.1.0-25-cloud-amd64",
					OSImage:                 "Debian GNU/Linux 12 (bookworm)",
					ContainerRuntimeVersion: "containerd://1.7.22",
					KubeletVersion:          "v1.31.1",
					OperatingSystem:         "linux",
					Architecture:            "amd64",
				},
			},
		})
	}
}

// nodeID returns a deterministic 32-hex-digit identifier for node i.
func nodeID(i, salt int) string {
	mix := func(x uint64) uint64 { // splitmix64
		x += 0x9e3779b97f4a7c15
		x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
		x = (x ^ x>>27) * 0x94d049bb133111eb
		return x ^ x>>31
	}
	a := mix(uint64(i)<<8 | uint64(salt))
	return fmt.Sprintf("%016x%016x", a, mix(a))
}

// nodeExporters emits a host-network node exporter pod per node in ni:
// its address is the node's.
func (g *gen) nodeExporters(ni *nsInfo) {
	for i := range g.cfg.Nodes {
		node := nodeName(i)
		name := nodeExporterName + "-" + node
		for g.podNames[ni.name+"/"+name] {
			name += "-x"
		}
		g.podNames[ni.name+"/"+name] = true
		hostIPs := g.nodeHostIPs(i)
		podIPs := hostPodIPs(hostIPs)
		g.out.Pods = append(g.out.Pods, &corev1.Pod{
			TypeMeta: typeMeta("v1", "Pod"),
			ObjectMeta: objectMeta(name, ni.name, map[string]string{
				"app": nodeExporterName, "app.kubernetes.io/name": nodeExporterName,
			}),
			Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: nodeExporterName, Image: nodeExporterImage,
					Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: nodeExporterPort,
						HostPort: nodeExporterPort, Protocol: corev1.ProtocolTCP}}}},
				NodeName:    node,
				HostNetwork: true,
			},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, HostIP: hostIPs[0].IP, HostIPs: hostIPs,
				PodIP: podIPs[0].IP, PodIPs: podIPs},
		})
	}
}

// hostPodIPs returns a host-network pod's addresses: its node's.
func hostPodIPs(hostIPs []corev1.HostIP) []corev1.PodIP {
	out := make([]corev1.PodIP, len(hostIPs))
	for i, h := range hostIPs {
		out[i] = corev1.PodIP{IP: h.IP}
	}
	return out
}

// exporterNamespace is where the node exporters run: monitoring, or
// kube-system when there is no monitoring namespace.
func (g *gen) exporterNamespace() *nsInfo {
	if g.promNS != nil {
		return g.promNS
	}
	return g.ns[0]
}

// cnpGen generates cluster policies from what the namespaces look like.
type cnpGen struct {
	g *gen
	// teams are the team labels of the namespaces, sorted; pci the
	// namespaces labelled compliance=pci, in namespace order.
	teams, pci []string
	// prios are the priorities used so far, per tier (Admin, Baseline).
	prios [2][]int32
}

// clusterPolicies generates Config.ClusterPolicies cluster policies. They
// are realistic but random: guardrails around sensitive (pci) namespaces
// that deny everyone else, a cloud-metadata block, Pass between tenants,
// node access, CIDR egress rules, tenant baselines denying 0.0.0.0/0, pod
// subjects and domain names; some share a priority.
func (g *gen) clusterPolicies() {
	c := &cnpGen{g: g}
	seen := map[string]bool{}
	var apps []string
	for _, ni := range g.ns {
		if ni.team != "" && !seen[ni.team] {
			seen[ni.team] = true
			c.teams = append(c.teams, ni.team)
		}
		if ni.labels["compliance"] == "pci" {
			c.pci = append(c.pci, ni.name)
		}
		if ni.kind == nsApp {
			apps = append(apps, ni.name)
		}
	}
	sort.Strings(c.teams)
	// Small clusters may lack teams or pci namespaces: the policies then
	// guard what there is.
	if len(c.teams) == 0 {
		c.teams = []string{"platform"}
	}
	if len(c.pci) == 0 {
		c.pci = apps
	}
	if len(c.pci) == 0 {
		c.pci = []string{g.ns[0].name}
	}
	for i := range g.cfg.ClusterPolicies {
		g.out.ClusterPolicies = append(g.out.ClusterPolicies, c.policy(i))
	}
}

func matchLabels(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func cnpTCP(port int32) v1beta1.ClusterNetworkPolicyProtocol {
	return v1beta1.ClusterNetworkPolicyProtocol{TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Number: port}}}
}

func cnpUDP(port int32) v1beta1.ClusterNetworkPolicyProtocol {
	return v1beta1.ClusterNetworkPolicyProtocol{UDP: &v1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &v1beta1.Port{Number: port}}}
}

func cnpFromNS(sel *metav1.LabelSelector) []v1beta1.ClusterNetworkPolicyIngressPeer {
	return []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: sel}}
}

func cnpToNS(sel *metav1.LabelSelector) []v1beta1.ClusterNetworkPolicyEgressPeer {
	return []v1beta1.ClusterNetworkPolicyEgressPeer{{Namespaces: sel}}
}

func cnpToNets(cidrs ...v1beta1.CIDR) []v1beta1.ClusterNetworkPolicyEgressPeer {
	return []v1beta1.ClusterNetworkPolicyEgressPeer{{Networks: cidrs}}
}

// policy returns cluster policy i.
func (c *cnpGen) policy(i int) *v1beta1.ClusterNetworkPolicy {
	const accept, deny, pass = v1beta1.ClusterNetworkPolicyRuleActionAccept, v1beta1.ClusterNetworkPolicyRuleActionDeny, v1beta1.ClusterNetworkPolicyRuleActionPass
	r := c.g.r
	team := oneOf(r, c.teams)
	spec := v1beta1.ClusterNetworkPolicySpec{Tier: v1beta1.AdminTier}
	nsSubject := func(sel *metav1.LabelSelector) {
		spec.Subject = v1beta1.ClusterNetworkPolicySubject{Namespaces: sel}
	}
	in := func(name string, action v1beta1.ClusterNetworkPolicyRuleAction, from []v1beta1.ClusterNetworkPolicyIngressPeer, protos ...v1beta1.ClusterNetworkPolicyProtocol) {
		spec.Ingress = append(spec.Ingress, v1beta1.ClusterNetworkPolicyIngressRule{Name: name, Action: action, From: from, Protocols: protos})
	}
	out := func(name string, action v1beta1.ClusterNetworkPolicyRuleAction, to []v1beta1.ClusterNetworkPolicyEgressPeer, protos ...v1beta1.ClusterNetworkPolicyProtocol) {
		spec.Egress = append(spec.Egress, v1beta1.ClusterNetworkPolicyEgressRule{Name: name, Action: action, To: to, Protocols: protos})
	}
	teamExists := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpExists}}}
	var what string
	switch x := r.IntN(16); {
	case x < 3: // a sensitive namespace: its team and monitoring only
		what = "sensitive-guardrail"
		nsSubject(matchLabels(metadataName, oneOf(r, c.pci)))
		in("same-team", accept, cnpFromNS(matchLabels("team", team)), cnpTCP(8080), cnpTCP(5432))
		in("scrape", accept, cnpFromNS(matchLabels(metadataName, "monitoring")), v1beta1.ClusterNetworkPolicyProtocol{DestinationNamedPort: "metrics"})
		in("everyone-else", deny, cnpFromNS(&metav1.LabelSelector{}))
	case x < 4: // cloud metadata
		what = "block-cloud-metadata"
		nsSubject(&metav1.LabelSelector{})
		out("metadata", deny, cnpToNets("169.254.169.254/32"))
	case x < 7: // tenants decide between tenants
		what = "tenant-pass-" + team
		nsSubject(matchLabels("team", team))
		in("from-tenants", pass, cnpFromNS(teamExists))
		out("to-own-team", pass, cnpToNS(matchLabels("team", team)))
	case x < 8: // node access
		what = "node-access-" + team
		nsSubject(matchLabels("team", team))
		if r.IntN(2) == 0 {
			what = "node-access-monitoring"
			nsSubject(matchLabels(metadataName, "monitoring"))
		}
		out("exporters", accept, []v1beta1.ClusterNetworkPolicyEgressPeer{{Nodes: &metav1.LabelSelector{}}}, cnpTCP(nodeExporterPort), cnpTCP(10250))
		out("other-node-ports", deny, []v1beta1.ClusterNetworkPolicyEgressPeer{{Nodes: matchLabels(workerRoleLabel, "")}})
	case x < 10: // CIDR egress
		env := oneOf(r, []string{"prod", "staging", "dev"})
		what = "egress-" + env
		nsSubject(matchLabels("env", env))
		out("partner", accept, cnpToNets(v1beta1.CIDR(fmt.Sprintf("203.0.%d.0/24", r.IntN(256)))), cnpTCP(443))
		out("node-block", oneOf(r, []v1beta1.ClusterNetworkPolicyRuleAction{accept, deny, pass}),
			cnpToNets(v1beta1.CIDR(fmt.Sprintf("10.244.%d.0/24", r.IntN(12)))), cnpTCP(5432), cnpUDP(53))
		if r.IntN(2) == 0 {
			spec.Tier = v1beta1.BaselineTier
			out("internet", deny, cnpToNets("0.0.0.0/0", "::/0"))
		}
	case x < 13: // tenant baseline
		what = "baseline-" + team
		spec.Tier = v1beta1.BaselineTier
		nsSubject(matchLabels("team", team))
		out("dns", accept, []v1beta1.ClusterNetworkPolicyEgressPeer{{Pods: &v1beta1.NamespacedPod{
			NamespaceSelector: *matchLabels(metadataName, "kube-system"), PodSelector: *matchLabels("k8s-app", "kube-dns")}}}, cnpUDP(53), cnpTCP(53))
		out("own-team", accept, cnpToNS(matchLabels("team", team)))
		out("rest", deny, append(cnpToNS(&metav1.LabelSelector{}), cnpToNets("0.0.0.0/0", "::/0")...))
		in("own-team", accept, cnpFromNS(matchLabels("team", team)))
		in("rest", deny, cnpFromNS(&metav1.LabelSelector{}))
	case x < 15: // pod subjects: databases
		what = "databases-" + team
		spec.Subject = v1beta1.ClusterNetworkPolicySubject{Pods: &v1beta1.NamespacedPod{
			NamespaceSelector: *matchLabels("team", team), PodSelector: *matchLabels("tier", "db")}}
		in("no-frontends", deny, []v1beta1.ClusterNetworkPolicyIngressPeer{{Pods: &v1beta1.NamespacedPod{PodSelector: *matchLabels("tier", "frontend")}}})
		in("backends", accept, []v1beta1.ClusterNetworkPolicyIngressPeer{{Pods: &v1beta1.NamespacedPod{
			NamespaceSelector: *matchLabels("team", team), PodSelector: *matchLabels("tier", "backend")}}},
			v1beta1.ClusterNetworkPolicyProtocol{TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Range: &v1beta1.PortRange{Start: 3306, End: 5432}}}})
	default: // domain names
		what = "egress-domains-" + team
		nsSubject(matchLabels("team", team))
		out("apis", accept, []v1beta1.ClusterNetworkPolicyEgressPeer{{DomainNames: []v1beta1.DomainName{"*.example.com", "api.partner.io"}}}, cnpTCP(443))
	}
	t := 0
	if spec.Tier == v1beta1.BaselineTier {
		t = 1
	}
	if ps := c.prios[t]; len(ps) > 0 && r.IntN(10) == 0 {
		spec.Priority = oneOf(r, ps) // equal priorities happen
	} else {
		spec.Priority = int32(r.IntN(1001))
	}
	c.prios[t] = append(c.prios[t], spec.Priority)
	return &v1beta1.ClusterNetworkPolicy{
		TypeMeta:   typeMeta(cnpAPIVersion, "ClusterNetworkPolicy"),
		ObjectMeta: objectMeta(fmt.Sprintf("%s-%03d", what, i), "", nil),
		Spec:       spec,
	}
}
