package nft

import (
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// TestNormalizeMatchesPolicy checks that the renderer's normalisation
// gives exactly the elements that policy.Allowance.Normalize gives, for
// every pod and direction of random clusters.
func TestNormalizeMatchesPolicy(t *testing.T) {
	var clusters []*cluster.Cluster
	for seed := uint64(0); seed < 6; seed++ {
		ch := newChurn(seed)
		for i := 0; i < 30; i++ {
			ch.mutate()
		}
		clusters = append(clusters, ch.cluster())
	}
	clusters = append(clusters, genCluster(11, genParams{Namespaces: 4, Pods: 400, Nodes: 2, Policies: 40, DualStack: true}))
	clusters = append(clusters, shopCluster())
	checked, elems := 0, 0
	for ci, c := range clusters {
		s := policy.NewSet(c)
		res := policy.NewResolver(s)
		for _, p := range c.Pods {
			for _, dir := range policy.Directions {
				a := res.Resolve(p, dir)
				if a == nil {
					continue
				}
				got, want := normalize(a), normalizeSlow(a)
				if !reflect.DeepEqual(got, want) {
					for f := range 2 {
						if !reflect.DeepEqual(got.all[f], want.all[f]) {
							t.Errorf("cluster %d %s %s family %d address set:\ngot  %v\nwant %v", ci, p.Key(), dir, f, got.all[f], want.all[f])
						}
						if !reflect.DeepEqual(got.ports[f], want.ports[f]) {
							t.Errorf("cluster %d %s %s family %d ports set:\ngot  %v\nwant %v", ci, p.Key(), dir, f, got.ports[f], want.ports[f])
						}
					}
					t.FailNow()
				}
				checked++
				for f := range 2 {
					elems += len(got.all[f]) + len(got.ports[f])
				}
			}
		}
	}
	t.Logf("%d allowances, %d elements", checked, elems)
}

// TestNormalizeEdges compares the two normalisations on hand-made
// allowances with ranges at the ends of the address space, adjacent and
// overlapping ranges and port ranges.
func TestNormalizeEdges(t *testing.T) {
	p := &policy.Policy{Namespace: "ns", Name: "p"}
	src := func(rule int) policy.RuleMatch { return policy.RuleMatch{Policy: p, Rule: rule, Peer: 0, Port: 0} }
	r := func(from, to string) policy.AddrRange { return rangeOf(from, to) }
	all := policy.Service{AllProtocols: true}
	svc := func(proto string, from, to int32) policy.Service {
		return policy.Service{Protocol: corev1Protocol(proto), FromPort: from, ToPort: to}
	}
	cases := [][]policy.Item{
		{{Addrs: policy.Everything(), Service: all, Source: src(0)}},
		{
			{Addrs: []policy.AddrRange{r("255.255.255.255", "255.255.255.255"), r("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")}, Service: svc("TCP", 80, 80), Source: src(0)},
			{Addrs: []policy.AddrRange{r("255.255.255.0", "255.255.255.254"), r("::", "::1")}, Service: svc("TCP", 80, 81), Source: src(1)},
			{Addrs: []policy.AddrRange{r("0.0.0.0", "0.0.0.0"), r("255.255.255.254", "255.255.255.255")}, Service: all, Source: src(2)},
			{Addrs: policy.Everything(), Service: svc("UDP", 0, 65535), Source: src(3)},
			{Addrs: []policy.AddrRange{r("10.0.0.0", "10.0.0.9"), r("fd00::", "fd00::ffff")}, Service: svc("UDP", 53, 53), Source: src(4)},
			{Addrs: []policy.AddrRange{r("10.0.0.5", "10.0.0.20")}, Service: svc("TCP", 79, 82), Source: src(5)},
			{Addrs: []policy.AddrRange{r("10.0.0.21", "10.0.0.21"), r("10.0.0.40", "10.0.0.41")}, Service: svc("TCP", 82, 90), Source: src(5)},
			{Addrs: []policy.AddrRange{r("10.0.0.10", "10.0.0.12")}, Service: all, Source: src(6)},
			{Addrs: nil, Service: all, Source: src(7)},
		},
	}
	// Adjacent port ranges whose ranges start alike but end apart.
	cases = append(cases, []policy.Item{
		{Addrs: []policy.AddrRange{r("10.0.0.1", "10.0.0.5"), r("10.0.0.9", "10.0.0.9")}, Service: svc("TCP", 80, 80), Source: src(0)},
		{Addrs: []policy.AddrRange{r("10.0.0.1", "10.0.0.3"), r("10.0.0.9", "10.0.0.9")}, Service: svc("TCP", 81, 81), Source: src(1)},
		{Addrs: []policy.AddrRange{r("10.0.0.1", "10.0.0.3"), r("10.0.0.9", "10.0.0.9")}, Service: svc("TCP", 82, 82), Source: src(2)},
	})
	// A port range whose addresses take in a narrower one's, then meet a
	// third with other addresses: the sources of the first must not leak.
	cases = append(cases, []policy.Item{
		{Addrs: []policy.AddrRange{r("10.0.0.1", "10.0.0.5")}, Service: svc("TCP", 80, 100), Source: src(0)},
		{Addrs: []policy.AddrRange{r("10.0.0.2", "10.0.0.3")}, Service: svc("TCP", 82, 83), Source: src(1)},
		{Addrs: []policy.AddrRange{r("10.0.0.9", "10.0.0.9")}, Service: svc("TCP", 85, 86), Source: src(2)},
	})
	for i, items := range cases {
		a := &policy.Allowance{Items: items}
		if got, want := normalize(a), normalizeSlow(a); !reflect.DeepEqual(got, want) {
			t.Errorf("case %d:\ngot  %+v\nwant %+v", i, got, want)
		}
	}
}

func corev1Protocol(s string) corev1.Protocol { return corev1.Protocol(s) }

// TestNormalizeRandom compares the two normalisations on random
// allowances over a small address and port space, where ranges overlap,
// nest and touch in every way.
func TestNormalizeRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	pols := []*policy.Policy{{Namespace: "ns", Name: "a"}, {Namespace: "ns", Name: "b"}}
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
		var items []policy.Item
		for k := r.IntN(6); k >= 0; k-- {
			v6 := r.IntN(3) == 0
			var addrs []policy.AddrRange
			at := r.IntN(4)
			for a := r.IntN(4); a >= 0 && at < 250; a-- {
				from := at
				to := from + r.IntN(4)
				addrs = append(addrs, policy.AddrRange{From: addr(v6, from), To: addr(v6, to)})
				at = to + 1 + r.IntN(3)
			}
			if r.IntN(10) == 0 {
				addrs = append(addrs, policy.AddrRange{From: addr(v6, 255), To: addr(v6, 255)})
			}
			svc := policy.Service{AllProtocols: true}
			if r.IntN(4) > 0 {
				lo := ports[r.IntN(len(ports))]
				hi := ports[r.IntN(len(ports))]
				if lo > hi {
					lo, hi = hi, lo
				}
				svc = policy.Service{Protocol: corev1.Protocol(protos[r.IntN(len(protos))]), FromPort: lo, ToPort: hi}
			}
			items = append(items, policy.Item{Addrs: addrs, Service: svc,
				Source: policy.RuleMatch{Policy: pols[r.IntN(2)], Rule: r.IntN(3), Peer: -1, Port: -1}})
		}
		a := &policy.Allowance{Items: items}
		if got, want := normalize(a), normalizeSlow(a); !reflect.DeepEqual(got, want) {
			t.Fatalf("allowance %d:\nitems %+v\ngot  %+v\nwant %+v", i, items, got, want)
		}
	}
}
