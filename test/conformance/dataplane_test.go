package conformance

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/conformance"
	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/nsfd"
	"github.com/netfence/netfence/internal/policy"
	"github.com/netfence/netfence/internal/testbed"
)

// servedPorts are the ports upstream's base manifest
// (conformance/base/manifests.yaml) serves beyond the declared container
// ports, which the testbed serves anyway: the pod-network pods' agnhost
// serve-hostname on TCP 80 and 8080 and UDP 5353 and 53 and agnhost
// porter on SCTP 9003 and 9005 (only TCP 80 "web" and UDP 53 "dns" are
// declared), and the host-network centaur pods' netexec HTTP ports (host
// ports 3 and 5) and porter SCTP ports (host ports 6 and 7). The testbed
// serves extra ports on every pod of the bed; serving more than upstream
// does changes nothing here, since every probed flow is checked to
// connect without policy and no other flow is probed.
func servedPorts() []testbed.Port {
	return []testbed.Port{
		{Protocol: corev1.ProtocolTCP, Port: 80}, {Protocol: corev1.ProtocolTCP, Port: 8080},
		{Protocol: corev1.ProtocolUDP, Port: 5353}, {Protocol: corev1.ProtocolUDP, Port: 53},
		{Protocol: corev1.ProtocolSCTP, Port: 9003}, {Protocol: corev1.ProtocolSCTP, Port: 9005},
		{Protocol: corev1.ProtocolTCP, Port: conformance.HostNetworkPort(3)},
		{Protocol: corev1.ProtocolTCP, Port: conformance.HostNetworkPort(5)},
		{Protocol: corev1.ProtocolSCTP, Port: conformance.HostNetworkPort(6)},
		{Protocol: corev1.ProtocolSCTP, Port: conformance.HostNetworkPort(7)},
	}
}

const (
	// allowTimeout bounds a probe upstream expects to connect: on veths
	// it connects in about a millisecond, so the bound only matters when
	// the dataplane wrongly drops it.
	allowTimeout = 2 * time.Second
	// denyTimeout bounds a probe upstream expects to be dropped (Deny in
	// a tier is a drop; so is NetworkPolicy's default with Options.Deny
	// drop): the probe waits it out, TCP's SYN, UDP's datagram and SCTP's
	// INIT resent within it.
	denyTimeout = 400 * time.Millisecond
	// parallelProbes bounds the probes of one step run at once. Probes
	// are independent: each has its own socket and source port, servers
	// answer concurrently, and raw SCTP watchers each get every packet.
	parallelProbes = 16
	// stackDeadline bounds the run of one stack, setup included.
	stackDeadline = 4 * time.Minute
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and nftables rules (CI runs as root)")
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		t.Skipf("no network namespace support: %v", err)
	}
}

// TestDataplaneConformance replays every upstream conformance test with
// real traffic, on IPv4, IPv6 and dual-stack clusters (one sub-test per
// stack, run at the same time, then one per upstream test and t.Run).
//
// Per stack, one testbed holds the base cluster's pods (the scenarios
// share them; only policies and labels change): a network namespace per
// pod-network pod serving upstream's ports, and the host-network centaur
// pods in the node namespace (testbed.Options.HostNetwork: their node
// addresses on its loopback, so that traffic to them crosses the node's
// input hook, where netfence runs the sender's egress policy, as on a
// real node). netfence's dataplane enforces there: nft.Renderer
// renders each state (policy.NewSet of the state read by netfence's
// loader) with every pod local, and the Applier applies nft.Diff from the
// previous model — one transaction per change, across mutations
// (priorities, rule order, actions, named ports, label changes) and from
// one scenario's last state to the next one's first — after checking that
// the incremental render equals a full render. Before each step's probes
// the node's conntrack table is flushed, so that every probe is a new
// flow as upstream's new connections are. Each probe runs from the client
// pod's namespace to the server's status.podIP (a host-network server's
// is its node's address); it must connect when upstream's shouldConnect
// is true and time out (nothing came back, as upstream requires) when it
// is false.
//
// SCTP: this kernel has no SCTP sockets; SCTP probes are made with raw
// packets as internal/testbed makes them (an INIT sent by a raw socket in
// the client, watched for by a raw socket at the server: reached when it
// arrives, dropped when it does not), and a probe the testbed cannot make
// is counted as unprobed, never as passed.
//
// Two checks keep the results honest: before the scenarios, on the base
// cluster without policy, every probed flow must connect (so a timeout
// later is the policy's doing, not a missing server); after them, back
// on the base cluster through the same incremental path, every flow must
// connect again.
func TestDataplaneConformance(t *testing.T) {
	needRoot(t)
	scs := conformance.Scenarios()
	subtests, steps, probes := conformance.Counts(scs)
	t.Logf("%d scenarios, %d sub-tests, %d steps, %d probes per stack", len(scs), subtests, steps, probes)
	// The stacks run at once, each in its own bed: their time goes into
	// waiting for dropped probes, not CPU. They are started from
	// goroutines rather than with t.Parallel, which -parallel
	// (GOMAXPROCS, 2 here) would serialise.
	var wg sync.WaitGroup
	for _, stack := range conformance.Stacks() {
		wg.Go(func() {
			t.Run(stack.String(), func(t *testing.T) { runStack(t, stack, scs) })
		})
	}
	wg.Wait()
}

// stats count what a stack's run did.
type stats struct {
	syncs, emptyDeltas     int
	probes                 map[corev1.Protocol]int
	sctpRaw, unprobed      int
	host                   int
	mismatches, rulesDumps int
}

// runner is one stack's bed and dataplane.
type runner struct {
	ctx   context.Context
	stack conformance.Stack
	bed   *testbed.Bed
	// pods are the pod-network pods, hosts the host-network pods'
	// addresses.
	pods     map[string]*cluster.Pod
	hosts    map[netip.Addr]bool
	applier  *nft.Applier
	ct       *ct.Conn
	opts     nft.Options
	renderer *nft.Renderer
	current  *nft.Model
	stats    stats
}

func runStack(t *testing.T, stack conformance.Stack, scs []conformance.Scenario) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), stackDeadline)
	t.Cleanup(cancel)
	base, err := conformance.Base(stack)
	if err != nil {
		t.Fatal(err)
	}
	c0, err := base.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{ctx: ctx, stack: stack, opts: nft.Options{AllLocal: true, Deny: nft.DenyDrop}, pods: map[string]*cluster.Pod{}, hosts: map[netip.Addr]bool{}}
	r.stats.probes = map[corev1.Protocol]int{}
	r.renderer = nft.NewRenderer(r.opts)
	r.setUp(t, c0)
	setup := time.Since(start)

	flows := uniqueFlows(scs)
	r.allConnect(t, base, flows, "the base cluster, before the scenarios")
	r.checkConntrack(t)
	for _, sc := range scs {
		t.Run(sc.Name, func(t *testing.T) { r.runScenario(t, base, sc) })
	}
	// Back to the base cluster by the same incremental path: every
	// policy's rules must be gone.
	r.sync(t, base, "back to the base cluster")
	r.allConnect(t, base, flows, "the base cluster, after the scenarios")

	s := r.stats
	total := s.probes[corev1.ProtocolTCP] + s.probes[corev1.ProtocolUDP] + s.probes[corev1.ProtocolSCTP]
	t.Logf("%s: %d scenarios; %d syncs (1 full, then nft.Diff deltas, %d empty); %d probes: TCP %d, UDP %d, SCTP %d (%d probed by raw packet, %d unprobed); %d to host-network pods; %d mismatches; setup %v, total %v",
		stack, len(scs), s.syncs, s.emptyDeltas, total, s.probes[corev1.ProtocolTCP], s.probes[corev1.ProtocolUDP], s.probes[corev1.ProtocolSCTP],
		s.sctpRaw, s.unprobed, s.host, s.mismatches, setup.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// setUp builds the bed for the base cluster (host-network pods included),
// the applier and the conntrack socket in the node namespace, and syncs
// the base cluster in full. Everything is undone by t.Cleanup, in
// reverse order, whatever happens.
func (r *runner) setUp(t *testing.T, c0 *cluster.Cluster) {
	prefix := fmt.Sprintf("nfc%d-%d", os.Getpid(), r.stack)
	bed, err := testbed.Up(r.ctx, c0, testbed.Options{Prefix: prefix, ExtraPorts: servedPorts(), HostNetwork: true})
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	t.Cleanup(func() {
		if err := bed.Down(); err != nil {
			t.Errorf("testbed down: %v", err)
		}
	})
	r.bed = bed
	for _, p := range bed.Pods() {
		r.pods[p.Key()] = p
	}
	var hosts []string
	for _, p := range bed.HostPods() {
		for _, ip := range p.IPs {
			r.hosts[ip] = true
		}
		hosts = append(hosts, fmt.Sprintf("%s on %v", p.Key(), p.IPs))
	}
	if skipped := bed.Skipped(); len(skipped) > 0 || len(hosts) != 2 {
		t.Fatalf("the bed runs host-network pods %v, want upstream's two centaurs (skipped: %v)", hosts, skipped)
	}
	t.Logf("bed %s: %d pod-network pods; host-network pods in the node namespace: %s", bed.NodeNamespace(), len(r.pods), strings.Join(hosts, ", "))

	if err := bed.InNode(func() error {
		var err error
		if r.applier, err = nft.NewApplier(0); err != nil {
			return err
		}
		fd, err := nsfd.Open(0)
		if err != nil {
			return err
		}
		defer nsfd.Release(&fd)
		r.ct, err = ct.Dial(&netlink.Config{NetNS: fd})
		return err
	}); err != nil {
		if r.applier != nil {
			r.applier.Close()
		}
		t.Fatalf("nftables and conntrack in the node namespace: %v", err)
	}
	t.Cleanup(func() {
		r.ct.Close()
		r.applier.Close()
	})
	if err := r.applier.CheckKernel(r.ctx); err != nil {
		t.Fatalf("kernel: %v", err)
	}
	r.current = nil
	m := r.render(t, policy.NewSet(c0))
	if err := r.applier.FullSync(r.ctx, m); err != nil {
		t.Fatalf("full sync of the base cluster: %v", err)
	}
	r.current = m
	r.stats.syncs++
}

// render renders set incrementally and checks the result against a
// render from scratch.
func (r *runner) render(t *testing.T, set *policy.Set) *nft.Model {
	t.Helper()
	m := r.renderer.Render(set)
	if d := nft.Diff(m, nft.Render(set, r.opts)); !d.Empty() {
		t.Errorf("the incremental render differs from a full render: %s", d)
	}
	return m
}

// sync enforces a state: the delta from the live model, in one
// transaction. A refused delta is an error, after which the table is
// synced in full so that the run goes on.
func (r *runner) sync(t *testing.T, st *conformance.State, what string) *policy.Set {
	t.Helper()
	c, err := st.Cluster()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	set := policy.NewSet(c)
	if len(set.Rejected) > 0 {
		t.Fatalf("%s: rejected policies: %v", what, set.Rejected[0].Err)
	}
	m := r.render(t, set)
	d := nft.Diff(r.current, m)
	r.stats.syncs++
	if d.Empty() {
		r.stats.emptyDeltas++
	} else if err := r.applier.Apply(r.ctx, d); err != nil {
		t.Errorf("%s: the kernel refused the delta (%s): %v", what, d, err)
		if err := r.applier.FullSync(r.ctx, m); err != nil {
			t.Fatalf("%s: full sync after a refused delta: %v", what, err)
		}
	}
	r.current = m
	return set
}

// flushConntrack empties the node's conntrack table, so that the next
// probes are new flows, judged by the rules now in place (a UDP probe
// reusing a source port of an earlier step would otherwise ride on its
// entry).
func (r *runner) flushConntrack(t *testing.T) {
	t.Helper()
	if err := r.ct.Flush(); err != nil {
		t.Fatalf("flush conntrack in the node namespace: %v", err)
	}
}

// checkConntrack checks that the conntrack socket is the node
// namespace's, not the root namespace's: after the probes of allConnect
// its table holds the pods' flows, and a flush empties it of them.
func (r *runner) checkConntrack(t *testing.T) {
	t.Helper()
	podFlows := func() int {
		flows, err := r.ct.Dump(nil)
		if err != nil {
			t.Fatalf("dump conntrack in the node namespace: %v", err)
		}
		n := 0
		for _, f := range flows {
			for _, p := range r.pods {
				for _, ip := range p.IPs {
					if f.TupleOrig.IP.SourceAddress == ip {
						n++
					}
				}
			}
		}
		return n
	}
	if n := podFlows(); n == 0 {
		t.Fatal("the conntrack table of the node namespace holds no flow of the pods after probing: the socket is not in the node namespace")
	}
	r.flushConntrack(t)
	if n := podFlows(); n != 0 {
		t.Fatalf("%d flows of the pods left after a conntrack flush", n)
	}
}

func (r *runner) runScenario(t *testing.T, base *conformance.State, sc conformance.Scenario) {
	st, err := sc.Start(base)
	if err != nil {
		t.Fatal(err)
	}
	r.sync(t, st, sc.Name+": start")
	for _, sub := range sc.Subtests {
		// Sub-tests share the state and go on after a failure, as
		// upstream's do.
		t.Run(sub.Name, func(t *testing.T) {
			for i, step := range sub.Steps {
				for _, m := range step.Mutations {
					if err := st.Mutate(m); err != nil {
						t.Fatalf("%s: %v", sc.File, err)
					}
				}
				var set *policy.Set
				if len(step.Mutations) > 0 || len(step.Probes) > 0 {
					set = r.sync(t, st, fmt.Sprintf("%s step %d", sc.Name, i))
				}
				if len(step.Probes) > 0 {
					r.runProbes(t, sc, st, set, step.Probes)
				}
			}
		})
	}
}

// probeRun is one probe and its result.
type probeRun struct {
	p        conformance.Probe
	from     *cluster.Pod
	src, dst netip.Addr
	host     bool
	res      testbed.Result
}

// probe runs one probe with the timeout its expectation calls for.
func (r *runner) probe(pr *probeRun, shouldConnect bool) {
	timeout := denyTimeout
	if shouldConnect {
		timeout = allowTimeout
	}
	pr.res, _ = r.bed.Probe(r.ctx, pr.from, pr.dst, pr.p.Protocol, pr.p.Port, timeout)
}

// prepare resolves probes to the bed's pods and the state's addresses.
func (r *runner) prepare(t *testing.T, file string, st *conformance.State, ps []conformance.Probe) []*probeRun {
	t.Helper()
	runs := make([]*probeRun, len(ps))
	for i, p := range ps {
		src, dst, err := st.Endpoints(p)
		if err != nil {
			t.Fatalf("%s:%d: %v", file, p.Line, err)
		}
		from := r.pods[string(p.From)]
		if from == nil {
			t.Fatalf("%s:%d: client %s is not a pod-network pod of the bed", file, p.Line, p.From)
		}
		runs[i] = &probeRun{p: p, from: from, src: src, dst: dst, host: r.hosts[dst]}
	}
	return runs
}

// runAll runs probes in parallel, at most parallelProbes at a time.
func (r *runner) runAll(runs []*probeRun, shouldConnect func(*probeRun) bool) {
	sem := make(chan struct{}, parallelProbes)
	var wg sync.WaitGroup
	for _, pr := range runs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r.probe(pr, shouldConnect(pr))
		}()
	}
	wg.Wait()
}

// runProbes runs a step's probes and compares each with upstream's
// expectation: connected when it should connect, timed out when not.
func (r *runner) runProbes(t *testing.T, sc conformance.Scenario, st *conformance.State, set *policy.Set, ps []conformance.Probe) {
	t.Helper()
	runs := r.prepare(t, sc.File, st, ps)
	r.flushConntrack(t)
	r.runAll(runs, func(pr *probeRun) bool { return pr.p.ShouldConnect })
	dump := false
	for _, pr := range runs {
		p, res := pr.p, pr.res
		if res.Outcome == testbed.OutcomeError {
			t.Fatalf("%s:%d: %s: %v", sc.File, p.Line, p, res.Err)
		}
		r.stats.probes[p.Protocol]++
		if pr.host {
			r.stats.host++
		}
		if res.Unprobed {
			r.stats.unprobed++
			t.Logf("%s:%d: %s: unprobed: %s", sc.File, p.Line, p, res.Detail)
			continue
		}
		if p.Protocol == corev1.ProtocolSCTP {
			r.stats.sctpRaw++
		}
		want := testbed.OutcomeTimeout
		if p.ShouldConnect {
			want = testbed.OutcomeReached
		}
		if res.Outcome == want {
			continue
		}
		r.stats.mismatches++
		dump = true
		v := set.Evaluate(set.AddrFlow(pr.src, pr.dst, p.Protocol, p.Port))
		t.Errorf("%s:%d: %s (%s -> %s): traffic %s (%s) in %v, upstream expects %s; the analyzer says allowed=%v\n  egress:  %s\n  ingress: %s",
			sc.File, p.Line, p, pr.src, pr.dst, res.Outcome, res.Detail, res.Elapsed.Round(time.Millisecond), want, v.Allowed, v.Egress.Reason, v.Ingress.Reason)
	}
	if dump && r.stats.rulesDumps < 3 {
		r.stats.rulesDumps++
		t.Logf("the ruleset in place:\n%s", r.current.Text())
	}
}

// flowKey identifies a probed flow, whatever the step.
type flowKey struct {
	from, to conformance.PodRef
	proto    corev1.Protocol
	port     int32
}

// uniqueFlows returns one probe per distinct flow of the scenarios.
func uniqueFlows(scs []conformance.Scenario) []conformance.Probe {
	seen := map[flowKey]bool{}
	var out []conformance.Probe
	for _, sc := range scs {
		for _, sub := range sc.Subtests {
			for _, step := range sub.Steps {
				for _, p := range step.Probes {
					k := flowKey{p.From, p.To, p.Protocol, p.Port}
					if !seen[k] {
						seen[k] = true
						out = append(out, p)
					}
				}
			}
		}
	}
	return out
}

// allConnect probes every flow on the base cluster (no policy), where all
// must connect.
func (r *runner) allConnect(t *testing.T, base *conformance.State, flows []conformance.Probe, what string) {
	t.Helper()
	runs := r.prepare(t, "base", base, flows)
	r.flushConntrack(t)
	r.runAll(runs, func(*probeRun) bool { return true })
	var bad []string
	for _, pr := range runs {
		if pr.res.Outcome != testbed.OutcomeReached && !pr.res.Unprobed {
			bad = append(bad, fmt.Sprintf("%s: %s (%s)", pr.p, pr.res.Outcome, pr.res.Detail))
		}
	}
	if len(bad) > 0 {
		t.Errorf("%s: %d of %d flows do not connect without policy:\n  %s", what, len(bad), len(runs), strings.Join(bad, "\n  "))
	} else {
		t.Logf("%s: all %d distinct flows connect", what, len(runs))
	}
}
