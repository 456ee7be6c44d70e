package e2e

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/netfence/netfence/internal/agent"
	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/conntrack"
	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/testbed"
)

// The fault suite: every fault the file-mode agent must survive, injected
// while an intruder probes an isolated server without pause (no probe may
// ever get through) and an allowed client keeps talking to it (it must
// recover after each fault), with readiness checked during and after.

const faultCluster = `apiVersion: v1
kind: Namespace
metadata: {name: app}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: app, labels: {app: web}}
spec: {nodeName: n1, containers: [{name: c, image: x, ports: [{containerPort: 80, name: http}, {containerPort: 53, protocol: UDP, name: dns}]}]}
status: {phase: Running, podIP: 10.244.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: app, labels: {app: client}}
spec: {nodeName: n1, containers: [{name: c, image: x}]}
status: {phase: Running, podIP: 10.244.0.3}
---
apiVersion: v1
kind: Pod
metadata: {name: intruder, namespace: app, labels: {app: intruder}}
spec: {nodeName: n1, containers: [{name: c, image: x}]}
status: {phase: Running, podIP: 10.244.0.4}
---
apiVersion: v1
kind: Pod
metadata: {name: guest, namespace: app, labels: {app: guest}}
spec: {nodeName: n1, containers: [{name: c, image: x}]}
status: {phase: Running, podIP: 10.244.0.5}
`

// allowPolicy allows app=from to web on TCP/80 and UDP/53.
func allowPolicy(name, from string, annotation string) string {
	return fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: %s, namespace: app, annotations: {note: %q}}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: %s}}}]
    ports: [{port: 80}, {port: 53, protocol: UDP}]
`, name, annotation, from)
}

// openPolicy allows everyone to web.
const openPolicy = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: app}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{}]
`

type faultRig struct {
	t       *testing.T
	bed     *testbed.Bed
	applier *nft.Applier
	parent  string
	dir     string
	health  *agent.Health
	loaded  chan error
	synced  chan agent.Stats
	stop    func()

	web, client, intruder, guest *cluster.Pod

	probes, leaks atomic.Int64
	// lastAllowed is when the client last reached web (unix nanos).
	lastAllowed atomic.Int64
}

func newFaultRig(t *testing.T) *faultRig {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces, nftables and conntrack (CI runs as root)")
	}
	r := &faultRig{t: t, parent: t.TempDir()}
	r.dir = filepath.Join(r.parent, "manifests")
	if err := os.Mkdir(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.write("cluster.yaml", faultCluster)
	r.write("web.yaml", allowPolicy("web", "client", "v1"))
	r.write("guest.yaml", allowPolicy("guest", "guest", "v1"))
	// A ConfigMap-style file: extra.yaml -> ..data/extra.yaml, ..data ->
	// ..v1, swapped atomically by renaming a new ..data symlink over it.
	r.swapConfigMap(0)
	if err := os.Symlink(filepath.Join("..data", "extra.yaml"), filepath.Join(r.dir, "extra.yaml")); err != nil {
		t.Fatal(err)
	}

	snap, err := (&agent.FileSource{Paths: []string{r.dir}}).Load()
	if err != nil {
		t.Fatal(err)
	}
	c := snap.Cluster
	r.web, r.client, r.intruder, r.guest = c.Pod("app/web"), c.Pod("app/client"), c.Pod("app/intruder"), c.Pod("app/guest")
	r.bed, err = testbed.Up(context.Background(), c, testbed.Options{Prefix: fmt.Sprintf("nffault%d", os.Getpid()%10000)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.bed.Down() })
	if err := r.bed.InNode(func() error { var err error; r.applier, err = nft.NewApplier(0); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.applier.Close() })
	r.startAgent()
	r.waitSync("first sync")
	if err := r.health.Ready(); err != nil {
		t.Fatalf("not ready after the first sync: %v", err)
	}
	r.startProbes()
	return r
}

func (r *faultRig) write(name, content string) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, name), []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// swapConfigMap publishes version v of ..data/extra.yaml as the kubelet
// does: a new hidden folder, a new symlink renamed over ..data.
func (r *faultRig) swapConfigMap(v int) {
	r.t.Helper()
	ver := filepath.Join(r.dir, fmt.Sprintf("..v%d", v))
	if err := os.Mkdir(ver, 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ver, "extra.yaml"), []byte(allowPolicy("extra", "client", fmt.Sprint("cm ", v))), 0o644); err != nil {
		r.t.Fatal(err)
	}
	tmp := filepath.Join(r.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ver), tmp); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(r.dir, "..data")); err != nil {
		r.t.Fatal(err)
	}
	if v > 0 {
		os.RemoveAll(filepath.Join(r.dir, fmt.Sprintf("..v%d", v-1)))
	}
}

// startAgent runs a file-mode agent (with conntrack revocation) on the
// bed's node until stopAgent.
func (r *faultRig) startAgent() {
	var revoker *conntrack.Revoker
	if err := r.bed.InNode(func() error { var err error; revoker, err = conntrack.NewRevoker(0); return err }); err != nil {
		r.t.Fatal(err)
	}
	revoker.Mark = nft.RevokedMark
	r.health = &agent.Health{}
	r.loaded = make(chan error, 1000)
	r.synced = make(chan agent.Stats, 1000)
	a := agent.New(agent.Config{
		Render:    nft.Options{Node: "n1"},
		Dataplane: r.applier,
		Revoker:   revoker,
		Health:    r.health,
		Metrics:   agent.NewMetrics(),
		Log:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 1})),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- agent.RunFiles(ctx, a, &agent.FileSource{Paths: []string{r.dir}}, agent.FileOptions{
			Debounce: 20 * time.Millisecond, Retry: 100 * time.Millisecond,
			Loaded: func(_ *agent.Snapshot, err error) {
				select {
				case r.loaded <- err:
				default:
				}
			},
			Synced: func(st agent.Stats) {
				select {
				case r.synced <- st:
				default:
				}
			},
		})
	}()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				r.t.Errorf("agent: %v", err)
			}
			revoker.Close()
		})
	}
	r.t.Cleanup(r.stop)
}

func (r *faultRig) waitSync(what string) agent.Stats {
	r.t.Helper()
	select {
	case st := <-r.synced:
		return st
	case <-time.After(10 * time.Second):
		r.t.Fatalf("%s: no sync within 10s", what)
	}
	return agent.Stats{}
}

// drain forgets earlier load and sync notifications.
func (r *faultRig) drain() {
	for {
		select {
		case <-r.loaded:
		case <-r.synced:
		default:
			return
		}
	}
}

// waitLoaded waits for the agent to read the source after a fault.
func (r *faultRig) waitLoaded(what string) error {
	r.t.Helper()
	select {
	case err := <-r.loaded:
		return err
	case <-time.After(10 * time.Second):
		r.t.Fatalf("%s: the agent did not react within 10s", what)
	}
	return nil
}

// startProbes probes intruder -> web (denied) and client -> web (allowed)
// without pause until the test ends.
func (r *faultRig) startProbes() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	probe := func(from *cluster.Pod, denied bool) {
		defer wg.Done()
		deadline := time.Now().Add(10 * time.Minute)
		for ctx.Err() == nil && time.Now().Before(deadline) {
			res, err := r.bed.Probe(ctx, from, r.web.IPs[0], corev1.ProtocolTCP, 80, 50*time.Millisecond)
			if err != nil {
				return
			}
			if denied {
				r.probes.Add(1)
				if res.Reached {
					r.leaks.Add(1)
				}
			} else if res.Reached {
				r.lastAllowed.Store(time.Now().UnixNano())
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	wg.Add(4)
	go probe(r.intruder, true)
	go probe(r.intruder, true)
	go probe(r.intruder, true)
	go probe(r.client, false)
	r.t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// allowedSince reports whether the client reached web after t.
func (r *faultRig) allowedSince(t time.Time) bool { return r.lastAllowed.Load() > t.UnixNano() }

// waitAllowed waits until the client reaches web after t.
func (r *faultRig) waitAllowed(what string, t time.Time) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !r.allowedSince(t) {
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: the allowed client did not reach web", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *faultRig) waitReady(what string, want bool) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for (r.health.Ready() == nil) != want {
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: ready=%v, want %v (%v)", what, r.health.Ready() == nil, want, r.health.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// faultCase is one fault of a suite.
type faultCase struct {
	name string
	// inject makes the fault; the agent must notice it (a read of the
	// source follows).
	inject func()
	// ready is the readiness expected while the fault lasts.
	ready bool
	// clientDenied: the fault fails closed over the allowed client too (a
	// stand-in denies web's ingress from every pod).
	clientDenied bool
	// restore ends the fault.
	restore func()
}

// run injects each fault under continuous probing, holds it, checks
// readiness and that the allowed client kept reaching web, restores it,
// and checks that no denied probe got through.
func (r *faultRig) run(cases []faultCase) {
	t := r.t
	t.Helper()
	for _, tc := range cases {
		r.drain()
		start := time.Now()
		tc.inject()
		r.waitLoaded(tc.name)
		// Hold the fault while the probes run.
		time.Sleep(300 * time.Millisecond)
		r.waitReady(tc.name+" (during)", tc.ready)
		switch reached := r.allowedSince(start.Add(150 * time.Millisecond)); {
		case !reached && !tc.clientDenied:
			t.Errorf("%s: the allowed client lost web during the fault", tc.name)
		case reached && tc.clientDenied:
			t.Errorf("%s: the client still reached web: the fault did not fail closed", tc.name)
		}
		r.drain()
		restored := time.Now()
		tc.restore()
		r.waitReady(tc.name+" (after)", true)
		r.waitAllowed(tc.name+" (after)", restored)
		if n := r.leaks.Load(); n > 0 {
			t.Fatalf("%s: %d denied probes got through", tc.name, n)
		}
		t.Logf("%-75s ok (%d denied probes so far, none through)", tc.name, r.probes.Load())
	}
}

// TestFaultSuite injects each fault under continuous probing.
func TestFaultSuite(t *testing.T) {
	r := newFaultRig(t)
	full := allowPolicy("web", "client", "v1")
	r.run([]faultCase{
		{
			name:    "policy file cut short mid-write (syntax error)",
			inject:  func() { r.write("web.yaml", full[:len(full)/2]+"\n  - {[") },
			restore: func() { r.write("web.yaml", full) },
		},
		{
			name:    "policy file emptied (a writer truncating first)",
			inject:  func() { r.write("web.yaml", "") },
			restore: func() { r.write("web.yaml", full) },
		},
		{
			name: "policy file cut at a document boundary of a List",
			inject: func() {
				r.write("web.yaml", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.k8s.io/v1\n  kind: NetworkPolicy\n  metadata: {name: web, namespace: app}\n  spec:\n    podSelector: {matchLabels: {app: web}}\n    ingress:\n    - from: [{podSelector: {matchLabels: {app: client}}}]\n      ports: [{port: 80}, {port: 53, protocol: UDP}]\n- apiVersion: networking.k8s.io/v1\n  kind: NetworkPol")
			},
			ready:   true, // a valid prefix that still holds web: it is what the file says
			restore: func() { r.write("web.yaml", full) },
		},
		{
			name: "manifests folder removed",
			inject: func() {
				if err := os.Rename(r.dir, r.dir+".away"); err != nil {
					t.Fatal(err)
				}
			},
			restore: func() {
				if err := os.Rename(r.dir+".away", r.dir); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name:    "same policy in a second file, open to all",
			inject:  func() { r.write("zz-copy.yaml", openPolicy) },
			restore: func() { os.Remove(filepath.Join(r.dir, "zz-copy.yaml")) },
		},
		{
			name: "policy file replaced 20 times by atomic rename (editors, kubectl > tmp && mv)",
			inject: func() {
				for i := 0; i < 20; i++ {
					tmp := filepath.Join(r.dir, ".web.yaml.swp")
					if err := os.WriteFile(tmp, []byte(allowPolicy("web", "client", fmt.Sprint("edit ", i))), 0o644); err != nil {
						t.Fatal(err)
					}
					if err := os.Rename(tmp, filepath.Join(r.dir, "web.yaml")); err != nil {
						t.Fatal(err)
					}
					time.Sleep(5 * time.Millisecond)
				}
			},
			ready:   true,
			restore: func() {},
		},
		{
			name: "ConfigMap volume symlink swapped 20 times",
			inject: func() {
				for i := 1; i <= 20; i++ {
					r.swapConfigMap(i)
					time.Sleep(5 * time.Millisecond)
				}
			},
			ready:   true,
			restore: func() {},
		},
	})

	// An agent restart: the rules stay while no agent runs, and the new
	// agent's first sync replaces them atomically.
	r.stop()
	time.Sleep(300 * time.Millisecond)
	r.startAgent()
	r.waitSync("restart")
	r.waitReady("restart", true)

	// --once against a missing path: an error, and nothing touched.
	once := agent.New(agent.Config{Render: nft.Options{Node: "n1"}, Dataplane: r.applier})
	if err := agent.RunFiles(context.Background(), once, &agent.FileSource{Paths: []string{filepath.Join(r.parent, "typo")}}, agent.FileOptions{Once: true}); err == nil {
		t.Error("--once with a missing path succeeded")
	}
	time.Sleep(200 * time.Millisecond)
	if r.leaks.Load() > 0 {
		t.Fatalf("%d denied probes got through", r.leaks.Load())
	}
	if r.probes.Load() < 50 {
		t.Fatalf("only %d denied probes ran", r.probes.Load())
	}
	t.Logf("%d denied probes over every fault, none got through", r.probes.Load())
}

// TestRevocationCutsEstablished: a change that denies a flow conntrack
// holds as established cuts it in the same sync, TCP and UDP; the figure
// is the time from the file write to the first byte that no longer passes.
func TestRevocationCutsEstablished(t *testing.T) {
	r := newFaultRig(t)
	ctx := context.Background()
	conn, err := r.bed.Dial(ctx, r.guest, r.web.IPs[0], 80)
	if err != nil {
		t.Fatalf("guest cannot connect while allowed: %v", err)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn) // Dial has read the server's greeting
	echo := func(i int, timeout time.Duration) error {
		msg := fmt.Sprintf("ping %d\n", i)
		conn.SetDeadline(time.Now().Add(timeout))
		if _, err := conn.Write([]byte(msg)); err != nil {
			return err
		}
		got, err := rd.ReadString('\n')
		if err != nil {
			return err
		}
		if got != msg {
			return fmt.Errorf("echo %q", got)
		}
		return nil
	}
	udp, err := r.bed.DialUDP(r.guest, r.web.IPs[0], 53)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	if err := echo(0, 2*time.Second); err != nil {
		t.Fatalf("established TCP before the change: %v", err)
	}
	if ok, err := udp.Exchange(3, 500*time.Millisecond); !ok || err != nil {
		t.Fatalf("UDP flow before the change: %v %v", ok, err)
	}

	// Revoke guest's allow. The TCP connection and the UDP flow must stop
	// passing at once: poll each every 5 ms.
	r.drain()
	start := time.Now()
	os.Remove(filepath.Join(r.dir, "guest.yaml"))
	// The last byte that passes, after the write, bounds when the flow was
	// cut; the first failure follows within one poll.
	tcpCut, udpCut := time.Duration(0), time.Duration(0)
	var tcpLast, udpLast time.Duration
	for i := 1; (tcpCut == 0 || udpCut == 0) && time.Since(start) < 5*time.Second; i++ {
		if tcpCut == 0 {
			if echo(i, 20*time.Millisecond) != nil {
				tcpCut = time.Since(start)
			} else {
				tcpLast = time.Since(start)
			}
		}
		if udpCut == 0 {
			if ok, _ := udp.Exchange(1, 20*time.Millisecond); !ok {
				udpCut = time.Since(start)
			} else {
				udpLast = time.Since(start)
			}
		}
	}
	st := r.waitSync("revocation")
	if tcpCut == 0 || udpCut == 0 {
		t.Fatalf("established flows outlived the policy: tcp cut %v, udp cut %v (revoked %v)", tcpCut, udpCut, st.Revoked)
	}
	// And nothing passes any more.
	for i := 0; i < 5; i++ {
		if ok, _ := udp.Exchange(1, 100*time.Millisecond); ok {
			t.Fatal("UDP flow passes again after revocation")
		}
	}
	if err := echo(1000, 300*time.Millisecond); err == nil {
		t.Fatal("TCP connection passes again after revocation")
	}
	var flows []string
	for _, f := range st.Revoked {
		flows = append(flows, f.String())
	}
	t.Logf("revocation: tcp last-pass=%v first-fail=%v; udp last-pass=%v first-fail=%v (after the write); sync=%v revoked=%d [%s]",
		tcpLast.Round(time.Millisecond), tcpCut.Round(time.Millisecond), udpLast.Round(time.Millisecond), udpCut.Round(time.Millisecond), st.Duration.Round(time.Microsecond), len(st.Revoked), strings.Join(flows, "; "))
	if r.leaks.Load() > 0 {
		t.Fatalf("%d denied probes got through", r.leaks.Load())
	}
}

// guardCNP is an Admin ClusterNetworkPolicy denying intruder -> web
// (annotation makes versions differ).
func guardCNP(note string) string {
	return fmt.Sprintf(`apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: guard, annotations: {note: %q}}
spec:
  tier: Admin
  priority: 10
  subject:
    pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}
  ingress:
  - name: no-intruder
    action: Deny
    from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: intruder}}}}]
`, note)
}

// TestClusterPolicyFileFaults runs the file faults against a cluster
// policy that is the only thing denying the intruder (a NetworkPolicy
// opens web to everyone): whatever happens to its file, no intruder probe
// may get through while the client keeps reaching web.
func TestClusterPolicyFileFaults(t *testing.T) {
	r := newFaultRig(t)
	r.drain()
	r.write("guard.yaml", guardCNP("v1"))
	r.waitSync("the cluster policy")
	r.drain()
	r.write("web.yaml", openPolicy)
	r.waitSync("web opened by NetworkPolicy")
	full := guardCNP("v1")
	r.run([]faultCase{
		{
			name:    "cluster policy file cut short mid-write (syntax error)",
			inject:  func() { r.write("guard.yaml", full[:len(full)/2]+"\n  - {[") },
			restore: func() { r.write("guard.yaml", full) },
		},
		{
			name:    "cluster policy file emptied",
			inject:  func() { r.write("guard.yaml", "") },
			restore: func() { r.write("guard.yaml", full) },
		},
		{
			name:    "cluster policy invalid by its CRD (priority 5000): the last valid version stays",
			inject:  func() { r.write("guard.yaml", strings.Replace(full, "priority: 10", "priority: 5000", 1)) },
			ready:   true, // as for an invalid NetworkPolicy document: reported, not degraded
			restore: func() { r.write("guard.yaml", full) },
		},
		{
			name: "cluster policy that does not compile (an unknown selector operator): the last valid version stays",
			inject: func() {
				r.write("guard.yaml", strings.Replace(full, "podSelector: {matchLabels: {app: intruder}}", "podSelector: {matchExpressions: [{key: app, operator: Sideways}]}", 1))
			},
			ready:   true,
			restore: func() { r.write("guard.yaml", full) },
		},
		{
			name:    "same cluster policy in a second file, accepting the intruder",
			inject:  func() { r.write("zz-guard.yaml", strings.Replace(full, "action: Deny", "action: Accept", 1)) },
			restore: func() { os.Remove(filepath.Join(r.dir, "zz-guard.yaml")) },
		},
		{
			name: "a new cluster policy, never valid, accepting the intruder first: its stand-in denies all to web",
			inject: func() {
				r.write("new.yaml", strings.NewReplacer("name: guard", "name: newcomer", "priority: 10", "priority: 1", "action: Deny", "action: Accept",
					"app: intruder}}", "app: intruder}, matchExpressions: [{key: x, operator: Sideways}]}").Replace(full))
			},
			ready:        true,
			clientDenied: true,
			restore:      func() { os.Remove(filepath.Join(r.dir, "new.yaml")) },
		},
	})
	if r.leaks.Load() > 0 || r.probes.Load() < 20 {
		t.Fatalf("%d of %d denied probes got through", r.leaks.Load(), r.probes.Load())
	}
}
