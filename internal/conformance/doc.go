// Package conformance is the upstream conformance suite of
// sigs.k8s.io/network-policy-api (v0.3.0, conformance/tests and
// conformance/base) as data, for netfence's analyzer tests and for
// real-traffic tests.
//
// Upstream, each ConformanceTest applies policy manifests on top of a base
// cluster (five namespaces, StatefulSets of two pods, host-network pods),
// then, in t.Run sub-tests, mutates policies, namespace and pod labels and
// pokes servers: from a client pod to a server pod's status.podIP on a
// protocol and port, expecting a connection or not. Here:
//
//   - Base builds the base cluster as API objects (a State): the
//     namespaces of conformance/base/manifests.yaml, each StatefulSet's
//     replicas as Running pods with the pod template's labels and
//     container ports, and two Nodes (labelled as kind labels them) whose
//     InternalIP addresses the host-network pods share. Addresses are
//     deterministic (see Stack).
//   - Scenarios returns one Scenario per upstream ConformanceTest: its
//     manifests (paths in the upstream conformance.Manifests) and its
//     sub-tests, each a list of Steps: Mutations (what the test changes,
//     in order) then Probes (one per PokeServer call). Every probe and
//     mutation carries the line of the upstream test source that makes
//     it, so a reviewer can check the translation; a test of this package
//     checks probes, sub-tests and mutation lines against the upstream
//     sources' syntax trees.
//   - State applies manifests and mutations and renders itself as a
//     manifest that netfence's loader (internal/manifest) reads, CRD
//     validation included: Cluster builds the cluster model through the
//     loader, so every policy, every mutated policy and every pod and node
//     is read as a user's file would be.
//
// Host-network ports: upstream renders {{ index .HostNetworkPorts N }}
// with a port range the suite chooses; this package uses upstream's
// default range, HostNetworkPortStart and the 7 ports after it.
package conformance
