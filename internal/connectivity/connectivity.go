// Package connectivity is netfence's connectivity test: it builds the
// cluster in a network-namespace testbed, enforces policy there with the
// real dataplane, probes every pod pair and port with real traffic and
// compares what got through with the analyzer's verdicts.
//
// Run probes every ordered pair of active pods on every port, to each
// address of the destination whose family the source has (IPv4 and
// IPv6), and expects what policy.Set.Evaluate decides for that flow, as
// the dataplane sees it (Set.AddrFlow): NetworkPolicy and the tiers of
// cluster-scoped policy. Host-network pods run in the testbed's node
// namespace, so traffic to them (the node's addresses) is probed, and so
// is traffic from them, the node's own traffic (it leaves through the
// output hook, which netfence does not filter: ingress from a pod's own
// node is always allowed, policy.Set.FromOwnNode), to the pods the model
// puts on their node. The testbed is one node: traffic from a
// host-network pod to a pod the model puts on another node (or on none)
// is not probed. SCTP is probed with raw INIT packets (see package
// testbed).
package connectivity

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/netfence/netfence/internal/agent"
	"github.com/netfence/netfence/internal/analysis"
	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/flow"
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
	// Flows collects what the node's flow monitor saw while probing
	// (Report.Flows): denied packets through NFLOG, allowed connections
	// through conntrack events, explained as the agent explains them.
	Flows bool
	// Audit enforces in audit mode (nft.DenyAudit, agent --audit):
	// nothing is denied, so every probe is expected through; what policy
	// would deny is logged (see Flows) and Result.WouldAllow says it.
	Audit bool
}

// Result is one probed (or unprobed) pair and port: the matrix contract's
// fields (allowed is what the traffic showed), plus the expectation.
type Result struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Protocol string `json:"protocol"`
	Port     int32  `json:"port"`
	// FromAddress and ToAddress are the addresses of a probe (Run), or of
	// the flow Run expected for a pair it did not probe.
	FromAddress string `json:"fromAddress,omitempty"`
	ToAddress   string `json:"toAddress,omitempty"`
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
	// WouldAllow, in audit mode (Options.Audit), is the analyzer's
	// verdict, which enforcing would give; Expected is then true.
	WouldAllow *bool `json:"wouldAllow,omitempty"`
}

// Report is a run's result.
type Report struct {
	Ports []string `json:"ports"`
	Pods  []string `json:"pods"`
	// Results are, per port, source and destination (in the order of
	// Ports and Pods), the pair at the destination's primary address;
	// then (Run) the probes to the destinations' other addresses.
	Results    []Result `json:"results"`
	Mismatches int      `json:"mismatches"`
	Probes     int      `json:"probes"`
	// Duration of the whole run, setup and teardown included.
	Duration string `json:"duration"`
	// Audit is set when the dataplane audited instead of denying.
	Audit bool `json:"audit,omitempty"`
	// Reprobed counts the probes of a live run made again because they
	// disagreed with the analyzer while the agents may still have been
	// syncing (RunLive); their final outcome is reported.
	Reprobed int `json:"reprobed,omitempty"`
	// Flows are the flow records of the probes (Options.Flows), one per
	// connection: the packets of one connection (retransmissions, resent
	// datagrams) are merged, Count summing them. Written apart, as NDJSON
	// (WriteFlows).
	Flows []flow.Record `json:"-"`
}

// Run sets up the testbed for set's cluster (host-network pods in its
// node namespace), enforces, probes and tears everything down, on every
// path.
func Run(ctx context.Context, set *policy.Set, opts Options) (_ *Report, err error) {
	start := time.Now()
	if opts.Parallel <= 0 {
		opts.Parallel = 32
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	ports := opts.Ports
	if len(ports) == 0 {
		ports = analysis.DefaultPorts(set)
	}
	extra := make([]testbed.Port, len(ports))
	for i, p := range ports {
		extra[i] = testbed.Port{Protocol: p.Protocol, Port: p.Port}
	}
	bed, err := testbed.Up(ctx, set.Cluster, testbed.Options{Prefix: opts.Prefix, ExtraPorts: extra, HostNetwork: true})
	if err != nil {
		return nil, fmt.Errorf("testbed up: %w", err)
	}
	defer func() {
		if derr := bed.Down(); derr != nil && err == nil {
			err = fmt.Errorf("testbed down: %w", derr)
		}
	}()
	render := nft.Options{AllLocal: true, Deny: opts.Deny}
	if opts.Audit {
		render.Deny = nft.DenyAudit
	}
	var col *collector
	var applied func(uint64, *policy.Set)
	if opts.Flows || opts.Audit {
		// Every packet the ruleset denies (or audits) is logged: the
		// testbed's probes are bounded, no rate limit may hide one.
		render.Log = &nft.LogOptions{Group: flowLogGroup, Rate: 1 << 20}
	}
	if opts.Flows {
		if col, err = startCollector(ctx, bed, render); err != nil {
			return nil, err
		}
		defer col.cancel()
		applied = col.gens.Applied
	}
	applier, err := EnforceWith(ctx, bed, set.Cluster, render, applied, opts.Log)
	if err != nil {
		return nil, err
	}
	defer applier.Close()
	rep := probeSet(ctx, bed, set, ports, opts.Parallel, opts.Timeout, opts.Audit)
	if col != nil {
		rep.Flows = col.stop()
	}
	rep.Duration = time.Since(start).Round(time.Millisecond).String()
	return rep, nil
}

// Enforce installs the cluster's ruleset in the testbed's node namespace
// with the agent (every pod is local) and returns the applier bound there.
func Enforce(ctx context.Context, bed *testbed.Bed, c *cluster.Cluster, deny nft.Deny, log *slog.Logger) (*nft.Applier, error) {
	return EnforceWith(ctx, bed, c, nft.Options{AllLocal: true, Deny: deny}, nil, log)
}

// EnforceWith is Enforce with the render options and a hook called with
// the generation and policies of the ruleset applied (agent.Config.Applied).
func EnforceWith(ctx context.Context, bed *testbed.Bed, c *cluster.Cluster, render nft.Options, applied func(uint64, *policy.Set), log *slog.Logger) (*nft.Applier, error) {
	var applier *nft.Applier
	if err := bed.InNode(func() error {
		var err error
		applier, err = nft.NewApplier(0)
		return err
	}); err != nil {
		return nil, fmt.Errorf("open nftables in the node namespace: %w", err)
	}
	a := agent.New(agent.Config{Render: render, Dataplane: applier, Log: log, Applied: applied})
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

// Probe probes every pair of the matrix's pods on every port, at the
// destination's primary address, and compares with the matrix. The
// matrix evaluates NetworkPolicy; for cluster-scoped policy use ProbeSet.
func Probe(ctx context.Context, bed *testbed.Bed, m *analysis.Matrix, parallel int, timeout time.Duration) *Report {
	rep := &Report{}
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
		rep.record(&rep.Results[refs[i].result], res)
	}
	rep.Probes = len(specs)
	return rep
}

// fromOtherNodeWords says why Run does not probe from a host-network pod
// to a pod of another node.
const fromOtherNodeWords = "unprobed: from a host-network pod to a pod the cluster puts on another node (or on none); the testbed is one node"

// ProbeSet probes every ordered pair of the active pods of set's cluster
// on every port, to each address of the destination whose family the
// source has, and compares with Set.Evaluate on the flow between the two
// addresses. The first results are the pairs at the destinations'
// primary addresses, in the order of the report's ports and pods (as
// Probe's); the probes to other addresses follow.
func ProbeSet(ctx context.Context, bed *testbed.Bed, set *policy.Set, ports []analysis.Port, parallel int, timeout time.Duration) *Report {
	return probeSet(ctx, bed, set, ports, parallel, timeout, false)
}

// probeSet is ProbeSet; with audit, the dataplane audits instead of
// denying: every flow is expected through, and WouldAllow is the
// analyzer's verdict.
func probeSet(ctx context.Context, bed *testbed.Bed, set *policy.Set, ports []analysis.Port, parallel int, timeout time.Duration, audit bool) *Report {
	rep := &Report{Audit: audit}
	pods, _ := set.Cluster.ActivePods()
	for _, p := range ports {
		rep.Ports = append(rep.Ports, p.String())
	}
	for _, p := range pods {
		rep.Pods = append(rep.Pods, p.Key())
	}
	skipped := bed.Skipped()
	var specs []testbed.ProbeSpec
	var refs []int
	var extra []Result
	var extraSpecs []testbed.ProbeSpec
	for _, port := range ports {
		for _, from := range pods {
			for _, to := range pods {
				for ai, dst := range distinctFamilies(to.IPs) {
					src := from.IPFor(dst)
					r := Result{From: from.Key(), To: to.Key(), Protocol: string(port.Protocol), Port: port.Port,
						FromAddress: src.String(), ToAddress: dst.String()}
					if from == to {
						r.Allowed, r.Expected, r.Ingress, r.Egress = true, true, true, true
						r.Reason = "same pod: traffic never leaves the pod"
					} else {
						v := set.Evaluate(set.AddrFlow(src, dst, port.Protocol, port.Port))
						r.Allowed, r.Expected, r.Egress, r.Ingress = v.Allowed, v.Allowed, v.Egress.Allowed, v.Ingress.Allowed
						if audit {
							would := v.Allowed
							r.WouldAllow, r.Allowed, r.Expected = &would, true, true
						}
					}
					spec := testbed.ProbeSpec{From: from, To: dst, Protocol: port.Protocol, Port: port.Port}
					_, inBed := bed.PodNamespace(to.Key())
					_, fromBed := bed.PodNamespace(from.Key())
					switch why, skip := skipped[to.Key()]; {
					case from == to:
					case from.HostNetwork && !fromBed:
						r.Reason = "unprobed: source " + from.Key() + " is not in the testbed"
						if why, ok := skipped[from.Key()]; ok {
							r.Reason = "unprobed: source " + why
						}
					case from.HostNetwork && !fromOwnNode(set, from, src, to):
						r.Reason = fromOtherNodeWords
					case skip:
						r.Reason = why
					case !inBed:
						r.Reason = "host-network pod: not in the testbed"
					case src.Is4() != dst.Is4():
						r.Reason = fmt.Sprintf("unprobed: %s has no IPv%d address", from.Key(), family(dst))
						r.FromAddress = ""
					default:
						r.Probed = true
					}
					switch {
					case ai == 0 && r.Probed:
						specs = append(specs, spec)
						refs = append(refs, len(rep.Results))
						rep.Results = append(rep.Results, r)
					case ai == 0:
						rep.Results = append(rep.Results, r)
					case r.Probed:
						extra = append(extra, r)
						extraSpecs = append(extraSpecs, spec)
					}
				}
			}
		}
	}
	for i := range extra {
		refs = append(refs, len(rep.Results))
		rep.Results = append(rep.Results, extra[i])
	}
	specs = append(specs, extraSpecs...)
	results := bed.ProbeAll(ctx, specs, parallel, timeout)
	for i, res := range results {
		rep.record(&rep.Results[refs[i]], res)
	}
	rep.Probes = len(specs)
	return rep
}

// fromOwnNode reports whether the cluster puts host-network pod from,
// sending from src, on to's node: the testbed, one node, can then
// reproduce the flow.
func fromOwnNode(set *policy.Set, from *cluster.Pod, src netip.Addr, to *cluster.Pod) bool {
	_, ok := set.FromOwnNode(policy.Endpoint{Pod: from, IP: src}, to)
	return ok
}

// record fills a probed result with the probe's outcome.
func (rep *Report) record(r *Result, res testbed.Result) {
	r.Outcome = string(res.Outcome)
	switch {
	case res.Outcome == testbed.OutcomeUnprobed:
		r.Probed = false
		r.Reason = "unprobed: " + res.Detail
		return
	case res.Outcome == testbed.OutcomeError:
		r.Reason = fmt.Sprintf("probe error: %v", res.Err)
	}
	r.Allowed = res.Reached
	r.Mismatch = r.Allowed != r.Expected
	if r.Mismatch {
		rep.Mismatches++
	}
}

// distinctFamilies returns the first address of each family, the primary
// address first.
func distinctFamilies(ips []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, ip := range ips {
		ip = ip.Unmap()
		if !slices.ContainsFunc(out, func(o netip.Addr) bool { return o.Is4() == ip.Is4() }) {
			out = append(out, ip)
		}
	}
	return out
}

func family(ip netip.Addr) int {
	if ip.Is4() {
		return 4
	}
	return 6
}
