package flow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	nflog "github.com/florianl/go-nflog/v2"
	"github.com/mdlayher/netlink"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/nsfd"
	"github.com/netfence/netfence/internal/policy"
)

// Generations keeps the policy.Set of the last few rulesets applied, by
// generation (nft.Model.LogGen), so that a packet logged by a ruleset is
// explained by the policies it was compiled from even when a newer one is
// in the kernel by the time it is read. Safe for concurrent use.
type Generations struct {
	mu   sync.Mutex
	keep int
	gens []uint64
	sets map[uint64]*policy.Set
}

// NewGenerations keeps the last keep generations (at least 1).
func NewGenerations(keep int) *Generations {
	return &Generations{keep: max(keep, 1), sets: map[uint64]*policy.Set{}}
}

// Applied records that the ruleset of generation gen, compiled from set,
// is in the kernel (agent.Config.Applied).
func (g *Generations) Applied(gen uint64, set *policy.Set) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.sets[gen]; !ok {
		g.gens = append(g.gens, gen)
	}
	g.sets[gen] = set
	for len(g.gens) > g.keep {
		delete(g.sets, g.gens[0])
		g.gens = g.gens[1:]
	}
}

// Set returns the set of generation gen; when it is no longer kept, the
// newest set and false.
func (g *Generations) Set(gen uint64) (*policy.Set, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s, ok := g.sets[gen]; ok {
		return s, true
	}
	if len(g.gens) == 0 {
		return nil, false
	}
	return g.sets[g.gens[len(g.gens)-1]], false
}

// Source is what the readers of the node's flows share: the network
// namespace they read in, which pods are the node's, whether the ruleset
// audits, the policies records are explained with, and where records and
// losses go.
type Source struct {
	// NetNS is a descriptor of the network namespace to read in (0: the
	// calling thread's at the time of Run).
	NetNS int
	Node  string
	// AllLocal counts every active pod-network pod as local, whatever its
	// node (nft.Options.AllLocal); otherwise local pods are those of Node.
	AllLocal bool
	// Audit is set when the ruleset audits instead of denying
	// (nft.DenyAudit); see each reader for what it changes.
	Audit bool
	Gens  *Generations
	Hub   *Hub
	// Metrics may be nil.
	Metrics *Metrics
	Log     *slog.Logger
	// Now stamps records whose kernel message has no timestamp (default
	// time.Now).
	Now func() time.Time
}

func (s *Source) lost() {
	if s.Metrics != nil {
		s.Metrics.Lost.Inc()
	}
}

func (s *Source) now() func() time.Time {
	if s.Now != nil {
		return s.Now
	}
	return time.Now
}

func (s *Source) local(c *cluster.Cluster, ip netip.Addr) bool {
	return isLocal(c, ip, s.Node, s.AllLocal)
}

// Reader turns the kernel's NFLOG records of denied packets into Records.
// With Audit, logged packets went on: their records are Audited, and a
// packet logged at ingress that its local source's egress policy also
// audited (and logged) is reported once.
type Reader struct {
	// Group is the NFLOG group of nft.LogOptions.
	Group uint16
	Source
}

// Handle explains one logged packet and publishes it; it reports false
// when the prefix or packet is not netfence's.
func (rd *Reader) Handle(prefix string, payload []byte, at time.Time) bool {
	gen, dir, ok := nft.ParseLogPrefix(prefix)
	if !ok {
		return false
	}
	p, err := Decode(payload)
	if err != nil {
		rd.lost()
		return false
	}
	set, exact := rd.Gens.Set(gen)
	if !exact && rd.Log != nil {
		rd.Log.Debug("flow monitor: generation no longer kept, explaining with the newest", "generation", gen)
	}
	r := Explain(set, rd.Node, at, p, true, dir)
	if rd.Audit {
		if dir == policy.Ingress && set != nil && !r.Egress.Allowed && r.Egress.Subject && rd.local(set.Cluster, p.Src) {
			return true // reported by its egress log
		}
		r = r.Audited()
	}
	rd.Hub.Publish(r)
	return true
}

// nflogErrors is the error function of an NFLOG reader: it stops when
// ctx is done, ignores timeouts, and otherwise counts a loss, logs msg and
// pauses a little (no busy loop on a lasting error).
func nflogErrors(ctx context.Context, lost func(), log *slog.Logger, msg string) func(error) int {
	return func(err error) int {
		if ctx.Err() != nil {
			return 1
		}
		var op *netlink.OpError
		if errors.As(err, &op) && (op.Timeout() || op.Temporary()) {
			return 0
		}
		lost()
		if log != nil {
			log.Warn(msg, "error", err)
		}
		time.Sleep(100 * time.Millisecond)
		return 0
	}
}

// flushTimeout bounds, in hundredths of a second, how long the kernel
// holds logged packets to batch them (its default is a second).
const flushTimeout = 5

// Run reads the group until ctx ends. It returns once the socket is bound
// (or fails to); reading goes on in the background until ctx is done.
func (rd *Reader) Run(ctx context.Context) error {
	nf, err := nflog.Open(&nflog.Config{Group: rd.Group, Copymode: nflog.CopyPacket, Bufsize: 256, NetNS: nsfd.ForDial(rd.NetNS), Timeout: flushTimeout})
	if err != nil {
		return fmt.Errorf("nflog group %d: %w", rd.Group, err)
	}
	// A full socket buffer is reported as ENOBUFS: count and go on.
	if err := nf.SetOption(netlink.NoENOBUFS, true); err != nil && rd.Log != nil {
		rd.Log.Debug("flow monitor: NETLINK_NO_ENOBUFS", "error", err)
	}
	now := rd.now()
	hook := func(a nflog.Attribute) int {
		if a.Prefix == nil || a.Payload == nil {
			return 0
		}
		at := now()
		if a.Timestamp != nil {
			at = *a.Timestamp
		}
		rd.Handle(*a.Prefix, *a.Payload, at)
		return 0
	}
	if err := nf.RegisterWithErrorFunc(ctx, hook, nflogErrors(ctx, rd.lost, rd.Log, "flow monitor: reading NFLOG")); err != nil {
		nf.Close()
		return fmt.Errorf("nflog group %d: %w", rd.Group, err)
	}
	go func() {
		<-ctx.Done()
		nf.Close()
	}()
	return nil
}
