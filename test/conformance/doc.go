// Package conformance runs the upstream network-policy-api conformance
// suite (internal/conformance: every ConformanceTest, t.Run, mutation and
// PokeServer call of sigs.k8s.io/network-policy-api v0.3.0) with real
// traffic through netfence's nftables dataplane, in a network-namespace
// testbed (internal/testbed), on IPv4, IPv6 and dual-stack clusters. It
// has no non-test code; see TestDataplaneConformance.
package conformance
