package e2e

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/netfence/netfence/internal/agent"
	"github.com/netfence/netfence/internal/analysis"
	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/connectivity"
	"github.com/netfence/netfence/internal/kube"
	"github.com/netfence/netfence/internal/manifest"
	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/policy"
	"github.com/netfence/netfence/internal/testbed"
	"github.com/netfence/netfence/test/kubetest"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and nftables (CI runs as root)")
	}
}

// create writes the objects through the API, pods with their status
// (phase, addresses) through the status subresource.
func create(ctx context.Context, t *testing.T, c kubernetes.Interface, objs *manifest.Objects) {
	t.Helper()
	for _, ns := range objs.Namespaces {
		if _, err := c.CoreV1().Namespaces().Create(ctx, ns.DeepCopy(), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create namespace %s: %v", ns.Name, err)
		}
	}
	for _, p := range objs.Pods {
		createPod(ctx, t, c, p)
	}
	for _, np := range objs.Policies {
		if _, err := c.NetworkingV1().NetworkPolicies(np.Namespace).Create(ctx, np.DeepCopy(), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create policy %s/%s: %v", np.Namespace, np.Name, err)
		}
	}
}

// applyDeploy applies deploy/ (server-side dry runs first, the
// namespace's before it exists, as a dry run creates nothing) and returns
// the REST config of the agent's ServiceAccount: the agent runs with
// exactly the RBAC the DaemonSet gets.
func applyDeploy(ctx context.Context, t *testing.T, env *kubetest.Env) *rest.Config {
	t.Helper()
	for _, args := range [][]string{
		{"apply", "--dry-run=server", "-f", "../../deploy/namespace.yaml"},
		{"apply", "-f", "../../deploy/namespace.yaml"},
		{"apply", "--dry-run=server", "-k", "../../deploy"},
		{"apply", "-k", "../../deploy"},
	} {
		cmd, err := env.Kubectl(ctx, args...)
		if err != nil {
			t.Fatalf("kubectl: %v", err)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
	}
	cfg, err := env.ServiceAccountConfig(ctx, "netfence-system", "netfence-agent")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// createThreeTier writes examples/three-tier through the API (create) and
// returns its objects.
func createThreeTier(ctx context.Context, t *testing.T, c kubernetes.Interface) *manifest.Objects {
	t.Helper()
	objs, err := (&manifest.Loader{}).Load([]string{"../../examples/three-tier"})
	if err != nil {
		t.Fatal(err)
	}
	create(ctx, t, c, objs)
	return objs
}

// upBed brings up a testbed of c, taken down when the test ends, and
// returns it with a lookup of c's pods by key that fails the test when
// there is no such pod.
func upBed(ctx context.Context, t *testing.T, c *cluster.Cluster, opts testbed.Options) (*testbed.Bed, func(key string) *cluster.Pod) {
	t.Helper()
	bed, err := testbed.Up(ctx, c, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bed.Down() })
	return bed, func(key string) *cluster.Pod {
		p := c.Pod(key)
		if p == nil {
			t.Fatalf("no pod %s", key)
		}
		return p
	}
}

func createPod(ctx context.Context, t *testing.T, c kubernetes.Interface, p *corev1.Pod) {
	t.Helper()
	created, err := c.CoreV1().Pods(p.Namespace).Create(ctx, p.DeepCopy(), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", p.Namespace, p.Name, err)
	}
	created.Status = p.Status
	if _, err := c.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("pod %s/%s status: %v", p.Namespace, p.Name, err)
	}
}

// flipLatency probes from -> to until the verdict is want, and returns how
// long after start that was. It fails the test after a bounded wait.
func flipLatency(ctx context.Context, t *testing.T, bed *testbed.Bed, from *cluster.Pod, to *cluster.Pod, port int32, want bool, start time.Time) time.Duration {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; time.Now().Before(deadline) && i < 100000; i++ {
		res, err := bed.Probe(ctx, from, to.IPs[0], corev1.ProtocolTCP, port, 200*time.Millisecond)
		if err != nil {
			t.Fatalf("probe: %v", err)
		}
		if res.Reached == want {
			return time.Since(start)
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%s -> %s TCP/%d never became allowed=%v", from.Key(), to.Key(), port, want)
	return 0
}

// runAgent starts the Kubernetes-mode agent in the bed's node namespace and
// returns a stop function and a channel of syncs.
func runAgent(t *testing.T, bed *testbed.Bed, client kubernetes.Interface, health *agent.Health) (stop func(), synced <-chan agent.Stats) {
	t.Helper()
	return runAgentWith(t, bed, client, health, kube.Options{})
}

// runAgentWith starts the agent as runAgent does, with informer options
// (cluster-scoped policies when opts.Policy is set).
func runAgentWith(t *testing.T, bed *testbed.Bed, client kubernetes.Interface, health *agent.Health, opts kube.Options) (stop func(), synced <-chan agent.Stats) {
	t.Helper()
	var applier *nft.Applier
	if err := bed.InNode(func() error { var err error; applier, err = nft.NewApplier(0); return err }); err != nil {
		t.Fatal(err)
	}
	ch := make(chan agent.Stats, 1000)
	events := agent.NewEventReporter(client, "node-1")
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if opts.Log == nil {
		opts.Log = log
	}
	a := agent.New(agent.Config{
		Render:    nft.Options{Node: "node-1", Deny: nft.DenyReject},
		Dataplane: applier,
		Log:       log,
		Metrics:   agent.NewMetrics(),
		Health:    health,
		Rejected:  events.Rejected,
		Noticed:   events.Noticed,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- agent.RunKube(ctx, a, kube.NewInformers(client, opts), agent.KubeOptions{Synced: func(st agent.Stats) {
			select {
			case ch <- st:
			default:
			}
		}})
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("agent: %v", err)
			}
			events.Stop()
			applier.Close()
		})
	}
	t.Cleanup(stop)
	return stop, ch
}

func waitSync(t *testing.T, ch <-chan agent.Stats) agent.Stats {
	t.Helper()
	select {
	case st := <-ch:
		return st
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not sync within 30s")
	}
	return agent.Stats{}
}

// TestAgentOnAPIServer runs the agent against a real kube-apiserver with
// the least-privilege ServiceAccount from deploy/, and checks with real
// traffic that it enforces what the analyzer predicts from the live cluster,
// through a label edit, a new pod, a deleted policy, a rejected policy, a
// restart and the API server going away.
func TestAgentOnAPIServer(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	env := kubetest.Start(ctx, t)
	saClient := kubernetes.NewForConfigOrDie(applyDeploy(ctx, t, env))
	if _, err := saClient.CoreV1().Secrets("").List(ctx, metav1.ListOptions{}); err == nil {
		t.Fatal("the agent's ServiceAccount may list secrets: RBAC is not least-privilege")
	}
	objs := createThreeTier(ctx, t, env.Client)

	// The testbed also holds a pod the API does not know yet.
	newcomer := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db-1", Labels: map[string]string{"app": "db", "tier": "data"}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "main", Image: "x",
			Ports: []corev1.ContainerPort{{Name: "postgres", ContainerPort: 5432, Protocol: corev1.ProtocolTCP}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.1.31", PodIPs: []corev1.PodIP{{IP: "10.244.1.31"}}},
	}
	bedObjs := *objs
	bedObjs.Pods = append(append([]*corev1.Pod(nil), objs.Pods...), newcomer)
	bed, pod := upBed(ctx, t, bedObjs.Cluster(), testbed.Options{Prefix: "nfe2e", ExtraPorts: []testbed.Port{{Protocol: "TCP", Port: 8080}, {Protocol: "TCP", Port: 5432}, {Protocol: "UDP", Port: 53}}})

	health := &agent.Health{}
	stop, synced := runAgent(t, bed, saClient, health)
	st := waitSync(t, synced)
	if !st.Full || health.Ready() != nil {
		t.Fatalf("first sync: %+v, ready: %v", st, health.Ready())
	}

	// Traffic equals the analyzer's reading of the live cluster.
	checkMatrix := func(stage string) {
		t.Helper()
		live, err := kube.List(ctx, env.Client)
		if err != nil {
			t.Fatal(err)
		}
		set := policy.NewSet(live.Cluster())
		m, err := analysis.ComputeMatrix(ctx, set, analysis.Options{Ports: []analysis.Port{{Protocol: "TCP", Port: 8080}, {Protocol: "TCP", Port: 5432}, {Protocol: "UDP", Port: 53}}})
		if err != nil {
			t.Fatal(err)
		}
		rep := connectivity.Probe(ctx, bed, m, 32, time.Second)
		for _, r := range rep.Results {
			if r.Mismatch {
				t.Errorf("%s: %s -> %s %s/%d: traffic %v (%s), analyzer %v", stage, r.From, r.To, r.Protocol, r.Port, r.Allowed, r.Outcome, r.Expected)
			}
		}
		if rep.Probes == 0 {
			t.Fatalf("%s: nothing probed", stage)
		}
	}
	checkMatrix("initial")

	// The analyzer on the live cluster, alone and with a policy from a file
	// replacing the live one of the same name (judging a change before
	// applying it).
	verdict := func(objs *kube.Objects) bool {
		t.Helper()
		res, err := analysis.Check(policy.NewSet(objs.Cluster()), analysis.CheckRequest{From: "shop/frontend-7c9f4-fghij", To: "shop/api-5d8b6-klmno", Port: "TCP/http"})
		if err != nil {
			t.Fatal(err)
		}
		return res.Allowed
	}
	live, err := kube.List(ctx, env.Client)
	if err != nil {
		t.Fatal(err)
	}
	if !verdict(live) {
		t.Fatal("live cluster: frontend -> api should be allowed")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "api.yaml"), []byte("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: api, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: api}}\n  policyTypes: [Ingress]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fileObjs, err := (&manifest.Loader{}).Load([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	live.Overlay(fileObjs.Namespaces, fileObjs.Pods, fileObjs.Policies)
	if verdict(live) {
		t.Fatal("live cluster with shop/api replaced from a file: frontend -> api should be denied")
	}

	frontend, api, db, debug := pod("shop/frontend-7c9f4-abcde"), pod("shop/api-5d8b6-klmno"), pod("shop/db-0"), pod("tools/debug")

	// A label edit: the frontend pod loses app=frontend, so its egress to
	// the api is no longer allowed.
	start := time.Now()
	fp, err := env.Client.CoreV1().Pods("shop").Get(ctx, frontend.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fp.Labels["app"] = "frontend-canary"
	if _, err := env.Client.CoreV1().Pods("shop").Update(ctx, fp, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("label edit enforced %v after the API write", flipLatency(ctx, t, bed, frontend, api, 8080, false, start))

	// A new pod: unknown to the agent, the newcomer is open; once created
	// through the API it is isolated by default-deny-all and db.
	if res, _ := bed.Probe(ctx, debug, netip.MustParseAddr(newcomer.Status.PodIP), corev1.ProtocolTCP, 5432, time.Second); !res.Reached {
		t.Fatalf("before it exists in the API the newcomer should be open: %v", res)
	}
	start = time.Now()
	createPod(ctx, t, env.Client, newcomer)
	t.Logf("new pod isolated %v after the API write", flipLatency(ctx, t, bed, debug, pod("shop/db-1"), 5432, false, start))

	// A deleted policy: without shop/db, the api may no longer reach the db.
	start = time.Now()
	if err := env.Client.NetworkingV1().NetworkPolicies("shop").Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("policy deletion enforced %v after the API write", flipLatency(ctx, t, bed, api, db, 5432, false, start))
	checkMatrix("after changes")

	// A policy the API server admits with a legacy CIDR form (IPv4-mapped
	// IPv6, accepted while StrictIPCIDRValidation is off) is enforced as
	// implementations read it, ::ffff:10.0.0.0/104 = 10.0.0.0/8, never
	// dropped: ::ffff:10.244.1.16/124 is 10.244.1.16/28 (the api and db
	// pods), so tools/debug no longer accepts coredns.
	legacy := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "tools", Name: "mapped-cidr"},
		Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "::ffff:10.244.1.16/124"}}}}}},
	}
	coredns := pod("kube-system/coredns-6f6b6-uvwxy")
	if res, _ := bed.Probe(ctx, coredns, debug.IPs[0], corev1.ProtocolTCP, 8080, time.Second); !res.Reached {
		t.Fatalf("before the legacy-CIDR policy coredns should reach tools/debug: %v", res)
	}
	start = time.Now()
	if _, err := env.Client.NetworkingV1().NetworkPolicies("tools").Create(ctx, legacy, metav1.CreateOptions{}); err != nil {
		t.Fatalf("the API server refuses the mapped CIDR (%v): StrictIPCIDRValidation must be on; this test needs it off", err)
	}
	t.Logf("legacy-CIDR policy enforced %v after the API write", flipLatency(ctx, t, bed, coredns, debug, 8080, false, start))
	checkMatrix("with a legacy-CIDR policy")

	// Restart: while the agent is down and while the new one starts, a
	// denied flow stays denied (rules stay in the kernel; the first full
	// sync replaces them atomically).
	var leaks, probes atomic.Int64
	pctx, pstop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for pctx.Err() == nil && probes.Load() < 100000 {
			res, err := bed.Probe(pctx, debug, db.IPs[0], corev1.ProtocolTCP, 5432, 100*time.Millisecond)
			if err != nil {
				return
			}
			probes.Add(1)
			if res.Reached {
				leaks.Add(1)
			}
		}
	}()
	stop()
	time.Sleep(200 * time.Millisecond)
	_, synced = runAgent(t, bed, saClient, &agent.Health{})
	if st := waitSync(t, synced); !st.Full {
		t.Errorf("first sync after restart: %+v", st)
	}
	time.Sleep(200 * time.Millisecond)
	pstop()
	wg.Wait()
	if leaks.Load() > 0 || probes.Load() < 10 {
		t.Fatalf("restart: %d of %d denied probes got through", leaks.Load(), probes.Load())
	}
	t.Logf("restart: %d denied probes, none got through", probes.Load())

	// The API server goes away: the last state stays enforced.
	if err := env.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	checkAfter := func(from, to *cluster.Pod, port int32, want bool) {
		res, err := bed.Probe(ctx, from, to.IPs[0], corev1.ProtocolTCP, port, time.Second)
		if err != nil || res.Reached != want {
			t.Errorf("API server down: %s -> %s TCP/%d reached=%v, want %v (%v)", from.Key(), to.Key(), port, res.Reached, want, err)
		}
	}
	checkAfter(debug, db, 5432, false)
	checkAfter(pod("shop/frontend-7c9f4-fghij"), api, 8080, true)
}
