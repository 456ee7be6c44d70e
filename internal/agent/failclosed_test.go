package agent

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/conntrack"
	"github.com/netfence/netfence/internal/nft"
	"github.com/netfence/netfence/internal/policy"
)

// allowed evaluates client -> web TCP/80 against the set the agent renders.
func clientToWeb(t *testing.T, set *policy.Set) bool {
	t.Helper()
	c := set.Cluster
	from, to := c.Pod("app/client"), c.Pod("app/web")
	if from == nil || to == nil {
		t.Fatal("pods missing")
	}
	return set.Evaluate(policy.Flow{From: policy.Endpoint{Pod: from, IP: from.IPs[0]}, To: policy.Endpoint{Pod: to, IP: to.IPs[0]}, Protocol: corev1.ProtocolTCP, Port: 80}).Allowed
}

func mustLoad(t *testing.T, src *FileSource) *Snapshot {
	t.Helper()
	snap, err := src.Load()
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return snap
}

// TestFileFaultsKeepLastGood: a file cut short, emptied, or unreadable
// keeps its previous objects; a removed file takes them out.
func TestFileFaultsKeepLastGood(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "cluster.yaml"), nsAndPods)
	pol := filepath.Join(dir, "web.yaml")
	write(t, pol, policyYAML("web", "nobody"))
	src := &FileSource{Paths: []string{dir}}
	if snap := mustLoad(t, src); snap.Cluster.Policy("app", "web") == nil || len(snap.Problems) > 0 {
		t.Fatalf("first load: %v", snap.Problems)
	}
	full := policyYAML("web", "nobody")
	for name, content := range map[string]string{
		"cut mid-document (syntax error)": full[:len(full)-12] + "{[",
		"emptied (being written)":         "",
		"cut inside a flow mapping":       full[:strings.Index(full, "{app: web}")+5],
	} {
		write(t, pol, content)
		snap := mustLoad(t, src)
		if snap.Cluster.Policy("app", "web") == nil {
			t.Errorf("%s: the policy was dropped: web would be open", name)
		}
		var fp *FileProblem
		if len(snap.Problems) != 1 || !errors.As(snap.Problems[0], &fp) || !snap.Degraded {
			t.Errorf("%s: problems %v, degraded %v", name, snap.Problems, snap.Degraded)
		}
	}
	if os.Geteuid() != 0 { // root reads anything
		write(t, pol, full)
		os.Chmod(pol, 0)
		if snap := mustLoad(t, src); snap.Cluster.Policy("app", "web") == nil {
			t.Error("unreadable file: the policy was dropped")
		}
		os.Chmod(pol, 0o644)
	}
	// Removed from a readable folder: gone.
	os.Remove(pol)
	if snap := mustLoad(t, src); snap.Cluster.Policy("app", "web") != nil || snap.Degraded {
		t.Errorf("removed file: policy still there (degraded %v)", snap.Degraded)
	}
}

// TestSourceMissing: a missing folder produces no snapshot.
func TestSourceMissing(t *testing.T) {
	dir := t.TempDir()
	src := &FileSource{Paths: []string{filepath.Join(dir, "typo")}}
	_, err := src.Load()
	var se *SourceError
	if !errors.As(err, &se) {
		t.Fatalf("load of a missing path: %v", err)
	}
}

// TestOnceFailsClosed: --once touches nothing when a path is missing or a
// file fails to parse.
func TestOnceFailsClosed(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "cluster.yaml"), nsAndPods)
	write(t, filepath.Join(dir, "bad.yaml"), "kind: NetworkPolicy\nmetadata: {name: x\n")
	for name, paths := range map[string][]string{
		"missing path": {filepath.Join(dir, "typo")},
		"syntax error": {dir},
		"one missing":  {dir, filepath.Join(dir, "typo")},
	} {
		dp := newFake()
		a := New(Config{Render: nft.Options{Node: "n1"}, Dataplane: dp})
		err := RunFiles(context.Background(), a, &FileSource{Paths: paths}, FileOptions{Once: true})
		if err == nil || touched(dp) != 0 {
			t.Errorf("%s: err %v, kernel touched %d times", name, err, touched(dp))
		}
	}
}

// TestConflictAcrossFiles: one policy in two files keeps the version in
// force; without one, both versions become deny-all.
func TestConflictAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "cluster.yaml"), nsAndPods)
	write(t, filepath.Join(dir, "a.yaml"), policyYAML("web", "client"))
	dp := newFake()
	a := New(Config{Render: nft.Options{Node: "n1"}, Dataplane: dp})
	src := &FileSource{Paths: []string{dir}}
	snap := mustLoad(t, src)
	if _, err := a.Sync(context.Background(), snap.Cluster); err != nil {
		t.Fatal(err)
	}
	// A second file defines app/web, open to everyone: the first version
	// stays in force.
	write(t, filepath.Join(dir, "b.yaml"), strings.Replace(policyYAML("web", "x"), "  - from: [{podSelector: {matchLabels: {app: x}}}]\n", "  - {}\n", 1))
	snap = mustLoad(t, src)
	var ce *ConflictError
	if len(snap.Problems) != 1 || !errors.As(snap.Problems[0], &ce) || !strings.Contains(ce.Error(), "a.yaml") || !strings.Contains(ce.Error(), "b.yaml") {
		t.Fatalf("problems: %v", snap.Problems)
	}
	_, set := a.Render(snap.Cluster)
	if !clientToWeb(t, set) {
		t.Error("the enforced version (client allowed) was replaced")
	}
	if np := snap.Cluster.Policy("app", "web"); np == nil || len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].From) != 1 {
		t.Errorf("app/web in force: %+v", np)
	}

	// A fresh source (nothing enforced before): deny-all for both versions.
	fresh := &FileSource{Paths: []string{dir}}
	snap = mustLoad(t, fresh)
	a2 := New(Config{Render: nft.Options{Node: "n1"}, Dataplane: newFake()})
	m, set := a2.Render(snap.Cluster)
	if clientToWeb(t, set) || !webIsolated(m) {
		t.Error("conflicting versions with none enforced must deny")
	}
	// Resolved: the remaining version applies.
	os.Remove(filepath.Join(dir, "b.yaml"))
	snap = mustLoad(t, fresh)
	if _, set := a2.Render(snap.Cluster); !clientToWeb(t, set) || len(snap.Problems) > 0 {
		t.Errorf("after resolving: problems %v", snap.Problems)
	}

	// Two files defining one Pod with nothing enforced: no snapshot.
	dir2 := t.TempDir()
	write(t, filepath.Join(dir2, "a.yaml"), nsAndPods)
	write(t, filepath.Join(dir2, "b.yaml"), nsAndPods[strings.Index(nsAndPods, "---"):])
	if _, err := (&FileSource{Paths: []string{dir2}}).Load(); err == nil {
		t.Error("a pod defined twice with none enforced must stop the sync")
	}
}

// invalidPolicy is one the API server would admit in some version but that
// netfence's compiler refuses (endPort below port).
func invalidPolicy(name string) *networkingv1.NetworkPolicy {
	port, end := intstr.FromInt32(80), int32(70)
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name, ResourceVersion: "2"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: &port, EndPort: &end}}}},
		},
	}
}

func podsOnly(t *testing.T) ([]*cluster.Namespace, []*cluster.Pod) {
	t.Helper()
	mk := func(name, app, ip string) *cluster.Pod {
		return &cluster.Pod{Namespace: "app", Name: name, Labels: map[string]string{"app": app}, IPs: []netip.Addr{netip.MustParseAddr(ip)},
			NodeName: "n1", Phase: corev1.PodRunning, Ports: []cluster.ContainerPort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}}
	}
	return []*cluster.Namespace{{Name: "app", Defined: true}}, []*cluster.Pod{mk("web", "web", "10.244.0.2"), mk("client", "client", "10.244.0.3")}
}

// TestRejectedPolicyFailsClosed: a policy that does not compile keeps its
// last compiled version, or denies the pods it selects; the metric says
// which.
func TestRejectedPolicyFailsClosed(t *testing.T) {
	nss, pods := podsOnly(t)
	m := NewMetrics()
	var events []string
	a := New(Config{Render: nft.Options{Node: "n1"}, Dataplane: newFake(), Metrics: m,
		Rejected: func(fb Fallback) { events = append(events, fb.Rejection.Policy.Name) }})

	// Never compiled: web is isolated for ingress with no allows.
	st, err := a.Sync(context.Background(), cluster.New(nss, pods, []*networkingv1.NetworkPolicy{invalidPolicy("web")}))
	if err != nil {
		t.Fatal(err)
	}
	_, set := a.Render(cluster.New(nss, pods, []*networkingv1.NetworkPolicy{invalidPolicy("web")}))
	if clientToWeb(t, set) {
		t.Error("a never-valid policy opened its pod")
	}
	if len(st.Fallbacks) != 1 || st.Fallbacks[0].Action != ActionDeny || st.Fallbacks[0].Reason != "invalid" {
		t.Errorf("fallbacks: %+v", st.Fallbacks)
	}
	if text := scrape(t, m); !strings.Contains(text, `netfence_policies_rejected{action="deny",reason="invalid"} 1`) {
		t.Errorf("metrics:\n%s", grep(text, "rejected"))
	}
	if len(events) != 1 {
		t.Errorf("events: %v", events)
	}

	// A valid version allowing client, then an invalid edit: the valid
	// version stays.
	good := invalidPolicy("web")
	good.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}}}}}
	good.ResourceVersion = "3"
	if _, err := a.Sync(context.Background(), cluster.New(nss, pods, []*networkingv1.NetworkPolicy{good})); err != nil {
		t.Fatal(err)
	}
	bad := invalidPolicy("web")
	bad.ResourceVersion = "4"
	st, err = a.Sync(context.Background(), cluster.New(nss, pods, []*networkingv1.NetworkPolicy{bad}))
	if err != nil {
		t.Fatal(err)
	}
	_, set = a.Render(cluster.New(nss, pods, []*networkingv1.NetworkPolicy{bad}))
	if !clientToWeb(t, set) {
		t.Error("the last compiled version was not kept")
	}
	if len(st.Fallbacks) != 1 || st.Fallbacks[0].Action != ActionLastGood {
		t.Errorf("fallbacks: %+v", st.Fallbacks)
	}
	if text := scrape(t, m); !strings.Contains(text, `netfence_policies_rejected{action="last-good",reason="invalid"} 1`) || strings.Contains(text, `action="deny"`) {
		t.Errorf("metrics:\n%s", grep(text, "rejected"))
	}

	// An invalid pod selector: the stand-in isolates every pod of the
	// namespace.
	sel := invalidPolicy("wide")
	sel.Spec.PodSelector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Sideways"}}}
	_, set = New(Config{Render: nft.Options{Node: "n1"}}).Render(cluster.New(nss, pods, []*networkingv1.NetworkPolicy{sel}))
	if clientToWeb(t, set) {
		t.Error("a policy with an unreadable selector opened its pods")
	}
	if len(set.Isolating(set.Cluster.Pod("app/client"), policy.Ingress)) == 0 {
		t.Error("an unreadable selector must isolate every pod of the namespace")
	}
}

// TestDenyVersionTypes: the stand-in isolates in the policy's types.
func TestDenyVersionTypes(t *testing.T) {
	np := invalidPolicy("p")
	np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	if d := DenyVersion(np); len(d.Spec.PolicyTypes) != 1 || d.Spec.PolicyTypes[0] != networkingv1.PolicyTypeEgress || len(d.Spec.Ingress)+len(d.Spec.Egress) != 0 {
		t.Errorf("egress-only: %+v", d.Spec)
	}
	np.Spec.PolicyTypes = []networkingv1.PolicyType{"Sideways"}
	if d := DenyVersion(np); len(d.Spec.PolicyTypes) != 2 {
		t.Errorf("unknown types must isolate both directions: %+v", d.Spec.PolicyTypes)
	}
}

// TestRunFilesFolderGoesAndComes: a missing folder changes nothing and
// makes the agent not ready; when it comes back, the watch is set up again
// and the change applied without waiting for a resync.
func TestRunFilesFolderGoesAndComes(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "manifests")
	os.Mkdir(dir, 0o755)
	write(t, filepath.Join(dir, "c.yaml"), nsAndPods+"---\n"+policyYAML("web", "client"))
	dp := newFake()
	health := &Health{}
	m := NewMetrics()
	a := New(Config{Render: nft.Options{Node: "n1"}, Dataplane: dp, Health: health, Metrics: m})
	synced := make(chan Stats, 10)
	loaded := make(chan error, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunFiles(ctx, a, &FileSource{Paths: []string{dir}}, FileOptions{Debounce: 10 * time.Millisecond, Retry: time.Hour,
			Synced: func(st Stats) { synced <- st }, Loaded: func(_ *Snapshot, err error) { loaded <- err }})
	}()
	defer func() {
		cancel()
		<-done
	}()
	wait := func(what string) Stats {
		t.Helper()
		select {
		case st := <-synced:
			return st
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no sync", what)
		}
		return Stats{}
	}
	wait("first")
	if !webIsolated(dp.Model()) || health.Ready() != nil {
		t.Fatal("first sync")
	}
	before := touched(dp)
	os.Rename(dir, filepath.Join(parent, "away"))
	deadline := time.After(10 * time.Second)
	for sawError := false; !sawError; {
		select {
		case err := <-loaded:
			sawError = err != nil
		case <-deadline:
			t.Fatal("the folder's disappearance was not noticed")
		}
	}
	if touched(dp) != before || !webIsolated(dp.Model()) {
		t.Fatal("a missing folder changed the ruleset")
	}
	if health.Ready() == nil {
		t.Error("ready while the manifests folder is missing")
	}
	if text := scrape(t, m); !strings.Contains(text, "netfence_source_error 1") {
		t.Errorf("metrics:\n%s", grep(text, "source"))
	}
	// It comes back with a change: applied without a resync (Retry is an
	// hour), and the folder is watched again.
	os.Rename(filepath.Join(parent, "away"), dir)
	wait("folder back")
	if health.Ready() != nil {
		t.Errorf("not ready after the folder came back: %v", health.Ready())
	}
	write(t, filepath.Join(dir, "c.yaml"), nsAndPods)
	if st := wait("change after return"); !st.Changed || webIsolated(dp.Model()) {
		t.Error("a change after the folder came back was not applied")
	}
}

func grep(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestNeverValidFilePolicyDenies: in file mode too, a policy that never
// compiled denies the pods it selects instead of being dropped.
func TestNeverValidFilePolicyDenies(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "cluster.yaml"), nsAndPods)
	// Allows client on 80, but with endPort below port: invalid.
	bad := strings.Replace(policyYAML("web", "client"), "  - from:", "  - ports: [{port: 80, endPort: 70}]\n    from:", 1)
	write(t, filepath.Join(dir, "web.yaml"), bad)
	src := &FileSource{Paths: []string{dir}}
	snap := mustLoad(t, src)
	if len(snap.Invalid) != 1 || len(snap.Problems) != 1 {
		t.Fatalf("invalid %d, problems %v", len(snap.Invalid), snap.Problems)
	}
	a := New(Config{Render: nft.Options{Node: "n1"}, Dataplane: newFake()})
	m, set := a.Render(snap.Cluster)
	if clientToWeb(t, set) || !webIsolated(m) {
		t.Fatal("a never-valid policy in a file left its pod open")
	}
	write(t, filepath.Join(dir, "web.yaml"), policyYAML("web", "client"))
	if _, set := a.Render(mustLoad(t, src).Cluster); !clientToWeb(t, set) {
		t.Fatal("the fixed policy does not apply")
	}
}

// TestDenyVersionAlwaysCompiles: a policy invalid in its metadata (labels,
// name) also gets a deny stand-in that compiles, and rendering terminates.
func TestDenyVersionAlwaysCompiles(t *testing.T) {
	nss, pods := podsOnly(t)
	badLabels := invalidPolicy("web")
	badLabels.Labels = map[string]string{"not a key!": "x"}
	badName := invalidPolicy(strings.Repeat("n", 250) + ".conflict-2" + "-x")
	for _, np := range []*networkingv1.NetworkPolicy{badLabels, badName} {
		d := DenyVersion(np)
		if _, err := policy.Compile(d); err != nil {
			t.Fatalf("the stand-in of %s does not compile: %v", np.Name[:10], err)
		}
		done := make(chan *policy.Set, 1)
		go func() {
			_, set := New(Config{Render: nft.Options{Node: "n1"}}).Render(cluster.New(nss, pods, []*networkingv1.NetworkPolicy{np}))
			done <- set
		}()
		select {
		case set := <-done:
			if clientToWeb(t, set) {
				t.Errorf("%s...: a policy invalid in its metadata opened its pod", np.Name[:10])
			}
		case <-time.After(10 * time.Second):
			t.Fatal("rendering a policy invalid in its metadata does not terminate")
		}
	}
}

// countingRevoker counts Revoke calls and revokes nothing.
type countingRevoker struct{ calls int }

func (r *countingRevoker) Revoke(context.Context, func(netip.Addr) bool, func(conntrack.Flow) bool) ([]conntrack.Flow, error) {
	r.calls++
	return nil, nil
}

// TestRevokeOnlyWhenNarrowing: the conntrack table is dumped after the
// first sync and after changes that can deny a flow, not after changes
// that only allow more (a new peer's address, a policy removed).
func TestRevokeOnlyWhenNarrowing(t *testing.T) {
	nss, pods := podsOnly(t)
	rv := &countingRevoker{}
	a := New(Config{Render: nft.Options{Node: "n1"}, Dataplane: nft.NewFake(), Revoker: rv})
	allowClient := invalidPolicy("web")
	allowClient.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}}}}}
	newcomer := &cluster.Pod{Namespace: "app", Name: "client-2", Labels: map[string]string{"app": "client"}, IPs: []netip.Addr{netip.MustParseAddr("10.244.0.9")}, NodeName: "n2", Phase: corev1.PodRunning}
	steps := []struct {
		name   string
		pods   []*cluster.Pod
		pols   []*networkingv1.NetworkPolicy
		revoke bool
	}{
		{"first sync", pods, []*networkingv1.NetworkPolicy{allowClient}, true},
		{"a new allowed peer appears", append(slices.Clone(pods), newcomer), []*networkingv1.NetworkPolicy{allowClient}, false},
		{"the peer goes", pods, []*networkingv1.NetworkPolicy{allowClient}, true},
		{"the policy goes (web no longer isolated)", pods, nil, false},
		{"a policy isolates web again", pods, []*networkingv1.NetworkPolicy{allowClient}, true},
	}
	for _, s := range steps {
		before := rv.calls
		st, err := a.Sync(context.Background(), cluster.New(nss, s.pods, s.pols))
		if err != nil {
			t.Fatal(err)
		}
		if !st.Changed {
			t.Fatalf("%s: nothing changed", s.name)
		}
		if got := rv.calls > before; got != s.revoke {
			t.Errorf("%s: revoked %v, want %v", s.name, got, s.revoke)
		}
	}
}
