package flow_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netfence/netfence/internal/agent"
	"github.com/netfence/netfence/internal/analysis"
	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/flow"
	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/policy"
	"github.com/netfence/netfence/internal/testbed"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and nftables rules (CI runs as root)")
	}
}

func tpod(name, ip string) *cluster.Pod {
	return &cluster.Pod{Namespace: "app", Name: name, Labels: labels.Set{"app": name}, Phase: corev1.PodRunning, NodeName: "n1",
		IPs:   []netip.Addr{netip.MustParseAddr(ip)},
		Ports: []cluster.ContainerPort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}, {Name: "dns", Protocol: corev1.ProtocolUDP, Port: 5353}}}
}

// monitorCluster: every pod of app is isolated for ingress; web admits
// client on TCP 80 and UDP 5353; locked may send nothing; an Admin tier
// policy denies intruder UDP 5353 anywhere.
func monitorCluster() *cluster.Cluster {
	pods := []*cluster.Pod{tpod("web", "10.244.29.2"), tpod("client", "10.244.29.3"), tpod("intruder", "10.244.29.4"), tpod("locked", "10.244.29.5")}
	nss := []*cluster.Namespace{{Name: "app", Labels: labels.Set{}, Defined: true}}
	deny := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "default-deny"},
		Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	p80, p5353 := intstr.FromInt32(80), intstr.FromInt32(5353)
	allow := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "allow-client"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p80}, {Protocol: &udp, Port: &p5353}}}}}}
	locked := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "locked-egress"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "locked"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}}}
	cnp := &cluster.ClusterPolicy{Kind: cluster.KindCNP, APIVersion: cluster.PolicyAPIGroup + "/v1beta1", Name: "no-intruder-dns",
		Spec: v1beta1.ClusterNetworkPolicySpec{Tier: v1beta1.AdminTier, Priority: 10,
			Subject: v1beta1.ClusterNetworkPolicySubject{Pods: &v1beta1.NamespacedPod{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "intruder"}}}},
			Egress: []v1beta1.ClusterNetworkPolicyEgressRule{{Name: "dns", Action: v1beta1.ClusterNetworkPolicyRuleActionDeny,
				To:        []v1beta1.ClusterNetworkPolicyEgressPeer{{Namespaces: &metav1.LabelSelector{}}},
				Protocols: []v1beta1.ClusterNetworkPolicyProtocol{{UDP: &v1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &v1beta1.Port{Number: 5353}}}}}}}}
	return cluster.NewWith(cluster.Parts{Namespaces: nss, Pods: pods, Policies: []*networkingv1.NetworkPolicy{deny, allow, locked},
		ClusterPolicies: []*cluster.ClusterPolicy{cnp}})
}

// TestMonitorRealTraffic enforces with logging on in a test bed, reads
// the node's NFLOG group as the agent does, probes denied and allowed
// pairs with TCP and UDP, and checks that each denied probe is reported,
// where it was denied and with the attribution `netfence check` gives,
// and that allowed probes report nothing.
// upMonitorBed builds a test bed of monitorCluster, starts a flow reader
// in its node namespace (start, with the generations, hub and metrics it
// feeds), enforces the cluster with render through an agent that reports
// its generations, and returns a context bounding the test, the bed, the
// cluster and a subscription to the hub. Everything is torn down when the
// test ends.
func upMonitorBed(t *testing.T, prefix string, render nft.Options,
	start func(ctx context.Context, gens *flow.Generations, hub *flow.Hub, metrics *flow.Metrics) error) (context.Context, *testbed.Bed, *cluster.Cluster, *flow.Sub) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	c := monitorCluster()
	bed, err := testbed.Up(ctx, c, testbed.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bed.Down() })
	gens := flow.NewGenerations(4)
	metrics := flow.NewMetrics(nil)
	hub := flow.NewHub(metrics)
	sub := hub.Subscribe(4096)
	var applier *nft.Applier
	rctx, rcancel := context.WithCancel(ctx)
	if err := bed.InNode(func() error {
		var err error
		if applier, err = nft.NewApplier(0); err != nil {
			return err
		}
		return start(rctx, gens, hub, metrics)
	}); err != nil {
		rcancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { applier.Close() })
	t.Cleanup(rcancel) // runs first: the reader stops before the applier and the bed go
	a := agent.New(agent.Config{Render: render, Dataplane: applier, Applied: gens.Applied})
	if _, err := a.Sync(ctx, c); err != nil {
		t.Fatal(err)
	}
	return ctx, bed, c, sub
}

func TestMonitorRealTraffic(t *testing.T) {
	needRoot(t)
	ctx, bed, c, sub := upMonitorBed(t, "nfmon", nft.Options{AllLocal: true, Log: &nft.LogOptions{Group: 113}},
		func(ctx context.Context, gens *flow.Generations, hub *flow.Hub, metrics *flow.Metrics) error {
			rd := &flow.Reader{Group: 113, Source: flow.Source{Node: "n1", Gens: gens, Hub: hub, Metrics: metrics}}
			return rd.Run(ctx) // binds the NFLOG socket in the node namespace
		})
	set := policy.NewSet(c)
	pod := func(name string) *cluster.Pod { return c.Pod("app/" + name) }
	web := pod("web").IPs[0]

	type probe struct {
		from     string
		proto    corev1.Protocol
		port     int32
		deniedAt string // empty: allowed
	}
	probes := []probe{
		{"client", corev1.ProtocolTCP, 80, ""},
		{"client", corev1.ProtocolUDP, 5353, ""},
		{"intruder", corev1.ProtocolTCP, 80, "ingress"},  // NetworkPolicy default deny at web
		{"intruder", corev1.ProtocolUDP, 5353, "egress"}, // Admin tier Deny at intruder
		{"locked", corev1.ProtocolTCP, 80, "egress"},     // NetworkPolicy default deny at locked
		{"locked", corev1.ProtocolUDP, 5353, "egress"},
	}
	for _, p := range probes {
		res, err := bed.Probe(ctx, pod(p.from), web, p.proto, p.port, 700*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if res.Reached != (p.deniedAt == "") {
			t.Fatalf("%s -> web %s/%d: %s; the dataplane disagrees with the test", p.from, p.proto, p.port, res)
		}
	}
	// Collect what the kernel logged.
	recs := collect(sub, 2*time.Second)
	for _, r := range recs {
		if r.Verdict != flow.Denied {
			t.Errorf("record not denied: %+v", r)
		}
		if r.From == "app/client" {
			t.Errorf("an allowed probe was reported denied: %+v", r)
		}
	}
	for _, p := range probes {
		if p.deniedAt == "" {
			continue
		}
		n := 0
		for _, r := range recs {
			if r.From != "app/"+p.from || r.To != "app/web" || r.Protocol != string(p.proto) || r.Port != int(p.port) {
				continue
			}
			n++
			if r.DeniedAt != p.deniedAt || r.Node != "n1" || r.DstIP != web.String() || r.SrcPort == 0 || r.Count != 1 {
				t.Errorf("%s -> web %s/%d: record %+v, want denied at %s", p.from, p.proto, p.port, r, p.deniedAt)
			}
			want, err := analysis.Check(set, analysis.CheckRequest{From: "app/" + p.from, To: "app/web", Port: string(p.proto) + "/" + itoa(p.port)})
			if err != nil {
				t.Fatal(err)
			}
			for _, pair := range [][2]any{{r.Egress, want.Egress}, {r.Ingress, want.Ingress}} {
				got, _ := json.Marshal(pair[0])
				exp, _ := json.Marshal(pair[1])
				if string(got) != string(exp) {
					t.Errorf("%s -> web %s/%d: side %s, check says %s", p.from, p.proto, p.port, got, exp)
				}
			}
			if p.deniedAt == "egress" && want.Egress.Allowed || p.deniedAt == "ingress" && want.Ingress.Allowed {
				t.Errorf("%s -> web %s/%d: check does not deny at %s", p.from, p.proto, p.port, p.deniedAt)
			}
		}
		if n == 0 {
			t.Errorf("%s -> web %s/%d: denied probe not reported (records: %+v)", p.from, p.proto, p.port, recs)
		}
		t.Logf("%s -> web %s/%d denied at %s: %d records", p.from, p.proto, p.port, p.deniedAt, n)
	}
	if ns, pol, dir := flow.DecidedBy(firstFrom(recs, "app/intruder", "UDP")); ns != "" || pol != "cnp/no-intruder-dns" || dir != "egress" {
		t.Errorf("intruder UDP decided by %q %q %q", ns, pol, dir)
	}
	if ns, pol, dir := flow.DecidedBy(firstFrom(recs, "app/intruder", "TCP")); ns != "app" || pol != "" || dir != "ingress" {
		t.Errorf("intruder TCP decided by %q %q %q", ns, pol, dir)
	}
}

func firstFrom(recs []flow.Record, from, proto string) flow.Record {
	for _, r := range recs {
		if r.From == from && r.Protocol == proto {
			return r
		}
	}
	return flow.Record{}
}

func itoa(n int32) string { return jsonInt(n) }

func jsonInt(n int32) string { b, _ := json.Marshal(n); return string(b) }

// collect reads the subscription's records for d.
func collect(sub *flow.Sub, d time.Duration) []flow.Record {
	var recs []flow.Record
	deadline := time.After(d)
	for {
		select {
		case r := <-sub.C:
			recs = append(recs, r)
		case <-deadline:
			return recs
		}
	}
}
