package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRolloutTutorial runs README's rollout steps 2, 4 and 5 as written:
// the staged default deny would break api -> db; advise's policies from
// the example's observed flows make every observed flow allowed with the
// staged policy enforced, and nothing unobserved across workloads.
func TestRolloutTutorial(t *testing.T) {
	dir := ex("staged-rollout")
	out, _, code := run(t, "", "check", "-f", dir, "--from", "shop/api-5d8b6-klmno", "--to", "shop/db-0", "--port", "TCP/5432")
	if code != 0 || !strings.Contains(out, "pending (with staged policies): DENIED at ingress by shop/default-deny-ingress (staged)") {
		t.Fatalf("step 2: exit %d\n%s", code, out)
	}
	yaml, errOut, code := run(t, "", "advise", "-f", dir, "--flows", filepath.Join(dir, "flows.ndjson"), "-n", "shop")
	if code != 0 || !strings.Contains(errOut, "4 of 4 observed flows allowed") {
		t.Fatalf("step 4: exit %d\n%s", code, errOut)
	}
	allow := filepath.Join(t.TempDir(), "allow.yaml")
	if err := os.WriteFile(allow, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		from, to, port string
		pending        string
	}{
		{"shop/api-5d8b6-klmno", "shop/db-0", "TCP/5432", "pending (with staged policies): ALLOWED"},
		{"shop/frontend-7c9f4-abcde", "shop/api-5d8b6-pqrst", "TCP/8080", "pending (with staged policies): ALLOWED"},
		// Never observed: the frontend does not talk to the database.
		{"shop/frontend-7c9f4-abcde", "shop/db-0", "TCP/5432", "pending (with staged policies): DENIED"},
	} {
		out, _, _ := run(t, "", "check", "-f", dir, "-f", allow, "--from", c.from, "--to", c.to, "--port", c.port)
		if !strings.Contains(out, c.pending) {
			t.Errorf("step 5: %s -> %s %s: want %q\n%s", c.from, c.to, c.port, c.pending, out)
		}
	}
}
