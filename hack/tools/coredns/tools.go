//go:build tools

// Package tools pins CoreDNS for hack/build-kube-binaries cluster
// (bin/coredns, the DNS image of hack/cluster). It is a module of its own
// because CoreDNS requires newer Kubernetes client libraries than
// k8s.io/kubernetes v1.35.4 in ../go.mod.
package tools

import _ "github.com/coredns/coredns"
