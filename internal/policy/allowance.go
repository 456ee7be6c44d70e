package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/iprange"
)

// This file resolves the policy form into what one pod may exchange: the
// dataplane's view. It follows Set.Evaluate (set.go) exactly: a peer address belongs to
// the pod Cluster.PodByIP names, when that pod is active, and is external
// otherwise; pod peers match pod-network pods only; named ports resolve
// against the destination (the pod itself for Ingress, each destination pod
// for Egress) and never match external addresses. A pod holding a
// conflicted address (cluster.AddressConflict) is resolved to an empty
// allowance in both directions, and as a peer it is an address only: pod
// peers skip it and named ports never resolve against it.

// AddrRange is an inclusive range of addresses of one family.
type AddrRange = iprange.Range

// PrefixRange returns the addresses of a prefix as a range.
func PrefixRange(p netip.Prefix) AddrRange { return iprange.FromPrefix(p) }

// Everything returns every IPv4 and every IPv6 address.
func Everything() []AddrRange {
	return []AddrRange{
		PrefixRange(netip.PrefixFrom(netip.IPv4Unspecified(), 0)),
		PrefixRange(netip.PrefixFrom(netip.IPv6Unspecified(), 0)),
	}
}

// blockRanges returns an IPBlock as ranges: its CIDR minus its exceptions.
func blockRanges(b *IPBlock) []AddrRange {
	out := []AddrRange{PrefixRange(b.CIDR)}
	for _, e := range b.Except {
		out = iprange.Subtract(out, PrefixRange(e))
	}
	return out
}

// Service is the traffic an allowance item covers: every protocol and port,
// or one protocol and an inclusive range of its ports.
type Service struct {
	// AllProtocols means every protocol (TCP, UDP, SCTP, ICMP, ...) and
	// every port; the other fields are then unused.
	AllProtocols bool
	Protocol     corev1.Protocol
	// FromPort..ToPort is the port range, 0..65535 for every port.
	FromPort, ToPort int32
}

// Matches reports whether the service covers proto/port.
func (s Service) Matches(proto corev1.Protocol, port int32) bool {
	return s.AllProtocols || (s.Protocol == proto && s.FromPort <= port && port <= s.ToPort)
}

func (s Service) String() string {
	switch {
	case s.AllProtocols:
		return "all"
	case s.FromPort == 0 && s.ToPort == 65535:
		return fmt.Sprintf("%s/any", s.Protocol)
	case s.FromPort == s.ToPort:
		return fmt.Sprintf("%s/%d", s.Protocol, s.FromPort)
	}
	return fmt.Sprintf("%s/%d-%d", s.Protocol, s.FromPort, s.ToPort)
}

// Item is one thing an isolated pod may exchange: peer addresses times a
// service, and the part of a policy that allows it.
type Item struct {
	// Addrs are the peer addresses: sources for Ingress, destinations for
	// Egress. They are sorted and disjoint.
	Addrs   []AddrRange
	Service Service
	// Source is the policy, rule, peer and port entry that produce the
	// item (Peer and Port are -1 for a rule without peers or ports).
	Source RuleMatch
	// Pod is the destination pod an Egress named port was resolved
	// against; nil otherwise.
	Pod *cluster.Pod
}

// Allows reports whether the item covers traffic with peer ip on
// proto/port.
func (it *Item) Allows(ip netip.Addr, proto corev1.Protocol, port int32) bool {
	if !it.Service.Matches(proto, port) {
		return false
	}
	ip = ip.Unmap()
	i, _ := slices.BinarySearchFunc(it.Addrs, ip, func(r AddrRange, ip netip.Addr) int {
		return r.To.Compare(ip)
	})
	return i < len(it.Addrs) && it.Addrs[i].Contains(ip)
}

// Allowance is what a pod isolated in one direction may exchange: the
// union of its items. Anything else is denied (in that direction).
type Allowance struct {
	Pod       *cluster.Pod
	Direction Direction
	// Isolating are the policies that isolate the pod in Direction.
	Isolating []*Policy
	// Conflict is set when the pod holds a conflicted address: Items is
	// then empty, whatever Isolating allows.
	Conflict *cluster.AddressConflict
	Items    []Item
}

// Allows reports whether the allowance lets the pod exchange traffic with
// peer ip on proto/port (the destination port).
func (a *Allowance) Allows(ip netip.Addr, proto corev1.Protocol, port int32) bool {
	for i := range a.Items {
		if a.Items[i].Allows(ip, proto, port) {
			return true
		}
	}
	return false
}

// Resolve returns what pod may exchange in dir, or nil when it is not
// isolated in dir. See Resolver for resolving many pods of one Set.
func (s *Set) Resolve(pod *cluster.Pod, dir Direction) *Allowance {
	return NewResolver(s).Resolve(pod, dir)
}

// Resolver resolves allowances for many pods of one Set, caching which
// pods and addresses each pod peer matches. Advance moves it on to a later
// snapshot of the same cluster, keeping what the changes cannot affect. It
// is not safe for concurrent use.
type Resolver struct {
	set *Set
	// owned lists the active pods and the addresses they own, in cluster
	// order; built when first needed.
	owned      []*ownedPod
	ownedBuilt bool
	// keys memoizes PeerKey for the peers of set.
	keys map[*Peer]string
	// peers caches, by PeerKey, what each pod peer matches.
	peers map[string]*peerMatch
}

type ownedPod struct {
	pod   *cluster.Pod
	addrs []AddrRange // single addresses, sorted
}

// peerMatch is what a pod peer matches.
type peerMatch struct {
	// peer is a peer with this key; only its selectors and namespace are
	// used.
	peer *Peer
	// pods are the active pods the peer matches, in cluster order.
	pods []*ownedPod
	// addrs are the merged addresses of pods, once merged is set.
	addrs  []AddrRange
	merged bool
}

// NewResolver returns a resolver for s.
func NewResolver(s *Set) *Resolver {
	return &Resolver{set: s, keys: map[*Peer]string{}, peers: map[string]*peerMatch{}}
}

// ownedBy returns the active pod p of c with the addresses c attributes
// to it, or nil when it is not active, owns no address or holds a
// conflicted address (such a pod is no pod peer and has no named ports).
func ownedBy(c *cluster.Cluster, p *cluster.Pod) *ownedPod {
	if p == nil {
		return nil
	}
	if ok, _ := p.Active(); !ok || c.Conflicted(p) {
		return nil
	}
	own := c.OwnedAddrs(p)
	if len(own) == 0 {
		return nil
	}
	op := &ownedPod{pod: p, addrs: make([]AddrRange, len(own))}
	for i, ip := range own {
		op.addrs[i] = AddrRange{From: ip, To: ip}
	}
	return op
}

// ownedPods returns the active pods of the set and their addresses.
func (r *Resolver) ownedPods() []*ownedPod {
	if !r.ownedBuilt {
		r.owned = r.owned[:0]
		for _, p := range r.set.Cluster.Pods {
			if op := ownedBy(r.set.Cluster, p); op != nil {
				r.owned = append(r.owned, op)
			}
		}
		r.ownedBuilt = true
	}
	return r.owned
}

// PeerKey identifies a pod peer by what it selects: two pod peers with
// equal keys match the same pods of any cluster. It is "" for an ipBlock
// peer.
func PeerKey(p *Peer) string {
	if p.IPBlock != nil {
		return ""
	}
	var b strings.Builder
	if p.NamespaceSelector == nil {
		b.WriteString("namespace\x00")
		b.WriteString(p.Namespace)
	} else {
		b.WriteString("namespaces\x00")
		writeSelectorKey(&b, p.NamespaceSelector)
	}
	b.WriteString("\x00pods\x00")
	writeSelectorKey(&b, p.PodSelector)
	return b.String()
}

// writeSelectorKey writes an encoding of a selector's requirements that
// differs for selectors with different requirements (label keys and values
// hold no control characters).
func writeSelectorKey(b *strings.Builder, sel labels.Selector) {
	reqs, selectable := sel.Requirements()
	if !selectable {
		b.WriteString("\x01nothing")
		return
	}
	for _, req := range reqs {
		b.WriteString("\x01")
		b.WriteString(req.Key())
		b.WriteString("\x02")
		b.WriteString(string(req.Operator()))
		vals := slices.Clone(req.ValuesUnsorted())
		slices.Sort(vals)
		for _, v := range vals {
			b.WriteString("\x03")
			b.WriteString(v)
		}
	}
}

// peerKey returns PeerKey(peer), memoized.
func (r *Resolver) peerKey(peer *Peer) string {
	k, ok := r.keys[peer]
	if !ok {
		k = PeerKey(peer)
		r.keys[peer] = k
	}
	return k
}

// match returns what a pod peer matches.
func (r *Resolver) match(peer *Peer) *peerMatch {
	key := r.peerKey(peer)
	if m, ok := r.peers[key]; ok {
		return m
	}
	m := &peerMatch{peer: peer, pods: []*ownedPod{}}
	for _, op := range r.ownedPods() {
		if peer.MatchesPod(op.pod, r.set.Cluster.NamespaceLabels(op.pod.Namespace)) {
			m.pods = append(m.pods, op)
		}
	}
	r.peers[key] = m
	return m
}

// peerPods returns the active pods a pod peer matches, with their addresses.
func (r *Resolver) peerPods(peer *Peer) []*ownedPod {
	return r.match(peer).pods
}

// peerAddrs returns the merged addresses of the pods a pod peer matches.
// The slice is shared: callers must not modify it.
func (r *Resolver) peerAddrs(peer *Peer) []AddrRange {
	m := r.match(peer)
	if !m.merged {
		var addrs []AddrRange
		for _, op := range m.pods {
			addrs = append(addrs, op.addrs...)
		}
		if len(addrs) > 0 {
			addrs = iprange.Merge(addrs)
		}
		m.addrs, m.merged = addrs, true
	}
	return m.addrs
}

// Changes is what Advance found to differ between two snapshots.
type Changes struct {
	// Peers are the keys (see PeerKey) of the pod peers whose resolution
	// may differ: the pods they match, or the addresses or container ports
	// of those pods, changed. An allowance that resolved none of these
	// peers, and no named Egress port against every pod or an ipBlock, is
	// the same in both snapshots (for the same policies).
	Peers map[string]bool
	// Pods are the keys of the pods whose part in resolution may differ:
	// the changed pods given to Advance and the pods an address moved to
	// or from.
	Pods []string
	// Addrs are the addresses of those pods in either snapshot.
	Addrs []netip.Addr
}

// Advance makes the resolver resolve for s, a later snapshot of the
// cluster of its current set, keeping the peer matches that the changes
// cannot affect. pods must list the key of every pod that was added,
// removed or changed in any way (labels, addresses, phase, container
// ports, hostNetwork, node) between the snapshots, namespaces every
// namespace whose labels changed, appeared or went. Policies may change
// freely: matches are cached by what a peer selects (PeerKey), not by
// policy.
//
// After Advance, an item's Pod may be a pod of an earlier snapshot that is
// equal to the current one.
func (r *Resolver) Advance(s *Set, pods, namespaces []string) Changes {
	old := r.set
	ch := Changes{Peers: map[string]bool{}}
	r.set = s
	r.owned, r.ownedBuilt = nil, false
	r.keys = map[*Peer]string{}
	oc, nc := old.Cluster, s.Cluster

	// A pod's addresses can move to or from another pod that did not
	// change itself; that pod changes too. So does a pod that comes to
	// share an address with a changed pod, or stops sharing one.
	seen := make(map[string]bool, len(pods))
	seenAddr := map[netip.Addr]bool{}
	for _, k := range pods {
		if !seen[k] {
			seen[k] = true
			ch.Pods = append(ch.Pods, k)
		}
	}
	for i := 0; i < len(ch.Pods); i++ {
		for _, p := range []*cluster.Pod{oc.Pod(ch.Pods[i]), nc.Pod(ch.Pods[i])} {
			if p == nil {
				continue
			}
			for _, ip := range p.IPs {
				ip = ip.Unmap()
				if !seenAddr[ip] {
					seenAddr[ip] = true
					ch.Addrs = append(ch.Addrs, ip)
				}
				owners := append([]*cluster.Pod{oc.PodByIP(ip), nc.PodByIP(ip)}, oc.Holders(ip)...)
				owners = append(owners, nc.Holders(ip)...)
				for _, owner := range owners {
					if owner != nil && !seen[owner.Key()] {
						seen[owner.Key()] = true
						ch.Pods = append(ch.Pods, owner.Key())
					}
				}
			}
		}
	}

	// A namespace selector that accepts a namespace's old labels but not
	// its new ones (or the reverse) changes for every pod there: match
	// such peers anew.
	for _, ns := range namespaces {
		ol, nl := oc.NamespaceLabels(ns), nc.NamespaceLabels(ns)
		for k, m := range r.peers {
			if sel := m.peer.NamespaceSelector; sel != nil && sel.Matches(ol) != sel.Matches(nl) {
				delete(r.peers, k)
				ch.Peers[k] = true
			}
		}
	}

	// Changed pods leave and join the peers they matched and match.
	for _, k := range ch.Pods {
		op, np := oc.Pod(k), nc.Pod(k)
		oo, no := ownedBy(oc, op), ownedBy(nc, np)
		if oo == nil && no == nil {
			continue // not a peer in either snapshot
		}
		var oLabels, nLabels labels.Set
		if oo != nil {
			oLabels = oc.NamespaceLabels(op.Namespace)
		}
		if no != nil {
			nLabels = nc.NamespaceLabels(np.Namespace)
		}
		same := oo != nil && no != nil && slices.Equal(oo.addrs, no.addrs) && slices.Equal(op.Ports, np.Ports)
		for pk, m := range r.peers {
			in := oo != nil && m.peer.MatchesPod(op, oLabels)
			out := no != nil && m.peer.MatchesPod(np, nLabels)
			if !in && !out {
				continue
			}
			if in && out && same {
				// The same pod, addresses and ports: only refresh it.
				if i, ok := findPod(m.pods, np); ok {
					m.pods[i] = no
					continue
				}
			}
			ch.Peers[pk] = true
			pods, ok := m.pods, true
			if in {
				var i int
				if i, ok = findPod(pods, op); ok {
					pods = slices.Delete(slices.Clone(pods), i, i+1)
				}
			}
			if out && ok {
				var i int
				var found bool
				if i, found = findPod(pods, np); found {
					ok = false
				} else {
					pods = slices.Insert(slices.Clone(pods), i, no)
				}
			}
			if !ok {
				// The cache disagrees with the old snapshot: match anew.
				delete(r.peers, pk)
				continue
			}
			m.pods, m.addrs, m.merged = pods, nil, false
		}
	}
	return ch
}

// findPod finds a pod by namespace and name in pods sorted in cluster
// order.
func findPod(pods []*ownedPod, p *cluster.Pod) (int, bool) {
	return slices.BinarySearchFunc(pods, p, func(op *ownedPod, p *cluster.Pod) int {
		if c := strings.Compare(op.pod.Namespace, p.Namespace); c != 0 {
			return c
		}
		return strings.Compare(op.pod.Name, p.Name)
	})
}

// Prune forgets the peer matches whose keys keep rejects.
func (r *Resolver) Prune(keep func(key string) bool) {
	for k := range r.peers {
		if !keep(k) {
			delete(r.peers, k)
		}
	}
}

// Resolve returns what pod may exchange in dir, or nil when it is not
// isolated in dir (hostNetwork pods never are). A pod holding a conflicted
// address is isolated in both directions with nothing allowed: its
// allowance has Conflict set and no items.
func (r *Resolver) Resolve(pod *cluster.Pod, dir Direction) *Allowance {
	if pod.HostNetwork {
		return nil
	}
	iso := r.set.Isolating(pod, dir)
	if conf, ok := r.set.Cluster.Conflict(pod); ok {
		return &Allowance{Pod: pod, Direction: dir, Isolating: iso, Conflict: &conf}
	}
	if len(iso) == 0 {
		return nil
	}
	a := &Allowance{Pod: pod, Direction: dir, Isolating: iso}
	for _, p := range iso {
		for ri := range p.Rules[dir] {
			r.resolveRule(a, p, &p.Rules[dir][ri])
		}
	}
	return a
}

func (r *Resolver) resolveRule(a *Allowance, p *Policy, rule *Rule) {
	src := RuleMatch{Policy: p, Direction: a.Direction, Rule: rule.Index, Peer: -1, Port: -1}
	if rule.AllPorts() {
		r.resolvePeers(a, rule, src, Service{AllProtocols: true})
		return
	}
	for pi, port := range rule.Ports {
		src.Port = pi
		switch {
		case port.Name == "":
			svc := Service{Protocol: port.Protocol, FromPort: port.Port, ToPort: port.EndPort}
			if port.AllPorts() {
				svc.FromPort, svc.ToPort = 0, 65535
			}
			r.resolvePeers(a, rule, src, svc)
		case a.Direction == Ingress:
			// The destination is the pod itself.
			if n, ok := a.Pod.NamedPort(port.Name, port.Protocol); ok {
				r.resolvePeers(a, rule, src, Service{Protocol: port.Protocol, FromPort: n, ToPort: n})
			}
		default:
			r.resolveNamedEgress(a, rule, src, port)
		}
	}
}

// resolvePeers adds the rule's peers times one service.
func (r *Resolver) resolvePeers(a *Allowance, rule *Rule, src RuleMatch, svc Service) {
	if rule.AllPeers() {
		src.Peer = -1
		a.Items = append(a.Items, Item{Addrs: Everything(), Service: svc, Source: src})
		return
	}
	for i := range rule.Peers {
		peer := &rule.Peers[i]
		src.Peer = i
		if peer.IPBlock != nil {
			if addrs := blockRanges(peer.IPBlock); len(addrs) > 0 {
				a.Items = append(a.Items, Item{Addrs: addrs, Service: svc, Source: src})
			}
			continue
		}
		if addrs := r.peerAddrs(peer); len(addrs) > 0 {
			a.Items = append(a.Items, Item{Addrs: addrs, Service: svc, Source: src})
		}
	}
}

// resolveNamedEgress adds, for an Egress named port, one item per
// destination pod that the rule's peers match and that has the port.
func (r *Resolver) resolveNamedEgress(a *Allowance, rule *Rule, src RuleMatch, port Port) {
	add := func(op *ownedPod, addrs []AddrRange, peer int) {
		n, ok := op.pod.NamedPort(port.Name, port.Protocol)
		if !ok || len(addrs) == 0 {
			return
		}
		s := src
		s.Peer = peer
		a.Items = append(a.Items, Item{
			Addrs:   addrs,
			Service: Service{Protocol: port.Protocol, FromPort: n, ToPort: n},
			Source:  s,
			Pod:     op.pod,
		})
	}
	if rule.AllPeers() {
		for _, op := range r.ownedPods() {
			add(op, op.addrs, -1)
		}
		return
	}
	for i := range rule.Peers {
		peer := &rule.Peers[i]
		if peer.IPBlock == nil {
			for _, op := range r.peerPods(peer) {
				add(op, op.addrs, i)
			}
			continue
		}
		// Every active pod (hostNetwork ones too) owning an address in
		// the block is a destination.
		for _, op := range r.ownedPods() {
			var in []AddrRange
			for _, ar := range op.addrs {
				if peer.IPBlock.Contains(ar.From) {
					in = append(in, ar)
				}
			}
			add(op, in, i)
		}
	}
}
