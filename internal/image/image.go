// Package image builds small, reproducible OCI container images without a
// container engine: one layer made of a list of files, one config, one
// manifest, written as an OCI image layout packed in a tar (oci-layout,
// index.json, blobs/sha256/...) that `ctr images import`, `podman load` or
// `skopeo copy oci-archive:` accept.
//
// Reproducibility: the same Spec gives the same bytes, hence the same
// manifest digest. Every tar header is normalized (uid/gid 0 unless a File
// says otherwise, no user or group names, one fixed mtime, entries sorted by
// path, missing parent directories added as 0755), the creation time is
// fixed (the Unix epoch, or SOURCE_DATE_EPOCH through SourceDateEpoch), the
// layer is gzip-compressed with no name or time in the gzip header, and the
// JSON documents are marshaled from structs (map keys sorted by
// encoding/json).
//
// The data model (v1.Manifest, v1.ConfigFile, v1.IndexManifest, v1.Hash,
// media types) is go-containerregistry's pkg/v1 and pkg/v1/types; the bytes
// are assembled here with archive/tar and compress/gzip, which keeps every
// byte of the output under this package's control. (go-containerregistry's
// mutate, tarball and layout packages would also need modules that go.mod
// does not have: opencontainers/go-digest, opencontainers/image-spec and
// klauspost/compress.)
package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotation keys written on the manifest descriptor in index.json.
const (
	// AnnotationRefName is the OCI image layout's name for a manifest.
	AnnotationRefName = "org.opencontainers.image.ref.name"
	// AnnotationContainerdName is the key containerd's importer (ctr images
	// import) reads first to name the image it creates.
	AnnotationContainerdName = "io.containerd.image.name"
	// AnnotationCreated is the OCI creation-time annotation (RFC 3339).
	AnnotationCreated = "org.opencontainers.image.created"
)

// File is one entry of the image's single layer.
type File struct {
	// Path is the absolute path in the image, e.g. /usr/local/bin/netfence.
	Path string
	// Source is a host file to copy; used when Data is nil.
	Source string
	// Data is the content; it wins over Source.
	Data []byte
	// Mode holds the permission bits (and fs.ModeSticky, fs.ModeSetuid,
	// fs.ModeSetgid); fs.ModeDir makes a directory (no content). Zero means
	// 0644 for a file and 0755 for a directory.
	Mode fs.FileMode
	// UID and GID own the entry; the default 0 is root.
	UID, GID int
}

// Config is the runtime configuration recorded in the image config.
type Config struct {
	Entrypoint []string
	Cmd        []string
	// User is "uid", "uid:gid" or a name known to the image's /etc/passwd.
	User       string
	Env        []string
	Labels     map[string]string
	WorkingDir string
}

// Spec describes an image to build.
type Spec struct {
	// Name is the full reference the image is tagged with on import, e.g.
	// ghcr.io/netfence/netfence:v0.1.0. It is written to index.json only:
	// it does not change the manifest digest.
	Name string
	// OS and Arch default to linux and runtime.GOARCH.
	OS, Arch string
	// Files make up the layer; their order does not matter.
	Files []File
	// Config is the runtime configuration.
	Config Config
	// Created is the creation time recorded in the config, the history and
	// every tar header; the zero value means the Unix epoch (time 0).
	Created time.Time
	// CreatedBy is recorded in the config's history; empty means
	// "netfence internal/image".
	CreatedBy string
}

// Image is a built image, held in memory.
type Image struct {
	name     string
	created  time.Time
	layer    []byte // gzip-compressed layer tar
	config   []byte // image config JSON
	manifest []byte // image manifest JSON

	layerDigest, diffID, configDigest, manifestDigest v1.Hash
}

// Build builds the image described by spec. It reads every File.Source.
func Build(spec Spec) (*Image, error) {
	if spec.Name == "" {
		return nil, fmt.Errorf("image: empty image name")
	}
	created := spec.Created.UTC()
	if spec.Created.IsZero() {
		created = time.Unix(0, 0).UTC()
	}
	created = created.Truncate(time.Second)
	osName, arch := spec.OS, spec.Arch
	if osName == "" {
		osName = "linux"
	}
	if arch == "" {
		arch = runtime.GOARCH
	}

	layerTar, err := layerTar(spec.Files, created)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", spec.Name, err)
	}
	diffID := sha(layerTar)
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("image %s: gzip: %w", spec.Name, err)
	}
	// The gzip header carries no name and no time (ModTime zero): only
	// the content decides the bytes.
	if _, err := zw.Write(layerTar); err != nil {
		return nil, fmt.Errorf("image %s: gzip: %w", spec.Name, err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("image %s: gzip: %w", spec.Name, err)
	}
	img := &Image{name: spec.Name, created: created, layer: gz.Bytes(), diffID: diffID}
	img.layerDigest = sha(img.layer)

	createdBy := spec.CreatedBy
	if createdBy == "" {
		createdBy = "netfence internal/image"
	}
	cf := v1.ConfigFile{
		Architecture: arch,
		OS:           osName,
		Created:      v1.Time{Time: created},
		Config: v1.Config{
			Entrypoint: spec.Config.Entrypoint,
			Cmd:        spec.Config.Cmd,
			User:       spec.Config.User,
			Env:        spec.Config.Env,
			Labels:     spec.Config.Labels,
			WorkingDir: spec.Config.WorkingDir,
		},
		RootFS:  v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}},
		History: []v1.History{{Created: v1.Time{Time: created}, CreatedBy: createdBy}},
	}
	if img.config, err = json.Marshal(cf); err != nil {
		return nil, fmt.Errorf("image %s: config: %w", spec.Name, err)
	}
	img.configDigest = sha(img.config)

	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(img.config)), Digest: img.configDigest},
		Layers:        []v1.Descriptor{{MediaType: types.OCILayer, Size: int64(len(img.layer)), Digest: img.layerDigest}},
	}
	if img.manifest, err = json.Marshal(m); err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", spec.Name, err)
	}
	img.manifestDigest = sha(img.manifest)
	return img, nil
}

// Name is the reference the image is tagged with.
func (img *Image) Name() string { return img.name }

// Digest is the manifest digest: what a registry or containerd reports as
// the image's digest.
func (img *Image) Digest() v1.Hash { return img.manifestDigest }

// ConfigDigest is the digest of the image config (Docker's "image ID").
func (img *Image) ConfigDigest() v1.Hash { return img.configDigest }

// DiffID is the digest of the uncompressed layer.
func (img *Image) DiffID() v1.Hash { return img.diffID }

// Manifest returns the manifest JSON.
func (img *Image) Manifest() []byte { return bytes.Clone(img.manifest) }

// ConfigJSON returns the image config JSON.
func (img *Image) ConfigJSON() []byte { return bytes.Clone(img.config) }

// Layer returns the gzip-compressed layer tar.
func (img *Image) Layer() []byte { return bytes.Clone(img.layer) }

// Index returns index.json: one manifest descriptor, annotated with the
// image name for the OCI layout (org.opencontainers.image.ref.name) and for
// containerd (io.containerd.image.name), both the full reference, so that
// `ctr images import` tags the image with it.
func (img *Image) Index() ([]byte, error) {
	var cf v1.ConfigFile
	if err := json.Unmarshal(img.config, &cf); err != nil {
		return nil, fmt.Errorf("image %s: config: %w", img.name, err)
	}
	idx := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: types.OCIManifestSchema1,
			Size:      int64(len(img.manifest)),
			Digest:    img.manifestDigest,
			Annotations: map[string]string{
				AnnotationRefName:        img.name,
				AnnotationContainerdName: img.name,
				AnnotationCreated:        img.created.Format(time.RFC3339),
			},
			Platform: &v1.Platform{OS: cf.OS, Architecture: cf.Architecture},
		}},
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return nil, fmt.Errorf("image %s: index: %w", img.name, err)
	}
	return b, nil
}

// WriteOCILayout writes the image as an OCI image layout packed in a tar:
// oci-layout, index.json and blobs/sha256/<hex> for the manifest, the
// config and the layer, with normalized headers in sorted order.
func (img *Image) WriteOCILayout(w io.Writer) error {
	index, err := img.Index()
	if err != nil {
		return err
	}
	blob := func(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
	entries := []tarEntry{
		{name: "blobs/", mode: 0o755, dir: true},
		{name: "blobs/sha256/", mode: 0o755, dir: true},
		{name: blob(img.configDigest), mode: 0o644, data: img.config},
		{name: blob(img.layerDigest), mode: 0o644, data: img.layer},
		{name: blob(img.manifestDigest), mode: 0o644, data: img.manifest},
		{name: "index.json", mode: 0o644, data: index},
		{name: "oci-layout", mode: 0o644, data: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	if err := writeTar(w, entries, img.created); err != nil {
		return fmt.Errorf("image %s: write OCI layout: %w", img.name, err)
	}
	return nil
}

// WriteFile writes the OCI layout tar to path (via a temporary file in the
// same directory, renamed into place), creating the directory if needed.
func (img *Image) WriteFile(file string) (err error) {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("image %s: %w", img.name, err)
	}
	f, err := os.CreateTemp(filepath.Dir(file), ".oci-*.tar")
	if err != nil {
		return fmt.Errorf("image %s: %w", img.name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = img.WriteOCILayout(f); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("image %s: %w", img.name, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("image %s: %w", img.name, err)
	}
	if err = os.Rename(f.Name(), file); err != nil {
		return fmt.Errorf("image %s: %w", img.name, err)
	}
	return nil
}

// SourceDateEpoch returns the time in the SOURCE_DATE_EPOCH environment
// variable (seconds since the Unix epoch, see
// https://reproducible-builds.org/specs/source-date-epoch/), or the Unix
// epoch itself when the variable is unset or empty.
func SourceDateEpoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", s, err)
	}
	return time.Unix(n, 0).UTC(), nil
}

type tarEntry struct {
	name     string // relative, directories end in "/"
	mode     int64  // tar mode bits
	uid, gid int
	dir      bool
	data     []byte
}

// layerTar turns files into a normalized layer tar: paths cleaned and
// relative, missing parents added as root-owned 0755 directories, entries
// sorted by path.
func layerTar(files []File, mtime time.Time) ([]byte, error) {
	byPath := map[string]tarEntry{}
	for _, f := range files {
		if !strings.HasPrefix(f.Path, "/") {
			return nil, fmt.Errorf("file %q: path in image must be absolute", f.Path)
		}
		p := strings.TrimPrefix(path.Clean(f.Path), "/")
		if p == "" {
			return nil, fmt.Errorf("file %q: cannot replace /", f.Path)
		}
		e := tarEntry{name: p, uid: f.UID, gid: f.GID, dir: f.Mode.IsDir()}
		e.mode = tarMode(f.Mode, e.dir)
		if e.dir {
			if f.Data != nil || f.Source != "" {
				return nil, fmt.Errorf("file %q: a directory has no content", f.Path)
			}
			e.name += "/"
		} else {
			switch {
			case f.Data != nil:
				e.data = f.Data
			case f.Source != "":
				b, err := os.ReadFile(f.Source)
				if err != nil {
					return nil, fmt.Errorf("file %q: %w", f.Path, err)
				}
				e.data = b
			default:
				e.data = []byte{}
			}
		}
		key := strings.TrimSuffix(e.name, "/")
		if _, dup := byPath[key]; dup {
			return nil, fmt.Errorf("file %q: listed twice", f.Path)
		}
		byPath[key] = e
	}
	// Parents: every ancestor must be a directory, added when missing.
	for key := range byPath {
		for dir := path.Dir(key); dir != "."; dir = path.Dir(dir) {
			if e, ok := byPath[dir]; ok {
				if !e.dir {
					return nil, fmt.Errorf("file %q: parent /%s is a file", "/"+key, dir)
				}
				continue
			}
			byPath[dir] = tarEntry{name: dir + "/", mode: 0o755, dir: true}
		}
	}
	keys := make([]string, 0, len(byPath))
	for k := range byPath {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	entries := make([]tarEntry, len(keys))
	for i, k := range keys {
		entries[i] = byPath[k]
	}
	var buf bytes.Buffer
	if err := writeTar(&buf, entries, mtime); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return buf.Bytes(), nil
}

// tarMode maps an fs.FileMode to tar mode bits, with the defaults 0644
// (file) and 0755 (directory).
func tarMode(m fs.FileMode, dir bool) int64 {
	perm := int64(m.Perm())
	if perm == 0 {
		perm = 0o644
		if dir {
			perm = 0o755
		}
	}
	if m&fs.ModeSetuid != 0 {
		perm |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		perm |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		perm |= 0o1000
	}
	return perm
}

// writeTar writes entries in the given order with normalized headers: no
// user or group names, one modification time, and the smallest format that
// fits (USTAR, PAX for long names), decided by the content alone.
func writeTar(w io.Writer, entries []tarEntry, mtime time.Time) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.gid,
			ModTime: mtime,
		}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("%s: %w", e.name, err)
		}
		if !e.dir {
			if _, err := tw.Write(e.data); err != nil {
				return fmt.Errorf("%s: %w", e.name, err)
			}
		}
	}
	return tw.Close()
}

func sha(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}
