package nft

import (
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// This file turns model objects into google/nftables objects and
// expressions, as the nft tool encodes the same rules (so that `nft list`
// shows them the same way).

// Registers as nft allocates them: NFT_REG_1 holds the address; the
// concatenated protocol and port follow in 32-bit registers.
const (
	reg1          = 1
	regVerdict    = 0
	reg32v4Proto  = 9  // NFT_REG32_01
	reg32v4Port   = 10 // NFT_REG32_02
	reg32v6Proto  = 12 // NFT_REG32_04
	reg32v6Port   = 13 // NFT_REG32_05
	elemChunkSize = 48 << 10
)

// setIDs allocates set IDs, which only need to be unique within a batch.
// google/nftables allocates them from an unguarded global when left 0.
var setIDs atomic.Uint32

func nextSetID() uint32 {
	for {
		if id := setIDs.Add(1); id != 0 {
			return id
		}
	}
}

func inetTable(name string) *nftables.Table {
	return &nftables.Table{Name: name, Family: nftables.TableFamilyINet}
}

var (
	concat4 = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	concat6 = nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService)
)

func addrType(f Family) nftables.SetDatatype {
	if f == IPv4 {
		return nftables.TypeIPAddr
	}
	return nftables.TypeIP6Addr
}

// nftSet describes a model set for creation: an interval set (rbtree,
// or pipapo for a concatenation), or for an exact set a hash set; a map
// is an interval set with verdict data.
func nftSet(t *nftables.Table, s *PeerSet) *nftables.Set {
	ns := &nftables.Set{Table: t, Name: s.Name, ID: nextSetID(), Interval: !s.Exact, KeyType: addrType(s.Family)}
	if s.Map {
		ns.IsMap, ns.DataType = true, nftables.TypeVerdict
	}
	if s.Ports {
		ns.Concatenation = true
		ns.KeyType = concat4
		if s.Family == IPv6 {
			ns.KeyType = concat6
		}
	}
	return ns
}

// nftVMap describes a verdict map for creation.
func nftVMap(t *nftables.Table, vm *VMap) *nftables.Set {
	return &nftables.Set{Table: t, Name: vm.Name, ID: nextSetID(), IsMap: true, KeyType: addrType(vm.Family), DataType: nftables.TypeVerdict}
}

// appendPortKey appends the key of an address . protocol . port
// concatenation: the address, then the protocol and the port each padded
// to 32 bits.
func appendPortKey(b []byte, a netip.Addr, proto uint8, port uint16) []byte {
	b = appendAddr(b, a)
	return append(b, proto, 0, 0, 0, byte(port>>8), byte(port), 0, 0)
}

// appendAddr appends an address in network order.
func appendAddr(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		v := a.As4()
		return append(b, v[:]...)
	}
	v := a.As16()
	return append(b, v[:]...)
}

// verdictData returns the verdict of a map element, or nil for a set's
// element.
func verdictData(v Verdict) *expr.Verdict {
	switch v.Kind {
	case VerdictAccept:
		return &expr.Verdict{Kind: expr.VerdictAccept}
	case VerdictDrop:
		return &expr.Verdict{Kind: expr.VerdictDrop}
	case VerdictReturn:
		return &expr.Verdict{Kind: expr.VerdictReturn}
	case VerdictGoto:
		return &expr.Verdict{Kind: expr.VerdictGoto, Chain: v.Chain}
	}
	return nil
}

// setElements encodes a set's elements. An address set is an rbtree
// interval set: a start element and, unless the range ends at the last
// address, an interval-end element one past its end. A ports set is a
// pipapo set whose elements carry their end key. An exact set is a hash
// set whose elements are their key alone. A map's elements carry their
// verdict (an interval-end element has none). The keys share one buffer.
func setElements(s *PeerSet, elems []Element) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, 2*len(elems))
	size := 0
	for _, e := range elems {
		size += 2 * (e.Addrs.From.BitLen()/8 + 8)
	}
	buf := make([]byte, 0, size)
	key := func(f func(b []byte) []byte) []byte {
		n := len(buf)
		buf = f(buf)
		return buf[n:len(buf):len(buf)]
	}
	for _, e := range elems {
		switch {
		case s.Exact && s.Ports:
			out = append(out, nftables.SetElement{
				Key:     key(func(b []byte) []byte { return appendPortKey(b, e.Addrs.From, e.Proto, e.FromPort) }),
				Comment: e.Comment,
			})
			continue
		case s.Exact:
			out = append(out, nftables.SetElement{Key: key(func(b []byte) []byte { return appendAddr(b, e.Addrs.From) }), Comment: e.Comment})
			continue
		case s.Ports:
			out = append(out, nftables.SetElement{
				Key:         key(func(b []byte) []byte { return appendPortKey(b, e.Addrs.From, e.Proto, e.FromPort) }),
				KeyEnd:      key(func(b []byte) []byte { return appendPortKey(b, e.Addrs.To, e.Proto, e.ToPort) }),
				VerdictData: verdictData(e.Verdict),
				Comment:     e.Comment,
			})
			continue
		}
		out = append(out, nftables.SetElement{Key: key(func(b []byte) []byte { return appendAddr(b, e.Addrs.From) }),
			VerdictData: verdictData(e.Verdict), Comment: e.Comment})
		if next := e.Addrs.To.Next(); next.IsValid() {
			out = append(out, nftables.SetElement{Key: key(func(b []byte) []byte { return appendAddr(b, next) }), IntervalEnd: true})
		}
	}
	return out
}

// keysOnly drops the verdicts of elements to delete: the kernel finds an
// element by its key.
func keysOnly(elems []nftables.SetElement) []nftables.SetElement {
	for i := range elems {
		elems[i].VerdictData = nil
	}
	return elems
}

func vmapElements(elems []VMapElement) []nftables.SetElement {
	out := make([]nftables.SetElement, len(elems))
	for i, e := range elems {
		out[i] = nftables.SetElement{
			Key:         e.Addr.AsSlice(),
			VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: e.Chain},
			Comment:     e.Comment,
		}
	}
	return out
}

// elemSize estimates the netlink size of an element, generously.
func elemSize(e nftables.SetElement) int {
	n := 32 + 2*(8+len(e.Key)) + len(e.Comment)
	if e.VerdictData != nil {
		n += 32 + len(e.VerdictData.Chain)
	}
	return n
}

// chunks splits elements so that each message's element list stays well
// under the 64 KiB limit of a netlink attribute.
func chunks(elems []nftables.SetElement) [][]nftables.SetElement {
	var out [][]nftables.SetElement
	start, size := 0, 0
	for i, e := range elems {
		s := elemSize(e)
		if i > start && size+s > elemChunkSize {
			out = append(out, elems[start:i])
			start, size = i, 0
		}
		size += s
	}
	if start < len(elems) {
		out = append(out, elems[start:])
	}
	return out
}

func commentData(c string) []byte {
	if c == "" {
		return nil
	}
	return userdata.AppendString(nil, userdata.TypeComment, c)
}

func nfproto(f Family) []expr.Any {
	p := byte(unix.NFPROTO_IPV4)
	if f == IPv6 {
		p = unix.NFPROTO_IPV6
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{p}},
	}
}

// loadAddr loads the source or destination address into NFT_REG_1.
func loadAddr(f Family, source bool) expr.Any {
	p := &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader}
	switch {
	case f == IPv4 && source:
		p.Offset, p.Len = 12, 4
	case f == IPv4:
		p.Offset, p.Len = 16, 4
	case source:
		p.Offset, p.Len = 8, 16
	default:
		p.Offset, p.Len = 24, 16
	}
	return p
}

func ctState(mask uint32, v expr.VerdictKind) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(mask), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Verdict{Kind: v},
	}
}

// baseExprs encodes a base chain rule. sets gives the IDs of maps created
// in the same batch.
func baseExprs(r baseRule, setID func(string) uint32) []expr.Any {
	switch r.kind {
	case baseRevoked:
		return []expr.Any{
			&expr.Ct{Register: reg1, Key: expr.CtKeyMARK},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(RevokedMark), Xor: binaryutil.NativeEndian.PutUint32(0)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(RevokedMark)},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}
	case baseEstablished:
		return ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED, expr.VerdictAccept)
	case baseInvalid:
		return ctState(expr.CtStateBitINVALID, expr.VerdictDrop)
	case baseNewNotSYN:
		e := ctState(expr.CtStateBitNEW, expr.VerdictDrop)
		return append(e[:len(e)-1],
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 1, Mask: []byte{0x17}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: []byte{0x02}},
			&expr.Verdict{Kind: expr.VerdictDrop})
	case baseND:
		return append(nfproto(IPv6),
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{unix.IPPROTO_ICMPV6}},
			&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{r.icmp}},
			&expr.Verdict{Kind: expr.VerdictAccept})
	}
	name := r.mapName()
	return append(nfproto(r.fam),
		loadAddr(r.fam, r.egress),
		&expr.Lookup{SourceRegister: reg1, DestRegister: regVerdict, IsDestRegSet: true, SetName: name, SetID: setID(name)},
	)
}

// ruleExprs encodes a per-pod or layer chain rule.
func ruleExprs(r Rule, deny Deny, setID func(string) uint32) []expr.Any {
	verdict := &expr.Verdict{Kind: expr.VerdictAccept}
	if r.Egress {
		verdict.Kind = expr.VerdictReturn
	}
	switch r.Kind {
	case RuleAddr, RuleVMapAddr:
		lookup := &expr.Lookup{SourceRegister: reg1, SetName: r.Set, SetID: setID(r.Set)}
		e := append(nfproto(r.Family), loadAddr(r.Family, !r.Egress), lookup)
		if r.Kind == RuleVMapAddr {
			lookup.DestRegister, lookup.IsDestRegSet = regVerdict, true
			return e
		}
		return append(e, verdict)
	case RuleAddrPort, RuleVMapAddrPort, RuleAddrPortGoto:
		proto, port := uint32(reg32v4Proto), uint32(reg32v4Port)
		if r.Family == IPv6 {
			proto, port = reg32v6Proto, reg32v6Port
		}
		lookup := &expr.Lookup{SourceRegister: reg1, SetName: r.Set, SetID: setID(r.Set)}
		e := append(nfproto(r.Family),
			loadAddr(r.Family, !r.Egress),
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: proto},
			&expr.Byteorder{SourceRegister: proto, DestRegister: proto, Op: expr.ByteorderHton, Len: 1, Size: 2},
			&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: port, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			lookup)
		switch r.Kind {
		case RuleVMapAddrPort:
			lookup.DestRegister, lookup.IsDestRegSet = regVerdict, true
			return e
		case RuleAddrPortGoto:
			return append(e, &expr.Verdict{Kind: expr.VerdictGoto, Chain: r.Chain})
		}
		return append(e, verdict)
	case RuleGoto:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictGoto, Chain: r.Chain}}
	case RuleLogJump:
		return []expr.Any{
			&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(r.Rate), Unit: expr.LimitTimeSecond, Burst: r.Burst},
			&expr.Verdict{Kind: expr.VerdictJump, Chain: r.Chain},
		}
	case RuleNFLog:
		return []expr.Any{&expr.Log{Key: 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_GROUP, Group: r.Group, Data: []byte(r.Prefix)}}
	case RuleDrop:
		if deny == DenyAudit {
			return []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}}
		}
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}
	case RuleTCPReset:
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Reject{Type: unix.NFT_REJECT_TCP_RST},
		}
	}
	switch deny {
	case DenyReject:
		return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}}
	case DenyAudit:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}}
	}
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}
}

// batch collects the messages of one netlink transaction.
type batch struct {
	c *nftables.Conn
	t *nftables.Table
	// ids are the IDs of sets created in this batch.
	ids  map[string]uint32
	msgs int
	err  error
}

func newBatch(c *nftables.Conn, t *nftables.Table) *batch {
	return &batch{c: c, t: t, ids: map[string]uint32{}}
}

func (b *batch) setID(name string) uint32 { return b.ids[name] }

func (b *batch) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

func (b *batch) addSet(s *PeerSet) {
	ns := nftSet(b.t, s)
	if err := b.c.AddSet(ns, nil); err != nil {
		b.fail(fmt.Errorf("set %s: %w", s.Name, err))
	}
	b.ids[s.Name] = ns.ID
	b.msgs++
	b.elements(ns, setElements(s, s.Elements), false)
}

func (b *batch) addVMap(vm *VMap) {
	ns := nftVMap(b.t, vm)
	if err := b.c.AddSet(ns, nil); err != nil {
		b.fail(fmt.Errorf("map %s: %w", vm.Name, err))
	}
	b.ids[vm.Name] = ns.ID
	b.msgs++
	b.elements(ns, vmapElements(vm.Elements), false)
}

// elements adds or deletes elements of a set, in chunks.
func (b *batch) elements(ns *nftables.Set, elems []nftables.SetElement, del bool) {
	for _, chunk := range chunks(elems) {
		var err error
		if del {
			err = b.c.SetDeleteElements(ns, chunk)
		} else {
			err = b.c.SetAddElements(ns, chunk)
		}
		if err != nil {
			b.fail(fmt.Errorf("elements of %s: %w", ns.Name, err))
		}
		b.msgs++
	}
}

// existing names a set that already exists in the kernel.
func (b *batch) existing(name string) *nftables.Set {
	return &nftables.Set{Table: b.t, Name: name, ID: b.ids[name]}
}

func (b *batch) chain(name string) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: b.t}
}

// addChain creates a chain with its rules.
func (b *batch) addChain(c *Chain, deny Deny) {
	b.createChain(c)
	b.addRules(b.chain(c.Name), c, deny)
}

// createChain creates an empty chain, so that rules and map elements can
// go to it before it is filled.
func (b *batch) createChain(c *Chain) {
	b.c.AddChain(b.chain(c.Name))
	b.msgs++
}

func (b *batch) addRules(ch *nftables.Chain, c *Chain, deny Deny) {
	for _, r := range c.Rules {
		b.c.AddRule(&nftables.Rule{Table: b.t, Chain: ch, Exprs: ruleExprs(r, deny, b.setID), UserData: commentData(r.Comment)})
		b.msgs++
	}
}

func (b *batch) addBaseChain(name string) {
	hook := nftables.ChainHookForward
	if name == ChainInput {
		hook = nftables.ChainHookInput
	}
	accept := nftables.ChainPolicyAccept
	ch := b.c.AddChain(&nftables.Chain{
		Name: name, Table: b.t, Type: nftables.ChainTypeFilter,
		Hooknum: hook, Priority: nftables.ChainPriorityFilter, Policy: &accept,
	})
	b.msgs++
	for _, r := range baseRules(name) {
		b.c.AddRule(&nftables.Rule{Table: b.t, Chain: ch, Exprs: baseExprs(r, b.setID), UserData: commentData(r.comment)})
		b.msgs++
	}
}

// fullModel queues the creation of everything in m; the table must be
// queued already. Chains are created empty first, since a tier map's
// elements may go to them; then the sets and tier maps; then the chains'
// rules, which look the sets up and go to other chains.
func (b *batch) fullModel(m *Model) {
	for _, c := range m.Chains {
		b.createChain(c)
	}
	for _, s := range m.Sets {
		b.addSet(s)
	}
	for _, c := range m.Chains {
		b.addRules(b.chain(c.Name), c, m.Deny)
	}
	for _, vm := range m.Maps {
		b.addVMap(vm)
	}
	b.addBaseChain(ChainForward)
	b.addBaseChain(ChainInput)
}
