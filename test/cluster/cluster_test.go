// Package cluster_test runs netfence on a real single-node Kubernetes
// cluster (hack/cluster: kubelet, containerd, CNI, kube-proxy, CoreDNS in a
// network namespace of its own): the image built without Docker
// (hack/image), the DaemonSet of deploy/ becoming Ready through its
// probes, and `netfence connectivity --live` agreeing with the analyzer
// through policy, label edits, a pod re-created with a new address and an
// agent restart. It needs root and the cluster's binaries
// (hack/build-kube-binaries cluster); it skips without them, unless
// NETFENCE_CLUSTER_REQUIRE=1 (CI), when it fails.
package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type env struct {
	root, prefix, netfence string
	// cni is the cluster's CNI plugin (hack/cluster: ptp or bridge).
	cni string
}

func setup(t *testing.T) *env {
	t.Helper()
	skip := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("NETFENCE_CLUSTER_REQUIRE") == "1" {
			t.Fatalf("NETFENCE_CLUSTER_REQUIRE=1 but: "+format, args...)
		}
		t.Skipf(format+" (CI sets NETFENCE_CLUSTER_REQUIRE=1 and runs it)", args...)
	}
	if os.Geteuid() != 0 {
		skip("needs root: the cluster runs containers and network namespaces")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"kubelet", "kube-proxy", "kube-controller-manager", "kube-scheduler", "kube-apiserver", "etcd", "kubectl", "coredns", "agnhost", "pause"} {
		if _, err := os.Stat(filepath.Join(root, "bin", b)); err != nil {
			skip("bin/%s missing: run hack/build-kube-binaries cluster", b)
		}
	}
	e := &env{root: root, prefix: fmt.Sprintf("/tmp/nfct-%d", os.Getpid()), cni: "ptp"}
	e.netfence = filepath.Join(t.TempDir(), "netfence")
	e.run(t, 5*time.Minute, "go", "build", "-o", e.netfence, "./cmd/netfence")
	return e
}

// run runs a command from the repository root with the test cluster's
// prefix, and returns its output; it fails the test on error.
func (e *env) run(t *testing.T, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	out, err := e.try(timeout, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func (e *env) try(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = e.root
	cmd.Env = append(os.Environ(), "NETFENCE_CLUSTER_DIR="+e.prefix, "NETFENCE_CLUSTER_CNI="+e.cni)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (e *env) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	return e.run(t, 3*time.Minute, "hack/cluster", append([]string{"kubectl"}, args...)...)
}

// live runs `netfence connectivity --live` in the cluster's namespace and
// returns its report; a mismatch fails the test.
func (e *env) live(t *testing.T, step string, args ...string) report {
	t.Helper()
	args = append([]string{"exec", e.netfence, "connectivity", "--live", "--kubeconfig", e.prefix + "/admin.kubeconfig", "-o", "json"}, args...)
	out, err := e.try(5*time.Minute, "hack/cluster", args...)
	var rep report
	i := strings.Index(out, "{\"ports\"")
	if i < 0 {
		t.Fatalf("%s: no report (%v):\n%s", step, err, out)
	}
	if jerr := json.Unmarshal([]byte(out[i:strings.LastIndex(out, "}")+1]), &rep); jerr != nil {
		t.Fatalf("%s: report: %v\n%s", step, jerr, out)
	}
	for _, r := range rep.Results {
		if r.Mismatch {
			t.Errorf("%s: %s -> %s (%s) %s/%d: traffic %v (%s), analyzer %v", step, r.From, r.To, r.ToAddress, r.Protocol, r.Port, r.Allowed, r.Outcome, r.Expected)
		}
	}
	if err != nil && rep.Mismatches == 0 {
		t.Fatalf("%s: %v\n%s", step, err, out)
	}
	t.Logf("%s: %d probes, %d mismatches (%s)", step, rep.Probes, rep.Mismatches, rep.Duration)
	if rep.Probes == 0 {
		t.Fatalf("%s: nothing probed", step)
	}
	return rep
}

type report struct {
	Results []struct {
		From, To, Protocol, Outcome, ToAddress string
		Port                                   int
		Allowed, Expected, Probed, Mismatch    bool
	} `json:"results"`
	Mismatches int    `json:"mismatches"`
	Probes     int    `json:"probes"`
	Duration   string `json:"duration"`
}

// verdict is the observed verdict of a probed pair at the destination's
// primary address.
func (r report) verdict(t *testing.T, from, to, port string) bool {
	t.Helper()
	for _, res := range r.Results {
		if res.From == from && res.To == to && fmt.Sprintf("%s/%d", res.Protocol, res.Port) == port && res.Probed {
			return res.Allowed
		}
	}
	t.Fatalf("no probe %s -> %s %s", from, to, port)
	return false
}

func TestCluster(t *testing.T) {
	e := setup(t)
	start := time.Now()
	t.Cleanup(func() {
		out, err := e.try(5*time.Minute, "hack/cluster", "down")
		if err != nil {
			t.Errorf("hack/cluster down: %v\n%s", err, out)
		}
	})
	e.run(t, 30*time.Minute, "hack/cluster", "up")
	t.Logf("cluster up in %s", time.Since(start).Round(time.Second))
	// The image (hack/image), imported; deploy/ applied; the DaemonSet
	// rolled out, Ready through its probes.
	e.run(t, 15*time.Minute, "hack/cluster", "deploy")
	t.Logf("DaemonSet ready after %s", time.Since(start).Round(time.Second))

	x, y := "netfence-probe-x", "netfence-probe-y"
	// 1. A default deny of ingress in x and one allow: pods named a may
	// reach x/b on TCP/80.
	rep := e.live(t, "policy", "-f", "test/live/default-deny-and-allow.yaml", "--keep")
	if !rep.verdict(t, y+"/a", x+"/b", "TCP/80") || rep.verdict(t, y+"/b", x+"/b", "TCP/80") || rep.verdict(t, y+"/a", x+"/b", "TCP/81") || !rep.verdict(t, x+"/a", y+"/b", "TCP/81") {
		t.Fatal("the policies are not enforced as written")
	}
	// 2. A label edit: y/a is no longer pod=a.
	e.kubectl(t, "-n", y, "label", "pod", "a", "pod=z", "--overwrite")
	if rep := e.live(t, "label edit", "--reuse", "--keep"); rep.verdict(t, y+"/a", x+"/b", "TCP/80") {
		t.Error("y/a relabelled still reaches x/b")
	}
	// 3. A pod re-created: x/b gets a new address.
	e.kubectl(t, "-n", x, "delete", "pod", "b", "--wait=true")
	if rep := e.live(t, "pod re-created", "--reuse", "--keep"); !rep.verdict(t, x+"/a", x+"/b", "TCP/80") {
		t.Error("x/a does not reach the re-created x/b")
	}
	// 4. The agent restarted.
	e.kubectl(t, "-n", "netfence-system", "delete", "pod", "-l", "app.kubernetes.io/name=netfence", "--wait=true")
	e.kubectl(t, "-n", "netfence-system", "rollout", "status", "ds/netfence-agent", "--timeout=180s")
	e.live(t, "agent restarted", "--reuse")
	t.Logf("whole run %s", time.Since(start).Round(time.Second))
}

// TestClusterBridge: pods on one Linux bridge (the bridge CNI plugin, as
// Flannel's cni0), their same-node traffic bridged and seen by netfilter
// through br_netfilter; IPv6 neighbour discovery between pods then
// crosses the forward hook, where an isolated pod's policy must not drop
// it.
func TestClusterBridge(t *testing.T) {
	e := setup(t)
	if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err != nil && os.Getenv("NETFENCE_CLUSTER_REQUIRE") != "1" {
		t.Skip("no br_netfilter in this kernel")
	}
	e.prefix, e.cni = fmt.Sprintf("/tmp/nfcb-%d", os.Getpid()), "bridge"
	t.Cleanup(func() {
		out, err := e.try(5*time.Minute, "hack/cluster", "down")
		if err != nil {
			t.Errorf("hack/cluster down: %v\n%s", err, out)
		}
	})
	e.run(t, 30*time.Minute, "hack/cluster", "up")
	e.run(t, 15*time.Minute, "hack/cluster", "deploy")
	x, y := "netfence-probe-x", "netfence-probe-y"
	rep := e.live(t, "bridge: policy", "-f", "test/live/default-deny-and-allow.yaml")
	if !rep.verdict(t, x+"/a", x+"/b", "TCP/80") || rep.verdict(t, y+"/b", x+"/b", "TCP/80") {
		t.Fatal("the policies are not enforced as written")
	}
}
