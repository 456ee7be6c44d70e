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
// and, for `hack/build-kube-binaries e2e` (hack/e2e-upstream):
//
//   - k8s.io/kubernetes/test/e2e → bin/e2e.test (go test -c). The import
//     below is of the package's non-test files; its test file imports the
//     same framework packages plus every test/e2e/... suite, whose modules
//     (ginkgo, gomega, ...) are in go.mod because of it.
//   - github.com/onsi/ginkgo/v2/ginkgo → bin/ginkgo, the ginkgo CLI of the
//     same version as the library linked into e2e.test; it runs e2e.test in
//     parallel processes (e2e.test alone runs its specs one at a time).
//
// CoreDNS is pinned by its own module, hack/tools/coredns.
//
// The file is never compiled (build tag tools); it only keeps the imports
// visible to go mod tidy.
package tools

import (
	_ "github.com/onsi/ginkgo/v2/ginkgo"
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/test/e2e"
	_ "k8s.io/kubernetes/test/images/agnhost"
)
