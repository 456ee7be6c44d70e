package nft

import (
	"fmt"
	"math/rand/v2"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// Builders for test clusters.

func pod(ns, name, node string, lbls map[string]string, ips ...string) *cluster.Pod {
	p := &cluster.Pod{Namespace: ns, Name: name, NodeName: node, Labels: labels.Set(lbls), Phase: corev1.PodRunning}
	for _, ip := range ips {
		p.IPs = append(p.IPs, netip.MustParseAddr(ip))
	}
	return p
}

func withPorts(p *cluster.Pod, ports ...cluster.ContainerPort) *cluster.Pod {
	p.Ports = append(p.Ports, ports...)
	return p
}

func cport(name string, proto corev1.Protocol, port int32) cluster.ContainerPort {
	return cluster.ContainerPort{Name: name, Protocol: proto, Port: port}
}

func sel(kv ...string) *metav1.LabelSelector {
	s := &metav1.LabelSelector{MatchLabels: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.MatchLabels[kv[i]] = kv[i+1]
	}
	return s
}

func netpol(ns, name string, podSel *metav1.LabelSelector, types ...networkingv1.PolicyType) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if podSel != nil {
		np.Spec.PodSelector = *podSel
	}
	np.Spec.PolicyTypes = types
	return np
}

func podPeer(podSel, nsSel *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: podSel, NamespaceSelector: nsSel}
}

func blockPeer(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

func npPort(proto corev1.Protocol, port any, end ...int32) networkingv1.NetworkPolicyPort {
	p := networkingv1.NetworkPolicyPort{Protocol: &proto}
	switch v := port.(type) {
	case int:
		x := intstr.FromInt32(int32(v))
		p.Port = &x
	case string:
		x := intstr.FromString(v)
		p.Port = &x
	}
	if len(end) > 0 {
		p.EndPort = &end[0]
	}
	return p
}

func ingress(np *networkingv1.NetworkPolicy, peers []networkingv1.NetworkPolicyPeer, ports ...networkingv1.NetworkPolicyPort) {
	np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: peers, Ports: ports})
}

func egress(np *networkingv1.NetworkPolicy, peers []networkingv1.NetworkPolicyPeer, ports ...networkingv1.NetworkPolicyPort) {
	np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: peers, Ports: ports})
}

func peers(p ...networkingv1.NetworkPolicyPeer) []networkingv1.NetworkPolicyPeer { return p }

const (
	tcp  = corev1.ProtocolTCP
	udp  = corev1.ProtocolUDP
	sctp = corev1.ProtocolSCTP
)

var (
	typeIn  = networkingv1.PolicyTypeIngress
	typeOut = networkingv1.PolicyTypeEgress
)

// shopCluster is a small dual-stack cluster on two nodes.
func shopCluster() *cluster.Cluster {
	nss := []*cluster.Namespace{
		{Name: "shop", Labels: labels.Set{"team": "shop"}, Defined: true},
		{Name: "ops", Labels: labels.Set{"team": "ops"}, Defined: true},
	}
	pods := []*cluster.Pod{
		withPorts(pod("shop", "web-1", "node-a", map[string]string{"app": "web"}, "10.1.0.11", "fd00:1::11"), cport("http", tcp, 8080)),
		withPorts(pod("shop", "web-2", "node-b", map[string]string{"app": "web"}, "10.1.0.12", "fd00:1::12"), cport("http", tcp, 8081)),
		withPorts(pod("shop", "db-1", "node-a", map[string]string{"app": "db"}, "10.1.0.21"), cport("pg", tcp, 5432)),
		pod("shop", "client", "node-a", map[string]string{"app": "client"}, "10.1.0.31", "fd00:1::31"),
		pod("ops", "monitor", "node-b", map[string]string{"app": "monitor"}, "10.2.0.5", "fd00:2::5"),
		{Namespace: "shop", Name: "node-agent", NodeName: "node-a", HostNetwork: true, Phase: corev1.PodRunning,
			Labels: labels.Set{"app": "web"}, IPs: []netip.Addr{netip.MustParseAddr("192.168.0.10")}},
		{Namespace: "shop", Name: "web-pending", NodeName: "node-a", Phase: corev1.PodPending,
			Labels: labels.Set{"app": "web"}, IPs: []netip.Addr{netip.MustParseAddr("10.1.0.99")}},
	}
	deny := netpol("shop", "default-deny", nil, typeIn, typeOut)
	webIn := netpol("shop", "web-ingress", sel("app", "web"))
	ingress(webIn, peers(podPeer(sel("app", "client"), nil)), npPort(tcp, "http"))
	ingress(webIn, peers(podPeer(nil, sel("team", "ops"))))
	ingress(webIn, peers(blockPeer("192.168.0.0/16", "192.168.1.0/24")), npPort(tcp, 443))
	webOut := netpol("shop", "web-egress", sel("app", "web"), typeOut)
	egress(webOut, peers(podPeer(sel("app", "db"), nil)), npPort(tcp, "pg"))
	egress(webOut, peers(blockPeer("0.0.0.0/0", "10.0.0.0/8"), blockPeer("::/0", "fd00::/8")), npPort(udp, 53), npPort(tcp, 53))
	dbIn := netpol("shop", "db-ingress", sel("app", "db"), typeIn)
	ingress(dbIn, peers(podPeer(sel("app", "web"), nil)), npPort(tcp, 5432))
	ingress(dbIn, peers(podPeer(sel("app", "client"), nil)), npPort(tcp, 5000, 5431))
	clientOut := netpol("shop", "client-egress", sel("app", "client"), typeOut)
	egress(clientOut, nil, npPort(tcp, "http"))
	egress(clientOut, peers(podPeer(sel(), sel())), npPort(sctp, 9000))
	return cluster.New(nss, pods, []*networkingv1.NetworkPolicy{deny, webIn, webOut, dbIn, clientOut})
}

// genCluster builds a synthetic cluster: pods spread over namespaces and
// nodes, with contiguous addresses, and policies mixing pod selectors,
// namespace selectors, ipBlocks, numeric, ranged and named ports.
type genParams struct {
	Namespaces, Pods, Nodes, Policies int
	DualStack                         bool
}

var genApps = []string{"web", "api", "db", "cache", "worker", "auth", "search", "queue"}

func genPodList(r *rand.Rand, g genParams) []*cluster.Pod {
	var pods []*cluster.Pod
	for i := 0; i < g.Pods; i++ {
		ns := fmt.Sprintf("ns-%d", i%g.Namespaces)
		app := genApps[r.IntN(len(genApps))]
		lbls := map[string]string{"app": app, "tier": []string{"front", "back"}[r.IntN(2)]}
		ip4 := netip.AddrFrom4([4]byte{10, 64 + byte(i>>16), byte(i >> 8), byte(i)})
		ips := []string{ip4.String()}
		if g.DualStack && i%2 == 0 {
			ips = append(ips, fmt.Sprintf("fd00:10::%x", i))
		}
		p := pod(ns, fmt.Sprintf("%s-%d", app, i), fmt.Sprintf("node-%d", i%g.Nodes), lbls, ips...)
		switch app {
		case "web", "api", "auth", "search":
			p.Ports = []cluster.ContainerPort{cport("http", tcp, int32(8080+r.IntN(3))), cport("metrics", tcp, 9090)}
		case "db":
			p.Ports = []cluster.ContainerPort{cport("db", tcp, 5432)}
		case "cache":
			p.Ports = []cluster.ContainerPort{cport("db", tcp, 6379)}
		case "queue":
			p.Ports = []cluster.ContainerPort{cport("amqp", tcp, 5672), cport("dns", udp, 53)}
		}
		pods = append(pods, p)
	}
	return pods
}

func genPolicy(r *rand.Rand, g genParams, i int) *networkingv1.NetworkPolicy {
	ns := fmt.Sprintf("ns-%d", r.IntN(g.Namespaces))
	app := genApps[r.IntN(len(genApps))]
	var np *networkingv1.NetworkPolicy
	switch r.IntN(10) {
	case 0:
		np = netpol(ns, fmt.Sprintf("deny-%d", i), nil, typeIn)
		return np
	case 1:
		np = netpol(ns, fmt.Sprintf("deny-out-%d", i), sel("tier", "back"), typeOut)
		egress(np, peers(podPeer(nil, sel())), npPort(udp, 53))
		return np
	}
	np = netpol(ns, fmt.Sprintf("allow-%s-%d", app, i), sel("app", app))
	for k := 0; k < 1+r.IntN(2); k++ {
		var ps []networkingv1.NetworkPolicyPeer
		switch r.IntN(5) {
		case 0:
			ps = peers(podPeer(sel("app", genApps[r.IntN(len(genApps))]), nil))
		case 1:
			ps = peers(podPeer(sel("app", genApps[r.IntN(len(genApps))]), sel("kubernetes.io/metadata.name", fmt.Sprintf("ns-%d", r.IntN(g.Namespaces)))))
		case 2:
			ps = peers(podPeer(sel("tier", "front"), sel()))
		case 3:
			ps = peers(blockPeer(fmt.Sprintf("10.64.%d.0/24", r.IntN(max(1, g.Pods/256))), fmt.Sprintf("10.64.%d.128/27", r.IntN(max(1, g.Pods/256)))))
		default:
			ps = peers(podPeer(sel("app", app), nil), blockPeer("172.16.0.0/12"))
		}
		var ports []networkingv1.NetworkPolicyPort
		switch r.IntN(5) {
		case 0:
			ports = append(ports, npPort(tcp, "http"), npPort(tcp, "metrics"))
		case 1:
			ports = append(ports, npPort(tcp, 5432), npPort(tcp, 6379))
		case 2:
			ports = append(ports, npPort(tcp, 30000, 32767))
		case 3:
			ports = append(ports, npPort(udp, 53), npPort(tcp, 53))
		}
		ingress(np, ps, ports...)
	}
	if r.IntN(3) == 0 {
		np.Spec.PolicyTypes = []networkingv1.PolicyType{typeIn, typeOut}
		egress(np, peers(podPeer(sel("app", genApps[r.IntN(len(genApps))]), sel())), npPort(tcp, "db"), npPort(tcp, "http"))
		egress(np, peers(blockPeer("0.0.0.0/0", "10.0.0.0/8")), npPort(tcp, 443))
	}
	return np
}

func genCluster(seed uint64, g genParams) *cluster.Cluster {
	r := rand.New(rand.NewPCG(seed, 1))
	var nss []*cluster.Namespace
	for i := 0; i < g.Namespaces; i++ {
		nss = append(nss, &cluster.Namespace{Name: fmt.Sprintf("ns-%d", i), Labels: labels.Set{"team": fmt.Sprintf("t%d", i%5)}, Defined: true})
	}
	pods := genPodList(r, g)
	var nps []*networkingv1.NetworkPolicy
	for i := 0; i < g.Policies; i++ {
		nps = append(nps, genPolicy(r, g, i))
	}
	return cluster.New(nss, pods, nps)
}

// relabelWith is relabel keeping c's cluster policies and nodes.
func relabelWith(c *cluster.Cluster, key, app string) *cluster.Cluster {
	r := relabel(c, key, app)
	var nss []*cluster.Namespace
	for _, ns := range c.Namespaces {
		nss = append(nss, ns)
	}
	return cluster.NewWith(cluster.Parts{Namespaces: nss, Pods: r.Pods, Policies: r.Policies, ClusterPolicies: c.ClusterPolicies, Nodes: c.Nodes})
}

// relabel returns a copy of c where one pod's app label changed.
func relabel(c *cluster.Cluster, key, app string) *cluster.Cluster {
	pods := make([]*cluster.Pod, len(c.Pods))
	for i, p := range c.Pods {
		if p.Key() == key {
			cp := *p
			cp.Labels = labels.Set{}
			for k, v := range p.Labels {
				cp.Labels[k] = v
			}
			cp.Labels["app"] = app
			p = &cp
		}
		pods[i] = p
	}
	var nss []*cluster.Namespace
	for _, ns := range c.Namespaces {
		nss = append(nss, ns)
	}
	return cluster.New(nss, pods, c.Policies)
}

func render(c *cluster.Cluster, opts Options) *Model {
	return Render(policy.NewSet(c), opts)
}

// cnp builds a ClusterNetworkPolicy.
func cnp(name string, tier v1beta1.Tier, priority int32, subject v1beta1.ClusterNetworkPolicySubject) *cluster.ClusterPolicy {
	return &cluster.ClusterPolicy{Kind: cluster.KindCNP, APIVersion: cluster.PolicyAPIGroup + "/v1beta1", Name: name,
		Spec: v1beta1.ClusterNetworkPolicySpec{Tier: tier, Priority: priority, Subject: subject}}
}

func nsSubject(s *metav1.LabelSelector) v1beta1.ClusterNetworkPolicySubject {
	return v1beta1.ClusterNetworkPolicySubject{Namespaces: s}
}

func exists(key string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: metav1.LabelSelectorOpExists}}}
}

func tcpPort(n int32) v1beta1.ClusterNetworkPolicyProtocol {
	return v1beta1.ClusterNetworkPolicyProtocol{TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Number: n}}}
}

func udpPort(n int32) v1beta1.ClusterNetworkPolicyProtocol {
	return v1beta1.ClusterNetworkPolicyProtocol{UDP: &v1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &v1beta1.Port{Number: n}}}
}

// guardrailsCluster is a small dual-stack platform with guardrails (as
// examples/cluster-guardrails): the Admin tier denies the cloud metadata
// endpoint, protects a payments namespace, limits monitoring on the
// nodes, passes web traffic between tenants to their NetworkPolicies and
// denies them the rest; the
// Baseline tier allows tenants DNS and payments and denies them the
// rest; team-a opens its web front end with a NetworkPolicy.
func guardrailsCluster() *cluster.Cluster {
	nss := []*cluster.Namespace{
		{Name: "payments", Labels: labels.Set{"security": "restricted"}, Defined: true},
		{Name: "team-a", Labels: labels.Set{"tenant": "a"}, Defined: true},
		{Name: "team-b", Labels: labels.Set{"tenant": "b"}, Defined: true},
		{Name: "kube-system", Defined: true},
		{Name: "monitoring", Defined: true},
	}
	pods := []*cluster.Pod{
		withPorts(pod("payments", "api-0", "node-1", map[string]string{"app": "payments-api"}, "10.244.0.10", "fd00:244::10"), cport("https", tcp, 8443), cport("metrics", tcp, 9090)),
		withPorts(pod("team-a", "checkout-0", "node-1", map[string]string{"app": "checkout"}, "10.244.0.20"), cport("http", tcp, 8080)),
		withPorts(pod("team-a", "web-0", "node-1", map[string]string{"app": "web"}, "10.244.0.21", "fd00:244::21"), cport("http", tcp, 80)),
		pod("team-b", "client-0", "node-1", map[string]string{"app": "client"}, "10.244.0.30"),
		withPorts(pod("kube-system", "coredns-0", "node-1", map[string]string{"k8s-app": "kube-dns"}, "10.244.0.53", "fd00:244::53"), cport("dns", udp, 53), cport("dns-tcp", tcp, 53)),
		pod("monitoring", "prometheus-0", "node-1", map[string]string{"app": "prometheus"}, "10.244.0.90"),
		{Namespace: "monitoring", Name: "node-exporter", NodeName: "node-1", HostNetwork: true, Phase: corev1.PodRunning,
			Labels: labels.Set{"app": "node-exporter"}, IPs: []netip.Addr{netip.MustParseAddr("172.18.0.2")}, Ports: []cluster.ContainerPort{cport("metrics", tcp, 9100)}},
	}
	nodes := []*cluster.Node{{Name: "node-1", Labels: labels.Set{"role": "worker"}, Addrs: []netip.Addr{netip.MustParseAddr("172.18.0.2")}}}

	metadata := cnp("block-cloud-metadata", v1beta1.AdminTier, 5, nsSubject(&metav1.LabelSelector{}))
	metadata.Spec.Egress = []v1beta1.ClusterNetworkPolicyEgressRule{{Name: "cloud-metadata", Action: v1beta1.ClusterNetworkPolicyRuleActionDeny,
		To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Networks: []v1beta1.CIDR{"169.254.169.254/32", "fd00:ec2::254/128"}}}}}
	payments := cnp("protect-payments", v1beta1.AdminTier, 10, nsSubject(sel("security", "restricted")))
	payments.Spec.Ingress = []v1beta1.ClusterNetworkPolicyIngressRule{
		{Name: "checkout-to-api", Action: v1beta1.ClusterNetworkPolicyRuleActionAccept,
			From:      []v1beta1.ClusterNetworkPolicyIngressPeer{{Pods: &v1beta1.NamespacedPod{NamespaceSelector: *sel("tenant", "a"), PodSelector: *sel("app", "checkout")}}},
			Protocols: []v1beta1.ClusterNetworkPolicyProtocol{tcpPort(8443)}},
		{Name: "prometheus-scrapes", Action: v1beta1.ClusterNetworkPolicyRuleActionAccept,
			From:      []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: sel(cluster.MetadataNameLabel, "monitoring")}},
			Protocols: []v1beta1.ClusterNetworkPolicyProtocol{{DestinationNamedPort: "metrics"}}},
		{Name: "everyone-else", Action: v1beta1.ClusterNetworkPolicyRuleActionDeny,
			From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{}}}},
	}
	monitoring := cnp("monitoring-to-nodes", v1beta1.AdminTier, 30, nsSubject(sel(cluster.MetadataNameLabel, "monitoring")))
	monitoring.Spec.Egress = []v1beta1.ClusterNetworkPolicyEgressRule{
		{Name: "node-exporter", Action: v1beta1.ClusterNetworkPolicyRuleActionAccept,
			To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Nodes: &metav1.LabelSelector{}}}, Protocols: []v1beta1.ClusterNetworkPolicyProtocol{tcpPort(9100)}},
		{Name: "other-host-ports", Action: v1beta1.ClusterNetworkPolicyRuleActionDeny,
			To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Nodes: &metav1.LabelSelector{}}}},
	}
	delegate := cnp("delegate-to-tenants", v1beta1.AdminTier, 50, nsSubject(exists("tenant")))
	delegate.Spec.Ingress = []v1beta1.ClusterNetworkPolicyIngressRule{
		{Name: "web-from-tenants", Action: v1beta1.ClusterNetworkPolicyRuleActionPass,
			From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: exists("tenant")}}, Protocols: []v1beta1.ClusterNetworkPolicyProtocol{tcpPort(80), tcpPort(8080)}},
		{Name: "nothing-else-from-tenants", Action: v1beta1.ClusterNetworkPolicyRuleActionDeny,
			From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: exists("tenant")}}},
	}
	baseline := cnp("tenant-baseline", v1beta1.BaselineTier, 100, nsSubject(exists("tenant")))
	baseline.Spec.Egress = []v1beta1.ClusterNetworkPolicyEgressRule{
		{Name: "dns", Action: v1beta1.ClusterNetworkPolicyRuleActionAccept,
			To:        []v1beta1.ClusterNetworkPolicyEgressPeer{{Pods: &v1beta1.NamespacedPod{NamespaceSelector: *sel(cluster.MetadataNameLabel, "kube-system"), PodSelector: *sel("k8s-app", "kube-dns")}}},
			Protocols: []v1beta1.ClusterNetworkPolicyProtocol{udpPort(53), tcpPort(53)}},
		{Name: "payments-api", Action: v1beta1.ClusterNetworkPolicyRuleActionAccept,
			To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Namespaces: sel("security", "restricted")}}},
		{Name: "deny-the-rest", Action: v1beta1.ClusterNetworkPolicyRuleActionDeny,
			To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Namespaces: &metav1.LabelSelector{}}}},
	}
	webOpen := netpol("team-a", "web-open", sel("app", "web"), typeIn)
	ingress(webOpen, nil)
	denyB := netpol("team-b", "default-deny-ingress", nil, typeIn)
	return cluster.NewWith(cluster.Parts{Namespaces: nss, Pods: pods, Policies: []*networkingv1.NetworkPolicy{webOpen, denyB},
		ClusterPolicies: []*cluster.ClusterPolicy{metadata, payments, monitoring, delegate, baseline}, Nodes: nodes})
}
