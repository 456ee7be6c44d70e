package validation

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	netutils "k8s.io/utils/net"
)

// strictIPCIDRValidation is the state of kube-apiserver's
// StrictIPCIDRValidation feature gate that netfence follows: off, its
// default through v1.35. With it off the API server admits legacy CIDR
// forms in ipBlock.cidr and ipBlock.except (leading zeros, IPv4-mapped IPv6
// addresses, bits set beyond the prefix length), so netfence must accept
// and enforce them too: refusing a policy the API server admitted drops it
// and opens the pods it isolates.
const strictIPCIDRValidation = false

// ParseCIDR parses an ipBlock cidr or except value. It accepts exactly what
// kube-apiserver accepts with StrictIPCIDRValidation off (see ipBlock) and
// returns the prefix that matches the same addresses as the net.IPNet that
// k8s.io/utils/net.ParseCIDRSloppy returns, read with net.IPNet.Contains:
// the reading of NetworkPolicy implementations (kube-network-policies,
// Calico, Antrea), so that policy.Compile, the analyzer and the nftables
// renderer read every value the same way. In detail:
//
//   - Bits beyond the prefix length are masked off: "10.1.2.3/8" is
//     10.0.0.0/8.
//   - Leading zeros are decimal, not octal: "010.1.0.0/016" is 10.1.0.0/16
//     (also in IPv6 groups: "0fd00::/016" is fd00::/16).
//   - An IPv4-mapped IPv6 prefix "::ffff:a.b.c.d/N" with N >= 96 is the IPv4
//     prefix a.b.c.d/(N-96): it matches those IPv4 addresses and no IPv6
//     address. "::ffff:0.0.0.0/96" is 0.0.0.0/0.
//   - An IPv4-mapped IPv6 address with N < 96 gives an IPv6 prefix: masking
//     clears at least part of the ffff, so the network is not IPv4-mapped
//     and net.IPNet.Contains matches only IPv6 addresses in it:
//     "::ffff:10.0.0.0/64" is ::/64 and "::ffff:10.0.0.0/88" is
//     ::ff00:0:0/88. It matches no IPv4 address, even where the IPv6 range
//     covers ::ffff:0:0/96.
//
// The equivalence holds for addresses compared unmapped, as net.IP does (an
// IPv4-mapped IPv6 address is the IPv4 address; policy.IPBlock.Contains
// unmaps too): prefix.Contains(a.Unmap()) == ipnet.Contains(a.AsSlice()).
func ParseCIDR(s string) (netip.Prefix, error) {
	_, ipnet, err := netutils.ParseCIDRSloppy(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q: must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)", s)
	}
	return prefixOf(ipnet), nil
}

// prefixOf returns the netip.Prefix that contains exactly the addresses n
// contains per net.IPNet.Contains. It mirrors net's networkNumberAndMask: a
// network number that is an IPv4 address (4 bytes, or IPv4-mapped in 16)
// is compared as 4 bytes against the last 4 bytes of a 16-byte mask.
func prefixOf(n *net.IPNet) netip.Prefix {
	mask := n.Mask
	if ip4 := n.IP.To4(); ip4 != nil {
		if len(mask) == net.IPv6len {
			mask = mask[12:]
		}
		ones, _ := mask.Size()
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(ip4)), ones).Masked()
	}
	ones, _ := mask.Size()
	return netip.PrefixFrom(netip.AddrFrom16([16]byte(n.IP.To16())), ones).Masked()
}

// ipBlock mirrors ValidateIPBlock of kube-apiserver v1.35
// (pkg/apis/networking/validation) with StrictIPCIDRValidation off: each
// value must parse with netutils.ParseCIDRSloppy, and each except must be a
// "strict subset" of cidr as the API server tests it on the sloppy
// net.IPNets: cidr contains the except's network address and the except's
// mask is longer. The mask lengths are compared as written, so mixed forms
// follow the API server, not the addresses matched: cidr 10.0.0.0/8 with
// except "::ffff:10.1.0.0/112" (10.1.0.0/16) is admitted, cidr
// "::ffff:10.0.0.0/104" (10.0.0.0/8) with except 10.1.0.0/16 is refused
// (104 >= 16), and cidr 10.0.0.0/8 with except "::ffff:10.0.0.0/104" is
// admitted although the except covers the whole cidr (the block matches
// nothing). Families mix only through IPv4-mapped forms: an IPv4 except in
// an IPv6 cidr, or the reverse, is refused.
func ipBlock(b *networkingv1.IPBlock, path *field.Path) field.ErrorList {
	if b.CIDR == "" {
		return field.ErrorList{field.Required(path.Child("cidr"), "")}
	}
	errs := utilvalidation.IsValidCIDRForLegacyField(path.Child("cidr"), b.CIDR, strictIPCIDRValidation, nil)
	_, cidr, err := netutils.ParseCIDRSloppy(b.CIDR)
	if err != nil {
		return errs
	}
	cidrLen, _ := cidr.Mask.Size()
	for i, e := range b.Except {
		ep := path.Child("except").Index(i)
		errs = append(errs, utilvalidation.IsValidCIDRForLegacyField(ep, e, strictIPCIDRValidation, nil)...)
		_, ex, err := netutils.ParseCIDRSloppy(e)
		if err != nil {
			continue
		}
		exLen, _ := ex.Mask.Size()
		if !cidr.Contains(ex.IP) || cidrLen >= exLen {
			errs = append(errs, field.Invalid(ep, e, "must be a strict subset of `cidr`"))
		}
	}
	return errs
}

// Warnings lists, for a valid NetworkPolicy, the ipBlock values written in
// a legacy form the API server admits but whose reading may surprise: each
// names the field, the value, the prefix netfence enforces (see ParseCIDR)
// and why, e.g.
//
//	spec.ingress[0].from[0].ipBlock.cidr: "010.1.0.0/16" is read as 10.1.0.0/16 (leading zeros, read as decimal)
//
// It returns nil when there is nothing to say. Values that do not parse are
// skipped: NetworkPolicy reports them.
func Warnings(np *networkingv1.NetworkPolicy) []string {
	var out []string
	check := func(peers []networkingv1.NetworkPolicyPeer, path *field.Path) {
		for j, peer := range peers {
			if peer.IPBlock == nil {
				continue
			}
			bp := path.Index(j).Child("ipBlock")
			if w := cidrWarning(peer.IPBlock.CIDR); w != "" {
				out = append(out, fmt.Sprintf("%s: %s", bp.Child("cidr"), w))
			}
			for k, e := range peer.IPBlock.Except {
				if w := cidrWarning(e); w != "" {
					out = append(out, fmt.Sprintf("%s: %s", bp.Child("except").Index(k), w))
				}
			}
		}
	}
	spec := field.NewPath("spec")
	for i, r := range np.Spec.Ingress {
		check(r.From, spec.Child("ingress").Index(i).Child("from"))
	}
	for i, r := range np.Spec.Egress {
		check(r.To, spec.Child("egress").Index(i).Child("to"))
	}
	return out
}

// cidrWarning returns why a CIDR value's reading may surprise, or "" when it
// is in standard form (or does not parse).
func cidrWarning(s string) string {
	ip, ipnet, err := netutils.ParseCIDRSloppy(s)
	if err != nil {
		return ""
	}
	var why []string
	// As the API server's own check: what ParseCIDRSloppy accepts and
	// netip.ParsePrefix refuses has leading zeros (in an IPv4 octet, an IPv6
	// group or the prefix length).
	if _, err := netip.ParsePrefix(s); err != nil {
		why = append(why, "leading zeros, read as decimal")
	}
	ones, _ := ipnet.Mask.Size()
	mapped := len(ipnet.Mask) == net.IPv6len && ip.To4() != nil
	switch {
	case mapped && ones >= 96:
		why = append(why, "IPv4-mapped IPv6 address: matches IPv4 addresses")
	case mapped:
		// The host bits are then the mapping itself: said once.
		why = append(why, "IPv4-mapped IPv6 address with a prefix length below 96: matches IPv6 addresses only")
	}
	if !ip.Equal(ipnet.IP) && (!mapped || ones >= 96) {
		why = append(why, "bits set beyond the prefix length are ignored")
	}
	if len(why) == 0 {
		return ""
	}
	return fmt.Sprintf("%q is read as %s (%s)", s, prefixOf(ipnet), strings.Join(why, "; "))
}
