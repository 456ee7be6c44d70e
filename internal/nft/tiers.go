package nft

// This file renders the tiers of cluster-scoped policy: what each tier
// decides for a pod in a direction (tierEntry, resolved from
// policy.Resolver.ResolveTier and policy.Normalizer.NormalizeTier), and
// its maps. See the package documentation for the ruleset they make.

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strconv"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/iprange"
	"github.com/netfence/netfence/internal/policy"
)

// tierEntry is what one tier of cluster policy decides for one
// combination of direction, tier, selecting cluster policies and (for
// Ingress) named ports.
type tierEntry struct {
	// sum identifies the combination independently of the renderer's
	// history; map names derive from it.
	sum  [sha256.Size]byte
	tier policy.Tier
	dir  policy.Direction
	// log sends Deny elements to the direction's drop chain, which logs.
	log bool
	// elems are the rectangles by family (0: IPv4, 1: IPv6) and kind
	// (mapAddrs, mapPorts, mapPass) with their actions.
	elems [2][3][]tierElement
	deps
	used uint64
	// built are the maps made from elems, by name, with the render that
	// last used them.
	built map[string]builtMap
}

// tierElement is an element of a tier's map, before its verdict.
type tierElement struct {
	Element
	action policy.Action
}

type builtMap struct {
	m    *PeerSet
	used uint64
}

// Kinds of a tier's maps.
const (
	mapAddrs = iota // interval map of address ranges ("aa", "ba")
	mapPorts        // concatenated interval map of address range . protocol . port range ("ap", "bp")
	mapPass         // the Admin tier's ports elements that pass, a set ("app")
)

// covers reports whether the tier decides anything for a pod with the
// families fams.
func (te *tierEntry) covers(fams [2]bool) bool {
	for fi := range fams {
		if fams[fi] && len(te.elems[fi][mapAddrs])+len(te.elems[fi][mapPorts])+len(te.elems[fi][mapPass]) > 0 {
			return true
		}
	}
	return false
}

// podSubjects are the cluster policies that select a pod, per tier and
// direction, for one version of the pod.
type podSubjects struct {
	pod  *cluster.Pod
	pols [2][2][]*policy.ClusterPolicy
}

// subjectsOf returns the cluster policies of each tier that select pod
// and have rules in each direction (policy.Set.TierPolicies), cached per
// version of the pod.
func (r *Renderer) subjectsOf(s *policy.Set, pod *cluster.Pod) *[2][2][]*policy.ClusterPolicy {
	if len(s.ClusterPolicies) == 0 {
		return nil
	}
	if ps := r.subjects[pod.Key()]; ps != nil && ps.pod == pod {
		return &ps.pols
	}
	ps := &podSubjects{pod: pod}
	for _, t := range policy.Tiers {
		for _, dir := range policy.Directions {
			ps.pols[t][dir] = s.TierPolicies(pod, dir, t)
		}
	}
	r.subjects[pod.Key()] = ps
	return &ps.pols
}

// tierEntry returns the tier's decision for a pod in a direction,
// resolving it when the previous snapshot's cannot be reused. key is
// scratch space.
func (r *Renderer) tierEntry(key *[]byte, pod *cluster.Pod, dir policy.Direction, t policy.Tier, pols []*policy.ClusterPolicy, gen uint64) *tierEntry {
	b := append((*key)[:0], byte(t), byte(dir))
	for _, p := range pols {
		b = binary.AppendUvarint(b, r.cids[p])
	}
	b = appendTierNamedPorts(b, pod, dir, pols)
	*key = b
	te := r.tiers[string(b)]
	if te == nil {
		te = r.resolveTier(pod, dir, t, pols)
		r.tiers[string(b)] = te
		r.stats.Resolved++
	} else if te.used != gen {
		r.stats.Reused++
	}
	te.used = gen
	return te
}

// appendTierNamedPorts appends, for Ingress, the pod's container ports
// (protocol and number) for each named port of the policies' rules.
func appendTierNamedPorts(b []byte, pod *cluster.Pod, dir policy.Direction, pols []*policy.ClusterPolicy) []byte {
	if dir != policy.Ingress {
		return b
	}
	for _, p := range pols {
		for _, rule := range p.Rules[dir] {
			for _, port := range rule.Ports {
				if port.Name == "" {
					continue
				}
				b = append(b, 0)
				for _, cp := range pod.Ports {
					if cp.Name == port.Name {
						b = append(b, 1, policy.ProtocolNumber(cp.Protocol))
						b = binary.AppendVarint(b, int64(cp.Port))
					}
				}
			}
		}
	}
	return b
}

// resolveTier renders what a tier decides for a pod in a direction as a
// new entry.
func (r *Renderer) resolveTier(pod *cluster.Pod, dir policy.Direction, t policy.Tier, pols []*policy.ClusterPolicy) *tierEntry {
	te := &tierEntry{tier: t, dir: dir, log: r.opts.Log != nil, built: map[string]builtMap{}}
	// The identity: tier, direction, the selecting policies by key and
	// the named ports; within one snapshot it determines the decision.
	b := []byte{'t', byte(t), byte(dir)}
	for _, p := range pols {
		b = append(b, p.Key()...)
		b = append(b, 0)
	}
	b = appendTierNamedPorts(b, pod, dir, pols)
	te.sum = sha256.Sum256(b)
	for _, p := range pols {
		for _, rule := range p.Rules[dir] {
			named := slices.ContainsFunc(rule.Ports, func(tp policy.TierPort) bool { return tp.Name != "" })
			egressNamed := dir == policy.Egress && named
			for i := range rule.Peers {
				peer := &rule.Peers[i]
				switch {
				case peer.Everything:
					te.anyPod = te.anyPod || egressNamed
				case peer.Pod != nil:
					te.addPeer(policy.PeerKey(peer.Pod))
				case len(peer.Networks) > 0:
					if egressNamed {
						te.blocks = append(te.blocks, peer.Networks...)
					}
				case peer.Nodes != nil:
					te.nodes = true
				}
			}
		}
	}
	ta := r.res.ResolveTier(pod, dir, t)
	if ta == nil {
		return te
	}
	n := r.norm.NormalizeTier(ta)
	comments := map[[2]int32]string{}
	comment := func(rc *policy.Rect) string {
		k := [2]int32{int32(rc.Action), rc.Sources}
		c, ok := comments[k]
		if !ok {
			c = tierComment(n.SourcesOf(rc), rc.Action)
			comments[k] = c
		}
		return c
	}
	// Only what changes the outcome is rendered: an address rectangle
	// whose outcome is what no match gives (Pass in the Admin tier,
	// anything but Deny in the Baseline tier), and a ports rectangle whose
	// outcome the address rectangles give at each of its addresses, are
	// left out.
	none := outcomeOf(policy.Pass, t)
	var all []policy.Rect
	for i := range n.All {
		rc := &n.All[i]
		if outcomeOf(rc.Action, t) == none {
			continue
		}
		all = append(all, *rc)
		f := rc.From.Fam
		te.elems[f][mapAddrs] = append(te.elems[f][mapAddrs], tierElement{Element: Element{Addrs: rc.Addrs(), Comment: comment(rc)}, action: rc.Action})
	}
	for i := range n.Ports {
		rc := &n.Ports[i]
		if !changesOutcome(rc, all, t) {
			continue
		}
		f, kind := rc.From.Fam, mapPorts
		if t == policy.AdminTier && rc.Action == policy.Pass {
			// In the Pass set, whose rules go to the next layer.
			kind = mapPass
		}
		te.elems[f][kind] = append(te.elems[f][kind], tierElement{
			Element: Element{Addrs: rc.Addrs(), Proto: rc.Protocol, FromPort: rc.FromPort, ToPort: rc.ToPort, Comment: comment(rc)},
			action:  rc.Action,
		})
	}
	for f := range te.elems {
		for k := range te.elems[f] {
			slices.SortFunc(te.elems[f][k], func(a, b tierElement) int { return compareElements(a.Element, b.Element) })
		}
	}
	return te
}

// outcome is what a tier's decision amounts to for a packet.
type outcome uint8

const (
	outcomeNext  outcome = iota // the next layer decides (Admin tier Pass, no match)
	outcomeAllow                // allowed in this direction
	outcomeDrop                 // dropped
)

// outcomeOf returns the outcome of an action in a tier: in the Baseline
// tier, Pass allows (as the default does).
func outcomeOf(a policy.Action, t policy.Tier) outcome {
	switch {
	case a == policy.Deny:
		return outcomeDrop
	case a == policy.Accept || t == policy.BaselineTier:
		return outcomeAllow
	}
	return outcomeNext
}

// changesOutcome reports whether a ports rectangle decides some of its
// addresses otherwise than the address rectangles all (sorted, disjoint)
// would, where it not there; where no address rectangle holds an
// address, the outcome is that of no match.
func changesOutcome(rc *policy.Rect, all []policy.Rect, t policy.Tier) bool {
	want := outcomeOf(rc.Action, t)
	none := outcomeOf(policy.Pass, t)
	i, _ := slices.BinarySearchFunc(all, rc.From, func(a policy.Rect, k iprange.Key) int { return a.To.Compare(k) })
	cur := rc.From
	for ; i < len(all) && all[i].From.Compare(rc.To) <= 0; i++ {
		if all[i].From.Compare(cur) > 0 && none != want {
			return true // a gap before all[i]
		}
		if outcomeOf(all[i].Action, t) != want {
			return true
		}
		if all[i].To.Compare(rc.To) >= 0 {
			return false
		}
		cur = all[i].To.Next()
	}
	return none != want
}

// mapPrefix returns the first letters of a tier's map names: "aa" and
// "ap" for the Admin tier, "ba" and "bp" for the Baseline tier; "app"
// names the set of the Admin tier's Pass elements with protocols.
func mapPrefix(t policy.Tier, kind int) string {
	if kind == mapPass {
		return "app"
	}
	return string("ab"[t]) + string("ap"[kind])
}

// maps returns the lookups of the tier's maps named by hash, per family
// (IPv4 first): the Pass set (Admin tier), going to the chain next (none:
// Pass allows), then the ports map, then the address map. The maps do not
// depend on next: pods of one combination share them whatever their next
// layer.
func (te *tierEntry) maps(hash, next string, gen uint64) []lookup {
	var out []lookup
	for fi, fam := range []Family{IPv4, IPv6} {
		for _, kind := range []int{mapPass, mapPorts, mapAddrs} {
			elems := te.elems[fi][kind]
			if len(elems) == 0 {
				continue
			}
			name := mapPrefix(te.tier, kind) + strconv.Itoa(int(fam)) + "-" + hash
			bm, ok := te.built[name]
			if !ok {
				ps := &PeerSet{Name: name, Family: fam, Ports: kind != mapAddrs, Map: kind != mapPass, Pass: kind == mapPass, Elements: make([]Element, len(elems))}
				for i, e := range elems {
					ps.Elements[i] = e.Element
					if ps.Map {
						ps.Elements[i].Verdict = tierVerdict(e.action, te.dir)
						if te.log && e.action == policy.Deny {
							ps.Elements[i].Verdict = Verdict{Kind: VerdictGoto, Chain: dropChain(te.dir)}
						}
					}
				}
				bm.m = ps
			}
			bm.used = gen
			te.built[name] = bm
			l := lookup{kind: RuleVMapAddr, fam: fam, set: bm.m}
			switch {
			case kind == mapPorts:
				l.kind = RuleVMapAddrPort
			case kind == mapPass && next != "":
				l.kind, l.next = RuleAddrPortGoto, next
			case kind == mapPass:
				l.kind = RuleAddrPort // Pass allows: no next layer
			}
			out = append(out, l)
		}
	}
	return out
}

// prune forgets the maps the last render did not use.
func (te *tierEntry) prune(gen uint64) {
	for name, bm := range te.built {
		if bm.used != gen {
			delete(te.built, name)
		}
	}
}

// tierVerdict is the verdict of a tier's action in a map, for a
// direction: Deny drops; Accept, and Pass in the Baseline tier, allow
// (return for egress, so that the destination's ingress check follows;
// accept for ingress). The Admin tier's Pass elements are not in maps.
func tierVerdict(a policy.Action, dir policy.Direction) Verdict {
	switch {
	case a == policy.Deny:
		return Verdict{Kind: VerdictDrop}
	case dir == policy.Egress:
		return Verdict{Kind: VerdictReturn}
	}
	return Verdict{Kind: VerdictAccept}
}
