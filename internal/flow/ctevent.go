package flow

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file reads conntrack NEW events without ct.Event.Unmarshal: a
// profile of the allowed-connection monitor under load (test/bench,
// :monitor) put most of the reader's time in mdlayher/netlink's Receive
// (two recvmsg per event, a MSG_PEEK then the read, and a page-sized
// buffer allocated for each) and in decoding every attribute of the entry
// into a heap-allocated ct.Flow. The reader needs the two tuples and the
// start time only; it walks the attributes in place and receives events
// by batches with recvmmsg into buffers it reuses.

// Netlink and ctnetlink numbers (linux/netfilter/nfnetlink_conntrack.h).
const (
	nlaTypeMask       = 0x3fff // without NLA_F_NESTED and NLA_F_NET_BYTEORDER
	nfnlSubsysCT      = 1      // NFNL_SUBSYS_CTNETLINK
	ctMsgNew          = 0      // IPCTNL_MSG_CT_NEW
	ctaTupleOrig      = 1
	ctaTupleReply     = 2
	ctaTimestamp      = 20
	ctaTimestampStart = 1
	ctaTupleIP        = 1
	ctaTupleProto     = 2
	ctaIPv4Src        = 1
	ctaIPv4Dst        = 2
	ctaIPv6Src        = 3
	ctaIPv6Dst        = 4
	ctaProtoNum       = 1
	ctaProtoSrcPort   = 2
	ctaProtoDstPort   = 3
	nfgenHeaderLen    = 4 // struct nfgenmsg
)

var errBadEvent = errors.New("malformed conntrack event")

// ctTuple is what the reader keeps of a CTA_TUPLE_* attribute.
type ctTuple struct {
	src, dst         netip.Addr
	proto            uint8
	srcPort, dstPort uint16
}

// ctNew is what the reader keeps of a conntrack event.
type ctNew struct {
	isNew       bool
	orig, reply ctTuple
	start       time.Time
}

// attrs walks netlink attributes in b, calling fn with each one's type
// (without flags) and payload; false from fn stops the walk.
func attrs(b []byte, fn func(typ uint16, data []byte) bool) error {
	for len(b) >= unix.SizeofNlAttr {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) & nlaTypeMask
		if l < unix.SizeofNlAttr || l > len(b) {
			return errBadEvent
		}
		if !fn(typ, b[unix.SizeofNlAttr:l]) {
			return nil
		}
		al := (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if al >= len(b) {
			return nil
		}
		b = b[al:]
	}
	return nil
}

func parseCTTuple(b []byte, t *ctTuple) error {
	var err error
	if e := attrs(b, func(typ uint16, data []byte) bool {
		switch typ {
		case ctaTupleIP:
			err = attrs(data, func(typ uint16, data []byte) bool {
				a, ok := netip.AddrFromSlice(data)
				if !ok {
					err = errBadEvent
					return false
				}
				switch typ {
				case ctaIPv4Src, ctaIPv6Src:
					t.src = a
				case ctaIPv4Dst, ctaIPv6Dst:
					t.dst = a
				}
				return true
			})
		case ctaTupleProto:
			err = attrs(data, func(typ uint16, data []byte) bool {
				switch {
				case typ == ctaProtoNum && len(data) >= 1:
					t.proto = data[0]
				case typ == ctaProtoSrcPort && len(data) >= 2:
					t.srcPort = binary.BigEndian.Uint16(data)
				case typ == ctaProtoDstPort && len(data) >= 2:
					t.dstPort = binary.BigEndian.Uint16(data)
				}
				return true
			})
		}
		return err == nil
	}); e != nil {
		return e
	}
	return err
}

// parseCTEvent decodes the header and the attributes the reader needs of
// one netlink message of the conntrack event groups (its header and
// payload). isNew is set as ct.Event does for ct.EventNew: a
// ctnetlink new message with NLM_F_CREATE or NLM_F_EXCL.
func parseCTEvent(typ, flags uint16, data []byte, ev *ctNew) error {
	*ev = ctNew{}
	if typ>>8 != nfnlSubsysCT {
		return errBadEvent
	}
	ev.isNew = typ&0xff == ctMsgNew && flags&(unix.NLM_F_CREATE|unix.NLM_F_EXCL) != 0
	if !ev.isNew {
		return nil
	}
	if len(data) < nfgenHeaderLen {
		return errBadEvent
	}
	var err error
	if e := attrs(data[nfgenHeaderLen:], func(typ uint16, data []byte) bool {
		switch typ {
		case ctaTupleOrig:
			err = parseCTTuple(data, &ev.orig)
		case ctaTupleReply:
			err = parseCTTuple(data, &ev.reply)
		case ctaTimestamp:
			err = attrs(data, func(typ uint16, data []byte) bool {
				if typ == ctaTimestampStart && len(data) >= 8 {
					ev.start = time.Unix(0, int64(binary.BigEndian.Uint64(data)))
				}
				return true
			})
		}
		return err == nil
	}); e != nil {
		return e
	}
	return err
}

// packet is the flow an event stands for, as packetOf reads a ct.Flow.
func (ev *ctNew) packet() (Packet, bool) {
	orig, reply := ev.orig, ev.reply
	switch orig.proto {
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_SCTP:
	default:
		return Packet{}, false
	}
	p := Packet{Src: orig.src.Unmap(), Dst: orig.dst.Unmap(), Proto: orig.proto, SrcPort: orig.srcPort, DstPort: orig.dstPort}
	if rs := reply.src.Unmap(); rs.IsValid() && reply.proto == orig.proto {
		p.Dst, p.DstPort = rs, reply.srcPort
	}
	if !p.Src.IsValid() || !p.Dst.IsValid() {
		return Packet{}, false
	}
	return p, true
}

// Batches of recvmmsg: how many datagrams (one event each) and how large
// each may be (a NEW event is a few hundred bytes). Once the socket is
// drained the reader waits ctBatchWait before it reads again, so that it
// is woken once per batch rather than once per connection: at 40,000 new
// connections/s that is 200 events (about 250 KB of socket buffer), well
// within the 4 MiB receive buffer (forceReadBuffer), and within the
// 416 KiB a default net.core.rmem_max allows. Records of an event without
// a conntrack timestamp are stamped up to that late.
const (
	ctBatch     = 64
	ctMsgSize   = 2048
	ctBatchWait = 5 * time.Millisecond
)

// forceReadBuffer sets the socket's receive buffer to n bytes whatever
// net.core.rmem_max says (SO_RCVBUFFORCE: needs CAP_NET_ADMIN, which the
// agent has).
func forceReadBuffer(c interface {
	SyscallConn() (syscall.RawConn, error)
}, n int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
	}); err != nil {
		return err
	}
	return serr
}

// mmsgReader receives datagrams by batches into buffers it reuses.
type mmsgReader struct {
	bufs  []byte
	iovs  [ctBatch]unix.Iovec
	hdrs  [ctBatch]unix.Mmsghdr
	sizes [ctBatch]int
	trunc [ctBatch]bool
}

func newMmsgReader() *mmsgReader {
	r := &mmsgReader{bufs: make([]byte, ctBatch*ctMsgSize)}
	for i := range ctBatch {
		r.iovs[i].Base = &r.bufs[i*ctMsgSize]
		r.iovs[i].SetLen(ctMsgSize)
		r.hdrs[i].Hdr.Iov = &r.iovs[i]
		r.hdrs[i].Hdr.SetIovlen(1)
	}
	return r
}

// recv receives up to ctBatch datagrams from rc, waiting for the first;
// it returns how many. datagram(i) is the i-th.
func (r *mmsgReader) recv(rc syscall.RawConn) (int, error) {
	var n int
	var serr error
	err := rc.Read(func(fd uintptr) bool {
		for i := range ctBatch {
			r.hdrs[i].Len = 0
			r.hdrs[i].Hdr.Flags = 0
		}
		m, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), ctBatch, unix.MSG_DONTWAIT, 0, 0)
		if errno == unix.EAGAIN || errno == unix.EINTR {
			return false
		}
		if errno != 0 {
			serr = errno
			return true
		}
		n = int(m)
		return true
	})
	if err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	for i := range n {
		r.sizes[i] = int(r.hdrs[i].Len)
		r.trunc[i] = r.hdrs[i].Hdr.Flags&unix.MSG_TRUNC != 0
	}
	return n, nil
}

// datagram returns the i-th datagram of the last recv, and whether it was
// cut short.
func (r *mmsgReader) datagram(i int) ([]byte, bool) {
	return r.bufs[i*ctMsgSize : i*ctMsgSize+min(r.sizes[i], ctMsgSize)], r.trunc[i]
}

// netlinkMessages calls fn with each netlink message of a datagram (its
// type, flags and payload).
func netlinkMessages(b []byte, fn func(typ, flags uint16, data []byte)) error {
	for len(b) >= unix.SizeofNlMsghdr {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return errBadEvent
		}
		fn(binary.NativeEndian.Uint16(b[4:6]), binary.NativeEndian.Uint16(b[6:8]), b[unix.SizeofNlMsghdr:l])
		al := (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if al >= len(b) {
			return nil
		}
		b = b[al:]
	}
	return nil
}
