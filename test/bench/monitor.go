package bench

import (
	"context"
	"fmt"

	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"

	"github.com/netfence/netfence/internal/flow"
	"github.com/netfence/netfence/internal/policy"
)

// monitorRun is the agent's flow monitor (--monitor --monitor-allowed)
// running in the node namespace while a configuration is measured: every
// allowed connection becomes a record, explained with the configuration's
// policies, and a subscriber drains them as `netfence monitor` would. Its
// CPU is this process's, so the load's CPU per connection includes it.
type monitorRun struct {
	cancel  context.CancelFunc
	done    chan struct{}
	records int
	metrics *flow.Metrics
	// unlog removes the allowed-connection log table (nflog), or is nil.
	unlog func() error
}

// AllowedLogTable is the table of the NFLOG monitor: inet
// netfence-bench-alog with one chain on the forward hook after netfence's
// (priority filter+10, so a packet reaches it only when netfence's chain
// did not drop it) holding "ct state new log group AllowedLogGroup prefix
// nf:1:a snaplen flow.AllowedLogSnaplen queue-threshold
// flow.AllowedLogQThreshold": the rule the agent would add for allowed
// connections of local pods.
const (
	AllowedLogTable = "netfence-bench-alog"
	AllowedLogGroup = 101
)

// allowedLogTable creates (or with add false, deletes) AllowedLogTable:
// the first packet of each connection, after netfence's verdict, to NFLOG.
func (d *Dataplane) allowedLogTable(add bool) error {
	return d.forwardTable(AllowedLogTable, nftables.ChainPriorityRef(*nftables.ChainPriorityFilter+10), add,
		append(ctStateIs(expr.CtStateBitNEW),
			&expr.Log{Key: 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_SNAPLEN | 1<<unix.NFTA_LOG_QTHRESHOLD,
				Group: AllowedLogGroup, Snaplen: flow.AllowedLogSnaplen, QThreshold: flow.AllowedLogQThreshold,
				Data: []byte(flow.AllowedLogPrefix(1))})...)
}

// startMonitor starts the conntrack reader for set in d's node namespace.
// via is flow.AllowedReader.Via; with flow.ViaNFLOG the allowed-log table
// is installed until stop.
func (d *Dataplane) startMonitor(ctx context.Context, set *policy.Set, via string) (*monitorRun, error) {
	gens := flow.NewGenerations(2)
	gens.Applied(1, set)
	mr := &monitorRun{done: make(chan struct{}), metrics: flow.NewMetrics(nil)}
	hub := flow.NewHub(mr.metrics)
	sub := hub.Subscribe(flow.SubscriberBuffer) // as a `netfence monitor` client
	rctx, cancel := context.WithCancel(ctx)
	mr.cancel = cancel
	ar := &flow.AllowedReader{Source: flow.Source{NetNS: int(d.node), Node: Node, Gens: gens, Hub: hub, Metrics: mr.metrics},
		Via: via, Group: AllowedLogGroup}
	if err := ar.Run(rctx); err != nil {
		cancel()
		return nil, fmt.Errorf("bench: monitor: %w", err)
	}
	if via == flow.ViaNFLOG {
		if err := d.allowedLogTable(true); err != nil {
			cancel()
			return nil, err
		}
		mr.unlog = func() error { return d.allowedLogTable(false) }
	}
	go func() {
		defer close(mr.done)
		for {
			select {
			case <-rctx.Done():
				hub.Unsubscribe(sub)
				return
			case _, ok := <-sub.C:
				if !ok {
					return
				}
				mr.records++
			}
		}
	}()
	return mr, nil
}

// stop ends the monitor (after the last batch: the readers wait up to
// 50 ms to batch) and returns the records it delivered, those lost by the
// reader (kernel buffer overruns, each counting one, and undecodable
// messages) and those dropped by the subscriber's full buffer.
func (mr *monitorRun) stop() (records, lost, dropped int, err error) {
	if mr.unlog != nil {
		err = mr.unlog()
	}
	time.Sleep(100 * time.Millisecond)
	mr.cancel()
	<-mr.done
	var m dto.Metric
	if err := mr.metrics.Lost.Write(&m); err == nil {
		lost = int(m.GetCounter().GetValue())
	}
	if err := mr.metrics.Dropped.Write(&m); err == nil {
		dropped = int(m.GetCounter().GetValue())
	}
	return mr.records, lost, dropped, err
}
