package e2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
	"sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"

	"github.com/netfence/netfence/internal/agent"
	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/kube"
	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/policy"
	"github.com/netfence/netfence/internal/testbed"
	"github.com/netfence/netfence/test/kubetest"
)

// cnpCRDFile is the experimental ClusterNetworkPolicy CRD of the
// network-policy-api module netfence builds with.
func cnpCRDFile(t *testing.T) string {
	t.Helper()
	dir, err := kubetest.ModuleDir(context.Background(), "sigs.k8s.io/network-policy-api")
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "config", "crd", "experimental", "policy.networking.k8s.io_clusternetworkpolicies.yaml")
}

// startAgent runs a in Kubernetes mode on inf until stop, which reports
// the agent's error; synced gets every sync.
func startAgent(ctx context.Context, t *testing.T, a *agent.Agent, inf *kube.Informers) (synced <-chan agent.Stats, stop func()) {
	ch := make(chan agent.Stats, 1000)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- agent.RunKube(ctx, a, inf, agent.KubeOptions{Synced: func(st agent.Stats) { ch <- st }})
	}()
	return ch, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	}
}

// TestAgentReadyWithoutCRDs: without the policy.networking.k8s.io CRDs the
// agent (deploy/'s RBAC, cluster policies asked for) starts, enforces
// NetworkPolicy and is ready; CRDs installed later are picked up without a
// restart. It needs no root: the dataplane is the in-memory one.
func TestAgentReadyWithoutCRDs(t *testing.T) {
	ctx := context.Background()
	env := kubetest.Start(ctx, t)
	saCfg := applyDeploy(ctx, t, env)
	createThreeTier(ctx, t, env.Client)

	dp := nft.NewFake()
	health := &agent.Health{}
	a := agent.New(agent.Config{Render: nft.Options{Node: "node-1"}, Dataplane: dp, Health: health, Metrics: agent.NewMetrics()})
	inf := kube.NewInformers(kubernetes.NewForConfigOrDie(saCfg), kube.Options{Policy: versioned.NewForConfigOrDie(saCfg), Recheck: 200 * time.Millisecond})
	synced, stop := startAgent(ctx, t, a, inf)
	defer stop()
	st := waitSync(t, synced)
	if !st.Full || health.Ready() != nil || st.Policies == 0 || st.ClusterPolicies != [2]int{} {
		t.Fatalf("first sync without CRDs: %+v, ready: %v", st, health.Ready())
	}
	if dp.Model().Chain(nft.ChainName("shop/db-0", policy.Ingress)) == nil {
		t.Error("NetworkPolicy is not enforced without the CRDs")
	}

	// The CRD installed later, and a policy: picked up, still ready.
	if _, err := env.InstallCRDs(ctx, cnpCRDFile(t)); err != nil {
		t.Fatal(err)
	}
	pc := versioned.NewForConfigOrDie(env.Config)
	if _, err := pc.PolicyV1beta1().ClusterNetworkPolicies().Create(ctx, denyFromCNP("deny-kube-system", 10, v1beta1.AdminTier, v1beta1.ClusterNetworkPolicyRuleActionDeny), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	for st.ClusterPolicies[policy.AdminTier] != 1 {
		select {
		case st = <-synced:
		case <-deadline:
			t.Fatalf("the CRD installed after the start was not picked up: %+v", st)
		}
	}
	if health.Ready() != nil {
		t.Errorf("not ready after the CRD was installed: %v", health.Ready())
	}
}

// denyFromCNP is a ClusterNetworkPolicy whose subject is the tools
// namespace, with one ingress rule of action from the kube-system
// namespace.
func denyFromCNP(name string, priority int32, tier v1beta1.Tier, action v1beta1.ClusterNetworkPolicyRuleAction) *v1beta1.ClusterNetworkPolicy {
	ns := func(name string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{cluster.MetadataNameLabel: name}}
	}
	return &v1beta1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1beta1.ClusterNetworkPolicySpec{
		Tier: tier, Priority: priority, Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: ns("tools")},
		Ingress: []v1beta1.ClusterNetworkPolicyIngressRule{{Name: "from-kube-system", Action: action,
			From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: ns("kube-system")}}}},
	}}
}

// TestClusterPolicyOnAPIServer runs the agent (deploy/'s RBAC) against a
// real kube-apiserver before the ClusterNetworkPolicy CRD exists, installs
// the CRD, and checks with real traffic in the testbed, after every change
// made through the API, that the agent enforces what the analyzer predicts
// from the live cluster: an Admin Deny, the same edited to Pass, an Admin
// Accept of a lower priority number overriding it, an Admin Accept
// overriding a NetworkPolicy's deny, a Baseline Deny, a policy that does
// not compile (its fail-closed stand-in, and its Event), domainNames and
// equal-priority conflicts (their Events), deletions, and the CRD removed.
func TestClusterPolicyOnAPIServer(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	env := kubetest.Start(ctx, t)
	saCfg := applyDeploy(ctx, t, env)
	objs := createThreeTier(ctx, t, env.Client)
	bed, pod := upBed(ctx, t, objs.Cluster(), testbed.Options{Prefix: "nfcnp", ExtraPorts: []testbed.Port{{Protocol: "TCP", Port: 8080}, {Protocol: "TCP", Port: 5432}}})
	debug, coredns, db := pod("tools/debug"), pod("kube-system/coredns-6f6b6-uvwxy"), pod("shop/db-0")

	health := &agent.Health{}
	_, synced := runAgentWith(t, bed, kubernetes.NewForConfigOrDie(saCfg), health,
		kube.Options{Policy: versioned.NewForConfigOrDie(saCfg), Recheck: 300 * time.Millisecond})
	if st := waitSync(t, synced); !st.Full || health.Ready() != nil {
		t.Fatalf("first sync without the CRD: %+v, ready: %v", st, health.Ready())
	}

	// expect checks one flow: the analyzer's verdict on the live cluster
	// (cluster policies included) and then real traffic, which may take a
	// moment to follow the API write. Failures are reported and the test
	// goes on, so one run shows every stage.
	pc := versioned.NewForConfigOrDie(env.Config)
	expect := func(stage string, from, to *cluster.Pod, port int32, want bool) {
		t.Helper()
		live, err := kube.List(ctx, env.Client, kube.WithClusterPolicies(pc))
		if err != nil {
			t.Fatal(err)
		}
		set := policy.NewSet(live.Cluster())
		if len(set.Rejected) == 0 {
			f, to2 := set.Cluster.Pod(from.Key()), set.Cluster.Pod(to.Key())
			v := set.Evaluate(policy.Flow{From: policy.Endpoint{Pod: f, IP: f.IPs[0]}, To: policy.Endpoint{Pod: to2, IP: to2.IPs[0]}, Protocol: corev1.ProtocolTCP, Port: port})
			if v.Allowed != want {
				t.Errorf("%s: the analyzer says %s -> %s TCP/%d allowed=%v, the test expects %v (egress: %s; ingress: %s)", stage, from.Key(), to.Key(), port, v.Allowed, want, v.Egress.Reason, v.Ingress.Reason)
			}
		}
		start := time.Now()
		var res testbed.Result
		for time.Since(start) < 10*time.Second {
			if res, err = bed.Probe(ctx, from, to.IPs[0], corev1.ProtocolTCP, port, 200*time.Millisecond); err != nil {
				t.Fatalf("probe: %v", err)
			}
			if res.Reached == want {
				t.Logf("%s: %s -> %s TCP/%d reached=%v after %v", stage, from.Key(), to.Key(), port, want, time.Since(start).Round(time.Millisecond))
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Errorf("%s: traffic %s -> %s TCP/%d reached=%v (%v), want %v [dataplane]", stage, from.Key(), to.Key(), port, res.Reached, res, want)
	}
	expect("no CRD", coredns, debug, 8080, true)
	expect("no CRD: NetworkPolicy", debug, db, 5432, false)

	// The CRD installed while the agent runs, then an Admin Deny.
	crds, err := env.InstallCRDs(ctx, cnpCRDFile(t))
	if err != nil {
		t.Fatal(err)
	}
	cnps := pc.PolicyV1beta1().ClusterNetworkPolicies()
	mustCreate := func(p *v1beta1.ClusterNetworkPolicy) {
		t.Helper()
		if _, err := cnps.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s: %v", p.Name, err)
		}
	}
	edit := func(name string, fn func(*v1beta1.ClusterNetworkPolicySpec)) {
		t.Helper()
		p, err := cnps.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		fn(&p.Spec)
		if _, err := cnps.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("update %s: %v", name, err)
		}
	}
	mustDelete := func(name string) {
		t.Helper()
		if err := cnps.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatalf("delete %s: %v", name, err)
		}
	}
	mustCreate(denyFromCNP("deny-kube-system", 10, v1beta1.AdminTier, v1beta1.ClusterNetworkPolicyRuleActionDeny))
	expect("Admin Deny", coredns, debug, 8080, false)
	expect("Admin Deny: other direction", debug, coredns, 53, true)

	// Edited to Pass: NetworkPolicy (none isolates tools), then default.
	edit("deny-kube-system", func(s *v1beta1.ClusterNetworkPolicySpec) {
		s.Ingress[0].Action = v1beta1.ClusterNetworkPolicyRuleActionPass
	})
	expect("Admin Pass", coredns, debug, 8080, true)
	edit("deny-kube-system", func(s *v1beta1.ClusterNetworkPolicySpec) {
		s.Ingress[0].Action = v1beta1.ClusterNetworkPolicyRuleActionDeny
	})
	expect("Admin Deny again", coredns, debug, 8080, false)

	// An Accept with a lower priority number decides first.
	mustCreate(denyFromCNP("accept-kube-system", 5, v1beta1.AdminTier, v1beta1.ClusterNetworkPolicyRuleActionAccept))
	expect("Admin Accept at priority 5 before Deny at 10", coredns, debug, 8080, true)
	edit("accept-kube-system", func(s *v1beta1.ClusterNetworkPolicySpec) { s.Priority = 50 })
	expect("the Accept moved to priority 50", coredns, debug, 8080, false)
	mustDelete("accept-kube-system")
	mustDelete("deny-kube-system")
	expect("deleted", coredns, debug, 8080, true)

	// An Admin Accept overrides the NetworkPolicy deny of shop/db-0.
	dbAccept := denyFromCNP("accept-tools-to-db", 1, v1beta1.AdminTier, v1beta1.ClusterNetworkPolicyRuleActionAccept)
	dbAccept.Spec.Subject.Namespaces.MatchLabels[cluster.MetadataNameLabel] = "shop"
	dbAccept.Spec.Ingress[0].From[0].Namespaces.MatchLabels[cluster.MetadataNameLabel] = "tools"
	dbAccept.Spec.Ingress[0].Protocols = []v1beta1.ClusterNetworkPolicyProtocol{{TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Number: 5432}}}}
	mustCreate(dbAccept)
	expect("Admin Accept over a NetworkPolicy deny", debug, db, 5432, true)
	mustDelete("accept-tools-to-db")
	expect("Admin Accept deleted", debug, db, 5432, false)

	// A Baseline Deny applies to pods NetworkPolicy does not isolate.
	mustCreate(denyFromCNP("baseline-deny", 10, v1beta1.BaselineTier, v1beta1.ClusterNetworkPolicyRuleActionDeny))
	expect("Baseline Deny", coredns, debug, 8080, false)
	mustDelete("baseline-deny")
	expect("Baseline Deny deleted", coredns, debug, 8080, true)

	// A policy the API server admits but netfence cannot compile (an
	// unknown selector operator): its stand-in denies its subject's
	// ingress from every pod, and a Warning Event says so.
	bad := denyFromCNP("unreadable", 30, v1beta1.AdminTier, v1beta1.ClusterNetworkPolicyRuleActionAccept)
	bad.Spec.Ingress[0].From[0].Namespaces = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Sideways"}}}
	mustCreate(bad)
	expect("uncompilable Accept: fail closed", coredns, debug, 8080, false)
	waitEvent(ctx, t, env.Client, "unreadable", "InvalidClusterNetworkPolicy")
	mustDelete("unreadable")
	expect("uncompilable deleted", coredns, debug, 8080, true)

	// domainNames are not enforced: a Warning Event says so.
	dn := denyFromCNP("dns-names", 40, v1beta1.AdminTier, v1beta1.ClusterNetworkPolicyRuleActionAccept)
	dn.Spec.Ingress = nil
	dn.Spec.Egress = []v1beta1.ClusterNetworkPolicyEgressRule{{Action: v1beta1.ClusterNetworkPolicyRuleActionAccept,
		To: []v1beta1.ClusterNetworkPolicyEgressPeer{{DomainNames: []v1beta1.DomainName{"example.com"}}}}}
	mustCreate(dn)
	waitEvent(ctx, t, env.Client, "dns-names", agent.ReasonDomainNamesNotEnforced)

	// Equal priority, conflicting actions: Deny wins, a Warning Event on
	// each.
	mustCreate(denyFromCNP("tie-accept", 60, v1beta1.AdminTier, v1beta1.ClusterNetworkPolicyRuleActionAccept))
	mustCreate(denyFromCNP("tie-deny", 60, v1beta1.AdminTier, v1beta1.ClusterNetworkPolicyRuleActionDeny))
	expect("equal priority: Deny wins", coredns, debug, 8080, false)
	waitEvent(ctx, t, env.Client, "tie-accept", agent.ReasonEqualPriorityConflict)
	waitEvent(ctx, t, env.Client, "tie-deny", agent.ReasonEqualPriorityConflict)

	// The CRD removed (its policies go with it): traffic as without it.
	if err := env.DeleteCRDs(ctx, crds...); err != nil {
		t.Fatal(err)
	}
	expect("CRD removed", coredns, debug, 8080, true)
	if err := health.Ready(); err != nil {
		t.Errorf("not ready at the end: %v", err)
	}
}

// waitEvent waits for a Warning Event of reason about the cluster policy
// name (cluster-scoped objects' Events are in the default namespace).
func waitEvent(ctx context.Context, t *testing.T, c kubernetes.Interface, name, reason string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var seen []string
	for time.Now().Before(deadline) {
		evs, err := c.CoreV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		seen = seen[:0]
		for _, e := range evs.Items {
			seen = append(seen, fmt.Sprintf("%s/%s %s", e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason))
			if e.InvolvedObject.Name == name && e.InvolvedObject.Kind == cluster.KindCNP && e.Reason == reason && e.Type == corev1.EventTypeWarning {
				t.Logf("event on %s: %s: %s", name, reason, e.Message)
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("no %s Event on ClusterNetworkPolicy %s; events: %s", reason, name, strings.Join(seen, "; "))
}

// TestAgentNotReadyWhenCRDUnreadable: a cluster-scoped policy CRD
// installed while the agent runs, but whose resource the agent may not
// list (RBAC from before this version), makes the agent not ready and sets
// netfence_source_error; NetworkPolicy stays enforced.
func TestAgentNotReadyWhenCRDUnreadable(t *testing.T) {
	ctx := context.Background()
	env := kubetest.Start(ctx, t)
	// A ClusterRole without the cluster-scoped policies (as before this
	// version, plus nodes).
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "old-agent"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "namespaces", "nodes"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"list", "watch"}},
	}}
	if _, err := env.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "old-agent"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "old-agent"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "old-agent"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := env.ConfigFor("old-agent")
	if err != nil {
		t.Fatal(err)
	}
	health := &agent.Health{}
	metrics := agent.NewMetrics()
	a := agent.New(agent.Config{Render: nft.Options{Node: "node-1"}, Dataplane: nft.NewFake(), Health: health, Metrics: metrics})
	inf := kube.NewInformers(kubernetes.NewForConfigOrDie(cfg), kube.Options{Policy: versioned.NewForConfigOrDie(cfg), Recheck: 100 * time.Millisecond, Grace: time.Second})
	synced, stop := startAgent(ctx, t, a, inf)
	defer stop()
	waitSync(t, synced)
	if err := health.Ready(); err != nil {
		t.Fatalf("not ready without the CRD: %v", err)
	}
	if _, err := env.InstallCRDs(ctx, cnpCRDFile(t)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for health.Ready() == nil {
		if time.Now().After(deadline) {
			t.Fatal("still ready although the served ClusterNetworkPolicy resource cannot be read")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("not ready: %v", health.Ready())
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "netfence_source_error 1") {
		t.Error("netfence_source_error is not 1")
	}
}
