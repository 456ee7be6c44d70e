package analysis

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// TierConflict is traffic that two cluster policies of one tier and
// priority decide differently for the pods both select (decision D1): the
// most restrictive action applies (Deny, then Pass, then Accept), whatever
// the policies' names, but their owners should know.
type TierConflict struct {
	Tier      policy.Tier
	Priority  int32
	Direction policy.Direction
	// A and B are the policies (A's key sorts first); RuleA and RuleB the
	// rules of each that match the example flow.
	A, B         *policy.ClusterPolicy
	RuleA, RuleB *policy.TierRule
	// Subject is an example pod both select, Peer the other end of the
	// example flow (a pod or an address) and Port its port.
	Subject *cluster.Pod
	Peer    string
	Port    Port
	// Pods counts the pods for which the policies disagree.
	Pods int
}

func (c TierConflict) String() string {
	flow := fmt.Sprintf("%s -> %s", c.Subject.Key(), c.Peer)
	if c.Direction == policy.Ingress {
		flow = fmt.Sprintf("%s -> %s", c.Peer, c.Subject.Key())
	}
	dir := strings.ToLower(c.Direction.String())
	win := c.RuleA.Action
	if c.RuleB.Action.Restrictiveness() > win.Restrictiveness() {
		win = c.RuleB.Action
	}
	pods := "1 pod"
	if c.Pods != 1 {
		pods = fmt.Sprintf("%d pods", c.Pods)
	}
	return fmt.Sprintf("%s and %s have the same priority (%s tier, %d) and decide %s traffic of %s differently, e.g. %s on %s: %s spec.%s[%d] %s, %s spec.%s[%d] %s; the most restrictive action applies (%s)",
		c.A.Key(), c.B.Key(), c.Tier, c.Priority, dir, pods, flow, c.Port,
		c.A.Key(), dir, c.RuleA.Index, c.RuleA.Action, c.B.Key(), dir, c.RuleB.Index, c.RuleB.Action, win)
}

// TierConflicts finds the traffic that cluster policies of equal tier and
// priority decide differently, as Set.Evaluate reports it in Side.Ties:
// for a pod both policies select, a flow that reaches their tier and that
// no earlier priority decided, on which their first matching rules have
// different actions.
// It evaluates every active pod as subject against every active pod and
// one address of every part of the address space that networks, ipBlocks
// and node addresses distinguish, on every port where a rule's protocols
// begin or end (or a named port resolves); domain-name peers are not
// considered. It returns one conflict per pair of policies and direction,
// sorted.
func TierConflicts(ctx context.Context, set *policy.Set) ([]TierConflict, error) {
	if !hasSharedPriority(set) {
		return nil, nil
	}
	active, _ := set.Cluster.ActivePods()
	cells := newCellIndex(set)
	pods := append(append([]*cluster.Pod(nil), active...), externalEndpoints(set, cells)...)
	classes, classOf := classify(set, pods, cells)
	ev := newEvaluator(set, classes)
	// Pods per class (the external endpoints are never subjects), and a
	// second pod of each class, to name a peer of the subject's class.
	sizes := make([]int, len(classes))
	second := make([]*cluster.Pod, len(classes))
	for i := range active {
		c := classOf[i]
		if sizes[c]++; sizes[c] == 2 {
			second[c] = active[i]
		}
	}
	type pairKey struct {
		t    policy.Tier
		dir  policy.Direction
		a, b int32
	}
	found := map[pairKey]*TierConflict{}
	counted := map[pairKey]map[int]bool{}
	// A class's walk of a tier depends on the policies selecting it, on
	// the address family it sees its peers in and, for ingress, on its
	// container ports of the names of named ports: classes alike in these
	// have the same ties.
	intern := map[string]int32{}
	id := func(s string) int32 {
		v, ok := intern[s]
		if !ok {
			v = int32(len(intern))
			intern[s] = v
		}
		return v
	}
	var sig [2][2][]int32
	var kb []byte
	for _, t := range policy.Tiers {
		for _, dir := range policy.Directions {
			sig[t][dir] = make([]int32, len(classes))
			for c := range classes {
				kb = kb[:0]
				for _, e := range ev.tiers.selects[t][dir][c] {
					kb = binary.LittleEndian.AppendUint32(kb, uint32(e.idx))
				}
				sig[t][dir][c] = id(string(kb))
			}
		}
	}
	trel := newTierRelevance(set)
	named := make([]int32, len(classes))
	for c, cl := range classes {
		var b strings.Builder
		trel.writeNamed(&b, cl.rep)
		named[c] = id(b.String())
	}
	type tieKey struct {
		t               policy.Tier
		dir             policy.Direction
		sig, admin, nps int32
		v               addrVariant
	}
	for _, port := range tiePorts(set) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ev.tiers.forPort(port)
		cache := map[tieKey][]tiePair{}
		for _, t := range policy.Tiers {
			for _, dir := range policy.Directions {
				for c := range classes {
					sel := ev.tiers.selects[t][dir][c]
					if !sharesGroup(sel) || ev.conflicted[c] {
						continue
					}
					// The Baseline tier sees what NetworkPolicy does not
					// isolate and the Admin tier did not decide.
					if t == policy.BaselineTier && len(ev.isolated[dir][c]) > 0 {
						continue
					}
					k := tieKey{t: t, dir: dir, sig: sig[t][dir][c], admin: -1, nps: -1, v: ev.peerVariant(dir, c)}
					if t == policy.BaselineTier {
						k.admin = sig[policy.AdminTier][dir][c]
					}
					if dir == policy.Ingress {
						k.nps = named[c]
					}
					pairs, hit := cache[k]
					if !hit {
						start := ev.all
						if t == policy.BaselineTier {
							if admin := ev.tierSets(policy.AdminTier, dir, c); admin != nil {
								start = ev.all.clone()
								start.andNot(admin.acc)
								start.andNot(admin.deny)
							}
						}
						pairs = ev.tierTiePairs(t, dir, c, start)
						cache[k] = pairs
					}
					for _, tp := range pairs {
						// A pod alone in its class has no peer there:
						// traffic to itself is not subject to policy.
						peer := tp.peers.first()
						if peer == c && sizes[c] < 2 {
							if peer = tp.peers.next(c + 1); peer < 0 {
								continue
							}
						}
						pk := pairKey{t, dir, tp.a.idx, tp.b.idx}
						if counted[pk] == nil {
							counted[pk] = map[int]bool{}
						}
						counted[pk][c] = true
						if found[pk] != nil {
							continue
						}
						peerName := classes[peer].rep.Key()
						switch {
						case classes[peer].rep.Namespace == "":
							peerName = classes[peer].rep.IPs[0].String()
						case peer == c:
							peerName = second[c].Key()
						}
						found[pk] = &TierConflict{Tier: t, Priority: set.Groups[t][tp.a.group].Priority, Direction: dir,
							A: tp.a.p, B: tp.b.p, RuleA: ev.firstMatch(tp.a.p, dir, c, peer), RuleB: ev.firstMatch(tp.b.p, dir, c, peer),
							Subject: classes[c].rep, Peer: peerName, Port: port}
					}
				}
			}
		}
	}
	out := make([]TierConflict, 0, len(found))
	for k, f := range found {
		for c := range counted[k] {
			f.Pods += sizes[c]
		}
		out = append(out, *f)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Tier != b.Tier {
			return a.Tier < b.Tier
		}
		if a.Priority != b.Priority {
			return a.Priority < b.Priority
		}
		if a.A.Key() != b.A.Key() {
			return a.A.Key() < b.A.Key()
		}
		if a.B.Key() != b.B.Key() {
			return a.B.Key() < b.B.Key()
		}
		return a.Direction < b.Direction
	})
	return out, nil
}

// hasSharedPriority reports whether two cluster policies share a tier and
// a priority.
func hasSharedPriority(set *policy.Set) bool {
	for _, t := range policy.Tiers {
		for _, g := range set.Groups[t] {
			if len(g.Policies) > 1 {
				return true
			}
		}
	}
	return false
}

// sharesGroup reports whether two entries are of one priority group.
func sharesGroup(sel []tierEntry) bool {
	for i := 1; i < len(sel); i++ {
		if sel[i].group == sel[i-1].group {
			return true
		}
	}
	return false
}

// tiePair is two policies of one priority group (a's key first) and the
// peer classes on which their first matches give different actions.
type tiePair struct {
	a, b  tierEntry
	peers bitset
}

// tierTiePairs walks tier t for class c in dir as tierSets does, over the
// peer classes in start, and returns the pairs of policies of one group
// that disagree on peers still undecided when their group is reached.
func (ev *evaluator) tierTiePairs(t policy.Tier, dir policy.Direction, c int, start bitset) []tiePair {
	sel := ev.tiers.selects[t][dir][c]
	rep := ev.classes[c].rep
	v := ev.peerVariant(dir, c)
	// No tie after the last group with two policies.
	end := 0
	for i := 1; i < len(sel); i++ {
		if sel[i].group == sel[i-1].group {
			end = i + 1
		}
	}
	und := start.clone()
	var out []tiePair
	var results []*actionSets
	for i := 0; i < end && !und.empty(); {
		j := i + 1
		for j < len(sel) && sel[j].group == sel[i].group {
			j++
		}
		results = results[:0]
		for k := i; k < j; k++ {
			key, ok := ev.resultKeyFor(sel[k], dir, v, rep)
			results = append(results, ev.policyResult(sel[k], dir, v, rep, key, ok))
		}
		for a := 0; a < len(results); a++ {
			for b := a + 1; b < len(results); b++ {
				ra, rb := results[a], results[b]
				peers := newBitset(ev.n)
				for _, pair := range [][2]bitset{{ra.acc, rb.deny}, {ra.acc, rb.pass}, {ra.deny, rb.acc}, {ra.deny, rb.pass}, {ra.pass, rb.acc}, {ra.pass, rb.deny}} {
					peers.orAnd(pair[0], pair[1])
				}
				peers.and(und)
				if peers.empty() {
					continue
				}
				ea, eb := sel[i+a], sel[i+b]
				if ea.p.Key() > eb.p.Key() {
					ea, eb = eb, ea
				}
				out = append(out, tiePair{ea, eb, peers})
			}
		}
		for _, r := range results {
			und.andNot(r.acc)
			und.andNot(r.deny)
			und.andNot(r.pass)
		}
		i = j
	}
	return out
}

// externalEndpoints returns one address outside the pods per part of the
// address space that networks and ipBlocks tell apart, and every node
// address, each as a host-network stand-in: matched by address only,
// never a subject.
func externalEndpoints(set *policy.Set, cells *cellIndex) []*cluster.Pod {
	var addrs []netip.Addr
	seen := map[netip.Addr]bool{}
	add := func(ip netip.Addr) {
		if ip.IsValid() && !seen[ip] {
			seen[ip] = true
			addrs = append(addrs, ip)
		}
	}
	for i, start := range cells.bounds {
		ip := start
		// Prefer an address no pod holds, within the cell.
		for k := 0; k < 4 && set.Cluster.PodByIP(ip) != nil; k++ {
			next := ip.Next()
			if !next.IsValid() || (i+1 < len(cells.bounds) && !next.Less(cells.bounds[i+1])) {
				break
			}
			ip = next
		}
		add(ip)
	}
	for _, n := range set.Cluster.Nodes {
		for _, ip := range n.Addrs {
			add(ip)
		}
	}
	out := make([]*cluster.Pod, len(addrs))
	for i, ip := range addrs {
		out[i] = &cluster.Pod{Name: ip.String(), HostNetwork: true, Phase: corev1.PodRunning, IPs: []netip.Addr{ip}}
	}
	return out
}

// tiePorts returns the ports where the protocols of the rules of policies
// sharing a priority can begin or end: port 1 of each protocol, the start
// and the end plus one of every range, and every container port of a
// named port's name (and plus one).
func tiePorts(set *policy.Set) []Port {
	seen := map[Port]bool{}
	add := func(proto corev1.Protocol, n int32) {
		if n >= 1 && n <= 65535 {
			seen[Port{Protocol: proto, Port: n}] = true
		}
	}
	for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP} {
		add(proto, 1)
	}
	names := map[string]bool{}
	for _, t := range policy.Tiers {
		for _, g := range set.Groups[t] {
			if len(g.Policies) < 2 {
				continue
			}
			for _, p := range g.Policies {
				for _, dir := range policy.Directions {
					for _, r := range p.Rules[dir] {
						for _, tp := range r.Ports {
							if tp.Name != "" {
								names[tp.Name] = true
								continue
							}
							add(tp.Protocol, tp.From)
							add(tp.Protocol, tp.To+1)
						}
					}
				}
			}
		}
	}
	for _, pod := range set.Cluster.Pods {
		for _, cp := range pod.Ports {
			if names[cp.Name] {
				add(cp.Protocol, cp.Port)
				add(cp.Protocol, cp.Port+1)
			}
		}
	}
	out := make([]Port, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	SortPorts(out)
	return out
}
