package policy

import (
	"cmp"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/iprange"
)

// This file resolves a tier of cluster policies for one pod and direction
// into what the dataplane renders: ordered items (TierAllowance), then
// disjoint rectangles labelled with actions (NormalizeTier). It follows
// Set.decideTier exactly; a property test holds the two together.

// TierItem is one thing a tier decides for a pod in one direction: peer
// addresses times a service, the rule's action, and its place in the
// tier's order.
type TierItem struct {
	Item
	Action Action
	// Group is the position of the policy's priority group in the tier,
	// Policy the policy's position in the group, Rule the rule's position
	// in the policy: the first match per policy wins, the most restrictive
	// action per group, the first group.
	Group, Policy, Rule int32
}

// TierAllowance is what the policies of one tier decide for a pod in one
// direction.
type TierAllowance struct {
	Pod       *cluster.Pod
	Direction Direction
	Tier      Tier
	// Policies are the tier's policies that select the pod and have rules
	// in Direction, in evaluation order.
	Policies []*ClusterPolicy
	Items    []TierItem
}

// TierPolicies returns the policies of tier t that select pod and have
// rules in dir, in evaluation order: what a pod's tier allowance depends
// on, besides the pod's own named ports (Ingress) and the peers.
func (s *Set) TierPolicies(pod *cluster.Pod, dir Direction, t Tier) []*ClusterPolicy {
	if pod.HostNetwork {
		return nil
	}
	var out []*ClusterPolicy
	nsLabels := s.Cluster.NamespaceLabels(pod.Namespace)
	for _, g := range s.Groups[t] {
		for _, p := range g.Policies {
			if len(p.Rules[dir]) > 0 && p.Selects(pod, nsLabels) {
				out = append(out, p)
			}
		}
	}
	return out
}

// ResolveTier returns what tier t decides for pod in dir, or nil when no
// policy of the tier selects it in dir. Host-network pods are never
// subjects; a pod holding a conflicted address is denied everything
// above every tier, so it has no tier allowance either.
func (r *Resolver) ResolveTier(pod *cluster.Pod, dir Direction, t Tier) *TierAllowance {
	if pod.HostNetwork || r.set.Cluster.Conflicted(pod) {
		return nil
	}
	pols := r.set.TierPolicies(pod, dir, t)
	if len(pols) == 0 {
		return nil
	}
	ta := &TierAllowance{Pod: pod, Direction: dir, Tier: t, Policies: pols}
	gi, pi := int32(-1), int32(0)
	var prio int32
	for i, p := range pols {
		if i == 0 || p.Priority != prio {
			gi, pi, prio = gi+1, 0, p.Priority
		} else {
			pi++
		}
		for ri := range p.Rules[dir] {
			rule := &p.Rules[dir][ri]
			r.resolveTierRule(ta, p, rule, TierItem{Action: rule.Action, Group: gi, Policy: pi, Rule: int32(ri)})
		}
	}
	return ta
}

func (r *Resolver) resolveTierRule(ta *TierAllowance, p *ClusterPolicy, rule *TierRule, base TierItem) {
	src := RuleMatch{ClusterPolicy: p, Direction: ta.Direction, Rule: rule.Index, Peer: -1, Port: -1}
	add := func(addrs []AddrRange, svc Service, peer, port int, pod *cluster.Pod) {
		if len(addrs) == 0 {
			return
		}
		it := base
		s := src
		s.Peer, s.Port = peer, port
		it.Item = Item{Addrs: addrs, Service: svc, Source: s, Pod: pod}
		ta.Items = append(ta.Items, it)
	}
	for peerIdx := range rule.Peers {
		peer := &rule.Peers[peerIdx]
		addrs := r.tierPeerAddrs(peer)
		if len(rule.Ports) == 0 {
			add(addrs, Service{AllProtocols: true}, peerIdx, -1, nil)
			continue
		}
		for portIdx, port := range rule.Ports {
			if port.Name == "" {
				add(addrs, Service{Protocol: port.Protocol, FromPort: port.From, ToPort: port.To}, peerIdx, portIdx, nil)
				continue
			}
			if ta.Direction == Ingress {
				// The destination is the pod itself.
				for _, cp := range ta.Pod.Ports {
					if cp.Name == port.Name {
						add(addrs, Service{Protocol: cp.Protocol, FromPort: cp.Port, ToPort: cp.Port}, peerIdx, portIdx, nil)
					}
				}
				continue
			}
			// Egress: every destination pod of the peer with the port.
			for _, op := range r.tierPeerPods(peer) {
				for _, cp := range op.pod.Ports {
					if cp.Name == port.Name {
						add(op.addrs, Service{Protocol: cp.Protocol, FromPort: cp.Port, ToPort: cp.Port}, peerIdx, portIdx, op.pod)
					}
				}
			}
		}
	}
}

// tierPeerAddrs returns the addresses of a peer, sorted and disjoint.
func (r *Resolver) tierPeerAddrs(p *TierPeer) []AddrRange {
	switch {
	case p.Everything:
		return Everything()
	case p.Pod != nil:
		return r.peerAddrs(p.Pod)
	case len(p.Networks) > 0:
		out := make([]AddrRange, len(p.Networks))
		for i, n := range p.Networks {
			out[i] = PrefixRange(n)
		}
		return iprange.Merge(out)
	case p.Nodes != nil:
		var out []AddrRange
		for _, n := range r.set.Cluster.Nodes {
			if p.Nodes.Matches(n.Labels) {
				for _, ip := range n.Addrs {
					out = append(out, AddrRange{From: ip, To: ip})
				}
			}
		}
		if len(out) == 0 {
			return nil
		}
		return iprange.Merge(out)
	}
	return nil // domain names: not enforced (see CompileCluster's notes)
}

// tierPeerPods returns the active pod-network pods a peer matches, for
// named ports: the pods of a pods or namespaces peer, the pods with an
// address in a network. Node addresses and domain names have no named
// ports.
func (r *Resolver) tierPeerPods(p *TierPeer) []*ownedPod {
	switch {
	case p.Pod != nil:
		return r.peerPods(p.Pod)
	case p.Everything || len(p.Networks) > 0:
		var out []*ownedPod
		for _, op := range r.ownedPods() {
			if op.pod.HostNetwork {
				continue
			}
			var in []AddrRange
			for _, ar := range op.addrs {
				if p.Everything || slices.ContainsFunc(p.Networks, func(n netip.Prefix) bool { return n.Contains(ar.From) }) {
					in = append(in, ar)
				}
			}
			if len(in) > 0 {
				out = append(out, &ownedPod{pod: op.pod, addrs: in})
			}
		}
		return out
	}
	return nil
}

// Decide returns the action of the rectangle holding peer ip on
// proto/port, and false when none holds it (the layer does not decide).
// Ports rectangles are looked up before All ones.
func (n *Normalized) Decide(ip netip.Addr, proto corev1.Protocol, port int32) (Action, bool) {
	k := iprange.KeyOf(ip.Unmap())
	in := func(r *Rect) bool { return r.From.Compare(k) <= 0 && k.Compare(r.To) <= 0 }
	num := ProtocolNumber(proto)
	if ProtocolOf(num) != proto {
		num = AnyProtocol
	}
	for i := range n.Ports {
		if r := &n.Ports[i]; r.Protocol == num && int32(r.FromPort) <= port && port <= int32(r.ToPort) && in(r) {
			return r.Action, true
		}
	}
	for i := range n.All {
		if r := &n.All[i]; in(r) {
			return r.Action, true
		}
	}
	return Accept, false
}

// tierSpan is an item's address range with the item's index.
type tierSpan struct {
	from, to iprange.Key
	item     int32
}

// NormalizeTier returns a tier allowance as disjoint rectangles labelled
// with the action that decides them: All rectangles over every protocol
// (decided by the items without ports), and Ports rectangles, looked up
// first, wherever an item with ports covers the point (decided by every
// item covering it). Adjacent rectangles with equal actions merge, their
// sources joined. The result is valid until the next call.
func (z *Normalizer) NormalizeTier(ta *TierAllowance) *Normalized {
	sets := newSourceSets()
	n := &z.n
	clear(n.Sources)
	clear(n.SourceSets)
	*n = Normalized{All: n.All[:0], Ports: n.Ports[:0], Sources: n.Sources[:0], SourceSets: n.SourceSets[:0]}
	srcIndex := map[RuleMatch]int32{}
	single := make([]int32, len(ta.Items))
	for i := range ta.Items {
		it := &ta.Items[i]
		si, ok := srcIndex[it.Source]
		if !ok {
			si = int32(len(n.Sources))
			srcIndex[it.Source] = si
			n.Sources = append(n.Sources, it.Source)
		}
		single[i] = sets.id([]int32{si})
	}
	d := &decider{items: ta.Items, single: single, sets: sets, labels: map[[2]int32]int32{}}
	// All: the items without ports.
	var anySpans []tierSpan
	for i := range ta.Items {
		if it := &ta.Items[i]; it.Service.AllProtocols {
			for _, r := range it.Addrs {
				anySpans = append(anySpans, tierSpan{iprange.KeyOf(r.From), iprange.KeyOf(r.To), int32(i)})
			}
		}
	}
	// The elementary pieces of the all-protocols items, with the items
	// covering each: computed once, then decided for the All rectangles
	// and joined with each port piece's items.
	anyPieces := elementary(anySpans)
	var all []iprange.Span
	for i := range anyPieces {
		all = d.appendDecided(all, anyPieces[i].from, anyPieces[i].to, anyPieces[i].cover, false)
	}
	for _, sp := range all {
		n.All = append(n.All, Rect{From: sp.From, To: sp.To, Protocol: AnyProtocol, ToPort: 65535, Action: d.action(sp.Label), Sources: d.src(sp.Label)})
	}
	// Ports: per protocol and family, cut the port axis at every boundary
	// of the items with ports.
	type pf struct {
		proto corev1.Protocol
		v4    bool
	}
	byPF := map[pf][]int32{}
	for i := range ta.Items {
		it := &ta.Items[i]
		if it.Service.AllProtocols {
			continue
		}
		fams := [2]bool{}
		for _, r := range it.Addrs {
			fams[boolIndex(r.Is4())] = true
		}
		for f, ok := range fams {
			if ok {
				k := pf{it.Service.Protocol, f == 1}
				byPF[k] = append(byPF[k], int32(i))
			}
		}
	}
	keys := make([]pf, 0, len(byPF))
	for k := range byPF {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b pf) int {
		if c := cmp.Compare(a.proto, b.proto); c != 0 {
			return c
		}
		return -cmp.Compare(boolIndex(a.v4), boolIndex(b.v4))
	})
	for _, k := range keys {
		items := byPF[k]
		var bounds []int32
		for _, i := range items {
			bounds = append(bounds, ta.Items[i].Service.FromPort, ta.Items[i].Service.ToPort+1)
		}
		slices.Sort(bounds)
		bounds = slices.Compact(bounds)
		type piece struct {
			from, to int32
			spans    []iprange.Span
		}
		var pieces []piece
		for bi := 0; bi+1 < len(bounds); bi++ {
			lo, hi := bounds[bi], bounds[bi+1]-1
			var spans []tierSpan
			covered := false
			for _, i := range items {
				if svc := ta.Items[i].Service; svc.FromPort <= lo && hi <= svc.ToPort {
					covered = true
					for _, r := range ta.Items[i].Addrs {
						if r.Is4() == k.v4 {
							spans = append(spans, tierSpan{iprange.KeyOf(r.From), iprange.KeyOf(r.To), i})
						}
					}
				}
			}
			if !covered {
				continue
			}
			out := d.overlayPorts(spans, anyPieces)
			if len(out) == 0 {
				continue
			}
			if np := len(pieces); np > 0 && pieces[np-1].to+1 == lo && slices.Equal(pieces[np-1].spans, out) {
				pieces[np-1].to = hi
				continue
			}
			pieces = append(pieces, piece{from: lo, to: hi, spans: out})
		}
		proto := ProtocolNumber(k.proto)
		for _, p := range pieces {
			for _, sp := range p.spans {
				n.Ports = append(n.Ports, Rect{From: sp.From, To: sp.To, Protocol: proto, FromPort: uint16(p.from), ToPort: uint16(p.to),
					Action: d.action(sp.Label), Sources: d.src(sp.Label)})
			}
		}
	}
	n.SourceSets, z.remap = renumber(n.SourceSets, z.remap, sets.lists, n.All, n.Ports)
	return n
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

// decider decides elementary pieces of an overlay of tier items.
type decider struct {
	items  []TierItem
	single []int32 // the source set of each item alone
	sets   *sourceSets
	// labels numbers (action, source set) pairs; kinds holds them.
	labels map[[2]int32]int32
	kinds  [][2]int32
}

func (d *decider) label(a Action, src int32) int32 {
	k := [2]int32{int32(a), src}
	if l, ok := d.labels[k]; ok {
		return l
	}
	l := int32(len(d.kinds))
	d.labels[k] = l
	d.kinds = append(d.kinds, k)
	return l
}

func (d *decider) action(l int32) Action { return Action(d.kinds[l][0]) }
func (d *decider) src(l int32) int32     { return d.kinds[l][1] }

// decide returns the label of a point covered by the items listed, or -1
// when they decide nothing (or, with needPorts, when no item with ports
// covers it: the All rectangles decide it alike).
func (d *decider) decide(cover []int32, needPorts bool) int32 {
	if len(cover) == 0 {
		return -1
	}
	if needPorts && !slices.ContainsFunc(cover, func(i int32) bool { return !d.items[i].Service.AllProtocols }) {
		return -1
	}
	g := d.items[cover[0]].Group
	for _, i := range cover {
		g = min(g, d.items[i].Group)
	}
	// The first matching rule of each policy of group g.
	first := map[int32]int32{}
	for _, i := range cover {
		it := &d.items[i]
		if it.Group != g {
			continue
		}
		if r, ok := first[it.Policy]; !ok || it.Rule < r {
			first[it.Policy] = it.Rule
		}
	}
	var act Action
	for _, i := range cover {
		it := &d.items[i]
		if it.Group == g && first[it.Policy] == it.Rule && it.Action.Restrictiveness() > act.Restrictiveness() {
			act = it.Action
		}
	}
	src := int32(-1)
	for _, i := range cover {
		it := &d.items[i]
		if it.Group == g && first[it.Policy] == it.Rule && it.Action == act {
			if src < 0 {
				src = d.single[i]
			} else {
				src = d.sets.union(src, d.single[i])
			}
		}
	}
	return d.label(act, src)
}

// piece is an elementary piece of an overlay: addresses that the same
// items cover.
type piece struct {
	from, to iprange.Key
	cover    []int32
}

// elementary cuts spans at every boundary and returns the pieces some
// span covers, sorted and disjoint, each with the items covering it.
func elementary(spans []tierSpan) []piece {
	if len(spans) == 0 {
		return nil
	}
	// Often the spans are sorted and disjoint already (one item, or items
	// over distinct addresses): each is a piece.
	disjoint := true
	for i := 1; i < len(spans) && disjoint; i++ {
		disjoint = spans[i-1].to.Compare(spans[i].from) < 0
	}
	if disjoint {
		out := make([]piece, len(spans))
		items := make([]int32, len(spans))
		for i, sp := range spans {
			items[i] = sp.item
			out[i] = piece{from: sp.from, to: sp.to, cover: items[i : i+1 : i+1]}
		}
		return out
	}
	// Sweep the spans in order of their starts (they come in sorted runs,
	// one per item, which SortSpans merges), keeping those that cover
	// the current position.
	sorted := make([]iprange.Span, len(spans))
	for i, sp := range spans {
		sorted[i] = iprange.Span{From: sp.from, To: sp.to, Label: sp.item}
	}
	iprange.SortSpans(sorted)
	var out []piece
	var active []iprange.Span
	var pos iprange.Key
	next := 0
	for next < len(sorted) || len(active) > 0 {
		if len(active) == 0 {
			pos = sorted[next].From
		}
		for next < len(sorted) && sorted[next].From.Compare(pos) <= 0 {
			active = append(active, sorted[next])
			next++
		}
		// The piece ends where the first active span ends, or before the
		// next span starts.
		hi := active[0].To
		for _, a := range active[1:] {
			if a.To.Compare(hi) < 0 {
				hi = a.To
			}
		}
		if next < len(sorted) && sorted[next].From.Compare(hi) <= 0 {
			hi = sorted[next].From.Prev()
		}
		cover := make([]int32, len(active))
		for k, a := range active {
			cover[k] = a.Label
		}
		out = append(out, piece{from: pos, to: hi, cover: cover})
		active = slices.DeleteFunc(active, func(a iprange.Span) bool { return a.To.Compare(hi) <= 0 })
		if len(active) > 0 {
			pos = hi.Next()
		}
	}
	return out
}

// appendDecided decides the addresses lo..hi covered by the items listed
// and appends them to out, merged with the last span when adjacent and of
// equal action (their sources joined).
func (d *decider) appendDecided(out []iprange.Span, lo, hi iprange.Key, cover []int32, needPorts bool) []iprange.Span {
	l := d.decide(cover, needPorts)
	if l < 0 {
		return out
	}
	if k := len(out); k > 0 && out[k-1].From.Fam == lo.Fam && !out[k-1].To.IsMax() && out[k-1].To.Next() == lo && d.action(out[k-1].Label) == d.action(l) {
		out[k-1].To = hi
		if out[k-1].Label != l {
			out[k-1].Label = d.label(d.action(l), d.sets.union(d.src(out[k-1].Label), d.src(l)))
		}
		return out
	}
	return append(out, iprange.Span{From: lo, To: hi, Label: l})
}

// overlayPorts decides the addresses the spans of items with ports cover,
// together with the all-protocols items (anyPieces, sorted and disjoint)
// covering the same addresses, and merges adjacent results of equal
// action. Its cost grows with the spans given and the all-protocols
// pieces they overlap, not with every all-protocols piece.
func (d *decider) overlayPorts(spans []tierSpan, anyPieces []piece) []iprange.Span {
	var out []iprange.Span
	var cover []int32
	j := 0 // both lists are sorted: walk them together
	for _, pp := range elementary(spans) {
		// The first all-protocols piece ending at or after pp.from.
		for j < len(anyPieces) && anyPieces[j].to.Compare(pp.from) < 0 {
			j++
		}
		lo := pp.from
		for k := j; lo.Compare(pp.to) <= 0; {
			if k >= len(anyPieces) || anyPieces[k].from.Compare(pp.to) > 0 {
				out = d.appendDecided(out, lo, pp.to, pp.cover, true)
				break
			}
			a := &anyPieces[k]
			if lo.Compare(a.from) < 0 {
				// A gap before the next all-protocols piece.
				out = d.appendDecided(out, lo, a.from.Prev(), pp.cover, true)
				lo = a.from
			}
			hi := a.to
			if pp.to.Compare(hi) < 0 {
				hi = pp.to
			}
			cover = append(append(cover[:0], pp.cover...), a.cover...)
			out = d.appendDecided(out, lo, hi, cover, true)
			if hi.IsMax() || hi == pp.to {
				break
			}
			lo = hi.Next()
			k++
		}
	}
	return out
}
