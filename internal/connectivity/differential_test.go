package connectivity

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/analysis"
	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/policy"
	"github.com/netfence/netfence/internal/randcluster"
)

var (
	clusters     = flag.Int("clusters", 200, "random clusters with NetworkPolicies only in TestDifferential")
	tierClusters = flag.Int("tier-clusters", 200, "random clusters with cluster policies in TestDifferential (generated until that many have one)")
)

// needRoot skips unless the test can create network namespaces.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and nftables rules (CI runs as root)")
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		t.Skipf("no network namespace support: %v", err)
	}
}

var diffPorts = []analysis.Port{{Protocol: "TCP", Port: 80}, {Protocol: "TCP", Port: 8080}, {Protocol: "UDP", Port: 53}, {Protocol: "SCTP", Port: 9000}}

// diffStats count what TestDifferential probed.
type diffStats struct {
	clusters, probes, mismatches, allowed int
	byFamily                              [2]int
	byProto                               map[string]int
	toHost, toHostAllowed                 int
	// fromHost counts probes from the host-network pod, fromHostIsolated
	// those to a pod isolated for ingress (allowed only because the
	// source is the pod's own node), fromOtherNode the flows from it not
	// probed because the cluster puts the destination on another node.
	fromHost, fromHostAllowed, fromHostIsolated, fromOtherNode int
}

// TestDifferential is the proof that the analyzer and the dataplane are one
// reading of policy: on random clusters, real traffic through the enforced
// nftables ruleset must equal Set.Evaluate, flow by flow, over IPv4 and
// IPv6, TCP, UDP and SCTP (raw INIT packets). The first clusters hold
// NetworkPolicies only (randcluster without cluster policies: the clusters
// this test has always run); the others cluster policies of both tiers
// too, with Pass, equal priorities, networks over pod addresses and node
// peers, and a host-network pod serving on the node's address, probed in
// the testbed's node namespace (traffic to it crosses the input hook;
// its own traffic to the pods of its node, the output hook, is probed
// too, and every third cluster puts a pod on another node, whose traffic
// from the host-network pod the testbed cannot reproduce). The
// analyzer's matrix must agree with Set.Evaluate as well.
func TestDifferential(t *testing.T) {
	needRoot(t)
	for _, phase := range []struct {
		name  string
		n     int
		opts  randcluster.Options
		seed  [2]uint64
		check func(t *testing.T, i int, set *policy.Set, rep *Report)
	}{
		{"NetworkPolicy", *clusters, randcluster.Options{}, [2]uint64{2026, 11}, checkMatrix},
		{"cluster policies", *tierClusters, randcluster.Options{ClusterPolicies: true}, [2]uint64{2026, 12}, checkMatrix},
	} {
		t.Run(phase.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(phase.seed[0], phase.seed[1]))
			st := diffStats{byProto: map[string]int{}}
			var fst struct {
				flowStats
				clusters int
			}
			tiered := 0
			start := time.Now()
			// With cluster policies, clusters are generated until n of
			// them have one (randcluster gives some none).
			i := 0
			for ; i < phase.n || phase.opts.ClusterPolicies && tiered < phase.n; i++ {
				c := randcluster.New(r, i, phase.opts)
				if phase.opts.ClusterPolicies && i%3 == 2 {
					c = onOtherNode(c)
				}
				// Every other cluster runs with the flow monitor; of
				// those, one in four stages half its policies and one in
				// four (others) is audited.
				flows := i%2 == 0
				if flows && i%8 == 2 {
					c = stageHalf(c)
				}
				set := policy.NewSet(c)
				if len(set.Rejected) > 0 {
					t.Fatalf("cluster %d: rejected %v", i, set.Rejected)
				}
				if len(set.ClusterPolicies) > 0 {
					tiered++
				}
				opts := Options{Ports: diffPorts, Deny: nft.DenyReject, Timeout: 500 * time.Millisecond, Parallel: 128,
					Prefix: fmt.Sprintf("nfd%d-%s%d", os.Getpid()%10000, phase.name[:1], i)}
				if i%10 == 0 {
					// Every tenth cluster with the default drop verdict.
					opts.Deny, opts.Timeout = nft.DenyDrop, 400*time.Millisecond
				}
				opts.Flows, opts.Audit = flows, flows && i%8 == 6
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				rep, err := Run(ctx, set, opts)
				cancel()
				if err != nil {
					t.Fatalf("cluster %d: %v", i, err)
				}
				st.add(set, rep)
				for _, res := range rep.Results {
					if res.Probed && res.Outcome == "error" {
						t.Errorf("cluster %d: %s -> %s %s/%d: probe error: %s", i, res.From, res.To, res.Protocol, res.Port, res.Reason)
					}
					if res.Mismatch {
						v := set.Evaluate(set.AddrFlow(netip.MustParseAddr(res.FromAddress), netip.MustParseAddr(res.ToAddress), corev1.Protocol(res.Protocol), res.Port))
						t.Errorf("cluster %d: %s -> %s (%s -> %s) %s/%d: traffic %s (%s), analyzer %s\n  egress: %s\n  ingress: %s", i, res.From, res.To,
							res.FromAddress, res.ToAddress, res.Protocol, res.Port, word(res.Allowed), res.Outcome, word(res.Expected), v.Egress.Reason, v.Ingress.Reason)
					}
				}
				if phase.check != nil {
					phase.check(t, i, set, rep)
				}
				if flows {
					fst.clusters++
					checkFlows(t, fmt.Sprintf("cluster %d", i), set, rep, &fst.flowStats)
				}
				if t.Failed() {
					t.Log(randcluster.Describe(c))
					t.FailNow()
				}
			}
			t.Logf("%d clusters (%d with cluster policies): %d probes (IPv4 %d, IPv6 %d; %v), %d allowed; %d to the host-network pod (%d allowed); %d from it to pods of its node (%d allowed, %d to pods isolated for ingress), %d to pods of another node not probed; %d mismatches in %s",
				i, tiered, st.probes, st.byFamily[0], st.byFamily[1], st.byProto, st.allowed, st.toHost, st.toHostAllowed,
				st.fromHost, st.fromHostAllowed, st.fromHostIsolated, st.fromOtherNode, st.mismatches, time.Since(start).Round(time.Millisecond))
			t.Logf("flow monitor on %d clusters: %d probes, each in exactly one record with the wire's verdict and check's attribution: %d denied, %d audited, %d with a pending verdict",
				fst.clusters, fst.probes, fst.denied, fst.audited, fst.pending)
			if phase.n >= 20 && (fst.denied == 0 || fst.audited == 0 || fst.pending == 0) {
				t.Errorf("the flow checks do not exercise denied, audited and staged flows: %+v", fst)
			}
			if phase.n >= 20 {
				// The test must be able to tell: denied and allowed
				// flows of every kind.
				if st.allowed == 0 || st.allowed == st.probes || st.byFamily[1] == 0 || len(st.byProto) < 3 {
					t.Errorf("the probes do not cover allowed and denied flows of both families and every protocol: %+v", st)
				}
				if phase.opts.ClusterPolicies && (tiered == 0 || st.toHost == 0 || st.toHostAllowed == 0 || st.toHostAllowed == st.toHost) {
					t.Errorf("cluster policies or the host-network pod are not exercised: %d clusters with cluster policies, %d probes to the host (%d allowed)", tiered, st.toHost, st.toHostAllowed)
				}
				// The node's own traffic: to pods that policy would
				// deny, and pods of other nodes left out.
				if phase.opts.ClusterPolicies && (st.fromHost == 0 || st.fromHostIsolated == 0 || st.fromOtherNode == 0) {
					t.Errorf("traffic from the host-network pod is not exercised: %d probes (%d to pods isolated for ingress), %d to other nodes", st.fromHost, st.fromHostIsolated, st.fromOtherNode)
				}
			}
		})
	}
}

func (st *diffStats) add(set *policy.Set, rep *Report) {
	c := set.Cluster
	st.clusters++
	st.mismatches += rep.Mismatches
	for _, res := range rep.Results {
		if res.Reason == fromOtherNodeWords {
			st.fromOtherNode++
		}
		if !res.Probed {
			continue
		}
		if p := c.Pod(res.From); p != nil && p.HostNetwork {
			st.fromHost++
			if res.Allowed {
				st.fromHostAllowed++
			}
			if to := c.Pod(res.To); to != nil && (len(set.Isolating(to, policy.Ingress)) > 0 || c.Conflicted(to)) {
				st.fromHostIsolated++
			}
		}
		st.probes++
		if res.Allowed {
			st.allowed++
		}
		if strings.Contains(res.ToAddress, ":") {
			st.byFamily[1]++
		} else {
			st.byFamily[0]++
		}
		st.byProto[res.Protocol]++
		if p := c.Pod(res.To); p != nil && p.HostNetwork {
			st.toHost++
			if res.Allowed {
				st.toHostAllowed++
			}
		}
	}
}

// onOtherNode moves the last pod-network pod to node-2: the host-network
// pod's traffic to it is then another node's, which the testbed (one
// node) does not reproduce.
func onOtherNode(c *cluster.Cluster) *cluster.Cluster {
	parts := c.Parts()
	parts.Pods = nil
	moved := false
	for i := len(c.Pods) - 1; i >= 0; i-- {
		p := *c.Pods[i]
		if !p.HostNetwork && !moved {
			p.NodeName, moved = "node-2", true
		}
		parts.Pods = append(parts.Pods, &p)
	}
	return cluster.NewWith(parts)
}

// stageHalf stages every other policy of c, NetworkPolicies and cluster
// policies (netfence.io/mode: staged).
func stageHalf(c *cluster.Cluster) *cluster.Cluster {
	parts := c.Parts()
	parts.Policies, parts.ClusterPolicies = nil, nil
	for i, np := range c.Policies {
		if i%2 == 1 {
			np = np.DeepCopy()
			np.Annotations = map[string]string{cluster.ModeAnnotation: cluster.ModeStaged}
		}
		parts.Policies = append(parts.Policies, np)
	}
	for i, cp := range c.ClusterPolicies {
		if i%2 == 1 {
			cp2 := *cp
			cp2.Annotations = map[string]string{cluster.ModeAnnotation: cluster.ModeStaged}
			cp = &cp2
		}
		parts.ClusterPolicies = append(parts.ClusterPolicies, cp)
	}
	return cluster.NewWith(parts)
}

// checkMatrix holds the analyzer's matrix to Set.Evaluate on the pairs
// at the destinations' primary addresses.
func checkMatrix(t *testing.T, i int, set *policy.Set, rep *Report) {
	t.Helper()
	m, err := analysis.ComputeMatrix(context.Background(), set, analysis.Options{Ports: diffPorts})
	if err != nil {
		t.Fatal(err)
	}
	n := len(m.Pods)
	if n != len(rep.Pods) {
		t.Fatalf("cluster %d: matrix of %d pods, report of %d", i, n, len(rep.Pods))
	}
	for k := range m.Ports {
		for a := 0; a < n; a++ {
			for b := 0; b < n; b++ {
				res := rep.Results[k*n*n+a*n+b]
				expected := res.Expected
				if res.WouldAllow != nil { // audit mode
					expected = *res.WouldAllow
				}
				if allowed, _, _ := m.Result(a, b, k); allowed != expected {
					t.Errorf("cluster %d: %s -> %s %s/%d: matrix %s, Set.Evaluate %s", i, res.From, res.To, res.Protocol, res.Port, word(allowed), word(expected))
				}
			}
		}
	}
}
