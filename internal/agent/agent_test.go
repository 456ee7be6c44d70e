package agent

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netfence/netfence/internal/nft"
)

// newFake returns the in-memory dataplane the agent tests enforce in.
func newFake() *nft.Fake { return nft.NewFake() }

// touched counts the transactions a fake dataplane took.
func touched(dp *nft.Fake) int {
	c := dp.Calls()
	return c.FullSyncs + c.Applies
}

const nsAndPods = `apiVersion: v1
kind: Namespace
metadata: {name: app}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: app, labels: {app: web}}
spec: {nodeName: n1, containers: [{name: c, image: x, ports: [{containerPort: 80, name: http}]}]}
status: {phase: Running, podIP: 10.244.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: app, labels: {app: client}}
spec: {nodeName: n1, containers: [{name: c, image: x}]}
status: {phase: Running, podIP: 10.244.0.3}
`

func policyYAML(name, from string) string {
	return `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ` + name + `, namespace: app}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: ` + from + `}}}]
`
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func webIsolated(m *nft.Model) bool {
	return m.Chain(nft.ChainName("app/web", 0)) != nil
}

// TestFileSourceKeepsLastGood: a policy whose manifest turns invalid stays
// in force in its last valid version; a never-valid one is skipped; the
// others are unaffected; a removed file removes its objects.
func TestFileSourceKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "cluster.yaml"), nsAndPods)
	write(t, filepath.Join(dir, "web.yaml"), policyYAML("web", "client"))
	dp := newFake()
	health := &Health{}
	a := New(Config{Render: nft.Options{Node: "n1"}, Dataplane: dp, Health: health, Metrics: NewMetrics()})
	src := &FileSource{Paths: []string{dir}}
	sync := func() {
		t.Helper()
		snap, err := src.Load()
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		if _, err := a.Sync(context.Background(), snap.Cluster); err != nil {
			t.Fatal(err)
		}
	}
	sync()
	if dp.Calls().FullSyncs != 1 || !webIsolated(dp.Model()) {
		t.Fatalf("first sync: full=%d, web isolated=%v", dp.Calls().FullSyncs, dp.Model() != nil && webIsolated(dp.Model()))
	}
	if err := health.Ready(); err != nil {
		t.Fatalf("not ready after the first sync: %v", err)
	}

	// The policy becomes invalid (endPort below port): still enforced.
	write(t, filepath.Join(dir, "web.yaml"), strings.Replace(policyYAML("web", "client"), "  - from:", "  - ports: [{port: 80, endPort: 70}]\n    from:", 1))
	snap, err := src.Load()
	if err != nil || len(snap.Problems) != 1 || !strings.Contains(snap.Problems[0].Error(), "endPort") {
		t.Fatalf("problems: %v %v", err, snap.Problems)
	}
	c := snap.Cluster
	if c.Policy("app", "web") == nil {
		t.Fatal("the last valid version of app/web was dropped: the pod would be open")
	}
	// A new, never-valid policy is skipped; a new valid one applies.
	write(t, filepath.Join(dir, "bad.yaml"), "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad, namespace: app}\nspec: {podSelector: {matchLabels: {app: client}}, policyTypes: [Sideways]}\n")
	write(t, filepath.Join(dir, "client.yaml"), strings.ReplaceAll(policyYAML("client-policy", "web"), "{app: web}}\n  ingress", "{app: client}}\n  ingress"))
	snap, _ = src.Load()
	c = snap.Cluster
	if c.Policy("app", "client-policy") == nil || c.Policy("app", "web") == nil {
		t.Fatalf("policies: %v", c.Policies)
	}
	if _, err := a.Sync(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if dp.Calls().FullSyncs != 1 || dp.Calls().Applies != 1 {
		t.Fatalf("want one incremental update, got full=%d updates=%d", dp.Calls().FullSyncs, dp.Calls().Applies)
	}
	// Removing the file removes the policy: web is open again.
	os.Remove(filepath.Join(dir, "web.yaml"))
	sync()
	if webIsolated(dp.Model()) {
		t.Fatal("app/web still isolated after its policy file was removed")
	}
}

// TestSyncFailure: a refused transaction makes the agent not ready, and the
// next sync is a full one.
func TestSyncFailure(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "c.yaml"), nsAndPods+"---\n"+policyYAML("web", "client"))
	dp := newFake()
	health := &Health{}
	m := NewMetrics()
	a := New(Config{Render: nft.Options{Node: "n1"}, Dataplane: dp, Health: health, Metrics: m})
	snap, _ := (&FileSource{Paths: []string{dir}}).Load()
	c := snap.Cluster
	dp.FailNext(errors.New("kernel says no"))
	if _, err := a.Sync(context.Background(), c); err == nil {
		t.Fatal("sync succeeded against a failing dataplane")
	}
	if health.Ready() == nil {
		t.Fatal("ready although the kernel refused the ruleset")
	}
	if _, err := a.Sync(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if dp.Calls().FullSyncs != 1 || health.Ready() != nil {
		t.Fatalf("after recovery: full=%d ready=%v", dp.Calls().FullSyncs, health.Ready())
	}

	text := scrape(t, m)
	for _, want := range []string{`netfence_syncs_total{kind="full",result="error"} 1`, `netfence_syncs_total{kind="full",result="ok"} 1`, "netfence_local_pods 2", "netfence_policies 1"} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestSyncApplyFailure: a refused incremental transaction leaves the
// dataplane as it was (a transaction is atomic), the agent not ready, and
// the next sync is a full one that brings the dataplane to the cluster's
// state.
func TestSyncApplyFailure(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "c.yaml"), nsAndPods)
	dp := newFake()
	health := &Health{}
	a := New(Config{Render: nft.Options{Node: "n1"}, Dataplane: dp, Health: health})
	src := &FileSource{Paths: []string{dir}}
	if _, err := a.Sync(ctx, mustLoad(t, src).Cluster); err != nil {
		t.Fatal(err)
	}
	open := dp.Text()
	write(t, filepath.Join(dir, "p.yaml"), policyYAML("web", "client"))
	c := mustLoad(t, src).Cluster
	dp.FailNext(errors.New("kernel says no"))
	if st, err := a.Sync(ctx, c); err == nil || st.Full || !st.Changed {
		t.Fatalf("incremental sync against a refusing dataplane: %+v, %v", st, err)
	}
	if dp.Text() != open || health.Ready() == nil || a.Model() != nil {
		t.Fatalf("after the refused transaction: ruleset changed %v, ready %v, model %v", dp.Text() != open, health.Ready(), a.Model() != nil)
	}
	st, err := a.Sync(ctx, c)
	if err != nil || !st.Full || st.Apply <= 0 {
		t.Fatalf("sync after the failure: %+v, %v", st, err)
	}
	if !webIsolated(dp.Model()) || dp.Text() != a.Model().Text() || health.Ready() != nil {
		t.Fatalf("after recovery the dataplane holds:\n%s", dp.Text())
	}
	if got, want := dp.Calls(), (nft.FakeCalls{FullSyncs: 2, Failed: 1}); got != want {
		t.Fatalf("calls %+v, want %+v", got, want)
	}
	// An unchanged cluster makes no transaction, but is compared.
	if st, err := a.Sync(ctx, c); err != nil || st.Changed || st.Apply != 0 || dp.Calls().Applies != 0 {
		t.Fatalf("sync of an unchanged cluster: %+v, %v", st, err)
	}
}

// scrape renders the metrics registry in the text format.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	handler := metricsHandler(m)
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	return string(body)
}

// TestRunFilesWatches: the agent applies a file change without being asked.
func TestRunFilesWatches(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "c.yaml"), nsAndPods)
	dp := newFake()
	a := New(Config{Render: nft.Options{Node: "n1"}, Dataplane: dp})
	synced := make(chan Stats, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunFiles(ctx, a, &FileSource{Paths: []string{dir}}, FileOptions{Debounce: 10 * time.Millisecond, Synced: func(st Stats) { synced <- st }})
	}()
	<-synced
	write(t, filepath.Join(dir, "p.yaml"), policyYAML("web", "client"))
	select {
	case st := <-synced:
		if !st.Changed || !webIsolated(dp.Model()) {
			t.Fatalf("after the file change: %+v", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("file change not applied")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
