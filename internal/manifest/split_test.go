package manifest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/netfence/netfence/internal/manifest"
)

// pageSizes are the file sizes around every multiple of 4096 (bufio's
// buffer size, where the old reader lost a final line) up to 1 MiB.
func pageSizes() []int {
	var sizes []int
	for n := 1; n <= 256; n++ {
		sizes = append(sizes, n*4096-1, n*4096, n*4096+1)
	}
	return sizes
}

// sizedFormat is a way of writing a file of Namespaces ns-1..ns-N.
type sizedFormat struct {
	name string
	docs int
	// doc writes Namespace ns-i; pad, when >= 0, is the length of an
	// annotation value that pads it.
	doc func(i, pad int) string
	// sep is written between documents.
	sep string
}

func yamlBlockDoc(i, pad int) string {
	s := fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns-%d\n", i)
	if pad >= 0 {
		s += "  annotations:\n    pad: " + strings.Repeat("x", pad) + "\n"
	}
	return s
}

func yamlFlowDoc(i, pad int) string {
	s := fmt.Sprintf("{apiVersion: v1, kind: Namespace, metadata: {name: ns-%d", i)
	if pad >= 0 {
		s += ", annotations: {pad: " + strings.Repeat("x", pad) + "}"
	}
	return s + "}}"
}

func jsonDoc(i, pad int) string {
	s := fmt.Sprintf(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"ns-%d"`, i)
	if pad >= 0 {
		s += `,"annotations":{"pad":"` + strings.Repeat("x", pad) + `"}`
	}
	return s + "}}"
}

var sizedFormats = []sizedFormat{
	{name: "yaml", docs: 1, doc: yamlBlockDoc},
	{name: "yaml", docs: 3, doc: yamlBlockDoc, sep: "---\n"},
	// One line per document: the whole single-document file is one line.
	{name: "yaml-flow", docs: 1, doc: yamlFlowDoc},
	{name: "yaml-flow", docs: 3, doc: yamlFlowDoc, sep: "\n---\n"},
	{name: "json", docs: 1, doc: jsonDoc},
	{name: "json-concatenated", docs: 3, doc: jsonDoc},
	{name: "json-lines", docs: 3, doc: jsonDoc, sep: "\n"},
}

// padMark stands for the padding in a template.
const padMark = "\x00PAD\x00"

// sizedTemplate is a file in format f, split around its padding (in the
// last document, so that the file's last line is its longest one); docs
// are the documents, without surrounding whitespace, padMark for the
// padding.
func sizedTemplate(f sizedFormat, finalNewline bool) (prefix, suffix string, docs []string) {
	var b strings.Builder
	for i := 1; i <= f.docs; i++ {
		d := f.doc(i, -1)
		if i == f.docs {
			d = strings.Replace(f.doc(i, 1), "x", padMark, 1)
		}
		d = strings.TrimRight(d, "\n")
		docs = append(docs, d)
		if i > 1 {
			if f.sep == "---\n" {
				b.WriteByte('\n')
			}
			b.WriteString(f.sep)
		}
		b.WriteString(d)
	}
	if finalNewline {
		b.WriteByte('\n')
	}
	prefix, suffix, _ = strings.Cut(b.String(), padMark)
	return prefix, suffix, docs
}

// xs is the padding, sliced.
var xs = bytes.Repeat([]byte("x"), 1<<20+1)

// sizedFile fills buf with the file of exactly size bytes of a template
// and returns it with the padding's length.
func sizedFile(t testing.TB, buf []byte, prefix, suffix string, size int) ([]byte, int) {
	t.Helper()
	pad := size - len(prefix) - len(suffix)
	if pad < 1 {
		t.Fatalf("size %d is below the unpadded %d", size, len(prefix)+len(suffix))
	}
	buf = append(append(append(buf[:0], prefix...), xs[:pad]...), suffix...)
	return buf, pad
}

// sameDoc reports whether a document as split is want, with pad bytes of
// padding for padMark.
func sameDoc(got []byte, want string, pad int) bool {
	got = bytes.TrimSpace(got)
	if bytes.HasPrefix(got, []byte("---")) { // a separator line with content
		got = bytes.TrimSpace(got[3:])
	}
	before, after, padded := strings.Cut(want, padMark)
	if !padded {
		return string(got) == want
	}
	return len(got) == len(before)+pad+len(after) && bytes.HasPrefix(got, []byte(before)) && bytes.HasSuffix(got, []byte(after)) &&
		bytes.Count(got[len(before):len(before)+pad], []byte("x")) == pad
}

// TestSplitAroundPageSizes: every document of files of every size around a
// multiple of 4096 up to 1 MiB, in every format, with and without a final
// newline, comes out whole.
func TestSplitAroundPageSizes(t *testing.T) {
	t.Parallel()
	for _, f := range sizedFormats {
		for _, nl := range []bool{false, true} {
			name := fmt.Sprintf("%s/%d-docs/final-newline=%v", f.name, f.docs, nl)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				prefix, suffix, want := sizedTemplate(f, nl)
				buf := make([]byte, 0, 1<<20+4096)
				for _, size := range pageSizes() {
					data, pad := sizedFile(t, buf, prefix, suffix, size)
					if len(data) != size {
						t.Fatalf("built %d bytes, want %d", len(data), size)
					}
					got, err := manifest.SplitForTest("f", data)
					if err != nil {
						t.Fatalf("size %d: %v", size, err)
					}
					if len(got) != len(want) {
						t.Fatalf("size %d: %d documents, want %d", size, len(got), len(want))
					}
					for i := range got {
						if !sameDoc(got[i], want[i], pad) {
							t.Fatalf("size %d: document %d is %d bytes %.60q..., want %.60q...", size, i+1, len(got[i]), got[i], want[i])
						}
					}
				}
			})
		}
	}
}

// TestLoadAroundPageSizes: the same files through the loader, for the
// sizes around the first pages and 1 MiB (decoding a megabyte takes long
// under the race detector: TestSplitAroundPageSizes covers every size).
func TestLoadAroundPageSizes(t *testing.T) {
	t.Parallel()
	var sizes []int
	for _, n := range []int{1, 2, 3} {
		sizes = append(sizes, n*4096-1, n*4096, n*4096+1)
	}
	for _, f := range sizedFormats {
		for _, nl := range []bool{false, true} {
			fsizes := sizes
			if !nl && f.docs == 1 || f.name == "json-lines" && !nl {
				fsizes = append(fsizes, 256*4096)
			}
			for _, size := range fsizes {
				prefix, suffix, _ := sizedTemplate(f, nl)
				data, pad := sizedFile(t, nil, prefix, suffix, size)
				if len(data) != size {
					t.Fatalf("built %d bytes, want %d", len(data), size)
				}
				name := fmt.Sprintf("%s/%d-docs/final-newline=%v/%d", f.name, f.docs, nl, size)
				dir := write(t, map[string]string{"f": string(data)})
				objs, lines := load(t, "", dir+"/f")
				if len(lines) > 0 {
					t.Errorf("%s: errors %v", name, lines)
					continue
				}
				if len(objs.Namespaces) != f.docs {
					t.Errorf("%s: %d namespaces, want %d", name, len(objs.Namespaces), f.docs)
					continue
				}
				for i, ns := range objs.Namespaces {
					if want := fmt.Sprintf("ns-%d", i+1); ns.Name != want {
						t.Errorf("%s: namespace %d is %s, want %s", name, i, ns.Name, want)
					}
				}
				if got := len(objs.Namespaces[f.docs-1].Annotations["pad"]); got != pad {
					t.Errorf("%s: padding of %d bytes, want %d", name, got, pad)
				}
			}
		}
	}
}

// FuzzJSONScanner: the JSON stream scanner accepts every value
// encoding/json accepts, and refuses every other one except strings with
// control characters (let through, see jsonScanner).
func FuzzJSONScanner(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,-2.5e+3,true,false,null,"x\"\\\u00e9"]}`, `[`, `{"a" 1}`, `01`, `"\x"`, `1.`, `-`, "{\"a\":\"\t\"}", ` [ ] `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		mine, std := manifest.ValidJSONForTest(data), json.Valid(data)
		if std && !mine {
			t.Fatalf("scanner refuses valid JSON %q", data)
		}
		if mine && !std && !bytes.ContainsFunc(data, func(r rune) bool { return r < 0x20 }) {
			t.Fatalf("scanner accepts invalid JSON %q", data)
		}
	})
}

// benchFile is about 4 MB of Pods and NetworkPolicies, in YAML or as a
// JSON stream.
func benchFile(json bool) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 4<<20; i++ {
		if json {
			fmt.Fprintf(&b, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p-%d","namespace":"ns-%d","labels":{"app":"a-%d","tier":"web"}},"spec":{"containers":[{"name":"c","ports":[{"name":"http","containerPort":8080}]}]},"status":{"phase":"Running","podIP":"10.%d.%d.%d"}}`+"\n",
				i, i%50, i%20, i>>16&255, i>>8&255, i&255)
			fmt.Fprintf(&b, `{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"np-%d","namespace":"ns-%d"},"spec":{"podSelector":{"matchLabels":{"app":"a-%d"}},"ingress":[{"from":[{"podSelector":{"matchLabels":{"tier":"web"}}}],"ports":[{"port":"http"}]}]}}`+"\n", i, i%50, i%20)
			continue
		}
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p-%d\n  namespace: ns-%d\n  labels:\n    app: a-%d\n    tier: web\nspec:\n  containers:\n  - name: c\n    ports:\n    - name: http\n      containerPort: 8080\nstatus:\n  phase: Running\n  podIP: 10.%d.%d.%d\n",
			i, i%50, i%20, i>>16&255, i>>8&255, i&255)
		fmt.Fprintf(&b, "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: np-%d\n  namespace: ns-%d\nspec:\n  podSelector:\n    matchLabels: {app: a-%d}\n  ingress:\n  - from:\n    - podSelector:\n        matchLabels: {tier: web}\n    ports:\n    - port: http\n", i, i%50, i%20)
	}
	return b.Bytes()
}

func benchmarkLoad(b *testing.B, json bool) {
	data := benchFile(json)
	dir := b.TempDir()
	path := dir + "/f"
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := (&manifest.Loader{}).Load([]string{path}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadYAML4MB and BenchmarkLoadJSON4MB: the loader on 4 MB.
func BenchmarkLoadYAML4MB(b *testing.B) { benchmarkLoad(b, false) }

func BenchmarkLoadJSON4MB(b *testing.B) { benchmarkLoad(b, true) }
