package policy

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/randcluster"
)

// TestNormalizeTierMatchesEvaluate holds the dataplane's form of the tiers
// (ResolveTier, NormalizeTier, looked up Ports first) to the analyzer's
// (decideTier, rule by rule) on random clusters: for every pod, direction,
// tier, peer address and port, the same action or the same "no match".
func TestNormalizeTierMatchesEvaluate(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 30))
	ports := []struct {
		proto corev1.Protocol
		port  int32
	}{{"TCP", 80}, {"TCP", 79}, {"TCP", 78}, {"TCP", 8080}, {"TCP", 8199}, {"TCP", 8200}, {"UDP", 53}, {"UDP", 80}, {"SCTP", 9000}, {"SCTP", 9002}, {"ICMP", 0}}
	checked, decided := 0, 0
	for i := 0; i < 400; i++ {
		c := randcluster.New(r, i, randcluster.Options{ClusterPolicies: true})
		s := NewSet(c)
		if len(s.Rejected) > 0 {
			t.Fatalf("cluster %d: rejected %v", i, s.Rejected)
		}
		res := NewResolver(s)
		var z Normalizer
		var addrs []netip.Addr
		for _, p := range c.Pods {
			addrs = append(addrs, p.IPs...)
		}
		addrs = append(addrs, netip.MustParseAddr("10.244.0.1"), netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("fd00:10:244::1"), netip.MustParseAddr("2001:db8::1"))
		for _, pod := range c.Pods {
			if ok, _ := pod.Active(); !ok || pod.HostNetwork {
				continue
			}
			for _, dir := range Directions {
				for _, tier := range Tiers {
					ta := res.ResolveTier(pod, dir, tier)
					var n *Normalized
					if ta != nil {
						n = z.NormalizeTier(ta)
					}
					for _, ip := range addrs {
						for _, pp := range ports {
							var f Flow
							if dir == Egress {
								f = s.AddrFlow(pod.IPFor(ip), ip, pp.proto, pp.port)
							} else {
								f = s.AddrFlow(ip, pod.IPFor(ip), pp.proto, pp.port)
							}
							peer, dst := f.To, f.To.Pod
							if dir == Ingress {
								peer = f.From
							}
							if s.Cluster.Conflicted(peer.Pod) {
								peer.Pod = nil
								if dir == Egress {
									dst = nil
								}
							}
							if peer.Pod == pod {
								continue
							}
							m, _ := s.decideTier(tier, pod, dir, peer, dst, f)
							var got Action
							var ok bool
							if n != nil {
								got, ok = n.Decide(ip, pp.proto, pp.port)
							}
							checked++
							if m != nil {
								decided++
							}
							if (m != nil) != ok || (ok && m.Action != got) {
								want := "no match"
								if m != nil {
									want = m.Describe()
								}
								t.Fatalf("cluster %d: %s %s %s peer %s %s/%d: evaluate %s, normalized %v/%v\nall=%+v\nports=%+v", i, pod.Key(), dir, tier, ip, pp.proto, pp.port, want, got, ok, n.All, n.Ports)
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d points checked, %d decided by a tier", checked, decided)
	if decided == 0 {
		t.Fatal("no point was decided by a tier: the generator is broken")
	}
}
