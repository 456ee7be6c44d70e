package image

import (
	"fmt"
	"io/fs"
	"os"
	"time"
)

// Paths of the files the base helpers add.
const (
	// CACertificatesPath is where Debian, distroless and Go's crypto/x509
	// look for the CA bundle.
	CACertificatesPath = "/etc/ssl/certs/ca-certificates.crt"
	// HostCACertificates is the host's bundle that CACertificates copies.
	HostCACertificates = "/etc/ssl/certs/ca-certificates.crt"
)

// NonrootUID is the uid and gid of the "nonroot" user, as in distroless.
const NonrootUID = 65532

// passwd and group are distroless static's: root, nobody and nonroot
// (65532), every shell /sbin/nologin (there is no shell in the image).
const passwd = `root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
`

const group = `root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
`

// nsswitch makes Go's resolver (and any libc) read /etc/hosts before DNS.
const nsswitch = `hosts: files dns
`

// CACertificates returns the CA bundle file for the image, read from src
// (HostCACertificates when empty) and installed at CACertificatesPath. Its
// content is read now, so a Spec using it does not depend on the host file
// changing later.
func CACertificates(src string) (File, error) {
	if src == "" {
		src = HostCACertificates
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return File{}, fmt.Errorf("CA certificates: %w", err)
	}
	if len(b) == 0 {
		return File{}, fmt.Errorf("CA certificates: %s is empty", src)
	}
	return File{Path: CACertificatesPath, Data: b, Mode: 0o644}, nil
}

// Users returns what a distroless static image has for users: /etc/passwd
// and /etc/group with root, nobody and nonroot (65532), /etc/nsswitch.conf,
// the home directories /root (0700) and /home/nonroot (0700, owned by
// nonroot), and /tmp (1777).
func Users() []File {
	return []File{
		{Path: "/etc/passwd", Data: []byte(passwd), Mode: 0o644},
		{Path: "/etc/group", Data: []byte(group), Mode: 0o644},
		{Path: "/etc/nsswitch.conf", Data: []byte(nsswitch), Mode: 0o644},
		{Path: "/root", Mode: fs.ModeDir | 0o700},
		{Path: "/home/nonroot", Mode: fs.ModeDir | 0o700, UID: NonrootUID, GID: NonrootUID},
		{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
	}
}

// DefaultEnv is distroless's environment: a PATH, and SSL_CERT_FILE
// pointing at the CA bundle.
func DefaultEnv() []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"SSL_CERT_FILE=" + CACertificatesPath,
	}
}

// NetfenceName is the repository the netfence image is published under.
const NetfenceName = "ghcr.io/netfence/netfence"

// NetfenceBinaryPath is where the netfence binary lives in its image (the
// same path as in the Dockerfile).
const NetfenceBinaryPath = "/usr/local/bin/netfence"

// NetfenceSpec is the netfence image: the static binary at
// NetfenceBinaryPath as the entrypoint, the CA bundle, distroless's users,
// tagged NetfenceName:version. Its default user is non-privileged
// (nonroot, 65532, as the Dockerfile's USER): the probe pods of
// `connectivity --live` run it so. The agent programs nftables and
// conntrack over netlink, which needs NET_ADMIN in the host network
// namespace: the DaemonSet runs it as root (runAsUser: 0) with that one
// capability, which a non-root user would not hold.
func NetfenceSpec(version string, binary []byte, caCerts File, created time.Time) Spec {
	files := []File{{Path: NetfenceBinaryPath, Data: binary, Mode: 0o755}, caCerts}
	files = append(files, Users()...)
	return Spec{
		Name:      NetfenceName + ":" + version,
		Files:     files,
		Created:   created,
		CreatedBy: "hack/image " + version,
		Config: Config{
			Entrypoint: []string{NetfenceBinaryPath},
			User:       "65532:65532",
			Env:        DefaultEnv(),
		},
	}
}
