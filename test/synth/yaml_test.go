package synth

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// dropNulls removes null members of objects, which the converter leaves
// out.
func dropNulls(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e == nil {
				delete(x, k)
			} else {
				x[k] = dropNulls(e)
			}
		}
	case []any:
		for i, e := range x {
			x[i] = dropNulls(e)
		}
	}
	return v
}

func TestJSONToYAML(t *testing.T) {
	tricky := []string{
		"", "yes", "No", "ON", "off", "y", "N", "true", "False", "null", "Null", "~", "123", "-1", "1.5", "1e3",
		"0x1F", "0o17", "1:20", ".inf", ".NaN", "a: b", "a:b", "a:", ":a", "- x", "#c", "x #y", "a\nb", "tab\t",
		"é", "日本", "nginx:1.27", "fd00::/8", "::/0", "10.244.0.1", "0.0.0.0/0", "@x", "`x", "'q'", "\"dq\"",
		"<<", "=", "!tag", "&anchor", "*alias", "%dir", "{a}", "[a]", "a,b", "a b", " lead", "trail ", "?", "|", ">",
		"kubernetes.io/metadata.name", "app.kubernetes.io/name", "5vp9dfrkqm", "v1", "Running", "\u2028", "<html>",
	}
	var docs []any
	for _, s := range tricky {
		docs = append(docs, map[string]any{"k": s, s + "key": 1, "list": []any{s, map[string]any{"x": s}}})
	}
	docs = append(docs,
		map[string]any{},
		[]any{},
		[]any{1, "a", nil, true, []any{}, map[string]any{}, []any{[]any{1, 2}, []any{}}, map[string]any{"a": []any{map[string]any{"b": map[string]any{"c": []any{}}}}}},
		"scalar", 3.25, -17, true, nil,
		map[string]any{"n": nil, "o": map[string]any{"only": nil}, "e": map[string]any{"a": map[string]any{}}, "arr": []any{nil, map[string]any{"z": nil}}},
		map[string]any{"deep": map[string]any{"l": []any{[]any{map[string]any{"a": 1, "b": []any{"x", "y"}}}}}},
	)
	for i, d := range docs {
		js, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		y, err := jsonToYAML(js)
		if err != nil {
			t.Fatalf("doc %d: %v", i, err)
		}
		var got any
		if err := yaml.Unmarshal(y, &got); err != nil {
			t.Fatalf("doc %d: %v\n%s", i, err, y)
		}
		var want any
		if err := json.Unmarshal(js, &want); err != nil {
			t.Fatal(err)
		}
		want = dropNulls(want)
		if _, isMap := want.(map[string]any); !isMap && want == nil {
			want = nil
		}
		// YAML numbers come back as float64 via JSON, like want.
		if !reflect.DeepEqual(got, want) {
			t.Errorf("doc %d: %s\nbecame\n%s\nread back as %#v, want %#v", i, js, y, got, want)
		}
	}
	for _, bad := range []string{`{"a":`, `{"a" 1}`, `[1,2`, `{"a":1} x`, `"abc`} {
		if _, err := jsonToYAML([]byte(bad)); err == nil {
			t.Errorf("jsonToYAML(%s) succeeded", bad)
		}
	}
}

func TestPlainSafe(t *testing.T) {
	for s, want := range map[string]bool{
		"abc": true, "kubernetes.io/metadata.name": true, "nginx:1.27": true, "fd00::/8": true, "v1": true,
		"yes": false, "Off": false, "1abc": false, "a b": false, "a:": false, "": false, "-a": false, ".a": false,
	} {
		if got := plainSafe([]byte(s)); got != want {
			t.Errorf("plainSafe(%q) = %v", s, got)
		}
	}
}

func TestYAMLLayout(t *testing.T) {
	js := `{"kind":"Pod","metadata":{"name":"p","labels":{"app":"x"},"creationTimestamp":null},` +
		`"spec":{"containers":[{"name":"c","ports":[{"name":"http","containerPort":8080}]}],"empty":{}},"list":[]}`
	y, err := jsonToYAML([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"kind: Pod",
		"metadata:",
		"  name: p",
		"  labels:",
		"    app: x",
		"spec:",
		"  containers:",
		"  - name: c",
		"    ports:",
		"    - name: http",
		"      containerPort: 8080",
		"  empty: {}",
		"list: []",
		"",
	}, "\n")
	if string(y) != want {
		t.Errorf("got\n%s\nwant\n%s", y, want)
	}
}
