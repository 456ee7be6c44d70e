package iprange

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func rng(s string) Range {
	r, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return r
}

func rangeStrings(rs []Range) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return out
}

func TestRangeString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10.0.0.0/24", "10.0.0.0/24"},
		{"10.0.0.1", "10.0.0.1"},
		{"10.0.0.1-10.0.0.6", "10.0.0.1-10.0.0.6"},
		{"10.0.0.0-10.0.0.255", "10.0.0.0/24"},
		{"0.0.0.0/0", "0.0.0.0/0"},
		{"::/0", "::/0"},
		{"fd00::/127", "fd00::/127"},
	} {
		if got := rng(tc.in).String(); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.in, got, tc.want)
		}
	}
	if r := rng("::/0"); r.To != netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") {
		t.Errorf("::/0 ends at %s", r.To)
	}
	for _, bad := range []string{"10.0.0.2-10.0.0.1", "10.0.0.1-fd00::1", "10.0.0.0/33", "x", "10.0.0.1-x"} {
		if r, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", bad, r)
		}
	}
}

func TestLast(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10.0.0.0/24", "10.0.0.255"},
		{"10.0.0.7/24", "10.0.0.255"}, // host bits set: the same network
		{"10.0.0.7/32", "10.0.0.7"},
		{"0.0.0.0/0", "255.255.255.255"},
		{"10.0.0.0/9", "10.127.255.255"},
		{"fd00::/64", "fd00::ffff:ffff:ffff:ffff"},
	} {
		if got := Last(netip.MustParsePrefix(tc.in)); got != netip.MustParseAddr(tc.want) {
			t.Errorf("Last(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestMerge(t *testing.T) {
	in := []Range{rng("10.0.0.5"), rng("fd00::1"), rng("10.0.0.3-10.0.0.4"), rng("10.0.0.9"), rng("fd00::"), rng("255.255.255.255"), rng("::")}
	orig := slices.Clone(in)
	got := rangeStrings(Merge(in))
	want := []string{"10.0.0.3-10.0.0.5", "10.0.0.9", "255.255.255.255", "::", "fd00::/127"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if !slices.Equal(in, orig) {
		t.Errorf("Merge modified its argument")
	}
}

func TestSubtract(t *testing.T) {
	rs := []Range{rng("10.0.0.0/24"), rng("fd00::/120")}
	rs = Subtract(rs, rng("10.0.0.16/28"))
	rs = Subtract(rs, rng("10.0.0.0/31"))
	rs = Subtract(rs, rng("fd00::/121"))
	got := rangeStrings(rs)
	want := []string{"10.0.0.2-10.0.0.15", "10.0.0.32-10.0.0.255", "fd00::80/121"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestKey(t *testing.T) {
	addrs := []netip.Addr{
		netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("10.0.0.255"), netip.MustParseAddr("10.0.1.0"),
		netip.MustParseAddr("255.255.255.255"), netip.MustParseAddr("::"), netip.MustParseAddr("::ffff:ffff:ffff:ffff"),
		netip.MustParseAddr("::1:0:0:0:0"), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
	}
	for i, a := range addrs {
		k := KeyOf(a)
		if k.Addr() != a {
			t.Errorf("KeyOf(%s).Addr() = %s", a, k.Addr())
		}
		if k.IsMax() != (i == 3 || i == len(addrs)-1) {
			t.Errorf("%s: IsMax %v", a, k.IsMax())
		}
		if !k.IsMax() && k.Next().Addr() != a.Next() {
			t.Errorf("%s: Next %s, want %s", a, k.Next().Addr(), a.Next())
		}
		if p := a.Prev(); p.IsValid() && p.BitLen() == a.BitLen() && k.Prev().Addr() != p {
			t.Errorf("%s: Prev %s, want %s", a, k.Prev().Addr(), p)
		}
		for _, b := range addrs {
			if got, want := k.Compare(KeyOf(b)), a.Compare(b); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", a, b, got, want)
			}
		}
	}
}

// TestSpans checks MergeSpans and SubtractSpans against Merge and Subtract
// on random ranges of a small space, labels joined by bitwise or.
func TestSpans(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	addr := func(v6 bool, n int) netip.Addr {
		if v6 {
			return netip.AddrFrom16([16]byte{0xfd, 15: byte(n)})
		}
		return netip.AddrFrom4([4]byte{10, 0, 0, byte(n)})
	}
	randRanges := func() []Range {
		var out []Range
		for k := r.IntN(8); k >= 0; k-- {
			v6 := r.IntN(3) == 0
			from := r.IntN(250)
			if r.IntN(10) == 0 {
				from = 255
			}
			to := min(255, from+r.IntN(5))
			out = append(out, Range{From: addr(v6, from), To: addr(v6, to)})
		}
		return out
	}
	or := func(a, b int32) int32 { return a | b }
	for i := 0; i < 2000; i++ {
		in := randRanges()
		var ss []Span
		for j, x := range in {
			ss = append(ss, SpanOf(x, 1<<j))
		}
		merged := MergeSpans(ss, or)
		want := Merge(in)
		if len(merged) != len(want) {
			t.Fatalf("MergeSpans(%v) = %v, want %v", in, merged, want)
		}
		for j := range merged {
			if merged[j].Range() != want[j] {
				t.Fatalf("MergeSpans(%v)[%d] = %v, want %v", in, j, merged[j].Range(), want[j])
			}
			var label int32
			for k, x := range in {
				if x.From.BitLen() == want[j].From.BitLen() && x.Overlaps(want[j]) {
					label |= 1 << k
				}
			}
			if merged[j].Label != label {
				t.Fatalf("MergeSpans(%v)[%d] label %b, want %b", in, j, merged[j].Label, label)
			}
		}
		sub := Merge(randRanges())
		var subSpans []Span
		for _, x := range sub {
			subSpans = append(subSpans, SpanOf(x, 0))
		}
		left := SubtractSpans(slices.Clone(merged), subSpans)
		rest := want
		for _, x := range sub {
			rest = Subtract(rest, x)
		}
		if len(left) != len(rest) {
			t.Fatalf("SubtractSpans(%v, %v) = %v, want %v", want, sub, left, rest)
		}
		for j := range left {
			if left[j].Range() != rest[j] {
				t.Fatalf("SubtractSpans(%v, %v)[%d] = %v, want %v", want, sub, j, left[j].Range(), rest[j])
			}
			if k, _ := slices.BinarySearchFunc(merged, left[j].From, func(s Span, k Key) int { return s.To.Compare(k) }); merged[k].Label != left[j].Label {
				t.Fatalf("SubtractSpans changed a label")
			}
		}
	}
}
