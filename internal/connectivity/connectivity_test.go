package connectivity

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netfence/netfence/internal/agent"
	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/manifest"
	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/policy"
	"github.com/netfence/netfence/internal/testbed"
)

// TestExamples enforces every bundled example and probes it: traffic must
// match the analyzer everywhere.
func TestExamples(t *testing.T) {
	needRoot(t)
	dirs, err := filepath.Glob("../../examples/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for i, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs, err := (&manifest.Loader{}).Load([]string{dir})
			if err != nil {
				t.Fatal(err)
			}
			set := policy.NewSet(objs.Cluster())
			rep, err := Run(context.Background(), set, Options{Deny: nft.DenyDrop, Timeout: 500 * time.Millisecond, Prefix: fmt.Sprintf("nfex%d", i)})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Probes == 0 {
				t.Fatal("nothing probed")
			}
			allowed, denied := 0, 0
			for _, r := range rep.Results {
				if r.Mismatch {
					t.Errorf("%s -> %s %s/%d: traffic %s (%s), analyzer %s", r.From, r.To, r.Protocol, r.Port, word(r.Allowed), r.Outcome, word(r.Expected))
				}
				if r.Probed && r.Allowed {
					allowed++
				} else if r.Probed {
					denied++
				}
			}
			t.Logf("%d probes: %d allowed, %d denied", rep.Probes, allowed, denied)
		})
	}
}

func pod(ns, name, ip string, l labels.Set) *cluster.Pod {
	return &cluster.Pod{Namespace: ns, Name: name, Labels: l, Phase: corev1.PodRunning, NodeName: "n",
		IPs: []netip.Addr{netip.MustParseAddr(ip)}, Ports: []cluster.ContainerPort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}}
}

func allowFrom(name string, from map[string]string, ports ...int32) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: from}}}}},
		},
	}
	for _, p := range ports {
		port := intstr.FromInt32(p)
		np.Spec.Ingress[0].Ports = append(np.Spec.Ingress[0].Ports, networkingv1.NetworkPolicyPort{Port: &port})
	}
	return np
}

// TestUpdateUnderProbing applies a sequence of incremental updates while a
// denied client probes the isolated server continuously and an allowed
// client holds an established TCP connection: no denied probe may get
// through, and the established connection must keep passing data.
func TestUpdateUnderProbing(t *testing.T) {
	needRoot(t)
	web := pod("app", "web", "10.244.9.2", labels.Set{"app": "web"})
	client := pod("app", "client", "10.244.9.3", labels.Set{"app": "client"})
	intruder := pod("app", "intruder", "10.244.9.4", labels.Set{"app": "intruder"})
	other := pod("app", "other", "10.244.9.5", labels.Set{"app": "other"})
	pods := []*cluster.Pod{web, client, intruder, other}
	ns := []*cluster.Namespace{{Name: "app", Labels: labels.Set{}, Defined: true}}
	base := cluster.New(ns, pods, []*networkingv1.NetworkPolicy{allowFrom("allow-client", map[string]string{"app": "client"}, 80)})

	bed, err := testbed.Up(context.Background(), base, testbed.Options{Prefix: "nfupd"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bed.Down() })
	var applier *nft.Applier
	if err := bed.InNode(func() error { var err error; applier, err = nft.NewApplier(0); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { applier.Close() })
	a := agent.New(agent.Config{Render: nft.Options{AllLocal: true}, Dataplane: applier})
	if err := a.CheckKernel(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(context.Background(), base); err != nil {
		t.Fatal(err)
	}

	conn, err := bed.Dial(context.Background(), client, web.IPs[0], 80)
	if err != nil {
		t.Fatalf("allowed client cannot connect: %v", err)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	echo := func(i int) error {
		msg := fmt.Sprintf("ping %d\n", i)
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Write([]byte(msg)); err != nil {
			return err
		}
		got, err := rd.ReadString('\n')
		if err != nil {
			return err
		}
		if got != msg {
			return fmt.Errorf("echo %q, want %q", got, msg)
		}
		return nil
	}
	if err := echo(0); err != nil {
		t.Fatalf("established connection: %v", err)
	}

	// The intruder probes the isolated server without pause while the
	// updates run; every probe must fail.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var probes, leaks atomic.Int64
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(time.Minute)
			for ctx.Err() == nil && time.Now().Before(deadline) && probes.Load() < 100000 {
				res, err := bed.Probe(ctx, intruder, web.IPs[0], corev1.ProtocolTCP, []int32{80, 8080}[w%2], 50*time.Millisecond)
				if err != nil {
					return
				}
				probes.Add(1)
				if res.Reached {
					leaks.Add(1)
				}
			}
		}()
	}

	// Each step keeps the intruder denied and the client allowed.
	steps := [][]*networkingv1.NetworkPolicy{
		{allowFrom("allow-client", map[string]string{"app": "client"}, 80, 8080)},
		{allowFrom("allow-client", map[string]string{"app": "client"}, 80), allowFrom("allow-other", map[string]string{"app": "other"})},
		{allowFrom("allow-other", map[string]string{"app": "other"}), allowFrom("allow-client-2", map[string]string{"app": "client"})},
		{allowFrom("allow-client", map[string]string{"app": "client"}, 80)},
	}
	for round := 0; round < 5; round++ {
		for si, pols := range steps {
			// Also move the other pod's labels around.
			other.Labels = labels.Set{"app": "other", "round": fmt.Sprint(round, si)}
			c := cluster.New(ns, pods, pols)
			st, err := a.Sync(context.Background(), c)
			if err != nil {
				t.Fatalf("round %d step %d: %v", round, si, err)
			}
			if st.Full {
				t.Fatalf("round %d step %d: full sync, want incremental", round, si)
			}
			if err := echo(round*10 + si + 1); err != nil {
				t.Fatalf("round %d step %d: established connection cut: %v", round, si, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	stop()
	wg.Wait()
	if probes.Load() < 100 {
		t.Fatalf("only %d probes ran", probes.Load())
	}
	if leaks.Load() > 0 {
		t.Fatalf("%d of %d denied probes got through during updates", leaks.Load(), probes.Load())
	}
	t.Logf("%d denied probes during 20 incremental updates, none got through; established connection kept", probes.Load())
}
