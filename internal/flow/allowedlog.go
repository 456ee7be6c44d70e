package flow

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	nflog "github.com/florianl/go-nflog/v2"
	"github.com/mdlayher/netlink"
)

// Sources of AllowedReader.Via.
const (
	ViaConntrack = "conntrack"
	ViaNFLOG     = "nflog"
)

// The NFLOG alternative to conntrack events: a rule "ct state new log
// group G prefix nf:GEN:a" after the verdict (a packet that reaches it was
// not dropped) sends the first packet of each allowed connection to the
// group; the kernel batches them (queue threshold, flush timeout) and
// copies only the headers, so one read carries many records.
const (
	// AllowedLogSnaplen is the bytes of each packet copied: the network
	// header, a few IPv6 extension headers and the ports.
	AllowedLogSnaplen = 96
	// AllowedLogQThreshold is how many packets the kernel batches in one
	// message to the reader (it flushes sooner after flushTimeout).
	AllowedLogQThreshold = 64
)

// AllowedLogPrefix is the NFLOG prefix of allowed connections of the
// ruleset of generation gen: "nf:GEN:a".
func AllowedLogPrefix(gen uint64) string {
	return "nf:" + strconv.FormatUint(gen, 10) + ":a"
}

func isAllowedLogPrefix(s string) bool {
	s = strings.TrimRight(s, "\x00")
	return strings.HasPrefix(s, "nf:") && strings.HasSuffix(s, ":a")
}

// runNFLOG reads the allowed connections' NFLOG group.
func (ar *AllowedReader) runNFLOG(ctx context.Context) error {
	nf, err := nflog.Open(&nflog.Config{Group: ar.Group, Copymode: nflog.CopyPacket, Bufsize: AllowedLogSnaplen,
		QThresh: AllowedLogQThreshold, NetNS: ar.NetNS, Timeout: flushTimeout})
	if err != nil {
		return fmt.Errorf("allowed flows: nflog group %d: %w", ar.Group, err)
	}
	if err := nf.SetOption(netlink.NoENOBUFS, true); err != nil && ar.Log != nil {
		ar.Log.Debug("allowed flows: NETLINK_NO_ENOBUFS", "error", err)
	}
	now := ar.now()
	hook := func(a nflog.Attribute) int {
		if a.Prefix == nil || a.Payload == nil || !isAllowedLogPrefix(*a.Prefix) {
			return 0
		}
		p, err := Decode(*a.Payload)
		if err != nil {
			ar.lost()
			return 0
		}
		switch p.Proto {
		case 6, 17, 132: // TCP, UDP, SCTP, as packetOf
		default:
			return 0
		}
		p.Src, p.Dst = p.Src.Unmap(), p.Dst.Unmap()
		at := now()
		if a.Timestamp != nil {
			at = *a.Timestamp
		}
		ar.handle(p, at)
		return 0
	}
	if err := nf.RegisterWithErrorFunc(ctx, hook, nflogErrors(ctx, ar.lost, ar.Log, "allowed flows: reading NFLOG")); err != nil {
		nf.Close()
		return fmt.Errorf("allowed flows: nflog group %d: %w", ar.Group, err)
	}
	go func() {
		<-ctx.Done()
		nf.Close()
	}()
	return nil
}
