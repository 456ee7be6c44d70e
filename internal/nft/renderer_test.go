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
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// churn is a random cluster that changes the way watches report changes:
// labels, pods coming, going, moving and readdressed, phases, container
// ports, policies added, edited and removed, namespaces relabelled.
type churn struct {
	r      *rand.Rand
	nss    []*cluster.Namespace
	pods   []*cluster.Pod
	nps    []*networkingv1.NetworkPolicy
	nextIP int
	step   int
	dup    bool // the last pod is a duplicate
	// tiers adds cluster policies and nodes that change too (see
	// newTierChurn); without it the changes are exactly as before.
	tiers bool
	cnps  []*cluster.ClusterPolicy
	nodes []*cluster.Node
}

var churnTeams = []string{"a", "b", "c"}

func newChurn(seed uint64) *churn {
	ch := &churn{r: rand.New(rand.NewPCG(seed, 99))}
	for i := 0; i < 4; i++ {
		ch.nss = append(ch.nss, &cluster.Namespace{Name: fmt.Sprintf("ns-%d", i), Defined: true,
			Labels: labels.Set{"team": churnTeams[ch.r.IntN(len(churnTeams))]}})
	}
	for i := 0; i < 40; i++ {
		ch.pods = append(ch.pods, ch.newPod(fmt.Sprintf("p-%d", i)))
	}
	for i := 0; i < 14; i++ {
		ch.nps = append(ch.nps, ch.newPolicy(fmt.Sprintf("pol-%d", i)))
	}
	return ch
}

func (ch *churn) pick(xs ...string) string { return xs[ch.r.IntN(len(xs))] }

// addr returns a fresh address, or now and then one another pod has.
func (ch *churn) addr(v6 bool) netip.Addr {
	if ch.r.IntN(8) == 0 && len(ch.pods) > 0 {
		p := ch.pods[ch.r.IntN(len(ch.pods))]
		for _, ip := range p.IPs {
			if ip.Is6() == v6 {
				return ip
			}
		}
	}
	ch.nextIP++
	n := ch.nextIP
	if v6 {
		return netip.MustParseAddr(fmt.Sprintf("fd00:7::%x", n))
	}
	// Mostly neighbours, so that intervals merge and split.
	return netip.AddrFrom4([4]byte{10, 7, byte(n >> 8), byte(n)})
}

func (ch *churn) ports() []cluster.ContainerPort {
	var out []cluster.ContainerPort
	if ch.r.IntN(3) > 0 {
		out = append(out, cport("http", tcp, int32(8080+ch.r.IntN(2))))
	}
	if ch.r.IntN(3) == 0 {
		out = append(out, cport("dns", udp, 53))
	}
	if ch.r.IntN(4) == 0 {
		out = append(out, cport("db", tcp, 5432))
	}
	return out
}

func (ch *churn) labels() labels.Set {
	l := labels.Set{"app": ch.pick("web", "db", "api", "cache")}
	if ch.r.IntN(2) == 0 {
		l["tier"] = ch.pick("front", "back")
	}
	return l
}

func (ch *churn) newPod(name string) *cluster.Pod {
	p := &cluster.Pod{
		Namespace: ch.nss[ch.r.IntN(len(ch.nss))].Name, Name: name,
		NodeName: ch.pick("node-0", "node-0", "node-1"),
		Labels:   ch.labels(), Phase: corev1.PodRunning, Ports: ch.ports(),
	}
	p.IPs = ch.addrs()
	switch ch.r.IntN(12) {
	case 0:
		p.Phase = corev1.PodPending
	case 1:
		p.HostNetwork = true
		p.IPs = []netip.Addr{netip.MustParseAddr("192.168.0." + fmt.Sprint(1+ch.r.IntN(3)))}
	case 2:
		p.IPs = nil
	}
	return p
}

func (ch *churn) addrs() []netip.Addr {
	ips := []netip.Addr{ch.addr(false)}
	if ch.r.IntN(2) == 0 {
		ips = append(ips, ch.addr(true))
	}
	if ch.r.IntN(10) == 0 {
		ips = ips[len(ips)-1:] // IPv6 only, or IPv4 only
	}
	return ips
}

func (ch *churn) podSelector() *networkingv1.NetworkPolicyPeer {
	var p networkingv1.NetworkPolicyPeer
	switch ch.r.IntN(6) {
	case 0:
		p.PodSelector = sel()
	case 1:
		p.PodSelector = sel("tier", ch.pick("front", "back"))
	default:
		p.PodSelector = sel("app", ch.pick("web", "db", "api", "cache"))
	}
	switch ch.r.IntN(4) {
	case 0:
		p.NamespaceSelector = sel("team", ch.pick(churnTeams...))
	case 1:
		p.NamespaceSelector = sel()
	case 2:
		if ch.r.IntN(2) == 0 {
			p.PodSelector = nil
			p.NamespaceSelector = sel("team", ch.pick(churnTeams...))
		}
	}
	return &p
}

func (ch *churn) newPolicy(name string) *networkingv1.NetworkPolicy {
	ns := ch.nss[ch.r.IntN(len(ch.nss))].Name
	var podSel = sel("app", ch.pick("web", "db", "api", "cache"))
	if ch.r.IntN(5) == 0 {
		podSel = sel()
	}
	var types []networkingv1.PolicyType
	switch ch.r.IntN(4) {
	case 0:
		types = []networkingv1.PolicyType{typeIn}
	case 1:
		types = []networkingv1.PolicyType{typeOut}
	case 2:
		types = []networkingv1.PolicyType{typeIn, typeOut}
	}
	np := netpol(ns, name, podSel, types...)
	peerList := func() []networkingv1.NetworkPolicyPeer {
		var out []networkingv1.NetworkPolicyPeer
		switch ch.r.IntN(8) {
		case 0:
			return nil // every peer
		case 1:
			out = append(out, blockPeer("10.7.0.0/16", "10.7.0.0/28"))
		case 2:
			out = append(out, blockPeer("0.0.0.0/0", "10.7.0.0/24"), blockPeer("fd00:7::/64", "fd00:7::/124"))
		}
		for k := ch.r.IntN(3); k >= 0; k-- {
			out = append(out, *ch.podSelector())
		}
		return out
	}
	portList := func() []networkingv1.NetworkPolicyPort {
		switch ch.r.IntN(7) {
		case 0:
			return nil
		case 1:
			return []networkingv1.NetworkPolicyPort{npPort(tcp, "http")}
		case 2:
			return []networkingv1.NetworkPolicyPort{npPort(tcp, "http"), npPort(udp, "dns"), npPort(tcp, 5432)}
		case 3:
			return []networkingv1.NetworkPolicyPort{npPort(tcp, 8000, 8100)}
		case 4:
			return []networkingv1.NetworkPolicyPort{npPort(tcp, "db"), npPort(sctp, 9000)}
		case 5:
			return []networkingv1.NetworkPolicyPort{npPort(udp, 53), npPort(tcp, 53)}
		}
		return []networkingv1.NetworkPolicyPort{npPort(tcp, 8080)}
	}
	for k := ch.r.IntN(3); k > 0; k-- {
		ingress(np, peerList(), portList()...)
	}
	for k := ch.r.IntN(3); k > 0; k-- {
		egress(np, peerList(), portList()...)
	}
	return np
}

// copyPod returns a copy of p that shares nothing with it.
func copyPod(p *cluster.Pod) *cluster.Pod {
	cp := *p
	cp.Labels = maps.Clone(p.Labels)
	cp.IPs = slices.Clone(p.IPs)
	cp.Ports = slices.Clone(p.Ports)
	return &cp
}

// mutate applies one random change and returns its description.
func (ch *churn) mutate() string {
	ch.step++
	r := ch.r
	if ch.dup {
		ch.pods = ch.pods[:len(ch.pods)-1]
		ch.dup = false
	}
	podAt := func() (int, *cluster.Pod) {
		i := r.IntN(len(ch.pods))
		p := copyPod(ch.pods[i])
		ch.pods[i] = p
		return i, p
	}
	if ch.tiers && r.IntN(3) == 0 {
		return ch.mutateTiers()
	}
	switch r.IntN(18) {
	case 0, 1, 2:
		_, p := podAt()
		if r.IntN(4) == 0 {
			p.Labels["tier"] = ch.pick("front", "back")
		} else {
			p.Labels["app"] = ch.pick("web", "db", "api", "cache")
		}
		return "relabel " + p.Key()
	case 3:
		p := ch.newPod(fmt.Sprintf("new-%d", ch.step))
		ch.pods = append(ch.pods, p)
		return "add pod " + p.Key()
	case 4:
		if len(ch.pods) < 10 {
			return "nothing"
		}
		i := r.IntN(len(ch.pods))
		p := ch.pods[i]
		ch.pods = slices.Delete(ch.pods, i, i+1)
		return "delete pod " + p.Key()
	case 5:
		_, p := podAt()
		if !p.HostNetwork {
			p.IPs = ch.addrs()
		}
		return fmt.Sprintf("readdress %s to %v", p.Key(), p.IPs)
	case 6:
		_, p := podAt()
		if p.Phase == corev1.PodRunning {
			p.Phase = corev1.PodSucceeded
		} else {
			p.Phase = corev1.PodRunning
		}
		return fmt.Sprintf("%s is %s", p.Key(), p.Phase)
	case 7:
		_, p := podAt()
		p.Ports = ch.ports()
		return fmt.Sprintf("ports of %s: %v", p.Key(), p.Ports)
	case 8:
		_, p := podAt()
		p.NodeName = ch.pick("node-0", "node-1")
		return fmt.Sprintf("%s on %s", p.Key(), p.NodeName)
	case 9:
		np := ch.newPolicy(fmt.Sprintf("new-%d", ch.step))
		ch.nps = append(ch.nps, np)
		return "add policy " + np.Name
	case 10, 11:
		i := r.IntN(len(ch.nps))
		np := ch.newPolicy(ch.nps[i].Name)
		np.Namespace = ch.nps[i].Namespace
		ch.nps[i] = np
		return "edit policy " + np.Name
	case 12:
		if len(ch.nps) < 4 {
			return "nothing"
		}
		i := r.IntN(len(ch.nps))
		np := ch.nps[i]
		ch.nps = slices.Delete(ch.nps, i, i+1)
		return "delete policy " + np.Name
	case 13:
		i := r.IntN(len(ch.nss))
		ns := *ch.nss[i]
		ns.Labels = labels.Set{"team": ch.pick(churnTeams...)}
		ch.nss[i] = &ns
		return fmt.Sprintf("namespace %s team %s", ns.Name, ns.Labels["team"])
	case 16:
		// Policy metadata labels: valid ones change nothing, invalid ones
		// get the policy rejected.
		i := r.IntN(len(ch.nps))
		np := ch.nps[i].DeepCopy()
		np.Labels = map[string]string{"team": ch.pick("x", "y", "not valid!")}
		ch.nps[i] = np
		return fmt.Sprintf("label policy %s %v", np.Name, np.Labels)
	case 15:
		if r.IntN(4) > 0 {
			break
		}
		// A pod twice (a broken source), for one step: rendered from
		// scratch.
		p := copyPod(ch.pods[r.IntN(len(ch.pods))])
		ch.pods = append(ch.pods, p)
		ch.dup = true
		return "duplicate " + p.Key()
	case 14:
		// Equal content in new objects, as a watch that rebuilds them.
		for i, p := range ch.pods {
			ch.pods[i] = copyPod(p)
		}
		for i, np := range ch.nps {
			ch.nps[i] = np.DeepCopy()
		}
		return "copies"
	}
	// Two changes at once.
	a := ch.mutate()
	return a + " and " + ch.mutate()
}

func (ch *churn) cluster() *cluster.Cluster {
	if !ch.tiers {
		return cluster.New(ch.nss, ch.pods, ch.nps)
	}
	return cluster.NewWith(cluster.Parts{Namespaces: ch.nss, Pods: ch.pods, Policies: ch.nps, ClusterPolicies: ch.cnps, Nodes: ch.nodes})
}

// TestRendererMatchesRender applies random changes to random clusters and
// checks after each that the incremental rendering is exactly the
// reference rendering of the same snapshot.
func TestRendererMatchesRender(t *testing.T) {
	seeds, steps := 8, 80
	if testing.Short() {
		seeds, steps = 4, 40
	}
	total, incremental, resolved, reused, rejected := 0, 0, 0, 0, 0
	// Pods sharing an address (churn's addr hands out another pod's now
	// and then) are denied everything; sharedSteps counts the renders with
	// such pods, sharedChanges the steps that changed which pods they are.
	sharedSteps, sharedChanges := 0, 0
	for seed := 0; seed < 2*seeds; seed++ {
		opts := []Options{{Node: "node-0"}, {AllLocal: true, Deny: DenyReject}}[seed%2]
		ch := newChurn(uint64(seed))
		if seed >= seeds {
			// With cluster policies and nodes.
			ch = newTierChurn(uint64(seed))
		}
		rend := NewRenderer(opts)
		compiler := policy.NewCompiler()
		var history []string
		var lastShared string
		for step := 0; step < steps; step++ {
			what := "initial"
			if step > 0 {
				what = ch.mutate()
			}
			history = append(history, what)
			c := ch.cluster()
			var shared []string
			for _, p := range c.Pods {
				if c.Conflicted(p) {
					shared = append(shared, p.Key())
				}
			}
			if len(shared) > 0 {
				sharedSteps++
			}
			if k := strings.Join(shared, ","); step > 0 && k != lastShared {
				sharedChanges++
			}
			lastShared = strings.Join(shared, ",")
			s := policy.NewSet(c)
			// The renderer gets the set of a caching compiler, as the
			// agent's.
			inc := compiler.NewSet(c)
			if !reflect.DeepEqual(inc.Policies, s.Policies) || !reflect.DeepEqual(inc.Rejected, s.Rejected) || !reflect.DeepEqual(inc.ClusterPolicies, s.ClusterPolicies) {
				t.Fatalf("seed %d step %d (%s): the caching compiler differs from NewSet", seed, step, what)
			}
			rejected += len(s.Rejected)
			got := rend.Render(inc)
			want := Render(s, opts)
			st := rend.Stats()
			total++
			if !st.Full {
				incremental++
			}
			resolved += st.Resolved
			reused += st.Reused
			checkModel(t, got)
			if !reflect.DeepEqual(got, want) {
				gt, wt := got.Text(), want.Text()
				t.Fatalf("seed %d step %d (%s): incremental rendering differs from Render (text equal: %v):\n%s\nhistory: %q",
					seed, step, what, gt == wt, lineDiff(wt, gt), history[max(0, len(history)-5):])
			}
		}
	}
	t.Logf("%d renders, %d incremental; %d allowances resolved, %d reused; %d policies rejected; %d renders with pods sharing an address, %d changes of those pods",
		total, incremental, resolved, reused, rejected, sharedSteps, sharedChanges)
	if sharedSteps == 0 || sharedChanges == 0 {
		t.Fatal("no pods share an address: the shared-address rule is not exercised")
	}
	if total < 500 && !testing.Short() {
		t.Fatalf("only %d changes", total)
	}
	if incremental < total*3/4 || reused < resolved {
		t.Fatalf("the renderer rarely reuses anything: %d of %d renders incremental, %d resolved, %d reused", incremental, total, resolved, reused)
	}
}

// checkModel checks that a model is consistent: names are sorted and
// unique, every set or tier map a rule looks up exists and has the rule's
// type, every set and map is looked up, every map element and goto goes
// to a chain, every layer chain is gone to, and every comment fits nft's
// limit.
func checkModel(t *testing.T, m *Model) {
	t.Helper()
	if !slices.IsSortedFunc(m.Sets, func(a, b *PeerSet) int { return strings.Compare(a.Name, b.Name) }) ||
		!slices.IsSortedFunc(m.Chains, func(a, b *Chain) int { return strings.Compare(a.Name, b.Name) }) {
		t.Fatal("sets or chains not sorted")
	}
	used := map[string]bool{}
	target := map[string]bool{}
	for i, c := range m.Chains {
		if i > 0 && m.Chains[i-1].Name == c.Name {
			t.Fatalf("chain %s twice", c.Name)
		}
		for _, r := range c.Rules {
			if len(r.Comment) > maxComment {
				t.Fatalf("chain %s: comment too long: %q", c.Name, r.Comment)
			}
			if r.Kind == RuleGoto || r.Kind == RuleAddrPortGoto {
				if m.Chain(r.Chain) == nil || m.Chain(r.Chain).Pod != "" {
					t.Fatalf("chain %s goes to %s, which is missing or not a layer chain", c.Name, r.Chain)
				}
				target[r.Chain] = true
			}
			if r.Kind != RuleAddr && r.Kind != RuleAddrPort && r.Kind != RuleVMapAddr && r.Kind != RuleVMapAddrPort && r.Kind != RuleAddrPortGoto {
				continue
			}
			s := m.Set(r.Set)
			isMap := r.Kind == RuleVMapAddr || r.Kind == RuleVMapAddrPort
			ports := r.Kind == RuleAddrPort || r.Kind == RuleVMapAddrPort || r.Kind == RuleAddrPortGoto
			if s == nil || s.Family != r.Family || s.Ports != ports || s.Map != isMap || len(s.Elements) == 0 || (r.Kind == RuleAddrPortGoto && !s.Pass) {
				t.Fatalf("chain %s looks up set %s, which is missing or of another type", c.Name, r.Set)
			}
			used[r.Set] = true
		}
	}
	for i, s := range m.Sets {
		if i > 0 && m.Sets[i-1].Name == s.Name {
			t.Fatalf("set %s twice", s.Name)
		}
		if !used[s.Name] {
			t.Fatalf("set %s is not looked up", s.Name)
		}
		for _, e := range s.Elements {
			if len(e.Comment) > maxComment {
				t.Fatalf("set %s: comment too long: %q", s.Name, e.Comment)
			}
			if s.Map != (e.Verdict.Kind != VerdictNone) {
				t.Fatalf("set %s (map %v): element %s", s.Name, s.Map, e.text(s.Ports))
			}
			if e.Verdict.Kind == VerdictGoto {
				if m.Chain(e.Verdict.Chain) == nil {
					t.Fatalf("map %s goes to missing chain %s", s.Name, e.Verdict.Chain)
				}
				target[e.Verdict.Chain] = true
			}
		}
	}
	for _, c := range m.Chains {
		if c.Pod == "" && !target[c.Name] {
			t.Fatalf("layer chain %s is not gone to", c.Name)
		}
	}
	for _, vm := range m.Maps {
		for _, e := range vm.Elements {
			if c := m.Chain(e.Chain); c == nil || c.Pod == "" {
				t.Fatalf("map %s jumps to missing or layer chain %s", vm.Name, e.Chain)
			}
		}
	}
}
