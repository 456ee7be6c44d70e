//go:build tools

// Package tools records the commands that hack/build-kube-binaries builds from
// this module, so that go.mod and go.sum pin every module they need:
//
//   - k8s.io/kubernetes/cmd/kube-apiserver → bin/kube-apiserver
//   - k8s.io/kubernetes/cmd/kubectl        → bin/kubectl
//   - go.etcd.io/etcd/server/v3            → bin/etcd (its module root is the
//     etcd server's package main)
//
// The file is never compiled (build tag tools); it only keeps the imports
// visible to go mod tidy.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
