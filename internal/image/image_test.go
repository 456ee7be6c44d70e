package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// testSpec is a small image with a host file, bytes, a directory and a
// nested path whose parents are implicit.
func testSpec(t *testing.T) Spec {
	t.Helper()
	src := filepath.Join(t.TempDir(), "tool")
	if err := os.WriteFile(src, []byte("#!/bin/true\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	files := []File{
		{Path: "/usr/local/bin/tool", Source: src, Mode: 0o755},
		{Path: "/etc/tool/config.yaml", Data: []byte("a: 1\n")},
		{Path: "/var/lib/tool", Mode: fs.ModeDir | 0o750, UID: 65532, GID: 65532},
	}
	files = append(files, Users()...)
	return Spec{
		Name:  "example.com/tools/tool:v1",
		Arch:  "amd64",
		Files: files,
		Config: Config{
			Entrypoint: []string{"/usr/local/bin/tool"},
			Cmd:        []string{"--flag"},
			User:       "65532:65532",
			Env:        []string{"A=1", "B=2"},
			Labels:     map[string]string{"z": "last", "a": "first"},
			WorkingDir: "/var/lib/tool",
		},
	}
}

func layoutBytes(t *testing.T, img *Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := img.WriteOCILayout(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readTar returns the headers and contents of a tar, in order.
func readTar(t *testing.T, r io.Reader) ([]*tar.Header, map[string][]byte) {
	t.Helper()
	tr := tar.NewReader(r)
	var hs []*tar.Header
	data := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hs, data
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
		data[h.Name] = b
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	spec := testSpec(t)
	a, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	// Same content, files listed in another order, from bytes instead of
	// the host file: the same image.
	spec2 := testSpec(t)
	for i, j := 0, len(spec2.Files)-1; i < j; i, j = i+1, j-1 {
		spec2.Files[i], spec2.Files[j] = spec2.Files[j], spec2.Files[i]
	}
	for i := range spec2.Files {
		if spec2.Files[i].Source != "" {
			spec2.Files[i].Source, spec2.Files[i].Data = "", []byte("#!/bin/true\n")
		}
	}
	b, err := Build(spec2)
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest() != b.Digest() {
		t.Fatalf("digests differ: %s vs %s", a.Digest(), b.Digest())
	}
	if !bytes.Equal(layoutBytes(t, a), layoutBytes(t, b)) {
		t.Fatal("OCI layout tars differ")
	}

	// Any change of content or config changes the digest.
	spec3 := testSpec(t)
	spec3.Config.Env = append(spec3.Config.Env, "C=3")
	c, err := Build(spec3)
	if err != nil {
		t.Fatal(err)
	}
	if c.Digest() == a.Digest() {
		t.Fatal("config change did not change the digest")
	}
	// The name is not part of the manifest.
	spec4 := testSpec(t)
	spec4.Name = "example.com/other:v2"
	d, err := Build(spec4)
	if err != nil {
		t.Fatal(err)
	}
	if d.Digest() != a.Digest() {
		t.Fatal("the name changed the manifest digest")
	}
}

func TestLayerContents(t *testing.T) {
	img, err := Build(testSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := sha(img.Layer()); got.String() != img.layerDigest.String() {
		t.Fatalf("layer digest %s, want %s", img.layerDigest, got)
	}
	zr, err := gzip.NewReader(bytes.NewReader(img.Layer()))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header has name %q, time %v", zr.Name, zr.ModTime)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if sha(raw) != img.DiffID() {
		t.Fatalf("diff id %s, uncompressed layer %s", img.DiffID(), sha(raw))
	}
	hs, data := readTar(t, bytes.NewReader(raw))
	type entry struct {
		typ      byte
		mode     int64
		uid, gid int
	}
	want := map[string]entry{
		"etc/":                 {tar.TypeDir, 0o755, 0, 0},
		"etc/group":            {tar.TypeReg, 0o644, 0, 0},
		"etc/nsswitch.conf":    {tar.TypeReg, 0o644, 0, 0},
		"etc/passwd":           {tar.TypeReg, 0o644, 0, 0},
		"etc/tool/":            {tar.TypeDir, 0o755, 0, 0},
		"etc/tool/config.yaml": {tar.TypeReg, 0o644, 0, 0},
		"home/":                {tar.TypeDir, 0o755, 0, 0},
		"home/nonroot/":        {tar.TypeDir, 0o700, 65532, 65532},
		"root/":                {tar.TypeDir, 0o700, 0, 0},
		"tmp/":                 {tar.TypeDir, 0o1777, 0, 0},
		"usr/":                 {tar.TypeDir, 0o755, 0, 0},
		"usr/local/":           {tar.TypeDir, 0o755, 0, 0},
		"usr/local/bin/":       {tar.TypeDir, 0o755, 0, 0},
		"usr/local/bin/tool":   {tar.TypeReg, 0o755, 0, 0},
		"var/":                 {tar.TypeDir, 0o755, 0, 0},
		"var/lib/":             {tar.TypeDir, 0o755, 0, 0},
		"var/lib/tool/":        {tar.TypeDir, 0o750, 65532, 65532},
	}
	var names []string
	for _, h := range hs {
		names = append(names, h.Name)
		w, ok := want[h.Name]
		if !ok {
			t.Errorf("unexpected entry %q", h.Name)
			continue
		}
		if got := (entry{h.Typeflag, h.Mode, h.Uid, h.Gid}); got != w {
			t.Errorf("%s: got %+v, want %+v", h.Name, got, w)
		}
		if !h.ModTime.Equal(time.Unix(0, 0)) || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: header not normalized: mtime %v, uname %q, gname %q", h.Name, h.ModTime, h.Uname, h.Gname)
		}
	}
	if len(hs) != len(want) {
		t.Errorf("%d entries, want %d: %v", len(hs), len(want), names)
	}
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Errorf("entries not sorted: %q before %q", names[i-1], names[i])
		}
	}
	if got := string(data["usr/local/bin/tool"]); got != "#!/bin/true\n" {
		t.Errorf("tool content %q", got)
	}
	if got := string(data["etc/passwd"]); !strings.Contains(got, "\nnonroot:x:65532:65532:") || !strings.HasPrefix(got, "root:x:0:0:") {
		t.Errorf("/etc/passwd:\n%s", got)
	}
	if got := string(data["etc/group"]); !strings.Contains(got, "\nnonroot:x:65532:") || !strings.HasPrefix(got, "root:x:0:") {
		t.Errorf("/etc/group:\n%s", got)
	}
}

func TestConfig(t *testing.T) {
	spec := testSpec(t)
	spec.Created = time.Unix(1700000000, 0)
	img, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(img.ConfigJSON()))
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	if !cf.Created.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("created %v", cf.Created)
	}
	c := cf.Config
	if !reflect.DeepEqual(c.Entrypoint, spec.Config.Entrypoint) || !reflect.DeepEqual(c.Cmd, spec.Config.Cmd) ||
		c.User != "65532:65532" || !reflect.DeepEqual(c.Env, spec.Config.Env) ||
		!reflect.DeepEqual(c.Labels, spec.Config.Labels) || c.WorkingDir != "/var/lib/tool" {
		t.Errorf("config %+v, want %+v", c, spec.Config)
	}
	if cf.RootFS.Type != "layers" || len(cf.RootFS.DiffIDs) != 1 || cf.RootFS.DiffIDs[0] != img.DiffID() {
		t.Errorf("rootfs %+v", cf.RootFS)
	}
	m, err := v1.ParseManifest(bytes.NewReader(img.Manifest()))
	if err != nil {
		t.Fatal(err)
	}
	if m.SchemaVersion != 2 || m.MediaType != types.OCIManifestSchema1 ||
		m.Config.MediaType != types.OCIConfigJSON || m.Config.Digest != img.ConfigDigest() ||
		len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCILayer {
		t.Errorf("manifest %s", img.Manifest())
	}
}

func TestOCILayout(t *testing.T) {
	img, err := Build(testSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	hs, data := readTar(t, bytes.NewReader(layoutBytes(t, img)))
	var names []string
	for _, h := range hs {
		names = append(names, h.Name)
		if !h.ModTime.Equal(time.Unix(0, 0)) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: header not normalized", h.Name)
		}
	}
	blob := func(h v1.Hash) string { return "blobs/sha256/" + h.Hex }
	wantNames := []string{"blobs/", "blobs/sha256/", blob(img.ConfigDigest()), blob(img.layerDigest), blob(img.Digest()), "index.json", "oci-layout"}
	// The three blobs sort by digest.
	mid := wantNames[2:5]
	for i := range mid {
		for j := i + 1; j < len(mid); j++ {
			if mid[j] < mid[i] {
				mid[i], mid[j] = mid[j], mid[i]
			}
		}
	}
	if !reflect.DeepEqual(names, wantNames) {
		t.Fatalf("entries %v, want %v", names, wantNames)
	}
	for _, n := range names[2:5] {
		if got := sha(data[n]); "blobs/sha256/"+got.Hex != n {
			t.Errorf("%s has digest %s", n, got)
		}
	}
	if got := string(data["oci-layout"]); got != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout %s", got)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(data["index.json"]))
	if err != nil {
		t.Fatal(err)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != types.OCIImageIndex || len(idx.Manifests) != 1 {
		t.Fatalf("index.json %s", data["index.json"])
	}
	d := idx.Manifests[0]
	if d.Digest != img.Digest() || d.Size != int64(len(img.Manifest())) || d.MediaType != types.OCIManifestSchema1 {
		t.Errorf("manifest descriptor %+v", d)
	}
	for _, k := range []string{AnnotationRefName, AnnotationContainerdName} {
		if got := d.Annotations[k]; got != "example.com/tools/tool:v1" {
			t.Errorf("annotation %s = %q", k, got)
		}
	}
	if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture != "amd64" {
		t.Errorf("platform %+v", d.Platform)
	}
	var raw map[string]any
	if err := json.Unmarshal(data["index.json"], &raw); err != nil {
		t.Fatal(err)
	}

	// WriteFile writes the same bytes.
	out := filepath.Join(t.TempDir(), "sub", "img.oci.tar")
	if err := img.WriteFile(out); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, layoutBytes(t, img)) {
		t.Error("WriteFile wrote other bytes than WriteOCILayout")
	}
}

func TestBuildErrors(t *testing.T) {
	for name, spec := range map[string]Spec{
		"no name":        {Files: []File{{Path: "/a", Data: []byte("x")}}},
		"relative path":  {Name: "x:y", Files: []File{{Path: "a", Data: []byte("x")}}},
		"duplicate":      {Name: "x:y", Files: []File{{Path: "/a", Data: []byte("x")}, {Path: "/a/", Data: []byte("y")}}},
		"file as parent": {Name: "x:y", Files: []File{{Path: "/a", Data: []byte("x")}, {Path: "/a/b", Data: []byte("y")}}},
		"dir content":    {Name: "x:y", Files: []File{{Path: "/a", Mode: fs.ModeDir, Data: []byte("x")}}},
	} {
		if _, err := Build(spec); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	_, err := Build(Spec{Name: "x:y", Files: []File{{Path: "/a", Source: "/nonexistent/file"}}})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing source: %v, want fs.ErrNotExist wrapped", err)
	}
}

func TestSourceDateEpoch(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "")
	if got, err := SourceDateEpoch(); err != nil || !got.Equal(time.Unix(0, 0)) {
		t.Errorf("unset: %v, %v", got, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	if got, err := SourceDateEpoch(); err != nil || !got.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("set: %v, %v", got, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, err := SourceDateEpoch(); err == nil {
		t.Error("bad value: no error")
	}
}

func TestCACertificates(t *testing.T) {
	if _, err := os.Stat(HostCACertificates); err != nil {
		t.Skipf("no host CA bundle at %s", HostCACertificates)
	}
	f, err := CACertificates("")
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != CACertificatesPath || !bytes.Contains(f.Data, []byte("BEGIN CERTIFICATE")) {
		t.Errorf("CA file %s with %d bytes", f.Path, len(f.Data))
	}
	if _, err := CACertificates("/nonexistent/ca.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing bundle: %v", err)
	}
}

// TestNetfenceImageReproducible builds the netfence image twice from the
// same binary bytes: the same digest and the same tar bytes.
func TestNetfenceImageReproducible(t *testing.T) {
	bin := bytes.Repeat([]byte("\x7fELF netfence "), 4096)
	ca := File{Path: CACertificatesPath, Data: []byte("-----BEGIN CERTIFICATE-----\n"), Mode: 0o644}
	var digests []v1.Hash
	var tars [][]byte
	for range 2 {
		img, err := Build(NetfenceSpec("v0.1.0", bytes.Clone(bin), ca, time.Time{}))
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, img.Digest())
		tars = append(tars, layoutBytes(t, img))
		if img.Name() != "ghcr.io/netfence/netfence:v0.1.0" {
			t.Errorf("name %s", img.Name())
		}
		cf, err := v1.ParseConfigFile(bytes.NewReader(img.ConfigJSON()))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(cf.Config.Entrypoint, []string{"/usr/local/bin/netfence"}) || cf.Config.User != "65532:65532" {
			t.Errorf("config %+v", cf.Config)
		}
	}
	if digests[0] != digests[1] || !bytes.Equal(tars[0], tars[1]) {
		t.Fatalf("not reproducible: %s vs %s", digests[0], digests[1])
	}
}
