//go:build tools

// Package tools records the commands that hack/build-kube-binaries builds from
// this module, so that go.mod and go.sum pin every module they need:
//
//   - k8s.io/kubernetes/cmd/kube-apiserver → bin/kube-apiserver
//   - k8s.io/kubernetes/cmd/kubectl        → bin/kubectl
//   - go.etcd.io/etcd/server/v3            → bin/etcd (its module root is the
//     etcd server's package main)
//
// and, for `hack/build-kube-binaries cluster` (the single-node cluster of
// hack/cluster):
//
//   - k8s.io/kubernetes/cmd/kubelet, cmd/kube-proxy,
//     cmd/kube-controller-manager, cmd/kube-scheduler
//   - k8s.io/kubernetes/test/images/agnhost (the e2e test image's binary)
//
// CoreDNS is pinned by its own module, hack/tools/coredns.
//
// The file is never compiled (build tag tools); it only keeps the imports
// visible to go mod tidy.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/test/images/agnhost"
)
