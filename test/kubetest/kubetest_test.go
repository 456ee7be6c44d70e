package kubetest

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// TestEnv exercises what netfence's integration tests need from the API
// server: namespaces, Pods placed on a node with a Pod IP (status
// subresource), NetworkPolicies, RBAC for least-privilege identities and
// server-side dry runs with kubectl.
func TestEnv(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env := Start(ctx, t)
	t.Logf("start-up took %v", env.StartupTime)

	const ns = "netfence-test"
	c := env.Client
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"team": "a"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}

	t.Run("PodStatus", func(t *testing.T) {
		pod, err := c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-0", Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{
				NodeName:   "node-a",
				Containers: []corev1.Container{{Name: "web", Image: "example.invalid/web:1"}},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create pod: %v", err)
		}
		pod.Status.Phase = corev1.PodRunning
		pod.Status.PodIP = "10.244.1.5"
		pod.Status.PodIPs = []corev1.PodIP{{IP: "10.244.1.5"}}
		if _, err := c.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("update pod status: %v", err)
		}
		pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			t.Fatalf("list pods: %v", err)
		}
		if len(pods.Items) != 1 {
			t.Fatalf("listed %d pods, want 1", len(pods.Items))
		}
		got := pods.Items[0]
		if got.Spec.NodeName != "node-a" || got.Status.PodIP != "10.244.1.5" || got.Status.Phase != corev1.PodRunning {
			t.Errorf("pod = node %q, IP %q, phase %q; want node-a, 10.244.1.5, Running",
				got.Spec.NodeName, got.Status.PodIP, got.Status.Phase)
		}
	})

	t.Run("NetworkPolicy", func(t *testing.T) {
		tcp := corev1.ProtocolTCP
		port := intstr.FromInt32(8080)
		np := &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "allow-team-a"},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From: []networkingv1.NetworkPolicyPeer{{
						NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}},
					}},
					Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
				}},
			},
		}
		if _, err := c.NetworkingV1().NetworkPolicies(ns).Create(ctx, np, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create networkpolicy: %v", err)
		}
		list, err := c.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list networkpolicies: %v", err)
		}
		if len(list.Items) != 1 || list.Items[0].Name != "allow-team-a" ||
			list.Items[0].Spec.Ingress[0].Ports[0].Port.IntValue() != 8080 {
			t.Fatalf("listed %+v, want allow-team-a on port 8080", list.Items)
		}

		// The API server validates: a bad CIDR is rejected.
		bad := np.DeepCopy()
		bad.Name = "bad"
		bad.Spec.Ingress[0].From = []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "not-a-cidr"}}}
		_, err = c.NetworkingV1().NetworkPolicies(ns).Create(ctx, bad, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) {
			t.Fatalf("create invalid networkpolicy: err = %v, want Invalid", err)
		}
	})

	t.Run("RBAC", func(t *testing.T) {
		const user = "netfence-agent"
		agent, err := env.ClientFor(user)
		if err != nil {
			t.Fatal(err)
		}
		// No role yet: reads are forbidden.
		_, err = agent.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Fatalf("list networkpolicies without a role: err = %v, want Forbidden", err)
		}

		// A read-only role for NetworkPolicies and Pods.
		if _, err := c.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "netfence-agent"},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "list", "watch"}},
				{APIGroups: []string{""}, Resources: []string{"pods", "namespaces"}, Verbs: []string{"get", "list", "watch"}},
			},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create clusterrole: %v", err)
		}
		if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "netfence-agent"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "netfence-agent"},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create clusterrolebinding: %v", err)
		}

		// RBAC's authorizer reads roles from an informer: wait for it.
		waitAllowed(ctx, t, agent, ns)
		if err := agent.NetworkingV1().NetworkPolicies(ns).Delete(ctx, "allow-team-a", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("delete networkpolicy with a read-only role: err = %v, want Forbidden", err)
		}
		if _, err := agent.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("list secrets with a read-only role: err = %v, want Forbidden", err)
		}
	})

	t.Run("ServiceAccount", func(t *testing.T) {
		cfg, err := env.ServiceAccountConfig(ctx, ns, "netfence")
		if err != nil {
			t.Fatal(err)
		}
		sa, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		review, err := sa.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("self subject review: %v", err)
		}
		if got, want := review.Status.UserInfo.Username, "system:serviceaccount:"+ns+":netfence"; got != want {
			t.Errorf("authenticated as %q, want %q", got, want)
		}
		if _, err := sa.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("list pods as an unbound ServiceAccount: err = %v, want Forbidden", err)
		}
	})

	t.Run("KubectlDryRun", func(t *testing.T) {
		manifest := `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: dry-run
  namespace: ` + ns + `
spec:
  podSelector: {}
  policyTypes: [Ingress]
`
		cmd, err := env.Kubectl(ctx, "apply", "--dry-run=server", "-f", "-")
		if err != nil {
			t.Skipf("%v", err)
		}
		cmd.Stdin = strings.NewReader(manifest)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl apply --dry-run=server: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "networkpolicy.networking.k8s.io/dry-run created (server dry run)") {
			t.Errorf("kubectl output = %q", out)
		}
		// A dry run stores nothing.
		if _, err := c.NetworkingV1().NetworkPolicies(ns).Get(ctx, "dry-run", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("get dry-run networkpolicy: err = %v, want NotFound", err)
		}
	})

	t.Run("Stop", func(t *testing.T) {
		if err := env.Stop(); err != nil {
			t.Fatal(err)
		}
		if !env.apiserver.exited() || !env.etcd.exited() {
			t.Error("processes still running after Stop")
		}
		if _, err := os.Stat(env.Dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat %s after Stop: err = %v, want not exist", env.Dir, err)
		}
		if conn, err := net.Dial("tcp", strings.TrimPrefix(env.Host, "https://")); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections after Stop", env.Host)
		}
		if err := env.Stop(); err != nil {
			t.Errorf("second Stop: %v", err)
		}
	})
}

// TestMissingBinaries checks the error that makes Start skip.
func TestMissingBinaries(t *testing.T) {
	_, err := New(context.Background(), Options{BinDir: t.TempDir()})
	if !errors.Is(err, ErrBinariesNotFound) {
		t.Fatalf("New with an empty BinDir: err = %v, want ErrBinariesNotFound", err)
	}
}

// waitAllowed waits until the client may list NetworkPolicies in ns.
func waitAllowed(ctx context.Context, t *testing.T, c kubernetes.Interface, ns string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			return
		}
		if !apierrors.IsForbidden(err) || time.Now().After(deadline) {
			t.Fatalf("list networkpolicies with a role: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
