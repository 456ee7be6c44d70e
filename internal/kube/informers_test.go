package kube

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
	"sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/test/kubetest"
)

// crdFiles returns the CRD files the tests install: the experimental
// ClusterNetworkPolicy CRD of the module netfence builds with, and the
// v1alpha1 AdminNetworkPolicy and BaselineAdminNetworkPolicy CRDs netfence
// embeds (v0.1.7; v0.3.0 ships none).
func crdFiles(t *testing.T) (cnp string, anpBANP []string) {
	t.Helper()
	dir, err := kubetest.ModuleDir(context.Background(), "sigs.k8s.io/network-policy-api")
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "config/crd/experimental/policy.networking.k8s.io_clusternetworkpolicies.yaml"),
		[]string{"../validation/crd/policy.networking.k8s.io_adminnetworkpolicies.yaml", "../validation/crd/policy.networking.k8s.io_baselineadminnetworkpolicies.yaml"}
}

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// eventually polls cond (from the test goroutine: Snapshot is not safe for
// concurrent use) until it holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func cnp(name string, priority int32) *v1beta1.ClusterNetworkPolicy {
	return &v1beta1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1beta1.ClusterNetworkPolicySpec{
		Tier: v1beta1.AdminTier, Priority: priority, Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
		Ingress: []v1beta1.ClusterNetworkPolicyIngressRule{{Action: v1beta1.ClusterNetworkPolicyRuleActionDeny,
			From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"x": "y"}}}}}},
	}}
}

func keys(c *cluster.Cluster) []string {
	var out []string
	for _, p := range c.ClusterPolicies {
		out = append(out, p.Key())
	}
	return out
}

// TestInformersFollowCRDs runs the informers against a real API server
// without the policy CRDs (they start, and snapshots have nodes but no
// cluster policies), then installs the CRDs (picked up by the periodic
// discovery, objects in the snapshots), edits a policy, removes a CRD (its
// policies forgotten), and checks the one-shot List.
func TestInformersFollowCRDs(t *testing.T) {
	ctx := context.Background()
	env := kubetest.Start(ctx, t)
	pc := versioned.NewForConfigOrDie(env.Config)
	cnpFile, anpFiles := crdFiles(t)

	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: map[string]string{"role": "worker"}}}
	created, err := env.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.10"}, {Type: corev1.NodeHostName, Address: "node-1"}}
	if _, err := env.Client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	inf := NewInformers(env.Client, Options{Policy: pc, Recheck: 200 * time.Millisecond, Log: testLog(t)})
	start := time.Now()
	if !inf.Start(ictx) {
		t.Fatal("Start")
	}
	t.Logf("started without CRDs in %v", time.Since(start).Round(time.Millisecond))
	eventually(t, "the node in the snapshot", func() bool {
		c := inf.Snapshot()
		return c.Node("node-1") != nil && len(c.Node("node-1").Addrs) == 1
	})
	if c := inf.Snapshot(); len(c.ClusterPolicies) != 0 || len(inf.PolicyResources()) != 0 || inf.Err() != nil {
		t.Fatalf("without CRDs: policies %v, resources %v, err %v", keys(c), inf.PolicyResources(), inf.Err())
	}

	// CRDs installed after the start: picked up.
	cnpCRDs, err := env.InstallCRDs(ctx, cnpFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.InstallCRDs(ctx, anpFiles...); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.PolicyV1beta1().ClusterNetworkPolicies().Create(ctx, cnp("deny-x", 10), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	anp := &v1alpha1.AdminNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "legacy"}, Spec: v1alpha1.AdminNetworkPolicySpec{Priority: 3,
		Subject: v1alpha1.AdminNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
		Egress: []v1alpha1.AdminNetworkPolicyEgressRule{{Action: v1alpha1.AdminNetworkPolicyRuleActionDeny,
			To: []v1alpha1.AdminNetworkPolicyEgressPeer{{Nodes: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "worker"}}}}}}}}
	if _, err := pc.PolicyV1alpha1().AdminNetworkPolicies().Create(ctx, anp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "cluster policies picked up", func() bool {
		return slices.Equal(keys(inf.Snapshot()), []string{"anp/legacy", "cnp/deny-x"})
	})
	if got := inf.PolicyResources(); got[ResourceCNP] != "v1beta1" || got[ResourceANP] != "v1alpha1" || got[ResourceBANP] != "v1alpha1" {
		t.Errorf("resources: %v", got)
	}
	cp := inf.Snapshot().ClusterPolicy("cnp/deny-x")
	if cp.Annotations != nil || cp.Spec.Priority != 10 || cp.APIVersion != cluster.PolicyAPIGroup+"/v1beta1" {
		t.Errorf("cnp/deny-x: %+v", cp)
	}

	// An edit reaches the snapshots.
	got, err := pc.PolicyV1beta1().ClusterNetworkPolicies().Get(ctx, "deny-x", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got.Spec.Priority = 20
	if _, err := pc.PolicyV1beta1().ClusterNetworkPolicies().Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "edit", func() bool {
		cp := inf.Snapshot().ClusterPolicy("cnp/deny-x")
		return cp != nil && cp.Spec.Priority == 20
	})

	// The one-shot List reads them, and the nodes (the ANP has a nodes
	// peer); without the option it reads neither.
	objs, err := List(ctx, env.Client, WithClusterPolicies(pc))
	if err != nil {
		t.Fatal(err)
	}
	if c := objs.Cluster(); !slices.Equal(keys(c), []string{"anp/legacy", "cnp/deny-x"}) || c.Node("node-1") == nil {
		t.Errorf("List: policies %v, nodes %d", keys(c), len(c.Nodes))
	}
	if objs, err := List(ctx, env.Client); err != nil || len(objs.ClusterPolicies)+len(objs.Nodes) != 0 {
		t.Errorf("List without the option: %v, %d policies", err, len(objs.ClusterPolicies))
	}

	// The CRD removed: its policies are forgotten.
	if err := env.DeleteCRDs(ctx, cnpCRDs...); err != nil {
		t.Fatal(err)
	}
	eventually(t, "CRD removal", func() bool {
		_, watched := inf.PolicyResources()[ResourceCNP]
		return !watched && slices.Equal(keys(inf.Snapshot()), []string{"anp/legacy"})
	})
	if inf.Err() != nil {
		t.Errorf("after removal: %v", inf.Err())
	}
}

// TestInformersV1alpha2Fallback: with a ClusterNetworkPolicy CRD that
// serves v1alpha2 only, the informers read v1alpha2; Start waits for the
// CRDs served at start.
func TestInformersV1alpha2Fallback(t *testing.T) {
	ctx := context.Background()
	env := kubetest.Start(ctx, t)
	pc := versioned.NewForConfigOrDie(env.Config)
	cnpFile, _ := crdFiles(t)
	crds, err := kubetest.ReadCRDs(cnpFile)
	if err != nil {
		t.Fatal(err)
	}
	crd := crds[0]
	crd.Spec.Versions = slices.DeleteFunc(crd.Spec.Versions, func(v apiextensionsv1.CustomResourceDefinitionVersion) bool { return v.Name != "v1alpha2" })
	crd.Spec.Versions[0].Storage = true
	if _, err := env.InstallCRDObjects(ctx, crd); err != nil {
		t.Fatal(err)
	}
	p := &v1alpha2.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "old"}, Spec: v1alpha2.ClusterNetworkPolicySpec{
		Tier: v1alpha2.BaselineTier, Priority: 1, Subject: v1alpha2.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
		Egress: []v1alpha2.ClusterNetworkPolicyEgressRule{{Action: v1alpha2.ClusterNetworkPolicyRuleActionDeny,
			To: []v1alpha2.ClusterNetworkPolicyEgressPeer{{Networks: []v1alpha2.CIDR{"10.0.0.0/8"}}}}}}}
	if _, err := pc.PolicyV1alpha2().ClusterNetworkPolicies().Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	inf := NewInformers(env.Client, Options{Policy: pc, Recheck: time.Hour, Log: testLog(t)})
	if !inf.Start(ictx) {
		t.Fatal("Start")
	}
	// Served at start: in the first snapshot already.
	c := inf.Snapshot()
	if cp := c.ClusterPolicy("cnp/old"); cp == nil || cp.APIVersion != cluster.PolicyAPIGroup+"/v1alpha2" || cp.Spec.Tier != v1beta1.BaselineTier || cp.Spec.Egress[0].To[0].Networks[0] != "10.0.0.0/8" {
		t.Fatalf("v1alpha2 policy: %+v", cp)
	}
	if got := inf.PolicyResources(); got[ResourceCNP] != "v1alpha2" || len(got) != 1 {
		t.Errorf("resources: %v", got)
	}
}

// TestInformersServedButUnreadable: a CRD installed while the agent runs
// whose resource the agent may not list makes Err report it after the
// grace period (the agent is then not ready), without blocking the rest.
func TestInformersServedButUnreadable(t *testing.T) {
	ctx := context.Background()
	env := kubetest.Start(ctx, t)
	cnpFile, _ := crdFiles(t)
	// A user that may read the core resources only.
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "core-reader"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "namespaces", "nodes"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"list", "watch"}},
	}}
	if _, err := env.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "core-reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "core-reader"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "core-reader"}}}
	if _, err := env.Client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := env.ConfigFor("core-reader")
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	eventually(t, "RBAC in effect", func() bool {
		_, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil
	})
	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	inf := NewInformers(client, Options{Policy: versioned.NewForConfigOrDie(cfg), Recheck: 100 * time.Millisecond, Grace: time.Second, Log: testLog(t)})
	if !inf.Start(ictx) {
		t.Fatal("Start")
	}
	if _, err := env.InstallCRDs(ctx, cnpFile); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Err reports the unreadable resource", func() bool {
		err := inf.Err()
		return err != nil && strings.Contains(err.Error(), ResourceCNP)
	})
	t.Logf("Err: %v", inf.Err())
	if len(inf.Snapshot().ClusterPolicies) != 0 {
		t.Error("policies of an unreadable resource in the snapshot")
	}
}
