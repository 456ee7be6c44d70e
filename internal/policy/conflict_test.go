package policy_test

import (
	"net/netip"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// conflictScenario has shop/a and shop/b holding 10.0.0.5; shop/f is
// what they would be alone (app=web, named port http).
func conflictScenario() scenario {
	return scenario{
		name: "shared address",
		nss:  []*cluster.Namespace{namespace("shop", nil)},
		pods: []*cluster.Pod{
			withPorts(pod("shop/a", l("app", "web"), "10.0.0.5"), cport("http", tcp, 8080)),
			withPorts(pod("shop/b", l("app", "web"), "10.0.0.5"), cport("http", tcp, 8080)),
			pod("shop/c", l("app", "client"), "10.0.0.6"),
			withPorts(pod("shop/d", l("app", "api"), "10.0.0.7"), cport("http", tcp, 9090)),
			withPorts(pod("shop/f", l("app", "web"), "10.0.0.9"), cport("http", tcp, 8080)),
		},
		policies: []*networkingv1.NetworkPolicy{
			netpol("shop/api", sel("app", "api"), func(s *networkingv1.NetworkPolicySpec) {
				s.Ingress = append(s.Ingress,
					ingressRule(peers(peerPods(sel("app", "web"))), nil),
					ingressRule(peers(peerIP("10.0.0.0/29")), ports(port(tcp, 81))))
			}),
			netpol("shop/client", sel("app", "client"), func(s *networkingv1.NetworkPolicySpec) {
				s.PolicyTypes = types(pOut)
				s.Egress = append(s.Egress, egressRule(peers(peerPods(sel())), ports(namedPort(tcp, "http"))))
			}),
			netpol("shop/web-open", sel("app", "web"), func(s *networkingv1.NetworkPolicySpec) {
				s.Ingress = append(s.Ingress, ingressRule(peers(peerPods(sel())), nil))
			}),
		},
	}
}

func sharedWith(other string) side {
	return side{isolated: true, reason: "address 10.0.0.5 is shared with " + other + ": denied (fail closed)"}
}

func TestEvaluateSharedAddress(t *testing.T) {
	t.Parallel()
	sc := conflictScenario()
	sc.cases = []flowCase{
		// As a destination: denied whatever its policies allow, and its
		// named ports resolve for nobody.
		{"shop/c", "shop/a", tcp, 8080, false, deniedIsolated, sharedWith("shop/b")},
		{"8.8.8.8", "shop/a", tcp, 8080, false, side{allowed: true, subject: notSubject}, sharedWith("shop/b")},
		// The same pod with an address of its own.
		{"shop/c", "shop/f", tcp, 8080, true, allowedBy("shop/client spec.egress[0].to[0].ports[0]"), allowedBy("shop/web-open spec.ingress[0].from[0]")},
		{"shop/f", "shop/d", tcp, 80, true, open, allowedBy("shop/api spec.ingress[0].from[0]")},
		// As a source: denied; no pod selector matches it, ipBlocks do.
		{"shop/a", "shop/d", tcp, 80, false, sharedWith("shop/b"), deniedIsolated},
		{"shop/a", "shop/d", tcp, 81, false, sharedWith("shop/b"), allowedBy("shop/api spec.ingress[1].from[0].ports[0]")},
		// Between the two holders.
		{"shop/a", "shop/b", tcp, 8080, false, sharedWith("shop/b"), sharedWith("shop/a")},
		{"shop/b", "shop/a", tcp, 8080, false, sharedWith("shop/a"), sharedWith("shop/b")},
	}
	runScenarios(t, []scenario{sc})

	c := cluster.New(sc.nss, sc.pods, sc.policies)
	set := policy.NewSet(c)
	a := c.Pod("shop/a")
	if v := set.Evaluate(policy.Flow{From: policy.Endpoint{Pod: a, IP: a.IPs[0]}, To: policy.Endpoint{Pod: a, IP: a.IPs[0]}, Protocol: tcp, Port: 8080}); !v.Allowed {
		t.Errorf("a pod with a shared address must still reach itself: %+v", v)
	}
}

func TestResolveSharedAddress(t *testing.T) {
	t.Parallel()
	sc := conflictScenario()
	c := cluster.New(sc.nss, sc.pods, sc.policies)
	set := policy.NewSet(c)
	res := policy.NewResolver(set)
	shared, own := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("10.0.0.9")
	// The holders: isolated both ways, nothing allowed, whatever selects
	// them (web-open isolates them for Ingress only and allows all pods).
	for _, key := range []string{"shop/a", "shop/b"} {
		for _, dir := range policy.Directions {
			al := res.Resolve(c.Pod(key), dir)
			if al == nil || al.Conflict == nil || len(al.Items) != 0 || al.Conflict.Addr != shared {
				t.Fatalf("%s %s: want an empty allowance with Conflict, got %+v", key, dir, al)
			}
			if n := al.Normalize(); len(n.All)+len(n.Ports) != 0 {
				t.Errorf("%s %s: normalised allowance not empty: %+v", key, dir, n)
			}
		}
	}
	if al := res.Resolve(c.Pod("shop/f"), policy.Egress); al != nil {
		t.Errorf("shop/f: not isolated for Egress, got %+v", al)
	}
	// As a peer: pod selectors skip the holders, ipBlocks keep the address.
	d := res.Resolve(c.Pod("shop/d"), policy.Ingress)
	for _, tc := range []struct {
		ip   netip.Addr
		port int32
		want bool
	}{{shared, 80, false}, {own, 80, true}, {shared, 81, true}} {
		if got := d.Allows(tc.ip, tcp, tc.port); got != tc.want {
			t.Errorf("shop/d ingress from %s TCP/%d: %v, want %v", tc.ip, tc.port, got, tc.want)
		}
	}
	// Named ports never resolve against a holder.
	cl := res.Resolve(c.Pod("shop/c"), policy.Egress)
	if cl.Allows(shared, tcp, 8080) || !cl.Allows(own, tcp, 8080) || !cl.Allows(netip.MustParseAddr("10.0.0.7"), tcp, 9090) {
		t.Errorf("shop/c egress on named port http: items %+v", cl.Items)
	}
	for _, it := range cl.Items {
		if it.Pod != nil && c.Conflicted(it.Pod) {
			t.Errorf("named port resolved against %s", it.Pod.Key())
		}
	}
}
