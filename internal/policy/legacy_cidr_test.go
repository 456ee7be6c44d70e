package policy_test

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	netutils "k8s.io/utils/net"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// TestLegacyCIDRForms checks that a policy whose ipBlocks use the legacy
// forms kube-apiserver admits (leading zeros, IPv4-mapped IPv6) compiles
// and allows exactly the addresses that implementations reading them with
// k8s.io/utils/net.ParseCIDRSloppy and net.IPNet.Contains allow: in
// Evaluate (the analyzer), in Resolve (what the nftables renderer
// renders) and in IPBlock.Contains.
func TestLegacyCIDRForms(t *testing.T) {
	t.Parallel()
	blocks := []networkingv1.IPBlock{
		{CIDR: "010.1.0.0/16"},        // 10.1.0.0/16
		{CIDR: "::ffff:10.2.0.0/112"}, // 10.2.0.0/16
		// 10.3.0.0/16 except 10.3.3.0/24 and 10.3.4.0/24. (An IPv4 except
		// such as 10.3.4.0/24 is refused here: the API server compares the
		// mask lengths as written, 112 >= 24.)
		{CIDR: "::ffff:10.3.0.0/112", Except: []string{"::ffff:10.3.3.0/120", "::ffff:010.003.004.000/0120"}},
		// The except (10.0.0.0/8) covers the whole cidr: the API server
		// admits it (it compares 16 < 104), the block matches nothing.
		{CIDR: "10.0.0.0/16", Except: []string{"::ffff:10.0.0.0/104"}},
		// Below 96 a mapped address is an IPv6 prefix: ::/64.
		{CIDR: "::ffff:10.5.0.0/64"},
	}
	var ps []networkingv1.NetworkPolicyPeer
	for _, b := range blocks {
		ps = append(ps, networkingv1.NetworkPolicyPeer{IPBlock: &b})
	}
	np := netpol("a/p", sel("app", "srv"), func(s *networkingv1.NetworkPolicySpec) {
		s.Ingress = append(s.Ingress, ingressRule(ps, nil))
	})
	p, err := policy.Compile(np)
	if err != nil {
		t.Fatal(err)
	}
	srv := pod("a/srv", l("app", "srv"), "10.9.0.1", "fd00:9::1")
	c := cluster.New(nil, []*cluster.Pod{srv}, []*networkingv1.NetworkPolicy{np})
	set := policy.NewSet(c)
	if len(set.Rejected) > 0 {
		t.Fatalf("rejected: %v", set.Rejected)
	}
	allowance := set.Resolve(srv, policy.Ingress)
	if allowance == nil {
		t.Fatal("srv not isolated for ingress")
	}

	// net reads each block with ParseCIDRSloppy and net.IPNet.Contains.
	type netBlock struct {
		cidr   *net.IPNet
		except []*net.IPNet
	}
	sloppy := func(s string) *net.IPNet {
		_, n, err := netutils.ParseCIDRSloppy(s)
		if err != nil {
			t.Fatalf("test bug: %q: %v", s, err)
		}
		return n
	}
	var nets []netBlock
	for _, b := range blocks {
		nb := netBlock{cidr: sloppy(b.CIDR)}
		for _, e := range b.Except {
			nb.except = append(nb.except, sloppy(e))
		}
		nets = append(nets, nb)
	}
	netAllows := func(a netip.Addr) (int, bool) {
		ip := net.IP(a.AsSlice())
		for i, nb := range nets {
			if !nb.cidr.Contains(ip) {
				continue
			}
			excepted := false
			for _, e := range nb.except {
				excepted = excepted || e.Contains(ip)
			}
			if !excepted {
				return i, true
			}
		}
		return -1, false
	}

	// Addresses: around every block's boundaries and random ones inside,
	// each also IPv4-mapped and IPv4-compatible (::a.b.c.d, IPv6).
	r := rand.New(rand.NewPCG(5, 6))
	var addrs []netip.Addr
	add := func(a netip.Addr) {
		for _, x := range []netip.Addr{a, a.Prev(), a.Next()} {
			if !x.IsValid() {
				continue
			}
			addrs = append(addrs, x)
			if x.Is4() {
				compat := x.As16()
				compat[10], compat[11] = 0, 0
				addrs = append(addrs, netip.AddrFrom16(x.As16()), netip.AddrFrom16(compat))
			}
		}
	}
	for _, nb := range nets {
		for _, n := range append([]*net.IPNet{nb.cidr}, nb.except...) {
			first, _ := netip.AddrFromSlice(n.IP)
			add(first)
			last := first.AsSlice()
			for i := range last {
				last[i] |= ^n.Mask[i]
			}
			l, _ := netip.AddrFromSlice(last)
			add(l)
			for range 40 {
				b := first.AsSlice()
				for i := range b {
					b[i] |= byte(r.Uint32()) &^ n.Mask[i]
				}
				a, _ := netip.AddrFromSlice(b)
				add(a)
			}
		}
	}
	for _, s := range []string{"0.0.0.0", "10.0.0.1", "11.1.0.1", "255.255.255.255", "::", "::1", "::ffff:0:0", "fd00::1", "::1:0:0:0:1", "::2:0:0:0"} {
		add(netip.MustParseAddr(s))
	}

	var allowed4, allowed6, denied int
	for _, a := range addrs {
		peer, want := netAllows(a)
		switch {
		case want && a.Unmap().Is4():
			allowed4++
		case want:
			allowed6++
		default:
			denied++
		}
		gotBlock := -1
		for i, pr := range p.Rules[policy.Ingress][0].Peers {
			if pr.IPBlock.Contains(a) {
				gotBlock = i
				break
			}
		}
		if gotBlock != peer {
			t.Errorf("%v: first block containing it is %d, net.IPNet says %d", a, gotBlock, peer)
		}
		to := srv.IPs[0]
		if !a.Unmap().Is4() {
			to = srv.IPs[1]
		}
		v := set.Evaluate(policy.Flow{From: policy.Endpoint{IP: a}, To: policy.Endpoint{Pod: srv, IP: to}, Protocol: tcp, Port: 80})
		if v.Allowed != want {
			t.Errorf("%v -> a/srv: Evaluate allowed = %v, net.IPNet says %v (%s)", a, v.Allowed, want, v.Ingress.Reason)
		}
		if got := allowance.Allows(a, tcp, 80); got != want {
			t.Errorf("%v -> a/srv: Resolve allows = %v, net.IPNet says %v", a, got, want)
		}
	}
	if allowed4 == 0 || allowed6 == 0 || denied == 0 {
		t.Errorf("weak samples: %d IPv4 allowed, %d IPv6 allowed, %d denied", allowed4, allowed6, denied)
	}

	// The compiled form, as the renderer and describe print it.
	want := []string{"10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16 except 10.3.3.0/24, 10.3.4.0/24", "10.0.0.0/16 except 10.0.0.0/8", "::/64"}
	for i, pr := range p.Rules[policy.Ingress][0].Peers {
		if got := pr.IPBlock.String(); got != want[i] {
			t.Errorf("block %d (%q) compiles to %s, want %s", i, blocks[i].CIDR, got, want[i])
		}
	}
}
