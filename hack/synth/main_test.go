package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunOutputs(t *testing.T) {
	args := []string{"-pods", "200", "-namespaces", "10", "-policies", "50", "-seed", "3", "-nodes", "2", "-ipv6"}
	var stdout, stderr bytes.Buffer
	if err := run(args, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	all := stdout.String()
	if n := strings.Count(all, "\n---\n") + 1; n != 260 {
		t.Errorf("%d documents on stdout, want 260", n)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "all.yaml")
	if err := run(append(args, "-o", file), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != all {
		t.Errorf("-o FILE differs from stdout (err %v)", err)
	}

	out := filepath.Join(dir, "split") + "/"
	if err := run(append(args, "-o", out), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, name := range []string{"namespaces.yaml", "pods.yaml", "policies.yaml"} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, string(b))
	}
	if got := strings.Join(parts, "---\n"); got != all {
		t.Error("-o DIR files joined differ from stdout")
	}
	if !strings.Contains(stderr.String(), "200 pods") {
		t.Errorf("no summary on stderr: %q", stderr.String())
	}

	if err := run([]string{"-pods", "-1"}, &stdout, &stderr); err == nil {
		t.Error("negative pods accepted")
	}
}
