// Package e2e holds netfence's end-to-end tests against a real
// kube-apiserver and etcd (test/kubetest) with real traffic in a
// network-namespace testbed (internal/testbed). It has no non-test code.
package e2e
