package nft

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/policy"
)

// This file is a fast equivalent of policy.Allowance.Normalize for the
// renderer: it produces exactly the set elements that rendering the
// normalised allowance gives (TestNormalizeMatchesPolicy checks it), but
// works on 128-bit numbers instead of netip.Addr, numbers sets of
// sources instead of building lists, and names each set of sources once.

// akey is an address as a number: the family (0 for IPv4, 1 for IPv6) and
// 128 bits.
type akey struct {
	fam    uint8
	hi, lo uint64
}

func keyOf(a netip.Addr) akey {
	if a.Is4() {
		b := a.As4()
		return akey{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return akey{fam: 1, hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

func (k akey) addr() netip.Addr {
	if k.fam == 0 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(k.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k.hi)
	binary.BigEndian.PutUint64(b[8:], k.lo)
	return netip.AddrFrom16(b)
}

func cmpKey(a, b akey) int {
	if a.fam != b.fam {
		return cmp.Compare(a.fam, b.fam)
	}
	if a.hi != b.hi {
		return cmp.Compare(a.hi, b.hi)
	}
	return cmp.Compare(a.lo, b.lo)
}

// isMax reports whether k is the last address of its family.
func (k akey) isMax() bool {
	if k.fam == 0 {
		return k.lo == 1<<32-1
	}
	return k.hi == ^uint64(0) && k.lo == ^uint64(0)
}

// next and prev step within the family; the caller checks the ends.
func (k akey) next() akey {
	k.lo++
	if k.lo == 0 {
		k.hi++
	}
	return k
}

func (k akey) prev() akey {
	if k.lo == 0 {
		k.hi--
	}
	k.lo--
	return k
}

// span is an address range of one family and its set of sources.
type span struct {
	from, to akey
	src      int32
}

// touches reports whether o, starting at or after s, overlaps s or starts
// right after it.
func (s *span) touches(o *span) bool {
	if s.from.fam != o.from.fam {
		return false
	}
	if cmpKey(o.from, s.to) <= 0 {
		return true
	}
	return !s.to.isMax() && s.to.next() == o.from
}

// srcSets numbers sets of source indexes (sorted, distinct).
type srcSets struct {
	lists  [][]int32
	byList map[string]int32
	unions map[[2]int32]int32
}

func newSrcSets() *srcSets {
	return &srcSets{byList: map[string]int32{}, unions: map[[2]int32]int32{}}
}

func (s *srcSets) id(list []int32) int32 {
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

func (s *srcSets) union(a, b int32) int32 {
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

// mergeSpans sorts spans and merges overlapping and adjacent ones,
// joining their sources. It reuses ss.
func mergeSpans(sets *srcSets, ss []span) []span {
	sortSpans(ss)
	out := ss[:0]
	for _, x := range ss {
		if n := len(out); n > 0 && out[n-1].touches(&x) {
			last := &out[n-1]
			if cmpKey(x.to, last.to) > 0 {
				last.to = x.to
			}
			last.src = sets.union(last.src, x.src)
			continue
		}
		out = append(out, x)
	}
	return out
}

// sortSpans sorts spans by their start. Spans come in sorted runs (the
// addresses of one item are sorted), so it merges the runs it finds,
// pairwise, rather than sorting from scratch.
func sortSpans(ss []span) {
	bounds := []int{0}
	for i := 1; i < len(ss); i++ {
		if cmpKey(ss[i].from, ss[i-1].from) < 0 {
			bounds = append(bounds, i)
		}
	}
	if len(bounds) == 1 {
		return
	}
	bounds = append(bounds, len(ss))
	src, dst := ss, make([]span, len(ss))
	for len(bounds) > 2 {
		next := bounds[:1]
		for r := 0; r+1 < len(bounds); r += 2 {
			lo, mid := bounds[r], bounds[r+1]
			hi := mid
			if r+2 < len(bounds) {
				hi = bounds[r+2]
			}
			i, j, k := lo, mid, lo
			for i < mid && j < hi {
				if cmpKey(src[j].from, src[i].from) < 0 {
					dst[k] = src[j]
					j++
				} else {
					dst[k] = src[i]
					i++
				}
				k++
			}
			k += copy(dst[k:], src[i:mid])
			copy(dst[k:], src[j:hi])
			next = append(next, hi)
		}
		bounds = next
		src, dst = dst, src
	}
	if &src[0] != &ss[0] {
		copy(ss, src)
	}
}

// subtractSpans removes the ranges of sub (sorted, disjoint) from ss
// (sorted, disjoint); pieces keep their sources. It returns ss itself
// when nothing is removed.
func subtractSpans(ss, sub []span) []span {
	if len(sub) == 0 {
		return ss
	}
	var out []span
	cut := false // out holds the result so far; else it is ss[:i]
	j := 0
	for i, s := range ss {
		cur := s
		for j < len(sub) && cmpKey(sub[j].to, cur.from) < 0 {
			j++
		}
		alive := true
		for k := j; k < len(sub) && alive && cmpKey(sub[k].from, cur.to) <= 0; k++ {
			x := sub[k]
			if x.from.fam != cur.from.fam || cmpKey(x.to, cur.from) < 0 {
				continue
			}
			if !cut {
				out = make([]span, i, len(ss)+len(sub))
				copy(out, ss[:i])
				cut = true
			}
			if cmpKey(cur.from, x.from) < 0 {
				out = append(out, span{from: cur.from, to: x.from.prev(), src: s.src})
			}
			if cmpKey(x.to, cur.to) < 0 {
				cur.from = x.to.next()
			} else {
				alive = false
			}
		}
		if alive && cut {
			out = append(out, cur)
		}
	}
	if !cut {
		return ss
	}
	return out
}

// normalized is an allowance as set elements: for each family (0 IPv4,
// 1 IPv6), the elements of its address set and of its ports set.
type normalized struct {
	all, ports [2][]Element
}

// normalize renders an allowance as the elements of its sets, as
// policy.Allowance.Normalize and the sets built from it would.
func normalize(a *policy.Allowance) *normalized {
	sets := newSrcSets()
	var srcs []policy.RuleMatch
	srcIndex := map[policy.RuleMatch]int32{}
	type portKey struct {
		proto    corev1.Protocol
		v4       bool
		from, to int32
	}
	// Two passes: count the ranges of each group, then fill groups of
	// exactly that size.
	counts := map[portKey]int{}
	nAll := 0
	for i := range a.Items {
		it := &a.Items[i]
		for _, r := range it.Addrs {
			if (r.From.Is6() && r.From.Zone() != "") || (r.To.Is6() && r.To.Zone() != "") {
				return normalizeSlow(a)
			}
		}
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
	all := make([]span, 0, nAll)
	groups := make(map[portKey][]span, len(counts))
	for k, n := range counts {
		groups[k] = make([]span, 0, n)
	}
	var singles []int32
	for i := range a.Items {
		it := &a.Items[i]
		si, ok := srcIndex[it.Source]
		if !ok {
			si = int32(len(srcs))
			srcIndex[it.Source] = si
			srcs = append(srcs, it.Source)
			singles = append(singles, sets.id([]int32{si}))
		}
		one := singles[si]
		if it.Service.AllProtocols {
			for _, r := range it.Addrs {
				all = append(all, span{from: keyOf(r.From), to: keyOf(r.To), src: one})
			}
			continue
		}
		var g4, g6 []span
		k4 := portKey{it.Service.Protocol, true, it.Service.FromPort, it.Service.ToPort}
		k6 := portKey{it.Service.Protocol, false, it.Service.FromPort, it.Service.ToPort}
		for _, r := range it.Addrs {
			s := span{from: keyOf(r.From), to: keyOf(r.To), src: one}
			if s.from.fam == 0 {
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
	all = mergeSpans(sets, all)
	comments := map[int32]string{}
	comment := func(src int32) string {
		c, ok := comments[src]
		if !ok {
			list := sets.lists[src]
			rms := make([]policy.RuleMatch, len(list))
			for i, x := range list {
				rms[i] = srcs[x]
			}
			c = sourcesComment(rms)
			comments[src] = c
		}
		return c
	}
	n := &normalized{}
	for f := range 2 {
		c := 0
		for _, s := range all {
			if int(s.from.fam) == f {
				c++
			}
		}
		if c > 0 {
			n.all[f] = make([]Element, 0, c)
		}
	}
	for _, s := range all {
		n.all[s.from.fam] = append(n.all[s.from.fam], Element{
			Addrs:   policy.AddrRange{From: s.from.addr(), To: s.to.addr()},
			Comment: comment(s.src),
		})
	}

	// Cut the port axis of each protocol and family at every boundary.
	type pf struct {
		proto corev1.Protocol
		v4    bool
	}
	byPF := map[pf][]portKey{}
	for k, g := range groups {
		groups[k] = mergeSpans(sets, g)
		byPF[pf{k.proto, k.v4}] = append(byPF[pf{k.proto, k.v4}], k)
	}
	pfs := make([]pf, 0, len(byPF))
	for k := range byPF {
		pfs = append(pfs, k)
	}
	slices.SortFunc(pfs, func(a, b pf) int {
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
	type piece struct {
		from, to int32
		spans    []span
		// own is true when spans may be changed: they share nothing.
		own bool
	}
	var cover []span
	for _, f := range pfs {
		keys := byPF[f]
		var bounds []int32
		for _, k := range keys {
			bounds = append(bounds, k.from, k.to+1)
		}
		slices.Sort(bounds)
		bounds = slices.Compact(bounds)
		var pieces []piece
		for bi := 0; bi+1 < len(bounds); bi++ {
			lo, hi := bounds[bi], bounds[bi+1]-1
			covering := 0
			var only []span
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
			// spans is a group (shared, already merged), the scratch
			// cover, or a new slice from the subtraction.
			spans, scratch := only, false
			if covering > 1 {
				spans, scratch = mergeSpans(sets, cover), true
			}
			sub := subtractSpans(spans, all)
			own := len(sub) > 0 && len(spans) > 0 && &sub[0] != &spans[0]
			spans = sub
			if len(spans) == 0 {
				continue
			}
			if np := len(pieces); np > 0 && pieces[np-1].to+1 == lo && sameRanges(pieces[np-1].spans, spans) {
				last := &pieces[np-1]
				last.to = hi
				if !last.own {
					last.spans, last.own = slices.Clone(last.spans), true
				}
				for si := range last.spans {
					last.spans[si].src = sets.union(last.spans[si].src, spans[si].src)
				}
				continue
			}
			if scratch && !own {
				spans, own = slices.Clone(spans), true
			}
			pieces = append(pieces, piece{from: lo, to: hi, spans: spans, own: own})
		}
		fam := 1
		if f.v4 {
			fam = 0
		}
		proto := protoNumber(f.proto)
		c := len(n.ports[fam])
		for _, p := range pieces {
			c += len(p.spans)
		}
		n.ports[fam] = slices.Grow(n.ports[fam], c-len(n.ports[fam]))
		for _, p := range pieces {
			for _, s := range p.spans {
				n.ports[fam] = append(n.ports[fam], Element{
					Addrs: policy.AddrRange{From: s.from.addr(), To: s.to.addr()},
					Proto: proto, FromPort: uint16(p.from), ToPort: uint16(p.to),
					Comment: comment(s.src),
				})
			}
		}
	}
	return n
}

func sameRanges(a, b []span) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].from != b[i].from || a[i].to != b[i].to {
			return false
		}
	}
	return true
}

// normalizeSlow renders an allowance through policy.Allowance.Normalize,
// the reference.
func normalizeSlow(a *policy.Allowance) *normalized {
	pn := a.Normalize()
	n := &normalized{}
	for _, s := range pn.All {
		fam := 0
		if !s.From.Is4() {
			fam = 1
		}
		n.all[fam] = append(n.all[fam], Element{Addrs: s.AddrRange, Comment: sourcesComment(s.Sources)})
	}
	for _, r := range pn.Ports {
		fam := 0
		if !r.Addrs.From.Is4() {
			fam = 1
		}
		n.ports[fam] = append(n.ports[fam], Element{
			Addrs: r.Addrs, Proto: protoNumber(r.Protocol),
			FromPort: uint16(r.FromPort), ToPort: uint16(r.ToPort),
			Comment: sourcesComment(r.Sources),
		})
	}
	return n
}
