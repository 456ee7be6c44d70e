// Package manifest reads Kubernetes manifests (YAML or JSON, multi-document,
// kind List and *List) into typed Namespaces, Pods, NetworkPolicies, Nodes
// and cluster-scoped policies (ClusterNetworkPolicy, AdminNetworkPolicy,
// BaselineAdminNetworkPolicy), validated as the API server would. Every
// error names the file, the document and the field.
//
// # Documents
//
// Every document of a file is read, or the file has an error: none is
// dropped silently. A file whose first non-space byte is "{" is a JSON
// stream (one or more JSON values, concatenated or separated by whitespace,
// as kubectl reads them); if its first value is no valid JSON the file is
// read as YAML (a flow mapping such as "{kind: Pod}"), and anything but
// whitespace after a JSON value that is no valid JSON is an error naming
// the document and the byte offset. Otherwise the file is a YAML stream,
// split at "---" lines (at column 0, followed by the end of the line, a
// space, a tab or a comment) and after "..." lines; lines may end in CRLF;
// what precedes the first "---" is no document when it is only comments.
// Documents are numbered from 1 in file order.
//
// # Kinds and apiVersions
//
// Namespace (v1), Pod (v1), NetworkPolicy (networking.k8s.io/v1), Node (v1:
// its labels and status.addresses), ClusterNetworkPolicy
// (policy.networking.k8s.io/v1beta1 and v1alpha2, one resource),
// AdminNetworkPolicy and BaselineAdminNetworkPolicy
// (policy.networking.k8s.io/v1alpha1) are read; other kinds are skipped
// (Objects.Skipped). Some cases are warnings (Objects.Warnings): loading
// goes on, but the user must see them.
//
//   - A kind that is a near miss of a kind read or of List (differs only in
//     case, is the plural, or is within Damerau-Levenshtein distance 2, 1
//     for Pod, Node and List) is skipped with a warning.
//   - A known kind of a third-party API group (a group with a dot outside
//     k8s.io and kubernetes.io, e.g. projectcalico.org/v3 NetworkPolicy) is a
//     different resource that netfence does not enforce: skipped with a
//     warning; so are the CNIs' own policy kinds (Calico's
//     GlobalNetworkPolicy, Cilium's CiliumNetworkPolicy, ...).
//   - A NetworkPolicy of extensions/v1beta1 (Kubernetes before 1.16, same
//     schema) is read as networking.k8s.io/v1, with a warning.
//
// Any other apiVersion of a known kind, such as networking.k8s.io/v2 or v1
// NetworkPolicy, policy.networking.k8s.io/v1alpha1 ClusterNetworkPolicy, or
// v2 Pod, is an error: a policy netfence cannot read is never ignored
// silently (fail closed). The same object (kind, namespace, name) defined
// twice is an error naming both places; a ClusterNetworkPolicy read as
// v1alpha2 and as v1beta1 is one object.
//
// # Cluster-scoped policies
//
// ClusterNetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy
// objects are validated as an API server with the upstream CRDs installed
// validates them on create (package validation/crd: structural defaulting,
// such as a v1alpha1 port protocol defaulting to TCP; unknown fields as
// errors; metadata, with metadata.namespace forbidden; the OpenAPI schema;
// the CEL rules), decoded strictly from the defaulted object into the
// network-policy-api types, converted to the v1beta1 form
// (cluster.ClusterPolicy) and compiled (policy.CompileCluster), which
// refuses what the CRD lets through but netfence cannot enforce as written.
// An object that fails either is an error and, when it decoded, is listed
// in Objects.InvalidClusterPolicies for the node agent to fail closed. The
// CRD validator is built once per Loader, on the first such object.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/validation"
	"github.com/netfence/netfence/internal/validation/crd"
)

// Location names where an object came from.
type Location struct {
	File string
	// Document is the 1-based index of the YAML document in the file.
	Document int
	// Item is the 1-based index in a List's items, or 0.
	Item      int
	Kind      string
	Namespace string
	Name      string
}

func (l Location) String() string {
	var b strings.Builder
	b.WriteString(l.File)
	if l.Document > 0 {
		fmt.Fprintf(&b, ": document %d", l.Document)
	}
	if l.Item > 0 {
		fmt.Fprintf(&b, " item %d", l.Item)
	}
	if l.Kind != "" || l.Name != "" {
		b.WriteString(" (")
		b.WriteString(l.Kind)
		if l.Name != "" {
			if l.Kind != "" {
				b.WriteByte(' ')
			}
			if l.Namespace != "" {
				b.WriteString(l.Namespace + "/")
			}
			b.WriteString(l.Name)
		}
		b.WriteByte(')')
	}
	return b.String()
}

// Error is a problem with one document (or one file, when Document is 0).
type Error struct {
	Location
	// Detail is the problem, starting with its field path when there is one.
	Detail string
}

func (e *Error) Error() string { return e.Location.String() + ": " + e.Detail }

// Errors is a list of per-document problems.
type Errors []*Error

func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, err := range e {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

// Skipped is an object of a kind netfence does not use.
type Skipped struct {
	Location
	APIVersion string
}

// Objects are the decoded objects with where each came from.
type Objects struct {
	Namespaces []*corev1.Namespace
	Pods       []*corev1.Pod
	Policies   []*networkingv1.NetworkPolicy
	// Where maps "Kind namespace/name" to the object's location.
	Where   map[string]Location
	Skipped []Skipped
	// Warnings are problems that did not stop loading but that a user must
	// see, in file and document order.
	Warnings []Warning
	// InvalidPolicies are NetworkPolicies that decode but fail validation
	// (each also reported in the errors). They are not part of the
	// cluster; the node agent uses them to fail closed (a policy that
	// never compiled denies the pods it selects).
	InvalidPolicies []*networkingv1.NetworkPolicy
	// ClusterPolicies are the cluster-scoped policies
	// (ClusterNetworkPolicy, AdminNetworkPolicy,
	// BaselineAdminNetworkPolicy) in file order, each validated against
	// its CRD and compiled (policy.CompileCluster).
	ClusterPolicies []*cluster.ClusterPolicy
	// Nodes are the Nodes read, in file order: their labels and
	// addresses.
	Nodes []*cluster.Node
	// InvalidClusterPolicies are cluster-scoped policies that decode but
	// fail CRD validation or do not compile (each also reported in the
	// errors), for the node agent to fail closed as for InvalidPolicies.
	InvalidClusterPolicies []*cluster.ClusterPolicy
}

// Warning is a problem that does not stop loading but that a user must see.
type Warning struct {
	Location
	Message string
}

// String formats the warning as "FILE: document N (Kind ns/name): message".
func (w Warning) String() string { return w.Location.String() + ": " + w.Message }

// Cluster builds the cluster model from the objects.
func (o *Objects) Cluster() *cluster.Cluster {
	return cluster.APIObjects{Namespaces: o.Namespaces, Pods: o.Pods, Policies: o.Policies,
		ClusterPolicies: o.ClusterPolicies, Nodes: o.Nodes}.Cluster()
}

// Loader reads manifests. A Loader may be used for several loads, also
// concurrently (Stdin aside): the CRD validator it builds on the first
// cluster-scoped policy it meets is reused.
type Loader struct {
	// Stdin is read for the path "-".
	Stdin io.Reader

	crd lazyValidator
}

// Load reads every path: a file, a directory (recursively, files ending in
// .yaml, .yml or .json) or "-" for Stdin. Documents with errors are left out
// of the result and reported in Errors; the caller decides whether the rest
// may be used. The error return is only for Errors being non-empty, typed as
// Errors. Warnings (Objects.Warnings) are no errors: they never make Load
// return one.
func (l *Loader) Load(paths []string) (*Objects, error) {
	var errs Errors
	var docs []document
	for _, p := range paths {
		files, err := expand(p)
		if err != nil {
			errs = append(errs, &Error{Location: Location{File: p}, Detail: err.Error()})
			continue
		}
		for _, f := range files {
			var data []byte
			if f == "-" {
				if l.Stdin == nil {
					err = errors.New("no standard input")
				} else {
					data, err = io.ReadAll(l.Stdin)
				}
			} else {
				data, err = os.ReadFile(f)
			}
			name := f
			if f == "-" {
				name = "<stdin>"
			}
			if err != nil {
				errs = append(errs, &Error{Location: Location{File: name}, Detail: err.Error()})
				continue
			}
			d, err := fileDocuments(name, data)
			if err != nil {
				errs = append(errs, err)
			}
			docs = append(docs, d...)
		}
	}
	return l.decode(docs, errs)
}

// LoadData reads data as Load reads a file called name: a YAML or JSON
// stream. Errors and warnings name name as the file.
func (l *Loader) LoadData(name string, data []byte) (*Objects, error) {
	var errs Errors
	docs, err := fileDocuments(name, data)
	if err != nil {
		errs = append(errs, err)
	}
	return l.decode(docs, errs)
}

// decode decodes the documents and collects the objects, adding to errs
// the problems of reading the files.
func (l *Loader) decode(docs []document, errs Errors) (*Objects, error) {
	o := &Objects{Where: map[string]Location{}}
	results := decodeAll(docs, l.crd.get)
	for _, r := range results {
		errs = append(errs, r.errs...)
		for _, obj := range r.objects {
			if err := o.claim(obj.key, obj.loc); err != nil {
				errs = append(errs, err)
				continue
			}
			switch v := obj.obj.(type) {
			case *corev1.Namespace:
				o.Namespaces = append(o.Namespaces, v)
			case *corev1.Pod:
				o.Pods = append(o.Pods, v)
			case *networkingv1.NetworkPolicy:
				o.Policies = append(o.Policies, v)
			case *cluster.ClusterPolicy:
				o.ClusterPolicies = append(o.ClusterPolicies, v)
			case *cluster.Node:
				o.Nodes = append(o.Nodes, v)
			}
		}
		o.Skipped = append(o.Skipped, r.skipped...)
		o.Warnings = append(o.Warnings, r.warnings...)
		o.InvalidPolicies = append(o.InvalidPolicies, r.invalid...)
		o.InvalidClusterPolicies = append(o.InvalidClusterPolicies, r.invalidCluster...)
	}
	sortObjects(o)
	if len(errs) > 0 {
		return o, errs
	}
	return o, nil
}

func expand(p string) ([]string, error) {
	if p == "-" {
		return []string{p}, nil
	}
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != p && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			files = append(files, path)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

// decoded is one object decoded from a document.
type decoded struct {
	loc Location
	key string
	obj any
}

// docResult is what one document yields.
type docResult struct {
	objects  []decoded
	skipped  []Skipped
	warnings []Warning
	// invalid are NetworkPolicies that decode but fail validation.
	invalid []*networkingv1.NetworkPolicy
	// invalidCluster are cluster-scoped policies that decode but fail
	// validation or compilation.
	invalidCluster []*cluster.ClusterPolicy
	errs           Errors
	// crd returns the loader's CRD validator, built on first use.
	crd func() (*crd.Validator, error)
}

func (r *docResult) warn(loc Location, msg string) {
	r.warnings = append(r.warnings, Warning{Location: loc, Message: msg})
}

// decodeAll decodes documents on every CPU; results keep document order.
// validator returns the CRD validator for cluster-scoped policies.
func decodeAll(docs []document, validator func() (*crd.Validator, error)) []docResult {
	results := make([]docResult, len(docs))
	workers := runtime.GOMAXPROCS(0)
	if workers > len(docs) {
		workers = len(docs)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(docs) {
					return
				}
				results[i] = decodeDocument(docs[i], validator)
			}
		}()
	}
	wg.Wait()
	return results
}

func decodeDocument(d document, validator func() (*crd.Validator, error)) (r docResult) {
	r.crd = validator
	j, err := yamlToJSON(d.data)
	if err != nil {
		what := "invalid YAML: "
		if d.json {
			what = "invalid JSON: "
		}
		r.errs = Errors{{Location: d.loc, Detail: what + cleanYAMLError(err)}}
		return r
	}
	if j == nil || string(j) == "null" {
		return r
	}
	r.addObject(d.loc, j)
	return r
}

var yamlErrPrefix = regexp.MustCompile(`^yaml: (unmarshal errors:\n\s*)?`)

func cleanYAMLError(err error) string { return yamlErrPrefix.ReplaceAllString(err.Error(), "") }

type typeMeta struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Items      json.RawMessage `json:"items"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

func (r *docResult) addObject(loc Location, data []byte) {
	var tm typeMeta
	if err := json.Unmarshal(data, &tm); err != nil {
		r.errs = append(r.errs, &Error{Location: loc, Detail: "not a Kubernetes object: " + jsonDetail(err)})
		return
	}
	loc.Kind, loc.Namespace, loc.Name = tm.Kind, tm.Metadata.Namespace, tm.Metadata.Name
	if tm.Kind == "" {
		r.errs = append(r.errs, &Error{Location: loc, Detail: "kind: Required value"})
		return
	}
	if tm.Kind == "List" || strings.HasSuffix(tm.Kind, "List") {
		r.errs = append(r.errs, r.addList(loc, tm)...)
		return
	}
	r.errs = append(r.errs, r.addItem(loc, tm.APIVersion, data)...)
}

func (r *docResult) addList(loc Location, tm typeMeta) Errors {
	loc.Kind, loc.Namespace, loc.Name = tm.Kind, "", ""
	var items []json.RawMessage
	if len(tm.Items) > 0 && string(tm.Items) != "null" {
		if err := json.Unmarshal(tm.Items, &items); err != nil {
			return Errors{{Location: loc, Detail: "items: must be a list"}}
		}
	}
	itemKind := strings.TrimSuffix(tm.Kind, "List")
	var errs Errors
	for i, raw := range items {
		il := loc
		il.Item = i + 1
		var itm typeMeta
		if err := json.Unmarshal(raw, &itm); err != nil {
			errs = append(errs, &Error{Location: il, Detail: "not a Kubernetes object: " + jsonDetail(err)})
			continue
		}
		if itm.Kind == "" && itemKind != "" {
			itm.Kind, itm.APIVersion = itemKind, tm.APIVersion
			raw = withTypeMeta(raw, itm.APIVersion, itm.Kind)
		}
		il.Kind, il.Namespace, il.Name = itm.Kind, itm.Metadata.Namespace, itm.Metadata.Name
		if itm.Kind == "" {
			errs = append(errs, &Error{Location: il, Detail: "kind: Required value"})
			continue
		}
		if strings.HasSuffix(itm.Kind, "List") {
			errs = append(errs, &Error{Location: il, Detail: "kind: a List may not hold a List"})
			continue
		}
		errs = append(errs, r.addItem(il, itm.APIVersion, raw)...)
	}
	return errs
}

func withTypeMeta(raw json.RawMessage, apiVersion, kind string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return raw
	}
	m["kind"], _ = json.Marshal(kind)
	m["apiVersion"], _ = json.Marshal(apiVersion)
	out, _ := json.Marshal(m)
	return out
}

func (r *docResult) addItem(loc Location, apiVersion string, data []byte) Errors {
	want, known := knownKinds[loc.Kind]
	if !known {
		if k := suggestKind(loc.Kind); k != "" {
			r.warn(loc, nearMissMessage(loc.Kind, k))
		} else if msg, ok := unenforcedPolicyKind(loc.Kind, apiVersion); ok {
			r.warn(loc, msg)
		}
		r.skipped = append(r.skipped, Skipped{Location: loc, APIVersion: apiVersion})
		return nil
	}
	legacy := false
	switch checkAPIVersion(loc.Kind, apiVersion) {
	case apiReadLegacy:
		legacy = true
	case apiOtherGroup:
		r.warn(loc, otherGroupMessage(loc.Kind, apiVersion))
		r.skipped = append(r.skipped, Skipped{Location: loc, APIVersion: apiVersion})
		return nil
	case apiUnknown:
		return Errors{{Location: loc, Detail: fmt.Sprintf("apiVersion: Unsupported value: %q: supported values: %s", apiVersion, supportedValues(want))}}
	}
	var errs field.ErrorList
	var key string
	switch loc.Kind {
	case "Namespace":
		ns := &corev1.Namespace{}
		if err := decodeInto(data, ns, false); err != nil {
			return Errors{{Location: loc, Detail: err.Error()}}
		}
		errs = validation.Namespace(ns)
		key = "Namespace " + ns.Name
		if len(errs) == 0 {
			r.objects = append(r.objects, decoded{loc, key, ns})
		}
	case "Pod":
		pod := &corev1.Pod{}
		if err := decodeInto(data, pod, false); err != nil {
			return Errors{{Location: loc, Detail: err.Error()}}
		}
		if pod.Namespace == "" {
			pod.Namespace = corev1.NamespaceDefault
			loc.Namespace = pod.Namespace
		}
		errs = validation.Pod(pod)
		key = "Pod " + pod.Namespace + "/" + pod.Name
		if len(errs) == 0 {
			r.objects = append(r.objects, decoded{loc, key, pod})
		}
	case "NetworkPolicy":
		np := &networkingv1.NetworkPolicy{}
		// Strict: a misspelt field in a policy would silently widen it.
		if err := decodeInto(withoutEmptyStatus(data), np, true); err != nil {
			return Errors{{Location: loc, Detail: err.Error()}}
		}
		if np.Namespace == "" {
			np.Namespace = corev1.NamespaceDefault
			loc.Namespace = np.Namespace
		}
		if legacy {
			r.warn(loc, legacyMessage(apiVersion, want[0]))
			np.APIVersion = want[0]
		}
		errs = validation.NetworkPolicy(np)
		key = "NetworkPolicy " + np.Namespace + "/" + np.Name
		if len(errs) == 0 {
			r.objects = append(r.objects, decoded{loc, key, np})
		} else {
			r.invalid = append(r.invalid, np)
		}
	case "Node":
		node := &corev1.Node{}
		if err := decodeInto(data, node, false); err != nil {
			return Errors{{Location: loc, Detail: err.Error()}}
		}
		errs = validateNode(node)
		key = "Node " + node.Name
		if len(errs) == 0 {
			r.objects = append(r.objects, decoded{loc, key, cluster.NodeFromAPI(node)})
		}
	case cluster.KindCNP, cluster.KindANP, cluster.KindBANP:
		return r.addClusterPolicy(loc, apiVersion, data)
	}
	out := make(Errors, len(errs))
	for i, e := range errs {
		out[i] = &Error{Location: loc, Detail: e.Error()}
	}
	return out
}

// withoutEmptyStatus drops the "status: {}" that API servers of Kubernetes
// 1.24-1.27 wrote on NetworkPolicies (a field since removed), so that dumps
// of those clusters still decode strictly.
func withoutEmptyStatus(data []byte) []byte {
	if !bytes.Contains(data, []byte(`"status"`)) {
		return data
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return data
	}
	if st, ok := m["status"]; !ok || string(bytes.TrimSpace(st)) != "{}" {
		return data
	}
	delete(m, "status")
	out, err := json.Marshal(m)
	if err != nil {
		return data
	}
	return out
}

func (o *Objects) claim(key string, loc Location) *Error {
	if first, dup := o.Where[key]; dup {
		return &Error{Location: loc, Detail: fmt.Sprintf("duplicate %s: first defined in %s", key, first)}
	}
	o.Where[key] = loc
	return nil
}

func decodeInto(data []byte, obj any, strict bool) error {
	// Both strict options: given only some, UnmarshalStrict checks only
	// those, and a misspelt field would pass unnoticed.
	strictErrs, err := sigsjson.UnmarshalStrict(data, obj, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return errors.New(jsonDetail(err))
	}
	if strict && len(strictErrs) > 0 {
		msgs := make([]string, len(strictErrs))
		for i, e := range strictErrs {
			msgs[i] = e.Error()
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}

// jsonDetail turns encoding/json type errors into "field.path: message".
func jsonDetail(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("%s: Invalid value: must be of type %s, not %s", te.Field, te.Type, te.Value)
	}
	return err.Error()
}

func sortObjects(o *Objects) {
	sort.SliceStable(o.Namespaces, func(i, j int) bool { return o.Namespaces[i].Name < o.Namespaces[j].Name })
}
