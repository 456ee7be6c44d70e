package synth

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Shape of the generated policies.
const (
	baselineShare     = 0.35 // at most this share of policies are per-namespace baselines
	denyFraction      = 0.75 // namespaces that get a default deny in the baseline pass
	staleFraction     = 0.03 // selectors for apps that do not exist
	implicitFraction  = 0.35 // policies that omit policyTypes where that means the same
	footgunFraction   = 0.02 // egress-only policies that omit policyTypes (so also isolate ingress)
	v6CounterpartProb = 0.5  // with IPv6, ipBlock peers that get an IPv6 twin
)

type policyKind struct {
	name string
	fn   func(g *gen, ni *nsInfo) *networkingv1.NetworkPolicy
}

// policyKinds is the mix of policies generated after the baseline pass.
var policyKinds = []weighted[policyKind]{
	{policyKind{"app-from-app", (*gen).polAppFromApp}, 18},
	{policyKind{"from-namespaces", (*gen).polFromNamespaces}, 9},
	{policyKind{"cross-namespace", (*gen).polCrossNamespace}, 9},
	{policyKind{"multi-peer", (*gen).polMultiPeer}, 7},
	{policyKind{"same-namespace", (*gen).polSameNamespace}, 3},
	{policyKind{"ipblock-ingress", (*gen).polIPBlockIngress}, 6},
	{policyKind{"egress-to-app", (*gen).polEgressToApp}, 10},
	{policyKind{"egress-external", (*gen).polEgressExternal}, 5},
	{policyKind{"egress-dns", (*gen).polEgressDNS}, 3},
	{policyKind{"monitoring", (*gen).polMonitoring}, 5},
	{policyKind{"ingress-controller", (*gen).polIngressController}, 4},
	{policyKind{"port-range", (*gen).polPortRange}, 4},
	{policyKind{"ingress-egress", (*gen).polIngressEgress}, 6},
	{policyKind{"allow-all", (*gen).polAllowAll}, 2},
	{policyKind{"deny-app", (*gen).polDenyApp}, 3},
	{policyKind{"udp-sctp", (*gen).polUDPSCTP}, 3},
	{policyKind{"tier-expressions", (*gen).polTierExpressions}, 3},
}

// policies generates g.cfg.Policies policies: a few for the system
// namespaces, a baseline (default deny, DNS egress, same-namespace) for
// many application namespaces, then a weighted mix spread over namespaces
// by their number of workloads.
func (g *gen) policies() {
	n := g.cfg.Policies
	if n == 0 || len(g.ns) == 0 {
		return
	}
	left := n
	add := func(ni *nsInfo, p *networkingv1.NetworkPolicy) {
		if left == 0 {
			return
		}
		left--
		ni.policies = append(ni.policies, p)
	}

	if n >= 10 {
		add(g.ns[0], g.polKubeDNS(g.ns[0]))
		if g.ingNS != nil {
			add(g.ingNS, g.polIngressNginx(g.ingNS))
		}
		if g.promNS != nil {
			add(g.promNS, g.polPrometheus(g.promNS))
		}
	}

	baseline := int(float64(n) * baselineShare)
	for _, i := range g.r.Perm(len(g.appNS)) {
		if baseline <= 0 || left == 0 {
			break
		}
		ni := g.appNS[i]
		if !g.chance(denyFraction) {
			continue
		}
		before := left
		add(ni, g.polDefaultDeny(ni))
		if ni.denyEgress && g.chance(0.9) {
			add(ni, g.polEgressDNS(ni))
		}
		if g.chance(0.2) {
			add(ni, g.polSameNamespace(ni))
		}
		baseline -= before - left
	}

	cum := make([]float64, len(g.appNS))
	total := 0.0
	for i, ni := range g.appNS {
		total += float64(len(ni.workloads)) + 1
		cum[i] = total
	}
	for left > 0 {
		ni := g.appNS[searchFloat(cum, g.r.Float64()*total)]
		k := pick(g.r, policyKinds)
		add(ni, k.fn(g, ni))
	}
	g.collectPolicies()
}

// newPolicy returns an empty policy in ni named after base, made unique.
func (g *gen) newPolicy(ni *nsInfo, base string) *networkingv1.NetworkPolicy {
	name := base
	for i := 2; ni.polNames[name]; i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	ni.polNames[name] = true
	return &networkingv1.NetworkPolicy{
		TypeMeta:   typeMeta("networking.k8s.io/v1", "NetworkPolicy"),
		ObjectMeta: objectMeta(name, ni.name, nil),
	}
}

// setTypes fills in policyTypes, leaving them implicit sometimes where
// the API's default means the same (and, rarely, for an egress-only
// policy, where the default also isolates ingress: a common mistake).
func (g *gen) setTypes(p *networkingv1.NetworkPolicy, ingress, egress bool) {
	s := &p.Spec
	implicitSame := ingress && (!egress || len(s.Egress) > 0)
	if implicitSame && g.chance(implicitFraction) {
		return
	}
	if !ingress && egress && len(s.Egress) > 0 && g.chance(footgunFraction) {
		return
	}
	if ingress {
		s.PolicyTypes = append(s.PolicyTypes, networkingv1.PolicyTypeIngress)
	}
	if egress {
		s.PolicyTypes = append(s.PolicyTypes, networkingv1.PolicyTypeEgress)
	}
}

// Selectors.

func labelSel(kv ...string) *metav1.LabelSelector {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func req(key string, op metav1.LabelSelectorOperator, vals ...string) metav1.LabelSelectorRequirement {
	return metav1.LabelSelectorRequirement{Key: key, Operator: op, Values: vals}
}

func exprSel(reqs ...metav1.LabelSelectorRequirement) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: reqs}
}

// pickWorkload returns a workload of ni, or a made-up one when ni has none
// or, rarely, to model a policy for an application that no longer exists.
func (g *gen) pickWorkload(ni *nsInfo) *workload {
	if len(ni.workloads) == 0 || g.chance(staleFraction) {
		t := pick(g.r, templates)
		name := "legacy-" + oneOf(g.r, prefixes) + "-" + t.role
		return &workload{ns: ni, name: name, app: name, tier: t.tier, tmpl: t, ports: t.ports,
			labels: map[string]string{"app": name, "tier": t.tier}}
	}
	return oneOf(g.r, ni.workloads)
}

// pickOtherWorkload returns a workload of ni other than w if there is one.
func (g *gen) pickOtherWorkload(ni *nsInfo, w *workload) *workload {
	for range 3 {
		o := g.pickWorkload(ni)
		if o.app != w.app {
			return o
		}
	}
	return g.pickWorkload(ni)
}

// pickOtherNS returns a namespace other than ni, preferring ones with
// workloads; ni itself when it is the only one.
func (g *gen) pickOtherNS(ni *nsInfo) *nsInfo {
	if len(g.ns) == 1 {
		return ni
	}
	var o *nsInfo
	for range 4 {
		o = oneOf(g.r, g.ns)
		if o != ni && len(o.workloads) > 0 {
			return o
		}
	}
	if o == ni {
		o = g.ns[(ni.idx+1)%len(g.ns)]
	}
	return o
}

// idSel returns the labels that identify w's pods.
func idSel(w *workload) *metav1.LabelSelector {
	if w.tmpl != nil || w.app != "" {
		return labelSel("app", w.app)
	}
	m := map[string]string{}
	for k, v := range w.labels {
		if k != podTemplateHashLabel && k != controllerRevisionLabel {
			m[k] = v
		}
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

// appSel returns a selector for w's pods in one of the ways people write
// them.
func (g *gen) appSel(ni *nsInfo, w *workload) *metav1.LabelSelector {
	if w.tmpl == nil {
		return idSel(w)
	}
	x := g.r.Float64()
	switch {
	case x < 0.60:
		return labelSel("app", w.app)
	case x < 0.70:
		return labelSel("app", w.app, "tier", w.tier)
	case x < 0.78:
		s := labelSel("app", w.app)
		s.MatchExpressions = []metav1.LabelSelectorRequirement{req("track", metav1.LabelSelectorOpNotIn, "canary")}
		return s
	case x < 0.86:
		o := g.pickOtherWorkload(ni, w)
		if o.app == w.app {
			return exprSel(req("app", metav1.LabelSelectorOpIn, w.app))
		}
		return exprSel(req("app", metav1.LabelSelectorOpIn, w.app, o.app))
	case x < 0.93:
		return labelSel("tier", w.tier)
	case x < 0.97:
		if v := w.labels["version"]; v != "" {
			return labelSel("app", w.app, "version", v)
		}
		return labelSel("app", w.app)
	default:
		return exprSel(req("tier", metav1.LabelSelectorOpIn, w.tier), req("app", metav1.LabelSelectorOpExists))
	}
}

// nsSel returns a namespace selector aimed at o, in one of the ways people
// write them, using every operator.
func (g *gen) nsSel(o *nsInfo) *metav1.LabelSelector {
	team, env := o.team, o.env
	if team == "" {
		team, env = pick(g.r, teams), "prod"
	}
	x := g.r.Float64()
	switch {
	case x < 0.25:
		return labelSel(metadataName, o.name)
	case x < 0.40:
		return labelSel("team", team)
	case x < 0.50:
		return labelSel("team", team, "env", env)
	case x < 0.58:
		return exprSel(req("env", metav1.LabelSelectorOpIn, "prod", "staging"))
	case x < 0.64:
		return exprSel(req("env", metav1.LabelSelectorOpNotIn, "dev"))
	case x < 0.69:
		return exprSel(req("team", metav1.LabelSelectorOpExists))
	case x < 0.74:
		s := labelSel("team", team)
		s.MatchExpressions = []metav1.LabelSelectorRequirement{req("istio-injection", metav1.LabelSelectorOpDoesNotExist)}
		return s
	case x < 0.79:
		return exprSel(req("purpose", metav1.LabelSelectorOpDoesNotExist), req("env", metav1.LabelSelectorOpIn, env))
	case x < 0.84:
		return &metav1.LabelSelector{}
	case x < 0.90:
		other := pick(g.r, teams)
		if other == team {
			return exprSel(req("team", metav1.LabelSelectorOpIn, team))
		}
		return exprSel(req("team", metav1.LabelSelectorOpIn, team, other))
	case x < 0.95:
		return exprSel(req("compliance", metav1.LabelSelectorOpExists), req("env", metav1.LabelSelectorOpNotIn, "dev", "staging"))
	default:
		return labelSel("env", env)
	}
}

// Ports.

func protoPtr(p corev1.Protocol) *corev1.Protocol { return &p }

func numPort(proto corev1.Protocol, n int32) networkingv1.NetworkPolicyPort {
	v := intstr.FromInt32(n)
	return networkingv1.NetworkPolicyPort{Protocol: protoPtr(proto), Port: &v}
}

func namedPort(proto corev1.Protocol, name string) networkingv1.NetworkPolicyPort {
	v := intstr.FromString(name)
	return networkingv1.NetworkPolicyPort{Protocol: protoPtr(proto), Port: &v}
}

func rangePort(proto corev1.Protocol, from, to int32) networkingv1.NetworkPolicyPort {
	p := numPort(proto, from)
	p.EndPort = &to
	return p
}

// portsFor returns the ports of a rule allowing traffic to w: by name, by
// number, both, or none (all ports).
func (g *gen) portsFor(w *workload) []networkingv1.NetworkPolicyPort {
	if len(w.ports) == 0 {
		if g.chance(0.5) {
			return []networkingv1.NetworkPolicyPort{numPort(corev1.ProtocolTCP, 8080)}
		}
		return nil
	}
	main := w.ports[0]
	asPort := func(p port, named bool) networkingv1.NetworkPolicyPort {
		if named {
			pp := namedPort(p.proto, p.name)
			if p.proto == corev1.ProtocolTCP && g.chance(0.3) {
				pp.Protocol = nil // defaults to TCP
			}
			return pp
		}
		return numPort(p.proto, p.num)
	}
	x := g.r.Float64()
	switch {
	case x < 0.40:
		return []networkingv1.NetworkPolicyPort{asPort(main, true)}
	case x < 0.70:
		return []networkingv1.NetworkPolicyPort{asPort(main, false)}
	case x < 0.85:
		ps := []networkingv1.NetworkPolicyPort{asPort(main, g.chance(0.5))}
		for _, p := range w.ports[1:] {
			ps = append(ps, asPort(p, g.chance(0.5)))
		}
		return ps
	default:
		return nil
	}
}

// metricsPort returns the port prometheus scrapes on w's pods.
func metricsPort(w *workload) (port, bool) {
	for _, p := range w.ports {
		if p.name == "metrics" {
			return p, true
		}
	}
	return port{}, false
}

// IP blocks.

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func ipBlock(cidr netip.Prefix, except ...netip.Prefix) *networkingv1.IPBlock {
	b := &networkingv1.IPBlock{CIDR: cidr.String()}
	for _, e := range except {
		b.Except = append(b.Except, e.String())
	}
	return b
}

// randomBlock returns an allocated address block and a used host in it.
func (g *gen) randomBlock() (*block, int, bool) {
	if len(g.ipam.blocks) == 0 {
		return nil, 0, false
	}
	b := oneOf(g.r, g.ipam.blocks)
	return b, firstHost + g.r.IntN(b.used), true
}

// podSpaceBlock returns an IPv4 ipBlock that cuts through pod addresses,
// so that pods fall on both sides of it.
func (g *gen) podSpaceBlock() *networkingv1.IPBlock {
	b, h, ok := g.randomBlock()
	if !ok {
		return ipBlock(pfx("10.244.0.0/16"), pfx("10.244.0.0/24"))
	}
	p := blockPrefix4(b.index)
	switch g.r.IntN(5) {
	case 0:
		ex := []netip.Prefix{p}
		if o, _, _ := g.randomBlock(); o.index != b.index {
			ex = append(ex, blockPrefix4(o.index))
		}
		return ipBlock(pfx("10.0.0.0/8"), ex...)
	case 1:
		return ipBlock(netip.PrefixFrom(p.Addr(), 16).Masked(), p)
	case 2:
		return ipBlock(p, netip.PrefixFrom(hostAddr(p, h), 32))
	case 3:
		return ipBlock(p, netip.PrefixFrom(hostAddr(p, 64), 26))
	default:
		return ipBlock(netip.PrefixFrom(p.Addr(), 23).Masked(), p)
	}
}

// externalBlock returns an IPv4 ipBlock outside the pod range (or the
// whole internet minus private ranges).
func (g *gen) externalBlock() *networkingv1.IPBlock {
	switch g.r.IntN(7) {
	case 0, 1:
		return ipBlock(pfx("0.0.0.0/0"), pfx("10.0.0.0/8"), pfx("172.16.0.0/12"), pfx("192.168.0.0/16"))
	case 2:
		return ipBlock(pfx("203.0.113.0/24"))
	case 3:
		return ipBlock(pfx("198.51.100.0/24"))
	case 4:
		return ipBlock(pfx("192.0.2.0/24"), pfx("192.0.2.128/25"))
	case 5:
		return ipBlock(pfx("100.64.0.0/10"), pfx("100.64.0.0/16"))
	default:
		return ipBlock(pfx("172.16.0.0/12"), pfx("172.18.0.0/16"))
	}
}

// v6Block returns an IPv6 ipBlock, inside or outside the pod range.
func (g *gen) v6Block() *networkingv1.IPBlock {
	b, h, ok := g.randomBlock()
	x := g.r.IntN(6)
	if !ok && x < 3 {
		x += 3
	}
	switch x {
	case 0:
		return ipBlock(podCIDRv6, blockPrefix6(b.index))
	case 1:
		p := blockPrefix6(b.index)
		return ipBlock(p, netip.PrefixFrom(hostAddr(p, h), 128))
	case 2:
		return ipBlock(pfx("fd00::/8"), podCIDRv6)
	case 3:
		return ipBlock(pfx("::/0"), pfx("fd00::/8"))
	case 4:
		return ipBlock(pfx("2001:db8::/32"), pfx("2001:db8:ffff::/48"))
	default:
		return ipBlock(pfx("2001:db8:1::/48"))
	}
}

// blockPeers returns one ipBlock peer (pod-space or external), plus an
// IPv6 one sometimes when the cluster is dual-stack.
func (g *gen) blockPeers(podSpace bool) []networkingv1.NetworkPolicyPeer {
	var b *networkingv1.IPBlock
	if podSpace {
		b = g.podSpaceBlock()
	} else {
		b = g.externalBlock()
	}
	peers := []networkingv1.NetworkPolicyPeer{{IPBlock: b}}
	if g.cfg.IPv6 && g.chance(v6CounterpartProb) {
		peers = append(peers, networkingv1.NetworkPolicyPeer{IPBlock: g.v6Block()})
	}
	return peers
}

// dnsRule allows egress to kube-dns on 53/UDP and 53/TCP (by number or
// by name).
func (g *gen) dnsRule() networkingv1.NetworkPolicyEgressRule {
	peer := networkingv1.NetworkPolicyPeer{
		NamespaceSelector: labelSel(metadataName, "kube-system"),
		PodSelector:       labelSel("k8s-app", "kube-dns"),
	}
	var ports []networkingv1.NetworkPolicyPort
	if g.chance(0.8) {
		ports = []networkingv1.NetworkPolicyPort{numPort(corev1.ProtocolUDP, 53), numPort(corev1.ProtocolTCP, 53)}
	} else {
		ports = []networkingv1.NetworkPolicyPort{namedPort(corev1.ProtocolUDP, "dns"), namedPort(corev1.ProtocolTCP, "dns-tcp")}
	}
	if g.chance(0.1) {
		// Any namespace's DNS pods, e.g. node-local caches.
		peer.NamespaceSelector = &metav1.LabelSelector{}
	}
	return networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{peer}, Ports: ports}
}

// Policies for the system namespaces.

func (g *gen) polKubeDNS(ni *nsInfo) *networkingv1.NetworkPolicy {
	p := g.newPolicy(ni, "allow-dns")
	p.Spec.PodSelector = *labelSel("k8s-app", "kube-dns")
	p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
		From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}},
		Ports: []networkingv1.NetworkPolicyPort{numPort(corev1.ProtocolUDP, 53), numPort(corev1.ProtocolTCP, 53)},
	}}
	p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	return p
}

func (g *gen) polIngressNginx(ni *nsInfo) *networkingv1.NetworkPolicy {
	p := g.newPolicy(ni, "allow-public-http")
	p.Spec.PodSelector = *labelSel("app.kubernetes.io/name", "ingress-nginx")
	from := []networkingv1.NetworkPolicyPeer{{IPBlock: ipBlock(pfx("0.0.0.0/0"))}}
	if g.cfg.IPv6 {
		from = append(from, networkingv1.NetworkPolicyPeer{IPBlock: ipBlock(pfx("::/0"))})
	}
	p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
		From:  from,
		Ports: []networkingv1.NetworkPolicyPort{namedPort(corev1.ProtocolTCP, "http"), namedPort(corev1.ProtocolTCP, "https")},
	}}
	g.setTypes(p, true, false)
	return p
}

func (g *gen) polPrometheus(ni *nsInfo) *networkingv1.NetworkPolicy {
	p := g.newPolicy(ni, "prometheus")
	p.Spec.PodSelector = *labelSel("app.kubernetes.io/name", "prometheus")
	p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
		From:  []networkingv1.NetworkPolicyPeer{{PodSelector: labelSel("app.kubernetes.io/name", "grafana")}},
		Ports: []networkingv1.NetworkPolicyPort{namedPort(corev1.ProtocolTCP, "web")},
	}}
	p.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{}}
	g.setTypes(p, true, true)
	return p
}

// Baseline policies.

func (g *gen) polDefaultDeny(ni *nsInfo) *networkingv1.NetworkPolicy {
	x := g.r.Float64()
	var p *networkingv1.NetworkPolicy
	switch {
	case x < 0.5:
		p = g.newPolicy(ni, "default-deny-ingress")
		g.setTypes(p, true, false)
		ni.denyIngress = true
	case x < 0.85:
		p = g.newPolicy(ni, "default-deny-all")
		g.setTypes(p, true, true)
		ni.denyIngress, ni.denyEgress = true, true
	default:
		p = g.newPolicy(ni, "default-deny-egress")
		g.setTypes(p, false, true)
		ni.denyEgress = true
	}
	return p
}

func (g *gen) polEgressDNS(ni *nsInfo) *networkingv1.NetworkPolicy {
	p := g.newPolicy(ni, "allow-dns-egress")
	p.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{g.dnsRule()}
	g.setTypes(p, false, true)
	return p
}

func (g *gen) polSameNamespace(ni *nsInfo) *networkingv1.NetworkPolicy {
	p := g.newPolicy(ni, "allow-same-namespace")
	p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
		From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}},
	}}
	g.setTypes(p, true, false)
	return p
}

// The policy mix.

func (g *gen) polAppFromApp(ni *nsInfo) *networkingv1.NetworkPolicy {
	w := g.pickWorkload(ni)
	src := g.pickOtherWorkload(ni, w)
	p := g.newPolicy(ni, "allow-"+w.name+"-from-"+src.name)
	p.Spec.PodSelector = *g.appSel(ni, w)
	p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
		From:  []networkingv1.NetworkPolicyPeer{{PodSelector: g.appSel(ni, src)}},
		Ports: g.portsFor(w),
	}}
	g.setTypes(p, true, false)
	return p
}

func (g *gen) polFromNamespaces(ni *nsInfo) *networkingv1.NetworkPolicy {
	w := g.pickWorkload(ni)
	o := g.pickOtherNS(ni)
	p := g.newPolicy(ni, "allow-"+w.name+"-from-namespaces")
	p.Spec.PodSelector = *g.appSel(ni, w)
	p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
		From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: g.nsSel(o)}},
		Ports: g.portsFor(w),
	}}
	g.setTypes(p, true, false)
	return p
}

func (g *gen) polCrossNamespace(ni *nsInfo) *networkingv1.NetworkPolicy {
	w := g.pickWorkload(ni)
	o := g.pickOtherNS(ni)
	src := g.pickWorkload(o)
	p := g.newPolicy(ni, "allow-"+w.name+"-from-"+o.name)
	p.Spec.PodSelector = *g.appSel(ni, w)
	nsSel := labelSel(metadataName, o.name)
	if g.chance(0.3) {
		nsSel = g.nsSel(o)
	}
	p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
		From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: nsSel, PodSelector: g.appSel(o, src)}},
		Ports: g.portsFor(w),
	}}
	g.setTypes(p, true, false)
	return p
}

func (g *gen) polMultiPeer(ni *nsInfo) *networkingv1.NetworkPolicy {
	w := g.pickWorkload(ni)
	p := g.newPolicy(ni, "allow-"+w.name+"-clients")
	p.Spec.PodSelector = *g.appSel(ni, w)
	rules := 1 + g.r.IntN(2)
	for range rules {
		var from []networkingv1.NetworkPolicyPeer
		for range 2 + g.r.IntN(3) {
			switch g.r.IntN(5) {
			case 0, 1:
				from = append(from, networkingv1.NetworkPolicyPeer{PodSelector: g.appSel(ni, g.pickOtherWorkload(ni, w))})
			case 2:
				from = append(from, networkingv1.NetworkPolicyPeer{NamespaceSelector: g.nsSel(g.pickOtherNS(ni))})
			case 3:
				o := g.pickOtherNS(ni)
				from = append(from, networkingv1.NetworkPolicyPeer{NamespaceSelector: g.nsSel(o), PodSelector: g.appSel(o, g.pickWorkload(o))})
			default:
				from = append(from, g.blockPeers(g.chance(0.5))...)
			}
		}
		p.Spec.Ingress = append(p.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: from, Ports: g.portsFor(w)})
	}
	g.setTypes(p, true, false)
	return p
}

func (g *gen) polIPBlockIngress(ni *nsInfo) *networkingv1.NetworkPolicy {
	w := g.pickWorkload(ni)
	podSpace := g.chance(0.5)
	base := "allow-" + w.name + "-from-external"
	if podSpace {
		base = "allow-" + w.name + "-from-cidr"
	}
	p := g.newPolicy(ni, base)
	p.Spec.PodSelector = *g.appSel(ni, w)
	p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: g.blockPeers(podSpace), Ports: g.portsFor(w)}}
	g.setTypes(p, true, false)
	return p
}

func (g *gen) polEgressToApp(ni *nsInfo) *networkingv1.NetworkPolicy {
	w := g.pickWorkload(ni)
	var dst *workload
	for range 4 {
		dst = g.pickOtherWorkload(ni, w)
		if dst.tier == "db" || dst.tier == "cache" || dst.tier == "queue" {
			break
		}
	}
	p := g.newPolicy(ni, "allow-"+w.name+"-to-"+dst.name)
	p.Spec.PodSelector = *g.appSel(ni, w)
	p.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{
		To:    []networkingv1.NetworkPolicyPeer{{PodSelector: g.appSel(ni, dst)}},
		Ports: g.portsFor(dst),
	}}
	if g.chance(0.4) {
		p.Spec.Egress = append(p.Spec.Egress, g.dnsRule())
	}
	g.setTypes(p, false, true)
	return p
}

func (g *gen) polEgressExternal(ni *nsInfo) *networkingv1.NetworkPolicy {
	w := g.pickWorkload(ni)
	p := g.newPolicy(ni, "allow-"+w.name+"-egress-external")
	if g.chance(0.8) {
		p.Spec.PodSelector = *g.appSel(ni, w)
	}
	ports := []networkingv1.NetworkPolicyPort{numPort(corev1.ProtocolTCP, 443)}
	switch g.r.IntN(4) {
	case 0:
		ports = append(ports, numPort(corev1.ProtocolTCP, 80))
	case 1:
		ports = append(ports, rangePort(corev1.ProtocolTCP, 30000, 32767))
	case 2:
		ports = append(ports, numPort(corev1.ProtocolUDP, 123)) // NTP
	}
	p.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{To: g.blockPeers(false), Ports: ports}}
	g.setTypes(p, false, true)
	return p
}

func (g *gen) polMonitoring(ni *nsInfo) *networkingv1.NetworkPolicy {
	p := g.newPolicy(ni, "allow-prometheus-scrape")
	var ports []networkingv1.NetworkPolicyPort
	if g.chance(0.5) {
		w := g.pickWorkload(ni)
		p.Spec.PodSelector = *g.appSel(ni, w)
		if mp, ok := metricsPort(w); ok {
			ports = []networkingv1.NetworkPolicyPort{numPort(mp.proto, mp.num)}
		}
	}
	if ports == nil {
		ports = []networkingv1.NetworkPolicyPort{namedPort(corev1.ProtocolTCP, "metrics")}
		if g.chance(0.3) {
			ports = append(ports, namedPort(corev1.ProtocolTCP, "http-envoy-prom"))
		}
	}
	nsSel := labelSel(metadataName, "monitoring")
	if g.chance(0.3) {
		nsSel = labelSel("purpose", "monitoring")
	}
	p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
		From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: nsSel, PodSelector: labelSel("app.kubernetes.io/name", "prometheus")}},
		Ports: ports,
	}}
	g.setTypes(p, true, false)
	return p
}

func (g *gen) polIngressController(ni *nsInfo) *networkingv1.NetworkPolicy {
	var w *workload
	for range 4 {
		w = g.pickWorkload(ni)
		if w.tier == "frontend" || w.tier == "edge" {
			break
		}
	}
	p := g.newPolicy(ni, "allow-ingress-nginx-to-"+w.name)
	p.Spec.PodSelector = *g.appSel(ni, w)
	ports := []networkingv1.NetworkPolicyPort{namedPort(corev1.ProtocolTCP, "http")}
	if g.chance(0.3) {
		ports = g.portsFor(w)
	}
	p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
		From: []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: labelSel(metadataName, "ingress-nginx"),
			PodSelector:       labelSel("app.kubernetes.io/name", "ingress-nginx", "app.kubernetes.io/component", "controller"),
		}},
		Ports: ports,
	}}
	g.setTypes(p, true, false)
	return p
}

// portRanges are endPort ranges people open.
var portRanges = []struct {
	proto    corev1.Protocol
	from, to int32
}{
	{corev1.ProtocolTCP, 8000, 8999},
	{corev1.ProtocolTCP, 30000, 32767},
	{corev1.ProtocolTCP, 9090, 9100},
	{corev1.ProtocolUDP, 10000, 20000},
	{corev1.ProtocolSCTP, 3868, 3870},
	{corev1.ProtocolTCP, 5432, 5433},
	{corev1.ProtocolTCP, 1, 1023},
}

func (g *gen) polPortRange(ni *nsInfo) *networkingv1.NetworkPolicy {
	w := g.pickWorkload(ni)
	p := g.newPolicy(ni, "allow-"+w.name+"-port-range")
	p.Spec.PodSelector = *g.appSel(ni, w)
	var ports []networkingv1.NetworkPolicyPort
	for range 1 + g.r.IntN(2) {
		r := oneOf(g.r, portRanges)
		ports = append(ports, rangePort(r.proto, r.from, r.to))
	}
	rule := networkingv1.NetworkPolicyIngressRule{Ports: ports}
	if g.chance(0.5) {
		rule.From = []networkingv1.NetworkPolicyPeer{{NamespaceSelector: g.nsSel(g.pickOtherNS(ni))}}
	}
	p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{rule}
	g.setTypes(p, true, false)
	return p
}

func (g *gen) polIngressEgress(ni *nsInfo) *networkingv1.NetworkPolicy {
	w := g.pickWorkload(ni)
	src := g.pickOtherWorkload(ni, w)
	dst := g.pickOtherWorkload(ni, w)
	p := g.newPolicy(ni, w.name)
	p.Spec.PodSelector = *g.appSel(ni, w)
	p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
		From:  []networkingv1.NetworkPolicyPeer{{PodSelector: g.appSel(ni, src)}},
		Ports: g.portsFor(w),
	}}
	p.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{
		To:    []networkingv1.NetworkPolicyPeer{{PodSelector: g.appSel(ni, dst)}},
		Ports: g.portsFor(dst),
	}, g.dnsRule()}
	g.setTypes(p, true, true)
	return p
}

func (g *gen) polAllowAll(ni *nsInfo) *networkingv1.NetworkPolicy {
	var p *networkingv1.NetworkPolicy
	if g.chance(0.5) {
		p = g.newPolicy(ni, "allow-all-ingress")
		p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}}
		g.setTypes(p, true, false)
	} else {
		p = g.newPolicy(ni, "allow-all-egress")
		p.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{}}
		g.setTypes(p, false, true)
	}
	if g.chance(0.5) {
		p.Spec.PodSelector = *g.appSel(ni, g.pickWorkload(ni))
	}
	return p
}

func (g *gen) polDenyApp(ni *nsInfo) *networkingv1.NetworkPolicy {
	w := g.pickWorkload(ni)
	p := g.newPolicy(ni, "isolate-"+w.name)
	p.Spec.PodSelector = *g.appSel(ni, w)
	g.setTypes(p, true, g.chance(0.4))
	return p
}

func (g *gen) polUDPSCTP(ni *nsInfo) *networkingv1.NetworkPolicy {
	switch g.r.IntN(3) {
	case 0:
		p := g.newPolicy(ni, "allow-statsd-egress")
		p.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{
			To: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: &metav1.LabelSelector{},
				PodSelector:       labelSel("tier", "monitoring"),
			}},
			Ports: []networkingv1.NetworkPolicyPort{numPort(corev1.ProtocolUDP, 8125)},
		}}
		g.setTypes(p, false, true)
		return p
	case 1:
		p := g.newPolicy(ni, "allow-diameter-peers")
		p.Spec.PodSelector = *labelSel("tier", "telecom")
		from := g.blockPeers(false)
		from = append(from, networkingv1.NetworkPolicyPeer{PodSelector: labelSel("tier", "telecom")})
		p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From:  from,
			Ports: []networkingv1.NetworkPolicyPort{namedPort(corev1.ProtocolSCTP, "diameter"), numPort(corev1.ProtocolSCTP, 3868)},
		}}
		g.setTypes(p, true, false)
		return p
	default:
		p := g.newPolicy(ni, "allow-sip")
		p.Spec.PodSelector = *exprSel(req("app", metav1.LabelSelectorOpExists), req("tier", metav1.LabelSelectorOpIn, "telecom"))
		p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From: g.blockPeers(g.chance(0.3)),
			Ports: []networkingv1.NetworkPolicyPort{namedPort(corev1.ProtocolUDP, "sip"), numPort(corev1.ProtocolTCP, 5060),
				rangePort(corev1.ProtocolUDP, 10000, 20000)},
		}}
		g.setTypes(p, true, false)
		return p
	}
}

func (g *gen) polTierExpressions(ni *nsInfo) *networkingv1.NetworkPolicy {
	tiers := [][2]string{{"backend", "frontend"}, {"db", "backend"}, {"cache", "backend"}, {"queue", "worker"}}
	t := oneOf(g.r, tiers)
	p := g.newPolicy(ni, "allow-"+t[0]+"-from-"+t[1])
	p.Spec.PodSelector = *exprSel(req("tier", metav1.LabelSelectorOpIn, t[0]), req("app", metav1.LabelSelectorOpExists))
	from := exprSel(req("tier", metav1.LabelSelectorOpIn, t[1], "edge"), req("track", metav1.LabelSelectorOpDoesNotExist))
	if g.chance(0.5) {
		from.MatchExpressions = append(from.MatchExpressions, req("version", metav1.LabelSelectorOpNotIn, "v1"))
	}
	p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: from}}}}
	g.setTypes(p, true, false)
	return p
}
