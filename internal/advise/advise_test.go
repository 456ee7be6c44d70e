package advise_test

import (
	"path/filepath"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netfence/netfence/internal/advise"
	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/manifest"
	"github.com/netfence/netfence/internal/policy"
	"github.com/netfence/netfence/internal/validation"
)

func load(t *testing.T, files ...string) *cluster.Cluster {
	t.Helper()
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.Join("..", "..", "examples", "three-tier", f))
	}
	objs, err := (&manifest.Loader{}).Load(paths)
	if err != nil {
		t.Fatal(err)
	}
	return objs.Cluster()
}

// The three-tier shop's traffic, written by hand from the example: the
// frontends call the api on 8080, the api calls the database on 5432,
// everyone resolves names at kube-dns, the debug pod in tools calls the api.
const shopFlows = `
{"from":"shop/frontend-7c9f4-abcde","to":"shop/api-5d8b6-klmno","srcIP":"10.244.1.10","dstIP":"10.244.1.20","protocol":"TCP","port":8080,"verdict":"denied"}
{"from":"shop/frontend-7c9f4-fghij","to":"shop/api-5d8b6-pqrst","srcIP":"10.244.1.11","dstIP":"10.244.1.21","protocol":"TCP","port":8080,"verdict":"denied"}
{"from":"shop/api-5d8b6-klmno","to":"shop/db-0","srcIP":"10.244.1.20","dstIP":"10.244.1.30","protocol":"TCP","port":5432,"verdict":"denied"}

{"from":"shop/frontend-7c9f4-abcde","to":"kube-system/coredns-6f6b6-uvwxy","srcIP":"10.244.1.10","dstIP":"10.244.1.2","protocol":"UDP","port":53,"verdict":"denied"}
{"from":"shop/api-5d8b6-pqrst","to":"kube-system/coredns-6f6b6-uvwxy","srcIP":"10.244.1.21","dstIP":"10.244.1.2","protocol":"UDP","port":53,"verdict":"denied"}
{"from":"tools/debug","to":"shop/api-5d8b6-klmno","srcIP":"10.244.1.40","dstIP":"10.244.1.20","protocol":"TCP","port":8080,"verdict":"denied"}
{"from":"shop/api-5d8b6-klmno","to":"203.0.113.7","srcIP":"10.244.1.20","dstIP":"203.0.113.7","protocol":"TCP","port":443,"verdict":"denied"}
`

func TestAdviseFromScratch(t *testing.T) {
	c := load(t, "cluster.yaml")
	flows, err := advise.ReadFlows(strings.NewReader(shopFlows))
	if err != nil {
		t.Fatal(err)
	}
	adv, err := advise.Advise(c, flows, advise.Options{Namespaces: []string{"shop"}})
	if err != nil {
		t.Fatal(err)
	}
	if adv.Flows != 7 || adv.Covered != 7 || len(adv.Uncovered) > 0 {
		t.Fatalf("flows %d, covered %d, uncovered %v", adv.Flows, adv.Covered, adv.Uncovered)
	}
	for _, np := range adv.Policies {
		if errs := validation.NetworkPolicy(np); len(errs) > 0 {
			t.Errorf("%s/%s is invalid: %v", np.Namespace, np.Name, errs)
		}
		if np.Namespace != "shop" {
			t.Errorf("%s/%s: outside the namespace asked for", np.Namespace, np.Name)
		}
	}
	set := policy.NewSet(withPolicies(c, adv.Policies))
	check := func(src, dst, proto string, port int32, want bool, why string) {
		t.Helper()
		v := set.Evaluate(set.AddrFlow(mustAddr(src), mustAddr(dst), corev1Protocol(proto), port))
		if v.Allowed != want {
			t.Errorf("%s -> %s %s/%d: allowed=%v, want %v (%s)\n  egress: %s\n  ingress: %s", src, dst, proto, port, v.Allowed, want, why, v.Egress.Reason, v.Ingress.Reason)
		}
	}
	// Workload granularity: the other api replica is allowed too.
	check("10.244.1.10", "10.244.1.21", "TCP", 8080, true, "frontend -> the other api replica: same workloads")
	// Never observed: denied by the default deny.
	check("10.244.1.10", "10.244.1.30", "TCP", 5432, false, "frontend -> db was never observed")
	check("10.244.1.30", "10.244.1.20", "TCP", 8080, false, "db -> api was never observed")
	check("10.244.1.20", "10.244.1.30", "TCP", 5433, false, "only the observed port")
	check("10.244.1.20", "203.0.113.8", "TCP", 443, false, "only the observed address outside the cluster")
	// The api's port is named "http" on the pods: the rule uses the name.
	var named bool
	for _, np := range adv.Policies {
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				if p.Port != nil && p.Port.StrVal == "http" {
					named = true
				}
			}
		}
	}
	if !named {
		t.Errorf("no ingress rule names the api's port http")
	}
}

func TestAdviseOnlyWhatIsMissing(t *testing.T) {
	c := load(t, "cluster.yaml", "policies.yaml")
	// The example's policies already allow the shop's own traffic and
	// DNS; the debug pod in tools is not allowed into the api.
	flows, err := advise.ReadFlows(strings.NewReader(shopFlows))
	if err != nil {
		t.Fatal(err)
	}
	adv, err := advise.Advise(c, flows, advise.Options{Namespaces: []string{"shop"}})
	if err != nil {
		t.Fatal(err)
	}
	if adv.Covered != adv.Flows {
		t.Fatalf("uncovered: %v", adv.Uncovered)
	}
	// shop has default-deny-all already: no default deny is generated;
	// only the debug pod's ingress into the api and the api's egress to
	// 203.0.113.7 were missing.
	var names []string
	for _, np := range adv.Policies {
		names = append(names, np.Name)
		if np.Name == "default-deny" {
			t.Errorf("generated a default deny where one exists")
		}
	}
	if len(adv.Policies) != 2 {
		t.Fatalf("generated %v, want the api's ingress (from tools) and egress (to 203.0.113.7) only", names)
	}
}

func withPolicies(c *cluster.Cluster, extra []*networkingv1.NetworkPolicy) *cluster.Cluster {
	var nss []*cluster.Namespace
	for _, ns := range c.Namespaces {
		nss = append(nss, ns)
	}
	return cluster.NewWith(cluster.Parts{Namespaces: nss, Pods: c.Pods, Policies: append(append([]*networkingv1.NetworkPolicy(nil), c.Policies...), extra...)})
}
