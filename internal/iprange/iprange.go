// Package iprange holds address ranges and their algebra, shared by the
// policy form, the analyzer and the nftables renderer: inclusive ranges of
// one address family, prefixes as ranges, and labelled spans over
// addresses as 128-bit numbers, on which the normaliser works.
package iprange

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Range is an inclusive range of addresses of one family.
type Range struct {
	From, To netip.Addr
}

// FromPrefix returns the addresses of a prefix as a range.
func FromPrefix(p netip.Prefix) Range {
	p = p.Masked()
	return Range{From: p.Addr(), To: Last(p)}
}

// Last returns the last address of a prefix.
func Last(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Parse parses what String renders: an address, a prefix, or "from-to"
// (addresses of one family, from not after to).
func Parse(s string) (Range, error) {
	if from, to, ok := strings.Cut(s, "-"); ok {
		a, err := netip.ParseAddr(from)
		if err != nil {
			return Range{}, err
		}
		b, err := netip.ParseAddr(to)
		if err != nil {
			return Range{}, err
		}
		if a.BitLen() != b.BitLen() || a.Compare(b) > 0 {
			return Range{}, fmt.Errorf("range %q: not from-to of one family", s)
		}
		return Range{From: a, To: b}, nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Range{}, err
		}
		return FromPrefix(p), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return Range{}, err
	}
	return Range{From: a, To: a}, nil
}

// Contains reports whether ip is in the range.
func (r Range) Contains(ip netip.Addr) bool {
	ip = ip.Unmap()
	return r.From.Compare(ip) <= 0 && ip.Compare(r.To) <= 0
}

// Is4 reports whether the range holds IPv4 addresses.
func (r Range) Is4() bool { return r.From.Is4() }

// Prefix returns the prefix the range is exactly, if it is one.
func (r Range) Prefix() (netip.Prefix, bool) {
	for bits := 0; bits <= r.From.BitLen(); bits++ {
		p := netip.PrefixFrom(r.From, bits)
		if p.Masked().Addr() == r.From && Last(p) == r.To {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// String renders a single address, a prefix, or "from-to".
func (r Range) String() string {
	if r.From == r.To {
		return r.From.String()
	}
	if p, ok := r.Prefix(); ok {
		return p.String()
	}
	return r.From.String() + "-" + r.To.String()
}

// Overlaps reports whether two ranges share an address.
func (r Range) Overlaps(o Range) bool {
	return r.From.Compare(o.To) <= 0 && o.From.Compare(r.To) <= 0
}

// touches reports whether o, of r's family and starting at or after r,
// starts inside r or right after it.
func (r Range) touches(o Range) bool {
	if o.From.Compare(r.To) <= 0 {
		return true
	}
	n := r.To.Next()
	return n.IsValid() && n == o.From
}

// Compare orders ranges by start, then end (IPv4 before IPv6).
func Compare(a, b Range) int {
	if c := a.From.Compare(b.From); c != 0 {
		return c
	}
	return a.To.Compare(b.To)
}

// Merge returns ranges sorted, with overlapping and adjacent ones merged.
// It does not modify rs.
func Merge(rs []Range) []Range {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, Compare)
	out := rs[:0]
	for _, x := range rs {
		if n := len(out); n > 0 && out[n-1].From.BitLen() == x.From.BitLen() && out[n-1].touches(x) {
			if x.To.Compare(out[n-1].To) > 0 {
				out[n-1].To = x.To
			}
			continue
		}
		out = append(out, x)
	}
	return out
}

// Subtract removes x from sorted disjoint ranges.
func Subtract(rs []Range, x Range) []Range {
	var out []Range
	for _, r := range rs {
		if r.From.BitLen() != x.From.BitLen() || !r.Overlaps(x) {
			out = append(out, r)
			continue
		}
		if r.From.Compare(x.From) < 0 {
			out = append(out, Range{From: r.From, To: x.From.Prev()})
		}
		if x.To.Compare(r.To) < 0 {
			out = append(out, Range{From: x.To.Next(), To: r.To})
		}
	}
	return out
}
