// Package conntrack revokes conntrack entries of flows the policy no longer
// allows.
//
// netfence's forward chain accepts "ct state established,related" before
// any policy rule, so a connection conntrack already tracks keeps passing
// after a policy change denies it. A Revoker closes that gap: after a sync
// that changed the ruleset, Revoke dumps the conntrack table of the node's
// network namespace and deletes the entries of TCP, UDP and SCTP flows that
// involve a local pod and that the new policy denies. The next packet of
// such a flow finds no entry, so it is evaluated by the policy chains as a
// new flow and dropped (or rejected).
//
// # Which flow an entry stands for
//
// A conntrack entry has an original tuple (as the first packet left its
// sender) and a reply tuple (as replies are expected). netfence's forward
// chain sees a packet after destination NAT (prerouting) and before source
// NAT (postrouting), so the flow the policy judged is the original source
// and source port, and the destination and destination port after DNAT,
// which are the reply tuple's source and source port. Without DNAT these
// are the original tuple's destination and destination port. Flow holds
// that view.
//
// # Limits
//
// Deleting an entry does not stop either end from sending. A packet that
// arrives without an entry is evaluated as a new flow, and when it comes
// from the side policy still lets initiate (typically the server of a
// revoked connection, sending to a client whose ingress is open), the
// entry it creates runs from server to client, and the revoked client's
// packets then pass as its replies. For TCP this takes a segment that is
// not a SYN, which conntrack picks up as established when
// net.netfilter.nf_conntrack_tcp_loose is 1 (the kernel default): a
// retransmission, a delayed acknowledgement or data the server pushes
// after the deletion. A ruleset that drops new TCP flows not starting with
// a SYN ("ct state new tcp flags & (fin|syn|rst|ack) != syn drop") closes
// that path. For UDP nothing tells a reply that was in flight at the
// deletion from a new flow the server may start, so a revoked UDP flow
// whose answer is in flight when Revoke deletes it can survive.
//
// Both gaps close when the Revoker has a Mark (netfence sets
// nft.RevokedMark, which its base chains drop before accepting established
// traffic): the entry then stays, carrying the bit, and every later packet
// of the flow in either direction — the in-flight reply included — meets
// it and is dropped; no entry can start in the other direction. Such an
// entry lives as long as the flow keeps sending (conntrack refreshes it),
// then times out; if the policy allows the flow again first, the next
// Revoke deletes it, so that new packets are judged afresh.
package conntrack

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/nsfd"
)

// Protocol numbers of the flows a Revoker considers.
const (
	protoTCP  = unix.IPPROTO_TCP
	protoUDP  = unix.IPPROTO_UDP
	protoSCTP = unix.IPPROTO_SCTP
)

// DefaultTimeout bounds one Revoke when Revoker.Timeout is zero, whatever
// the context's deadline.
const DefaultTimeout = 60 * time.Second

// Flow is a flow as netfence's forward chain judges it: the original
// direction of a conntrack entry, with the destination after any DNAT.
type Flow struct {
	// Src and Dst are the source and destination addresses. IPv4
	// addresses are never IPv4-mapped IPv6 addresses.
	Src, Dst netip.Addr
	// Protocol is TCP, UDP or SCTP.
	Protocol corev1.Protocol
	// SrcPort and DstPort are the source and destination ports.
	SrcPort, DstPort uint16
}

// String formats the flow as "PROTO SRC:PORT -> DST:PORT".
func (f Flow) String() string {
	return fmt.Sprintf("%s %s -> %s", f.Protocol,
		netip.AddrPortFrom(f.Src, f.SrcPort), netip.AddrPortFrom(f.Dst, f.DstPort))
}

// table is the part of a conntrack netlink connection a Revoker uses.
type table interface {
	Dump(opts *ct.DumpOptions) ([]ct.Flow, error)
	Delete(f ct.Flow) error
	Update(f ct.Flow) error
	Close() error
}

// Revoker deletes conntrack entries of flows that are no longer allowed,
// in one network namespace. Its methods may be called from several
// goroutines; Revoke calls are serialised.
type Revoker struct {
	// Timeout bounds each Revoke (dump and deletions) in addition to the
	// context. Zero means DefaultTimeout.
	Timeout time.Duration
	// Mark, when non-zero, is a conntrack mark bit that the ruleset drops
	// (nft.RevokedMark): Revoke then sets it on the entries of denied
	// flows instead of deleting them, so that every later packet of the
	// flow, in either direction, meets its entry and is dropped — a reply
	// in flight cannot re-create the flow the other way round, which a
	// deletion allows (see Limits). Entries carrying the bit whose flow is
	// allowed again are deleted, so that their next packets are judged
	// afresh.
	Mark uint32

	mu   sync.Mutex
	nsFD int
	// dial opens a connection to the conntrack table; tests replace it.
	dial func() (table, error)
}

// NewRevoker returns a revoker for the network namespace netnsFD refers
// to; the revoker keeps its own duplicate of the descriptor. With netnsFD
// 0 it binds to the network namespace of the calling OS thread at the time
// of the call (so it can be created inside testbed's InNode, as
// nft.NewApplier can).
func NewRevoker(netnsFD int) (*Revoker, error) {
	fd, err := nsfd.Open(netnsFD)
	if err != nil {
		return nil, fmt.Errorf("conntrack: open network namespace: %w", err)
	}
	r := &Revoker{Timeout: DefaultTimeout, nsFD: fd}
	r.dial = r.dialNetlink
	return r, nil
}

// dialNetlink opens a ctnetlink socket in the revoker's namespace. The
// socket is created by a thread that enters the namespace and comes back
// (mdlayher/socket's NetNS), except when it is the process's own
// (nsfd.ForDial: entering it would take CAP_SYS_ADMIN, which the
// DaemonSet does not grant). Caller holds r.mu.
func (r *Revoker) dialNetlink() (table, error) {
	c, err := ct.Dial(&netlink.Config{NetNS: nsfd.ForDial(r.nsFD)})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Close releases the revoker's network namespace descriptor. It leaves
// the conntrack table alone.
func (r *Revoker) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := nsfd.Release(&r.nsFD); err != nil {
		return fmt.Errorf("conntrack: close network namespace: %w", err)
	}
	return nil
}

// Revoke dumps the conntrack table (IPv4 and IPv6) and deletes every TCP,
// UDP or SCTP entry whose flow (see Flow) has a local address as source or
// destination and is not allowed. It returns the flows deleted. Entries of
// other protocols (ICMP, ...) are left alone, and so are entries that
// vanish before their deletion (not an error). Local and allowed are
// called from the calling goroutine, allowed only for flows involving a
// local address.
//
// On error (cancellation included) Revoke returns the flows deleted so far
// with the error; the table then holds a subset of what it held before, so
// a later Revoke can finish the job.
func (r *Revoker) Revoke(ctx context.Context, local func(netip.Addr) bool, allowed func(Flow) bool) ([]Flow, error) {
	if local == nil || allowed == nil {
		return nil, errors.New("conntrack: revoke: nil local or allowed function")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.nsFD < 0 {
		return nil, errors.New("conntrack: revoke: revoker is closed")
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("conntrack: revoke: %w", err)
	}

	tbl, err := r.dial()
	if err != nil {
		return nil, fmt.Errorf("conntrack: open ctnetlink socket: %w", err)
	}
	// Closing the socket interrupts a blocked dump or deletion.
	var closeOnce sync.Once
	var closeErr error
	closeTable := func() { closeOnce.Do(func() { closeErr = tbl.Close() }) }
	stop := context.AfterFunc(ctx, closeTable)
	defer func() {
		stop()
		closeTable()
	}()
	// canceled reports the context's error in place of the error of an
	// operation the context interrupted.
	canceled := func(what string, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("conntrack: %s: %w", what, cerr)
		}
		return fmt.Errorf("conntrack: %s: %w", what, err)
	}

	entries, err := tbl.Dump(nil)
	if err != nil {
		return nil, canceled("dump table", err)
	}
	victims := selectRevoked(entries, local, allowed, r.Mark)
	var deleted []Flow
	for _, v := range victims {
		if err := ctx.Err(); err != nil {
			return deleted, fmt.Errorf("conntrack: revoke: %w", err)
		}
		var err error
		switch {
		case v.release, r.Mark == 0:
			err = tbl.Delete(deleteRequest(v.entry))
		default:
			req := deleteRequest(v.entry)
			req.Mark = v.entry.Mark | r.Mark
			err = tbl.Update(req)
		}
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return deleted, canceled("revoke entry "+v.flow.String(), err)
		}
		if !v.release {
			deleted = append(deleted, v.flow)
		}
	}
	stop()
	closeTable()
	if closeErr != nil && ctx.Err() == nil {
		return deleted, fmt.Errorf("conntrack: close ctnetlink socket: %w", closeErr)
	}
	return deleted, nil
}

// victim is an entry to revoke (or, with release, to delete because it
// was revoked and is allowed again) and the flow it stands for.
type victim struct {
	entry   *ct.Flow
	flow    Flow
	release bool
}

// selectRevoked picks the entries to revoke: TCP, UDP or SCTP entries
// whose flow involves a local address and is not allowed (and, with a
// mark, does not carry it yet), and, with a mark, the entries carrying it
// whose flow is allowed again (to release). The cheap tests (protocol,
// then addresses) come first; allowed is called last.
func selectRevoked(entries []ct.Flow, local func(netip.Addr) bool, allowed func(Flow) bool, mark uint32) []victim {
	var out []victim
	for i := range entries {
		f, ok := flowOf(&entries[i])
		if !ok || !(local(f.Src) || local(f.Dst)) {
			continue
		}
		marked := mark != 0 && entries[i].Mark&mark == mark
		switch ok := allowed(f); {
		case !ok && !marked:
			out = append(out, victim{entry: &entries[i], flow: f})
		case ok && marked:
			out = append(out, victim{entry: &entries[i], flow: f, release: true})
		}
	}
	return out
}

// flowOf returns the flow an entry stands for, or false for an entry of
// another protocol or with incomplete tuples.
func flowOf(e *ct.Flow) (Flow, bool) {
	orig, reply := e.TupleOrig, e.TupleReply
	var proto corev1.Protocol
	switch orig.Proto.Protocol {
	case protoTCP:
		proto = corev1.ProtocolTCP
	case protoUDP:
		proto = corev1.ProtocolUDP
	case protoSCTP:
		proto = corev1.ProtocolSCTP
	default:
		return Flow{}, false
	}
	src := orig.IP.SourceAddress.Unmap()
	dst, dport := orig.IP.DestinationAddress.Unmap(), orig.Proto.DestinationPort
	// After DNAT the reply comes from the translated destination.
	if rs := reply.IP.SourceAddress.Unmap(); rs.IsValid() && reply.Proto.Protocol == orig.Proto.Protocol {
		dst, dport = rs, reply.Proto.SourcePort
	}
	if !src.IsValid() || !dst.IsValid() {
		return Flow{}, false
	}
	return Flow{Src: src, Dst: dst, Protocol: proto, SrcPort: orig.Proto.SourcePort, DstPort: dport}, true
}

// deleteRequest is the smallest request that names an entry: its tuples
// and its zone (the kernel looks the entry up by original tuple in the
// zone; ti-mo/conntrack picks the request's address family from both
// tuples, so the reply tuple must be there for IPv6).
func deleteRequest(e *ct.Flow) ct.Flow {
	return ct.Flow{TupleOrig: e.TupleOrig, TupleReply: e.TupleReply, Zone: e.Zone}
}

// isNotFound reports whether a deletion failed because the entry is gone.
func isNotFound(err error) bool {
	return errors.Is(err, unix.ENOENT)
}
