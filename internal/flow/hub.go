package flow

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics count what the flow pipeline sees.
type Metrics struct {
	// Verdicts counts records by the namespace and policy that decided
	// them (policy "" for the default deny), direction and verdict.
	Verdicts *prometheus.CounterVec
	// Dropped counts records a subscriber was too slow to take.
	Dropped prometheus.Counter
	// Lost counts packets the kernel logged that were not read (the
	// socket's buffer overflowed) or could not be decoded.
	Lost prometheus.Counter
}

// NewMetrics makes the metrics and registers them in reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "netfence_policy_verdicts_total",
			Help: "Packets explained by the flow monitor, by namespace and policy that decided (policy empty: default deny), direction and verdict."},
			[]string{"namespace", "policy", "direction", "verdict"}),
		Dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "netfence_flow_records_dropped_total",
			Help: "Flow records not delivered to a monitor that was too slow to take them."}),
		Lost: prometheus.NewCounter(prometheus.CounterOpts{Name: "netfence_flow_log_lost_total",
			Help: "Denied packets logged by the kernel that the agent could not read or decode."}),
	}
	if reg != nil {
		reg.MustRegister(m.Verdicts, m.Dropped, m.Lost)
	}
	return m
}

// Hub fans records out to subscribers. Publish never blocks: a subscriber
// whose buffer is full loses the record, counted in its Dropped and in
// the metrics.
type Hub struct {
	metrics *Metrics
	mu      sync.Mutex
	subs    map[*Sub]struct{}
}

// NewHub returns a hub; m may be nil.
func NewHub(m *Metrics) *Hub {
	return &Hub{metrics: m, subs: map[*Sub]struct{}{}}
}

// Sub is a subscription: records arrive on C until Unsubscribe closes it.
type Sub struct {
	C       <-chan Record
	ch      chan Record
	dropped atomic.Uint64
}

// Dropped is the number of records this subscriber missed.
func (s *Sub) Dropped() uint64 { return s.dropped.Load() }

// Subscribe adds a subscriber with a buffer of n records (at least 1).
func (h *Hub) Subscribe(n int) *Sub {
	ch := make(chan Record, max(n, 1))
	s := &Sub{C: ch, ch: ch}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// Unsubscribe removes a subscriber and closes its channel; twice is fine.
func (h *Hub) Unsubscribe(s *Sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.ch)
	}
}

// Subscribers is the number of subscribers.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Publish hands r to every subscriber that has room, and counts it.
func (h *Hub) Publish(r Record) {
	if h.metrics != nil {
		h.count(r)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.ch <- r:
		default:
			s.dropped.Add(1)
			if h.metrics != nil {
				h.metrics.Dropped.Inc()
			}
		}
	}
}

// count adds r to the verdict metric under the policy that decided it
// (see DecidedBy). A pending verdict that differs (staged policies, or
// audit mode) is counted too, as verdict "pending-denied" or
// "pending-allowed" under the policy that would decide it.
func (h *Hub) count(r Record) {
	ns, pol, dir := DecidedBy(r)
	h.metrics.Verdicts.WithLabelValues(ns, pol, dir, r.Verdict).Inc()
	if p := r.Pending; p != nil && p.Verdict != r.Verdict {
		pr := r
		pr.Verdict, pr.DeniedAt, pr.Egress, pr.Ingress, pr.Pending = p.Verdict, p.DeniedAt, p.Egress, p.Ingress, nil
		ns, pol, dir := DecidedBy(pr)
		h.metrics.Verdicts.WithLabelValues(ns, pol, dir, "pending-"+p.Verdict).Inc()
	}
}
