package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/flow"
	"github.com/netfence/netfence/internal/kube"
)

// TestDeployHardening checks deploy/ against the hardening rules: version
// tag, loopback health and metrics, probes on 127.0.0.1, no privilege
// escalation, RuntimeDefault seccomp, and RBAC limited to what the agent
// calls.
func TestDeployHardening(t *testing.T) {
	var ds appsv1.DaemonSet
	readYAML(t, "../../deploy/daemonset.yaml", &ds)
	spec := ds.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("containers: %d", len(spec.Containers))
	}
	c := spec.Containers[0]
	if want := "ghcr.io/netfence/netfence:" + version; c.Image != want {
		t.Errorf("image %q, want the version tag %q", c.Image, want)
	}
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--health-addr=") && !strings.HasPrefix(a, "--health-addr=127.0.0.1:") {
			t.Errorf("health address %q is not loopback", a)
		}
		if strings.HasPrefix(a, "--metrics-addr") {
			t.Errorf("metrics exposed by default: %q", a)
		}
	}
	if len(c.Ports) != 0 {
		t.Errorf("ports declared on a hostNetwork pod: %v", c.Ports)
	}
	for name, p := range map[string]*struct{ host string }{
		"readiness": {host: c.ReadinessProbe.HTTPGet.Host},
		"liveness":  {host: c.LivenessProbe.HTTPGet.Host},
	} {
		if p.host != "127.0.0.1" {
			t.Errorf("%s probe host %q, want 127.0.0.1", name, p.host)
		}
	}
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("no securityContext")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("allowPrivilegeEscalation is not false")
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != "RuntimeDefault":
		t.Error("seccompProfile is not RuntimeDefault")
	case sc.Privileged != nil && *sc.Privileged:
		t.Error("privileged")
	}
	// The image's default user is nonroot: the agent must be made root
	// explicitly (netlink needs NET_ADMIN, which root holds here).
	if sc.RunAsUser == nil || *sc.RunAsUser != 0 {
		t.Errorf("runAsUser %v, want 0 (the image's default user is nonroot)", sc.RunAsUser)
	}
	if sc.Capabilities == nil || len(sc.Capabilities.Add) != 1 || sc.Capabilities.Add[0] != "NET_ADMIN" {
		t.Errorf("capabilities: %+v, want only NET_ADMIN", sc.Capabilities)
	}

	data, err := os.ReadFile("../../deploy/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal([]byte(strings.Split(string(data), "\n---\n")[0]), &role); err != nil {
		t.Fatal(err)
	}
	// What the agent calls: its informers list and watch, its event
	// recorder creates and patches, its discovery gets.
	allowed := map[string]string{
		"/pods": "list,watch", "/namespaces": "list,watch", "/nodes": "list,watch",
		"networking.k8s.io/networkpolicies": "list,watch",
		"/events":                           "create,patch",
	}
	for _, r := range kube.PolicyResourceNames() {
		allowed[cluster.PolicyAPIGroup+"/"+r] = "list,watch"
	}
	for _, p := range kube.DiscoveryPaths() {
		allowed[p] = "get"
	}
	granted := map[string]bool{}
	check := func(what string, verbs []string) {
		want, ok := allowed[what]
		if !ok {
			t.Errorf("RBAC grants %s, which the agent does not call", what)
			return
		}
		granted[what] = true
		if got := strings.Join(verbs, ","); got != want {
			t.Errorf("RBAC verbs on %s: %s, want %s", what, got, want)
		}
	}
	for _, r := range role.Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				check(g+"/"+res, r.Verbs)
			}
		}
		for _, u := range r.NonResourceURLs {
			check(u, r.Verbs)
		}
	}
	for what := range allowed {
		if !granted[what] {
			t.Errorf("RBAC does not grant %s, which the agent calls (%s)", what, allowed[what])
		}
	}

	// The monitor's socket folder is writable (the root filesystem is not).
	if slices.Contains(c.Args, "--monitor") {
		dir := filepath.Dir(flow.DefaultSocket)
		ok := false
		for _, m := range c.VolumeMounts {
			if m.MountPath == dir && !m.ReadOnly {
				ok = true
			}
		}
		if !ok {
			t.Errorf("--monitor without a writable volume at %s: %+v", dir, c.VolumeMounts)
		}
	}

	// The flag defaults match: health on loopback, metrics opt-in.
	cmd := newAgentCommand(&streams{})
	if d := cmd.Flags().Lookup("health-addr").DefValue; !strings.HasPrefix(d, "127.0.0.1:") {
		t.Errorf("--health-addr default %q is not loopback", d)
	}
	if d := cmd.Flags().Lookup("metrics-addr").DefValue; d != "" {
		t.Errorf("--metrics-addr default %q, want off", d)
	}
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestAgentOnceFailsClosed: agent --once exits 2 and touches nothing (it
// refuses before any kernel access) when a path is missing or a file does
// not parse.
func TestAgentOnceFailsClosed(t *testing.T) {
	dir := t.TempDir()
	bad := dir + "/bad.yaml"
	if err := os.WriteFile(bad, []byte("kind: NetworkPolicy\nmetadata: {name: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"agent", "--once", "--all-local", "--manifests", dir + "/typo"},
		{"agent", "--once", "--all-local", "--manifests", bad},
		{"agent", "--once", "--all-local", "--manifests", ex("three-tier"), "--manifests", dir + "/typo"},
	} {
		_, stderr, code := run(t, "", args...)
		if code != 2 || !strings.Contains(stderr, "nothing applied") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}

// TestDeployCRDs: the kustomizations in deploy/crds reference upstream CRD
// files of sigs.k8s.io/network-policy-api by release tag, and each file
// exists at that version (checked in the module cache when it holds the
// version; the tags are the module's versions).
func TestDeployCRDs(t *testing.T) {
	const prefix = "https://raw.githubusercontent.com/kubernetes-sigs/network-policy-api/"
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	modCache := strings.TrimSpace(string(out))
	want := map[string]bool{ // resources the agent reads
		"clusternetworkpolicies": false, "adminnetworkpolicies": false, "baselineadminnetworkpolicies": false,
	}
	for _, dir := range []string{"../../deploy/crds", "../../deploy/crds/anp-banp"} {
		var k struct {
			APIVersion string   `json:"apiVersion"`
			Kind       string   `json:"kind"`
			Resources  []string `json:"resources"`
		}
		readYAML(t, filepath.Join(dir, "kustomization.yaml"), &k)
		if k.Kind != "Kustomization" || len(k.Resources) == 0 {
			t.Fatalf("%s: kind %q, %d resources", dir, k.Kind, len(k.Resources))
		}
		for _, url := range k.Resources {
			rest, ok := strings.CutPrefix(url, prefix)
			if !ok {
				t.Errorf("%s: %s is not an upstream network-policy-api file", dir, url)
				continue
			}
			version, path, _ := strings.Cut(rest, "/")
			for r := range want {
				if strings.HasSuffix(path, "policy.networking.k8s.io_"+r+".yaml") {
					want[r] = true
				}
			}
			modDir := filepath.Join(modCache, "sigs.k8s.io", "network-policy-api@"+version)
			if _, err := os.Stat(modDir); err != nil {
				t.Logf("%s: sigs.k8s.io/network-policy-api@%s is not in the module cache: %s not checked", dir, version, path)
				continue
			}
			if _, err := os.Stat(filepath.Join(modDir, path)); err != nil {
				t.Errorf("%s: %s: no %s in sigs.k8s.io/network-policy-api@%s: %v", dir, url, path, version, err)
			}
		}
	}
	for r, ok := range want {
		if !ok {
			t.Errorf("deploy/crds installs no CRD for %s", r)
		}
	}
}
