package synth

import (
	"fmt"
	"net/netip"
)

// Pod addresses are handed out per node in /24 blocks, the way a node's
// podCIDR works. Block b is the b-th /24 of 10.0.0.0/8 counted from
// 10.244.0.0 and wrapping round to 10.0.0.0 after 10.255.255.0, so the first
// 256 blocks are in 10.244.0.0/16 and 10.0.0.0/8 holds 65536 blocks of 253
// pods (.2 to .254) each. Node i starts with block i; a node whose block is
// full takes the next unused block. With IPv6 block b is also
// fd00:10:244:b::/64 and a pod's IPv6 address has the same host number as
// its IPv4 one.

const (
	maxBlocks      = 1 << 16
	firstHost      = 2
	lastHost       = 254
	hostsPerBlock  = lastHost - firstHost + 1
	maxPodsWithIPs = maxBlocks * hostsPerBlock
)

// podCIDRv6 is the IPv6 pod range.
var podCIDRv6 = netip.MustParsePrefix("fd00:10:244::/48")

// blockPrefix4 returns block b as an IPv4 /24.
func blockPrefix4(b int) netip.Prefix {
	off := (uint32(244)<<16 + uint32(b)<<8) & 0xffffff
	a := 10<<24 | off
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), 0}), 24)
}

// blockPrefix6 returns block b as an IPv6 /64.
func blockPrefix6(b int) netip.Prefix {
	a := podCIDRv6.Addr().As16()
	a[6], a[7] = byte(b>>8), byte(b)
	return netip.PrefixFrom(netip.AddrFrom16(a), 64)
}

// hostAddr returns host h of block prefix p.
func hostAddr(p netip.Prefix, h int) netip.Addr {
	if p.Addr().Is4() {
		a := p.Addr().As4()
		a[3] = byte(h)
		return netip.AddrFrom4(a)
	}
	a := p.Addr().As16()
	a[14], a[15] = byte(h>>8), byte(h)
	return netip.AddrFrom16(a)
}

// block is an allocated /24 (and /64) of pod addresses.
type block struct {
	index int
	node  int
	used  int // hosts handed out: firstHost .. firstHost+used-1
}

// ipam hands out pod addresses.
type ipam struct {
	nodeBlock []int // current block of each node, index into blocks
	blocks    []*block
	next      int // next unused block index
}

func newIPAM(nodes int) *ipam {
	m := &ipam{nodeBlock: make([]int, nodes), next: nodes}
	for i := range nodes {
		m.nodeBlock[i] = -1
	}
	return m
}

// alloc returns the next address on node, with its block.
func (m *ipam) alloc(node int) (*block, int, error) {
	bi := m.nodeBlock[node]
	if bi < 0 || m.blocks[bi].used == hostsPerBlock {
		idx := node
		if bi >= 0 || node >= maxBlocks {
			if m.next >= maxBlocks {
				return nil, 0, fmt.Errorf("synth: pod address space 10.0.0.0/8 exhausted")
			}
			idx = m.next
			m.next++
		}
		m.blocks = append(m.blocks, &block{index: idx, node: node})
		bi = len(m.blocks) - 1
		m.nodeBlock[node] = bi
	}
	b := m.blocks[bi]
	h := firstHost + b.used
	b.used++
	return b, h, nil
}
