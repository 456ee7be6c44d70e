package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// Staged policies (examples/staged-rollout): a staged default deny for the
// shop's ingress next to an enforced allow for the api.
func init() {
	sr := ex("staged-rollout")
	apiDB := []string{"--from", "shop/api-5d8b6-klmno", "--to", "shop/db-0", "--port", "TCP/5432"}
	goldenCases = append(goldenCases, []struct {
		name  string
		stdin string
		args  []string
		code  int
	}{
		{"check-staged-api-db", "", append([]string{"check", "-f", sr}, apiDB...), 0},
		{"check-staged-api-db-json", "", append([]string{"check", "-f", sr, "-o", "json"}, apiDB...), 0},
		{"check-staged-api-db-with-staged", "", append([]string{"check", "-f", sr, "--with-staged"}, apiDB...), 1},
		{"check-staged-frontend-api", "", []string{"check", "-f", sr, "--from", "shop/frontend-7c9f4-abcde", "--to", "shop/api-5d8b6-klmno", "--port", "TCP/http"}, 0},
		{"check-staged-debug-api", "", []string{"check", "-f", sr, "--from", "tools/debug", "--to", "shop/api-5d8b6-klmno", "--port", "TCP/8080"}, 1},
		{"matrix-staged", "", []string{"matrix", "-f", sr, "--ports", "TCP/80,TCP/8080,TCP/5432"}, 0},
		{"matrix-staged-with-staged", "", []string{"matrix", "-f", sr, "--ports", "TCP/80,TCP/8080,TCP/5432", "--with-staged"}, 0},
		{"matrix-staged-json", "", []string{"matrix", "-f", sr, "--ports", "TCP/5432", "-n", "shop", "-o", "json"}, 0},
		{"describe-staged-policy", "", []string{"describe", "-f", sr, "policy", "shop/default-deny-ingress"}, 0},
		{"describe-staged-policy-with-staged", "", []string{"describe", "-f", sr, "policy", "shop/default-deny-ingress", "--with-staged"}, 0},
		{"describe-staged-pod", "", []string{"describe", "-f", sr, "pod", "shop/db-0"}, 0},
		{"describe-staged-pod-with-staged", "", []string{"describe", "-f", sr, "pod", "shop/db-0", "--with-staged"}, 0},
	}...)
}

// TestStagedPendingJSON: check -o json carries the verdict with the staged
// policies as "pending", and the warning; --with-staged drops both.
func TestStagedPendingJSON(t *testing.T) {
	t.Parallel()
	args := []string{"check", "-f", ex("staged-rollout"), "--from", "shop/api-5d8b6-klmno", "--to", "shop/db-0", "--port", "TCP/5432", "-o", "json"}
	type side struct {
		Isolated bool     `json:"isolated"`
		Allowed  bool     `json:"allowed"`
		Policies []string `json:"policies"`
	}
	type result struct {
		Allowed bool `json:"allowed"`
		Pending *struct {
			Allowed  bool   `json:"allowed"`
			DeniedAt string `json:"deniedAt"`
			Egress   side   `json:"egress"`
			Ingress  side   `json:"ingress"`
		} `json:"pending"`
		Warnings []string `json:"warnings"`
	}
	stdout, stderr, code := run(t, "", args...)
	var r result
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || code != 0 {
		t.Fatalf("exit %d, %v: %s", code, err, stdout)
	}
	if !r.Allowed || r.Pending == nil || r.Pending.Allowed || r.Pending.DeniedAt != "ingress" || !r.Pending.Egress.Allowed ||
		!r.Pending.Ingress.Isolated || strings.Join(r.Pending.Ingress.Policies, ",") != "shop/default-deny-ingress" {
		t.Errorf("got %s", stdout)
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "1 staged policy is not enforced") || !strings.Contains(stderr, "warning: 1 staged policy") {
		t.Errorf("warnings %q, stderr %q", r.Warnings, stderr)
	}
	stdout, stderr, code = run(t, "", append(args, "--with-staged")...)
	r = result{}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || code != 1 || r.Allowed || r.Pending != nil || r.Warnings != nil || stderr != "" {
		t.Errorf("--with-staged: exit %d, %v, stderr %q: %s", code, err, stderr, stdout)
	}
	// Without staged policies: no pending, no warning.
	stdout, _, _ = run(t, "", "check", "-f", ex("three-tier"), "--from", "shop/api-5d8b6-klmno", "--to", "shop/db-0", "--port", "TCP/5432", "-o", "json")
	if strings.Contains(stdout, "pending") {
		t.Errorf("pending without staged policies: %s", stdout)
	}
}

// TestAgentAuditDryRun: --audit renders the ruleset whose denies log and
// return (nothing is dropped by policy), with logging on; without it the
// same manifests drop.
func TestAgentAuditDryRun(t *testing.T) {
	out, errOut, code := run(t, "", "agent", "--manifests", "../../examples/default-deny-all", "--all-local", "--dry-run", "--audit")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	enforce, errOut, code := run(t, "", "agent", "--manifests", "../../examples/default-deny-all", "--all-local", "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	policyDrops := func(s string) (n int) {
		for _, l := range strings.Split(s, "\n") {
			if strings.Contains(l, "deny the rest") && strings.Contains(l, "drop") {
				n++
			}
		}
		return n
	}
	if policyDrops(enforce) == 0 {
		t.Fatalf("the enforcing ruleset denies nothing: the test cannot tell\n%s", enforce)
	}
	if n := policyDrops(out); n != 0 {
		t.Errorf("audit ruleset drops %d times:\n%s", n, out)
	}
	if !strings.Contains(out, "deny the rest") || !strings.Contains(out, `log prefix "nf:`) {
		t.Errorf("audit ruleset lacks its logging returns:\n%s", out)
	}
}
