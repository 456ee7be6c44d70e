package nft

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// Renderer renders successive snapshots of a cluster for one node. It
// keeps what it rendered last time, works out from the two snapshots
// which allowances can differ, and resolves only those again; the result
// is always exactly what Render returns for the same snapshot.
//
// An allowance, and so the sets of a pod's chain, depends only on the
// direction, the policies that isolate the pod in it, the pod's own named
// ports (for Ingress) and what the peers of those policies match. The
// renderer keeps one entry per such combination, shared by the pods that
// have it (pods of one workload usually do), and drops an entry when one
// of its peers may match differently: a pod that changed (labels,
// addresses, phase, container ports, hostNetwork, node, an address that
// moved to or from it, or one it came to share or stopped sharing with
// another pod) and matches the peer in its old or new form, or a
// namespace whose new labels flip the peer's namespace selector. Policies
// are compared by content (namespace, name and spec); an edited policy
// makes new entries for the pods it selects. A tier of cluster-scoped
// policy is kept the same way, per combination of direction, tier, the
// cluster policies that select the pod (policy.Set.TierPolicies) and its
// named ports; such an entry also depends on the nodes when a node peer
// is among its rules. So an edited cluster policy re-renders the pods it
// selects, and a changed node the pods whose policies have node peers.
//
// Snapshots passed to Render must not be modified afterwards; unchanged
// objects may be shared between snapshots (that makes comparing them
// cheap). A Renderer is not safe for concurrent use.
type Renderer struct {
	opts Options
	// set is the last snapshot rendered; nil before the first. ordered
	// is true when its pods are sorted and each is there once, as
	// following changes needs.
	set     *policy.Set
	ordered bool
	res     *policy.Resolver
	// pols gives each policy, by namespace/name, a version that changes
	// whenever its content does; cpols each cluster policy, by key.
	pols    map[string]*version[*networkingv1.NetworkPolicy]
	cpols   map[string]*version[*cluster.ClusterPolicy]
	version uint64
	// gen numbers the calls of Render; logGen is the last that changed
	// something (see Model.LogGen).
	gen, logGen uint64
	// ids are the versions of the policies of set; cids of its cluster
	// policies.
	ids  map[*policy.Policy]uint64
	cids map[*policy.ClusterPolicy]uint64
	// entries are the allowances rendered for the last snapshot, by
	// entryKey; tiers the tier decisions, by tierKey.
	entries map[string]*entry
	tiers   map[string]*tierEntry
	// chains are the chains of the last snapshot, by pod key and
	// direction (layer chains by name), with what they were built from.
	chains map[string]*chainEntry
	// subjects caches, by pod key, the cluster policies that select the
	// pod (see subjectsOf); subjectsFor is the list of cluster policies
	// it holds for.
	subjects    map[string]*podSubjects
	subjectsFor []*policy.ClusterPolicy
	// Stats describe the last Render.
	stats RenderStats
	// norm normalises allowances, its memory reused from one to the next.
	norm policy.Normalizer
}

// RenderStats describe what one Render did.
type RenderStats struct {
	// Full is true when the renderer had nothing to reuse (the first
	// snapshot, or too many changes).
	Full bool
	// ChangedPods, ChangedNamespaces, ChangedPolicies,
	// ChangedClusterPolicies and ChangedNodes are what differed from the
	// previous snapshot (ChangedPods includes pods an address moved to or
	// from).
	ChangedPods, ChangedNamespaces, ChangedPolicies, ChangedClusterPolicies, ChangedNodes int
	// Resolved is the number of allowances and tier decisions resolved;
	// Reused the number taken from the previous snapshot.
	Resolved, Reused int
}

// version is a policy (of source type S) as the renderer last saw it,
// and its version.
type version[S any] struct {
	src S
	id  uint64
}

// deps are what an entry depends on besides its key: the pod peers it
// resolved (by policy.PeerKey), every pod (an Egress named port against
// every pod), the pods with an address in blocks (an Egress named port
// against an ipBlock or network), the nodes (a node peer).
type deps struct {
	peers  []string
	anyPod bool
	blocks []netip.Prefix
	nodes  bool
}

// addPeer records a pod peer.
func (d *deps) addPeer(k string) {
	if !slices.Contains(d.peers, k) {
		d.peers = append(d.peers, k)
	}
}

// affected reports whether the changes may change what the entry holds;
// nodes is whether a node changed.
func (d *deps) affected(ch policy.Changes, nodes bool) bool {
	if d.anyPod && len(ch.Pods) > 0 || d.nodes && nodes {
		return true
	}
	for _, k := range d.peers {
		if ch.Peers[k] {
			return true
		}
	}
	for _, b := range d.blocks {
		for _, a := range ch.Addrs {
			if b.Contains(a) {
				return true
			}
		}
	}
	return false
}

// entry is the rendered allowance of one combination of direction,
// isolating policies and (for Ingress) named ports.
type entry struct {
	// sum identifies the combination independently of the renderer's
	// history; set names derive from it.
	sum [sha256.Size]byte
	// sets are indexed by family (0: IPv4, 1: IPv6) and kind (setAddrs,
	// setPorts, setExactAddrs, setExactPorts); nil when empty.
	sets [2][setKinds]*PeerSet
	deps
	// used is the number of the render that last used the entry.
	used uint64
}

type chainEntry struct {
	sig   string
	chain *Chain
}

// maxIncremental is the share of pods (in 1/16) beyond which a change is
// rendered from scratch rather than followed.
const maxIncremental = 4

// NewRenderer returns a renderer for the node and options opts.
func NewRenderer(opts Options) *Renderer {
	return &Renderer{opts: opts}
}

// Options returns the renderer's options.
func (r *Renderer) Options() Options { return r.opts }

// Stats describe the last Render.
func (r *Renderer) Stats() RenderStats { return r.stats }

// Reset makes the next Render start from scratch.
func (r *Renderer) Reset() {
	r.set = nil
}

// Render builds the ruleset for the local pods of s's cluster, as Render
// does. s is normally a later snapshot of the cluster of the previous call,
// but may be any: the renderer compares the two whole.
func (r *Renderer) Render(s *policy.Set) *Model {
	r.stats = RenderStats{}
	r.advance(s)
	return r.build(s)
}

// reset forgets everything.
func (r *Renderer) reset(s *policy.Set) {
	r.set = s
	r.ordered = s.Cluster.Sorted()
	r.res = policy.NewResolver(s)
	r.pols = map[string]*version[*networkingv1.NetworkPolicy]{}
	r.cpols = map[string]*version[*cluster.ClusterPolicy]{}
	r.entries = map[string]*entry{}
	r.tiers = map[string]*tierEntry{}
	r.chains = map[string]*chainEntry{}
	r.subjects = map[string]*podSubjects{}
	r.subjectsFor = s.ClusterPolicies
	r.stats.Full = true
	r.updateVersions(s)
}

// advance moves the renderer's state to s, dropping every entry that the
// differences from the previous snapshot may affect.
func (r *Renderer) advance(s *policy.Set) {
	if r.set == nil || !r.ordered {
		r.reset(s)
		return
	}
	if !s.Cluster.Sorted() {
		r.reset(s)
		return
	}
	ch := cluster.Diff(r.set.Cluster, s.Cluster)
	pods, nss := ch.Pods, ch.Namespaces
	if len(pods) > max(64, len(s.Cluster.Pods)*maxIncremental/16) {
		r.reset(s)
		r.stats.ChangedPods = len(pods)
		return
	}
	r.updateVersions(s)
	r.stats.ChangedNodes = len(ch.Nodes)
	r.set = s
	adv := r.res.Advance(s, pods, nss)
	r.stats.ChangedPods, r.stats.ChangedNamespaces = len(adv.Pods), len(nss)
	nodes := len(ch.Nodes) > 0
	for k, e := range r.entries {
		if e.affected(adv, nodes) {
			delete(r.entries, k)
		}
	}
	for k, te := range r.tiers {
		if te.affected(adv, nodes) {
			delete(r.tiers, k)
		}
	}
	// The cached subjects of a pod hold for its version, its namespace's
	// labels and the cluster policies they were computed for.
	if !slices.Equal(r.subjectsFor, s.ClusterPolicies) {
		clear(r.subjects)
		r.subjectsFor = s.ClusterPolicies
	}
	for _, k := range adv.Pods {
		delete(r.subjects, k)
	}
	if len(nss) > 0 {
		for k, ps := range r.subjects {
			if _, ok := slices.BinarySearch(nss, ps.pod.Namespace); ok {
				delete(r.subjects, k)
			}
		}
	}
}

// updateVersions versions the policies and cluster policies of s,
// counting those added, changed or removed in the stats.
func (r *Renderer) updateVersions(s *policy.Set) {
	r.ids, r.stats.ChangedPolicies = updateVersions(&r.version, r.pols, s.Policies,
		func(p *policy.Policy) *networkingv1.NetworkPolicy { return p.Source }, cluster.SamePolicy)
	r.cids, r.stats.ChangedClusterPolicies = updateVersions(&r.version, r.cpols, s.ClusterPolicies,
		func(p *policy.ClusterPolicy) *cluster.ClusterPolicy { return p.Source }, cluster.SameClusterPolicy)
}

// updateVersions versions ps in vers, by key: a policy keeps its version
// while same says its source is the one last seen, and otherwise gets the
// next number of *last. It returns the version of each policy of ps, and
// how many were added, changed or removed.
func updateVersions[P interface {
	comparable
	Key() string
}, S any](last *uint64, vers map[string]*version[S], ps []P, source func(P) S, same func(a, b S) bool) (map[P]uint64, int) {
	n := 0
	ids := make(map[P]uint64, len(ps))
	seen := make(map[string]bool, len(ps))
	for _, p := range ps {
		k := p.Key()
		seen[k] = true
		v := vers[k]
		switch src := source(p); {
		case v == nil || !same(v.src, src):
			*last++
			v = &version[S]{src: src, id: *last}
			vers[k] = v
			n++
		default:
			v.src = src
		}
		ids[p] = v.id
	}
	for k := range vers {
		if !seen[k] {
			delete(vers, k)
			n++
		}
	}
	return ids, n
}

// podDir is a local pod that some policy decides for in one direction.
type podDir struct {
	pod   *cluster.Pod
	id    string
	addrs []netip.Addr
	// fams says which families the pod has addresses of.
	fams [2]bool
	dir  policy.Direction
	// iso are the policies that isolate the pod, e its NetworkPolicy
	// allowance (nil when none isolates it).
	iso []*policy.Policy
	e   *entry
	// admin and base are the tiers' decisions, with the policies behind
	// them; nil when no cluster policy of the tier decides anything for
	// the pod (base is nil too when NetworkPolicy isolates the pod).
	admin, base         *tierEntry
	adminPols, basePols []*policy.ClusterPolicy
	// conflict is set for a pod holding a conflicted address: its chain
	// denies everything.
	conflict *cluster.AddressConflict
}

// build renders s from the entries kept and those it resolves anew.
func (r *Renderer) build(s *policy.Set) *Model {
	r.gen++
	gen := r.gen
	m := &Model{Deny: r.opts.Deny}
	maps := map[string]*VMap{}
	for _, n := range []struct {
		name string
		fam  Family
	}{{MapEgress4, IPv4}, {MapEgress6, IPv6}, {MapIngress4, IPv4}, {MapIngress6, IPv6}} {
		vm := &VMap{Name: n.name, Family: n.fam}
		maps[n.name] = vm
		m.Maps = append(m.Maps, vm)
	}
	var items []podDir
	names := map[string]string{} // hash prefix -> pod key
	var key []byte
	// mapped are the conflicted addresses already given to a local pod:
	// two local holders of one address both deny everything, and the
	// first (in cluster order) gets the map elements.
	var mapped map[netip.Addr]bool
	for _, pod := range s.Cluster.Pods {
		if (!r.opts.AllLocal && pod.NodeName != r.opts.Node) || pod.HostNetwork {
			continue
		}
		if ok, _ := pod.Active(); !ok {
			continue
		}
		addrs := ownAddrs(s.Cluster, pod)
		var conflict *cluster.AddressConflict
		if conf, ok := s.Cluster.Conflict(pod); ok {
			conflict = &conf
			if mapped == nil {
				mapped = map[netip.Addr]bool{}
			}
			addrs = slices.DeleteFunc(addrs, func(ip netip.Addr) bool { return mapped[ip] })
			for _, ip := range addrs {
				mapped[ip] = true
			}
		}
		if len(addrs) == 0 {
			continue
		}
		var fams [2]bool
		for _, ip := range addrs {
			fams[familyIndex(familyOf(ip))] = true
		}
		id := podID(pod.Key(), names)
		var subj *[2][2][]*policy.ClusterPolicy
		if conflict == nil {
			subj = r.subjectsOf(s, pod)
		}
		for _, dir := range policy.Directions {
			iso := s.Isolating(pod, dir)
			if conflict != nil {
				// Isolated whatever the policies say, with nothing
				// allowed, above every tier: an entry without sets,
				// shared by every conflicted pod.
				key = append(key[:0], byte(2+dir))
				e := r.entries[string(key)]
				if e == nil {
					e = &entry{sum: sha256.Sum256(key)}
					r.entries[string(key)] = e
					r.stats.Resolved++
				} else if e.used != gen {
					r.stats.Reused++
				}
				e.used = gen
				items = append(items, podDir{pod: pod, id: id, addrs: addrs, fams: fams, dir: dir, iso: iso, e: e, conflict: conflict})
				continue
			}
			it := podDir{pod: pod, id: id, addrs: addrs, fams: fams, dir: dir, iso: iso}
			if subj != nil {
				if pols := subj[policy.AdminTier][dir]; len(pols) > 0 {
					if te := r.tierEntry(&key, pod, dir, policy.AdminTier, pols, gen); te.covers(fams) {
						it.admin, it.adminPols = te, pols
					}
				}
				if pols := subj[policy.BaselineTier][dir]; len(pols) > 0 && len(iso) == 0 {
					if te := r.tierEntry(&key, pod, dir, policy.BaselineTier, pols, gen); te.covers(fams) {
						it.base, it.basePols = te, pols
					}
				}
			}
			if len(iso) > 0 {
				key = r.entryKey(key[:0], pod, dir, iso)
				e := r.entries[string(key)]
				if e == nil {
					e = r.resolve(pod, dir, iso)
					r.entries[string(key)] = e
					r.stats.Resolved++
				} else if e.used != gen {
					r.stats.Reused++
				}
				e.used = gen
				it.e = e
			}
			if it.e == nil && it.admin == nil && it.base == nil {
				continue // allowed by default
			}
			items = append(items, it)
		}
	}
	for k, e := range r.entries {
		if e.used != gen {
			delete(r.entries, k)
		}
	}
	for k, te := range r.tiers {
		if te.used != gen {
			delete(r.tiers, k)
		}
	}
	live := map[string]bool{}
	for _, e := range r.entries {
		for _, k := range e.peers {
			live[k] = true
		}
	}
	for _, te := range r.tiers {
		for _, k := range te.peers {
			live[k] = true
		}
	}
	r.res.Prune(func(k string) bool { return live[k] })

	// Name the sets, maps and layer chains: by the identity of what they
	// are made of, at full length for identities whose short names
	// collide.
	nm := newNamer()
	for _, it := range items {
		if it.e != nil {
			nm.add(it.e.sum)
		}
		if it.base != nil {
			nm.add(it.base.sum)
		}
		if it.admin != nil {
			nm.add(it.admin.sum)
		}
	}
	sets := map[string]*PeerSet{}
	chains := make(map[string]*chainEntry, len(items))
	for _, it := range items {
		spec := chainSpec{name: chainPrefix(it.dir) + it.id, pod: it.pod.Key(), dir: it.dir, deny: r.opts.Deny, log: r.opts.Log}
		if it.conflict != nil {
			spec.conflict = conflictWords(it)
		}
		var npSets, baseMaps []lookup
		if it.e != nil {
			npSets = npLookups(it.e, nm)
		}
		if it.base != nil {
			baseMaps = it.base.maps(nm.name(it.base.sum), "", gen)
		}
		switch {
		case it.admin != nil:
			spec.admin = policyKeys(it.adminPols)
			var next chainSpec
			switch {
			case it.e != nil:
				next = chainSpec{name: layerPrefix(it.dir, 'n') + nm.name(it.e.sum), dir: it.dir, deny: r.opts.Deny, log: r.opts.Log,
					iso: policyNames(it.iso), lookups: npSets}
			case it.base != nil:
				next = chainSpec{name: layerPrefix(it.dir, 'b') + nm.name(it.base.sum), dir: it.dir, deny: r.opts.Deny, log: r.opts.Log,
					baseline: policyKeys(it.basePols), lookups: baseMaps}
			}
			if next.name != "" {
				r.layerChain(next, chains, sets)
				spec.next, spec.nextWhat = next.name, next.words()
			}
			spec.lookups = onlyFamilies(it.admin.maps(nm.name(it.admin.sum), spec.next, gen), it.fams)
		case it.e != nil:
			// The NetworkPolicy layer, or a conflicted pod's chain
			// (without sets).
			spec.iso = policyNames(it.iso)
			spec.lookups = onlyFamilies(npSets, it.fams)
		default:
			spec.baseline = policyKeys(it.basePols)
			spec.lookups = onlyFamilies(baseMaps, it.fams)
		}
		spec.record(sets)
		ck := it.pod.Key() + "\x00" + it.dir.String()
		ce := r.chains[ck]
		sig := spec.sig()
		if ce == nil || ce.sig != sig {
			ce = &chainEntry{sig: sig, chain: spec.render()}
		}
		chains[ck] = ce
		for _, ip := range it.addrs {
			mapName := MapIngress4
			switch {
			case it.dir == policy.Ingress && !ip.Is4():
				mapName = MapIngress6
			case it.dir == policy.Egress && ip.Is4():
				mapName = MapEgress4
			case it.dir == policy.Egress:
				mapName = MapEgress6
			}
			vm := maps[mapName]
			vm.Elements = append(vm.Elements, VMapElement{Addr: ip, Chain: spec.name, Comment: truncate(it.pod.Key())})
		}
	}
	r.chains = chains
	for _, ce := range chains {
		m.Chains = append(m.Chains, ce.chain)
	}
	if r.opts.Log != nil {
		st := r.stats
		if r.logGen == 0 || st.Full || st.ChangedPods+st.ChangedNamespaces+st.ChangedPolicies+st.ChangedClusterPolicies+st.ChangedNodes > 0 {
			r.logGen = gen
		}
		m.LogGen = r.logGen
		m.Chains = append(m.Chains, r.opts.Log.logChains(r.logGen)...)
	}
	for _, te := range r.tiers {
		te.prune(gen)
	}
	for _, st := range sets {
		m.Sets = append(m.Sets, st)
	}
	for _, vm := range m.Maps {
		slices.SortFunc(vm.Elements, func(a, b VMapElement) int { return a.Addr.Compare(b.Addr) })
	}
	slices.SortFunc(m.Sets, func(a, b *PeerSet) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(m.Chains, func(a, b *Chain) int { return strings.Compare(a.Name, b.Name) })
	return m
}

// layerChain records a layer chain in chains and its sets and maps in
// sets (once, however many pods go to it), reusing the previous render's
// chain when it is built alike.
func (r *Renderer) layerChain(spec chainSpec, chains map[string]*chainEntry, sets map[string]*PeerSet) {
	ck := "\x01" + spec.name
	if _, ok := chains[ck]; ok {
		return
	}
	spec.record(sets)
	sig := spec.sig()
	ce := r.chains[ck]
	if ce == nil || ce.sig != sig {
		ce = &chainEntry{sig: sig, chain: spec.render()}
	}
	chains[ck] = ce
}

// npLookups returns the sets of a NetworkPolicy allowance, in family
// order and lookup order (hash sets first).
func npLookups(e *entry, nm *namer) []lookup {
	var out []lookup
	for fi, fam := range []Family{IPv4, IPv6} {
		for _, kind := range lookupOrder {
			st := e.sets[fi][kind]
			if st == nil {
				continue
			}
			if nm.long(e.sum) {
				cp := *st
				cp.Name = setName(e.sum, fam, kind, true)
				st = &cp
			}
			rk := RuleAddr
			if st.Ports {
				rk = RuleAddrPort
			}
			out = append(out, lookup{kind: rk, fam: fam, set: st})
		}
	}
	return out
}

// entryKey appends the key of a pod's entry for a direction: the
// direction, the versions of the isolating policies and, for Ingress, the
// pod's numbers for the named ports of their rules.
func (r *Renderer) entryKey(b []byte, pod *cluster.Pod, dir policy.Direction, iso []*policy.Policy) []byte {
	b = append(b, byte(dir))
	for _, p := range iso {
		b = binary.AppendUvarint(b, r.ids[p])
	}
	return appendNamedPorts(b, pod, dir, iso)
}

// appendNamedPorts appends, for Ingress, the pod's number (or none) for
// each named port of the isolating policies' rules.
func appendNamedPorts(b []byte, pod *cluster.Pod, dir policy.Direction, iso []*policy.Policy) []byte {
	if dir != policy.Ingress {
		return b
	}
	for _, p := range iso {
		for _, rule := range p.Rules[dir] {
			for _, port := range rule.Ports {
				if port.Name == "" {
					continue
				}
				n, ok := pod.NamedPort(port.Name, port.Protocol)
				if !ok {
					n = -1
				}
				b = append(b, 0)
				b = binary.AppendVarint(b, int64(n))
			}
		}
	}
	return b
}

// resolve renders the allowance of a pod in a direction as a new entry.
func (r *Renderer) resolve(pod *cluster.Pod, dir policy.Direction, iso []*policy.Policy) *entry {
	e := &entry{}
	// The identity: the direction, the isolating policies by name and the
	// named port numbers; within one snapshot it determines the allowance.
	h := sha256.New()
	var b []byte
	b = append(b, byte(dir))
	for _, p := range iso {
		b = append(b, p.Namespace...)
		b = append(b, '/')
		b = append(b, p.Name...)
		b = append(b, 0)
	}
	b = appendNamedPorts(b, pod, dir, iso)
	h.Write(b)
	h.Sum(e.sum[:0])
	for _, p := range iso {
		for _, rule := range p.Rules[dir] {
			named := slices.ContainsFunc(rule.Ports, func(pt policy.Port) bool { return pt.Name != "" })
			egressNamed := dir == policy.Egress && named
			if rule.AllPeers() {
				e.anyPod = e.anyPod || egressNamed
				continue
			}
			for i := range rule.Peers {
				peer := &rule.Peers[i]
				if peer.IPBlock != nil {
					if egressNamed {
						e.blocks = append(e.blocks, peer.IPBlock.CIDR)
					}
					continue
				}
				e.addPeer(policy.PeerKey(peer))
			}
		}
	}
	a := r.res.Resolve(pod, dir)
	if a == nil {
		return e
	}
	n := elementsOf(r.norm.Normalize(a))
	for fi, fam := range []Family{IPv4, IPv6} {
		for kind, elems := range [setKinds][]Element{n.all[fi], n.ports[fi], n.exactAll[fi], n.exactPorts[fi]} {
			if len(elems) > 0 {
				e.sets[fi][kind] = &PeerSet{Name: setName(e.sum, fam, kind, false), Family: fam,
					Ports: kind == setPorts || kind == setExactPorts, Exact: kind >= setExactAddrs, Elements: elems}
			}
		}
	}
	return e
}

// Kinds of an entry's sets, and the letter their names start with.
const (
	setAddrs      = iota // interval set of address ranges ("a")
	setPorts             // concatenated interval set of address range . protocol . port range ("p")
	setExactAddrs        // hash set of single addresses ("e")
	setExactPorts        // hash set of single address . protocol . single port ("x")
	setKinds
)

// lookupOrder is the order in which a pod's chain looks up the sets of a
// family: the hash sets (one O(1) lookup each) before the interval sets,
// exact ports first, as most policies name ports and most peers are pods.
// Every rule accepts (or returns), so the order does not change what is
// allowed, only how many lookups the common case costs.
var lookupOrder = [setKinds]int{setExactPorts, setExactAddrs, setAddrs, setPorts}

// setName names a set of an entry: "a4-", "p4-", "e4-", "x4-" (kind, see
// setAddrs) or the same with 6 (family), and the first 16 hex digits of
// the entry's identity, or all of them.
func setName(sum [sha256.Size]byte, fam Family, kind int, long bool) string {
	prefix := string("apex"[kind])
	if fam == 0 {
		fam = IPv4
	}
	n := 8
	if long {
		n = len(sum)
	}
	return prefix + strconv.Itoa(int(fam)) + "-" + hex.EncodeToString(sum[:n])
}
