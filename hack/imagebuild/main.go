// Command imagebuild builds a reproducible single-layer OCI image from files
// on the host, without Docker or a registry, and writes it as an OCI image
// layout tar that `ctr images import` (or `podman load`, `skopeo copy
// oci-archive:...`) accepts, tagged with the full reference given by --name.
// It prints the manifest digest (sha256:...) on stdout; the same inputs give
// the same bytes and the same digest.
//
// Usage:
//
//	go run ./hack/imagebuild --name REF --out FILE [flags]
//	go run ./hack/imagebuild --netfence BINARY [--version V] --out FILE
//
// Example, the pause image a local cluster needs:
//
//	go run ./hack/imagebuild --name registry.k8s.io/pause:3.10 \
//	    --file /pause=bin/pause --entrypoint /pause --out bin/images/pause.oci.tar
//
// Flags:
//
//	--name REF            full image reference, e.g. registry.k8s.io/pause:3.10
//	                      (written to index.json as org.opencontainers.image.ref.name
//	                      and io.containerd.image.name; not part of the digest)
//	--out FILE            the OCI layout tar to write (directories are created)
//	--file DEST=SRC[:MODE]
//	                      repeatable: host file SRC at absolute path DEST in the
//	                      image; MODE is octal (e.g. 0755), by default 0755 when
//	                      SRC has an execute bit and 0644 otherwise. Parent
//	                      directories are added (root, 0755).
//	--dir DEST[:MODE]     repeatable: an empty directory (default 0755)
//	--entrypoint ARG      repeatable, one argument each; or one JSON array
//	                      such as '["/pause","-v"]'
//	--cmd ARG             repeatable, like --entrypoint
//	--user USER           config User, e.g. 65532:65532 or 0:0
//	--env KEY=VALUE       repeatable, config Env (after --passwd's defaults)
//	--label KEY=VALUE     repeatable, config Labels
//	--workdir DIR         config WorkingDir
//	--ca-certs            add the CA bundle at /etc/ssl/certs/ca-certificates.crt,
//	                      copied from --ca-certs-from
//	--ca-certs-from FILE  CA bundle to copy (default the host's
//	                      /etc/ssl/certs/ca-certificates.crt)
//	--passwd              add distroless static's users: /etc/passwd and
//	                      /etc/group (root, nobody, nonroot 65532),
//	                      /etc/nsswitch.conf, /root, /home/nonroot, /tmp, and
//	                      the env PATH and SSL_CERT_FILE
//	--os OS, --arch ARCH  platform (default linux and the GOARCH imagebuild
//	                      was built for)
//	--netfence BINARY     build the netfence image from the static binary
//	                      BINARY instead (name ghcr.io/netfence/netfence:V,
//	                      entrypoint /usr/local/bin/netfence, user 65532, CA
//	                      bundle, users; see image.NetfenceSpec); only
//	                      --version, --out, --ca-certs-from, --arch apply
//	--version V           with --netfence: the tag (default v0.1.0)
//
// The creation time recorded in the image (config, history, every tar
// header) is SOURCE_DATE_EPOCH when set, else the Unix epoch.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/netfence/netfence/internal/image"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(2)
	}
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// argsFlag is a repeatable argument-vector flag: each use appends one
// argument, or a JSON array when the value starts with "[".
type argsFlag []string

func (a *argsFlag) String() string { return strings.Join(*a, " ") }
func (a *argsFlag) Set(s string) error {
	if strings.HasPrefix(s, "[") {
		var v []string
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return fmt.Errorf("JSON array %s: %w", s, err)
		}
		*a = append(*a, v...)
		return nil
	}
	*a = append(*a, s)
	return nil
}

type options struct {
	out       string
	spec      image.Spec
	needsCA   bool
	caFrom    string
	netfence  string
	version   string
	explicitN int // flags set that --netfence ignores
}

// run parses args, builds the image, writes it and prints its digest.
func run(args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	created, err := image.SourceDateEpoch()
	if err != nil {
		return err
	}
	spec := o.spec
	if o.netfence != "" {
		if o.explicitN > 0 {
			return fmt.Errorf("--netfence takes only --version, --out, --ca-certs-from and --arch")
		}
		bin, err := os.ReadFile(o.netfence)
		if err != nil {
			return fmt.Errorf("--netfence: %w", err)
		}
		ca, err := image.CACertificates(o.caFrom)
		if err != nil {
			return err
		}
		spec = image.NetfenceSpec(o.version, bin, ca, created)
		spec.Arch = o.spec.Arch
	} else {
		if spec.Name == "" {
			return fmt.Errorf("--name is required")
		}
		spec.Created = created
		if o.needsCA {
			ca, err := image.CACertificates(o.caFrom)
			if err != nil {
				return err
			}
			spec.Files = append(spec.Files, ca)
		}
	}
	if o.out == "" {
		return fmt.Errorf("--out is required")
	}
	img, err := image.Build(spec)
	if err != nil {
		return err
	}
	if err := img.WriteFile(o.out); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "imagebuild: wrote %s (%s)\n", o.out, img.Name())
	fmt.Fprintln(stdout, img.Digest())
	return nil
}

func parse(args []string, stderr io.Writer) (*options, error) {
	fset := flag.NewFlagSet("imagebuild", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: imagebuild --name REF --out FILE [flags]  (see: go doc ./hack/imagebuild)")
		fset.PrintDefaults()
	}
	var (
		o                         options
		files, dirs, env, labels  listFlag
		entrypoint, cmd           argsFlag
		name, user, workdir, osFl string
		arch                      string
		passwd                    bool
	)
	fset.StringVar(&name, "name", "", "full image reference, e.g. registry.k8s.io/pause:3.10")
	fset.StringVar(&o.out, "out", "", "OCI layout tar to write")
	fset.Var(&files, "file", "DEST=SRC[:MODE] (repeatable)")
	fset.Var(&dirs, "dir", "DEST[:MODE] empty directory (repeatable)")
	fset.Var(&entrypoint, "entrypoint", "entrypoint argument or JSON array (repeatable)")
	fset.Var(&cmd, "cmd", "cmd argument or JSON array (repeatable)")
	fset.StringVar(&user, "user", "", "config User")
	fset.Var(&env, "env", "KEY=VALUE (repeatable)")
	fset.Var(&labels, "label", "KEY=VALUE (repeatable)")
	fset.StringVar(&workdir, "workdir", "", "config WorkingDir")
	fset.BoolVar(&o.needsCA, "ca-certs", false, "add the CA bundle at "+image.CACertificatesPath)
	fset.StringVar(&o.caFrom, "ca-certs-from", image.HostCACertificates, "CA bundle to copy")
	fset.BoolVar(&passwd, "passwd", false, "add distroless static's users, /tmp and default env")
	fset.StringVar(&osFl, "os", "linux", "image OS")
	fset.StringVar(&arch, "arch", "", "image architecture (default GOARCH)")
	fset.StringVar(&o.netfence, "netfence", "", "build the netfence image from this static binary")
	fset.StringVar(&o.version, "version", "v0.1.0", "with --netfence: the image tag")
	if err := fset.Parse(args); err != nil {
		return nil, err
	}
	if fset.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fset.Args())
	}
	fset.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "netfence", "version", "out", "ca-certs-from", "arch":
		default:
			o.explicitN++
		}
	})

	s := image.Spec{Name: name, OS: osFl, Arch: arch, CreatedBy: "hack/imagebuild"}
	if passwd {
		s.Files = append(s.Files, image.Users()...)
		s.Config.Env = append(s.Config.Env, image.DefaultEnv()...)
	}
	for _, f := range files {
		file, err := parseFile(f)
		if err != nil {
			return nil, err
		}
		s.Files = append(s.Files, file)
	}
	for _, d := range dirs {
		dest, mode, err := splitMode(d)
		if err != nil {
			return nil, fmt.Errorf("--dir %s: %w", d, err)
		}
		s.Files = append(s.Files, image.File{Path: dest, Mode: fs.ModeDir | mode})
	}
	s.Config.Entrypoint, s.Config.Cmd = entrypoint, cmd
	s.Config.User, s.Config.WorkingDir = user, workdir
	s.Config.Env = append(s.Config.Env, env...)
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--label %s: want KEY=VALUE", l)
		}
		if s.Config.Labels == nil {
			s.Config.Labels = map[string]string{}
		}
		s.Config.Labels[k] = v
	}
	for _, e := range env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return nil, fmt.Errorf("--env %s: want KEY=VALUE", e)
		}
	}
	o.spec = s
	return &o, nil
}

// parseFile parses DEST=SRC[:MODE]. Without MODE, the mode is 0755 when
// SRC has an execute bit and 0644 otherwise, so that the host's umask does
// not leak into the image.
func parseFile(arg string) (image.File, error) {
	dest, rest, ok := strings.Cut(arg, "=")
	if !ok || dest == "" || rest == "" {
		return image.File{}, fmt.Errorf("--file %s: want DEST=SRC[:MODE]", arg)
	}
	src, mode, err := splitMode(rest)
	if err != nil {
		return image.File{}, fmt.Errorf("--file %s: %w", arg, err)
	}
	st, err := os.Stat(src)
	if err != nil {
		return image.File{}, fmt.Errorf("--file %s: %w", arg, err)
	}
	if !st.Mode().IsRegular() {
		return image.File{}, fmt.Errorf("--file %s: %s is not a regular file", arg, src)
	}
	if mode == 0 {
		mode = 0o644
		if st.Mode().Perm()&0o111 != 0 {
			mode = 0o755
		}
	}
	return image.File{Path: dest, Source: src, Mode: mode}, nil
}

// splitMode splits "X:MODE" where MODE is octal; a suffix that is not an
// octal number is part of X (a path may contain ':').
func splitMode(s string) (string, fs.FileMode, error) {
	i := strings.LastIndex(s, ":")
	if i < 0 {
		return s, 0, nil
	}
	m, err := strconv.ParseUint(s[i+1:], 8, 32)
	if err != nil {
		return s, 0, nil
	}
	if m > 0o7777 {
		return "", 0, fmt.Errorf("mode %s out of range", s[i+1:])
	}
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return s[:i], mode, nil
}
