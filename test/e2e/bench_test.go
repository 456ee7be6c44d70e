package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netfence/netfence/internal/agent"
	"github.com/netfence/netfence/internal/kube"
	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/test/kubetest"
	"github.com/netfence/netfence/test/synth"
)

// benchNetns creates a throwaway network namespace for the agent's table
// (never the root namespace's firewall) and removes it on cleanup.
func benchNetns(b *testing.B) (name string, fd *os.File) {
	b.Helper()
	name = fmt.Sprintf("nfbench-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		b.Fatalf("ip netns add: %v: %s", err, out)
	}
	b.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })
	f, err := os.Open(filepath.Join("/var/run/netns", name))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return name, f
}

// BenchmarkAPIToEnforced measures, against a real kube-apiserver holding
// 1,000 pods (all on the measured node) and 500 policies, the time from an
// API write to the ruleset in the kernel: for a policy change and for a new
// pod. It also reports the agent's memory at that size (the real binary in
// a subprocess). Run: go test -run XXX -bench APIToEnforced ./test/e2e/
func BenchmarkAPIToEnforced(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for the network namespace holding the agent's table")
	}
	ctx := context.Background()
	env := kubetest.Start(ctx, b)
	objs, err := synth.Generate(synth.Config{Pods: 1000, Namespaces: 20, Policies: 500, Seed: 1, Nodes: 1})
	if err != nil {
		b.Fatal(err)
	}
	c := env.Client
	start := time.Now()
	for _, ns := range objs.Namespaces {
		// Pod security admission would refuse the synthetic pods.
		for k := range ns.Labels {
			if strings.HasPrefix(k, "pod-security.kubernetes.io/") {
				delete(ns.Labels, k)
			}
		}
		if _, err := c.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "already exists") {
			b.Fatal(err)
		}
	}
	for _, p := range objs.Pods {
		created, err := c.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		created.Status = p.Status
		if _, err := c.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	for _, np := range objs.Policies {
		if _, err := c.NetworkingV1().NetworkPolicies(np.Namespace).Create(ctx, np, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("created %d pods and %d policies in %v", len(objs.Pods), len(objs.Policies), time.Since(start).Round(time.Millisecond))
	node := objs.Pods[0].Spec.NodeName

	_, fd := benchNetns(b)
	applier, err := nft.NewApplier(int(fd.Fd()))
	if err != nil {
		b.Fatal(err)
	}
	defer applier.Close()
	synced := make(chan time.Time, 10000)
	a := agent.New(agent.Config{Render: nft.Options{Node: node}, Dataplane: applier, Log: slog.New(slog.DiscardHandler)})
	actx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- agent.RunKube(actx, a, kube.NewInformers(c, kube.Options{}), agent.KubeOptions{Synced: func(st agent.Stats) {
			if st.Changed {
				synced <- time.Now()
			}
		}})
	}()
	defer func() { cancel(); <-done }()
	select {
	case <-synced:
	case <-time.After(2 * time.Minute):
		b.Fatal("no first sync")
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.Logf("in-process: heap in use after the first sync %.1f MiB", float64(ms.HeapInuse)/(1<<20))

	// waitEnforced waits for the first changing sync that follows t0 and
	// returns its delay.
	waitEnforced := func(t0 time.Time) time.Duration {
		for {
			select {
			case t := <-synced:
				if t.After(t0) {
					return t.Sub(t0)
				}
			case <-time.After(30 * time.Second):
				b.Fatal("change not enforced within 30s")
			}
		}
	}
	drain := func() {
		time.Sleep(20 * time.Millisecond)
		for len(synced) > 0 {
			<-synced
		}
	}
	target := objs.Pods[0]
	tcp := corev1.ProtocolTCP
	var policyLat, podLat []time.Duration
	rounds := 50
	for i := 0; i < rounds; i++ {
		drain()
		// A policy change: a new policy selecting one pod, allowing a port.
		port := intstr.FromInt32(int32(20000 + i))
		np := &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: target.Namespace, Name: fmt.Sprintf("bench-%d", i)},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: target.Labels},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}}}},
			},
		}
		t0 := time.Now()
		if _, err := c.NetworkingV1().NetworkPolicies(np.Namespace).Create(ctx, np, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		policyLat = append(policyLat, waitEnforced(t0))
		drain()
		// A new pod on the node: created, then its address appears.
		p := target.DeepCopy()
		p.Name, p.ResourceVersion, p.UID = fmt.Sprintf("bench-pod-%d", i), "", ""
		p.Status.PodIP = fmt.Sprintf("10.250.%d.%d", i/250, 1+i%250)
		p.Status.PodIPs = []corev1.PodIP{{IP: p.Status.PodIP}}
		created, err := c.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		drain()
		created.Status = p.Status
		t0 = time.Now()
		if _, err := c.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		podLat = append(podLat, waitEnforced(t0))
	}
	report := func(name string, d []time.Duration) {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		p50, p99 := d[len(d)/2], d[(len(d)*99)/100]
		b.ReportMetric(float64(p50.Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, name+"-p99-ms")
		b.Logf("%s: p50 %v, p99 %v over %d writes", name, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), len(d))
	}
	report("policy", policyLat)
	report("newpod", podLat)
	measureAgentMemory(b, env, node)
}

// measureAgentMemory runs the real agent binary against the API server in a
// throwaway namespace and reports its resident memory after the first sync.
func measureAgentMemory(b *testing.B, env *kubetest.Env, node string) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "netfence")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/netfence").CombinedOutput(); err != nil {
		b.Fatalf("build: %v: %s", err, out)
	}
	name := fmt.Sprintf("nfbenchmem-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		b.Fatalf("ip netns add: %v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "delete", name).Run()
	cmd := exec.Command(bin, "agent", "--kubeconfig", env.Kubeconfig, "--node", node, "--netns", name, "--health-addr", "")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		out, _ := exec.Command("ip", "netns", "exec", name, "nft", "list", "tables").Output()
		if strings.Contains(string(out), "netfence") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmRSS") || strings.HasPrefix(line, "VmHWM") {
			b.Logf("agent process %s", strings.Join(strings.Fields(line), " "))
		}
	}
}
