package nft

// This file builds the chains of a rendering: per-pod chains and the
// layer chains pods of several workloads go to, from what they look up,
// and names what they look up.

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/netfence/netfence/internal/policy"
)

// namer names objects by the identity of what they are made of: the
// first 16 hex digits of a sum, or all of them for sums whose first 16
// collide with another's.
type namer struct {
	short  map[[8]byte][sha256.Size]byte
	longer map[[sha256.Size]byte]bool
}

func newNamer() *namer {
	return &namer{short: map[[8]byte][sha256.Size]byte{}, longer: map[[sha256.Size]byte]bool{}}
}

// add registers a sum before names are handed out.
func (nm *namer) add(sum [sha256.Size]byte) {
	k := [8]byte(sum[:8])
	if o, ok := nm.short[k]; ok && o != sum {
		nm.longer[o], nm.longer[sum] = true, true
	}
	nm.short[k] = sum
}

// long reports whether the sum is named at full length.
func (nm *namer) long(sum [sha256.Size]byte) bool { return nm.longer[sum] }

// name returns the hex digits that name the sum.
func (nm *namer) name(sum [sha256.Size]byte) string {
	if nm.longer[sum] {
		return hex.EncodeToString(sum[:])
	}
	return hex.EncodeToString(sum[:8])
}

// familyIndex returns 0 for IPv4, 1 for IPv6.
func familyIndex(f Family) int {
	if f == IPv4 {
		return 0
	}
	return 1
}

// lookup is a rule looking up a set or map; next is the chain a
// RuleAddrPortGoto goes to.
type lookup struct {
	kind RuleKind
	fam  Family
	set  *PeerSet
	next string
}

// onlyFamilies keeps the lookups of the families a pod has: its chain
// never sees the others.
func onlyFamilies(ls []lookup, fams [2]bool) []lookup {
	var out []lookup
	for _, l := range ls {
		if fams[familyIndex(l.fam)] {
			out = append(out, l)
		}
	}
	return out
}

func policyNames(ps []*policy.Policy) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

func policyKeys(ps []*policy.ClusterPolicy) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Key()
	}
	return out
}

// layerPrefix names a layer chain: "outn-", "inn-" (NetworkPolicy) or
// "outb-", "inb-" (Baseline tier).
func layerPrefix(dir policy.Direction, layer byte) string {
	return strings.TrimSuffix(chainPrefix(dir), "-") + string(layer) + "-"
}

// chainSpec is what a per-pod or layer chain is built from. Its rules are
// the lookups, then: a goto to next (after the Admin tier); or the end of
// the NetworkPolicy layer (iso set, or conflict: the final verdict); or
// nothing (the Baseline tier: what no element decides is allowed).
type chainSpec struct {
	name string
	// pod is the pod's key; empty for a layer chain.
	pod  string
	dir  policy.Direction
	deny Deny
	// log, when set, logs what the chain denies.
	log *LogOptions
	// conflict says why a conflicted pod's chain denies everything.
	conflict string
	// iso names the policies isolating the pod, for a chain ending the
	// NetworkPolicy layer; admin and baseline the cluster policies of the
	// tier the lookups belong to.
	iso, admin, baseline []string
	lookups              []lookup
	// next is the chain the Admin tier goes on to, nextWhat what it is.
	next, nextWhat string
}

// sig is everything the chain is built from.
func (c *chainSpec) sig() string {
	var b strings.Builder
	logs := ""
	if c.log != nil {
		r, b := c.log.rate()
		logs = strconv.Itoa(int(c.log.group())) + "/" + strconv.Itoa(int(r)) + "/" + strconv.Itoa(int(b))
	}
	for _, s := range []string{c.name, c.pod, c.dir.String(), c.deny.String(), c.conflict, c.next, c.nextWhat, logs} {
		b.WriteString(s)
		b.WriteByte(0)
	}
	for i, l := range [][]string{c.iso, c.admin, c.baseline} {
		b.WriteByte(byte(1 + i))
		for _, s := range l {
			b.WriteString(s)
			b.WriteByte(0)
		}
	}
	b.WriteByte(4)
	for _, l := range c.lookups {
		b.WriteByte(byte(l.kind))
		b.WriteByte(byte(l.fam))
		b.WriteString(l.set.Name)
		b.WriteByte(0)
		b.WriteString(l.next)
		b.WriteByte(0)
	}
	return b.String()
}

// record adds the sets and maps the chain looks up to sets.
func (c *chainSpec) record(sets map[string]*PeerSet) {
	for _, l := range c.lookups {
		if _, ok := sets[l.set.Name]; !ok {
			sets[l.set.Name] = l.set
		}
	}
}

// words says what a layer chain is, for the comment of the rule going to
// it.
func (c *chainSpec) words() string {
	if c.baseline != nil {
		return "Baseline tier of " + strings.Join(c.baseline, ", ")
	}
	return "NetworkPolicy, isolated by " + strings.Join(c.iso, ", ")
}

// conflictWords says why a conflicted pod's chain denies everything.
func conflictWords(it podDir) string {
	return "address " + it.conflict.Addr.String() + " shared with " + it.conflict.SharedWith(it.pod) + ": denied (fail closed)"
}

// render builds the chain.
func (c *chainSpec) render() *Chain {
	egress := c.dir == policy.Egress
	ch := &Chain{Name: c.name, Pod: c.pod, Direction: c.dir}
	var what string
	switch {
	case c.pod != "":
		what = c.pod + " " + dirWord(c.dir)
	case c.baseline != nil:
		what = "Baseline tier " + dirWord(c.dir)
	default:
		what = "NetworkPolicy " + dirWord(c.dir)
	}
	by := "; isolated by " + strings.Join(c.iso, ", ")
	switch {
	case c.conflict != "":
		by = "; " + c.conflict
	case c.admin != nil:
		by = "; " + strings.Join(c.admin, ", ")
	case c.baseline != nil:
		by = "; " + strings.Join(c.baseline, ", ")
	}
	tier := ""
	switch {
	case c.admin != nil:
		tier = "Admin tier, "
	case c.baseline != nil && c.pod != "":
		tier = "Baseline tier, "
	}
	for _, l := range c.lookups {
		r := Rule{Kind: l.kind, Family: l.fam, Set: l.set.Name, Chain: l.next, Egress: egress}
		switch {
		case l.set.Pass && l.next != "":
			r.Comment = truncate(what + ": " + tier + "passed on listed protocols: " + c.nextWhat)
		case l.set.Pass:
			r.Comment = truncate(what + ": " + tier + "passed on listed protocols, to the default (allow)" + by)
		case l.kind == RuleAddr:
			r.Comment = truncate(what + ": peers allowed on all ports" + by)
		case l.kind == RuleAddrPort:
			r.Comment = truncate(what + ": peers allowed on listed ports" + by)
		case l.kind == RuleVMapAddr:
			r.Comment = truncate(what + ": " + tier + "all protocols" + by)
		case l.kind == RuleVMapAddrPort:
			r.Comment = truncate(what + ": " + tier + "listed protocols" + by)
		}
		ch.Rules = append(ch.Rules, r)
	}
	switch {
	case c.next != "":
		ch.Rules = append(ch.Rules, Rule{Kind: RuleGoto, Chain: c.next, Egress: egress,
			Comment: truncate(what + ": not decided by the Admin tier: " + c.nextWhat)})
	case c.admin != nil || c.baseline != nil:
		// What no element decides is allowed.
	default:
		if c.log != nil {
			ch.Rules = append(ch.Rules, c.log.logRule(c.dir))
		}
		if c.deny == DenyReject {
			ch.Rules = append(ch.Rules, Rule{Kind: RuleTCPReset, Egress: egress, Comment: truncate(what + ": reset denied TCP" + by)})
		}
		rest := ": deny the rest"
		if c.conflict != "" {
			rest = ": deny everything"
		}
		if c.deny == DenyAudit {
			rest = ": audit, would" + rest[1:]
		}
		ch.Rules = append(ch.Rules, Rule{Kind: RuleDeny, Egress: egress, Comment: truncate(what + rest + by)})
	}
	return ch
}
