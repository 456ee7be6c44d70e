package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netfence/netfence/internal/image"
)

// build runs imagebuild with args and returns the digest it printed and
// the bytes it wrote to out.
func build(t *testing.T, out string, args ...string) (string, []byte) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(append(args, "--out", out), &stdout, &stderr); err != nil {
		t.Fatalf("imagebuild %v: %v\n%s", args, err, stderr.String())
	}
	digest := strings.TrimSpace(stdout.String())
	if !strings.HasPrefix(digest, "sha256:") || len(digest) != len("sha256:")+64 {
		t.Fatalf("stdout %q is not a digest", stdout.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return digest, b
}

// TestNetfenceImageReproducible builds the netfence image twice from the
// same binary bytes (this test binary stands in for netfence), through the
// same path as hack/image: same digest, same tar bytes.
func TestNetfenceImageReproducible(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "")
	bin := testBinary(t)
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	args := []string{"--netfence", bin, "--version", "v0.1.0", "--ca-certs-from", ca}
	d1, b1 := build(t, filepath.Join(dir, "a.oci.tar"), args...)
	d2, b2 := build(t, filepath.Join(dir, "b.oci.tar"), args...)
	if d1 != d2 || !bytes.Equal(b1, b2) {
		t.Fatalf("not reproducible: %s vs %s", d1, d2)
	}
	// SOURCE_DATE_EPOCH is the only clock that enters the image.
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	d3, _ := build(t, filepath.Join(dir, "c.oci.tar"), args...)
	if d3 == d1 {
		t.Error("SOURCE_DATE_EPOCH did not change the digest")
	}
}

// TestGenericImage builds a pause-like image from flags twice.
func TestGenericImage(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "")
	src := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(src, []byte("pause"), 0o700); err != nil {
		t.Fatal(err)
	}
	args := []string{
		"--name", "registry.k8s.io/pause:3.10",
		"--file", "/pause=" + src, "--file", "/etc/motd=" + src + ":0600",
		"--dir", "/data:1777",
		"--entrypoint", "/pause", "--cmd", `["-v","x"]`,
		"--user", "65535:65535", "--env", "A=1", "--label", "k=v", "--workdir", "/data",
		"--passwd",
	}
	dir := t.TempDir()
	d1, b1 := build(t, filepath.Join(dir, "a.tar"), args...)
	d2, b2 := build(t, filepath.Join(dir, "b.tar"), args...)
	if d1 != d2 || !bytes.Equal(b1, b2) {
		t.Fatalf("not reproducible: %s vs %s", d1, d2)
	}
	o, err := parse(args, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	c := o.spec.Config
	if strings.Join(c.Entrypoint, " ") != "/pause" || strings.Join(c.Cmd, " ") != "-v x" || c.User != "65535:65535" ||
		c.WorkingDir != "/data" || c.Labels["k"] != "v" || c.Env[len(c.Env)-1] != "A=1" {
		t.Errorf("config %+v", c)
	}
	modes := map[string]fs.FileMode{}
	for _, f := range o.spec.Files {
		modes[f.Path] = f.Mode
	}
	if modes["/pause"] != 0o755 || modes["/etc/motd"] != 0o600 || modes["/data"] != fs.ModeDir|fs.ModeSticky|0o777 {
		t.Errorf("modes %v", modes)
	}
	for _, bad := range [][]string{
		{"--out", "x"},                                   // no --name
		{"--name", "a:b", "--file", "/x"},                // no SRC
		{"--name", "a:b", "--file", "/x=/nonexistent/y"}, // missing SRC
		{"--name", "a:b", "--label", "novalue"},
		{"--netfence", src, "--user", "0:0"},
	} {
		if err := run(append(bad, "--out", filepath.Join(dir, "bad.tar")), &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func testBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// TestContainerdImport imports the netfence image into a private
// containerd (own root, state and socket under a temporary directory, no
// CRI plugin) and checks that it is tagged with the full reference and the
// digest imagebuild printed.
func TestContainerdImport(t *testing.T) {
	for _, b := range []string{"ctr", "containerd"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("skipping: %s not found (apt-get install containerd)", b)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: containerd needs root")
	}
	if _, err := os.Stat(image.HostCACertificates); err != nil {
		t.Skipf("skipping: no host CA bundle at %s", image.HostCACertificates)
	}
	// A short directory: the socket path must fit in sun_path (108 bytes).
	dir, err := os.MkdirTemp("", "nfimg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	tarball := filepath.Join(dir, "netfence.oci.tar")
	digest, _ := build(t, tarball, "--netfence", testBinary(t), "--version", "v0.1.0-test")

	sock := filepath.Join(dir, "containerd.sock")
	cfg := filepath.Join(dir, "config.toml")
	// Everything containerd writes stays in dir: the CRI plugin is off,
	// and so are the plugins that would use paths outside (opt: /opt/containerd).
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = ""
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("containerd", "--config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Registered after RemoveAll: runs before it.
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		// Unpacking mounts nothing that outlives the import; make sure.
		if b, err := os.ReadFile("/proc/self/mounts"); err == nil && bytes.Contains(b, []byte(dir)) {
			t.Errorf("mounts left under %s", dir)
		}
	})
	logs := func() string { b, _ := os.ReadFile(logf.Name()); return string(b) }

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ctr := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "ctr", append([]string{"-a", sock}, args...)...).CombinedOutput()
		return string(out), err
	}
	for {
		if _, err := ctr("version"); err == nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("containerd exited: %v\n%s", err, logs())
		case <-ctx.Done():
			t.Fatalf("containerd did not come up\n%s", logs())
		case <-time.After(200 * time.Millisecond):
		}
	}
	if out, err := ctr("images", "import", tarball); err != nil {
		t.Fatalf("ctr images import: %v\n%s\n%s", err, out, logs())
	} else {
		t.Logf("ctr images import:\n%s", out)
	}
	out, err := ctr("images", "ls")
	if err != nil {
		t.Fatalf("ctr images ls: %v\n%s", err, out)
	}
	t.Logf("ctr images ls:\n%s", out)
	found := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "ghcr.io/netfence/netfence:v0.1.0-test" {
			found = true
			if f[2] != digest {
				t.Errorf("imported digest %s, imagebuild printed %s", f[2], digest)
			}
		}
	}
	if !found {
		t.Errorf("ghcr.io/netfence/netfence:v0.1.0-test not in ctr images ls")
	}
	if out, err := ctr("images", "check"); err != nil || !strings.Contains(out, "complete") {
		t.Errorf("ctr images check: %v\n%s", err, out)
	}
}
