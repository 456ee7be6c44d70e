package nft

import "github.com/netfence/netfence/internal/policy"

// allowanceElements are the elements of an allowance's sets: for each family
// (0 IPv4, 1 IPv6), those of its address set and of its ports set.
type allowanceElements struct {
	all, ports [2][]Element
}

// elementsOf translates a normalised allowance into set elements, in its
// order, each commented with the policy rules behind it (one comment per
// set of sources). Every rectangle is an Accept: NetworkPolicy allows
// only. The family of a rectangle (its From.Fam) is the index in all and
// ports.
func elementsOf(n *policy.Normalized) *allowanceElements {
	e := &allowanceElements{}
	comments := make([]string, len(n.SourceSets))
	comment := func(r *policy.Rect) string {
		c := comments[r.Sources]
		if c == "" {
			c = sourcesComment(n.SourcesOf(r))
			comments[r.Sources] = c
		}
		return c
	}
	var count [2][2]int
	for i := range n.All {
		count[0][n.All[i].From.Fam]++
	}
	for i := range n.Ports {
		count[1][n.Ports[i].From.Fam]++
	}
	for f := range 2 {
		if count[0][f] > 0 {
			e.all[f] = make([]Element, 0, count[0][f])
		}
		if count[1][f] > 0 {
			e.ports[f] = make([]Element, 0, count[1][f])
		}
	}
	for i := range n.All {
		r := &n.All[i]
		f := r.From.Fam
		e.all[f] = append(e.all[f], Element{Addrs: r.Addrs(), Comment: comment(r)})
	}
	for i := range n.Ports {
		r := &n.Ports[i]
		f := r.From.Fam
		e.ports[f] = append(e.ports[f], Element{
			Addrs: r.Addrs(), Proto: r.Protocol, FromPort: r.FromPort, ToPort: r.ToPort,
			Comment: comment(r),
		})
	}
	return e
}
