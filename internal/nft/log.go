package nft

// This file renders the logging of denied packets (Options.Log): before a
// chain's final deny, and for a tier's Deny elements, a packet is sent to
// an NFLOG group, rate limited, with a prefix naming the ruleset's
// generation and the direction, so that the agent can explain it with the
// policy it was dropped by (see internal/flow).

import (
	"strconv"
	"strings"

	"github.com/netfence/netfence/internal/policy"
)

// LogOptions turn on the logging of denied packets to NFLOG.
type LogOptions struct {
	// Group is the NFLOG group (default DefaultLogGroup).
	Group uint16
	// Rate is how many denied packets per second a chain logs, Burst how
	// many at once (defaults DefaultLogRate, twice Rate). Past it, packets
	// are dropped without being logged.
	Rate, Burst uint32
}

// Defaults of LogOptions.
const (
	DefaultLogGroup = 100
	DefaultLogRate  = 100
)

func (o *LogOptions) group() uint16 {
	if o.Group == 0 {
		return DefaultLogGroup
	}
	return o.Group
}

func (o *LogOptions) rate() (rate, burst uint32) {
	rate, burst = o.Rate, o.Burst
	if rate == 0 {
		rate = DefaultLogRate
	}
	if burst == 0 {
		burst = 2 * rate
	}
	return rate, burst
}

// Chains of logging: the log chains (one rule, the NFLOG rule whose prefix
// carries the generation) are jumped to, rate limited, from the end of
// pod and layer chains; the drop chains are where a tier map's Deny
// elements go: they log (rate limited, per direction) and drop.
const (
	ChainLogEgress   = "nflog-out"
	ChainLogIngress  = "nflog-in"
	ChainDropEgress  = "nfdrop-out"
	ChainDropIngress = "nfdrop-in"
)

// isLogChain reports whether a chain is one of the logging chains, which
// decide nothing.
func isLogChain(name string) bool {
	return name == ChainLogEgress || name == ChainLogIngress
}

func logChain(dir policy.Direction) string {
	if dir == policy.Egress {
		return ChainLogEgress
	}
	return ChainLogIngress
}

func dropChain(dir policy.Direction) string {
	if dir == policy.Egress {
		return ChainDropEgress
	}
	return ChainDropIngress
}

// LogPrefix is the NFLOG prefix of the ruleset of generation gen for a
// direction: "nf:GEN:e" (egress, at the source) or "nf:GEN:i".
func LogPrefix(gen uint64, dir policy.Direction) string {
	d := "i"
	if dir == policy.Egress {
		d = "e"
	}
	return "nf:" + strconv.FormatUint(gen, 10) + ":" + d
}

// ParseLogPrefix parses a prefix made by LogPrefix.
func ParseLogPrefix(s string) (gen uint64, dir policy.Direction, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimRight(s, "\x00"), "nf:")
	if !found {
		return 0, 0, false
	}
	g, d, found := strings.Cut(rest, ":")
	if !found {
		return 0, 0, false
	}
	gen, err := strconv.ParseUint(g, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	switch d {
	case "e":
		return gen, policy.Egress, true
	case "i":
		return gen, policy.Ingress, true
	}
	return 0, 0, false
}

// logRule is the rule that logs a denied packet of a pod or layer chain:
// rate limited, it jumps to the direction's log chain and comes back.
func (o *LogOptions) logRule(dir policy.Direction) Rule {
	rate, burst := o.rate()
	return Rule{Kind: RuleLogJump, Chain: logChain(dir), Egress: dir == policy.Egress, Rate: rate, Burst: burst,
		Comment: "netfence: log denied packets (rate limited)"}
}

// logChains returns the logging chains of generation gen.
func (o *LogOptions) logChains(gen uint64) []*Chain {
	var out []*Chain
	for _, dir := range policy.Directions {
		out = append(out,
			&Chain{Name: logChain(dir), Direction: dir, Rules: []Rule{{Kind: RuleNFLog, Egress: dir == policy.Egress,
				Prefix: LogPrefix(gen, dir), Group: o.group(), Comment: "netfence: denied packets to NFLOG"}}},
			&Chain{Name: dropChain(dir), Direction: dir, Rules: []Rule{o.logRule(dir),
				{Kind: RuleDrop, Egress: dir == policy.Egress, Comment: "netfence: denied by a cluster policy tier"}}})
	}
	return out
}
