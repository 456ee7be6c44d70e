package iprange

import (
	"cmp"
	"encoding/binary"
	"net/netip"
)

// Key is an address as a number: its family (0 for IPv4, 1 for IPv6) and
// 128 bits. Keys order as their addresses do, IPv4 first. A key has no
// zone: packets carry none.
type Key struct {
	Fam    uint8
	Hi, Lo uint64
}

// KeyOf returns the key of an address (its zone dropped).
func KeyOf(a netip.Addr) Key {
	if a.Is4() {
		b := a.As4()
		return Key{Lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return Key{Fam: 1, Hi: binary.BigEndian.Uint64(b[:8]), Lo: binary.BigEndian.Uint64(b[8:])}
}

// Addr returns the address of a key.
func (k Key) Addr() netip.Addr {
	if k.Fam == 0 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(k.Lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k.Hi)
	binary.BigEndian.PutUint64(b[8:], k.Lo)
	return netip.AddrFrom16(b)
}

// Compare orders keys as their addresses.
func (k Key) Compare(o Key) int {
	if k.Fam != o.Fam {
		return cmp.Compare(k.Fam, o.Fam)
	}
	if k.Hi != o.Hi {
		return cmp.Compare(k.Hi, o.Hi)
	}
	return cmp.Compare(k.Lo, o.Lo)
}

// IsMax reports whether k is the last address of its family.
func (k Key) IsMax() bool {
	if k.Fam == 0 {
		return k.Lo == 1<<32-1
	}
	return k.Hi == ^uint64(0) && k.Lo == ^uint64(0)
}

// Next returns the key after k within its family; the caller checks
// IsMax first.
func (k Key) Next() Key {
	k.Lo++
	if k.Lo == 0 {
		k.Hi++
	}
	return k
}

// Prev returns the key before k within its family; k must not be the
// family's first address.
func (k Key) Prev() Key {
	if k.Lo == 0 {
		k.Hi--
	}
	k.Lo--
	return k
}

// Span is an inclusive range of keys of one family and a label: a number
// that the caller gives meaning to (the normaliser numbers sets of
// sources).
type Span struct {
	From, To Key
	Label    int32
}

// SpanOf returns the span of a range with a label.
func SpanOf(r Range, label int32) Span {
	return Span{From: KeyOf(r.From), To: KeyOf(r.To), Label: label}
}

// Range returns the addresses of the span.
func (s *Span) Range() Range { return Range{From: s.From.Addr(), To: s.To.Addr()} }

// touches reports whether o, starting at or after s, overlaps s or starts
// right after it.
func (s *Span) touches(o *Span) bool {
	if s.From.Fam != o.From.Fam {
		return false
	}
	if o.From.Compare(s.To) <= 0 {
		return true
	}
	return !s.To.IsMax() && s.To.Next() == o.From
}

// MergeSpans sorts spans and merges overlapping and adjacent ones; join
// gives the label of a merged span from the two different labels of its
// parts (equal labels stay). It reuses ss.
func MergeSpans(ss []Span, join func(a, b int32) int32) []Span {
	SortSpans(ss)
	out := ss[:0]
	for _, x := range ss {
		if n := len(out); n > 0 && out[n-1].touches(&x) {
			last := &out[n-1]
			if x.To.Compare(last.To) > 0 {
				last.To = x.To
			}
			if last.Label != x.Label {
				last.Label = join(last.Label, x.Label)
			}
			continue
		}
		out = append(out, x)
	}
	return out
}

// SortSpans sorts spans by their start. Spans often come in sorted runs
// (the addresses of one item are sorted), so it merges the runs it finds,
// pairwise, rather than sorting from scratch. The sort is stable.
func SortSpans(ss []Span) {
	bounds := []int{0}
	for i := 1; i < len(ss); i++ {
		if ss[i].From.Compare(ss[i-1].From) < 0 {
			bounds = append(bounds, i)
		}
	}
	if len(bounds) == 1 {
		return
	}
	bounds = append(bounds, len(ss))
	src, dst := ss, make([]Span, len(ss))
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
				if src[j].From.Compare(src[i].From) < 0 {
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

// SubtractSpans removes the ranges of sub (sorted, disjoint) from ss
// (sorted, disjoint); pieces keep their labels. It returns ss itself when
// nothing is removed, else a new slice.
func SubtractSpans(ss, sub []Span) []Span {
	if len(sub) == 0 {
		return ss
	}
	var out []Span
	cut := false // out holds the result so far; else it is ss[:i]
	j := 0
	for i, s := range ss {
		cur := s
		for j < len(sub) && sub[j].To.Compare(cur.From) < 0 {
			j++
		}
		alive := true
		for k := j; k < len(sub) && alive && sub[k].From.Compare(cur.To) <= 0; k++ {
			x := sub[k]
			if x.From.Fam != cur.From.Fam || x.To.Compare(cur.From) < 0 {
				continue
			}
			if !cut {
				out = make([]Span, i, len(ss)+len(sub))
				copy(out, ss[:i])
				cut = true
			}
			if cur.From.Compare(x.From) < 0 {
				out = append(out, Span{From: cur.From, To: x.From.Prev(), Label: s.Label})
			}
			if x.To.Compare(cur.To) < 0 {
				cur.From = x.To.Next()
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

// SameRanges reports whether two lists of spans cover the same ranges in
// the same order, whatever their labels.
func SameRanges(a, b []Span) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].From != b[i].From || a[i].To != b[i].To {
			return false
		}
	}
	return true
}
