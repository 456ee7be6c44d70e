package flow

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"time"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"

	"github.com/netfence/netfence/internal/nsfd"
	"github.com/netfence/netfence/internal/policy"
)

// Latest returns the set of the newest generation kept, or nil before any
// ruleset was applied.
func (g *Generations) Latest() *policy.Set {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.gens) == 0 {
		return nil
	}
	return g.sets[g.gens[len(g.gens)-1]]
}

// AllowedReader reports the connections the dataplane allows, once per
// connection: conntrack confirms an entry (and announces it to the
// NFNLGRP_CONNTRACK_NEW multicast group) only when its first packet got
// through every netfilter hook, so a NEW event is a flow the ruleset
// accepted. Each event of a TCP, UDP or SCTP flow from or to a local pod
// is explained with the newest applied generation's policy.Set and
// published as an Allowed record.
//
// Event delivery is lossy: when the socket's buffer overflows the kernel
// drops events and reports ENOBUFS, which counts one in Metrics.Lost (at
// least one event was lost). Reading never blocks the kernel.
type AllowedReader struct {
	// With Source.Audit, connections the ruleset would deny are reported
	// by the Reader, from their logged first packet, and skipped here.
	Source
	// Via is where new connections are read from: ViaConntrack (the
	// default: conntrack NEW events) or ViaNFLOG (the NFLOG group Group,
	// fed by a rule logging the first packet of each allowed connection
	// with a prefix AllowedLogPrefix; see allowedlog.go).
	Via   string
	Group uint16

	cache ExplainCache
}

// allowedReadBuffer is the receive buffer asked for the event socket.
const allowedReadBuffer = 4 << 20

// Run joins the conntrack NEW group in the namespace. It returns once the
// socket is bound (or fails to); reading goes on in the background until
// ctx is done.
func (ar *AllowedReader) Run(ctx context.Context) error {
	switch ar.Via {
	case "", ViaConntrack:
	case ViaNFLOG:
		return ar.runNFLOG(ctx)
	default:
		return fmt.Errorf("allowed flows: unknown source %q (want %s or %s)", ar.Via, ViaConntrack, ViaNFLOG)
	}
	fd, err := nsfd.Open(ar.NetNS)
	if err != nil {
		return fmt.Errorf("conntrack events: %w", err)
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: nsfd.ForDial(fd)})
	_ = nsfd.Release(&fd) // the socket is open in the namespace, or failed
	if err != nil {
		return fmt.Errorf("conntrack events: %w", err)
	}
	if err := c.JoinGroup(unix.NFNLGRP_CONNTRACK_NEW); err != nil {
		c.Close()
		return fmt.Errorf("conntrack events: join NEW group: %w", err)
	}
	if err := forceReadBuffer(c, allowedReadBuffer); err != nil {
		// Without CAP_NET_ADMIN: as much as net.core.rmem_max allows.
		if err := c.SetReadBuffer(allowedReadBuffer); err != nil && ar.Log != nil {
			ar.Log.Debug("allowed flows: receive buffer", "error", err)
		}
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		c.Close()
	}()
	go func() {
		defer close(done)
		ar.read(ctx, c)
	}()
	return nil
}

func (ar *AllowedReader) read(ctx context.Context, c *netlink.Conn) {
	now := ar.now()
	rc, err := c.SyscallConn()
	if err != nil {
		if ar.Log != nil {
			ar.Log.Warn("allowed flows: conntrack event socket", "error", err)
		}
		return
	}
	mr := newMmsgReader()
	wait := time.NewTimer(ctBatchWait)
	defer wait.Stop()
	var ev ctNew
	onMessage := func(typ, flags uint16, data []byte) {
		if err := parseCTEvent(typ, flags, data, &ev); err != nil {
			ar.lost()
			return
		}
		if !ev.isNew {
			return
		}
		p, ok := ev.packet()
		if !ok {
			return
		}
		at := ev.start
		if at.IsZero() {
			at = now()
		}
		ar.handle(p, at)
	}
	for ctx.Err() == nil {
		n, err := mr.recv(rc)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, unix.ENOBUFS) {
				ar.lost()
				continue
			}
			if errors.Is(err, unix.EBADF) || errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed) {
				return
			}
			ar.lost()
			if ar.Log != nil {
				ar.Log.Warn("allowed flows: reading conntrack events", "error", err)
			}
			select { // no busy loop on a lasting error
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		for i := range n {
			b, trunc := mr.datagram(i)
			if trunc {
				ar.lost()
				continue
			}
			if err := netlinkMessages(b, onMessage); err != nil {
				ar.lost()
			}
		}
		if n == ctBatch {
			// More to read: let the subscribers take this batch first,
			// so that a backlog does not overflow their buffers.
			runtime.Gosched()
		} else {
			// The socket is drained: let events gather in its buffer
			// rather than be woken for each (see ctBatchWait).
			wait.Reset(ctBatchWait)
			select {
			case <-ctx.Done():
				return
			case <-wait.C:
			}
		}
	}
}

// Handle explains one new conntrack entry and publishes it; it reports
// false when the entry is not a TCP, UDP or SCTP flow involving a local
// pod, or no ruleset was applied yet.
func (ar *AllowedReader) Handle(f *ct.Flow, at time.Time) bool {
	p, ok := packetOf(f)
	if !ok {
		return false
	}
	return ar.handle(p, at)
}

// handle is Handle for the flow of an entry.
func (ar *AllowedReader) handle(p Packet, at time.Time) bool {
	set := ar.Gens.Latest()
	if set == nil {
		return false
	}
	if !ar.local(set.Cluster, p.Src) && !ar.local(set.Cluster, p.Dst) {
		return false
	}
	r := ar.cache.Explain(set, ar.Node, at, p, false, 0)
	if ar.Audit && r.Egress.Reason != "" && !(r.Egress.Allowed && r.Ingress.Allowed) {
		// Explained (the sides are set) and denied: the ruleset audited
		// its first packet, and the Reader reports it.
		return false
	}
	ar.Hub.Publish(r)
	return true
}

// packetOf is the flow a conntrack entry stands for as the forward chain
// judged it: the original source and source port, the destination and
// destination port after any DNAT (the reply tuple's source), as
// internal/conntrack reads entries.
func packetOf(f *ct.Flow) (Packet, bool) {
	orig, reply := f.TupleOrig, f.TupleReply
	switch orig.Proto.Protocol {
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_SCTP:
	default:
		return Packet{}, false
	}
	p := Packet{Src: orig.IP.SourceAddress.Unmap(), Dst: orig.IP.DestinationAddress.Unmap(),
		Proto: orig.Proto.Protocol, SrcPort: orig.Proto.SourcePort, DstPort: orig.Proto.DestinationPort}
	if rs := reply.IP.SourceAddress.Unmap(); rs.IsValid() && reply.Proto.Protocol == orig.Proto.Protocol {
		p.Dst, p.DstPort = rs, reply.Proto.SourcePort
	}
	if !p.Src.IsValid() || !p.Dst.IsValid() {
		return Packet{}, false
	}
	return p, true
}
