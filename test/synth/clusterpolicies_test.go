package synth

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netfence/netfence/internal/manifest"
	"github.com/netfence/netfence/internal/policy"
)

// TestLoaderReadsClusterPolicies loads the generated YAML with netfence's
// loader, which validates every ClusterNetworkPolicy against its CRD
// (schema and CEL) and compiles it, and every Node and Pod as the API
// server would.
func TestLoaderReadsClusterPolicies(t *testing.T) {
	for _, cfg := range []Config{
		{Pods: 5000, Namespaces: 100, Policies: 1000, Seed: 1, Nodes: 10, ClusterPolicies: 200},
		{Pods: 800, Namespaces: 30, Policies: 100, Seed: 2, Nodes: 3, ClusterPolicies: 200, IPv6: true},
		{Pods: 10, Namespaces: 2, Policies: 5, Seed: 3, ClusterPolicies: 30},
	} {
		t.Run(testName(cfg), func(t *testing.T) {
			o := mustGenerate(t, cfg)
			path := filepath.Join(t.TempDir(), "cluster.yaml")
			if err := os.WriteFile(path, yamlBytes(t, o), 0o644); err != nil {
				t.Fatal(err)
			}
			var l manifest.Loader
			got, err := l.Load([]string{path})
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range got.Warnings {
				t.Errorf("warning: %s", w)
			}
			if len(got.ClusterPolicies) != cfg.ClusterPolicies || len(got.Nodes) != len(o.Nodes) ||
				len(got.Pods) != len(o.Pods) || len(got.Policies) != cfg.Policies || len(got.Skipped) != 0 {
				t.Fatalf("loaded %d cluster policies, %d nodes, %d pods, %d policies, %d skipped; want %d, %d, %d, %d, 0",
					len(got.ClusterPolicies), len(got.Nodes), len(got.Pods), len(got.Policies), len(got.Skipped),
					cfg.ClusterPolicies, len(o.Nodes), len(o.Pods), cfg.Policies)
			}
			c := got.Cluster()
			if set := policy.NewSet(c); len(set.Rejected) > 0 {
				t.Fatalf("policies rejected: %v", set.Rejected)
			}
			if w := c.Warnings(); len(w) > 0 {
				t.Errorf("cluster warnings: %v", w)
			}
		})
	}
}

// TestClusterPolicyFeatures checks that 200 cluster policies use what the
// analyzer's cost depends on.
func TestClusterPolicyFeatures(t *testing.T) {
	o := mustGenerate(t, Config{Pods: 5000, Namespaces: 100, Policies: 1000, Seed: 1, Nodes: 10, ClusterPolicies: 200})
	f := map[string]int{}
	prios := map[[2]any]int{}
	for _, p := range o.ClusterPolicies {
		s := p.Spec
		f["tier "+string(s.Tier)]++
		prios[[2]any{s.Tier, s.Priority}]++
		if s.Subject.Pods != nil {
			f["pod subject"]++
		}
		for _, r := range s.Ingress {
			f["action "+string(r.Action)]++
			for _, pr := range r.Protocols {
				if pr.DestinationNamedPort != "" {
					f["named port"]++
				}
			}
		}
		for _, r := range s.Egress {
			f["action "+string(r.Action)]++
			for _, peer := range r.To {
				switch {
				case peer.Nodes != nil:
					f["nodes peer"]++
				case len(peer.Networks) > 0:
					f["networks peer"]++
				case len(peer.DomainNames) > 0:
					f["domain names peer"]++
				case peer.Pods != nil:
					f["pods peer"]++
				}
			}
		}
	}
	for _, n := range prios {
		if n > 1 {
			f["equal priorities"]++
		}
	}
	t.Logf("%v", f)
	for _, k := range []string{"tier " + string(v1beta1.AdminTier), "tier " + string(v1beta1.BaselineTier), "pod subject",
		"action Accept", "action Deny", "action Pass", "named port", "nodes peer", "networks peer",
		"domain names peer", "pods peer", "equal priorities"} {
		if f[k] == 0 {
			t.Errorf("no %s in 200 cluster policies", k)
		}
	}
}

// TestClusterPoliciesLeaveTheRest checks that cluster policies only add
// objects: the namespaces, the other pods and the NetworkPolicies are
// those generated without them.
func TestClusterPoliciesLeaveTheRest(t *testing.T) {
	for _, cfg := range []Config{
		{Pods: 2000, Namespaces: 50, Policies: 400, Seed: 8, Nodes: 7, IPv6: true},
		{Pods: 20, Namespaces: 2, Policies: 10, Seed: 3},
	} {
		plain := mustGenerate(t, cfg)
		cfg.ClusterPolicies = 50
		o := mustGenerate(t, cfg)
		var pods []*corev1.Pod
		for _, p := range o.Pods {
			if !p.Spec.HostNetwork { // the node exporters
				pods = append(pods, p)
			}
		}
		if len(pods) != len(o.Pods)-len(o.Nodes) {
			t.Errorf("%s: %d node exporters for %d nodes", testName(cfg), len(o.Pods)-len(pods), len(o.Nodes))
		}
		rest := &Objects{Namespaces: o.Namespaces, Pods: pods, Policies: o.Policies}
		if !equality.Semantic.DeepEqual(plain, rest) {
			t.Errorf("%s: cluster policies changed the other objects", testName(cfg))
		}
		if !bytes.Equal(yamlBytes(t, plain), yamlBytes(t, rest)) {
			t.Errorf("%s: cluster policies changed the other objects' YAML", testName(cfg))
		}
	}
}
