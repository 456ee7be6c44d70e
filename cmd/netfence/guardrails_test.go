package main

import (
	"strings"
	"testing"
)

// TestGuardrailsExample holds examples/cluster-guardrails to what its
// comments promise, each expectation derived by hand from the manifests.
func TestGuardrailsExample(t *testing.T) {
	dir := ex("cluster-guardrails")
	cases := []struct {
		from, to, port string
		code           int    // 0 allowed, 1 denied
		words          string // in the output
	}{
		// protect-payments: checkout may call the API on 8443 ...
		{"team-a/checkout-0", "payments/payments-api-0", "TCP/8443", 0, "checkout-to-api"},
		// ... but not scrape it; Prometheus may, by the named port.
		{"team-a/checkout-0", "payments/payments-api-0", "TCP/9090", 1, "everyone-else"},
		{"monitoring/prometheus-0", "payments/payments-api-0", "TCP/metrics", 0, "prometheus-scrapes"},
		// team-b's NetworkPolicy allows all its egress: the Admin tier
		// still denies at payments.
		{"team-b/client-0", "payments/payments-api-0", "TCP/8443", 1, "everyone-else"},
		// monitoring-to-nodes: the node exporter (host network) on 9100
		// only.
		{"monitoring/prometheus-0", "monitoring/node-exporter-node-1", "TCP/9100", 0, "node-exporter"},
		{"monitoring/prometheus-0", "monitoring/node-exporter-node-1", "TCP/22", 1, "other-host-ports"},
		// Tenants: Admin passes, NetworkPolicy decides where it isolates
		// (team-a/web-0 is open on http) ...
		{"team-b/client-0", "team-a/web-0", "TCP/80", 0, "passed by cnp/delegate-to-tenants"},
		// ... and the baseline elsewhere: no ingress into tenants.
		{"team-b/client-0", "team-a/checkout-0", "TCP/8080", 1, "deny-the-rest"},
		// The baseline lets tenants resolve names and reach other tenants,
		// and nothing else.
		{"team-a/web-0", "kube-system/coredns-0", "UDP/53", 0, "dns"},
		{"team-a/checkout-0", "team-a/web-0", "TCP/80", 0, "other-tenants"},
		{"team-a/checkout-0", "monitoring/prometheus-0", "TCP/9090", 1, "deny-the-rest"},
		// No one reaches the cloud metadata endpoint, NetworkPolicy or not.
		{"team-b/client-0", "169.254.169.254", "TCP/80", 1, "cloud-metadata"},
	}
	for _, tc := range cases {
		t.Run(tc.from+"->"+tc.to+"/"+tc.port, func(t *testing.T) {
			out, errOut, code := run(t, "", "check", "-f", dir, "--from", tc.from, "--to", tc.to, "--port", tc.port)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out, errOut)
			}
			if !strings.Contains(out, tc.words) {
				t.Errorf("output does not say %q:\n%s", tc.words, out)
			}
		})
	}
	// No warnings: the example has no equal-priority conflicts, no
	// undefined namespaces.
	if _, errOut, code := run(t, "", "matrix", "-f", dir, "-o", "summary"); code != 0 || errOut != "" {
		t.Fatalf("matrix: exit %d, stderr %q", code, errOut)
	}
}
