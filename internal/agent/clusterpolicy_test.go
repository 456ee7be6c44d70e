package agent

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/policy"
)

// flowAllowed evaluates from -> to (a pod key or an address) on TCP/port
// against the set the agent renders.
func flowAllowed(t *testing.T, set *policy.Set, from, to string, port int32) bool {
	t.Helper()
	end := func(s string) policy.Endpoint {
		if ip, err := netip.ParseAddr(s); err == nil {
			return policy.Endpoint{Pod: set.Cluster.PodByIP(ip), IP: ip}
		}
		p := set.Cluster.Pod(s)
		if p == nil {
			t.Fatalf("no pod %s", s)
		}
		return policy.Endpoint{Pod: p, IP: p.IPs[0]}
	}
	return set.Evaluate(policy.Flow{From: end(from), To: end(to), Protocol: corev1.ProtocolTCP, Port: port}).Allowed
}

func webSubject() v1beta1.ClusterNetworkPolicySubject {
	return v1beta1.ClusterNetworkPolicySubject{Pods: &v1beta1.NamespacedPod{
		NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{cluster.MetadataNameLabel: "app"}},
		PodSelector:       metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
	}}
}

func podsPeer(app string) *v1beta1.NamespacedPod {
	return &v1beta1.NamespacedPod{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}}
}

// acceptClientCNP is an Admin policy whose subject is app/web: Accept
// ingress from app=client, then Deny ingress from every pod.
func acceptClientCNP(name string) *cluster.ClusterPolicy {
	return &cluster.ClusterPolicy{Kind: cluster.KindCNP, APIVersion: cluster.PolicyAPIGroup + "/v1beta1", Name: name,
		Spec: v1beta1.ClusterNetworkPolicySpec{Tier: v1beta1.AdminTier, Priority: 10, Subject: webSubject(),
			Ingress: []v1beta1.ClusterNetworkPolicyIngressRule{
				{Name: "client", Action: v1beta1.ClusterNetworkPolicyRuleActionAccept, From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Pods: podsPeer("client")}}},
				{Name: "others", Action: v1beta1.ClusterNetworkPolicyRuleActionDeny, From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{}}}},
			}}}
}

// uncompilable returns p with a peer selector operator the API server
// admits (the CRD types operators as strings) but netfence cannot read.
func uncompilable(p *cluster.ClusterPolicy) *cluster.ClusterPolicy {
	out := *p
	out.Spec = *p.Spec.DeepCopy()
	out.Spec.Ingress[0].From[0].Pods.PodSelector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Sideways"}}}
	return &out
}

func withCluster(nss []*cluster.Namespace, pods []*cluster.Pod, nps []*networkingv1.NetworkPolicy, cps ...*cluster.ClusterPolicy) *cluster.Cluster {
	return cluster.NewWith(cluster.Parts{Namespaces: nss, Pods: pods, Policies: nps, ClusterPolicies: cps})
}

// TestRejectedClusterPolicyFailsClosed: a cluster policy that does not
// compile keeps its last compiled version, or is replaced by a stand-in
// in its tier and priority that denies its subject in every direction it
// has rules (every pod when the subject cannot be read); once per version
// a Fallback reaches Config.Rejected and the metric says which.
func TestRejectedClusterPolicyFailsClosed(t *testing.T) {
	ctx := context.Background()
	nss, pods := podsOnly(t)
	m := NewMetrics()
	var rejected []Fallback
	a := New(Config{Render: nft.Options{Node: "n1"}, Dataplane: newFake(), Metrics: m,
		Rejected: func(fb Fallback) { rejected = append(rejected, fb) }})
	sync := func(c *cluster.Cluster) (Stats, *policy.Set) {
		t.Helper()
		st, err := a.Sync(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		_, set := a.Render(c)
		return st, set
	}

	// Never compiled: a stand-in denies web's ingress from every pod.
	bad := uncompilable(acceptClientCNP("guard"))
	st, set := sync(withCluster(nss, pods, nil, bad))
	if flowAllowed(t, set, "app/client", "app/web", 80) {
		t.Error("a never-compiled cluster policy let client reach web")
	}
	if !flowAllowed(t, set, "app/web", "app/client", 80) {
		t.Error("the stand-in denied more than its subject (client is not selected)")
	}
	if len(st.Fallbacks) != 1 || st.Fallbacks[0].Action != ActionDeny || st.Fallbacks[0].Reason != ReasonCompile || st.Fallbacks[0].Policy != "cnp/guard" {
		t.Fatalf("fallbacks: %+v", st.Fallbacks)
	}
	sp := set.ClusterPolicy("cnp/guard")
	if sp == nil || !IsFailClosed(sp.Source) || sp.Tier != policy.AdminTier || sp.Priority != 10 || len(sp.Rules[policy.Ingress]) != 1 || len(sp.Rules[policy.Egress]) != 0 {
		t.Fatalf("stand-in: %+v", sp)
	}
	if len(set.Rejected) != 1 || set.Rejected[0].ClusterPolicy != bad {
		t.Errorf("the set must list the rejection as read: %+v", set.Rejected)
	}
	text := scrape(t, m)
	for _, want := range []string{`netfence_policies_rejected{action="deny",reason="compile"} 1`, `netfence_cluster_policies{tier="Admin"} 1`, `netfence_cluster_policies{tier="Baseline"} 0`} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, grep(text, "polic"))
		}
	}
	if len(rejected) != 1 || rejected[0].Rejection.ClusterPolicy != bad {
		t.Errorf("Rejected called %d times for one version", len(rejected))
	}

	// A valid version (client accepted), then an invalid edit: the valid
	// version stays in force.
	good := acceptClientCNP("guard")
	if _, set := sync(withCluster(nss, pods, nil, good)); !flowAllowed(t, set, "app/client", "app/web", 80) {
		t.Fatal("the valid version does not apply")
	}
	st, set = sync(withCluster(nss, pods, nil, uncompilable(good)))
	if !flowAllowed(t, set, "app/client", "app/web", 80) {
		t.Error("the last compiled version was not kept")
	}
	if len(st.Fallbacks) != 1 || st.Fallbacks[0].Action != ActionLastGood {
		t.Errorf("fallbacks: %+v", st.Fallbacks)
	}
	if text := scrape(t, m); !strings.Contains(text, `netfence_policies_rejected{action="last-good",reason="compile"} 1`) || strings.Contains(text, `action="deny"`) {
		t.Errorf("metrics:\n%s", grep(text, "rejected"))
	}
	n := len(rejected)
	sync(withCluster(nss, pods, nil, uncompilable(good)))
	if len(rejected) != n {
		t.Error("the same rejected version was reported again")
	}

	// Deleted: forgotten; an invalid policy of that name later gets the
	// stand-in, not the deleted version.
	sync(withCluster(nss, pods, nil))
	st, set = sync(withCluster(nss, pods, nil, uncompilable(good)))
	if flowAllowed(t, set, "app/client", "app/web", 80) || len(st.Fallbacks) != 1 || st.Fallbacks[0].Action != ActionDeny {
		t.Errorf("after deletion, the old version came back: fallbacks %+v", st.Fallbacks)
	}

	// An unreadable subject: the stand-in's subject is every pod.
	wide := acceptClientCNP("wide")
	wide.Spec.Subject = v1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "x", Operator: "Sideways"}}}}
	_, set = New(Config{Render: nft.Options{Node: "n1"}}).Render(withCluster(nss, pods, nil, wide))
	if flowAllowed(t, set, "app/web", "app/client", 80) || flowAllowed(t, set, "app/client", "app/web", 80) {
		t.Error("an unreadable subject must make the stand-in deny every pod")
	}

	// Egress rules only: the stand-in denies egress to every address and
	// pod, and leaves ingress alone.
	eg := &cluster.ClusterPolicy{Kind: cluster.KindANP, APIVersion: cluster.PolicyAPIGroup + "/v1alpha1", Name: "eg",
		Spec: v1beta1.ClusterNetworkPolicySpec{Tier: v1beta1.AdminTier, Priority: 3, Subject: webSubject(),
			Egress: []v1beta1.ClusterNetworkPolicyEgressRule{{Action: v1beta1.ClusterNetworkPolicyRuleActionDeny,
				To: []v1beta1.ClusterNetworkPolicyEgressPeer{{DomainNames: []v1beta1.DomainName{"example.com"}}}}}}}
	_, set = New(Config{Render: nft.Options{Node: "n1"}}).Render(withCluster(nss, pods, nil, eg))
	if len(set.Rejected) != 1 {
		t.Fatalf("Deny with domainNames must be rejected: %v", set.Rejected)
	}
	if flowAllowed(t, set, "app/web", "8.8.8.8", 443) || flowAllowed(t, set, "app/web", "2001:db8::1", 443) || flowAllowed(t, set, "app/web", "app/client", 80) {
		t.Error("the egress stand-in must deny every destination")
	}
	if !flowAllowed(t, set, "app/client", "app/web", 80) {
		t.Error("the egress stand-in must not touch ingress")
	}
}

// TestNetworkPolicyRejectionKeepsClusterPolicies: replacing a
// NetworkPolicy that does not compile keeps the cluster policies and
// nodes of the snapshot in force.
func TestNetworkPolicyRejectionKeepsClusterPolicies(t *testing.T) {
	nss, pods := podsOnly(t)
	deny := acceptClientCNP("deny-client")
	deny.Spec.Ingress = deny.Spec.Ingress[1:] // Deny from every pod
	c := cluster.NewWith(cluster.Parts{Namespaces: nss, Pods: pods, Policies: []*networkingv1.NetworkPolicy{invalidPolicy("other")},
		ClusterPolicies: []*cluster.ClusterPolicy{deny}, Nodes: []*cluster.Node{{Name: "n1", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}}})
	_, set := New(Config{Render: nft.Options{Node: "n1"}}).Render(c)
	if set.ClusterPolicy("cnp/deny-client") == nil || len(set.Cluster.Nodes) != 1 {
		t.Fatalf("cluster policies %d, nodes %d after a NetworkPolicy fell back", len(set.ClusterPolicies), len(set.Cluster.Nodes))
	}
	if flowAllowed(t, set, "app/client", "app/web", 80) {
		t.Error("the Admin Deny is no longer enforced")
	}
}

// TestDenyClusterVersion: the stand-in keeps kind, name, tier and
// priority, denies in exactly the directions the policy has rules,
// always compiles, and is never more open than the policy: whatever flow
// the policy matched (any action), the stand-in denies.
func TestDenyClusterVersion(t *testing.T) {
	banp := &cluster.ClusterPolicy{Kind: cluster.KindBANP, Name: "default", Spec: v1beta1.ClusterNetworkPolicySpec{
		Tier: v1beta1.BaselineTier, Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
		Egress: []v1beta1.ClusterNetworkPolicyEgressRule{{Action: "Sideways", To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Networks: []v1beta1.CIDR{"10.0.0.0/8"}}}}}}}
	d := DenyClusterVersion(banp)
	p, err := policy.CompileCluster(d)
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != cluster.KindBANP || p.Tier != policy.BaselineTier || p.Priority != 1001 || len(p.Rules[policy.Ingress]) != 0 || len(p.Rules[policy.Egress]) != 1 || !IsFailClosed(d) {
		t.Errorf("BANP stand-in: %+v", p)
	}
	odd := &cluster.ClusterPolicy{Kind: cluster.KindCNP, Name: "odd", Spec: v1beta1.ClusterNetworkPolicySpec{Tier: "Middle", Priority: 7,
		Ingress: []v1beta1.ClusterNetworkPolicyIngressRule{{}}}}
	if p, err := policy.CompileCluster(DenyClusterVersion(odd)); err != nil || p.Tier != policy.AdminTier || p.Priority != 7 || len(p.Rules[policy.Ingress]) != 1 {
		t.Errorf("unknown tier: %+v, %v", p, err)
	}

	// Never more open: for a policy with every kind of peer and action,
	// each flow its subject's rules match is denied by the stand-in.
	nss, pods := podsOnly(t)
	full := acceptClientCNP("full")
	full.Spec.Egress = []v1beta1.ClusterNetworkPolicyEgressRule{
		{Action: v1beta1.ClusterNetworkPolicyRuleActionAccept, To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Networks: []v1beta1.CIDR{"0.0.0.0/0"}}}},
		{Action: v1beta1.ClusterNetworkPolicyRuleActionPass, To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Pods: podsPeer("client")}}},
	}
	for _, tier := range []v1beta1.Tier{v1beta1.AdminTier, v1beta1.BaselineTier} {
		full.Spec.Tier = tier
		c := withCluster(nss, pods, nil, full)
		orig := policy.NewSet(c)
		stand := policy.NewSet(withCluster(nss, pods, nil, DenyClusterVersion(full)))
		for _, f := range [][2]string{{"app/client", "app/web"}, {"app/web", "app/client"}, {"app/web", "8.8.8.8"}, {"app/web", "2001:db8::2"}} {
			if flowAllowed(t, stand, f[0], f[1], 80) {
				t.Errorf("%s tier: the stand-in allows %s -> %s (the policy: %v)", tier, f[0], f[1], flowAllowed(t, orig, f[0], f[1], 80))
			}
		}
	}
}

// TestClusterPolicyNotices: a policy with domainNames gets one
// DomainNamesNotEnforced notice per version; two policies of one tier and
// priority that disagree on a local pod's traffic get an
// EqualPriorityConflict notice each, and agreeing ones none.
func TestClusterPolicyNotices(t *testing.T) {
	nss, pods := podsOnly(t)
	var got []Notice
	a := New(Config{Render: nft.Options{Node: "n1"}, Noticed: func(n Notice) { got = append(got, n) }})

	dn := &cluster.ClusterPolicy{Kind: cluster.KindCNP, Name: "dns", Spec: v1beta1.ClusterNetworkPolicySpec{Tier: v1beta1.AdminTier, Priority: 1, Subject: webSubject(),
		Egress: []v1beta1.ClusterNetworkPolicyEgressRule{{Action: v1beta1.ClusterNetworkPolicyRuleActionAccept, To: []v1beta1.ClusterNetworkPolicyEgressPeer{{DomainNames: []v1beta1.DomainName{"example.com"}}}}}}}
	a.Render(withCluster(nss, pods, nil, dn))
	a.Render(withCluster(nss, pods, nil, dn))
	if len(got) != 1 || got[0].Reason != ReasonDomainNamesNotEnforced || got[0].Policy.Name != "dns" || !strings.Contains(got[0].Message, "domainNames") {
		t.Fatalf("notices: %+v", got)
	}
	dn2 := *dn
	dn2.Spec = *dn.Spec.DeepCopy()
	dn2.Spec.Egress[0].To[0].DomainNames = []v1beta1.DomainName{"example.org"}
	a.Render(withCluster(nss, pods, nil, &dn2))
	if len(got) != 2 {
		t.Fatalf("a new version must be reported again: %d notices", len(got))
	}

	// Equal priority, conflicting actions on client -> web.
	got = nil
	accept := acceptClientCNP("a-accept")
	accept.Spec.Ingress = accept.Spec.Ingress[:1]
	deny := acceptClientCNP("b-deny")
	deny.Spec.Ingress = deny.Spec.Ingress[1:]
	_, set := a.Render(withCluster(nss, pods, nil, accept, deny))
	if flowAllowed(t, set, "app/client", "app/web", 80) {
		t.Error("equal priority: Deny must win")
	}
	var conflicts []string
	for _, n := range got {
		if n.Reason == ReasonEqualPriorityConflict {
			conflicts = append(conflicts, n.Policy.Name+": "+n.Message)
		}
	}
	if len(conflicts) != 2 || !strings.Contains(conflicts[0], "app/web") {
		t.Fatalf("conflict notices: %q", conflicts)
	}
	t.Log(conflicts[0])
	a.Render(withCluster(nss, pods, nil, accept, deny))
	if len(got) != 2 {
		t.Error("a conflict was reported twice")
	}

	// The same actions: no notice. A Deny shadowed by an earlier Accept of
	// its own policy on the conflicting traffic: no notice either.
	got = nil
	deny2 := acceptClientCNP("c-deny")
	deny2.Spec.Ingress = deny2.Spec.Ingress[1:]
	a.Render(withCluster(nss, pods, nil, deny, deny2))
	shadow := acceptClientCNP("d-shadow") // Accept client, then Deny all
	a.Render(withCluster(nss, pods, nil, accept, shadow))
	if len(got) != 0 {
		t.Errorf("notices without a conflict: %+v", got)
	}
}

const cnpYAML = `apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: guard}
spec:
  tier: Admin
  priority: 10
  subject:
    pods:
      namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: app}}
      podSelector: {matchLabels: {app: web}}
  ingress:
  - name: client
    action: Accept
    from: [{pods: {podSelector: {matchLabels: {app: client}}}}]
  - name: others
    action: Deny
    from: [{namespaces: {}}]
`

// TestFileClusterPolicyFaults: in file mode, a cluster policy invalid by
// its CRD keeps its last valid version from its file; one never valid,
// or one that does not compile (Deny with domainNames), is handed on and
// enforced as its deny stand-in; a removed one leaves force; one in two
// files with none enforced before becomes a stand-in per version.
func TestFileClusterPolicyFaults(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "cluster.yaml"), nsAndPods)
	pol := filepath.Join(dir, "guard.yaml")
	write(t, pol, cnpYAML)
	src := &FileSource{Paths: []string{dir}}
	var rejected []Fallback
	a := New(Config{Render: nft.Options{Node: "n1"}, Dataplane: newFake(), Rejected: func(fb Fallback) { rejected = append(rejected, fb) }})
	syncSnap := func(snap *Snapshot) (Stats, *policy.Set) {
		t.Helper()
		st, err := a.SyncWith(ctx, snap.Cluster, snap.InvalidClusterPolicies)
		if err != nil {
			t.Fatal(err)
		}
		_, set := a.RenderWith(snap.Cluster, snap.InvalidClusterPolicies)
		return st, set
	}
	snap := mustLoad(t, src)
	if len(snap.Problems) > 0 || snap.Cluster.ClusterPolicy("cnp/guard") == nil {
		t.Fatalf("first load: %v", snap.Problems)
	}
	if _, set := syncSnap(snap); !flowAllowed(t, set, "app/client", "app/web", 80) || !flowAllowed(t, set, "app/web", "app/client", 80) {
		t.Fatal("the valid policy does not apply")
	}

	// Invalid by the CRD (priority out of 0..1000): the file's last valid
	// version stays.
	write(t, pol, strings.Replace(cnpYAML, "priority: 10", "priority: 5000", 1))
	snap = mustLoad(t, src)
	if len(snap.Problems) != 1 || !strings.Contains(snap.Problems[0].Error(), "priority") {
		t.Fatalf("problems: %v", snap.Problems)
	}
	if cp := snap.Cluster.ClusterPolicy("cnp/guard"); cp == nil || cp.Spec.Priority != 10 {
		t.Fatalf("the last valid version was dropped: %+v", cp)
	}
	if _, set := syncSnap(snap); !flowAllowed(t, set, "app/client", "app/web", 80) {
		t.Fatal("the last valid version is not enforced")
	}

	// A fresh source (no valid version in the file): handed on as
	// invalid; the agent, which enforced the valid version, keeps it.
	fresh := &FileSource{Paths: []string{dir}}
	snap = mustLoad(t, fresh)
	if len(snap.InvalidClusterPolicies) != 1 || snap.Cluster.ClusterPolicy("cnp/guard") != nil {
		t.Fatalf("invalid %v, in the cluster %v", snap.InvalidClusterPolicies, snap.Cluster.ClusterPolicy("cnp/guard") != nil)
	}
	st, set := syncSnap(snap)
	if len(st.Fallbacks) != 1 || st.Fallbacks[0].Action != ActionLastGood || st.Fallbacks[0].Reason != ReasonInvalid || !flowAllowed(t, set, "app/client", "app/web", 80) {
		t.Fatalf("fallbacks %+v", st.Fallbacks)
	}
	// A fresh agent has no compiled version: the stand-in denies.
	a2 := New(Config{Render: nft.Options{Node: "n1"}})
	_, set = a2.RenderWith(snap.Cluster, snap.InvalidClusterPolicies)
	if flowAllowed(t, set, "app/client", "app/web", 80) {
		t.Error("a never-valid cluster policy in a file left client -> web open")
	}

	// Valid for the CRD but not compilable (Deny with domainNames): the
	// stand-in denies web's egress too.
	write(t, filepath.Join(dir, "dn.yaml"), `apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: dn}
spec:
  priority: 4
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}}
  egress:
  - {action: Deny, to: [{domainNames: [example.com]}]}
`)
	snap = mustLoad(t, fresh)
	var dnRej *policy.Rejection
	for _, r := range snap.InvalidClusterPolicies {
		if r.Key() == "anp/dn" {
			dnRej = r
		}
	}
	if dnRej == nil || !strings.Contains(dnRej.Err.Error(), "domainNames") {
		t.Fatalf("invalid: %v", snap.InvalidClusterPolicies)
	}
	_, set = a2.RenderWith(snap.Cluster, snap.InvalidClusterPolicies)
	if flowAllowed(t, set, "app/web", "8.8.8.8", 443) {
		t.Error("an uncompilable egress policy left web's egress open")
	}
	os.Remove(filepath.Join(dir, "dn.yaml"))

	// Removed: gone.
	write(t, pol, cnpYAML)
	mustLoad(t, src)
	os.Remove(pol)
	snap = mustLoad(t, src)
	if snap.Cluster.ClusterPolicy("cnp/guard") != nil || len(snap.InvalidClusterPolicies) > 0 || snap.Degraded {
		t.Fatal("a removed file's cluster policy stays")
	}
	if _, set := syncSnap(snap); len(set.ClusterPolicies) != 0 {
		t.Fatal("a removed cluster policy is still enforced")
	}

	// In two files, none enforced before: a stand-in for each version.
	write(t, filepath.Join(dir, "a.yaml"), cnpYAML)
	write(t, filepath.Join(dir, "b.yaml"), strings.Replace(cnpYAML, "app: web}}\n  ingress", "app: client}}\n  ingress", 1))
	two := &FileSource{Paths: []string{dir}}
	for i := 0; i < 2; i++ { // the stand-ins survive a second load
		snap = mustLoad(t, two)
		var ce *ConflictError
		if len(snap.Problems) != 1 || !errors.As(snap.Problems[0], &ce) {
			t.Fatalf("problems: %v", snap.Problems)
		}
		_, set = New(Config{Render: nft.Options{Node: "n1"}}).Render(snap.Cluster)
		if len(set.ClusterPolicies) != 2 || flowAllowed(t, set, "app/client", "app/web", 80) || flowAllowed(t, set, "app/web", "app/client", 80) {
			t.Fatalf("load %d: conflicting versions must each deny their subject: %d cluster policies", i+1, len(set.ClusterPolicies))
		}
	}
}
