package agent

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netfence/netfence/internal/manifest"
	"github.com/netfence/netfence/internal/nft"
)

// chaosCluster is the fixed part of the chaos test's folder: namespaces
// and pods, never touched.
var chaosCluster = `apiVersion: v1
kind: Namespace
metadata: {name: app, labels: {team: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: other, labels: {team: b}}
` + chaosPods

var chaosPods = func() string {
	var b strings.Builder
	for i := 0; i < 6; i++ {
		ns := "app"
		if i >= 4 {
			ns = "other"
		}
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Pod
metadata: {name: p%d, namespace: %s, labels: {app: a%d, tier: t%d}}
spec: {nodeName: n1, containers: [{name: c, image: x, ports: [{containerPort: 80, name: http}]}]}
status: {phase: Running, podIP: 10.244.0.%d}
`, i, ns, i%3, i%2, 10+i)
	}
	return b.String()
}()

// chaosPolicy returns a valid policy of file f, variant v.
func chaosPolicy(f, v int) string {
	ns := "app"
	if v%3 == 2 {
		ns = "other"
	}
	from := fmt.Sprintf("{podSelector: {matchLabels: {app: a%d}}}", v%3)
	if v%4 == 3 {
		from = "{namespaceSelector: {matchLabels: {team: b}}}"
	}
	return fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: f%d-v%d, namespace: %s}
spec:
  podSelector: {matchLabels: {tier: t%d}}
  policyTypes: [Ingress%s]
  ingress:
  - from: [%s]
    ports: [{port: %d}]
`, f, v%2, ns, v%2, map[bool]string{true: ", Egress", false: ""}[v%5 == 0], from, 80+v%2)
}

// chaosClusterPolicy returns a valid cluster policy of file f, variant v:
// a ClusterNetworkPolicy of either tier and any action, or an
// AdminNetworkPolicy.
func chaosClusterPolicy(f, v int) string {
	actions := []string{"Accept", "Deny", "Pass"}
	if v%4 == 3 {
		return fmt.Sprintf(`apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: c%d}
spec:
  priority: %d
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {tier: t%d}}}}
  ingress:
  - {action: %s, from: [{namespaces: {matchLabels: {team: b}}}]}
`, f, 10+v%3, v%2, map[bool]string{true: "Allow", false: "Deny"}[v%2 == 0])
	}
	tier := "Admin"
	if v%3 == 1 {
		tier = "Baseline"
	}
	return fmt.Sprintf(`apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: c%d}
spec:
  tier: %s
  priority: %d
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {tier: t%d}}}}
  ingress:
  - {action: %s, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: a%d}}}}], protocols: [{tcp: {destinationPort: {number: 80}}}]}
  egress:
  - {action: Deny, to: [{networks: [192.0.2.0/24]}]}
`, f, tier, 10+v%3, v%2, actions[v%3], v%3)
}

// chaosContent returns a valid file of 1-3 policies for file f, and
// sometimes a cluster policy.
func chaosContent(r *rand.Rand, f int) string {
	n := 1 + r.IntN(3)
	docs := make([]string, 0, n)
	used := map[int]bool{}
	for len(docs) < n {
		v := r.IntN(10)
		if used[v%2] { // names are f<f>-v<v%2>: one per name
			break
		}
		used[v%2] = true
		docs = append(docs, chaosPolicy(f, v))
	}
	if r.IntN(3) == 0 { // named c<f>: one per file
		docs = append(docs, chaosClusterPolicy(f, r.IntN(12)))
	}
	return strings.Join(docs, "---\n")
}

// brokenContent returns content that is not valid YAML (a write cut short
// and left unparseable).
func brokenContent(r *rand.Rand, f int) string {
	c := chaosContent(r, f)
	return c[:1+r.IntN(len(c)-1)] + "\n  ]: {[\n"
}

// TestFileChaos applies seeded random file operations — writes, cut-short
// writes, empty files, atomic renames, deletes, folder removal and return
// — and after each checks that the enforced ruleset equals the ruleset of
// the last good state of each file, rendered from scratch.
func TestFileChaos(t *testing.T) {
	seed := uint64(1)
	if s := os.Getenv("NETFENCE_CHAOS_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	steps := 300
	if testing.Short() {
		steps = 60
	}
	r := rand.New(rand.NewPCG(seed, 7))
	parent := t.TempDir()
	dir := filepath.Join(parent, "manifests")
	os.Mkdir(dir, 0o755)
	write(t, filepath.Join(dir, "cluster.yaml"), chaosCluster)
	const files = 4
	good := map[string]string{} // file name -> last good content
	onDisk := map[string]bool{} // whether the file exists
	name := func(f int) string { return fmt.Sprintf("f%d.yaml", f) }

	dp := newFake()
	a := New(Config{Render: nft.Options{Node: "n1"}, Dataplane: dp})
	loader := &manifest.Loader{} // one CRD validator for every source
	src := &FileSource{Paths: []string{dir}, Loader: loader}
	folderAway := false
	expected := func() string {
		t.Helper()
		ref := t.TempDir()
		write(t, filepath.Join(ref, "cluster.yaml"), chaosCluster)
		for f, c := range good {
			write(t, filepath.Join(ref, f), c)
		}
		snap, err := (&FileSource{Paths: []string{ref}, Loader: loader}).Load()
		if err != nil || len(snap.Problems) > 0 {
			t.Fatalf("reference load: %v %v", err, snap.Problems)
		}
		m, _ := New(Config{Render: nft.Options{Node: "n1"}}).Render(snap.Cluster)
		return m.Text()
	}
	counts := map[string]int{}
	for step := 0; step < steps; step++ {
		f := r.IntN(files)
		path := filepath.Join(dir, name(f))
		op := r.IntN(10)
		if folderAway {
			op = 9 // bring it back
		}
		var what string
		switch op {
		case 0, 1, 2:
			what = "write"
			c := chaosContent(r, f)
			write(t, path, c)
			good[name(f)], onDisk[name(f)] = c, true
		case 3:
			what = "cut-short write"
			write(t, path, brokenContent(r, f))
			onDisk[name(f)] = true
		case 4:
			what = "truncate to empty"
			write(t, path, "")
			if !onDisk[name(f)] {
				good[name(f)] = "" // a new empty file: no objects
			}
			onDisk[name(f)] = true
		case 5, 6:
			what = "atomic rename"
			c := chaosContent(r, f)
			tmp := filepath.Join(dir, "."+name(f)+".tmp")
			write(t, tmp, c)
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
			good[name(f)], onDisk[name(f)] = c, true
		case 7:
			what = "delete"
			os.Remove(path)
			delete(good, name(f))
			onDisk[name(f)] = false
		case 8:
			what = "folder removed"
			if err := os.Rename(dir, filepath.Join(parent, "away")); err != nil {
				t.Fatal(err)
			}
			folderAway = true
		case 9:
			if !folderAway {
				what = "write"
				c := chaosContent(r, f)
				write(t, path, c)
				good[name(f)], onDisk[name(f)] = c, true
				break
			}
			what = "folder back"
			if err := os.Rename(filepath.Join(parent, "away"), dir); err != nil {
				t.Fatal(err)
			}
			folderAway = false
		}
		counts[what]++
		snap, err := src.Load()
		switch {
		case folderAway && err == nil:
			t.Fatalf("step %d (%s): the folder is gone but Load produced a snapshot", step, what)
		case !folderAway && err != nil:
			t.Fatalf("step %d (%s): %v", step, what, err)
		case err == nil:
			if _, err := a.Sync(context.Background(), snap.Cluster); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := dp.Model().Text(), expected(); got != want {
			t.Fatalf("seed %d step %d (%s %s): enforced ruleset differs from the last good state\n--- enforced\n%s\n--- want\n%s", seed, step, what, name(f), got, want)
		}
	}
	t.Logf("seed %d: %d steps %v", seed, steps, counts)
}
