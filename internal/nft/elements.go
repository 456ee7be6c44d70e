package nft

import "github.com/netfence/netfence/internal/policy"

// allowanceElements are the elements of an allowance's sets: for each family
// (0 IPv4, 1 IPv6), those of its address set and of its ports set, each
// split into ranges (interval sets) and exact elements (hash sets): a
// single address, and for a ports set a single address with a single
// port.
type allowanceElements struct {
	all, ports           [2][]Element
	exactAll, exactPorts [2][]Element
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
	for i := range n.All {
		r := &n.All[i]
		f := r.From.Fam
		el := Element{Addrs: r.Addrs(), Comment: comment(r)}
		if el.exact() {
			e.exactAll[f] = append(e.exactAll[f], el)
		} else {
			e.all[f] = append(e.all[f], el)
		}
	}
	for i := range n.Ports {
		r := &n.Ports[i]
		f := r.From.Fam
		el := Element{
			Addrs: r.Addrs(), Proto: r.Protocol, FromPort: r.FromPort, ToPort: r.ToPort,
			Comment: comment(r),
		}
		if el.exact() {
			e.exactPorts[f] = append(e.exactPorts[f], el)
		} else {
			e.ports[f] = append(e.ports[f], el)
		}
	}
	return e
}

// exact reports whether the element is one address (and one port): a
// hash set can hold it.
func (e Element) exact() bool {
	return e.Addrs.From == e.Addrs.To && e.FromPort == e.ToPort
}
