package nft

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
	"github.com/netfence/netfence/internal/randcluster"
)

// interpPorts are the protocols and ports TestModelMatchesEvaluate
// sends: those the random clusters' rules name, their neighbours, and
// ICMP (no port).
var interpPorts = []protoPort{{6, 80}, {6, 79}, {6, 78}, {6, 8080}, {6, 8199}, {6, 8200}, {17, 53}, {17, 80}, {132, 9000}, {132, 9002}, {1, 0}}

func k8sProto(n uint8) corev1.Protocol {
	if n == 1 {
		return "ICMP"
	}
	return policy.ProtocolOf(n)
}

// TestModelMatchesEvaluate holds the rendered ruleset to the analyzer
// without root: on random clusters with cluster policies of both tiers
// (and on NetworkPolicy-only ones), every local pod's packets to and
// from every pod address, node address and outside address, on every
// port, pass the interpreted ruleset exactly when Set.Evaluate allows the
// flow. The node's own traffic (host-network sources) crosses no hook of
// netfence's and is left out.
func TestModelMatchesEvaluate(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 80
	}
	r := rand.New(rand.NewPCG(21, 7))
	external := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("10.244.0.1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("fd00:10:244::1"),
		netip.MustParseAddr("10.7.255.254"), netip.MustParseAddr("192.168.0.4"), netip.MustParseAddr("fd00:7::ffff"), netip.MustParseAddr("fd00:168::4")}
	// Then snapshots of churning clusters with cluster policies: pods
	// sharing addresses (denied everything), host-network pods on node
	// addresses, nodes changing.
	var churned []*cluster.Cluster
	for seed := uint64(0); seed < 3; seed++ {
		ch := newTierChurn(100 + seed)
		for step := 0; step < 30; step++ {
			ch.mutate()
			churned = append(churned, ch.cluster())
		}
	}
	flows, allowed, tiered, conflicted := 0, 0, 0, 0
	for i := 0; i < n+len(churned); i++ {
		var c *cluster.Cluster
		if i < n {
			c = randcluster.New(r, i, randcluster.Options{ClusterPolicies: i%4 != 3})
		} else {
			c = churned[i-n]
			if len(c.Conflicts()) > 0 {
				conflicted++
			}
		}
		s := policy.NewSet(c)
		if len(s.Rejected) > 0 && i < n {
			t.Fatalf("cluster %d: rejected %v", i, s.Rejected)
		}
		ropts := Options{AllLocal: true}
		if i%2 == 0 {
			ropts.Deny = DenyReject
		}
		m := Render(s, ropts)
		checkModel(t, m)
		in := newInterp(m)
		if len(s.ClusterPolicies) > 0 {
			tiered++
		}
		var addrs []netip.Addr
		for _, p := range c.Pods {
			if ok, _ := p.Active(); ok {
				addrs = append(addrs, p.IPs...)
			}
		}
		for _, a := range external {
			// Outside addresses only: not an inactive pod's either.
			if c.PodByIP(a) == nil {
				addrs = append(addrs, a)
			}
		}
		for _, src := range addrs {
			sp := c.PodByIP(src)
			if sp != nil && sp.HostNetwork {
				continue // the node's own traffic: output hook
			}
			for _, dst := range addrs {
				dp := c.PodByIP(dst)
				if src.Is4() != dst.Is4() || src == dst || (sp != nil && sp == dp) || (sp == nil && dp == nil) {
					continue
				}
				if _, own := s.FromOwnNode(policy.Endpoint{Pod: sp, IP: src}, dp); own {
					continue // from the destination's own node: output hook
				}
				h := hookForward
				if dp != nil && dp.HostNetwork {
					h = hookInput
				}
				for _, pp := range interpPorts {
					want := s.Evaluate(s.AddrFlow(src, dst, k8sProto(pp.proto), int32(pp.port)))
					got, trace, err := in.allowed(packet{src: src, dst: dst, proto: pp.proto, port: pp.port}, h)
					if err != nil {
						t.Fatalf("cluster %d: %s -> %s %s: %v", i, src, dst, pp, err)
					}
					flows++
					if want.Allowed {
						allowed++
					}
					if got != want.Allowed {
						t.Errorf("cluster %d: %s (%s) -> %s (%s) %s: ruleset %v via %v, analyzer %v\n  egress: %s\n  ingress: %s",
							i, src, podName(sp), dst, podName(dp), pp, got, trace, want.Allowed, want.Egress.Reason, want.Ingress.Reason)
					}
				}
			}
		}
		if t.Failed() {
			t.Log(randcluster.Describe(c))
			t.Logf("ruleset:\n%s", m.Text())
			t.FailNow()
		}
	}
	t.Logf("%d clusters (%d with cluster policies, %d with pods sharing an address), %d flows, %d allowed", n+len(churned), tiered, conflicted, flows, allowed)
	if allowed == 0 || allowed == flows || conflicted == 0 {
		t.Fatal("the flows are all allowed or all denied, or no pods share an address: the test says nothing")
	}
}

func podName(p *cluster.Pod) string {
	if p == nil {
		return "external"
	}
	return p.Key()
}

// newTierChurn is a churn (see newChurn) with cluster policies of both
// tiers and nodes, which change too: policies added, edited, removed,
// reprioritised, nodes relabelled and readdressed.
func newTierChurn(seed uint64) *churn {
	ch := newChurn(seed)
	ch.tiers = true
	for i := 0; i < 3; i++ {
		ch.nodes = append(ch.nodes, ch.newNode(fmt.Sprintf("node-%d", i)))
	}
	for i := 0; i < 6; i++ {
		ch.cnps = append(ch.cnps, ch.newCNP(fmt.Sprintf("cnp-%d", i)))
	}
	return ch
}

func (ch *churn) newNode(name string) *cluster.Node {
	n := &cluster.Node{Name: name, Labels: labels.Set{"role": ch.pick("worker", "worker", "control-plane")}}
	n.Addrs = []netip.Addr{netip.MustParseAddr("192.168.0." + fmt.Sprint(1+ch.r.IntN(4)))}
	if ch.r.IntN(2) == 0 {
		n.Addrs = append(n.Addrs, netip.MustParseAddr(fmt.Sprintf("fd00:168::%x", 1+ch.r.IntN(4))))
	}
	return n
}

func (ch *churn) cnpSelector(key string, values ...string) *metav1.LabelSelector {
	switch ch.r.IntN(4) {
	case 0:
		return &metav1.LabelSelector{}
	case 1:
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: metav1.LabelSelectorOpIn, Values: []string{ch.pick(values...), ch.pick(values...)}}}}
	}
	return &metav1.LabelSelector{MatchLabels: map[string]string{key: ch.pick(values...)}}
}

func (ch *churn) cnpPods() *v1beta1.NamespacedPod {
	return &v1beta1.NamespacedPod{NamespaceSelector: *ch.cnpSelector("team", churnTeams...), PodSelector: *ch.cnpSelector("app", "web", "db", "api", "cache")}
}

func (ch *churn) cnpProtocols(named bool) []v1beta1.ClusterNetworkPolicyProtocol {
	var out []v1beta1.ClusterNetworkPolicyProtocol
	for k := ch.r.IntN(3); k > 0; k-- {
		var p v1beta1.ClusterNetworkPolicyProtocol
		switch ch.r.IntN(6) {
		case 0:
			p.TCP = &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Number: 8080}}
		case 1:
			p.TCP = &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Range: &v1beta1.PortRange{Start: 8000, End: 8100}}}
		case 2:
			p.UDP = &v1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &v1beta1.Port{Number: 53}}
		case 3:
			p.SCTP = &v1beta1.ClusterNetworkPolicyProtocolSCTP{DestinationPort: &v1beta1.Port{Number: 9000}}
		case 4:
			if named {
				p.DestinationNamedPort = ch.pick("http", "dns", "db")
			} else {
				p.TCP = &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Number: 5432}}
			}
		case 5:
			p.TCP = &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Number: 5432}}
		}
		out = append(out, p)
	}
	return out
}

var cnpActions = []v1beta1.ClusterNetworkPolicyRuleAction{v1beta1.ClusterNetworkPolicyRuleActionAccept, v1beta1.ClusterNetworkPolicyRuleActionDeny, v1beta1.ClusterNetworkPolicyRuleActionPass}

func (ch *churn) newCNP(name string) *cluster.ClusterPolicy {
	r := ch.r
	spec := v1beta1.ClusterNetworkPolicySpec{Tier: v1beta1.AdminTier, Priority: int32(r.IntN(4))}
	if r.IntN(2) == 0 {
		spec.Tier = v1beta1.BaselineTier
	}
	if r.IntN(2) == 0 {
		spec.Subject.Namespaces = ch.cnpSelector("team", churnTeams...)
	} else {
		spec.Subject.Pods = ch.cnpPods()
	}
	for k := r.IntN(3); k > 0; k-- {
		rule := v1beta1.ClusterNetworkPolicyIngressRule{Action: cnpActions[r.IntN(3)], Protocols: ch.cnpProtocols(true)}
		for j := 1 + r.IntN(2); j > 0; j-- {
			var p v1beta1.ClusterNetworkPolicyIngressPeer
			if r.IntN(2) == 0 {
				p.Namespaces = ch.cnpSelector("team", churnTeams...)
			} else {
				p.Pods = ch.cnpPods()
			}
			rule.From = append(rule.From, p)
		}
		spec.Ingress = append(spec.Ingress, rule)
	}
	for k := r.IntN(3); k > 0; k-- {
		rule := v1beta1.ClusterNetworkPolicyEgressRule{Action: cnpActions[r.IntN(3)]}
		named := true
		for j := 1 + r.IntN(2); j > 0; j-- {
			var p v1beta1.ClusterNetworkPolicyEgressPeer
			switch r.IntN(5) {
			case 0:
				p.Namespaces = ch.cnpSelector("team", churnTeams...)
			case 1, 2:
				p.Pods = ch.cnpPods()
			case 3:
				named = false
				p.Networks = []v1beta1.CIDR{v1beta1.CIDR(ch.pick("10.7.0.0/16", "10.7.0.0/24", "0.0.0.0/0", "192.168.0.0/24")), v1beta1.CIDR(ch.pick("::/0", "fd00:7::/64", "fd00:168::/64"))}
			case 4:
				named = false
				p.Nodes = ch.cnpSelector("role", "worker", "control-plane")
			}
			rule.To = append(rule.To, p)
		}
		rule.Protocols = ch.cnpProtocols(named)
		spec.Egress = append(spec.Egress, rule)
	}
	return &cluster.ClusterPolicy{Kind: cluster.KindCNP, APIVersion: cluster.PolicyAPIGroup + "/v1beta1", Name: name, Spec: spec}
}

// mutateTiers applies one random change to the cluster policies or nodes
// and returns its description.
func (ch *churn) mutateTiers() string {
	r := ch.r
	switch r.IntN(8) {
	case 0:
		p := ch.newCNP(fmt.Sprintf("cnp-new-%d", ch.step))
		ch.cnps = append(ch.cnps, p)
		return "add " + p.Key()
	case 1, 2:
		if len(ch.cnps) == 0 {
			return "nothing"
		}
		i := r.IntN(len(ch.cnps))
		ch.cnps[i] = ch.newCNP(ch.cnps[i].Name)
		return "edit " + ch.cnps[i].Key()
	case 3:
		if len(ch.cnps) < 3 {
			return "nothing"
		}
		i := r.IntN(len(ch.cnps))
		p := ch.cnps[i]
		ch.cnps = slices.Delete(ch.cnps, i, i+1)
		return "delete " + p.Key()
	case 4:
		if len(ch.cnps) == 0 {
			return "nothing"
		}
		i := r.IntN(len(ch.cnps))
		p := *ch.cnps[i]
		p.Spec = *p.Spec.DeepCopy()
		p.Spec.Priority = int32(r.IntN(4))
		ch.cnps[i] = &p
		return fmt.Sprintf("priority of %s: %d", p.Key(), p.Spec.Priority)
	case 5:
		i := r.IntN(len(ch.nodes))
		ch.nodes[i] = ch.newNode(ch.nodes[i].Name)
		return fmt.Sprintf("node %s: %v %v", ch.nodes[i].Name, ch.nodes[i].Labels, ch.nodes[i].Addrs)
	case 6:
		// Equal content in new objects.
		for i, p := range ch.cnps {
			cp := *p
			cp.Spec = *p.Spec.DeepCopy()
			ch.cnps[i] = &cp
		}
		for i, n := range ch.nodes {
			cp := *n
			cp.Labels = maps.Clone(n.Labels)
			cp.Addrs = slices.Clone(n.Addrs)
			ch.nodes[i] = &cp
		}
		return "copies of cluster policies and nodes"
	}
	if len(ch.cnps) == 0 {
		return "nothing"
	}
	i := r.IntN(len(ch.cnps))
	p := *ch.cnps[i]
	p.Spec = *p.Spec.DeepCopy()
	if p.Spec.Tier == v1beta1.AdminTier {
		p.Spec.Tier = v1beta1.BaselineTier
	} else {
		p.Spec.Tier = v1beta1.AdminTier
	}
	ch.cnps[i] = &p
	return fmt.Sprintf("%s to tier %s", p.Key(), p.Spec.Tier)
}

// refusal is a delta the kernel refuses, and the words of the Fake's
// refusal; or, with want empty, an odd delta both take.
type refusal struct {
	name string
	d    *Delta
	want string
}

// tierRefusals are deltas the kernel refuses when applied to the
// guardrails model: they break the references of tier maps, Pass sets and
// layer chains, or mix up sets and verdict maps.
func tierRefusals(t *testing.T, base *Model) []refusal {
	t.Helper()
	var adminMap, plainSet, passSet *PeerSet
	var layer, baseLayer, podChain *Chain
	for _, s := range base.Sets {
		switch {
		case s.Map && s.Family == IPv4 && !s.Ports && strings.HasPrefix(s.Name, "aa"):
			adminMap = s
		case s.Pass && s.Family == IPv4:
			passSet = s
		case !s.Map && !s.Pass && s.Family == IPv4:
			plainSet = s
		}
	}
	for _, c := range base.Chains {
		switch {
		case strings.HasPrefix(c.Name, "inn-") && len(c.Rules) > 1:
			layer = c
		case strings.HasPrefix(c.Name, "outb-"):
			baseLayer = c
		case c.Pod != "" && slices.ContainsFunc(c.Rules, func(r Rule) bool { return r.Kind == RuleAddrPortGoto }):
			podChain = c
		}
	}
	if adminMap == nil || plainSet == nil || passSet == nil || layer == nil || baseLayer == nil || podChain == nil {
		t.Fatalf("the guardrails model lacks an Admin map, a set, a Pass set, an NP layer chain, a Baseline layer chain or a pod chain passing to a layer: %v %v %v %v %v %v",
			adminMap != nil, plainSet != nil, passSet != nil, layer != nil, baseLayer != nil, podChain != nil)
	}
	stranger := rangeOf("192.0.2.1", "192.0.2.1")
	toLayer := Element{Addrs: stranger, Verdict: Verdict{Kind: VerdictGoto, Chain: layer.Name}, Comment: "goto"}
	return []refusal{
		// Taken: map elements may go to a layer chain (the renderer
		// puts Pass in sets, but the model allows it).
		{"add a map element going to a layer chain", &Delta{SetChanges: []SetChange{{Set: adminMap, Add: []Element{toLayer}}}}, ""},
		// Taken: a set lookup on a verdict map tests membership.
		{"add a chain looking up a verdict map as a set", &Delta{AddChains: []*Chain{{Name: "in-ghost", Rules: []Rule{{Kind: RuleAddr, Family: IPv4, Set: adminMap.Name}}}}}, ""},
		{"delete a layer chain pod chains pass to", &Delta{DelChains: []*Chain{layer}}, "still goes to it"},
		{"delete a layer chain a pod chain goes to", &Delta{DelChains: []*Chain{baseLayer}}, "still goes to it"},
		{"add a map element going to a chain, and delete the chain", &Delta{SetChanges: []SetChange{{Set: adminMap, Add: []Element{toLayer}}},
			ReplaceChains: []*Chain{podChain}, DelChains: []*Chain{layer}}, "still goes to it"},
		{"add a map element going to a chain that is not there", &Delta{SetChanges: []SetChange{{Set: adminMap, Add: []Element{{Addrs: stranger, Verdict: Verdict{Kind: VerdictGoto, Chain: "inn-ghost"}}}}}}, "does not exist"},
		{"add a map element going to a base chain", &Delta{SetChanges: []SetChange{{Set: adminMap, Add: []Element{{Addrs: stranger, Verdict: Verdict{Kind: VerdictGoto, Chain: ChainForward}}}}}}, "base chain"},
		{"add a chain going to a chain that is not there", &Delta{AddChains: []*Chain{{Name: "in-ghost", Rules: []Rule{{Kind: RuleGoto, Chain: "inn-ghost"}}}}}, "does not exist"},
		{"add a chain passing to a chain that is not there", &Delta{AddChains: []*Chain{{Name: "in-ghost", Rules: []Rule{{Kind: RuleAddrPortGoto, Family: IPv4, Set: passSet.Name, Chain: "inn-ghost"}}}}}, "does not exist"},
		{"add a chain looking up a set as a verdict map", &Delta{AddChains: []*Chain{{Name: "in-ghost", Rules: []Rule{{Kind: RuleVMapAddr, Family: IPv4, Set: plainSet.Name}}}}}, "another type"},
		{"add a map element without a verdict", &Delta{SetChanges: []SetChange{{Set: adminMap, Add: []Element{{Addrs: stranger}}}}}, "without a verdict"},
		{"add a set element with a verdict", &Delta{SetChanges: []SetChange{{Set: plainSet, Add: []Element{{Addrs: stranger, Verdict: Verdict{Kind: VerdictDrop}}}}}}, "has a verdict"},
		{"add a map element overlapping another", &Delta{SetChanges: []SetChange{{Set: adminMap, Add: []Element{{
			Addrs: policy.AddrRange{From: adminMap.Elements[0].Addrs.From, To: adminMap.Elements[0].Addrs.To.Next()}, Verdict: Verdict{Kind: VerdictDrop}}}}}}, "overlaps"},
		{"add a map element that is there, with another verdict", &Delta{SetChanges: []SetChange{{Set: adminMap, Add: []Element{{
			Addrs: adminMap.Elements[0].Addrs, Verdict: Verdict{Kind: VerdictAccept}}}}}}, "exists"},
		{"delete a map a chain looks up", &Delta{DelSets: []*PeerSet{adminMap}}, "still looks it up"},
		{"delete a Pass set a chain looks up", &Delta{DelSets: []*PeerSet{passSet}}, "still looks it up"},
		{"replace a pod chain passing to a layer, then delete the layer", &Delta{ReplaceChains: []*Chain{podChain}, DelChains: []*Chain{layer}}, "still goes to it"},
	}
}

// TestTierFakeRefuses checks the Fake's refusals of what the kernel
// refuses with tier maps and layer chains (TestTierKernelRefuses checks
// the kernel): the transaction fails and the model stays as it was.
func TestTierFakeRefuses(t *testing.T) {
	ctx := t.Context()
	base := goldenModels()["guardrails"]
	for _, tc := range tierRefusals(t, base) {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFake()
			if err := f.FullSync(ctx, base); err != nil {
				t.Fatal(err)
			}
			before := f.Model()
			err := f.Apply(ctx, tc.d)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Apply: %v; the kernel takes it", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply: %v, want an error saying %q", err, tc.want)
			}
			sameModel(t, "after a refused delta", before, f.Model())
		})
	}
}

// modelPoints returns addresses that tell a model's decisions apart: the
// local pods' addresses and the ends of every set and map element, and
// one address past each end.
func modelPoints(ms ...*Model) []netip.Addr {
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	add := func(a netip.Addr) {
		if a.IsValid() && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, m := range ms {
		for _, vm := range m.Maps {
			for _, e := range vm.Elements {
				add(e.Addr)
			}
		}
		for _, s := range m.Sets {
			for _, e := range s.Elements {
				add(e.Addrs.From)
				add(e.Addrs.To)
				add(e.Addrs.To.Next())
				add(e.Addrs.From.Prev())
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

var widenPorts = []protoPort{{6, 8080}, {6, 8000}, {6, 8100}, {6, 5432}, {6, 80}, {17, 53}, {132, 9000}, {1, 0}}

// inRanges reports whether a is in one of the ranges.
func inRanges(rs []policy.AddrRange, a netip.Addr) bool {
	return slices.ContainsFunc(rs, func(r policy.AddrRange) bool { return r.Contains(a) })
}

// lostPacket returns a packet model a lets through and model b does not,
// looking at every address that tells them apart (with one end in peers,
// when peers is not nil), or "" when there is none.
func lostPacket(t *testing.T, a, b *Model, peers []policy.AddrRange) string {
	t.Helper()
	ia, ib := newInterp(a), newInterp(b)
	points := modelPoints(a, b)
	for _, src := range points {
		for _, dst := range points {
			if src.Is4() != dst.Is4() || src == dst {
				continue
			}
			if peers != nil && !inRanges(peers, src) && !inRanges(peers, dst) {
				continue
			}
			for _, pp := range widenPorts {
				for _, h := range []hook{hookForward, hookInput} {
					p := packet{src: src, dst: dst, proto: pp.proto, port: pp.port}
					was, _, err1 := ia.allowed(p, h)
					is, _, err2 := ib.allowed(p, h)
					if err1 != nil || err2 != nil {
						t.Fatalf("interpreting: %v %v", err1, err2)
					}
					if was && !is {
						return fmt.Sprintf("%s -> %s %s (hook %d)", src, dst, pp, h)
					}
				}
			}
		}
	}
	return ""
}

// perturbMap returns a copy of m with one random change to the elements
// of one tier map: an element's verdict changed, an element removed, or
// one added where no element is; the addresses of the element changed;
// and whether there was a map to change.
func perturbMap(r *rand.Rand, m *Model) (*Model, []policy.AddrRange, bool) {
	var idx []int
	for i, s := range m.Sets {
		if s.Map && len(s.Elements) > 0 {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil, nil, false
	}
	out := *m
	out.Sets = slices.Clone(m.Sets)
	i := idx[r.IntN(len(idx))]
	s := *m.Sets[i]
	s.Elements = slices.Clone(s.Elements)
	out.Sets[i] = &s
	// The verdicts the map may hold: its own, and drop.
	verdicts := []Verdict{{Kind: VerdictDrop}}
	for _, e := range s.Elements {
		if !slices.Contains(verdicts, e.Verdict) {
			verdicts = append(verdicts, e.Verdict)
		}
	}
	for _, c := range m.Chains {
		for _, rl := range c.Rules {
			if rl.Set != s.Name {
				continue
			}
			allow := Verdict{Kind: VerdictAccept}
			if rl.Egress {
				allow.Kind = VerdictReturn
			}
			if !slices.Contains(verdicts, allow) {
				verdicts = append(verdicts, allow)
			}
			// Pass to a layer chain of the direction (from the Admin
			// tier: the layer chains look up only Baseline maps).
			for _, l := range m.Chains {
				if s.Name[0] != 'a' {
					break
				}
				if pass := (Verdict{Kind: VerdictGoto, Chain: l.Name}); l.Pod == "" && l.Direction == c.Direction && !slices.Contains(verdicts, pass) {
					verdicts = append(verdicts, pass)
				}
			}
		}
	}
	k := r.IntN(len(s.Elements))
	ends := []policy.AddrRange{s.Elements[k].Addrs}
	switch r.IntN(3) {
	case 0:
		s.Elements[k].Verdict = verdicts[r.IntN(len(verdicts))]
		s.Elements[k].Comment = "changed"
	case 1:
		s.Elements = slices.Delete(s.Elements, k, k+1)
	default:
		e := s.Elements[k]
		e.ToPort = e.FromPort
		e.Addrs = rangeOf("192.0.2.77", "192.0.2.77")
		if s.Family == IPv6 {
			e.Addrs = rangeOf("2001:db8::77", "2001:db8::77")
		}
		// Or, for a ports map, in front of an element of the tier's
		// address map.
		if sib := m.Set(s.Name[:1] + "a" + s.Name[2:]); s.Ports && sib != nil && r.IntN(2) == 0 {
			a := sib.Elements[r.IntN(len(sib.Elements))].Addrs.From
			e.Addrs = policy.AddrRange{From: a, To: a}
		}
		e.Verdict = verdicts[r.IntN(len(verdicts))]
		if _, taken := s.find(e.Addrs.From, e.Proto, e.FromPort); taken {
			return nil, nil, false
		}
		s.Elements = append(s.Elements, e)
		slices.SortFunc(s.Elements, compareElements)
		ends = []policy.AddrRange{e.Addrs}
	}
	return &out, ends, true
}

// TestOnlyWidens holds Delta.OnlyWidens to the rulesets' meaning: when a
// delta says it only widens, every packet the old ruleset let through the
// new one lets through too (checked on the interpreted rulesets, at every
// address that tells them apart). The deltas are those of random changes
// of clusters with cluster policies, and random changes of single tier
// map elements. And deltas that turn an Admin Accept into a Deny, add a
// Deny, put a Deny first or reorder priorities so that a Deny wins are
// never taken for widening.
func TestOnlyWidens(t *testing.T) {
	seeds, steps := 6, 60
	if testing.Short() {
		seeds = 2
	}
	r := rand.New(rand.NewPCG(5, 55))
	var churnWide, mapWide, mapNarrow, mapNarrowCaught int
	for seed := uint64(0); seed < uint64(seeds); seed++ {
		ms, whats := tierChurnModels(seed, steps)
		for i := 1; i < len(ms); i++ {
			a, b := ms[i-1], ms[i]
			if d := Diff(a, b); !d.Empty() && d.OnlyWidens() {
				churnWide++
				if lost := lostPacket(t, a, b, nil); lost != "" {
					t.Fatalf("seed %d step %d (%s): the delta says it only widens, but %s was let through and is not any more\ndelta: %v",
						seed, i, whats[i], lost, d.Names())
				}
			}
			// A random change of one tier map of the new model.
			c, ends, ok := perturbMap(r, b)
			if !ok {
				continue
			}
			d := Diff(b, c)
			if d.Empty() {
				continue
			}
			lost := lostPacket(t, b, c, ends)
			switch {
			case d.OnlyWidens() && lost != "":
				t.Fatalf("seed %d step %d: a map change said to only widen lets %s through no more\ndelta: %+v", seed, i, lost, d.SetChanges)
			case d.OnlyWidens():
				mapWide++
			case lost != "":
				mapNarrow++
				mapNarrowCaught++
			default:
				mapNarrow++ // conservative
			}
		}
	}
	t.Logf("widening: %d churn deltas, %d map changes; %d map changes not widening (%d of which do deny a packet)", churnWide, mapWide, mapNarrow, mapNarrowCaught)
	if mapWide == 0 || mapNarrowCaught == 0 {
		t.Fatal("the map changes never widen, or never narrow: the test says nothing")
	}

	// Named changes of the guardrails cluster.
	base := guardrailsCluster()
	edit := func(name string, f func(p *cluster.ClusterPolicy)) *cluster.Cluster {
		return editClusterPolicy(base, name, f, nil)
	}
	opts := Options{Node: "node-1"}
	from := render(base, opts)
	for _, tc := range []struct {
		name   string
		c      *cluster.Cluster
		widens bool
	}{
		{"Accept to Deny", edit("protect-payments", func(p *cluster.ClusterPolicy) {
			p.Spec.Ingress[0].Action = v1beta1.ClusterNetworkPolicyRuleActionDeny
		}), false},
		{"a new Deny rule", edit("block-cloud-metadata", func(p *cluster.ClusterPolicy) {
			p.Spec.Egress = append(p.Spec.Egress, v1beta1.ClusterNetworkPolicyEgressRule{Action: v1beta1.ClusterNetworkPolicyRuleActionDeny,
				To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Networks: []v1beta1.CIDR{"192.0.2.0/24"}}}})
		}), false},
		{"a Deny first", edit("protect-payments", func(p *cluster.ClusterPolicy) {
			p.Spec.Ingress[0], p.Spec.Ingress[2] = p.Spec.Ingress[2], p.Spec.Ingress[0]
		}), false},
		{"a Pass in front of an Accept", edit("monitoring-to-nodes", func(p *cluster.ClusterPolicy) {
			p.Spec.Egress[0].Action = v1beta1.ClusterNetworkPolicyRuleActionPass
		}), false},
		{"priority: a Deny before the Pass", edit("block-cloud-metadata", func(p *cluster.ClusterPolicy) {
			p.Spec.Priority = 60
			p.Spec.Egress[0].To[0].Networks = append(p.Spec.Egress[0].To[0].Networks, "10.244.0.0/24")
		}), false},
		{"the tenants' web Pass to Deny", edit("delegate-to-tenants", func(p *cluster.ClusterPolicy) {
			p.Spec.Ingress[0].Action = v1beta1.ClusterNetworkPolicyRuleActionDeny
		}), false},
		{"Deny to Accept", edit("block-cloud-metadata", func(p *cluster.ClusterPolicy) {
			p.Spec.Egress[0].Action = v1beta1.ClusterNetworkPolicyRuleActionAccept
		}), true},
		{"the Baseline denies fewer pods", edit("tenant-baseline", func(p *cluster.ClusterPolicy) {
			p.Spec.Egress[2].To[0].Namespaces = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: cluster.MetadataNameLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"monitoring"}}}}
		}), true},
		// Correct, not precise: the ports elements of a node no longer
		// denied are no longer needed, so a chain changes.
		{"Deny to Accept, then unneeded ports elements", edit("monitoring-to-nodes", func(p *cluster.ClusterPolicy) {
			p.Spec.Egress[1].Action = v1beta1.ClusterNetworkPolicyRuleActionAccept
		}), false},
	} {
		to := render(tc.c, opts)
		d := Diff(from, to)
		if d.Empty() {
			t.Fatalf("%s: no change", tc.name)
		}
		if got := d.OnlyWidens(); got != tc.widens {
			t.Errorf("%s: OnlyWidens() = %v, want %v; delta %v", tc.name, got, tc.widens, d.Names())
		}
	}
}

// editClusterPolicy returns a copy of c where edit changed (a copy of)
// the cluster policy name, if any, and where the nodes are nodes unless
// that is nil.
func editClusterPolicy(c *cluster.Cluster, name string, edit func(p *cluster.ClusterPolicy), nodes []*cluster.Node) *cluster.Cluster {
	var cps []*cluster.ClusterPolicy
	for _, p := range c.ClusterPolicies {
		if p.Name == name {
			cp := *p
			cp.Spec = *p.Spec.DeepCopy()
			edit(&cp)
			p = &cp
		}
		cps = append(cps, p)
	}
	var nss []*cluster.Namespace
	for _, ns := range c.Namespaces {
		nss = append(nss, ns)
	}
	if nodes == nil {
		nodes = c.Nodes
	}
	return cluster.NewWith(cluster.Parts{Namespaces: nss, Pods: c.Pods, Policies: c.Policies, ClusterPolicies: cps, Nodes: nodes})
}

// TestRendererFollowsTierChanges checks that a change of a cluster policy
// or a node re-renders only what it can affect: the tier decisions of the
// pods the policy selects, or of the pods whose policies have node peers;
// everything else is reused, the other pods' chains unchanged.
func TestRendererFollowsTierChanges(t *testing.T) {
	base := guardrailsCluster()
	with := func(edit func(p *cluster.ClusterPolicy), name string, nodes []*cluster.Node) *cluster.Cluster {
		return editClusterPolicy(base, name, edit, nodes)
	}
	for _, tc := range []struct {
		name string
		c    *cluster.Cluster
		// pods whose chains may change; resolved is the number of tier
		// decisions resolved anew.
		pods     []string
		resolved int
	}{
		{"protect-payments allows checkout on another port", with(func(p *cluster.ClusterPolicy) {
			p.Spec.Ingress[0].Protocols = []v1beta1.ClusterNetworkPolicyProtocol{tcpPort(8444)}
		}, "protect-payments", nil), []string{"payments/api-0"}, 1},
		{"the node moves", with(nil, "", []*cluster.Node{{Name: "node-1", Labels: labels.Set{"role": "worker"}, Addrs: []netip.Addr{netip.MustParseAddr("172.18.0.3")}}}),
			[]string{"monitoring/prometheus-0"}, 1},
		// Resolved again, though nodes: {} selects it still.
		{"the node is relabelled", with(nil, "", []*cluster.Node{{Name: "node-1", Labels: labels.Set{"role": "infra"}, Addrs: base.Nodes[0].Addrs}}),
			[]string{"monitoring/prometheus-0"}, 1},
		{"the tenants' Pass becomes a Deny", with(func(p *cluster.ClusterPolicy) {
			p.Spec.Ingress[0].Action = v1beta1.ClusterNetworkPolicyRuleActionDeny
		}, "delegate-to-tenants", nil), []string{"team-a/checkout-0", "team-a/web-0", "team-b/client-0"}, 1},
		{"a policy selecting no pod", cluster.NewWith(cluster.Parts{Pods: base.Pods, Policies: base.Policies, Nodes: base.Nodes,
			Namespaces: func() []*cluster.Namespace {
				var nss []*cluster.Namespace
				for _, ns := range base.Namespaces {
					nss = append(nss, ns)
				}
				return nss
			}(),
			ClusterPolicies: append(slices.Clone(base.ClusterPolicies), cnp("nobody", v1beta1.AdminTier, 1, nsSubject(sel("tenant", "nobody"))))}),
			nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{Node: "node-1"}
			rend := NewRenderer(opts)
			compiler := policy.NewCompiler()
			before := rend.Render(compiler.NewSet(base))
			after := rend.Render(compiler.NewSet(tc.c))
			st := rend.Stats()
			if st.Full || st.Resolved != tc.resolved {
				t.Errorf("stats %+v, want an incremental render resolving %d", st, tc.resolved)
			}
			if want := render(tc.c, opts); !reflect.DeepEqual(after, want) {
				t.Fatalf("the renderer differs from Render:\n%s", lineDiff(want.Text(), after.Text()))
			}
			d := Diff(before, after)
			if len(tc.pods) == 0 && !d.Empty() {
				t.Fatalf("delta %v", d.Names())
			}
			// Only the named pods' chains, the layer chains they go to,
			// what those look up, and the pods' verdict map entries may
			// change.
			may := map[string]bool{}
			var add func(m *Model, name string)
			add = func(m *Model, name string) {
				if may["chain "+name] {
					return
				}
				may["chain "+name] = true
				for _, s := range m.ChainSets(name) {
					may["set "+s.Name] = true
				}
				if c := m.Chain(name); c != nil {
					for _, r := range c.Rules {
						if r.Chain != "" {
							add(m, r.Chain)
						}
					}
				}
			}
			for _, p := range tc.pods {
				for _, dir := range policy.Directions {
					for _, m := range []*Model{before, after} {
						add(m, ChainName(p, dir))
					}
				}
			}
			for _, n := range d.Names() {
				f := strings.Fields(n)
				if kind := strings.TrimLeft(f[0], "+-~="); kind != "map" && !may[kind+" "+f[1]] {
					t.Errorf("the change touches %s", n)
				}
			}
			for _, mc := range d.MapChanges {
				for _, e := range append(slices.Clone(mc.Add), mc.Del...) {
					if !slices.Contains(tc.pods, e.Comment) {
						t.Errorf("the change touches %s's element in map %s", e.Comment, mc.Map.Name)
					}
				}
			}
			for _, c := range before.Chains {
				if a := after.Chain(c.Name); a != nil && !may["chain "+c.Name] && a != c {
					t.Errorf("chain %s was rebuilt", c.Name)
				}
			}
		})
	}
}

// TestNamer checks that identities whose short names collide are named at
// full length, and the others short.
func TestNamer(t *testing.T) {
	var a, b, c [32]byte
	a[0], b[0], c[0] = 1, 1, 2
	b[31] = 1
	nm := newNamer()
	for _, s := range [][32]byte{a, b, c, a} {
		nm.add(s)
	}
	if !nm.long(a) || !nm.long(b) || nm.long(c) {
		t.Fatalf("long: %v %v %v", nm.long(a), nm.long(b), nm.long(c))
	}
	if na, nb, nc := nm.name(a), nm.name(b), nm.name(c); na == nb || len(na) != 64 || len(nc) != 16 {
		t.Fatalf("names %s %s %s", na, nb, nc)
	}
}
