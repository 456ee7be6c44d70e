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
// makes new entries for the pods it selects.
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
	// whenever its content does.
	pols    map[string]*polVersion
	version uint64
	// gen numbers the calls of Render.
	gen uint64
	// ids are the versions of the policies of set.
	ids map[*policy.Policy]uint64
	// entries are the allowances rendered for the last snapshot, by
	// entryKey.
	entries map[string]*entry
	// chains are the chains of the last snapshot, by pod key and
	// direction, with what they were built from.
	chains map[string]*chainEntry
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
	// ChangedPods, ChangedNamespaces and ChangedPolicies are what differed
	// from the previous snapshot (ChangedPods includes pods an address
	// moved to or from).
	ChangedPods, ChangedNamespaces, ChangedPolicies int
	// Resolved is the number of allowances resolved; Reused the number
	// taken from the previous snapshot.
	Resolved, Reused int
}

type polVersion struct {
	src *networkingv1.NetworkPolicy
	id  uint64
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
	// What the allowance depends on besides its key.
	peers  []string
	anyPod bool
	blocks []netip.Prefix
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
	r.pols = map[string]*polVersion{}
	r.entries = map[string]*entry{}
	r.chains = map[string]*chainEntry{}
	r.stats.Full = true
	r.stats.ChangedPolicies = r.updatePolicies(s)
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
	r.stats.ChangedPolicies = r.updatePolicies(s)
	r.set = s
	adv := r.res.Advance(s, pods, nss)
	r.stats.ChangedPods, r.stats.ChangedNamespaces = len(adv.Pods), len(nss)
	for k, e := range r.entries {
		if e.affected(adv) {
			delete(r.entries, k)
		}
	}
}

// affected reports whether the changes may change the entry's allowance.
func (e *entry) affected(ch policy.Changes) bool {
	if e.anyPod && len(ch.Pods) > 0 {
		return true
	}
	for _, k := range e.peers {
		if ch.Peers[k] {
			return true
		}
	}
	for _, b := range e.blocks {
		for _, a := range ch.Addrs {
			if b.Contains(a) {
				return true
			}
		}
	}
	return false
}

// updatePolicies versions the policies of s and returns how many were
// added, changed or removed.
func (r *Renderer) updatePolicies(s *policy.Set) int {
	n := 0
	r.ids = make(map[*policy.Policy]uint64, len(s.Policies))
	seen := make(map[string]bool, len(s.Policies))
	for _, p := range s.Policies {
		k := p.Key()
		seen[k] = true
		v := r.pols[k]
		switch {
		case v == nil || !cluster.SamePolicy(v.src, p.Source):
			r.version++
			v = &polVersion{src: p.Source, id: r.version}
			r.pols[k] = v
			n++
		default:
			v.src = p.Source
		}
		r.ids[p] = v.id
	}
	for k := range r.pols {
		if !seen[k] {
			delete(r.pols, k)
			n++
		}
	}
	return n
}

// podDir is a local pod isolated in one direction.
type podDir struct {
	pod   *cluster.Pod
	id    string
	addrs []netip.Addr
	dir   policy.Direction
	iso   []*policy.Policy
	e     *entry
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
		id := podID(pod.Key(), names)
		for _, dir := range policy.Directions {
			iso := s.Isolating(pod, dir)
			if conflict != nil {
				// Isolated whatever the policies say, with nothing
				// allowed: an entry without sets, shared by every
				// conflicted pod.
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
				items = append(items, podDir{pod: pod, id: id, addrs: addrs, dir: dir, iso: iso, e: e, conflict: conflict})
				continue
			}
			if len(iso) == 0 {
				continue
			}
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
			items = append(items, podDir{pod: pod, id: id, addrs: addrs, dir: dir, iso: iso, e: e})
		}
	}
	for k, e := range r.entries {
		if e.used != gen {
			delete(r.entries, k)
		}
	}
	live := map[string]bool{}
	for _, e := range r.entries {
		for _, k := range e.peers {
			live[k] = true
		}
	}
	r.res.Prune(func(k string) bool { return live[k] })

	// Name the sets: by the identity of their entry, at full length for
	// entries whose short names collide.
	long := map[*entry]bool{}
	short := map[string]*entry{}
	for _, it := range items {
		n := setName(it.e.sum, 0, 0, false)
		if o, ok := short[n]; ok && o != it.e {
			long[o], long[it.e] = true, true
		}
		short[n] = it.e
	}
	sets := map[string]*PeerSet{}
	chains := make(map[string]*chainEntry, len(items))
	for _, it := range items {
		var setNames []string
		for fi, fam := range []Family{IPv4, IPv6} {
			if !slices.ContainsFunc(it.addrs, func(ip netip.Addr) bool { return familyOf(ip) == fam }) {
				continue // the chain never sees this family
			}
			for _, kind := range lookupOrder {
				st := it.e.sets[fi][kind]
				if st == nil {
					continue
				}
				if long[it.e] {
					cp := *st
					cp.Name = setName(it.e.sum, fam, kind, true)
					st = &cp
				}
				if _, ok := sets[st.Name]; !ok {
					sets[st.Name] = st
				}
				setNames = append(setNames, st.Name)
			}
		}
		ck := it.pod.Key() + "\x00" + it.dir.String()
		ce := r.chains[ck]
		name := chainPrefix(it.dir) + it.id
		sig := chainSig(name, it, setNames, r.opts.Deny)
		if ce == nil || ce.sig != sig {
			ce = &chainEntry{sig: sig, chain: renderChain(name, it, setNames, r.opts.Deny)}
		}
		chains[ck] = ce
		m.Chains = append(m.Chains, ce.chain)
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
			vm.Elements = append(vm.Elements, VMapElement{Addr: ip, Chain: name, Comment: truncate(it.pod.Key())})
		}
	}
	r.chains = chains
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
				if k := policy.PeerKey(peer); !slices.Contains(e.peers, k) {
					e.peers = append(e.peers, k)
				}
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

// chainSig is what a chain is built from.
func chainSig(name string, it podDir, setNames []string, deny Deny) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte(0)
	b.WriteString(it.pod.Key())
	b.WriteByte(0)
	b.WriteByte(byte(it.dir))
	b.WriteByte(byte(deny))
	for _, p := range it.iso {
		b.WriteByte(0)
		b.WriteString(p.Name)
	}
	if it.conflict != nil {
		b.WriteByte(2)
		b.WriteString(conflictWords(it))
	}
	b.WriteByte(1)
	for _, n := range setNames {
		b.WriteByte(0)
		b.WriteString(n)
	}
	return b.String()
}

// conflictWords says why a conflicted pod's chain denies everything.
func conflictWords(it podDir) string {
	return "address " + it.conflict.Addr.String() + " shared with " + it.conflict.SharedWith(it.pod) + ": denied (fail closed)"
}

// renderChain builds the chain of a local pod for a direction, whose rules
// look up the named sets (address and ports sets, exact and ranges, of
// each family the pod has), in order.
func renderChain(name string, it podDir, setNames []string, deny Deny) *Chain {
	egress := it.dir == policy.Egress
	ch := &Chain{Name: name, Pod: it.pod.Key(), Direction: it.dir}
	var pols []string
	for _, p := range it.iso {
		pols = append(pols, p.Name)
	}
	what := it.pod.Key() + " " + dirWord(it.dir)
	by := "; isolated by " + strings.Join(pols, ", ")
	if it.conflict != nil {
		by = "; " + conflictWords(it)
	}
	for _, n := range setNames {
		fam := IPv4
		if n[1] == '6' {
			fam = IPv6
		}
		if n[0] == 'a' || n[0] == 'e' {
			ch.Rules = append(ch.Rules, Rule{Kind: RuleAddr, Family: fam, Set: n, Egress: egress,
				Comment: truncate(what + ": peers allowed on all ports" + by)})
		} else {
			ch.Rules = append(ch.Rules, Rule{Kind: RuleAddrPort, Family: fam, Set: n, Egress: egress,
				Comment: truncate(what + ": peers allowed on listed ports" + by)})
		}
	}
	if deny == DenyReject {
		ch.Rules = append(ch.Rules, Rule{Kind: RuleTCPReset, Egress: egress, Comment: truncate(what + ": reset denied TCP" + by)})
	}
	rest := ": deny the rest"
	if it.conflict != nil {
		rest = ": deny everything"
	}
	ch.Rules = append(ch.Rules, Rule{Kind: RuleDeny, Egress: egress, Comment: truncate(what + rest + by)})
	return ch
}
