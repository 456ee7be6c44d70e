package nft

import (
	"testing"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// TestElementsOf checks, for every pod and direction of random clusters,
// that the set elements are the normalised allowance's rectangles in its
// order, split by family and into ranges and exact elements, with the comment naming each rectangle's
// sources.
func TestElementsOf(t *testing.T) {
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
		res := policy.NewResolver(policy.NewSet(c))
		for _, p := range c.Pods {
			for _, dir := range policy.Directions {
				a := res.Resolve(p, dir)
				if a == nil {
					continue
				}
				n := a.Normalize()
				got := elementsOf(n)
				// Kinds: ranges of addresses, ranges of ports, exact
				// addresses, exact ports (setAddrs...).
				var want [setKinds][2][]Element
				for _, r := range n.All {
					addrs := r.Addrs()
					e := Element{Addrs: addrs, Comment: sourcesComment(n.SourcesOf(&r))}
					kind := setAddrs
					if addrs.From == addrs.To {
						kind = setExactAddrs
					}
					want[kind][family(addrs)] = append(want[kind][family(addrs)], e)
				}
				for _, r := range n.Ports {
					addrs, svc := r.Addrs(), r.Service()
					e := Element{
						Addrs: addrs, Proto: policy.ProtocolNumber(svc.Protocol),
						FromPort: uint16(svc.FromPort), ToPort: uint16(svc.ToPort),
						Comment: sourcesComment(n.SourcesOf(&r)),
					}
					kind := setPorts
					if addrs.From == addrs.To && svc.FromPort == svc.ToPort {
						kind = setExactPorts
					}
					want[kind][family(addrs)] = append(want[kind][family(addrs)], e)
				}
				for f := range 2 {
					for kind, g := range [setKinds][]Element{got.all[f], got.ports[f], got.exactAll[f], got.exactPorts[f]} {
						w := want[kind][f]
						if len(g) != len(w) {
							t.Fatalf("cluster %d %s %s family %d kind %d: %d elements, want %d", ci, p.Key(), dir, f, kind, len(g), len(w))
						}
						for i := range g {
							if g[i] != w[i] {
								t.Fatalf("cluster %d %s %s family %d kind %d element %d:\ngot  %+v\nwant %+v", ci, p.Key(), dir, f, kind, i, g[i], w[i])
							}
							if family(g[i].Addrs) != f {
								t.Fatalf("element %+v in family %d", g[i], f)
							}
						}
						elems += len(g)
					}
				}
				checked++
			}
		}
	}
	t.Logf("%d allowances, %d elements", checked, elems)
}

// family is the index of a range's family: 0 for IPv4, 1 for IPv6.
func family(r policy.AddrRange) int {
	if r.Is4() {
		return 0
	}
	return 1
}
