// Package nft is netfence's nftables dataplane: it renders the compiled
// policies of a cluster (policy.Set) into an nftables ruleset for the pods of
// one node (Render, a pure and deterministic Model; a Renderer renders
// successive snapshots, resolving again only what changed), prints that
// ruleset as an `nft -f` script (Model.Text), and applies it to a network
// namespace over netlink (Applier), either whole (FullSync) or as the
// difference between two models (Apply of a Delta made by Diff). Fake is
// an in-memory stand-in for the Applier that applies the same
// transactions to a Model and refuses what the kernel would refuse, so
// that the agent and Diff are tested without root.
//
// # Ruleset
//
// Everything lives in one table, inet netfence:
//
//   - base chain forward (hook forward, priority filter, policy accept):
//     established and related traffic is accepted, invalid traffic dropped,
//     then the source address is looked up in the verdict maps egress4 and
//     egress6 and the destination address in ingress4 and ingress6;
//   - base chain input (hook input): the same without the ingress maps, so
//     that a pod's egress policy (cluster-scoped tiers included) also
//     governs traffic to the node itself and to host-network pods.
//     Traffic the node originates (kubelet probes, host-network pods)
//     crosses neither hook;
//   - the verdict maps map the address of each local pod that some policy
//     decides for in that direction to a jump to the pod's chain for that
//     direction;
//   - a pod's chain (in-HASH or out-HASH) accepts (ingress) or returns
//     (egress, so that the destination's ingress check follows) when the
//     peer address is in one of the pod's address sets (allowed on every
//     protocol and port), or when peer address . protocol . destination
//     port is in one of its ports sets; anything else meets the final
//     verdict (drop, or reject). Single peer addresses (with a single
//     port) are in hash sets, looked up first: x4-HASH (address .
//     protocol . port) and e4-HASH (address); ranges are in interval
//     sets: a4-HASH (address ranges) and p4-HASH (concatenated address
//     range . protocol . port range); x6, e6, a6 and p6 for IPv6;
//   - pods whose allowances are alike (same direction, isolating policies
//     and, for ingress, named port numbers: typically the pods of one
//     workload) share their sets; each element is stored once per
//     workload, not once per pod.
//
// # Tiers of cluster-scoped policy
//
// Cluster-scoped policy (ClusterNetworkPolicy, AdminNetworkPolicy,
// BaselineAdminNetworkPolicy) decides in ordered tiers around
// NetworkPolicy, per direction: the Admin tier, then NetworkPolicy, then
// (for a pod NetworkPolicy does not isolate in that direction) the
// Baseline tier, then the default, allow. A tier's decision for a pod is
// its policies flattened into disjoint rectangles with actions
// (policy.Normalizer.NormalizeTier), rendered as two interval verdict
// maps per family, looked up in this order: ap4-HASH (address range .
// protocol . port range, for the rules with protocols) and aa4-HASH
// (address ranges, every protocol); bp4-HASH and ba4-HASH for the
// Baseline tier; 6 for IPv6. An element's verdict is its action's: Deny
// drops (whatever Options.Deny says, which is NetworkPolicy's final
// verdict); Accept returns (egress: the destination's ingress check
// follows) or accepts (ingress); Pass in the Baseline tier allows, as the
// default does. Only what changes the outcome is rendered: no address
// element that passes (Admin) or allows (Baseline), which is what no
// match does, and no ports element whose outcome the address map gives
// anyway.
//
// A pod with Admin tier policies has its chain look up the Admin tier
// and then go to the next layer: a chain outn-HASH (inn- for ingress)
// holding the NetworkPolicy rules of its isolating policies (the same
// rules a pod chain holds when no Admin policy selects the pod), or, for
// a pod NetworkPolicy does not isolate, a chain outb-HASH (inb-) looking
// up the Baseline maps; or, with neither, nothing (allowed). The Admin
// tier's Pass elements with protocols are in a set of their own,
// app4-HASH, looked up first by a rule going to the same next layer (or
// allowing, when there is none), so that they shadow the address map;
// then come the ports map and the address map. That keeps the maps
// independent of the next layer: pods selected by the same cluster
// policies share the Admin maps whatever their NetworkPolicies. Without
// Admin tier policies, a pod's chain holds its NetworkPolicy rules, or
// else looks up the Baseline maps itself. Maps, Pass sets and layer
// chains are shared like sets: by the combination of direction, tier,
// the selecting cluster policies (policy.Set.TierPolicies) and, for
// Ingress, the pod's named ports. A pod holding an address another pod
// holds too is denied everything, above every tier.
//
// The base chains accept IPv6 neighbour solicitations and advertisements
// before the egress maps: a pod answers the node's solicitations from its
// own address, which its egress policy would drop.
//
// A packet therefore costs, per direction, one verdict-map lookup, at
// most three lookups in the Admin tier (Pass set, ports map, address map;
// two without Pass rules with protocols) and two in the Baseline tier per
// family, and at most four set lookups in the NetworkPolicy layer (two
// hash, two interval), however many policies there are; a peer pod
// allowed on a port is found by the first NetworkPolicy lookup, a hash
// lookup.
package nft

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/policy"
)

// TableName is the name of netfence's table (family inet).
const TableName = "netfence"

// Names of the base chains and verdict maps.
const (
	ChainForward = "forward"
	ChainInput   = "input"
	MapIngress4  = "ingress4"
	MapIngress6  = "ingress6"
	MapEgress4   = "egress4"
	MapEgress6   = "egress6"
)

// maxComment is the longest comment nft accepts.
const maxComment = 128

// Family is an address family.
type Family uint8

// Address families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// ip returns the nft keyword of the family's network header.
func (f Family) ip() string {
	if f == IPv4 {
		return "ip"
	}
	return "ip6"
}

func (f Family) addrType() string {
	if f == IPv4 {
		return "ipv4_addr"
	}
	return "ipv6_addr"
}

// Deny is how a per-pod chain ends traffic no policy allows.
type Deny uint8

const (
	// DenyDrop drops the packet silently (the default).
	DenyDrop Deny = iota
	// DenyReject answers TCP with a reset and anything else with an ICMP
	// administratively-prohibited error, so clients fail fast.
	DenyReject
	// DenyAudit denies nothing: what policy would deny is logged (with
	// Options.Log) and goes on as if no policy selected the pod (egress:
	// the destination's ingress check follows). It is a dry run of the
	// whole ruleset; a tier's Deny elements are audited too.
	DenyAudit
)

func (d Deny) String() string {
	switch d {
	case DenyReject:
		return "reject"
	case DenyAudit:
		return "audit"
	}
	return "drop"
}

// Options choose what Render renders.
type Options struct {
	// Node is the node whose pods are rendered: pods whose NodeName is
	// Node, active and not on the host network.
	Node string
	// AllLocal renders every active pod-network pod, whatever its node
	// (single-node setups and tests).
	AllLocal bool
	// Deny is the final verdict of the per-pod chains.
	Deny Deny
	// Log, when set, logs denied packets to NFLOG (see LogOptions).
	Log *LogOptions
}

// Model is a rendered ruleset: pure data, deterministic for equal input.
// Models of one Renderer share their unchanged sets and chains, so a model
// must not be modified.
type Model struct {
	// Deny is the final verdict of the per-pod chains.
	Deny Deny
	// Maps are the four verdict maps, in the order egress4, egress6,
	// ingress4, ingress6; each exists even when empty.
	Maps []*VMap
	// Sets are the sets the chains look up, each once however many
	// chains share it, sorted by name. Empty sets are left out.
	Sets []*PeerSet
	// Chains are the per-pod chains, sorted by name.
	Chains []*Chain
	// LogGen is the generation the log prefixes carry (with
	// Options.Log): the number of the Render that last changed something.
	LogGen uint64
}

// VMap is a verdict map from a local pod's address to its chain.
type VMap struct {
	Name   string
	Family Family
	// Elements are sorted by address.
	Elements []VMapElement
}

// VMapElement sends packets of one pod address to the pod's chain.
type VMapElement struct {
	Addr    netip.Addr
	Chain   string
	Comment string
}

// PeerSet is an interval set of peers, or (Map) an interval verdict map
// of a tier of cluster-scoped policy. Pods whose allowances are alike
// share their sets: a set belongs to one combination of direction,
// isolating policies and (for Ingress) named port numbers, and the chains
// of every local pod with that combination look it up; a tier's map to
// one combination of direction, tier, selecting cluster policies, named
// port numbers and, for the Admin tier, the layer its Pass elements go to.
type PeerSet struct {
	// Name is "a4-", "p4-", "e4-" or "x4-" (address or ports set, of
	// ranges or exact; "6" for IPv6) and a hash of that combination (see
	// Renderer); for a map "aa4-", "ap4-" (Admin tier: addresses, ports)
	// or "ba4-", "bp4-" (Baseline tier) and a hash; "app4-" for the Admin
	// tier's Pass set.
	Name   string
	Family Family
	// Ports is true for a concatenated address . inet_proto . inet_service
	// set; false for an address set.
	Ports bool
	// Exact is true for a hash set (no interval flag: one O(1) lookup,
	// cheap element deletes) whose elements are each a single address,
	// and for a ports set a single address with a single port; false for
	// an interval set (rbtree for addresses, pipapo for ports).
	Exact bool
	// Map is true for an interval verdict map (never Exact): every
	// element has a Verdict.
	Map bool
	// Pass is true for the set of an Admin tier's Pass elements with
	// protocols ("app4-"): a ports interval set whose rules go to the
	// next layer (or allow, when there is none).
	Pass bool
	// Elements are disjoint, in policy.Normalized order: by address for an
	// address set; by protocol, port range, then address for a ports set.
	Elements []Element
}

// Element is an address range, or for a Ports set an address range times
// a protocol times a port range; in a map, with its verdict.
type Element struct {
	Addrs            policy.AddrRange
	Proto            uint8
	FromPort, ToPort uint16
	// Verdict is set for an element of a map, and only there.
	Verdict Verdict
	// Comment names the policy rules that contribute to the element.
	Comment string
}

// VerdictKind is what a map element does with a packet.
type VerdictKind uint8

// Verdict kinds of map elements. The zero value is no verdict (a set's
// element).
const (
	VerdictNone VerdictKind = iota
	// VerdictAccept accepts the packet (ingress Accept).
	VerdictAccept
	// VerdictDrop drops it (Deny).
	VerdictDrop
	// VerdictReturn leaves the pod's chains (egress Accept: the
	// destination's ingress check follows).
	VerdictReturn
	// VerdictGoto goes to a chain (Admin tier Pass: the next layer).
	VerdictGoto
)

// Verdict is a map element's verdict.
type Verdict struct {
	Kind VerdictKind
	// Chain is the chain of VerdictGoto.
	Chain string
}

func (v Verdict) String() string {
	switch v.Kind {
	case VerdictAccept:
		return "accept"
	case VerdictDrop:
		return "drop"
	case VerdictReturn:
		return "return"
	case VerdictGoto:
		return "goto " + v.Chain
	}
	return ""
}

// RuleKind is the shape of a per-pod chain's rule.
type RuleKind uint8

// Rule kinds.
const (
	// RuleAddr matches the peer address against an address set.
	RuleAddr RuleKind = iota
	// RuleAddrPort matches peer address . l4proto . th dport against a
	// concatenated interval set.
	RuleAddrPort
	// RuleTCPReset rejects TCP with a reset (part of DenyReject).
	RuleTCPReset
	// RuleDeny is the final drop, or ICMPX reject.
	RuleDeny
	// RuleVMapAddr looks the peer address up in an address verdict map
	// (a tier's aa4-, ba4-, ...) and takes the element's verdict.
	RuleVMapAddr
	// RuleVMapAddrPort looks peer address . l4proto . th dport up in a
	// concatenated verdict map (ap4-, bp4-, ...).
	RuleVMapAddrPort
	// RuleGoto goes to another chain (the next layer).
	RuleGoto
	// RuleAddrPortGoto matches peer address . l4proto . th dport against
	// a concatenated interval set (the Admin tier's Pass set) and goes to
	// Chain, the next layer.
	RuleAddrPortGoto
	// RuleLogJump jumps, within a packet rate limit (Rate, Burst), to a
	// log chain (Chain) and comes back: see LogOptions.
	RuleLogJump
	// RuleNFLog logs the packet to NFLOG (Prefix, Group).
	RuleNFLog
	// RuleDrop drops, whatever the model's Deny (but DenyAudit, which
	// returns).
	RuleDrop
)

// Rule is one rule of a per-pod or layer chain.
type Rule struct {
	Kind RuleKind
	// Family and Set are set for the rules that look a set or map up
	// (Set names it).
	Family Family
	Set    string
	// Chain is the chain RuleGoto, RuleAddrPortGoto and RuleLogJump go
	// to.
	Chain string
	// Rate and Burst are the packet limit of RuleLogJump (per second).
	Rate, Burst uint32
	// Prefix and Group are the NFLOG prefix and group of RuleNFLog.
	Prefix string
	Group  uint16
	// Egress rules match the destination address and return; ingress
	// rules match the source address and accept.
	Egress  bool
	Comment string
}

// Chain is the chain of one local pod for one direction, or a layer
// chain (Pod empty) that the chains of several pods go to: the
// NetworkPolicy rules (outn-, inn-) or the Baseline tier (outb-, inb-)
// after the Admin tier.
type Chain struct {
	Name      string
	Pod       string
	Direction policy.Direction
	Rules     []Rule
}

// Map returns the verdict map of that name, or nil.
func (m *Model) Map(name string) *VMap {
	for _, vm := range m.Maps {
		if vm.Name == name {
			return vm
		}
	}
	return nil
}

// Set returns the set of that name, or nil.
func (m *Model) Set(name string) *PeerSet {
	i, ok := slices.BinarySearchFunc(m.Sets, name, func(s *PeerSet, n string) int { return strings.Compare(s.Name, n) })
	if !ok {
		return nil
	}
	return m.Sets[i]
}

// Chain returns the per-pod chain of that name, or nil.
func (m *Model) Chain(name string) *Chain {
	i, ok := slices.BinarySearchFunc(m.Chains, name, func(c *Chain, n string) int { return strings.Compare(c.Name, n) })
	if !ok {
		return nil
	}
	return m.Chains[i]
}

// Counts is the size of a ruleset: rules per chain and elements per set
// or map, base chains included. An element of an address set is one
// interval, whatever its kernel encoding.
type Counts struct {
	Chains map[string]int
	Sets   map[string]int
}

// Elements returns the total number of set and map elements.
func (c Counts) Elements() int {
	n := 0
	for _, v := range c.Sets {
		n += v
	}
	return n
}

// Rules returns the total number of rules.
func (c Counts) Rules() int {
	n := 0
	for _, v := range c.Chains {
		n += v
	}
	return n
}

// Counts returns the size of the ruleset the model describes.
func (m *Model) Counts() Counts {
	c := Counts{Chains: map[string]int{}, Sets: map[string]int{}}
	c.Chains[ChainForward] = len(baseRules(ChainForward))
	c.Chains[ChainInput] = len(baseRules(ChainInput))
	for _, ch := range m.Chains {
		c.Chains[ch.Name] = len(ch.Rules)
	}
	for _, vm := range m.Maps {
		c.Sets[vm.Name] = len(vm.Elements)
	}
	for _, s := range m.Sets {
		c.Sets[s.Name] = len(s.Elements)
	}
	return c
}

// Render builds the ruleset for the local pods of s's cluster. It is the
// reference rendering: a Renderer returns the same for the same snapshot.
func Render(s *policy.Set, opts Options) *Model {
	return NewRenderer(opts).Render(s)
}

// ownAddrs returns the pod's addresses that the cluster attributes to it,
// sorted; an address claimed by two pods belongs to one. A pod holding a
// conflicted address (cluster.AddressConflict) gets every address it
// holds, so that whichever holder is local, the address leads to a chain
// that denies everything.
func ownAddrs(c *cluster.Cluster, pod *cluster.Pod) []netip.Addr {
	if !c.Conflicted(pod) {
		return c.OwnedAddrs(pod)
	}
	var out []netip.Addr
	for _, ip := range pod.IPs {
		if ip = ip.Unmap(); !slices.Contains(out, ip) {
			out = append(out, ip)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// podID returns a stable short name for a pod: the first 12 hex digits of
// the SHA-256 of "namespace/name", longer only if that collides with a pod
// named before.
func podID(key string, taken map[string]string) string {
	sum := sha256.Sum256([]byte(key))
	h := hex.EncodeToString(sum[:])
	for n := 12; ; n += 4 {
		id := h[:n]
		if owner, ok := taken[id]; !ok || owner == key || n >= len(h) {
			taken[id] = key
			return id
		}
	}
}

// ChainName returns the name of a pod's chain for a direction, as Render
// names it when no other pod collides with it.
func ChainName(podKey string, dir policy.Direction) string {
	return chainPrefix(dir) + podID(podKey, map[string]string{})
}

func chainPrefix(dir policy.Direction) string {
	if dir == policy.Egress {
		return "out-"
	}
	return "in-"
}

func dirWord(dir policy.Direction) string {
	if dir == policy.Egress {
		return "egress"
	}
	return "ingress"
}

func protoName(n uint8) string {
	switch n {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 132:
		return "sctp"
	}
	return fmt.Sprint(n)
}

// sourcesComment names the policy rules behind an element, e.g.
// "allow-web ingress[0], allow-dns ingress[1]", within nft's comment limit.
func sourcesComment(srcs []policy.RuleMatch) string { return refsComment(srcs, "") }

// tierComment names the cluster policy rules behind a map element and
// their action, e.g. "cnp/deny-sensitive egress[0] Deny".
func tierComment(srcs []policy.RuleMatch, a policy.Action) string {
	return refsComment(srcs, " "+a.String())
}

// refsComment names the rules, each once, then suffix, within nft's
// comment limit: rules that do not fit are counted ("+2 more").
func refsComment(srcs []policy.RuleMatch, suffix string) string {
	if len(srcs) == 1 {
		return truncateKeeping(ruleRef(srcs[0]), suffix)
	}
	var refs []string
	for _, s := range srcs {
		ref := ruleRef(s)
		if !slices.Contains(refs, ref) {
			refs = append(refs, ref)
		}
	}
	out := ""
	for i, ref := range refs {
		sep := ""
		if i > 0 {
			sep = ", "
		}
		more := ""
		if i+1 < len(refs) {
			more = ", +" + strconv.Itoa(len(refs)-i-1) + " more"
		}
		if len(out)+len(sep)+len(ref)+len(more)+len(suffix) > maxComment {
			if i == 0 {
				return truncateKeeping(ref, suffix)
			}
			return truncate(out + ", +" + strconv.Itoa(len(refs)-i) + " more" + suffix)
		}
		out += sep + ref
	}
	return truncate(out + suffix)
}

// truncateKeeping cuts s so that s and suffix fit nft's comment limit,
// keeping suffix whole.
func truncateKeeping(s, suffix string) string {
	s, suffix = truncate(s), truncate(suffix)
	if len(s)+len(suffix) > maxComment {
		s = s[:max(0, maxComment-len(suffix)-3)] + "..."
	}
	return s + suffix
}

// ruleRef names a rule: "allow-web ingress[0]" for a NetworkPolicy (its
// namespace is the pod's), "cnp/NAME egress[1]" for a cluster policy.
func ruleRef(s policy.RuleMatch) string {
	name := ""
	if s.ClusterPolicy != nil {
		name = s.ClusterPolicy.Key()
	} else {
		name = s.Policy.Name
	}
	return name + " " + dirWord(s.Direction) + "[" + strconv.Itoa(s.Rule) + "]"
}

// truncate cuts a comment to nft's limit and removes characters nft
// cannot quote.
func truncate(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < ' ' || r > '~' {
			return '_'
		}
		return r
	}, s)
	if len(s) > maxComment {
		s = s[:maxComment-3] + "..."
	}
	return s
}

// ChainSets returns the sets and maps a chain's rules look up, in rule
// order (they may be shared with other chains), or nil when there is no
// such chain.
func (m *Model) ChainSets(chain string) []*PeerSet {
	c := m.Chain(chain)
	if c == nil {
		return nil
	}
	var out []*PeerSet
	for _, r := range c.Rules {
		if r.Set == "" {
			continue
		}
		if s := m.Set(r.Set); s != nil {
			out = append(out, s)
		}
	}
	return out
}

// ChainSet returns the address set (ports false) or ports set of a family,
// of exact elements (hash set) or of ranges (interval set), that a chain
// looks up, or nil. Tier maps and Pass sets are left out.
func (m *Model) ChainSet(chain string, fam Family, ports, exact bool) *PeerSet {
	for _, s := range m.ChainSets(chain) {
		if !s.Map && !s.Pass && s.Family == fam && s.Ports == ports && s.Exact == exact {
			return s
		}
	}
	return nil
}
