package crd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// upstreamInvalid holds what netfence expects each of the module's invalid
// examples to be rejected for (the files carry no expected messages, only
// comments). Files not listed must merely fail.
var upstreamInvalid = map[string]string{
	"cidr-invalid.yaml": `spec.egress[0].to[0].networks[0]: Invalid value: "10.0.0.300/24": Invalid CIDR format provided`,
	"egress-peer-namedport-conflict.experimental.yaml": `spec.egress[0]: Invalid value: networks/nodes/domainNames peer cannot be set with namedPorts`,
	"invalid-ingress-action.yaml":                      `spec.ingress[0].action: Unsupported value: "Invalid"`,
	"port-range-invalid-equal.yaml":                    `spec.egress[0].protocols[0].tcp.destinationPort.range: Invalid value: Start port must be less than End port`,
	"port-range-invalid-greater.yaml":                  `spec.egress[0].protocols[0].tcp.destinationPort.range: Invalid value: Start port must be less than End port`,
}

type upstreamDoc struct {
	name string // file, plus " #n" for the n-th document of a multi-document file
	file string
	obj  map[string]any
}

// upstreamDocs reads every document of pkg/crdtest/testdata/<kind>/*.yaml of
// the network-policy-api module netfence builds with.
func upstreamDocs(t testing.TB, dir, kind string) []upstreamDoc {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "pkg", "crdtest", "testdata", kind, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/%s in %s (%v)", kind, dir, err)
	}
	var docs []upstreamDoc
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		var objs []map[string]any
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			obj, err := DecodeYAML(doc)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if obj != nil {
				objs = append(objs, obj)
			}
		}
		for i, obj := range objs {
			name := filepath.Base(f)
			if len(objs) > 1 {
				name += " #" + string(rune('1'+i))
			}
			docs = append(docs, upstreamDoc{name, filepath.Base(f), obj})
		}
	}
	return docs
}

func TestUpstreamTestdata(t *testing.T) {
	dir := moduleDir(t, npaModule, "v0.3.0")
	v := newValidator(t)
	ctx := context.Background()
	for _, d := range upstreamDocs(t, dir, "valid") {
		t.Run("valid/"+d.name, func(t *testing.T) {
			if _, errs := v.Validate(ctx, d.obj); len(errs) > 0 {
				t.Errorf("want valid, got %v", errs)
			}
		})
	}
	for _, d := range upstreamDocs(t, dir, "invalid") {
		t.Run("invalid/"+d.name, func(t *testing.T) {
			_, errs := v.Validate(ctx, d.obj)
			if len(errs) == 0 {
				t.Fatal("want errors, got none")
			}
			if want, ok := upstreamInvalid[d.file]; ok && !containsErr(errs.ToAggregate().Errors(), want) {
				t.Errorf("want an error containing %q, got %v", want, errs)
			}
		})
	}
}

func containsErr(errs []error, want string) bool {
	for _, e := range errs {
		if strings.Contains(e.Error(), want) {
			return true
		}
	}
	return false
}

const cnpHead = `apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata:
  name: test
spec:
  tier: Admin
  priority: 10
  subject:
    namespaces: {}
`

const anpHead = `apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata:
  name: test
spec:
  priority: 10
  subject:
    namespaces: {}
`

const banpHead = `apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata:
  name: default
spec:
  subject:
    namespaces: {}
`

func TestValidate(t *testing.T) {
	v := newValidator(t)
	cases := []struct {
		name string
		yaml string
		want []string // substrings, each of some error; none: valid
	}{
		{
			name: "CNP CIDR with host bits",
			yaml: cnpHead + `
  egress:
  - action: Accept
    to: [{networks: ["10.0.0.1/8"]}]`,
			want: []string{`spec.egress[0].to[0].networks[0]: Invalid value: "10.0.0.1/8": Invalid CIDR format provided`},
		},
		{
			name: "CNP IPv6 CIDR with host bits",
			yaml: cnpHead + `
  egress:
  - action: Deny
    to: [{networks: ["10.0.0.0/8", "2001:db8::1/32"]}]`,
			want: []string{`spec.egress[0].to[0].networks[1]: Invalid value: "2001:db8::1/32": Invalid CIDR format provided`},
		},
		{
			name: "CNP not a CIDR",
			yaml: cnpHead + `
  egress:
  - action: Deny
    to: [{networks: ["10.0.0.1"]}]`,
			want: []string{`spec.egress[0].to[0].networks[0]: Invalid value: "10.0.0.1": Invalid CIDR format provided`},
		},
		{
			name: "CNP duplicate networks (listType set)",
			yaml: cnpHead + `
  egress:
  - action: Deny
    to: [{networks: ["10.0.0.0/8", "10.0.0.0/8"]}]`,
			want: []string{`spec.egress[0].to[0].networks[1]: Duplicate value: "10.0.0.0/8"`},
		},
		{
			name: "CNP range start == end",
			yaml: cnpHead + `
  ingress:
  - action: Accept
    from: [{namespaces: {}}]
    protocols: [{udp: {destinationPort: {range: {start: 53, end: 53}}}}]`,
			want: []string{`spec.ingress[0].protocols[0].udp.destinationPort.range: Invalid value: Start port must be less than End port`},
		},
		{
			name: "CNP tcp: {}",
			yaml: cnpHead + `
  egress:
  - action: Accept
    to: [{namespaces: {}}]
    protocols: [{tcp: {}}]`,
			want: []string{`spec.egress[0].protocols[0].tcp: Invalid value: 0: spec.egress[0].protocols[0].tcp in body should have at least 1 properties`},
		},
		{
			name: "CNP two protocols in one entry",
			yaml: cnpHead + `
  egress:
  - action: Accept
    to: [{namespaces: {}}]
    protocols: [{tcp: {destinationPort: {number: 80}}, udp: {destinationPort: {number: 80}}}]`,
			want: []string{`spec.egress[0].protocols[0]: Too many: 2: must have at most 1 item`},
		},
		{
			name: "CNP port 0",
			yaml: cnpHead + `
  egress:
  - action: Accept
    to: [{namespaces: {}}]
    protocols: [{sctp: {destinationPort: {number: 0}}}]`,
			want: []string{`spec.egress[0].protocols[0].sctp.destinationPort.number: Invalid value: 0: spec.egress[0].protocols[0].sctp.destinationPort.number in body should be greater than or equal to 1`},
		},
		{
			name: "CNP priority 1001",
			yaml: strings.Replace(cnpHead, "priority: 10", "priority: 1001", 1),
			want: []string{`spec.priority: Invalid value: 1001: spec.priority in body should be less than or equal to 1000`},
		},
		{
			name: "CNP priority 1000 and 0 tier Baseline",
			yaml: strings.Replace(strings.Replace(cnpHead, "priority: 10", "priority: 1000", 1), "Admin", "Baseline", 1),
		},
		{
			name: "CNP bad tier",
			yaml: strings.Replace(cnpHead, "tier: Admin", "tier: admin", 1),
			want: []string{`spec.tier: Unsupported value: "admin": supported values: "Admin", "Baseline"`},
		},
		{
			name: "CNP destinationNamedPort with networks peer (CEL)",
			yaml: cnpHead + `
  egress:
  - action: Accept
    to: [{namespaces: {}}, {networks: ["10.0.0.0/8"]}]
    protocols: [{destinationNamedPort: http}]`,
			want: []string{`spec.egress[0]: Invalid value: networks/nodes/domainNames peer cannot be set with namedPorts since there are no namedPorts for networks/nodes/domainNames`},
		},
		{
			name: "CNP destinationNamedPort with nodes peer (CEL)",
			yaml: cnpHead + `
  egress:
  - action: Accept
    to: [{nodes: {}}]
    protocols: [{destinationNamedPort: http}]`,
			want: []string{`spec.egress[0]: Invalid value: networks/nodes/domainNames peer cannot be set`},
		},
		{
			name: "CNP destinationNamedPort in ingress",
			yaml: cnpHead + `
  ingress:
  - action: Accept
    from: [{pods: {podSelector: {}}}]
    protocols: [{destinationNamedPort: http}]`,
		},
		{
			name: "CNP unknown field",
			yaml: cnpHead + `
  egress:
  - action: Accept
    to: [{namespaces: {}, networkz: ["10.0.0.0/8"]}]`,
			want: []string{`spec.egress[0].to[0].networkz: Forbidden: unknown field`},
		},
		{
			name: "CNP misspelt peer: unknown field and empty peer",
			yaml: cnpHead + `
  egress:
  - action: Accept
    to: [{network: ["10.0.0.0/8"]}]`,
			want: []string{
				`spec.egress[0].to[0].network: Forbidden: unknown field`,
				`spec.egress[0].to[0]: Invalid value: 0: spec.egress[0].to[0] in body should have at least 1 properties`,
			},
		},
		{
			name: "CNP ingress peer has no networks",
			yaml: cnpHead + `
  ingress:
  - action: Deny
    from: [{networks: ["10.0.0.0/8"]}]`,
			want: []string{`spec.ingress[0].from[0].networks: Forbidden: unknown field`},
		},
		{
			name: "CNP Deny with domainNames is accepted by the CRD (netfence's compiler rejects it)",
			yaml: cnpHead + `
  egress:
  - action: Deny
    to: [{domainNames: ["example.com", "*.example.org"]}]`,
		},
		{
			name: "CNP Pass with domainNames is accepted by the CRD",
			yaml: cnpHead + `
  egress:
  - action: Pass
    to: [{domainNames: ["example.com"]}]`,
		},
		{
			name: "CNP bad domain name",
			yaml: cnpHead + `
  egress:
  - action: Accept
    to: [{domainNames: ["example.*.com"]}]`,
			want: []string{`spec.egress[0].to[0].domainNames[0]: Invalid value: "example.*.com": spec.egress[0].to[0].domainNames[0] in body should match`},
		},
		{
			name: "CNP selector operator is not validated by the CRD",
			yaml: cnpHead + `
  egress:
  - action: Accept
    to: [{namespaces: {matchExpressions: [{key: a, operator: Foo}]}}]`,
		},
		{
			name: "CNP subject with both namespaces and pods",
			yaml: strings.Replace(cnpHead, "    namespaces: {}\n", "    namespaces: {}\n    pods: {podSelector: {}}\n", 1),
			want: []string{`spec.subject: Too many: 2: must have at most 1 item`},
		},
		{
			name: "CNP pods subject without podSelector: required, CEL skipped",
			yaml: strings.Replace(cnpHead, "    namespaces: {}\n", "    pods: {namespaceSelector: {}}\n", 1) + `
  egress:
  - action: Accept
    to: [{networks: ["10.0.0.1/8"]}]`,
			want: []string{
				`spec.subject.pods.podSelector: Required value`,
				`spec.subject.pods.podSelector: Invalid value: some validation rules were not checked because the object was invalid`,
			},
		},
		{
			name: "CNP without spec",
			yaml: "apiVersion: policy.networking.k8s.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: x}\n",
			want: []string{`spec: Required value`},
		},
		{
			name: "CNP v1alpha2 is served with the same schema",
			yaml: strings.Replace(cnpHead, "v1beta1", "v1alpha2", 1) + `
  egress:
  - action: Accept
    to: [{networks: ["10.0.0.1/8"]}]`,
			want: []string{`spec.egress[0].to[0].networks[0]: Invalid value: "10.0.0.1/8": Invalid CIDR format provided`},
		},
		{
			name: "CNP namespace set",
			yaml: strings.Replace(cnpHead, "  name: test\n", "  name: test\n  namespace: default\n", 1),
			want: []string{`metadata.namespace: Forbidden: ClusterNetworkPolicy is cluster-scoped`},
		},
		{
			name: "CNP without name",
			yaml: strings.Replace(cnpHead, "  name: test\n", "  labels: {a: b}\n", 1),
			want: []string{`metadata.name: Required value: name is required`},
		},
		{
			name: "CNP generateName does not replace name",
			yaml: strings.Replace(cnpHead, "  name: test\n", "  generateName: test-\n", 1),
			want: []string{`metadata.name: Required value: name is required`},
		},
		{
			name: "CNP name not a DNS subdomain",
			yaml: strings.Replace(cnpHead, "name: test", "name: Test_1", 1),
			want: []string{`metadata.name: Invalid value: "Test_1": a lowercase RFC 1123 subdomain must consist of`},
		},
		{
			name: "CNP bad label value",
			yaml: strings.Replace(cnpHead, "  name: test\n", "  name: test\n  labels: {a: 'b c'}\n", 1),
			want: []string{`metadata.labels: Invalid value: "b c"`},
		},
		{
			name: "CNP unknown metadata field",
			yaml: strings.Replace(cnpHead, "  name: test\n", "  name: test\n  label: {a: b}\n", 1),
			want: []string{`metadata.label: Forbidden: unknown field`},
		},
		{
			name: "CNP status is dropped as on create",
			yaml: cnpHead + "status: {conditions: [{type: 1}]}\n",
		},
		{
			name: "CNP unknown field in status",
			yaml: cnpHead + "status: {condition: []}\n",
			want: []string{`status.condition: Forbidden: unknown field`},
		},
		{
			name: "BANP without name",
			yaml: strings.Replace(banpHead, "  name: default\n", "  labels: {a: b}\n", 1),
			want: []string{
				`metadata.name: Required value: name is required`,
				`metadata.name: Invalid value: some validation rules were not checked`,
			},
		},
		{
			name: "CNP metadata of the wrong type",
			yaml: strings.Replace(cnpHead, "  name: test\n", "  name: test\n  labels: [a]\n", 1),
			want: []string{`metadata: Invalid value:`},
		},
		{
			name: "ANP without metadata",
			yaml: strings.Replace(anpHead, "metadata:\n  name: test\n", "", 1),
			want: []string{`metadata: Required value`, `metadata.name: Required value: name is required`},
		},
		{
			name: "ANP nodes egress peer",
			yaml: anpHead + `
  egress:
  - action: Allow
    to: [{nodes: {matchLabels: {node-role.kubernetes.io/control-plane: ""}}}]
    ports: [{portNumber: {port: 6443}}]`,
		},
		{
			name: "ANP named port with nodes peer (CEL)",
			yaml: anpHead + `
  egress:
  - action: Allow
    to: [{nodes: {}}]
    ports: [{namedPort: https}]`,
			want: []string{`spec.egress[0]: Invalid value: networks/nodes/domainNames peer cannot be set with namedPorts`},
		},
		{
			name: "ANP Deny with domainNames is accepted by the CRD",
			yaml: anpHead + `
  egress:
  - action: Deny
    to: [{domainNames: ["example.com"]}]`,
		},
		{
			name: "ANP CIDR with host bits is accepted by the v0.1.7 CRD",
			yaml: anpHead + `
  egress:
  - action: Deny
    to: [{networks: ["10.0.0.1/8"]}]`,
		},
		{
			name: "ANP range start == end is accepted by the v1alpha1 CRD",
			yaml: anpHead + `
  egress:
  - action: Deny
    to: [{networks: ["10.0.0.0/8"]}]
    ports: [{portRange: {start: 80, end: 80}}]`,
		},
		{
			name: "ANP action Accept is not v1alpha1",
			yaml: anpHead + `
  ingress:
  - action: Accept
    from: [{namespaces: {}}]`,
			want: []string{`spec.ingress[0].action: Unsupported value: "Accept": supported values: "Allow", "Deny", "Pass"`},
		},
		{
			name: "ANP priority 1001",
			yaml: strings.Replace(anpHead, "priority: 10", "priority: 1001", 1),
			want: []string{`spec.priority: Invalid value: 1001`},
		},
		{
			name: "ANP namespace set",
			yaml: strings.Replace(anpHead, "  name: test\n", "  name: test\n  namespace: x\n", 1),
			want: []string{`metadata.namespace: Forbidden: AdminNetworkPolicy is cluster-scoped`},
		},
		{
			name: "BANP named default",
			yaml: banpHead + `
  egress:
  - action: Deny
    to: [{nodes: {}}, {networks: ["0.0.0.0/0"]}]`,
		},
		{
			name: "BANP not named default (CEL on metadata.name)",
			yaml: strings.Replace(banpHead, "name: default", "name: baseline", 1),
			want: []string{`metadata.name: Invalid value: "baseline": Only one baseline admin network policy with metadata.name="default" can be created in the cluster`},
		},
		{
			name: "BANP has no domainNames and no Pass",
			yaml: banpHead + `
  egress:
  - action: Pass
    to: [{domainNames: ["example.com"]}]`,
			want: []string{
				`spec.egress[0].to[0].domainNames: Forbidden: unknown field`,
				`spec.egress[0].action: Unsupported value: "Pass"`,
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			obj, err := DecodeYAML([]byte(c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			out, errs := v.Validate(context.Background(), obj)
			if out == nil {
				t.Error("no defaulted JSON")
			}
			if len(c.want) == 0 {
				if len(errs) > 0 {
					t.Errorf("want valid, got %v", errs)
				}
				return
			}
			for _, w := range c.want {
				if !containsErr(errs.ToAggregate().Errors(), w) {
					t.Errorf("want an error containing %q, got %v", w, errs)
				}
			}
		})
	}
}

func TestDefaulting(t *testing.T) {
	v := newValidator(t)
	obj, err := DecodeYAML([]byte(anpHead + `
  egress:
  - action: Allow
    to: [{namespaces: {}}]
    ports:
    - portNumber: {port: 53}
    - portNumber: {port: 53, protocol: UDP}
    - portRange: {start: 1000, end: 2000}
    - namedPort: dns`))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := json.Marshal(obj)
	out, errs := v.Validate(context.Background(), obj)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if after, _ := json.Marshal(obj); !bytes.Equal(before, after) {
		t.Error("Validate modified its input")
	}
	var got struct {
		Spec struct {
			Egress []struct {
				Ports []map[string]any `json:"ports"`
			} `json:"egress"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	ports := got.Spec.Egress[0].Ports
	want := []string{"TCP", "UDP", "TCP"}
	for i, key := range []string{"portNumber", "portNumber", "portRange"} {
		if p := ports[i][key].(map[string]any)["protocol"]; p != want[i] {
			t.Errorf("ports[%d].%s.protocol = %v, want %s", i, key, p, want[i])
		}
	}
	if !reflect.DeepEqual(ports[3], map[string]any{"namedPort": "dns"}) {
		t.Errorf("namedPort entry changed: %v", ports[3])
	}
}

func TestPruningInOutput(t *testing.T) {
	v := newValidator(t)
	obj, err := DecodeYAML([]byte(cnpHead + "  bogus: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	out, errs := v.Validate(context.Background(), obj)
	if len(errs) != 1 || errs[0].Field != "spec.bogus" {
		t.Errorf("errs = %v, want one for spec.bogus", errs)
	}
	if bytes.Contains(out, []byte("bogus")) {
		t.Errorf("unknown field not pruned from the output: %s", out)
	}
}

func TestUnknownType(t *testing.T) {
	v := newValidator(t)
	for _, c := range []struct{ apiVersion, kind, want string }{
		{"policy.networking.k8s.io/v1alpha1", "ClusterNetworkPolicy", `apiVersion: Unsupported value: "policy.networking.k8s.io/v1alpha1": supported values: "policy.networking.k8s.io/v1alpha2", "policy.networking.k8s.io/v1beta1"`},
		{"networking.k8s.io/v1", "NetworkPolicy", `kind: Unsupported value: "NetworkPolicy": supported values: "AdminNetworkPolicy", "BaselineAdminNetworkPolicy", "ClusterNetworkPolicy"`},
	} {
		out, errs := v.Validate(context.Background(), map[string]any{"apiVersion": c.apiVersion, "kind": c.kind})
		if out != nil || len(errs) != 1 || errs[0].Error() != c.want {
			t.Errorf("Validate(%s %s) = %s, %v; want nil, %s", c.apiVersion, c.kind, out, errs, c.want)
		}
	}
}

func TestGoIntegersAndBadTypes(t *testing.T) {
	v := newValidator(t)
	obj := map[string]any{
		"apiVersion": "policy.networking.k8s.io/v1alpha1",
		"kind":       "AdminNetworkPolicy",
		"metadata":   map[string]any{"name": "x"},
		"spec": map[string]any{
			"priority": 3, // int, not int64
			"subject":  map[string]any{"namespaces": map[string]any{}},
		},
	}
	if _, errs := v.Validate(context.Background(), obj); len(errs) > 0 {
		t.Errorf("int priority: %v", errs)
	}
	obj["spec"].(map[string]any)["priority"] = uint8(3)
	if _, errs := v.Validate(context.Background(), obj); len(errs) != 1 || !strings.Contains(errs[0].Error(), "unsupported Go type uint8") {
		t.Errorf("uint8 priority: %v", errs)
	}
}

func TestDecode(t *testing.T) {
	obj, err := DecodeYAML([]byte("a: 1\nb: 1.5\nc: [2]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": int64(1), "b": 1.5, "c": []any{int64(2)}}
	if !reflect.DeepEqual(obj, want) {
		t.Errorf("DecodeYAML = %#v, want %#v", obj, want)
	}
	if _, err := DecodeJSON([]byte(`[1]`)); err == nil || !strings.Contains(err.Error(), "expected an object, got an array") {
		t.Errorf("DecodeJSON([1]) error = %v", err)
	}
	if _, err := DecodeYAML([]byte("a: [")); err == nil {
		t.Error("DecodeYAML of broken YAML: no error")
	}
}

// TestConcurrent shares one Validator between goroutines (run with -race).
func TestConcurrent(t *testing.T) {
	v := newValidator(t)
	docs := []string{
		cnpHead + "  egress: [{action: Accept, to: [{networks: [10.0.0.1/8]}]}]\n",
		anpHead + "  egress: [{action: Allow, to: [{nodes: {}}], ports: [{portNumber: {port: 1}}]}]\n",
		banpHead,
	}
	want := make([]string, len(docs))
	for i, d := range docs {
		obj, err := DecodeYAML([]byte(d))
		if err != nil {
			t.Fatal(err)
		}
		out, errs := v.Validate(context.Background(), obj)
		want[i] = string(out) + fmt.Sprint(errs)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				d := i % len(docs)
				obj, err := DecodeYAML([]byte(docs[d]))
				if err != nil {
					t.Error(err)
					return
				}
				out, errs := v.Validate(context.Background(), obj)
				if got := string(out) + fmt.Sprint(errs); got != want[d] {
					t.Errorf("doc %d: got %s, want %s", d, got, want[d])
				}
			}
		}()
	}
	wg.Wait()
}

func TestNewValidatorTime(t *testing.T) {
	start := time.Now()
	newValidator(t)
	d := time.Since(start)
	t.Logf("NewValidator took %v", d)
	if d > 2*time.Second {
		t.Errorf("NewValidator took %v, want well under a second", d)
	}
}

func BenchmarkNewValidator(b *testing.B) {
	for b.Loop() {
		if _, err := NewValidator(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	v := newValidator(b)
	obj, err := DecodeYAML([]byte(cnpHead + `
  egress:
  - action: Accept
    to: [{networks: ["10.0.0.0/8", "2001:db8::/32"]}, {pods: {podSelector: {matchLabels: {app: a}}}}]
    protocols: [{tcp: {destinationPort: {range: {start: 80, end: 90}}}}, {udp: {destinationPort: {number: 53}}}]`))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, errs := v.Validate(ctx, obj); len(errs) > 0 {
		b.Fatal(errs)
	}
	for b.Loop() {
		v.Validate(ctx, obj)
	}
}
