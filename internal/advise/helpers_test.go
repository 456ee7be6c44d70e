package advise_test

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
)

func mustAddr(s string) netip.Addr            { return netip.MustParseAddr(s) }
func corev1Protocol(s string) corev1.Protocol { return corev1.Protocol(s) }
