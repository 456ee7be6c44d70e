package policy

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/iprange"
)

// Action is what a rectangle of a normalised form does with the traffic it
// covers. NetworkPolicy v1 only allows, so Normalize labels every
// rectangle Accept; the ordered actions of cluster-scoped tiers (Deny,
// Pass, Log) are to come, see Normalized.
type Action uint8

// Accept allows the traffic.
const Accept Action = 0

// Rect is a rectangle of a normalised form: peer addresses times a
// protocol and port range (or every protocol and port), what it does, and
// the rule parts it comes from. It holds no pointers, so that long lists of
// rectangles cost the garbage collector nothing.
type Rect struct {
	// From and To are the first and last peer address, as numbers (see
	// Addrs).
	From, To iprange.Key
	// Protocol is the IANA protocol number (6 TCP, 17 UDP, 132 SCTP), or
	// AnyProtocol for every protocol and port. FromPort..ToPort is the
	// port range, 0..65535 for AnyProtocol.
	Protocol         uint8
	FromPort, ToPort uint16
	Action           Action
	// Sources indexes Normalized.SourceSets: the rule parts whose items
	// cover the rectangle.
	Sources int32
}

// AnyProtocol is Rect.Protocol for every protocol and port.
const AnyProtocol uint8 = 0

// Addrs returns the rectangle's peer addresses.
func (r *Rect) Addrs() AddrRange { return AddrRange{From: r.From.Addr(), To: r.To.Addr()} }

// Is4 reports whether the rectangle's addresses are IPv4.
func (r *Rect) Is4() bool { return r.From.Fam == 0 }

// Service returns the rectangle's protocol and port range as a Service.
func (r *Rect) Service() Service {
	if r.Protocol == AnyProtocol {
		return Service{AllProtocols: true}
	}
	return Service{Protocol: ProtocolOf(r.Protocol), FromPort: int32(r.FromPort), ToPort: int32(r.ToPort)}
}

// ProtocolNumber returns the IANA number of a Kubernetes protocol: 6, 17
// or 132 (TCP for anything else, as the API server's default).
func ProtocolNumber(p corev1.Protocol) uint8 {
	switch p {
	case corev1.ProtocolUDP:
		return 17
	case corev1.ProtocolSCTP:
		return 132
	}
	return 6
}

// ProtocolOf returns the Kubernetes protocol of an IANA number that
// ProtocolNumber returns.
func ProtocolOf(n uint8) corev1.Protocol {
	switch n {
	case 17:
		return corev1.ProtocolUDP
	case 132:
		return corev1.ProtocolSCTP
	}
	return corev1.ProtocolTCP
}

// Normalized is a form as disjoint rectangles, ready for interval sets.
//
// A packet's verdict is the action of the Ports rectangle that holds it,
// else of the All rectangle that holds it, else no match (the pod's
// default: deny for an isolated pod). Normalize keeps Ports outside All, so
// today no packet is in both and the lookup order does not matter.
//
// Ordered actions (Accept, Deny, Pass, Log; first match wins, as in
// cluster-scoped tiers) flatten into the same form, rule by rule in their
// order: normalise the rule alone, label its rectangles with its action,
// take from its All the addresses of the All of earlier rules, and from its
// Ports the addresses of the All of earlier rules (the subtraction
// Normalize already does with All) and the earlier Ports rectangles in
// address × protocol × port space (an earlier TCP/80 rule must not take
// TCP/443 away from a later one), then append them. What an earlier rule
// covers is then never covered again, and where a later All rectangle
// overlaps an earlier Ports rectangle, Ports wins by the lookup order
// above, as it must. Rectangles with equal actions then merge as
// today, and the renderer makes one set (or verdict map) per action. A
// non-terminal action such as Log flattens the same way in a layer of its
// own.
type Normalized struct {
	// All are the rectangles over every protocol and port (AnyProtocol):
	// sorted by address (IPv4 first), disjoint and never adjacent.
	All []Rect
	// Ports are the rectangles over one protocol and a port range, outside
	// All. Rectangles of one protocol never overlap; they are sorted by
	// protocol name (SCTP, TCP, UDP), family (IPv4 first), port range, then
	// address. Within a
	// protocol and family, the port axis is cut at every boundary of the
	// allowance and adjacent port ranges with equal address sets are
	// merged, so the rectangles are as few as that cut allows.
	Ports []Rect
	// Sources are the rule parts behind the rectangles, each once, in the
	// order of the allowance's items.
	Sources []RuleMatch
	// SourceSets are sets of indexes in Sources, each sorted and distinct,
	// in the order rectangles (All, then Ports) first name them;
	// Rect.Sources names one. Equal sets have one index, so a consumer can
	// work once per set (the renderer's comments do).
	SourceSets [][]int32
}

// SourcesOf returns the rule parts behind a rectangle, in item order.
func (n *Normalized) SourcesOf(r *Rect) []RuleMatch {
	idx := n.SourceSets[r.Sources]
	out := make([]RuleMatch, len(idx))
	for i, j := range idx {
		out[i] = n.Sources[j]
	}
	return out
}

// Allows reports whether the normalised form accepts peer ip on
// proto/port.
func (n *Normalized) Allows(ip netip.Addr, proto corev1.Protocol, port int32) bool {
	k := iprange.KeyOf(ip.Unmap())
	in := func(r *Rect) bool { return r.From.Compare(k) <= 0 && k.Compare(r.To) <= 0 }
	num := ProtocolNumber(proto)
	if ProtocolOf(num) != proto {
		num = AnyProtocol // no port rectangle has it
	}
	for i := range n.Ports {
		if r := &n.Ports[i]; r.Protocol == num && int32(r.FromPort) <= port && port <= int32(r.ToPort) && in(r) {
			return r.Action == Accept
		}
	}
	for i := range n.All {
		if r := &n.All[i]; in(r) {
			return r.Action == Accept
		}
	}
	return false
}

// sourceSets numbers sets of source indexes (sorted, distinct).
type sourceSets struct {
	lists  [][]int32
	byList map[string]int32
	unions map[[2]int32]int32
}

func newSourceSets() *sourceSets {
	return &sourceSets{byList: map[string]int32{}, unions: map[[2]int32]int32{}}
}

// id returns the number of a set.
func (s *sourceSets) id(list []int32) int32 {
	k := make([]byte, 0, 4*len(list))
	for _, x := range list {
		k = binary.LittleEndian.AppendUint32(k, uint32(x))
	}
	if id, ok := s.byList[string(k)]; ok {
		return id
	}
	id := int32(len(s.lists))
	s.lists = append(s.lists, list)
	s.byList[string(k)] = id
	return id
}

// union returns the number of the union of two sets.
func (s *sourceSets) union(a, b int32) int32 {
	if a == b {
		return a
	}
	if a > b {
		a, b = b, a
	}
	if u, ok := s.unions[[2]int32{a, b}]; ok {
		return u
	}
	x, y := s.lists[a], s.lists[b]
	out := make([]int32, 0, len(x)+len(y))
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case j == len(y) || (i < len(x) && x[i] < y[j]):
			out = append(out, x[i])
			i++
		case i == len(x) || y[j] < x[i]:
			out = append(out, y[j])
			j++
		default:
			out = append(out, x[i])
			i, j = i+1, j+1
		}
	}
	u := s.id(out)
	s.unions[[2]int32{a, b}] = u
	return u
}

// portKey is a group of an allowance's spans: one protocol, family and
// port range.
type portKey struct {
	proto    corev1.Protocol
	v4       bool
	from, to int32
}

// protoFamily is a protocol and family, whose port axis Normalize cuts.
type protoFamily struct {
	proto corev1.Protocol
	v4    bool
}

// Normalize returns the allowance as disjoint rectangles: the addresses
// allowed on everything, and per protocol disjoint address × port
// rectangles outside those addresses, each labelled Accept and with its
// sources. It covers exactly what Allows covers (address zones aside:
// rectangles hold addresses as numbers, without zones). See Normalizer to
// normalise many allowances.
func (a *Allowance) Normalize() *Normalized { return new(Normalizer).Normalize(a) }

// Normalizer normalises allowances, reusing its memory from one call to
// the next: the rectangles and scratch space. The zero value is ready to
// use. It is not safe for concurrent use.
type Normalizer struct {
	n     Normalized
	all   []iprange.Span
	cover []iprange.Span
	remap []int32
	// groups are the spans of each port group; free holds the slices of
	// the last call's groups.
	groups map[portKey][]iprange.Span
	free   [][]iprange.Span
}

// Normalize returns a.Normalize(), in memory that the next call reuses:
// the result is valid until then. It works on addresses as numbers
// (iprange.Key) and numbers the sets of sources.
func (z *Normalizer) Normalize(a *Allowance) *Normalized {
	sets := newSourceSets()
	n := &z.n
	clear(n.Sources) // let go of the last call's policies and sets
	clear(n.SourceSets)
	*n = Normalized{All: n.All[:0], Ports: n.Ports[:0], Sources: n.Sources[:0], SourceSets: n.SourceSets[:0]}
	srcIndex := map[RuleMatch]int32{}
	// Two passes: count the ranges of each group, then fill groups of
	// exactly that size.
	counts := map[portKey]int{}
	nAll := 0
	for i := range a.Items {
		it := &a.Items[i]
		if it.Service.AllProtocols {
			nAll += len(it.Addrs)
			continue
		}
		n4 := 0
		for _, r := range it.Addrs {
			if r.Is4() {
				n4++
			}
		}
		if n4 > 0 {
			counts[portKey{it.Service.Protocol, true, it.Service.FromPort, it.Service.ToPort}] += n4
		}
		if n6 := len(it.Addrs) - n4; n6 > 0 {
			counts[portKey{it.Service.Protocol, false, it.Service.FromPort, it.Service.ToPort}] += n6
		}
	}
	all := slices.Grow(z.all[:0], nAll)
	if z.groups == nil {
		z.groups = make(map[portKey][]iprange.Span, len(counts))
	}
	groups := z.groups
	for _, g := range groups {
		z.free = append(z.free, g[:0])
	}
	clear(groups)
	for k, c := range counts {
		var g []iprange.Span
		if f := len(z.free); f > 0 {
			g, z.free = z.free[f-1], z.free[:f-1]
		}
		groups[k] = slices.Grow(g, c)
	}
	// Items produced by the same policy part share a source index, so
	// source sets stay small.
	var singles []int32
	for i := range a.Items {
		it := &a.Items[i]
		si, ok := srcIndex[it.Source]
		if !ok {
			si = int32(len(n.Sources))
			srcIndex[it.Source] = si
			n.Sources = append(n.Sources, it.Source)
			singles = append(singles, sets.id([]int32{si}))
		}
		one := singles[si]
		if it.Service.AllProtocols {
			for _, r := range it.Addrs {
				all = append(all, iprange.SpanOf(r, one))
			}
			continue
		}
		var g4, g6 []iprange.Span
		k4 := portKey{it.Service.Protocol, true, it.Service.FromPort, it.Service.ToPort}
		k6 := portKey{it.Service.Protocol, false, it.Service.FromPort, it.Service.ToPort}
		for _, r := range it.Addrs {
			s := iprange.SpanOf(r, one)
			if s.From.Fam == 0 {
				if g4 == nil {
					g4 = groups[k4]
				}
				g4 = append(g4, s)
			} else {
				if g6 == nil {
					g6 = groups[k6]
				}
				g6 = append(g6, s)
			}
		}
		if g4 != nil {
			groups[k4] = g4
		}
		if g6 != nil {
			groups[k6] = g6
		}
	}
	all = iprange.MergeSpans(all, sets.union)
	z.all = all
	n.All = slices.Grow(n.All, len(all))
	for _, s := range all {
		n.All = append(n.All, Rect{From: s.From, To: s.To, Protocol: AnyProtocol, ToPort: 65535, Sources: s.Label})
	}
	n.Ports, z.cover = normalizePorts(n.Ports, sets, groups, all, z.cover)
	n.SourceSets, z.remap = renumber(n.SourceSets, z.remap, sets.lists, n.All, n.Ports)
	return n
}

// renumber appends to out the source sets that rectangles name, numbered
// in the order of the rectangles (sets are numbered as they are made, and
// groups are merged in map order), so that equal allowances normalise
// equally. remap is scratch space, returned for reuse.
func renumber(out [][]int32, remap []int32, lists [][]int32, all, ports []Rect) ([][]int32, []int32) {
	remap = slices.Grow(remap[:0], len(lists))[:len(lists)]
	for i := range remap {
		remap[i] = -1
	}
	for _, rs := range [2][]Rect{all, ports} {
		for i := range rs {
			id := &rs[i].Sources
			if remap[*id] < 0 {
				remap[*id] = int32(len(out))
				out = append(out, lists[*id])
			}
			*id = remap[*id]
		}
	}
	return out, remap
}

// normalizePorts cuts the port axis of each protocol and family at every
// boundary of the groups and appends to out the rectangles outside all.
// cover is scratch space, returned for reuse.
func normalizePorts(out []Rect, sets *sourceSets, groups map[portKey][]iprange.Span, all, cover []iprange.Span) ([]Rect, []iprange.Span) {
	byPF := map[protoFamily][]portKey{}
	for k, g := range groups {
		groups[k] = iprange.MergeSpans(g, sets.union)
		byPF[protoFamily{k.proto, k.v4}] = append(byPF[protoFamily{k.proto, k.v4}], k)
	}
	pfs := make([]protoFamily, 0, len(byPF))
	for k := range byPF {
		pfs = append(pfs, k)
	}
	slices.SortFunc(pfs, func(a, b protoFamily) int {
		if c := cmp.Compare(a.proto, b.proto); c != 0 {
			return c
		}
		if a.v4 == b.v4 {
			return 0
		}
		if a.v4 {
			return -1
		}
		return 1
	})
	for _, f := range pfs {
		var pieces []portPiece
		pieces, cover = cutPorts(sets, groups, byPF[f], all, cover)
		c := len(out)
		for _, p := range pieces {
			c += len(p.spans)
		}
		out = slices.Grow(out, c-len(out))
		proto := ProtocolNumber(f.proto)
		for _, p := range pieces {
			for _, s := range p.spans {
				out = append(out, Rect{From: s.From, To: s.To, Protocol: proto,
					FromPort: uint16(p.from), ToPort: uint16(p.to), Sources: s.Label})
			}
		}
	}
	return out, cover
}

// portPiece is a port range and the spans allowed on it.
type portPiece struct {
	from, to int32
	spans    []iprange.Span
	// own is true when spans may be changed: they share nothing.
	own bool
}

// cutPorts cuts the port axis of one protocol and family (the groups of
// keys) at every boundary, takes all out of each piece, and merges
// adjacent pieces with equal ranges. cover is scratch space, returned for
// reuse.
func cutPorts(sets *sourceSets, groups map[portKey][]iprange.Span, keys []portKey, all, cover []iprange.Span) ([]portPiece, []iprange.Span) {
	var bounds []int32
	for _, k := range keys {
		bounds = append(bounds, k.from, k.to+1)
	}
	slices.Sort(bounds)
	bounds = slices.Compact(bounds)
	var pieces []portPiece
	for bi := 0; bi+1 < len(bounds); bi++ {
		lo, hi := bounds[bi], bounds[bi+1]-1
		covering := 0
		var only []iprange.Span
		cover = cover[:0]
		for _, k := range keys {
			if k.from <= lo && hi <= k.to {
				covering++
				only = groups[k]
				cover = append(cover, groups[k]...)
			}
		}
		if covering == 0 {
			continue
		}
		// spans is a group (shared, already merged), the scratch cover,
		// or a new slice from the subtraction.
		spans, scratch := only, false
		if covering > 1 {
			spans, scratch = iprange.MergeSpans(cover, sets.union), true
		}
		sub := iprange.SubtractSpans(spans, all)
		own := len(sub) > 0 && len(spans) > 0 && &sub[0] != &spans[0]
		spans = sub
		if len(spans) == 0 {
			continue
		}
		if np := len(pieces); np > 0 && pieces[np-1].to+1 == lo && iprange.SameRanges(pieces[np-1].spans, spans) {
			last := &pieces[np-1]
			last.to = hi
			if !last.own {
				last.spans, last.own = slices.Clone(last.spans), true
			}
			for si := range last.spans {
				last.spans[si].Label = sets.union(last.spans[si].Label, spans[si].Label)
			}
			continue
		}
		if scratch && !own {
			spans, own = slices.Clone(spans), true
		}
		pieces = append(pieces, portPiece{from: lo, to: hi, spans: spans, own: own})
	}
	return pieces, cover
}
