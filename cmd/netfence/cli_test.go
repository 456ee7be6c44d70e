package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/netfence/netfence/internal/analysis"
)

// Golden files hold a command's exit code, stdout and stderr. Regenerate
// with `go test ./cmd/netfence -run TestGolden -update`, then read every
// changed verdict against the NetworkPolicy semantics before keeping it.
var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func ex(name string) string { return filepath.Join("..", "..", "examples", name) }

// run runs the root command in-process.
func run(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCommand("netfence", strings.NewReader(stdin), &out, &errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	code = exitCode(err, &errOut)
	return out.String(), errOut.String(), code
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

var goldenCases = []struct {
	name  string
	stdin string
	args  []string
	code  int
}{
	// The truth table of every example.
	{"matrix-additive", "", []string{"matrix", "-f", ex("additive")}, 0},
	{"matrix-allow-same-namespace", "", []string{"matrix", "-f", ex("allow-same-namespace")}, 0},
	{"matrix-default-deny-all", "", []string{"matrix", "-f", ex("default-deny-all")}, 0},
	{"matrix-default-deny-egress", "", []string{"matrix", "-f", ex("default-deny-egress")}, 0},
	{"matrix-default-deny-ingress", "", []string{"matrix", "-f", ex("default-deny-ingress")}, 0},
	{"matrix-monitoring", "", []string{"matrix", "-f", ex("monitoring")}, 0},
	{"matrix-three-tier", "", []string{"matrix", "-f", ex("three-tier")}, 0},
	{"matrix-edge", "", []string{"matrix", "-f", "testdata/edge.yaml"}, 0},
	// Output formats and options.
	{"matrix-three-tier-json", "", []string{"matrix", "-f", ex("three-tier"), "-o", "json", "--ports", "TCP/8080,UDP/53"}, 0},
	{"matrix-three-tier-csv", "", []string{"matrix", "-f", ex("three-tier"), "-o", "csv", "--ports", "tcp/5432"}, 0},
	{"matrix-three-tier-summary", "", []string{"matrix", "-f", ex("three-tier"), "-o", "summary"}, 0},
	{"matrix-three-tier-ns", "", []string{"matrix", "-f", ex("three-tier"), "-n", "shop", "--ports", "TCP/8080", "--ports", "5432"}, 0},
	{"matrix-monitoring-summary", "", []string{"matrix", "-f", ex("monitoring"), "-o", "summary"}, 0},
	{"matrix-edge-json", "", []string{"matrix", "-f", "testdata/edge.yaml", "-o", "json"}, 0},
	{"matrix-edge-summary", "", []string{"matrix", "-f", "testdata/edge.yaml", "-o", "summary", "--ports", "TCP/8080"}, 0},
	// check: allowed 0, denied 1.
	{"check-three-tier-named-port", "", []string{"check", "-f", ex("three-tier"), "--from", "shop/frontend-7c9f4-abcde", "--to", "shop/api-5d8b6-klmno", "--port", "TCP/http"}, 0},
	{"check-three-tier-named-port-json", "", []string{"check", "-f", ex("three-tier"), "--from", "shop/frontend-7c9f4-abcde", "--to", "shop/api-5d8b6-klmno", "--port", "TCP/http", "-o", "json"}, 0},
	{"check-three-tier-frontend-db", "", []string{"check", "-f", ex("three-tier"), "--from", "shop/frontend-7c9f4-abcde", "--to", "shop/db-0", "--port", "TCP/5432"}, 1},
	{"check-three-tier-frontend-db-json", "", []string{"check", "-f", ex("three-tier"), "--from", "shop/frontend-7c9f4-abcde", "--to", "shop/db-0", "--port", "5432", "-o", "json"}, 1},
	{"check-three-tier-api-db-by-ip", "", []string{"check", "-f", ex("three-tier"), "--from", "10.244.1.21", "--to", "10.244.1.30", "--port", "TCP/5432"}, 0},
	{"check-three-tier-dns", "", []string{"check", "-f", ex("three-tier"), "--from", "shop/db-0", "--to", "kube-system/coredns-6f6b6-uvwxy", "--port", "udp/dns"}, 0},
	{"check-three-tier-db-external-dns", "", []string{"check", "-f", ex("three-tier"), "--from", "shop/db-0", "--to", "8.8.8.8", "--port", "UDP/53"}, 1},
	{"check-three-tier-external-frontend", "", []string{"check", "-f", ex("three-tier"), "--from", "203.0.113.5", "--to", "shop/frontend-7c9f4-fghij", "--port", "TCP/80"}, 0},
	{"check-three-tier-debug-api", "", []string{"check", "-f", ex("three-tier"), "--from", "tools/debug", "--to", "shop/api-5d8b6-pqrst", "--port", "TCP/8080"}, 1},
	{"check-three-tier-self", "", []string{"check", "-f", ex("three-tier"), "--from", "shop/db-0", "--to", "shop/db-0", "--port", "TCP/9999"}, 0},
	{"check-monitoring-scrape", "", []string{"check", "-f", ex("monitoring"), "--from", "monitoring/prometheus-0", "--to", "payments/ledger-1", "--port", "TCP/metrics"}, 0},
	{"check-monitoring-grafana", "", []string{"check", "-f", ex("monitoring"), "--from", "monitoring/grafana-1", "--to", "payments/ledger-1", "--port", "TCP/9102"}, 1},
	{"check-monitoring-legacy-gateway", "", []string{"check", "-f", ex("monitoring"), "--from", "legacy/old-1", "--to", "payments/gateway-1", "--port", "TCP/8080", "-o", "json"}, 0},
	{"check-monitoring-except", "", []string{"check", "-f", ex("monitoring"), "--from", "10.244.3.5", "--to", "payments/gateway-1", "--port", "TCP/8080"}, 1},
	{"check-additive-admin", "", []string{"check", "-f", ex("additive"), "--from", "app/ops", "--to", "app/api", "--port", "TCP/admin"}, 0},
	{"check-additive-web-admin", "", []string{"check", "-f", ex("additive"), "--from", "app/web", "--to", "app/api", "--port", "TCP/9000"}, 1},
	{"check-edge-dual-stack", "", []string{"check", "-f", "testdata/edge.yaml", "--from", "edge/cli", "--to", "edge/web", "--port", "TCP/http"}, 0},
	{"check-edge-v4-destination", "", []string{"check", "-f", "testdata/edge.yaml", "--from", "edge/cli", "--to", "10.0.0.10", "--port", "TCP/8080"}, 1},
	{"check-edge-host-network", "", []string{"check", "-f", "testdata/edge.yaml", "--from", "edge/node-agent", "--to", "edge/web", "--port", "TCP/8000"}, 1},
	{"check-edge-inactive", "", []string{"check", "-f", "testdata/edge.yaml", "--from", "edge/done", "--to", "edge/web", "--port", "TCP/8080", "-o", "json"}, 0},
	// Warnings (stderr, and "warnings" in JSON) and pods sharing an address.
	{"matrix-shared-address", "", []string{"matrix", "-f", "testdata/shared-address.yaml", "--ports", "TCP/8080,TCP/9090"}, 0},
	{"matrix-shared-address-json", "", []string{"matrix", "-f", "testdata/shared-address.yaml", "--ports", "TCP/8080", "-o", "json"}, 0},
	{"check-shared-address-from-a", "", []string{"check", "-f", "testdata/shared-address.yaml", "--from", "shop/web-a", "--to", "shop/api", "--port", "TCP/http"}, 1},
	{"check-shared-address-from-b", "", []string{"check", "-f", "testdata/shared-address.yaml", "--from", "shop/web-b", "--to", "shop/api", "--port", "TCP/http"}, 1},
	{"check-shared-address-from-ip", "", []string{"check", "-f", "testdata/shared-address.yaml", "--from", "10.244.1.5", "--to", "shop/api", "--port", "TCP/http"}, 1},
	{"check-shared-address-web-c", "", []string{"check", "-f", "testdata/shared-address.yaml", "--from", "shop/web-c", "--to", "shop/api", "--port", "TCP/http"}, 0},
	{"check-shared-address-ipblock", "", []string{"check", "-f", "testdata/shared-address.yaml", "--from", "shop/web-a", "--to", "shop/api", "--port", "TCP/9090"}, 1},
	{"check-shared-address-to-ip-json", "", []string{"check", "-f", "testdata/shared-address.yaml", "--from", "shop/frontend", "--to", "10.244.1.5", "--port", "TCP/http", "-o", "json"}, 1},
	{"describe-shared-address-pod", "", []string{"describe", "-f", "testdata/shared-address.yaml", "pod", "shop/web-b"}, 0},
	{"describe-shared-address-policy", "", []string{"describe", "-f", "testdata/shared-address.yaml", "policy", "shop/api"}, 0},
	// describe.
	{"describe-three-tier-policy-api", "", []string{"describe", "-f", ex("three-tier"), "policy", "shop/api"}, 0},
	{"describe-three-tier-policy-frontend", "", []string{"describe", "-f", ex("three-tier"), "networkpolicy", "shop/frontend"}, 0},
	{"describe-three-tier-policy-deny", "", []string{"describe", "-f", ex("three-tier"), "policy", "shop/default-deny-all"}, 0},
	{"describe-three-tier-pod-db", "", []string{"describe", "-f", ex("three-tier"), "pod", "shop/db-0"}, 0},
	{"describe-three-tier-pod-debug", "", []string{"describe", "-f", ex("three-tier"), "pod", "tools/debug"}, 0},
	{"describe-monitoring-policy-scrape", "", []string{"describe", "-f", ex("monitoring"), "policy", "payments/allow-prometheus-scrape"}, 0},
	{"describe-monitoring-policy-gateway", "", []string{"describe", "-f", ex("monitoring"), "policy", "payments/gateway-public"}, 0},
	{"describe-monitoring-pod-gateway", "", []string{"describe", "-f", ex("monitoring"), "po", "payments/gateway-1"}, 0},
	{"describe-default-deny-egress-policy", "", []string{"describe", "-f", ex("default-deny-egress"), "policy", "team-a/default-deny-egress"}, 0},
	{"describe-edge-pod-agent", "", []string{"describe", "-f", "testdata/edge.yaml", "pod", "edge/node-agent"}, 0},
	{"describe-edge-pod-pending", "", []string{"describe", "-f", "testdata/edge.yaml", "pod", "edge/pending"}, 0},
	// Cluster-scoped policy: tiers, Pass, ties, nodes, domain names.
	{"matrix-guardrails", "", []string{"matrix", "-f", ex("cluster-guardrails")}, 0},
	{"matrix-guardrails-json", "", []string{"matrix", "-f", ex("cluster-guardrails"), "-o", "json", "--ports", "TCP/8443,TCP/9100"}, 0},
	{"matrix-guardrails-summary", "", []string{"matrix", "-f", ex("cluster-guardrails"), "-o", "summary"}, 0},
	{"matrix-tiers", "", []string{"matrix", "-f", "testdata/tiers.yaml", "--ports", "TCP/8080,TCP/9100,TCP/5432"}, 0},
	{"check-guardrails-admin-accept", "", []string{"check", "-f", ex("cluster-guardrails"), "--from", "team-a/checkout-0", "--to", "payments/payments-api-0", "--port", "TCP/https"}, 0},
	{"check-guardrails-pass-to-np", "", []string{"check", "-f", ex("cluster-guardrails"), "--from", "team-b/client-0", "--to", "team-a/web-0", "--port", "TCP/80"}, 0},
	{"check-guardrails-baseline-json", "", []string{"check", "-f", ex("cluster-guardrails"), "--from", "team-a/web-0", "--to", "monitoring/prometheus-0", "--port", "TCP/9090", "-o", "json"}, 1},
	{"check-guardrails-default", "", []string{"check", "-f", ex("cluster-guardrails"), "--from", "monitoring/prometheus-0", "--to", "kube-system/coredns-0", "--port", "UDP/53"}, 0},
	{"check-guardrails-node", "", []string{"check", "-f", ex("cluster-guardrails"), "--from", "monitoring/prometheus-0", "--to", "monitoring/node-exporter-node-1", "--port", "TCP/22"}, 1},
	{"check-guardrails-metadata", "", []string{"check", "-f", ex("cluster-guardrails"), "--from", "payments/payments-api-0", "--to", "169.254.169.254", "--port", "TCP/80"}, 1},
	{"check-tiers-tie", "", []string{"check", "-f", "testdata/tiers.yaml", "--from", "dev/tool", "--to", "prod/web", "--port", "TCP/http"}, 1},
	{"check-tiers-tie-json", "", []string{"check", "-f", "testdata/tiers.yaml", "--from", "dev/tool", "--to", "prod/web", "--port", "TCP/8080", "-o", "json"}, 1},
	{"check-tiers-anp", "", []string{"check", "-f", "testdata/tiers.yaml", "--from", "prod/web", "--to", "prod/db", "--port", "TCP/5432"}, 1},
	{"check-tiers-banp", "", []string{"check", "-f", "testdata/tiers.yaml", "--from", "prod/web", "--to", "8.8.8.8", "--port", "UDP/53"}, 1},
	{"check-tiers-domain", "", []string{"check", "-f", "testdata/tiers.yaml", "--from", "dev/tool", "--to", "api.partner.example", "--port", "TCP/443"}, 0},
	{"check-tiers-domain-ip-json", "", []string{"check", "-f", "testdata/tiers.yaml", "--from", "dev/tool", "--to", "API.partner.example.=203.0.113.7", "--port", "TCP/443", "-o", "json"}, 0},
	{"check-tiers-domain-other", "", []string{"check", "-f", "testdata/tiers.yaml", "--from", "prod/web", "--to", "example.com", "--port", "TCP/443"}, 1},
	{"describe-guardrails-cnp-payments", "", []string{"describe", "-f", ex("cluster-guardrails"), "clusterpolicy", "protect-payments"}, 0},
	{"describe-guardrails-cnp-nodes", "", []string{"describe", "-f", ex("cluster-guardrails"), "cnp", "monitoring-to-nodes"}, 0},
	{"describe-guardrails-cnp-baseline", "", []string{"describe", "-f", ex("cluster-guardrails"), "clusterpolicy", "cnp/tenant-baseline"}, 0},
	{"describe-guardrails-pod-payments", "", []string{"describe", "-f", ex("cluster-guardrails"), "pod", "payments/payments-api-0"}, 0},
	{"describe-guardrails-pod-exporter", "", []string{"describe", "-f", ex("cluster-guardrails"), "pod", "monitoring/node-exporter-node-1"}, 0},
	{"describe-tiers-anp", "", []string{"describe", "-f", "testdata/tiers.yaml", "clusterpolicy", "anp/protect-db"}, 0},
	{"describe-tiers-cnp-tie", "", []string{"describe", "-f", "testdata/tiers.yaml", "clusterpolicy", "cnp/protect-db"}, 0},
	{"describe-tiers-banp", "", []string{"describe", "-f", "testdata/tiers.yaml", "banp", "default"}, 0},
	{"describe-tiers-domains", "", []string{"describe", "-f", "testdata/tiers.yaml", "clusterpolicy", "egress-allowlist"}, 0},
	{"describe-tiers-pod-tool", "", []string{"describe", "-f", "testdata/tiers.yaml", "pod", "dev/tool"}, 0},
	{"describe-tiers-ambiguous", "", []string{"describe", "-f", "testdata/tiers.yaml", "clusterpolicy", "protect-db"}, 2},
	// Errors: exit 2.
	{"error-invalid-manifest", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: db\n  namespace: prod\nspec:\n  podSelector: {}\n  ingress:\n  - ports:\n    - port: 80\n      endPort: 70\n",
		[]string{"matrix", "-f", "-"}, 2},
	{"error-no-input", "", []string{"check", "--from", "a/b", "--to", "a/c", "--port", "80"}, 2},
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			if !*update {
				t.Parallel()
			}
			stdout, stderr, code := run(t, tc.stdin, tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			golden(t, tc.name, "$ netfence "+strings.Join(tc.args, " ")+"\nexit code: "+strconv.Itoa(code)+"\n--- stdout\n"+stdout+"--- stderr\n"+stderr)
		})
	}
}

func TestGoldenFilesAreUsed(t *testing.T) {
	t.Parallel()
	want := map[string]bool{}
	for _, tc := range goldenCases {
		want[tc.name+".golden"] = true
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.golden"))
	for _, f := range files {
		if !want[filepath.Base(f)] {
			t.Errorf("%s belongs to no test case", f)
		}
	}
}

func TestCheckExitCodes(t *testing.T) {
	t.Parallel()
	tt := ex("three-tier")
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string // contained in stderr; "" means stderr is empty
	}{
		{[]string{"check", "-f", tt, "--from", "shop/api-5d8b6-klmno", "--to", "shop/db-0", "--port", "TCP/5432"}, 0, ""},
		{[]string{"check", "-f", tt, "--from", "shop/db-0", "--to", "shop/api-5d8b6-klmno", "--port", "TCP/8080"}, 1, ""},
		{[]string{"check", "-f", tt, "--from", "shop/db-0", "--to", "shop/api-5d8b6-klmno", "--port", "TCP/8080", "-o", "json"}, 1, ""},
		{[]string{"check", "-f", tt, "--from", "shop/db-0", "--to", "shop/api-5d8b6-klmno"}, 2, "--from, --to and --port are required"},
		{[]string{"check", "-f", tt, "--from", "shop/db-0", "--to", "shop/api-5d8b6-klmno", "--port", "ICMP/1"}, 2, "protocol must be TCP, UDP or SCTP"},
		{[]string{"check", "-f", tt, "--from", "shop/db-0", "--to", "shop/api-5d8b6-klmno", "--port", "TCP/0"}, 2, "port must be from 1 to 65535"},
		{[]string{"check", "-f", tt, "--from", "shop/db-0", "--to", "shop/api-5d8b6-klmno", "--port", "TCP/65536"}, 2, "port must be from 1 to 65535"},
		{[]string{"check", "-f", tt, "--from", "shop/nope", "--to", "shop/db-0", "--port", "TCP/80"}, 2, `--from: "shop/nope": no such pod`},
		{[]string{"check", "-f", tt, "--from", "shop/db-0", "--to", "nope", "--port", "TCP/80"}, 2, `--to: "nope": no such pod`},
		{[]string{"check", "-f", tt, "--from", "shop/db-0", "--to", "shop/api-5d8b6-klmno", "--port", "TCP/postgres"}, 2, `has no container port named "postgres"`},
		{[]string{"check", "-f", tt, "--from", "shop/db-0", "--to", "kube-system/coredns-6f6b6-uvwxy", "--port", "TCP/dns"}, 2, `has no container port named "dns" for TCP`},
		{[]string{"check", "-f", tt, "--from", "shop/db-0", "--to", "1.2.3.4", "--port", "TCP/http"}, 2, "a named port needs a destination pod"},
		{[]string{"check", "-f", tt, "--from", "shop/db-0", "--to", "shop/db-0", "--port", "80", "-o", "yaml"}, 2, `-o "yaml": must be text or json`},
		{[]string{"check", "-f", "does-not-exist.yaml", "--from", "a/b", "--to", "a/c", "--port", "80"}, 2, "does-not-exist.yaml"},
		{[]string{"check", "-f", tt, "--from", "shop/db-0", "--to", "shop/db-0", "--port", "80", "extra"}, 2, "unknown command"},
		{[]string{"matrix", "-f", tt, "-o", "yaml"}, 2, `-o "yaml": must be table, json, csv or summary`},
		{[]string{"matrix", "-f", tt, "--ports", "TCP/x"}, 2, "--ports"},
		{[]string{"matrix"}, 2, "no input"},
		{[]string{"describe", "-f", tt, "service", "shop/api"}, 2, `describe "service": must be policy or pod`},
		{[]string{"describe", "-f", tt, "policy", "shop/nope"}, 2, "no NetworkPolicy shop/nope"},
		{[]string{"describe", "-f", tt, "pod", "nope"}, 2, "no pod default/nope"},
		{[]string{"describe", "-f", tt, "pod"}, 2, "accepts 2 arg(s)"},
		{[]string{"nonsense"}, 2, "unknown command"},
	} {
		_, stderr, code := run(t, "", tc.args...)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d (stderr %q)", tc.args, code, tc.code, stderr)
		}
		if tc.stderr == "" && stderr != "" || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("%v: stderr %q, want it to contain %q", tc.args, stderr, tc.stderr)
		}
		if tc.code == 2 && !strings.HasPrefix(stderr, "error: ") {
			t.Errorf("%v: stderr %q, want an error line", tc.args, stderr)
		}
	}
}

func TestClusterPolicyExitCodes(t *testing.T) {
	t.Parallel()
	tiers := "testdata/tiers.yaml"
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"describe", "-f", tiers, "clusterpolicy", "nope"}, 2, `no cluster policy named "nope"`},
		{[]string{"describe", "-f", tiers, "clusterpolicy", "cnp/nope"}, 2, "no cluster policy cnp/nope"},
		{[]string{"describe", "-f", tiers, "clusterpolicy", "netpol/protect-db"}, 2, "the kind must be cnp, anp or banp"},
		{[]string{"describe", "-f", tiers, "anp", "freeze-dev"}, 2, "no cluster policy anp/freeze-dev"},
		{[]string{"describe", "-f", tiers, "cnp", "freeze-dev"}, 0, "warning: cnp/freeze-dev and cnp/protect-db"},
		{[]string{"describe", "-f", tiers, "clusterpolicy", "freeze-dev"}, 0, "warning: cnp/freeze-dev and cnp/protect-db"},
		{[]string{"check", "-f", tiers, "--from", "dev/tool", "--to", "example.com=10.244.0.10", "--port", "TCP/80"}, 2, "is the address of pod prod/web"},
		{[]string{"check", "-f", tiers, "--from", "dev/tool", "--to", "example.com=nope", "--port", "TCP/80"}, 2, `"nope" is not an IP address`},
		{[]string{"check", "-f", tiers, "--from", "dev/tool", "--to", "-bad.example=1.2.3.4", "--port", "TCP/80"}, 2, "not a domain name"},
		{[]string{"check", "-f", tiers, "--from", "dev/tool", "--to", "example.com", "--port", "TCP/http"}, 2, "a named port needs a destination pod"},
		{[]string{"check", "-f", tiers, "--from", "dev/tool", "--to", "nodots", "--port", "TCP/80"}, 2, `"nodots": no such pod`},
	} {
		_, stderr, code := run(t, "", tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q in stderr", tc.args, code, stderr, tc.code, tc.stderr)
		}
	}
}

// TestMatrixJSONTiersMatchCheck: the matrix's per-cell verdict, layer and
// rule (by classes) equal what check reports for the pair (Set.Evaluate).
func TestMatrixJSONTiersMatchCheck(t *testing.T) {
	t.Parallel()
	for _, src := range []string{ex("cluster-guardrails"), "testdata/tiers.yaml"} {
		stdout, stderr, code := run(t, "", "matrix", "-f", src, "-o", "json", "--ports", "TCP/8080,TCP/9100,UDP/53")
		if code != 0 {
			t.Fatalf("matrix: exit %d: %s", code, stderr)
		}
		var m struct {
			Results []struct {
				From, To, Protocol                               string
				Port                                             int
				Allowed, Egress, Ingress                         bool
				EgressTier, IngressTier, EgressRule, IngressRule string
			}
		}
		if err := json.Unmarshal([]byte(stdout), &m); err != nil {
			t.Fatal(err)
		}
		// check -o json's fields, from the same input loaded once.
		flags := &sourceFlags{files: []string{src}}
		set, err := flags.load(context.Background(), &streams{in: strings.NewReader(""), out: io.Discard, err: io.Discard})
		if err != nil {
			t.Fatal(err)
		}
		tiers := 0
		for _, r := range m.Results {
			if r.From == r.To {
				continue
			}
			res, err := analysis.Check(set, analysis.CheckRequest{From: r.From, To: r.To, Port: r.Protocol + "/" + strconv.Itoa(r.Port)})
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := res.WriteJSON(&buf); err != nil {
				t.Fatal(err)
			}
			var c struct {
				Allowed         bool
				Egress, Ingress struct {
					Allowed   bool
					Layer     string
					DecidedBy *struct {
						Policy string
						Rule   int
					}
				}
			}
			if err := json.Unmarshal(buf.Bytes(), &c); err != nil {
				t.Fatalf("check %s -> %s: %v", r.From, r.To, err)
			}
			rule := func(d *struct {
				Policy string
				Rule   int
			}, dir string) string {
				if d == nil {
					return ""
				}
				return d.Policy + " spec." + dir + "[" + strconv.Itoa(d.Rule) + "]"
			}
			if c.Allowed != r.Allowed || c.Egress.Allowed != r.Egress || c.Ingress.Allowed != r.Ingress ||
				c.Egress.Layer != r.EgressTier || c.Ingress.Layer != r.IngressTier ||
				rule(c.Egress.DecidedBy, "egress") != r.EgressRule || rule(c.Ingress.DecidedBy, "ingress") != r.IngressRule {
				t.Errorf("%s: %s -> %s %s/%d: matrix %+v, check %+v", src, r.From, r.To, r.Protocol, r.Port, r, c)
			}
			if r.EgressTier != "" || r.IngressTier != "" {
				tiers++
			}
		}
		if tiers == 0 {
			t.Errorf("%s: no cell with a tier", src)
		}
	}
}

func TestStdinAndDirectories(t *testing.T) {
	t.Parallel()
	// The same cluster from a directory, from files, and from stdin.
	dir := ex("three-tier")
	cluster, _ := os.ReadFile(filepath.Join(dir, "cluster.yaml"))
	policies, _ := os.ReadFile(filepath.Join(dir, "policies.yaml"))
	a, _, codeA := run(t, "", "matrix", "-f", dir, "-o", "csv")
	b, _, codeB := run(t, "", "matrix", "-f", filepath.Join(dir, "cluster.yaml"), "-f", filepath.Join(dir, "policies.yaml"), "-o", "csv")
	c, _, codeC := run(t, string(cluster)+"\n---\n"+string(policies), "matrix", "-f", "-", "-o", "csv")
	if codeA != 0 || codeB != 0 || codeC != 0 || a != b || a != c || a == "" {
		t.Errorf("directory, files and stdin disagree (exit %d %d %d)", codeA, codeB, codeC)
	}
}

func TestVerboseListsSkipped(t *testing.T) {
	t.Parallel()
	in := "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  namespace: a\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: a\nstatus:\n  phase: Running\n  podIP: 10.0.0.1\n" +
		"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n" // defined: no warning
	_, stderr, code := run(t, in, "matrix", "-f", "-", "-v", "-o", "summary")
	if code != 0 || stderr != "skipped <stdin>: document 1 (Service a/s): kind Service (v1) is not used\n" {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if _, stderr, _ := run(t, in, "matrix", "-f", "-", "-o", "summary"); stderr != "" {
		t.Errorf("without -v: stderr %q", stderr)
	}
}

// TestMatrixJSONContract pins the JSON form: exactly these keys, results
// ordered by port, source, destination, one per pair and port.
func TestMatrixJSONContract(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := run(t, "", "matrix", "-f", "testdata/edge.yaml", "-o", "json", "--ports", "TCP/8080,UDP/53")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(stdout), &top); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	var topKeys []string
	for k := range top {
		topKeys = append(topKeys, k)
	}
	sort.Strings(topKeys)
	if !reflect.DeepEqual(topKeys, []string{"inactive", "pods", "ports", "results"}) {
		t.Errorf("top-level keys %v, want inactive, pods, ports, results", topKeys)
	}
	var doc struct {
		Ports    []string                     `json:"ports"`
		Pods     []string                     `json:"pods"`
		Results  []map[string]json.RawMessage `json:"results"`
		Inactive []map[string]string          `json:"inactive"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(doc.Ports, []string{"TCP/8080", "UDP/53"}) {
		t.Errorf("ports %v", doc.Ports)
	}
	if !reflect.DeepEqual(doc.Pods, []string{"edge/cli", "edge/node-agent", "edge/web"}) {
		t.Errorf("pods %v", doc.Pods)
	}
	if !reflect.DeepEqual(doc.Inactive, []map[string]string{
		{"pod": "edge/done", "reason": "is Succeeded, not Running"},
		{"pod": "edge/pending", "reason": "has no IP"},
	}) {
		t.Errorf("inactive %v", doc.Inactive)
	}
	if len(doc.Results) != 2*3*3 {
		t.Fatalf("%d results, want 18", len(doc.Results))
	}
	type result struct {
		From, To, Protocol       string
		Port                     int
		Allowed, Ingress, Egress bool
		Reason                   string
	}
	i := 0
	for _, port := range []struct {
		proto string
		n     int
	}{{"TCP", 8080}, {"UDP", 53}} {
		for _, from := range doc.Pods {
			for _, to := range doc.Pods {
				raw := doc.Results[i]
				i++
				var keys []string
				for k := range raw {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				want := []string{"allowed", "egress", "from", "ingress", "port", "protocol", "to"}
				if from == to {
					want = []string{"allowed", "egress", "from", "ingress", "port", "protocol", "reason", "to"}
				}
				if !reflect.DeepEqual(keys, want) {
					t.Errorf("result %d keys %v, want %v", i-1, keys, want)
				}
				b, _ := json.Marshal(raw)
				var r result
				if err := json.Unmarshal(b, &r); err != nil {
					t.Fatalf("result %d: %v", i-1, err)
				}
				if r.From != from || r.To != to || r.Protocol != port.proto || r.Port != port.n {
					t.Errorf("result %d is %s -> %s %s/%d, want %s -> %s %s/%d", i-1, r.From, r.To, r.Protocol, r.Port, from, to, port.proto, port.n)
				}
				if from == to && (r.Reason != "same pod" || !r.Allowed || !r.Ingress || !r.Egress) {
					t.Errorf("self result %+v", r)
				}
				if r.Allowed != (r.Ingress && r.Egress) {
					t.Errorf("result %+v: allowed is not ingress and egress", r)
				}
			}
		}
	}
	// The verdicts, by hand (see testdata/edge.yaml): cli may send only to
	// fd00::/64 on 8000-8080; web accepts cli on http (8080) and
	// 192.168.1.0/24 on 8080.
	denied := map[string]bool{}
	for _, raw := range doc.Results {
		b, _ := json.Marshal(raw)
		var r result
		json.Unmarshal(b, &r)
		if !r.Allowed {
			denied[r.From+" "+r.To+" "+r.Protocol+"/"+strconv.Itoa(r.Port)] = true
		}
	}
	wantDenied := map[string]bool{
		"edge/cli edge/node-agent TCP/8080": true, // 192.168.1.5 is not in fd00::/64
		"edge/cli edge/node-agent UDP/53":   true,
		"edge/cli edge/web UDP/53":          true, // egress: port range is TCP 8000-8080; ingress: only TCP
		"edge/node-agent edge/web UDP/53":   true,
		"edge/web edge/web UDP/53":          false,
	}
	for k, v := range wantDenied {
		if !v {
			delete(wantDenied, k)
		}
	}
	if !reflect.DeepEqual(denied, wantDenied) {
		t.Errorf("denied %v\nwant %v", denied, wantDenied)
	}
}

// TestCheckJSONForm pins the keys of `check -o json`.
func TestCheckJSONForm(t *testing.T) {
	t.Parallel()
	stdout, _, code := run(t, "", "check", "-f", ex("three-tier"), "--from", "shop/frontend-7c9f4-abcde", "--to", "shop/api-5d8b6-klmno", "--port", "TCP/http", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var r struct {
		Allowed  bool   `json:"allowed"`
		Protocol string `json:"protocol"`
		Port     int    `json:"port"`
		PortName string `json:"portName"`
		From     struct{ Pod, IP string }
		To       struct{ Pod, IP string }
		Egress   struct {
			Subject, Isolated, Allowed bool
			Policies, AllowedBy        []string
		}
		Ingress struct {
			Subject, Isolated, Allowed bool
			Policies, AllowedBy        []string
		}
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	if !r.Allowed || r.Protocol != "TCP" || r.Port != 8080 || r.PortName != "http" ||
		r.From.Pod != "shop/frontend-7c9f4-abcde" || r.From.IP != "10.244.1.10" || r.To.Pod != "shop/api-5d8b6-klmno" || r.To.IP != "10.244.1.20" {
		t.Errorf("result %+v", r)
	}
	if !reflect.DeepEqual(r.Egress.Policies, []string{"shop/allow-dns-egress", "shop/default-deny-all", "shop/frontend"}) ||
		!reflect.DeepEqual(r.Egress.AllowedBy, []string{"shop/frontend spec.egress[0].to[0].ports[0]"}) ||
		!reflect.DeepEqual(r.Ingress.Policies, []string{"shop/api", "shop/default-deny-all"}) ||
		!reflect.DeepEqual(r.Ingress.AllowedBy, []string{"shop/api spec.ingress[0].from[0].ports[0]"}) {
		t.Errorf("sides %+v %+v", r.Egress, r.Ingress)
	}
}

// TestSharedAddressChecksAgree checks that a pod holding an address
// another running pod holds gets one verdict however it is named: by
// either pod or by the address, as source and as destination, on every
// port.
func TestSharedAddressChecksAgree(t *testing.T) {
	t.Parallel()
	f := "testdata/shared-address.yaml"
	for _, port := range []string{"TCP/8080", "TCP/9090", "UDP/53"} {
		for _, other := range []string{"shop/api", "shop/frontend", "shop/web-c", "ghost/lone", "8.8.8.8"} {
			for _, asSource := range []bool{true, false} {
				var codes []int
				for _, end := range []string{"shop/web-a", "shop/web-b", "10.244.1.5"} {
					args := []string{"check", "-f", f, "--from", end, "--to", other, "--port", port, "-o", "json"}
					if !asSource {
						args[4], args[6] = other, end
					}
					stdout, stderr, code := run(t, "", args...)
					var res struct {
						Allowed  bool     `json:"allowed"`
						Warnings []string `json:"warnings"`
					}
					if err := json.Unmarshal([]byte(stdout), &res); err != nil {
						t.Fatalf("%v: %v (stderr %q)", args, err, stderr)
					}
					if res.Allowed || code != 1 || len(res.Warnings) != 2 || !strings.Contains(stderr, "warning: address 10.244.1.5 is held by two running pods") {
						t.Errorf("%v: allowed %v, exit %d, warnings %q, stderr %q: want denied, two warnings", args, res.Allowed, code, res.Warnings, stderr)
					}
					codes = append(codes, code)
				}
				if codes[0] != codes[1] || codes[0] != codes[2] {
					t.Errorf("%s %s (source %v): exit codes %v disagree", other, port, asSource, codes)
				}
			}
		}
	}
	// Without warnings, the JSON has no "warnings" key.
	stdout, _, _ := run(t, "", "check", "-f", "testdata/edge.yaml", "--from", "edge/cli", "--to", "edge/web", "--port", "TCP/8080", "-o", "json")
	if strings.Contains(stdout, "warnings") {
		t.Errorf("a warning-free check has warnings in its JSON:\n%s", stdout)
	}
}
