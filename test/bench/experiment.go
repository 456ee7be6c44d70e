package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/policy"
)

// Names of the baseline configurations.
const (
	ConfigNone      = "none"
	ConfigConntrack = "ct-only"
)

// Experiment is one interleaved dataplane run.
type Experiment struct {
	// Policies lists the policy counts of netfence's configurations; each
	// has DefaultSelecting of them selecting the server.
	Policies []int
	// RemotePods is Scenario.RemotePods (0: DefaultRemotePods).
	RemotePods int
	// Extra are more of netfence's configurations, measured after those
	// of Policies (e.g. with fewer remote pods, to tell the cost of set
	// size from that of policy count).
	Extra []Scenario
	// Rounds is how many times every configuration is measured, in turn
	// (default 10).
	Rounds int
	// Load configures each measurement.
	Load LoadOptions
	// Settle is how long to wait after installing a configuration, after
	// a garbage collection, before the load starts (default 200ms): a full
	// sync leaves garbage in this process and deferred frees in the kernel
	// that would otherwise be charged to the measurement.
	Settle time.Duration
	// Prefix names the bed's namespaces (empty: random).
	Prefix string
	// Logf receives progress; nil discards it.
	Logf func(format string, args ...any)
}

// Round is one measurement of one configuration.
type Round struct {
	Rate       float64
	CPUPerConn time.Duration
	P50, P99   time.Duration
	Failures   int
}

// ConfigResult is what an experiment measured for one configuration.
type ConfigResult struct {
	Name string
	// Scenario, Model and RenderTime are set for netfence's configurations.
	Scenario   Scenario
	Model      *nft.Model
	RenderTime time.Duration
	// ServerAddrElements and ServerPortElements are the sizes of the
	// server's ingress address set and address . protocol . port set.
	ServerAddrElements, ServerPortElements int
	// Total merges every round.
	Total  LoadResult
	Rounds []Round
	// MaxConntrack is the most conntrack entries seen in the node
	// namespace after a round.
	MaxConntrack int
	// Records and Lost are the flow records a monitored configuration
	// delivered and lost, over all rounds.
	Records, Lost int

	set *policy.Set
}

// Rate returns the connection rate over all rounds.
func (c *ConfigResult) Rate() float64 { return c.Total.Rate() }

// RenderScenario builds a scenario's cluster and renders it for Node.
func RenderScenario(s Scenario) (*nft.Model, time.Duration, error) {
	c, err := Build(s)
	if err != nil {
		return nil, 0, err
	}
	t0 := time.Now()
	set := policy.NewSet(c)
	if len(set.Rejected) > 0 {
		return nil, 0, fmt.Errorf("bench: %s: %d policies rejected, the first: %w", s, len(set.Rejected), set.Rejected[0])
	}
	m := nft.Render(set, nft.Options{Node: Node})
	return m, time.Since(t0), nil
}

// scenarioSet compiles a scenario's policies.
func scenarioSet(s Scenario) (*policy.Set, error) {
	c, err := Build(s)
	if err != nil {
		return nil, err
	}
	return policy.NewSet(c), nil
}

// ServerSets returns what the IPv4 sets the server's ingress chain looks
// up in m hold: its address sets (exact and ranges) merged into addr, its
// ports sets into ports (nil when it has none of that kind); and whether
// m sends the server's address to that chain.
func ServerSets(m *nft.Model) (addr, ports *nft.PeerSet, ok bool) {
	ch := nft.ChainName(ServerPod().Key(), policy.Ingress)
	c := m.Chain(ch)
	if c == nil {
		return nil, nil, false
	}
	for _, r := range c.Rules {
		if r.Set == "" {
			continue
		}
		s := m.Set(r.Set)
		if s == nil || s.Family != nft.IPv4 {
			continue
		}
		p := &addr
		if s.Ports {
			p = &ports
		}
		if *p == nil {
			*p = &nft.PeerSet{Name: s.Name, Family: s.Family, Ports: s.Ports}
		} else {
			(*p).Name += "+" + s.Name
		}
		(*p).Elements = append((*p).Elements, s.Elements...)
	}
	vm := m.Map(nft.MapIngress4)
	ok = vm != nil && slices.ContainsFunc(vm.Elements, func(e nft.VMapElement) bool { return e.Addr == ServerAddr && e.Chain == ch })
	return addr, ports, ok
}

func setLen(s *nft.PeerSet) int {
	if s == nil {
		return 0
	}
	return len(s.Elements)
}

// Run renders the configurations, builds the bed, and measures every
// configuration Rounds times, interleaved: each round measures each
// configuration once (none, ct-only, then netfence's by increasing policy
// count, starting one further each round), so that drift and bursts of
// other load affect all alike. It tears the bed down on every path.
func (e *Experiment) Run(ctx context.Context) (_ []*ConfigResult, err error) {
	logf := e.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	rounds := e.Rounds
	if rounds <= 0 {
		rounds = 10
	}
	settle := e.Settle
	if settle <= 0 {
		settle = 200 * time.Millisecond
	}
	results := []*ConfigResult{{Name: ConfigNone}, {Name: ConfigConntrack}}
	scenarios := make([]Scenario, 0, len(e.Policies)+len(e.Extra))
	for _, n := range e.Policies {
		scenarios = append(scenarios, Scenario{Policies: n, RemotePods: e.RemotePods})
	}
	scenarios = append(scenarios, e.Extra...)
	for _, s := range scenarios {
		name := fmt.Sprintf("policies=%d", s.Policies)
		switch {
		case s.RemotePods != e.RemotePods || s.Selecting != 0 || s.DenyClient:
			name = strings.ReplaceAll(s.String(), " ", ",")
		case s.ClusterPolicies > 0:
			name += fmt.Sprintf(",cluster-policies=%d", s.ClusterPolicies)
		case s.Monitor:
			name += ",monitor"
			if s.MonitorVia != "" {
				name += "-" + s.MonitorVia
			}
		}
		m, dt, err := RenderScenario(s)
		if err != nil {
			return nil, err
		}
		as, ps, ok := ServerSets(m)
		a, p := setLen(as), setLen(ps)
		if !ok {
			return nil, fmt.Errorf("bench: %s: the rendered ruleset does not isolate the server", s)
		}
		s, _ = s.normalized()
		r := &ConfigResult{Name: name, Scenario: s, Model: m, RenderTime: dt,
			ServerAddrElements: a, ServerPortElements: p}
		if s.Monitor {
			if r.set, err = scenarioSet(s); err != nil {
				return nil, err
			}
		}
		results = append(results, r)
		logf("%s: rendered in %v: %d chains, %d sets, %d elements; server sets: %d addresses, %d address.proto.port",
			s, dt.Round(time.Millisecond), len(m.Chains), len(m.Sets), m.Counts().Elements(), a, p)
	}
	d, err := Up(ctx, e.Prefix)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := d.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	for round := range rounds {
		// Every round measures each configuration once; the starting
		// configuration rotates, so that none always follows another.
		for k := range results {
			r := results[(round+k)%len(results)]
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			var ierr error
			switch r.Name {
			case ConfigNone:
				ierr = d.InstallNone()
			case ConfigConntrack:
				ierr = d.InstallConntrackOnly()
			default:
				ierr = d.InstallModel(r.Model)
			}
			if ierr != nil {
				return nil, fmt.Errorf("bench: install %s: %w", r.Name, ierr)
			}
			var mon *monitorRun
			if r.set != nil {
				if mon, err = d.startMonitor(ctx, r.set, r.Scenario.MonitorVia); err != nil {
					return nil, err
				}
			}
			runtime.GC()
			time.Sleep(settle)
			lr, err := d.Load(ctx, e.Load)
			if mon != nil {
				n, lost, dropped, serr := mon.stop()
				if serr != nil {
					return nil, serr
				}
				r.Records += n
				r.Lost += lost + dropped
				logf("round %d %s: monitor delivered %d records, lost %d (reader %d, subscriber %d)", round+1, r.Name, n, lost+dropped, lost, dropped)
			}
			if err != nil {
				return nil, fmt.Errorf("bench: %s: %w", r.Name, err)
			}
			ct, err := d.ConntrackCount()
			if err != nil {
				return nil, err
			}
			r.MaxConntrack = max(r.MaxConntrack, ct)
			r.Rounds = append(r.Rounds, Round{Rate: lr.Rate(), CPUPerConn: lr.CPUPerConn(),
				P50: lr.Percentile(0.5), P99: lr.Percentile(0.99), Failures: lr.Failures})
			r.Total.Merge(lr)
			logf("round %d %-14s %8.0f conn/s  cpu %6.1f us/conn  p50 %6.1f us  p99 %7.1f us  failures %d  conntrack %d",
				round+1, r.Name, lr.Rate(), us(lr.CPUPerConn()), us(lr.Percentile(0.5)), us(lr.Percentile(0.99)), lr.Failures, ct)
		}
	}
	return results, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// Find returns the result of that name, or nil.
func Find(results []*ConfigResult, name string) *ConfigResult {
	for _, r := range results {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// RoundRatios returns, round by round, a's rate over b's.
func RoundRatios(a, b *ConfigResult) []float64 {
	var out []float64
	for i := range min(len(a.Rounds), len(b.Rounds)) {
		if b.Rounds[i].Rate > 0 {
			out = append(out, a.Rounds[i].Rate/b.Rounds[i].Rate)
		}
	}
	return out
}

// Median returns the median of xs (0 for none).
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}

// Quantile returns the q-quantile of xs by nearest rank (0 for none).
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	i := int(float64(len(xs))*q+0.999999) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

// LowCPU returns the first quartile of the round-by-round CPU times per
// connection, in microseconds. Other load on the machine only ever adds to
// them, so a low quantile estimates the cost itself better than the mean.
func (c *ConfigResult) LowCPU() float64 {
	var xs []float64
	for _, r := range c.Rounds {
		if r.CPUPerConn > 0 {
			xs = append(xs, us(r.CPUPerConn))
		}
	}
	return Quantile(xs, 0.25)
}

// CPURatio returns b's CPU time per connection over a's (each the first
// quartile of its rounds): above 1 when a costs less CPU per connection
// than b.
func CPURatio(a, b *ConfigResult) float64 { return ratio(b.LowCPU(), a.LowCPU()) }

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// FormatResults prints a table of an experiment's results. Over all
// rounds: the connection rate, the CPU time of this process per connection
// (the mean, and the first quartile of the rounds), the busy time of the
// whole machine per connection and the connect latency percentiles. Then
// ratios: x none and x ct are the rate over the no-table and the
// conntrack-only rate, each the median of the round-by-round ratios (the
// rounds pair the configurations in time), with the range of those ratios
// and the ratio of the totals; cpu x none and cpu x ct are the baseline's
// CPU time per connection over this one's, from the first quartiles (1:
// the same cost; 0.9: 11% more CPU per connection).
func FormatResults(results []*ConfigResult) string {
	var sb strings.Builder
	none, ct := Find(results, ConfigNone), Find(results, ConfigConntrack)
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "config\tserver set elems\tconn/s\tcpu us/conn\tcpu q25\tmachine us/conn\tp50 us\tp99 us\tfail\tx none: median (range) total\tcpu x none\tx ct: median (range) total\tcpu x ct\t")
	ratios := func(r, base *ConfigResult) string {
		rr := RoundRatios(r, base)
		if len(rr) == 0 {
			return "-"
		}
		return fmt.Sprintf("%.3f (%.2f..%.2f) %.3f", Median(rr), slices.Min(rr), slices.Max(rr), ratio(r.Rate(), base.Rate()))
	}
	for _, r := range results {
		elems := "-"
		if r.Model != nil {
			elems = fmt.Sprintf("%d+%d", r.ServerAddrElements, r.ServerPortElements)
		}
		xNone, cpuNone, xCT, cpuCT := "-", "-", "-", "-"
		if none != nil && r != none {
			xNone = ratios(r, none)
			cpuNone = fmt.Sprintf("%.3f", CPURatio(r, none))
		}
		if ct != nil && r != ct && r != none {
			xCT = ratios(r, ct)
			cpuCT = fmt.Sprintf("%.3f", CPURatio(r, ct))
		}
		fmt.Fprintf(w, "%s\t%s\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%s\t%s\t%s\t%s\t\n", r.Name, elems, r.Rate(),
			us(r.Total.CPUPerConn()), r.LowCPU(), us(r.Total.MachineCPUPerConn()), us(r.Total.Percentile(0.5)), us(r.Total.Percentile(0.99)),
			r.Total.Failures, xNone, cpuNone, xCT, cpuCT)
	}
	w.Flush()
	return sb.String()
}
