package policy

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/iprange"
)

// This file keeps the first, plain implementation of Normalize as a
// reference: it works on AddrRange and lists of sources and is easy to
// check by eye. Normalize must give exactly what it gives.

// refRect is a rectangle with its sources spelt out, the form in which
// Normalize and the reference are compared.
type refRect struct {
	Addrs   AddrRange
	Service Service
	Sources []RuleMatch
}

func (r refRect) String() string { return fmt.Sprintf("%s %s %v", r.Addrs, r.Service, r.Sources) }

// expand returns n's rectangles with their sources spelt out.
func expand(n *Normalized) (all, ports []refRect) {
	for i := range n.All {
		r := &n.All[i]
		all = append(all, refRect{r.Addrs(), r.Service(), n.SourcesOf(r)})
	}
	for i := range n.Ports {
		r := &n.Ports[i]
		ports = append(ports, refRect{r.Addrs(), r.Service(), n.SourcesOf(r)})
	}
	return all, ports
}

// srcSpan is a range with the indexes of its sources (sorted, distinct).
type srcSpan struct {
	r    AddrRange
	srcs []int
}

func unionInts(a, b []int) []int {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	out := make([]int, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	return out
}

// refMerge sorts spans and merges overlapping and adjacent ones, joining
// their sources.
func refMerge(ss []srcSpan) []srcSpan {
	slices.SortFunc(ss, func(a, b srcSpan) int { return iprange.Compare(a.r, b.r) })
	out := make([]srcSpan, 0, len(ss))
	for _, x := range ss {
		if n := len(out); n > 0 && out[n-1].r.From.BitLen() == x.r.From.BitLen() && touches(out[n-1].r, x.r) {
			if x.r.To.Compare(out[n-1].r.To) > 0 {
				out[n-1].r.To = x.r.To
			}
			out[n-1].srcs = unionInts(out[n-1].srcs, x.srcs)
			continue
		}
		out = append(out, srcSpan{r: x.r, srcs: x.srcs})
	}
	return out
}

// touches reports whether o starts inside r or right after it.
func touches(r, o AddrRange) bool {
	if o.From.Compare(r.To) <= 0 {
		return true
	}
	n := r.To.Next()
	return n.IsValid() && n == o.From
}

// refSubtract removes the ranges of sub (sorted, disjoint) from ss
// (sorted, disjoint); pieces keep their sources.
func refSubtract(ss, sub []srcSpan) []srcSpan {
	var out []srcSpan
	for _, s := range ss {
		cur := s.r
		alive := true
		for _, x := range sub {
			if !alive || x.r.From.BitLen() != cur.From.BitLen() || !x.r.Overlaps(cur) {
				continue
			}
			if cur.From.Compare(x.r.From) < 0 {
				out = append(out, srcSpan{r: AddrRange{From: cur.From, To: x.r.From.Prev()}, srcs: s.srcs})
			}
			if x.r.To.Compare(cur.To) < 0 {
				cur.From = x.r.To.Next()
			} else {
				alive = false
			}
		}
		if alive {
			out = append(out, srcSpan{r: cur, srcs: s.srcs})
		}
	}
	return out
}

// referenceNormalize is the plain normalisation: it cuts the port axis of
// each protocol and family at every boundary, merges the spans over each
// piece, takes out the addresses allowed on everything, and merges
// adjacent pieces with equal ranges.
func referenceNormalize(a *Allowance) (all, ports []refRect) {
	var srcs []RuleMatch
	srcIndex := map[RuleMatch]int{}
	var allSpans []srcSpan
	groups := map[portKey][]srcSpan{}
	for i := range a.Items {
		it := &a.Items[i]
		si, ok := srcIndex[it.Source]
		if !ok {
			si = len(srcs)
			srcIndex[it.Source] = si
			srcs = append(srcs, it.Source)
		}
		for _, r := range it.Addrs {
			s := srcSpan{r: r, srcs: []int{si}}
			if it.Service.AllProtocols {
				allSpans = append(allSpans, s)
				continue
			}
			k := portKey{it.Service.Protocol, r.Is4(), it.Service.FromPort, it.Service.ToPort}
			groups[k] = append(groups[k], s)
		}
	}
	list := func(idx []int) []RuleMatch {
		out := make([]RuleMatch, len(idx))
		for i, j := range idx {
			out[i] = srcs[j]
		}
		return out
	}
	allSpans = refMerge(allSpans)
	for _, s := range allSpans {
		all = append(all, refRect{s.r, Service{AllProtocols: true}, list(s.srcs)})
	}
	byPF := map[protoFamily][]portKey{}
	for k := range groups {
		byPF[protoFamily{k.proto, k.v4}] = append(byPF[protoFamily{k.proto, k.v4}], k)
	}
	pfs := slices.Collect(func(yield func(protoFamily) bool) {
		for k := range byPF {
			if !yield(k) {
				return
			}
		}
	})
	slices.SortFunc(pfs, func(a, b protoFamily) int {
		if c := cmp.Compare(a.proto, b.proto); c != 0 {
			return c
		}
		return -cmp.Compare(b2i(a.v4), b2i(b.v4))
	})
	for _, f := range pfs {
		keys := byPF[f]
		var bounds []int32
		for _, k := range keys {
			bounds = append(bounds, k.from, k.to+1)
		}
		slices.Sort(bounds)
		bounds = slices.Compact(bounds)
		type piece struct {
			from, to int32
			spans    []srcSpan
		}
		var pieces []piece
		for bi := 0; bi+1 < len(bounds); bi++ {
			lo, hi := bounds[bi], bounds[bi+1]-1
			var cover []srcSpan
			for _, k := range keys {
				if k.from <= lo && hi <= k.to {
					cover = append(cover, groups[k]...)
				}
			}
			spans := refSubtract(refMerge(cover), allSpans)
			if len(spans) == 0 {
				continue
			}
			if np := len(pieces); np > 0 && pieces[np-1].to+1 == lo && sameSrcRanges(pieces[np-1].spans, spans) {
				last := &pieces[np-1]
				last.to = hi
				for si := range last.spans {
					last.spans[si].srcs = unionInts(last.spans[si].srcs, spans[si].srcs)
				}
				continue
			}
			pieces = append(pieces, piece{from: lo, to: hi, spans: spans})
		}
		for _, p := range pieces {
			for _, s := range p.spans {
				ports = append(ports, refRect{s.r, Service{Protocol: f.proto, FromPort: p.from, ToPort: p.to}, list(s.srcs)})
			}
		}
	}
	return all, ports
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sameSrcRanges(a, b []srcSpan) bool {
	return slices.EqualFunc(a, b, func(x, y srcSpan) bool { return x.r == y.r })
}

// checkMatchesReference fails the test when Normalize and the reference
// disagree on a.
func checkMatchesReference(t *testing.T, what string, a *Allowance) int {
	t.Helper()
	gotAll, gotPorts := expand(a.Normalize())
	wantAll, wantPorts := referenceNormalize(a)
	if !reflect.DeepEqual(gotAll, wantAll) || !reflect.DeepEqual(gotPorts, wantPorts) {
		t.Fatalf("%s: items %+v\nNormalize All   %v\nreference All   %v\nNormalize Ports %v\nreference Ports %v",
			what, a.Items, gotAll, wantAll, gotPorts, wantPorts)
	}
	return len(gotAll) + len(gotPorts)
}

// TestNormalizeMatchesReference checks Normalize against the reference for
// every pod and direction of random clusters.
func TestNormalizeMatchesReference(t *testing.T) {
	clusters := 150
	if testing.Short() {
		clusters = 40
	}
	checked, rects := 0, 0
	for seed := 0; seed < clusters; seed++ {
		c := randomCluster(rand.New(rand.NewPCG(uint64(seed), 9)))
		res := NewResolver(NewSet(c))
		for _, p := range c.Pods {
			for _, dir := range Directions {
				if a := res.Resolve(p, dir); a != nil {
					rects += checkMatchesReference(t, fmt.Sprintf("seed %d %s %s", seed, p.Key(), dir), a)
					checked++
				}
			}
		}
	}
	t.Logf("%d allowances, %d rectangles", checked, rects)
}

// TestNormalizeEdges compares Normalize with the reference on hand-made
// allowances with ranges at the ends of the address space, adjacent and
// overlapping ranges and port ranges.
func TestNormalizeEdges(t *testing.T) {
	p := &Policy{Namespace: "ns", Name: "p"}
	src := func(rule int) RuleMatch { return RuleMatch{Policy: p, Rule: rule, Peer: 0, Port: 0} }
	r := func(from, to string) AddrRange {
		return AddrRange{From: netip.MustParseAddr(from), To: netip.MustParseAddr(to)}
	}
	all := Service{AllProtocols: true}
	svc := func(proto string, from, to int32) Service {
		return Service{Protocol: corev1.Protocol(proto), FromPort: from, ToPort: to}
	}
	cases := [][]Item{
		{{Addrs: Everything(), Service: all, Source: src(0)}},
		{
			{Addrs: []AddrRange{r("255.255.255.255", "255.255.255.255"), r("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")}, Service: svc("TCP", 80, 80), Source: src(0)},
			{Addrs: []AddrRange{r("255.255.255.0", "255.255.255.254"), r("::", "::1")}, Service: svc("TCP", 80, 81), Source: src(1)},
			{Addrs: []AddrRange{r("0.0.0.0", "0.0.0.0"), r("255.255.255.254", "255.255.255.255")}, Service: all, Source: src(2)},
			{Addrs: Everything(), Service: svc("UDP", 0, 65535), Source: src(3)},
			{Addrs: []AddrRange{r("10.0.0.0", "10.0.0.9"), r("fd00::", "fd00::ffff")}, Service: svc("UDP", 53, 53), Source: src(4)},
			{Addrs: []AddrRange{r("10.0.0.5", "10.0.0.20")}, Service: svc("TCP", 79, 82), Source: src(5)},
			{Addrs: []AddrRange{r("10.0.0.21", "10.0.0.21"), r("10.0.0.40", "10.0.0.41")}, Service: svc("TCP", 82, 90), Source: src(5)},
			{Addrs: []AddrRange{r("10.0.0.10", "10.0.0.12")}, Service: all, Source: src(6)},
			{Addrs: nil, Service: all, Source: src(7)},
		},
		// Adjacent port ranges whose ranges start alike but end apart.
		{
			{Addrs: []AddrRange{r("10.0.0.1", "10.0.0.5"), r("10.0.0.9", "10.0.0.9")}, Service: svc("TCP", 80, 80), Source: src(0)},
			{Addrs: []AddrRange{r("10.0.0.1", "10.0.0.3"), r("10.0.0.9", "10.0.0.9")}, Service: svc("TCP", 81, 81), Source: src(1)},
			{Addrs: []AddrRange{r("10.0.0.1", "10.0.0.3"), r("10.0.0.9", "10.0.0.9")}, Service: svc("TCP", 82, 82), Source: src(2)},
		},
		// A port range whose addresses take in a narrower one's, then meet
		// a third with other addresses: the sources of the first must not
		// leak.
		{
			{Addrs: []AddrRange{r("10.0.0.1", "10.0.0.5")}, Service: svc("TCP", 80, 100), Source: src(0)},
			{Addrs: []AddrRange{r("10.0.0.2", "10.0.0.3")}, Service: svc("TCP", 82, 83), Source: src(1)},
			{Addrs: []AddrRange{r("10.0.0.9", "10.0.0.9")}, Service: svc("TCP", 85, 86), Source: src(2)},
		},
	}
	for i, items := range cases {
		checkMatchesReference(t, fmt.Sprintf("case %d", i), &Allowance{Items: items})
	}
}

// TestNormalizeRandom is the property test: Normalize equals the
// reference on random allowances over a small address and port space,
// where ranges overlap, nest and touch in every way.
func TestNormalizeRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	pols := []*Policy{{Namespace: "ns", Name: "a"}, {Namespace: "ns", Name: "b"}}
	addr := func(v6 bool, n int) netip.Addr {
		if v6 {
			return netip.AddrFrom16([16]byte{0xfd, 15: byte(n)})
		}
		return netip.AddrFrom4([4]byte{10, 0, 0, byte(n)})
	}
	ports := []int32{0, 1, 79, 80, 81, 82, 90, 100, 65535}
	protos := []string{"TCP", "UDP", "SCTP"}
	n := 3000
	if testing.Short() {
		n = 500
	}
	for i := 0; i < n; i++ {
		var items []Item
		for k := r.IntN(6); k >= 0; k-- {
			v6 := r.IntN(3) == 0
			var addrs []AddrRange
			at := r.IntN(4)
			for a := r.IntN(4); a >= 0 && at < 250; a-- {
				from := at
				to := from + r.IntN(4)
				addrs = append(addrs, AddrRange{From: addr(v6, from), To: addr(v6, to)})
				at = to + 1 + r.IntN(3)
			}
			if r.IntN(10) == 0 {
				addrs = append(addrs, AddrRange{From: addr(v6, 255), To: addr(v6, 255)})
			}
			svc := Service{AllProtocols: true}
			if r.IntN(4) > 0 {
				lo := ports[r.IntN(len(ports))]
				hi := ports[r.IntN(len(ports))]
				if lo > hi {
					lo, hi = hi, lo
				}
				svc = Service{Protocol: corev1.Protocol(protos[r.IntN(len(protos))]), FromPort: lo, ToPort: hi}
			}
			items = append(items, Item{Addrs: addrs, Service: svc,
				Source: RuleMatch{Policy: pols[r.IntN(2)], Rule: r.IntN(3), Peer: -1, Port: -1}})
		}
		a := &Allowance{Items: items}
		checkMatchesReference(t, fmt.Sprintf("allowance %d", i), a)
		if nz := a.Normalize(); true {
			checkNormalized(t, nz)
		}
	}
}
