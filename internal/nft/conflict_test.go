package nft

import (
	"net/netip"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// TestRenderSharedAddress checks the dataplane side of the shared-address
// rule (cluster.AddressConflict): whichever holder of an address is local,
// and whatever policies select it, the address leads in both directions to
// a chain that denies everything; as a peer the address is in no pod
// selector's set. The connectivity testbed gives every pod a namespace of
// its own and routes by address, so it cannot hold two pods with one
// address; this test stands in for the real-traffic one.
func TestRenderSharedAddress(t *testing.T) {
	shared := netip.MustParseAddr("10.1.0.50")
	// shop/a (node-a) and shop/b (node-b) hold 10.1.0.50; shop/b sorts
	// after shop/a, so the cluster names shop/a as the address owner and
	// node-b's dataplane must still cover shop/b. shop/c and shop/d (both
	// node-a) hold fd00:1::60. web-in would let a, b and c in from
	// everything; client may send to every app=web pod.
	nss := []*cluster.Namespace{{Name: "shop", Defined: true}}
	pods := []*cluster.Pod{
		pod("shop", "a", "node-a", map[string]string{"app": "web"}, "10.1.0.50", "fd00:1::50"),
		pod("shop", "b", "node-b", map[string]string{"app": "web"}, "10.1.0.50"),
		pod("shop", "c", "node-a", map[string]string{"app": "web"}, "fd00:1::60"),
		pod("shop", "d", "node-a", map[string]string{"app": "other"}, "fd00:1::60"),
		pod("shop", "client", "node-a", map[string]string{"app": "client"}, "10.1.0.70"),
		pod("shop", "web", "node-a", map[string]string{"app": "web"}, "10.1.0.80"),
	}
	webIn := netpol("shop", "web-in", sel("app", "web"), typeIn)
	ingress(webIn, nil)
	client := netpol("shop", "client", sel("app", "client"), typeOut)
	egress(client, peers(podPeer(sel("app", "web"), nil)))
	c := cluster.New(nss, pods, []*networkingv1.NetworkPolicy{webIn, client})
	s := policy.NewSet(c)

	for _, tc := range []struct {
		opts Options
		// local holders and the addresses their chains must get, one pod
		// per address
		owners map[string]string
	}{
		{Options{Node: "node-a"}, map[string]string{"10.1.0.50": "shop/a", "fd00:1::50": "shop/a", "fd00:1::60": "shop/c"}},
		{Options{Node: "node-b"}, map[string]string{"10.1.0.50": "shop/b"}},
		{Options{AllLocal: true, Deny: DenyReject}, map[string]string{"10.1.0.50": "shop/a", "fd00:1::50": "shop/a", "fd00:1::60": "shop/c"}},
	} {
		m := Render(s, tc.opts)
		checkModel(t, m)
		for _, name := range []string{MapIngress4, MapIngress6, MapEgress4, MapEgress6} {
			for _, e := range m.Map(name).Elements {
				ch := m.Chain(e.Chain)
				want, isShared := tc.owners[e.Addr.String()]
				if !isShared {
					continue
				}
				if ch.Pod != want {
					t.Errorf("%+v: %s %s jumps to the chain of %s, want %s", tc.opts, name, e.Addr, ch.Pod, want)
				}
				for _, r := range ch.Rules {
					if r.Kind == RuleAddr || r.Kind == RuleAddrPort {
						t.Errorf("%+v: chain %s of %s allows peers: %+v", tc.opts, ch.Name, ch.Pod, r)
					}
				}
				if last := ch.Rules[len(ch.Rules)-1]; last.Kind != RuleDeny || !strings.Contains(last.Comment, "shared with") {
					t.Errorf("%+v: chain %s does not end in a deny naming the shared address: %+v", tc.opts, ch.Name, last)
				}
			}
			// Every shared address of a local holder is in every map of its
			// family, exactly once.
			seen := map[netip.Addr]int{}
			for _, e := range m.Map(name).Elements {
				seen[e.Addr]++
			}
			for addr := range tc.owners {
				a := netip.MustParseAddr(addr)
				if a.Is4() == (name == MapIngress4 || name == MapEgress4) && seen[a] != 1 {
					t.Errorf("%+v: %s has %s %d times, want once", tc.opts, name, a, seen[a])
				}
			}
		}
		// shop/d is not selected by any policy, yet is isolated: its
		// address is shop/c's chain, and it gets no chain of its own.
		for _, ch := range m.Chains {
			if ch.Pod == "shop/d" {
				t.Errorf("%+v: shop/d has chain %s, but shop/c's chains already hold its address", tc.opts, ch.Name)
			}
		}
		// client may send to app=web: shop/web, not the holders of
		// 10.1.0.50 or fd00:1::60.
		if tc.opts.Node != "node-b" {
			st := m.ChainSet(ChainName("shop/client", policy.Egress), IPv4, false, true)
			if st == nil {
				t.Fatalf("%+v: no egress address set for shop/client", tc.opts)
			}
			var got []string
			for _, e := range st.Elements {
				got = append(got, e.Addrs.String())
			}
			if strings.Join(got, ",") != "10.1.0.80" {
				t.Errorf("%+v: shop/client may send to %v, want only 10.1.0.80", tc.opts, got)
			}
		}
	}
	if !c.Conflicted(c.Pod("shop/d")) || c.PodByIP(shared).Key() != "shop/a" {
		t.Fatal("test bug: the cluster does not see the shared addresses")
	}
}
