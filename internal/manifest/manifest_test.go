package manifest_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/manifest"
	"github.com/netfence/netfence/internal/policy"
)

// write writes files (name -> content) into a new directory and returns it.
func write(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// load loads paths and returns the objects and the error lines.
func load(t *testing.T, stdin string, paths ...string) (*manifest.Objects, []string) {
	t.Helper()
	l := &manifest.Loader{}
	if stdin != "" {
		l.Stdin = strings.NewReader(stdin)
	}
	objs, err := l.Load(paths)
	if objs == nil {
		t.Fatalf("Load returned no objects (err %v)", err)
	}
	if err == nil {
		return objs, nil
	}
	var errs manifest.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Load error is %T, want manifest.Errors", err)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(errs) {
		t.Errorf("%d errors print as %d lines", len(errs), len(lines))
	}
	return objs, lines
}

func keys(o *manifest.Objects) []string {
	var out []string
	for k := range o.Where {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func wantNoErrors(t *testing.T, lines []string) {
	t.Helper()
	if len(lines) > 0 {
		t.Fatalf("unexpected errors:\n%s", strings.Join(lines, "\n"))
	}
}

const multiDoc = `# A header comment before the first separator is no document.
---
apiVersion: v1
kind: Namespace
metadata:
  name: prod
  labels:
    team: db
---
apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: prod
spec:
  ports:
  - port: 5432
---
apiVersion: v1
kind: Pod
metadata:
  name: db-0
  namespace: prod
  labels: {app: db}
spec:
  nodeName: node-1
  containers:
  - name: pg
    ports:
    - {name: pg, containerPort: 5432}
    - {name: metrics, containerPort: 9187, protocol: TCP}
    - {containerPort: 5432, protocol: UDP}
status:
  phase: Running
  podIP: 10.0.0.5
  podIPs: [{ip: 10.0.0.5}, {ip: "fd00::5"}]
---
# only a comment: an empty document
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: prod}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - ports: [{port: pg}]
`

func TestLoadMultiDocument(t *testing.T) {
	t.Parallel()
	dir := write(t, map[string]string{"all.yaml": multiDoc})
	file := filepath.Join(dir, "all.yaml")
	objs, lines := load(t, "", file)
	wantNoErrors(t, lines)

	want := map[string]manifest.Location{
		"Namespace prod":        {File: file, Document: 1, Kind: "Namespace", Name: "prod"},
		"Pod prod/db-0":         {File: file, Document: 3, Kind: "Pod", Namespace: "prod", Name: "db-0"},
		"NetworkPolicy prod/db": {File: file, Document: 5, Kind: "NetworkPolicy", Namespace: "prod", Name: "db"},
	}
	if !reflect.DeepEqual(objs.Where, want) {
		t.Errorf("Where = %v\nwant %v", objs.Where, want)
	}
	wantSkipped := []manifest.Skipped{{Location: manifest.Location{File: file, Document: 2, Kind: "Service", Namespace: "prod", Name: "db"}, APIVersion: "v1"}}
	if !reflect.DeepEqual(objs.Skipped, wantSkipped) {
		t.Errorf("Skipped = %+v, want %+v", objs.Skipped, wantSkipped)
	}
	if len(objs.Namespaces) != 1 || len(objs.Pods) != 1 || len(objs.Policies) != 1 {
		t.Fatalf("got %d namespaces, %d pods, %d policies; want 1 each", len(objs.Namespaces), len(objs.Pods), len(objs.Policies))
	}

	c := objs.Cluster()
	if got := c.NamespaceLabels("prod"); !reflect.DeepEqual(map[string]string(got), map[string]string{"team": "db", cluster.MetadataNameLabel: "prod"}) {
		t.Errorf("prod labels = %v", got)
	}
	p := c.Pod("prod/db-0")
	if p == nil {
		t.Fatal("no pod prod/db-0")
	}
	wantIPs := []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00::5")}
	if !reflect.DeepEqual(p.IPs, wantIPs) || p.Phase != corev1.PodRunning || p.NodeName != "node-1" || p.HostNetwork {
		t.Errorf("pod = %+v", p)
	}
	wantPorts := []cluster.ContainerPort{{Name: "pg", Protocol: "TCP", Port: 5432}, {Name: "metrics", Protocol: "TCP", Port: 9187}, {Protocol: "UDP", Port: 5432}}
	if !reflect.DeepEqual(p.Ports, wantPorts) {
		t.Errorf("ports = %+v, want %+v", p.Ports, wantPorts)
	}
	if set := policy.NewSet(c); len(set.Rejected) > 0 || set.Policy("prod", "db") == nil {
		t.Errorf("policy set: %v", set.Rejected)
	}
}

func TestLoadDocumentNumbers(t *testing.T) {
	t.Parallel()
	ns := func(name string) string { return "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + name + "\n" }
	for _, tc := range []struct {
		name, content string
		want          map[string]int // namespace -> document
	}{
		{"no separators", ns("a"), map[string]int{"a": 1}},
		{"leading separator", "---\n" + ns("a") + "---\n" + ns("b"), map[string]int{"a": 1, "b": 2}},
		{"leading blank lines", "\n\n---\n" + ns("a"), map[string]int{"a": 1}},
		{"leading comments", "# c1\n\n# c2\n---\n" + ns("a") + "---\n" + ns("b"), map[string]int{"a": 1, "b": 2}},
		{"comment inside the first document", "# about a\n" + ns("a") + "---\n" + ns("b"), map[string]int{"a": 1, "b": 2}},
		{"separator with a comment", ns("a") + "--- # next\n" + ns("b"), map[string]int{"a": 1, "b": 2}},
		{"trailing separator", ns("a") + "---\n", map[string]int{"a": 1}},
		{"explicit end", ns("a") + "...\n---\n" + ns("b"), map[string]int{"a": 1, "b": 2}},
	} {
		dir := write(t, map[string]string{"f.yaml": tc.content})
		objs, lines := load(t, "", filepath.Join(dir, "f.yaml"))
		if len(lines) > 0 {
			t.Errorf("%s: errors %v", tc.name, lines)
			continue
		}
		got := map[string]int{}
		for k, loc := range objs.Where {
			got[strings.TrimPrefix(k, "Namespace ")] = loc.Document
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: documents %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLoadJSON(t *testing.T) {
	t.Parallel()
	dir := write(t, map[string]string{
		"pod.json": `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","namespace":"x","labels":{"app":"a"}},
			"spec":{"hostNetwork":true,"containers":[{"name":"c"}]},"status":{"phase":"Running","podIP":"192.168.0.1"}}`,
		"list.json": `{"apiVersion":"v1","kind":"List","items":[
			{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x","labels":{"k":"v"}}},
			{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"p","namespace":"x"},
			 "spec":{"podSelector":{},"policyTypes":["Egress"],"egress":[{"to":[{"ipBlock":{"cidr":"10.0.0.0/8","except":["10.1.0.0/16"]}}],"ports":[{"protocol":"UDP","port":53,"endPort":60}]}]}}]}`,
	})
	objs, lines := load(t, "", dir)
	wantNoErrors(t, lines)
	want := []string{"Namespace x", "NetworkPolicy x/p", "Pod x/a"}
	if got := keys(objs); !reflect.DeepEqual(got, want) {
		t.Fatalf("objects %v, want %v", got, want)
	}
	if loc := objs.Where["NetworkPolicy x/p"]; loc.File != filepath.Join(dir, "list.json") || loc.Document != 1 || loc.Item != 2 {
		t.Errorf("policy location %+v", loc)
	}
	if !objs.Pods[0].Spec.HostNetwork {
		t.Errorf("hostNetwork lost")
	}
	np := objs.Policies[0]
	if r := np.Spec.Egress[0]; r.To[0].IPBlock.Except[0] != "10.1.0.0/16" || *r.Ports[0].EndPort != 60 || *r.Ports[0].Protocol != "UDP" {
		t.Errorf("policy decoded wrong: %+v", r)
	}
}

func TestLoadKubectlList(t *testing.T) {
	t.Parallel()
	file := filepath.Join("testdata", "kubectl-get-list.yaml")
	objs, lines := load(t, "", file)
	wantNoErrors(t, lines)
	loc := func(item int, kind, ns, name string) manifest.Location {
		return manifest.Location{File: file, Document: 1, Item: item, Kind: kind, Namespace: ns, Name: name}
	}
	want := map[string]manifest.Location{
		"Namespace shop":           loc(1, "Namespace", "", "shop"),
		"Pod shop/web-7c9f4-abcde": loc(2, "Pod", "shop", "web-7c9f4-abcde"),
		"NetworkPolicy shop/web":   loc(3, "NetworkPolicy", "shop", "web"),
	}
	if !reflect.DeepEqual(objs.Where, want) {
		t.Errorf("Where = %v\nwant %v", objs.Where, want)
	}
	if len(objs.Skipped) != 1 || objs.Skipped[0].Location != loc(4, "Service", "shop", "web") || objs.Skipped[0].APIVersion != "v1" {
		t.Errorf("Skipped = %+v", objs.Skipped)
	}
	c := objs.Cluster()
	p := c.Pod("shop/web-7c9f4-abcde")
	if p == nil || len(p.IPs) != 2 || p.IPs[1] != netip.MustParseAddr("fd00:10:244:1::a") {
		t.Fatalf("pod %+v", p)
	}
	if n, ok := p.NamedPort("http", corev1.ProtocolTCP); !ok || n != 80 {
		t.Errorf("named port http = %d, %v", n, ok)
	}
}

func TestLoadAPILists(t *testing.T) {
	t.Parallel()
	// Lists as the API returns them: items carry no kind or apiVersion.
	objs, lines := load(t, "", filepath.Join("testdata", "api-podlist.json"), filepath.Join("testdata", "api-networkpolicylist.yaml"))
	wantNoErrors(t, lines)
	want := []string{"NetworkPolicy data/db", "Pod data/db-0", "Pod data/db-1"}
	if got := keys(objs); !reflect.DeepEqual(got, want) {
		t.Fatalf("objects %v, want %v", got, want)
	}
	if loc := objs.Where["Pod data/db-1"]; loc.Item != 2 || loc.Kind != "Pod" || loc.Document != 1 {
		t.Errorf("db-1 location %+v", loc)
	}
	c := objs.Cluster()
	active, inactive := c.ActivePods()
	if len(active) != 1 || active[0].Name != "db-0" || len(inactive) != 1 || inactive[0].Name != "db-1" {
		t.Errorf("active %v inactive %v", active, inactive)
	}
	if set := policy.NewSet(c); len(set.Rejected) > 0 || set.Policy("data", "db") == nil {
		t.Errorf("set: %v", set.Rejected)
	}
	// The referenced but undefined namespace "data" has only its name label.
	if got := c.NamespaceLabels("data"); !reflect.DeepEqual(map[string]string(got), map[string]string{cluster.MetadataNameLabel: "data"}) {
		t.Errorf("data labels %v", got)
	}
}

func TestLoadDirectoryRecursive(t *testing.T) {
	t.Parallel()
	root := filepath.Join("testdata", "tree")
	objs, lines := load(t, "", root)
	// notes.txt (not a manifest extension) and the hidden directories (with
	// invalid YAML) are not read.
	wantNoErrors(t, lines)
	want := map[string]string{
		"Namespace shop":         filepath.Join(root, "a.yaml"),
		"Pod shop/web":           filepath.Join(root, "a.yaml"),
		"NetworkPolicy shop/web": filepath.Join(root, "sub", "b.yml"),
		"Pod shop/api":           filepath.Join(root, "sub", "deeper", "c.JSON"),
	}
	got := map[string]string{}
	for k, loc := range objs.Where {
		got[k] = loc.File
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("files %v\nwant %v", got, want)
	}
	// Pods come in file order: a.yaml, then sub/deeper/c.JSON.
	if len(objs.Pods) != 2 || objs.Pods[0].Name != "web" || objs.Pods[1].Name != "api" {
		t.Errorf("pod order %v", objs.Pods)
	}
	// A file named explicitly is read whatever its extension.
	_, lines = load(t, "", filepath.Join(root, "sub", "notes.txt"))
	if len(lines) != 1 || !strings.HasPrefix(lines[0], filepath.Join(root, "sub", "notes.txt")+": document 1: invalid YAML: ") {
		t.Errorf("notes.txt: %v", lines)
	}
}

func TestLoadStdin(t *testing.T) {
	t.Parallel()
	objs, lines := load(t, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: a\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\n  namespace: a\n", "-")
	if loc := objs.Where["Pod a/p"]; loc.File != "<stdin>" || loc.Document != 1 {
		t.Errorf("stdin location %+v", loc)
	}
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "<stdin>: document 2 (Pod a/Bad_Name): metadata.name: Invalid value: \"Bad_Name\": ") {
		t.Errorf("errors %v", lines)
	}
	// Stdin and files together.
	dir := write(t, map[string]string{"ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n"})
	objs, lines = load(t, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n", dir, "-")
	wantNoErrors(t, lines)
	if got := keys(objs); !reflect.DeepEqual(got, []string{"Namespace a", "Namespace b"}) {
		t.Errorf("objects %v", got)
	}
	// No standard input.
	_, err := (&manifest.Loader{}).Load([]string{"-"})
	if err == nil || err.Error() != "<stdin>: no standard input" {
		t.Errorf("without stdin: %v", err)
	}
}

// TestLoadYAMLScalars: YAML 1.2 core schema. An unquoted y, yes, no, on,
// off stays a string, as the API server (YAML 1.2 via JSON) would not
// accept a boolean where a string belongs, and a namespace called y is
// common enough.
func TestLoadYAMLScalars(t *testing.T) {
	t.Parallel()
	dir := write(t, map[string]string{"y.yaml": `apiVersion: v1
kind: Namespace
metadata:
  name: y
  labels:
    answer: yes
    switch: on
    short: n
    upper: Y
---
apiVersion: v1
kind: Pod
metadata:
  name: p
  namespace: y
  labels: {enabled: no, flag: off, version: "1.0", count: "3"}
status:
  phase: Running
  podIP: 10.0.0.1
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: n
  namespace: y
spec:
  podSelector:
    matchExpressions:
    - {key: enabled, operator: In, values: [no, off, y]}
`})
	objs, lines := load(t, "", dir)
	wantNoErrors(t, lines)
	c := objs.Cluster()
	if got := c.NamespaceLabels("y"); !reflect.DeepEqual(map[string]string(got), map[string]string{
		"answer": "yes", "switch": "on", "short": "n", "upper": "Y", cluster.MetadataNameLabel: "y"}) {
		t.Errorf("namespace y labels %v", got)
	}
	p := c.Pod("y/p")
	if p == nil || !reflect.DeepEqual(map[string]string(p.Labels), map[string]string{"enabled": "no", "flag": "off", "version": "1.0", "count": "3"}) {
		t.Fatalf("pod y/p = %+v", p)
	}
	if v := objs.Policies[0].Spec.PodSelector.MatchExpressions[0].Values; !reflect.DeepEqual(v, []string{"no", "off", "y"}) {
		t.Errorf("values %v", v)
	}
	// A real boolean where a string belongs is an error, naming the field.
	dir = write(t, map[string]string{"b.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: payments\n  labels:\n    monitored: true\n"})
	_, lines = load(t, "", dir)
	if len(lines) != 1 || !strings.HasPrefix(lines[0], filepath.Join(dir, "b.yaml")+": document 1 (Namespace payments): metadata.labels") ||
		!strings.Contains(lines[0], "string") {
		t.Errorf("boolean label: %v", lines)
	}
}

func TestLoadNamespaceDefaulting(t *testing.T) {
	t.Parallel()
	dir := write(t, map[string]string{"d.yaml": `apiVersion: v1
kind: Pod
metadata:
  name: p
status:
  phase: Running
  podIP: 10.0.0.1
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: n
spec:
  podSelector: {}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: bad
spec:
  podSelector: {}
  policyTypes: [Sideways]
`})
	file := filepath.Join(dir, "d.yaml")
	objs, lines := load(t, "", file)
	if got := keys(objs); !reflect.DeepEqual(got, []string{"NetworkPolicy default/n", "Pod default/p"}) {
		t.Errorf("objects %v", got)
	}
	if objs.Pods[0].Namespace != "default" || objs.Policies[0].Namespace != "default" {
		t.Errorf("namespaces not defaulted")
	}
	want := []string{file + `: document 3 (NetworkPolicy default/bad): spec.policyTypes[0]: Unsupported value: "Sideways": supported values: "Egress", "Ingress"`}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("errors\n%q\nwant\n%q", lines, want)
	}
	c := objs.Cluster()
	if ns := c.Namespaces["default"]; ns == nil || ns.Defined || !reflect.DeepEqual(map[string]string(ns.Labels), map[string]string{cluster.MetadataNameLabel: "default"}) {
		t.Errorf("default namespace %+v", ns)
	}
	// The policy isolates the pod: it landed in the same namespace.
	set := policy.NewSet(c)
	if len(set.Isolating(c.Pod("default/p"), policy.Ingress)) != 1 {
		t.Errorf("default/n does not isolate default/p")
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	const (
		nsA  = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n"
		podA = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: a\n"
	)
	for _, tc := range []struct {
		name    string
		content string
		// want are the exact error lines, with FILE for the file name;
		// prefix, when set, is what the single error line starts with.
		want   []string
		prefix string
		// kept are the objects loaded despite the errors.
		kept []string
	}{
		{
			name: "endPort below port",
			content: nsA + "---\n" + podA + `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: db
  namespace: prod
spec:
  podSelector: {}
  ingress:
  - ports:
    - port: 80
    - port: 80
      endPort: 70
`,
			want: []string{"FILE: document 3 (NetworkPolicy prod/db): spec.ingress[0].ports[1].endPort: Invalid value: 70: must be greater than or equal to `port`"},
			kept: []string{"Namespace a", "Pod a/p"},
		},
		{
			name: "several errors in one document",
			content: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: x
  namespace: a
spec:
  podSelector:
    matchExpressions:
    - {key: app, operator: In}
  egress:
  - to:
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}
      podSelector: {}
    ports:
    - {port: http, endPort: 90}
`,
			want: []string{
				"FILE: document 1 (NetworkPolicy a/x): spec.podSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
				"FILE: document 1 (NetworkPolicy a/x): spec.egress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is non-numeric",
				"FILE: document 1 (NetworkPolicy a/x): spec.egress[0].to[0].ipBlock.except[0]: Invalid value: \"10.0.0.0/8\": must be a strict subset of `cidr`",
				"FILE: document 1 (NetworkPolicy a/x): spec.egress[0].to[0]: Forbidden: may not specify both ipBlock and another peer",
			},
		},
		{
			// A misspelt field would silently widen the policy: "form" for
			// "from" makes the rule allow every source.
			name: "unknown field in a NetworkPolicy",
			content: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: x
  namespace: prod
spec:
  podSelector: {}
  ingress:
  - form:
    - podSelector: {matchLabels: {app: api}}
`,
			want: []string{`FILE: document 1 (NetworkPolicy prod/x): unknown field "spec.ingress[0].form"`},
		},
		{
			name:    "unknown metadata field in a NetworkPolicy",
			content: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: x\n  namespace: a\n  label: {a: b}\nspec:\n  podSelector: {}\n",
			want:    []string{`FILE: document 1 (NetworkPolicy a/x): unknown field "metadata.label"`},
		},
		{
			name:    "unknown fields in a Pod are accepted",
			content: podA + "spec:\n  futureField: 1\n  containers: [{name: c, newThing: {}}]\n",
			kept:    []string{"Pod a/p"},
		},
		{
			name:    "duplicate object",
			content: podA + "---\n" + nsA + "---\n" + podA,
			want:    []string{"FILE: document 3 (Pod a/p): duplicate Pod a/p: first defined in FILE: document 1 (Pod a/p)"},
			kept:    []string{"Namespace a", "Pod a/p"},
		},
		{
			name:    "same name, different kinds or namespaces",
			content: podA + "---\n" + strings.Replace(podA, "namespace: a", "namespace: b", 1) + "---\n" + nsA + "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n  namespace: a\nspec:\n  podSelector: {}\n",
			kept:    []string{"Namespace a", "NetworkPolicy a/p", "Pod a/p", "Pod b/p"},
		},
		{
			name:    "invalid YAML",
			content: nsA + "---\napiVersion: v1\nkind: Pod\nmetadata: [\n---\n" + podA,
			prefix:  "FILE: document 2: invalid YAML: ",
			kept:    []string{"Namespace a", "Pod a/p"},
		},
		{
			name:    "tab indentation",
			content: "apiVersion: v1\nkind: Pod\nmetadata:\n\tname: p\n",
			prefix:  "FILE: document 1: invalid YAML: ",
		},
		{
			name:    "duplicate key",
			content: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  name: q\n",
			want:    []string{`FILE: document 1: invalid YAML: line 5: mapping key "name" already defined`},
		},
		{
			name:    "duplicate key in JSON",
			content: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","name":"q"}}`,
			want:    []string{`FILE: document 1: invalid JSON: line 1: mapping key "name" already defined`},
		},
		{
			name:    "no kind",
			content: "apiVersion: v1\nmetadata:\n  name: p\n",
			want:    []string{"FILE: document 1 (p): kind: Required value"},
		},
		{
			name:    "not an object",
			content: nsA + "---\njust a string\n",
			prefix:  "FILE: document 2: not a Kubernetes object: ",
			kept:    []string{"Namespace a"},
		},
		{
			name:    "unknown version of the policy's own group",
			content: "apiVersion: networking.k8s.io/v2\nkind: NetworkPolicy\nmetadata:\n  name: x\n  namespace: a\nspec: {}\n",
			want:    []string{`FILE: document 1 (NetworkPolicy a/x): apiVersion: Unsupported value: "networking.k8s.io/v2": supported values: "networking.k8s.io/v1"`},
		},
		{
			name:    "NetworkPolicy in the core group",
			content: "apiVersion: v1\nkind: NetworkPolicy\nmetadata:\n  name: x\n  namespace: a\nspec: {}\n",
			want:    []string{`FILE: document 1 (NetworkPolicy a/x): apiVersion: Unsupported value: "v1": supported values: "networking.k8s.io/v1"`},
		},
		{
			name:    "NetworkPolicy of another Kubernetes group",
			content: "apiVersion: policy.networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: x\n  namespace: a\nspec: {}\n",
			want:    []string{`FILE: document 1 (NetworkPolicy a/x): apiVersion: Unsupported value: "policy.networking.k8s.io/v1": supported values: "networking.k8s.io/v1"`},
		},
		{
			name:    "NetworkPolicy without apiVersion",
			content: "kind: NetworkPolicy\nmetadata:\n  name: x\n  namespace: a\nspec: {}\n",
			want:    []string{`FILE: document 1 (NetworkPolicy a/x): apiVersion: Unsupported value: "": supported values: "networking.k8s.io/v1"`},
		},
		{
			name:    "unknown Pod version",
			content: "apiVersion: v2\nkind: Pod\nmetadata:\n  name: p\n  namespace: a\n",
			want:    []string{`FILE: document 1 (Pod a/p): apiVersion: Unsupported value: "v2": supported values: "v1"`},
		},
		{
			name:    "wrong type",
			content: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: a\nspec:\n  containers:\n  - name: c\n    ports:\n    - containerPort: http\n",
			prefix:  "FILE: document 1 (Pod a/p): spec.containers",
		},
		{
			name:    "invalid item in a List",
			content: "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: a}\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: Bad_Name, namespace: a}\n",
			prefix:  "FILE: document 1 item 2 (Pod a/Bad_Name): metadata.name: Invalid value: \"Bad_Name\": ",
			kept:    []string{"Namespace a"},
		},
		{
			name:    "unknown field in a NetworkPolicyList item",
			content: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicyList\nitems:\n- metadata: {name: x, namespace: a}\n  spec:\n    podSelector: {}\n    egres: [{}]\n",
			want:    []string{`FILE: document 1 item 1 (NetworkPolicy a/x): unknown field "spec.egres"`},
		},
		{
			name:    "List in a List",
			content: "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: PodList\n  items: []\n",
			want:    []string{"FILE: document 1 item 1 (PodList): kind: a List may not hold a List"},
		},
		{
			name:    "List items not a list",
			content: "apiVersion: v1\nkind: List\nitems: {a: b}\n",
			want:    []string{"FILE: document 1 (List): items: must be a list"},
		},
		{
			name:    "item without kind in a plain List",
			content: "apiVersion: v1\nkind: List\nitems:\n- metadata: {name: p}\n",
			want:    []string{"FILE: document 1 item 1 (p): kind: Required value"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := write(t, map[string]string{"m.yaml": tc.content})
			file := filepath.Join(dir, "m.yaml")
			objs, lines := load(t, "", file)
			switch {
			case tc.prefix != "":
				if len(lines) != 1 || !strings.HasPrefix(lines[0], strings.ReplaceAll(tc.prefix, "FILE", file)) {
					t.Errorf("errors %q, want one starting with %q", lines, tc.prefix)
				}
			default:
				var want []string
				for _, w := range tc.want {
					want = append(want, strings.ReplaceAll(w, "FILE", file))
				}
				if !reflect.DeepEqual(lines, want) {
					t.Errorf("errors\n  %s\nwant\n  %s", strings.Join(lines, "\n  "), strings.Join(want, "\n  "))
				}
			}
			if got := keys(objs); !reflect.DeepEqual(got, tc.kept) {
				t.Errorf("kept %v, want %v", got, tc.kept)
			}
		})
	}
}

// TestLoadAliasBombs: a few hundred bytes of nested aliases or merge keys
// must not expand into gigabytes (or hours); like kubectl, the loader
// refuses them.
func TestLoadAliasBombs(t *testing.T) {
	t.Parallel()
	var laughs, merges strings.Builder
	laughs.WriteString("kind: Pod\napiVersion: v1\nmetadata: {name: p}\nl0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	merges.WriteString("kind: Pod\napiVersion: v1\nmetadata: {name: p}\nm0: &m0 {a: 1, b: 2}\n")
	for i := 1; i <= 12; i++ {
		laughs.WriteString(fmt.Sprintf("l%d: &l%d [*l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1))
		merges.WriteString(fmt.Sprintf("m%d: &m%d {<<: [*m%d, *m%d, *m%d, *m%d, *m%d, *m%d, *m%d, *m%d, *m%d, *m%d]}\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1))
	}
	dir := write(t, map[string]string{"laughs.yaml": laughs.String(), "merges.yaml": merges.String()})
	start := time.Now()
	_, lines := load(t, "", dir)
	if d := time.Since(start); d > time.Minute {
		t.Errorf("took %v", d)
	}
	want := []string{
		filepath.Join(dir, "laughs.yaml") + ": document 1: invalid YAML: ",
		filepath.Join(dir, "merges.yaml") + ": document 1: invalid YAML: ",
	}
	if len(lines) != 2 || !strings.HasPrefix(lines[0], want[0]) || !strings.HasPrefix(lines[1], want[1]) ||
		!strings.Contains(lines[0], "aliases") || !strings.Contains(lines[1], "aliases") {
		t.Errorf("errors %q", lines)
	}
	// Modest use of aliases and merge keys is fine.
	dir = write(t, map[string]string{"ok.yaml": `apiVersion: v1
kind: Pod
metadata:
  name: p
  namespace: a
  labels: &labels {app: web, tier: front}
  annotations:
    <<: *labels
    note: merged
spec:
  containers:
  - &c {name: a, ports: [{name: http, containerPort: 80}]}
status:
  phase: Running
  podIP: 10.0.0.1
`})
	objs, lines := load(t, "", dir)
	wantNoErrors(t, lines)
	if a := objs.Pods[0].Annotations; a["app"] != "web" || a["note"] != "merged" {
		t.Errorf("annotations %v", a)
	}
}

func TestLoadDuplicateAcrossFiles(t *testing.T) {
	t.Parallel()
	ns := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n"
	dir := write(t, map[string]string{"1.yaml": ns, "2.yaml": "---\n" + ns})
	_, lines := load(t, "", dir)
	want := []string{filepath.Join(dir, "2.yaml") + ": document 1 (Namespace a): duplicate Namespace a: first defined in " + filepath.Join(dir, "1.yaml") + ": document 1 (Namespace a)"}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("errors %q\nwant %q", lines, want)
	}
}

func TestLoadMissingPath(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	_, lines := load(t, "", missing)
	if len(lines) != 1 || !strings.HasPrefix(lines[0], missing+": ") {
		t.Errorf("errors %q", lines)
	}
}

// TestLoadExamples: every example loads cleanly and its policies compile.
func TestLoadExamples(t *testing.T) {
	t.Parallel()
	dirs, _ := filepath.Glob(filepath.Join("..", "..", "examples", "*"))
	if len(dirs) == 0 {
		t.Fatal("no examples")
	}
	for _, dir := range dirs {
		objs, lines := load(t, "", dir)
		if len(lines) > 0 {
			t.Errorf("%s:\n%s", dir, strings.Join(lines, "\n"))
			continue
		}
		if set := policy.NewSet(objs.Cluster()); len(set.Rejected) > 0 || len(set.Policies) == 0 || len(objs.Pods) == 0 {
			t.Errorf("%s: %d policies, %d pods, rejected %v", dir, len(set.Policies), len(objs.Pods), set.Rejected)
		}
	}
}

// FuzzLoad: the loader never panics, every error names the file, and every
// policy it accepts compiles.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "examples", "*", "*.yaml"))
	more, _ := filepath.Glob(filepath.Join("testdata", "*"))
	for _, p := range append(files, more...) {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(multiDoc))
	f.Add([]byte("a: &a [1, 2]\nb: *a\nc: {<<: {x: 1}, y: 2}\n"))
	f.Add([]byte(`{"apiVersion":"v1","kind":"List","items":[{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"}}]}`))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"b"}}`))
	f.Add([]byte("{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"a\"}}\n---\n{kind: Pod, apiVersion: v1, metadata: {name: p}}\n"))
	f.Add([]byte("apiVersion: v1\r\nkind: Namespace\r\nmetadata: {name: a}\r\n--- # b\r\napiVersion: v1\r\nkind: Namespace\r\nmetadata: {name: b}\r\n...\r\n"))
	f.Add([]byte("apiVersion: networking.k8s.io/v1\nkind: NetworkPolcy\nmetadata: {name: x}\n---\napiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata: {name: y}\nspec: {podSelector: {}}\n"))
	dir := f.TempDir()
	path := filepath.Join(dir, "in.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		// The fuzzing engine has no timeout for one input: a hang would
		// stall it silently. Turn it into a crash with stacks.
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				panic(fmt.Sprintf("Load takes over 10s on %q\n%s", data, buf))
			}
		}()
		objs, err := (&manifest.Loader{}).Load([]string{path})
		if objs == nil {
			t.Fatal("no objects")
		}
		if err != nil {
			var errs manifest.Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %T %v", err, err)
			}
			for _, e := range errs {
				if e.File != path || !strings.HasPrefix(e.Error(), path+": ") {
					t.Fatalf("error does not name the file: %q", e.Error())
				}
			}
		}
		for _, loc := range objs.Where {
			if loc.File != path || loc.Document < 1 {
				t.Fatalf("bad location %+v", loc)
			}
		}
		if set := policy.NewSet(objs.Cluster()); len(set.Rejected) > 0 {
			t.Fatalf("accepted policies that do not compile: %v", set.Rejected)
		}
		for _, w := range objs.Warnings {
			if w.File != path || w.Document < 1 || !strings.HasPrefix(w.String(), path+": ") {
				t.Fatalf("bad warning %+v", w)
			}
		}
		// Same count as kubectl, when both read the input.
		if err != nil || kubectlLoses(data) {
			return
		}
		want, ok := kubectlCount(data)
		if !ok {
			return
		}
		if got := len(objs.Namespaces) + len(objs.Pods) + len(objs.Policies) + len(objs.ClusterPolicies) + len(objs.Nodes) + len(objs.Skipped); got != want {
			t.Fatalf("netfence reads %d objects, kubectl %d, in %q", got, want, data)
		}
	})
}

// kubectlCount counts the objects kubectl's decoder reads from a file:
// NewYAMLOrJSONDecoder (what kubectl apply -f uses), decoding into
// map[string]interface{} until io.EOF, each non-nil map an object, except
// that a kind List or *List counts as the number of its items, as netfence
// counts the items of a List and not the List. What it is compared with is
// what netfence reads when Load returns no error: every Namespace, Pod,
// NetworkPolicy, Node, cluster-scoped policy and skipped object (warned
// about or not), each List item
// counted once. ok is false when kubectl's decoder returns an error (the
// comparison is only for inputs both read).
func kubectlCount(data []byte) (n int, ok bool) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for range len(data) + 2 { // each Decode consumes input; a guard all the same
		var m map[string]interface{}
		err := dec.Decode(&m)
		if err == io.EOF {
			return n, true
		}
		if err != nil {
			return 0, false
		}
		if m == nil {
			continue // an empty document, a comment, null
		}
		if kind, _ := m["kind"].(string); kind == "List" || strings.HasSuffix(kind, "List") {
			items, _ := m["items"].([]interface{})
			n += len(items)
			continue
		}
		n++
	}
	return 0, false
}

// kubectlLoses reports inputs where kubectl's decoder is known to lose
// data without an error, so that its count proves nothing:
//
//   - its YAML path reads lines with a bufio.Reader of 4096 bytes and drops
//     a last line without a line break whose length is a multiple of the
//     buffer (the bug netfence's reader was written to fix); the check is
//     conservative: any such last line of 4095 bytes or more;
//   - it does not split at "..." end markers: the YAML parser it hands the
//     text to stops at the marker and drops what follows up to the next
//     "---", which netfence reads as a bare document (YAML 1.2).
func kubectlLoses(data []byte) bool {
	last := data[bytes.LastIndexByte(data, '\n')+1:]
	if len(last) >= 4095 {
		return true
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("...")) {
			return true
		}
	}
	return false
}
