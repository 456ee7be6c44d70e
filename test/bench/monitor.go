package bench

import (
	"context"
	"fmt"

	dto "github.com/prometheus/client_model/go"

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
}

// startMonitor starts the conntrack reader for set in d's node namespace.
func (d *Dataplane) startMonitor(ctx context.Context, set *policy.Set) (*monitorRun, error) {
	gens := flow.NewGenerations(2)
	gens.Applied(1, set)
	mr := &monitorRun{done: make(chan struct{}), metrics: flow.NewMetrics(nil)}
	hub := flow.NewHub(mr.metrics)
	sub := hub.Subscribe(1 << 16)
	rctx, cancel := context.WithCancel(ctx)
	mr.cancel = cancel
	ar := &flow.AllowedReader{NetNS: int(d.node), Node: Node, Gens: gens, Hub: hub, Metrics: mr.metrics}
	if err := ar.Run(rctx); err != nil {
		cancel()
		return nil, fmt.Errorf("bench: monitor: %w", err)
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

// stop ends the monitor and returns the records it delivered, and those
// lost (kernel buffer overruns and subscriber drops).
func (mr *monitorRun) stop() (records, lost int) {
	mr.cancel()
	<-mr.done
	var m dto.Metric
	if err := mr.metrics.Lost.Write(&m); err == nil {
		lost += int(m.GetCounter().GetValue())
	}
	if err := mr.metrics.Dropped.Write(&m); err == nil {
		lost += int(m.GetCounter().GetValue())
	}
	return mr.records, lost
}
