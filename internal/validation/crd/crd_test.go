package crd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	"sigs.k8s.io/yaml"
)

const (
	npaModule = "sigs.k8s.io/network-policy-api"
	headerEnd = "# --- end of netfence header ---\n"
)

// provenance is the parsed header of an embedded CRD file.
type provenance struct{ module, version, path string }

func readEmbedded(t *testing.T, name string) (provenance, []byte) {
	t.Helper()
	data, err := crdFiles.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	header, body, ok := bytes.Cut(data, []byte(headerEnd))
	if !ok {
		t.Fatalf("%s: no provenance header ending in %q", name, headerEnd)
	}
	var p provenance
	for _, line := range strings.Split(string(header), "\n") {
		if v, ok := strings.CutPrefix(line, "# module: "); ok {
			p.module = v
		} else if v, ok := strings.CutPrefix(line, "# version: "); ok {
			p.version = v
		} else if v, ok := strings.CutPrefix(line, "# path: "); ok {
			p.path = v
		}
	}
	if p.module == "" || p.version == "" || p.path == "" {
		t.Fatalf("%s: provenance header lacks module, version or path: %+v", name, p)
	}
	return p, body
}

// moduleDir finds module@version on this machine: the build's own module
// (go list -m) if the version matches, else the module cache. It skips the
// test when the module is not there.
func moduleDir(t *testing.T, module, version string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}} {{.Dir}}", module).Output()
	if err == nil {
		if v, dir, ok := strings.Cut(strings.TrimSpace(string(out)), " "); ok && v == version && dir != "" {
			return dir
		}
	}
	out, err = exec.Command("go", "env", "GOMODCACHE").Output()
	if err == nil {
		dir := filepath.Join(strings.TrimSpace(string(out)), module+"@"+version)
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			return dir
		}
	}
	t.Skipf("module %s@%s not found on this machine (go list -m / module cache); run `go mod download %s@%s` to enable this test", module, version, module, version)
	return ""
}

func embeddedNames(t *testing.T) []string {
	t.Helper()
	names, err := fs.Glob(crdFiles, "*.yaml")
	if err != nil || len(names) == 0 {
		t.Fatalf("no embedded CRDs (%v)", err)
	}
	return names
}

// TestEmbeddedCRDsMatchModule: every embedded CRD is, after its header,
// byte-for-byte the file its header names.
func TestEmbeddedCRDsMatchModule(t *testing.T) {
	for _, name := range embeddedNames(t) {
		t.Run(name, func(t *testing.T) {
			p, body := readEmbedded(t, name)
			want, err := os.ReadFile(filepath.Join(moduleDir(t, p.module, p.version), filepath.FromSlash(p.path)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(body, want) {
				t.Errorf("%s differs from %s@%s/%s; copy it again (keeping the header)", name, p.module, p.version, p.path)
			}
		})
	}
}

// TestEmbeddedCRDsPassAPIServerValidation runs the API server's CRD
// validation (structural schema, CEL compilation and cost limits, pruned
// defaults) on the embedded CRDs, as when they are installed.
func TestEmbeddedCRDsPassAPIServerValidation(t *testing.T) {
	for _, name := range embeddedNames(t) {
		crd, err := loadCRD(name)
		if err != nil {
			t.Fatal(err)
		}
		apiextv1.SetObjectDefaults_CustomResourceDefinition(crd)
		internal := &apiextensions.CustomResourceDefinition{}
		if err := apiextv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(crd, internal, nil); err != nil {
			t.Fatal(err)
		}
		for _, e := range apiextvalidation.ValidateCustomResourceDefinition(context.Background(), internal) {
			if e.Field == "status.storedVersions" {
				continue // set by the API server, absent from the files
			}
			t.Errorf("%s: %v", name, e)
		}
	}
}

func TestKnownKinds(t *testing.T) {
	v := newValidator(t)
	var got []string
	for k := range v.versions {
		got = append(got, k.apiVersion+" "+k.kind)
	}
	sort.Strings(got)
	want := []string{
		"policy.networking.k8s.io/v1alpha1 AdminNetworkPolicy",
		"policy.networking.k8s.io/v1alpha1 BaselineAdminNetworkPolicy",
		"policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy",
		"policy.networking.k8s.io/v1beta1 ClusterNetworkPolicy",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("known types = %q, want %q", got, want)
	}
	for _, w := range want {
		av, k, _ := strings.Cut(w, " ")
		if !v.Known(av, k) {
			t.Errorf("Known(%q, %q) = false", av, k)
		}
	}
	for _, c := range [][2]string{
		{"policy.networking.k8s.io/v1alpha1", "ClusterNetworkPolicy"},
		{"policy.networking.k8s.io/v1beta1", "AdminNetworkPolicy"},
		{"networking.k8s.io/v1", "NetworkPolicy"},
		{"", ""},
	} {
		if v.Known(c[0], c[1]) {
			t.Errorf("Known(%q, %q) = true", c[0], c[1])
		}
	}
}

// TestOnlyRootRuleIsBANPName pins the assumption of Validate that moves a
// root-level CEL error of a BaselineAdminNetworkPolicy to metadata.name.
func TestOnlyRootRuleIsBANPName(t *testing.T) {
	for _, name := range embeddedNames(t) {
		crd, err := loadCRD(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, ver := range crd.Spec.Versions {
			var rules []string
			for _, r := range ver.Schema.OpenAPIV3Schema.XValidations {
				rules = append(rules, r.Rule)
			}
			want := []string(nil)
			if crd.Spec.Names.Kind == "BaselineAdminNetworkPolicy" {
				want = []string{"self.metadata.name == 'default'"}
			}
			if !reflect.DeepEqual(rules, want) {
				t.Errorf("%s %s: root rules %q, want %q", crd.Name, ver.Name, rules, want)
			}
		}
	}
}

// TestExperimentalIsStandardPlus checks the claim of doc.go: the v1alpha1
// experimental CRDs are the standard ones plus exactly nodes, namedPort,
// domainNames and the egress named-port rule.
func TestExperimentalIsStandardPlus(t *testing.T) {
	want := map[string][]string{
		"policy.networking.k8s.io_adminnetworkpolicies.yaml": {
			"spec.egress[] x-kubernetes-validations",
			"spec.egress[].ports[].namedPort",
			"spec.egress[].to[].domainNames",
			"spec.egress[].to[].nodes",
			"spec.ingress[].ports[].namedPort",
		},
		"policy.networking.k8s.io_baselineadminnetworkpolicies.yaml": {
			"spec.egress[] x-kubernetes-validations",
			"spec.egress[].ports[].namedPort",
			"spec.egress[].to[].nodes",
			"spec.ingress[].ports[].namedPort",
		},
	}
	for name, want := range want {
		t.Run(name, func(t *testing.T) {
			p, body := readEmbedded(t, name)
			stdPath := strings.Replace(p.path, "/experimental/", "/standard/", 1)
			std, err := os.ReadFile(filepath.Join(moduleDir(t, p.module, p.version), filepath.FromSlash(stdPath)))
			if err != nil {
				t.Fatal(err)
			}
			exp, stdNodes := schemaNodes(t, body), schemaNodes(t, std)
			var added []string
			for p, c := range exp {
				sc, ok := stdNodes[p]
				switch {
				case !ok:
					added = append(added, p)
				case c.rules != sc.rules:
					added = append(added, p+" x-kubernetes-validations")
					fallthrough
				case c.constraints != sc.constraints:
					if c.constraints != sc.constraints {
						t.Errorf("%s: experimental %s, standard %s", p, c.constraints, sc.constraints)
					}
				}
			}
			for p := range stdNodes {
				if _, ok := exp[p]; !ok {
					t.Errorf("experimental lacks %s", p)
				}
			}
			// Keep only the top of each added subtree.
			sort.Strings(added)
			var tops []string
			for _, a := range added {
				if n := len(tops); n > 0 && (strings.HasPrefix(a, tops[n-1]+".") || strings.HasPrefix(a, tops[n-1]+"[]")) {
					continue
				}
				tops = append(tops, a)
			}
			if !reflect.DeepEqual(tops, want) {
				t.Errorf("experimental adds %q, want %q", tops, want)
			}
		})
	}
}

type nodeInfo struct{ constraints, rules string }

// schemaNodes maps every node path of a single-version CRD's schema to its
// constraints (without description and children) and CEL rules.
func schemaNodes(t *testing.T, data []byte) map[string]nodeInfo {
	t.Helper()
	crd := &apiextv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(data, crd); err != nil {
		t.Fatal(err)
	}
	out := map[string]nodeInfo{}
	var walk func(p string, s *apiextv1.JSONSchemaProps)
	walk = func(p string, s *apiextv1.JSONSchemaProps) {
		c := *s
		c.Description, c.Properties, c.Items, c.XValidations = "", nil, nil, nil
		cj, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		rj, err := json.Marshal(s.XValidations)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = nodeInfo{string(cj), string(rj)}
		for k, sub := range s.Properties {
			q := k
			if p != "" {
				q = p + "." + k
			}
			walk(q, &sub)
		}
		if s.Items != nil && s.Items.Schema != nil {
			walk(p+"[]", s.Items.Schema)
		}
	}
	if len(crd.Spec.Versions) != 1 {
		t.Fatalf("%d versions, want 1", len(crd.Spec.Versions))
	}
	walk("", crd.Spec.Versions[0].Schema.OpenAPIV3Schema)
	return out
}

// ---- markers of the v0.3.0 v1alpha1 Go types vs the embedded CRDs ----

// knownDrift maps a v0.3.0 marker to what the v0.1.7 CRD enforces instead
// (see doc.go). Every entry must be used.
var knownDrift = map[string]string{
	`+kubebuilder:validation:XValidation:rule="isCIDR(self) && cidr(self) == cidr(self).masked()",message="Invalid CIDR format provided"`:   `+kubebuilder:validation:XValidation:rule="isCIDR(self)",message="Invalid CIDR format provided"`,
	"+kubebuilder:validation:Pattern=`^(\\*\\.)?([a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\\.)+[a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\\.?$`": "+kubebuilder:validation:Pattern=`^(\\*\\.)?([a-zA-z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\\.)+[a-zA-z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\\.?$`",
}

// markerCase: the markers on decl (a type, or field in type) of file must
// hold on the schema node at path of the CRD file crd.
type markerCase struct {
	file, typ, field string
	crd, path        string
}

const (
	anpCRD  = "policy.networking.k8s.io_adminnetworkpolicies.yaml"
	banpCRD = "policy.networking.k8s.io_baselineadminnetworkpolicies.yaml"
)

// TestV1alpha1MarkersMatchCRD pins the experimental v1alpha1 fields of the
// embedded CRDs (nodes, namedPort, domainNames, the egress named-port CEL
// rule) and their neighbours to the kubebuilder markers of the v0.3.0 Go
// types netfence decodes into.
func TestV1alpha1MarkersMatchCRD(t *testing.T) {
	dir := moduleDir(t, npaModule, "v0.3.0")
	cases := []markerCase{
		// Egress rule CEL (named ports vs networks/nodes/domainNames).
		{"adminnetworkpolicy_types.go", "AdminNetworkPolicyEgressRule", "", anpCRD, "spec.egress[]"},
		{"baselineadminnetworkpolicy_types.go", "BaselineAdminNetworkPolicyEgressRule", "", banpCRD, "spec.egress[]"},
		// BANP singleton rule.
		{"baselineadminnetworkpolicy_types.go", "BaselineAdminNetworkPolicy", "", banpCRD, ""},
		// Egress peers.
		{"adminnetworkpolicy_types.go", "AdminNetworkPolicyEgressPeer", "", anpCRD, "spec.egress[].to[]"},
		{"adminnetworkpolicy_types.go", "AdminNetworkPolicyEgressPeer", "Nodes", anpCRD, "spec.egress[].to[].nodes"},
		{"adminnetworkpolicy_types.go", "AdminNetworkPolicyEgressPeer", "Networks", anpCRD, "spec.egress[].to[].networks"},
		{"adminnetworkpolicy_types.go", "AdminNetworkPolicyEgressPeer", "DomainNames", anpCRD, "spec.egress[].to[].domainNames"},
		{"adminnetworkpolicy_types.go", "DomainName", "", anpCRD, "spec.egress[].to[].domainNames[]"},
		{"shared_types.go", "CIDR", "", anpCRD, "spec.egress[].to[].networks[]"},
		{"baselineadminnetworkpolicy_types.go", "BaselineAdminNetworkPolicyEgressPeer", "", banpCRD, "spec.egress[].to[]"},
		{"baselineadminnetworkpolicy_types.go", "BaselineAdminNetworkPolicyEgressPeer", "Nodes", banpCRD, "spec.egress[].to[].nodes"},
		{"baselineadminnetworkpolicy_types.go", "BaselineAdminNetworkPolicyEgressPeer", "Networks", banpCRD, "spec.egress[].to[].networks"},
		{"shared_types.go", "CIDR", "", banpCRD, "spec.egress[].to[].networks[]"},
		// Ports, including namedPort and the TCP default.
		{"shared_types.go", "AdminNetworkPolicyPort", "", anpCRD, "spec.egress[].ports[]"},
		{"shared_types.go", "AdminNetworkPolicyPort", "NamedPort", anpCRD, "spec.egress[].ports[].namedPort"},
		{"shared_types.go", "AdminNetworkPolicyPort", "NamedPort", anpCRD, "spec.ingress[].ports[].namedPort"},
		{"shared_types.go", "AdminNetworkPolicyPort", "NamedPort", banpCRD, "spec.egress[].ports[].namedPort"},
		{"shared_types.go", "AdminNetworkPolicyPort", "NamedPort", banpCRD, "spec.ingress[].ports[].namedPort"},
		{"shared_types.go", "Port", "Protocol", anpCRD, "spec.egress[].ports[].portNumber.protocol"},
		{"shared_types.go", "Port", "Port", anpCRD, "spec.egress[].ports[].portNumber.port"},
		{"shared_types.go", "PortRange", "Protocol", banpCRD, "spec.ingress[].ports[].portRange.protocol"},
		{"shared_types.go", "PortRange", "Start", banpCRD, "spec.ingress[].ports[].portRange.start"},
		{"adminnetworkpolicy_types.go", "AdminNetworkPolicyEgressRule", "Ports", anpCRD, "spec.egress[].ports"},
		{"adminnetworkpolicy_types.go", "AdminNetworkPolicyEgressRule", "To", anpCRD, "spec.egress[].to"},
		// Actions and priority.
		{"adminnetworkpolicy_types.go", "AdminNetworkPolicyRuleAction", "", anpCRD, "spec.egress[].action"},
		{"baselineadminnetworkpolicy_types.go", "BaselineAdminNetworkPolicyRuleAction", "", banpCRD, "spec.ingress[].action"},
		{"adminnetworkpolicy_types.go", "AdminNetworkPolicySpec", "Priority", anpCRD, "spec.priority"},
	}
	srcs := map[string]string{}
	used := map[string]bool{}
	for _, c := range cases {
		name := fmt.Sprintf("%s/%s.%s->%s:%s", c.file, c.typ, c.field, c.crd, c.path)
		src, ok := srcs[c.file]
		if !ok {
			b, err := os.ReadFile(filepath.Join(dir, "apis", "v1alpha1", c.file))
			if err != nil {
				t.Fatal(err)
			}
			src = string(b)
			srcs[c.file] = src
		}
		markers, err := markersOf(src, c.typ, c.field)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(markers) == 0 && c.field == "" {
			t.Errorf("%s: no markers found", name)
		}
		node := schemaNode(t, c.crd, c.path)
		if node == nil {
			t.Errorf("%s: no schema node", name)
			continue
		}
		if c.field == "Nodes" {
			// *metav1.LabelSelector: no markers, so check the shape.
			if _, ok := node.Properties["matchLabels"]; !ok || node.XMapType == nil || *node.XMapType != "atomic" {
				t.Errorf("%s: not an atomic LabelSelector", name)
			}
		}
		if c.field == "NamedPort" && node.Type != "string" {
			t.Errorf("%s: type %q, want string", name, node.Type)
		}
		for _, m := range markers {
			if d, ok := knownDrift[m]; ok {
				used[m] = true
				m = d
			}
			if err := checkMarker(m, node); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
	for m := range knownDrift {
		if !used[m] {
			t.Errorf("known drift no longer seen in the v0.3.0 markers (update knownDrift and doc.go): %s", m)
		}
	}
}

// markersOf returns the "+..." marker lines of the comment block above
// "type typ" (field == "") or above field in "type typ struct".
func markersOf(src, typ, field string) ([]string, error) {
	lines := strings.Split(src, "\n")
	start := -1
	typeRe := regexp.MustCompile(`^type ` + regexp.QuoteMeta(typ) + `\b`)
	for i, l := range lines {
		if typeRe.MatchString(l) {
			start = i
			break
		}
	}
	if start < 0 {
		return nil, fmt.Errorf("type %s not found", typ)
	}
	at := start
	if field != "" {
		fieldRe := regexp.MustCompile(`^\s+` + regexp.QuoteMeta(field) + `\s`)
		at = -1
		for i := start + 1; i < len(lines) && !strings.HasPrefix(lines[i], "}"); i++ {
			if fieldRe.MatchString(lines[i]) {
				at = i
				break
			}
		}
		if at < 0 {
			return nil, fmt.Errorf("field %s.%s not found", typ, field)
		}
	}
	var markers []string
	for i := at - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, "//") {
			break
		}
		if m, ok := strings.CutPrefix(l, "// +"); ok {
			markers = append([]string{"+" + m}, markers...)
		}
	}
	return markers, nil
}

func schemaNode(t *testing.T, crdName, path string) *apiextv1.JSONSchemaProps {
	t.Helper()
	crd, err := loadCRD(crdName)
	if err != nil {
		t.Fatal(err)
	}
	if len(crd.Spec.Versions) != 1 {
		t.Fatalf("%s: %d versions, want 1", crdName, len(crd.Spec.Versions))
	}
	s := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	if path == "" {
		return s
	}
	for _, seg := range strings.Split(path, ".") {
		name, items := strings.CutSuffix(seg, "[]")
		sub, ok := s.Properties[name]
		if !ok {
			return nil
		}
		s = &sub
		if items {
			if s.Items == nil || s.Items.Schema == nil {
				return nil
			}
			s = s.Items.Schema
		}
	}
	return s
}

var ignoredMarkers = regexp.MustCompile(`^\+(optional|enum|genclient|k8s:|kubebuilder:(object|subresource|resource|printcolumn|storageversion)|patchMergeKey|patchStrategy|listMapKey)`)

// checkMarker checks one kubebuilder marker against a schema node.
func checkMarker(m string, s *apiextv1.JSONSchemaProps) error {
	if ignoredMarkers.MatchString(m) {
		return nil
	}
	key, val, _ := strings.Cut(m, "=")
	num := func(got *int64) error {
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %v", m, err)
		}
		if got == nil || *got != n {
			return fmt.Errorf("%s: schema has %v", m, deref(got))
		}
		return nil
	}
	switch key {
	case "+kubebuilder:validation:MinItems":
		return num(s.MinItems)
	case "+kubebuilder:validation:MaxItems":
		return num(s.MaxItems)
	case "+kubebuilder:validation:MaxLength":
		return num(s.MaxLength)
	case "+kubebuilder:validation:MinProperties":
		return num(s.MinProperties)
	case "+kubebuilder:validation:MaxProperties":
		return num(s.MaxProperties)
	case "+kubebuilder:validation:Minimum", "+kubebuilder:validation:Maximum":
		f := s.Minimum
		if key == "+kubebuilder:validation:Maximum" {
			f = s.Maximum
		}
		want, err := strconv.ParseFloat(val, 64)
		if err != nil || f == nil || *f != want {
			return fmt.Errorf("%s: schema has %v", m, f)
		}
	case "+kubebuilder:validation:Pattern":
		if want := strings.Trim(val, "`"); s.Pattern != want {
			return fmt.Errorf("%s: schema has pattern %q", m, s.Pattern)
		}
	case "+kubebuilder:validation:Enum":
		var want []string
		for _, e := range strings.Split(strings.Trim(val, "{}"), ",") {
			want = append(want, strings.Trim(strings.TrimSpace(e), `"`))
		}
		var got []string
		for _, e := range s.Enum {
			got = append(got, strings.Trim(string(e.Raw), `"`))
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("%s: schema has enum %q", m, got)
		}
	case "+kubebuilder:default":
		if s.Default == nil || strings.Trim(string(s.Default.Raw), `"`) != val {
			return fmt.Errorf("%s: schema has default %v", m, s.Default)
		}
	case "+listType":
		if s.XListType == nil || *s.XListType != val {
			return fmt.Errorf("%s: schema has x-kubernetes-list-type %v", m, deref(s.XListType))
		}
	case "+kubebuilder:validation:XValidation:rule":
		rule, message, err := parseXValidation(strings.TrimPrefix(m, "+kubebuilder:validation:XValidation:"))
		if err != nil {
			return fmt.Errorf("%s: %v", m, err)
		}
		for _, r := range s.XValidations {
			if r.Rule == rule && r.Message == message {
				return nil
			}
		}
		return fmt.Errorf("%s: schema has x-kubernetes-validations %+v", m, s.XValidations)
	case "+kubebuilder:validation:Required":
	default:
		return fmt.Errorf("%s: marker not understood by this test", m)
	}
	return nil
}

// parseXValidation parses `rule="...",message="..."` (Go-quoted strings).
func parseXValidation(s string) (rule, message string, err error) {
	rest, ok := strings.CutPrefix(s, "rule=")
	if !ok {
		return "", "", errors.New("no rule=")
	}
	q, err := strconv.QuotedPrefix(rest)
	if err != nil {
		return "", "", err
	}
	rule, _ = strconv.Unquote(q)
	rest, ok = strings.CutPrefix(rest[len(q):], ",message=")
	if !ok {
		return "", "", errors.New("no ,message=")
	}
	if message, err = strconv.Unquote(rest); err != nil {
		return "", "", err
	}
	return rule, message, nil
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func newValidator(t testing.TB) *Validator {
	t.Helper()
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	return v
}
