package conformance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/template"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
	upstream "sigs.k8s.io/network-policy-api/conformance"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/manifest"
)

// State is a cluster as the upstream suite sees it at one point of a test:
// API objects, changed by Apply and Mutate. A State is not safe for
// concurrent use; Clone gives an independent copy (sharing the loader,
// which is).
type State struct {
	stack      Stack
	loader     *manifest.Loader
	nodes      []*corev1.Node
	namespaces []*corev1.Namespace
	pods       []*corev1.Pod
	policies   []*networkingv1.NetworkPolicy
	cnps       []*v1beta1.ClusterNetworkPolicy
	// placed counts the pod-network pods placed on each node, for their
	// addresses.
	placed map[string]int
}

// Stack returns the state's address families.
func (s *State) Stack() Stack { return s.stack }

// Clone returns a deep copy of the state.
func (s *State) Clone() *State {
	c := &State{stack: s.stack, loader: s.loader, placed: map[string]int{}}
	for k, v := range s.placed {
		c.placed[k] = v
	}
	for _, n := range s.nodes {
		c.nodes = append(c.nodes, n.DeepCopy())
	}
	for _, ns := range s.namespaces {
		c.namespaces = append(c.namespaces, ns.DeepCopy())
	}
	for _, p := range s.pods {
		c.pods = append(c.pods, p.DeepCopy())
	}
	for _, np := range s.policies {
		c.policies = append(c.policies, np.DeepCopy())
	}
	for _, p := range s.cnps {
		c.cnps = append(c.cnps, p.DeepCopy())
	}
	return c
}

// Start returns the state a scenario starts from: a copy of base with the
// scenario's manifests applied.
func (sc *Scenario) Start(base *State) (*State, error) {
	s := base.Clone()
	for _, m := range sc.Manifests {
		if err := s.Apply(m); err != nil {
			return nil, fmt.Errorf("%s: %w", sc.Name, err)
		}
	}
	return s, nil
}

// Render returns an upstream manifest (a path in the upstream
// conformance.Manifests, such as "base/admin_tier/standard-egress-tcp-rules.yaml")
// with its template rendered as upstream's Applier renders it, with the
// host-network ports from HostNetworkPortStart.
func Render(path string) ([]byte, error) {
	raw, err := upstream.Manifests.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading upstream manifest: %w", err)
	}
	tmpl, err := template.New(path).Option("missingkey=error").Parse(string(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: parsing the template: %w", path, err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, struct{ HostNetworkPorts []int }{hostNetworkPorts()}); err != nil {
		return nil, fmt.Errorf("%s: rendering the template: %w", path, err)
	}
	return buf.Bytes(), nil
}

// Apply applies an upstream manifest as upstream's Applier does (objects
// created, or replaced when they exist), after netfence's loader has read
// it without an error or a warning. StatefulSets become their pods.
func (s *State) Apply(path string) error {
	data, err := Render(path)
	if err != nil {
		return err
	}
	objs, err := s.loader.LoadData(path, data)
	if err != nil {
		return fmt.Errorf("netfence's loader refuses upstream's %s:\n%w", path, err)
	}
	if len(objs.Warnings) > 0 {
		return fmt.Errorf("netfence's loader warns about upstream's %s: %s", path, objs.Warnings[0])
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for doc := 1; ; doc++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("%s: document %d: %w", path, doc, err)
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
			continue
		}
		if err := s.applyObject(raw); err != nil {
			return fmt.Errorf("%s: document %d: %w", path, doc, err)
		}
	}
}

func (s *State) applyObject(raw []byte) error {
	var tm struct{ APIVersion, Kind string }
	if err := json.Unmarshal(raw, &tm); err != nil {
		return err
	}
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Namespace":
		ns := &corev1.Namespace{}
		if err := decodeStrict(raw, ns); err != nil {
			return err
		}
		s.namespaces = replace(s.namespaces, ns, func(o *corev1.Namespace) bool { return o.Name == ns.Name })
	case "apps/v1 StatefulSet":
		sts := &appsv1.StatefulSet{}
		if err := decodeStrict(raw, sts); err != nil {
			return err
		}
		pods, err := s.statefulSetPods(sts)
		if err != nil {
			return err
		}
		for _, p := range pods {
			s.pods = replace(s.pods, p, func(o *corev1.Pod) bool { return o.Namespace == p.Namespace && o.Name == p.Name })
		}
	case "networking.k8s.io/v1 NetworkPolicy":
		np := &networkingv1.NetworkPolicy{}
		if err := decodeStrict(raw, np); err != nil {
			return err
		}
		s.policies = replace(s.policies, np, func(o *networkingv1.NetworkPolicy) bool { return o.Namespace == np.Namespace && o.Name == np.Name })
	case cluster.PolicyAPIGroup + "/v1beta1 " + cluster.KindCNP:
		p := &v1beta1.ClusterNetworkPolicy{}
		if err := decodeStrict(raw, p); err != nil {
			return err
		}
		s.cnps = replace(s.cnps, p, func(o *v1beta1.ClusterNetworkPolicy) bool { return o.Name == p.Name })
	default:
		return fmt.Errorf("%s %s: not a kind the conformance base or tests use", tm.APIVersion, tm.Kind)
	}
	return nil
}

// replace puts obj in place of the element same finds, or appends it.
func replace[T any](list []T, obj T, same func(T) bool) []T {
	if i := slices.IndexFunc(list, same); i >= 0 {
		list[i] = obj
		return list
	}
	return append(list, obj)
}

func decodeStrict(data []byte, obj any) error {
	strict, err := sigsjson.UnmarshalStrict(data, obj, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	if len(strict) > 0 {
		return errors.Join(strict...)
	}
	return nil
}

// Mutate makes a change an upstream test makes.
func (s *State) Mutate(m Mutation) error {
	if err := m.apply(s); err != nil {
		return fmt.Errorf("line %d: %s: %w", m.UpstreamLine(), m, err)
	}
	return nil
}

// Manifest returns the state as a stream of JSON objects, in the order
// nodes, namespaces, pods, NetworkPolicies, ClusterNetworkPolicies: what
// a cluster at this point holds (pods and nodes with their status). Every
// object carries its apiVersion and kind (from its manifest, or set when
// it was made).
func (s *State) Manifest() ([]byte, error) {
	var buf bytes.Buffer
	add := func(obj any, dropStatus bool) error {
		b, err := encode(obj, dropStatus)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
		return nil
	}
	for _, n := range s.nodes {
		if err := add(n, false); err != nil {
			return nil, err
		}
	}
	for _, ns := range s.namespaces {
		if err := add(ns, true); err != nil {
			return nil, err
		}
	}
	for _, p := range s.pods {
		if err := add(p, false); err != nil {
			return nil, err
		}
	}
	for _, np := range s.policies {
		if err := add(np, true); err != nil {
			return nil, err
		}
	}
	for _, p := range s.cnps {
		if err := add(p, true); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// encode marshals an API object without the empty fields the Go types
// always write (a null creationTimestamp, and status when dropStatus).
func encode(obj any, dropStatus bool) ([]byte, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if meta, ok := m["metadata"].(map[string]any); ok && meta["creationTimestamp"] == nil {
		delete(meta, "creationTimestamp")
	}
	if dropStatus {
		delete(m, "status")
	}
	return json.Marshal(m)
}

// Load reads the state's manifest with netfence's loader, as a file a user
// gives netfence. Any error or warning is an error.
func (s *State) Load() (*manifest.Objects, error) {
	data, err := s.Manifest()
	if err != nil {
		return nil, fmt.Errorf("encoding the state: %w", err)
	}
	objs, err := s.loader.LoadData("conformance-state.json", data)
	if err != nil {
		return nil, fmt.Errorf("netfence's loader refuses the state:\n%w", err)
	}
	if len(objs.Warnings) > 0 || len(objs.Skipped) > 0 {
		return nil, fmt.Errorf("netfence's loader skips or warns about the state: warnings %v, skipped %v", objs.Warnings, objs.Skipped)
	}
	return objs, nil
}

// Cluster returns the cluster model of the state, read through Load.
func (s *State) Cluster() (*cluster.Cluster, error) {
	objs, err := s.Load()
	if err != nil {
		return nil, err
	}
	return objs.Cluster(), nil
}

// PodIP returns the pod's status.podIP: what upstream pokes.
func (s *State) PodIP(ref PodRef) (netip.Addr, error) {
	p, err := s.pod(ref)
	if err != nil {
		return netip.Addr{}, err
	}
	return netip.ParseAddr(p.Status.PodIP)
}

// Endpoints returns the addresses a probe goes from and to: the client
// pod's status.podIP and the server pod's (for a host-network server, its
// node's address).
func (s *State) Endpoints(p Probe) (src, dst netip.Addr, err error) {
	if src, err = s.PodIP(p.From); err != nil {
		return src, dst, err
	}
	dst, err = s.PodIP(p.To)
	return src, dst, err
}

func (s *State) pod(ref PodRef) (*corev1.Pod, error) {
	for _, p := range s.pods {
		if p.Namespace == ref.Namespace() && p.Name == ref.Name() {
			return p, nil
		}
	}
	return nil, fmt.Errorf("no pod %s", ref)
}

func (s *State) namespace(name string) (*corev1.Namespace, error) {
	for _, ns := range s.namespaces {
		if ns.Name == name {
			return ns, nil
		}
	}
	return nil, fmt.Errorf("no namespace %s", name)
}

func (s *State) cnp(name string) (*v1beta1.ClusterNetworkPolicy, error) {
	for _, p := range s.cnps {
		if p.Name == name {
			return p, nil
		}
	}
	names := make([]string, len(s.cnps))
	for i, p := range s.cnps {
		names[i] = p.Name
	}
	return nil, fmt.Errorf("no ClusterNetworkPolicy %s (there are: %s)", name, strings.Join(names, ", "))
}
