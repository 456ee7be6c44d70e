package validation_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	netutils "k8s.io/utils/net"

	"github.com/netfence/netfence/internal/validation"
)

// TestIPBlockForms checks which ipBlock values are admitted, with the rule
// of kube-apiserver v1.35 (StrictIPCIDRValidation off) that decides: a value
// must parse with k8s.io/utils/net.ParseCIDRSloppy, and an except must be a
// "strict subset" of cidr as ValidateIPBlock tests it on the sloppy
// net.IPNets (cidr contains the except's network address, and the except's
// mask as written is longer).
func TestIPBlockForms(t *testing.T) {
	t.Parallel()
	const p = "spec.ingress[0].from[0].ipBlock"
	for _, tc := range []struct {
		cidr   string
		except []string
		want   []string // nil: admitted
		why    string
	}{
		// Admitted: ParseCIDRSloppy reads them.
		{cidr: "010.1.0.0/16", why: "leading zeros in an octet (decimal)"},
		{cidr: "10.1.0.0/016", why: "leading zeros in the prefix length"},
		{cidr: "010.001.000.000/0016", why: "leading zeros everywhere"},
		{cidr: "0000000010.1.0.0/16", why: "any number of leading zeros"},
		{cidr: "::ffff:10.1.0.0/112", why: "IPv4-mapped IPv6"},
		{cidr: "::ffff:0.0.0.0/96", why: "IPv4-mapped IPv6, every IPv4 address"},
		{cidr: "::ffff:10.1.2.3/128", why: "IPv4-mapped IPv6 host"},
		{cidr: "0:0:0:0:0:ffff:a01:0/112", why: "IPv4-mapped IPv6 in hex"},
		{cidr: "::ffff:010.1.0.0/112", why: "leading zeros in a mapped IPv4 part"},
		{cidr: "::ffff:10.0.0.0/64", why: "IPv4-mapped IPv6 with a prefix below 96"},
		{cidr: "::10.1.0.0/112", why: "IPv4-compatible IPv6 (an IPv6 prefix)"},
		{cidr: "0fd00::/016", why: "leading zeros in an IPv6 group and prefix length"},
		{cidr: "FD00:0:0:0::/64", why: "upper case, not canonical"},
		{cidr: "10.1.2.3/8", why: "bits set beyond the prefix length"},
		{cidr: "1.2.3.4/0", why: "bits set, /0"},

		// Refused: ParseCIDRSloppy does not read them.
		{cidr: " 10.0.0.0/8", want: []string{e(invalid, p+".cidr")}, why: "leading space"},
		{cidr: "10.0.0.0/8 ", want: []string{e(invalid, p+".cidr")}, why: "trailing space"},
		{cidr: "10.0.0.0", want: []string{e(invalid, p+".cidr")}, why: "no prefix length"},
		{cidr: "10.0.0.0/", want: []string{e(invalid, p+".cidr")}, why: "empty prefix length"},
		{cidr: "10.0.0.0/33", want: []string{e(invalid, p+".cidr")}, why: "prefix length beyond 32"},
		{cidr: "10.0.0.0/0033", want: []string{e(invalid, p+".cidr")}, why: "prefix length beyond 32, leading zeros"},
		{cidr: "::ffff:10.0.0.0/129", want: []string{e(invalid, p+".cidr")}, why: "prefix length beyond 128"},
		{cidr: "10.0.0.0/+8", want: []string{e(invalid, p+".cidr")}, why: "signed prefix length"},
		{cidr: "10.0.0.0/0x8", want: []string{e(invalid, p+".cidr")}, why: "hex prefix length"},
		{cidr: "10.0.0.0/8/8", want: []string{e(invalid, p+".cidr")}, why: "two prefix lengths"},
		{cidr: "0256.0.0.0/8", want: []string{e(invalid, p+".cidr")}, why: "octet 256 (leading zeros are decimal, not octal)"},
		{cidr: "0x0a.0.0.0/8", want: []string{e(invalid, p+".cidr")}, why: "hex octet"},
		{cidr: "10.0.0/8", want: []string{e(invalid, p+".cidr")}, why: "three octets"},
		{cidr: "fe80::1%eth0/64", want: []string{e(invalid, p+".cidr")}, why: "zone"},
		{cidr: "fd00::10000/64", want: []string{e(invalid, p+".cidr")}, why: "IPv6 group above ffff"},
		{cidr: "1::ffff:10.0.0.0:1/64", want: []string{e(invalid, p+".cidr")}, why: "embedded IPv4 not at the end"},
		{cidr: "[fd00::]/64", want: []string{e(invalid, p+".cidr")}, why: "brackets"},

		// except, same forms.
		{cidr: "10.0.0.0/8", except: []string{"010.1.0.0/16", "10.2.0.0/016"}, why: "except with leading zeros"},
		{cidr: "10.0.0.0/8", except: []string{"010.0.0.0/08"}, want: []string{e(invalid, p+".except[0]")}, why: "except equal to cidr"},
		{cidr: "10.0.0.0/8", except: []string{" 10.1.0.0/16"}, want: []string{e(invalid, p+".except[0]")}, why: "except with a space"},
		{cidr: "10.0.0.0/8", except: []string{"10.0.0.0/33"}, want: []string{e(invalid, p+".except[0]")}, why: "except does not parse"},
		// An invalid cidr stops there: no except check.
		{cidr: "10.0.0.0/33", except: []string{"11.0.0.0/16"}, want: []string{e(invalid, p+".cidr")}, why: "invalid cidr"},

		// Mixed forms: the API server compares the mask lengths as written.
		{cidr: "10.0.0.0/8", except: []string{"::ffff:10.1.0.0/112"}, why: "mapped except (10.1.0.0/16) in an IPv4 cidr"},
		{cidr: "::ffff:10.0.0.0/104", except: []string{"::ffff:10.1.0.0/112"}, why: "mapped except in a mapped cidr"},
		{cidr: "::ffff:10.0.0.0/104", except: []string{"10.1.0.0/16"}, want: []string{e(invalid, p+".except[0]")},
			why: "IPv4 except in a mapped cidr: 104 >= 16 although 10.1.0.0/16 is inside 10.0.0.0/8"},
		{cidr: "10.0.0.0/8", except: []string{"::ffff:10.0.0.0/104"}, why: "mapped except equal to the cidr it is in: admitted (8 < 104)"},
		{cidr: "0.0.0.0/16", except: []string{"::ffff:0.0.0.0/100"}, why: "mapped except (0.0.0.0/4) wider than cidr: admitted (its address 0.0.0.0 is in, 16 < 100)"},
		{cidr: "10.1.0.0/16", except: []string{"::ffff:10.1.0.0/100"}, want: []string{e(invalid, p+".except[0]")},
			why: "mapped except wider than cidr with its masked address (0.0.0.0) outside"},
		{cidr: "::/0", except: []string{"::ffff:10.0.0.0/104"}, want: []string{e(invalid, p+".except[0]")},
			why: "mapped except in ::/0: net.IPNet ::/0 contains no IPv4 address"},
		{cidr: "::ffff:0.0.0.0/96", except: []string{"fd00::/64"}, want: []string{e(invalid, p+".except[0]")},
			why: "IPv6 except in a mapped cidr (IPv4)"},
		{cidr: "::ffff:10.0.0.0/64", except: []string{"::1/128"}, why: "mapped cidr below 96 is the IPv6 ::/64"},
		{cidr: "::ffff:10.0.0.0/64", except: []string{"::ffff:10.1.0.0/112"}, want: []string{e(invalid, p+".except[0]")},
			why: "mapped except (IPv4) in a mapped cidr below 96 (IPv6)"},
		{cidr: "0.0.0.0/0", except: []string{"fd00::/64"}, want: []string{e(invalid, p+".except[0]")}, why: "IPv6 except in IPv4 cidr"},
		{cidr: "::/0", except: []string{"10.0.0.0/8"}, want: []string{e(invalid, p+".except[0]")}, why: "IPv4 except in IPv6 cidr"},
	} {
		np := policy(from(networkingv1.NetworkPolicyPeer{IPBlock: ipb(tc.cidr, tc.except...)}))
		got := errs(validation.NetworkPolicy(np))
		want := append([]string{}, tc.want...)
		sort.Strings(want)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("cidr %q except %q (%s): errors %v, want %v", tc.cidr, tc.except, tc.why, got, want)
		}
		// What validation admits, Compile's parser reads.
		if tc.want == nil {
			for _, s := range append([]string{tc.cidr}, tc.except...) {
				if _, err := validation.ParseCIDR(s); err != nil {
					t.Errorf("ParseCIDR(%q) = %v on an admitted value", s, err)
				}
			}
		}
	}
}

func TestIPBlockMessages(t *testing.T) {
	t.Parallel()
	np := policy(from(networkingv1.NetworkPolicyPeer{IPBlock: ipb("10.0.0.0/8", "11.0.0.0/16", "10.0.0.0/33")}))
	var got []string
	for _, err := range validation.NetworkPolicy(np) {
		got = append(got, err.Error())
	}
	want := []string{
		"spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: \"11.0.0.0/16\": must be a strict subset of `cidr`",
		"spec.ingress[0].from[0].ipBlock.except[1]: Invalid value: \"10.0.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestParseCIDR(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"10.0.0.0/8":          "10.0.0.0/8",
		"10.1.2.3/8":          "10.0.0.0/8",
		"0.0.0.0/0":           "0.0.0.0/0",
		"2001:db8::1/32":      "2001:db8::/32",
		"::/0":                "::/0",
		"010.1.0.0/16":        "10.1.0.0/16",
		"10.1.0.0/016":        "10.1.0.0/16",
		"010.010.010.010/32":  "10.10.10.10/32",
		"0fd00::/016":         "fd00::/16",
		"::ffff:10.1.0.0/112": "10.1.0.0/16",
		"::ffff:10.1.2.3/112": "10.1.0.0/16",
		"::ffff:10.1.2.3/128": "10.1.2.3/32",
		"::ffff:1.2.3.4/96":   "0.0.0.0/0",
		"::ffff:a01:0/112":    "10.1.0.0/16",
		"::ffff:10.0.0.0/95":  "::fffe:0:0/95",
		"::ffff:10.0.0.0/88":  "::ff00:0:0/88",
		"::ffff:10.0.0.0/80":  "::/80",
		"::ffff:10.0.0.0/64":  "::/64",
		"::10.1.0.0/112":      "::a01:0/112",
	} {
		got, err := validation.ParseCIDR(in)
		if err != nil || got != netip.MustParsePrefix(want) {
			t.Errorf("ParseCIDR(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", " 10.0.0.0/8", "10.0.0.0/8 ", "10.0.0.0", "10.0.0.0/33", "0256.0.0.0/8", "::ffff:10.0.0.0/129", "fe80::1%eth0/64", "x/8"} {
		if got, err := validation.ParseCIDR(in); err == nil {
			t.Errorf("ParseCIDR(%q) = %v, want an error", in, got)
		}
	}
}

// sampleAddrs returns addresses around p and its IPv4/IPv6 counterparts:
// the first and last addresses and their neighbours, random addresses
// inside and near, each as IPv4, as IPv4-mapped IPv6 and as plain IPv6.
func sampleAddrs(r *rand.Rand, n *net.IPNet) []netip.Addr {
	var out []netip.Addr
	add := func(a netip.Addr) {
		out = append(out, a)
		if a.Is4() {
			compat := a.As16() // IPv4-compatible ::a.b.c.d, an IPv6 address
			compat[10], compat[11] = 0, 0
			out = append(out, netip.AddrFrom16(a.As16()), netip.AddrFrom16(compat), a.Next(), a.Prev())
		} else {
			out = append(out, a.Unmap(), a.Next(), a.Prev())
		}
	}
	base, _ := netip.AddrFromSlice(n.IP)
	add(base)
	ones, _ := n.Mask.Size()
	last := base.AsSlice()
	for i := range last {
		last[i] |= ^n.Mask[i]
	}
	l, _ := netip.AddrFromSlice(last)
	add(l)
	for range 24 {
		b := base.AsSlice()
		for i := range b {
			b[i] = b[i]&n.Mask[i] | byte(r.Uint32())&^n.Mask[i]
		}
		// Sometimes flip a bit inside the prefix too.
		if ones > 0 && r.IntN(2) == 0 {
			bit := r.IntN(ones)
			b[bit/8] ^= 0x80 >> (bit % 8)
		}
		a, _ := netip.AddrFromSlice(b)
		add(a)
	}
	for _, s := range []string{"0.0.0.0", "255.255.255.255", "10.0.0.1", "::", "::1", "::ffff:0:0", "::fffe:ffff:ffff", "::1:0:0:0", "fd00::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"} {
		add(netip.MustParseAddr(s))
	}
	return out
}

// randomCIDR writes a CIDR in one of the forms the API server admits.
func randomCIDR(r *rand.Rand) string {
	zeros := func() string { return strings.Repeat("0", r.IntN(3)) }
	v4 := func() string {
		var o [4]string
		for i := range o {
			o[i] = zeros() + fmt.Sprint(r.IntN(256))
		}
		return strings.Join(o[:], ".")
	}
	switch r.IntN(4) {
	case 0:
		return fmt.Sprintf("%s/%s%d", v4(), zeros(), r.IntN(33))
	case 1:
		return fmt.Sprintf("::ffff:%s/%s%d", v4(), zeros(), 96+r.IntN(33))
	case 2:
		return fmt.Sprintf("::ffff:%s/%d", v4(), r.IntN(129))
	}
	var b [16]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	if r.IntN(3) == 0 { // near the mapped range
		copy(b[:10], make([]byte, 10))
		b[10], b[11] = 0xff, byte(0xf0|r.IntN(16))
	}
	return fmt.Sprintf("%s/%d", netip.AddrFrom16(b), r.IntN(129))
}

// TestParseCIDRMatchesIPNet checks that ParseCIDR's prefix contains exactly
// the addresses net.IPNet.Contains does on the net.IPNet that
// ParseCIDRSloppy returns (the reading of kube-network-policies, Calico and
// Antrea), addresses compared unmapped as net.IP compares them.
func TestParseCIDRMatchesIPNet(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	inputs := []string{
		"010.1.0.0/16", "::ffff:10.1.0.0/112", "::ffff:10.1.2.3/128", "::ffff:0.0.0.0/96",
		"::ffff:10.0.0.0/95", "::ffff:10.0.0.0/90", "::ffff:10.0.0.0/88", "::ffff:10.0.0.0/81",
		"::ffff:10.0.0.0/80", "::ffff:10.0.0.0/64", "::ffff:10.0.0.0/0", "::/0", "0.0.0.0/0",
		"::/96", "::/80", "::10.1.0.0/112", "::fffe:0:0/95", "10.1.2.3/8", "fd00::/8",
	}
	for range 400 {
		inputs = append(inputs, randomCIDR(r))
	}
	var checked, in4, in6 int
	for _, s := range inputs {
		_, n, err := netutils.ParseCIDRSloppy(s)
		if err != nil {
			t.Fatalf("test bug: %q: %v", s, err)
		}
		p, err := validation.ParseCIDR(s)
		if err != nil {
			t.Fatalf("ParseCIDR(%q): %v", s, err)
		}
		if p != p.Masked() || p.Addr().Is4In6() {
			t.Errorf("ParseCIDR(%q) = %v: not masked, or IPv4-mapped", s, p)
		}
		for _, a := range sampleAddrs(r, n) {
			want := n.Contains(net.IP(a.AsSlice()))
			if got := p.Contains(a.Unmap()); got != want {
				t.Errorf("%q: ParseCIDR gives %v, which contains %v = %v; net.IPNet %v says %v", s, p, a, got, n, want)
			}
			checked++
			if want && a.Unmap().Is4() {
				in4++
			} else if want {
				in6++
			}
		}
	}
	// The samples must exercise both families on both sides.
	if in4 < checked/20 || in6 < checked/20 {
		t.Errorf("weak samples: %d checked, %d IPv4 and %d IPv6 inside", checked, in4, in6)
	}
}

func TestWarnings(t *testing.T) {
	t.Parallel()
	np := policy(func(np *networkingv1.NetworkPolicy) {
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
			{IPBlock: ipb("010.1.0.0/16")},
			{PodSelector: nil, IPBlock: ipb("10.0.0.0/8", "10.1.0.0/16", "::ffff:10.2.0.0/112")},
			{IPBlock: ipb("fd00::/64")},
		}}}
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{
			{To: []networkingv1.NetworkPolicyPeer{{IPBlock: ipb("192.168.0.0/16")}}},
			{To: []networkingv1.NetworkPolicyPeer{
				{IPBlock: ipb("::ffff:10.0.0.0/64")},
				{IPBlock: ipb("10.1.2.3/8", "010.001.2.3/16")},
				{IPBlock: ipb("FD00:0::/64")}, // not canonical, but not ambiguous
			}},
		}
	})
	if errs := validation.NetworkPolicy(np); len(errs) > 0 {
		t.Fatal(errs)
	}
	want := []string{
		`spec.ingress[0].from[0].ipBlock.cidr: "010.1.0.0/16" is read as 10.1.0.0/16 (leading zeros, read as decimal)`,
		`spec.ingress[0].from[1].ipBlock.except[1]: "::ffff:10.2.0.0/112" is read as 10.2.0.0/16 (IPv4-mapped IPv6 address: matches IPv4 addresses)`,
		`spec.egress[1].to[0].ipBlock.cidr: "::ffff:10.0.0.0/64" is read as ::/64 (IPv4-mapped IPv6 address with a prefix length below 96: matches IPv6 addresses only)`,
		`spec.egress[1].to[1].ipBlock.cidr: "10.1.2.3/8" is read as 10.0.0.0/8 (bits set beyond the prefix length are ignored)`,
		`spec.egress[1].to[1].ipBlock.except[0]: "010.001.2.3/16" is read as 10.1.0.0/16 (leading zeros, read as decimal; bits set beyond the prefix length are ignored)`,
	}
	got := validation.Warnings(np)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	clean := policy(from(networkingv1.NetworkPolicyPeer{IPBlock: ipb("10.0.0.0/8", "10.1.0.0/16")}))
	if got := validation.Warnings(clean); got != nil {
		t.Errorf("standard forms: %v, want none", got)
	}
}
