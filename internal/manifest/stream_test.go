package manifest_test

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/netfence/netfence/internal/manifest"
)

func nsJSON(name string) string {
	return fmt.Sprintf(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":%q}}`, name)
}

func nsYAML(name string) string {
	return "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + name + "\n"
}

// TestLoadStreams: JSON streams and YAML streams; want maps each namespace
// to its document number.
func TestLoadStreams(t *testing.T) {
	t.Parallel()
	a, b, c := nsJSON("a"), nsJSON("b"), nsJSON("c")
	for _, tc := range []struct {
		name, file, content string
		want                map[string]int
	}{
		{"JSON: 2 concatenated", "f.json", a + b, map[string]int{"a": 1, "b": 2}},
		{"JSON: 3 concatenated", "f.json", a + b + c, map[string]int{"a": 1, "b": 2, "c": 3}},
		{"JSON: 2 on lines", "f.json", a + "\n" + b + "\n", map[string]int{"a": 1, "b": 2}},
		{"JSON: 3 on lines, no final newline", "f.json", a + "\n" + b + "\n" + c, map[string]int{"a": 1, "b": 2, "c": 3}},
		{"JSON: CRLF, tabs and blank lines", "f.json", "\r\n\t" + a + "\r\n\r\n" + b + " \t" + c + "\r\n", map[string]int{"a": 1, "b": 2, "c": 3}},
		{"JSON: pretty-printed", "f.json", "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Namespace\",\n  \"metadata\": {\"name\": \"a\"}\n}\n{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Namespace\",\n  \"metadata\": {\"name\": \"b\"}\n}\n", map[string]int{"a": 1, "b": 2}},
		{"JSON: null between objects", "f.json", a + " null " + b, map[string]int{"a": 1, "b": 3}},
		{"JSON stream in a .yaml file", "f.yaml", a + b, map[string]int{"a": 1, "b": 2}},
		{"JSON: a List and an object", "f.json", `{"apiVersion":"v1","kind":"List","items":[` + a + "," + b + "]}\n" + c, map[string]int{"a": 1, "b": 1, "c": 2}},
		{"JSON with YAML separators", "f.yaml", a + "\n---\n" + b + "\n---\n" + c + "\n", map[string]int{"a": 1, "b": 2, "c": 3}},
		{"JSON and a comment", "f.yaml", a + " # the namespace\n", map[string]int{"a": 1}},
		{"YAML flow mapping", "f.yaml", "{apiVersion: v1, kind: Namespace, metadata: {name: a}}\n---\n{apiVersion: v1, kind: Namespace, metadata: {name: b}}", map[string]int{"a": 1, "b": 2}},
		{"YAML: separator with a comment", "f.yaml", nsYAML("a") + "--- # b\n" + nsYAML("b") + "---\t# c\n" + nsYAML("c"), map[string]int{"a": 1, "b": 2, "c": 3}},
		{"YAML: separator directly followed by a comment", "f.yaml", nsYAML("a") + "---# b\n" + nsYAML("b"), map[string]int{"a": 1, "b": 2}},
		{"YAML: content on the separator line", "f.yaml", nsYAML("a") + "--- {apiVersion: v1, kind: Namespace, metadata: {name: b}}\n", map[string]int{"a": 1, "b": 2}},
		{"YAML: CRLF", "f.yaml", strings.ReplaceAll("# header\n---\n"+nsYAML("a")+"---\n"+nsYAML("b")+"--- # c\n"+nsYAML("c"), "\n", "\r\n"), map[string]int{"a": 1, "b": 2, "c": 3}},
		{"YAML: CRLF, no final line break", "f.yaml", strings.TrimSuffix(strings.ReplaceAll(nsYAML("a")+"---\n"+nsYAML("b"), "\n", "\r\n"), "\r\n"), map[string]int{"a": 1, "b": 2}},
		{"YAML: end markers", "f.yaml", nsYAML("a") + "...\n---\n" + nsYAML("b") + "...\n", map[string]int{"a": 1, "b": 2}},
		{"YAML: end marker, comments, separator", "f.yaml", nsYAML("a") + "...\n# about b\n---\n" + nsYAML("b"), map[string]int{"a": 1, "b": 2}},
		{"YAML: bare document after an end marker", "f.yaml", nsYAML("a") + "...\n" + nsYAML("b"), map[string]int{"a": 1, "b": 2}},
		{"YAML: CRLF end marker", "f.yaml", strings.ReplaceAll(nsYAML("a")+"...\n"+nsYAML("b"), "\n", "\r\n"), map[string]int{"a": 1, "b": 2}},
		{"YAML: directive", "f.yaml", "%YAML 1.1\n---\n" + nsYAML("a") + "...\n%YAML 1.1\n---\n" + nsYAML("b"), map[string]int{"a": 1, "b": 2}},
		{"YAML: lone CR line breaks after a comment", "f.yaml", "# header\rapiVersion: v1\rkind: Namespace\rmetadata: {name: a}\r", map[string]int{"a": 1}},
		{"YAML: NEL after a comment", "f.yaml", "# header\u0085apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n", map[string]int{"a": 1}},
		{"YAML: byte order mark", "f.yaml", "\xEF\xBB\xBF# header\n---\n" + nsYAML("a"), map[string]int{"a": 1}},
		{"YAML: dashes that are no separator", "f.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  annotations:\n    note: |\n      ----\n      --- indented\n", map[string]int{"a": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := write(t, map[string]string{tc.file: tc.content})
			objs, lines := load(t, "", filepath.Join(dir, tc.file))
			wantNoErrors(t, lines)
			got := map[string]int{}
			for k, loc := range objs.Where {
				got[strings.TrimPrefix(k, "Namespace ")] = loc.Document
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("documents %v, want %v", got, tc.want)
			}
			if len(objs.Namespaces) != len(tc.want) {
				t.Errorf("%d namespaces, want %d", len(objs.Namespaces), len(tc.want))
			}
		})
	}
}

// TestLoadStreamErrors: what follows a JSON value must be another one; a
// document the splitter cannot see is an error, not a loss.
func TestLoadStreamErrors(t *testing.T) {
	t.Parallel()
	a, b := nsJSON("a"), nsJSON("b")
	for _, tc := range []struct {
		name, content string
		want          []string // FILE for the file
		kept          []string
	}{
		{
			name:    "trailing garbage",
			content: a + "x",
			want:    []string{fmt.Sprintf("FILE: document 2: byte offset %d: invalid JSON after document 1: invalid character 'x' looking for beginning of value", len(a))},
			kept:    []string{"Namespace a"},
		},
		{
			name:    "trailing garbage after two",
			content: a + "\n" + b + "\n]\n",
			want:    []string{fmt.Sprintf("FILE: document 3: byte offset %d: invalid JSON after document 2: invalid character ']' looking for beginning of value", len(a)+len(b)+2)},
			kept:    []string{"Namespace a", "Namespace b"},
		},
		{
			name:    "truncated second object",
			content: a + "\n" + `{"apiVersion":"v1","kind":`,
			want:    []string{fmt.Sprintf("FILE: document 2: byte offset %d: invalid JSON after document 1: unexpected end of file inside a JSON value", len(a)+1+len(`{"apiVersion":"v1","kind":`))},
			kept:    []string{"Namespace a"},
		},
		{
			name:    "YAML after a JSON object",
			content: a + "\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
			want:    []string{fmt.Sprintf("FILE: document 2: byte offset %d: invalid JSON after document 1: invalid character 'a' looking for beginning of value", len(a)+1)},
			kept:    []string{"Namespace a"},
		},
		{
			name:    "invalid JSON after a separator",
			content: a + "\n---\n" + `{"apiVersion":"v1",}`,
			want:    []string{`FILE: document 2: kind: Required value`}, // YAML allows the trailing comma
			kept:    []string{"Namespace a"},
		},
		{
			// yaml.v3 breaks lines at a lone CR; the splitter does not.
			name:    "separator after a lone CR",
			content: "apiVersion: v1\rkind: Namespace\rmetadata: {name: a}\r---\rapiVersion: v1\rkind: Namespace\rmetadata: {name: b}\r",
			want:    []string{`FILE: document 1: invalid YAML: line 4: a second document starts here`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := write(t, map[string]string{"f.json": tc.content})
			file := filepath.Join(dir, "f.json")
			objs, lines := load(t, "", file)
			if len(lines) != len(tc.want) {
				t.Fatalf("errors %q, want %q", lines, tc.want)
			}
			for i, w := range tc.want {
				if w = strings.ReplaceAll(w, "FILE", file); !strings.HasPrefix(lines[i], w) {
					t.Errorf("error %q, want %q", lines[i], w)
				}
			}
			if got := keys(objs); !reflect.DeepEqual(got, tc.kept) {
				t.Errorf("kept %v, want %v", got, tc.kept)
			}
		})
	}
}

// TestLoadWarnings: near misses of a kind, other API groups, the legacy
// apiVersion.
func TestLoadWarnings(t *testing.T) {
	t.Parallel()
	policy := func(apiVersion, kind string) string {
		return "apiVersion: " + apiVersion + "\nkind: " + kind + "\nmetadata:\n  name: x\n  namespace: a\nspec:\n  podSelector: {}\n"
	}
	nearMiss := func(kind, known string) string {
		return fmt.Sprintf("kind %q is not a known kind; did you mean %s? The object is ignored", kind, known)
	}
	otherGroup := func(apiVersion, group string) string {
		return fmt.Sprintf("apiVersion %q: a NetworkPolicy of API group %q is a different resource from the Kubernetes NetworkPolicy (networking.k8s.io/v1), which netfence does not enforce; the object is ignored", apiVersion, group)
	}
	for _, tc := range []struct {
		name, content string
		want          []string // FILE for the file
		kept          []string
		skipped       int
	}{
		{"misspelt NetworkPolicy", policy("networking.k8s.io/v1", "NetworkPolcy"), []string{"FILE: document 1 (NetworkPolcy a/x): " + nearMiss("NetworkPolcy", "NetworkPolicy")}, nil, 1},
		{"lower-case networkpolicy", policy("networking.k8s.io/v1", "networkpolicy"), []string{"FILE: document 1 (networkpolicy a/x): " + nearMiss("networkpolicy", "NetworkPolicy")}, nil, 1},
		{"Networkpolicy", policy("networking.k8s.io/v1", "Networkpolicy"), []string{"FILE: document 1 (Networkpolicy a/x): " + nearMiss("Networkpolicy", "NetworkPolicy")}, nil, 1},
		{"two edits", policy("networking.k8s.io/v1", "NetwrkPolcy"), []string{"FILE: document 1 (NetwrkPolcy a/x): " + nearMiss("NetwrkPolcy", "NetworkPolicy")}, nil, 1},
		{"transposition", policy("networking.k8s.io/v1", "NetowrkPolicy"), []string{"FILE: document 1 (NetowrkPolicy a/x): " + nearMiss("NetowrkPolicy", "NetworkPolicy")}, nil, 1},
		{"plural", policy("networking.k8s.io/v1", "NetworkPolicies"), []string{"FILE: document 1 (NetworkPolicies a/x): " + nearMiss("NetworkPolicies", "NetworkPolicy")}, nil, 1},
		{"pod", "apiVersion: v1\nkind: pod\nmetadata: {name: p}\n", []string{"FILE: document 1 (pod p): " + nearMiss("pod", "Pod")}, nil, 1},
		{"NameSpace", "apiVersion: v1\nkind: NameSpace\nmetadata: {name: n}\n", []string{"FILE: document 1 (NameSpace n): " + nearMiss("NameSpace", "Namespace")}, nil, 1},
		{"list", "apiVersion: v1\nkind: list\nitems: []\n", []string{"FILE: document 1 (list): " + nearMiss("list", "List")}, nil, 1},
		{"near miss in a List", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Nmespace\n  metadata: {name: n}\n", []string{"FILE: document 1 item 1 (Nmespace n): " + nearMiss("Nmespace", "Namespace")}, nil, 1},
		{"real kinds are no near miss", "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r, namespace: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n", nil, nil, 3},
		{"nodes", "apiVersion: v1\nkind: Nodes\nmetadata: {name: n}\n", []string{"FILE: document 1 (Nodes n): " + nearMiss("Nodes", "Node")}, nil, 1},
		{"ClusterNetworkPolicies", "apiVersion: policy.networking.k8s.io/v1beta1\nkind: ClusterNetworkPolicies\nmetadata: {name: c}\n", []string{"FILE: document 1 (ClusterNetworkPolicies c): " + nearMiss("ClusterNetworkPolicies", "ClusterNetworkPolicy")}, nil, 1},
		{"Calico NetworkPolicy", policy("projectcalico.org/v3", "NetworkPolicy"), []string{"FILE: document 1 (NetworkPolicy a/x): " + otherGroup("projectcalico.org/v3", "projectcalico.org")}, nil, 1},
		{"Calico CRD NetworkPolicy", policy("crd.projectcalico.org/v1", "NetworkPolicy"), []string{"FILE: document 1 (NetworkPolicy a/x): " + otherGroup("crd.projectcalico.org/v1", "crd.projectcalico.org")}, nil, 1},
		{"cilium.io Pod", "apiVersion: cilium.io/v2\nkind: Pod\nmetadata: {name: p, namespace: a}\n", []string{`FILE: document 1 (Pod a/p): apiVersion "cilium.io/v2": a Pod of API group "cilium.io" is a different resource from the Kubernetes Pod (v1), which netfence does not enforce; the object is ignored`}, nil, 1},
		{
			"extensions/v1beta1", policy("extensions/v1beta1", "NetworkPolicy") + "---\n" + "apiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata: {name: y}\nspec: {podSelector: {}}\n",
			[]string{
				`FILE: document 1 (NetworkPolicy a/x): apiVersion "extensions/v1beta1" is deprecated (no longer served since Kubernetes 1.16); read as networking.k8s.io/v1, which has the same schema`,
				`FILE: document 2 (NetworkPolicy default/y): apiVersion "extensions/v1beta1" is deprecated (no longer served since Kubernetes 1.16); read as networking.k8s.io/v1, which has the same schema`,
			},
			[]string{"NetworkPolicy a/x", "NetworkPolicy default/y"}, 0,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := write(t, map[string]string{"f.yaml": tc.content})
			file := filepath.Join(dir, "f.yaml")
			objs, lines := load(t, "", file)
			wantNoErrors(t, lines)
			var got, want []string
			for _, w := range objs.Warnings {
				got = append(got, w.String())
				if w.File != file || w.Document < 1 || w.Message == "" {
					t.Errorf("warning %+v", w)
				}
			}
			for _, w := range tc.want {
				want = append(want, strings.ReplaceAll(w, "FILE", file))
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("warnings\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
			if k := keys(objs); !reflect.DeepEqual(k, tc.kept) {
				t.Errorf("kept %v, want %v", k, tc.kept)
			}
			if len(objs.Skipped) != tc.skipped {
				t.Errorf("skipped %+v, want %d", objs.Skipped, tc.skipped)
			}
			for _, p := range objs.Policies {
				if p.APIVersion != "networking.k8s.io/v1" {
					t.Errorf("policy %s read as %q", p.Name, p.APIVersion)
				}
			}
		})
	}
}

func TestWarningString(t *testing.T) {
	t.Parallel()
	w := manifest.Warning{Location: manifest.Location{File: "f.yaml", Document: 3, Kind: "NetworkPolicy", Namespace: "ns", Name: "x"}, Message: "m"}
	if got, want := w.String(), "f.yaml: document 3 (NetworkPolicy ns/x): m"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestDamerauLevenshtein(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"pod", "pod", 0}, {"pod", "pdo", 1}, {"pod", "job", 2},
		{"networkpolicy", "netowrkpolicy", 1}, {"networkpolicy", "networkpolcy", 1}, {"ca", "abc", 2}, {"kitten", "sitting", 3},
	} {
		if got := manifest.DamerauLevenshteinForTest(tc.a, tc.b); got != tc.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := manifest.DamerauLevenshteinForTest(tc.b, tc.a); got != tc.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.b, tc.a, got, tc.want)
		}
	}
}

// TestLoadDuplicateNamesBothFiles: a duplicate names where it is and where
// it was first defined, across files, List items and stdin.
func TestLoadDuplicateNamesBothFiles(t *testing.T) {
	t.Parallel()
	pod := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: a\n"
	list := `{"apiVersion":"v1","kind":"List","items":[` + nsJSON("b") + `,{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"a"}}]}`
	dir := write(t, map[string]string{"1.yaml": pod, "2.json": nsJSON("z") + "\n" + list})
	_, lines := load(t, pod, dir, "-")
	first := filepath.Join(dir, "1.yaml") + ": document 1 (Pod a/p)"
	want := []string{
		filepath.Join(dir, "2.json") + ": document 2 item 2 (Pod a/p): duplicate Pod a/p: first defined in " + first,
		"<stdin>: document 1 (Pod a/p): duplicate Pod a/p: first defined in " + first,
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("errors\n  %s\nwant\n  %s", strings.Join(lines, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestUnenforcedPolicyKindsWarn: a CNI's own policy kind is skipped with a
// warning, never silently; the cluster-scoped policies of
// network-policy-api are read, without one.
func TestUnenforcedPolicyKindsWarn(t *testing.T) {
	t.Parallel()
	in := `apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: deny-all}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {}}
  egress:
  - {action: Deny, to: [{networks: [0.0.0.0/0]}]}
---
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {name: g}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c, namespace: x}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c, namespace: x}
`
	objs, err := (&manifest.Loader{Stdin: strings.NewReader(in)}).Load([]string{"-"})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs.Skipped) != 3 || len(objs.ClusterPolicies) != 1 {
		t.Fatalf("skipped %d, cluster policies %d, want 3 and 1", len(objs.Skipped), len(objs.ClusterPolicies))
	}
	if len(objs.Warnings) != 2 {
		t.Fatalf("warnings %v, want one for each CNI policy kind and none for the ConfigMap", objs.Warnings)
	}
	for i, kind := range []string{"GlobalNetworkPolicy", "CiliumNetworkPolicy"} {
		if w := objs.Warnings[i].String(); !strings.Contains(w, kind) || !strings.Contains(w, "not read by netfence yet") {
			t.Errorf("warning %d: %s", i, w)
		}
	}
}
