// Package crd validates cluster-scoped network policy objects offline, the
// way a Kubernetes API server with the policy.networking.k8s.io CRDs
// installed validates them on create: structural defaulting, pruning of
// unknown fields (reported here as errors, like kubectl's strict field
// validation), generic object metadata checks, the OpenAPI v3 schema,
// x-kubernetes-list-type invariants and the CEL x-kubernetes-validations.
//
// The CRDs are embedded copies of upstream files, each with a provenance
// header naming module, version and path; a test compares them
// byte-for-byte with the module cache:
//
//   - ClusterNetworkPolicy (v1alpha2, v1beta1): sigs.k8s.io/network-policy-api
//     v0.3.0, config/crd/experimental (the experimental channel is a superset
//     of standard: destinationNamedPort, nodes, domainNames).
//   - AdminNetworkPolicy and BaselineAdminNetworkPolicy (v1alpha1):
//     sigs.k8s.io/network-policy-api v0.1.7, config/crd/experimental. v0.3.0
//     ships no v1alpha1 CRD and its docs name v0.1.7 as the latest ANP/BANP
//     release. v0.1.1 is not usable: its CRD is an older, incompatible
//     v1alpha1 (namespaces peers with sameLabels/notSameLabels, no networks).
//     v0.1.7's experimental CRD is its standard CRD plus exactly the nodes
//     peer, namedPort, the domainNames peer (ANP only) and the egress CEL
//     rule forbidding named ports with networks/nodes/domainNames peers, so
//     no hand-written schema patch is needed.
//
// The v0.3.0 Go types of v1alpha1 (which netfence decodes into) carry two
// markers stricter than the v0.1.7 CRD an API server actually enforces; this
// package follows the CRD, and TestV1alpha1MarkersMatchCRD pins the
// difference:
//
//   - CIDR: v0.3.0 requires cidr(self) == cidr(self).masked(); the v0.1.7
//     CRD only isCIDR(self), so "10.0.0.1/8" is accepted in ANP/BANP
//     networks (but rejected in ClusterNetworkPolicy).
//   - DomainName pattern: v0.1.7 has the typo [a-zA-z0-9] (admits
//     [\]^_` as first/last character of a label); v0.3.0 has [a-zA-Z0-9].
package crd
