package flow

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// ctMessage builds a ctnetlink event as the kernel sends it: the nfgenmsg
// header, then the tuples and the other attributes of an entry, numbers
// in network byte order.
type ctMessage struct {
	typ, flags  uint16
	orig, reply ctTuple
	zone        bool
	start       time.Time
	extra       bool // status, timeout, mark, protoinfo, counters, use, id
}

func encodeTuple(ae *netlink.AttributeEncoder, t ctTuple, zone bool) error {
	ae.Nested(ctaTupleIP, func(ae *netlink.AttributeEncoder) error {
		src, dst := uint16(ctaIPv4Src), uint16(ctaIPv4Dst)
		if t.src.Is6() {
			src, dst = ctaIPv6Src, ctaIPv6Dst
		}
		ae.Bytes(src, t.src.AsSlice())
		ae.Bytes(dst, t.dst.AsSlice())
		return nil
	})
	ae.Nested(ctaTupleProto, func(ae *netlink.AttributeEncoder) error {
		ae.Uint8(ctaProtoNum, t.proto)
		if t.proto == unix.IPPROTO_ICMP {
			ae.Uint16(4, 7) // CTA_PROTO_ICMP_ID
			ae.Uint8(5, 8)  // CTA_PROTO_ICMP_TYPE
			ae.Uint8(6, 0)  // CTA_PROTO_ICMP_CODE
			return nil
		}
		ae.Uint16(ctaProtoSrcPort, t.srcPort)
		ae.Uint16(ctaProtoDstPort, t.dstPort)
		return nil
	})
	if zone {
		ae.Uint16(3, 1) // CTA_TUPLE_ZONE
	}
	return nil
}

func (m ctMessage) encode(t *testing.T) netlink.Message {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.Nested(ctaTupleOrig, func(ae *netlink.AttributeEncoder) error { return encodeTuple(ae, m.orig, m.zone) })
	ae.Nested(ctaTupleReply, func(ae *netlink.AttributeEncoder) error { return encodeTuple(ae, m.reply, m.zone) })
	if m.extra {
		ae.Uint32(3, 0x188)                                     // CTA_STATUS
		ae.Uint32(7, 120)                                       // CTA_TIMEOUT
		ae.Uint32(8, 5)                                         // CTA_MARK
		ae.Nested(4, func(ae *netlink.AttributeEncoder) error { // CTA_PROTOINFO
			ae.Nested(1, func(ae *netlink.AttributeEncoder) error { // CTA_PROTOINFO_TCP
				ae.Uint8(1, 1)                 // state
				ae.Uint8(2, 7)                 // wscale orig
				ae.Uint8(3, 7)                 // wscale reply
				ae.Bytes(4, []byte{0x23, 0x0}) // flags orig
				ae.Bytes(5, []byte{0x0, 0x0})  // flags reply
				return nil
			})
			return nil
		})
		ae.Nested(9, func(ae *netlink.AttributeEncoder) error { // CTA_COUNTERS_ORIG
			ae.Uint64(1, 1)
			ae.Uint64(2, 60)
			return nil
		})
		ae.Uint32(11, 1)     // CTA_USE
		ae.Uint32(12, 12345) // CTA_ID
	}
	if !m.start.IsZero() {
		ae.Nested(ctaTimestamp, func(ae *netlink.AttributeEncoder) error {
			ae.Uint64(ctaTimestampStart, uint64(m.start.UnixNano()))
			return nil
		})
	}
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	data := append([]byte{unix.AF_INET, 0, 0, 0}, b...) // nfgenmsg
	return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(m.typ), Flags: netlink.HeaderFlags(m.flags)}, Data: data}
}

// TestParseCTEventAgreesWithConntrack checks that the reader's decoding of
// conntrack events gives what ct.Event.Unmarshal and packetOf give.
func TestParseCTEventAgreesWithConntrack(t *testing.T) {
	a := netip.MustParseAddr
	ctNewType := uint16(nfnlSubsysCT<<8 | ctMsgNew)
	create := uint16(unix.NLM_F_CREATE | unix.NLM_F_EXCL)
	tcp := ctTuple{a("10.244.0.9"), a("10.96.0.10"), unix.IPPROTO_TCP, 41872, 80}
	dnat := ctTuple{a("10.244.0.5"), a("10.244.0.9"), unix.IPPROTO_TCP, 8080, 41872}
	v6 := ctTuple{a("fd00::9"), a("fd00::5"), unix.IPPROTO_UDP, 5353, 53}
	v6r := ctTuple{a("fd00::5"), a("fd00::9"), unix.IPPROTO_UDP, 53, 5353}
	sctp := ctTuple{a("10.0.0.1"), a("10.0.0.2"), unix.IPPROTO_SCTP, 1000, 2000}
	sctpR := ctTuple{a("10.0.0.2"), a("10.0.0.1"), unix.IPPROTO_SCTP, 2000, 1000}
	icmp := ctTuple{src: a("10.0.0.1"), dst: a("10.0.0.2"), proto: unix.IPPROTO_ICMP}
	icmpR := ctTuple{src: a("10.0.0.2"), dst: a("10.0.0.1"), proto: unix.IPPROTO_ICMP}
	start := time.Unix(1800000000, 123456789)
	cases := []ctMessage{
		{typ: ctNewType, flags: create, orig: tcp, reply: dnat},
		{typ: ctNewType, flags: create, orig: tcp, reply: dnat, extra: true, start: start},
		{typ: ctNewType, flags: unix.NLM_F_CREATE, orig: v6, reply: v6r, zone: true},
		{typ: ctNewType, flags: create, orig: sctp, reply: sctpR, extra: true},
		{typ: ctNewType, flags: create, orig: icmp, reply: icmpR},
		{typ: ctNewType, flags: 0, orig: tcp, reply: dnat, extra: true},            // update
		{typ: nfnlSubsysCT<<8 | 2, flags: 0, orig: tcp, reply: dnat, start: start}, // destroy
	}
	for i, c := range cases {
		m := c.encode(t)
		var want ct.Event
		if err := want.Unmarshal(m); err != nil {
			t.Fatalf("case %d: ct: %v", i, err)
		}
		var got ctNew
		if err := parseCTEvent(uint16(m.Header.Type), uint16(m.Header.Flags), m.Data, &got); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if got.isNew != (want.Type == ct.EventNew) {
			t.Errorf("case %d: new %v, ct says %v", i, got.isNew, want.Type)
		}
		if !got.isNew {
			continue
		}
		wp, wok := packetOf(want.Flow)
		gp, gok := got.packet()
		if wp != gp || wok != gok {
			t.Errorf("case %d: packet %+v %v, ct gives %+v %v", i, gp, gok, wp, wok)
		}
		if !got.start.Equal(want.Flow.Timestamp.Start) {
			t.Errorf("case %d: start %v, ct says %v", i, got.start, want.Flow.Timestamp.Start)
		}
		// The same message in a datagram, after another one.
		raw := appendNetlink(appendNetlink(nil, m), m)
		n := 0
		if err := netlinkMessages(raw, func(typ, flags uint16, data []byte) {
			var ev ctNew
			if err := parseCTEvent(typ, flags, data, &ev); err != nil {
				t.Errorf("case %d: in a datagram: %v", i, err)
			}
			if p, _ := ev.packet(); p != gp {
				t.Errorf("case %d: in a datagram: %+v", i, p)
			}
			n++
		}); err != nil || n != 2 {
			t.Errorf("case %d: datagram: %d messages, %v", i, n, err)
		}
	}
	// Not conntrack, or cut short: errors, as ct.Event.Unmarshal gives.
	var ev ctNew
	if err := parseCTEvent(3<<8, create, []byte{2, 0, 0, 0}, &ev); err == nil {
		t.Error("a message of another subsystem was decoded")
	}
	m := cases[0].encode(t)
	if err := parseCTEvent(ctNewType, create, m.Data[:len(m.Data)-3], &ev); err == nil {
		t.Error("a truncated message was decoded")
	}
}

func appendNetlink(b []byte, m netlink.Message) []byte {
	l := unix.SizeofNlMsghdr + len(m.Data)
	b = binary.NativeEndian.AppendUint32(b, uint32(l))
	b = binary.NativeEndian.AppendUint16(b, uint16(m.Header.Type))
	b = binary.NativeEndian.AppendUint16(b, uint16(m.Header.Flags))
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, m.Data...)
	for len(b)%unix.NLMSG_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

func BenchmarkParseCTEvent(b *testing.B) {
	t := &testing.T{}
	m := ctMessage{typ: nfnlSubsysCT<<8 | ctMsgNew, flags: unix.NLM_F_CREATE,
		orig:  ctTuple{netip.MustParseAddr("10.244.0.9"), netip.MustParseAddr("10.244.0.5"), unix.IPPROTO_TCP, 41872, 80},
		reply: ctTuple{netip.MustParseAddr("10.244.0.5"), netip.MustParseAddr("10.244.0.9"), unix.IPPROTO_TCP, 80, 41872}, extra: true}.encode(t)
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		var ev ctNew
		for b.Loop() {
			_ = parseCTEvent(uint16(m.Header.Type), uint16(m.Header.Flags), m.Data, &ev)
		}
	})
	b.Run("ct.Event", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ev ct.Event
			_ = ev.Unmarshal(m)
		}
	})
}

func TestAllowedLogPrefix(t *testing.T) {
	for _, c := range []struct {
		prefix string
		ok     bool
	}{
		{AllowedLogPrefix(42), true},
		{AllowedLogPrefix(42) + "\x00", true},
		{"nf:42:e", false},
		{"nf:42:i", false},
		{"other:a", false},
	} {
		if got := isAllowedLogPrefix(c.prefix); got != c.ok {
			t.Errorf("%q: %v, want %v", c.prefix, got, c.ok)
		}
	}
	if AllowedLogPrefix(42) != "nf:42:a" {
		t.Errorf("prefix %q", AllowedLogPrefix(42))
	}
}
