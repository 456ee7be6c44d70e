package testbed

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// ipProtoSCTP is SCTP's IP protocol number.
const ipProtoSCTP = 132

// sctpInitLen is the length of an SCTP packet holding one INIT chunk with no
// parameters: 12 bytes of common header and a 20-byte chunk.
const sctpInitLen = 32

// sctpInit builds an SCTP packet holding a single INIT chunk (RFC 9260
// 3.3.2): verification tag 0, as an INIT requires, and the given initiate
// tag, which identifies the probe. The CRC32c checksum covers the whole
// packet with the checksum field zero, and is stored least significant byte
// first, as Linux's sctp_compute_cksum does.
func sctpInit(srcPort, dstPort uint16, initiateTag uint32) []byte {
	p := make([]byte, sctpInitLen)
	be := binary.BigEndian
	be.PutUint16(p[0:], srcPort)
	be.PutUint16(p[2:], dstPort)
	be.PutUint32(p[4:], 0) // verification tag: 0 in an INIT
	// p[8:12], the checksum, is filled last.
	p[12] = 1 // chunk type INIT
	p[13] = 0 // flags
	be.PutUint16(p[14:], 20)
	be.PutUint32(p[16:], initiateTag)
	be.PutUint32(p[20:], 65536) // advertised receiver window credit
	be.PutUint16(p[24:], 1)     // outbound streams
	be.PutUint16(p[26:], 1)     // inbound streams
	be.PutUint32(p[28:], initiateTag)
	binary.LittleEndian.PutUint32(p[8:], sctpChecksum(p))
	return p
}

// sctpChecksum is the CRC32c of an SCTP packet whose checksum field is zero.
func sctpChecksum(p []byte) uint32 {
	return crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli))
}

// isSCTPInit reports whether p is an SCTP packet with ports src and dst
// whose first chunk is an INIT with the given initiate tag.
func isSCTPInit(p []byte, src, dst uint16, initiateTag uint32) bool {
	be := binary.BigEndian
	return len(p) >= sctpInitLen &&
		be.Uint16(p[0:]) == src && be.Uint16(p[2:]) == dst &&
		be.Uint32(p[4:]) == 0 &&
		p[12] == 1 && be.Uint32(p[16:]) == initiateTag
}

// probeSCTP sends INIT chunks over a raw socket from the source pod and
// watches for them with a raw socket in the destination pod.
func (b *Bed) probeSCTP(ctx context.Context, src, dst *podState, local, to netip.Addr, port int32) (Outcome, string, error) {
	network := fmt.Sprintf("ip%d:%d", family(to), ipProtoSCTP)
	var rx, tx *net.IPConn
	var rxErr, txErr error
	err := inNetNS(dst.ns, func() error {
		rx, rxErr = net.ListenIP(network, &net.IPAddr{IP: to.AsSlice()})
		return nil
	})
	if err != nil {
		return "", "", fmt.Errorf("destination namespace %s: %w", dst.nsName, err)
	}
	if rxErr != nil {
		return "", "", fmt.Errorf("open raw SCTP socket in destination: %w", rxErr)
	}
	defer rx.Close()
	err = inNetNS(src.ns, func() error {
		tx, txErr = net.DialIP(network, &net.IPAddr{IP: local.AsSlice()}, &net.IPAddr{IP: to.AsSlice()})
		return nil
	})
	if err != nil {
		return "", "", fmt.Errorf("source namespace %s: %w", src.nsName, err)
	}
	if txErr != nil {
		return "", "", fmt.Errorf("open raw SCTP socket in source: %w", txErr)
	}
	defer tx.Close()

	srcPort := uint16(32768 + rand.IntN(28232))
	tag := rand.Uint32()
	for tag == 0 {
		tag = rand.Uint32()
	}
	pkt := sctpInit(srcPort, uint16(port), tag)
	deadline, _ := ctx.Deadline()
	iv := resendInterval(ctx)
	buf := make([]byte, 2048)
	for sends := 0; sends < maxSends && time.Now().Before(deadline); sends++ {
		if _, err := tx.Write(pkt); err != nil {
			o, d := classify(err)
			return o, d, nil
		}
		_ = rx.SetReadDeadline(earliest(time.Now().Add(iv), deadline))
		for reads := 0; reads < 256; reads++ {
			// ReadFrom strips the IPv4 header; IPv6 raw sockets never
			// deliver it.
			n, from, err := rx.ReadFrom(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				return OutcomeFailed, "raw SCTP receive: " + err.Error(), nil
			}
			fromIP, ok := netip.AddrFromSlice(from.(*net.IPAddr).IP)
			if !ok || fromIP.Unmap() != local || !isSCTPInit(buf[:n], srcPort, uint16(port), tag) {
				continue
			}
			if !dst.serves[Port{Protocol: corev1.ProtocolSCTP, Port: port}] {
				return OutcomeRefused, fmt.Sprintf("INIT arrived, but %s serves no SCTP port %d", dst.key, port), nil
			}
			return OutcomeReached, "INIT arrived at " + dst.key, nil
		}
	}
	return OutcomeTimeout, "INIT did not arrive before the timeout", nil
}
