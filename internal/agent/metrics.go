package agent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the agent's Prometheus metrics, in a registry of their own.
type Metrics struct {
	Registry     *prometheus.Registry
	syncs        *prometheus.CounterVec
	syncDuration *prometheus.HistogramVec
	lastError    prometheus.Gauge
	lastSuccess  prometheus.Gauge
	rules        prometheus.Gauge
	elements     prometheus.Gauge
	sets         prometheus.Gauge
	localPods    prometheus.Gauge
	policies     prometheus.Gauge
	rejected     prometheus.Gauge
}

// NewMetrics registers the agent's metrics (and the Go and process
// collectors) in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netfence_syncs_total", Help: "Ruleset syncs by kind (full, incremental, noop) and result (ok, error).",
		}, []string{"kind", "result"}),
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "netfence_sync_duration_seconds", Help: "Time from snapshot to ruleset in the kernel.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"kind"}),
		lastError:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "netfence_last_sync_error", Help: "1 when the last sync failed (the kernel keeps the last applied state), else 0."}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "netfence_last_sync_success_timestamp_seconds", Help: "Unix time of the last successful sync."}),
		rules:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "netfence_ruleset_rules", Help: "Rules in netfence's table."}),
		elements:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "netfence_ruleset_set_elements", Help: "Set and map elements in netfence's table."}),
		sets:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "netfence_ruleset_sets", Help: "Sets in netfence's table."}),
		localPods:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "netfence_local_pods", Help: "Active pods on this node."}),
		policies:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "netfence_policies", Help: "NetworkPolicies in force."}),
		rejected:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "netfence_policies_rejected", Help: "NetworkPolicies rejected as invalid."}),
	}
	m.Registry.MustRegister(m.syncs, m.syncDuration, m.lastError, m.lastSuccess, m.rules, m.elements, m.sets,
		m.localPods, m.policies, m.rejected,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) observe(st Stats, err error) {
	if m == nil {
		return
	}
	kind := "noop"
	switch {
	case st.Full:
		kind = "full"
	case st.Changed:
		kind = "incremental"
	}
	if err != nil {
		m.syncs.WithLabelValues(kind, "error").Inc()
		m.lastError.Set(1)
		return
	}
	m.syncs.WithLabelValues(kind, "ok").Inc()
	m.syncDuration.WithLabelValues(kind).Observe(st.Duration.Seconds())
	m.lastError.Set(0)
	m.lastSuccess.SetToCurrentTime()
	m.rules.Set(float64(st.Counts.Rules()))
	m.elements.Set(float64(st.Counts.Elements()))
	m.sets.Set(float64(len(st.Counts.Sets)))
	m.localPods.Set(float64(st.LocalPods))
	m.policies.Set(float64(st.Policies))
	m.rejected.Set(float64(st.Rejected))
}

// Health says whether the agent is alive and ready: ready once the first
// sync is in the kernel, and not while the kernel refuses the ruleset.
type Health struct {
	mu      sync.Mutex
	synced  bool
	lastErr error
}

func (h *Health) record(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastErr = err
	if err == nil {
		h.synced = true
	}
}

// Ready returns nil when ready, or why not.
func (h *Health) Ready() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.lastErr != nil:
		return h.lastErr
	case !h.synced:
		return errors.New("first sync not done yet")
	}
	return nil
}

// Serve runs the health and metrics endpoints (/healthz, /readyz,
// /metrics) on addr until ctx ends.
func Serve(ctx context.Context, addr string, h *Health, m *Metrics) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := h.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	if m != nil {
		mux.Handle("/metrics", metricsHandler(m))
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func metricsHandler(m *Metrics) http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
