// Package connectivity is netfence's connectivity test: it builds the
// cluster in a network-namespace testbed, enforces policy there with the
// real dataplane, probes every pod pair and port with real traffic and
// compares what got through with the analyzer's truth table.
package connectivity

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/netfence/netfence/internal/agent"
	"github.com/netfence/netfence/internal/analysis"
	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/policy"
	"github.com/netfence/netfence/internal/testbed"
)

// Options configure a run.
type Options struct {
	// Ports to probe; empty means the analyzer's default ports.
	Ports []analysis.Port
	// Parallel bounds concurrent probes (default 32).
	Parallel int
	// Timeout bounds one probe (default 1s).
	Timeout time.Duration
	// Deny is how the dataplane ends denied traffic; DenyReject makes
	// denied probes fail fast.
	Deny nft.Deny
	// Prefix names the testbed's namespaces (default: random).
	Prefix string
	Log    *slog.Logger
}

// Result is one probed (or unprobed) pair and port: the matrix contract's
// fields (allowed is what the traffic showed), plus the expectation.
type Result struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Protocol string `json:"protocol"`
	Port     int32  `json:"port"`
	// Allowed is the observed verdict (the expected one when unprobed).
	Allowed bool `json:"allowed"`
	// Ingress and Egress are the analyzer's sides.
	Ingress  bool `json:"ingress"`
	Egress   bool `json:"egress"`
	Expected bool `json:"expected"`
	Probed   bool `json:"probed"`
	// Outcome is the probe's outcome (reached, refused, timeout, ...).
	Outcome  string `json:"outcome,omitempty"`
	Mismatch bool   `json:"mismatch"`
	Reason   string `json:"reason,omitempty"`
}

// Report is a run's result.
type Report struct {
	Ports      []string `json:"ports"`
	Pods       []string `json:"pods"`
	Results    []Result `json:"results"`
	Mismatches int      `json:"mismatches"`
	Probes     int      `json:"probes"`
	// Duration of the whole run, setup and teardown included.
	Duration string `json:"duration"`

	matrix *analysis.Matrix
}

// Run sets up the testbed for set's cluster, enforces, probes and tears
// everything down, on every path.
func Run(ctx context.Context, set *policy.Set, opts Options) (_ *Report, err error) {
	start := time.Now()
	if opts.Parallel <= 0 {
		opts.Parallel = 32
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	m, err := analysis.ComputeMatrix(ctx, set, analysis.Options{Ports: opts.Ports})
	if err != nil {
		return nil, err
	}
	extra := make([]testbed.Port, len(m.Ports))
	for i, p := range m.Ports {
		extra[i] = testbed.Port{Protocol: p.Protocol, Port: p.Port}
	}
	bed, err := testbed.Up(ctx, set.Cluster, testbed.Options{Prefix: opts.Prefix, ExtraPorts: extra})
	if err != nil {
		return nil, fmt.Errorf("testbed up: %w", err)
	}
	defer func() {
		if derr := bed.Down(); derr != nil && err == nil {
			err = fmt.Errorf("testbed down: %w", derr)
		}
	}()
	applier, err := Enforce(ctx, bed, set.Cluster, opts.Deny, opts.Log)
	if err != nil {
		return nil, err
	}
	defer applier.Close()
	rep := Probe(ctx, bed, m, opts.Parallel, opts.Timeout)
	rep.Duration = time.Since(start).Round(time.Millisecond).String()
	return rep, nil
}

// Enforce installs the cluster's ruleset in the testbed's node namespace
// with the agent (every pod is local) and returns the applier bound there.
func Enforce(ctx context.Context, bed *testbed.Bed, c *cluster.Cluster, deny nft.Deny, log *slog.Logger) (*nft.Applier, error) {
	var applier *nft.Applier
	if err := bed.InNode(func() error {
		var err error
		applier, err = nft.NewApplier(0)
		return err
	}); err != nil {
		return nil, fmt.Errorf("open nftables in the node namespace: %w", err)
	}
	a := agent.New(agent.Config{Render: nft.Options{AllLocal: true, Deny: deny}, Dataplane: applier, Log: log})
	if err := a.CheckKernel(ctx); err != nil {
		applier.Close()
		return nil, err
	}
	if _, err := a.Sync(ctx, c); err != nil {
		applier.Close()
		return nil, err
	}
	return applier, nil
}

// Probe probes every pair of the matrix's pods on every port and compares
// with the matrix.
func Probe(ctx context.Context, bed *testbed.Bed, m *analysis.Matrix, parallel int, timeout time.Duration) *Report {
	rep := &Report{matrix: m}
	for _, p := range m.Ports {
		rep.Ports = append(rep.Ports, p.String())
	}
	for _, p := range m.Pods {
		rep.Pods = append(rep.Pods, p.Key())
	}
	type ref struct{ result int }
	var specs []testbed.ProbeSpec
	var refs []ref
	for k, port := range m.Ports {
		for i, from := range m.Pods {
			for j, to := range m.Pods {
				allowed, egress, ingress := m.Result(i, j, k)
				r := Result{From: from.Key(), To: to.Key(), Protocol: string(port.Protocol), Port: port.Port,
					Allowed: allowed, Expected: allowed, Ingress: ingress, Egress: egress}
				switch {
				case i == j:
					r.Reason = "same pod: traffic never leaves the pod"
				case from.HostNetwork || to.HostNetwork:
					r.Reason = "hostNetwork pod: not in the testbed"
				default:
					r.Probed = true
					specs = append(specs, testbed.ProbeSpec{From: from, To: to.IPs[0], Protocol: port.Protocol, Port: port.Port})
					refs = append(refs, ref{len(rep.Results)})
				}
				rep.Results = append(rep.Results, r)
			}
		}
	}
	results := bed.ProbeAll(ctx, specs, parallel, timeout)
	for i, res := range results {
		r := &rep.Results[refs[i].result]
		r.Outcome = string(res.Outcome)
		switch {
		case res.Outcome == testbed.OutcomeUnprobed:
			r.Probed = false
			r.Reason = "unprobed: " + res.Detail
			continue
		case res.Outcome == testbed.OutcomeError:
			r.Reason = fmt.Sprintf("probe error: %v", res.Err)
		}
		r.Allowed = res.Reached
		r.Mismatch = r.Allowed != r.Expected
		if r.Mismatch {
			rep.Mismatches++
		}
	}
	rep.Probes = len(specs)
	return rep
}
