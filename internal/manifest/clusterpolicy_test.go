package manifest_test

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/manifest"
)

const (
	cnpV1beta1 = `apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata:
  name: deny-all
spec:
  tier: Admin
  priority: 10
  subject:
    namespaces: {}
  egress:
  - name: deny-internet
    action: Deny
    to:
    - networks: [0.0.0.0/0, "::/0"]
`
	anpV1alpha1 = `apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata:
  name: anp
spec:
  priority: 3
  subject:
    namespaces:
      matchLabels: {team: a}
  ingress:
  - name: web
    action: Allow
    from:
    - namespaces: {}
    ports:
    - portNumber: {port: 80}
    - portRange: {start: 8000, end: 8080}
    - portNumber: {port: 53, protocol: UDP}
  egress:
  - action: Pass
    to:
    - nodes: {matchLabels: {kubernetes.io/os: linux}}
`
	banpV1alpha1 = `apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata:
  name: default
spec:
  subject:
    pods:
      namespaceSelector: {}
      podSelector: {matchLabels: {app: db}}
  ingress:
  - action: Deny
    from:
    - pods:
        namespaceSelector: {}
        podSelector: {}
`
	nodeYAML = `apiVersion: v1
kind: Node
metadata:
  name: kind-worker
  labels:
    kubernetes.io/hostname: kind-worker
    kubernetes.io/os: linux
spec:
  podCIDR: 10.244.1.0/24
  someFutureField: true
status:
  addresses:
  - {type: InternalIP, address: 172.18.0.3}
  - {type: InternalIP, address: "fc00:f853:ccd:e793::3"}
  - {type: ExternalIP, address: 203.0.113.7}
  - {type: Hostname, address: kind-worker}
  - {type: InternalDNS, address: kind-worker.local}
`
)

// loadFile writes content to f.yaml and loads it; it returns the objects,
// the error lines with the file name replaced by FILE.
func loadFile(t *testing.T, content string) (*manifest.Objects, []string) {
	t.Helper()
	dir := write(t, map[string]string{"f.yaml": content})
	file := filepath.Join(dir, "f.yaml")
	objs, lines := load(t, "", file)
	for i, l := range lines {
		lines[i] = strings.ReplaceAll(l, file, "FILE")
	}
	return objs, lines
}

func TestLoadClusterPolicies(t *testing.T) {
	t.Parallel()
	v1alpha2 := strings.Replace(strings.Replace(cnpV1beta1, "v1beta1", "v1alpha2", 1), "deny-all", "deny-all-2", 1)
	objs, lines := loadFile(t, cnpV1beta1+"---\n"+v1alpha2+"---\n"+anpV1alpha1+"---\n"+banpV1alpha1)
	wantNoErrors(t, lines)
	want := []string{"AdminNetworkPolicy anp", "BaselineAdminNetworkPolicy default", "ClusterNetworkPolicy deny-all", "ClusterNetworkPolicy deny-all-2"}
	if k := keys(objs); !reflect.DeepEqual(k, want) {
		t.Fatalf("objects %v, want %v", k, want)
	}
	if len(objs.ClusterPolicies) != 4 || len(objs.Warnings) != 0 || len(objs.Skipped) != 0 {
		t.Fatalf("cluster policies %d, warnings %v, skipped %v", len(objs.ClusterPolicies), objs.Warnings, objs.Skipped)
	}
	byName := map[string]*cluster.ClusterPolicy{}
	for _, p := range objs.ClusterPolicies {
		byName[p.Key()] = p
	}

	cnp := byName["cnp/deny-all"]
	if cnp.APIVersion != "policy.networking.k8s.io/v1beta1" || cnp.Spec.Tier != v1beta1.AdminTier || cnp.Spec.Priority != 10 ||
		len(cnp.Spec.Egress) != 1 || !reflect.DeepEqual(cnp.Spec.Egress[0].To[0].Networks, []v1beta1.CIDR{"0.0.0.0/0", "::/0"}) {
		t.Errorf("v1beta1 read as %+v", cnp)
	}
	alpha := byName["cnp/deny-all-2"]
	if alpha.APIVersion != "policy.networking.k8s.io/v1alpha2" || !reflect.DeepEqual(alpha.Spec, cnp.Spec) {
		t.Errorf("v1alpha2 read as %+v, want the spec of the v1beta1 one", alpha)
	}

	// v1alpha1: Allow is Accept; a port without protocol is TCP (the
	// CRD's default).
	anp := byName["anp/anp"]
	tcp := func(p *v1beta1.Port) v1beta1.ClusterNetworkPolicyProtocol {
		return v1beta1.ClusterNetworkPolicyProtocol{TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: p}}
	}
	wantProtos := []v1beta1.ClusterNetworkPolicyProtocol{
		tcp(&v1beta1.Port{Number: 80}),
		tcp(&v1beta1.Port{Range: &v1beta1.PortRange{Start: 8000, End: 8080}}),
		{UDP: &v1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &v1beta1.Port{Number: 53}}},
	}
	if anp.Spec.Tier != v1beta1.AdminTier || anp.Priority() != 3 || len(anp.Spec.Ingress) != 1 ||
		anp.Spec.Ingress[0].Action != v1beta1.ClusterNetworkPolicyRuleActionAccept || !reflect.DeepEqual(anp.Spec.Ingress[0].Protocols, wantProtos) {
		t.Errorf("ANP read as %+v", anp.Spec)
	}
	if len(anp.Spec.Egress) != 1 || anp.Spec.Egress[0].Action != v1beta1.ClusterNetworkPolicyRuleActionPass || anp.Spec.Egress[0].To[0].Nodes == nil {
		t.Errorf("ANP egress read as %+v", anp.Spec.Egress)
	}
	banp := byName["banp/default"]
	if banp.Spec.Tier != v1beta1.BaselineTier || banp.Spec.Subject.Pods == nil || len(banp.Spec.Ingress) != 1 {
		t.Errorf("BANP read as %+v", banp.Spec)
	}

	c := objs.Cluster()
	if len(c.ClusterPolicies) != 4 || c.ClusterPolicy("banp/default") == nil {
		t.Errorf("cluster holds %d cluster policies", len(c.ClusterPolicies))
	}
}

func TestLoadNodes(t *testing.T) {
	t.Parallel()
	objs, lines := loadFile(t, nodeYAML)
	wantNoErrors(t, lines)
	if len(objs.Nodes) != 1 {
		t.Fatalf("nodes %v", objs.Nodes)
	}
	n := objs.Nodes[0]
	wantAddrs := []netip.Addr{netip.MustParseAddr("172.18.0.3"), netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("fc00:f853:ccd:e793::3")}
	if n.Name != "kind-worker" || n.Labels["kubernetes.io/os"] != "linux" || !reflect.DeepEqual(n.Addrs, wantAddrs) {
		t.Errorf("node read as %+v, want addresses %v (no Hostname, no DNS)", n, wantAddrs)
	}
	if _, ok := objs.Where["Node kind-worker"]; !ok {
		t.Errorf("where %v", objs.Where)
	}
	c := objs.Cluster()
	if c.Node("kind-worker") == nil || len(c.NodesWithAddr(netip.MustParseAddr("203.0.113.7"))) != 1 {
		t.Errorf("cluster nodes %v", c.Nodes)
	}
}

// TestLoadClusterPolicyErrors: what the API server refuses (and what
// netfence cannot compile) is an error naming file, document, object and
// field.
func TestLoadClusterPolicyErrors(t *testing.T) {
	t.Parallel()
	ns := "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n"
	cnp := func(name, body string) string {
		return "apiVersion: policy.networking.k8s.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: " + name + "}\nspec:\n  tier: Admin\n  priority: 1\n" + body
	}
	for _, tc := range []struct {
		name, content string
		want          []string
		// invalid are the keys of InvalidClusterPolicies.
		invalid []string
		kept    []string
	}{
		{
			name:    "CIDR with host bits, in document 2",
			content: ns + cnp("deny-all", "  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to:\n    - networks: [10.0.0.1/8]\n"),
			want:    []string{`FILE: document 2 (ClusterNetworkPolicy deny-all): spec.egress[0].to[0].networks[0]: Invalid value: "10.0.0.1/8": Invalid CIDR format provided`},
			invalid: []string{"cnp/deny-all"},
			kept:    []string{"Namespace a"},
		},
		{
			name:    "unknown field",
			content: cnp("x", "  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    too: []\n    to:\n    - namespaces: {}\n"),
			want:    []string{`FILE: document 1 (ClusterNetworkPolicy x): spec.egress[0].too: Forbidden: unknown field`},
			invalid: []string{"cnp/x"},
		},
		{
			name:    "priority out of range",
			content: strings.Replace(cnp("x", "  subject: {namespaces: {}}\n"), "priority: 1", "priority: 1001", 1),
			want:    []string{`FILE: document 1 (ClusterNetworkPolicy x): spec.priority: Invalid value: 1001: spec.priority in body should be less than or equal to 1000`},
			invalid: []string{"cnp/x"},
		},
		{
			name:    "one-port range",
			content: cnp("x", "  subject: {namespaces: {}}\n  ingress:\n  - action: Deny\n    from: [{namespaces: {}}]\n    protocols:\n    - tcp: {destinationPort: {range: {start: 80, end: 80}}}\n"),
			want:    []string{`FILE: document 1 (ClusterNetworkPolicy x): spec.ingress[0].protocols[0].tcp.destinationPort.range: Invalid value: Start port must be less than End port`},
			invalid: []string{"cnp/x"},
		},
		{
			name:    "namespace on a cluster-scoped object",
			content: strings.Replace(cnp("x", "  subject: {namespaces: {}}\n"), "{name: x}", "{name: x, namespace: a}", 1),
			want:    []string{`FILE: document 1 (ClusterNetworkPolicy x): metadata.namespace: Forbidden: ClusterNetworkPolicy is cluster-scoped`},
			invalid: []string{"cnp/x"},
		},
		{
			name:    "selector operator the CRD lets through",
			content: cnp("x", "  subject:\n    namespaces:\n      matchExpressions: [{key: a, operator: Foo}]\n"),
			want:    []string{`FILE: document 1 (ClusterNetworkPolicy x): spec.subject.namespaces: "Foo" is not a valid label selector operator`},
			invalid: []string{"cnp/x"},
		},
		{
			name:    "domain names in a Deny rule",
			content: cnp("x", "  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to:\n    - domainNames: [example.com]\n"),
			want:    []string{`FILE: document 1 (ClusterNetworkPolicy x): spec.egress[0].to[0].domainNames: domain names are only supported in Accept rules, not Deny`},
			invalid: []string{"cnp/x"},
		},
		{
			name:    "BaselineAdminNetworkPolicy not named default",
			content: strings.Replace(banpV1alpha1, "name: default", "name: other", 1),
			want:    []string{`FILE: document 1 (BaselineAdminNetworkPolicy other): metadata.name: Invalid value: "other": Only one baseline admin network policy with metadata.name="default" can be created in the cluster`},
			invalid: []string{"banp/other"},
		},
		{
			name:    "type error: no object to keep",
			content: strings.Replace(cnp("x", "  subject: {namespaces: {}}\n"), "priority: 1", "priority: high", 1),
			want: []string{
				`FILE: document 1 (ClusterNetworkPolicy x): spec.priority: Invalid value: "string": spec.priority in body must be of type integer: "string"`,
				`FILE: document 1 (ClusterNetworkPolicy x): spec.priority: Invalid value: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation`,
			},
		},
		{
			name:    "unknown apiVersion of ClusterNetworkPolicy",
			content: strings.Replace(cnp("x", "  subject: {namespaces: {}}\n"), "v1beta1", "v1", 1),
			want:    []string{`FILE: document 1 (ClusterNetworkPolicy x): apiVersion: Unsupported value: "policy.networking.k8s.io/v1": supported values: "policy.networking.k8s.io/v1beta1", "policy.networking.k8s.io/v1alpha2"`},
		},
		{
			name:    "AdminNetworkPolicy of v1beta1",
			content: strings.Replace(anpV1alpha1, "v1alpha1", "v1beta1", 1),
			want:    []string{`FILE: document 1 (AdminNetworkPolicy anp): apiVersion: Unsupported value: "policy.networking.k8s.io/v1beta1": supported values: "policy.networking.k8s.io/v1alpha1"`},
		},
		{
			name:    "v1alpha2 and v1beta1 of one name are one object",
			content: cnp("x", "  subject: {namespaces: {}}\n") + "---\n" + strings.Replace(cnp("x", "  subject: {namespaces: {}}\n"), "v1beta1", "v1alpha2", 1),
			want:    []string{`FILE: document 2 (ClusterNetworkPolicy x): duplicate ClusterNetworkPolicy x: first defined in FILE: document 1 (ClusterNetworkPolicy x)`},
			kept:    []string{"ClusterNetworkPolicy x"},
		},
		{
			name:    "same name, other kind: no duplicate",
			content: cnp("default", "  subject: {namespaces: {}}\n") + "---\n" + banpV1alpha1,
			kept:    []string{"BaselineAdminNetworkPolicy default", "ClusterNetworkPolicy default"},
		},
		{
			name:    "node address that is no IP",
			content: "apiVersion: v1\nkind: Node\nmetadata: {name: n}\nstatus:\n  addresses:\n  - {type: Hostname, address: n}\n  - {type: ExternalIP, address: n.example.com}\n",
			want:    []string{`FILE: document 1 (Node n): status.addresses[1].address: Invalid value: "n.example.com": must be a valid IP address for type ExternalIP`},
		},
		{
			name:    "node name",
			content: "apiVersion: v1\nkind: Node\nmetadata: {name: Node_1}\n",
			want:    []string{`FILE: document 1 (Node Node_1): metadata.name: Invalid value: "Node_1": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		},
		{
			name:    "duplicate node",
			content: "apiVersion: v1\nkind: Node\nmetadata: {name: n}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n}\n",
			want:    []string{`FILE: document 2 (Node n): duplicate Node n: first defined in FILE: document 1 (Node n)`},
			kept:    []string{"Node n"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			objs, lines := loadFile(t, tc.content)
			if !reflect.DeepEqual(lines, tc.want) {
				t.Errorf("errors\n  %s\nwant\n  %s", strings.Join(lines, "\n  "), strings.Join(tc.want, "\n  "))
			}
			var invalid []string
			for _, p := range objs.InvalidClusterPolicies {
				invalid = append(invalid, p.Key())
			}
			if !reflect.DeepEqual(invalid, tc.invalid) {
				t.Errorf("invalid cluster policies %v, want %v", invalid, tc.invalid)
			}
			if k := keys(objs); !reflect.DeepEqual(k, tc.kept) {
				t.Errorf("kept %v, want %v", k, tc.kept)
			}
		})
	}
}

// TestLoadClusterPolicyOtherGroup: a ClusterNetworkPolicy of another API
// group is another resource: skipped with a warning, as for NetworkPolicy.
func TestLoadClusterPolicyOtherGroup(t *testing.T) {
	t.Parallel()
	objs, lines := loadFile(t, "apiVersion: example.com/v1\nkind: ClusterNetworkPolicy\nmetadata: {name: x}\n")
	wantNoErrors(t, lines)
	want := `apiVersion "example.com/v1": a ClusterNetworkPolicy of API group "example.com" is a different resource from the Kubernetes ClusterNetworkPolicy (policy.networking.k8s.io/v1beta1), which netfence does not enforce; the object is ignored`
	if len(objs.Warnings) != 1 || objs.Warnings[0].Message != want || len(objs.Skipped) != 1 {
		t.Errorf("warnings %v, skipped %v", objs.Warnings, objs.Skipped)
	}
}

// TestLoadClusterPolicyList: the items of a List of cluster-scoped
// policies are read and named by item.
func TestLoadClusterPolicyList(t *testing.T) {
	t.Parallel()
	list := `apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicyList
items:
- metadata: {name: a}
  spec: {tier: Baseline, priority: 5, subject: {namespaces: {}}}
- metadata: {name: b}
  spec: {tier: Baseline, priority: 1001, subject: {namespaces: {}}}
`
	objs, lines := loadFile(t, list)
	want := []string{`FILE: document 1 item 2 (ClusterNetworkPolicy b): spec.priority: Invalid value: 1001: spec.priority in body should be less than or equal to 1000`}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("errors %q, want %q", lines, want)
	}
	if len(objs.ClusterPolicies) != 1 || objs.ClusterPolicies[0].Name != "a" || objs.ClusterPolicies[0].Spec.Tier != v1beta1.BaselineTier {
		t.Errorf("cluster policies %+v", objs.ClusterPolicies)
	}
}

// TestLoaderConcurrentClusterPolicies: one Loader, used from several
// goroutines, builds its validator once and reads the same.
func TestLoaderConcurrentClusterPolicies(t *testing.T) {
	t.Parallel()
	dir := write(t, map[string]string{"a.yaml": cnpV1beta1, "b.yaml": anpV1alpha1, "c.yaml": nodeYAML})
	l := &manifest.Loader{}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			objs, err := l.Load([]string{dir})
			if err != nil || len(objs.ClusterPolicies) != 2 || len(objs.Nodes) != 1 {
				t.Errorf("load: %v, %d cluster policies, %d nodes", err, len(objs.ClusterPolicies), len(objs.Nodes))
			}
		}()
	}
	wg.Wait()
}

// TestLoadPodsAndNodesClusterModel: host-network pods share their node's
// address; the model built from the objects knows both.
func TestLoadPodsAndNodesClusterModel(t *testing.T) {
	t.Parallel()
	pod := `apiVersion: v1
kind: Pod
metadata: {name: exporter, namespace: mon}
spec: {hostNetwork: true, nodeName: kind-worker, containers: [{name: c}]}
status: {phase: Running, podIP: 172.18.0.3}
`
	objs, lines := loadFile(t, nodeYAML+"---\n"+pod)
	wantNoErrors(t, lines)
	c := objs.Cluster()
	ip := netip.MustParseAddr("172.18.0.3")
	if p := c.PodByIP(ip); p == nil || !p.HostNetwork || len(c.NodesWithAddr(ip)) != 1 {
		t.Errorf("pod by node address %v, nodes %v", p, c.NodesWithAddr(ip))
	}
	if c.Pod("mon/exporter").Phase != corev1.PodRunning {
		t.Error("pod not running")
	}
}

// TestLoadData: bytes are read as a file of that name.
func TestLoadData(t *testing.T) {
	t.Parallel()
	l := &manifest.Loader{}
	objs, err := l.LoadData("mem.yaml", []byte(nodeYAML+"---\n"+cnpV1beta1))
	if err != nil || len(objs.Nodes) != 1 || len(objs.ClusterPolicies) != 1 || objs.Where["Node kind-worker"].File != "mem.yaml" {
		t.Fatalf("LoadData: %v, %+v", err, objs)
	}
	_, err = l.LoadData("mem.json", []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"a"}} {"kind":`))
	if err == nil || !strings.HasPrefix(err.Error(), "mem.json: ") {
		t.Errorf("error %v does not name mem.json", err)
	}
}
