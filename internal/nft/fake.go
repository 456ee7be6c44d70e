package nft

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// Fake is an in-memory dataplane with the Applier's methods, for tests
// that run without root: it holds the Model the kernel would hold, and
// applies FullSync and Apply to it as the kernel applies the Applier's
// transactions, step by step in the order Delta.queue sends them. Like the
// kernel it refuses, with an error and without changing anything (a
// transaction is atomic):
//
//   - creating a set, chain or map that exists, or deleting or changing
//     one that does not;
//   - deleting an element that is not there, or adding one that is there
//     or that overlaps one that is (interval sets and maps hold disjoint
//     intervals);
//   - an element of the wrong family or shape for its set (a range, or
//     a port range, in a hash set; a verdict in a set, none in a map);
//   - a rule looking up a set or map that does not exist or has another
//     type (a verdict map rule a set; a set rule may test membership in
//     a verdict map, as the kernel lets it);
//   - a map element or a rule jumping or going to a chain that does not
//     exist, or to a base chain;
//   - deleting a set a rule still looks up, or a chain a map element
//     or a rule still jumps or goes to;
//   - a delta that changes the final verdict but leaves a chain with the
//     old one (which Diff never makes and a Model cannot describe).
//
// It is stricter than the kernel in two places, on purpose: the Applier
// creates objects and elements without NLM_F_EXCL, so the kernel accepts
// re-creating an existing set or chain and re-adding an identical
// element; the Fake refuses them, because a delta that does so was not
// made against the model it is applied to. Elements are identified as the
// kernel identifies them, by their key (address range, protocol and port
// range; a map element by its address): comments and verdicts are not
// compared.
//
// The zero Fake is ready to use and holds no table. Its methods are safe
// for concurrent use.
type Fake struct {
	mu    sync.Mutex
	st    *fakeState // nil: no table
	fail  error
	calls FakeCalls
}

// FakeCalls counts the calls a Fake served.
type FakeCalls struct {
	// CheckKernel, FullSyncs and Applies count successful calls (an
	// empty delta included); Failed counts calls that returned an error.
	CheckKernel, FullSyncs, Applies, Failed int
}

// NewFake returns a Fake that holds no table.
func NewFake() *Fake { return &Fake{} }

// FailNext makes the next call of CheckKernel, FullSync or Apply return
// err without changing anything, as a kernel refusing a transaction.
func (f *Fake) FailNext(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

// Calls returns how many calls the Fake served.
func (f *Fake) Calls() FakeCalls {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// Model returns a copy of the model the Fake holds, in canonical order
// (sets and chains by name, set elements as Render orders them, map
// elements by address), or nil when it holds no table.
func (f *Fake) Model() *Model {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st == nil {
		return nil
	}
	return f.st.model()
}

// Text returns the `nft -f` script of the model the Fake holds (see
// Model.Text), or "" when it holds no table.
func (f *Fake) Text() string {
	m := f.Model()
	if m == nil {
		return ""
	}
	return m.Text()
}

// begin checks ctx and the injected failure; f.mu must be held.
func (f *Fake) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		f.calls.Failed++
		return fmt.Errorf("nft fake: %w", err)
	}
	if err := f.fail; err != nil {
		f.fail = nil
		f.calls.Failed++
		return err
	}
	return nil
}

// CheckKernel succeeds unless the call is made to fail (see FailNext) or
// ctx has ended.
func (f *Fake) CheckKernel(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(ctx); err != nil {
		return err
	}
	f.calls.CheckKernel++
	return nil
}

// FullSync replaces the table with a copy of m, which later changes to m
// do not affect. It refuses a model the kernel would refuse (see Fake),
// keeping the table as it was.
func (f *Fake) FullSync(ctx context.Context, m *Model) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(ctx); err != nil {
		return err
	}
	st, err := fullState(m)
	if err != nil {
		f.calls.Failed++
		return fmt.Errorf("nft fake: full sync of table inet %s: %w", TableName, err)
	}
	f.st = st
	f.calls.FullSyncs++
	return nil
}

// Apply applies d to the model the Fake holds, as the kernel applies the
// Applier's transaction of d: wholly, or, when a step is refused, not at
// all. An empty delta changes nothing (the Applier sends nothing), except
// the final verdict of a table without per-pod chains.
func (f *Fake) Apply(ctx context.Context, d *Delta) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(ctx); err != nil {
		return err
	}
	if d.Empty() {
		if f.st != nil && len(f.st.chains) == 0 {
			f.st.deny = d.Deny
		}
		f.calls.Applies++
		return nil
	}
	if f.st == nil {
		f.calls.Failed++
		return fmt.Errorf("nft fake: update (%s): no table inet %s", d, TableName)
	}
	st := f.st.clone()
	if err := st.apply(d); err != nil {
		f.calls.Failed++
		return fmt.Errorf("nft fake: update (%s): %w", d, err)
	}
	f.st = st
	f.calls.Applies++
	return nil
}

// fakeState is a table as the kernel holds it.
type fakeState struct {
	// deny is the final verdict of the per-pod chains.
	deny    Deny
	sets    map[string]*fakeSet
	chains  map[string]*fakeChain
	maps    map[string]*fakeMap
	mapList []string // map names in creation order
}

// fakeElemKey identifies a set element in the kernel: its key, without the
// comment.
type fakeElemKey struct {
	addrs            [2]netip.Addr
	proto            uint8
	fromPort, toPort uint16
}

func fakeKeyOf(e Element) fakeElemKey {
	return fakeElemKey{addrs: [2]netip.Addr{e.Addrs.From, e.Addrs.To}, proto: e.Proto, fromPort: e.FromPort, toPort: e.ToPort}
}

type fakeSet struct {
	name   string
	family Family
	ports  bool
	exact  bool
	isMap  bool
	pass   bool
	elems  map[fakeElemKey]Element
}

type fakeChain struct {
	chain Chain
	// deny is the final verdict the chain was filled with.
	deny Deny
}

type fakeMap struct {
	name   string
	family Family
	elems  map[netip.Addr]VMapElement
}

func newFakeState(deny Deny) *fakeState {
	return &fakeState{deny: deny, sets: map[string]*fakeSet{}, chains: map[string]*fakeChain{}, maps: map[string]*fakeMap{}}
}

// fullState builds the table FullSync creates from m: empty chains,
// sets and tier maps, the chains' rules, verdict maps and the base chains
// that look the maps up, in that order.
func fullState(m *Model) (*fakeState, error) {
	st := newFakeState(m.Deny)
	for _, c := range m.Chains {
		if err := st.createChain(c.Name, m.Deny); err != nil {
			return nil, err
		}
	}
	for _, s := range m.Sets {
		if err := st.addSet(s); err != nil {
			return nil, err
		}
	}
	for _, c := range m.Chains {
		if err := st.fillChain(c, m.Deny); err != nil {
			return nil, err
		}
	}
	for _, vm := range m.Maps {
		if err := st.addMap(vm); err != nil {
			return nil, err
		}
	}
	for _, name := range []string{ChainForward, ChainInput} {
		for _, r := range baseRules(name) {
			if r.kind == baseVMap && st.maps[r.mapName()] == nil {
				return nil, fmt.Errorf("chain %s looks up map %s, which does not exist", name, r.mapName())
			}
		}
	}
	return st, nil
}

// clone returns a copy of st that shares nothing mutable with it.
func (st *fakeState) clone() *fakeState {
	out := newFakeState(st.deny)
	for name, s := range st.sets {
		cp := *s
		cp.elems = make(map[fakeElemKey]Element, len(s.elems))
		for k, e := range s.elems {
			cp.elems[k] = e
		}
		out.sets[name] = &cp
	}
	for name, c := range st.chains {
		cp := *c
		cp.chain.Rules = slices.Clone(c.chain.Rules)
		out.chains[name] = &cp
	}
	for name, vm := range st.maps {
		cp := *vm
		cp.elems = make(map[netip.Addr]VMapElement, len(vm.elems))
		for k, e := range vm.elems {
			cp.elems[k] = e
		}
		out.maps[name] = &cp
	}
	out.mapList = slices.Clone(st.mapList)
	return out
}

// apply runs the steps of d in the order Delta.queue sends them.
func (st *fakeState) apply(d *Delta) error {
	for _, c := range d.AddChains {
		if err := st.createChain(c.Name, d.Deny); err != nil {
			return err
		}
	}
	for _, s := range d.AddSets {
		if err := st.addSet(s); err != nil {
			return err
		}
	}
	// Changed and deleted chains are flushed before the replaced sets go.
	for _, cs := range [][]*Chain{d.ReplaceChains, d.DelChains} {
		for _, c := range cs {
			fc := st.chains[c.Name]
			if fc == nil {
				return fmt.Errorf("flush chain %s: no such chain", c.Name)
			}
			fc.chain.Rules = nil
		}
	}
	for _, s := range d.ReplaceSets {
		if err := st.delSet(s.Name); err != nil {
			return err
		}
	}
	for _, s := range d.ReplaceSets {
		if err := st.addSet(s); err != nil {
			return err
		}
	}
	for _, c := range d.AddChains {
		if err := st.fillChain(c, d.Deny); err != nil {
			return err
		}
	}
	for _, c := range d.ReplaceChains {
		if err := st.fillChain(c, d.Deny); err != nil {
			return err
		}
	}
	for _, sc := range d.SetChanges {
		if err := st.changeSet(sc); err != nil {
			return err
		}
	}
	for _, mc := range d.MapChanges {
		if err := st.changeMap(mc); err != nil {
			return err
		}
	}
	for _, s := range d.DelSets {
		if err := st.delSet(s.Name); err != nil {
			return err
		}
	}
	for _, c := range d.DelChains {
		if err := st.delChain(c.Name); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(st.chains)) {
		if c := st.chains[name]; c.deny != d.Deny {
			return fmt.Errorf("chain %s keeps the final verdict %s while the delta's is %s: a delta that changes the verdict must refill every chain", name, c.deny, d.Deny)
		}
	}
	st.deny = d.Deny
	return nil
}

// copyChain returns a copy of c that shares nothing with it.
func copyChain(c *Chain) Chain {
	cp := *c
	cp.Rules = nil
	if len(c.Rules) > 0 {
		cp.Rules = slices.Clone(c.Rules)
	}
	return cp
}

// addSet creates a set with its elements.
func (st *fakeState) addSet(s *PeerSet) error {
	if st.sets[s.Name] != nil || st.maps[s.Name] != nil {
		return fmt.Errorf("add set %s: it exists", s.Name)
	}
	if s.Family != IPv4 && s.Family != IPv6 {
		return fmt.Errorf("add set %s: family %d", s.Name, s.Family)
	}
	if s.Map && s.Exact {
		return fmt.Errorf("add map %s: a verdict map of cluster policy is an interval map", s.Name)
	}
	fs := &fakeSet{name: s.Name, family: s.Family, ports: s.Ports, exact: s.Exact, isMap: s.Map, pass: s.Pass, elems: make(map[fakeElemKey]Element, len(s.Elements))}
	if err := fs.add(s.Elements); err != nil {
		return fmt.Errorf("add set %s: %w", s.Name, err)
	}
	if err := st.checkTargets(fs, s.Elements); err != nil {
		return fmt.Errorf("add set %s: %w", s.Name, err)
	}
	st.sets[s.Name] = fs
	return nil
}

// checkTargets refuses map elements going to a chain that does not exist
// or is a base chain.
func (st *fakeState) checkTargets(fs *fakeSet, elems []Element) error {
	for _, e := range elems {
		if e.Verdict.Kind != VerdictGoto {
			continue
		}
		if err := st.checkTarget(e.Verdict.Chain); err != nil {
			return fmt.Errorf("element %s: %w", e.text(fs.ports), err)
		}
	}
	return nil
}

// checkTarget refuses a jump or goto to a chain that does not exist or is
// a base chain.
func (st *fakeState) checkTarget(chain string) error {
	switch {
	case chain == ChainForward || chain == ChainInput:
		return fmt.Errorf("goes to base chain %s", chain)
	case st.chains[chain] == nil:
		return fmt.Errorf("goes to chain %s, which does not exist", chain)
	}
	return nil
}

// delSet deletes a set no rule looks up.
func (st *fakeState) delSet(name string) error {
	if st.sets[name] == nil {
		return fmt.Errorf("delete set %s: no such set", name)
	}
	for _, cname := range slices.Sorted(maps.Keys(st.chains)) {
		for _, r := range st.chains[cname].chain.Rules {
			if r.Set == name {
				return fmt.Errorf("delete set %s: chain %s still looks it up", name, cname)
			}
		}
	}
	delete(st.sets, name)
	return nil
}

// changeSet deletes and then adds elements of an existing set.
func (st *fakeState) changeSet(sc SetChange) error {
	fs := st.sets[sc.Set.Name]
	if fs == nil {
		return fmt.Errorf("elements of set %s: no such set", sc.Set.Name)
	}
	for _, e := range sc.Del {
		if err := fs.check(e); err != nil {
			return fmt.Errorf("delete element %s from set %s: %w", e.text(fs.ports), fs.name, err)
		}
		k := fakeKeyOf(e)
		if _, ok := fs.elems[k]; !ok {
			return fmt.Errorf("delete element %s from set %s: no such element", e.text(fs.ports), fs.name)
		}
		delete(fs.elems, k)
	}
	if err := fs.add(sc.Add); err != nil {
		return fmt.Errorf("elements of set %s: %w", fs.name, err)
	}
	if err := st.checkTargets(fs, sc.Add); err != nil {
		return fmt.Errorf("elements of set %s: %w", fs.name, err)
	}
	return nil
}

// check refuses an element of the wrong family or shape for the set.
func (fs *fakeSet) check(e Element) error {
	from, to := e.Addrs.From, e.Addrs.To
	switch {
	case !from.IsValid() || !to.IsValid() || familyOf(from) != fs.family || familyOf(to) != fs.family || from.Zone() != "" || to.Zone() != "":
		return fmt.Errorf("not an IPv%d range", fs.family)
	case to.Less(from):
		return errors.New("range ends before it starts")
	case fs.ports && e.ToPort < e.FromPort:
		return errors.New("port range ends before it starts")
	case !fs.ports && (e.Proto != 0 || e.FromPort != 0 || e.ToPort != 0):
		return errors.New("an address set's element has a protocol or ports")
	case fs.exact && !e.exact():
		return errors.New("a hash set's element is a range")
	case fs.isMap && (e.Verdict.Kind == VerdictNone || e.Verdict.Kind > VerdictGoto):
		return errors.New("a map element without a verdict")
	case fs.isMap && (e.Verdict.Kind == VerdictGoto) != (e.Verdict.Chain != ""):
		return errors.New("a map element's verdict names a chain only to go to it")
	case !fs.isMap && e.Verdict != Verdict{}:
		return errors.New("a set's element has a verdict")
	}
	return nil
}

// add adds elements, refusing those already there or overlapping one
// that is.
func (fs *fakeSet) add(elems []Element) error {
	for _, e := range elems {
		if err := fs.check(e); err != nil {
			return fmt.Errorf("add element %s: %w", e.text(fs.ports), err)
		}
		k := fakeKeyOf(e)
		if _, ok := fs.elems[k]; ok {
			return fmt.Errorf("add element %s: it exists", e.text(fs.ports))
		}
		fs.elems[k] = e
	}
	if len(elems) == 0 {
		return nil
	}
	return fs.disjoint()
}

// disjoint refuses overlapping elements, as the kernel's interval sets
// do.
func (fs *fakeSet) disjoint() error {
	es := fs.sorted()
	if !fs.ports {
		slices.SortFunc(es, func(a, b Element) int { return a.Addrs.From.Compare(b.Addrs.From) })
		for i := 1; i < len(es); i++ {
			if !es[i-1].Addrs.To.Less(es[i].Addrs.From) {
				return fmt.Errorf("element %s overlaps %s", es[i].text(false), es[i-1].text(false))
			}
		}
		return nil
	}
	slices.SortFunc(es, func(a, b Element) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.FromPort, b.FromPort), a.Addrs.From.Compare(b.Addrs.From))
	})
	for i, a := range es {
		for _, b := range es[i+1:] {
			if b.Proto != a.Proto || b.FromPort > a.ToPort {
				break
			}
			if !a.Addrs.To.Less(b.Addrs.From) && !b.Addrs.To.Less(a.Addrs.From) {
				return fmt.Errorf("element %s overlaps %s", b.text(true), a.text(true))
			}
		}
	}
	return nil
}

// sorted returns the set's elements in the order Render gives them.
func (fs *fakeSet) sorted() []Element {
	out := make([]Element, 0, len(fs.elems))
	for _, e := range fs.elems {
		out = append(out, e)
	}
	slices.SortFunc(out, compareElements)
	return out
}

// createChain creates an empty per-pod or layer chain.
func (st *fakeState) createChain(name string, deny Deny) error {
	if st.chains[name] != nil || name == ChainForward || name == ChainInput {
		return fmt.Errorf("add chain %s: it exists", name)
	}
	st.chains[name] = &fakeChain{chain: Chain{Name: name}, deny: deny}
	return nil
}

// fillChain gives an existing, empty (new or flushed) chain its rules.
func (st *fakeState) fillChain(c *Chain, deny Deny) error {
	fc := st.chains[c.Name]
	switch {
	case fc == nil:
		return fmt.Errorf("add rules to chain %s: no such chain", c.Name)
	case len(fc.chain.Rules) > 0:
		return fmt.Errorf("add rules to chain %s: it has rules (a delta replaces the rules of a chain it flushed)", c.Name)
	}
	if err := st.checkRules(c); err != nil {
		return err
	}
	fc.chain = copyChain(c)
	fc.deny = deny
	return nil
}

// checkRules refuses rules that look up a set that does not exist or has
// another type, and rules going to a chain that does not exist.
func (st *fakeState) checkRules(c *Chain) error {
	for i, r := range c.Rules {
		switch r.Kind {
		case RuleAddr, RuleAddrPort, RuleVMapAddr, RuleVMapAddrPort:
		case RuleAddrPortGoto:
			if err := st.checkTarget(r.Chain); err != nil {
				return fmt.Errorf("chain %s rule %d %w", c.Name, i, err)
			}
		case RuleGoto, RuleLogJump:
			if err := st.checkTarget(r.Chain); err != nil {
				return fmt.Errorf("chain %s rule %d %w", c.Name, i, err)
			}
			continue
		case RuleNFLog:
			if len(r.Prefix) >= 128 {
				return fmt.Errorf("chain %s rule %d: log prefix too long", c.Name, i)
			}
			continue
		case RuleTCPReset, RuleDeny, RuleDrop:
			continue
		default:
			return fmt.Errorf("chain %s rule %d: unknown kind %d", c.Name, i, r.Kind)
		}
		s := st.sets[r.Set]
		isMap := r.Kind == RuleVMapAddr || r.Kind == RuleVMapAddrPort
		switch {
		case s == nil:
			return fmt.Errorf("chain %s rule %d looks up set %s, which does not exist", c.Name, i, r.Set)
		case s.family != r.Family || s.ports != (r.Kind == RuleAddrPort || r.Kind == RuleVMapAddrPort || r.Kind == RuleAddrPortGoto) || isMap && !s.isMap:
			return fmt.Errorf("chain %s rule %d looks up set %s, which has another type", c.Name, i, r.Set)
		}
	}
	return nil
}

// delChain deletes a flushed chain no map element or rule jumps or goes
// to.
func (st *fakeState) delChain(name string) error {
	c := st.chains[name]
	switch {
	case c == nil:
		return fmt.Errorf("delete chain %s: no such chain", name)
	case len(c.chain.Rules) > 0:
		return fmt.Errorf("delete chain %s: it has rules", name)
	}
	for _, mname := range st.mapList {
		for _, e := range st.maps[mname].elems {
			if e.Chain == name {
				return fmt.Errorf("delete chain %s: map %s still jumps to it for %s", name, mname, e.Addr)
			}
		}
	}
	for _, sname := range slices.Sorted(maps.Keys(st.sets)) {
		for _, e := range st.sets[sname].elems {
			if e.Verdict.Kind == VerdictGoto && e.Verdict.Chain == name {
				return fmt.Errorf("delete chain %s: map %s still goes to it for %s", name, sname, e.text(st.sets[sname].ports))
			}
		}
	}
	for _, cname := range slices.Sorted(maps.Keys(st.chains)) {
		for _, r := range st.chains[cname].chain.Rules {
			if r.Chain == name {
				return fmt.Errorf("delete chain %s: chain %s still goes to it", name, cname)
			}
		}
	}
	delete(st.chains, name)
	return nil
}

// addMap creates a verdict map with its elements.
func (st *fakeState) addMap(vm *VMap) error {
	if st.maps[vm.Name] != nil || st.sets[vm.Name] != nil {
		return fmt.Errorf("add map %s: it exists", vm.Name)
	}
	fm := &fakeMap{name: vm.Name, family: vm.Family, elems: make(map[netip.Addr]VMapElement, len(vm.Elements))}
	st.maps[vm.Name] = fm
	st.mapList = append(st.mapList, vm.Name)
	return st.addMapElements(fm, vm.Elements)
}

func (st *fakeState) addMapElements(fm *fakeMap, elems []VMapElement) error {
	for _, e := range elems {
		switch {
		case !e.Addr.IsValid() || familyOf(e.Addr) != fm.family || e.Addr.Zone() != "":
			return fmt.Errorf("add element %s to map %s: not an IPv%d address", e.Addr, fm.name, fm.family)
		case st.chains[e.Chain] == nil:
			return fmt.Errorf("add element %s to map %s: it jumps to chain %s, which does not exist", e.Addr, fm.name, e.Chain)
		}
		if _, ok := fm.elems[e.Addr]; ok {
			return fmt.Errorf("add element %s to map %s: it exists", e.Addr, fm.name)
		}
		fm.elems[e.Addr] = e
	}
	return nil
}

// changeMap deletes and then adds elements of a verdict map.
func (st *fakeState) changeMap(mc MapChange) error {
	fm := st.maps[mc.Map.Name]
	if fm == nil {
		return fmt.Errorf("elements of map %s: no such map", mc.Map.Name)
	}
	for _, e := range mc.Del {
		if _, ok := fm.elems[e.Addr]; !ok {
			return fmt.Errorf("delete element %s from map %s: no such element", e.Addr, fm.name)
		}
		delete(fm.elems, e.Addr)
	}
	return st.addMapElements(fm, mc.Add)
}

// model returns the table as a Model in canonical order.
func (st *fakeState) model() *Model {
	m := &Model{Deny: st.deny}
	for _, name := range st.mapList {
		fm := st.maps[name]
		vm := &VMap{Name: fm.name, Family: fm.family}
		for _, e := range fm.elems {
			vm.Elements = append(vm.Elements, e)
		}
		slices.SortFunc(vm.Elements, func(a, b VMapElement) int { return a.Addr.Compare(b.Addr) })
		m.Maps = append(m.Maps, vm)
	}
	for _, name := range slices.Sorted(maps.Keys(st.sets)) {
		fs := st.sets[name]
		s := &PeerSet{Name: fs.name, Family: fs.family, Ports: fs.ports, Exact: fs.exact, Map: fs.isMap, Pass: fs.pass}
		if len(fs.elems) > 0 {
			s.Elements = fs.sorted()
		}
		m.Sets = append(m.Sets, s)
	}
	for _, name := range slices.Sorted(maps.Keys(st.chains)) {
		c := copyChain(&st.chains[name].chain)
		m.Chains = append(m.Chains, &c)
	}
	return m
}

// canonical returns a copy of m in the Fake's canonical order, so that
// two models of the same ruleset compare equal with reflect.DeepEqual and
// have the same Text. It does not check m.
func canonical(m *Model) *Model {
	out := &Model{Deny: m.Deny}
	for _, vm := range m.Maps {
		cp := &VMap{Name: vm.Name, Family: vm.Family}
		if len(vm.Elements) > 0 {
			cp.Elements = slices.Clone(vm.Elements)
			slices.SortFunc(cp.Elements, func(a, b VMapElement) int { return a.Addr.Compare(b.Addr) })
		}
		out.Maps = append(out.Maps, cp)
	}
	for _, s := range m.Sets {
		cp := &PeerSet{Name: s.Name, Family: s.Family, Ports: s.Ports, Exact: s.Exact, Map: s.Map, Pass: s.Pass}
		if len(s.Elements) > 0 {
			cp.Elements = slices.Clone(s.Elements)
			slices.SortFunc(cp.Elements, compareElements)
		}
		out.Sets = append(out.Sets, cp)
	}
	slices.SortFunc(out.Sets, func(a, b *PeerSet) int { return strings.Compare(a.Name, b.Name) })
	for _, c := range m.Chains {
		cp := copyChain(c)
		out.Chains = append(out.Chains, &cp)
	}
	slices.SortFunc(out.Chains, func(a, b *Chain) int { return strings.Compare(a.Name, b.Name) })
	return out
}
