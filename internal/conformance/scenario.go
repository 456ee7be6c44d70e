package conformance

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Upstream features (suite.SupportedFeature) the scenarios need.
const (
	FeatureClusterNetworkPolicy = "ClusterNetworkPolicy"
	FeatureNamedPorts           = "ClusterNetworkPolicyNamedPorts"
	FeatureEgressNodePeers      = "ClusterNetworkPolicyEgressNodePeers"
)

// Scenario is one upstream ConformanceTest.
type Scenario struct {
	// Name is the upstream ShortName.
	Name string
	// File is the upstream test source, in the upstream conformance
	// directory (and in conformance.Manifests): "tests/....go".
	File string
	// Features are the upstream features the test needs.
	Features []string
	// Manifests are what the test applies before it runs, in order:
	// paths in the upstream conformance.Manifests.
	Manifests []string
	// Subtests are the test's t.Run calls, in order. They share one
	// state: what a sub-test changes, the next one sees.
	Subtests []Subtest
}

// Subtest is one upstream t.Run.
type Subtest struct {
	// Name is the t.Run name.
	Name string
	// Steps run in order.
	Steps []Step
}

// Step is what happens between two probes that have a change between
// them: the changes, then the probes.
type Step struct {
	// Mutations are applied in order, before the probes.
	Mutations []Mutation
	// Cleanup marks the mutations of the sub-test's t.Cleanup: upstream
	// runs them after the sub-test (their lines come before the probes
	// in the source). A cleanup step has no probes.
	Cleanup bool
	// Probes are the PokeServer calls, in order.
	Probes []Probe
}

// Probe is one upstream kubernetes.PokeServer call: a connection from a
// client pod to a server pod's status.podIP.
type Probe struct {
	// Line is the line of the PokeServer call in the scenario's File.
	Line     int
	From, To PodRef
	Protocol corev1.Protocol
	Port     int32
	// ShouldConnect is upstream's expectation.
	ShouldConnect bool
}

func (p Probe) String() string {
	want := "connects"
	if !p.ShouldConnect {
		want = "does not connect"
	}
	return fmt.Sprintf("%s -> %s %s/%d %s", p.From, p.To, p.Protocol, p.Port, want)
}

// Counts returns the number of sub-tests, steps and probes of the
// scenarios.
func Counts(scs []Scenario) (subtests, steps, probes int) {
	for _, sc := range scs {
		subtests += len(sc.Subtests)
		for _, sub := range sc.Subtests {
			steps += len(sub.Steps)
			for _, st := range sub.Steps {
				probes += len(st.Probes)
			}
		}
	}
	return subtests, steps, probes
}

// The pods of the base cluster.
const (
	gryffindor      = "network-policy-conformance-gryffindor"
	slytherin       = "network-policy-conformance-slytherin"
	hufflepuff      = "network-policy-conformance-hufflepuff"
	ravenclaw       = "network-policy-conformance-ravenclaw"
	forbiddenForest = "network-policy-conformance-forbidden-forrest"

	harry0   PodRef = gryffindor + "/harry-potter-0"
	harry1   PodRef = gryffindor + "/harry-potter-1"
	draco0   PodRef = slytherin + "/draco-malfoy-0"
	draco1   PodRef = slytherin + "/draco-malfoy-1"
	cedric0  PodRef = hufflepuff + "/cedric-diggory-0"
	cedric1  PodRef = hufflepuff + "/cedric-diggory-1"
	luna0    PodRef = ravenclaw + "/luna-lovegood-0"
	luna1    PodRef = ravenclaw + "/luna-lovegood-1"
	centaur1 PodRef = forbiddenForest + "/centaur-1"

	// conformanceRoleLabel is upstream's pod label of the pod selector
	// tests.
	conformanceRoleLabel = "conformance-role"
)

// poke is a PokeServer call, its arguments in upstream's order: client,
// protocol, server, port, shouldConnect.
func poke(line int, from PodRef, protocol string, to PodRef, port int32, shouldConnect bool) Probe {
	return Probe{Line: line, From: from, To: to, Protocol: corev1.Protocol(strings.ToUpper(protocol)), Port: port, ShouldConnect: shouldConnect}
}

// probes is a step without changes.
func probes(ps ...Probe) Step { return Step{Probes: ps} }

// after is a step: changes, then probes.
func after(ms []Mutation, ps ...Probe) Step { return Step{Mutations: ms, Probes: ps} }

// change lists mutations.
func change(ms ...Mutation) []Mutation { return ms }

// cleanup is a sub-test's t.Cleanup.
func cleanup(ms ...Mutation) Step { return Step{Mutations: ms, Cleanup: true} }

func standard(path ...string) (features, manifests []string) {
	return []string{FeatureClusterNetworkPolicy}, path
}

// Scenarios returns every upstream ConformanceTest as a Scenario, in the
// order of their files.
func Scenarios() []Scenario {
	return append(adminScenarios(), baselineScenarios()...)
}
