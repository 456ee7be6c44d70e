package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/nft"
)

// Knobs of BenchmarkConnect, from the environment (hack/bench-dataplane
// sets them):
//
//	NETFENCE_BENCH_DURATION  measured time per configuration and round (1s)
//	NETFENCE_BENCH_WARMUP    unmeasured load before each (150ms)
//	NETFENCE_BENCH_ROUNDS    rounds of the interleaved configurations (12)
//	NETFENCE_BENCH_WORKERS   connecting threads (2)
//	NETFENCE_BENCH_POLICIES  policy counts (10,100,1000,5000)
//	NETFENCE_BENCH_REMOTE    remote pod addresses (5000)
//	NETFENCE_BENCH_EXTRA     more configurations, as POLICIES:REMOTE pairs
//	                         (1000:100, to tell set size from policy count;
//	                         "none" for none), optionally :CLUSTERPOLICIES,
//	                         then :monitor (allowed-connection monitor from
//	                         conntrack events) or :monitor-nflog (from an
//	                         NFLOG rule on ct state new)
//	NETFENCE_BENCH_REPORT    file to write the result table and rounds to
//	NETFENCE_BENCH_PREFIX    namespace prefix: the dataplane bed is PREFIX-node,
//	                         PREFIX-p0, PREFIX-p1; the control-plane node
//	                         PREFIXc-node (default: random)
func envDuration(b *testing.B, key string, def time.Duration) time.Duration {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		b.Fatalf("%s=%q: want a duration", key, v)
	}
	return d
}

func envInts(b *testing.B, key string, def []int) []int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			b.Fatalf("%s=%q: want comma-separated counts", key, v)
		}
		out = append(out, n)
	}
	return out
}

func envScenarios(b *testing.B, key string, def []Scenario) []Scenario {
	v := os.Getenv(key)
	switch v {
	case "":
		return def
	case "none":
		return nil
	}
	var out []Scenario
	for _, f := range strings.Split(v, ",") {
		var s Scenario
		f = strings.TrimSpace(f)
		if rest, ok := strings.CutSuffix(f, ":monitor"); ok {
			f, s.Monitor = rest, true
		} else if rest, ok := strings.CutSuffix(f, ":monitor-nflog"); ok {
			f, s.Monitor, s.MonitorVia = rest, true, "nflog"
		} else if rest, ok := strings.CutSuffix(f, ":monitor-conntrack"); ok {
			f, s.Monitor, s.MonitorVia = rest, true, "conntrack"
		}
		if strings.Count(f, ":") == 2 {
			if _, err := fmt.Sscanf(f, "%d:%d:%d", &s.Policies, &s.RemotePods, &s.ClusterPolicies); err != nil {
				b.Fatalf("%s=%q: want POLICIES:REMOTE[:CLUSTERPOLICIES], comma-separated: %v", key, v, err)
			}
		} else if _, err := fmt.Sscanf(f, "%d:%d", &s.Policies, &s.RemotePods); err != nil {
			b.Fatalf("%s=%q: want POLICIES:REMOTE[:CLUSTERPOLICIES], comma-separated: %v", key, v, err)
		}
		out = append(out, s)
	}
	return out
}

func envInt(b *testing.B, key string, def int) int {
	v := envInts(b, key, []int{def})
	if len(v) != 1 {
		b.Fatalf("%s: want one number", key)
	}
	return v[0]
}

// BenchmarkConnect measures new TCP connections between the client and the
// server pods of a testbed, with no table, with the conntrack-only table,
// and through netfence's table for each policy count, interleaved in one
// run. The work happens once, in the parent; each configuration is then
// reported as a sub-benchmark, so run it with -benchtime=1x:
//
//	ns/op        wall time per connection (1/rate)
//	conn/s       connections per second
//	cpu-us/conn  CPU time of this process (client, server and the softirq
//	             work done on their behalf) per connection
//	cpu-q25-us/conn the first quartile of that over the rounds
//	machine-us/conn busy time of all CPUs per connection (includes any other
//	             load on the machine)
//	p50-us p99-us connect latency
//	x-none       median of the round-by-round rate ratios to no table
//	x-ct         median of the round-by-round rate ratios to conntrack-only
//	x-ct-min     the lowest of those
//	x-ct-total   total rate over the conntrack-only total rate
//	cpu-x-none, cpu-x-ct  the baseline's cpu-q25-us/conn over this one's
//	set-elems    elements of the server's two ingress sets
func BenchmarkConnect(b *testing.B) {
	needRoot(b)
	e := &Experiment{
		Policies:   envInts(b, "NETFENCE_BENCH_POLICIES", []int{10, 100, 1000, 5000}),
		RemotePods: envInt(b, "NETFENCE_BENCH_REMOTE", DefaultRemotePods),
		Rounds:     envInt(b, "NETFENCE_BENCH_ROUNDS", 12),
		Load: LoadOptions{
			Workers:  envInt(b, "NETFENCE_BENCH_WORKERS", 2),
			Duration: envDuration(b, "NETFENCE_BENCH_DURATION", time.Second),
			Warmup:   envDuration(b, "NETFENCE_BENCH_WARMUP", 150*time.Millisecond),
		},
		Extra: envScenarios(b, "NETFENCE_BENCH_EXTRA", []Scenario{{Policies: 1000, RemotePods: 100},
			{Policies: 1000, ClusterPolicies: 10}, {Policies: 1000, ClusterPolicies: 100}, {Policies: 1000, ClusterPolicies: 1000},
			{Policies: 1000, Monitor: true}}),
		Prefix: os.Getenv("NETFENCE_BENCH_PREFIX"),
	}
	var log strings.Builder
	e.Logf = func(format string, args ...any) {
		b.Logf(format, args...)
		fmt.Fprintf(&log, format+"\n", args...)
	}
	results, err := e.Run(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	table := FormatResults(results)
	b.Log("\n" + table)
	if path := os.Getenv("NETFENCE_BENCH_REPORT"); path != "" {
		head := fmt.Sprintf("%d rounds x %v (+%v warm-up) per configuration, %d workers, %d remote pods\n",
			e.Rounds, e.Load.Duration, e.Load.Warmup, e.Load.Workers, e.RemotePods)
		if err := os.WriteFile(path, []byte(head+log.String()+"\n"+table), 0o644); err != nil {
			b.Error(err)
		}
	}
	none, ct := Find(results, ConfigNone), Find(results, ConfigConntrack)
	for _, r := range results {
		b.Run(r.Name, func(b *testing.B) {
			if rate := r.Rate(); rate > 0 {
				b.ReportMetric(1e9/rate, "ns/op")
			}
			b.ReportMetric(r.Rate(), "conn/s")
			b.ReportMetric(us(r.Total.CPUPerConn()), "cpu-us/conn")
			b.ReportMetric(r.LowCPU(), "cpu-q25-us/conn")
			b.ReportMetric(us(r.Total.MachineCPUPerConn()), "machine-us/conn")
			b.ReportMetric(us(r.Total.Percentile(0.5)), "p50-us")
			b.ReportMetric(us(r.Total.Percentile(0.99)), "p99-us")
			b.ReportMetric(float64(r.Total.Failures), "failures")
			if r.Scenario.Monitor {
				b.ReportMetric(float64(r.Records), "records")
				b.ReportMetric(float64(r.Lost), "records-lost")
			}
			if r != none {
				b.ReportMetric(Median(RoundRatios(r, none)), "x-none")
				b.ReportMetric(CPURatio(r, none), "cpu-x-none")
			}
			if r != none && r != ct {
				rr := RoundRatios(r, ct)
				b.ReportMetric(Median(rr), "x-ct")
				if len(rr) > 0 {
					b.ReportMetric(slices.Min(rr), "x-ct-min")
				}
				b.ReportMetric(ratio(r.Rate(), ct.Rate()), "x-ct-total")
				b.ReportMetric(CPURatio(r, ct), "cpu-x-ct")
				b.ReportMetric(float64(r.ServerAddrElements+r.ServerPortElements), "set-elems")
			}
		})
		if r.Total.Failures > r.Total.Conns/1000 {
			b.Errorf("%s: %d failed connections (%v) for %d successful", r.Name, r.Total.Failures, r.Total.Errors, r.Total.Conns)
		}
	}
}

// controlPlanePrefix is the prefix of the control-plane node namespace.
func controlPlanePrefix() string {
	if p := os.Getenv("NETFENCE_BENCH_PREFIX"); p != "" {
		return p + "c"
	}
	return ""
}

var (
	synthOnce    sync.Once
	synthCluster *cluster.Cluster
	synthErr     error
)

func bigCluster(b *testing.B) *cluster.Cluster {
	synthOnce.Do(func() { synthCluster, synthErr = SynthCluster(SynthConfig) })
	if synthErr != nil {
		b.Fatal(synthErr)
	}
	return synthCluster
}

var controlPlaneCases = []struct {
	name string
	opts nft.Options
	// slow cases run only with NETFENCE_BENCH_ALL_LOCAL=1.
	slow bool
}{
	{"local=node-0", nft.Options{Node: SynthNode}, false},
	{"local=all", nft.Options{AllLocal: true}, true},
}

// skipSlow skips the every-pod-local cases unless asked for: rendering
// them takes tens of seconds and loading them minutes.
func skipSlow(b *testing.B, slow bool) {
	if slow && os.Getenv("NETFENCE_BENCH_ALL_LOCAL") != "1" {
		b.Skip("every pod local: set NETFENCE_BENCH_ALL_LOCAL=1 to run (minutes)")
	}
}

// slowApplyTimeout bounds one transaction of the every-pod-local cases.
const slowApplyTimeout = 15 * time.Minute

func reportModel(b *testing.B, c *cluster.Cluster, opts nft.Options, m *nft.Model) {
	b.ReportMetric(float64(LocalPods(c, opts)), "local-pods")
	b.ReportMetric(float64(len(m.Chains)), "chains")
	b.ReportMetric(float64(len(m.Sets)), "sets")
	b.ReportMetric(float64(m.Counts().Elements()), "elements")
}

func startNode(b *testing.B, slow bool) *NodeNS {
	n, err := UpNode(context.Background(), controlPlanePrefix())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := n.Close(); err != nil {
			b.Error(err)
		}
	})
	if slow {
		n.Applier.Timeout = slowApplyTimeout
	}
	return n
}

func checkLive(b *testing.B, n *NodeNS, m *nft.Model) {
	live, ok, err := n.Applier.Counts(context.Background())
	if err != nil || !ok {
		b.Fatalf("read back: %v %v", ok, err)
	}
	if fmt.Sprint(live) != fmt.Sprint(m.Counts()) {
		b.Fatal("the live table differs from the model")
	}
}

// BenchmarkFullSync times the node agent's first sync (internal/agent,
// as it runs) of the SynthConfig cluster, 10,000 pods and 1,000 policies:
// compile the policies, render the node's ruleset and load it in one
// transaction (replacing the previous table). ns/op is the whole;
// render-ms and apply-ms the parts. local=node-0 renders node-0's pods,
// local=all every pod (only with NETFENCE_BENCH_ALL_LOCAL=1).
func BenchmarkFullSync(b *testing.B) {
	needRoot(b)
	for _, tc := range controlPlaneCases {
		b.Run(tc.name, func(b *testing.B) {
			skipSlow(b, tc.slow)
			c := bigCluster(b)
			n := startNode(b, tc.slow)
			var render, apply time.Duration
			var a *TimedAgent
			b.ResetTimer()
			for range b.N {
				a = n.NewAgent(tc.opts)
				t, err := a.Sync(context.Background(), c)
				if err != nil {
					b.Fatal(err)
				}
				if !t.Full {
					b.Fatal("the first sync of an agent was not a full one")
				}
				render += t.Render
				apply += t.Apply
			}
			b.StopTimer()
			b.ReportMetric(float64(render.Microseconds())/1000/float64(b.N), "render-ms")
			b.ReportMetric(float64(apply.Microseconds())/1000/float64(b.N), "apply-ms")
			reportModel(b, c, tc.opts, a.Model())
			checkLive(b, n, a.Model())
		})
	}
}

// BenchmarkLabelChange times one pod label change to enforced for the
// SynthConfig cluster, through the node agent as it runs: a pod takes the
// labels of another pod of its namespace (ChangingRelabel picks changes
// that alter the node's ruleset), the source builds the new snapshot, and
// Agent.Sync compiles, renders, diffs and applies the difference in one
// transaction. b.N counts such changes (run with -benchtime=100x or more);
// syncs that changed nothing after all are counted in noop. Reported over
// the changes: enforce (the whole Sync) p50/p99, render (compile + render
// + the agent's change check) and apply (the transaction) p50/p99, diff
// p99, and snapshot p99 (building the new cluster: the source's work).
func BenchmarkLabelChange(b *testing.B) {
	needRoot(b)
	for _, tc := range controlPlaneCases {
		b.Run(tc.name, func(b *testing.B) {
			skipSlow(b, tc.slow)
			c := bigCluster(b)
			n := startNode(b, tc.slow)
			a := n.NewAgent(tc.opts)
			if _, err := a.Sync(context.Background(), c); err != nil {
				b.Fatal(err)
			}
			r := rand.New(rand.NewPCG(7, 7))
			var enforce, render, diff, apply, snapshot []time.Duration
			noop, elems := 0, 0
			b.ResetTimer()
			for attempts := 0; len(enforce) < b.N; attempts++ {
				if attempts > 10*b.N+10 {
					b.Fatalf("only %d of %d label changes altered the ruleset", len(enforce), b.N)
				}
				b.StopTimer()
				i, lbls, ok := ChangingRelabel(c, tc.opts, r)
				if !ok {
					b.Fatal("found no label change that alters the ruleset")
				}
				b.StartTimer()
				t0 := time.Now()
				c = Relabel(c, i, lbls)
				snap := time.Since(t0)
				t, err := a.Sync(context.Background(), c)
				if err != nil {
					b.Fatal(err)
				}
				if !t.Changed {
					noop++
					continue
				}
				enforce = append(enforce, t.Total)
				render = append(render, t.Render)
				diff = append(diff, t.Diff)
				apply = append(apply, t.Apply)
				snapshot = append(snapshot, snap)
				elems += t.Elements
			}
			b.StopTimer()
			ms := func(ds []time.Duration, q float64) float64 {
				ds = slices.Clone(ds)
				slices.Sort(ds)
				return float64(Percentile(ds, q).Microseconds()) / 1000
			}
			b.ReportMetric(ms(enforce, 0.5)*1e6, "ns/op")
			b.ReportMetric(ms(enforce, 0.5), "enforce-p50-ms")
			b.ReportMetric(ms(enforce, 0.99), "enforce-p99-ms")
			b.ReportMetric(ms(render, 0.5), "render-p50-ms")
			b.ReportMetric(ms(render, 0.99), "render-p99-ms")
			b.ReportMetric(ms(diff, 0.99), "diff-p99-ms")
			b.ReportMetric(ms(apply, 0.5), "apply-p50-ms")
			b.ReportMetric(ms(apply, 0.99), "apply-p99-ms")
			b.ReportMetric(ms(snapshot, 0.99), "snapshot-p99-ms")
			b.ReportMetric(float64(noop), "noop")
			b.ReportMetric(float64(elems)/float64(len(enforce)), "elements/change")
			b.ReportMetric(float64(LocalPods(c, tc.opts)), "local-pods")
			checkLive(b, n, a.Model())
		})
	}
}
