package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/netfence/netfence/internal/policy"
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
	cpolicies    *prometheus.GaugeVec
	rejected     *prometheus.GaugeVec
	sourceError  prometheus.Gauge
	sourceFaults *prometheus.CounterVec
	degraded     prometheus.Gauge
	conflicts    prometheus.Gauge
	revoked      prometheus.Counter
	revokeErrors prometheus.Counter
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
		cpolicies: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "netfence_cluster_policies",
			Help: "Cluster-scoped policies (ClusterNetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy) in force, by tier (Admin, Baseline); fail-closed stand-ins included.",
		}, []string{"tier"}),
		rejected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "netfence_policies_rejected",
			Help: "Policies (NetworkPolicies and cluster-scoped policies) that did not compile, by reason (invalid, compile) and by what is enforced instead (last-good: the last compiled version; deny: the selected pods are isolated with no allows, or a cluster policy's subject is denied in every direction it has rules).",
		}, []string{"reason", "action"}),
		sourceError: prometheus.NewGauge(prometheus.GaugeOpts{Name: "netfence_source_error", Help: "1 while the policy source cannot be read (a manifests path missing or unreadable, a conflict that blocks every change: the kernel keeps the last state; in Kubernetes mode, a served cluster-scoped policy resource the agent cannot list: its policies are not enforced)."}),
		sourceFaults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netfence_source_faults_total", Help: "Faults of the policy source by kind (source: a path missing or unreadable; file: a file that cannot be read or parsed keeps its previous objects; conflict: one object in two files).",
		}, []string{"kind"}),
		degraded:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "netfence_source_degraded", Help: "1 while some file cannot be read or parsed, or objects conflict: the last good state of those files is enforced."}),
		revoked:      prometheus.NewCounter(prometheus.CounterOpts{Name: "netfence_flows_revoked_total", Help: "Established flows whose conntrack entries were marked revoked (dropped both ways) because a sync denied them."}),
		revokeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "netfence_revoke_errors_total", Help: "Syncs after which revoking denied established flows failed."}),
		conflicts:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "netfence_address_conflicts", Help: "Addresses held by more than one running pod; every holder is denied all traffic."}),
	}
	m.Registry.MustRegister(m.syncs, m.syncDuration, m.lastError, m.lastSuccess, m.rules, m.elements, m.sets,
		m.localPods, m.policies, m.cpolicies, m.rejected, m.sourceError, m.sourceFaults, m.degraded, m.revoked, m.revokeErrors, m.conflicts,
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
	m.revoked.Add(float64(len(st.Revoked)))
	m.conflicts.Set(float64(st.Conflicts))
	if st.RevokeErr != nil {
		m.revokeErrors.Inc()
	}
	m.syncDuration.WithLabelValues(kind).Observe(st.Duration.Seconds())
	m.lastError.Set(0)
	m.lastSuccess.SetToCurrentTime()
	m.rules.Set(float64(st.Counts.Rules()))
	m.elements.Set(float64(st.Counts.Elements()))
	m.sets.Set(float64(len(st.Counts.Sets)))
	m.localPods.Set(float64(st.LocalPods))
	m.policies.Set(float64(st.Policies))
	for _, t := range policy.Tiers {
		m.cpolicies.WithLabelValues(t.String()).Set(float64(st.ClusterPolicies[t]))
	}
	m.rejected.Reset()
	for _, fb := range st.Fallbacks {
		m.rejected.WithLabelValues(fb.Reason, fb.Action).Inc()
	}
}

// kubeSource records whether every resource the informers should read is
// read (Kubernetes mode).
func (m *Metrics) kubeSource(err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.sourceError.Set(1)
		return
	}
	m.sourceError.Set(0)
}

// source records the outcome of reading the source.
func (m *Metrics) source(err error, snap *Snapshot) {
	if m == nil {
		return
	}
	if err != nil {
		m.sourceError.Set(1)
		m.sourceFaults.WithLabelValues("source").Inc()
		return
	}
	m.sourceError.Set(0)
	degraded := 0.0
	if snap != nil && snap.Degraded {
		degraded = 1
	}
	m.degraded.Set(degraded)
	if snap == nil {
		return
	}
	for _, p := range snap.Problems {
		var fp *FileProblem
		var ce *ConflictError
		switch {
		case errors.As(p, &fp):
			m.sourceFaults.WithLabelValues("file").Inc()
		case errors.As(p, &ce):
			m.sourceFaults.WithLabelValues("conflict").Inc()
		}
	}
}

// Health says whether the agent is alive and ready: ready once the first
// sync is in the kernel, and not while the kernel refuses the ruleset.
type Health struct {
	mu        sync.Mutex
	synced    bool
	lastErr   error
	sourceErr error
}

// recordSource records whether the source could be read; while it cannot
// (or reads degraded), the agent is not ready.
func (h *Health) recordSource(err error) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sourceErr = err
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
	case h.sourceErr != nil:
		return h.sourceErr
	case h.lastErr != nil:
		return h.lastErr
	case !h.synced:
		return errors.New("first sync not done yet")
	}
	return nil
}

// Serve runs the health endpoints (/healthz, /readyz) on healthAddr and,
// when m is set, /metrics: on healthAddr too unless metricsAddr is given,
// then there only. It returns when ctx ends.
func Serve(ctx context.Context, healthAddr, metricsAddr string, h *Health, m *Metrics) error {
	health := http.NewServeMux()
	health.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	health.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := h.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	servers := map[string]*http.ServeMux{}
	if healthAddr != "" {
		servers[healthAddr] = health
	}
	if m != nil {
		switch {
		case metricsAddr == "" && healthAddr != "":
			health.Handle("/metrics", metricsHandler(m))
		case metricsAddr != "" && metricsAddr == healthAddr:
			health.Handle("/metrics", metricsHandler(m))
		case metricsAddr != "":
			mux := http.NewServeMux()
			mux.Handle("/metrics", metricsHandler(m))
			servers[metricsAddr] = mux
		}
	}
	errs := make(chan error, len(servers))
	for addr, mux := range servers {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		}()
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- err
				return
			}
			errs <- nil
		}()
	}
	for range servers {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

func metricsHandler(m *Metrics) http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
