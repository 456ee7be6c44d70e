package connectivity

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/netfence/netfence/internal/flow"
	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/testbed"
)

// flowLogGroup is the NFLOG group of the testbed's ruleset: its node
// namespace is its own, so the agent's default group is free there.
const flowLogGroup = nft.DefaultLogGroup

// flowNode is the node name of the testbed's records.
const flowNode = "testbed"

// collector is the flow monitor of the testbed's node namespace: the
// agent's readers (flow.Reader for NFLOG, flow.AllowedReader for
// conntrack events) publishing to a hub it drains.
type collector struct {
	gens   *flow.Generations
	hub    *flow.Hub
	sub    *flow.Sub
	cancel context.CancelFunc

	mu   sync.Mutex
	recs []flow.Record
	last time.Time
	done chan struct{}
}

// collectorBuffer is how many records the collector may fall behind;
// the hub counts what it would drop (none is expected: it only appends).
const collectorBuffer = 1 << 16

// startCollector starts reading denied packets and allowed connections in
// the bed's node namespace, before the ruleset is applied.
func startCollector(ctx context.Context, bed *testbed.Bed, render nft.Options) (*collector, error) {
	f, err := os.Open(filepath.Join("/var/run/netns", bed.NodeNamespace()))
	if err != nil {
		return nil, fmt.Errorf("flow monitor: node namespace: %w", err)
	}
	defer f.Close() // the sockets are open in the namespace once Run returns
	ctx, cancel := context.WithCancel(ctx)
	c := &collector{gens: flow.NewGenerations(4), hub: flow.NewHub(nil), cancel: cancel, done: make(chan struct{})}
	src := flow.Source{NetNS: int(f.Fd()), Node: flowNode, AllLocal: true, Audit: render.Deny == nft.DenyAudit, Gens: c.gens, Hub: c.hub}
	rd := &flow.Reader{Group: render.Log.Group, Source: src}
	if err := rd.Run(ctx); err != nil {
		cancel()
		return nil, fmt.Errorf("flow monitor: %w", err)
	}
	ar := &flow.AllowedReader{Source: src}
	if err := ar.Run(ctx); err != nil {
		cancel()
		return nil, fmt.Errorf("flow monitor (allowed connections): %w", err)
	}
	c.sub = c.hub.Subscribe(collectorBuffer)
	go func() {
		defer close(c.done)
		for r := range c.sub.C {
			c.mu.Lock()
			c.recs = append(c.recs, r)
			c.last = time.Now()
			c.mu.Unlock()
		}
	}()
	return c, nil
}

// Bounds of the wait for the last records after the probes: the kernel
// hands them over asynchronously.
const (
	flowQuiet   = 200 * time.Millisecond
	flowMaxWait = 3 * time.Second
)

// stop waits until no record came for flowQuiet (at most flowMaxWait),
// stops reading and returns the records merged per connection.
func (c *collector) stop() []flow.Record {
	deadline := time.Now().Add(flowMaxWait)
	start := time.Now()
	for time.Now().Before(deadline) {
		c.mu.Lock()
		last := c.last
		c.mu.Unlock()
		if time.Since(start) >= flowQuiet && time.Since(last) >= flowQuiet {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.cancel()
	c.hub.Unsubscribe(c.sub)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return MergeFlows(c.recs)
}

// flowKey is a connection and what was decided for it.
type flowKey struct {
	src, dst       string
	srcPort, port  int
	proto, verdict string
	deniedAt       string
}

// MergeFlows merges the records of one connection (same addresses, ports,
// protocol, verdict and direction of denial): the kernel logs each denied
// packet, a connection's retransmissions and resent datagrams included.
// The merged record has the first one's time and explanation and the sum
// of the counts. The result is sorted by time, then addresses and ports.
func MergeFlows(recs []flow.Record) []flow.Record {
	idx := map[flowKey]int{}
	var out []flow.Record
	for _, r := range recs {
		k := flowKey{r.SrcIP, r.DstIP, r.SrcPort, r.Port, r.Protocol, r.Verdict, r.DeniedAt}
		if i, ok := idx[k]; ok {
			out[i].Count += r.Count
			if r.Time.Before(out[i].Time) {
				out[i].Time = r.Time
			}
			continue
		}
		idx[k] = len(out)
		out = append(out, r)
	}
	slices.SortStableFunc(out, func(a, b flow.Record) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.SrcIP, b.SrcIP), cmp.Compare(a.DstIP, b.DstIP),
			cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port), cmp.Compare(a.SrcPort, b.SrcPort))
	})
	return out
}

// WriteFlows writes the report's flow records as NDJSON, one a line.
func (r *Report) WriteFlows(w io.Writer) error {
	enc := json.NewEncoder(w)
	for i := range r.Flows {
		if err := enc.Encode(&r.Flows[i]); err != nil {
			return err
		}
	}
	return nil
}
