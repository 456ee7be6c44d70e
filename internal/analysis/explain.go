package analysis

import "github.com/netfence/netfence/internal/policy"

// This file explains matrix cells row by row: for one subject class and
// direction, what decided each peer class, with the same walk as
// tierSets but keeping, per peer, the rule that decided it.

// maxExplainClasses bounds the classes for which Matrix.Explain keeps rows
// of decisions (two rows of 4 bytes per class and class at a time, for one
// port): above it, cells are explained one by one.
const maxExplainClasses = 3000

// Layer codes of an encoded decision: code | (rule id + 1) << 3; 0 is the
// empty decision.
const (
	codeAdmin uint32 = iota + 1
	codeNetworkPolicy
	codeBaseline
	codeDefault
)

var layerOfCode = [...]policy.Layer{codeAdmin: policy.LayerAdmin, codeNetworkPolicy: policy.LayerNetworkPolicy,
	codeBaseline: policy.LayerBaseline, codeDefault: policy.LayerDefault}

// explainer holds rows of encoded decisions for one port.
type explainer struct {
	port int
	rows [2]map[int][]uint32
	// hits are the rules that decided something, with their direction;
	// a rule's id is its index.
	hits []explainedHit
	ids  map[*policy.TierRule]uint32
}

type explainedHit struct {
	hit  tierHit
	rule string // "cnp/NAME spec.egress[0]"
}

func (x *explainer) id(h tierHit, dir policy.Direction) uint32 {
	if x.ids == nil {
		x.ids = map[*policy.TierRule]uint32{}
	}
	id, ok := x.ids[h.rule]
	if !ok {
		id = uint32(len(x.hits))
		x.ids[h.rule] = id
		x.hits = append(x.hits, explainedHit{h, h.String(dir)})
	}
	return id
}

func (x *explainer) decision(code uint32) Decision {
	if code == 0 {
		return Decision{}
	}
	d := Decision{Layer: layerOfCode[code&7]}
	if id := code >> 3; id > 0 {
		d.Rule = x.hits[id-1].rule
	}
	return d
}

// row returns the encoded decisions of subject class c in dir for every
// peer class at the current port.
func (x *explainer) row(ev *evaluator, dir policy.Direction, c int) []uint32 {
	if r, ok := x.rows[dir][c]; ok {
		return r
	}
	out := make([]uint32, ev.n)
	x.rows[dir][c] = out
	rep := ev.classes[c].rep
	if rep.HostNetwork || ev.conflicted[c] {
		return out
	}
	admin := ev.tierHits(policy.AdminTier, dir, c)
	isolated := len(ev.isolated[dir][c]) > 0
	var base []*tierHit
	if !isolated {
		base = ev.tierHits(policy.BaselineTier, dir, c)
	}
	for d := range out {
		switch {
		case ev.fromOwnNode(dir, c, d):
			// Allowed before any policy: no layer decided.
		case admin != nil && admin[d] != nil && admin[d].rule.Action != policy.Pass:
			out[d] = codeAdmin | (x.id(*admin[d], dir)+1)<<3
		case isolated:
			out[d] = codeNetworkPolicy
		case base != nil && base[d] != nil && base[d].rule.Action == policy.Pass:
			out[d] = codeDefault | (x.id(*base[d], dir)+1)<<3
		case base != nil && base[d] != nil:
			out[d] = codeBaseline | (x.id(*base[d], dir)+1)<<3
		default:
			out[d] = codeDefault
		}
	}
	return out
}

// tierHits returns, per peer class, the rule of tier t that decides it
// for subject class c in dir at the current port (nil for none), as
// tierMatch picks it; nil when no policy of the tier selects c.
func (ev *evaluator) tierHits(t policy.Tier, dir policy.Direction, c int) []*tierHit {
	sel := ev.tiers.selects[t][dir][c]
	if len(sel) == 0 {
		return nil
	}
	rep := ev.classes[c].rep
	v := ev.peerVariant(dir, c)
	out := make([]*tierHit, ev.n)
	und := ev.all.clone()
	done := newBitset(ev.n)
	groupDone := newBitset(ev.n)
	m := newBitset(ev.n)
	for i := 0; i < len(sel) && !und.empty(); {
		j := i + 1
		for j < len(sel) && sel[j].group == sel[i].group {
			j++
		}
		clear(groupDone)
		for _, e := range sel[i:j] {
			clear(done)
			rules := e.p.Rules[dir]
			for ri := range rules {
				r := &rules[ri]
				if !ev.ruleMatches(m, r, dir, v, rep) {
					continue
				}
				m.andNot(done)
				done.or(m)
				// In group order, a later policy wins a peer only with
				// a more restrictive action.
				m.and(und)
				h := &tierHit{e.p, r}
				m.each(func(d int) {
					if out[d] == nil || r.Action.Restrictiveness() > out[d].rule.Action.Restrictiveness() {
						out[d] = h
					}
				})
			}
			groupDone.or(done)
		}
		und.andNot(groupDone)
		i = j
	}
	return out
}
