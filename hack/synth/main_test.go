package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runDocs runs synth with args, checks it writes docs documents to
// standard output and returns them with what went to standard error.
func runDocs(t *testing.T, args []string, docs int) (string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(args, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	all := stdout.String()
	if n := strings.Count(all, "\n---\n") + 1; n != docs {
		t.Errorf("%d documents on stdout, want %d", n, docs)
	}
	return all, stderr.String()
}

// checkDir runs synth with args and -o DIR, checks that files, joined,
// are all, and returns what went to standard error.
func checkDir(t *testing.T, args []string, dir, all string, files ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(append(args, "-o", dir+"/"), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, name := range files {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, string(b))
	}
	if got := strings.Join(parts, "---\n"); got != all {
		t.Errorf("-o DIR files %v joined differ from stdout", files)
	}
	return stderr.String()
}

func TestRunOutputs(t *testing.T) {
	args := []string{"-pods", "200", "-namespaces", "10", "-policies", "50", "-seed", "3", "-nodes", "2", "-ipv6"}
	all, _ := runDocs(t, args, 260)

	dir := t.TempDir()
	file := filepath.Join(dir, "all.yaml")
	var stdout, stderr bytes.Buffer
	if err := run(append(args, "-o", file), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != all {
		t.Errorf("-o FILE differs from stdout (err %v)", err)
	}

	out := filepath.Join(dir, "split")
	summary := checkDir(t, args, out, all, "namespaces.yaml", "pods.yaml", "policies.yaml")
	for _, name := range []string{"nodes.yaml", "clusterpolicies.yaml"} {
		if _, err := os.Stat(filepath.Join(out, name)); err == nil {
			t.Errorf("%s written without cluster policies", name)
		}
	}
	if !strings.Contains(summary, "200 pods") {
		t.Errorf("no summary on stderr: %q", summary)
	}

	for _, bad := range []string{"-pods", "-cluster-policies"} {
		if err := run([]string{bad, "-1"}, &stdout, &stderr); err == nil {
			t.Errorf("%s -1 accepted", bad)
		}
	}
}

func TestRunClusterPolicies(t *testing.T) {
	args := []string{"-pods", "200", "-namespaces", "10", "-policies", "50", "-seed", "3", "-nodes", "2", "-cluster-policies", "20"}
	// 10 namespaces, 2 nodes, 200 pods and 2 node exporters, 50 policies,
	// 20 cluster policies.
	all, _ := runDocs(t, args, 284)
	for kind, want := range map[string]int{"Node": 2, "ClusterNetworkPolicy": 20} {
		if n := strings.Count(all, "kind: "+kind+"\n"); n != want {
			t.Errorf("%d %ss, want %d", n, kind, want)
		}
	}
	summary := checkDir(t, args, filepath.Join(t.TempDir(), "split"), all,
		"namespaces.yaml", "nodes.yaml", "pods.yaml", "policies.yaml", "clusterpolicies.yaml")
	if !strings.Contains(summary, "2 nodes, 20 cluster policies") {
		t.Errorf("no cluster policies in the summary on stderr: %q", summary)
	}
}
