package nft

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/netfence/netfence/internal/nsfd"
	"github.com/netfence/netfence/internal/policy"
)

// sockBuf is the send and receive buffer size of the netlink socket. A
// transaction must fit in one send, and the kernel acknowledges every
// message of it before we read any acknowledgement.
const sockBuf = 128 << 20

// DefaultTimeout bounds one netlink operation of an Applier.
const DefaultTimeout = 60 * time.Second

// Applier applies models to the nftables of one network namespace over
// netlink. Its methods may be called from several goroutines; operations
// are serialised.
type Applier struct {
	// Timeout bounds each operation (one transaction or one read-back).
	Timeout time.Duration

	mu    sync.Mutex
	nsFD  int
	table *nftables.Table
	// sock is the netlink socket kept from the last operation that
	// succeeded (see conn), or nil.
	sock *socket
}

// socket is an open netlink connection to nf_tables.
type socket struct {
	c  *nftables.Conn
	nl *netlink.Conn
}

// close closes the socket. The kernel may make it wait for an RCU grace
// period (see Applier.conn).
func (s *socket) close() { _ = s.c.CloseLasting() }

// NewApplier returns an applier for the network namespace netnsFD refers
// to; the applier keeps its own duplicate of the descriptor. With netnsFD
// 0 it binds to the network namespace of the calling OS thread at the time
// of the call.
func NewApplier(netnsFD int) (*Applier, error) {
	fd, err := nsfd.Open(netnsFD)
	if err != nil {
		return nil, fmt.Errorf("nft: open network namespace: %w", err)
	}
	return &Applier{Timeout: DefaultTimeout, nsFD: fd, table: inetTable(TableName)}, nil
}

// Close closes the applier's netlink socket and releases its network
// namespace descriptor. It leaves the ruleset in place.
func (a *Applier) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sock != nil {
		a.sock.close()
		a.sock = nil
	}
	if err := nsfd.Release(&a.nsFD); err != nil {
		return fmt.Errorf("nft: close network namespace: %w", err)
	}
	return nil
}

// conn returns the netlink connection for one operation and the function
// that ends the operation, told whether it succeeded. Operations share one
// socket as long as they succeed; a failed or interrupted operation closes
// it, so that it leaves no unread acknowledgements behind, and the next
// opens a fresh one.
//
// Keeping the socket is what keeps deletions off the critical path: when
// a netlink socket closes, nf_tables waits for the objects deleted by
// earlier transactions to be freed, which takes an RCU grace period (7 to
// 19 ms measured on Linux 6.18, whatever was deleted: a set element, a
// rule, a chain or a set). The transaction itself is committed, and in
// force, when its acknowledgement arrives; the kernel frees what it
// deleted in the background as long as nobody closes a socket.
//
// The socket's deadline is the applier's Timeout or ctx's deadline,
// whichever is sooner, and cancelling ctx interrupts the operation (a
// transaction the kernel already received still commits or fails as a
// whole; only the wait for its acknowledgement ends).
func (a *Applier) conn(ctx context.Context) (*nftables.Conn, func(ok bool), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("nft: %w", err)
	}
	if a.nsFD < 0 {
		return nil, nil, errors.New("nft: applier is closed")
	}
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	s := a.sock
	a.sock = nil
	if s != nil {
		if err := s.nl.SetDeadline(deadline); err != nil {
			s.close()
			s = nil
		}
	}
	if s == nil {
		s = &socket{}
		c, err := nftables.New(
			nftables.WithNetNSFd(nsfd.ForDial(a.nsFD)),
			nftables.AsLasting(),
			nftables.WithSockOptions(func(conn *netlink.Conn) error {
				s.nl = conn
				return tuneSocket(conn, deadline)
			}),
		)
		if err != nil {
			return nil, nil, fmt.Errorf("nft: open netlink socket: %w", err)
		}
		s.c = c
	}
	// On cancellation a deadline in the past wakes whatever waits on the
	// socket; ending the operation waits until that is done, and then
	// closes the socket.
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		_ = s.nl.SetDeadline(time.Unix(1, 0))
	})
	return s.c, func(ok bool) {
		if !stop() {
			<-fired
			ok = false
		}
		if ok && a.nsFD >= 0 {
			a.sock = s
			return
		}
		s.close()
	}, nil
}

// ctxErr adds ctx's error to err when ctx ended, so that callers can tell
// a cancelled operation (errors.Is(err, context.Canceled)) from a refused
// one.
func ctxErr(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil || errors.Is(err, ctx.Err()) {
		return err
	}
	return fmt.Errorf("%w (%w)", err, context.Cause(ctx))
}

// tuneSocket enlarges the socket buffers (forcing past the sysctl limits
// where we may) and sets the operation's deadline.
func tuneSocket(nl *netlink.Conn, deadline time.Time) error {
	raw, err := nl.SyscallConn()
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		for _, o := range [][2]int{{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}, {unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}} {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[0], sockBuf) != nil {
				if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[1], sockBuf); err != nil {
					serr = err
				}
			}
		}
	}); err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("netlink socket buffers: %w", serr)
	}
	// Extended acknowledgements make the kernel say which attribute it
	// refused; older kernels lack them, which is fine.
	_ = nl.SetOption(netlink.ExtendedAcknowledge, true)
	return nl.SetDeadline(deadline)
}

// run opens a connection, lets fill queue a batch, and sends it as one
// transaction.
func (a *Applier) run(ctx context.Context, what string, fill func(b *batch)) error {
	c, done, err := a.conn(ctx)
	if err != nil {
		return err
	}
	err = a.flush(ctx, c, what, fill)
	done(err == nil)
	return err
}

// flush queues a batch on c and sends it as one transaction.
func (a *Applier) flush(ctx context.Context, c *nftables.Conn, what string, fill func(b *batch)) error {
	b := newBatch(c, a.table)
	fill(b)
	if b.err != nil {
		return fmt.Errorf("nft: %s: %w", what, b.err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("nft: %s: %w", what, err)
	}
	if err := c.Flush(); err != nil {
		return ctxErr(ctx, fmt.Errorf("nft: %s (transaction of %d messages): %w", what, b.msgs, summarize(err)))
	}
	return nil
}

// summarize shortens the error of a failed transaction: the kernel
// reports every refused message, often with the same error.
func summarize(err error) error {
	var list []error
	var flatten func(e error)
	flatten = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				flatten(x)
			}
			return
		}
		list = append(list, e)
	}
	e := err
	for e != nil {
		if _, ok := e.(interface{ Unwrap() []error }); ok {
			break
		}
		e = errors.Unwrap(e)
	}
	if e == nil {
		return err
	}
	flatten(e)
	if len(list) == 1 {
		return list[0]
	}
	return fmt.Errorf("%d messages refused, the first: %w", len(list), list[0])
}

// FullSync replaces the table with m in one transaction: it creates the
// table if needed, deletes it with everything in it, and creates it anew.
func (a *Applier) FullSync(ctx context.Context, m *Model) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.run(ctx, fmt.Sprintf("full sync of table inet %s (%d chains, %d sets)", TableName, len(m.Chains), len(m.Sets)), func(b *batch) {
		b.c.AddTable(b.t)
		b.c.DelTable(b.t)
		b.c.AddTable(b.t)
		b.msgs += 3
		b.fullModel(m)
	})
}

// Apply applies a delta (see Diff) in one transaction; the live table must
// hold the delta's old model, or the kernel refuses the transaction and
// keeps the table as it was. An empty delta sends nothing. When the live
// table may not hold the old model (after an error, or at start-up), use
// FullSync.
func (a *Applier) Apply(ctx context.Context, d *Delta) error {
	if d.Empty() {
		return ctx.Err()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.run(ctx, "update ("+d.String()+")", d.queue)
}

// Cleanup deletes netfence's table, if there is one.
func (a *Applier) Cleanup(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.run(ctx, "delete table inet "+TableName, func(b *batch) {
		// Adding first makes the deletion succeed when there is no table.
		b.c.AddTable(b.t)
		b.c.DelTable(b.t)
		b.msgs += 2
	})
}

// ProbeTable is the throwaway table CheckKernel creates and deletes.
const ProbeTable = "netfence-probe"

// CheckKernel checks, in a throwaway table, that the kernel accepts every
// nftables feature netfence uses, and returns an error naming the first it
// refuses. It leaves nothing behind.
func (a *Applier) CheckKernel(ctx context.Context) (err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := inetTable(ProbeTable)
	step := func(ctx context.Context, what string, fill func(b *batch)) error {
		c, done, err := a.conn(ctx)
		if err != nil {
			return err
		}
		ok := false
		defer func() { done(ok) }()
		b := newBatch(c, t)
		fill(b)
		if b.err == nil {
			if err := c.Flush(); err != nil {
				if ctx.Err() != nil {
					return ctxErr(ctx, fmt.Errorf("nft: checking %s: %w", what, summarize(err)))
				}
				b.err = summarize(err)
			}
		}
		if b.err != nil {
			return fmt.Errorf("nft: the kernel does not support %s, which netfence needs: %w", what, b.err)
		}
		ok = true
		return nil
	}
	defer func() {
		// The probe table goes even when ctx ended.
		derr := step(context.WithoutCancel(ctx), "deleting tables", func(b *batch) { b.c.AddTable(t); b.c.DelTable(t) })
		if err == nil {
			err = derr
		}
	}()
	var probeSets []*PeerSet
	steps := []struct {
		what string
		fill func(b *batch)
	}{
		{"inet tables", func(b *batch) {
			b.c.AddTable(t)
			b.c.DelTable(t)
			b.c.AddTable(t)
		}},
		{"filter chains on the forward and input hooks with conntrack state matching (nft_ct)", func(b *batch) {
			for _, name := range []string{"probe-forward", "probe-input"} {
				hook := nftables.ChainHookForward
				if name == "probe-input" {
					hook = nftables.ChainHookInput
				}
				accept := nftables.ChainPolicyAccept
				ch := b.c.AddChain(&nftables.Chain{Name: name, Table: t, Type: nftables.ChainTypeFilter,
					Hooknum: hook, Priority: nftables.ChainPriorityFilter, Policy: &accept})
				b.c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED, expr.VerdictAccept)})
			}
		}},
		{"interval sets and concatenated interval sets (nft_set_rbtree, nft_set_pipapo) with element comments", func(b *batch) {
			probeSets = []*PeerSet{
				{Name: "probe-a4", Family: IPv4, Elements: []Element{{Addrs: rangeOf("10.0.0.0", "10.0.0.255"), Comment: "probe"}}},
				{Name: "probe-a6", Family: IPv6, Elements: []Element{{Addrs: rangeOf("fd00::", "fd00::ff")}}},
				{Name: "probe-p4", Family: IPv4, Ports: true, Elements: []Element{{Addrs: rangeOf("10.0.0.1", "10.0.0.9"), Proto: 6, FromPort: 80, ToPort: 90, Comment: "probe"}}},
				{Name: "probe-p6", Family: IPv6, Ports: true, Elements: []Element{{Addrs: rangeOf("fd00::1", "fd00::9"), Proto: 132, FromPort: 80, ToPort: 80}}},
			}
			for _, s := range probeSets {
				b.addSet(s)
			}
		}},
		{"hash sets and concatenated hash sets (nft_set_hash) with element comments", func(b *batch) {
			probeSets = append(probeSets,
				&PeerSet{Name: "probe-e4", Family: IPv4, Exact: true, Elements: []Element{{Addrs: rangeOf("10.0.0.1", "10.0.0.1"), Comment: "probe"}}},
				&PeerSet{Name: "probe-e6", Family: IPv6, Exact: true, Elements: []Element{{Addrs: rangeOf("fd00::1", "fd00::1")}}},
				&PeerSet{Name: "probe-x4", Family: IPv4, Ports: true, Exact: true, Elements: []Element{{Addrs: rangeOf("10.0.0.1", "10.0.0.1"), Proto: 6, FromPort: 80, ToPort: 80, Comment: "probe"}}},
				&PeerSet{Name: "probe-x6", Family: IPv6, Ports: true, Exact: true, Elements: []Element{{Addrs: rangeOf("fd00::1", "fd00::1"), Proto: 132, FromPort: 80, ToPort: 80}}},
			)
			for _, s := range probeSets[len(probeSets)-4:] {
				b.addSet(s)
			}
		}},
		{"set lookups of concatenations (nft_lookup, nft_payload, nft_meta, nft_byteorder) and reject (nft_reject_inet)", func(b *batch) {
			c := &Chain{Name: "probe-pod"}
			for _, s := range probeSets {
				kind := RuleAddr
				if s.Ports {
					kind = RuleAddrPort
				}
				c.Rules = append(c.Rules, Rule{Kind: kind, Family: s.Family, Set: s.Name, Comment: "probe"})
			}
			c.Rules = append(c.Rules, Rule{Kind: RuleTCPReset}, Rule{Kind: RuleDeny})
			b.addChain(c, DenyReject)
		}},
		{"verdict maps jumping to chains", func(b *batch) {
			b.addVMap(&VMap{Name: "probe-map", Family: IPv4, Elements: []VMapElement{{Addr: netip.MustParseAddr("10.0.0.1"), Chain: "probe-pod", Comment: "probe"}}})
			exprs := append(nfproto(IPv4), loadAddr(IPv4, false),
				&expr.Lookup{SourceRegister: reg1, DestRegister: regVerdict, IsDestRegSet: true, SetName: "probe-map", SetID: b.setID("probe-map")})
			b.c.AddRule(&nftables.Rule{Table: t, Chain: b.chain("probe-forward"), Exprs: exprs})
		}},
		{"interval verdict maps and concatenated interval verdict maps with element comments, and lookups and rules going to chains (tiers of cluster policy)", func(b *batch) {
			layer := &Chain{Name: "probe-layer"}
			b.createChain(layer)
			tier := &Chain{Name: "probe-tier"}
			for _, m := range probeTierMaps(layer.Name) {
				b.addSet(m)
				kind := RuleVMapAddr
				if m.Ports {
					kind = RuleVMapAddrPort
				}
				tier.Rules = append(tier.Rules, Rule{Kind: kind, Family: m.Family, Set: m.Name, Egress: true, Comment: "probe"})
			}
			pass := &PeerSet{Name: "probe-tpass4", Family: IPv4, Ports: true, Pass: true, Elements: []Element{
				{Addrs: rangeOf("10.0.0.0", "10.0.0.255"), Proto: 17, FromPort: 53, ToPort: 53, Comment: "probe"}}}
			b.addSet(pass)
			tier.Rules = append([]Rule{{Kind: RuleAddrPortGoto, Family: IPv4, Set: pass.Name, Chain: layer.Name, Egress: true, Comment: "probe"}}, tier.Rules...)
			tier.Rules = append(tier.Rules, Rule{Kind: RuleGoto, Chain: layer.Name, Comment: "probe"})
			b.addChain(tier, DenyDrop)
			b.addRules(b.chain(layer.Name), &Chain{Name: layer.Name, Rules: []Rule{{Kind: RuleDeny}}}, DenyDrop)
			b.addVMap(&VMap{Name: "probe-tier-map", Family: IPv6, Elements: []VMapElement{{Addr: netip.MustParseAddr("fd00::1"), Chain: tier.Name}}})
		}},
	}
	for _, s := range steps {
		if err := step(ctx, s.what, s.fill); err != nil {
			return err
		}
	}
	return nil
}

// probeTierMaps returns the maps CheckKernel creates: both shapes and
// families, with every verdict a tier uses, adjacent intervals of
// different verdicts, and ranges up to the last address.
func probeTierMaps(layer string) []*PeerSet {
	drop, ret, acc := Verdict{Kind: VerdictDrop}, Verdict{Kind: VerdictReturn}, Verdict{Kind: VerdictAccept}
	pass := Verdict{Kind: VerdictGoto, Chain: layer}
	return []*PeerSet{
		{Name: "probe-ta4", Family: IPv4, Map: true, Elements: []Element{
			{Addrs: rangeOf("10.0.0.0", "10.0.0.5"), Verdict: drop, Comment: "probe"},
			{Addrs: rangeOf("10.0.0.6", "10.0.0.255"), Verdict: pass},
			{Addrs: rangeOf("255.0.0.0", "255.255.255.255"), Verdict: ret},
		}},
		{Name: "probe-tp4", Family: IPv4, Map: true, Ports: true, Elements: []Element{
			{Addrs: rangeOf("10.0.0.0", "10.0.0.5"), Proto: 6, FromPort: 80, ToPort: 90, Verdict: acc, Comment: "probe"},
			{Addrs: rangeOf("10.0.0.6", "10.0.0.6"), Proto: 6, FromPort: 80, ToPort: 80, Verdict: pass},
		}},
		{Name: "probe-ta6", Family: IPv6, Map: true, Elements: []Element{{Addrs: rangeOf("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), Verdict: drop}}},
		{Name: "probe-tp6", Family: IPv6, Map: true, Ports: true, Elements: []Element{{Addrs: rangeOf("fd00::1", "fd00::9"), Proto: 132, FromPort: 9000, ToPort: 9001, Verdict: pass, Comment: "probe"}}},
	}
}

func rangeOf(from, to string) policy.AddrRange {
	return policy.AddrRange{From: netip.MustParseAddr(from), To: netip.MustParseAddr(to)}
}

// Counts reads back the live table: rules per chain and elements per set
// or map. ok is false when there is no table.
func (a *Applier) Counts(ctx context.Context) (c Counts, ok bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	conn, done, err := a.conn(ctx)
	if err != nil {
		return c, false, err
	}
	defer func() { done(err == nil) }()
	if _, err := conn.ListTableOfFamily(TableName, nftables.TableFamilyINet); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return c, false, nil
		}
		return c, false, fmt.Errorf("nft: read table inet %s: %w", TableName, err)
	}
	c = Counts{Chains: map[string]int{}, Sets: map[string]int{}}
	chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return c, true, fmt.Errorf("nft: list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name != TableName {
			continue
		}
		rules, err := conn.GetRules(a.table, ch)
		if err != nil {
			return c, true, fmt.Errorf("nft: list rules of chain %s: %w", ch.Name, err)
		}
		c.Chains[ch.Name] = len(rules)
	}
	sets, err := conn.GetSets(a.table)
	if err != nil {
		return c, true, fmt.Errorf("nft: list sets: %w", err)
	}
	for _, s := range sets {
		elems, err := conn.GetSetElements(s)
		if err != nil {
			return c, true, fmt.Errorf("nft: list elements of %s: %w", s.Name, err)
		}
		n := 0
		for _, e := range elems {
			if !e.IntervalEnd || s.Concatenation {
				n++
			}
		}
		c.Sets[s.Name] = n
	}
	return c, true, nil
}
