// Package kubetest runs a real kube-apiserver backed by a real etcd on
// loopback for integration tests, in the manner of controller-runtime's
// envtest.
//
// The binaries are built from the Go module proxy by hack/build-kube-binaries
// into bin/ at the repository root (or the directory named by
// NETFENCE_KUBE_BIN). When they are missing, [Start] skips the test with a
// message naming that script; set NETFENCE_KUBETEST_REQUIRE=1 to make it fail
// instead.
//
// Each environment gets its own etcd (temporary data directory, free
// 127.0.0.1 ports) and its own kube-apiserver:
//
//   - secure port on 127.0.0.1 with a generated serving certificate;
//   - client-certificate authentication against a generated CA, the admin
//     user being in system:masters, and any other identity available through
//     [Env.ConfigFor] for least-privilege RBAC tests;
//   - --authorization-mode=RBAC with the bootstrap roles in place once ready;
//   - no controller manager, scheduler or kubelet: nothing reconciles
//     Deployments, assigns Pods to nodes or creates ServiceAccounts. The
//     ServiceAccount admission plugin is disabled so Pods can be created
//     without a "default" ServiceAccount, and tests set spec.nodeName and
//     status (through the status subresource) themselves.
//
// Only loopback addresses are used; nothing touches the host's firewall,
// links or routes.
package kubetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Environment variables read by this package.
const (
	// EnvBinDir names the directory holding etcd, kube-apiserver and
	// (optionally) kubectl. It overrides <repo>/bin.
	EnvBinDir = "NETFENCE_KUBE_BIN"
	// EnvRequire, when set to a non-empty value, makes [Start] fail the test
	// instead of skipping it when the binaries are missing (for CI, which
	// builds them).
	EnvRequire = "NETFENCE_KUBETEST_REQUIRE"
)

// AdminUser is the user name of the administrator identity of [Env.Config];
// it is in the system:masters group, which RBAC lets do anything.
const AdminUser = "kubetest-admin"

// DefaultServiceClusterIPRange is the --service-cluster-ip-range used unless
// [Options.ServiceClusterIPRange] says otherwise. No route or address is
// created for it: it only feeds the API server's ClusterIP allocator.
const DefaultServiceClusterIPRange = "10.0.0.0/24"

// ErrBinariesNotFound is wrapped by the error of [New] when etcd or
// kube-apiserver is not in the binary directory.
var ErrBinariesNotFound = errors.New("kube binaries not found (build them with hack/build-kube-binaries, or set " + EnvBinDir + ")")

// Options configure [New] and [StartWithOptions]. The zero value is ready to
// use.
type Options struct {
	// BinDir is the directory holding etcd, kube-apiserver and kubectl.
	// Default: $NETFENCE_KUBE_BIN, else bin/ in the repository root (the
	// nearest directory above the working directory that holds go.mod).
	BinDir string
	// StartTimeout bounds the start-up of etcd and kube-apiserver until
	// /readyz reports ready. Default: 90s.
	StartTimeout time.Duration
	// ServiceClusterIPRange is the API server's --service-cluster-ip-range.
	// Default: [DefaultServiceClusterIPRange].
	ServiceClusterIPRange string
	// ExtraAPIServerArgs are appended to the kube-apiserver command line
	// (e.g. "--runtime-config=...", "--feature-gates=..."); a later flag
	// overrides an earlier one.
	ExtraAPIServerArgs []string
}

// Env is a running etcd and kube-apiserver. Stop it with [Env.Stop]; [Start]
// registers that with t.Cleanup.
type Env struct {
	// Kubeconfig is the path of a kubeconfig file for the admin user (client
	// certificate in system:masters) with the server's CA embedded. It is
	// removed by Stop.
	Kubeconfig string
	// Config is the admin user's REST config. Client-side rate limiting is
	// raised to 1000 QPS so tests are not throttled. Use rest.CopyConfig
	// before changing it.
	Config *rest.Config
	// Client is a clientset for Config.
	Client kubernetes.Interface
	// Host is the API server's URL, https://127.0.0.1:PORT.
	Host string
	// EtcdURL is etcd's client URL, http://127.0.0.1:PORT.
	EtcdURL string
	// Dir is the environment's temporary directory (certificates, etcd data,
	// logs, kubeconfigs). It is removed by Stop.
	Dir string
	// BinDir is the directory the binaries were run from.
	BinDir string
	// StartupTime is how long New took, from the first process start to a
	// ready API server.
	StartupTime time.Duration

	ca        *authority
	etcd      *process
	apiserver *process
	stopOnce  sync.Once
}

// Start starts an environment for the test and stops it in t.Cleanup. It
// skips the test when the binaries are missing (unless NETFENCE_KUBETEST_REQUIRE
// is set) and fails it when the environment does not come up. ctx bounds the
// start-up only; the processes run until the cleanup.
func Start(ctx context.Context, t testing.TB) *Env {
	t.Helper()
	return StartWithOptions(ctx, t, Options{})
}

// StartWithOptions is [Start] with options.
func StartWithOptions(ctx context.Context, t testing.TB, opts Options) *Env {
	t.Helper()
	env, err := New(ctx, opts)
	if errors.Is(err, ErrBinariesNotFound) && os.Getenv(EnvRequire) == "" {
		t.Skipf("kubetest: %v; set %s=1 to fail instead of skipping", err, EnvRequire)
	}
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kubetest: last lines of the kube-apiserver log:\n%s", env.apiserver.logTail(30))
		}
		if err := env.Stop(); err != nil {
			t.Errorf("kubetest: stop: %v", err)
		}
	})
	t.Logf("kubetest: kube-apiserver ready at %s after %v", env.Host, env.StartupTime.Round(time.Millisecond))
	return env
}

// New starts an environment. The caller must call [Env.Stop]; it is meant for
// TestMain, where one environment serves a whole package. ctx bounds the
// start-up only. The error wraps [ErrBinariesNotFound] when the binaries are
// missing.
func New(ctx context.Context, opts Options) (*Env, error) {
	binDir, err := findBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"etcd", "kube-apiserver"} {
		if !isExecutable(filepath.Join(binDir, name)) {
			return nil, fmt.Errorf("%w: no executable %s in %s", ErrBinariesNotFound, name, binDir)
		}
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 90 * time.Second
	}
	if opts.ServiceClusterIPRange == "" {
		opts.ServiceClusterIPRange = DefaultServiceClusterIPRange
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	// Free ports are picked before the processes bind them, so another
	// process can take one in between: retry with new ports then.
	for attempt := 1; ; attempt++ {
		env, err := start(ctx, binDir, opts)
		if err == nil || !errors.Is(err, errAddressInUse) || attempt == 3 {
			return env, err
		}
	}
}

func start(ctx context.Context, binDir string, opts Options) (env *Env, err error) {
	began := time.Now()
	dir, err := os.MkdirTemp("", "kubetest-")
	if err != nil {
		return nil, err
	}
	env = &Env{Dir: dir, BinDir: binDir}
	defer func() {
		if err != nil {
			env.Stop()
			env = nil
		}
	}()

	ports, err := freePorts(3)
	if err != nil {
		return env, err
	}
	etcdPort, peerPort, apiPort := ports[0], ports[1], ports[2]

	// etcd first: it needs no certificates, so it starts while they are made.
	env.EtcdURL = "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	env.etcd, err = startProcess("etcd", filepath.Join(binDir, "etcd"), []string{
		"--name=kubetest",
		"--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + env.EtcdURL,
		"--advertise-client-urls=" + env.EtcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=kubetest=" + peerURL,
		"--initial-cluster-state=new",
		"--unsafe-no-fsync", // test data is thrown away: skip fsync for speed
		"--quota-backend-bytes=" + strconv.Itoa(1<<30),
		"--log-level=warn",
	}, dir, filepath.Join(dir, "etcd.log"))
	if err != nil {
		return env, err
	}

	if err := env.writeCredentials(); err != nil {
		return env, err
	}
	if err := waitFor(ctx, env.etcd, func(ctx context.Context) bool {
		return etcdHealthy(ctx, env.EtcdURL)
	}); err != nil {
		if env.etcd.exited() && env.etcd.addressInUse() {
			return env, fmt.Errorf("%w: %w", errAddressInUse, err)
		}
		return env, fmt.Errorf("etcd at %s: %w", env.EtcdURL, err)
	}

	env.Host = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	args := []string{
		"--etcd-servers=" + env.EtcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--cert-dir=" + filepath.Join(dir, "apiserver-certs"),
		"--tls-cert-file=" + filepath.Join(dir, "serving.crt"),
		"--tls-private-key-file=" + filepath.Join(dir, "serving.key"),
		"--client-ca-file=" + filepath.Join(dir, "ca.crt"),
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=" + opts.ServiceClusterIPRange,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(dir, "sa.key"),
		// No controller manager runs, so no namespace gets a "default"
		// ServiceAccount for the admission plugin to assign.
		"--disable-admission-plugins=ServiceAccount",
		// Endpoints may not hold loopback addresses; nothing needs the
		// "kubernetes" Service's endpoints here.
		"--endpoint-reconciler-type=none",
		// The agent's DaemonSet is privileged; server-side dry runs of the
		// deploy manifests must accept it.
		"--allow-privileged=true",
		"--profiling=false",
	}
	args = append(args, opts.ExtraAPIServerArgs...)
	env.apiserver, err = startProcess("kube-apiserver", filepath.Join(binDir, "kube-apiserver"),
		args, dir, filepath.Join(dir, "kube-apiserver.log"))
	if err != nil {
		return env, err
	}

	env.Config = env.certConfig(mustKeyPair(env.ca.client(AdminUser, []string{"system:masters"})))
	if env.Client, err = kubernetes.NewForConfig(env.Config); err != nil {
		return env, err
	}
	// /readyz turns OK once every post-start hook has run, including the
	// creation of RBAC's bootstrap roles.
	if err := waitFor(ctx, env.apiserver, func(ctx context.Context) bool {
		return env.Client.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error() == nil
	}); err != nil {
		if env.apiserver.exited() && env.apiserver.addressInUse() {
			return env, fmt.Errorf("%w: %w", errAddressInUse, err)
		}
		return env, fmt.Errorf("kube-apiserver at %s: %w", env.Host, err)
	}
	if env.Kubeconfig, err = env.writeKubeconfig(AdminUser, env.Config); err != nil {
		return env, err
	}
	env.StartupTime = time.Since(began)
	return env, nil
}

// writeCredentials generates the CA, the serving certificate and the
// service-account key and writes them to env.Dir.
func (env *Env) writeCredentials() error {
	var err error
	if env.ca, err = newAuthority("kubetest-ca"); err != nil {
		return err
	}
	serving, err := env.ca.serving("kube-apiserver",
		[]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"})
	if err != nil {
		return err
	}
	saKey, saPub, err := newServiceAccountKey()
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		"ca.crt":      env.ca.certPEM,
		"serving.crt": serving.certPEM,
		"serving.key": serving.keyPEM,
		"sa.key":      saKey,
		"sa.pub":      saPub,
	} {
		if err := os.WriteFile(filepath.Join(env.Dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Stop stops kube-apiserver and etcd and removes Dir. It is safe to call more
// than once and on a partly started environment.
func (env *Env) Stop() error {
	var err error
	env.stopOnce.Do(func() {
		if env.apiserver != nil {
			env.apiserver.stop(10 * time.Second)
		}
		if env.etcd != nil {
			env.etcd.stop(10 * time.Second)
		}
		if env.Dir != "" {
			err = os.RemoveAll(env.Dir)
		}
	})
	return err
}

// ConfigFor returns a REST config that authenticates as user, member of
// groups, with a client certificate signed by the environment's CA. Unlike
// the admin's, this identity may do only what RBAC grants it (every
// authenticated user gets the bootstrap system:basic-user and
// system:discovery roles), so it is the way to test least-privilege roles.
// To act as a ServiceAccount, pass "system:serviceaccount:NS:NAME" with the
// groups "system:serviceaccounts" and "system:serviceaccounts:NS", or use
// [Env.ServiceAccountConfig].
func (env *Env) ConfigFor(user string, groups ...string) (*rest.Config, error) {
	kp, err := env.ca.client(user, groups)
	if err != nil {
		return nil, err
	}
	return env.certConfig(kp), nil
}

// ClientFor is [Env.ConfigFor] returning a clientset.
func (env *Env) ClientFor(user string, groups ...string) (kubernetes.Interface, error) {
	cfg, err := env.ConfigFor(user, groups...)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// KubeconfigFor writes a kubeconfig file for the identity of
// [Env.ConfigFor] into Dir and returns its path.
func (env *Env) KubeconfigFor(user string, groups ...string) (string, error) {
	cfg, err := env.ConfigFor(user, groups...)
	if err != nil {
		return "", err
	}
	return env.writeKubeconfig(user, cfg)
}

// ServiceAccountConfig returns a REST config that authenticates with a
// bound token of the ServiceAccount namespace/name, obtained through the
// TokenRequest API as a kubelet would mount it. The ServiceAccount is created
// when missing (no controller manager creates them here); the namespace must
// exist.
func (env *Env) ServiceAccountConfig(ctx context.Context, namespace, name string) (*rest.Config, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	_, err := env.Client.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create ServiceAccount %s/%s: %w", namespace, name, err)
	}
	expiry := int64(3600)
	tr, err := env.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}},
		metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("request token for ServiceAccount %s/%s: %w", namespace, name, err)
	}
	cfg := rest.AnonymousClientConfig(env.Config)
	cfg.BearerToken = tr.Status.Token
	return cfg, nil
}

// Kubectl returns a command running bin/kubectl with args against the
// environment as the admin user (--kubeconfig and a private --cache-dir are
// prepended). Use [Env.KubeconfigFor] and pass --kubeconfig in args to run
// it as another user. It returns an error wrapping [ErrBinariesNotFound]
// when kubectl was not built.
func (env *Env) Kubectl(ctx context.Context, args ...string) (*exec.Cmd, error) {
	path := filepath.Join(env.BinDir, "kubectl")
	if !isExecutable(path) {
		return nil, fmt.Errorf("%w: no executable kubectl in %s", ErrBinariesNotFound, env.BinDir)
	}
	all := append([]string{
		"--kubeconfig=" + env.Kubeconfig,
		"--cache-dir=" + filepath.Join(env.Dir, "kubectl-cache"),
	}, args...)
	cmd := exec.CommandContext(ctx, path, all...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig, "HOME="+env.Dir)
	return cmd, nil
}

// certConfig returns a REST config for the environment authenticating with
// the client certificate kp.
func (env *Env) certConfig(kp *keyPair) *rest.Config {
	return &rest.Config{
		Host: env.Host,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   env.ca.certPEM,
			CertData: kp.certPEM,
			KeyData:  kp.keyPEM,
		},
		QPS:   1000,
		Burst: 2000,
	}
}

// writeKubeconfig writes cfg's server, CA and client certificate into a
// kubeconfig file in Dir.
func (env *Env) writeKubeconfig(user string, cfg *rest.Config) (string, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["kubetest"] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthorityData: cfg.CAData,
	}
	kc.AuthInfos[user] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData,
		ClientKeyData:         cfg.KeyData,
		Token:                 cfg.BearerToken,
	}
	kc.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: user}
	kc.CurrentContext = "kubetest"
	path := filepath.Join(env.Dir, "kubeconfig-"+sanitize(user))
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return "", err
	}
	return path, nil
}

// waitFor polls ready every 100ms until it returns true, ctx ends or p exits.
func waitFor(ctx context.Context, p *process, ready func(context.Context) bool) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if p.exited() {
			return p.exitError()
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok := ready(pctx)
		cancel()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w; last lines of the %s log:\n%s", ctx.Err(), p.name, p.logTail(40))
		case <-p.done:
		case <-tick.C:
		}
	}
}

// etcdHealthy reports whether etcd's /health endpoint says it is healthy.
func etcdHealthy(ctx context.Context, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var buf [256]byte
	n, _ := resp.Body.Read(buf[:])
	return resp.StatusCode == http.StatusOK && strings.Contains(string(buf[:n]), `"health":"true"`)
}

// findBinDir returns dir, else $NETFENCE_KUBE_BIN, else bin/ under the
// nearest directory above the working directory that holds go.mod.
func findBinDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	if dir := os.Getenv(EnvBinDir); dir != "" {
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "bin"), nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%w: no go.mod above %s to find bin/ by; set %s", ErrBinariesNotFound, wd, EnvBinDir)
		}
	}
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// sanitize makes a user name usable in a file name.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ':' || r == os.PathSeparator {
			return '_'
		}
		return r
	}, s)
}

func mustKeyPair(kp *keyPair, err error) *keyPair {
	if err != nil {
		panic(err) // only crypto/rand or x509 failures, which do not happen
	}
	return kp
}
