package analysis

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// This file extends the bitset evaluator to cluster-scoped policies, with
// Set.Evaluate as the reference. Per class (the subject) and direction,
// the Admin tier's priority groups are walked in order over the set of
// peer classes still undecided: each policy of a group that selects the
// subject decides its peers by its first matching rule, the group by the
// most restrictive action of its policies (Deny, then Pass, then Accept),
// and what a group decides leaves the undecided set. Then NetworkPolicy
// decides, for a class it isolates, what the Admin tier left undecided or
// passed; for a class it does not isolate the Baseline tier does the same
// walk, where only Deny denies. What is left is allowed by default. All of
// it is bitset operations over classes; the walk of a class is cached by
// the policies it depends on.

// actionSets partitions peer classes by the action that decided them; a
// class in none of the three is undecided.
type actionSets struct {
	acc, deny, pass bitset
}

// tierEntry is a policy selecting a class: its priority group (an index
// into the tier's groups) and its index in Set.ClusterPolicies.
type tierEntry struct {
	group int32
	idx   int32
	p     *policy.ClusterPolicy
}

// tierState is the evaluator's state for cluster-scoped policies.
type tierState struct {
	// selects[t][dir][c] are the policies of tier t, in evaluation order,
	// that select class c and have rules in dir.
	selects [2][2][][]tierEntry
	peers   map[tierPeerKey]bitset
	rules   map[tierRuleKey]bitset
	named   map[namedKey]bitset

	// Per port, reset by forPort.
	port    Port
	results map[resultKey]*actionSets
	walks   [2][2]map[string]*actionSets
	key     []byte
	scratch []resultKey
}

type tierPeerKey struct {
	p *policy.TierPeer
	v addrVariant
}

type tierRuleKey struct {
	r *policy.TierRule
	v addrVariant
}

// resultKey names what a policy's first-match partition depends on at one
// port: the policy, the direction, the address variant of the peers and,
// for ingress, which rules' protocols match at the subject (named ports
// resolve against it).
type resultKey struct {
	idx   int32
	dir   policy.Direction
	v     addrVariant
	ports [2]uint64
}

// maxCachedRules bounds the rules whose port matches fit in a resultKey.
const maxCachedRules = 128

func newTierState(ev *evaluator) *tierState {
	set := ev.set
	ts := &tierState{peers: map[tierPeerKey]bitset{}, rules: map[tierRuleKey]bitset{}, named: map[namedKey]bitset{}}
	index := make(map[*policy.ClusterPolicy]int32, len(set.ClusterPolicies))
	for i, p := range set.ClusterPolicies {
		index[p] = int32(i)
	}
	nsNames := make([]string, 0, len(ev.nsIndex))
	for ns := range ev.nsIndex {
		nsNames = append(nsNames, ns)
	}
	sort.Strings(nsNames)
	for _, t := range policy.Tiers {
		for _, dir := range policy.Directions {
			ts.selects[t][dir] = make([][]tierEntry, ev.n)
		}
		for gi, g := range set.Groups[t] {
			for _, p := range g.Policies {
				e := tierEntry{group: int32(gi), idx: index[p], p: p}
				for _, ns := range nsNames {
					if !p.Namespaces.Matches(set.Cluster.NamespaceLabels(ns)) {
						continue
					}
					for _, c := range ev.nsIndex[ns] {
						if !p.Pods.Empty() && !p.Pods.Matches(ev.classes[c].rep.Labels) {
							continue
						}
						for _, dir := range policy.Directions {
							if len(p.Rules[dir]) > 0 {
								ts.selects[t][dir][c] = append(ts.selects[t][dir][c], e)
							}
						}
					}
				}
			}
		}
	}
	return ts
}

// forPort prepares the per-port caches.
func (ts *tierState) forPort(port Port) {
	if ts.results != nil && ts.port == port {
		return
	}
	ts.port = port
	ts.results = map[resultKey]*actionSets{}
	for t := range ts.walks {
		for d := range ts.walks[t] {
			ts.walks[t][d] = map[string]*actionSets{}
		}
	}
}

// peerVariant is the address of a peer class the subject class c sees in
// dir: the destination's primary address for egress, the source's address
// of the destination's family for ingress.
func (ev *evaluator) peerVariant(dir policy.Direction, c int) addrVariant {
	if dir == policy.Ingress {
		return variantFor(ev.classes[c].rep.IPs[0])
	}
	return primaryAddr
}

// tierSets returns what tier t decides for class c in dir at the current
// port, over peer classes, or nil when no policy of the tier selects c.
func (ev *evaluator) tierSets(t policy.Tier, dir policy.Direction, c int) *actionSets {
	ts := ev.tiers
	sel := ts.selects[t][dir][c]
	if len(sel) == 0 {
		return nil
	}
	rep := ev.classes[c].rep
	v := ev.peerVariant(dir, c)
	b, cacheable := ev.walkKey(ts.key[:0], t, dir, c)
	ts.key = b
	var key string
	if cacheable {
		if r, ok := ts.walks[t][dir][string(b)]; ok {
			return r
		}
		key = string(b)
	}
	// walkKey left the policies' result keys in the scratch space, which
	// later calls reuse: copy them.
	keys := append([]resultKey(nil), ts.scratch...)
	und := ev.all.clone()
	out := &actionSets{acc: newBitset(ev.n), deny: newBitset(ev.n), pass: newBitset(ev.n)}
	apply := func(a, d, p bitset) {
		out.acc.orAnd(a, und)
		out.deny.orAnd(d, und)
		out.pass.orAnd(p, und)
		und.andNot(a)
		und.andNot(d)
		und.andNot(p)
	}
	var gAcc, gDeny, gPass bitset
	for i := 0; i < len(sel) && !und.empty(); {
		j := i + 1
		for j < len(sel) && sel[j].group == sel[i].group {
			j++
		}
		if j == i+1 {
			r := ev.policyResult(sel[i], dir, v, rep, keys[i], cacheable)
			apply(r.acc, r.deny, r.pass)
			i = j
			continue
		}
		if gAcc == nil {
			gAcc, gDeny, gPass = newBitset(ev.n), newBitset(ev.n), newBitset(ev.n)
		} else {
			clear(gAcc)
			clear(gDeny)
			clear(gPass)
		}
		for k := i; k < j; k++ {
			r := ev.policyResult(sel[k], dir, v, rep, keys[k], cacheable)
			gAcc.or(r.acc)
			gDeny.or(r.deny)
			gPass.or(r.pass)
		}
		// The most restrictive action of the group wins.
		gPass.andNot(gDeny)
		gAcc.andNot(gDeny)
		gAcc.andNot(gPass)
		apply(gAcc, gDeny, gPass)
		i = j
	}
	if cacheable {
		ts.walks[t][dir][key] = out
	}
	return out
}

// walkKey appends to b the key of class c's walk of tier t in dir (the
// result keys of the policies selecting it), and leaves the result keys in
// ts.scratch; ok is false when the walk cannot be keyed.
func (ev *evaluator) walkKey(b []byte, t policy.Tier, dir policy.Direction, c int) ([]byte, bool) {
	ts := ev.tiers
	rep := ev.classes[c].rep
	v := ev.peerVariant(dir, c)
	keys := ts.scratch[:0]
	cacheable := true
	for _, e := range ts.selects[t][dir][c] {
		k, ok := ev.resultKeyFor(e, dir, v, rep)
		cacheable = cacheable && ok
		keys = append(keys, k)
	}
	ts.scratch = keys
	b = append(b, byte(v))
	for _, k := range keys {
		b = binary.LittleEndian.AppendUint32(b, uint32(k.idx))
		if dir == policy.Ingress {
			b = binary.LittleEndian.AppendUint64(b, k.ports[0])
			b = binary.LittleEndian.AppendUint64(b, k.ports[1])
		}
	}
	return b, cacheable
}

// resultKeyFor returns the key of a policy's partition for a subject; ok
// is false when the policy has too many rules to key (never after CRD
// validation).
func (ev *evaluator) resultKeyFor(e tierEntry, dir policy.Direction, v addrVariant, rep *cluster.Pod) (resultKey, bool) {
	k := resultKey{idx: e.idx, dir: dir, v: v}
	if dir == policy.Egress {
		return k, true
	}
	rules := e.p.Rules[dir]
	if len(rules) > maxCachedRules {
		return k, false
	}
	for ri := range rules {
		if ev.ingressPortMatches(&rules[ri], rep) {
			k.ports[ri>>6] |= 1 << (uint(ri) & 63)
		}
	}
	return k, true
}

// ingressPortMatches reports whether an ingress rule's protocols match the
// current port at the subject (the destination: named ports resolve
// against it).
func (ev *evaluator) ingressPortMatches(r *policy.TierRule, rep *cluster.Pod) bool {
	if len(r.Ports) == 0 {
		return true
	}
	port := ev.tiers.port
	for _, tp := range r.Ports {
		if tp.Matches(port.Protocol, port.Port, rep) {
			return true
		}
	}
	return false
}

// policyResult partitions the peer classes by the action of the policy's
// first matching rule at the current port.
func (ev *evaluator) policyResult(e tierEntry, dir policy.Direction, v addrVariant, rep *cluster.Pod, key resultKey, cacheable bool) *actionSets {
	ts := ev.tiers
	if cacheable {
		if r, ok := ts.results[key]; ok {
			return r
		}
	}
	res := &actionSets{acc: newBitset(ev.n), deny: newBitset(ev.n), pass: newBitset(ev.n)}
	done := newBitset(ev.n)
	m := newBitset(ev.n)
	rules := e.p.Rules[dir]
	for ri := range rules {
		r := &rules[ri]
		if !ev.ruleMatches(m, r, dir, v, rep) {
			continue
		}
		m.andNot(done)
		switch r.Action {
		case policy.Deny:
			res.deny.or(m)
		case policy.Pass:
			res.pass.or(m)
		default:
			res.acc.or(m)
		}
		done.or(m)
	}
	if cacheable {
		ts.results[key] = res
	}
	return res
}

// ruleMatches sets m to the peer classes a rule matches at the current
// port (protocols and peers), and reports false, leaving m as it was,
// when the rule cannot match at this port.
func (ev *evaluator) ruleMatches(m bitset, r *policy.TierRule, dir policy.Direction, v addrVariant, rep *cluster.Pod) bool {
	var mask bitset
	if dir == policy.Egress {
		var ok bool
		if mask, ok = ev.tierPortMask(r); !ok {
			return false
		}
	} else if !ev.ingressPortMatches(r, rep) {
		return false
	}
	copy(m, ev.tierRuleSet(r, v))
	if mask != nil {
		m.and(mask)
	}
	return true
}

// tierPortMask returns the destination classes at which an egress rule's
// protocols match the current port: nil for all of them, ok false for
// none. Named ports match every container port of that name (with its own
// protocol) of pod-network pods; never host-network pods or pods holding a
// conflicted address.
func (ev *evaluator) tierPortMask(r *policy.TierRule) (bitset, bool) {
	if len(r.Ports) == 0 {
		return nil, true
	}
	port := ev.tiers.port
	var mask bitset
	for _, tp := range r.Ports {
		if tp.Name == "" {
			if tp.Matches(port.Protocol, port.Port, nil) {
				return nil, true
			}
			continue
		}
		if mask == nil {
			mask = newBitset(ev.n)
		}
		mask.or(ev.tierNamedSet(tp.Name))
	}
	return mask, mask != nil
}

func (ev *evaluator) tierNamedSet(name string) bitset {
	ts := ev.tiers
	k := namedKey{name, ts.port}
	if b, ok := ts.named[k]; ok {
		return b
	}
	b := newBitset(ev.n)
	tp := policy.TierPort{Name: name}
	for i, c := range ev.classes {
		if !ev.conflicted[i] && tp.Matches(ts.port.Protocol, ts.port.Port, c.rep) {
			b.set(i)
		}
	}
	ts.named[k] = b
	return b
}

// tierRuleSet returns the classes a rule's peers match.
func (ev *evaluator) tierRuleSet(r *policy.TierRule, v addrVariant) bitset {
	ts := ev.tiers
	k := tierRuleKey{r, v}
	if b, ok := ts.rules[k]; ok {
		return b
	}
	var b bitset
	if len(r.Peers) == 1 {
		b = ev.tierPeerSet(&r.Peers[0], v)
	} else {
		b = newBitset(ev.n)
		for i := range r.Peers {
			b.or(ev.tierPeerSet(&r.Peers[i], v))
		}
	}
	ts.rules[k] = b
	return b
}

// tierPeerSet returns the classes a peer matches (Set.TierPeerMatches):
// pods by labels (pod-network pods not holding a conflicted address),
// networks and nodes by the address the subject sees.
func (ev *evaluator) tierPeerSet(p *policy.TierPeer, v addrVariant) bitset {
	switch {
	case p.Everything:
		return ev.all
	case p.Pod != nil:
		return ev.peerSet(p.Pod, v)
	}
	ts := ev.tiers
	k := tierPeerKey{p, v}
	if b, ok := ts.peers[k]; ok {
		return b
	}
	b := newBitset(ev.n)
	switch {
	case len(p.Networks) > 0:
		for i := range ev.classes {
			ip := ev.addrs[i][v].Unmap()
			for _, n := range p.Networks {
				if n.Contains(ip) {
					b.set(i)
					break
				}
			}
		}
	case p.Nodes != nil:
		for i := range ev.classes {
			for _, n := range ev.set.Cluster.NodesWithAddr(ev.addrs[i][v]) {
				if p.Nodes.Matches(n.Labels) {
					b.set(i)
					break
				}
			}
		}
	}
	// Domains match no pod; a peer with no field matches nothing.
	ts.peers[k] = b
	return b
}

// tierHit is the rule of a cluster policy that decided a cell.
type tierHit struct {
	p    *policy.ClusterPolicy
	rule *policy.TierRule
}

// tierMatch returns the rule of tier t that decides peer class peer for
// subject class c in dir at the current port, as Set.Evaluate picks it:
// in the first group with a match, the first policy (in key order) whose
// first matching rule has the most restrictive action.
func (ev *evaluator) tierMatch(t policy.Tier, dir policy.Direction, c, peer int) (tierHit, bool) {
	sel := ev.tiers.selects[t][dir][c]
	for i := 0; i < len(sel); {
		j := i + 1
		for j < len(sel) && sel[j].group == sel[i].group {
			j++
		}
		var best tierHit
		found := false
		for _, e := range sel[i:j] {
			r := ev.firstMatch(e.p, dir, c, peer)
			if r != nil && (!found || r.Action.Restrictiveness() > best.rule.Action.Restrictiveness()) {
				best, found = tierHit{e.p, r}, true
			}
		}
		if found {
			return best, true
		}
		i = j
	}
	return tierHit{}, false
}

// firstMatch returns the first rule of p in dir matching peer class peer
// for subject class c at the current port, or nil.
func (ev *evaluator) firstMatch(p *policy.ClusterPolicy, dir policy.Direction, c, peer int) *policy.TierRule {
	rep := ev.classes[c].rep
	v := ev.peerVariant(dir, c)
	rules := p.Rules[dir]
	for ri := range rules {
		r := &rules[ri]
		if dir == policy.Egress {
			mask, ok := ev.tierPortMask(r)
			if !ok || (mask != nil && !mask.has(peer)) {
				continue
			}
		} else if !ev.ingressPortMatches(r, rep) {
			continue
		}
		if ev.tierRuleSet(r, v).has(peer) {
			return r
		}
	}
	return nil
}

// Decision says what decided one direction of a matrix cell.
type Decision struct {
	// Layer is Admin, NetworkPolicy, Baseline or Default; empty for an
	// endpoint not subject to policy (a host-network pod), for a pod
	// holding a conflicted address (denied whatever policies say) and for
	// ingress from the pod's own node (allowed whatever policies say).
	Layer policy.Layer
	// Rule names the cluster policy rule that decided ("cnp/NAME
	// spec.egress[0]"), when one did: in the Admin or Baseline tier, or a
	// Baseline Pass that led to the default.
	Rule string
}

// decide returns what decides peer class peer for subject class c in dir
// at the current port.
func (ev *evaluator) decide(dir policy.Direction, c, peer int) Decision {
	rep := ev.classes[c].rep
	if rep.HostNetwork || ev.conflicted[c] || ev.fromOwnNode(dir, c, peer) {
		return Decision{}
	}
	if h, ok := ev.tierMatch(policy.AdminTier, dir, c, peer); ok && h.rule.Action != policy.Pass {
		return Decision{Layer: policy.LayerAdmin, Rule: h.String(dir)}
	}
	if len(ev.isolated[dir][c]) > 0 {
		return Decision{Layer: policy.LayerNetworkPolicy}
	}
	if h, ok := ev.tierMatch(policy.BaselineTier, dir, c, peer); ok {
		if h.rule.Action == policy.Pass {
			return Decision{Layer: policy.LayerDefault, Rule: h.String(dir)}
		}
		return Decision{Layer: policy.LayerBaseline, Rule: h.String(dir)}
	}
	return Decision{Layer: policy.LayerDefault}
}

// String returns "cnp/NAME spec.egress[0]".
func (h tierHit) String(dir policy.Direction) string {
	return fmt.Sprintf("%s spec.%s[%d]", h.p.Key(), strings.ToLower(dir.String()), h.rule.Index)
}

// tierRelevance is what of a pod cluster policies look at beyond what
// NetworkPolicy does (see relevance): the names of destination named
// ports (every container port of the name counts) and the node selectors
// of node peers (matched by the pod's addresses).
type tierRelevance struct {
	named    []string
	nodeSels []labels.Selector
	c        *cluster.Cluster
}

func newTierRelevance(set *policy.Set) *tierRelevance {
	if len(set.ClusterPolicies) == 0 {
		return nil
	}
	named := map[string]bool{}
	nodeSels := map[string]labels.Selector{}
	for _, p := range set.ClusterPolicies {
		for _, dir := range policy.Directions {
			for _, r := range p.Rules[dir] {
				for _, tp := range r.Ports {
					if tp.Name != "" {
						named[tp.Name] = true
					}
				}
				for _, peer := range r.Peers {
					if peer.Nodes != nil {
						nodeSels[peer.Nodes.String()] = peer.Nodes
					}
				}
			}
		}
	}
	tr := &tierRelevance{c: set.Cluster}
	for n := range named {
		tr.named = append(tr.named, n)
	}
	sort.Strings(tr.named)
	keys := make([]string, 0, len(nodeSels))
	for k := range nodeSels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		tr.nodeSels = append(tr.nodeSels, nodeSels[k])
	}
	return tr
}

// writeNamed writes, per destination named port name, every container
// port of the pod of that name.
func (tr *tierRelevance) writeNamed(b *strings.Builder, p *cluster.Pod) {
	var ports []string
	for _, n := range tr.named {
		ports = ports[:0]
		for _, cp := range p.Ports {
			if cp.Name == n {
				ports = append(ports, string(cp.Protocol)+"/"+strconv.Itoa(int(cp.Port)))
			}
		}
		sort.Strings(ports)
		b.WriteString(strings.Join(ports, ";"))
		b.WriteByte(',')
	}
}

// writeKey adds to a class key what cluster policies see of the pod: per
// destination named port name, every container port of that name; per
// address, the node selectors matching a node that has it.
func (tr *tierRelevance) writeKey(b *strings.Builder, p *cluster.Pod) {
	if tr == nil {
		return
	}
	b.WriteString("\x00tier")
	tr.writeNamed(b, p)
	if len(tr.nodeSels) == 0 {
		return
	}
	b.WriteByte(0)
	for _, ip := range p.IPs {
		nodes := tr.c.NodesWithAddr(ip)
		for _, s := range tr.nodeSels {
			match := byte('0')
			for _, n := range nodes {
				if s.Matches(n.Labels) {
					match = '1'
					break
				}
			}
			b.WriteByte(match)
		}
		b.WriteByte(',')
	}
}
