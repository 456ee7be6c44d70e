package flow

import (
	"net/netip"
	"time"

	"github.com/netfence/netfence/internal/policy"
)

// explainKey is what an explanation depends on besides the time and the
// source port: the compiled snapshot, the addresses, the protocol and the
// destination port, and the verdict and direction the kernel gave.
type explainKey struct {
	set      *policy.Set
	src, dst netip.Addr
	proto    uint8
	port     uint16
	denied   bool
	dir      policy.Direction
}

// maxExplained bounds the cache; it is cleared when full.
const maxExplained = 1 << 14

// ExplainCache remembers explanations, so that many connections between
// the same two endpoints on the same port are explained once per
// snapshot. It is not safe for concurrent use.
type ExplainCache struct {
	m map[explainKey]Record
}

// Explain is Explain, cached.
func (c *ExplainCache) Explain(set *policy.Set, node string, at time.Time, p Packet, denied bool, dir policy.Direction) Record {
	k := explainKey{set, p.Src, p.Dst, p.Proto, p.DstPort, denied, dir}
	if r, ok := c.m[k]; ok {
		r.Time, r.SrcPort = at, int(p.SrcPort)
		return r
	}
	r := Explain(set, node, at, p, denied, dir)
	if c.m == nil || len(c.m) >= maxExplained {
		c.m = make(map[explainKey]Record, 256)
	}
	c.m[k] = r
	return r
}
