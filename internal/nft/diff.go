package nft

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Delta is the difference between two models, as Applier.Apply (and
// Fake.Apply) applies it in one transaction.
type Delta struct {
	// Deny is the new model's final verdict.
	Deny Deny
	// AddSets and DelSets are sets that only the new (old) model has.
	AddSets, DelSets []*PeerSet
	// ReplaceSets are sets of both models that are deleted and created
	// anew, because that is cheaper than deleting their elements one by
	// one (see replaceThreshold); the chains of the new model that look
	// them up are in ReplaceChains.
	ReplaceSets []*PeerSet
	// AddChains and DelChains are per-pod chains that only the new (old)
	// model has; ReplaceChains are chains of both whose rules differ, or
	// whose sets are replaced (they are flushed and refilled).
	AddChains, DelChains, ReplaceChains []*Chain
	// SetChanges are element changes of sets both models have, sorted by
	// set name.
	SetChanges []SetChange
	// MapChanges are element changes of the verdict maps.
	MapChanges []MapChange
}

// SetChange is the elements to delete from and add to one set.
type SetChange struct {
	Set      *PeerSet // the new set
	Del, Add []Element
}

// MapChange is the elements to delete from and add to one verdict map.
type MapChange struct {
	Map      *VMap // the new map
	Del, Add []VMapElement
}

// OnlyWidens reports whether the delta can only let more traffic through:
// it adds elements to existing sets (every rule looking up a set accepts
// what it holds, but for the Admin tier's Pass sets, whose every change
// may narrow), changes tier maps only in ways that let more through
// (see widens), removes verdict-map entries (pods no policy decides for
// any more) and the chains, sets and maps nothing refers to any more, or
// changes how denials end. Anything else — a new or changed chain, a
// replaced set or map, a set element removed, a map element added that
// does not allow or removed that did not drop, a verdict-map entry added
// or changed — may deny a flow that was allowed, and the answer is false.
func (d *Delta) OnlyWidens() bool {
	if len(d.AddChains)+len(d.ReplaceSets) > 0 {
		return false
	}
	for _, c := range d.ReplaceChains {
		if !isLogChain(c.Name) { // a new generation's log prefix decides nothing
			return false
		}
	}
	for _, c := range d.SetChanges {
		switch {
		case c.Set.Map:
			if !widens(c) {
				return false
			}
		case c.Set.Pass:
			// A Pass element added may shadow an address map element
			// that allowed, one removed one that denied.
			return false
		case len(c.Del) > 0:
			return false
		}
	}
	for _, c := range d.MapChanges {
		if len(c.Add) > 0 {
			return false
		}
	}
	return true
}

// widens reports whether a change of a tier map's elements can only let
// more through. An element whose key stays, with a verdict at least as
// open (see atLeastAsOpen), changes nothing else; a removed element must
// have dropped (what it covered now goes on to a later lookup or layer,
// which lets through at least as much), and an added element must allow
// (it may shadow an element of the address map, or the next layer, which
// let through at most as much). An added goto (Pass) may narrow: a ports
// element going to the next layer in front of an address element that
// allowed.
func widens(c SetChange) bool {
	added := make(map[fakeElemKey]Verdict, len(c.Add))
	for _, e := range c.Add {
		added[fakeKeyOf(e)] = e.Verdict
	}
	kept := map[fakeElemKey]bool{}
	for _, e := range c.Del {
		k := fakeKeyOf(e)
		if v, ok := added[k]; ok && atLeastAsOpen(v, e.Verdict) {
			kept[k] = true
			continue
		}
		if e.Verdict.Kind != VerdictDrop {
			return false
		}
	}
	for _, e := range c.Add {
		if !kept[fakeKeyOf(e)] && e.Verdict.Kind != VerdictAccept && e.Verdict.Kind != VerdictReturn {
			return false
		}
	}
	return true
}

// atLeastAsOpen reports whether verdict v lets through at least what old
// did: anything is as open as drop; accept is the most open; return
// (egress: the destination's ingress check follows) is as open as going
// to a layer chain, whose best is to return (egress chains never accept;
// for ingress, returning ends the forward chain, which accepts); going to
// a chain is as open as going to the same chain.
func atLeastAsOpen(v, old Verdict) bool {
	switch {
	case v == old || old.Kind == VerdictDrop || v.Kind == VerdictAccept:
		return true
	case v.Kind == VerdictReturn:
		return old.Kind == VerdictGoto
	}
	return false
}

// Empty reports whether the models are equal.
func (d *Delta) Empty() bool {
	return len(d.AddSets)+len(d.DelSets)+len(d.ReplaceSets)+len(d.AddChains)+len(d.DelChains)+len(d.ReplaceChains)+
		len(d.SetChanges)+len(d.MapChanges) == 0
}

// String summarises the delta, e.g. for logs.
func (d *Delta) String() string {
	var elAdd, elDel, mAdd, mDel int
	for _, c := range d.SetChanges {
		elAdd += len(c.Add)
		elDel += len(c.Del)
	}
	for _, c := range d.MapChanges {
		mAdd += len(c.Add)
		mDel += len(c.Del)
	}
	return fmt.Sprintf("chains +%d -%d ~%d, sets +%d -%d ~%d, set elements +%d -%d, map elements +%d -%d",
		len(d.AddChains), len(d.DelChains), len(d.ReplaceChains), len(d.AddSets), len(d.DelSets), len(d.ReplaceSets),
		elAdd, elDel, mAdd, mDel)
}

// replaceThreshold is the number of deletions from a concatenated interval
// set beyond which Diff recreates the set instead. The kernel's pipapo
// backend looks up and drops every deleted element in its lookup tables,
// at a cost that grows with the set (measured on Linux 6.18: 5 to 12 ms
// per element deleted from a set of 5,000 elements, depending on its
// position, against some 10 ms to load the whole set; sets of a hundred
// elements cost well under a millisecond either way). Hash sets (exact
// elements) are never recreated: a hash delete costs the same whatever the
// set's size. Deleting an element, a rule, a chain or a set costs nothing more: the kernel frees
// what a transaction deleted after an RCU grace period, in the
// background, as long as the Applier keeps its netlink socket open (see
// Applier.conn).
const replaceThreshold = 8

// Diff returns what turns the ruleset old into new. Both must be rendered
// models (sorted as Render sorts them).
func Diff(old, new *Model) *Delta {
	d := &Delta{Deny: new.Deny}
	replaced := map[string]bool{} // sets deleted and created anew
	// Sets.
	oldSets := make(map[string]*PeerSet, len(old.Sets))
	for _, s := range old.Sets {
		oldSets[s.Name] = s
	}
	for _, s := range new.Sets {
		o, ok := oldSets[s.Name]
		delete(oldSets, s.Name)
		switch {
		case !ok:
			d.AddSets = append(d.AddSets, s)
			continue
		case o == s:
			continue // shared by both models
		}
		if o.Ports != s.Ports || o.Family != s.Family || o.Exact != s.Exact || o.Map != s.Map || o.Pass != s.Pass {
			d.ReplaceSets = append(d.ReplaceSets, s)
			replaced[s.Name] = true
			continue
		}
		del, add := diffElements(o.Elements, s.Elements)
		switch {
		case s.Ports && !s.Exact && len(del) > replaceThreshold:
			d.ReplaceSets = append(d.ReplaceSets, s)
			replaced[s.Name] = true
		case len(del)+len(add) > 0:
			d.SetChanges = append(d.SetChanges, SetChange{Set: s, Del: del, Add: add})
		}
	}
	for _, s := range old.Sets {
		if _, gone := oldSets[s.Name]; gone {
			d.DelSets = append(d.DelSets, s)
		}
	}
	// Chains. A chain that looks up a replaced set is emptied before the
	// set is deleted and filled again after it is created: it is replaced
	// even when its rules stay the same.
	oldChains := make(map[string]*Chain, len(old.Chains))
	for _, c := range old.Chains {
		oldChains[c.Name] = c
	}
	for _, c := range new.Chains {
		o, ok := oldChains[c.Name]
		delete(oldChains, c.Name)
		switch {
		case !ok:
			d.AddChains = append(d.AddChains, c)
		case o != c && !slices.Equal(o.Rules, c.Rules) || old.Deny != new.Deny || refersTo(c, replaced):
			d.ReplaceChains = append(d.ReplaceChains, c)
		}
	}
	for _, c := range old.Chains {
		if _, gone := oldChains[c.Name]; gone {
			d.DelChains = append(d.DelChains, c)
		}
	}
	// Maps.
	for _, vm := range new.Maps {
		var oldElems []VMapElement
		if o := old.Map(vm.Name); o != nil {
			oldElems = o.Elements
		}
		if del, add := diffVMap(oldElems, vm.Elements); len(del)+len(add) > 0 {
			d.MapChanges = append(d.MapChanges, MapChange{Map: vm, Del: del, Add: add})
		}
	}
	return d
}

// refersTo reports whether one of the chain's rules looks up one of the
// sets.
func refersTo(c *Chain, sets map[string]bool) bool {
	if len(sets) == 0 {
		return false
	}
	for _, r := range c.Rules {
		if r.Set != "" && sets[r.Set] {
			return true
		}
	}
	return false
}

// diffElements compares two element lists; an element whose comment
// changed is deleted and added again. Lists in the order Render gives
// them are compared in one pass.
func diffElements(old, new []Element) (del, add []Element) {
	if slices.Equal(old, new) {
		return nil, nil
	}
	if sortedElements(old) && sortedElements(new) {
		i, j := 0, 0
		for i < len(old) || j < len(new) {
			c := 0
			switch {
			case i == len(old):
				c = 1
			case j == len(new):
				c = -1
			default:
				c = compareElements(old[i], new[j])
			}
			switch {
			case c < 0:
				del = append(del, old[i])
				i++
			case c > 0:
				add = append(add, new[j])
				j++
			default:
				i, j = i+1, j+1
			}
		}
		return del, add
	}
	return setDifference(old, new)
}

// setDifference returns the members of old missing from new and the
// members of new missing from old, in their orders.
func setDifference[T comparable](old, new []T) (del, add []T) {
	in := make(map[T]bool, len(new))
	for _, e := range new {
		in[e] = true
	}
	was := make(map[T]bool, len(old))
	for _, e := range old {
		was[e] = true
		if !in[e] {
			del = append(del, e)
		}
	}
	for _, e := range new {
		if !was[e] {
			add = append(add, e)
		}
	}
	return del, add
}

// compareElements orders elements as Render does: by protocol name, port
// range, then address range (address set elements have no protocol and
// no ports), and by verdict and comment last.
func compareElements(a, b Element) int {
	if a.Proto != b.Proto {
		if c := strings.Compare(protoName(a.Proto), protoName(b.Proto)); c != 0 {
			return c
		}
		return cmp.Compare(a.Proto, b.Proto)
	}
	if c := cmp.Compare(a.FromPort, b.FromPort); c != 0 {
		return c
	}
	if c := cmp.Compare(a.ToPort, b.ToPort); c != 0 {
		return c
	}
	if c := a.Addrs.From.Compare(b.Addrs.From); c != 0 {
		return c
	}
	if c := a.Addrs.To.Compare(b.Addrs.To); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Verdict.Kind, b.Verdict.Kind); c != 0 {
		return c
	}
	if c := strings.Compare(a.Verdict.Chain, b.Verdict.Chain); c != 0 {
		return c
	}
	return strings.Compare(a.Comment, b.Comment)
}

// sortedElements reports whether elements are strictly in compareElements
// order.
func sortedElements(es []Element) bool {
	for i := 1; i < len(es); i++ {
		if compareElements(es[i-1], es[i]) >= 0 {
			return false
		}
	}
	return true
}

func diffVMap(old, new []VMapElement) (del, add []VMapElement) {
	if slices.Equal(old, new) {
		return nil, nil
	}
	return setDifference(old, new)
}

// queue adds the delta to a batch, ordered so that no step depends on a
// later one: new chains are created empty first (a tier map's element
// may go to one); then new sets and maps (with their elements); then
// changed and deleted chains are emptied, so that the sets being
// replaced are no longer looked up when they are deleted and created
// anew; then new chains are filled and changed chains refilled (a rule
// binds the set it looks up, and the kernel refuses to delete a bound set,
// so no rule may look up a replaced set before it is created anew); then
// set and map elements change, then the verdict maps (a map element jumps
// only to a chain that exists, and leaves a chain before it is deleted);
// last, the sets and maps nothing refers to any more are deleted, and
// then the chains (a deleted tier map may go to a deleted chain, and the
// kernel refuses to delete a chain a map element still goes to). A set
// may be looked up by several chains: it is created before any of them
// is filled, and deleted after every chain that looked it up was
// emptied. The kernel applies the batch as one transaction, so packets
// see either the old or the new ruleset. Fake.Apply takes the same steps
// in the same order.
func (d *Delta) queue(b *batch) {
	for _, c := range d.AddChains {
		b.createChain(c)
	}
	for _, s := range d.AddSets {
		b.addSet(s)
	}
	// A deleted chain stays (empty) until no map element jumps to it.
	for _, c := range d.ReplaceChains {
		b.c.FlushChain(b.chain(c.Name))
		b.msgs++
	}
	for _, c := range d.DelChains {
		b.c.FlushChain(b.chain(c.Name))
		b.msgs++
	}
	for _, s := range d.ReplaceSets {
		b.c.DelSet(b.existing(s.Name))
		b.msgs++
	}
	for _, s := range d.ReplaceSets {
		b.addSet(s)
	}
	for _, c := range d.AddChains {
		b.addRules(b.chain(c.Name), c, d.Deny)
	}
	for _, c := range d.ReplaceChains {
		b.addRules(b.chain(c.Name), c, d.Deny)
	}
	for _, sc := range d.SetChanges {
		ns := b.existing(sc.Set.Name)
		b.elements(ns, keysOnly(setElements(sc.Set, sc.Del)), true)
		b.elements(ns, setElements(sc.Set, sc.Add), false)
	}
	for _, mc := range d.MapChanges {
		ns := b.existing(mc.Map.Name)
		b.elements(ns, vmapElements(mc.Del), true)
		b.elements(ns, vmapElements(mc.Add), false)
	}
	for _, s := range d.DelSets {
		b.c.DelSet(b.existing(s.Name))
		b.msgs++
	}
	for _, c := range d.DelChains {
		b.c.DelChain(b.chain(c.Name))
		b.msgs++
	}
}

// Names returns the names of the chains and sets a delta touches, for
// tests and logs.
func (d *Delta) Names() []string {
	var out []string
	for _, s := range d.AddSets {
		out = append(out, "+set "+s.Name)
	}
	for _, s := range d.DelSets {
		out = append(out, "-set "+s.Name)
	}
	for _, c := range d.AddChains {
		out = append(out, "+chain "+c.Name)
	}
	for _, c := range d.DelChains {
		out = append(out, "-chain "+c.Name)
	}
	for _, c := range d.ReplaceChains {
		out = append(out, "~chain "+c.Name)
	}
	for _, s := range d.ReplaceSets {
		out = append(out, "=set "+s.Name)
	}
	for _, c := range d.SetChanges {
		out = append(out, fmt.Sprintf("~set %s +%d -%d", c.Set.Name, len(c.Add), len(c.Del)))
	}
	for _, c := range d.MapChanges {
		out = append(out, fmt.Sprintf("~map %s +%d -%d", c.Map.Name, len(c.Add), len(c.Del)))
	}
	slices.SortFunc(out, strings.Compare)
	return out
}
